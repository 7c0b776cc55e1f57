/*
** The normal form of a JSON Schema (jsonschema_int.h) to grammar rules.
**
** Scalars (null, booleans, numbers, strings, enum values) are regex
** terminals; objects and arrays are rules. Adjacent regexes in a rule are
** joined into one terminal (`, "name": ` and the property's value become
** one), since a terminal costs a DFA step per byte while each terminal
** boundary costs the matcher a parser step.
**
** Objects: the properties come in the order of `properties` (then the
** required names it lacks), each present at most once, optional ones
** skipped; other names after them, in any order, spelled as json.dumps
** spells them so that they can be told apart from the declared names.
** Counts (minProperties/maxProperties) are states of the rules. Arrays:
** the prefix items one by one, the rest as binary-counted repetitions.
** Lengths of strings beyond a few dozen characters are counted in chunks of
** 32 characters by rules, so no terminal's DFA grows with the bound.
*/
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"

/* A grammar symbol: a nonterminal (nt >= 0), a regex (rx), or nothing at
** all (an empty language: nt < 0 and rx NULL). */
struct gsym {
    int32_t nt;
    const char *rx;
    bool solo;   /* a large regex used in several places: a terminal of its own */
};

static const struct gsym NOTHING = {-1, NULL, false};

static struct gsym sym_nt(int32_t nt) { return (struct gsym){nt, NULL, false}; }
static struct gsym sym_rx(const char *rx) { return (struct gsym){-1, rx, false}; }
static struct gsym sym_solo(const char *rx) { return (struct gsym){-1, rx, true}; }
static bool is_nothing(struct gsym s) { return s.nt < 0 && !s.rx; }

#define SMALL_REP 48   /* up to this many repetitions: one regex */
#define CHUNK 32       /* beyond: rules over chunks of this many */
#define MERGE_MAX ((size_t)64 << 10)   /* longest joined regex */

static int grow(struct js_ctx *c, void **p, int32_t *cap, int32_t need, size_t sz) {
    if (need <= *cap) return 0;
    int32_t nc = *cap ? *cap : 64;
    while (nc < need) nc *= 2;
    void *q = lmql__realloc(*p, (size_t)nc * sz);
    if (!q) return (void)js_oom(c), -1;
    *p = q;
    *cap = nc;
    return 0;
}

static int32_t nt_new(struct js_ctx *c, const char *name) {
    if (c->failed) return -1;
    if (c->n_nt >= JS_MAX_NT) return (void)js_fail(c, "#", "the grammar is too large (over %d rules)", JS_MAX_NT), -1;
    if (grow(c, (void **)&c->nt_names, &c->cap_nt, c->n_nt + 1, sizeof *c->nt_names)) return -1;
    c->nt_names[c->n_nt] = name ? name : "#";
    return c->n_nt++;
}

static int32_t rx_item(struct js_ctx *c, const char *text, const char *ptr) {
    if (grow(c, (void **)&c->rx, &c->cap_rx, c->n_rx + 1, sizeof *c->rx)) return 0;
    c->rx_bytes += strlen(text);
    if (c->rx_bytes > JS_MAX_RX_BYTES) return (void)js_fail(c, "#", "the grammar is too large (over %zu MiB of regexes)", JS_MAX_RX_BYTES >> 20), 0;
    c->rx[c->n_rx] = (struct js_rx){text, ptr};
    return -1 - c->n_rx++;
}

/* Add lhs -> items[0..n), joining adjacent regexes. An item that is
** nothing drops the alternative. */
static int add_alt(struct js_ctx *c, int32_t lhs, const struct gsym *items, int n, const char *ptr) {
    if (c->failed || lhs < 0) return -1;
    for (int i = 0; i < n; i++)
        if (is_nothing(items[i])) return 0;
    if (c->n_alts >= JS_MAX_ALTS) return (void)js_fail(c, "#", "the grammar is too large (over %d alternatives)", JS_MAX_ALTS), -1;
    if (grow(c, (void **)&c->items, &c->cap_items, c->n_items + n, sizeof *c->items) ||
        grow(c, (void **)&c->alts, &c->cap_alts, c->n_alts + 1, sizeof *c->alts))
        return -1;
    int32_t off = c->n_items, k = 0;
    struct lmql__buf b = {0};
    for (int i = 0; i <= n; i++) {
        bool flush = i == n || !items[i].rx || items[i].solo || (i > 0 && items[i - 1].solo) ||
                     b.len + strlen(items[i].rx) > MERGE_MAX;
        if (flush && b.len) {
            const char *t = js_strdup(c, b.data, b.len);
            int32_t id = t ? rx_item(c, t, ptr) : 0;
            if (!id) {
                lmql__buf_free(&b);
                return -1;
            }
            c->items[off + k++] = id;
            b.len = 0;
        }
        if (i == n) break;
        if (items[i].rx) {
            if (lmql__buf_adds(&b, items[i].rx)) {
                lmql__buf_free(&b);
                return (void)js_oom(c), -1;
            }
        } else {
            c->items[off + k++] = items[i].nt;
        }
    }
    lmql__buf_free(&b);
    c->n_items += k;
    c->alts[c->n_alts++] = (struct js_pgalt){lhs, off, k};
    return 0;
}

static int alt1(struct js_ctx *c, int32_t lhs, struct gsym a, const char *ptr) { return add_alt(c, lhs, &a, 1, ptr); }

static int alt2(struct js_ctx *c, int32_t lhs, struct gsym a, struct gsym b, const char *ptr) {
    struct gsym it[2] = {a, b};
    return add_alt(c, lhs, it, 2, ptr);
}

static int alt3(struct js_ctx *c, int32_t lhs, struct gsym a, struct gsym b, struct gsym d, const char *ptr) {
    struct gsym it[3] = {a, b, d};
    return add_alt(c, lhs, it, 3, ptr);
}

/* The union of symbols: one regex when all are regexes, else a rule. */
static struct gsym sym_union(struct js_ctx *c, const struct gsym *s, int n, const char *ptr) {
    int live = 0, rx = 0;
    struct gsym one = NOTHING;
    for (int i = 0; i < n; i++) {
        if (is_nothing(s[i])) continue;
        live++;
        one = s[i];
        if (s[i].rx) rx++;
    }
    if (live <= 1) return one;
    if (rx == live) {
        struct lmql__buf b = {0};
        int rc = lmql__buf_adds(&b, "(?:");
        bool first = true;
        for (int i = 0; !rc && i < n; i++) {
            if (!s[i].rx) continue;
            rc = (!first && lmql__buf_add(&b, "|", 1)) || lmql__buf_adds(&b, s[i].rx);
            first = false;
        }
        rc = rc || lmql__buf_add(&b, ")", 1);
        if (!rc && b.len <= MERGE_MAX) {
            const char *t = js_strdup(c, b.data, b.len);
            lmql__buf_free(&b);
            return t ? sym_rx(t) : NOTHING;
        }
        lmql__buf_free(&b);
        if (rc) return js_oom(c), NOTHING;
    }
    int32_t nt = nt_new(c, ptr);
    if (nt < 0) return NOTHING;
    for (int i = 0; i < n; i++)
        if (!is_nothing(s[i]) && alt1(c, nt, s[i], ptr)) return NOTHING;
    return sym_nt(nt);
}

/* Text made from a format in the compile's arena (jsonschema.c). */
#define catf js_printf

