/*
** The `re` module of query code (modules.c lists its members): module
** functions, Pattern objects (re.compile) and Match objects over the
** matcher of regex_match.c.  Positions are characters, as Python's; the
** matcher works in bytes, so they are converted at this boundary.
**
** Patterns and matches are host objects ("re.Pattern", "re.Match"); their
** attributes and methods come from lmql__re_attr (builtins.c asks).  A
** Match holds references to its Pattern and to the subject string.
** re.sub/subn with a function as replacement need the interpreter to call
** it: builtins.c routes them through lmql__re_sub_call with a caller.
*/
#include "modules.h"
#include "regex_match.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const g_op_names[] = {
    [RE_SEARCH] = "search", [RE_MATCH] = "match", [RE_FULLMATCH] = "fullmatch", [RE_FINDALL] = "findall",
    [RE_FINDITER] = "finditer", [RE_SUB] = "sub", [RE_SUBN] = "subn", [RE_SPLIT] = "split",
    [RE_COMPILE] = "compile", [RE_ESCAPE] = "escape", [RE_PURGE] = "purge",
};

struct re_pat {
    struct lmql__rx *rx;
    struct lmql_val *pattern; /* the str it was compiled from */
};

struct re_match {
    struct lmql_val *pat, *str; /* the Pattern object and the subject */
    ptrdiff_t *caps;            /* bytes, -1 unset */
    size_t pos, endpos;         /* characters */
};

static struct lmql_val *oom(struct lmql__err *err) {
    lmql__err_nomem(err);
    return NULL;
}

static void pat_free(void *p) {
    struct re_pat *rp = p;
    lmql__rx_free(rp->rx);
    lmql__val_unref(rp->pattern);
    free(rp);
}

static void match_free(void *p) {
    struct re_match *m = p;
    lmql__val_unref(m->pat);
    lmql__val_unref(m->str);
    free(m->caps);
    free(m);
}

static bool is_pat(const struct lmql_val *v) { return v->kind == LMQL_V_OBJ && !strcmp(v->u.obj.type, "re.Pattern"); }
static bool is_match(const struct lmql_val *v) { return v->kind == LMQL_V_OBJ && !strcmp(v->u.obj.type, "re.Match"); }

bool lmql__re_is_obj(const struct lmql_val *v) { return is_pat(v) || is_match(v); }

/* Python's repr: re.compile('a', re.IGNORECASE) and
** <re.Match object; span=(0, 1), match='a'> (also their str). */
static int pat_repr(struct lmql__buf *b, const struct lmql_val *v) {
    const struct re_pat *p = v->u.obj.ptr;
    static const struct { int flag; const char *name; } names[] = {
        {LMQL_RX_IGNORECASE, "re.IGNORECASE"}, {LMQL_RX_MULTILINE, "re.MULTILINE"},
        {LMQL_RX_DOTALL, "re.DOTALL"}, {LMQL_RX_ASCII, "re.ASCII"}};
    int flags = lmql__rx_flags(p->rx), rc = lmql__buf_adds(b, "re.compile(") || lmql__val_repr_into(b, p->pattern);
    bool first = true;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        if (!(flags & names[i].flag)) continue;
        rc = rc || lmql__buf_adds(b, first ? ", " : "|") || lmql__buf_adds(b, names[i].name);
        first = false;
    }
    return rc || lmql__buf_adds(b, ")") ? -1 : 0;
}

static int match_repr(struct lmql__buf *b, const struct lmql_val *v) {
    const struct re_match *m = v->u.obj.ptr;
    struct lmql_val *g = lmql__val_str(m->str->u.str.s + m->caps[0], (size_t)(m->caps[1] - m->caps[0]));
    int rc = !g || lmql__buf_addf(b, "<re.Match object; span=(%lld, %lld), match=",
                                  (long long)lmql__utf8_count(m->str->u.str.s, (size_t)m->caps[0]),
                                  (long long)lmql__utf8_count(m->str->u.str.s, (size_t)m->caps[1])) ||
             lmql__val_repr_into(b, g) || lmql__buf_adds(b, ">");
    lmql__val_unref(g);
    return rc ? -1 : 0;
}

