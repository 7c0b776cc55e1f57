/*
** LMQL's "random" model: every token is equally likely over a real
** vocabulary, and every choice among the allowed tokens is a draw from a
** seeded generator. Tests use it to check what must hold for any output.
** The vocabulary (and so the tokenizer) comes from a GGUF file loaded
** vocab-only through the llama.cpp backend.
*/
#include "model.h"
#include "trie.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct rnd {
    struct lmql__model base;
    struct lmql__model *vocab_model;   /* tokenizer */
    float *uniform;
    uint64_t state;
};

static int32_t rnd_tokenize(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                            int32_t *out, int32_t cap, struct lmql__err *err) {
    struct rnd *m = (struct rnd *)base;
    return m->vocab_model->ops->tokenize(m->vocab_model, text, len, bos, cont, out, cap, err);
}

static int32_t rnd_tokenize_special(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                                    int32_t *out, int32_t cap, struct lmql__err *err) {
    struct rnd *m = (struct rnd *)base;
    return m->vocab_model->ops->tokenize_special(m->vocab_model, text, len, bos, cont, out, cap, err);
}

static int rnd_next_logprobs(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs,
                             const float **out, struct lmql__err *err) {
    struct rnd *m = (struct rnd *)base;
    for (int r = 0; r < n_req; r++) {
        for (int32_t i = 0; i < reqs[r].n_tokens; i++)
            if (reqs[r].tokens[i] < 0 || reqs[r].tokens[i] >= base->vocab->n_tokens)
                return lmql__errf(err, "token id %d out of range (vocabulary of %d)", reqs[r].tokens[i],
                                  base->vocab->n_tokens);
        out[r] = m->uniform;
        base->stats.n_decoded += (uint64_t)reqs[r].n_tokens;
    }
    return 0;
}

static int rnd_score(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs, const int32_t *score_from,
                     float **scores, struct lmql__err *err) {
    struct rnd *m = (struct rnd *)base;
    const float *lp[1];
    for (int r = 0; r < n_req; r++) {
        if (score_from[r] < 1 || score_from[r] > reqs[r].n_tokens)
            return lmql__errf(err, "scored tokens need a prefix of at least one token");
        if (rnd_next_logprobs(base, 1, &reqs[r], lp, err)) return -1;
        for (int32_t i = score_from[r]; i < reqs[r].n_tokens; i++) scores[r][i - score_from[r]] = m->uniform[0];
    }
    return 0;
}

static void rnd_slot_noop(struct lmql__model *base, int a, int b) { (void)base; (void)a; (void)b; }
static void rnd_drop_noop(struct lmql__model *base, int a) { (void)base; (void)a; }

/* A uniform draw among the allowed tokens. */
static int32_t rnd_choose(struct lmql__model *base, const float *logprobs, const uint8_t *mask) {
    struct rnd *m = (struct rnd *)base;
    (void)logprobs;
    int32_t n = base->vocab->n_tokens, count = 0;
    for (int32_t t = 0; t < n; t++) count += mask[t] != 0;
    if (count == 0) return -1;
    uint64_t k = lmql__rng_next(&m->state) % (uint64_t)count;
    for (int32_t t = 0; t < n; t++)
        if (mask[t] && k-- == 0) return t;
    LMQL_ASSERT(!"k < count: the draw names an allowed token");
    return -1;
}

static void rnd_free(struct lmql__model *base) {
    struct rnd *m = (struct rnd *)base;
    lmql__vocab_unref(base->vocab);   /* the tokenizer model's, shared */
    lmql__model_free(m->vocab_model);
    free(m->uniform);
    free(base->id);
    free(m);
}

static const struct lmql__model_ops rnd_ops = {
    .free = rnd_free,
    .tokenize = rnd_tokenize,
    .next_logprobs = rnd_next_logprobs,
    .score = rnd_score,
    .slot_copy = rnd_slot_noop,
    .slot_drop = rnd_drop_noop,
    .choose = rnd_choose,
    .tokenize_special = rnd_tokenize_special,
};

struct lmql__model *lmql__random_open(const struct lmql__kv *kv, int n_kv, const char *default_vocab,
                                      struct lmql__err *err) {
    const char *vocab = default_vocab;
    uint64_t seed = 0;
    /* The vocabulary's chat template too: a random model over a chat
    ** model's GGUF renders role tags as that model would. */
    struct lmql__kv vo[2] = {{"vocab_only", "true"}, {"chat_template", "true"}};
    for (int i = 0; i < n_kv; i++) {
        if (!strcmp(kv[i].key, "vocab")) vocab = kv[i].value;
        else if (!strcmp(kv[i].key, "chat_template")) vo[1].value = kv[i].value;
        else if (!strcmp(kv[i].key, "seed")) {
            char *end;
            errno = 0;
            long long s = strtoll(kv[i].value, &end, 10);
            if (!*kv[i].value || *end || errno) {
                lmql__errf(err, "random model: seed must be an integer, not '%s'", kv[i].value);
                return NULL;
            }
            seed = (uint64_t)s;
        } else {
            lmql__errf(err, "random model: unknown parameter '%s' (valid: seed, vocab, chat_template)", kv[i].key);
            return NULL;
        }
    }
    if (!vocab || !*vocab) {
        lmql__errf(err, "random model: no vocabulary; pass vocab=\"PATH.gguf\"");
        return NULL;
    }
    /* Named as a vocabulary in the error (lmql__llama_open checks it again). */
    struct stat st;
    int fd = lmql__open_regular(vocab, "vocabulary file", &st, err);
    if (fd < 0) return NULL;
    close(fd);
    struct lmql__model *vm = lmql__llama_open(vocab, vo, 2, err);
    if (!vm) return NULL;
    struct rnd *m = lmql__calloc(1, sizeof *m);
    if (!m) { lmql__model_free(vm); lmql__errf(err, "out of memory"); return NULL; }
    m->base.ops = &rnd_ops;
    m->vocab_model = vm;
    m->base.vocab = lmql__vocab_ref(vm->vocab);   /* shared with the tokenizer model */
    m->base.chat_template = vm->chat_template;   /* borrowed from it */
    m->base.n_slots = 1 << 16;          /* slots cost nothing here */
    m->base.n_ctx = INT32_MAX;
    m->base.id = lmql__strdup("random");
    m->state = seed;
    m->uniform = lmql__malloc((size_t)vm->vocab->n_tokens * sizeof(float));
    if (!m->uniform || !m->base.id) { rnd_free(&m->base); lmql__errf(err, "out of memory"); return NULL; }
    float lp = -logf((float)vm->vocab->n_tokens);
    for (int32_t i = 0; i < vm->vocab->n_tokens; i++) m->uniform[i] = lp;
    return &m->base;
}
