/*
** A finished grammar written as GBNF, llama.cpp's grammar format (see
** grammar.h). Two uses: measuring llama.cpp's grammar sampler on exactly the
** language our matcher enforces (tools/maskbench.c), and letting users see or
** reuse what a JSON Schema compiled to.
**
** Nonterminals become rules of the same alternatives. A literal terminal is a
** string. A regex terminal is printed from its DFA, not from its pattern text:
** the DFA is the language the matcher enforces (the pattern's syntax, Python's,
** is not GBNF's and would need a second translator), and a DFA written as
** right-recursive rules, one per state, has disjoint alternatives, so
** llama.cpp's sampler keeps one stack per position instead of one per
** ambiguous split.
**
** GBNF matches code points, our DFAs bytes. The DFAs step only through valid
** UTF-8 (regex.h), so each state's edges are gathered per whole code point:
** every UTF-8 sequence from the state, byte by byte, with runs of bytes in
** one target state walked once. U+0000 is left out (llama.cpp never matches it:
** its strings are C strings), so a terminal that admitted it loses those
** strings; JSON text cannot hold a raw NUL anyway.
*/
#include "grammar.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"
#include "regex.h"
#include "utf8.h"

/* A code point range and the DFA state after it. */
struct edge {
    uint32_t lo, hi;
    int32_t to;
};

struct edges {
    struct edge *v;
    int32_t n, cap;
};

/* One regex terminal's states: edges, whether accepting, whether printed. */
struct tstates {
    int32_t n;
    struct edges *out;     /* per state, filled when first needed */
    bool *have, *acc, *queued;
};

struct exporter {
    const struct lmql_grammar *g;
    struct lmql__buf *out;
    struct tstates *ts;    /* per terminal */
    bool *term_used;
    int32_t *queue;        /* states of the terminal being printed */
    bool nomem;
    int32_t bad_term;      /* >= 0: a terminal GBNF cannot write (see below) */
    const char *bad_why;
};

static int edge_add(struct edges *e, uint32_t lo, uint32_t hi, int32_t to) {
    /* Sequences come in increasing code point order: merge with the last. */
    if (e->n && e->v[e->n - 1].to == to && e->v[e->n - 1].hi + 1 == lo) {
        e->v[e->n - 1].hi = hi;
        return 0;
    }
    if (e->n == e->cap) {
        int32_t c = e->cap ? e->cap * 2 : 8;
        struct edge *p = lmql__realloc(e->v, (size_t)c * sizeof *p);
        if (!p) return -1;
        e->v = p;
        e->cap = c;
    }
    e->v[e->n++] = (struct edge){lo, hi, to};
    return 0;
}

/* The state after every one of the k continuation bytes sequences from d
** when they all lead to the same state (so a run of lead bytes is one
** range), else -1. */
static int32_t uniform(const struct lmql__gterm *t, int32_t d, int k) {
    for (; k > 0 && d >= 0; k--) {
        int32_t to = lmql__gterm_step(t, d, 0x80);
        for (int b = 0x81; b <= 0xBF && to >= 0; b++)
            if (lmql__gterm_step(t, d, (unsigned char)b) != to) to = -1;
        d = to;
    }
    return d;
}

/* Walk continuation bytes lo..hi from state d, k of them still to come
** after this one, the code point's higher bits being base. Bytes leading
** to the same state have the same continuations: a run of them is walked
** once. */
static int walk(const struct lmql__gterm *t, int32_t d, int k, int lo, int hi, uint32_t base, struct edges *e) {
    for (int a = lo; a <= hi;) {
        int32_t to = lmql__gterm_step(t, d, (unsigned char)a);
        int b = a;
        while (b < hi && lmql__gterm_step(t, d, (unsigned char)(b + 1)) == to) b++;
        int shift = 6 * k;
        if (to >= 0) {
            int32_t u = uniform(t, to, k);
            if (u >= 0) {
                uint32_t span = (1u << shift) - 1;
                if (edge_add(e, base | ((uint32_t)(a & 0x3F) << shift), base | ((uint32_t)(b & 0x3F) << shift) | span, u))
                    return -1;
            } else {
                for (int x = a; x <= b; x++)
                    if (walk(t, to, k - 1, 0x80, 0xBF, base | ((uint32_t)(x & 0x3F) << shift), e)) return -1;
            }
        }
        a = b + 1;
    }
    return 0;
}

