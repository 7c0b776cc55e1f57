/*
** Values and intersections for the JSON Schema compiler: JSON equality,
** validating a value against a node (enum values against what they are
** intersected with), the schema a property name falls under, the
** intersection of two nodes (allOf, sibling keywords, $ref with siblings)
** and proofs that two nodes share no value (oneOf).
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"
#include "regex.h"

/* --------------------------------------------------------- comparison -- */

/* Exact comparison of two numbers (int or float values). */
int js_cmp_num(const struct lmql_val *a, const struct lmql_val *b) {
    if (a->kind == LMQL_V_INT && b->kind == LMQL_V_INT) return a->u.i < b->u.i ? -1 : a->u.i > b->u.i;
    if (a->kind == LMQL_V_FLOAT && b->kind == LMQL_V_FLOAT) return a->u.f < b->u.f ? -1 : a->u.f > b->u.f;
    bool swap = a->kind == LMQL_V_FLOAT;
    int64_t i = swap ? b->u.i : a->u.i;
    double x = swap ? a->u.f : b->u.f;
    int r;
    if (x >= 9223372036854775808.0) r = -1;
    else if (x < -9223372036854775808.0) r = 1;
    else {
        int64_t t = (int64_t)x;
        if (i != t) r = i < t ? -1 : 1;
        else {
            double f = x - (double)t;
            r = f > 0 ? -1 : f < 0 ? 1 : 0;
        }
    }
    return swap ? -r : r;
}

bool js_equal(const struct lmql_val *a, const struct lmql_val *b) {
    if (js_is_num(a) && js_is_num(b)) return js_cmp_num(a, b) == 0;
    bool la = a->kind == LMQL_V_LIST || a->kind == LMQL_V_TUPLE, lb = b->kind == LMQL_V_LIST || b->kind == LMQL_V_TUPLE;
    if (la && lb) {
        if (a->u.list.len != b->u.list.len) return false;
        for (size_t i = 0; i < a->u.list.len; i++)
            if (!js_equal(a->u.list.items[i], b->u.list.items[i])) return false;
        return true;
    }
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case LMQL_V_NONE: return true;
    case LMQL_V_BOOL: return a->u.b == b->u.b;
    case LMQL_V_STR: return js_str_eq(a, b);
    case LMQL_V_DICT:
        if (a->u.dict.len != b->u.dict.len) return false;
        for (size_t i = 0; i < a->u.dict.len; i++) {
            const struct lmql_val *k = a->u.dict.keys[i], *bv = NULL;
            for (size_t j = 0; j < b->u.dict.len && !bv; j++)
                if (b->u.dict.keys[j]->kind == LMQL_V_STR && k->kind == LMQL_V_STR && js_str_eq(k, b->u.dict.keys[j]))
                    bv = b->u.dict.vals[j];
            if (!bv || !js_equal(a->u.dict.vals[i], bv)) return false;
        }
        return true;
    default: return false;
    }
}

/* ------------------------------------------------------------ regexes -- */

/* The compiled regex of a pattern's JSON strings (cached per pattern). */
struct lmql_regex *js_pattern_re(struct js_ctx *c, const struct lmql_val *pat, const char *ptr, bool upper) {
    for (int32_t i = 0; i < c->n_rxc; i++)
        if (c->rxc[i].upper == upper && (c->rxc[i].pat == pat || js_str_eq(c->rxc[i].pat, pat))) return c->rxc[i].re;
    bool empty;
    struct js_rxparts parts;
    const char *rx = upper ? js_rx_pattern_upper(c, pat, ptr) : js_rx_pattern(c, pat, ptr, 0, -1, &empty, &parts);
    if (!rx) return NULL;
    struct lmql__err re_err = {0};
    struct lmql_regex *re = lmql__regex_compile(rx, strlen(rx), &re_err);
    if (!re) {
        if (re_err.status == LMQL_ERR_NOMEM) return js_oom(c);
        return js_fail(c, ptr, "pattern \"%.*s\": %s", (int)(pat->u.str.len > 100 ? 100 : pat->u.str.len), pat->u.str.s,
                       re_err.msg);
    }
    if (c->n_rxc == c->cap_rxc) {
        int32_t nc = c->cap_rxc ? c->cap_rxc * 2 : 8;
        void *q = lmql__realloc(c->rxc, (size_t)nc * sizeof *c->rxc);
        if (!q) {
            lmql__regex_free(re);
            return js_oom(c);
        }
        c->rxc = q;
        c->cap_rxc = nc;
    }
    c->rxc[c->n_rxc].pat = pat;
    c->rxc[c->n_rxc].upper = upper;
    c->rxc[c->n_rxc].re = re;
    c->n_rxc++;
    return re;
}

