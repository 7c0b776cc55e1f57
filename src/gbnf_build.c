/*
** Building a grammar from parsed GBNF rules (see gbnf.c): their regex text,
** which rules are regular, and the grammar's nonterminals and terminals.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gbnf_int.h"
#include "regex.h"

/* ----------------------------------------------------------- regexes -- */

/* Regex text being written (b NULL: only measured); past cap, over. */
struct rxo {
    struct lmql__buf *b;
    size_t len, cap;
    bool over, oom;
};

static void put(struct rxo *o, const char *s, size_t n) {
    if (o->over) return;
    o->len += n;
    if (o->len > o->cap) o->over = true;
    else if (o->b && lmql__buf_add(o->b, s, n)) o->oom = o->over = true;
}
static void puts_(struct rxo *o, const char *s) { put(o, s, strlen(s)); }

/* One code point, escaped unless a letter or digit. */
static void rx_cp(struct rxo *o, uint32_t cp) {
    char buf[16];
    if ((cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z')) {
        buf[0] = (char)cp;
        buf[1] = 0;
    } else if (cp < 0x80) {
        snprintf(buf, sizeof buf, "\\x%02x", (unsigned)cp);
    } else if (cp <= 0xFFFF) {
        snprintf(buf, sizeof buf, "\\u%04x", (unsigned)cp);
    } else {
        snprintf(buf, sizeof buf, "\\U%08x", (unsigned)cp);
    }
    puts_(o, buf);
}

static void rx_set(struct rxo *o, const struct lmql__gnode *n) {
    const uint32_t *rg = n->u.set.rg;
    if (n->u.set.n == 1 && rg[0] == rg[1]) {
        rx_cp(o, rg[0]);
        return;
    }
    puts_(o, "[");
    for (int32_t k = 0; k < n->u.set.n; k++) {
        rx_cp(o, rg[2 * k]);
        if (rg[2 * k + 1] != rg[2 * k]) {
            if (rg[2 * k + 1] != rg[2 * k] + 1) puts_(o, "-");
            rx_cp(o, rg[2 * k + 1]);
        }
    }
    puts_(o, "]");
}

static void rx_node(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__gnode *n, int ctx);
static void rx_rule(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__grule *r, int ctx);

static void rx_quant(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__gnode *x, uint32_t min,
                     uint32_t max) {
    if (min == 1 && max == 1) {
        rx_node(o, c, x, CTX_SEQ);
        return;
    }
    rx_node(o, c, x, CTX_ATOM);
    char buf[32];
    if (max == REP_INF) {
        if (min == 0) snprintf(buf, sizeof buf, "*");
        else if (min == 1) snprintf(buf, sizeof buf, "+");
        else snprintf(buf, sizeof buf, "{%u,}", min);
    } else if (min == 0 && max == 1) {
        snprintf(buf, sizeof buf, "?");
    } else if (min == max) {
        snprintf(buf, sizeof buf, "{%u}", min);
    } else {
        snprintf(buf, sizeof buf, "{%u,%u}", min, max);
    }
    puts_(o, buf);
}

/* x{min,max} with counts the regex engine takes (LMQL_REGEX_MAX_REPEAT):
** x{m,n} = x{m} x{0,n-m}, each in pieces of at most 1000. */
static void rx_rep(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__gnode *x, uint32_t min,
                   uint32_t max) {
    const uint32_t K = 1000;
    if (max == REP_INF ? min <= K : max <= K) {
        rx_quant(o, c, x, min, max);
        return;
    }
    uint32_t m = min;
    for (; m > K; m -= K) rx_quant(o, c, x, K, K);
    if (max == REP_INF) {
        rx_quant(o, c, x, m, REP_INF);
        return;
    }
    if (m) rx_quant(o, c, x, m, m);
    uint32_t opt = max - min;
    for (; opt > K; opt -= K) rx_quant(o, c, x, 0, K);
    if (opt) rx_quant(o, c, x, 0, opt);
}

static void rx_node(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__gnode *n, int ctx) {
    if (o->over) return;
    switch (n->kind) {
    case GK_CHARS: rx_set(o, n); return;
    case GK_LIT:
        if (n->u.lit.n == 1) {
            rx_cp(o, n->u.lit.cp[0]);
            return;
        }
        if (ctx == CTX_ATOM) puts_(o, "(?:");
        for (int32_t k = 0; k < n->u.lit.n; k++) rx_cp(o, n->u.lit.cp[k]);
        if (ctx == CTX_ATOM) puts_(o, ")");
        return;
    case GK_REF: rx_rule(o, c, &c->rules[n->u.ref.rule], ctx); return;
    case GK_SEQ:
        if (ctx == CTX_ATOM) puts_(o, "(?:");
        for (int32_t k = 0; k < n->u.list.n; k++) rx_node(o, c, n->u.list.kid[k], CTX_SEQ);
        if (ctx == CTX_ATOM) puts_(o, ")");
        return;
    case GK_ALT: {
        int32_t n_live = 0;
        const struct lmql__gnode *only = NULL;
        for (int32_t k = 0; k < n->u.list.n; k++)
            if (n->u.list.kid[k]->productive) {
                n_live++;
                only = n->u.list.kid[k];
            }
        if (n_live == 1) {
            rx_node(o, c, only, ctx);
            return;
        }
        if (ctx != CTX_TOP) puts_(o, "(?:");
        bool first = true;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            if (!n->u.list.kid[k]->productive) continue;
            if (!first) puts_(o, "|");
            first = false;
            rx_node(o, c, n->u.list.kid[k], CTX_TOP);
        }
        if (ctx != CTX_TOP) puts_(o, ")");
        return;
    }
    case GK_REP:
        if (ctx == CTX_ATOM) puts_(o, "(?:");
        if (n->u.rep.x->productive) rx_rep(o, c, n->u.rep.x, n->u.rep.min, n->u.rep.max);
        if (ctx == CTX_ATOM) puts_(o, ")");
        return;
    }
}

