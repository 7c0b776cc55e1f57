/*
** A vocabulary-wide memo of constraint work: masks and first tokens keyed
** by what they mean (constraint kind, its text, its automaton state), not by
** which compiled constraint asked.
**
** Why: a `where` clause is compiled again for every hole it guards (its
** phrases and bounds may name variables), so each new hole would otherwise
** redo the trie walks and tokenizations of the one before it. Those first
** walks dominate the slow tail of mask times. The memo makes them cost one
** copy from the second hole on, in loops, across sequences and across runs
** of a long-lived process.
**
** Values are blobs of any length (a mask of n_vocab bytes, an int32 token).
** All calls are thread-safe (the sequences of sample(n) run in threads).
** The memo holds at most `budget` bytes of values and starts over when full:
** the entries that matter come back after one miss each.
*/
#ifndef LMQL_MEMO_H
#define LMQL_MEMO_H

#include <stdbool.h>
#include <stddef.h>

struct lmql__memo;

struct lmql__memo *lmql__memo_new(size_t budget);
void lmql__memo_free(struct lmql__memo *m);

/* Copies the value stored under key into out and returns true when there
** is one of exactly out_len bytes. */
bool lmql__memo_get(struct lmql__memo *m, const void *key, size_t klen, void *out, size_t out_len);

/* Like lmql__memo_get for a value of any length: *out gets a copy (the
** caller frees it) and *out_len its length. False when absent or out of
** memory. */
bool lmql__memo_get_dup(struct lmql__memo *m, const void *key, size_t klen, void **out, size_t *out_len);

/* Stores a copy of val under key (replacing any). Out of memory only
** means the value is not remembered. */
void lmql__memo_put(struct lmql__memo *m, const void *key, size_t klen, const void *val, size_t len);

#endif