/* ---------------------------------------------------------- repetition -- */

/* Exactly k copies of u (k >= 1): rules that halve k. */
static struct gsym rep_exact(struct js_ctx *c, struct gsym u, int64_t k, const char *ptr) {
    if (k == 1) return u;
    struct gsym h = rep_exact(c, u, k / 2, ptr);
    if (is_nothing(h)) return NOTHING;
    int32_t nt = nt_new(c, ptr);
    if (nt < 0) return NOTHING;
    if (k % 2 ? alt3(c, nt, h, h, u, ptr) : alt2(c, nt, h, h, ptr)) return NOTHING;
    return sym_nt(nt);
}

/* Between 0 and k copies of u (k >= 1), unambiguously: for odd k, an
** optional u then up to (k-1)/2 pairs; for even k, nothing or u then up to
** k-1. */
static struct gsym rep_upto(struct js_ctx *c, struct gsym u, int64_t k, const char *ptr) {
    int32_t nt = k == 1 ? 0 : nt_new(c, ptr);
    if (nt < 0) return NOTHING;
    if (k % 2 == 0) {
        struct gsym rest = rep_upto(c, u, k - 1, ptr);
        if (add_alt(c, nt, NULL, 0, ptr) || alt2(c, nt, u, rest, ptr)) return NOTHING;
        return sym_nt(nt);
    }
    int32_t opt = nt_new(c, ptr);
    if (opt < 0 || add_alt(c, opt, NULL, 0, ptr) || alt1(c, opt, u, ptr)) return NOTHING;
    if (k == 1) return sym_nt(opt);
    int32_t pair = nt_new(c, ptr);
    if (pair < 0 || alt2(c, pair, u, u, ptr)) return NOTHING;
    struct gsym pairs = rep_upto(c, sym_nt(pair), k / 2, ptr);
    if (alt2(c, nt, sym_nt(opt), pairs, ptr)) return NOTHING;
    return sym_nt(nt);
}

/* u repeated a..b times (b < 0: unbounded) then post, as rules. */
static struct gsym rep_rules(struct js_ctx *c, struct gsym u, int64_t a, int64_t b, struct gsym post, const char *ptr) {
    int32_t nt = nt_new(c, ptr);
    if (nt < 0) return NOTHING;
    struct gsym items[3];
    int n = 0;
    if (a > 0) items[n++] = rep_exact(c, u, a, ptr);
    if (b < 0) {
        int32_t star = nt_new(c, ptr);
        if (star < 0 || alt2(c, star, u, sym_nt(star), ptr) || alt1(c, star, post, ptr)) return NOTHING;
        items[n++] = sym_nt(star);
    } else {
        if (b > a) items[n++] = rep_upto(c, u, b - a, ptr);
        items[n++] = post;
    }
    if (c->failed || add_alt(c, nt, items, n, ptr)) return NOTHING;
    return sym_nt(nt);
}

/* pre unit{a,b} post (b < 0: unbounded), unit one character: one regex
** for small counts, else rules over chunks of CHUNK characters (each a
** regex shared by every such string), so that no DFA grows with b. */
static struct gsym rep_chars(struct js_ctx *c, const char *pre, const char *unit, int64_t a, int64_t b, const char *post,
                             const char *ptr) {
    if (b >= 0 && a > b) return NOTHING;
    if ((b >= 0 ? b : a) <= SMALL_REP) {
        const char *rx = b < 0 ? catf(c, "%s(?:%s){%lld,}%s", pre, unit, (long long)a, post)
                               : catf(c, "%s(?:%s){%lld,%lld}%s", pre, unit, (long long)a, (long long)b, post);
        return rx ? sym_rx(rx) : NOTHING;
    }
    const char *chunk = catf(c, "(?:%s){%d}", unit, CHUNK);
    if (!chunk) return NOTHING;
    if (b < 0) {
        /* pre unit{a mod CHUNK} chunk^(a / CHUNK) unit* post */
        const char *head = catf(c, "%s(?:%s){%lld}", pre, unit, (long long)(a % CHUNK));
        const char *tail = catf(c, "(?:%s)*%s", unit, post);
        if (!head || !tail) return NOTHING;
        struct gsym mid = rep_exact(c, sym_rx(chunk), a / CHUNK, ptr);
        int32_t nt = nt_new(c, ptr);
        if (nt < 0 || alt3(c, nt, sym_rx(head), mid, sym_rx(tail), ptr)) return NOTHING;
        return sym_nt(nt);
    }
    /* S_j (j chunks read) -> unit{lo_j,hi_j} post | chunk S_(j+1) */
    int64_t q = b / CHUNK;
    if (q > JS_MAX_NT / 4) return js_fail(c, ptr, "maxLength %lld is too large", (long long)b), NOTHING;
    int32_t first = -1, prev = -1;
    for (int64_t j = 0; j <= q; j++) {
        int32_t nt = nt_new(c, ptr);
        if (nt < 0) return NOTHING;
        if (j == 0) first = nt;
        if (prev >= 0 && alt2(c, prev, sym_rx(chunk), sym_nt(nt), ptr)) return NOTHING;
        int64_t lo = a - j * CHUNK, hi = b - j * CHUNK;
        if (lo < 0) lo = 0;
        if (hi > CHUNK - 1) hi = CHUNK - 1;
        if (lo <= hi) {
            const char *fin = catf(c, "(?:%s){%lld,%lld}%s", unit, (long long)lo, (long long)hi, post);
            if (!fin || alt1(c, nt, sym_rx(fin), ptr)) return NOTHING;
        }
        prev = nt;
    }
    int32_t nt = nt_new(c, ptr);
    if (nt < 0 || alt2(c, nt, sym_rx(pre), sym_nt(first), ptr)) return NOTHING;
    return sym_nt(nt);
}

/* ------------------------------------------------------------- values -- */

static struct gsym gen(struct js_ctx *c, struct js_node *n);

static const char *rx_number_any(void) { return "\\-?(?:0|[1-9]\\d*)(?:\\.\\d+)?(?:[eE][\\+\\-]?\\d+)?"; }

static const char *rx_string_any(struct js_ctx *c) { return catf(c, "\"%s*\"", js_rx_char_any); }

/* Any JSON value: one shared set of rules. */
static struct gsym any_value(struct js_ctx *c) {
    if (c->any_nt >= 0) return sym_nt(c->any_nt);
    int32_t v = nt_new(c, "#(any value)"), obj = nt_new(c, "#(any object)"), obj_rest = nt_new(c, "#(any object)"),
            arr = nt_new(c, "#(any array)"), arr_rest = nt_new(c, "#(any array)");
    const char *str = rx_string_any(c);
    if (v < 0 || obj_rest < 0 || arr_rest < 0 || !str) return NOTHING;
    c->any_nt = v;
    c->any_obj_nt = obj;
    c->any_arr_nt = arr;
    const char *scalar = catf(c, "(?:null|true|false|%s|%s)", rx_number_any(), str);
    const char *key1 = catf(c, "%s%s%s", c->p_lbrace, str, c->p_colon), *keyn = catf(c, "%s%s%s", c->p_comma, str, c->p_colon);
    const char *p = "#";
    if (!scalar || !key1 || !keyn || alt1(c, v, sym_rx(scalar), p) || alt1(c, v, sym_nt(obj), p) ||
        alt1(c, v, sym_nt(arr), p) || alt1(c, obj, sym_rx(c->p_empty_obj), p) ||
        alt3(c, obj, sym_rx(key1), sym_nt(v), sym_nt(obj_rest), p) || alt1(c, obj_rest, sym_rx(c->p_rbrace), p) ||
        alt3(c, obj_rest, sym_rx(keyn), sym_nt(v), sym_nt(obj_rest), p) || alt1(c, arr, sym_rx(c->p_empty_arr), p) ||
        alt3(c, arr, sym_rx(c->p_lbrack), sym_nt(v), sym_nt(arr_rest), p) || alt1(c, arr_rest, sym_rx(c->p_rbrack), p) ||
        alt3(c, arr_rest, sym_rx(c->p_comma), sym_nt(v), sym_nt(arr_rest), p))
        return NOTHING;
    return sym_nt(v);
}