static struct lmql_val *compile_pat(const char *fn, const struct lmql_val *pattern, int64_t flags, struct lmql__err *err) {
    if (is_pat(pattern)) {
        if (flags) return lmql__errp(err, "ValueError: re.%s(): cannot process flags argument with a compiled pattern", fn);
        return lmql__val_ref((struct lmql_val *)pattern);
    }
    if (pattern->kind != LMQL_V_STR)
        return lmql__errp(err, "TypeError: re.%s(): first argument must be string or compiled pattern, not %s", fn,
                          lmql__val_type_name(pattern));
    struct lmql__err e = {0};
    struct lmql__rx *rx = lmql__rx_compile(pattern->u.str.s, pattern->u.str.len, (int)flags, &e);
    if (!rx) {
        if (e.status == LMQL_ERR_NOMEM) return oom(err);
        size_t at = lmql__utf8_count(pattern->u.str.s, e.pos.offset);
        /* what this engine lacks is no re.error of Python's: say so */
        if (strstr(e.msg, "not supported"))
            return lmql__errp(err, "re.%s(): %s (at position %zu of the pattern)", fn, e.msg, at);
        return lmql__errp(err, "re.error: %s at position %zu (pattern passed to re.%s())", e.msg, at, fn);
    }
    struct re_pat *rp = lmql__malloc(sizeof *rp);
    if (!rp) {
        lmql__rx_free(rx);
        return oom(err);
    }
    rp->rx = rx;
    rp->pattern = lmql__val_ref((struct lmql_val *)pattern);
    struct lmql_val *v = lmql__val_obj("re.Pattern", rp, pat_free);   /* frees rp when it fails */
    if (!v) return oom(err);
    v->u.obj.repr = pat_repr;
    return v;
}

static const struct lmql__rx *rx_of(const struct lmql_val *pat) { return ((const struct re_pat *)pat->u.obj.ptr)->rx; }

/* Run the pattern on s from byte `at`; 1 with caps filled, 0, or -1 with err set. */
static int exec(const char *fn, const struct lmql_val *pat, const struct lmql_val *s, size_t end, size_t at, int mode,
                bool no_empty, ptrdiff_t *caps, struct lmql__err *err) {
    struct lmql__err e = {0};
    int rc = lmql__rx_exec(rx_of(pat), s->u.str.s, end, at, mode, no_empty, caps, &e);
    if (rc < 0) {
        if (e.status == LMQL_ERR_NOMEM) oom(err);
        else lmql__errf(err, "re.%s(): %s", fn, e.msg);
    }
    return rc;
}

static size_t ncaps(const struct lmql_val *pat) { return 2 * (size_t)(lmql__rx_ngroups(rx_of(pat)) + 1); }

static struct lmql_val *new_match(struct lmql_val *pat, struct lmql_val *s, const ptrdiff_t *caps, size_t pos,
                                  size_t endpos, struct lmql__err *err) {
    struct re_match *m = lmql__malloc(sizeof *m);
    ptrdiff_t *c = lmql__malloc(ncaps(pat) * sizeof *c);
    if (!m || !c) {
        free(m);
        free(c);
        return oom(err);
    }
    memcpy(c, caps, ncaps(pat) * sizeof *c);
    *m = (struct re_match){lmql__val_ref(pat), lmql__val_ref(s), c, pos, endpos};
    struct lmql_val *v = lmql__val_obj("re.Match", m, match_free);   /* frees m when it fails */
    if (!v) return oom(err);
    v->u.obj.repr = match_repr;
    return v;
}

/* The text of group slot pair (a, b), or None (`dflt`) when unset. */
static struct lmql_val *group_text(const struct lmql_val *s, const ptrdiff_t *caps, int g, struct lmql_val *dflt) {
    if (caps[2 * g] < 0 || caps[2 * g + 1] < 0) return lmql__val_ref(dflt);
    return lmql__val_str(s->u.str.s + caps[2 * g], (size_t)(caps[2 * g + 1] - caps[2 * g]));
}

/* ------------------------------------------------------------ the calls -- */

/* The arguments of a call, by position or by name. */
struct args {
    const char *fn;
    struct lmql_val *pat;   /* a Pattern (new reference) */
    struct lmql_val *str, *repl;
    int64_t flags, count, pos, endpos;
};

static bool int_arg(const struct lmql_val *v, int64_t *out) {
    if (v->kind == LMQL_V_INT) *out = v->u.i;
    else if (v->kind == LMQL_V_BOOL) *out = v->u.b;
    else return false;
    return true;
}

