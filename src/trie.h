/*
** The vocabulary trie: token masks for byte-level constraints.
**
** At every generation step a constraint (a regex DFA, a phrase set, a length
** budget, "no newline", stop phrases...) must say, for every token of the
** vocabulary, whether appending that token's bytes keeps it satisfiable.
** Asking token by token re-walks shared prefixes thousands of times; the
** trie walks each distinct prefix once and drops a whole subtree the moment
** the constraint's state dies.
**
** Built once per vocabulary from its exact token bytes (struct lmql__vocab).
** Tokens with an empty piece (control tokens, EOS, ...) are not in the trie;
** every mask function writes 0 for them and the caller decides about them
** (typically: EOS allowed when the constraint is complete).
**
** Ownership: the trie is immutable after lmql__trie_build and may be shared
** by any number of threads; pointers it hands out (token lists) stay valid
** until lmql__trie_free. Walkers, states and masks belong to the caller.
*/
#ifndef LMQL_TRIE_H
#define LMQL_TRIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct lmql__vocab;
struct lmql_trie;

/* Largest state a generic walker may carry, in bytes. */
#define LMQL_TRIE_MAX_STATE 64

/*
** A constraint seen as a byte-level state machine. The state is an opaque
** blob of state_size bytes (1..LMQL_TRIE_MAX_STATE) that the walk copies by
** value, so it must not point into memory the walk would have to own.
** State blobs handed to the callbacks are aligned to 8 bytes.
*/
struct lmql_trie_walker {
    /* Advance `state` by one byte into `out` (a different blob of the same
    ** size). Return false when no continuation can satisfy the constraint any
    ** more: the walk then skips every token under this prefix. */
    bool (*step)(void *ctx, const void *state, unsigned char byte, void *out);
    /* Whether a token whose bytes end in `state` is allowed (only asked for
    ** live states). NULL allows every token the walk reaches alive. */
    bool (*allow)(void *ctx, const void *state);
    /* Optional (NULL = unknown): set bit b (set[b >> 6] >> (b & 63)) for
    ** every byte b that step() takes from `state` to a live state behaving
    ** exactly like `state`. Where every byte below a prefix loops so and the
    ** state is allowed, the walk fills the whole subtree without stepping
    ** it, which makes permissive states ("anything but a newline") cheap. */
    void (*loops)(void *ctx, const void *state, uint64_t set[4]);
    size_t state_size;
    void  *ctx;
};

/* Build the trie of v's token pieces. Returns NULL when out of memory or
** when a piece is longer than 65535 bytes. */
struct lmql_trie *lmql__trie_build(const struct lmql__vocab *v);
/* NULL is a no-op. */
void lmql__trie_free(struct lmql_trie *t);

/* The vocabulary the trie was built from (its token pieces). */
const struct lmql__vocab *lmql__trie_vocab(const struct lmql_trie *t);

/* Sizes: tokens of the vocabulary (the length of a mask), tokens in the trie
** (non-empty pieces), nodes (distinct non-empty prefixes + 1), the longest
** piece in bytes, and bytes of memory held by the trie. */
int32_t lmql__trie_n_vocab(const struct lmql_trie *t);
int32_t lmql__trie_n_tokens(const struct lmql_trie *t);
int32_t lmql__trie_n_nodes(const struct lmql_trie *t);
int32_t lmql__trie_max_len(const struct lmql_trie *t);
size_t  lmql__trie_memory(const struct lmql_trie *t);

/*
** Compute the mask of the walker from start_state: mask (n_vocab bytes) gets
** 1 for each token whose every byte steps alive and whose final state is
** allowed, 0 for every other token (empty pieces included).
** Returns 0, or -1 when out of memory (only possible for pieces longer than
** a few hundred bytes with large states; the mask is then all 0) or when
** state_size is 0 or above LMQL_TRIE_MAX_STATE.
*/
int lmql__trie_mask(const struct lmql_trie *t, const struct lmql_trie_walker *w, const void *start_state,
                    uint8_t *mask);

/*
** The same for a table-driven DFA, without an indirect call per byte:
** the state after byte b from state s is table[s * n_classes + byte_class[b]],
** -1 meaning dead. byte_class may be NULL, meaning byte_class[b] = b (then
** n_classes must be 256). allowed[s] != 0 allows tokens ending in live state
** s; allowed may be NULL, allowing every token reached alive. A negative
** start gives an all-0 mask. Returns 0, or -1 when out of memory.
**
** Subtrees whose bytes all loop on an allowed state (the "anything but a
** newline" state of a regex, say) are filled without stepping every byte.
*/
int lmql__trie_mask_dfa(const struct lmql_trie *t, const int32_t *table, int n_classes,
                        const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint8_t *mask);