/* Whether the string value s matches the compiled regex of JSON strings:
** 1, 0, -1 (out of memory). */
static int re_match(struct js_ctx *c, struct lmql_regex *re, const struct lmql_val *s) {
    struct lmql__buf b = {0};
    if (js_enc_str(&b, s->u.str.s, s->u.str.len)) {
        lmql__buf_free(&b);
        js_oom(c);
        return -1;
    }
    bool m = lmql__regex_fullmatch(re, b.data, b.len);
    lmql__buf_free(&b);
    return m;
}

static int format_match(struct js_ctx *c, const struct js_node *n, const struct lmql_val *s) {
    if (js_format_kind(n->format) < 0) {
        js_fail(c, n->format_ptr, "format \"%s\" is not supported", n->format);
        return -1;
    }
    for (int32_t i = 0; i < c->n_fmc; i++)
        if (!strcmp(c->fmc[i].name, n->format)) return re_match(c, c->fmc[i].re, s);
    int64_t a, b;
    const char *rx = js_rx_format(c, n->format, n->format_ptr, &a, &b);
    if (!rx) return -1;
    struct lmql__err re_err = {0};
    struct lmql_regex *re = lmql__regex_compile(rx, strlen(rx), &re_err);
    if (!re) {
        js_oom(c);
        return -1;
    }
    if (c->n_fmc == c->cap_fmc) {
        int32_t nc = c->cap_fmc ? c->cap_fmc * 2 : 4;
        void *q = lmql__realloc(c->fmc, (size_t)nc * sizeof *c->fmc);
        if (!q) {
            lmql__regex_free(re);
            js_oom(c);
            return -1;
        }
        c->fmc = q;
        c->cap_fmc = nc;
    }
    c->fmc[c->n_fmc].name = n->format;
    c->fmc[c->n_fmc].re = re;
    c->n_fmc++;
    return re_match(c, re, s);
}

/* ---------------------------------------------------------- validation -- */

static unsigned val_type(const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return JT_NULL;
    case LMQL_V_BOOL: return JT_BOOL;
    case LMQL_V_INT: return JT_INT;
    case LMQL_V_FLOAT: return JT_FRAC;   /* 5.0 is not an integer in draft 4: never counted as one */
    case LMQL_V_STR: return JT_STR;
    case LMQL_V_LIST: case LMQL_V_TUPLE: return JT_ARR;
    case LMQL_V_DICT: return JT_OBJ;
    default: return 0;
    }
}

static int validate_obj(struct js_ctx *c, struct js_node *n, const struct lmql_val *v);

