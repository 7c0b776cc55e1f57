/*
** The model layer: what the decoders see of a language model.
**
** A model owns a number of sequence slots. A slot remembers the tokens it
** last evaluated, so asking for the next-token distribution of a token list
** that shares a prefix with the slot's evaluates only the new suffix
** (KV-cache reuse). Several slots can be evaluated in one call, which a
** backend may batch into one forward pass.
**
** Backends: llama.cpp in process (backend_llama.c, the only file that sees
** llama.h) and LMQL's "random" model (model_random.c).
*/
#ifndef LMQL_MODEL_H
#define LMQL_MODEL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "lmql_int.h"

/* The vocabulary as bytes: piece i is bytes[off[i] .. off[i+1]). SPM's
** U+2581 is a space, byte tokens <0xNN> are that one byte, control tokens
** are empty. Pieces may be partial UTF-8.
**
** Ownership: one allocated object (lmql__vocab_new), reference counted;
** every model that uses it (a backend, the random model and the LMTP client
** borrowing a vocab-only model's, the batcher) holds a reference, taken with
** lmql__vocab_ref and dropped with lmql__vocab_unref. The trie and the memo
** are built once per vocabulary, whoever asks first, and shared by all.
**
** Threads: the pieces and flags are written only while the vocabulary is
** being loaded, before its first lmql__vocab_ref; after that they are read
** only, by any thread. The lazily built parts (trie, memo, fingerprint) are
** not locked: build them (lmql__vocab_trie, lmql__vocab_fingerprint) from
** one thread before threads share the vocabulary, as batch.c does.
** lmql__vocab_share builds the trie and marks that moment; building the
** trie after it is an assertion failure. The memo has its own lock (memo.h). The count is atomic. */
struct lmql__vocab {
    _Atomic int refs;       /* lmql__vocab_ref / lmql__vocab_unref */
    bool      shared;       /* lmql__vocab_share was called: lazy parts are frozen */
    int32_t   n_tokens;
    char     *bytes;
    uint32_t *off;          /* n_tokens + 1 entries */
    uint8_t  *is_eog;       /* end of generation (EOS, EOT, ...) */
    int32_t  *eog;          /* the same as a list */
    int32_t   n_eog;
    uint8_t  *is_control;
    int32_t   bos, eos;     /* -1 when the model has none */
    bool      add_bos;      /* the model expects BOS before a prompt */
    struct lmql_trie *trie; /* built on first use by lmql__vocab_trie */
    struct lmql__memo *memo;/* masks and first tokens by meaning (memo.h), with the trie */
    uint64_t  fingerprint;  /* lmql__vocab_fingerprint, once computed (0: not yet) */
};

/* A new, empty vocabulary with one reference (NULL when out of memory). */
struct lmql__vocab *lmql__vocab_new(void);
static inline struct lmql__vocab *lmql__vocab_ref(struct lmql__vocab *v) {
    LMQL_ASSERT(!v || v->refs > 0);   /* a reference is taken from a holder of one */
    if (v) v->refs++;
    return v;
}
/* Drop a reference; the last one frees the vocabulary, trie and memo. */
void lmql__vocab_unref(struct lmql__vocab *v);
/* From now on threads may share v: builds the trie and memo (and returns
** the trie, NULL when out of memory); they are never built again. */
struct lmql_trie *lmql__vocab_share(struct lmql__vocab *v);

/* The byte trie of the vocabulary's pieces (trie.h), built on first use
** and freed with the vocabulary; NULL when out of memory. */
struct lmql_trie *lmql__vocab_trie(struct lmql__vocab *v);
/* The vocabulary's memo (memo.h), NULL until the trie is built or when out
** of memory (then nothing is remembered). */
static inline struct lmql__memo *lmql__vocab_memo(const struct lmql__vocab *v) { return v->memo; }

static inline const char *lmql__vocab_piece(const struct lmql__vocab *v, int32_t t, uint32_t *len) {
    LMQL_ASSERT(t >= 0 && t < v->n_tokens && v->off[t] <= v->off[t + 1]);   /* ids are 0..n_tokens-1 */
    *len = v->off[t + 1] - v->off[t];
    return v->bytes + v->off[t];
}

/* One named parameter: `n_ctx=1024` from lmql.model(...) or `--n_ctx 1024`
** from serve-model. Values arrive as text; the backend checks and converts
** them and names the valid keys on an error. */
struct lmql__kv {
    const char *key;
    const char *value;
};

struct lmql__model;
struct lmql__eval_req;

struct lmql__model_ops {
    void (*free)(struct lmql__model *m);
    /* Tokenize bytes. `bos` prepends BOS when the model uses one. `cont`
    ** marks text that continues earlier text (no SPM prefix space is
    ** invented). Returns the token count, or -(needed) when cap is too
    ** small, or INT32_MIN on error (err filled). */
    int32_t (*tokenize)(struct lmql__model *m, const char *text, size_t len, bool bos, bool cont,
                        int32_t *out, int32_t cap, struct lmql__err *err);
    /* Next-token log-probabilities (n_vocab floats each) after the tokens
    ** of each request, evaluated in slot reqs[i].slot. out[i] stays valid
    ** until the next call on the model. Returns 0 or -1 with err filled. */
    int (*next_logprobs)(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs,
                         const float **out, struct lmql__err *err);
    /* Log-probabilities of the tokens of each request from score_from[r]
    ** on, each given all tokens before it: scores[r] receives
    ** n_tokens - score_from[r] floats. Evaluated like next_logprobs (the
    ** slot keeps the tokens), so shared prefixes are reused. */
    int (*score)(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs, const int32_t *score_from,
                 float **scores, struct lmql__err *err);
    /* Copy slot src's cached state to slot dst (a fork). */
    void (*slot_copy)(struct lmql__model *m, int src, int dst);
    /* Forget what slot holds. */
    void (*slot_drop)(struct lmql__model *m, int slot);
    /* Optional: pick a token among those with mask[t] != 0. Models whose
    ** scores carry no preference (random) choose by their own seeded draw;
    ** NULL means the decoder decides from the scores. */
    int32_t (*choose)(struct lmql__model *m, const float *logprobs, const uint8_t *mask);
    /* Optional: tokenize as `tokenize` does, but text naming a special
    ** token (`<|eot_id|>`) becomes that token. Only text a chat template
    ** wrote goes through here; the user's text never names special tokens.
    ** NULL where the model has no chat template. */
    int32_t (*tokenize_special)(struct lmql__model *m, const char *text, size_t len, bool bos, bool cont,
                                int32_t *out, int32_t cap, struct lmql__err *err);
};