/* The same, but mask (lmql__trie_n_tokens bytes) is indexed by position in
** the trie's order (lmql__trie_order): a list of allowed tokens sorted by
** piece is a forward scan of it. An allowed token's entry is allowed[s] of
** the state s it ends in (1 when allowed is NULL), so one walk can sort
** tokens into several kinds. */
int lmql__trie_mask_dfa_order(const struct lmql_trie *t, const int32_t *table, int n_classes,
                              const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint8_t *mask);

/* The same walk without a mask: the allowed tokens as ranges [r[i][0],
** r[i][1]) of positions in the trie's order, adjacent ranges merged.
** Returns their count, or -1 when there are more than cap (the walk stops
** there: a sparse state costs its walk alone, a dense one a bounded try)
** or out of memory. */
int lmql__trie_ranges_dfa(const struct lmql_trie *t, const int32_t *table, int n_classes,
                          const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint32_t (*r)[2],
                          int cap);

/*
** Tokens whose piece starts with bytes[0..n) (every trie token when n is 0).
** They are contiguous in the trie's own order, so no copy is made: *toks is
** set to them (valid until lmql__trie_free) and their count is returned.
*/
int32_t lmql__trie_tokens_with_prefix(const struct lmql_trie *t, const void *bytes, size_t n,
                                      const int32_t **toks);

/*
** For each token whose piece is bytes[0..n) followed by one byte or more,
** step the walker over those further bytes from `state` (its state after
** bytes[0..n)) and set mask[token] = 1 when it is allowed; every other
** entry of mask is left as it is. Dead prefixes drop their subtree. For
** adding the tokens of one branch to a mask built from other parts (a
** literal's continuations, gmatch.c). 0, or -1 as lmql__trie_mask.
*/
int lmql__trie_mask_below(const struct lmql_trie *t, const struct lmql_trie_walker *w, const void *bytes, size_t n,
                          const void *state, uint8_t *mask);

/* The trie's tokens sorted by piece (bytewise, a prefix before its
** extensions): *perm is set to them (valid until lmql__trie_free), their
** count returned. Walks that share prefixes between consecutive pieces
** (gmatch.c's leaving tokens) keep token lists in this order. */
int32_t lmql__trie_order(const struct lmql_trie *t, const int32_t **perm);

/*
** Tokens whose (non-empty) piece is a prefix of bytes[0..n): the tokens that
** can start the remaining text of a phrase. Writes up to cap token ids to
** out, shortest piece first, and returns how many there are; when that is
** more than cap, only the first cap were written (call again with a larger
** buffer; there are at most lmql__trie_max_len(t) distinct lengths).
*/
int32_t lmql__trie_tokens_prefix_of(const struct lmql_trie *t, const void *bytes, size_t n,
                                    int32_t *out, int32_t cap);

/*
** A small LRU cache of masks for ONE walker (one constraint): many steps
** repeat the same state ("anything but a newline" is the same mask at every
** step), and a cached mask costs a pointer instead of a walk.
**
** The key is the state blob alone, so a cache must serve a single walker
** whose answers depend only on the state: when the walker's ctx changes
** meaning, call lmql__trie_cache_clear. The cache owns its masks.
*/
struct lmql_trie_cache;

/* n_entries masks of the trie's n_vocab bytes each, allocated up front so a
** lookup never fails. Returns NULL when out of memory. */
struct lmql_trie_cache *lmql__trie_cache_new(const struct lmql_trie *t, int n_entries);
/* NULL is a no-op. */
void lmql__trie_cache_free(struct lmql_trie_cache *c);
void lmql__trie_cache_clear(struct lmql_trie_cache *c);

/* The mask for start_state, computed on a miss (evicting the least recently
** used entry). Valid until the next call on c. NULL on an error of
** lmql__trie_mask. */
const uint8_t *lmql__trie_cache_mask(struct lmql_trie_cache *c, const struct lmql_trie *t,
                                     const struct lmql_trie_walker *w, const void *start_state);

/* The same two halves for masks computed another way (lmql__trie_mask_dfa
** with the DFA state as key, say). find returns the mask cached under
** key[0..n) (n <= LMQL_TRIE_MAX_STATE) or NULL. slot returns the n_vocab-byte
** buffer now cached under key, evicting the least recently used entry, for
** the caller to fill; if filling fails, call lmql__trie_cache_clear. Both
** results are valid until the next call on c. */
const uint8_t *lmql__trie_cache_find(struct lmql_trie_cache *c, const void *key, size_t n);
uint8_t *lmql__trie_cache_slot(struct lmql_trie_cache *c, const void *key, size_t n);

/* Hits and misses since creation (for tests and tuning). */
void lmql__trie_cache_stats(const struct lmql_trie_cache *c, uint64_t *hits, uint64_t *misses);

#endif
