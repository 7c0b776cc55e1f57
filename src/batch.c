/*
** Decoding several sequences of one query together: each sequence runs in
** its own thread, and their next-token requests meet here, at a barrier,
** to go to the model as one batch (one llama_decode for all of them).
**
** The batcher is a model (model.h) wrapped around the real one. A request
** waits until every sequence still running has asked for its next token;
** the last to arrive evaluates all of them and wakes the others. Calls that
** do not batch (tokenize, score, slot copies) go straight through, one at
** a time. Each slot belongs to one sequence, so the log-probabilities a
** thread gets back stay valid until that thread asks again.
*/
#include "batch.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct batcher {
    struct lmql__model base;
    struct lmql__model *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int active;                      /* sequences still running */
    int n_wait;                      /* requests waiting for the batch */
    uint64_t round;                  /* counts batches, to know when mine is done */
    struct lmql__eval_req *reqs;     /* n_wait waiting requests */
    const float **outs;
    int *rcs;
    struct lmql__err *errs;
    int cap;
    bool fork_first;
};

/* Evaluate the waiting requests. Slots that appear twice (sub-queries of
** different sequences may share one) are evaluated one request at a time. */
static void run_round(struct batcher *b) {
    int n = b->n_wait;
    bool dup = false;
    LMQL_ASSERT(pthread_mutex_trylock(&b->mu) == EBUSY);   /* called with the lock held */
    LMQL_ASSERT(n >= 1 && n <= b->cap);
    if (b->round == 0 && n > 1 && b->fork_first) {
        /* The first round: the sequences start from the same prompt. The
        ** first is evaluated alone, the others start as forks of it, and
        ** only what differs is decoded for them (with the next round). */
        b->rcs[0] = b->inner->ops->next_logprobs(b->inner, 1, &b->reqs[0], &b->outs[0], &b->errs[0]);
        for (int i = 1; i < n; i++)
            if (b->reqs[i].slot != b->reqs[0].slot) b->inner->ops->slot_copy(b->inner, b->reqs[0].slot, b->reqs[i].slot);
        struct lmql__err err = {0};
        int rc = b->inner->ops->next_logprobs(b->inner, n - 1, b->reqs + 1, b->outs + 1, &err);
        for (int i = 1; i < n; i++) {
            b->rcs[i] = rc;
            if (rc) b->errs[i] = err;
        }
        b->n_wait = 0;
        b->round++;
        pthread_cond_broadcast(&b->cv);
        return;
    }
    for (int i = 0; i < n && !dup; i++)
        for (int j = 0; j < i && !dup; j++) dup = b->reqs[i].slot == b->reqs[j].slot;
    if (!dup) {
        struct lmql__err err = {0};
        int rc = b->inner->ops->next_logprobs(b->inner, n, b->reqs, b->outs, &err);
        for (int i = 0; i < n; i++) {
            b->rcs[i] = rc;
            if (rc) b->errs[i] = err;
        }
    } else {
        for (int i = 0; i < n; i++) b->rcs[i] = b->inner->ops->next_logprobs(b->inner, 1, &b->reqs[i], &b->outs[i], &b->errs[i]);
    }
    b->n_wait = 0;
    b->round++;
    pthread_cond_broadcast(&b->cv);
}

static int b_next_logprobs(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs, const float **out,
                           struct lmql__err *err) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    if (n_req != 1 || b->n_wait >= b->cap) {   /* not a single next-token request: no batching */
        int rc = b->inner->ops->next_logprobs(b->inner, n_req, reqs, out, err);
        pthread_mutex_unlock(&b->mu);
        return rc;
    }
    int me = b->n_wait++;
    LMQL_ASSERT(me < b->cap && b->active > 0);   /* one request per running sequence, at most */
    uint64_t my_round = b->round;
    b->reqs[me] = reqs[0];
    if (b->n_wait >= b->active) run_round(b);
    while (b->round == my_round) pthread_cond_wait(&b->cv, &b->mu);
    int rc = b->rcs[me];
    if (rc) *err = b->errs[me];
    else out[0] = b->outs[me];
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static int32_t b_tokenize(struct lmql__model *m, const char *text, size_t len, bool bos, bool cont, int32_t *out,
                          int32_t cap, struct lmql__err *err) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    int32_t n = b->inner->ops->tokenize(b->inner, text, len, bos, cont, out, cap, err);
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int32_t b_tokenize_special(struct lmql__model *m, const char *text, size_t len, bool bos, bool cont,
                                  int32_t *out, int32_t cap, struct lmql__err *err) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    int32_t n = b->inner->ops->tokenize_special(b->inner, text, len, bos, cont, out, cap, err);
    pthread_mutex_unlock(&b->mu);
    return n;
}

