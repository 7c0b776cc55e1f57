/*
** JSON Schema to a grammar of the JSON texts valid under it (see
** jsonschema.h). This file reads the schema into the normal form of
** jsonschema_int.h: keywords, $ref, allOf/anyOf/oneOf/not/if, sibling
** keywords as intersections, and the validation of enum values against
** what they are intersected with. jsonschema_gen.c turns the normal form
** into rules and jsonschema_rx.c writes the regexes.
**
** What may be ignored: keywords that are annotations (title, description,
** default, examples, $comment, readOnly, ...) and names that are not
** JSON Schema keywords at all (validators ignore them too). A keyword that
** asserts something this compiler cannot enforce exactly is an error
** naming it and its place (a JSON pointer).
*/
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonschema_int.h"
#include "regex.h"

/* ------------------------------------------------------------ support -- */

void *js_fail(struct js_ctx *c, const char *ptr, const char *fmt, ...) {
    if (c->failed) return NULL;
    c->failed = true;
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    lmql__err_set(c->e, LMQL_ERR_QUERY, NULL, "JSON schema at %s: %s", ptr && *ptr ? ptr : "#", msg);
    return NULL;
}

void *js_oom(struct js_ctx *c) {
    if (c->failed) return NULL;
    c->failed = true;
    lmql__err_set(c->e, LMQL_ERR_NOMEM, NULL, "out of memory");
    return NULL;
}

bool js_step(struct js_ctx *c) {
    if (c->failed) return false;
    if (++c->work > JS_MAX_WORK) {
        js_fail(c, "#", "the schema is too complex (work limit of %ld steps)", JS_MAX_WORK);
        return false;
    }
    return true;
}

void *js_alloc(struct js_ctx *c, size_t n) {
    if (c->failed) return NULL;
    if (c->arena.total > JS_MAX_ARENA) return js_fail(c, "#", "the schema is too large (over %zu MiB of compiler memory)", JS_MAX_ARENA >> 20);
    void *p = lmql__arena_alloc(&c->arena, n);
    return p ? p : js_oom(c);
}

