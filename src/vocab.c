/*
** Backend-independent helpers of the model layer.
*/
#include "model.h"
#include "memo.h"
#include "trie.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int32_t lmql__log_softmax(float *x, int32_t n) {
    int32_t best = 0;
    float mx = -INFINITY;
    for (int32_t i = 0; i < n; i++)
        if (x[i] > mx) { mx = x[i]; best = i; }
    /* expf in a plain loop vectorizes; float sums are exact enough for
    ** normalising (relative error ~1e-7 per term). */
    float sum = 0;
    for (int32_t i = 0; i < n; i++) sum += expf(x[i] - mx);
    float lse = mx + logf(sum);
    for (int32_t i = 0; i < n; i++) x[i] -= lse;
    return best;
}

size_t lmql__vocab_detok(const struct lmql__vocab *v, const int32_t *toks, int32_t n, char *out, size_t cap) {
    size_t need = 0;
    for (int32_t i = 0; i < n; i++) {
        if (toks[i] < 0 || toks[i] >= v->n_tokens) continue;
        uint32_t len;
        const char *p = lmql__vocab_piece(v, toks[i], &len);
        if (need + len <= cap) memcpy(out + need, p, len);
        need += len;
    }
    return need;
}

/* Masks of this many bytes at most are remembered per vocabulary: ~500
** masks of a 128k vocabulary, ~2000 of a 32k one. */
#define MEMO_BUDGET ((size_t)64 << 20)

/* Not locked: batch.c builds it before its threads start. */
struct lmql_trie *lmql__vocab_trie(struct lmql__vocab *v) {
    if (!v->trie) {
        v->trie = lmql__trie_build(v);
        if (v->trie && !v->memo) v->memo = lmql__memo_new(MEMO_BUDGET);
    }
    return v->trie;
}

void lmql__vocab_free_borrowed(struct lmql__vocab *copy, const struct lmql__vocab *owner) {
    if (copy->trie != owner->trie) lmql__trie_free(copy->trie);
    if (copy->memo != owner->memo) lmql__memo_free(copy->memo);
    copy->trie = NULL;
    copy->memo = NULL;
}

void lmql__vocab_free(struct lmql__vocab *v) {
    lmql__trie_free(v->trie);
    lmql__memo_free(v->memo);
    free(v->bytes);
    free(v->off);
    free(v->is_eog);
    free(v->eog);
    free(v->is_control);
    memset(v, 0, sizeof *v);
}