/* Read argv per `spec`: a list of names ("pattern", "string", "repl", "flags",
** "count"/"maxsplit", "pos", "endpos"); `self` when a Pattern's method. */
static int read_args(struct args *a, const char *const *spec, struct lmql_val *self, int argc, struct lmql_val **argv,
                     const char **names, struct lmql__err *err) {
    int nspec = 0;
    while (spec[nspec]) nspec++;
    struct lmql_val *got[8] = {0};
    int np = 0;
    while (np < argc && !names[np]) np++;
    if (np > nspec) return lmql__errf(err, "TypeError: %s%s() takes at most %d arguments (%d given)", self ? "Pattern." : "re.",
                                      a->fn, nspec, np);
    for (int i = 0; i < np; i++) got[i] = argv[i];
    for (int i = np; i < argc; i++) {
        int k = 0;
        while (k < nspec && strcmp(spec[k], names[i])) k++;
        if (k == nspec) return lmql__errf(err, "TypeError: %s%s() got an unexpected keyword argument '%s'",
                                          self ? "Pattern." : "re.", a->fn, names[i]);
        got[k] = argv[i];
    }
    a->endpos = -1;
    for (int k = 0; k < nspec; k++) {
        const char *nm = spec[k];
        struct lmql_val *v = got[k];
        if (!v) {
            if (!strcmp(nm, "pattern") || !strcmp(nm, "string") || !strcmp(nm, "repl"))
                return lmql__errf(err, "TypeError: %s%s() missing required argument '%s'", self ? "Pattern." : "re.", a->fn, nm);
            continue;
        }
        if (!strcmp(nm, "pattern")) continue;
        if (!strcmp(nm, "string")) {
            if (v->kind != LMQL_V_STR)
                return lmql__errf(err, "TypeError: %s%s(): expected string, got %s", self ? "Pattern." : "re.", a->fn,
                                  lmql__val_type_name(v));
            a->str = v;
        } else if (!strcmp(nm, "repl")) {
            a->repl = v;
        } else {
            int64_t x;
            if (v->kind == LMQL_V_NONE && !strcmp(nm, "endpos")) continue;
            if (!int_arg(v, &x))
                return lmql__errf(err, "TypeError: %s%s(): '%s' must be an integer, not %s", self ? "Pattern." : "re.", a->fn,
                                  nm, lmql__val_type_name(v));
            if (!strcmp(nm, "flags")) a->flags = x;
            else if (!strcmp(nm, "count") || !strcmp(nm, "maxsplit")) a->count = x;
            else if (!strcmp(nm, "pos")) a->pos = x;
            else a->endpos = x;
        }
    }
    if (self) a->pat = lmql__val_ref(self);
    else if (!(a->pat = compile_pat(a->fn, got[0], a->flags, err))) return -1;
    return 0;
}

/* The byte range [*at, *end) that pos/endpos (characters, clamped as Python) select. */
static void window(const struct args *a, size_t *at, size_t *end, size_t *cpos, size_t *cend) {
    const char *s = a->str->u.str.s;
    size_t n = a->str->u.str.len, len = lmql__utf8_count(s, n);
    int64_t p = a->pos < 0 ? 0 : a->pos, e = a->endpos < 0 ? (int64_t)len : a->endpos;
    if (p > (int64_t)len) p = (int64_t)len;
    if (e > (int64_t)len) e = (int64_t)len;
    *cpos = (size_t)p;
    *cend = (size_t)e;
    *end = lmql__utf8_offset(s, n, (size_t)e);
    *at = lmql__utf8_offset(s, n, (size_t)p);
}

