/*
** The query interpreter: runs a parsed query (ast.h) against a model and
** produces, for each sequence, the prompt, the variables and the return
** value. It knows nothing of llama.h; models come through model.h.
*/
#ifndef LMQL_INTERP_H
#define LMQL_INTERP_H

#include <lmql.h>

#include "ast.h"
#include "model.h"
#include "value.h"

/* What the interpreter needs from the runtime that calls it. */
struct lmql__host {
    /* Open (or reuse) a model; NULL with err filled on failure. */
    struct lmql__model *(*get_model)(void *ud, const char *id, const struct lmql__kv *kv, int n_kv,
                                     struct lmql__err *err);
    void *ud;
    const struct lmql_params *params;
    struct lmql_val *functions;   /* dict: host functions registered on the runtime, or NULL */
    /* The run's own options (lmql_args_set_model/_option), for the query run,
    ** not the sub-queries it calls: a model that replaces its `from`, and a
    ** decoder with its arguments used when the query names no decoder. */
    struct lmql__model *model;
    const char *decoder;
    struct lmql_val *decoder_kwargs;  /* dict name -> value, or NULL */
};

struct lmql__seq_result {
    struct lmql__buf prompt;
    struct lmql_val *vars;       /* dict: name -> value, in order of first set */
    struct lmql_val *ret;        /* the `return` value, or NULL without one */
    const char *dist_var;        /* the distribution variable (AST memory), or NULL */
    struct lmql_val *dist_values;/* its values, a list */
    int n_holes;                 /* holes the sequence ran */
};

struct lmql__run_out {
    struct lmql__seq_result *seqs;
    int  n_seqs;
    bool many;                   /* the decoder returns a list */
    bool has_return;             /* the query returned a value explicitly */
    uint64_t n_generated;
};

int  lmql__interp_run(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                      struct lmql__run_out *out, struct lmql__err *err);
void lmql__run_out_free(struct lmql__run_out *out);

#endif
