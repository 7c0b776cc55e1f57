/*
** The regexes of the JSON Schema compiler (regex.h's syntax): JSON values
** as json.dumps writes them, string characters, ECMA-262 patterns
** translated to the JSON spelling of the strings they match, formats and
** number ranges.
**
** Every regex here describes JSON text, not decoded values: a pattern's
** "a\n" becomes the regex of the seven bytes "a\\n" plus quotes. Strings
** under a pattern, a format, an enum or as property names are spelled as
** json.dumps(ensure_ascii=False) spells them (one spelling per string, so
** a set of strings and its complement stay exact); free strings accept
** every JSON spelling.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"

/* ------------------------------------------------------------ atoms -- */

int js_rx_cp(struct lmql__buf *b, uint32_t cp) {
    if ((cp >= '0' && cp <= '9') || (cp >= 'A' && cp <= 'Z') || (cp >= 'a' && cp <= 'z') || cp == '_')
        return lmql__buf_addf(b, "%c", (char)cp);
    if (cp > 0x20 && cp < 0x7F) return lmql__buf_addf(b, "\\%c", (char)cp);
    if (cp <= 0xFF) return lmql__buf_addf(b, "\\x%02x", (unsigned)cp);
    if (cp <= 0xFFFF) return lmql__buf_addf(b, "\\u%04x", (unsigned)cp);
    return lmql__buf_addf(b, "\\U%08x", (unsigned)cp);
}

/* Decode the UTF-8 character at s[*i] (valid: values come from the JSON
** reader, which replaces what is not). */
static uint32_t utf8_next(const char *s, size_t n, size_t *i) {
    uint32_t cp = 0xFFFD;
    size_t l = lmql__utf8_decode((const unsigned char *)s + *i, n - *i, &cp);
    *i += l ? l : 1;
    return cp;
}

int js_rx_literal(struct lmql__buf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;)
        if (js_rx_cp(b, utf8_next(s, n, &i))) return -1;
    return 0;
}

int js_enc_str(struct lmql__buf *b, const char *s, size_t n) {
    if (lmql__buf_add(b, "\"", 1)) return -1;
    for (size_t i = 0; i < n;) {
        size_t at = i;
        uint32_t cp = utf8_next(s, n, &i);
        int rc;
        switch (cp) {
        case '"': rc = lmql__buf_adds(b, "\\\""); break;
        case '\\': rc = lmql__buf_adds(b, "\\\\"); break;
        case '\n': rc = lmql__buf_adds(b, "\\n"); break;
        case '\r': rc = lmql__buf_adds(b, "\\r"); break;
        case '\t': rc = lmql__buf_adds(b, "\\t"); break;
        case '\b': rc = lmql__buf_adds(b, "\\b"); break;
        case '\f': rc = lmql__buf_adds(b, "\\f"); break;
        default:
            if (cp < 0x20) rc = lmql__buf_addf(b, "\\u%04x", (unsigned)cp);
            else if (cp == 0xFFFD && lmql__utf8_seq_len((const unsigned char *)s + at, n - at) == 0)
                rc = lmql__buf_adds(b, "\xEF\xBF\xBD");
            else rc = lmql__buf_add(b, s + at, i - at);
        }
        if (rc) return -1;
    }
    return lmql__buf_add(b, "\"", 1);
}

/* The shortest digits that read back as d: digits[] (no dot) and the
** decimal exponent of the first digit (d = 0.D x 10^(exp+1)). */
int js_shortest_digits(double d, char *digits, int *exp) {
    char tmp[64];
    for (int p = 1; p <= 17; p++) {
        snprintf(tmp, sizeof tmp, "%.*e", p - 1, d);
        if (strtod(tmp, NULL) == d) break;
    }
    const char *s = tmp;
    if (*s == '-') s++;
    int n = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9') digits[n++] = *s;
    digits[n] = 0;
    *exp = *s == 'e' ? atoi(s + 1) : 0;
    while (n > 1 && digits[n - 1] == '0') digits[--n] = 0;
    return n;
}

int js_py_float(struct lmql__buf *b, double d) {
    if (isnan(d)) return lmql__buf_adds(b, "NaN");
    if (isinf(d)) return lmql__buf_adds(b, d < 0 ? "-Infinity" : "Infinity");
    char dig[32];
    int e, n = js_shortest_digits(d, dig, &e);
    if (signbit(d) && lmql__buf_adds(b, "-")) return -1;
    if (d == 0) return lmql__buf_adds(b, "0.0");
    if (e < -4 || e >= 16) {
        /* 1e-05, 1.5e+16 */
        if (lmql__buf_add(b, dig, 1)) return -1;
        if (n > 1 && (lmql__buf_add(b, ".", 1) || lmql__buf_add(b, dig + 1, (size_t)n - 1))) return -1;
        return lmql__buf_addf(b, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    }
    if (e < 0) {
        if (lmql__buf_adds(b, "0.")) return -1;
        for (int k = 0; k < -e - 1; k++)
            if (lmql__buf_add(b, "0", 1)) return -1;
        return lmql__buf_add(b, dig, (size_t)n);
    }
    for (int k = 0; k <= e; k++)
        if (lmql__buf_add(b, k < n ? &dig[k] : "0", 1)) return -1;
    if (lmql__buf_add(b, ".", 1)) return -1;
    if (n > e + 1) return lmql__buf_add(b, dig + e + 1, (size_t)(n - e - 1));
    return lmql__buf_add(b, "0", 1);
}

int js_dumps(struct lmql__buf *b, const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return lmql__buf_adds(b, "null");
    case LMQL_V_BOOL: return lmql__buf_adds(b, v->u.b ? "true" : "false");
    case LMQL_V_INT: return lmql__buf_addf(b, "%lld", (long long)v->u.i);
    case LMQL_V_FLOAT: return js_py_float(b, v->u.f);
    case LMQL_V_STR: return js_enc_str(b, v->u.str.s, v->u.str.len);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        if (lmql__buf_add(b, "[", 1)) return -1;
        for (size_t i = 0; i < v->u.list.len; i++)
            if ((i && lmql__buf_adds(b, ", ")) || js_dumps(b, v->u.list.items[i])) return -1;
        return lmql__buf_add(b, "]", 1);
    case LMQL_V_DICT:
        if (lmql__buf_add(b, "{", 1)) return -1;
        for (size_t i = 0; i < v->u.dict.len; i++) {
            const struct lmql_val *k = v->u.dict.keys[i];
            if ((i && lmql__buf_adds(b, ", ")) || k->kind != LMQL_V_STR || js_enc_str(b, k->u.str.s, k->u.str.len) ||
                lmql__buf_adds(b, ": ") || js_dumps(b, v->u.dict.vals[i]))
                return -1;
        }
        return lmql__buf_add(b, "}", 1);
    default: return -1;
    }
}