static struct gsym gen_enum(struct js_ctx *c, struct js_node *n) {
    struct lmql__buf b = {0};
    int rc = lmql__buf_adds(&b, "(?:");
    for (int32_t i = 0; !rc && i < n->n_vals; i++) rc = (i && lmql__buf_add(&b, "|", 1)) || js_rx_value(c, &b, n->vals[i]);
    rc = rc || lmql__buf_add(&b, ")", 1);
    const char *t = rc ? js_oom(c) : js_strdup(c, b.data, b.len);
    lmql__buf_free(&b);
    return t ? sym_rx(t) : NOTHING;
}

static const char *rx_key_except(struct js_ctx *c, const struct lmql_val **names, int32_t n, const char *ptr);

#define DFA_MAX_LEN 200   /* longest length bound combined with a pattern by automata */

/* The character DFA of a string node (its patterns, lengths, excluded
** strings; no format), or NULL with the error set (why names `why`). */
static struct js_cdfa *string_dfa(struct js_ctx *c, struct js_node *n, const char *why) {
    if (n->format) return js_fail(c, n->format_ptr, "format together with %s cannot be combined exactly", why);
    if (n->max_len > DFA_MAX_LEN || n->min_len > DFA_MAX_LEN)
        return js_fail(c, n->ptr, "%s with a length bound over %d cannot be combined exactly", why, DFA_MAX_LEN);
    struct js_cdfa *d = NULL;
    for (int32_t i = 0; i < n->n_pat; i++) {
        struct js_cnfa a;
        if (js_pattern_cnfa(c, n->pat[i].pattern, n->pat[i].ptr, false, &a)) return NULL;
        struct js_cdfa *x = js_cdfa_of(c, &a, n->pat[i].ptr);
        if (!x || (d && !(x = js_cdfa_product(c, d, x, true, n->pat[i].ptr)))) return NULL;
        d = x;
    }
    if (n->min_len || n->max_len >= 0) {
        struct js_cdfa *x = js_cdfa_lengths(c, n->min_len, n->max_len);
        if (!x || (d && !(x = js_cdfa_product(c, d, x, true, n->ptr)))) return NULL;
        d = x;
    }
    if (n->n_not_str) {
        struct js_cdfa *x = js_cdfa_not_names(c, n->not_str, n->n_not_str);
        if (!x || (d && !(x = js_cdfa_product(c, d, x, true, n->ptr)))) return NULL;
        d = x;
    }
    return d;
}

static struct gsym gen_string(struct js_ctx *c, struct js_node *n) {
    if (n->n_not_str && !n->n_pat && !n->format && !n->min_len && n->max_len < 0) {
        const char *rx = rx_key_except(c, n->not_str, n->n_not_str, n->ptr);
        return rx ? sym_rx(rx) : NOTHING;
    }
    if (n->n_pat > 1 || n->n_not_str) {
        /* several constraints no one regex states: their automata */
        struct js_cdfa *d = string_dfa(c, n, n->n_pat > 1 ? "two patterns" : "not");
        const char *rx = d ? js_cdfa_regex(c, d, n->ptr) : NULL;
        return rx ? sym_rx(rx) : NOTHING;
    }
    if (n->format) {
        if (n->n_pat) return js_fail(c, n->format_ptr, "format together with pattern cannot be combined exactly"), NOTHING;
        if (js_format_kind(n->format) < 0) return js_fail(c, n->format_ptr, "format \"%s\" is not supported", n->format), NOTHING;
        int64_t lo, hi;
        const char *rx = js_rx_format(c, n->format, n->format_ptr, &lo, &hi);
        if (!rx) return NOTHING;
        bool inside = lo >= n->min_len && (n->max_len < 0 || (hi >= 0 && hi <= n->max_len));
        bool outside = (n->max_len >= 0 && lo > n->max_len) || (hi >= 0 && hi < n->min_len);
        if (outside) return NOTHING;
        if (!inside)
            return js_fail(c, n->format_ptr, "format \"%s\" with minLength/maxLength cannot be combined exactly", n->format),
                   NOTHING;
        return sym_rx(rx);
    }
    if (n->n_pat) {
        bool empty;
        struct js_rxparts parts;
        const char *rx = js_rx_pattern(c, n->pat[0].pattern, n->pat[0].ptr, n->min_len, n->max_len, &empty, &parts);
        if (rx) return sym_rx(rx);
        if (empty || c->failed) return NOTHING;
        if (!parts.unit) {
            /* lengths the pattern's shape cannot take: automata */
            struct js_cdfa *d = string_dfa(c, n, "pattern with minLength/maxLength");
            rx = d ? js_cdfa_regex(c, d, n->pat[0].ptr) : NULL;
            return rx ? sym_rx(rx) : NOTHING;
        }
        return rep_chars(c, parts.pre, parts.unit, parts.a, parts.b, parts.post, n->ptr);
    }
    if (n->min_len == 0 && n->max_len < 0) {
        const char *rx = rx_string_any(c);
        return rx ? sym_rx(rx) : NOTHING;
    }
    return rep_chars(c, "\"", js_rx_char_any, n->min_len, n->max_len, "\"", n->ptr);
}

/* The distinct values an item schema allows when they are few scalars
** (for uniqueItems), else -1. */
static int32_t small_values(struct js_ctx *c, struct js_node *n, const struct lmql_val **out, int32_t cap) {
    static struct lmql_val t = {LMQL_V_BOOL, -1, {.b = true}}, f = {LMQL_V_BOOL, -1, {.b = false}}, z = {LMQL_V_NONE, -1, {.i = 0}};
    const struct lmql_val *cand[3];
    const struct lmql_val *const *vals;
    int32_t nv = 0;
    if (n->kind == JS_REF) n = js_def_node(c, n->def, n->ptr);
    if (!n) return -1;
    if (n->kind == JS_ENUM) {
        vals = n->vals;
        nv = n->n_vals;
    } else if (n->kind == JS_TYPED && !(n->types & ~(unsigned)(JT_BOOL | JT_NULL))) {
        if (n->types & JT_BOOL) { cand[nv++] = &t; cand[nv++] = &f; }
        if (n->types & JT_NULL) cand[nv++] = &z;
        vals = cand;
    } else {
        return -1;
    }
    int32_t k = 0;
    for (int32_t i = 0; i < nv; i++) {
        if (vals[i]->kind == LMQL_V_LIST || vals[i]->kind == LMQL_V_DICT) return -1;
        bool dup = false;
        for (int32_t j = 0; j < k && !dup; j++) dup = js_equal(out[j], vals[i]);
        if (dup) continue;
        if (k == cap) return -1;
        out[k++] = vals[i];
    }
    return k;
}