/* Append the expansion of template `t` for a match (\1, \g<name>, escapes). */
static int expand(struct lmql__buf *out, const struct lmql_val *t, const struct lmql_val *pat, const struct lmql_val *s,
                  const ptrdiff_t *caps, const char *fn, struct lmql__err *err) {
    const struct lmql__rx *rx = rx_of(pat);
    const char *p = t->u.str.s;
    size_t n = t->u.str.len;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\\') {
            if (lmql__buf_add(out, p + i, 1)) return oom(err), -1;
            continue;
        }
        if (i + 1 >= n) return lmql__errf(err, "re.error: bad escape (end of pattern) in the replacement of re.%s()", fn);
        char c = p[++i];
        int g = -1;
        if (c == 'g') {
            const char *lt = i + 1 < n && p[i + 1] == '<' ? p + i + 2 : NULL;
            const char *gt = lt ? memchr(lt, '>', n - (size_t)(lt - p)) : NULL;
            if (!gt) return lmql__errf(err, "re.error: missing group name in \\g<...> in the replacement of re.%s()", fn);
            size_t len = (size_t)(gt - lt);
            bool digits = len > 0;
            for (size_t k = 0; k < len; k++) digits = digits && lt[k] >= '0' && lt[k] <= '9';
            if (digits) {
                g = 0;
                for (size_t k = 0; k < len && g <= 100; k++) g = g * 10 + (lt[k] - '0');
            } else if ((g = lmql__rx_group_index(rx, lt, len)) < 0) {
                return lmql__errf(err, "IndexError: unknown group name '%.*s' in the replacement of re.%s()", (int)len, lt, fn);
            }
            i = (size_t)(gt - p);
        } else if (c >= '1' && c <= '9') {
            g = c - '0';
            if (i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '9') {
                /* three octal digits are a character, as Python */
                if (c <= '7' && p[i + 1] <= '7' && i + 2 < n && p[i + 2] >= '0' && p[i + 2] <= '7') {
                    int v = (c - '0') * 64 + (p[i + 1] - '0') * 8 + (p[i + 2] - '0');
                    if (v > 0377) return lmql__errf(err, "re.error: octal escape value outside of range 0-0o377 in the replacement of re.%s()", fn);
                    char ch[4];
                    size_t l = v < 0x80 ? 1 : 2;
                    if (l == 1) ch[0] = (char)v;
                    else { ch[0] = (char)(0xC0 | (v >> 6)); ch[1] = (char)(0x80 | (v & 0x3F)); }
                    if (lmql__buf_add(out, ch, l)) return oom(err), -1;
                    i += 2;
                    continue;
                }
                g = g * 10 + (p[++i] - '0');
            }
        } else {
            const char *esc = c == 'n' ? "\n" : c == 't' ? "\t" : c == 'r' ? "\r" : c == 'f' ? "\f" : c == 'v' ? "\v"
                            : c == 'a' ? "\a" : c == 'b' ? "\b" : c == '\\' ? "\\" : NULL;
            if (c == '0') {
                int v = 0;
                for (int k = 0; k < 2 && i + 1 < n && p[i + 1] >= '0' && p[i + 1] <= '7'; k++) v = v * 8 + (p[++i] - '0');
                char ch[2] = {(char)(v < 0x80 ? v : 0xC0 | (v >> 6)), (char)(0x80 | (v & 0x3F))};
                if (lmql__buf_add(out, ch, v < 0x80 ? 1 : 2)) return oom(err), -1;
                continue;
            }
            if (!esc && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return lmql__errf(err, "re.error: bad escape \\%c in the replacement of re.%s()", c, fn);
            if (esc ? lmql__buf_adds(out, esc) : lmql__buf_add(out, p + i - 1, 2)) return oom(err), -1;
            continue;
        }
        if (g > lmql__rx_ngroups(rx)) return lmql__errf(err, "re.error: invalid group reference %d in the replacement of re.%s()", g, fn);
        if (caps[2 * g] >= 0 && lmql__buf_add(out, s->u.str.s + caps[2 * g], (size_t)(caps[2 * g + 1] - caps[2 * g])))
            return oom(err), -1;
    }
    return 0;
}

/* One match per step of finditer/findall/sub/split: search from *at; after
** an empty match the next may not be empty at the same place (Python 3.7+). */
struct walk {
    size_t at, end;
    bool no_empty;
};

static int walk_next(struct walk *w, const struct args *a, ptrdiff_t *caps, struct lmql__err *err) {
    if (w->at > w->end) return 0;
    int rc = exec(a->fn, a->pat, a->str, w->end, w->at, LMQL_RX_SEARCH, w->no_empty, caps, err);
    if (rc == 1) {
        w->no_empty = caps[0] == caps[1];
        w->at = (size_t)caps[1];
    }
    return rc;
}

