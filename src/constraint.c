/*
** The constraints of a hole as token masks (see constraint.h): its plan
** (where.c) made concrete with the values it needs, then masks.
**
** Semantics follow LMQL (LANGUAGE.md §3): `and` intersects the allowed
** tokens, `or` unites them, a violated constraint leaves only EOS; EOS is
** allowed when every conjunct may end here. Phrase lists allow the first
** token of the canonical tokenization of each remaining phrase suffix.
*/
#include "constraint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmql.h"
#include "memo.h"
#include "model.h"
#include "grammar.h"
#include "regex.h"
#include "trie.h"

enum ck {
    CK_TRUE, CK_FALSE, CK_AND, CK_OR, CK_NOT,
    CK_TOKLEN,      /* len(TOKENS(X)) op n */
    CK_CHARLEN,     /* len(X) op n */
    CK_PHRASES,     /* X in [...], X == "s" */
    CK_CONTAINS,    /* "s" in X */
    CK_REGEX,       /* REGEX(X, r), [X: r"..."] */
    CK_INT,         /* INT(X), [X: int] */
    CK_STARTS,      /* STARTS_WITH(X, s | [s, ...]) */
    CK_STOP,        /* STOPS_AT / STOPS_BEFORE: no mask; stop n's place in the tree */
    CK_GRAMMAR,     /* JSON(X, schema), GRAMMAR(X, gbnf), [X: json...] */
};

struct cnode {
    enum ck kind;
    enum lmql_cmpop op;
    int64_t n;
    struct cnode **kids;
    int n_kids;
    char **ph;                    /* phrases (CK_PHRASES, CK_CONTAINS, CK_STARTS) */
    size_t *phl;
    int n_ph;
    const struct lmql_regex *re;  /* CK_REGEX: the plan's, or own_re */
    struct lmql_regex *own_re;    /* a pattern given as a value, compiled here */
    const struct lmql_grammar *gram;  /* CK_GRAMMAR: the plan's, or own_gram */
    struct lmql_grammar *own_gram;    /* a schema or grammar given as a value, compiled here */
    struct lmql__gm *gm;          /* CK_GRAMMAR: its matcher, and how far it has read the value */
    size_t fed;
    int32_t cfg;
    const char *pat;              /* CK_REGEX: its text, which names its masks in the memo */
    size_t pat_len;
    int32_t **first;              /* CK_PHRASES: first canonical token of phrase i from offset k (-2: not yet) */
    struct lmql_trie_cache *cache;
    uint8_t *buf;                 /* this node's mask */
};

struct lmql__cons {
    struct lmql__model *model;
    struct lmql_trie *trie;       /* borrowed from the vocabulary */
    struct cnode *root;           /* an AND of everything */
    struct lmql__stop stops[LMQL_MAX_STOPS];
    struct cnode *stop_parent[LMQL_MAX_STOPS];   /* the node a stop is a conjunct of */
    int n_stops;
    unsigned post;
    uint8_t *all;                 /* every token with text */
    struct lmql__err why;         /* why the last mask failed, when not for memory */
};

/* ------------------------------------------------------ instantiating -- */

/* A plan made concrete at the hole: the values its expressions have now. */
struct inst {
    const struct lmql__cons_env *env;
    struct lmql__cons *c;
    const char *var;
    struct lmql__err *e;
};

/* A value that does not fit, at node n. Returns -1. */
#define ifail(e, n, ...) lmql__err_set((e), LMQL_ERR_QUERY, (n) ? &(n)->pos : NULL, __VA_ARGS__)
/* Out of memory is no fault of the query: a runtime failure, not a query error. */
#define ioom(e) lmql__err_nomem(e)

static struct cnode *node_new(struct inst *k, enum ck kind) {
    struct cnode *c = lmql__calloc(1, sizeof *c);
    if (!c) ioom(k->e);
    else c->kind = kind;
    return c;
}

static void node_free(struct cnode *c) {
    if (!c) return;
    for (int i = 0; i < c->n_kids; i++) node_free(c->kids[i]);
    for (int i = 0; i < c->n_ph; i++) {
        free(c->ph[i]);
        if (c->first) free(c->first[i]);
    }
    free(c->first);
    free(c->kids);
    free(c->ph);
    free(c->phl);
    lmql__regex_free(c->own_re);
    lmql__gm_free(c->gm);
    lmql__grammar_free(c->own_gram);
    lmql__trie_cache_free(c->cache);
    free(c->buf);
    free(c);
}

