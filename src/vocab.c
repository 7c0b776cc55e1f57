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
    LMQL_ASSERT(n > 0);
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

/* Not locked: built before threads share the vocabulary (model.h). */
struct lmql_trie *lmql__vocab_trie(struct lmql__vocab *v) {
    if (!v->trie) {
        LMQL_ASSERT(!v->shared && "the trie is built before threads share the vocabulary");
        v->trie = lmql__trie_build(v);
        if (v->trie && !v->memo) v->memo = lmql__memo_new(MEMO_BUDGET);
        /* Masks over the trie are the vocabulary's length. */
        LMQL_ASSERT(!v->trie || lmql__trie_n_vocab(v->trie) == v->n_tokens);
    }
    return v->trie;
}

/* FNV-1a, 64 bits: not a defence against a forger (the server is trusted
** to say what it serves), only a check that two files agree. */
static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

uint64_t lmql__vocab_fingerprint(struct lmql__model *m) {
    struct lmql__vocab *v = m->vocab;
    if (v->fingerprint) return v->fingerprint;
    uint64_t h = 1469598103934665603ull;
    int32_t head[4] = {v->n_tokens, v->bos, v->eos, v->add_bos};
    h = fnv(h, head, sizeof head);
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        const char *p = lmql__vocab_piece(v, t, &len);
        unsigned char flags[2] = {v->is_eog[t], v->is_control[t]};
        h = fnv(h, &len, sizeof len);
        h = fnv(h, p, len);
        h = fnv(h, flags, sizeof flags);
    }
    /* Equal pieces with other merge rules tokenize differently: a probe of
    ** words, digits, spaces, punctuation and multi-byte text, as a start
    ** and as a continuation. */
    static const char probe[] = "Hello, world! 12345 +  x=[1, 2]; \"q\"\n\tcaf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac end.";
    int32_t toks[128];
    for (int cont = 0; cont < 2; cont++) {
        struct lmql__err err;
        int32_t n = m->ops->tokenize(m, probe, sizeof probe - 1, true, cont, toks, 128, &err);
        h = fnv(h, &n, sizeof n);
        if (n > 0) h = fnv(h, toks, (size_t)n * sizeof *toks);
    }
    v->fingerprint = h ? h : 1;
    return v->fingerprint;
}

struct lmql__vocab *lmql__vocab_new(void) {
    struct lmql__vocab *v = lmql__calloc(1, sizeof *v);
    if (v) {
        v->refs = 1;
        v->bos = v->eos = -1;
    }
    return v;
}

struct lmql_trie *lmql__vocab_share(struct lmql__vocab *v) {
    struct lmql_trie *t = lmql__vocab_trie(v);
    if (t) v->shared = true;   /* only a built trie may be read by several threads */
    return t;
}

void lmql__vocab_unref(struct lmql__vocab *v) {
    if (!v) return;
    int left = --v->refs;
    LMQL_ASSERT(left >= 0);
    if (left > 0) return;
    lmql__trie_free(v->trie);
    lmql__memo_free(v->memo);
    free(v->bytes);
    free(v->off);
    free(v->is_eog);
    free(v->eog);
    free(v->is_control);
    free(v);
}
