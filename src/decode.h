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

/* What the constraints say about one hole. */
struct lmql__hole_rules {
    int32_t max_tokens;     /* -1: no limit but the context */
    int32_t min_tokens;     /* EOS is masked until this many (0: none) */
    const struct lmql__stop *stops;
    int n_stops;
    /* Optional character-level rule: may `piece` follow the value so far,
    ** and may the value end here? NULL allows everything. */
    bool (*allow_piece)(const char *value, size_t vlen, const char *piece, size_t plen);
    bool (*allow_end)(const char *value, size_t vlen);
};

enum lmql__decoder { LMQL_DEC_ARGMAX, LMQL_DEC_SAMPLE };

struct lmql__gen {
    struct lmql__model *model;
    int      slot;
    enum lmql__decoder decoder;
    double   temperature;
    uint64_t *rng;          /* sampling state */
    int32_t  max_len;       /* total tokens, prompt included */
    void   (*on_token)(void *ud, const char *bytes, size_t len);
    void    *ud;
    uint8_t *mask;          /* scratch, n_vocab */
};

/* Generate into seq (appending tokens) and value (appending bytes, cut at
** a stop phrase). Returns the number of tokens generated, or -1 with err. */
int32_t lmql__generate(struct lmql__gen *g, const struct lmql__hole_rules *rules, struct lmql__seq *seq,
                       struct lmql__buf *value, struct lmql__err *err);

#endif