static int add_kid(struct inst *k, struct cnode *parent, struct cnode *kid) {
    if (!kid) return -1;
    struct cnode **p = lmql__realloc(parent->kids, ((size_t)parent->n_kids + 1) * sizeof *p);
    if (!p) { node_free(kid); return ioom(k->e); }
    parent->kids = p;
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

static int add_phrase(struct inst *k, struct cnode *c, const char *s, size_t n) {
    char **p = lmql__realloc(c->ph, ((size_t)c->n_ph + 1) * sizeof *p);
    if (p) c->ph = p;
    size_t *l = lmql__realloc(c->phl, ((size_t)c->n_ph + 1) * sizeof *l);
    if (l) c->phl = l;
    char *copy = lmql__malloc(n + 1);
    if (!p || !l || !copy) { free(copy); return ioom(k->e); }
    memcpy(copy, s, n);
    copy[n] = 0;
    c->ph[c->n_ph] = copy;
    c->phl[c->n_ph++] = n;
    return 0;
}

/* The value of a plan's expression now: a value, NULL+unknown for a hole
** not generated yet, NULL on error. */
static struct lmql_val *value_of(struct inst *k, const struct lmql_node *n, bool *unknown) {
    *unknown = false;
    struct lmql_val *v = k->env->eval(k->env->ctx, n, unknown);
    if (!v && !*unknown) ifail(k->e, n, "this constraint could not be evaluated");
    return v;
}

/* Phrases from a string or a list of strings. */
static int phrases_from(struct inst *k, struct cnode *c, const struct lmql_node *at, struct lmql_val *v) {
    if (v->kind == LMQL_V_STR) return add_phrase(k, c, v->u.str.s, v->u.str.len);
    if (v->kind != LMQL_V_LIST && v->kind != LMQL_V_TUPLE)
        return ifail(k->e, at, "expected a string or a list of strings, not %s", lmql__val_type_name(v));
    for (size_t i = 0; i < v->u.list.len; i++) {
        struct lmql_val *s = v->u.list.items[i];
        struct lmql__buf b = {0};
        if (s->kind == LMQL_V_STR) lmql__buf_add(&b, s->u.str.s, s->u.str.len);
        else lmql__val_str_into(&b, s);
        int rc = add_phrase(k, c, b.data ? b.data : "", b.len);
        lmql__buf_free(&b);
        if (rc) return -1;
    }
    return 0;
}

static struct cnode *inst(struct inst *k, const struct lmql__wnode *w);

/* A grammar node over g (borrowed), with its own matcher. */
static struct cnode *grammar_node(struct inst *k, const struct lmql_grammar *g) {
    struct cnode *c = node_new(k, CK_GRAMMAR);
    if (!c) return NULL;
    c->gram = g;
    c->gm = lmql__gm_new(g, k->c->trie);
    c->cfg = c->gm ? lmql__gm_start(c->gm) : -2;
    if (c->cfg < 0) {
        node_free(c);
        ioom(k->e);
        return NULL;
    }
    return c;
}

/* A node whose meaning needs the value of w's expression: NULL with
** *unknown set while it names a hole that has no value yet (then the node
** constrains nothing). */
static struct cnode *with_value(struct inst *k, const struct lmql__wnode *w, bool *unknown) {
    struct lmql_val *v = value_of(k, w->expr, unknown);
    if (!v) return NULL;
    struct cnode *c = NULL;
    const char *fn = w->kind == LMQL_W_STOP ? (w->before ? "STOPS_BEFORE" : "STOPS_AT") : NULL;
    switch (w->kind) {
    case LMQL_W_TEST:
        c = node_new(k, lmql__val_truthy(v) ? CK_TRUE : CK_FALSE);
        break;
    case LMQL_W_TOKLEN:
    case LMQL_W_CHARLEN:
        if (v->kind != LMQL_V_INT) ifail(k->e, w->at, "a length bound must be an integer, not %s", lmql__val_type_name(v));
        else if ((c = node_new(k, w->kind == LMQL_W_TOKLEN ? CK_TOKLEN : CK_CHARLEN))) {
            c->op = w->op;
            c->n = v->u.i;
        }
        break;
    case LMQL_W_EQ:
        if (v->kind != LMQL_V_STR) ifail(k->e, w->at, "'%s == ...' needs a string, not %s", k->var, lmql__val_type_name(v));
        else if ((c = node_new(k, CK_PHRASES)) && add_phrase(k, c, v->u.str.s, v->u.str.len)) { node_free(c); c = NULL; }
        break;
    case LMQL_W_IN:
    case LMQL_W_STARTS:
        if ((c = node_new(k, w->kind == LMQL_W_IN ? CK_PHRASES : CK_STARTS)) && phrases_from(k, c, w->at, v)) {
            node_free(c);
            c = NULL;
        }
        break;
    case LMQL_W_CONTAINS:
        if (v->kind != LMQL_V_STR) ifail(k->e, w->at, "'... in %s' needs a string, not %s", k->var, lmql__val_type_name(v));
        else if ((c = node_new(k, CK_CONTAINS)) && add_phrase(k, c, v->u.str.s, v->u.str.len)) { node_free(c); c = NULL; }
        break;
    case LMQL_W_REGEX: {
        if (v->kind != LMQL_V_STR) { ifail(k->e, w->at, "REGEX() needs a pattern string, not %s", lmql__val_type_name(v)); break; }
        struct lmql__err re_err = {0};
        struct lmql_regex *re = lmql__regex_compile(v->u.str.s, v->u.str.len, &re_err);
        if (!re && re_err.status == LMQL_ERR_NOMEM) ioom(k->e);
        else if (!re) ifail(k->e, w->at, "bad regex: %s (at offset %zu of the pattern)", re_err.msg, re_err.pos.offset);
        else if (!(c = node_new(k, CK_REGEX)) || add_phrase(k, c, v->u.str.s, v->u.str.len)) {
            lmql__regex_free(re);
            node_free(c);
            c = NULL;
        } else {
            c->re = c->own_re = re;
            c->pat = c->ph[0];
            c->pat_len = c->phl[0];
        }
        break;
    }
    case LMQL_W_GRAMMAR: {
        struct lmql_grammar *g = lmql__where_grammar(w->gkind, v, w->at, k->e);
        if (g && !(c = grammar_node(k, g))) lmql__grammar_free(g);
        if (c) c->own_gram = g;
        break;
    }
    case LMQL_W_STOP: {
        struct lmql__cons *cs = k->c;
        LMQL_ASSERT(cs->n_stops < LMQL_MAX_STOPS);   /* the plan counted them */
        if (v->kind != LMQL_V_STR || v->u.str.len == 0) {
            ifail(k->e, w->at, "the phrase of %s() must be a non-empty string", fn);
            break;
        }
        char *copy = lmql__malloc(v->u.str.len + 1);
        if (!copy || !(c = node_new(k, CK_STOP))) {
            free(copy);
            ioom(k->e);
            break;
        }
        memcpy(copy, v->u.str.s, v->u.str.len + 1);
        c->n = cs->n_stops;
        cs->stops[cs->n_stops++] = (struct lmql__stop){copy, v->u.str.len, w->before};
        break;
    }
    default:
        LMQL_ASSERT(!"a plan node without a value");
    }
    lmql__val_unref(v);
    return c;
}

static struct cnode *inst(struct inst *k, const struct lmql__wnode *w) {
    switch (w->kind) {
    case LMQL_W_TRUE: return node_new(k, CK_TRUE);
    case LMQL_W_FALSE: return node_new(k, CK_FALSE);
    case LMQL_W_INT: return node_new(k, CK_INT);
    case LMQL_W_AND:
    case LMQL_W_OR: {
        struct cnode *c = node_new(k, w->kind == LMQL_W_OR ? CK_OR : CK_AND);
        for (int i = 0; c && i < w->n_kids; i++)
            if (add_kid(k, c, inst(k, w->kids[i]))) { node_free(c); return NULL; }
        return c;
    }
    case LMQL_W_NOT: {
        LMQL_ASSERT(w->n_kids == 1 && w->kids[0]->kind == LMQL_W_CONTAINS);
        struct cnode *kid = inst(k, w->kids[0]);
        /* Not of something unknown yet constrains nothing either. */
        if (!kid || kid->kind == CK_TRUE) return kid;
        struct cnode *c = node_new(k, CK_NOT);
        if (!c) node_free(kid);
        else if (add_kid(k, c, kid)) { node_free(c); return NULL; }
        return c;
    }
    case LMQL_W_GRAMMAR:
        if (w->gram) return grammar_node(k, w->gram);   /* compiled with the program */
        break;
    case LMQL_W_REGEX:
        if (w->re) {   /* a literal pattern, compiled with the program */
            struct cnode *c = node_new(k, CK_REGEX);
            if (c) {
                c->re = w->re;
                c->pat = w->pat;
                c->pat_len = w->pat_len;
            }
            return c;
        }
        break;
    default:
        break;
    }
    bool unknown;
    struct cnode *c = with_value(k, w, &unknown);
    return c || !unknown ? c : node_new(k, CK_TRUE);
}

static void set_parents(struct lmql__cons *c, struct cnode *nd, struct cnode *parent) {
    if (nd->kind == CK_STOP) {
        LMQL_ASSERT(nd->n >= 0 && nd->n < c->n_stops);
        c->stop_parent[nd->n] = parent;
    }
    for (int i = 0; i < nd->n_kids; i++) set_parents(c, nd->kids[i], nd);
}

int lmql__cons_new(const struct lmql__where *w, const char *var, const struct lmql__cons_env *env,
                   struct lmql__cons **out, struct lmql__err *e) {
    *out = NULL;
    memset(e, 0, sizeof *e);
    struct lmql__cons *c = lmql__calloc(1, sizeof *c);
    if (!c) return ioom(e);
    c->model = env->model;
    c->post = w->post;
    c->trie = lmql__vocab_trie(env->model->vocab);
    c->all = lmql__malloc((size_t)env->model->vocab->n_tokens);
    if (!c->trie || !c->all) {
        lmql__cons_free(c);
        return ioom(e);
    }
    const struct lmql__vocab *v = env->model->vocab;
    for (int32_t t = 0; t < v->n_tokens; t++) c->all[t] = v->off[t + 1] > v->off[t];
    struct inst k = {env, c, var, e};
    if (!(c->root = inst(&k, w->root))) {
        lmql__cons_free(c);
        return -1;
    }
    set_parents(c, c->root, NULL);
    *out = c;
    return 0;
}

void lmql__cons_free(struct lmql__cons *c) {
    if (!c) return;
    node_free(c->root);
    for (int i = 0; i < c->n_stops; i++) free((char *)c->stops[i].text);
    free(c->all);
    free(c);
}

unsigned lmql__cons_post(const struct lmql__cons *c) { return c->post; }

/* ------------------------------------------------------------- masks -- */

/* Masks are bytes of 0/1; combine them eight at a time (byte loops that
** may alias do not vectorise, and this runs over the whole vocabulary). */
/* dst = a & b in one pass, eight bytes at a time; dst may be a. */
static void mask_and_of(uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        x &= y;
        memcpy(dst + i, &x, 8);
    }
    for (; i < n; i++) dst[i] = a[i] & b[i];
}