/* The last kid of a tail-form sequence that holds the rule. */
static const struct lmql__gnode *tail_kid(const struct lmql__gnode *n, int32_t *at) {
    for (int32_t k = n->u.list.n - 1; k >= 0; k--)
        if (n->u.list.kid[k]->tr) {
            *at = k;
            return n->u.list.kid[k];
        }
    *at = -1;
    return NULL;
}

/* Part U (v false) or V (v true) of a node in tail form (see tail_check). */
static void rx_tail(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__gnode *n, bool v, int ctx) {
    if (!n->tr) {
        rx_node(o, c, n, ctx);
        return;
    }
    switch (n->kind) {
    case GK_REF:   /* the rule itself: V is the empty text */
        if (ctx == CTX_ATOM) puts_(o, "(?:)");
        return;
    case GK_SEQ: {
        int32_t at;
        const struct lmql__gnode *t = tail_kid(n, &at);
        if (ctx == CTX_ATOM) puts_(o, "(?:");
        for (int32_t k = 0; k < at; k++) rx_node(o, c, n->u.list.kid[k], CTX_SEQ);
        rx_tail(o, c, t, v, CTX_SEQ);
        if (ctx == CTX_ATOM) puts_(o, ")");
        return;
    }
    case GK_ALT: {
        int32_t n_live = 0;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            const struct lmql__gnode *kid = n->u.list.kid[k];
            n_live += kid->productive && (v ? kid->tv : kid->tu);
        }
        if (n_live > 1 && ctx != CTX_TOP) puts_(o, "(?:");
        bool first = true;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            const struct lmql__gnode *kid = n->u.list.kid[k];
            if (!kid->productive || !(v ? kid->tv : kid->tu)) continue;
            if (!first) puts_(o, "|");
            first = false;
            rx_tail(o, c, kid, v, n_live > 1 ? CTX_TOP : ctx);
        }
        if (n_live > 1 && ctx != CTX_TOP) puts_(o, ")");
        return;
    }
    case GK_REP: {   /* x? holding the rule: U = (U of x)?, V = V of x */
        const struct lmql__gnode *x = n->u.rep.x;
        if (v) {
            rx_tail(o, c, x, true, ctx);
        } else {
            if (ctx == CTX_ATOM) puts_(o, "(?:");
            if (x->tu) {
                puts_(o, "(?:");
                rx_tail(o, c, x, false, CTX_TOP);
                puts_(o, ")?");
            }
            if (ctx == CTX_ATOM) puts_(o, ")");
        }
        return;
    }
    default: return;
    }
}

static void rx_rule(struct rxo *o, const struct lmql__gbnfc *c, const struct lmql__grule *r, int ctx) {
    if (!r->tail) {
        rx_node(o, c, r->body, ctx);
        return;
    }
    /* R ::= U | V R  is  R = V* U */
    if (ctx == CTX_ATOM) puts_(o, "(?:");
    if (r->body->tv) {
        puts_(o, "(?:");
        rx_tail(o, c, r->body, true, CTX_TOP);
        puts_(o, ")*");
    }
    rx_tail(o, c, r->body, false, CTX_SEQ);
    if (ctx == CTX_ATOM) puts_(o, ")");
}

