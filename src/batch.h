/*
** Several sequences of one query decoded together (batch.c): a model that
** gathers one next-token request from each running sequence into one
** evaluation of the wrapped model.
*/
#ifndef LMQL_BATCH_H
#define LMQL_BATCH_H

#include "model.h"

/* A batcher for n_seqs sequences, each run in its own thread; NULL when
** the model cannot be batched this way (its choices are seeded draws that
** must stay in order) or out of memory. The inner model must outlive it. */
/* fork_first: the sequences start from the same prompt; the first batch
** evaluates the first alone and starts the others as forks of its cache. */
struct lmql__model *lmql__batcher_new(struct lmql__model *inner, int n_seqs, bool fork_first);
/* A sequence has finished: later batches do not wait for it. */
void lmql__batcher_leave(struct lmql__model *batcher);
void lmql__batcher_free(struct lmql__model *batcher);

#endif