/* uniqueItems over a few scalar values: a rule per set of values used. */
static struct gsym gen_unique(struct js_ctx *c, struct js_node *n, const struct lmql_val **vals, int32_t nv) {
    int64_t m = n->min_items, M = n->max_items < 0 || n->max_items > nv ? nv : n->max_items;
    if (m > M) return NOTHING;
    const char **vr = js_alloc(c, (size_t)nv * sizeof *vr);
    int32_t *nts = js_alloc(c, ((size_t)1 << nv) * sizeof *nts);
    if (!vr || !nts) return NOTHING;
    for (int32_t i = 0; i < nv; i++) {
        struct lmql__buf b = {0};
        if (js_rx_value(c, &b, vals[i])) {
            lmql__buf_free(&b);
            return js_oom(c), NOTHING;
        }
        vr[i] = js_strdup(c, b.data, b.len);
        lmql__buf_free(&b);
        if (!vr[i]) return NOTHING;
    }
    for (uint32_t s = 0; s < (1u << nv); s++) nts[s] = nt_new(c, n->ptr);
    if (c->failed) return NOTHING;
    for (uint32_t s = 1; s < (1u << nv); s++) {
        int used = __builtin_popcount(s);
        if (used >= m && alt1(c, nts[s], sym_rx(c->p_rbrack), n->ptr)) return NOTHING;
        if (used >= M) continue;
        for (int32_t i = 0; i < nv; i++) {
            if (s & (1u << i)) continue;
            const char *t = catf(c, "%s%s", c->p_comma, vr[i]);
            if (!t || alt2(c, nts[s], sym_rx(t), sym_nt(nts[s | (1u << i)]), n->ptr)) return NOTHING;
        }
    }
    int32_t top = nts[0];
    if (m == 0 && alt1(c, top, sym_rx(c->p_empty_arr), n->ptr)) return NOTHING;
    if (M >= 1)
        for (int32_t i = 0; i < nv; i++) {
            const char *t = catf(c, "%s%s", c->p_lbrack, vr[i]);
            if (!t || alt2(c, top, sym_rx(t), sym_nt(nts[1u << i]), n->ptr)) return NOTHING;
        }
    return sym_nt(top);
}

static bool default_array(const struct js_node *n) {
    return !n->n_prefix && (!n->items || n->items->kind == JS_ANY) && n->min_items == 0 && n->max_items < 0 && !n->unique;
}

static struct gsym gen_array(struct js_ctx *c, struct js_node *n) {
    if (default_array(n)) {
        if (is_nothing(any_value(c))) return NOTHING;
        return sym_nt(c->any_arr_nt);
    }
    int64_t m = n->min_items, M = n->max_items;
    if (n->unique && (M < 0 || M > 1)) {
        const struct lmql_val *vals[8];
        int32_t nv = n->n_prefix || !n->items ? -1 : small_values(c, n->items, vals, 8);
        if (c->failed) return NOTHING;
        if (nv < 0)
            return js_fail(c, n->ptr, "uniqueItems can be enforced only over at most 8 scalar values (an enum, booleans)"),
                   NOTHING;
        return gen_unique(c, n, vals, nv);
    }
    int32_t k = n->n_prefix;
    struct gsym *P = k ? js_alloc(c, (size_t)k * sizeof *P) : NULL;
    if (k && !P) return NOTHING;
    for (int32_t i = 0; i < k; i++) {
        P[i] = gen(c, n->prefix[i]);
        if (c->failed) return NOTHING;
        if (is_nothing(P[i]) && (M < 0 || M > i)) M = i;
    }
    struct gsym V = n->items ? gen(c, n->items) : any_value(c);
    if (c->failed) return NOTHING;
    if (is_nothing(V) && (M < 0 || M > k)) M = k;
    if (M >= 0 && m > M) return NOTHING;
    /* an array of one regex item without prefix: one regex */
    if (!k && V.rx && (M >= 0 ? M : m) <= SMALL_REP && strlen(V.rx) < 4096 && M != 0) {
        int64_t lo = m > 1 ? m - 1 : 0;
        const char *body = M < 0 ? catf(c, "%s%s(?:%s%s){%lld,}%s", c->p_lbrack, V.rx, c->p_comma, V.rx, (long long)lo, c->p_rbrack)
                                 : catf(c, "%s%s(?:%s%s){%lld,%lld}%s", c->p_lbrack, V.rx, c->p_comma, V.rx, (long long)lo,
                                        (long long)(M - 1), c->p_rbrack);
        if (!body) return NOTHING;
        return sym_rx(m == 0 ? catf(c, "(?:%s|%s)", c->p_empty_arr, body) : body);
    }
    int32_t top = nt_new(c, n->ptr);
    if (top < 0) return NOTHING;
    if (m == 0 && alt1(c, top, sym_rx(c->p_empty_arr), n->ptr)) return NOTHING;
    if (M == 0) return sym_nt(top);
    /* W = , V (the items after the prefix) */
    struct gsym W = NOTHING;
    if (!is_nothing(V)) {
        if (V.rx) {
            const char *t = catf(c, "%s%s", c->p_comma, V.rx);
            W = t ? sym_rx(t) : NOTHING;
        } else {
            int32_t w = nt_new(c, n->ptr);
            if (w < 0 || alt2(c, w, sym_rx(c->p_comma), V, n->ptr)) return NOTHING;
            W = sym_nt(w);
        }
    }
    /* T_j: j items read; the prefix one by one, then the tail */
    int64_t tail_lo = m > k ? m - k : 0, tail_hi = M < 0 ? -1 : M - k;
    struct gsym tail;
    if (k == 0) {
        tail_lo = m > 1 ? m - 1 : 0;
        tail_hi = M < 0 ? -1 : M - 1;
    }
    if (tail_hi <= 0 && M >= 0) tail = tail_lo == 0 ? sym_rx(c->p_rbrack) : NOTHING;
    else if (is_nothing(W)) tail = tail_lo == 0 ? sym_rx(c->p_rbrack) : NOTHING;
    else tail = rep_rules(c, W, tail_lo, tail_hi, sym_rx(c->p_rbrack), n->ptr);
    if (c->failed) return NOTHING;
    if (k == 0) {
        if (alt3(c, top, sym_rx(c->p_lbrack), V, tail, n->ptr)) return NOTHING;
        return sym_nt(top);
    }
    struct gsym next = tail;   /* T_k */
    for (int32_t j = k - 1; j >= 1; j--) {
        int32_t t = nt_new(c, n->ptr);
        if (t < 0) return NOTHING;
        if (j >= m && alt1(c, t, sym_rx(c->p_rbrack), n->ptr)) return NOTHING;
        if (M < 0 || j < M) {
            if (alt3(c, t, sym_rx(c->p_comma), P[j], next, n->ptr)) return NOTHING;
        }
        next = sym_nt(t);
    }
    if (alt3(c, top, sym_rx(c->p_lbrack), P[0], next, n->ptr)) return NOTHING;
    return sym_nt(top);
}

/* The JSON strings (json.dumps's spelling) that are none of names[0..n). */
static const char *rx_key_except(struct js_ctx *c, const struct lmql_val **names, int32_t n, const char *ptr);