/* The bytes of a fixed string (islit). */
static int lit_bytes(const struct lmql__gbnfc *c, const struct lmql__gnode *n, struct lmql__buf *b) {
    switch (n->kind) {
    case GK_LIT:
        for (int32_t k = 0; k < n->u.lit.n; k++) {
            char u[4];
            if (lmql__buf_add(b, u, (size_t)lmql__gbnf_utf8_put(n->u.lit.cp[k], u))) return -1;
        }
        return 0;
    case GK_SEQ:
        for (int32_t k = 0; k < n->u.list.n; k++)
            if (lit_bytes(c, n->u.list.kid[k], b)) return -1;
        return 0;
    case GK_REF: return lit_bytes(c, c->rules[n->u.ref.rule].body, b);
    default: return 0;   /* a repetition of nothing */
    }
}

static uint32_t measure(const struct lmql__gbnfc *c, const struct lmql__gnode *n, const struct lmql__grule *r) {
    struct rxo o = {.cap = T_TERM};
    if (r) rx_rule(&o, c, r, CTX_SEQ);
    else rx_node(&o, c, n, CTX_SEQ);
    return o.over ? UINT32_MAX : (uint32_t)o.len;
}

/* ------------------------------------------------------ classifying -- */

/* Bottom-up: reg, islit, w, ed of n's subtree (rules it refers to are
** classified already, or are in its own component: NONREG for now). */
static void attrs(struct lmql__gbnfc *c, struct lmql__gnode *n) {
    switch (n->kind) {
    case GK_CHARS:
        n->reg = true;
        n->w = 4 * (uint32_t)n->u.set.n + 4;
        n->ed = 1;
        return;
    case GK_LIT:
        n->reg = n->islit = true;
        n->w = (uint32_t)n->u.lit.n + 1;
        n->ed = 1;
        return;
    case GK_REF: {
        const struct lmql__grule *r = &c->rules[n->u.ref.rule];
        n->reg = r->cls == R_INLINE;
        n->islit = n->reg && r->islit;
        n->w = r->w;
        n->ed = r->ed + 1;
        return;
    }
    case GK_SEQ:
    case GK_ALT: {
        bool seq = n->kind == GK_SEQ;
        n->reg = true;
        n->islit = seq;
        n->w = 1;
        n->ed = 0;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            struct lmql__gnode *kid = n->u.list.kid[k];
            attrs(c, kid);
            if (!seq && !kid->productive) continue;
            n->reg = n->reg && kid->reg;
            n->islit = n->islit && kid->islit;
            n->w = lmql__gbnf_sat_add(n->w, kid->w);
            if (kid->ed > n->ed) n->ed = kid->ed;
        }
        n->ed++;
        return;
    }
    case GK_REP: {
        struct lmql__gnode *x = n->u.rep.x;
        attrs(c, x);
        if (!x->productive) {   /* matches only the empty text */
            n->reg = n->islit = true;
            n->w = n->ed = 1;
            return;
        }
        n->reg = x->reg;
        uint32_t times = n->u.rep.max != REP_INF ? n->u.rep.max : n->u.rep.min + 1;
        n->w = lmql__gbnf_sat_mul(lmql__gbnf_sat_add(x->w, 2), times);
        n->ed = x->ed + 1;
        return;
    }
    }
}

static bool pure_empty(const struct lmql__gnode *n) {
    return (n->kind == GK_LIT && n->u.lit.n == 0) || (n->kind == GK_SEQ && n->u.list.n == 0);
}