static struct lmql_val *do_sub(struct args *a, bool subn, lmql__re_caller call, void *ctx, struct lmql__err *err) {
    size_t at, end, cpos, cend;
    window(a, &at, &end, &cpos, &cend);
    bool fn_repl = a->repl->kind != LMQL_V_STR;
    if (fn_repl && a->repl->kind != LMQL_V_FUNC && a->repl->kind != LMQL_V_CLASS)
        return lmql__errp(err, "TypeError: re.%s(): the replacement must be a string or a function, not %s", a->fn,
                          lmql__val_type_name(a->repl));
    if (fn_repl && !call) return lmql__errp(err, "re.%s(): a function as replacement cannot be called here", a->fn);
    ptrdiff_t *caps = lmql__malloc(ncaps(a->pat) * sizeof *caps);
    struct lmql__buf out = {0};
    struct walk w = {0, a->str->u.str.len, false};
    size_t last = 0;
    int64_t n = 0;
    int rc = caps ? 0 : -1;
    if (!caps) oom(err);
    lmql__buf_reserve(&out, a->str->u.str.len);
    if (caps && !fn_repl) {
        /* Python reads the template before matching: a bad one is an error even without a match */
        for (size_t i = 0; i < ncaps(a->pat); i++) caps[i] = -1;
        if (expand(&out, a->repl, a->pat, a->str, caps, a->fn, err)) rc = -1;
        out.len = 0;
    }
    while (rc == 0 && a->count >= 0 && (a->count == 0 || n < a->count)) {   /* count < 0: none, as Python */
        int r = walk_next(&w, a, caps, err);
        if (r <= 0) { rc = r; break; }
        n++;
        if (lmql__buf_add(&out, a->str->u.str.s + last, (size_t)caps[0] - last)) { rc = -1; oom(err); break; }
        last = (size_t)caps[1];
        if (!fn_repl) {
            if (expand(&out, a->repl, a->pat, a->str, caps, a->fn, err)) rc = -1;
            continue;
        }
        struct lmql_val *m = new_match(a->pat, a->str, caps, cpos, cend, err), *r2 = NULL;
        if (m) r2 = call(ctx, a->repl, m);
        lmql__val_unref(m);
        if (!r2) { rc = -1; break; }
        if (r2->kind != LMQL_V_STR) {
            lmql__errf(err, "TypeError: re.%s(): the replacement function must return str, not %s", a->fn,
                       lmql__val_type_name(r2));
            rc = -1;
        } else if (lmql__buf_add(&out, r2->u.str.s, r2->u.str.len)) {
            rc = -1;
            oom(err);
        }
        lmql__val_unref(r2);
    }
    (void)at;
    (void)end;
    struct lmql_val *res = NULL;
    if (rc == 0 && !lmql__buf_add(&out, a->str->u.str.s + last, a->str->u.str.len - last)) {
        struct lmql_val *s = lmql__val_str(out.data ? out.data : "", out.len);
        if (s && subn) {
            res = lmql__val_tuple(2);
            if (lmql__list_push(res, s) || lmql__list_push(res, lmql__val_int(n))) {
                lmql__val_unref(res);
                res = NULL;
            }
        } else {
            res = s;
        }
        if (!res) oom(err);
    }
    lmql__buf_free(&out);
    free(caps);
    return res;
}

