/*
** The inside of the GBNF compiler, shared by gbnf.c (parsing, checking)
** and gbnf_build.c (regexes, classifying rules, building the grammar).
** Not for other modules.
*/
#ifndef LMQL_GBNF_INT_H
#define LMQL_GBNF_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "grammar.h"
#include "lmql_int.h"

#define REP_LIMIT 2000u        /* llama.cpp's MAX_REPETITION_THRESHOLD */
#define REP_INF UINT32_MAX
#define MAX_GROUP_DEPTH 100    /* nested parentheses (the parser recurses) */
#define MAX_HEIGHT 256         /* height of a rule's tree (every pass recurses) */
#define W_MAX 60000u           /* estimated NFA size of one regex terminal */
#define ED_MAX 160u            /* group nesting of one regex (regex.h allows 256) */
#define T_INLINE 4096u         /* regex text of a rule pasted into its users */
#define T_TERM 65536u          /* regex text of one terminal */
#define RX_BUDGET (4u << 20)   /* regex text of all terminals (beyond: rules of small ones) */
#define MAX_REFUSED 2          /* regexes the engine refuses before building cautiously */
#define MAX_REFUSED_KEPT 16    /* hashes of refused regexes remembered */
#define MAX_ALTS (1 << 20)     /* alternatives of the built grammar */
#define MAX_ITEMS (1 << 23)    /* symbols in them */
#define CP_MAX 0x10FFFFu

enum { GK_CHARS, GK_LIT, GK_REF, GK_SEQ, GK_ALT, GK_REP };
enum { R_NONREG, R_INLINE, R_TERM };
/* Where a regex goes: alone or in an alternation, in a concatenation,
** under a quantifier. */
enum { CTX_TOP, CTX_SEQ, CTX_ATOM };

struct lmql__gnode {
    uint8_t kind;
    bool nullable, productive;
    bool reg;              /* refers to INLINE rules only: expressible as one regex */
    bool islit;            /* a fixed string */
    bool tr, tu, tv;       /* tail form (see tail_check) */
    uint16_t height;
    int32_t pend_n, pend_p;/* children still to become nullable / productive */
    int32_t body_of;       /* the rule whose current body this is, else -1 */
    uint32_t w, ed, tl;    /* NFA estimate, regex nesting, regex length (UINT32_MAX: not measured) */
    size_t off;            /* where it is in the text */
    struct lmql__gnode *parent;
    union {
        struct { uint32_t *cp; int32_t n; } lit;
        struct { uint32_t *rg; int32_t n; } set;   /* ranges rg[2i]..rg[2i+1]: sorted, disjoint, characters */
        struct { int32_t rule; } ref;
        struct { struct lmql__gnode **kid; int32_t n; } list;
        struct { struct lmql__gnode *x; uint32_t min, max; } rep;
    } u;
};

struct lmql__grule {
    const char *name;      /* in the text */
    uint32_t name_len;
    struct lmql__gnode *body;    /* NULL while only referenced */
    size_t def_off;
    uint8_t cls;
    bool tail;             /* regular by its tail form: (V)*U */
    bool islit, forced;    /* forced: its regex was refused, built as rules */
    uint32_t w, ed;
    int32_t sym;           /* its grammar symbol once built, else INT32_MIN */
    int32_t adj, n_adj;    /* rules its body refers to: adj[adj .. adj + n_adj) */
    int32_t idx, low;      /* Tarjan */
    bool on_stack;
};

struct lmql__gbnfc {
    const char *s;
    size_t n, i;
    struct lmql__err *e;
    bool failed;
    struct lmql_arena ar;
    struct lmql__grule *rules;
    int32_t n_rules, cap_rules;
    int32_t *ht;           /* rule index + 1 by name hash, 0 empty */
    uint32_t ht_cap;
    struct lmql__gnode **nodes, **refs;   /* every node; the references in text order */
    size_t n_nodes, cap_nodes, n_refs, cap_refs;
    uint64_t n_symbols;    /* llama.cpp's count: rule names and the rules it generates */
    int depth;
    int32_t *adj;          /* reference lists of the rules */
    size_t n_adj, cap_adj;
    /* building */
    struct lmql__gb *b;
    int32_t *queue;
    size_t n_queue, cap_queue;
    const struct lmql__grule *cur;
    int32_t n_gen;
    size_t n_items;
    size_t rx_spent;           /* regex text of the terminals made */
    int n_refused;             /* regexes the regex engine refused */
    uint64_t refused[MAX_REFUSED_KEPT];   /* their texts' hashes (the first ones) */
    struct lmql__err rx_err;   /* the last regex the engine refused */
};

/* Errors (the first one wins; each returns -1): at a byte offset of the
** text, with no place, out of memory. */
int lmql__gbnf_fail_at(struct lmql__gbnfc *c, size_t off, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int lmql__gbnf_fail(struct lmql__gbnfc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int lmql__gbnf_nomem(struct lmql__gbnfc *c);
/* Grow *p (*cap elements of elem bytes) to hold need; 0 or -1. */
int lmql__gbnf_vgrow(struct lmql__gbnfc *c, void **p, size_t *cap, size_t need, size_t elem);
/* The rules each rule refers to, into c->adj (rule->adj, rule->n_adj):
** all of them, or only those it can begin with (leftmost); the reference
** nodes in *nodes when asked (freed by the caller). */
int lmql__gbnf_edges(struct lmql__gbnfc *c, bool leftmost, struct lmql__gnode ***nodes);
/* Classify every rule (gbnf_build.c); then build the grammar from root. */
int lmql__gbnf_classify(struct lmql__gbnfc *c);
struct lmql_grammar *lmql__gbnf_build(struct lmql__gbnfc *c, int32_t root);

/* A rule's name for messages (long names cut). */
static inline int lmql__gbnf_name_len(const struct lmql__grule *r) {
    return r->name_len > 100 ? 100 : (int)r->name_len;
}

static inline int lmql__gbnf_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static inline uint32_t lmql__gbnf_sat_add(uint32_t a, uint32_t b) { return a > UINT32_MAX - b ? UINT32_MAX : a + b; }
static inline uint32_t lmql__gbnf_sat_mul(uint32_t a, uint32_t b) {
    return b && a > UINT32_MAX / b ? UINT32_MAX : a * b;
}

#endif
