/*
** The inside of a grammar, shared by grammar.c (building, checking) and
** gmatch.c (matching). Not for other modules.
*/
#ifndef LMQL_GRAMMAR_INT_H
#define LMQL_GRAMMAR_INT_H

#include <stdbool.h>
#include <stdint.h>

struct lmql_regex;

/* A terminal: a regex's DFA, or literal bytes (state = bytes matched). */
struct lmql__gterm {
    bool is_re;
    char *text;                  /* the pattern or the literal, NUL-terminated */
    size_t len;
    struct lmql_regex *re;       /* is_re */
    const int32_t *table;        /* its transitions (regex.h), n_cls columns */
    const uint8_t *cls;
    int32_t n_cls, start;        /* start -1: the pattern matches nothing */
};

struct lmql__galt {
    int32_t lhs;
    int32_t off, n;              /* items[off .. off + n) */
};

struct lmql_grammar {
    int32_t n_nt, n_alt, n_items, n_term, start;
    char **names;                /* per nonterminal */
    struct lmql__galt *alts;     /* only productive ones once finished */
    int32_t *items;
    struct lmql__gterm *terms;
    bool *nullable;              /* per nonterminal */
    int32_t *nt_first, *nt_n_alts, *nt_alts;   /* alternatives of A: nt_alts[nt_first[A] .. + nt_n_alts[A]) */
};

/* The state of terminal t after byte b from state d (-1: dead). */
static inline int32_t lmql__gterm_step(const struct lmql__gterm *t, int32_t d, unsigned char b) {
    if (t->is_re) return t->table[(size_t)d * (size_t)t->n_cls + t->cls[b]];
    return (size_t)d < t->len && (unsigned char)t->text[d] == b ? d + 1 : -1;
}

/* The state before any byte, -1 when the terminal matches nothing. */
static inline int32_t lmql__gterm_start(const struct lmql__gterm *t) { return t->is_re ? t->start : 0; }

#endif