struct lmql__eval_req {
    int            slot;
    const int32_t *tokens;
    int32_t        n_tokens;
    /* The tokens the constraints allow next (EOS included when the value
    ** may end), or NULL. In-process models ignore it; the LMTP client sends
    ** it to the server as a logit_bias. */
    const uint8_t *mask;
    /* Set when the decoder samples (NULL otherwise). In-process models ignore
    ** it (the decoder draws from their distribution); the LMTP client lets
    ** the server draw, as LMQL does, and returns that token alone. */
    const struct lmql__sampling *sampling;
};

struct lmql__sampling {
    double  temperature;    /* > 0 */
    int32_t top_k;          /* 0: all */
    double  top_p;          /* 1: all */
};

struct lmql__model_stats {
    uint64_t n_decoded;     /* tokens actually run through the network */
    uint64_t n_reused;      /* tokens served from the KV cache */
    uint64_t n_calls;       /* forward passes (llama_decode calls) */
    double   t_eval;        /* seconds spent in forward passes */
};

struct lmql__model {
    const struct lmql__model_ops *ops;
    struct lmql__vocab *vocab;   /* a reference (see struct lmql__vocab) */
    int    n_slots;
    int32_t n_ctx;
    struct lmql__model_stats stats;
    char  *id;              /* the identifier it was opened with */
    /* The chat template role tags are rendered with (the GGUF's
    ** tokenizer.chat_template, or a llama.cpp template name), or NULL: no
    ** template, or chat_template=False; role tags are then LMQL's plain
    ** "((role)):" text. Owned by the llama.cpp backend that read it; the
    ** models wrapping one (random, LMTP client, batcher) borrow it. */
    const char *chat_template;
};

/* One message of a chat for lmql__chat_apply. */
struct lmql__chat_msg {
    const char *role;
    const char *content;
};

/* Render a chat with a template as llama.cpp does (llama_chat_apply_template:
** its built-in templates, recognized from the Jinja text or by name; no
** assistant header is added). Returns 0 with the text appended to out, or
** -1 with err filled (a template llama.cpp does not know, out of memory). */
int lmql__chat_apply(const char *tmpl, const struct lmql__chat_msg *msgs, int n, struct lmql__buf *out,
                     struct lmql__err *err);

/* Open a file that must be a regular file (a model, a vocabulary): not a
** FIFO, device, socket or directory, whose reads block or never end. `what`
** names it in errors ("model file"). Returns an fd (O_CLOEXEC) with *st
** filled, or -1 with err naming the path and what it is. */
struct stat;
int lmql__open_regular(const char *path, const char *what, struct stat *st, struct lmql__err *err);

/* Open `local:llama.cpp:PATH` / a .gguf path. params may be NULL. */
struct lmql__model *lmql__llama_open(const char *path, const struct lmql__kv *params, int n_params,
                                     struct lmql__err *err);
/* The i-th llama.cpp parameter (lmql_model_param). */
int lmql__llama_param(int i, const char **name, const char **dflt, const char **help);
/* Open LMQL's random model: params seed=N, vocab=PATH (a GGUF). */
struct lmql__model *lmql__random_open(const struct lmql__kv *params, int n_params, const char *default_vocab,
                                      struct lmql__err *err);
/* The seed of a random model opened without seed=: the session's
** (lmql_set_seed, --seed), so runs with different seeds draw differently.
** Does nothing to other models or to an explicit seed=. */
void lmql__random_session_seed(struct lmql__model *m, uint64_t seed);

/* Open `llama.cpp:PATH`: the model served over LMTP (params endpoint=
** "host:port", chunksize=N, token=T). */
struct lmql__model *lmql__lmtp_open(const char *id, const struct lmql__kv *params, int n_params,
                                    struct lmql__err *err);

/* What a client and a server must agree on to exchange token ids: the
** pieces, their flags, BOS/EOS and the tokenization of a probe text, hashed.
** Computed once per vocabulary (not thread-safe the first time: call it
** from one thread). Never 0. */
uint64_t lmql__vocab_fingerprint(struct lmql__model *m);

/* Convenience wrappers. */
static inline void lmql__model_free(struct lmql__model *m) { if (m) m->ops->free(m); }

/* Shared by the backends: log-softmax in place; returns the max index. */
int32_t lmql__log_softmax(float *x, int32_t n);
/* Detokenize: concatenation of the pieces. Returns bytes written, or the
** size needed when cap is too small. */
size_t lmql__vocab_detok(const struct lmql__vocab *v, const int32_t *toks, int32_t n, char *out, size_t cap);

#endif