/*
** Tail form of a rule R that refers to itself: every reference to R is
** the last thing its alternative matches (through sequences, alternations
** and '?'), and everything else is regular. Then the body is U | V R with
** U and V regular, and R = V* U. For a node: tr = it holds a reference to
** R, tu / tv = U / V is not empty. Returns whether n has the form.
*/
static bool tail_check(struct lmql__gbnfc *c, struct lmql__gnode *n, int32_t self) {
    n->tr = false;
    n->tu = n->productive;
    n->tv = false;
    if (!n->productive) return true;
    switch (n->kind) {
    case GK_REF:
        if (n->u.ref.rule != self) return n->reg;
        n->tr = n->tv = true;
        n->tu = false;
        return true;
    case GK_SEQ: {
        int32_t last = -1;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            if (!tail_check(c, n->u.list.kid[k], self)) return false;
            if (n->u.list.kid[k]->tr) {
                if (last >= 0) return false;   /* R before the end */
                last = k;
            }
        }
        if (last < 0) return n->reg;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            if (k > last && !pure_empty(n->u.list.kid[k])) return false;
            if (k < last && !n->u.list.kid[k]->reg) return false;
        }
        n->tr = true;
        n->tu = n->u.list.kid[last]->tu;
        n->tv = n->u.list.kid[last]->tv;
        return true;
    }
    case GK_ALT:
        n->tu = false;
        for (int32_t k = 0; k < n->u.list.n; k++) {
            struct lmql__gnode *kid = n->u.list.kid[k];
            if (!kid->productive) continue;
            if (!tail_check(c, kid, self)) return false;
            n->tr = n->tr || kid->tr;
            n->tu = n->tu || kid->tu;
            n->tv = n->tv || kid->tv;
        }
        return true;
    case GK_REP: {
        struct lmql__gnode *x = n->u.rep.x;
        if (!tail_check(c, x, self)) return false;
        if (!x->tr) return n->reg;
        if (n->u.rep.min != 0 || n->u.rep.max != 1) return false;
        n->tr = n->tu = true;
        n->tv = x->tv;
        return true;
    }
    default: return true;
    }
}

/* Classify rule r, alone in its component (self: it refers to itself). */
static void classify(struct lmql__gbnfc *c, int32_t r, bool self) {
    struct lmql__grule *R = &c->rules[r];
    struct lmql__gnode *b = R->body;
    attrs(c, b);
    R->cls = R_NONREG;
    if (!b->productive) return;
    if (self) {
        if (!tail_check(c, b, r) || !b->tu) return;
        R->tail = true;
        R->w = lmql__gbnf_sat_mul(b->w, 2);
        R->ed = b->ed + 2;
    } else {
        if (!b->reg) return;
        R->islit = b->islit;
        R->w = b->w;
        R->ed = b->ed;
    }
    if (R->w > W_MAX || R->ed > ED_MAX) return;
    uint32_t tl = measure(c, NULL, R);
    R->cls = tl <= T_INLINE ? R_INLINE : tl <= T_TERM ? R_TERM : R_NONREG;
}

/* Tarjan's strongly connected components over every reference; a
** component is complete once all the rules it reaches are, so each rule
** is classified after the rules it uses. Iterative: rule chains may be
** long. */
int lmql__gbnf_classify(struct lmql__gbnfc *c) {
    if (lmql__gbnf_edges(c, false, NULL)) return -1;
    int32_t n = c->n_rules, *S = lmql__malloc(((size_t)n + 1) * sizeof *S);
    int32_t *cs = lmql__malloc(((size_t)n + 1) * sizeof *cs), *ci = lmql__malloc(((size_t)n + 1) * sizeof *ci);
    int rc = 0;
    if (!S || !cs || !ci) {
        rc = lmql__gbnf_nomem(c);
        goto done;
    }
    int32_t counter = 0, ns = 0;
    for (int32_t r0 = 0; r0 < n; r0++) {
        if (c->rules[r0].idx >= 0) continue;
        int32_t d = 0;
        cs[0] = r0;
        ci[0] = 0;
        c->rules[r0].idx = c->rules[r0].low = counter++;
        c->rules[r0].on_stack = true;
        S[ns++] = r0;
        while (d >= 0) {
            int32_t v = cs[d];
            struct lmql__grule *V = &c->rules[v];
            if (ci[d] < V->n_adj) {
                int32_t w = c->adj[V->adj + ci[d]++];
                struct lmql__grule *W = &c->rules[w];
                if (W->idx < 0) {
                    W->idx = W->low = counter++;
                    W->on_stack = true;
                    S[ns++] = w;
                    cs[++d] = w;
                    ci[d] = 0;
                } else if (W->on_stack && W->idx < V->low) {
                    V->low = W->idx;
                }
                continue;
            }
            if (V->low == V->idx) {
                int32_t size = 0, w;
                do {
                    w = S[--ns];
                    c->rules[w].on_stack = false;
                    size++;
                } while (w != v);
                if (size == 1) {
                    bool self = false;
                    for (int32_t k = 0; k < V->n_adj; k++) self = self || c->adj[V->adj + k] == v;
                    classify(c, v, self);
                } else {
                    for (int32_t k = ns; k < ns + size; k++) {
                        c->rules[S[k]].cls = R_NONREG;
                        attrs(c, c->rules[S[k]].body);
                    }
                }
            }
            d--;
            if (d >= 0 && V->low < c->rules[cs[d]].low) c->rules[cs[d]].low = V->low;
        }
    }
done:
    free(S);
    free(cs);
    free(ci);
    return rc;
}

/* ---------------------------------------------------------- building -- */

