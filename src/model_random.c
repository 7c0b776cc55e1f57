/*
** LMQL's "random" model: every token is equally likely over a real
** vocabulary, and every choice among the allowed tokens is a seeded draw.
** Tests use it to check what must hold for any output, and LMQL's own
** tests assert the exact text it draws, so the draw is LMQL's
** (lmql/models/lmtp/backends/random_model.py), bit for bit:
**
**   rng = np.random.RandomState(input_ids.sum() + seed)   # fresh per token
**   logits = logit_bias; probs = exp(logits - log(sum(exp(logits))))
**   next = rng.choice(vocab_size, p=probs)   # cumsum, /cdf[-1], searchsorted
**
** input_ids are the prompt and generated ids with BOS in front (LMQL's
** client prepends it), and the logit bias is how LMQL's client sends a
** mask: +100 on the allowed tokens when they are fewer than the others,
** else -100 on the disallowed ones. The vocabulary (and so the tokenizer)
** comes from a GGUF file loaded vocab-only through the llama.cpp backend.
*/
#include "model.h"
#include "mt19937.h"
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
    double *scratch;     /* n_tokens doubles: numpy's probs / cdf arrays */
    uint32_t seed;
    bool seeded;         /* seed= given: the session's seed does not apply */
    int64_t ids_sum;     /* of the last request's ids, BOS in front */
};