static void mask_and(uint8_t *dst, const uint8_t *a, size_t n) { mask_and_of(dst, dst, a, n); }

static void mask_or(uint8_t *restrict dst, const uint8_t *restrict a, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, dst + i, 8);
        memcpy(&y, a + i, 8);
        x |= y;
        memcpy(dst + i, &x, 8);
    }
    for (; i < n; i++) dst[i] |= a[i];
}

static bool mask_any(const uint8_t *m, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, m + i, 8);
        if (x) return true;
    }
    for (; i < n; i++) if (m[i]) return true;
    return false;
}

/* What a node allows: nothing but EOS, every token, or its mask. */
enum cover { C_NONE, C_ALL, C_MASK };

/*
** Characters as utf8.h defines them (len() counts with lmql__utf8_count),
** one byte at a time for the trie walker: a lead byte starts a character
** and absorbs up to as many continuation bytes as its sequence has, valid
** or not; any other byte is a character alone. That is exactly
** lmql__utf8_char_len's split. The walker state packs the remaining budget
** with the continuation bytes still expected.
*/
static int32_t char_step(int32_t need, unsigned char b, int32_t *count) {
    if (need > 0 && (b & 0xC0) == 0x80) { *count = 0; return need - 1; }
    *count = 1;
    if (b >= 0xC2 && b <= 0xDF) return 1;
    if (b >= 0xE0 && b <= 0xEF) return 2;
    if (b >= 0xF0 && b <= 0xF4) return 3;
    return 0;
}

