/*
** Token-level generation of one hole: ask the model, mask what the
** constraints forbid, choose (argmax or sample), stop on EOS, on the token
** budget or on a stop phrase.
*/
#ifndef LMQL_DECODE_H
#define LMQL_DECODE_H

#include "model.h"

/* A token sequence of one branch of a query. */
struct lmql__seq {
    int32_t *toks;
    int32_t  n, cap;
};
int  lmql__seq_push(struct lmql__seq *s, const int32_t *t, int32_t n);
void lmql__seq_free(struct lmql__seq *s);

struct lmql__stop {
    const char *text;
    size_t      len;
    bool        before;     /* STOPS_BEFORE: the phrase is not kept */
};

/* What the constraints say about one hole: stop phrases, and the tokens
** allowed after the value so far (mask gets 1 for allowed tokens with
** text; *eos_ok whether the value may end). mask NULL allows everything. */
struct lmql__hole_rules {
    const struct lmql__stop *stops;
    int n_stops;
    int (*mask)(void *ctx, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask, bool *eos_ok,
                struct lmql__err *err);
    /* Is stop phrase i in force for this value? NULL: always. */
    bool (*stop_active)(void *ctx, int i, const char *value, size_t vlen, int32_t n_tokens);
    /* The bytes every continuation of the value must start with (a grammar's
    ** `": "` after a key), up to cap, into out; their count (0: none), or -1
    ** with err. NULL: nothing is ever forced. */
    int (*forced)(void *ctx, const char *value, size_t vlen, char *out, int cap, struct lmql__err *err);
    void *ctx;
};

enum lmql__decoder { LMQL_DEC_ARGMAX, LMQL_DEC_SAMPLE, LMQL_DEC_BEAM, LMQL_DEC_BEAM_SAMPLE, LMQL_DEC_BEST_K };

/* A possible next token at a beam's frontier; LMQL__END ends the value. */
#define LMQL__END (-1)
struct lmql__cand {
    int32_t tok;
    float   lp;
};

/* Beam search replays a sequence from the choices made so far (the trace:
** generated tokens of every hole, LMQL__END where a value was ended by
** choice) and stops at the next choice, reporting the candidates. */
struct lmql__beam_io {
    const int32_t *trace;
    int32_t n_trace, pos;
    int     width;              /* candidates wanted at the frontier */
    struct lmql__cand *cand;    /* width entries */
    int     n_cand;             /* filled when the frontier is reached */
};

struct lmql__gen {
    struct lmql__model *model;
    int      slot;
    enum lmql__decoder decoder;
    double   temperature;
    int32_t  top_k;         /* sample among the k most likely allowed tokens (0: all) */
    double   top_p;         /* ... and the smallest set holding this much probability (1: all) */
    uint64_t *rng;          /* sampling state */
    int32_t  max_len;       /* total tokens, prompt included */
    void   (*on_token)(void *ud, const char *bytes, size_t len);
    void    *ud;
    uint8_t *mask;          /* scratch, n_vocab */
    struct lmql__beam_io *beam; /* non-NULL while replaying a beam */
};

/* Generate into seq (appending tokens) and value (appending bytes, cut at
** a stop phrase). A token the constraints force (the only one allowed,
** EOS not allowed; or the first token of the canonical tokenization of the
** bytes a grammar forces, when the mask allows it) is taken without asking
** the model: it is evaluated together with the next step. Returns the number of tokens generated,
** -1 with err, or -2 when a beam replay reached its frontier. */
int32_t lmql__generate(struct lmql__gen *g, const struct lmql__hole_rules *rules, struct lmql__seq *seq,
                       struct lmql__buf *value, struct lmql__err *err);

#endif