struct symv {
    int32_t *v;
    size_t n, cap;
};

static int sv_push(struct lmql__gbnfc *c, struct symv *s, int32_t x) {
    if (lmql__gbnf_vgrow(c, (void **)&s->v, &s->cap, s->n + 1, sizeof *s->v)) return -1;
    s->v[s->n++] = x;
    return 0;
}

static int add_alt(struct lmql__gbnfc *c, int32_t nt, const struct symv *s) {
    size_t n = s ? s->n : 0;
    c->n_items += n;
    if (lmql__gb_n_alternatives(c->b) >= MAX_ALTS || c->n_items > MAX_ITEMS || n > INT32_MAX)
        return lmql__gbnf_fail(c, "the grammar is too large once its repetitions are expanded (more than %d "
                               "alternatives or %d symbols)", MAX_ALTS, MAX_ITEMS);
    if (lmql__gb_alt(c->b, nt, s ? s->v : NULL, (int)n)) return lmql__gbnf_nomem(c);
    return 0;
}

/* A new nonterminal named after the rule being built, as llama.cpp names
** the rules it makes (rule_N). */
static int new_nt(struct lmql__gbnfc *c, int32_t *nt) {
    char name[160];
    const struct lmql__grule *r = c->cur;
    snprintf(name, sizeof name, "%.*s_%d", r ? lmql__gbnf_name_len(r) : 4, r ? r->name : "root", ++c->n_gen);
    if ((*nt = lmql__gb_nonterminal(c->b, name)) < 0) return lmql__gbnf_nomem(c);
    return 0;
}

/* A terminal of regex text (or of literal bytes when lit): 0 with *sym,
** 1 when the regex engine refuses it, -1 on error. Past RX_BUDGET bytes
** of regex text in all, long regexes are refused too (each costs a DFA):
** what is left is built as rules of smaller terminals. A single class
** (atom) is never refused for that. */
static int make_term(struct lmql__gbnfc *c, const struct lmql__buf *rx, const struct lmql__buf *lit, bool atom,
                     int32_t *sym) {
    struct lmql__err te = {0};
    if (!lit && !atom && rx->len > 256 && c->rx_spent + rx->len > RX_BUDGET) {
        snprintf(c->rx_err.msg, sizeof c->rx_err.msg, "the grammar's regexes are too large in all");
        return 1;
    }
    uint64_t h = 14695981039346656037u;   /* FNV-1a: a regex refused once is not tried again */
    for (size_t k = 0; !lit && k < rx->len; k++) h = (h ^ (unsigned char)rx->data[k]) * 1099511628211u;
    for (int k = 0; !lit && k < c->n_refused && k < MAX_REFUSED_KEPT; k++)
        if (c->refused[k] == h) return 1;
    int32_t t = lit ? lmql__gb_literal(c->b, lit->data, lit->len, &te) : lmql__gb_regex(c->b, rx->data, rx->len, &te);
    if (t >= 0) {
        if (!lit) c->rx_spent += rx->len;
        *sym = LMQL_G_T(t);
        return 0;
    }
    if (te.status == LMQL_ERR_NOMEM) return lmql__gbnf_nomem(c);
    c->rx_err = te;
    if (c->n_refused < MAX_REFUSED_KEPT) c->refused[c->n_refused] = h;
    c->n_refused++;
    return 1;
}

/*
** Each regex the engine refuses costs up to its work limit (tenths of a
** second, many times that under the sanitizers). After a few, the rest of
** the grammar is built cautiously: only single classes and literals and
** repetitions of them, whose automata are as small as their counts, become
** terminals; everything else is rules of those.
*/
static bool cautious(const struct lmql__gbnfc *c) { return c->n_refused >= MAX_REFUSED; }

static bool small_node(const struct lmql__gnode *n) {
    if (n->kind == GK_REP) n = n->u.rep.x;
    return n->kind == GK_CHARS || n->kind == GK_LIT;
}

/* Whether n can be part of a run: one regex, not too large. */
static bool inl(const struct lmql__gbnfc *c, struct lmql__gnode *n) {
    if (!n->reg || !n->productive || n->w > W_MAX || n->ed > ED_MAX) return false;
    if (cautious(c) && !small_node(n)) return false;
    if (n->tl == UINT32_MAX) n->tl = measure(c, n, NULL);
    return n->tl <= T_TERM;
}

static int structural(struct lmql__gbnfc *c, struct lmql__gnode *n, struct symv *out);
static int alts_of(struct lmql__gbnfc *c, int32_t nt, struct lmql__gnode *n, bool merge);