static int64_t utf8_chars(const char *s, size_t n, int32_t *need_out) {
    int64_t k = 0;
    int32_t need = 0, c;
    for (size_t i = 0; i < n; i++) { need = char_step(need, (unsigned char)s[i], &c); k += c; }
    *need_out = need;
    return k;
}

static bool budget_step(void *ctx, const void *state, unsigned char b, void *out) {
    (void)ctx;
    int32_t st = *(const int32_t *)state, c;
    int32_t need = char_step(st & 3, b, &c), left = (st >> 2) - c;
    *(int32_t *)out = left * 4 + need;
    return left >= 0;
}

/* "s" must not occur: the state is how much of s the text ends with. */
struct absent { const char *s; size_t n; };
static bool absent_step(void *ctx, const void *state, unsigned char b, void *out) {
    const struct absent *a = ctx;
    int32_t m = *(const int32_t *)state;
    /* Fall back along s's own prefixes (phrases are short: a direct scan). */
    for (;;) {
        if ((size_t)m < a->n && (unsigned char)a->s[m] == b) { m++; break; }
        if (m == 0) break;
        int32_t k = m - 1;
        while (k > 0 && memcmp(a->s, a->s + (m - k), (size_t)k)) k--;
        m = k;
    }
    *(int32_t *)out = m;
    return (size_t)m < a->n;
}