struct okey {
    const struct lmql_val *name;
    struct gsym val;
    bool req;
};

/* The rules of an object: D(o, i, cnt) (in order o, declared property i
** next, cnt names written) and X(cnt, extra) (the other names; extra: one
** of them was written below minProperties), made as they are first needed.
** Work items: (o * (nd + 1) + i) * (cap + 1) + cnt for D, -1 - (cnt * 2 +
** extra) for X. */
struct ostate {
    const struct js_node *n;
    int64_t cap;
    int32_t nd;
    const int32_t *ord;   /* the orders of the declared names: ord[o * nd + i] */
    int32_t *d, *x;
    int64_t *work;
    size_t nw;
};

static int32_t get_d(struct js_ctx *c, struct ostate *st, int o, int64_t i, int64_t cnt) {
    int64_t k = ((int64_t)o * (st->nd + 1) + i) * (st->cap + 1) + cnt;
    if (st->d[k] < 0) {
        st->d[k] = nt_new(c, st->n->ptr);
        st->work[st->nw++] = k;
    }
    return st->d[k];
}

static int32_t get_x(struct js_ctx *c, struct ostate *st, int64_t cnt, int ex) {
    int64_t k = cnt * 2 + ex;
    if (st->x[k] < 0) {
        st->x[k] = nt_new(c, st->n->ptr);
        st->work[st->nw++] = -1 - k;
    }
    return st->x[k];
}

static bool default_object(const struct js_node *n) {
    return !n->n_props && !n->n_req && (!n->addl || n->addl->kind == JS_ANY) && !n->n_pprops &&
           (!n->names || n->names->kind == JS_ANY) && n->min_props == 0 && n->max_props < 0;
}