static struct lmql_val *run_op(int op, struct args *a, lmql__re_caller call, void *ctx, struct lmql__err *err) {
    if (op == RE_SUB || op == RE_SUBN) return do_sub(a, op == RE_SUBN, call, ctx, err);
    size_t at, end, cpos, cend;
    window(a, &at, &end, &cpos, &cend);
    int ng = lmql__rx_ngroups(rx_of(a->pat));
    ptrdiff_t *caps = lmql__malloc(ncaps(a->pat) * sizeof *caps);
    if (!caps) return oom(err);
    struct lmql_val *out = NULL;
    if (op == RE_SEARCH || op == RE_MATCH || op == RE_FULLMATCH) {
        int mode = op == RE_SEARCH ? LMQL_RX_SEARCH : op == RE_MATCH ? LMQL_RX_MATCH : LMQL_RX_FULLMATCH;
        int rc = exec(a->fn, a->pat, a->str, end, at, mode, false, caps, err);
        out = rc < 0 ? NULL : rc == 0 ? &lmql__none : new_match(a->pat, a->str, caps, cpos, cend, err);
        free(caps);
        return out;
    }
    if (!(out = lmql__val_list(0))) { free(caps); return oom(err); }
    struct walk w = {at, end, false};
    size_t last = at;
    int64_t n = 0;
    for (;;) {
        if (op == RE_SPLIT && (a->count < 0 || (a->count > 0 && n >= a->count))) break;   /* < 0: none, as Python */
        int rc = walk_next(&w, a, caps, err);
        if (rc < 0) goto fail;
        if (rc == 0) break;
        n++;
        struct lmql_val *item = NULL;
        if (op == RE_FINDITER) {
            item = new_match(a->pat, a->str, caps, cpos, cend, err);
        } else if (op == RE_FINDALL) {
            if (ng <= 1) {
                item = caps[2 * ng] < 0 ? lmql__val_str("", 0) : group_text(a->str, caps, ng, &lmql__none);
            } else {
                item = lmql__val_tuple((size_t)ng);
                for (int g = 1; item && g <= ng; g++) {
                    struct lmql_val *e = caps[2 * g] < 0 ? lmql__val_str("", 0) : group_text(a->str, caps, g, &lmql__none);
                    if (lmql__list_push(item, e)) { lmql__val_unref(item); item = NULL; }
                }
            }
            if (!item) oom(err);
        } else { /* split: the text before, then the groups */
            item = lmql__val_str(a->str->u.str.s + last, (size_t)caps[0] - last);
            for (int g = 1; item && g <= ng; g++) {
                if (lmql__list_push(out, item)) { item = NULL; break; }
                item = group_text(a->str, caps, g, &lmql__none);
            }
            if (!item) oom(err);
            last = (size_t)caps[1];
        }
        if (!item || lmql__list_push(out, item)) {
            if (item) oom(err);
            goto fail;
        }
    }
    if (op == RE_SPLIT && lmql__list_push(out, lmql__val_str(a->str->u.str.s + last, a->str->u.str.len - last))) {
        oom(err);
        goto fail;
    }
    free(caps);
    return out;
fail:
    free(caps);
    lmql__val_unref(out);
    return NULL;
}

/* re.escape(s): a backslash before each character Python's escapes. */
static struct lmql_val *do_escape(int argc, struct lmql_val **argv, const char **names, struct lmql__err *err) {
    if (argc != 1 || names[0] || argv[0]->kind != LMQL_V_STR) return lmql__errp(err, "TypeError: re.escape() takes one string");
    static const char special[] = "()[]{}?*+-|^$\\.&~# \t\n\r\v\f";
    struct lmql__buf b = {0};
    lmql__buf_reserve(&b, argv[0]->u.str.len);
    for (size_t i = 0; i < argv[0]->u.str.len; i++) {
        char c = argv[0]->u.str.s[i];
        if (c && strchr(special, c) && lmql__buf_add(&b, "\\", 1)) break;
        if (lmql__buf_add(&b, &c, 1)) break;
    }
    struct lmql_val *v = b.data ? lmql__val_str(b.data, b.len) : NULL;
    lmql__buf_free(&b);
    return v ? v : oom(err);
}

static const char *const *spec_of(int op, bool method) {
    static const char *const m_search[] = {"pattern", "string", "flags", NULL};
    static const char *const p_search[] = {"string", "pos", "endpos", NULL};
    static const char *const m_sub[] = {"pattern", "repl", "string", "count", "flags", NULL};
    static const char *const p_sub[] = {"repl", "string", "count", NULL};
    static const char *const m_split[] = {"pattern", "string", "maxsplit", "flags", NULL};
    static const char *const p_split[] = {"string", "maxsplit", NULL};
    static const char *const m_compile[] = {"pattern", "flags", NULL};
    if (op == RE_SUB || op == RE_SUBN) return method ? p_sub : m_sub;
    if (op == RE_SPLIT) return method ? p_split : m_split;
    if (op == RE_COMPILE) return m_compile;
    return method ? p_search : m_search;
}

static struct lmql_val *call_op(int op, struct lmql_val *self, int argc, struct lmql_val **argv, const char **names,
                                lmql__re_caller call, void *ctx, struct lmql__err *err) {
    if (op == RE_ESCAPE) return do_escape(argc, argv, names, err);
    if (op == RE_PURGE) return &lmql__none;
    struct args a = {.fn = g_op_names[op]};
    if (read_args(&a, spec_of(op, self != NULL), self, argc, argv, names, err)) return NULL;
    struct lmql_val *out = op == RE_COMPILE ? lmql__val_ref(a.pat) : run_op(op, &a, call, ctx, err);
    lmql__val_unref(a.pat);
    return out;
}

/* Module functions: ud is the op. Pattern methods: argv[0] is the Pattern. */
struct lmql_val *lmql__re_fn(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err) {
    return call_op((int)(uintptr_t)ud, NULL, argc, argv, names, NULL, NULL, err);
}