/* At state 0 every byte but the phrase's first keeps the state: whole
** trie subtrees without that byte are allowed without a walk. */
static void absent_loops(void *ctx, const void *state, uint64_t set[4]) {
    const struct absent *a = ctx;
    memset(set, 0, 4 * sizeof *set);
    if (*(const int32_t *)state != 0) return;
    for (int b = 0; b < 256; b++) set[b >> 6] |= 1ull << (b & 63);
    unsigned char f = (unsigned char)a->s[0];
    set[f >> 6] &= ~(1ull << (f & 63));
}

static int32_t absent_state(const struct absent *a, const char *v, size_t n) {
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t out;
        if (!absent_step((void *)a, &m, (unsigned char)v[i], &out)) return -1;
        m = out;
    }
    return m;
}

/* INT: [ 1-9] first, then digits; the value may end once it has a digit. */
static bool int_step(void *ctx, const void *state, unsigned char b, void *out) {
    (void)ctx;
    int32_t s = *(const int32_t *)state, t = -1;
    if (s == 0) t = b == ' ' ? 1 : (b >= '1' && b <= '9') ? 2 : -1;
    else t = (b >= '0' && b <= '9') ? 2 : -1;
    *(int32_t *)out = t;
    return t >= 0;
}

static void int_loops(void *ctx, const void *state, uint64_t set[4]) {
    (void)ctx;
    memset(set, 0, 4 * sizeof *set);
    if (*(const int32_t *)state == 2) set[0] = 0x03FF000000000000ull;   /* '0'..'9' */
}

static int32_t int_state(const char *v, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n && s >= 0; i++) {
        int32_t t;
        int_step(NULL, &s, (unsigned char)v[i], &t);
        s = t;
    }
    return s;
}

/* A memo key (memo.h): what a mask means on this vocabulary, so that the
** next compiled copy of the same constraint finds it. 0 when it does not
** fit (then the mask is only cached by its node). */
static size_t memo_key(char *key, size_t cap, char tag, int32_t state, const char *s, size_t n) {
    if (1 + sizeof state + n > cap) return 0;
    key[0] = tag;
    memcpy(key + 1, &state, sizeof state);
    if (n) memcpy(key + 1 + sizeof state, s, n);
    return 1 + sizeof state + n;
}

/* The mask of a node in a state: from the node's own cache, else from the
** vocabulary's memo, else by a trie walk (the regex's DFA walk when w is
** NULL), remembered in both. */
static const uint8_t *walk(struct lmql__cons *c, struct cnode *nd, const struct lmql_trie_walker *w, int32_t state,
                           char tag, const char *text, size_t tlen) {
    if (!nd->cache && !(nd->cache = lmql__trie_cache_new(c->trie, w ? 4 : 8))) return NULL;
    const uint8_t *hit = lmql__trie_cache_find(nd->cache, &state, sizeof state);
    if (hit) return hit;
    uint8_t *slot = lmql__trie_cache_slot(nd->cache, &state, sizeof state);
    if (!slot) return NULL;
    size_t nv = (size_t)c->model->vocab->n_tokens;
    struct lmql__memo *memo = lmql__vocab_memo(c->model->vocab);
    char key[320];
    size_t kl = memo_key(key, sizeof key, tag, state, text, tlen);
    if (kl && lmql__memo_get(memo, key, kl, slot, nv)) return slot;
    int rc;
    if (w) {
        rc = lmql__trie_mask(c->trie, w, &state, slot);
    } else {
        const uint8_t *cls;
        const int32_t *table = lmql__regex_table(nd->re, &cls);
        rc = lmql__trie_mask_dfa(c->trie, table, lmql__regex_n_classes(nd->re), cls, NULL, state, slot);
    }
    if (rc) {
        lmql__trie_cache_clear(nd->cache);
        return NULL;
    }
    if (kl) lmql__memo_put(memo, key, kl, slot, nv);
    return slot;
}

static int eval_node(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, int32_t ntok,
                     enum cover *cover, const uint8_t **mask, bool *eos);

static uint8_t *node_buf(struct lmql__cons *c, struct cnode *nd) {
    if (!nd->buf) nd->buf = lmql__malloc((size_t)c->model->vocab->n_tokens);
    return nd->buf;
}