int js_validate(struct js_ctx *c, struct js_node *n, const struct lmql_val *v) {
    if (!js_step(c)) return -1;
    if (c->depth > JS_MAX_DEPTH) {
        js_fail(c, n->ptr, "the schema is nested too deep (more than %d levels)", JS_MAX_DEPTH);
        return -1;
    }
    switch (n->kind) {
    case JS_ANY: return 1;
    case JS_NONE: return 0;
    case JS_ENUM:
        for (int32_t i = 0; i < n->n_vals; i++)
            if (js_equal(n->vals[i], v)) return 1;
        return 0;
    case JS_UNION:
        for (int32_t i = 0; i < n->n_alts; i++) {
            c->depth++;
            int r = js_validate(c, n->alts[i], v);
            c->depth--;
            if (r) return r;
        }
        return 0;
    case JS_REF: {
        struct js_node *d = js_def_node(c, n->def, n->ptr);
        if (!d) return -1;
        c->depth++;
        int r = js_validate(c, d, v);
        c->depth--;
        return r;
    }
    default: break;
    }
    unsigned t = val_type(v);
    /* 5.0 is an integer from draft 6 on: for a proof, it may be one */
    if (c->maybe && v->kind == LMQL_V_FLOAT && v->u.f == floor(v->u.f)) t |= JT_INT;
    if (!(n->types & t)) return 0;
    if (t & JT_NUM) {
        if (n->lo.v) {
            int k = js_cmp_num(v, n->lo.v);
            if (k < 0 || (k == 0 && n->lo.excl)) return 0;
        }
        if (n->hi.v) {
            int k = js_cmp_num(v, n->hi.v);
            if (k > 0 || (k == 0 && n->hi.excl)) return 0;
        }
        if (n->mult >= 1) {
            if (v->kind == LMQL_V_INT) return v->u.i % n->mult == 0;
            /* a float: a multiple when integral (not produced, but may be valid) */
            return c->maybe && fabs(v->u.f) < 9e15 && fmod(v->u.f, (double)n->mult) == 0;
        }
        return 1;
    }
    if (t == JT_STR) {
        int64_t len = (int64_t)lmql__utf8_count(v->u.str.s, v->u.str.len);
        if (len < n->min_len || (n->max_len >= 0 && len > n->max_len)) return 0;
        for (int32_t i = 0; i < n->n_not_str; i++)
            if (js_str_eq(n->not_str[i], v)) return 0;
        /* our patterns and formats are subsets of what validators accept
        ** (\w is ASCII here, dates exist, ...): for a proof, any string may
        ** match them */
        if (c->maybe) return 1;
        for (int32_t i = 0; i < n->n_pat; i++) {
            struct lmql_regex *re = js_pattern_re(c, n->pat[i].pattern, n->pat[i].ptr, false);
            if (!re) return -1;
            int m = re_match(c, re, v);
            if (m <= 0) return m;
        }
        return n->format ? format_match(c, n, v) : 1;
    }
    if (t == JT_ARR) {
        int64_t len = (int64_t)v->u.list.len;
        if (len < n->min_items || (n->max_items >= 0 && len > n->max_items)) return 0;
        for (size_t i = 0; i < v->u.list.len; i++) {
            struct js_node *it = (int64_t)i < n->n_prefix ? n->prefix[i] : n->items;
            if (!it) continue;
            c->depth++;
            int r = js_validate(c, it, v->u.list.items[i]);
            c->depth--;
            if (r <= 0) return r;
        }
        if (n->unique)
            for (size_t i = 0; i < v->u.list.len; i++)
                for (size_t j = i + 1; j < v->u.list.len; j++)
                    if (js_equal(v->u.list.items[i], v->u.list.items[j])) return 0;
        return 1;
    }
    if (t == JT_OBJ) {
        c->depth++;
        int r = validate_obj(c, n, v);
        c->depth--;
        return r;
    }
    return 1;
}

static int validate_obj(struct js_ctx *c, struct js_node *n, const struct lmql_val *v) {
    int64_t cnt = (int64_t)v->u.dict.len;
    if (cnt < n->min_props || (n->max_props >= 0 && cnt > n->max_props)) return 0;
    for (int32_t i = 0; i < n->n_req; i++) {
        bool found = false;
        for (size_t j = 0; j < v->u.dict.len && !found; j++)
            found = v->u.dict.keys[j]->kind == LMQL_V_STR && js_str_eq(v->u.dict.keys[j], n->req[i]);
        if (!found) return 0;
    }
    for (size_t j = 0; j < v->u.dict.len; j++) {
        const struct lmql_val *k = v->u.dict.keys[j];
        if (k->kind != LMQL_V_STR) return 0;
        bool err;
        struct js_node *r = js_key_schema(c, n, k, &err);
        if (err) return -1;
        int ok = r ? js_validate(c, r, v->u.dict.vals[j]) : 1;
        if (ok <= 0) return ok;
    }
    return 1;
}

/* ------------------------------------------------------- intersection -- */


struct js_node *js_inter_opt(struct js_ctx *c, struct js_node *a, struct js_node *b) {
    if (!a) return b;
    if (!b) return a;
    return js_inter(c, a, b);
}

struct js_node *js_none(struct js_ctx *c, const char *ptr) { return js_node_new(c, JS_NONE, ptr); }