/* The items it[0..k) (each inl) as one terminal appended to out; what the
** regex engine refuses is split, then built as rules. */
static int run_items(struct lmql__gbnfc *c, struct lmql__gnode **it, size_t k, struct symv *out) {
    if (cautious(c) && (k > 1 || !small_node(it[0]))) {
        int rc = 0;
        for (size_t j = 0; j < k && !rc && k > 1; j++) rc = run_items(c, &it[j], 1, out);
        return k > 1 ? rc : structural(c, it[0], out);
    }
    struct lmql__buf rx = {0}, lit = {0};
    struct rxo o = {.b = &rx, .cap = T_TERM};
    bool all_lit = true;
    int rc = -1;
    for (size_t j = 0; j < k; j++) {
        rx_node(&o, c, it[j], CTX_SEQ);
        all_lit = all_lit && it[j]->islit;
    }
    if (o.oom) {
        lmql__gbnf_nomem(c);
        goto done;
    }
    if (o.len == 0 && !o.over) {   /* only empty things */
        rc = 0;
        goto done;
    }
    int32_t sym = 0;
    int got = 1;
    if (!o.over) {
        if (all_lit && lit_bytes(c, it[0], &lit)) goto oom;
        for (size_t j = 1; all_lit && j < k; j++)
            if (lit_bytes(c, it[j], &lit)) goto oom;
        got = make_term(c, &rx, all_lit ? &lit : NULL, k == 1 && it[0]->kind == GK_CHARS, &sym);
    }
    if (got < 0) goto done;
    if (got == 0) {
        rc = sv_push(c, out, sym);
    } else if (k > 1) {
        rc = 0;
        for (size_t j = 0; j < k && !rc; j++) rc = run_items(c, &it[j], 1, out);
    } else {
        rc = structural(c, it[0], out);
    }
    goto done;
oom:
    lmql__gbnf_nomem(c);
done:
    lmql__buf_free(&rx);
    lmql__buf_free(&lit);
    return rc;
}

static int flatten(struct lmql__gbnfc *c, struct lmql__gnode *n, struct lmql__gnode ***v, size_t *len, size_t *cap) {
    if (n->kind == GK_SEQ) {
        for (int32_t k = 0; k < n->u.list.n; k++)
            if (flatten(c, n->u.list.kid[k], v, len, cap)) return -1;
        return 0;
    }
    if (lmql__gbnf_vgrow(c, (void **)v, cap, *len + 1, sizeof **v)) return -1;
    (*v)[(*len)++] = n;
    return 0;
}

/* The symbols of sequence n (productive) appended to out: maximal runs of
** regular items become single terminals. */
static int build_seq(struct lmql__gbnfc *c, struct lmql__gnode *n, struct symv *out) {
    struct lmql__gnode **it = NULL;
    size_t k = 0, cap = 0;
    int rc = flatten(c, n, &it, &k, &cap);
    for (size_t i = 0; i < k && !rc;) {
        if (!inl(c, it[i])) {
            rc = structural(c, it[i++], out);
            continue;
        }
        size_t j = i;
        uint32_t sum = 0;
        while (j < k && inl(c, it[j]) && sum + it[j]->tl <= T_TERM && (j == i || !cautious(c))) sum += it[j++]->tl;
        rc = run_items(c, it + i, j - i, out);
        i = j;
    }
    free(it);
    return rc;
}

/* A single symbol deriving what n matches. */
static int rule_symbol(struct lmql__gbnfc *c, int32_t r, int32_t *sym);

static int symbol_of(struct lmql__gbnfc *c, struct lmql__gnode *n, int32_t *sym) {
    if (!inl(c, n)) {
        if (n->kind == GK_REF) return rule_symbol(c, n->u.ref.rule, sym);
        return new_nt(c, sym) || alts_of(c, *sym, n, true) ? -1 : 0;
    }
    struct symv s = {0};
    int rc = run_items(c, &n, 1, &s);
    if (!rc && s.n == 1) *sym = s.v[0];
    else if (!rc) rc = new_nt(c, sym) || add_alt(c, *sym, &s) ? -1 : 0;
    free(s.v);
    return rc;
}

static int sv_append(struct lmql__gbnfc *c, struct symv *s, const struct symv *t) {
    for (size_t k = 0; k < t->n; k++)
        if (sv_push(c, s, t->v[k])) return -1;
    return 0;
}