/* The first token of the canonical tokenization of text (-1: none), also
** remembered in the vocabulary's memo: the next hole's copy of the same
** phrase list asks for the same remainders. */
static int first_token(struct lmql__cons *c, const char *text, size_t n, int32_t *tok) {
    struct lmql__memo *memo = lmql__vocab_memo(c->model->vocab);
    char key[320];
    size_t kl = memo_key(key, sizeof key, 'P', 0, text, n);
    if (kl && lmql__memo_get(memo, key, kl, tok, sizeof *tok)) return 0;
    int32_t toks[64];
    struct lmql__err err = {0};
    int32_t k = c->model->ops->tokenize(c->model, text, n, false, true, toks, 64, &err);
    *tok = -1;
    /* A phrase left out of the mask would be a wrong mask: fail instead. */
    if (k == INT32_MIN) return lmql__errf(&c->why, "tokenizing a phrase of the constraint failed: %s", err.msg);
    if (k < 0 && k != INT32_MIN) {   /* a long remainder: only its first token matters */
        int32_t *big = lmql__malloc((size_t)(-k) * sizeof *big);
        if (!big) return -1;
        k = c->model->ops->tokenize(c->model, text, n, false, true, big, -k, &err);
        if (k > 0) *tok = big[0];
        free(big);
        if (k == INT32_MIN) return lmql__errf(&c->why, "tokenizing a phrase of the constraint failed: %s", err.msg);
    } else if (k > 0) {
        *tok = toks[0];
    }
    if (kl) lmql__memo_put(memo, key, kl, tok, sizeof *tok);
    return 0;
}

/* Phrase list: the first canonical token of every phrase's remainder. */
static int eval_phrases(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, enum cover *cover,
                        const uint8_t **mask, bool *eos) {
    uint8_t *buf = node_buf(c, nd);
    if (!buf) return -1;
    int32_t nv = c->model->vocab->n_tokens;
    memset(buf, 0, (size_t)nv);
    bool any = false;
    *eos = false;
    for (int i = 0; i < nd->n_ph; i++) {
        if (nd->phl[i] < vlen || memcmp(nd->ph[i], v, vlen)) continue;
        if (nd->phl[i] == vlen) { *eos = true; continue; }
        /* Tokenizing is the slow part (BPE on 128k vocabularies), and the
        ** offsets into a phrase repeat from step to step: remember them. */
        if (!nd->first && !(nd->first = lmql__calloc((size_t)nd->n_ph, sizeof *nd->first))) return -1;
        if (!nd->first[i]) {
            if (!(nd->first[i] = lmql__malloc((nd->phl[i] + 1) * sizeof **nd->first))) return -1;
            for (size_t k = 0; k <= nd->phl[i]; k++) nd->first[i][k] = -2;
        }
        int32_t *memo = &nd->first[i][vlen];
        if (*memo == -2 && first_token(c, nd->ph[i] + vlen, nd->phl[i] - vlen, memo)) return -1;
        if (*memo >= 0 && *memo < nv) { buf[*memo] = 1; any = true; }
    }
    *cover = any ? C_MASK : C_NONE;
    *mask = buf;
    return 0;
}

/* STARTS_WITH: consistent with a prefix, then anything. */
static int eval_starts(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, enum cover *cover,
                       const uint8_t **mask, bool *eos) {
    *eos = false;
    for (int i = 0; i < nd->n_ph; i++)
        if (vlen >= nd->phl[i] && !memcmp(v, nd->ph[i], nd->phl[i])) { *cover = C_ALL; *eos = true; return 0; }
    uint8_t *buf = node_buf(c, nd);
    if (!buf) return -1;
    memset(buf, 0, (size_t)c->model->vocab->n_tokens);
    bool any = false;
    int32_t cap = lmql__trie_max_len(c->trie) + 1, *pre = lmql__malloc((size_t)cap * sizeof *pre);
    if (!pre) return -1;
    for (int i = 0; i < nd->n_ph; i++) {
        if (vlen > nd->phl[i] || memcmp(nd->ph[i], v, vlen)) continue;
        const char *rest = nd->ph[i] + vlen;
        size_t rn = nd->phl[i] - vlen;
        const int32_t *toks;
        int32_t k = lmql__trie_tokens_with_prefix(c->trie, rest, rn, &toks);   /* piece covers the rest */
        for (int32_t j = 0; j < k; j++) buf[toks[j]] = 1;
        k = lmql__trie_tokens_prefix_of(c->trie, rest, rn, pre, cap);        /* piece inside the rest */
        for (int32_t j = 0; j < k && j < cap; j++) buf[pre[j]] = 1;
        any = true;
    }
    free(pre);
    *cover = any ? C_MASK : C_NONE;
    *mask = buf;
    return 0;
}