char *js_strdup(struct js_ctx *c, const char *s, size_t n) {
    char *p = js_alloc(c, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *js_printf(struct js_ctx *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return js_oom(c);
    char *p = js_alloc(c, (size_t)n + 1);
    if (!p) return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

/* ptr + "/" + key, with ~ and / escaped as JSON pointers do. */
static const char *ptr_join(struct js_ctx *c, const char *ptr, const char *key, size_t n) {
    struct lmql__buf b = {0};
    int rc = lmql__buf_adds(&b, ptr) || lmql__buf_add(&b, "/", 1);
    for (size_t i = 0; !rc && i < n && i < 200; i++)
        rc = key[i] == '~' ? lmql__buf_adds(&b, "~0") : key[i] == '/' ? lmql__buf_adds(&b, "~1") : lmql__buf_add(&b, key + i, 1);
    if (!rc && n > 200) rc = lmql__buf_adds(&b, "...");
    const char *s = rc ? js_oom(c) : js_strdup(c, b.data, b.len);
    lmql__buf_free(&b);
    return s;
}

static const char *ptr_idx(struct js_ctx *c, const char *ptr, const char *key, size_t i) {
    return js_printf(c, "%s/%s/%zu", ptr, key, i);
}

static const struct lmql_val *jget(const struct lmql_val *d, const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < d->u.dict.len; i++) {
        const struct lmql_val *k = d->u.dict.keys[i];
        if (k->kind == LMQL_V_STR && k->u.str.len == n && !memcmp(k->u.str.s, key, n)) return d->u.dict.vals[i];
    }
    return NULL;
}

bool js_is_num(const struct lmql_val *v) { return v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT; }

bool js_str_eq(const struct lmql_val *a, const struct lmql_val *b) {
    return a->u.str.len == b->u.str.len && !memcmp(a->u.str.s, b->u.str.s, a->u.str.len);
}

struct js_node *js_node_new(struct js_ctx *c, enum js_kind kind, const char *ptr) {
    struct js_node *n = js_alloc(c, sizeof *n);
    if (!n) return NULL;
    n->kind = kind;
    n->ptr = ptr;
    n->types = JT_ALL;
    n->max_len = n->max_items = n->max_props = -1;
    n->g_nt = -1;
    return n;
}

/* ------------------------------------------------------------- $ref -- */

static int32_t def_for(struct js_ctx *c, const struct lmql_val *target, const char *ptr) {
    for (int32_t i = 0; i < c->n_defs; i++)
        if (c->defs[i].target == target) return i;
    if (c->n_defs == c->cap_defs) {
        int32_t nc = c->cap_defs ? c->cap_defs * 2 : 16;
        struct js_def *q = lmql__arena_grow(&c->arena, c->defs, (size_t)c->n_defs, (size_t)nc, sizeof *q);
        if (!q) return (void)js_oom(c), -1;
        c->defs = q;
        c->cap_defs = nc;
    }
    c->defs[c->n_defs] = (struct js_def){target, ptr, NULL, 0, -1};
    return c->n_defs++;
}

static struct js_node *build(struct js_ctx *c, const struct lmql_val *s, const char *ptr);

struct js_node *js_def_node(struct js_ctx *c, int32_t def, const char *ptr) {
    if (c->failed) return NULL;
    struct js_def *d = &c->defs[def];
    if (d->state == 2) return d->node;
    if (d->state == 1)
        return js_fail(c, ptr, "$ref to %s: a recursive reference cannot be combined with sibling keywords or allOf",
                       d->ptr);
    d->state = 1;
    const struct lmql_val *t = d->target;
    const char *dptr = d->ptr;
    struct js_node *n = build(c, t, dptr);
    d = &c->defs[def];   /* build may have grown the table */
    if (!n) return NULL;
    d->node = n;
    d->state = 2;
    return n;
}

static int hexd(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* The value a local $ref points to ("#", "#/definitions/x", a URI equal
** to the root's $id followed by such a fragment). */
static const struct lmql_val *ref_target(struct js_ctx *c, const struct lmql_val *ref, const char *ptr,
                                         const char **tptr) {
    if (ref->kind != LMQL_V_STR) return js_fail(c, ptr, "$ref must be a string");
    const char *s = ref->u.str.s;
    size_t n = ref->u.str.len;
    const char *hash = memchr(s, '#', n);
    if (hash != s) {
        const struct lmql_val *id = c->root->kind == LMQL_V_DICT ? jget(c->root, "$id") : NULL;
        if (!id && c->root->kind == LMQL_V_DICT) id = jget(c->root, "id");
        size_t base = hash ? (size_t)(hash - s) : n;
        size_t idn = id && id->kind == LMQL_V_STR ? id->u.str.len : 0;
        if (idn && id->u.str.s[idn - 1] == '#') idn--;
        if (!id || id->kind != LMQL_V_STR || idn != base || memcmp(id->u.str.s, s, base))
            return js_fail(c, ptr, "$ref \"%.*s\": only references inside this schema (\"#...\") are supported",
                           (int)(n > 200 ? 200 : n), s);
        if (!hash) hash = s + n;
    }
    /* the fragment, percent-decoded */
    struct lmql__buf f = {0};
    for (const char *p = hash + (hash < s + n), *e = s + n; p < e; p++) {
        if (*p == '%' && e - p >= 3 && hexd(p[1]) >= 0 && hexd(p[2]) >= 0) {
            char ch = (char)(hexd(p[1]) * 16 + hexd(p[2]));
            if (lmql__buf_add(&f, &ch, 1)) break;
            p += 2;
        } else if (lmql__buf_add(&f, p, 1)) {
            break;
        }
    }
    if (lmql__buf_add(&f, "", 1)) {
        lmql__buf_free(&f);
        return js_oom(c);
    }
    f.len--;
    const struct lmql_val *t = c->root;
    const char *fp = f.data;
    if (f.len && fp[0] != '/') {
        lmql__buf_free(&f);
        return js_fail(c, ptr, "$ref \"%.*s\": anchors (\"#name\") are not supported", (int)(n > 200 ? 200 : n), s);
    }
    for (size_t i = 0; t && i < f.len;) {
        i++;   /* the '/' */
        struct lmql__buf tok = {0};
        int rc = 0;
        while (!rc && i < f.len && fp[i] != '/') {
            if (fp[i] == '~' && i + 1 < f.len && (fp[i + 1] == '0' || fp[i + 1] == '1')) {
                rc = lmql__buf_add(&tok, fp[i + 1] == '0' ? "~" : "/", 1);
                i += 2;
            } else {
                rc = lmql__buf_add(&tok, fp + i++, 1);
            }
        }
        if (rc || lmql__buf_add(&tok, "", 1)) {
            lmql__buf_free(&tok);
            lmql__buf_free(&f);
            return js_oom(c);
        }
        tok.len--;
        if (t->kind == LMQL_V_DICT) {
            const struct lmql_val *next = NULL;
            for (size_t j = 0; j < t->u.dict.len && !next; j++) {
                const struct lmql_val *k = t->u.dict.keys[j];
                if (k->kind == LMQL_V_STR && k->u.str.len == tok.len && !memcmp(k->u.str.s, tok.data, tok.len)) next = t->u.dict.vals[j];
            }
            t = next;
        } else if (t->kind == LMQL_V_LIST) {
            char *end;
            unsigned long long k = strtoull(tok.data, &end, 10);
            t = tok.len && *end == 0 && k < t->u.list.len ? t->u.list.items[k] : NULL;
        } else {
            t = NULL;
        }
        lmql__buf_free(&tok);
    }
    *tptr = t ? js_printf(c, "#%s", f.data) : NULL;
    lmql__buf_free(&f);
    if (!t) return js_fail(c, ptr, "$ref \"%.*s\" does not point to anything in the schema", (int)(n > 200 ? 200 : n), s);
    return *tptr ? t : NULL;
}

static struct js_node *ref_node(struct js_ctx *c, const struct lmql_val *ref, const char *ptr) {
    const char *dptr = NULL;
    const struct lmql_val *t = ref_target(c, ref, ptr, &dptr);
    if (!t) return NULL;
    int32_t d = def_for(c, t, dptr);
    if (d < 0) return NULL;
    struct js_node *r = js_node_new(c, JS_REF, ptr);
    if (r) r->def = d;
    return r;
}

/* ------------------------------------------------------------ keywords -- */

/* Assertions this compiler does not enforce: an error wherever they appear. */
static const char *const REFUSED[] = {
    "contains", "minContains", "maxContains", "unevaluatedItems", "unevaluatedProperties", "$dynamicRef",
    "$recursiveRef", "disallow", "extends", "divisibleBy",
};

/* Keywords that only some drafts' validators know: where the schema's
** draft ($schema; 2020-12 without one, as validators do) does not, the
** keyword is no assertion and is ignored, as its validator ignores it.
** That matters beyond strictness: under not and oneOf an assertion read
** where the validator reads none would admit what it refuses. */
static const struct {
    const char *kw;
    int from, to;
} KW_DRAFTS[] = {
    {"const", 6, 9999}, {"contains", 6, 9999}, {"propertyNames", 6, 9999}, {"if", 7, 9999},
    {"dependencies", 4, 7}, {"additionalItems", 4, 2019}, {"dependentRequired", 2019, 9999},
    {"dependentSchemas", 2019, 9999}, {"minContains", 2019, 9999}, {"maxContains", 2019, 9999},
    {"unevaluatedItems", 2019, 9999}, {"unevaluatedProperties", 2019, 9999}, {"$recursiveRef", 2019, 2019},
    {"$dynamicRef", 2020, 9999}, {"prefixItems", 2020, 9999}, {"disallow", 3, 3}, {"extends", 3, 3},
    {"divisibleBy", 3, 3},
};

static bool kw_in_draft(const struct js_ctx *c, const char *k) {
    for (size_t i = 0; i < sizeof KW_DRAFTS / sizeof KW_DRAFTS[0]; i++)
        if (!strcmp(k, KW_DRAFTS[i].kw)) return c->draft >= KW_DRAFTS[i].from && c->draft <= KW_DRAFTS[i].to;
    return true;
}

/* Whether minimum/maximum is exclusive, and the bound exclusiveMinimum/
** exclusiveMaximum sets itself (NULL: none), as the draft reads them:
** draft 4 a boolean (any true value) beside minimum, later drafts a
** number of their own. -1 on error. */
static int read_exclusive(struct js_ctx *c, const struct lmql_val *s, bool lower, const char *ptr, bool *min_excl,
                          const struct lmql_val **own) {
    const struct lmql_val *ex = jget(s, lower ? "exclusiveMinimum" : "exclusiveMaximum");
    *min_excl = false;
    *own = NULL;
    if (!ex) return 0;
    if (c->draft == 4) {
        *min_excl = (ex->kind == LMQL_V_BOOL && ex->u.b) || (ex->kind == LMQL_V_INT && ex->u.i) ||
                    (ex->kind == LMQL_V_FLOAT && ex->u.f != 0);
        return 0;
    }
    if (ex->kind == LMQL_V_BOOL)
        return js_fail(c, ptr, "%s must be a number (a boolean is draft 4: say so with $schema)",
                       lower ? "exclusiveMinimum" : "exclusiveMaximum"),
               -1;
    if (!js_is_num(ex) || (ex->kind == LMQL_V_FLOAT && isnan(ex->u.f)))
        return js_fail(c, ptr, "%s must be a number", lower ? "exclusiveMinimum" : "exclusiveMaximum"), -1;
    *own = ex;
    return 0;
}

static bool get_count(const struct lmql_val *v, int64_t *out) {
    if (v->kind == LMQL_V_INT && v->u.i >= 0) { *out = v->u.i; return true; }
    if (v->kind == LMQL_V_FLOAT && v->u.f >= 0 && v->u.f == floor(v->u.f) && v->u.f < 9e18) { *out = (int64_t)v->u.f; return true; }
    return false;
}

static unsigned type_bit(const struct lmql_val *v) {
    if (v->kind != LMQL_V_STR) return 0;
    static const struct { const char *n; unsigned t; } T[] = {
        {"null", JT_NULL}, {"boolean", JT_BOOL}, {"integer", JT_INT}, {"number", JT_NUM},
        {"string", JT_STR}, {"array", JT_ARR}, {"object", JT_OBJ}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(v->u.str.s, T[i].n) && strlen(T[i].n) == v->u.str.len) return T[i].t;
    return 0;
}

static struct js_node *build_list(struct js_ctx *c, const struct lmql_val *v, const char *ptr, const char *kw,
                                  struct js_node ***out, int32_t *n) {
    if (v->kind != LMQL_V_LIST) return js_fail(c, ptr, "%s must be an array of schemas", kw);
    *n = (int32_t)v->u.list.len;
    *out = js_alloc(c, (v->u.list.len + 1) * sizeof **out);
    if (!*out) return NULL;
    for (size_t i = 0; i < v->u.list.len; i++) {
        const char *p = ptr_idx(c, ptr, kw, i);
        if (!p || !((*out)[i] = build(c, v->u.list.items[i], p))) return NULL;
    }
    return (struct js_node *)*out;
}

static struct js_node *union_of(struct js_ctx *c, struct js_node **alts, int32_t n, const char *ptr) {
    struct js_node *u = js_node_new(c, JS_UNION, ptr);
    if (!u || !(u->alts = js_alloc(c, ((size_t)n + 1) * sizeof *u->alts))) return NULL;
    for (int32_t i = 0; i < n; i++) {
        if (alts[i]->kind == JS_NONE) continue;
        if (alts[i]->kind == JS_ANY) return alts[i];
        if (alts[i]->kind == JS_UNION) {
            struct js_node **q = js_alloc(c, ((size_t)u->n_alts + (size_t)alts[i]->n_alts + (size_t)(n - i)) * sizeof *q);
            if (!q) return NULL;
            memcpy(q, u->alts, (size_t)u->n_alts * sizeof *q);
            memcpy(q + u->n_alts, alts[i]->alts, (size_t)alts[i]->n_alts * sizeof *q);
            u->alts = q;
            u->n_alts += alts[i]->n_alts;
        } else {
            u->alts[u->n_alts++] = alts[i];
        }
        if (u->n_alts > JS_MAX_UNION) return js_fail(c, ptr, "more than %d alternatives", JS_MAX_UNION);
    }
    return u->n_alts == 0 ? js_none(c, ptr) : u->n_alts == 1 ? u->alts[0] : u;
}

/* Objects with (present) or without (!present) property name; other
** types as given. */
static struct js_node *prop_presence(struct js_ctx *c, const struct lmql_val *name, bool present, unsigned types,
                                     const char *ptr) {
    struct js_node *n = js_node_new(c, JS_TYPED, ptr);
    if (!n) return NULL;
    n->types = types;
    if (present) {
        if (!(n->req = js_alloc(c, sizeof *n->req))) return NULL;
        n->req[0] = name;
        n->n_req = 1;
    } else {
        if (!(n->props = js_alloc(c, sizeof *n->props))) return NULL;
        struct js_node *no = js_none(c, ptr);
        if (!no) return NULL;
        n->props[0] = (struct js_prop){name, no};
        n->n_props = 1;
    }
    return n;
}

/* Whether no value can be valid under both a and b (false: not proven). */
static int cmp_num_p(const void *a, const void *b) {
    return js_cmp_num(*(const struct lmql_val *const *)a, *(const struct lmql_val *const *)b);
}

/* not enum: every value but those. Per type: nulls and booleans left out,
** numbers as the open intervals between the excluded ones, strings as the
** strings not in the list (written as json.dumps writes them). */
static struct js_node *negate_enum(struct js_ctx *c, const struct lmql_val *const *vals, size_t nv, const char *ptr) {
    if (nv > JS_MAX_ENUM) return js_fail(c, ptr, "enum with more than %d values", JS_MAX_ENUM);
    const struct lmql_val **nums = js_alloc(c, (nv + 1) * sizeof *nums), **strs = js_alloc(c, (nv + 1) * sizeof *strs);
    struct js_node **parts = js_alloc(c, (nv + 4) * sizeof *parts);
    if (!nums || !strs || !parts) return NULL;
    size_t nn = 0, ns = 0;
    int32_t np = 0;
    bool t = false, f = false, null = false;
    for (size_t i = 0; i < nv; i++) {
        const struct lmql_val *v = vals[i];
        switch (v->kind) {
        case LMQL_V_NONE: null = true; break;
        case LMQL_V_BOOL: if (v->u.b) t = true; else f = true; break;
        case LMQL_V_INT: case LMQL_V_FLOAT: nums[nn++] = v; break;
        case LMQL_V_STR: strs[ns++] = v; break;
        default: return js_fail(c, ptr, "not with enum/const of arrays or objects cannot be enforced");
        }
    }
    unsigned rest = JT_ALL;
    if (null) rest &= ~(unsigned)JT_NULL;
    if (t || f) rest &= ~(unsigned)JT_BOOL;
    if (nn) rest &= ~(unsigned)JT_NUM;
    if (ns) rest &= ~(unsigned)JT_STR;
    struct js_node *r = js_node_new(c, JS_TYPED, ptr);
    if (!r) return NULL;
    r->types = rest;
    parts[np++] = r;
    if (t != f) {
        struct js_node *e = js_node_new(c, JS_ENUM, ptr);
        if (!e || !(e->vals = js_alloc(c, sizeof *e->vals))) return NULL;
        e->vals[0] = t ? &lmql__false : &lmql__true;
        e->n_vals = 1;
        parts[np++] = e;
    }
    if (nn) {
        qsort(nums, nn, sizeof *nums, cmp_num_p);
        for (size_t i = 0; i <= nn; i++) {
            if (i > 0 && i < nn && js_cmp_num(nums[i - 1], nums[i]) == 0) continue;
            struct js_node *x = js_node_new(c, JS_TYPED, ptr);
            if (!x) return NULL;
            x->types = JT_NUM;
            if (i > 0) x->lo = (struct js_bound){nums[i - 1], true};
            if (i < nn) x->hi = (struct js_bound){nums[i], true};
            parts[np++] = x;
        }
    }
    if (ns) {
        struct js_node *x = js_node_new(c, JS_TYPED, ptr);
        if (!x) return NULL;
        x->types = JT_STR;
        x->not_str = strs;
        x->n_not_str = (int32_t)ns;
        parts[np++] = x;
    }
    return union_of(c, parts, np, ptr);
}

static struct js_node *negate(struct js_ctx *c, const struct lmql_val *s, const char *ptr);

static bool is_annotation(const char *k);

/* not: the complement of a schema, for the keywords whose complement is a
** schema again: the union of what each assertion's failure means. */
static struct js_node *negate(struct js_ctx *c, const struct lmql_val *s, const char *ptr) {
    if (!js_step(c)) return NULL;
    if (s->kind == LMQL_V_BOOL) return js_node_new(c, s->u.b ? JS_NONE : JS_ANY, ptr);
    if (s->kind != LMQL_V_DICT) return js_fail(c, ptr, "not: a schema must be an object or a boolean");
    if (++c->depth > JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, ptr, "the schema is nested too deep");
    }
    const struct lmql_val *ref = jget(s, "$ref");
    if (ref && c->draft <= 7) {
        /* a $ref alone (its siblings are not read): not of its target */
        const char *tp = NULL;
        const struct lmql_val *t = ref_target(c, ref, ptr_join(c, ptr, "$ref", 4), &tp);
        struct js_node *r = t ? negate(c, t, tp) : NULL;
        c->depth--;
        return r;
    }
    struct js_node **parts = js_alloc(c, (s->u.dict.len * 64 + 1) * sizeof *parts);
    int32_t np = 0;
    struct js_node *res = NULL;
    if (!parts) goto out;
    for (size_t i = 0; i < s->u.dict.len; i++) {
        const struct lmql_val *kv = s->u.dict.keys[i], *v = s->u.dict.vals[i];
        if (kv->kind != LMQL_V_STR) continue;
        const char *k = kv->u.str.s;
        if (!kw_in_draft(c, k)) continue;   /* the validator reads no assertion there */
        const char *kp = ptr_join(c, ptr, k, kv->u.str.len);
        if (!kp) goto out;
        struct js_node *n = NULL;
        if (!strcmp(k, "$ref")) {
            const char *tp = NULL;
            const struct lmql_val *t = ref_target(c, v, kp, &tp);
            if (!t || !(n = negate(c, t, tp))) goto out;
        } else if (!strcmp(k, "type")) {
            unsigned m = 0;
            if (v->kind == LMQL_V_LIST) {
                for (size_t j = 0; j < v->u.list.len; j++) m |= type_bit(v->u.list.items[j]);
            } else {
                m = type_bit(v);
            }
            if (!m) { js_fail(c, kp, "type: unknown type name"); goto out; }
            /* not integer would be the numbers that are not integers (5.0 is
            ** one from draft 6 on): no such schema here */
            if ((m & JT_INT) && !(m & JT_FRAC)) {
                js_fail(c, kp, "not with type integer (the numbers that are no integers) cannot be enforced");
                goto out;
            }
            if (!(n = js_node_new(c, JS_TYPED, kp))) goto out;
            n->types = JT_ALL & ~m;
        } else if (!strcmp(k, "required")) {
            if (v->kind != LMQL_V_LIST) { js_fail(c, kp, "required must be an array of strings"); goto out; }
            if (v->u.list.len > 64) { js_fail(c, kp, "not: required lists more than 64 names"); goto out; }
            for (size_t j = 0; j < v->u.list.len; j++) {
                if (v->u.list.items[j]->kind != LMQL_V_STR) { js_fail(c, kp, "required must be an array of strings"); goto out; }
                if (!(parts[np++] = prop_presence(c, v->u.list.items[j], false, JT_OBJ, kp))) goto out;
            }
            continue;
        } else if (!strcmp(k, "properties") && v->kind == LMQL_V_DICT) {
            if (v->u.dict.len > 64) { js_fail(c, kp, "not: properties lists more than 64 names"); goto out; }
            for (size_t j = 0; j < v->u.dict.len; j++) {
                const struct lmql_val *name = v->u.dict.keys[j];
                const char *pp = ptr_join(c, kp, name->u.str.s, name->u.str.len);
                struct js_node *x = pp ? negate(c, v->u.dict.vals[j], pp) : NULL;
                struct js_node *o = x ? prop_presence(c, name, true, JT_OBJ, pp) : NULL;
                if (!o || !(o->props = js_alloc(c, sizeof *o->props))) goto out;
                o->props[0] = (struct js_prop){name, x};
                o->n_props = 1;
                parts[np++] = o;
            }
            continue;
        } else if (!strcmp(k, "anyOf") || !strcmp(k, "allOf") || !strcmp(k, "oneOf")) {
            if (v->kind != LMQL_V_LIST || v->u.list.len == 0) { js_fail(c, kp, "%s must be a non-empty array", k); goto out; }
            if (!strcmp(k, "oneOf")) {
                /* not oneOf = none or several match: only when the branches
                ** are disjoint is it not anyOf */
                struct js_node **b = NULL;
                int32_t nb = 0;
                if (!build_list(c, v, ptr, k, &b, &nb)) goto out;
                for (int32_t x = 0; x < nb; x++)
                    for (int32_t y = x + 1; y < nb; y++)
                        if (!js_disjoint(c, b[x], b[y])) {
                            js_fail(c, kp, "not with oneOf whose branches may overlap cannot be enforced");
                            goto out;
                        }
            }
            struct js_node *acc = NULL;
            struct js_node **neg = js_alloc(c, v->u.list.len * sizeof *neg);
            if (!neg) goto out;
            for (size_t j = 0; j < v->u.list.len; j++) {
                const char *ip = ptr_idx(c, ptr, k, j);
                if (!ip || !(neg[j] = negate(c, v->u.list.items[j], ip))) goto out;
            }
            if (!strcmp(k, "allOf")) {
                if (!(n = union_of(c, neg, (int32_t)v->u.list.len, kp))) goto out;
            } else {
                acc = neg[0];
                for (size_t j = 1; acc && j < v->u.list.len; j++) acc = js_inter(c, acc, neg[j]);
                if (!(n = acc)) goto out;
            }
        } else if (!strcmp(k, "not")) {
            if (!(n = build(c, v, kp))) goto out;
        } else if ((!strcmp(k, "minLength") || !strcmp(k, "maxLength") || !strcmp(k, "minItems") ||
                    !strcmp(k, "maxItems") || !strcmp(k, "minProperties") || !strcmp(k, "maxProperties"))) {
            int64_t cnt;
            if (!get_count(v, &cnt)) { js_fail(c, kp, "%s must be a non-negative integer", k); goto out; }
            bool is_min = k[1] == 'i';
            if (is_min && cnt == 0) continue;   /* never fails */
            if (!(n = js_node_new(c, JS_TYPED, kp))) goto out;
            int64_t *mn = k[3] == 'L' ? &n->min_len : k[3] == 'I' ? &n->min_items : &n->min_props;
            int64_t *mx = k[3] == 'L' ? &n->max_len : k[3] == 'I' ? &n->max_items : &n->max_props;
            n->types = k[3] == 'L' ? JT_STR : k[3] == 'I' ? JT_ARR : JT_OBJ;
            if (is_min) *mx = cnt - 1;
            else *mn = cnt + 1;
        } else if (!strcmp(k, "minimum") || !strcmp(k, "maximum") || !strcmp(k, "exclusiveMinimum") ||
                   !strcmp(k, "exclusiveMaximum")) {
            bool lower = !strcmp(k, "minimum") || !strcmp(k, "exclusiveMinimum");
            bool min_excl;
            const struct lmql_val *own;
            if (read_exclusive(c, s, lower, kp, &min_excl, &own)) goto out;
            if (k[0] == 'e' && !own) continue;   /* draft 4: read with minimum/maximum */
            if (!js_is_num(v)) { js_fail(c, kp, "%s must be a number", k); goto out; }
            bool excl = k[0] == 'e' || min_excl;
            if (!(n = js_node_new(c, JS_TYPED, kp))) goto out;
            n->types = JT_NUM;
            /* fails: below the minimum (or equal to an exclusive one) */
            if (lower) n->hi = (struct js_bound){v, !excl};
            else n->lo = (struct js_bound){v, !excl};
        } else if (!strcmp(k, "enum") || !strcmp(k, "const")) {
            if (!strcmp(k, "enum") && v->kind != LMQL_V_LIST) { js_fail(c, kp, "enum must be an array"); goto out; }
            if (!(n = negate_enum(c, k[0] == 'e' ? (const struct lmql_val *const *)v->u.list.items : &v,
                                  k[0] == 'e' ? v->u.list.len : 1, kp)))
                goto out;
        } else if (is_annotation(k) || !strcmp(k, "$defs") || !strcmp(k, "definitions")) {
            continue;
        } else {
            /* an unknown name is no assertion: not of it fails nothing */
            bool known = false;
            static const char *const KNOWN[] = {"pattern", "format", "multipleOf", "items", "prefixItems", "additionalItems",
                                                "uniqueItems", "additionalProperties", "patternProperties",
                                                "propertyNames", "dependencies", "dependentRequired",
                                                "dependentSchemas", "if", "then", "else", "properties"};
            for (size_t q = 0; q < sizeof KNOWN / sizeof KNOWN[0]; q++) known |= !strcmp(k, KNOWN[q]);
            for (size_t q = 0; q < sizeof REFUSED / sizeof REFUSED[0]; q++) known |= !strcmp(k, REFUSED[q]);
            if (known) {
                js_fail(c, kp, "not with %s cannot be enforced", k);
                goto out;
            }
            continue;
        }
        parts[np++] = n;
    }
    res = union_of(c, parts, np, ptr);
out:
    c->depth--;
    return res;
}

/* Keywords that assert nothing (annotations, and containers read only
** through $ref). Names outside JSON Schema are ignored as well, as every
** validator does. */
static bool is_annotation(const char *k) {
    static const char *const A[] = {"$schema", "$id", "id", "$comment", "title", "description", "default", "examples",
                                    "example", "deprecated", "readOnly", "writeOnly", "$anchor", "$dynamicAnchor",
                                    "$recursiveAnchor", "$vocabulary", "contentEncoding", "contentMediaType",
                                    "contentSchema", "nullable"};
    for (size_t i = 0; i < sizeof A / sizeof A[0]; i++)
        if (!strcmp(k, A[i])) return true;
    return false;
}

/* dependencies / dependentRequired / dependentSchemas: for each name, the
** objects without it, or with it and what it requires. */
static int add_dependencies(struct js_ctx *c, const struct lmql_val *v, const char *kp, const char *kw,
                            struct js_node ***conj, int32_t *nc, int32_t *cap) {
    if (v->kind != LMQL_V_DICT) return js_fail(c, kp, "%s must be an object", kw), -1;
    for (size_t j = 0; j < v->u.dict.len; j++) {
        const struct lmql_val *name = v->u.dict.keys[j], *dep = v->u.dict.vals[j];
        const char *dp = ptr_join(c, kp, name->u.str.s, name->u.str.len);
        if (!dp) return -1;
        struct js_node *then;
        if (dep->kind == LMQL_V_LIST && strcmp(kw, "dependentSchemas")) {
            if (!(then = js_node_new(c, JS_TYPED, dp)) || !(then->req = js_alloc(c, (dep->u.list.len + 1) * sizeof *then->req))) return -1;
            for (size_t q = 0; q < dep->u.list.len; q++) {
                if (dep->u.list.items[q]->kind != LMQL_V_STR) return js_fail(c, dp, "%s: names must be strings", kw), -1;
                then->req[then->n_req++] = dep->u.list.items[q];
            }
        } else if (strcmp(kw, "dependentRequired")) {
            if (!(then = build(c, dep, dp))) return -1;
        } else {
            return js_fail(c, dp, "dependentRequired must map names to arrays"), -1;
        }
        struct js_node *without = prop_presence(c, name, false, JT_ALL, dp);
        struct js_node *with = prop_presence(c, name, true, JT_OBJ, dp);
        struct js_node *alts[2] = {without, with ? js_inter(c, with, then) : NULL};
        if (!alts[0] || !alts[1]) return -1;
        struct js_node *u = union_of(c, alts, 2, dp);
        if (!u) return -1;
        if (*nc == *cap) {
            int32_t ncap = *cap * 2;
            struct js_node **q = lmql__arena_grow(&c->arena, *conj, (size_t)*nc, (size_t)ncap, sizeof *q);
            if (!q) return (void)js_oom(c), -1;
            *conj = q;
            *cap = ncap;
        }
        (*conj)[(*nc)++] = u;
    }
    return 0;
}

/* Whether n constrains no value of type class tc (under the other types
** it may say anything). */
static bool unconstrained(const struct js_node *n, unsigned tc) {
    if (n->kind == JS_ANY) return true;
    if (n->kind != JS_TYPED || (n->types & tc) != tc) return false;
    switch (tc) {
    case JT_NUM: return !n->lo.v && !n->hi.v && !n->mult;
    case JT_STR: return !n->min_len && n->max_len < 0 && !n->n_pat && !n->format && !n->n_not_str;
    case JT_ARR:
        return !n->n_prefix && (!n->items || n->items->kind == JS_ANY) && !n->min_items && n->max_items < 0 && !n->unique;
    case JT_OBJ:
        return !n->n_props && !n->n_req && (!n->addl || n->addl->kind == JS_ANY) && !n->n_pprops &&
               (!n->names || n->names->kind == JS_ANY) && !n->min_props && n->max_props < 0;
    default: return true;
    }
}

static struct js_node *typed_only(struct js_ctx *c, unsigned types, const char *ptr) {
    struct js_node *n = js_node_new(c, JS_TYPED, ptr);
    if (n) n->types = types;
    return n;
}

/*
** oneOf br[0..n) (raw: the keyword's array), next to the schema's own
** keywords t: the union of the branches when no value can match two of
** them. Proven, in turn: (1) pairwise disjoint; (2) per type (null,
** boolean, number, string, array, object): where two branches say nothing
** about a type every value of it matches both, so the type goes; the
** rest pairwise disjoint; (3) exactly: branch i and not each other branch,
** for the branches whose complement is a schema. Else an error.
*/
static struct js_node *oneof_exact(struct js_ctx *c, struct js_node *t, struct js_node **br, int32_t n,
                                   const struct lmql_val *raw, const char *ptr) {
    struct js_node **b = js_alloc(c, ((size_t)n + 1) * sizeof *b), **r = js_alloc(c, ((size_t)n + 1) * sizeof *r);
    if (!b || !r) return NULL;
    for (int32_t x = 0; x < n; x++)
        if (!(b[x] = js_inter(c, t, br[x]))) return NULL;
    int32_t fx = -1, fy = -1;
    for (int32_t x = 0; x < n && fx < 0; x++)
        for (int32_t y = x + 1; y < n && fx < 0; y++)
            if (!js_disjoint(c, b[x], b[y])) {
                fx = x;
                fy = y;
            }
    if (c->failed) return NULL;
    if (fx < 0) return union_of(c, br, n, ptr);
    static const unsigned CLASSES[] = {JT_NULL, JT_BOOL, JT_NUM, JT_STR, JT_ARR, JT_OBJ};
    unsigned keep = 0;
    bool ok = true;
    for (size_t k = 0; ok && k < sizeof CLASSES / sizeof CLASSES[0]; k++) {
        struct js_node *only = typed_only(c, CLASSES[k], ptr);
        int n_all = 0;
        for (int32_t x = 0; x < n; x++) {
            if (!only || !(r[x] = js_inter(c, b[x], only))) return NULL;
            n_all += r[x]->kind != JS_NONE && unconstrained(r[x], CLASSES[k]);
        }
        if (n_all >= 2) continue;   /* every value of the type matches two branches */
        for (int32_t x = 0; ok && x < n; x++)
            for (int32_t y = x + 1; ok && y < n; y++) ok = js_disjoint(c, r[x], r[y]);
        keep |= CLASSES[k];
    }
    if (c->failed) return NULL;
    if (ok) {
        struct js_node *u = union_of(c, br, n, ptr), *only = u ? typed_only(c, keep, ptr) : NULL;
        return only ? js_inter(c, u, only) : NULL;
    }
    if (n <= 16) {
        /* a failure here only means this way does not work */
        struct lmql__err saved = c->e ? *c->e : (struct lmql__err){0};
        struct js_node **parts = js_alloc(c, (size_t)n * sizeof *parts);
        for (int32_t x = 0; parts && x < n && !c->failed; x++) {
            struct js_node *p = br[x];
            for (int32_t y = 0; p && y < n; y++) {
                if (y == x) continue;
                struct js_node *ny = negate(c, raw->u.list.items[y], js_printf(c, "%s/%d", ptr, (int)y));
                p = ny ? js_inter(c, p, ny) : NULL;
            }
            parts[x] = p;
        }
        if (parts && !c->failed) return union_of(c, parts, n, ptr);
        if (!c->e || c->e->status != LMQL_ERR_QUERY || c->work > JS_MAX_WORK) return NULL;
        c->failed = false;
        *c->e = saved;
    }
    return js_fail(c, ptr,
                   "oneOf: branches %d and %d may both match one value (oneOf is enforced only when its branches are "
                   "provably disjoint, or their complements are schemas)",
                   (int)fx, (int)fy);
}

static struct js_node *build_dict(struct js_ctx *c, const struct lmql_val *s, const char *ptr) {
    /* up to draft 7 a $ref stands alone: its siblings are not read */
    const struct lmql_val *ref = jget(s, "$ref");
    if (ref && c->draft <= 7) return ref_node(c, ref, ptr_join(c, ptr, "$ref", 4));
    struct js_node *t = js_node_new(c, JS_TYPED, ptr);
    int32_t nc = 0, cap = 8, t_pos = -1;
    bool t_props = false;   /* t placed at its "properties" */
    struct js_node **oneof_b = NULL;
    int32_t oneof_n = 0;
    struct js_node *oneof_node = NULL;
    const char *oneof_ptr = NULL;
    const struct lmql_val *oneof_raw = NULL;
    struct js_node **conj = js_alloc(c, (size_t)cap * sizeof *conj);
    if (!t || !conj) return NULL;
    for (size_t i = 0; i < s->u.dict.len; i++) {
        const struct lmql_val *kv = s->u.dict.keys[i], *v = s->u.dict.vals[i];
        if (kv->kind != LMQL_V_STR) continue;
        const char *k = kv->u.str.s;
        if (strlen(k) != kv->u.str.len || is_annotation(k) || !strcmp(k, "$defs") || !strcmp(k, "definitions") ||
            !strcmp(k, "then") || !strcmp(k, "else"))
            continue;
        const char *kp = ptr_join(c, ptr, k, kv->u.str.len);
        if (!kp) return NULL;
        if (!kw_in_draft(c, k)) continue;
        for (size_t q = 0; q < sizeof REFUSED / sizeof REFUSED[0]; q++)
            if (!strcmp(k, REFUSED[q])) return js_fail(c, kp, "keyword \"%s\" is not supported", k);
        struct js_node *add = NULL;   /* a conjunct */
        bool typed = true;            /* a keyword of t */
        if (!strcmp(k, "type")) {
            unsigned m = 0;
            if (v->kind == LMQL_V_LIST) {
                for (size_t j = 0; j < v->u.list.len; j++) {
                    unsigned b = type_bit(v->u.list.items[j]);
                    if (!b) return js_fail(c, kp, "type: unknown type name");
                    m |= b;
                }
            } else if (!(m = type_bit(v))) {
                return js_fail(c, kp, "type: unknown type name");
            }
            t->types &= m;
        } else if (!strcmp(k, "minimum") || !strcmp(k, "maximum") || !strcmp(k, "exclusiveMinimum") ||
                   !strcmp(k, "exclusiveMaximum")) {
            bool lower = !strcmp(k, "minimum") || !strcmp(k, "exclusiveMinimum");
            bool min_excl;
            const struct lmql_val *own;
            if (read_exclusive(c, s, lower, kp, &min_excl, &own)) return NULL;
            if (k[0] == 'e' && !own) continue;   /* draft 4: read with minimum/maximum */
            if (!js_is_num(v) || (v->kind == LMQL_V_FLOAT && isnan(v->u.f))) return js_fail(c, kp, "%s must be a number", k);
            struct js_bound bd = {v, k[0] == 'e' || min_excl};
            if (lower && js_tighter_lo(&bd, &t->lo)) t->lo = bd;
            if (!lower && js_tighter_hi(&bd, &t->hi)) t->hi = bd;
        } else if (!strcmp(k, "multipleOf")) {
            int64_t m;
            if (!js_is_num(v) || !get_count(v, &m) || m == 0) {
                if (js_is_num(v) && ((v->kind == LMQL_V_FLOAT && v->u.f > 0) || (v->kind == LMQL_V_INT && v->u.i > 0)))
                    return js_fail(c, kp, "multipleOf %g: only integer multipleOf can be enforced exactly",
                                   v->kind == LMQL_V_FLOAT ? v->u.f : (double)v->u.i);
                return js_fail(c, kp, "multipleOf must be a positive number");
            }
            if (t->mult) {
                int64_t g = js_gcd(t->mult, m), q = t->mult / g;
                if (q > INT64_MAX / m) return js_fail(c, kp, "multipleOf too large");
                t->mult = q * m;
            } else {
                t->mult = m;
            }
        } else if (!strcmp(k, "minLength") || !strcmp(k, "maxLength") || !strcmp(k, "minItems") ||
                   !strcmp(k, "maxItems") || !strcmp(k, "minProperties") || !strcmp(k, "maxProperties")) {
            int64_t cnt;
            if (!get_count(v, &cnt)) return js_fail(c, kp, "%s must be a non-negative integer", k);
            int64_t *mn = k[3] == 'L' ? &t->min_len : k[3] == 'I' ? &t->min_items : &t->min_props;
            int64_t *mx = k[3] == 'L' ? &t->max_len : k[3] == 'I' ? &t->max_items : &t->max_props;
            if (k[1] == 'i') { if (cnt > *mn) *mn = cnt; }
            else if (*mx < 0 || cnt < *mx) *mx = cnt;
        } else if (!strcmp(k, "pattern")) {
            if (v->kind != LMQL_V_STR) return js_fail(c, kp, "pattern must be a string");
            if (t->n_pat == JS_MAX_PATTERNS) return js_fail(c, kp, "too many patterns");
            t->pat[t->n_pat++] = (struct js_pattern){v, kp};
        } else if (!strcmp(k, "format")) {
            if (v->kind != LMQL_V_STR) return js_fail(c, kp, "format must be a string");
            if (js_format_kind(v->u.str.s) != 0) {
                t->format = v->u.str.s;
                t->format_ptr = kp;
            }
        } else if (!strcmp(k, "items")) {
            if (v->kind == LMQL_V_LIST) {
                if (jget(s, "prefixItems")) return js_fail(c, kp, "items as an array next to prefixItems");
                if (!build_list(c, v, ptr, k, &t->prefix, &t->n_prefix)) return NULL;
                const struct lmql_val *ai = jget(s, "additionalItems");
                if (ai && !(t->items = build(c, ai, ptr_join(c, ptr, "additionalItems", 15)))) return NULL;
            } else if (!(t->items = build(c, v, kp))) {
                return NULL;
            }
        } else if (!strcmp(k, "prefixItems")) {
            if (!build_list(c, v, ptr, k, &t->prefix, &t->n_prefix)) return NULL;
        } else if (!strcmp(k, "additionalItems")) {
            continue;   /* with an items array, above; otherwise it asserts nothing */
        } else if (!strcmp(k, "uniqueItems")) {
            if (v->kind != LMQL_V_BOOL) return js_fail(c, kp, "uniqueItems must be a boolean");
            t->unique |= v->u.b;
        } else if (!strcmp(k, "properties")) {
            if (v->kind != LMQL_V_DICT) return js_fail(c, kp, "properties must be an object");
            if (!(t->props = js_alloc(c, (v->u.dict.len + 1) * sizeof *t->props))) return NULL;
            for (size_t j = 0; j < v->u.dict.len; j++) {
                const struct lmql_val *name = v->u.dict.keys[j];
                const char *pp = ptr_join(c, kp, name->u.str.s, name->u.str.len);
                struct js_node *pn = pp ? build(c, v->u.dict.vals[j], pp) : NULL;
                if (!pn) return NULL;
                t->props[t->n_props++] = (struct js_prop){name, pn};
            }
        } else if (!strcmp(k, "required")) {
            if (v->kind != LMQL_V_LIST) return js_fail(c, kp, "required must be an array of names (a boolean required is draft 3, not supported)");
            if (!(t->req = js_alloc(c, (v->u.list.len + 1) * sizeof *t->req))) return NULL;
            for (size_t j = 0; j < v->u.list.len; j++) {
                const struct lmql_val *name = v->u.list.items[j];
                if (name->kind != LMQL_V_STR) return js_fail(c, kp, "required must be an array of strings");
                bool dup = false;
                for (int32_t q = 0; q < t->n_req && !dup; q++) dup = js_str_eq(t->req[q], name);
                if (!dup) t->req[t->n_req++] = name;
            }
        } else if (!strcmp(k, "additionalProperties")) {
            if (!(t->addl = build(c, v, kp))) return NULL;
        } else if (!strcmp(k, "patternProperties")) {
            if (v->kind != LMQL_V_DICT) return js_fail(c, kp, "patternProperties must be an object");
            if (v->u.dict.len > 64) return js_fail(c, kp, "more than 64 patternProperties");
            if (!(t->pprops = js_alloc(c, (v->u.dict.len + 1) * sizeof *t->pprops))) return NULL;
            for (size_t j = 0; j < v->u.dict.len; j++) {
                const struct lmql_val *pat = v->u.dict.keys[j];
                const char *pp = ptr_join(c, kp, pat->u.str.s, pat->u.str.len);
                struct js_node *pn = pp ? build(c, v->u.dict.vals[j], pp) : NULL;
                if (!pn) return NULL;
                t->pprops[t->n_pprops++] = (struct js_pprop){pat, pp, pn};
            }
        } else if (!strcmp(k, "propertyNames")) {
            if (!(t->names = build(c, v, kp))) return NULL;
        } else {
            typed = false;
            if (!strcmp(k, "enum") || !strcmp(k, "const")) {
                bool is_enum = k[0] == 'e';
                if (is_enum && v->kind != LMQL_V_LIST) return js_fail(c, kp, "enum must be an array");
                size_t n = is_enum ? v->u.list.len : 1;
                if (n > JS_MAX_ENUM) return js_fail(c, kp, "enum with more than %d values", JS_MAX_ENUM);
                if (!(add = js_node_new(c, JS_ENUM, kp)) || !(add->vals = js_alloc(c, (n + 1) * sizeof *add->vals))) return NULL;
                for (size_t j = 0; j < n; j++) add->vals[add->n_vals++] = is_enum ? v->u.list.items[j] : v;
                if (n == 0) add->kind = JS_NONE;
            } else if (!strcmp(k, "allOf") || !strcmp(k, "anyOf") || !strcmp(k, "oneOf")) {
                struct js_node **b = NULL;
                int32_t nb = 0;
                if (v->kind != LMQL_V_LIST || v->u.list.len == 0) return js_fail(c, kp, "%s must be a non-empty array", k);
                if (!build_list(c, v, ptr, k, &b, &nb)) return NULL;
                if (!strcmp(k, "allOf")) {
                    add = b[0];
                    for (int32_t j = 1; add && j < nb; j++) add = js_inter(c, add, b[j]);
                    if (!add) return NULL;
                } else {
                    if (k[0] == 'o') {
                        /* made at the end, with this schema's other keywords */
                        oneof_b = b;
                        oneof_n = nb;
                        oneof_ptr = kp;
                        oneof_raw = v;
                    }
                    if (!(add = union_of(c, b, nb, kp))) return NULL;
                    if (k[0] == 'o') oneof_node = add;
                }
            } else if (!strcmp(k, "not")) {
                if (!(add = negate(c, v, kp))) return NULL;
            } else if (!strcmp(k, "if")) {
                const struct lmql_val *th = jget(s, "then"), *el = jget(s, "else");
                if (!th && !el) continue;
                struct js_node *cond = build(c, v, kp), *ncond = cond ? negate(c, v, kp) : NULL;
                struct js_node *tn = !ncond ? NULL : th ? build(c, th, ptr_join(c, ptr, "then", 4)) : js_node_new(c, JS_ANY, kp);
                struct js_node *en = !tn ? NULL : el ? build(c, el, ptr_join(c, ptr, "else", 4)) : js_node_new(c, JS_ANY, kp);
                struct js_node *alts[2] = {en ? js_inter(c, cond, tn) : NULL, NULL};
                if (alts[0]) alts[1] = js_inter(c, ncond, en);
                if (!alts[1] || !(add = union_of(c, alts, 2, kp))) return NULL;
            } else if (!strcmp(k, "$ref")) {
                if (!(add = ref_node(c, v, kp))) return NULL;
            } else if (!strcmp(k, "dependencies") || !strcmp(k, "dependentRequired") || !strcmp(k, "dependentSchemas")) {
                if (t_pos < 0) t_pos = nc;   /* the object's own keywords come first */
                if (nc == cap) {
                    struct js_node **q = lmql__arena_grow(&c->arena, conj, (size_t)nc, (size_t)cap * 2, sizeof *q);
                    if (!q) return js_oom(c);
                    conj = q;
                    cap *= 2;
                }
                if (nc == t_pos) conj[nc++] = t;
                t_props = true;   /* the object's keywords stay before the dependencies */
                if (add_dependencies(c, v, kp, k, &conj, &nc, &cap)) return NULL;
                continue;
            } else {
                continue;   /* not a keyword: ignored, as validators do */
            }
        }
        if (nc + 1 >= cap) {
            struct js_node **q = lmql__arena_grow(&c->arena, conj, (size_t)nc, (size_t)cap * 2, sizeof *q);
            if (!q) return js_oom(c);
            conj = q;
            cap *= 2;
        }
        if (typed) {
            /* t sits where its properties are written: they come in the
            ** order of the keywords (after a $ref or allOf written before
            ** them, before those written after) */
            bool props = !strcmp(k, "properties");
            if (t_pos >= 0 && props && !t_props) {
                memmove(conj + t_pos, conj + t_pos + 1, (size_t)(nc - t_pos - 1) * sizeof *conj);
                nc--;
                t_pos = -1;
            }
            if (t_pos < 0) {
                t_pos = nc;
                conj[nc++] = t;
            }
            t_props |= props;
        } else {
            conj[nc++] = add;
        }
    }
    for (int32_t i = 0; oneof_b && i < nc; i++)
        if (conj[i] == oneof_node && !(conj[i] = oneof_exact(c, t, oneof_b, oneof_n, oneof_raw, oneof_ptr))) return NULL;
    struct js_node *acc = js_node_new(c, JS_ANY, ptr);
    for (int32_t i = 0; acc && i < nc; i++) acc = js_inter(c, acc, conj[i]);
    return acc;
}

static struct js_node *build(struct js_ctx *c, const struct lmql_val *s, const char *ptr) {
    if (!ptr || !js_step(c)) return NULL;
    if (++c->depth > JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, ptr, "the schema is nested too deep (more than %d levels)", JS_MAX_DEPTH);
    }
    struct js_node *n;
    if (s->kind == LMQL_V_BOOL) n = js_node_new(c, s->u.b ? JS_ANY : JS_NONE, ptr);
    else if (s->kind == LMQL_V_DICT) n = build_dict(c, s, ptr);
    else n = js_fail(c, ptr, "a schema must be an object or a boolean");
    c->depth--;
    return n;
}

/* --------------------------------------------------------------- API -- */

static void ctx_free(struct js_ctx *c) {
    for (int32_t i = 0; i < c->n_rxc; i++) lmql__regex_free(c->rxc[i].re);
    for (int32_t i = 0; i < c->n_fmc; i++) lmql__regex_free(c->fmc[i].re);
    free(c->rxc);
    free(c->fmc);
    free(c->nt_names);
    free(c->alts);
    free(c->items);
    free(c->rx);
    lmql__arena_free(&c->arena);
}

struct lmql_grammar *lmql__jsonschema_compile(const struct lmql_val *schema, const struct lmql__js_opts *o,
                                              struct lmql__err *e) {
    struct js_ctx c;
    memset(&c, 0, sizeof c);
    lmql__arena_init(&c.arena);
    c.e = e;
    c.root = schema;
    c.free_ws = o && o->free_ws;
    c.any_nt = c.any_obj_nt = c.any_arr_nt = -1;
    c.draft = 2020;
    const struct lmql_val *sv = schema->kind == LMQL_V_DICT ? jget(schema, "$schema") : NULL;
    if (sv && sv->kind == LMQL_V_STR) {
        static const struct { const char *uri; int draft; } D[] = {
            {"http://json-schema.org/draft-03/schema", 3}, {"http://json-schema.org/draft-04/schema", 4},
            {"http://json-schema.org/draft-06/schema", 6}, {"http://json-schema.org/draft-07/schema", 7},
            {"https://json-schema.org/draft/2019-09/schema", 2019}, {"https://json-schema.org/draft/2020-12/schema", 2020}};
        size_t n = sv->u.str.len;
        if (n && sv->u.str.s[n - 1] == '#') n--;
        for (size_t i = 0; i < sizeof D / sizeof D[0]; i++)
            if (strlen(D[i].uri) == n && !memcmp(D[i].uri, sv->u.str.s, n)) c.draft = D[i].draft;
    }
    struct lmql_grammar *g = NULL;
    if (c.draft == 3) {
        js_fail(&c, "#/$schema", "draft 3 schemas are not supported");
        ctx_free(&c);
        return NULL;
    }
    struct js_node *root = build(&c, schema, "#");
    if (root) g = js_generate(&c, root);
    if (!g && !c.failed) js_oom(&c);
    ctx_free(&c);
    return g;
}

struct lmql_grammar *lmql__jsonschema_compile_text(const char *text, size_t n, const struct lmql__js_opts *o,
                                                   struct lmql__err *e) {
    struct lmql__err pe = {0};
    struct lmql_val *v = lmql__json_parse_doubles(text, n, &pe);
    if (!v) {
        unsigned long long at = 0;
        const char *p = strstr(pe.msg, "at byte ");
        if (p) at = strtoull(p + 8, NULL, 10);
        bool oom = strstr(pe.msg, "out of memory") != NULL;
        lmql__err_set(e, oom ? LMQL_ERR_NOMEM : LMQL_ERR_QUERY, NULL, "JSON schema: %s", pe.msg);
        if (e) e->pos.offset = (size_t)at;
        return NULL;
    }
    struct lmql_grammar *g = lmql__jsonschema_compile(v, o, e);
    lmql__val_unref(v);
    return g;
}
