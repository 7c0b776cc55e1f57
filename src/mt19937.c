/*
** MT19937 exactly as numpy's legacy RandomState uses it (randomkit /
** mt19937.c in numpy): the same seeding, the same state refill and
** tempering, and the same conversions of outputs to doubles and bounded
** integers. Bit-exactness is the point: LMQL's tests assert the text its
** random model draws, and those draws come from this generator.
*/
#include "mt19937.h"

#define MT_M 397
#define MATRIX_A 0x9908b0dfU
#define UPPER_MASK 0x80000000U
#define LOWER_MASK 0x7fffffffU

void lmql__mt_seed(struct lmql__mt *s, uint32_t seed) {
    for (int i = 0; i < LMQL__MT_N; i++) {
        s->key[i] = seed;
        seed = 1812433253U * (seed ^ (seed >> 30)) + (uint32_t)i + 1U;
    }
    s->pos = LMQL__MT_N;   /* refill on the first draw */
}

void lmql__mt_seed_array(struct lmql__mt *s, const uint32_t *key, int n) {
    uint32_t *mt = s->key;
    lmql__mt_seed(s, 19650218U);
    int i = 1, j = 0;
    for (int k = n > LMQL__MT_N ? n : LMQL__MT_N; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1664525U)) + key[j] + (uint32_t)j;
        i++, j++;
        if (i >= LMQL__MT_N) { mt[0] = mt[LMQL__MT_N - 1]; i = 1; }
        if (j >= n) j = 0;
    }
    for (int k = LMQL__MT_N - 1; k; k--) {
        mt[i] = (mt[i] ^ ((mt[i - 1] ^ (mt[i - 1] >> 30)) * 1566083941U)) - (uint32_t)i;
        i++;
        if (i >= LMQL__MT_N) { mt[0] = mt[LMQL__MT_N - 1]; i = 1; }
    }
    mt[0] = 0x80000000U;   /* non-zero initial state, as the reference */
    s->pos = LMQL__MT_N;
}

static void refill(struct lmql__mt *s) {
    uint32_t *mt = s->key, y;
    int i;
    for (i = 0; i < LMQL__MT_N - MT_M; i++) {
        y = (mt[i] & UPPER_MASK) | (mt[i + 1] & LOWER_MASK);
        mt[i] = mt[i + MT_M] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
    }
    for (; i < LMQL__MT_N - 1; i++) {
        y = (mt[i] & UPPER_MASK) | (mt[i + 1] & LOWER_MASK);
        mt[i] = mt[i + (MT_M - LMQL__MT_N)] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
    }
    y = (mt[LMQL__MT_N - 1] & UPPER_MASK) | (mt[0] & LOWER_MASK);
    mt[LMQL__MT_N - 1] = mt[MT_M - 1] ^ (y >> 1) ^ (-(y & 1U) & MATRIX_A);
    s->pos = 0;
}

uint32_t lmql__mt_next(struct lmql__mt *s) {
    if (s->pos >= LMQL__MT_N) refill(s);
    uint32_t y = s->key[s->pos++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

double lmql__mt_random_sample(struct lmql__mt *s) {
    /* 27 high bits of the first output, 26 of the second: a 53-bit
    ** mantissa, numpy's legacy_double / rk_double. */
    uint32_t a = lmql__mt_next(s) >> 5, b = lmql__mt_next(s) >> 6;
    return (a * 67108864.0 + b) / 9007199254740992.0;
}

int64_t lmql__mt_randint(struct lmql__mt *s, int64_t low, int64_t high) {
    uint64_t rng = (uint64_t)(high - low - 1);
    if (rng == 0) return low;   /* numpy draws nothing for a single value */
    uint64_t mask = rng;
    mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4;
    mask |= mask >> 8; mask |= mask >> 16; mask |= mask >> 32;
    uint64_t v;
    if (rng <= 0xffffffffU) {
        do v = lmql__mt_next(s) & mask; while (v > rng);
    } else {
        /* 64-bit draws: high output first (numpy's next_uint64 for mt19937). */
        do {
            uint64_t hi = lmql__mt_next(s);
            v = ((hi << 32) | lmql__mt_next(s)) & mask;
        } while (v > rng);
    }
    return low + (int64_t)v;
}