/* A grammar node's configuration after the value: the value only grows
** while the hole is generated, so the new bytes are read from where the
** matcher stopped (from the start when it is shorter). */
static int32_t grammar_at(struct cnode *nd, const char *v, size_t vlen) {
    if (vlen < nd->fed) {
        nd->fed = 0;
        nd->cfg = lmql__gm_start(nd->gm);
    }
    if (nd->cfg >= 0) nd->cfg = lmql__gm_feed(nd->gm, nd->cfg, v + nd->fed, vlen - nd->fed);
    nd->fed = vlen;
    return nd->cfg;
}

static int eval_node(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, int32_t ntok,
                     enum cover *cover, const uint8_t **mask, bool *eos) {
    int32_t nv = c->model->vocab->n_tokens;
    struct lmql_trie_walker w = {.state_size = sizeof(int32_t)};
    int32_t st;
    *mask = NULL;
    switch (nd->kind) {
    case CK_TRUE:
    case CK_STOP: *cover = C_ALL; *eos = true; return 0;
    case CK_FALSE: *cover = C_NONE; *eos = true; return 0;
    case CK_TOKLEN:
        if (nd->op == LMQL_CMPOP_LT) { *cover = ntok + 1 < nd->n ? C_ALL : C_NONE; *eos = true; }
        else if (nd->op == LMQL_CMPOP_EQ) { *cover = ntok < nd->n ? C_ALL : C_NONE; *eos = ntok >= nd->n; }
        else { *cover = C_ALL; *eos = ntok > nd->n; }
        return 0;
    case CK_CHARLEN: {
        int32_t need;
        int64_t have = utf8_chars(v, vlen, &need);
        if (nd->op == LMQL_CMPOP_GT) { *cover = C_ALL; *eos = have > nd->n; return 0; }
        int64_t left = (nd->op == LMQL_CMPOP_LT ? nd->n - 1 : nd->n) - have;
        *eos = nd->op == LMQL_CMPOP_LT || have == nd->n;
        if (left < 0 || (left == 0 && need == 0)) { *cover = C_NONE; return 0; }
        st = (int32_t)((left > INT32_MAX / 4 ? INT32_MAX / 4 : left) * 4 + need);
        w.step = budget_step;
        *mask = walk(c, nd, &w, st, 'L', NULL, 0);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    }
    case CK_PHRASES: return eval_phrases(c, nd, v, vlen, cover, mask, eos);
    case CK_STARTS: return eval_starts(c, nd, v, vlen, cover, mask, eos);
    case CK_CONTAINS:
        *cover = C_ALL;
        *eos = false;
        for (size_t i = 0; i + nd->phl[0] <= vlen && !*eos; i++) *eos = !memcmp(v + i, nd->ph[0], nd->phl[0]);
        if (nd->phl[0] == 0) *eos = true;
        return 0;
    case CK_REGEX:
        st = lmql__regex_feed(nd->re, lmql__regex_start(nd->re), v, vlen);
        if (st < 0) { *cover = C_NONE; *eos = true; return 0; }   /* violated: the value ends */
        *eos = lmql__regex_accepting(nd->re, st);
        *mask = walk(c, nd, NULL, st, 'R', nd->pat, nd->pat_len);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    case CK_INT:
        st = int_state(v, vlen);
        if (st < 0) { *cover = C_NONE; *eos = true; return 0; }
        *eos = st == 2;
        w.step = int_step;
        w.loops = int_loops;
        *mask = walk(c, nd, &w, st, 'I', NULL, 0);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    case CK_GRAMMAR: {
        if (grammar_at(nd, v, vlen) == -2) return -1;
        if (nd->cfg < 0) { *cover = C_NONE; *eos = true; return 0; }   /* violated: the value ends */
        *eos = lmql__gm_accepting(nd->gm, nd->cfg);
        *mask = lmql__gm_mask(nd->gm, nd->cfg);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    }
    case CK_NOT: {
        struct cnode *k = nd->kids[0];
        struct absent a = {k->ph[0], k->phl[0]};
        *eos = true;
        if (a.n == 0) { *cover = C_NONE; return 0; }
        st = absent_state(&a, v, vlen);
        if (st < 0) { *cover = C_NONE; return 0; }
        w.step = absent_step;
        w.loops = absent_loops;
        w.ctx = &a;
        /* The walker's ctx is rebuilt each call but means the same thing. */
        *mask = walk(c, nd, &w, st, 'N', a.s, a.n);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    }
    case CK_AND:
    case CK_OR: {
        bool is_and = nd->kind == CK_AND;
        enum cover acc = is_and ? C_ALL : C_NONE;
        bool e_acc = is_and;
        const uint8_t *acc_mask = NULL;   /* a kid's own mask until a second one needs combining */
        uint8_t *buf = NULL;
        for (int i = 0; i < nd->n_kids; i++) {
            enum cover kc;
            const uint8_t *km;
            bool ke;
            if (eval_node(c, nd->kids[i], v, vlen, ntok, &kc, &km, &ke)) return -1;
            e_acc = is_and ? (e_acc && ke) : (e_acc || ke);
            if (is_and ? kc == C_ALL : kc == C_NONE) continue;
            if (is_and ? kc == C_NONE : kc == C_ALL) { acc = kc; continue; }
            if (is_and ? acc == C_NONE : acc == C_ALL) continue;
            if (acc == (is_and ? C_ALL : C_NONE)) { acc_mask = km; acc = C_MASK; continue; }
            if (!buf && !(buf = node_buf(c, nd))) return -1;
            if (acc_mask != buf) {
                memcpy(buf, acc_mask, (size_t)nv);
                acc_mask = buf;
            }
            if (is_and) mask_and(buf, km, (size_t)nv);
            else mask_or(buf, km, (size_t)nv);
        }
        *cover = acc;
        *mask = acc == C_MASK ? acc_mask : NULL;
        *eos = e_acc;
        return 0;
    }
    }
    return 0;
}