static struct gsym gen_object(struct js_ctx *c, struct js_node *n) {
    if (default_object(n)) {
        if (is_nothing(any_value(c))) return NOTHING;
        return sym_nt(c->any_obj_nt);
    }
    /* the declared names: properties, then the required ones it lacks */
    int32_t nd = 0, capd = n->n_props + n->n_req;
    struct okey *D = js_alloc(c, ((size_t)capd + 1) * sizeof *D);
    const struct lmql_val **dnames = js_alloc(c, ((size_t)capd + 1) * sizeof *dnames);
    if (!D || !dnames) return NOTHING;
    for (int pass = 0; pass < 2; pass++) {
        int32_t cnt = pass ? n->n_req : n->n_props;
        for (int32_t i = 0; i < cnt; i++) {
            const struct lmql_val *name = pass ? n->req[i] : n->props[i].name;
            bool dup = false;
            for (int32_t j = 0; j < nd && !dup; j++) dup = D[j].name->u.str.len == name->u.str.len && !memcmp(D[j].name->u.str.s, name->u.str.s, name->u.str.len);
            if (dup) continue;
            bool err, req = false;
            for (int32_t j = 0; j < n->n_req && !req; j++)
                req = n->req[j]->u.str.len == name->u.str.len && !memcmp(n->req[j]->u.str.s, name->u.str.s, name->u.str.len);
            struct js_node *s = js_key_schema(c, n, name, &err);
            if (err) return NOTHING;
            struct gsym v = s ? gen(c, s) : any_value(c);
            if (c->failed) return NOTHING;
            if (req && is_nothing(v)) return NOTHING;   /* a required property that no value satisfies */
            dnames[nd] = name;
            D[nd++] = (struct okey){name, v, req};
        }
    }
    /* the other names: their key regexes and values */
    int32_t nx = 0;
    const char *xkey[65];
    struct gsym xval[65];
    bool addl_none = n->addl && n->addl->kind == JS_NONE;
    struct js_node *names = n->names;
    if (names && names->kind == JS_REF) names = js_def_node(c, names->def, names->ptr);
    if (c->failed) return NOTHING;
    if (names && names->kind == JS_TYPED && (names->types & JT_STR) && !names->n_pat && !names->format &&
        !names->n_not_str && names->min_len == 0 && names->max_len < 0)
        names = NULL;   /* every string: no constraint on names */
    if (names && names->kind == JS_ANY) names = NULL;
    if (n->n_pprops || (names && nd && names->kind != JS_ENUM && names->kind != JS_NONE)) {
        /* names by automata: under each pattern (surely matching it) but no
        ** declared name; under no pattern (in any reading) nor declared;
        ** within propertyNames */
        struct js_cdfa *notd = nd ? js_cdfa_not_names(c, dnames, nd) : NULL, *nm = NULL, *any_p = NULL;
        if (nd && !notd) return NOTHING;
        if (names) {
            if (names->kind != JS_TYPED || !(names->types & JT_STR))
                return js_fail(c, names->ptr, "propertyNames: only a string schema or an enum can be enforced here"), NOTHING;
            if (!(nm = string_dfa(c, names, "propertyNames"))) return NOTHING;
        }
        for (int32_t i = 0; i < n->n_pprops && nx < 64; i++) {
            struct js_cnfa lo, up;
            if (js_pattern_cnfa(c, n->pprops[i].pattern, n->pprops[i].ptr, false, &lo) ||
                js_pattern_cnfa(c, n->pprops[i].pattern, n->pprops[i].ptr, true, &up))
                return NOTHING;
            struct js_cdfa *dl = js_cdfa_of(c, &lo, n->pprops[i].ptr), *du = dl ? js_cdfa_of(c, &up, n->pprops[i].ptr) : NULL;
            if (!du) return NOTHING;
            if (any_p) {
                /* a name two patterns may match would need both schemas */
                struct js_cdfa *both = js_cdfa_product(c, any_p, du, true, n->pprops[i].ptr);
                if (!both) return NOTHING;
                if (!js_cdfa_empty(both))
                    return js_fail(c, n->pprops[i].ptr,
                                   "patternProperties whose patterns may match one name cannot be enforced exactly"),
                           NOTHING;
            }
            if (!(any_p = any_p ? js_cdfa_product(c, any_p, du, false, n->pprops[i].ptr) : du)) return NOTHING;
            struct gsym v = gen(c, n->pprops[i].node);
            if (c->failed) return NOTHING;
            if (is_nothing(v)) continue;
            const char *rx;
            if (!notd && !nm) {
                /* the pattern alone: its own regex */
                bool empty;
                struct js_rxparts parts;
                rx = js_rx_pattern(c, n->pprops[i].pattern, n->pprops[i].ptr, 0, -1, &empty, &parts);
            } else {
                struct js_cdfa *k = dl;
                if ((notd && !(k = js_cdfa_product(c, k, notd, true, n->pprops[i].ptr))) ||
                    (nm && !(k = js_cdfa_product(c, k, nm, true, n->pprops[i].ptr))))
                    return NOTHING;
                rx = js_cdfa_regex(c, k, n->pprops[i].ptr);
            }
            if (!rx) return NOTHING;
            xkey[nx] = rx;
            xval[nx++] = v;
        }
        if (!addl_none) {
            struct gsym v = n->addl ? gen(c, n->addl) : any_value(c);
            if (c->failed) return NOTHING;
            if (!is_nothing(v)) {
                struct js_cdfa *k = any_p;
                if (k) js_cdfa_complement(k);
                if ((k && notd && !(k = js_cdfa_product(c, k, notd, true, n->ptr))) ||
                    (k && nm && !(k = js_cdfa_product(c, k, nm, true, n->ptr))))
                    return NOTHING;
                if (!k) k = notd && nm ? js_cdfa_product(c, notd, nm, true, n->ptr) : notd ? notd : nm;
                const char *rx = k ? js_cdfa_regex(c, k, n->ptr) : rx_string_any(c);
                if (!rx) return NOTHING;
                xkey[nx] = rx;
                xval[nx++] = v;
            }
        }
    } else if (!addl_none) {
        const char *k = NULL;
        if (!names) {
            k = nd ? rx_key_except(c, dnames, nd, n->ptr) : rx_string_any(c);
        } else if (names->kind == JS_NONE) {
            k = NULL;
        } else if (names->kind == JS_ENUM) {
            struct lmql__buf b = {0};
            int rc = lmql__buf_adds(&b, "(?:"), got = 0;
            for (int32_t i = 0; !rc && i < names->n_vals; i++) {
                const struct lmql_val *v = names->vals[i];
                bool decl = false;
                for (int32_t j = 0; j < nd && !decl; j++) decl = v->kind == LMQL_V_STR && js_equal(v, dnames[j]);
                if (v->kind != LMQL_V_STR || decl) continue;
                rc = (got++ && lmql__buf_add(&b, "|", 1)) || js_rx_value(c, &b, v);
            }
            rc = rc || lmql__buf_add(&b, ")", 1);
            k = rc ? js_oom(c) : got ? js_strdup(c, b.data, b.len) : NULL;
            lmql__buf_free(&b);
        } else if (names->kind == JS_TYPED) {
            if (!(names->types & JT_STR)) k = NULL;
            else {
                struct gsym s = gen_string(c, names);
                if (c->failed) return NOTHING;
                if (!is_nothing(s) && !s.rx)
                    return js_fail(c, names->ptr, "propertyNames with a long length bound cannot be enforced"), NOTHING;
                k = s.rx;
            }
        } else {
            return js_fail(c, names->ptr, "propertyNames: only a string schema or an enum can be enforced"), NOTHING;
        }
        if (c->failed) return NOTHING;
        if (k) {
            struct gsym v = n->addl ? gen(c, n->addl) : any_value(c);
            if (c->failed) return NOTHING;
            if (!is_nothing(v)) {
                xkey[nx] = k;
                xval[nx++] = v;
            }
        }
    }
    /* states: counts saturate at max(min, 1) when there is no maximum */
    int64_t mn = n->min_props, mx = n->max_props;
    int64_t cap = mx >= 0 ? mx : (mn > 1 ? mn : 1);
    if (mx >= 0 && mn > mx) return NOTHING;
    if ((int64_t)(nd + 1) * (cap + 1) > JS_MAX_NT / 4)
        return js_fail(c, n->ptr, "minProperties/maxProperties with this many properties make the grammar too large"), NOTHING;
    /* two orders: the properties' (then the required names they lack), and
    ** the required names' first (then the other properties) */
    int32_t *ord = js_alloc(c, 2 * ((size_t)nd + 1) * sizeof *ord);
    if (!ord) return NOTHING;
    int32_t k = 0;
    for (int32_t i = 0; i < nd; i++) ord[i] = i;
    for (int32_t r = 0; r < n->n_req; r++)
        for (int32_t i = 0; i < nd; i++)
            if (D[i].req && D[i].name->u.str.len == n->req[r]->u.str.len &&
                !memcmp(D[i].name->u.str.s, n->req[r]->u.str.s, n->req[r]->u.str.len))
                ord[nd + k++] = i;
    for (int32_t i = 0; i < nd; i++)
        if (!D[i].req) ord[nd + k++] = i;
    int norders = k == nd && memcmp(ord, ord + nd, (size_t)nd * sizeof *ord) ? 2 : 1;
    struct ostate st = {n, cap, nd, ord, NULL, NULL, NULL, 0};
    size_t nds = (size_t)norders * (size_t)(nd + 1) * (size_t)(cap + 1);
    st.d = js_alloc(c, nds * sizeof *st.d);
    st.x = js_alloc(c, (size_t)(cap + 1) * 2 * sizeof *st.x);
    st.work = js_alloc(c, (nds + (size_t)(cap + 1) * 2 + 1) * sizeof *st.work);
    if (!st.d || !st.x || !st.work) return NOTHING;
    for (size_t i = 0; i < nds; i++) st.d[i] = -1;
    for (int64_t i = 0; i < (cap + 1) * 2; i++) st.x[i] = -1;
    int32_t start = get_d(c, &st, 0, 0, 0);
    if (norders == 2) {
        int32_t s0 = start, s1 = get_d(c, &st, 1, 0, 0);
        start = nt_new(c, n->ptr);
        if (alt1(c, start, sym_nt(s0), n->ptr) || alt1(c, start, sym_nt(s1), n->ptr)) return NOTHING;
    }
    while (st.nw > 0 && !c->failed) {
        int64_t s = st.work[--st.nw];
        if (s >= 0) {
            int64_t cnt = s % (cap + 1), oi = s / (cap + 1), i = oi % (nd + 1);
            int o = (int)(oi / (nd + 1));
            int32_t lhs = st.d[s];
            if (i == nd) {
                if (alt1(c, lhs, sym_nt(get_x(c, &st, cnt, 0)), n->ptr)) break;
                continue;
            }
            const struct okey *d = &D[ord[o * nd + i]];
            if (!is_nothing(d->val) && (mx < 0 || cnt < mx)) {
                struct lmql__buf b = {0};
                int rc = js_enc_str(&b, d->name->u.str.s, d->name->u.str.len);
                struct lmql__buf r = {0};
                rc = rc || lmql__buf_adds(&r, cnt ? c->p_comma : c->p_lbrace) || js_rx_literal(&r, b.data, b.len) ||
                     lmql__buf_adds(&r, c->p_colon);
                const char *key = rc ? js_oom(c) : js_strdup(c, r.data, r.len);
                lmql__buf_free(&b);
                lmql__buf_free(&r);
                int64_t nc = cnt + 1 > cap ? cap : cnt + 1;
                if (!key || alt3(c, lhs, sym_rx(key), d->val, sym_nt(get_d(c, &st, o, i + 1, nc)), n->ptr)) break;
            }
            if (!d->req && alt1(c, lhs, sym_nt(get_d(c, &st, o, i + 1, cnt)), n->ptr)) break;
        } else {
            int64_t code = -1 - s, cnt = code / 2, ex = code % 2;
            int32_t lhs = st.x[code];
            if (cnt >= mn && alt1(c, lhs, sym_rx(cnt ? c->p_rbrace : c->p_empty_obj), n->ptr)) break;
            /* below the minimum only one other name counts: two could be one
            ** name written twice */
            if ((mx >= 0 && cnt >= mx) || (ex && cnt < mn)) continue;
            int64_t nc = cnt + 1 > cap ? cap : cnt + 1;
            int nex = nc < mn ? 1 : 0;
            for (int32_t q = 0; q < nx; q++) {
                /* the key on its own: the same terminal after "{" and "," */
                struct gsym it[5] = {sym_rx(cnt ? c->p_comma : c->p_lbrace), sym_solo(xkey[q]), sym_rx(c->p_colon), xval[q],
                                     sym_nt(get_x(c, &st, nc, nex))};
                if (add_alt(c, lhs, it, 5, n->ptr)) break;
            }
        }
    }
    if (c->failed || start < 0) return NOTHING;
    return sym_nt(start);
}