/* x{min,max} for an x that is not one regex: llama.cpp's expansion,
** x x ... x (min times) then R ::= x R | "" (no maximum) or a chain of
** max - min optional ones, O_k ::= x O_(k-1) | "". A sequence x is spliced
** in as its symbols, anything else is one symbol. */
static int rep_rules(struct lmql__gbnfc *c, struct lmql__gnode *n, struct symv *out) {
    struct lmql__gnode *x = n->u.rep.x;
    uint32_t min = n->u.rep.min, max = n->u.rep.max;
    if (!x->productive) return 0;
    if (max == REP_INF && x->nullable)
        return lmql__gbnf_fail_at(c, n->off,
                                  "a repetition without maximum of something that can match the empty text (it "
                                  "would loop without reading; llama.cpp refuses it as left recursion)");
    struct symv xs = {0}, a = {0};
    int32_t s, rest = -1;
    int rc = -1;
    if (x->kind == GK_SEQ && !inl(c, x) ? build_seq(c, x, &xs) : symbol_of(c, x, &s) || sv_push(c, &xs, s)) goto done;
    for (uint32_t k = 0; k < min; k++)
        if (sv_append(c, out, &xs)) goto done;
    if (max == REP_INF) {
        if (new_nt(c, &rest) || sv_append(c, &a, &xs) || sv_push(c, &a, rest) || add_alt(c, rest, &a) ||
            add_alt(c, rest, NULL))
            goto done;
    } else {
        for (uint32_t k = min; k < max; k++) {
            int32_t o;
            a.n = 0;
            if (new_nt(c, &o) || sv_append(c, &a, &xs) || (rest >= 0 && sv_push(c, &a, rest)) || add_alt(c, o, &a) ||
                add_alt(c, o, NULL))
                goto done;
            rest = o;
        }
    }
    rc = rest >= 0 ? sv_push(c, out, rest) : 0;
done:
    free(xs.v);
    free(a.v);
    return rc;
}

/* An item that is not (or could not be) part of a run. */
static int structural(struct lmql__gbnfc *c, struct lmql__gnode *n, struct symv *out) {
    int32_t sym;
    switch (n->kind) {
    case GK_REF: return rule_symbol(c, n->u.ref.rule, &sym) || sv_push(c, out, sym) ? -1 : 0;
    case GK_ALT: return new_nt(c, &sym) || alts_of(c, sym, n, !inl(c, n)) || sv_push(c, out, sym) ? -1 : 0;
    case GK_REP: return rep_rules(c, n, out);
    case GK_SEQ: return build_seq(c, n, out);
    default:   /* a class or literal the regex engine refused */
        return lmql__gbnf_fail_at(c, n->off, "internal error: the regex engine refused a class: %s", c->rx_err.msg);
    }
}

/* The alternatives of n added to nt; with merge, those that are regular
** become one regex alternative. */
static int alts_of(struct lmql__gbnfc *c, int32_t nt, struct lmql__gnode *n, bool merge) {
    struct symv s = {0};
    int rc = 0;
    if (!n->productive) return 0;
    if (n->kind != GK_ALT) {
        rc = build_seq(c, n, &s) || add_alt(c, nt, &s) ? -1 : 0;
        free(s.v);
        return rc;
    }
    int32_t nk = n->u.list.n, n_inl = 0;
    bool *done = lmql__calloc((size_t)nk + 1, 1);
    if (!done) return lmql__gbnf_nomem(c);
    uint64_t sum = 0;
    for (int32_t k = 0; k < nk; k++) {
        struct lmql__gnode *kid = n->u.list.kid[k];
        if (kid->productive && inl(c, kid) && sum + kid->tl + 1 <= T_TERM) {
            n_inl++;
            sum += kid->tl + 1;
        }
    }
    if (merge && n_inl >= 2 && !cautious(c)) {
        struct lmql__buf rx = {0};
        struct rxo o = {.b = &rx, .cap = T_TERM};
        bool first = true;
        sum = 0;
        for (int32_t k = 0; k < nk; k++) {
            struct lmql__gnode *kid = n->u.list.kid[k];
            if (!kid->productive || !inl(c, kid) || sum + kid->tl + 1 > T_TERM) continue;
            sum += kid->tl + 1;
            if (!first) puts_(&o, "|");
            first = false;
            rx_node(&o, c, kid, CTX_TOP);
            done[k] = true;
        }
        int32_t sym;
        int got = o.oom ? lmql__gbnf_nomem(c) : o.over ? 1 : make_term(c, &rx, NULL, false, &sym);
        lmql__buf_free(&rx);
        if (got == 0) rc = sv_push(c, &s, sym) || add_alt(c, nt, &s) ? -1 : 0;
        else if (got < 0) rc = -1;
        else memset(done, 0, (size_t)nk);
    }
    for (int32_t k = 0; k < nk && !rc; k++) {
        struct lmql__gnode *kid = n->u.list.kid[k];
        if (done[k] || !kid->productive) continue;
        s.n = 0;
        rc = build_seq(c, kid, &s) || add_alt(c, nt, &s) ? -1 : 0;
    }
    free(done);
    free(s.v);
    return rc;
}

