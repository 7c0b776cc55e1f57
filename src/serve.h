/*
** The serving engine behind `lmql serve-model`: every active stream of
** every connection advances in one batched model call per step
** (continuous batching over the model's sequence slots).
**
** The transport (serve_ws.c) parses frames and hands GENERATE/SCORE
** commands to the engine; the engine's own thread evaluates them and hands
** reply frames back through `emit`. Streams are admitted as sequence slots
** and KV space allow, the oldest of the connection with the fewest running
** streams first; a new stream takes the slot
** whose cached tokens share the longest prefix with its prompt, or forks
** the cache of a running stream that shares more.
*/
#ifndef LMQL_SERVE_H
#define LMQL_SERVE_H

#include <stdbool.h>
#include <stdint.h>

#include "lmtp.h"
#include "model.h"

struct lmql__engine;

struct lmql__engine_io {
    /* A reply frame for connection conn (called on the engine thread, with
    ** the engine's lock held: queue it, do not block). */
    void (*emit)(void *ud, void *conn, const char *frame, size_t len);
    /* Frames were emitted since the last call (engine thread, no lock held). */
    void (*wake)(void *ud);
    /* The engine holds no more streams of conn from here on. */
    void (*release)(void *ud, void *conn);
    /* Bytes of replies conn has not read yet (engine thread, no lock held). */
    size_t (*unread)(void *ud, void *conn);
    void *ud;
};

/* Per-connection budgets, so one client cannot exhaust the server. */
struct lmql__engine_limits {
    size_t max_unread;          /* replies not read: past it, the connection's streams end with an error */
    int64_t max_queued_bias;    /* logit_bias entries of streams queued and not yet running */
    int64_t max_score_tokens;   /* tokens of SCORE streams queued or running */
};

struct lmql__engine *lmql__engine_new(struct lmql__model *m, const struct lmql__engine_io *io,
                                      const struct lmql__engine_limits *lim, uint64_t seed, struct lmql__err *err);
/* Stops the thread; streams still open are released unanswered. */
void lmql__engine_free(struct lmql__engine *e);

/* Queue a GENERATE or SCORE (the engine takes cmd's contents; cmd is
** zeroed). 0, or -1 with a message for the client in err: bad token ids,
** a prompt the context cannot hold, a stream id already running, a budget
** of lmql__engine_limits exceeded. On 0 the
** engine will call io->release(conn) once for this stream. */
int lmql__engine_submit(struct lmql__engine *e, void *conn, struct lmql__lmtp_cmd *cmd, struct lmql__err *err);
/* Stop a stream, or all streams of conn (stream_id < 0), now: they get no
** further replies. Returns how many were stopped. */
int lmql__engine_cancel(struct lmql__engine *e, void *conn, int64_t stream_id);
/* Streams of conn queued or running. */
int lmql__engine_streams(struct lmql__engine *e, void *conn);

/* Histogram buckets of request latency and time to first token, seconds
** (the upper bounds; a last bucket, +Inf, counts them all). */
#define LMQL_ENGINE_NBUCKETS 12
extern const double lmql__engine_buckets[LMQL_ENGINE_NBUCKETS];

struct lmql__engine_hist {
    uint64_t n[LMQL_ENGINE_NBUCKETS + 1];   /* per bucket (not cumulative); the last is > the largest bound */
    uint64_t count;
    double sum;
};

/* What the engine has done since it started (for /metrics and /health). */
struct lmql__engine_stats {
    uint64_t done[2][3];          /* [GENERATE, SCORE][ok, error, cancelled]: streams ended */
    uint64_t errors_context, errors_eval, errors_slow_reader, errors_other;   /* streams ended with an error, by kind */
    uint64_t tokens_generated;    /* sampled and sent */
    uint64_t tokens_evaluated;    /* run through the model: prompts past their cached prefix, scored and generated tokens */
    uint64_t prefix_hit_tokens;   /* prompt tokens found in a slot's cache (not evaluated again) */
    int running, waiting;         /* streams holding a slot, queued */
    int slots_busy, slots_total;
    int64_t kv_used, kv_total;    /* KV cells reserved by running streams, n_ctx */
    struct lmql__engine_hist latency, ttft;
};
void lmql__engine_stats(struct lmql__engine *e, struct lmql__engine_stats *out);
/* Whether any stream is queued or running. */
bool lmql__engine_busy(struct lmql__engine *e);
/* End every stream now with an error reply saying why (the drain's time-out). */
void lmql__engine_fail_all(struct lmql__engine *e, const char *why);

#endif
