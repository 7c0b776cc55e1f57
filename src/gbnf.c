/*
** GBNF, llama.cpp's grammar format, compiled into grammar.h's form.
**
** Four passes:
**   1. parse the text into one tree per rule, taking llama.cpp's parser's
**      decisions (where a rule may go on over a line break, what a
**      repetition applies to, its limits and the rules it counts);
**   2. check: undefined rules, what can match the empty text (nullable) and
**      what can match anything at all (productive), left recursion;
**   3. classify each rule, the rules it uses first (Tarjan's strongly
**      connected components of the reference graph): INLINE (regular and
**      small: its regex is pasted into its users'), TERM (regular but large:
**      one terminal of its own) or NONREG (recursive, or too large for one
**      regex: a nonterminal);
**   4. build: a NONREG rule's sequences become runs of regular items, each
**      run one terminal; repetitions of non-regular parts expand into right
**      recursive rules, as llama.cpp expands them.
** A regex the regex engine refuses (too many states) falls back to rules,
** piece by piece, down to single classes and literals.
*/
#include "gbnf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbnf_int.h"

/* ---------------------------------------------------------- helpers -- */

static struct lmql_pos pos_at(const struct lmql__gbnfc *c, size_t off) {
    struct lmql_pos p = {1, 1, off};
    for (size_t i = 0; i < off && i < c->n; i++) {
        unsigned char ch = (unsigned char)c->s[i];
        if (ch == '\n' || (ch == '\r' && (i + 1 >= c->n || c->s[i + 1] != '\n'))) {
            if (p.line < INT32_MAX) p.line++;
            p.col = 1;
        } else if ((ch & 0xC0) != 0x80 && ch != '\r' && p.col < INT32_MAX) {
            p.col++;
        }
    }
    return p;
}