static int32_t rnd_tokenize(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                            int32_t *out, int32_t cap, struct lmql__err *err) {
    struct rnd *m = (struct rnd *)base;
    (void)cont;
    return m->vocab_model->ops->tokenize(m->vocab_model, text, len, bos, true, out, cap, err);
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
        /* The seed of the next draw: choose() follows this call for the
        ** sequence it decides (draws are never batched, see batch.c). */
        int32_t bos = base->vocab->bos;
        int64_t sum = 0;
        if (bos >= 0 && (reqs[r].n_tokens == 0 || reqs[r].tokens[0] != bos)) sum = bos;
        for (int32_t i = 0; i < reqs[r].n_tokens; i++) sum += reqs[r].tokens[i];
        m->ids_sum = sum;
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

/* numpy's pairwise summation (pairwise_sum_DOUBLE), which np.sum uses
** along a contiguous axis: the rounding of log-sum-exp depends on it. */
static double pairwise_sum(const double *a, int32_t n) {
    if (n < 8) {
        double res = 0.;
        for (int32_t i = 0; i < n; i++) res += a[i];
        return res;
    }
    if (n <= 128) {
        double r[8];
        int32_t i;
        for (int j = 0; j < 8; j++) r[j] = a[j];
        for (i = 8; i < n - (n % 8); i += 8)
            for (int j = 0; j < 8; j++) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += a[i];
        return res;
    }
    int32_t n2 = n / 2;
    n2 -= n2 % 8;
    return pairwise_sum(a, n2) + pairwise_sum(a + n2, n - n2);
}

/* LMQL's draw among the allowed tokens (see the top of the file). */
static int32_t rnd_choose(struct lmql__model *base, const float *logprobs, const uint8_t *mask) {
    struct rnd *m = (struct rnd *)base;
    (void)logprobs;
    const struct lmql__vocab *v = base->vocab;
    int32_t n = v->n_tokens, count = 0, only = -1, textless = 0;
    for (int32_t t = 0; t < n; t++) {
        if (mask[t]) count++, only = t;
        else if (v->off[t + 1] == v->off[t] && !v->is_eog[t]) textless++;
    }
    if (count == 0) return -1;
    /* One allowed token: LMQL's client takes it without asking the model. */
    if (count == 1) return only;
    /* The logit bias LMQL's client sends for this mask (lmtp_dcmodel.py).
    ** A mask that allows most tokens is sent as the few it forbids, and
    ** LMQL's masks never forbid the tokens without text but EOS (SPM's
    ** <unk>, <s>): ours leave them out of every mask, so here they count
    ** as allowed, and a draw that lands on one takes the next allowed
    ** token (LMQL would emit it: 2 in 32,000 draws). */
    bool invert = count + textless < n - count - textless;
    if (!invert) count += textless;
    double bias_in = invert ? 100.0 : 0.0, bias_out = invert ? 0.0 : -100.0;
    double *p = m->scratch, e_in = exp(bias_in), e_out = exp(bias_out);
    for (int32_t t = 0; t < n; t++) p[t] = mask[t] || (!invert && v->off[t + 1] == v->off[t] && !v->is_eog[t]) ? e_in : e_out;
    double lse = log(pairwise_sum(p, n));
    double p_in = exp(bias_in - lse), p_out = exp(bias_out - lse);
    /* choice(p=probs): cdf = cumsum(p) (sequential), cdf /= cdf[-1], and
    ** the index is searchsorted(cdf, random_sample(), side='right'). */
    double c = 0;
    for (int32_t t = 0; t < n; t++)
        p[t] = c += mask[t] || (!invert && v->off[t + 1] == v->off[t] && !v->is_eog[t]) ? p_in : p_out;
    double last = p[n - 1];
    /* numpy refuses seeds past 2**32-1 (LMQL would fail there, after some
    ** 85,000 tokens of context); the seed wraps instead. */
    struct lmql__mt rng;
    lmql__mt_seed(&rng, (uint32_t)((uint64_t)m->ids_sum + m->seed));
    double u = lmql__mt_random_sample(&rng);
    int32_t lo = 0, hi = n;   /* the first t with cdf[t] > u */
    while (lo < hi) {
        int32_t mid = lo + (hi - lo) / 2;
        if (p[mid] / last > u) hi = mid;
        else lo = mid + 1;
    }
    /* A disallowed token has probability e^-100 relative to an allowed
    ** one; if u ever lands on one, take the next allowed token. */
    for (int32_t t = lo < n ? lo : n - 1; t < n; t++)
        if (mask[t]) return t;
    for (int32_t t = n - 1; t >= 0; t--)
        if (mask[t]) return t;
    return -1;
}

static void rnd_free(struct lmql__model *base) {
    struct rnd *m = (struct rnd *)base;
    lmql__vocab_unref(base->vocab);   /* the tokenizer model's, shared */
    lmql__model_free(m->vocab_model);
    free(m->uniform);
    free(m->scratch);
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

void lmql__random_session_seed(struct lmql__model *base, uint64_t seed) {
    if (!base || base->ops != &rnd_ops) return;
    struct rnd *m = (struct rnd *)base;
    /* numpy takes 32-bit seeds; a larger session seed keeps its low bits */
    if (!m->seeded) m->seed = (uint32_t)seed;
}

struct lmql__model *lmql__random_open(const struct lmql__kv *kv, int n_kv, const char *default_vocab,
                                      struct lmql__err *err) {
    const char *vocab = default_vocab;
    uint32_t seed = 0;
    bool seeded = false;
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
            /* np.random.RandomState takes seeds in [0, 2**32). */
            if (s < 0 || s > 0xffffffffLL) {
                lmql__errf(err, "random model: seed must be between 0 and 2**32 - 1, not %s", kv[i].value);
                return NULL;
            }
            seed = (uint32_t)s;
            seeded = true;
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
    m->seed = seed;
    m->seeded = seeded;
    m->uniform = lmql__malloc((size_t)vm->vocab->n_tokens * sizeof(float));
    m->scratch = lmql__malloc((size_t)vm->vocab->n_tokens * sizeof(double));
    if (!m->uniform || !m->scratch || !m->base.id) { rnd_free(&m->base); lmql__errf(err, "out of memory"); return NULL; }
    float lp = -logf((float)vm->vocab->n_tokens);
    for (int32_t i = 0; i < vm->vocab->n_tokens; i++) m->uniform[i] = lp;
    return &m->base;
}