int js_rx_value(struct js_ctx *c, struct lmql__buf *b, const struct lmql_val *v) {
    struct lmql__buf t = {0};
    int rc = 0;
    switch (v->kind) {
    case LMQL_V_INT:
        rc = lmql__buf_addf(&t, "%lld", (long long)v->u.i) || js_rx_literal(b, t.data, t.len) ||
             lmql__buf_adds(b, "(?:\\.0)?");
        break;
    case LMQL_V_FLOAT: {
        double d = v->u.f;
        rc = js_py_float(&t, d);
        size_t n = t.len;
        /* 5.0 is also written 5 (the same JSON number) */
        bool integral = !rc && n > 2 && !strcmp(t.data + n - 2, ".0");
        if (!rc) rc = js_rx_literal(b, t.data, integral ? n - 2 : n);
        if (!rc && integral) rc = lmql__buf_adds(b, "(?:\\.0)?");
        break;
    }
    case LMQL_V_STR:
        rc = js_enc_str(&t, v->u.str.s, v->u.str.len) || js_rx_literal(b, t.data, t.len);
        break;
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        if (v->u.list.len == 0) {
            rc = lmql__buf_adds(b, c->p_empty_arr);
            break;
        }
        rc = lmql__buf_adds(b, c->p_lbrack);
        for (size_t i = 0; !rc && i < v->u.list.len; i++)
            rc = (i && lmql__buf_adds(b, c->p_comma)) || js_rx_value(c, b, v->u.list.items[i]);
        rc = rc || lmql__buf_adds(b, c->p_rbrack);
        break;
    case LMQL_V_DICT:
        if (v->u.dict.len == 0) {
            rc = lmql__buf_adds(b, c->p_empty_obj);
            break;
        }
        rc = lmql__buf_adds(b, c->p_lbrace);
        for (size_t i = 0; !rc && i < v->u.dict.len; i++) {
            const struct lmql_val *k = v->u.dict.keys[i];
            t.len = 0;
            rc = (i && lmql__buf_adds(b, c->p_comma)) || k->kind != LMQL_V_STR ||
                 js_enc_str(&t, k->u.str.s, k->u.str.len) || js_rx_literal(b, t.data, t.len) ||
                 lmql__buf_adds(b, c->p_colon) || js_rx_value(c, b, v->u.dict.vals[i]);
        }
        rc = rc || lmql__buf_adds(b, c->p_rbrace);
        break;
    default: {
        rc = js_dumps(&t, v) || js_rx_literal(b, t.data, t.len);
        break;
    }
    }
    lmql__buf_free(&t);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------- characters -- */

/* Any character of a JSON string in any spelling: raw (valid UTF-8 but "
** \ and control characters), a short escape, \uXXXX of a non-surrogate, or
** a surrogate pair (one character). */
const char js_rx_char_any[] =
    "(?:[^\"\\\\\\x00-\\x1f]|\\\\[\"\\\\/bfnrt]|\\\\u(?:[0-9a-cA-CefEF][0-9a-fA-F]{3}|[dD][0-7][0-9a-fA-F]{2})"
    "|\\\\u[dD][89abAB][0-9a-fA-F]{2}\\\\u[dD][c-fC-F][0-9a-fA-F]{2})";

/* Any character as json.dumps(ensure_ascii=False) writes it. */
const char js_rx_char_canon[] = "(?:[^\"\\\\\\x00-\\x1f]|\\\\[\"\\\\bfnrt]|\\\\u00(?:0[0-7bBeEfF]|1[0-9a-fA-F]))";

static int hexnib(struct lmql__buf *b, unsigned v) {
    static const char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
    if (v < 10) return lmql__buf_add(b, &lo[v], 1);
    char two[2] = {lo[v], up[v]};
    return lmql__buf_add(b, two, 2);
}

int js_rx_cset(struct lmql__buf *b, const uint32_t *r, int n) {
    /* which of the characters json.dumps escapes are in the set */
    bool in[0x5D] = {0};
    bool raw_any = false;
    for (int i = 0; i < n; i++) {
        uint32_t lo = r[2 * i], hi = r[2 * i + 1];
        for (uint32_t cp = lo; cp <= hi && cp < 0x5D; cp++)
            if (cp < 0x20 || cp == '"' || cp == '\\') in[cp] = true;
        /* raw characters: anything in [lo, hi] but " \ and controls */
        for (uint32_t x = lo; x <= hi; x++) {
            if (x >= 0x20 && x != '"' && x != '\\' && !(x >= 0xD800 && x <= 0xDFFF)) { raw_any = true; break; }
            if (x >= 0xE000) break;
        }
    }
    int alts = raw_any;
    for (int k = 0; k < 0x5D; k++) alts += in[k];
    if (alts == 0) return 1;
    if (lmql__buf_adds(b, "(?:")) return -1;
    bool first = true;
    if (raw_any) {
        if (lmql__buf_add(b, "[", 1)) return -1;
        for (int i = 0; i < n; i++) {
            uint32_t lo = r[2 * i], hi = r[2 * i + 1];
            /* split around the escaped ones */
            uint32_t cuts[][2] = {{0x20, 0x21}, {0x23, 0x5B}, {0x5D, 0x10FFFF}};
            for (int k = 0; k < 3; k++) {
                uint32_t a = lo > cuts[k][0] ? lo : cuts[k][0], z = hi < cuts[k][1] ? hi : cuts[k][1];
                if (a > z) continue;
                if (js_rx_cp(b, a)) return -1;
                if (z > a && (lmql__buf_add(b, "-", 1) || js_rx_cp(b, z))) return -1;
            }
        }
        if (lmql__buf_add(b, "]", 1)) return -1;
        first = false;
    }
    static const struct { int cp; const char *rx; } named[] = {
        {'"', "\\\\\""}, {'\\', "\\\\\\\\"}, {'\b', "\\\\b"}, {'\t', "\\\\t"}, {'\n', "\\\\n"}, {'\f', "\\\\f"}, {'\r', "\\\\r"}};
    for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
        if (!in[named[k].cp]) continue;
        if ((!first && lmql__buf_add(b, "|", 1)) || lmql__buf_adds(b, named[k].rx)) return -1;
        in[named[k].cp] = false;
        first = false;
    }
    /* the other control characters as \u00XX (either case of hex) */
    for (unsigned hi = 0; hi < 2; hi++) {
        bool any = false;
        for (unsigned lo = 0; lo < 16; lo++) any |= in[hi * 16 + lo];
        if (!any) continue;
        if ((!first && lmql__buf_add(b, "|", 1)) || lmql__buf_addf(b, "\\\\u00%u[", hi)) return -1;
        for (unsigned lo = 0; lo < 16; lo++)
            if (in[hi * 16 + lo] && hexnib(b, lo)) return -1;
        if (lmql__buf_add(b, "]", 1)) return -1;
        first = false;
    }
    return lmql__buf_add(b, ")", 1);
}