/* Where pattern readings differ (Python's \w matches é, ECMA's does not),
** a name a pattern may match gets that pattern's schema, and also
** additionalProperties unless some pattern surely matches it: stricter
** than either reading, never looser. */
struct js_node *js_key_schema(struct js_ctx *c, struct js_node *n, const struct lmql_val *name, bool *err) {
    *err = false;
    struct js_node *r = NULL;
    bool own = false, sure = false;
    for (int32_t i = 0; i < n->n_props && !own; i++)
        if (js_str_eq(n->props[i].name, name)) {
            r = n->props[i].node;
            own = true;
        }
    for (int32_t i = 0; i < n->n_pprops; i++) {
        struct lmql_regex *re = js_pattern_re(c, n->pprops[i].pattern, n->pprops[i].ptr, true);
        int m = re ? re_match(c, re, name) : -1;
        if (m < 0) goto fail;
        if (!m) continue;
        if (!(r = js_inter_opt(c, r, n->pprops[i].node)) && c->failed) goto fail;
        if (!sure) {
            struct lmql_regex *lo = js_pattern_re(c, n->pprops[i].pattern, n->pprops[i].ptr, false);
            int ml = lo ? re_match(c, lo, name) : -1;
            if (ml < 0) goto fail;
            sure = ml;
        }
    }
    if (!own && !sure && n->addl && !(r = js_inter_opt(c, r, n->addl))) goto fail;
    if (n->names) {
        int ok = js_validate(c, n->names, name);
        if (ok < 0) goto fail;
        if (!ok) r = js_none(c, n->ptr);
    }
    if (c->failed) goto fail;
    return r;
fail:
    *err = true;
    return NULL;
}

static struct js_node *prop_rule(struct js_ctx *c, struct js_node *n, const struct lmql_val *name, bool *err) {
    return js_key_schema(c, n, name, err);
}

static struct js_node *filter_enum(struct js_ctx *c, struct js_node *e, struct js_node *x) {
    struct js_node *r = js_node_new(c, JS_ENUM, e->ptr);
    if (!r || !(r->vals = js_alloc(c, ((size_t)e->n_vals + 1) * sizeof *r->vals))) return NULL;
    for (int32_t i = 0; i < e->n_vals; i++) {
        int ok = js_validate(c, x, e->vals[i]);
        if (ok < 0) return NULL;
        if (ok) r->vals[r->n_vals++] = e->vals[i];
    }
    if (r->n_vals == 0) r->kind = JS_NONE;
    return r;
}

bool js_tighter_lo(const struct js_bound *x, const struct js_bound *y) {
    /* is x a stronger lower bound than y? */
    if (!x->v) return false;
    if (!y->v) return true;
    int k = js_cmp_num(x->v, y->v);
    return k > 0 || (k == 0 && x->excl && !y->excl);
}

bool js_tighter_hi(const struct js_bound *x, const struct js_bound *y) {
    if (!x->v) return false;
    if (!y->v) return true;
    int k = js_cmp_num(x->v, y->v);
    return k < 0 || (k == 0 && x->excl && !y->excl);
}

