/*
** Decoding a query as a set of sequences (seqs.c) and searching over them
** (search.c): the decoder configuration, runs of the program in threads,
** replays of a list of choices, beam search and best_k.
*/
#ifndef LMQL_SEARCH_H
#define LMQL_SEARCH_H

#include "interp_int.h"

/* The decoder and its arguments, as the query states them. */
struct lmql__decoder_cfg {
    enum lmql__decoder kind;
    int n;
    double temperature;
    int32_t max_len;
    int32_t top_k;
    double top_p;
    /* best_k (LMQL's defaults) */
    int budget, max_heap, continuations;
    double kappa, beta, gamma;
};

/* How a replay of a list of choices ended. */
enum lmql__replay_end {
    LMQL_REPLAY_FAILED = -1,    /* an error, on I */
    LMQL_REPLAY_FINISHED = 0,   /* the program ran to its end: res is filled */
    LMQL_REPLAY_FRONTIER = 1,   /* it stopped at its next choice: the candidates are in io */
};

/* One run of the program that replays io->trace (seqs.c). */
enum lmql__replay_end lmql__replay(struct interp *I, struct lmql_val *args, struct lmql__beam_io *io, int slot,
                                   struct lmql__seq_result *res);

/* Run job(T, i, ud) for i < n, each T a fork of I with a sequence state of
** its own, in its own thread, the model calls of all of them decoded
** together (batch.c; fork_first as there). rcs[i] is job i's result; the
** first failure (rc < 0) is copied to I's error and the tokens generated are
** added to I's. Returns -1, having run nothing, when the model cannot be
** batched. `what` names a job in the error when its thread cannot start. */
int lmql__seqs_parallel(struct interp *I, int n, bool fork_first, const char *what,
                        int (*job)(struct interp *T, int i, void *ud), void *ud, int *rcs);

/* Beam search and best_k over the program (search.c): the finished
** sequences into out, best first. */
int lmql__run_beam(struct interp *I, const struct lmql__decoder_cfg *cfg, struct lmql_val *args,
                   struct lmql__run_out *out);
int lmql__run_best_k(struct interp *I, const struct lmql__decoder_cfg *cfg, struct lmql_val *args,
                     struct lmql__run_out *out);

#endif