/* ------------------------------------------------------ ECMA patterns -- */

/* A set of code points as sorted, disjoint [lo, hi] pairs. */
struct rset {
    uint32_t *r;
    int n, cap;
};

static int rs_add(struct js_ctx *c, struct rset *s, uint32_t lo, uint32_t hi) {
    if (s->n == s->cap) {
        int nc = s->cap ? s->cap * 2 : 8;
        uint32_t *q = lmql__arena_grow(&c->arena, s->r, (size_t)s->n * 2, (size_t)nc * 2, sizeof *q);
        if (!q) return -1;
        s->r = q;
        s->cap = nc;
    }
    s->r[2 * s->n] = lo;
    s->r[2 * s->n + 1] = hi;
    s->n++;
    return 0;
}

static int cmp_pair(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void rs_norm(struct rset *s) {
    if (s->n == 0) return;
    qsort(s->r, (size_t)s->n, 2 * sizeof *s->r, cmp_pair);
    int m = 0;
    for (int i = 0; i < s->n; i++) {
        uint32_t lo = s->r[2 * i], hi = s->r[2 * i + 1];
        if (m > 0 && lo <= s->r[2 * m - 1] + 1) {
            if (hi > s->r[2 * m - 1]) s->r[2 * m - 1] = hi;
        } else {
            s->r[2 * m] = lo;
            s->r[2 * m + 1] = hi;
            m++;
        }
    }
    s->n = m;
}

/* [0, top] minus s (s normalized). */
static int rs_complement(struct js_ctx *c, const struct rset *s, uint32_t top, struct rset *out) {
    uint32_t next = 0;
    for (int i = 0; i < s->n && next <= top; i++) {
        if (s->r[2 * i] > next && rs_add(c, out, next, s->r[2 * i] - 1 < top ? s->r[2 * i] - 1 : top)) return -1;
        next = s->r[2 * i + 1] + 1;
    }
    if (next <= top && rs_add(c, out, next, top)) return -1;
    return 0;
}

static int rs_add_table(struct js_ctx *c, struct rset *s, const uint32_t *t, int n) {
    for (int i = 0; i < n; i++)
        if (rs_add(c, s, t[2 * i], t[2 * i + 1])) return -1;
    return 0;
}

/* The shorthands. ECMA-262 and Python's re (which the benchmark's validator
** and most others use) disagree on \d \w \s beyond ASCII, so each has a
** lower set (in both readings: used where the class matches) and an upper
** set (in either reading: subtracted where a class is negated). */
static const uint32_t SH_DIGIT[] = {'0', '9'};
static const uint32_t SH_DIGIT_HI[] = {'0', '9', 0x660, 0x10FFFF};
static const uint32_t SH_WORD[] = {'0', '9', 'A', 'Z', '_', '_', 'a', 'z'};
static const uint32_t SH_WORD_HI[] = {'0', '9', 'A', 'Z', '_', '_', 'a', 'z', 0x80, 0x10FFFF};
static const uint32_t SH_SPACE[] = {9, 13, 32, 32, 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A,
                                    0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000};
static const uint32_t SH_SPACE_HI[] = {9, 13, 0x1C, 0x20, 0x85, 0x85, 0xA0, 0xA0, 0x1680, 0x1680, 0x2000, 0x200A,
                                       0x2028, 0x2029, 0x202F, 0x202F, 0x205F, 0x205F, 0x3000, 0x3000, 0xFEFF, 0xFEFF};

/* Add shorthand letter sh to lo (its lower set) and hi (its upper set).
** Negated shorthands are within the BMP: without the u flag ECMA matches
** UTF-16 units, so a character past U+FFFF is two of them. */
static int add_shorthand(struct js_ctx *c, char sh, struct rset *lo, struct rset *hi) {
    const uint32_t *t, *th;
    int n, nh;
    switch (sh | 0x20) {
    case 'd': t = SH_DIGIT; n = 1; th = SH_DIGIT_HI; nh = 2; break;
    case 'w': t = SH_WORD; n = 4; th = SH_WORD_HI; nh = 5; break;
    default: t = SH_SPACE; n = 9; th = SH_SPACE_HI; nh = 11; break;
    }
    if (sh >= 'a') return rs_add_table(c, lo, t, n) || rs_add_table(c, hi, th, nh) ? -1 : 0;
    /* \D \W \S: the lower set is the BMP minus the upper set of the
    ** positive one, the upper set everything but the lower positive one */
    struct rset a = {0}, b = {0}, x = {0}, y = {0};
    if (rs_add_table(c, &a, th, nh) || rs_add_table(c, &b, t, n)) return -1;
    rs_norm(&a);
    rs_norm(&b);
    if (rs_complement(c, &a, 0xFFFF, &x) || rs_complement(c, &b, 0x10FFFF, &y)) return -1;
    return rs_add_table(c, lo, x.r, x.n) || rs_add_table(c, hi, y.r, y.n) ? -1 : 0;
}

enum { PA_SET, PA_SEQ, PA_ALT, PA_REP, PA_BOL, PA_EOL };

struct pa {
    int kind;
    struct rset set;    /* SET: what matches in every reading (ECMA-262, with or without u; Python) */
    struct rset up;     /* SET: what matches in some reading */
    struct pa **k;
    int nk;
    int64_t min, max;   /* REP; max -1: unbounded */
};

struct pparse {
    struct js_ctx *c;
    const char *p;
    size_t n, i;
    const char *ptr;
    int depth;
    bool upper;   /* translate what matches in some reading (a superset), not in all */
};

static void *pfail(struct pparse *P, const char *what) {
    int show = P->n > 120 ? 120 : (int)P->n;
    return js_fail(P->c, P->ptr, "pattern \"%.*s%s\": %s (at offset %zu); this pattern cannot be enforced", show, P->p,
                   P->n > 120 ? "..." : "", what, P->i);
}

static struct pa *pa_new(struct pparse *P, int kind) {
    struct pa *a = js_alloc(P->c, sizeof *a);
    if (a) a->kind = kind;
    return a;
}

static int pa_push(struct pparse *P, struct pa *parent, struct pa *kid) {
    struct pa **k = lmql__arena_grow(&P->c->arena, parent->k, (size_t)parent->nk, (size_t)parent->nk + 1, sizeof *k);
    if (!k) return -1;
    k[parent->nk++] = kid;
    parent->k = k;
    return 0;
}

static int hexv(char ch) {
    return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
}

/* An escape at P->i (the backslash): 1 with *cp a character, 2 with *sh a
** shorthand letter, -1 on error. Only escapes ECMA-262 and Python read the
** same way are taken. */
static int p_escape(struct pparse *P, bool in_class, uint32_t *cp, char *sh) {
    if (P->i + 1 >= P->n) return pfail(P, "trailing backslash"), -1;
    unsigned char ch = (unsigned char)P->p[P->i + 1];
    P->i += 2;
    switch (ch) {
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S': *sh = (char)ch; return 2;
    case 'n': *cp = '\n'; return 1;
    case 'r': *cp = '\r'; return 1;
    case 't': *cp = '\t'; return 1;
    case 'f': *cp = '\f'; return 1;
    case 'v': *cp = '\v'; return 1;
    case 'b':
        if (in_class) { *cp = '\b'; return 1; }
        P->i -= 2;
        return pfail(P, "word boundary \\b is not supported"), -1;
    case '0':
        if (P->i < P->n && P->p[P->i] >= '0' && P->p[P->i] <= '9') { P->i -= 2; return pfail(P, "octal escape"), -1; }
        *cp = 0;
        return 1;
    case 'x': case 'u': {
        int nd = ch == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (int k = 0; k < nd; k++) {
            int h = P->i < P->n ? hexv(P->p[P->i]) : -1;
            if (h < 0) { P->i -= 2; return pfail(P, "incomplete \\x or \\u escape"), -1; }
            v = v * 16 + (uint32_t)h;
            P->i++;
        }
        if (v >= 0xD800 && v <= 0xDFFF) { P->i -= 2 + (size_t)nd; return pfail(P, "surrogate escape"), -1; }
        *cp = v;
        return 1;
    }
    default: break;
    }
    if (ch < 0x80 && ((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z'))) {
        P->i -= 2;
        return pfail(P, "unsupported escape (backreference, word boundary, \\c, \\p, \\k or a letter ECMA-262 and Python read differently)"), -1;
    }
    /* escaped punctuation or a non-ASCII character: itself */
    P->i -= 1;
    *cp = utf8_next(P->p, P->n, &P->i);
    return 1;
}

static struct pa *p_alt(struct pparse *P);

static struct pa *p_set1(struct pparse *P, uint32_t lo, uint32_t hi) {
    struct pa *a = pa_new(P, PA_SET);
    if (!a || rs_add(P->c, &a->set, lo, hi) || rs_add(P->c, &a->up, lo, hi)) return a ? js_oom(P->c) : NULL;
    return a;
}

static struct pa *p_class(struct pparse *P) {
    P->i++;   /* [ */
    bool neg = P->i < P->n && P->p[P->i] == '^';
    if (neg) P->i++;
    if (P->i < P->n && P->p[P->i] == ']') return pfail(P, "class starting with ']' ([] and [^] read differently in ECMA-262 and Python)");
    struct rset lo = {0}, hi = {0};
    for (;;) {
        if (P->i >= P->n) return pfail(P, "unterminated character class");
        if (P->p[P->i] == ']') { P->i++; break; }
        uint32_t a = 0, z;
        char sh = 0;
        if (P->p[P->i] == '\\') {
            int k = p_escape(P, true, &a, &sh);
            if (k < 0) return NULL;
        } else {
            a = utf8_next(P->p, P->n, &P->i);
        }
        if (!sh && a > 0xFFFF) return pfail(P, "a character past U+FFFF in a class (two UTF-16 units in ECMA-262)");
        if (P->i + 1 < P->n && P->p[P->i] == '-' && P->p[P->i + 1] != ']') {
            if (sh) return pfail(P, "a class shorthand as a range end");
            P->i++;
            char sh2 = 0;
            if (P->p[P->i] == '\\') {
                if (p_escape(P, true, &z, &sh2) < 0) return NULL;
            } else {
                z = utf8_next(P->p, P->n, &P->i);
            }
            if (sh2) return pfail(P, "a class shorthand as a range end");
            if (z > 0xFFFF) return pfail(P, "a character past U+FFFF in a class (two UTF-16 units in ECMA-262)");
            if (z < a) return pfail(P, "bad range in a class");
            if (rs_add(P->c, &lo, a, z) || rs_add(P->c, &hi, a, z)) return js_oom(P->c);
        } else if (sh) {
            if (add_shorthand(P->c, sh, &lo, &hi)) return js_oom(P->c);
        } else if (rs_add(P->c, &lo, a, a) || rs_add(P->c, &hi, a, a)) {
            return js_oom(P->c);
        }
    }
    struct pa *r = pa_new(P, PA_SET);
    if (!r) return NULL;
    rs_norm(&lo);
    rs_norm(&hi);
    if (neg) {
        /* not in the class: surely when in no reading of it, perhaps when
        ** not surely in it */
        if (rs_complement(P->c, &hi, 0xFFFF, &r->set) || rs_complement(P->c, &lo, 0x10FFFF, &r->up)) return js_oom(P->c);
    } else {
        r->set = lo;
        r->up = hi;
    }
    rs_norm(&r->set);
    rs_norm(&r->up);
    return r;
}

/* {n}, {n,}, {n,m} at P->i: 1 with the counts (P->i past it), 0 when the
** brace is not a quantifier (then it is a literal, in both dialects), -1
** on error. */
static int p_braces(struct pparse *P, int64_t *mn, int64_t *mx) {
    size_t j = P->i + 1;
    int64_t a = 0, b = -1;
    int nd = 0;
    while (j < P->n && P->p[j] >= '0' && P->p[j] <= '9') { if (a < 1000000) a = a * 10 + (P->p[j] - '0'); j++; nd++; }
    if (j < P->n && P->p[j] == ',' && nd == 0) return pfail(P, "{,n} (Python reads it as a repetition, ECMA-262 as text)"), -1;
    if (nd == 0) return 0;
    if (j < P->n && P->p[j] == '}') { b = a; j++; }
    else if (j < P->n && P->p[j] == ',') {
        j++;
        int nd2 = 0;
        int64_t v = 0;
        while (j < P->n && P->p[j] >= '0' && P->p[j] <= '9') { if (v < 1000000) v = v * 10 + (P->p[j] - '0'); j++; nd2++; }
        if (j >= P->n || P->p[j] != '}') return 0;
        j++;
        b = nd2 ? v : -1;
    } else {
        return 0;
    }
    if (b >= 0 && b < a) return pfail(P, "repetition {n,m} with m < n"), -1;
    *mn = a;
    *mx = b;
    P->i = j;
    return 1;
}

static struct pa *p_atom(struct pparse *P) {
    char ch = P->p[P->i];
    switch (ch) {
    case '(': {
        if (++P->depth > 64) return pfail(P, "groups nested too deep");
        size_t at = P->i;
        P->i++;
        if (P->i < P->n && P->p[P->i] == '?') {
            if (P->i + 1 < P->n && P->p[P->i + 1] == ':') P->i += 2;
            else if (P->i + 2 < P->n && P->p[P->i + 1] == '<' && P->p[P->i + 2] != '=' && P->p[P->i + 2] != '!') {
                P->i += 2;
                while (P->i < P->n && P->p[P->i] != '>') {
                    char q = P->p[P->i];
                    if (!((q >= 'a' && q <= 'z') || (q >= 'A' && q <= 'Z') || (q >= '0' && q <= '9') || q == '_' || q == '$'))
                        return pfail(P, "bad group name");
                    P->i++;
                }
                if (P->i >= P->n) return pfail(P, "unterminated group name");
                P->i++;
            } else {
                P->i = at;
                return pfail(P, "lookaround, inline flags and other (?...) groups are not supported");
            }
        }
        struct pa *in = p_alt(P);
        if (!in) return NULL;
        if (P->i >= P->n || P->p[P->i] != ')') return pfail(P, "missing ')'");
        P->i++;
        P->depth--;
        /* a group is a sequence of its own (so quantifiers apply to all of it) */
        if (in->kind != PA_SEQ && in->kind != PA_ALT) {
            struct pa *s = pa_new(P, PA_SEQ);
            if (!s || pa_push(P, s, in)) return s ? js_oom(P->c) : NULL;
            in = s;
        }
        return in;
    }
    case '[': return p_class(P);
    case '.': {
        P->i++;
        /* ECMA's dot: no line terminators; BMP only (UTF-16 units) */
        struct pa *a = pa_new(P, PA_SET);
        if (!a || rs_add(P->c, &a->set, 0, 9) || rs_add(P->c, &a->set, 11, 12) || rs_add(P->c, &a->set, 14, 0x2027) ||
            rs_add(P->c, &a->set, 0x202A, 0xFFFF) || rs_add(P->c, &a->up, 0, 9) || rs_add(P->c, &a->up, 11, 0x10FFFF))
            return a ? js_oom(P->c) : NULL;
        return a;
    }
    case '^': P->i++; return pa_new(P, PA_BOL);
    case '$': P->i++; return pa_new(P, PA_EOL);
    case '\\': {
        uint32_t cp = 0;
        char sh = 0;
        int k = p_escape(P, false, &cp, &sh);
        if (k < 0) return NULL;
        if (k == 1) return p_set1(P, cp, cp);
        struct pa *a = pa_new(P, PA_SET);
        if (!a || add_shorthand(P->c, sh, &a->set, &a->up)) return a ? js_oom(P->c) : NULL;
        rs_norm(&a->set);
        rs_norm(&a->up);
        return a;
    }
    case '*': case '+': case '?': return pfail(P, "nothing to repeat");
    case '{': {
        int64_t a, b;
        int k = p_braces(P, &a, &b);
        if (k < 0) return NULL;
        if (k > 0) return pfail(P, "nothing to repeat");
        P->i++;
        return p_set1(P, '{', '{');
    }
    default: {
        uint32_t cp = utf8_next(P->p, P->n, &P->i);
        return p_set1(P, cp, cp);
    }
    }
}

static struct pa *p_seq(struct pparse *P) {
    struct pa *s = pa_new(P, PA_SEQ);
    if (!s) return NULL;
    while (P->i < P->n && P->p[P->i] != '|' && P->p[P->i] != ')') {
        struct pa *a = p_atom(P);
        if (!a) return NULL;
        for (;;) {
            int64_t mn, mx;
            if (P->i >= P->n) break;
            char q = P->p[P->i];
            if (q == '*') { mn = 0; mx = -1; P->i++; }
            else if (q == '+') { mn = 1; mx = -1; P->i++; }
            else if (q == '?') { mn = 0; mx = 1; P->i++; }
            else if (q == '{') {
                int k = p_braces(P, &mn, &mx);
                if (k < 0) return NULL;
                if (k == 0) break;
            } else break;
            if (a->kind == PA_BOL || a->kind == PA_EOL) return pfail(P, "a quantifier on an anchor");
            if (a->kind == PA_REP) return pfail(P, "a quantifier on a quantifier");
            if (a->kind == PA_SET && a->set.n == 1 && a->set.r[0] > 0xFFFF)
                return pfail(P, "a quantifier on a character past U+FFFF (without the u flag it repeats half of it)");
            if (mn > JS_MAX_REP || mx > JS_MAX_REP) return pfail(P, "repetition count above 1000");
            if (P->i < P->n && P->p[P->i] == '?') P->i++;   /* lazy: the same language */
            struct pa *r = pa_new(P, PA_REP);
            if (!r || pa_push(P, r, a)) return r ? js_oom(P->c) : NULL;
            r->min = mn;
            r->max = mx;
            a = r;
        }
        if (pa_push(P, s, a)) return js_oom(P->c);
    }
    return s;
}

static struct pa *p_alt(struct pparse *P) {
    struct pa *first = p_seq(P);
    if (!first || P->i >= P->n || P->p[P->i] != '|') return first;
    struct pa *alt = pa_new(P, PA_ALT);
    if (!alt || pa_push(P, alt, first)) return alt ? js_oom(P->c) : NULL;
    while (P->i < P->n && P->p[P->i] == '|') {
        P->i++;
        struct pa *s = p_seq(P);
        if (!s || pa_push(P, alt, s)) return s ? js_oom(P->c) : NULL;
    }
    return alt;
}

static const int64_t LEN_INF = (int64_t)1 << 50;

static void pa_len(const struct pa *a, int64_t *mn, int64_t *mx) {
    switch (a->kind) {
    case PA_SET: *mn = *mx = 1; return;
    case PA_BOL: case PA_EOL: *mn = *mx = 0; return;
    case PA_REP: {
        int64_t a1, b1;
        pa_len(a->k[0], &a1, &b1);
        *mn = a1 * a->min;
        *mx = a->max < 0 ? (b1 ? LEN_INF : 0) : (b1 >= LEN_INF ? LEN_INF : b1 * a->max);
        if (*mx > LEN_INF) *mx = LEN_INF;
        return;
    }
    case PA_SEQ: {
        int64_t s1 = 0, s2 = 0;
        for (int i = 0; i < a->nk; i++) {
            int64_t x, y;
            pa_len(a->k[i], &x, &y);
            s1 += x;
            s2 = s2 >= LEN_INF || y >= LEN_INF ? LEN_INF : s2 + y;
        }
        *mn = s1 > LEN_INF ? LEN_INF : s1;
        *mx = s2;
        return;
    }
    default: {
        *mn = LEN_INF;
        *mx = 0;
        for (int i = 0; i < a->nk; i++) {
            int64_t x, y;
            pa_len(a->k[i], &x, &y);
            if (x < *mn) *mn = x;
            if (y > *mx) *mx = y;
        }
        return;
    }
    }
}

/* Whether every branch is anchored at the start (side 0) or end (side 1). */
static bool pa_anchored(const struct pa *a, int side) {
    switch (a->kind) {
    case PA_BOL: return side == 0;
    case PA_EOL: return side == 1;
    case PA_SEQ: return a->nk > 0 && pa_anchored(a->k[side ? a->nk - 1 : 0], side);
    case PA_ALT:
        for (int i = 0; i < a->nk; i++)
            if (!pa_anchored(a->k[i], side)) return false;
        return true;
    default: return false;
    }
}

static int tr_any(struct lmql__buf *b) { return lmql__buf_addf(b, "%s*", js_rx_char_canon); }

/* Translate a into b. lead: a starts the pattern, so unless it is anchored
** there the string may have anything before it (a search); trail likewise
** at the end. Anchors anywhere else are refused. */
static int tr(struct pparse *P, const struct pa *a, bool lead, bool trail, struct lmql__buf *b) {
    if (!js_step(P->c)) return -1;
    switch (a->kind) {
    case PA_SET: {
        if (lead && tr_any(b)) return -1;
        const struct rset *set = P->upper ? &a->up : &a->set;
        int k = js_rx_cset(b, set->r, set->n);
        if (k < 0) return -1;
        if (k == 1 && lmql__buf_adds(b, "[^\\x00-\\U0010ffff]")) return -1;   /* matches nothing */
        return trail ? tr_any(b) : 0;
    }
    case PA_BOL:
        if (!lead) return pfail(P, "'^' that is not at the start of the pattern"), -1;
        return trail ? tr_any(b) : 0;
    case PA_EOL:
        if (!trail) return pfail(P, "'$' that is not at the end of the pattern"), -1;
        if (lead && tr_any(b)) return -1;
        /* Python's $ also matches before a final newline */
        return P->upper ? lmql__buf_adds(b, "(?:\\\\n)?") : 0;
    case PA_SEQ:
        if (a->nk == 0) return lead || trail ? tr_any(b) : 0;
        for (int i = 0; i < a->nk; i++)
            if (tr(P, a->k[i], lead && i == 0, trail && i == a->nk - 1, b)) return -1;
        return 0;
    case PA_ALT:
        if (lmql__buf_adds(b, "(?:")) return -1;
        for (int i = 0; i < a->nk; i++)
            if ((i && lmql__buf_add(b, "|", 1)) || tr(P, a->k[i], lead, trail, b)) return -1;
        return lmql__buf_add(b, ")", 1);
    default:
        if (lead && tr_any(b)) return -1;
        if (lmql__buf_adds(b, "(?:") || tr(P, a->k[0], false, false, b) || lmql__buf_add(b, ")", 1)) return -1;
        if (a->max < 0 ? lmql__buf_addf(b, "{%lld,}", (long long)a->min)
                       : lmql__buf_addf(b, "{%lld,%lld}", (long long)a->min, (long long)a->max))
            return -1;
        return trail ? tr_any(b) : 0;
    }
}

const char *js_buf_keep(struct js_ctx *c, struct lmql__buf *b) {
    const char *s = b->data ? js_strdup(c, b->data, b->len) : js_strdup(c, "", 0);
    lmql__buf_free(b);
    return s;
}

const char *js_rx_pattern_upper(struct js_ctx *c, const struct lmql_val *pattern, const char *ptr) {
    struct pparse P = {c, pattern->u.str.s, pattern->u.str.len, 0, ptr, 0, true};
    struct pa *root = p_alt(&P);
    if (!root) return NULL;
    if (P.i < P.n) return pfail(&P, "unbalanced ')'");
    struct lmql__buf b = {0};
    if (lmql__buf_add(&b, "\"", 1) || tr(&P, root, true, true, &b) || lmql__buf_add(&b, "\"", 1)) {
        lmql__buf_free(&b);
        return c->failed ? NULL : js_oom(c);
    }
    return js_buf_keep(c, &b);
}

const char *js_rx_pattern(struct js_ctx *c, const struct lmql_val *pattern, const char *ptr, int64_t min_len,
                          int64_t max_len, bool *empty, struct js_rxparts *parts) {
    *empty = false;
    memset(parts, 0, sizeof *parts);
    struct pparse P = {c, pattern->u.str.s, pattern->u.str.len, 0, ptr, 0, false};
    struct pa *root = p_alt(&P);
    if (!root) return NULL;
    if (P.i < P.n) return pfail(&P, "unbalanced ')'");
    struct lmql__buf b = {0};
    int64_t pmin, pmax;
    pa_len(root, &pmin, &pmax);
    if (!pa_anchored(root, 0) || !pa_anchored(root, 1)) pmax = LEN_INF;
    int64_t lmax = max_len < 0 ? LEN_INF : max_len;
    if (pmin >= min_len && pmax <= lmax) {
        /* the lengths hold for every match: the pattern alone */
        if (lmql__buf_add(&b, "\"", 1) || tr(&P, root, true, true, &b) || lmql__buf_add(&b, "\"", 1)) {
            lmql__buf_free(&b);
            return c->failed ? NULL : js_oom(c);
        }
        return js_buf_keep(c, &b);
    }
    if (pmin > lmax || pmax < min_len) {
        *empty = true;
        return NULL;
    }
    /* Fold the lengths into the one item of variable length: the pattern
    ** as a sequence (with the search's implicit .* at unanchored ends),
    ** every item of fixed length but one repetition of a character set. */
    const struct pa *seq[256];
    int n = 0;
    const struct pa *const *kids = root->kind == PA_SEQ ? (const struct pa *const *)root->k : (const struct pa *const *)&root;
    int nk = root->kind == PA_SEQ ? root->nk : 1;
    if (root->kind == PA_ALT || nk > 250) goto refuse;
    bool at_start = nk > 0 && kids[0]->kind == PA_BOL, at_end = nk > 0 && kids[nk - 1]->kind == PA_EOL;
    static const struct pa any_rep = {.kind = PA_REP, .min = 0, .max = -1};
    if (!at_start) seq[n++] = &any_rep;
    for (int i = at_start; i < nk - (at_end && nk > at_start); i++) seq[n++] = kids[i];
    if (!at_end) seq[n++] = &any_rep;
    int var = -1;
    int64_t fixed = 0;
    for (int i = 0; i < n; i++) {
        int64_t x, y;
        if (seq[i] == &any_rep) { x = 0; y = LEN_INF; }
        else pa_len(seq[i], &x, &y);
        if (x == y) { fixed += x; continue; }
        if (var >= 0) goto refuse;
        var = i;
    }
    if (var < 0 || (seq[var] != &any_rep && (seq[var]->kind != PA_REP || seq[var]->k[0]->kind != PA_SET))) goto refuse;
    int64_t a = seq[var] == &any_rep ? 0 : seq[var]->min, z = seq[var] == &any_rep ? -1 : seq[var]->max;
    if (min_len - fixed > a) a = min_len - fixed;
    if (max_len >= 0 && (z < 0 || max_len - fixed < z)) z = max_len - fixed;
    if (z >= 0 && a > z) {
        *empty = true;
        return NULL;
    }
    struct lmql__buf pre = {0}, unit = {0}, post = {0};
    int rc = lmql__buf_add(&pre, "\"", 1);
    for (int i = 0; !rc && i < var; i++) rc = tr(&P, seq[i], false, false, &pre);
    if (!rc && seq[var] == &any_rep) rc = lmql__buf_adds(&unit, js_rx_char_canon);
    else if (!rc) {
        int k = js_rx_cset(&unit, seq[var]->k[0]->set.r, seq[var]->k[0]->set.n);
        rc = k < 0 ? -1 : k == 1 ? lmql__buf_adds(&unit, "[^\\x00-\\U0010ffff]") : 0;
    }
    for (int i = var + 1; !rc && i < n; i++) rc = tr(&P, seq[i], false, false, &post);
    rc = rc || lmql__buf_add(&post, "\"", 1);
    if (rc) {
        lmql__buf_free(&pre);
        lmql__buf_free(&unit);
        lmql__buf_free(&post);
        return c->failed ? NULL : js_oom(c);
    }
    parts->pre = js_buf_keep(c, &pre);
    parts->unit = js_buf_keep(c, &unit);
    parts->post = js_buf_keep(c, &post);
    parts->a = a;
    parts->b = z;
    return NULL;
refuse:
    parts->b = -2;   /* the caller tries automata, or refuses */
    return NULL;
}

/* ------------------------------------------------------------ formats -- */

#define RX_YEAR "(?:\\d{3}[1-9]|\\d{2}[1-9]\\d|\\d[1-9]\\d{2}|[1-9]\\d{3})"
#define RX_LEAP "(?:\\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
#define RX_DATE                                                                                                         \
    "(?:" RX_YEAR "\\-(?:(?:0[13578]|1[02])\\-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)\\-(?:0[1-9]|[12]\\d|30)|02\\-(?:0[1-9]|1\\d|2[0-8]))" \
    "|" RX_LEAP "\\-02\\-29)"
#define RX_TIME "(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d+)?(?:Z|[+\\-](?:[01]\\d|2[0-3]):[0-5]\\d)"
#define RX_PCT "%[0-9A-Fa-f]{2}"
#define RX_UNRES "A-Za-z0-9\\-\\._~"
#define RX_SUBD "!\\$&'\\(\\)\\*\\+,;="
#define RX_PCHAR "(?:[" RX_UNRES RX_SUBD ":@]|" RX_PCT ")"
#define RX_QUERY "(?:\\?(?:" RX_PCHAR "|[/\\?])*)?(?:#(?:" RX_PCHAR "|[/\\?])*)?"
#define RX_HOST "(?:[" RX_UNRES RX_SUBD "]|" RX_PCT ")+"
#define RX_AUTH "(?:(?:[" RX_UNRES RX_SUBD ":]|" RX_PCT ")*@)?" RX_HOST "(?::\\d*)?"
#define RX_URI "[A-Za-z][A-Za-z0-9\\+\\-\\.]*:(?://" RX_AUTH "(?:/" RX_PCHAR "*)*|" RX_PCHAR "+(?:/" RX_PCHAR "*)*)" RX_QUERY
#define RX_RELREF                                                                                                       \
    "(?://" RX_AUTH "(?:/" RX_PCHAR "*)*|/(?:" RX_PCHAR "+(?:/" RX_PCHAR "*)*)?|(?:[" RX_UNRES RX_SUBD "@]|" RX_PCT   \
    ")+(?:/" RX_PCHAR "*)*|)" RX_QUERY
#define RX_LABEL "[A-Za-z0-9](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?"
#define RX_H16 "[0-9A-Fa-f]{1,4}"
#define RX_V4 "(?:(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)\\.){3}(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)"
#define RX_LS32 "(?:" RX_H16 ":" RX_H16 "|" RX_V4 ")"
#define RX_V6                                                                                                           \
    "(?:(?:" RX_H16 ":){6}" RX_LS32 "|::(?:" RX_H16 ":){5}" RX_LS32 "|(?:" RX_H16 ")?::(?:" RX_H16 ":){4}" RX_LS32     \
    "|(?:(?:" RX_H16 ":){0,1}" RX_H16 ")?::(?:" RX_H16 ":){3}" RX_LS32 "|(?:(?:" RX_H16 ":){0,2}" RX_H16 ")?::(?:"     \
    RX_H16 ":){2}" RX_LS32 "|(?:(?:" RX_H16 ":){0,3}" RX_H16 ")?::" RX_H16 ":" RX_LS32 "|(?:(?:" RX_H16 ":){0,4}"    \
    RX_H16 ")?::" RX_LS32 "|(?:(?:" RX_H16 ":){0,5}" RX_H16 ")?::" RX_H16 "|(?:(?:" RX_H16 ":){0,6}" RX_H16 ")?::)"
#define RX_DUR_T "(?:\\d+H(?:\\d+M)?(?:\\d+S)?|\\d+M(?:\\d+S)?|\\d+S)"
#define RX_DURATION                                                                                                     \
    "P(?:(?:\\d+Y(?:\\d+M)?(?:\\d+D)?|\\d+M(?:\\d+D)?|\\d+D)(?:T" RX_DUR_T ")?|T" RX_DUR_T "|\\d+W)"

/* The strings each format accepts here: a subset of what RFC 3339, RFC
** 3986, RFC 5321 etc. allow, chosen to be valid for every validator the
** benchmark's instances were checked with (Python's format checkers
** included): dates exist (leap years, year 0001 on), times carry an offset,
** URIs are absolute with a host or a path, hostnames have at most three
** labels (so they stay under 253 characters). */
static const struct {
    const char *name, *rx;
    int64_t lmin, lmax;
} FORMATS[] = {
    {"date", RX_DATE, 10, 10},
    {"time", RX_TIME, 9, -1},
    {"date-time", RX_DATE "T" RX_TIME, 20, -1},
    {"email", "[A-Za-z0-9_%\\+\\-]+(?:\\.[A-Za-z0-9_%\\+\\-]+)*@(?:" RX_LABEL "\\.)+[A-Za-z]{2,63}", 6, -1},
    {"uuid", "[0-9a-fA-F]{8}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{4}\\-[0-9a-fA-F]{12}", 36, 36},
    {"uri", RX_URI, 3, -1},
    {"iri", RX_URI, 3, -1},
    {"uri-reference", "(?:" RX_URI "|" RX_RELREF ")", 0, -1},
    {"iri-reference", "(?:" RX_URI "|" RX_RELREF ")", 0, -1},
    {"hostname", "(?:" RX_LABEL "\\.){0,2}[A-Za-z](?:[A-Za-z0-9\\-]{0,61}[A-Za-z0-9])?", 1, 191},
    {"ipv4", RX_V4, 7, 15},
    {"ipv6", RX_V6, 2, 45},
    {"duration", RX_DURATION, 3, -1},
    {"json-pointer", NULL, 0, -1},
};

/* Defined by JSON Schema (2020-12 and earlier drafts' validators) but not
** expressible here. */
static const char *const FORMATS_REFUSED[] = {"regex", "relative-json-pointer", "uri-template", "idn-email",
                                              "idn-hostname"};

int js_format_kind(const char *name) {
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++)
        if (!strcmp(name, FORMATS[i].name)) return 1;
    for (size_t i = 0; i < sizeof FORMATS_REFUSED / sizeof FORMATS_REFUSED[0]; i++)
        if (!strcmp(name, FORMATS_REFUSED[i])) return -1;
    return 0;
}

const char *js_rx_format(struct js_ctx *c, const char *name, const char *ptr, int64_t *lmin, int64_t *lmax) {
    for (size_t i = 0; i < sizeof FORMATS / sizeof FORMATS[0]; i++) {
        if (strcmp(name, FORMATS[i].name)) continue;
        *lmin = FORMATS[i].lmin;
        *lmax = FORMATS[i].lmax;
        if (FORMATS[i].rx) return js_printf(c, "\"%s\"", FORMATS[i].rx);
        /* json-pointer: ("/" (any character but ~ and /, or ~0 ~1)*)* */
        static const uint32_t r[] = {0, '.', '0', '}', 0x7F, 0x10FFFF};
        struct lmql__buf b = {0};
        int rc = lmql__buf_adds(&b, "\"(?:/(?:") || js_rx_cset(&b, r, 3) || lmql__buf_adds(&b, "|~[01])*)*\"");
        if (rc) {
            lmql__buf_free(&b);
            return js_oom(c);
        }
        return js_buf_keep(c, &b);
    }
    return js_fail(c, ptr, "format \"%s\" is not supported", name);
}


/* ------------------------------------------------------ pattern NFAs -- */

static int32_t cn_state(struct js_ctx *c, struct js_cnfa *A) {
    if (A->n >= 50000) return (void)js_fail(c, "#", "a pattern's automaton is too large"), -1;
    return A->n++;
}

static int cn_edge(struct js_ctx *c, struct js_cnfa *A, int32_t from, int32_t to, const uint32_t *r, int nr) {
    if (from < 0 || to < 0) return -1;
    if (A->ne == A->cap) {
        int32_t nc = A->cap ? A->cap * 2 : 64;
        struct js_cedge *q = lmql__arena_grow(&c->arena, A->e, (size_t)A->ne, (size_t)nc, sizeof *q);
        if (!q) return (void)js_oom(c), -1;
        A->e = q;
        A->cap = nc;
    }
    A->e[A->ne++] = (struct js_cedge){from, to, r, nr};
    return 0;
}

static const uint32_t ALL_CHARS[] = {0, 0x10FFFF};
static const uint32_t NEWLINE[] = {'\n', '\n'};

/* A new state after `from` that loops on every character (the search's
** free text around a match). */
static int32_t cn_any(struct js_ctx *c, struct js_cnfa *A, int32_t from) {
    int32_t x = cn_state(c, A);
    if (cn_edge(c, A, from, x, NULL, 0) || cn_edge(c, A, x, x, ALL_CHARS, 1)) return -1;
    return x;
}

/* The fragment of a from state `in` to state `out`, with the anchoring of
** tr() (a search: free text where the pattern is not anchored). */
static int nf(struct pparse *P, struct js_cnfa *A, const struct pa *a, bool lead, bool trail, int32_t in, int32_t out) {
    struct js_ctx *c = P->c;
    if (!js_step(c)) return -1;
    int32_t cur = in;
    switch (a->kind) {
    case PA_SET: {
        const struct rset *set = P->upper ? &a->up : &a->set;
        if (lead && (cur = cn_any(c, A, cur)) < 0) return -1;
        int32_t m = cn_state(c, A);
        if (cn_edge(c, A, cur, m, set->r, set->n)) return -1;
        if (trail && (m = cn_any(c, A, m)) < 0) return -1;
        return cn_edge(c, A, m, out, NULL, 0);
    }
    case PA_BOL:
        if (!lead) return pfail(P, "'^' that is not at the start of the pattern"), -1;
        if (trail && (cur = cn_any(c, A, cur)) < 0) return -1;
        return cn_edge(c, A, cur, out, NULL, 0);
    case PA_EOL:
        if (!trail) return pfail(P, "'$' that is not at the end of the pattern"), -1;
        if (lead && (cur = cn_any(c, A, cur)) < 0) return -1;
        if (P->upper && cn_edge(c, A, cur, out, NEWLINE, 1)) return -1;
        return cn_edge(c, A, cur, out, NULL, 0);
    case PA_SEQ:
        if (a->nk == 0) {
            if ((lead || trail) && (cur = cn_any(c, A, cur)) < 0) return -1;
            return cn_edge(c, A, cur, out, NULL, 0);
        }
        for (int i = 0; i < a->nk; i++) {
            int32_t next = i == a->nk - 1 ? out : cn_state(c, A);
            if (nf(P, A, a->k[i], lead && i == 0, trail && i == a->nk - 1, cur, next)) return -1;
            cur = next;
        }
        return 0;
    case PA_ALT:
        for (int i = 0; i < a->nk; i++)
            if (nf(P, A, a->k[i], lead, trail, in, out)) return -1;
        return 0;
    default: {
        if (lead && (cur = cn_any(c, A, cur)) < 0) return -1;
        for (int64_t i = 0; i < a->min; i++) {
            int32_t next = cn_state(c, A);
            if (nf(P, A, a->k[0], false, false, cur, next)) return -1;
            cur = next;
        }
        if (a->max < 0) {
            int32_t x = cn_state(c, A);
            if (cn_edge(c, A, cur, x, NULL, 0) || nf(P, A, a->k[0], false, false, x, x)) return -1;
            cur = x;
        } else {
            int32_t end = cn_state(c, A);
            for (int64_t i = a->min; i < a->max; i++) {
                int32_t next = cn_state(c, A);
                if (cn_edge(c, A, cur, end, NULL, 0) || nf(P, A, a->k[0], false, false, cur, next)) return -1;
                cur = next;
            }
            if (cn_edge(c, A, cur, end, NULL, 0)) return -1;
            cur = end;
        }
        if (trail && (cur = cn_any(c, A, cur)) < 0) return -1;
        return cn_edge(c, A, cur, out, NULL, 0);
    }
    }
}

int js_pattern_cnfa(struct js_ctx *c, const struct lmql_val *pattern, const char *ptr, bool upper, struct js_cnfa *out) {
    struct pparse P = {c, pattern->u.str.s, pattern->u.str.len, 0, ptr, 0, upper};
    memset(out, 0, sizeof *out);
    struct pa *root = p_alt(&P);
    if (!root) return -1;
    if (P.i < P.n) return pfail(&P, "unbalanced ')'"), -1;
    out->start = cn_state(c, out);
    out->final = cn_state(c, out);
    return nf(&P, out, root, true, true, out->start, out->final);
}