/* A trie of the names' characters. */
struct tnode {
    uint32_t cp;
    int32_t kid, next;   /* first child, next sibling; -1: none */
    bool end;            /* a name ends here */
    bool open;           /* some node at or below is not an end */
};

struct ktrie {
    struct js_ctx *c;
    struct tnode *t;
    int32_t n;
    uint32_t *small;     /* the characters a node's own class covers (pairs) */
    int n_small;
    struct lmql__buf *b;
};

static int rx_char_of(struct lmql__buf *b, uint32_t cp) {
    /* the canonical spelling of one character, as a regex */
    if (cp >= 0x20 && cp != '"' && cp != '\\') return js_rx_cp(b, cp);
    uint32_t r[2] = {cp, cp};
    return js_rx_cset(b, r, 1) < 0 ? -1 : 0;
}

/* B: the proper prefixes that are no name (stop at a node that is no end). */
static int kt_stop(struct ktrie *k, int32_t x) {
    struct lmql__buf *b = k->b;
    bool first = true;
    if (lmql__buf_adds(b, "(?:")) return -1;
    if (!k->t[x].end) first = false;   /* the empty alternative */
    for (int32_t y = k->t[x].kid; y >= 0; y = k->t[y].next) {
        if (!k->t[y].open) continue;
        if ((!first || !k->t[x].end) && lmql__buf_add(b, "|", 1)) return -1;
        if (rx_char_of(b, k->t[y].cp) || kt_stop(k, y)) return -1;
        first = false;
    }
    return lmql__buf_add(b, ")", 1);
}

/* A: a path, then a character of the small set that is no child there. */
static int kt_leave(struct ktrie *k, int32_t x) {
    struct lmql__buf *b = k->b;
    size_t nkids = 0;
    for (int32_t y = k->t[x].kid; y >= 0; y = k->t[y].next) nkids++;
    uint32_t *r = lmql__malloc(((size_t)k->n_small + nkids + 2) * 2 * sizeof *r);
    if (!r) return -1;
    /* small minus the children */
    int nr = 0;
    for (int i = 0; i < k->n_small; i++) {
        uint32_t lo = k->small[2 * i], hi = k->small[2 * i + 1];
        /* split [lo, hi] around the children (few: names are short) */
        uint32_t cur = lo;
        while (cur <= hi) {
            uint32_t stop = hi;
            bool hit = false;
            for (int32_t y = k->t[x].kid; y >= 0; y = k->t[y].next) {
                uint32_t cp = k->t[y].cp;
                if (cp == cur) hit = true;
                else if (cp > cur && cp <= stop) stop = cp - 1;
            }
            if (hit) {
                cur++;
                continue;
            }
            r[2 * nr] = cur;
            r[2 * nr + 1] = stop;
            nr++;
            if (stop == 0x10FFFF) break;
            cur = stop + 1;
        }
    }
    int rc = lmql__buf_adds(b, "(?:");
    bool first = true;
    if (!rc && nr) {
        rc = js_rx_cset(b, r, nr) < 0;
        first = false;
    }
    free(r);
    for (int32_t y = k->t[x].kid; !rc && y >= 0; y = k->t[y].next) {
        rc = (!first && lmql__buf_add(b, "|", 1)) || rx_char_of(b, k->t[y].cp) || kt_leave(k, y);
        first = false;
    }
    return rc || lmql__buf_add(b, ")", 1) ? -1 : 0;
}

/* Pref: any path from the root (every prefix of every name). */
static int kt_pref(struct ktrie *k, int32_t x) {
    struct lmql__buf *b = k->b;
    if (k->t[x].kid < 0) return 0;
    if (lmql__buf_adds(b, "(?:")) return -1;
    for (int32_t y = k->t[x].kid; y >= 0; y = k->t[y].next)
        if (lmql__buf_add(b, "|", 1) || rx_char_of(b, k->t[y].cp) || kt_pref(k, y)) return -1;
    return lmql__buf_add(b, ")", 1);
}

static bool kt_mark_open(struct tnode *t, int32_t x) {
    bool open = !t[x].end;
    for (int32_t y = t[x].kid; y >= 0; y = t[y].next) open |= kt_mark_open(t, y);
    return t[x].open = open;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/*
** The JSON strings (json.dumps's spelling) that are none of names[0..n):
** those that stop at a node of the names' trie where no name ends (B), or
** leave the trie with a character that is no child there and go on with
** anything. The characters that occur in no name leave from every node
** alike, so they are written once after "any path" (Pref X); only the
** printable ASCII ones and those the names use are written per node (A):
**   "(?: B | (?: A | Pref X ) any* )"
*/
static const char *rx_key_except(struct js_ctx *c, const struct lmql_val **names, int32_t n, const char *ptr) {
    size_t total = 1;
    for (int32_t i = 0; i < n; i++) total += names[i]->u.str.len;
    struct tnode *t = js_alloc(c, total * sizeof *t);
    uint32_t *used = js_alloc(c, (total + 1) * sizeof *used);
    if (!t || !used) return NULL;
    int32_t nt = 1, nused = 0;
    t[0] = (struct tnode){0, -1, -1, false, false};
    for (int32_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)names[i]->u.str.s;
        size_t len = names[i]->u.str.len, at = 0;
        int32_t cur = 0, depth = 0;
        while (at < len) {
            uint32_t cp = 0xFFFD;
            size_t l = lmql__utf8_decode(s + at, len - at, &cp);
            at += l ? l : 1;
            if (++depth > 200) return js_fail(c, ptr, "a property name longer than 200 characters");
            int32_t y = t[cur].kid;
            while (y >= 0 && t[y].cp != cp) y = t[y].next;
            if (y < 0) {
                y = nt++;
                t[y] = (struct tnode){cp, -1, t[cur].kid, false, false};
                t[cur].kid = y;
                used[nused++] = cp;
            }
            cur = y;
        }
        t[cur].end = true;
    }
    kt_mark_open(t, 0);
    /* the small set: printable ASCII but " and \, and every character used */
    qsort(used, (size_t)nused, sizeof *used, cmp_u32);
    uint32_t *small = js_alloc(c, ((size_t)nused + 4) * 2 * sizeof *small);
    if (!small) return NULL;
    int ns = 0;
    small[ns * 2] = 0x20; small[ns * 2 + 1] = 0x7E; ns++;
    for (int32_t i = 0; i < nused; i++) {
        uint32_t cp = used[i];
        if (cp >= 0x20 && cp <= 0x7E) continue;
        if (ns > 0 && small[2 * ns - 1] + 1 >= cp && small[2 * (ns - 1)] <= cp) {
            if (small[2 * ns - 1] < cp) small[2 * ns - 1] = cp;
            continue;
        }
        small[2 * ns] = cp; small[2 * ns + 1] = cp; ns++;
    }
    /* sort the pairs (controls and " \ may precede 0x20..0x7E) */
    qsort(small, (size_t)ns, 2 * sizeof *small, cmp_u32);
    /* the rest: everything outside the small set */
    uint32_t *rest = js_alloc(c, ((size_t)ns + 2) * 2 * sizeof *rest);
    if (!rest) return NULL;
    int nrest = 0;
    uint32_t next = 0;
    for (int i = 0; i < ns; i++) {
        if (small[2 * i] > next) { rest[2 * nrest] = next; rest[2 * nrest + 1] = small[2 * i] - 1; nrest++; }
        if (small[2 * i + 1] + 1 > next) next = small[2 * i + 1] + 1;
    }
    if (next <= 0x10FFFF) { rest[2 * nrest] = next; rest[2 * nrest + 1] = 0x10FFFF; nrest++; }
    struct lmql__buf b = {0};
    struct ktrie k = {c, t, nt, small, ns, &b};
    int rc = lmql__buf_adds(&b, "\"(?:");
    if (!rc && t[0].open) rc = kt_stop(&k, 0) || lmql__buf_add(&b, "|", 1);
    rc = rc || lmql__buf_adds(&b, "(?:") || kt_leave(&k, 0) || lmql__buf_add(&b, "|", 1) || kt_pref(&k, 0);
    if (!rc) {
        int q = js_rx_cset(&b, rest, nrest);
        rc = q < 0 || (q == 1 && lmql__buf_adds(&b, "[^\\x00-\\U0010ffff]"));
    }
    rc = rc || lmql__buf_addf(&b, ")%s*)\"", js_rx_char_canon);
    const char *res = rc ? js_oom(c) : js_strdup(c, b.data, b.len);
    lmql__buf_free(&b);
    return res;
}