static int b_score(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs, const int32_t *from,
                   float **scores, struct lmql__err *err) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    int rc = b->inner->ops->score(b->inner, n_req, reqs, from, scores, err);
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static void b_slot_copy(struct lmql__model *m, int src, int dst) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    b->inner->ops->slot_copy(b->inner, src, dst);
    pthread_mutex_unlock(&b->mu);
}

static void b_slot_drop(struct lmql__model *m, int slot) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    b->inner->ops->slot_drop(b->inner, slot);
    pthread_mutex_unlock(&b->mu);
}

static void b_free(struct lmql__model *m) { lmql__batcher_free(m); }

static const struct lmql__model_ops batcher_ops = {
    .free = b_free,
    .tokenize = b_tokenize,
    .next_logprobs = b_next_logprobs,
    .score = b_score,
    .slot_copy = b_slot_copy,
    .slot_drop = b_slot_drop,
    .choose = NULL,
    .tokenize_special = b_tokenize_special,
};

struct lmql__model *lmql__batcher_new(struct lmql__model *inner, int n_seqs, bool fork_first) {
    if (inner->ops->choose || n_seqs < 2) return NULL;   /* seeded draws must stay in order */
    if (!lmql__vocab_share(inner->vocab)) return NULL;   /* trie built now, not by two threads at once */
    struct batcher *b = lmql__calloc(1, sizeof *b);
    if (!b) return NULL;
    b->cap = n_seqs;
    b->fork_first = fork_first;
    b->reqs = lmql__calloc((size_t)n_seqs, sizeof *b->reqs);
    b->outs = lmql__calloc((size_t)n_seqs, sizeof *b->outs);
    b->rcs = lmql__calloc((size_t)n_seqs, sizeof *b->rcs);
    b->errs = lmql__calloc((size_t)n_seqs, sizeof *b->errs);
    if (!b->reqs || !b->outs || !b->rcs || !b->errs || pthread_mutex_init(&b->mu, NULL)) {
        free(b->reqs); free(b->outs); free(b->rcs); free(b->errs); free(b);
        return NULL;
    }
    pthread_cond_init(&b->cv, NULL);
    b->inner = inner;
    b->active = n_seqs;
    b->base.ops = &batcher_ops;
    b->base.vocab = lmql__vocab_ref(inner->vocab);   /* shared, trie included */
    b->base.n_slots = inner->n_slots;
    b->base.n_ctx = inner->n_ctx;
    b->base.id = inner->id;
    b->base.chat_template = inner->ops->tokenize_special ? inner->chat_template : NULL;   /* borrowed */
    return &b->base;
}

void lmql__batcher_leave(struct lmql__model *m) {
    struct batcher *b = (struct batcher *)m;
    pthread_mutex_lock(&b->mu);
    LMQL_ASSERT(b->active > 0);   /* each sequence leaves once */
    b->active--;
    /* The others may all be waiting for this one. */
    if (b->n_wait > 0 && b->n_wait >= b->active) run_round(b);
    pthread_mutex_unlock(&b->mu);
}

void lmql__batcher_free(struct lmql__model *m) {
    struct batcher *b = (struct batcher *)m;
    if (!b) return;
    LMQL_ASSERT(b->n_wait == 0);   /* no thread waits in a batch any more */
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    free(b->reqs);
    free(b->outs);
    free(b->rcs);
    free(b->errs);
    lmql__vocab_unref(b->base.vocab);
    free(b);
}