/* The first error wins: later ones are consequences. */
int lmql__gbnf_fail_at(struct lmql__gbnfc *c, size_t off, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = true;
    if (c->e) {
        c->e->status = LMQL_ERR_QUERY;
        c->e->pos = pos_at(c, off);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->e->msg, sizeof c->e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lmql__gbnf_fail(struct lmql__gbnfc *c, const char *fmt, ...) {
    if (c->failed) return -1;
    c->failed = true;
    if (c->e) {
        c->e->status = LMQL_ERR_QUERY;
        c->e->pos = (struct lmql_pos){0, 0, 0};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->e->msg, sizeof c->e->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lmql__gbnf_nomem(struct lmql__gbnfc *c) {
    if (!c->failed) lmql__err_nomem(c->e);
    c->failed = true;
    return -1;
}

/* Grow *p (*cap elements of elem bytes) to hold need. */
int lmql__gbnf_vgrow(struct lmql__gbnfc *c, void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t k = *cap ? *cap : 16;
    while (k < need) {
        if (k > SIZE_MAX / 2 / elem) return lmql__gbnf_nomem(c);
        k *= 2;
    }
    void *q = lmql__realloc(*p, k * elem);
    if (!q) return lmql__gbnf_nomem(c);
    *p = q;
    *cap = k;
    return 0;
}

/* What is at off, for messages. */
static const char *describe(const struct lmql__gbnfc *c, size_t off, char *buf, size_t cap) {
    if (off >= c->n) return "the end of the grammar";
    unsigned char ch = (unsigned char)c->s[off];
    if (ch == '\n' || ch == '\r') return "the end of the line";
    size_t len = lmql__utf8_seq_len((const unsigned char *)c->s + off, c->n - off);
    if (len == 0) snprintf(buf, cap, "byte 0x%02x", ch);
    else if (ch < 0x20 || ch == 0x7F) snprintf(buf, cap, "'\\x%02x'", ch);
    else snprintf(buf, cap, "'%.*s'", (int)len, c->s + off);
    return buf;
}

static bool is_word(unsigned char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
           ch == '_';
}
static bool is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }

/* A character is a code point valid UTF-8 can encode, U+0000 aside
** (llama.cpp's strings end there, so it never matches). */
static bool is_char(uint32_t cp) { return cp >= 1 && cp <= CP_MAX && (cp < 0xD800 || cp > 0xDFFF); }

/* ------------------------------------------------------------ rules -- */

static uint32_t hash_name(const char *s, size_t n) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static int ht_grow(struct lmql__gbnfc *c) {
    uint32_t cap = c->ht_cap ? c->ht_cap * 2 : 64;
    int32_t *t = lmql__calloc(cap, sizeof *t);
    if (!t) return lmql__gbnf_nomem(c);
    for (int32_t r = 0; r < c->n_rules; r++) {
        uint32_t h = hash_name(c->rules[r].name, c->rules[r].name_len) & (cap - 1);
        while (t[h]) h = (h + 1) & (cap - 1);
        t[h] = r + 1;
    }
    free(c->ht);
    c->ht = t;
    c->ht_cap = cap;
    return 0;
}

/* The rule named s[0..n), or -1. */
static int32_t rule_find(const struct lmql__gbnfc *c, const char *s, size_t n) {
    if (!c->ht_cap) return -1;
    for (uint32_t h = hash_name(s, n) & (c->ht_cap - 1);; h = (h + 1) & (c->ht_cap - 1)) {
        int32_t r = c->ht[h] - 1;
        if (r < 0) return -1;
        if (c->rules[r].name_len == n && !memcmp(c->rules[r].name, s, n)) return r;
    }
}

/* The rule named s[0..n), made on its first mention (a new symbol to
** llama.cpp). -1 when out of memory. */
static int32_t rule_get(struct lmql__gbnfc *c, const char *s, size_t n) {
    int32_t r = rule_find(c, s, n);
    if (r >= 0) return r;
    if ((uint32_t)(c->n_rules + 1) * 2 > c->ht_cap && ht_grow(c)) return -1;
    size_t cap = (size_t)c->cap_rules;
    if (c->n_rules == INT32_MAX - 1 ||
        lmql__gbnf_vgrow(c, (void **)&c->rules, &cap, (size_t)c->n_rules + 1, sizeof *c->rules))
        return lmql__gbnf_nomem(c);
    c->cap_rules = (int32_t)(cap > INT32_MAX ? INT32_MAX : cap);
    r = c->n_rules++;
    c->rules[r] = (struct lmql__grule){.name = s, .name_len = (uint32_t)n, .sym = INT32_MIN, .idx = -1};
    uint32_t h = hash_name(s, n) & (c->ht_cap - 1);
    while (c->ht[h]) h = (h + 1) & (c->ht_cap - 1);
    c->ht[h] = r + 1;
    c->n_symbols++;
    return r;
}

/* ------------------------------------------------------------ nodes -- */

static struct lmql__gnode *node_new(struct lmql__gbnfc *c, uint8_t kind, size_t off) {
    struct lmql__gnode *nd = lmql__arena_alloc(&c->ar, sizeof *nd);
    if (!nd || lmql__gbnf_vgrow(c, (void **)&c->nodes, &c->cap_nodes, c->n_nodes + 1, sizeof *c->nodes)) {
        lmql__gbnf_nomem(c);
        return NULL;
    }
    nd->kind = kind;
    nd->off = off;
    nd->body_of = -1;
    nd->tl = UINT32_MAX;
    nd->height = 1;
    c->nodes[c->n_nodes++] = nd;
    return nd;
}

/* A sequence or alternation of kid[0..n) (copied). */
static struct lmql__gnode *node_list(struct lmql__gbnfc *c, uint8_t kind, size_t off, struct lmql__gnode **kid,
                                      int32_t n) {
    struct lmql__gnode *nd = node_new(c, kind, off);
    if (!nd) return NULL;
    nd->u.list.kid = lmql__arena_alloc(&c->ar, (size_t)n * sizeof *kid);
    if (!nd->u.list.kid) {
        lmql__gbnf_nomem(c);
        return NULL;
    }
    if (n) memcpy(nd->u.list.kid, kid, (size_t)n * sizeof *kid);
    nd->u.list.n = n;
    for (int32_t k = 0; k < n; k++) {
        kid[k]->parent = nd;
        if (kid[k]->height >= nd->height) nd->height = (uint16_t)(kid[k]->height + 1);
    }
    return nd;
}

static struct lmql__gnode *node_empty(struct lmql__gbnfc *c, size_t off) { return node_list(c, GK_SEQ, off, NULL, 0); }

/* ----------------------------------------------------------- parsing -- */

/* Spaces, tabs and comments; line breaks too when nl_ok (inside
** parentheses, after '|' or '::=', between rules). */
static void skip_space(struct lmql__gbnfc *c, bool nl_ok) {
    while (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch == ' ' || ch == '\t' || (nl_ok && (ch == '\r' || ch == '\n'))) {
            c->i++;
        } else if (ch == '#') {
            while (c->i < c->n && c->s[c->i] != '\r' && c->s[c->i] != '\n') c->i++;
        } else {
            break;
        }
    }
}

static int hex_digit(char ch) {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* One character of a literal or class at c->i (< n): itself or an escape.
** open: where the literal or class starts (for "unterminated"). */
static int parse_char(struct lmql__gbnfc *c, size_t open, const char *what, uint32_t *cp) {
    size_t at = c->i;
    const unsigned char *u = (const unsigned char *)c->s;
    if (u[at] != '\\') {
        size_t len = lmql__utf8_decode(u + at, c->n - at, cp);
        if (len == 0) return lmql__gbnf_fail_at(c, at, "invalid UTF-8 in a %s", what);
        c->i = at + len;
        return 0;
    }
    if (at + 1 >= c->n) return lmql__gbnf_fail_at(c, open, "unterminated %s", what);
    char esc = c->s[at + 1];
    int nd = 0;
    switch (esc) {
    case 'x': nd = 2; break;
    case 'u': nd = 4; break;
    case 'U': nd = 8; break;
    case 'n': *cp = '\n'; break;
    case 'r': *cp = '\r'; break;
    case 't': *cp = '\t'; break;
    case '\\': case '"': case '[': case ']': case '-': *cp = (uint32_t)esc; break;
    default: {
        const char *known = "known: \\n \\r \\t \\\\ \\\" \\[ \\] \\- \\xHH \\uHHHH \\UHHHHHHHH";
        size_t len = lmql__utf8_seq_len((const unsigned char *)c->s + at + 1, c->n - at - 1);
        unsigned char e1 = (unsigned char)esc;
        if (len && e1 >= 0x20 && e1 != 0x7F)
            return lmql__gbnf_fail_at(c, at, "unknown escape '\\%.*s' (%s)", (int)len, c->s + at + 1, known);
        char buf[32];
        return lmql__gbnf_fail_at(c, at, "unknown escape: '\\' followed by %s (%s)",
                                  describe(c, at + 1, buf, sizeof buf), known);
    }
    }
    if (nd) {
        uint32_t v = 0;
        for (int k = 0; k < nd; k++) {
            int h = at + 2 + (size_t)k < c->n ? hex_digit(c->s[at + 2 + (size_t)k]) : -1;
            if (h < 0) return lmql__gbnf_fail_at(c, at, "expecting %d hex digits after '\\%c'", nd, esc);
            v = v * 16 + (uint32_t)h;
        }
        *cp = v;
    }
    c->i = at + 2 + (size_t)nd;
    return 0;
}

struct range { uint32_t lo, hi; };

static int range_cmp(const void *a, const void *b) {
    const struct range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* The characters of a class: the union of r[0..n) (a reversed range adds
** nothing, as in llama.cpp), or its complement; then only characters. The
** node's set may come out empty: a class nothing matches. */
static struct lmql__gnode *class_node(struct lmql__gbnfc *c, size_t off, struct range *r, size_t n, bool neg) {
    size_t k = 0, m = 0;
    for (size_t j = 0; j < n; j++) {
        if (r[j].lo > r[j].hi || r[j].lo > CP_MAX) continue;
        r[k].lo = r[j].lo;
        r[k++].hi = r[j].hi > CP_MAX ? CP_MAX : r[j].hi;
    }
    qsort(r, k, sizeof *r, range_cmp);
    for (size_t j = 0; j < k; j++) {   /* merge: sorted, disjoint, not adjacent */
        if (m && r[j].lo <= r[m - 1].hi + 1) {
            if (r[j].hi > r[m - 1].hi) r[m - 1].hi = r[j].hi;
        } else {
            r[m++] = r[j];
        }
    }
    struct range *set = r;
    if (neg) {   /* the gaps between them, up to CP_MAX */
        if (!(set = lmql__arena_alloc(&c->ar, (m + 1) * sizeof *set))) goto oom;
        size_t g = 0;
        uint32_t next = 0;
        for (size_t j = 0; j < m; j++) {
            if (r[j].lo > next) set[g++] = (struct range){next, r[j].lo - 1};
            next = r[j].hi + 1;
        }
        if (next <= CP_MAX) set[g++] = (struct range){next, CP_MAX};
        m = g;
    }
    /* Each range splits at most in two around the surrogates. */
    static const uint32_t blocks[2][2] = {{1, 0xD7FF}, {0xE000, CP_MAX}};
    uint32_t *out = lmql__arena_alloc(&c->ar, (2 * m + 1) * 2 * sizeof *out);
    struct lmql__gnode *nd = out ? node_new(c, GK_CHARS, off) : NULL;
    if (!nd) goto oom;
    int32_t n_out = 0;
    for (size_t j = 0; j < m; j++)
        for (int b = 0; b < 2; b++) {
            uint32_t lo = set[j].lo > blocks[b][0] ? set[j].lo : blocks[b][0];
            uint32_t hi = set[j].hi < blocks[b][1] ? set[j].hi : blocks[b][1];
            if (lo > hi) continue;
            out[2 * n_out] = lo;
            out[2 * n_out + 1] = hi;
            n_out++;
        }
    nd->u.set.rg = out;
    nd->u.set.n = n_out;
    return nd;
oom:
    lmql__gbnf_nomem(c);
    return NULL;
}

static struct lmql__gnode *any_node(struct lmql__gbnfc *c, size_t off) {
    struct range r = {1, 0};   /* reversed: nothing; complement: everything */
    return class_node(c, off, &r, 1, true);
}

static int parse_alts(struct lmql__gbnfc *c, bool nested, struct lmql__gnode **out);

/* A decimal count at c->i (a digit), saturating above the limits. */
static uint32_t parse_count(struct lmql__gbnfc *c) {
    uint32_t v = 0;
    while (c->i < c->n && is_digit((unsigned char)c->s[c->i])) {
        v = v > 100000000u ? 1000000000u : v * 10 + (uint32_t)(c->s[c->i] - '0');
        c->i++;
    }
    return v;
}

/* The sequence being parsed: its items and what a repetition would apply to
** (llama.cpp's last_sym_start and n_prev_rules). */
struct seq {
    struct lmql__gnode **item;
    size_t n, cap;
    bool last_ok;          /* the last item exists and produced elements */
    uint64_t n_prev;       /* rules the last item stands for, its repetitions multiplied */
};

/* Apply a repetition {min,max} written at op to the last item. */
static int repeat(struct lmql__gbnfc *c, struct seq *q, size_t op, uint32_t min, uint32_t max) {
    if (!q->last_ok) {
        char buf[32];
        return lmql__gbnf_fail_at(c, op, "nothing to repeat before %s", describe(c, op, buf, sizeof buf));
    }
    uint64_t total = max != REP_INF && max > 0 ? max : min > 0 ? min : 1;
    if (q->n_prev * total >= REP_LIMIT)
        return lmql__gbnf_fail_at(c, op,
                                  "repetition too large: %llu copies of what it repeats (nested repetitions and the "
                                  "rules inside a group multiply), llama.cpp allows fewer than %u",
                                  (unsigned long long)(q->n_prev * total), REP_LIMIT);
    c->n_symbols += max == REP_INF ? 1 : max - min;
    q->n_prev *= total;
    struct lmql__gnode *x = q->item[q->n - 1];
    if (max == 0) {   /* x{0}: gone, and nothing left to repeat */
        q->last_ok = false;
        return (q->item[q->n - 1] = node_empty(c, x->off)) ? 0 : -1;
    }
    if (min == 1 && max == 1) return 0;
    if (x->height >= MAX_HEIGHT) return lmql__gbnf_fail_at(c, op, "too many nested repetitions and groups");
    struct lmql__gnode *r = node_new(c, GK_REP, op);
    if (!r) return -1;
    r->u.rep.x = x;
    r->u.rep.min = min;
    r->u.rep.max = max;
    r->height = (uint16_t)(x->height + 1);
    x->parent = r;
    q->item[q->n - 1] = r;
    return 0;
}

static int seq_push(struct lmql__gbnfc *c, struct seq *q, struct lmql__gnode *nd, bool has_elements, uint64_t n_prev) {
    if (!nd || lmql__gbnf_vgrow(c, (void **)&q->item, &q->cap, q->n + 1, sizeof *q->item)) return -1;
    q->item[q->n++] = nd;
    q->last_ok = has_elements;
    q->n_prev = n_prev;
    return 0;
}

static int parse_literal(struct lmql__gbnfc *c, struct seq *q) {
    size_t open = c->i++;
    uint32_t *cp = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (c->i >= c->n) {
            lmql__gbnf_fail_at(c, open, "unterminated string: the '\"' here is never closed");
            goto done;
        }
        if (c->s[c->i] == '"') break;
        uint32_t v;
        if (parse_char(c, open, "string", &v) || lmql__gbnf_vgrow(c, (void **)&cp, &cap, n + 1, sizeof *cp)) goto done;
        cp[n++] = v;
    }
    c->i++;
    struct lmql__gnode *nd = node_new(c, GK_LIT, open);
    if (!nd || !(nd->u.lit.cp = lmql__arena_alloc(&c->ar, n * sizeof *cp))) {
        lmql__gbnf_nomem(c);
        goto done;
    }
    if (n) memcpy(nd->u.lit.cp, cp, n * sizeof *cp);
    nd->u.lit.n = (int32_t)n;
    rc = seq_push(c, q, nd, n > 0, 1);
done:
    free(cp);
    return rc;
}

static int parse_class(struct lmql__gbnfc *c, struct seq *q) {
    size_t open = c->i++;
    bool neg = c->i < c->n && c->s[c->i] == '^';
    if (neg) c->i++;
    struct range *r = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    for (;;) {
        if (c->i >= c->n) {
            lmql__gbnf_fail_at(c, open, "unterminated character class: the '[' here is never closed");
            goto done;
        }
        if (c->s[c->i] == ']') break;
        uint32_t lo, hi;
        if (parse_char(c, open, "character class", &lo)) goto done;
        hi = lo;
        if (c->i < c->n && c->s[c->i] == '-' && (c->i + 1 >= c->n || c->s[c->i + 1] != ']')) {
            c->i++;
            if (c->i >= c->n) {
                lmql__gbnf_fail_at(c, open, "unterminated character class: the '[' here is never closed");
                goto done;
            }
            if (parse_char(c, open, "character class", &hi)) goto done;
        }
        if (lmql__gbnf_vgrow(c, (void **)&r, &cap, n + 1, sizeof *r)) goto done;
        r[n++] = (struct range){lo, hi};
    }
    c->i++;
    /* [] and [^] hold no element in llama.cpp: they match the empty text */
    rc = seq_push(c, q, n ? class_node(c, open, r, n, neg) : node_empty(c, open), n > 0, 1);
done:
    free(r);
    return rc;
}

static int parse_group(struct lmql__gbnfc *c, struct seq *q, bool nested) {
    size_t open = c->i++;
    if (++c->depth > MAX_GROUP_DEPTH)
        return lmql__gbnf_fail_at(c, open, "parentheses nested too deeply (more than %d)", MAX_GROUP_DEPTH);
    skip_space(c, true);
    uint64_t before = c->n_symbols++;   /* the group is a rule to llama.cpp */
    struct lmql__gnode *body;
    if (parse_alts(c, true, &body)) return -1;
    c->depth--;
    if (c->i >= c->n || c->s[c->i] != ')') {
        char buf[32];
        struct lmql_pos p = pos_at(c, open);
        return lmql__gbnf_fail_at(c, c->i, "expecting ')' to close the '(' at %d:%d, found %s", p.line, p.col,
                                  describe(c, c->i, buf, sizeof buf));
    }
    c->i++;
    if (body->height >= MAX_HEIGHT) return lmql__gbnf_fail_at(c, open, "too many nested repetitions and groups");
    uint64_t made = c->n_symbols - before;
    if (seq_push(c, q, body, true, made > 1 ? made : 1)) return -1;
    skip_space(c, nested);
    return 0;
}

/* {m} {m,} {m,n} at c->i. */
static int parse_braces(struct lmql__gbnfc *c, struct seq *q, bool nested) {
    size_t op = c->i++;
    char buf[32];
    skip_space(c, nested);
    if (c->i >= c->n || !is_digit((unsigned char)c->s[c->i])) {
        if (c->i < c->n && c->s[c->i] == ',')
            return lmql__gbnf_fail_at(c, c->i, "expecting a number after '{': llama.cpp has no {,n}, write {0,n}");
        return lmql__gbnf_fail_at(c, c->i, "expecting a number after '{', found %s",
                                  describe(c, c->i, buf, sizeof buf));
    }
    uint32_t min = parse_count(c), max = min;
    skip_space(c, nested);
    if (c->i < c->n && c->s[c->i] == ',') {
        c->i++;
        skip_space(c, nested);
        max = REP_INF;
        if (c->i < c->n && is_digit((unsigned char)c->s[c->i])) {
            max = parse_count(c);
            skip_space(c, nested);
        }
        if (c->i >= c->n || c->s[c->i] != '}') {
            struct lmql_pos p = pos_at(c, op);
            return lmql__gbnf_fail_at(c, c->i, "expecting '}' to close the '{' at %d:%d, found %s", p.line, p.col,
                                      describe(c, c->i, buf, sizeof buf));
        }
    } else if (c->i >= c->n || c->s[c->i] != '}') {
        struct lmql_pos p = pos_at(c, op);
        return lmql__gbnf_fail_at(c, c->i, "expecting ',' or '}' in the '{' at %d:%d, found %s", p.line, p.col,
                                  describe(c, c->i, buf, sizeof buf));
    }
    c->i++;
    skip_space(c, nested);
    if (min > REP_LIMIT)
        return lmql__gbnf_fail_at(c, op, "repetition count %u is above llama.cpp's limit of %u", min, REP_LIMIT);
    if (max != REP_INF && max > REP_LIMIT) max = REP_INF;   /* llama.cpp: no upper bound then */
    if (max != REP_INF && min > max)
        return lmql__gbnf_fail_at(c, op, "repetition {%u,%u}: the minimum is above the maximum", min, max);
    return repeat(c, q, op, min, max);
}

/* seq -> item* where item is a literal, class, '.', name or group,
** each followed by repetition operators. */
static int parse_seq(struct lmql__gbnfc *c, bool nested, struct lmql__gnode **out) {
    struct seq q = {.n_prev = 1};
    size_t start = c->i;
    int rc = -1;
    while (c->i < c->n && !c->failed) {
        unsigned char ch = (unsigned char)c->s[c->i];
        size_t at = c->i;
        if (ch == '"') {
            if (parse_literal(c, &q)) goto done;
            skip_space(c, nested);
        } else if (ch == '[') {
            if (parse_class(c, &q)) goto done;
            skip_space(c, nested);
        } else if (ch == '<' || ch == '!') {
            lmql__gbnf_fail_at(c, at,
                               "token syntax (<[id]>, <token>, !<...>) is not supported: these grammars match text, "
                               "not token ids");
            goto done;
        } else if (is_word(ch)) {
            while (c->i < c->n && is_word((unsigned char)c->s[c->i])) c->i++;
            int32_t r = rule_get(c, c->s + at, c->i - at);
            struct lmql__gnode *nd = r >= 0 ? node_new(c, GK_REF, at) : NULL;
            if (!nd || lmql__gbnf_vgrow(c, (void **)&c->refs, &c->cap_refs, c->n_refs + 1, sizeof *c->refs)) goto done;
            nd->u.ref.rule = r;
            c->refs[c->n_refs++] = nd;
            if (seq_push(c, &q, nd, true, 1)) goto done;
            skip_space(c, nested);
        } else if (ch == '(') {
            if (parse_group(c, &q, nested)) goto done;
        } else if (ch == '.') {
            c->i++;
            if (seq_push(c, &q, any_node(c, at), true, 1)) goto done;
            skip_space(c, nested);
        } else if (ch == '*' || ch == '+' || ch == '?') {
            c->i++;
            skip_space(c, nested);
            if (repeat(c, &q, at, ch == '+', ch == '?' ? 1 : REP_INF)) goto done;
        } else if (ch == '{') {
            if (parse_braces(c, &q, nested)) goto done;
        } else {
            break;
        }
    }
    if (c->failed) goto done;
    if (q.n == 1) {
        *out = q.item[0];
        rc = 0;
    } else {
        *out = node_list(c, GK_SEQ, start, q.item, (int32_t)q.n);
        rc = *out ? 0 : -1;
    }
done:
    free(q.item);
    return rc;
}

/* alts -> seq ('|' seq)*; a line break may follow '|'. */
static int parse_alts(struct lmql__gbnfc *c, bool nested, struct lmql__gnode **out) {
    struct lmql__gnode **alt = NULL;
    size_t n = 0, cap = 0, start = c->i;
    int rc = -1;
    for (;;) {
        struct lmql__gnode *s;
        if (parse_seq(c, nested, &s) || lmql__gbnf_vgrow(c, (void **)&alt, &cap, n + 1, sizeof *alt)) goto done;
        alt[n++] = s;
        if (c->i >= c->n || c->s[c->i] != '|') break;
        c->i++;
        skip_space(c, true);
    }
    if (n == 1) {
        *out = alt[0];
        rc = 0;
    } else {
        *out = node_list(c, GK_ALT, start, alt, (int32_t)n);
        rc = *out ? 0 : -1;
    }
done:
    free(alt);
    return rc;
}

/* rule -> name '::=' alts (line break | end) */
static int parse_rule(struct lmql__gbnfc *c) {
    size_t at = c->i;
    char buf[32];
    if (!is_word((unsigned char)c->s[at])) {
        if (c->s[at] == '|')
            return lmql__gbnf_fail_at(c, at,
                                      "a line may not start with '|' outside parentheses: end the line before with "
                                      "'|' or put the alternatives in ( )");
        return lmql__gbnf_fail_at(c, at, "expecting a rule name, found %s", describe(c, at, buf, sizeof buf));
    }
    while (c->i < c->n && is_word((unsigned char)c->s[c->i])) c->i++;
    int32_t r = rule_get(c, c->s + at, c->i - at);
    if (r < 0) return -1;
    skip_space(c, false);
    if (c->n - c->i < 3 || memcmp(c->s + c->i, "::=", 3))
        return lmql__gbnf_fail_at(c, c->i, "expecting '::=' after the rule name '%.*s', found %s",
                                  lmql__gbnf_name_len(&c->rules[r]), c->rules[r].name,
                                  describe(c, c->i, buf, sizeof buf));
    c->i += 3;
    skip_space(c, true);
    struct lmql__gnode *body;
    if (parse_alts(c, false, &body)) return -1;
    if (c->i < c->n) {
        char ch = c->s[c->i];
        if (ch == '\r') {
            c->i += c->i + 1 < c->n && c->s[c->i + 1] == '\n' ? 2 : 1;
        } else if (ch == '\n') {
            c->i++;
        } else if (ch == ')') {
            return lmql__gbnf_fail_at(c, c->i, "unexpected ')': no '(' is open");
        } else if (c->n - c->i >= 3 && !memcmp(c->s + c->i, "::=", 3)) {
            return lmql__gbnf_fail_at(c, c->i,
                                      "unexpected '::=': a definition goes on over a line break after '::=' or '|', "
                                      "so the rule before this one may be missing its items");
        } else {
            return lmql__gbnf_fail_at(c, c->i, "unexpected %s: expecting an item, '|' or the end of the line",
                                      describe(c, c->i, buf, sizeof buf));
        }
    }
    c->rules[r].body = body;
    c->rules[r].def_off = at;
    skip_space(c, true);
    return 0;
}

/* ---------------------------------------------------------- checking -- */

/* Mark nd nullable (prop 0) or productive (prop 1), once, and queue it. */
static void fire(struct lmql__gnode *nd, int prop, struct lmql__gnode **stack, size_t *top) {
    bool *flag = prop ? &nd->productive : &nd->nullable;
    if (*flag) return;
    *flag = true;
    stack[(*top)++] = nd;
}

/* Nullable and productive nodes and rules: a worklist over parents and
** references, linear in the grammar's size. */
static int propagate(struct lmql__gbnfc *c, int prop, const int32_t *ref_first,
                     struct lmql__gnode *const *ref_by_rule) {
    struct lmql__gnode **stack = lmql__malloc((c->n_nodes + 1) * sizeof *stack);
    if (!stack) return lmql__gbnf_nomem(c);
    size_t top = 0;
    for (size_t k = 0; k < c->n_nodes; k++) {
        struct lmql__gnode *nd = c->nodes[k];
        int32_t *pend = prop ? &nd->pend_p : &nd->pend_n;
        switch (nd->kind) {
        case GK_CHARS:
            if (prop && nd->u.set.n > 0) fire(nd, prop, stack, &top);
            break;
        case GK_LIT: {
            bool ok = true;
            for (int32_t j = 0; j < nd->u.lit.n; j++) ok = ok && is_char(nd->u.lit.cp[j]);
            if (prop ? ok : nd->u.lit.n == 0) fire(nd, prop, stack, &top);
            break;
        }
        case GK_SEQ:
            *pend = nd->u.list.n;
            if (!nd->u.list.n) fire(nd, prop, stack, &top);
            break;
        case GK_REP:
            if (nd->u.rep.min == 0) fire(nd, prop, stack, &top);
            break;
        default: break;   /* a reference or an alternation: when one child is */
        }
    }
    while (top) {
        struct lmql__gnode *nd = stack[--top], *p = nd->parent;
        if (p) {
            int32_t *pend = prop ? &p->pend_p : &p->pend_n;
            if (p->kind != GK_SEQ || --*pend == 0) fire(p, prop, stack, &top);
        }
        if (nd->body_of >= 0) {
            int32_t r = nd->body_of;
            for (int32_t j = ref_first[r]; j < ref_first[r + 1]; j++) fire(ref_by_rule[j], prop, stack, &top);
        }
    }
    free(stack);
    return 0;
}

static int check_flags(struct lmql__gbnfc *c) {
    int32_t *first = lmql__calloc((size_t)c->n_rules + 2, sizeof *first);
    struct lmql__gnode **by = lmql__malloc((c->n_refs + 1) * sizeof *by);
    int rc = -1;
    if (!first || !by) {
        lmql__gbnf_nomem(c);
        goto done;
    }
    for (size_t k = 0; k < c->n_refs; k++) first[c->refs[k]->u.ref.rule + 2]++;
    for (int32_t r = 0; r < c->n_rules; r++) first[r + 2] += first[r + 1];
    for (size_t k = 0; k < c->n_refs; k++) by[first[c->refs[k]->u.ref.rule + 1]++] = c->refs[k];
    for (int32_t r = 0; r < c->n_rules; r++) c->rules[r].body->body_of = r;
    rc = propagate(c, 0, first, by) || propagate(c, 1, first, by) ? -1 : 0;
done:
    free(first);
    free(by);
    return rc;
}

/* Append the rules n refers to (all, or only those it can begin with). */
static int collect_refs(struct lmql__gbnfc *c, const struct lmql__gnode *n, bool leftmost, struct lmql__gnode ***out,
                        size_t *len, size_t *cap) {
    switch (n->kind) {
    case GK_REF:
        if (lmql__gbnf_vgrow(c, (void **)out, cap, *len + 1, sizeof **out)) return -1;
        (*out)[(*len)++] = (struct lmql__gnode *)n;
        return 0;
    case GK_SEQ:
        for (int32_t k = 0; k < n->u.list.n; k++) {
            if (collect_refs(c, n->u.list.kid[k], leftmost, out, len, cap)) return -1;
            if (leftmost && !n->u.list.kid[k]->nullable) break;
        }
        return 0;
    case GK_ALT:
        for (int32_t k = 0; k < n->u.list.n; k++)
            if (collect_refs(c, n->u.list.kid[k], leftmost, out, len, cap)) return -1;
        return 0;
    case GK_REP: return collect_refs(c, n->u.rep.x, leftmost, out, len, cap);
    default: return 0;
    }
}

/* Edges of every rule into c->adj (rule ids; the reference nodes in
** *nodes when asked). */
int lmql__gbnf_edges(struct lmql__gbnfc *c, bool leftmost, struct lmql__gnode ***nodes) {
    struct lmql__gnode **v = NULL;
    size_t len = 0, cap = 0;
    for (int32_t r = 0; r < c->n_rules; r++) {
        c->rules[r].adj = (int32_t)len;
        if (collect_refs(c, c->rules[r].body, leftmost, &v, &len, &cap)) goto fail;
        if (len > INT32_MAX) {
            lmql__gbnf_nomem(c);
            goto fail;
        }
        c->rules[r].n_adj = (int32_t)len - c->rules[r].adj;
    }
    c->n_adj = 0;
    if (lmql__gbnf_vgrow(c, (void **)&c->adj, &c->cap_adj, len + 1, sizeof *c->adj)) goto fail;
    for (size_t k = 0; k < len; k++) c->adj[k] = v[k]->u.ref.rule;
    c->n_adj = len;
    if (nodes) *nodes = v;
    else free(v);
    return 0;
fail:
    free(v);
    return -1;
}

/* Left recursion: a rule that can begin with itself. llama.cpp refuses
** it, and so does lmql__gb_finish; here the message shows the path and
** the place of the reference that closes it. */
static int check_left_recursion(struct lmql__gbnfc *c) {
    struct lmql__gnode **refs = NULL;
    if (lmql__gbnf_edges(c, true, &refs)) return -1;
    int32_t n = c->n_rules, *stack = lmql__malloc(((size_t)n + 1) * sizeof *stack);
    int32_t *next = lmql__malloc(((size_t)n + 1) * sizeof *next);
    uint8_t *color = lmql__calloc((size_t)n + 1, 1);
    int rc = 0;
    if (!stack || !next || !color) {
        rc = lmql__gbnf_nomem(c);
        goto done;
    }
    for (int32_t r0 = 0; r0 < n && !rc; r0++) {
        if (color[r0]) continue;
        int32_t d = 0;
        stack[0] = r0;
        next[0] = 0;
        color[r0] = 1;
        while (d >= 0 && !rc) {
            const struct lmql__grule *v = &c->rules[stack[d]];
            if (next[d] >= v->n_adj) {
                color[stack[d--]] = 2;
                continue;
            }
            int32_t k = v->adj + next[d]++, w = c->adj[k];
            if (color[w] == 0) {
                color[w] = 1;
                stack[++d] = w;
                next[d] = 0;
            } else if (color[w] == 1) {
                struct lmql__buf path = {0};
                int32_t from = d;
                bool ok = true;
                while (stack[from] != w) from--;
                for (int32_t j = from; ok && j <= d && j < from + 8; j++)
                    ok = !lmql__buf_addf(&path, "%.*s -> ", lmql__gbnf_name_len(&c->rules[stack[j]]),
                                         c->rules[stack[j]].name);
                if (ok && d - from >= 8) ok = !lmql__buf_adds(&path, "... -> ");
                if (ok) ok = !lmql__buf_addf(&path, "%.*s", lmql__gbnf_name_len(&c->rules[w]), c->rules[w].name);
                if (!ok) {
                    rc = lmql__gbnf_nomem(c);
                } else {
                    rc = lmql__gbnf_fail_at(c, refs[k]->off,
                                            "rule '%.*s' is left-recursive: it can begin with itself (%s); "
                                            "llama.cpp refuses this too, write the recursion on the right (list ::= "
                                            "item (\",\" item)*)",
                                            lmql__gbnf_name_len(&c->rules[w]), c->rules[w].name, path.data);
                }
                lmql__buf_free(&path);
            }
        }
    }
done:
    free(refs);
    free(stack);
    free(next);
    free(color);
    return rc;
}

/* ------------------------------------------------------------ entry -- */

struct lmql_grammar *lmql__gbnf_compile(const char *text, size_t n, const char *root, struct lmql__err *e) {
    struct lmql__gbnfc c = {.s = text ? text : "", .e = e};
    const char *nul = text ? memchr(text, 0, n) : NULL;
    c.n = !text ? 0 : nul ? (size_t)(nul - text) : n;
    lmql__arena_init(&c.ar);
    struct lmql_grammar *g = NULL;
    if (!root) root = "root";

    skip_space(&c, true);
    while (c.i < c.n && !c.failed) parse_rule(&c);
    if (c.failed) goto done;
    bool any = false;
    for (int32_t r = 0; r < c.n_rules; r++) any = any || c.rules[r].body;
    if (!any) {
        lmql__gbnf_fail(&c, "the grammar defines no rule");
        goto done;
    }
    for (size_t k = 0; k < c.n_refs; k++) {
        const struct lmql__grule *r = &c.rules[c.refs[k]->u.ref.rule];
        if (!r->body) {
            lmql__gbnf_fail_at(&c, c.refs[k]->off, "undefined rule '%.*s'", lmql__gbnf_name_len(r), r->name);
            goto done;
        }
    }
    int32_t start = rule_find(&c, root, strlen(root));
    if (start < 0) {
        lmql__gbnf_fail(&c, "the grammar has no rule '%.100s' to start from", root);
        goto done;
    }
    if (check_flags(&c) || check_left_recursion(&c) || lmql__gbnf_classify(&c)) goto done;
    g = lmql__gbnf_build(&c, start);
done:
    lmql__gb_free(c.b);
    lmql__arena_free(&c.ar);
    free(c.rules);
    free(c.ht);
    free(c.nodes);
    free(c.refs);
    free(c.adj);
    free(c.queue);
    if (!g && !c.failed) lmql__gbnf_nomem(&c);
    return g;
}