static int rule_symbol(struct lmql__gbnfc *c, int32_t r, int32_t *sym) {
    struct lmql__grule *R = &c->rules[r];
    if (R->sym != INT32_MIN) {
        *sym = R->sym;
        return 0;
    }
    /* A rule that only names another (root ::= object) is that one's
    ** symbol: one rule change less. Chains are followed a little way. */
    int32_t t = r;
    for (int hops = 0; hops < 32 && c->rules[t].cls == R_NONREG && c->rules[t].body->kind == GK_REF; hops++)
        t = c->rules[t].body->u.ref.rule;
    if (t != r && !(c->rules[t].cls == R_NONREG && c->rules[t].body->kind == GK_REF)) {
        if (rule_symbol(c, t, sym)) return -1;   /* t is no alias: this recursion is one level deep */
        R->sym = *sym;
        return 0;
    }
    if (R->cls != R_NONREG && cautious(c) && !(small_node(R->body) && !R->tail)) R->forced = true;
    if (R->cls != R_NONREG && !R->forced) {
        struct lmql__buf rx = {0}, lit = {0};
        struct rxo o = {.b = &rx, .cap = T_TERM};
        rx_rule(&o, c, R, CTX_TOP);
        int got = o.oom ? lmql__gbnf_nomem(c) : 1;
        if (!o.oom && !o.over && o.len > 0) {
            if (R->islit && lit_bytes(c, R->body, &lit)) got = lmql__gbnf_nomem(c);
            else got = make_term(c, &rx, R->islit ? &lit : NULL, false, &R->sym);
        } else if (!o.oom && !o.over) {   /* the empty text */
            got = new_nt(c, &R->sym) || add_alt(c, R->sym, NULL) ? -1 : 0;
        }
        lmql__buf_free(&rx);
        lmql__buf_free(&lit);
        if (got < 0) return -1;
        if (got == 0) {
            *sym = R->sym;
            return 0;
        }
        R->forced = true;
    }
    char name[160];
    snprintf(name, sizeof name, "%.*s", lmql__gbnf_name_len(R), R->name);
    if ((R->sym = lmql__gb_nonterminal(c->b, name)) < 0 ||
        lmql__gbnf_vgrow(c, (void **)&c->queue, &c->cap_queue, c->n_queue + 1, sizeof *c->queue))
        return lmql__gbnf_nomem(c);
    c->queue[c->n_queue++] = r;
    *sym = R->sym;
    return 0;
}

struct lmql_grammar *lmql__gbnf_build(struct lmql__gbnfc *c, int32_t root) {
    struct lmql__grule *R = &c->rules[root];
    if (!R->body->productive) {
        lmql__gbnf_fail_at(c, R->def_off,
                           "rule '%.*s' matches no text at all: each of its alternatives needs a rule that never "
                           "ends, or a character that is not one (U+0000, a surrogate, above U+10FFFF)",
                           lmql__gbnf_name_len(R), R->name);
        return NULL;
    }
    if (!(c->b = lmql__gb_new())) {
        lmql__gbnf_nomem(c);
        return NULL;
    }
    int32_t start;
    c->cur = R;
    if (rule_symbol(c, root, &start)) return NULL;
    if (LMQL_G_IS_T(start)) {   /* a regular start rule: one terminal under a nonterminal of its name */
        char name[160];
        snprintf(name, sizeof name, "%.*s", lmql__gbnf_name_len(R), R->name);
        struct symv s = {0};
        int32_t t = start;
        int rc = (start = lmql__gb_nonterminal(c->b, name)) < 0 ? lmql__gbnf_nomem(c)
                 : sv_push(c, &s, t) || add_alt(c, start, &s) ? -1 : 0;
        free(s.v);
        if (rc) return NULL;
    }
    for (size_t q = 0; q < c->n_queue; q++) {
        struct lmql__grule *Q = &c->rules[c->queue[q]];
        c->cur = Q;
        if (alts_of(c, Q->sym, Q->body, !Q->forced)) return NULL;
    }
    struct lmql__gb *b = c->b;
    c->b = NULL;
    struct lmql_grammar *g = lmql__gb_finish(b, start, c->e);
    if (!g) c->failed = true;
    return g;
}

