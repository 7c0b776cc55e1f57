/*
** The 32-bit Mersenne Twister (MT19937) as numpy's legacy RandomState
** seeds and draws from it, so that LMQL's "random" model, which draws with
** np.random.RandomState, can be reproduced token for token.
*/
#ifndef LMQL_MT19937_H
#define LMQL_MT19937_H

#include <stdint.h>

#define LMQL__MT_N 624

struct lmql__mt {
    uint32_t key[LMQL__MT_N];
    int      pos;
};

/* RandomState(seed) for an integer seed in [0, 2**32): init_genrand. */
void lmql__mt_seed(struct lmql__mt *s, uint32_t seed);
/* RandomState(array of uint32): the reference init_by_array. */
void lmql__mt_seed_array(struct lmql__mt *s, const uint32_t *key, int n);
/* The next tempered 32-bit output (genrand_int32). */
uint32_t lmql__mt_next(struct lmql__mt *s);
/* random_sample(): a double in [0, 1) with 53 random bits from two outputs. */
double lmql__mt_random_sample(struct lmql__mt *s);
/* randint(low, high) for high - low <= 2**32: numpy's legacy masked
** rejection sampling (draws until (output & mask) <= high - low - 1). */
int64_t lmql__mt_randint(struct lmql__mt *s, int64_t low, int64_t high);

#endif