/* Every code point's edge from state s of regex terminal t. */
static int state_edges(const struct lmql__gterm *t, int32_t s, struct edges *e) {
    for (int a = 0x01; a <= 0x7F;) {
        int b = a;
        int32_t to = lmql__gterm_step(t, s, (unsigned char)a);
        while (b < 0x7F && lmql__gterm_step(t, s, (unsigned char)(b + 1)) == to) b++;
        if (to >= 0 && edge_add(e, (uint32_t)a, (uint32_t)b, to)) return -1;
        a = b + 1;
    }
    for (int L = 0xC2; L <= 0xF4; L++) {
        int32_t d = lmql__gterm_step(t, s, (unsigned char)L);
        if (d < 0) continue;
        /* RFC 3629's first continuation ranges: no overlong forms, no
        ** surrogates, nothing past U+10FFFF. */
        int k = L < 0xE0 ? 0 : L < 0xF0 ? 1 : 2;
        int lo = L == 0xE0 ? 0xA0 : L == 0xF0 ? 0x90 : 0x80;
        int hi = L == 0xED ? 0x9F : L == 0xF4 ? 0x8F : 0xBF;
        uint32_t base = (uint32_t)(L & (k == 0 ? 0x1F : k == 1 ? 0x0F : 0x07)) << (6 * (k + 1));
        if (walk(t, d, k, lo, hi, base, e)) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ printing -- */

static void put(struct exporter *x, const char *s) {
    if (!x->nomem && lmql__buf_adds(x->out, s)) x->nomem = true;
}


/* One code point inside "..." (in_class false) or [...]: letters, digits
** and harmless punctuation as they are, the rest as escapes llama.cpp's
** parser knows (\" \\ \[ \] \x \u \U: it has no \- or \^). */
static void put_cp(struct exporter *x, uint32_t c, bool in_class) {
    bool plain = c >= 0x20 && c < 0x7F && c != '"' && c != '\\' && c != '[' && c != ']' &&
                 !(in_class && (c == '-' || c == '^'));
    char s[16];
    if (c == '"' || c == '\\' || c == '[' || c == ']') snprintf(s, sizeof s, "\\%c", (char)c);
    else if (plain) snprintf(s, sizeof s, "%c", (char)c);
    else if (c < 0x80) snprintf(s, sizeof s, "\\x%02X", (unsigned)c);
    else if (c <= 0xFFFF) snprintf(s, sizeof s, "\\u%04X", (unsigned)c);
    else snprintf(s, sizeof s, "\\U%08X", (unsigned)c);
    put(x, s);
}

/* A rule name llama.cpp accepts ([a-zA-Z0-9-]), readable, unique by id. */
static void put_nt(struct exporter *x, int32_t id) {
    char s[48];
    int n = snprintf(s, sizeof s, "n%d-", (int)id);
    const char *name = x->g->names[id];
    for (size_t i = 0; name[i] && n < 40; i++) {
        unsigned char c = (unsigned char)name[i];
        bool w = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (w) s[n++] = (char)c;
        else if (s[n - 1] != '-') s[n++] = '-';
    }
    while (s[n - 1] == '-') n--;
    s[n] = 0;
    put(x, s);
}

/* A terminal's rule is named for its start state (a literal's too). */
static void put_state(struct exporter *x, int32_t term, int32_t state) {
    char s[32];
    const struct lmql__gterm *t = &x->g->terms[term];
    if (!t->is_re || state == t->start) snprintf(s, sizeof s, "t%d", (int)term);
    else snprintf(s, sizeof s, "t%d-%d", (int)term, (int)state);
    put(x, s);
}

static struct tstates *term_states(struct exporter *x, int32_t term) {
    struct tstates *ts = &x->ts[term];
    if (ts->out) return ts;
    const struct lmql__gterm *t = &x->g->terms[term];
    ts->n = lmql__regex_n_states(t->re);
    ts->out = lmql__calloc((size_t)ts->n, sizeof *ts->out);
    ts->have = lmql__calloc((size_t)ts->n, sizeof *ts->have);
    ts->acc = lmql__calloc((size_t)ts->n, sizeof *ts->acc);
    ts->queued = lmql__calloc((size_t)ts->n, sizeof *ts->queued);
    if (!ts->out || !ts->have || !ts->acc || !ts->queued) {
        x->nomem = true;
        return NULL;
    }
    for (int32_t s = 0; s < ts->n; s++) ts->acc[s] = lmql__regex_accepting(t->re, s);
    return ts;
}

static struct edges *edges_of(struct exporter *x, int32_t term, int32_t s) {
    struct tstates *ts = &x->ts[term];
    if (!ts->have[s]) {
        ts->have[s] = true;
        if (state_edges(&x->g->terms[term], s, &ts->out[s])) x->nomem = true;
    }
    return &ts->out[s];
}

/* A state that ends the terminal: accepting, nothing after it. */
static bool is_final(struct exporter *x, int32_t term, int32_t s) {
    return x->ts[term].acc[s] && edges_of(x, term, s)->n == 0;
}

/* The rule of one DFA state: per target state, the class of code points
** leading there, then the chain of single characters that follows (written as
** one string), then the state the chain ends in, queued for its own rule. */
static void put_state_rule(struct exporter *x, int32_t term, int32_t s, int32_t *n_queue) {
    struct tstates *ts = &x->ts[term];
    struct edges *e = edges_of(x, term, s);
    /* Every edge left out was U+0000: GBNF would read an empty rule as the
    ** empty string, not as nothing. */
    if (e->n == 0 && !ts->acc[s] && x->bad_term < 0) {
        x->bad_term = term;
        x->bad_why = "matches only text holding U+0000, which GBNF never matches";
    }
    put_state(x, term, s);
    put(x, " ::=");
    int n_alt = 0;
    for (int32_t i = 0; i < e->n && !x->nomem; i++) {
        int32_t to = e->v[i].to;
        bool seen = false;
        for (int32_t j = 0; j < i && !seen; j++) seen = e->v[j].to == to;
        if (seen) continue;
        put(x, n_alt++ ? " | " : " ");
        int32_t n_r = 0;
        for (int32_t j = i; j < e->n; j++) n_r += e->v[j].to == to;
        if (n_r == 1 && e->v[i].lo == e->v[i].hi) {
            put(x, "\"");
            put_cp(x, e->v[i].lo, false);
        } else {
            put(x, "[");
            for (int32_t j = i; j < e->n; j++) {
                if (e->v[j].to != to) continue;
                put_cp(x, e->v[j].lo, true);
                if (e->v[j].hi > e->v[j].lo) {
                    put(x, "-");
                    put_cp(x, e->v[j].hi, true);
                }
            }
            put(x, "]");
        }
        /* Follow single-character chains (the fixed text of a pattern) so
        ** they read as strings rather than as one rule per byte. */
        bool open = n_r == 1 && e->v[i].lo == e->v[i].hi;
        for (int guard = 0; guard < 4096 && !ts->acc[to] && !x->nomem; guard++) {
            struct edges *f = edges_of(x, term, to);
            if (f->n != 1 || f->v[0].lo != f->v[0].hi) break;
            if (!open) put(x, " \"");
            open = true;
            put_cp(x, f->v[0].lo, false);
            to = f->v[0].to;
        }
        if (open) put(x, "\"");
        if (!is_final(x, term, to)) {
            put(x, " ");
            put_state(x, term, to);
            if (!ts->queued[to]) {
                ts->queued[to] = true;
                x->queue[(*n_queue)++] = to;
            }
        }
    }
    if (ts->acc[s]) put(x, n_alt ? " | \"\"" : " \"\"");
    put(x, "\n");
}

static void put_term_rules(struct exporter *x, int32_t term) {
    const struct lmql__gterm *t = &x->g->terms[term];
    if (!t->is_re) {
        put_state(x, term, 0);
        put(x, " ::= \"");
        /* Literals are checked for valid UTF-8 before printing starts. */
        const unsigned char *p = (const unsigned char *)t->text;
        for (size_t i = 0; i < t->len;) {
            size_t k = lmql__utf8_seq_len(p + i, t->len - i);
            uint32_t c = k == 1 ? p[i] : k == 2 ? p[i] & 0x1Fu : k == 3 ? p[i] & 0x0Fu : p[i] & 0x07u;
            for (size_t j = 1; j < k; j++) c = c << 6 | (p[i + j] & 0x3Fu);
            put_cp(x, c, false);
            i += k;
        }
        put(x, "\"\n");
        return;
    }
    struct tstates *ts = term_states(x, term);
    if (!ts) return;
    free(x->queue);
    if (!(x->queue = lmql__malloc((size_t)ts->n * sizeof *x->queue))) {
        x->nomem = true;
        return;
    }
    int32_t n_queue = 0;
    if (t->start < 0) return;   /* matches nothing: no alternative uses it */
    ts->queued[t->start] = true;
    x->queue[n_queue++] = t->start;
    for (int32_t i = 0; i < n_queue && !x->nomem; i++) put_state_rule(x, term, x->queue[i], &n_queue);
}

int lmql__grammar_gbnf(const struct lmql_grammar *g, struct lmql__buf *out, struct lmql__err *e) {
    struct exporter x = {.g = g, .out = out, .bad_term = -1};
    bool *nt_used = lmql__calloc((size_t)g->n_nt + 1, sizeof *nt_used);
    int32_t *stack = lmql__malloc(((size_t)g->n_nt + 1) * sizeof *stack);
    x.term_used = lmql__calloc((size_t)g->n_term + 1, sizeof *x.term_used);
    x.ts = lmql__calloc((size_t)g->n_term + 1, sizeof *x.ts);
    if (!nt_used || !stack || !x.term_used || !x.ts) x.nomem = true;

    /* The rules reachable from the start, in the order found. */
    int32_t n_stack = 0;
    if (!x.nomem) {
        nt_used[g->start] = true;
        stack[n_stack++] = g->start;
    }
    put(&x, "root ::= ");
    if (!x.nomem) put_nt(&x, g->start);
    put(&x, "\n");
    for (int32_t i = 0; i < n_stack && !x.nomem; i++) {
        int32_t A = stack[i];
        put_nt(&x, A);
        put(&x, " ::=");
        for (int32_t k = 0; k < g->nt_n_alts[A]; k++) {
            const struct lmql__galt *al = &g->alts[g->nt_alts[g->nt_first[A] + k]];
            put(&x, k ? " |" : "");
            if (al->n == 0) put(&x, " \"\"");
            for (int32_t j = 0; j < al->n; j++) {
                int32_t sym = g->items[al->off + j];
                put(&x, " ");
                if (LMQL_G_IS_T(sym)) {
                    int32_t t = LMQL_G_T_ID(sym);
                    x.term_used[t] = true;
                    put_state(&x, t, g->terms[t].start);
                } else {
                    put_nt(&x, sym);
                    if (!nt_used[sym]) {
                        nt_used[sym] = true;
                        stack[n_stack++] = sym;
                    }
                }
            }
        }
        put(&x, "\n");
    }
    /* A literal that is not whole UTF-8 characters has no GBNF form. */
    for (int32_t i = 0; i < g->n_term && !x.nomem && x.bad_term < 0; i++) {
        const struct lmql__gterm *t = &g->terms[i];
        if (!x.term_used[i] || t->is_re) continue;
        x.bad_why = !lmql__utf8_valid((const unsigned char *)t->text, t->len) ? "is not valid UTF-8"
                    : memchr(t->text, 0, t->len)                                ? "holds U+0000, which GBNF never matches"
                                                                                : NULL;
        if (x.bad_why) x.bad_term = i;
    }
    for (int32_t t = 0; t < g->n_term && !x.nomem && x.bad_term < 0; t++)
        if (x.term_used[t]) put_term_rules(&x, t);

    for (int32_t t = 0; x.ts && t < g->n_term; t++) {
        struct tstates *ts = &x.ts[t];
        for (int32_t s = 0; ts->out && s < ts->n; s++) free(ts->out[s].v);
        free(ts->out);
        free(ts->have);
        free(ts->acc);
        free(ts->queued);
    }
    free(x.ts);
    free(x.term_used);
    free(x.queue);
    free(nt_used);
    free(stack);
    if (x.nomem) return lmql__err_nomem(e);
    if (x.bad_term >= 0)
        return lmql__err_set(e, LMQL_ERR_QUERY, NULL, "terminal %d %s: GBNF cannot write it", (int)x.bad_term,
                             x.bad_why);
    return 0;
}