static struct lmql_val *pat_method(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err) {
    return call_op((int)(uintptr_t)ud, argv[0], argc - 1, argv + 1, names + 1, NULL, NULL, err);
}

bool lmql__re_is_sub(const struct lmql_val *fn) {
    if (fn->kind != LMQL_V_FUNC || (fn->u.func.fn != lmql__re_fn && fn->u.func.fn != pat_method)) return false;
    int op = (int)(uintptr_t)fn->u.func.ud;
    return op == RE_SUB || op == RE_SUBN;
}

struct lmql_val *lmql__re_sub_call(const struct lmql_val *fn, int argc, struct lmql_val **argv, const char **names,
                                   lmql__re_caller call, void *ctx, struct lmql__err *err) {
    return call_op((int)(uintptr_t)fn->u.func.ud, fn->u.func.self, argc, argv, names, call, ctx, err);
}

/* ------------------------------------------------------- Match objects -- */

/* The group a method argument names: an int or a group name; -1 with err set. */
static int group_of(const struct re_match *m, const struct lmql_val *g, struct lmql__err *err) {
    const struct lmql__rx *rx = rx_of(m->pat);
    int64_t i;
    if (int_arg(g, &i)) {
        if (i < 0 || i > lmql__rx_ngroups(rx)) return lmql__errf(err, "IndexError: no such group");
        return (int)i;
    }
    if (g->kind == LMQL_V_STR) {
        int k = lmql__rx_group_index(rx, g->u.str.s, g->u.str.len);
        if (k < 0) return lmql__errf(err, "IndexError: no such group");
        return k;
    }
    return lmql__errf(err, "IndexError: no such group");
}

static int64_t char_pos(const struct re_match *m, ptrdiff_t b) {
    return b < 0 ? -1 : (int64_t)lmql__utf8_count(m->str->u.str.s, (size_t)b);
}

enum { MM_GROUP, MM_GROUPS, MM_GROUPDICT, MM_START, MM_END, MM_SPAN, MM_EXPAND, MM_GETITEM };

static struct lmql_val *match_method(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err) {
    int op = (int)(uintptr_t)ud;
    const struct re_match *m = argv[0]->u.obj.ptr;
    const struct lmql__rx *rx = rx_of(m->pat);
    int ng = lmql__rx_ngroups(rx);
    argc--, argv++, names++;
    struct lmql_val *dflt = &lmql__none;
    if (op == MM_GROUPS || op == MM_GROUPDICT) {
        if (argc > 1) return lmql__errp(err, "TypeError: Match.%s() takes at most 1 argument", op == MM_GROUPS ? "groups" : "groupdict");
        if (argc == 1) {
            if (names[0] && strcmp(names[0], "default")) return lmql__errp(err, "TypeError: unexpected keyword argument '%s'", names[0]);
            dflt = argv[0];
        }
        struct lmql_val *out = op == MM_GROUPS ? lmql__val_tuple((size_t)ng) : lmql__val_dict();
        for (int g = 1; out && g <= ng; g++) {
            const char *nm = lmql__rx_group_name(rx, g);
            if (op == MM_GROUPS) {
                if (lmql__list_push(out, group_text(m->str, m->caps, g, dflt))) out = NULL;
            } else if (nm) {
                struct lmql_val *k = lmql__val_cstr(nm), *v = group_text(m->str, m->caps, g, dflt);
                if (!k || !v || lmql__dict_set(out, k, v)) {
                    lmql__val_unref(out);
                    out = NULL;
                }
            }
        }
        return out ? out : oom(err);
    }
    for (int i = 0; i < argc; i++)
        if (names[i]) return lmql__errp(err, "TypeError: Match methods take no keyword arguments");
    if (op == MM_EXPAND) {
        if (argc != 1 || argv[0]->kind != LMQL_V_STR) return lmql__errp(err, "TypeError: Match.expand() takes one string");
        struct lmql__buf b = {0};
        lmql__buf_reserve(&b, 0);
        struct lmql_val *out = NULL;
        if (!expand(&b, argv[0], m->pat, m->str, m->caps, "expand", err))
            if (!(out = lmql__val_str(b.data, b.len))) oom(err);
        lmql__buf_free(&b);
        return out;
    }
    if (op == MM_GROUP && argc > 1) {
        struct lmql_val *t = lmql__val_tuple((size_t)argc);
        for (int i = 0; t && i < argc; i++) {
            int g = group_of(m, argv[i], err);
            if (g < 0) { lmql__val_unref(t); return NULL; }
            if (lmql__list_push(t, group_text(m->str, m->caps, g, &lmql__none))) t = NULL;
        }
        return t ? t : oom(err);
    }
    if (argc > 1 || (op == MM_GETITEM && argc != 1)) return lmql__errp(err, "TypeError: expected at most 1 argument, got %d", argc);
    int g = argc ? group_of(m, argv[0], err) : 0;
    if (g < 0) return NULL;
    if (op == MM_GROUP || op == MM_GETITEM) {
        struct lmql_val *v = group_text(m->str, m->caps, g, &lmql__none);
        return v ? v : oom(err);
    }
    int64_t s = char_pos(m, m->caps[2 * g]), e = char_pos(m, m->caps[2 * g + 1]);
    if (op == MM_START) return lmql__val_int(s);
    if (op == MM_END) return lmql__val_int(e);
    struct lmql_val *t = lmql__val_tuple(2);
    if (lmql__list_push(t, lmql__val_int(s)) || lmql__list_push(t, lmql__val_int(e))) {
        lmql__val_unref(t);
        return oom(err);
    }
    return t;
}

