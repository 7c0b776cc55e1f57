/*
** Splits of regex terminal states (gsplit.c), for the grammar matcher
** (gmatch.c). Not for other modules.
**
** The split of a DFA state d of terminal t, over a vocabulary: `inside`,
** the tokens whose every byte keeps t alive from d (allowed whatever
** follows t: every state is alive, the grammar productive); `leave` (in
** the trie's order), the tokens that are not inside but have a prefix of
** one byte or more after which t may end -- allowed or not depending on
** what follows t, which the matcher checks per configuration. A thread in
** state d takes no other token.
*/
#ifndef LMQL_GSPLIT_H
#define LMQL_GSPLIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "grammar_int.h"

struct lmql_trie;

struct lmql__split {
    uint8_t *inside;             /* a bitset (bit i of byte i / 8: token i), or NULL: */
    int32_t *in_list;            /* the inside tokens listed (few of them) */
    int32_t *leave;
    uint8_t *lcp;                /* per leaving token: bytes in common with the one before (at most 255), in leave's block */
    int32_t n_inside, n_leave;
    uint8_t *bytes;              /* the matcher's: inside expanded to n_vocab bytes, or NULL */
    void *blob;                  /* loaded from the memo: the arrays above point into it, or NULL */
};

/* The split of t in state d: from the vocabulary's memo, or by walking the
** trie (then remembered there). *ltab and *lal cache t's leave table
** (lmql__leave_dfa; made here when NULL, owned by the caller). 0, or -1
** out of memory. */
int lmql__split_make(const struct lmql_trie *trie, const struct lmql__gterm *t, int32_t d, int32_t **ltab,
                     uint8_t **lal, struct lmql__split *out);
void lmql__split_free(struct lmql__split *sp);

/* The inside tokens into out (nv bytes): written over it when `first`,
** or-ed into it otherwise. */
void lmql__split_inside(const struct lmql__split *sp, int32_t nv, uint8_t *out, bool first);

/* The leave table of t: its DFA times "a prefix of one byte or more may
** end t", state 2d + flag, and a sink 2 * n_states reached when the DFA
** dies after such a prefix (the only allowed state, *allowed[sink] = 1).
** Its start for state d is 2d. 0, or -1 out of memory. */
int lmql__leave_dfa(const struct lmql__gterm *t, int32_t **table, uint8_t **allowed);

#endif