int lmql__cons_mask(struct lmql__cons *c, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask,
                    bool *eos_ok) {
    enum cover cv;
    const uint8_t *m;
    if (eval_node(c, c->root, value ? value : "", vlen, n_tokens, &cv, &m, eos_ok)) return -1;
    size_t nv = (size_t)c->model->vocab->n_tokens;
    if (cv == C_ALL) memcpy(mask, c->all, nv);
    else if (cv == C_NONE) memset(mask, 0, nv);
    else mask_and_of(mask, m, c->all, nv);
    /* Nothing allowed and no end allowed: the constraints cannot hold any
    ** more, and LMQL ends the variable. */
    if (!*eos_ok && cv != C_ALL && !mask_any(mask, nv)) *eos_ok = true;
    return 0;
}

/* LMQL: a stop phrase is in force only while its `and` siblings hold
** (`len(TOKENS(X)) > 10 and STOPS_AT(X, "r")` stops after 10 tokens); under
** `or` each branch's stop is in force. */
static bool stop_active(void *ctx, int i, const char *value, size_t vlen, int32_t n_tokens) {
    struct lmql__cons *c = ctx;
    struct cnode *p = i >= 0 && i < c->n_stops ? c->stop_parent[i] : NULL;
    if (!p || p->kind != CK_AND) return true;
    for (int k = 0; k < p->n_kids; k++) {
        struct cnode *sib = p->kids[k];
        if (sib->kind == CK_STOP) continue;
        enum cover cv;
        const uint8_t *m;
        bool eos;
        if (eval_node(c, sib, value ? value : "", vlen, n_tokens, &cv, &m, &eos)) return true;
        if (!eos) return false;
    }
    return true;
}

static int rules_mask(void *ctx, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask, bool *eos_ok,
                      struct lmql__err *err) {
    struct lmql__cons *c = ctx;
    c->why.msg[0] = 0;
    if (!lmql__cons_mask(c, value, vlen, n_tokens, mask, eos_ok)) return 0;
    return lmql__errf(err, "%s", c->why.msg[0] ? c->why.msg : "out of memory computing a token mask");
}

/* Bytes a grammar that must hold forces next: one that is the whole
** constraint or a conjunct of the top-level and. */
static int rules_forced(void *ctx, const char *value, size_t vlen, char *out, int cap, struct lmql__err *err) {
    struct lmql__cons *c = ctx;
    struct cnode *r = c->root;
    int n_kids = r->kind == CK_AND ? r->n_kids : 1;
    for (int i = 0; i < n_kids; i++) {
        struct cnode *nd = r->kind == CK_AND ? r->kids[i] : r;
        if (nd->kind != CK_GRAMMAR) continue;
        int32_t cfg = grammar_at(nd, value, vlen);
        if (cfg == -2) return lmql__errf(err, "out of memory computing a token mask");
        if (cfg < 0) return 0;
        int n = lmql__gm_forced(nd->gm, cfg, out, cap);
        if (n < 0) return lmql__errf(err, "out of memory computing a token mask");
        if (n > 0) return n;
    }
    return 0;
}

void lmql__cons_rules(struct lmql__cons *c, struct lmql__hole_rules *r) {
    memset(r, 0, sizeof *r);
    r->stops = c->stops;
    r->n_stops = c->n_stops;
    r->mask = rules_mask;
    r->stop_active = stop_active;
    r->forced = rules_forced;
    r->ctx = c;
}