static struct gsym gen_typed(struct js_ctx *c, struct js_node *n) {
    struct gsym parts[6];
    int np = 0;
    if (n->types & JT_NULL) parts[np++] = sym_rx("null");
    if ((n->types & JT_BOOL) == JT_BOOL) parts[np++] = sym_rx("(?:true|false)");
    if (n->types & JT_NUM) {
        bool empty;
        const char *rx = js_rx_number(c, n, n->types & JT_NUM, &empty);
        if (c->failed) return NOTHING;
        if (rx) parts[np++] = sym_rx(rx);
    }
    if (n->types & JT_STR) parts[np++] = gen_string(c, n);
    if (!c->failed && (n->types & JT_ARR)) parts[np++] = gen_array(c, n);
    if (!c->failed && (n->types & JT_OBJ)) parts[np++] = gen_object(c, n);
    if (c->failed) return NOTHING;
    return sym_union(c, parts, np, n->ptr);
}

static struct gsym gen(struct js_ctx *c, struct js_node *n) {
    if (c->failed || !js_step(c)) return NOTHING;
    if (n->g_done) return n->g_nt >= 0 ? sym_nt(n->g_nt) : n->g_rx ? sym_rx(n->g_rx) : NOTHING;
    if (++c->depth > JS_MAX_DEPTH * 4) {
        c->depth--;
        return js_fail(c, n->ptr, "the schema is nested too deep"), NOTHING;
    }
    struct gsym s = NOTHING;
    switch (n->kind) {
    case JS_ANY: s = any_value(c); break;
    case JS_NONE: break;
    case JS_ENUM: s = gen_enum(c, n); break;
    case JS_UNION: {
        struct gsym *alts = js_alloc(c, (size_t)n->n_alts * sizeof *alts);
        if (!alts) break;
        for (int32_t i = 0; i < n->n_alts && !c->failed; i++) alts[i] = gen(c, n->alts[i]);
        if (!c->failed) s = sym_union(c, alts, n->n_alts, n->ptr);
        break;
    }
    case JS_REF: {
        if (c->defs[n->def].nt >= 0) {
            s = sym_nt(c->defs[n->def].nt);
            break;
        }
        int32_t nt = nt_new(c, c->defs[n->def].ptr);
        if (nt < 0) break;
        c->defs[n->def].nt = nt;
        struct js_node *d = js_def_node(c, n->def, n->ptr);
        if (!d) break;
        struct gsym body = gen(c, d);
        if (c->failed) break;
        if (!is_nothing(body) && alt1(c, nt, body, n->ptr)) break;
        s = sym_nt(nt);
        break;
    }
    default: s = gen_typed(c, n); break;
    }
    c->depth--;
    if (c->failed) return NOTHING;
    n->g_done = true;
    n->g_nt = s.nt;
    n->g_rx = s.rx;
    return s;
}

/* --------------------------------------------------------- emission -- */

struct lmql_grammar *js_generate(struct js_ctx *c, struct js_node *root) {
    if (c->free_ws) {
#define WS "[ \\t\\n\\r]{0,32}"
        c->p_lbrace = "\\{" WS;
        c->p_rbrace = WS "\\}";
        c->p_lbrack = "\\[" WS;
        c->p_rbrack = WS "\\]";
        c->p_comma = WS "," WS;
        c->p_colon = WS ":" WS;
        c->p_empty_obj = "\\{" WS "\\}";
        c->p_empty_arr = "\\[" WS "\\]";
#undef WS
    } else {
        c->p_lbrace = "\\{";
        c->p_rbrace = "\\}";
        c->p_lbrack = "\\[";
        c->p_rbrack = "\\]";
        c->p_comma = ", ";
        c->p_colon = ": ";
        c->p_empty_obj = "\\{\\}";
        c->p_empty_arr = "\\[\\]";
    }
    int32_t start = nt_new(c, "#");
    struct gsym s = gen(c, root);
    if (c->failed) return NULL;
    if (is_nothing(s)) return js_fail(c, "#", "no JSON value is valid under this schema");
    if (alt1(c, start, s, "#")) return NULL;

    struct lmql__gb *b = lmql__gb_new();
    int32_t *tid = lmql__malloc(((size_t)c->n_rx + 1) * sizeof *tid);
    int32_t *items = lmql__malloc(((size_t)c->n_items + 1) * sizeof *items);
    if (!b || !tid || !items) {
        lmql__gb_free(b);
        free(tid);
        free(items);
        return js_oom(c);
    }
    for (int32_t i = 0; i < c->n_nt; i++)
        if (lmql__gb_nonterminal(b, c->nt_names[i]) < 0) goto oom;
    for (int32_t i = 0; i < c->n_rx; i++) {
        struct lmql__err re_err = {0};
        tid[i] = lmql__gb_regex(b, c->rx[i].text, strlen(c->rx[i].text), &re_err);
        if (tid[i] < 0) {
            lmql__gb_free(b);
            free(tid);
            free(items);
            if (re_err.status == LMQL_ERR_NOMEM) return js_oom(c);
            return js_fail(c, c->rx[i].ptr, "its regex cannot be compiled: %s", re_err.msg);
        }
    }
    for (int32_t a = 0; a < c->n_alts; a++) {
        const struct js_pgalt *al = &c->alts[a];
        for (int32_t k = 0; k < al->n; k++) {
            int32_t it = c->items[al->off + k];
            items[k] = it >= 0 ? it : LMQL_G_T(tid[-1 - it]);
        }
        if (lmql__gb_alt(b, al->lhs, items, al->n)) goto oom;
    }
    free(tid);
    free(items);
    struct lmql__err ge = {0};
    struct lmql_grammar *g = lmql__gb_finish(b, start, &ge);
    if (!g) {
        if (ge.status == LMQL_ERR_NOMEM) return js_oom(c);
        return js_fail(c, "#", "%s", ge.msg);
    }
    return g;
oom:
    lmql__gb_free(b);
    free(tid);
    free(items);
    return js_oom(c);
}