int64_t js_gcd(int64_t a, int64_t b) {
    while (b) {
        int64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static struct js_node *merge_typed(struct js_ctx *c, struct js_node *a, struct js_node *b) {
    struct js_node *n = js_node_new(c, JS_TYPED, a->ptr);
    if (!n) return NULL;
    *n = *a;
    n->g_nt = -1;
    n->g_rx = NULL;
    n->g_done = false;
    n->types = a->types & b->types;
    if (!n->types) {
        n->kind = JS_NONE;
        return n;
    }
    if (n->types & JT_NUM) {
        if (js_tighter_lo(&b->lo, &a->lo)) n->lo = b->lo;
        if (js_tighter_hi(&b->hi, &a->hi)) n->hi = b->hi;
        if (b->mult && a->mult) {
            int64_t g = js_gcd(a->mult, b->mult), q = a->mult / g;
            if (q > INT64_MAX / b->mult) return js_fail(c, b->ptr, "multipleOf: the least common multiple is too large");
            n->mult = q * b->mult;
        } else if (b->mult) {
            n->mult = b->mult;
        }
    }
    if (n->types & JT_STR) {
        if (b->min_len > n->min_len) n->min_len = b->min_len;
        if (b->max_len >= 0 && (n->max_len < 0 || b->max_len < n->max_len)) n->max_len = b->max_len;
        for (int32_t i = 0; i < b->n_pat; i++) {
            bool dup = false;
            for (int32_t j = 0; j < n->n_pat && !dup; j++) dup = js_str_eq(n->pat[j].pattern, b->pat[i].pattern);
            if (dup) continue;
            if (n->n_pat == JS_MAX_PATTERNS) return js_fail(c, b->pat[i].ptr, "more than %d patterns on one string", JS_MAX_PATTERNS);
            n->pat[n->n_pat++] = b->pat[i];
        }
        if (b->n_not_str) {
            const struct lmql_val **q = js_alloc(c, ((size_t)n->n_not_str + (size_t)b->n_not_str) * sizeof *q);
            if (!q) return NULL;
            if (n->n_not_str) memcpy(q, n->not_str, (size_t)n->n_not_str * sizeof *q);
            memcpy(q + n->n_not_str, b->not_str, (size_t)b->n_not_str * sizeof *q);
            n->not_str = q;
            n->n_not_str += b->n_not_str;
        }
        if (b->format) {
            if (n->format && strcmp(n->format, b->format))
                return js_fail(c, b->format_ptr, "two formats (\"%s\" and \"%s\") on one string", n->format, b->format);
            n->format = b->format;
            n->format_ptr = b->format_ptr;
        }
    }
    if (n->types & JT_ARR) {
        int32_t np = a->n_prefix > b->n_prefix ? a->n_prefix : b->n_prefix;
        if (np) {
            if (!(n->prefix = js_alloc(c, (size_t)np * sizeof *n->prefix))) return NULL;
            for (int32_t i = 0; i < np; i++) {
                struct js_node *x = i < a->n_prefix ? a->prefix[i] : a->items, *y = i < b->n_prefix ? b->prefix[i] : b->items;
                n->prefix[i] = js_inter_opt(c, x, y);
                if (c->failed) return NULL;
                if (!n->prefix[i] && !(n->prefix[i] = js_node_new(c, JS_ANY, n->ptr))) return NULL;
            }
        }
        n->n_prefix = np;
        n->items = js_inter_opt(c, a->items, b->items);
        if (c->failed) return NULL;
        n->unique = a->unique || b->unique;
        if (b->min_items > n->min_items) n->min_items = b->min_items;
        if (b->max_items >= 0 && (n->max_items < 0 || b->max_items < n->max_items)) n->max_items = b->max_items;
    }
    if (n->types & JT_OBJ) {
        int32_t cap = a->n_props + b->n_props;
        n->props = cap ? js_alloc(c, (size_t)cap * sizeof *n->props) : NULL;
        if (cap && !n->props) return NULL;
        n->n_props = 0;
        bool err;
        for (int32_t i = 0; i < a->n_props; i++) {
            struct js_node *r = prop_rule(c, b, a->props[i].name, &err);
            if (err) return NULL;
            struct js_node *m = js_inter_opt(c, a->props[i].node, r);
            if (!m) return NULL;
            n->props[n->n_props++] = (struct js_prop){a->props[i].name, m};
        }
        for (int32_t i = 0; i < b->n_props; i++) {
            bool seen = false;
            for (int32_t j = 0; j < a->n_props && !seen; j++) seen = js_str_eq(a->props[j].name, b->props[i].name);
            if (seen) continue;
            struct js_node *r = prop_rule(c, a, b->props[i].name, &err);
            if (err) return NULL;
            struct js_node *m = js_inter_opt(c, b->props[i].node, r);
            if (!m) return NULL;
            n->props[n->n_props++] = (struct js_prop){b->props[i].name, m};
        }
        int32_t nr = a->n_req + b->n_req;
        n->req = nr ? js_alloc(c, (size_t)nr * sizeof *n->req) : NULL;
        if (nr && !n->req) return NULL;
        n->n_req = 0;
        for (int pass = 0; pass < 2; pass++) {
            const struct js_node *s = pass ? b : a;
            for (int32_t i = 0; i < s->n_req; i++) {
                bool seen = false;
                for (int32_t j = 0; j < n->n_req && !seen; j++) seen = js_str_eq(n->req[j], s->req[i]);
                if (!seen) n->req[n->n_req++] = s->req[i];
            }
        }
        n->addl = js_inter_opt(c, a->addl, b->addl);
        if (c->failed) return NULL;
        int32_t npp = a->n_pprops + b->n_pprops;
        n->pprops = npp ? js_alloc(c, (size_t)npp * sizeof *n->pprops) : NULL;
        if (npp && !n->pprops) return NULL;
        n->n_pprops = 0;
        /* a key under a pattern of one side falls under the other side's
        ** additionalProperties, or its own pattern (then this is stricter
        ** than needed: a subset, never more) */
        for (int pass = 0; pass < 2; pass++) {
            const struct js_node *s = pass ? b : a, *o = pass ? a : b;
            for (int32_t i = 0; i < s->n_pprops; i++) {
                struct js_node *m = js_inter_opt(c, s->pprops[i].node, o->addl);
                if (c->failed) return NULL;
                if (!m && !(m = js_node_new(c, JS_ANY, s->pprops[i].ptr))) return NULL;
                n->pprops[n->n_pprops++] = (struct js_pprop){s->pprops[i].pattern, s->pprops[i].ptr, m};
            }
        }
        n->names = js_inter_opt(c, a->names, b->names);
        if (c->failed) return NULL;
        if (b->min_props > n->min_props) n->min_props = b->min_props;
        if (b->max_props >= 0 && (n->max_props < 0 || b->max_props < n->max_props)) n->max_props = b->max_props;
    }
    return n;
}

struct js_node *js_inter(struct js_ctx *c, struct js_node *a, struct js_node *b) {
    if (!a || !b || !js_step(c)) return NULL;
    if (a == b || b->kind == JS_ANY || a->kind == JS_NONE) return a;
    if (a->kind == JS_ANY || b->kind == JS_NONE) return b;
    if (++c->depth > JS_MAX_DEPTH) {
        c->depth--;
        return js_fail(c, a->ptr, "the schema is nested too deep (more than %d levels of $ref, allOf and properties)",
                       JS_MAX_DEPTH);
    }
    struct js_node *r = NULL;
    if (a->kind == JS_REF && b->kind == JS_REF && a->def == b->def) {
        r = a;
    } else if (a->kind == JS_REF || b->kind == JS_REF) {
        /* expand, keeping the order (a's properties come first) */
        struct js_node *x = a->kind == JS_REF ? js_def_node(c, a->def, a->ptr) : a;
        struct js_node *y = x && b->kind == JS_REF ? js_def_node(c, b->def, b->ptr) : b;
        r = x && y ? js_inter(c, x, y) : NULL;
    } else if (a->kind == JS_UNION || b->kind == JS_UNION) {
        struct js_node **A = a->kind == JS_UNION ? a->alts : &a, **B = b->kind == JS_UNION ? b->alts : &b;
        int32_t na = a->kind == JS_UNION ? a->n_alts : 1, nb = b->kind == JS_UNION ? b->n_alts : 1;
        struct js_node *u = js_node_new(c, JS_UNION, a->ptr);
        if (u && (int64_t)na * nb > JS_MAX_UNION * 4) u = js_fail(c, a->ptr, "anyOf/oneOf combined with allOf give more than %d alternatives", JS_MAX_UNION);
        if (u && !(u->alts = js_alloc(c, (size_t)na * (size_t)nb * sizeof *u->alts))) u = NULL;
        for (int32_t i = 0; u && i < na; i++)
            for (int32_t j = 0; u && j < nb; j++) {
                struct js_node *x = js_inter(c, A[i], B[j]);
                if (!x) u = NULL;
                else if (x->kind != JS_NONE) u->alts[u->n_alts++] = x;
            }
        if (u && u->n_alts > JS_MAX_UNION) u = js_fail(c, a->ptr, "anyOf/oneOf combined with allOf give more than %d alternatives", JS_MAX_UNION);
        r = !u ? NULL : u->n_alts == 0 ? js_none(c, a->ptr) : u->n_alts == 1 ? u->alts[0] : u;
    } else if (a->kind == JS_ENUM) {
        r = filter_enum(c, a, b);
    } else if (b->kind == JS_ENUM) {
        r = filter_enum(c, b, a);
    } else {
        r = merge_typed(c, a, b);
    }
    c->depth--;
    return r;
}



static struct js_node *deref(struct js_ctx *c, struct js_node *n) {
    while (n && n->kind == JS_REF) {
        if (c->defs[n->def].state == 1) return NULL;
        n = js_def_node(c, n->def, n->ptr);
    }
    return n;
}

static bool disjoint_typed(struct js_ctx *c, struct js_node *a, struct js_node *b) {
    unsigned common = a->types & b->types;
    /* integer and other numbers overlap (5.0 is an integer from draft 6 on) */
    if ((a->types & JT_NUM) && (b->types & JT_NUM)) common |= JT_NUM;
    if (!common) return true;
    if (common & (JT_NULL | JT_BOOL)) return false;
    if (common & JT_NUM) {
        /* disjoint ranges */
        bool sep = false;
        if (a->hi.v && b->lo.v) {
            int k = js_cmp_num(a->hi.v, b->lo.v);
            sep |= k < 0 || (k == 0 && (a->hi.excl || b->lo.excl));
        }
        if (b->hi.v && a->lo.v) {
            int k = js_cmp_num(b->hi.v, a->lo.v);
            sep |= k < 0 || (k == 0 && (b->hi.excl || a->lo.excl));
        }
        if (!sep) return false;
    }
    if (common & JT_STR) {
        bool sep = (a->max_len >= 0 && a->max_len < b->min_len) || (b->max_len >= 0 && b->max_len < a->min_len);
        if (!sep) return false;
    }
    if (common & JT_ARR) {
        bool sep = (a->max_items >= 0 && a->max_items < b->min_items) || (b->max_items >= 0 && b->max_items < a->min_items);
        for (int32_t i = 0; !sep && i < a->n_prefix && i < b->n_prefix; i++)
            if (i < a->min_items || i < b->min_items) sep = js_disjoint(c, a->prefix[i], b->prefix[i]);
        if (!sep) return false;
    }
    if (common & JT_OBJ) {
        bool sep = (a->max_props >= 0 && a->max_props < b->min_props) || (b->max_props >= 0 && b->max_props < a->min_props);
        /* a property one side requires, with values the two sides cannot share */
        for (int pass = 0; !sep && pass < 2; pass++) {
            struct js_node *s = pass ? b : a, *o = pass ? a : b;
            for (int32_t i = 0; !sep && i < s->n_req; i++) {
                bool err;
                struct js_node *x = prop_rule(c, s, s->req[i], &err), *y = err ? NULL : prop_rule(c, o, s->req[i], &err);
                if (err) return false;
                if (!x || !y) continue;
                sep = js_disjoint(c, x, y);
            }
        }
        if (!sep) return false;
    }
    return true;
}

bool js_disjoint(struct js_ctx *c, struct js_node *a, struct js_node *b) {
    if (c->failed || !js_step(c) || c->depth > JS_MAX_DEPTH) return false;
    c->depth++;
    bool r = false;
    a = deref(c, a);
    b = deref(c, b);
    if (!a || !b) r = false;
    else if (a->kind == JS_NONE || b->kind == JS_NONE) r = true;
    else if (a->kind == JS_ANY || b->kind == JS_ANY) r = false;
    else if (a->kind == JS_UNION || b->kind == JS_UNION) {
        struct js_node *u = a->kind == JS_UNION ? a : b, *o = u == a ? b : a;
        r = true;
        for (int32_t i = 0; r && i < u->n_alts; i++) r = js_disjoint(c, u->alts[i], o);
    } else if (a->kind == JS_ENUM || b->kind == JS_ENUM) {
        struct js_node *e = a->kind == JS_ENUM ? a : b, *o = e == a ? b : a;
        r = true;
        c->maybe++;
        for (int32_t i = 0; r && i < e->n_vals; i++) r = js_validate(c, o, e->vals[i]) == 0;
        c->maybe--;
    } else {
        r = disjoint_typed(c, a, b);
    }
    c->depth--;
    return r && !c->failed;
}