static struct lmql_val *bound(const char *name, lmql__builtin_fn fn, int op, struct lmql_val *self, struct lmql__err *err) {
    struct lmql_val *f = lmql__val_builtin(name, fn, (void *)(uintptr_t)op, self);
    return f ? f : oom(err);
}

struct lmql_val *lmql__re_attr(struct lmql_val *obj, const char *name, struct lmql__err *err) {
    if (is_pat(obj)) {
        const struct re_pat *p = obj->u.obj.ptr;
        for (int op = RE_SEARCH; op <= RE_SPLIT; op++)
            if (!strcmp(name, g_op_names[op])) return bound(g_op_names[op], pat_method, op, obj, err);
        if (!strcmp(name, "pattern")) return lmql__val_ref(p->pattern);
        if (!strcmp(name, "flags")) return lmql__val_int(lmql__rx_flags(p->rx));
        if (!strcmp(name, "groups")) return lmql__val_int(lmql__rx_ngroups(p->rx));
        if (!strcmp(name, "groupindex")) {
            struct lmql_val *d = lmql__val_dict();
            for (int g = 1; d && g <= lmql__rx_ngroups(p->rx); g++) {
                const char *nm = lmql__rx_group_name(p->rx, g);
                if (nm && lmql__dict_set(d, lmql__val_cstr(nm), lmql__val_int(g))) {
                    lmql__val_unref(d);
                    d = NULL;
                }
            }
            return d ? d : oom(err);
        }
        return lmql__errp(err, "AttributeError: 're.Pattern' object has no attribute '%s'", name);
    }
    static const char *const methods[] = {[MM_GROUP] = "group", [MM_GROUPS] = "groups", [MM_GROUPDICT] = "groupdict",
                                          [MM_START] = "start", [MM_END] = "end",       [MM_SPAN] = "span",
                                          [MM_EXPAND] = "expand", [MM_GETITEM] = "__getitem__"};
    for (int op = 0; op <= MM_GETITEM; op++)
        if (!strcmp(name, methods[op])) return bound(methods[op], match_method, op, obj, err);
    const struct re_match *m = obj->u.obj.ptr;
    if (!strcmp(name, "string")) return lmql__val_ref(m->str);
    if (!strcmp(name, "re")) return lmql__val_ref(m->pat);
    if (!strcmp(name, "pos")) return lmql__val_int((int64_t)m->pos);
    if (!strcmp(name, "endpos")) return lmql__val_int((int64_t)m->endpos);
    /* lastindex/lastgroup (the group that closed last) would need the matcher to
    ** record closing order: refused rather than guessed from the spans */
    if (!strcmp(name, "lastindex") || !strcmp(name, "lastgroup"))
        return lmql__errp(err, "re.Match.%s is not supported", name);
    return lmql__errp(err, "AttributeError: 're.Match' object has no attribute '%s'", name);
}

struct lmql_val *lmql__re_getitem(struct lmql_val *obj, struct lmql_val *key, struct lmql__err *err) {
    struct lmql_val *argv[2] = {obj, key};
    const char *names[2] = {NULL, NULL};
    return match_method((void *)(uintptr_t)MM_GETITEM, 2, argv, names, err);
}
