/*
** What the server's transport (serve_ws.c: sockets, handshakes, frames,
** time-outs) and its LMTP commands (serve_cmd.c) share.
**
** Threads: the transport's loop (lmql_server_run) owns every socket; the
** engine thread evaluates. Replies cross over through a per-connection
** queue of frames under the server's lock, and the engine wakes the loop
** through a pipe. A connection object lives until both the socket and every
** stream of it are gone (reference counted), so the engine never writes
** into freed memory after a client hangs up.
*/
#ifndef LMQL_SERVE_INT_H
#define LMQL_SERVE_INT_H

#include "lmql.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "lmql_int.h"
#include "model.h"
#include "serve.h"
#include "ws_frame.h"
#include "wsq.h"

struct conn {
    struct conn *next, **prev;  /* in the server's list of objects (under the lock) */
    struct conn *lnext;         /* in the transport's list of sockets (transport thread) */
    struct lmql_server *srv;
    int fd;                     /* -1 once the socket is closed (transport thread) */
    bool open;                  /* handshake done and socket not closed: replies are queued (under the lock) */
    bool broken;                /* a reply could not be queued: close at once (under the lock) */
    int refs;                   /* the socket's + one per stream (under the lock) */
    struct lmql__wsq out;       /* reply frames not yet written (under the lock) */
    /* The rest belongs to the transport thread. */
    double t_start, t_active;   /* accepted; last frame read or written */
    struct lmql__buf rx;        /* bytes read and not yet parsed */
    struct lmql__buf tx;        /* bytes on their way out, from tx_off */
    size_t tx_off;
    struct lmql__ws_hdr fr;     /* the data frame being received */
    uint64_t fr_got;
    bool upgraded;              /* the handshake is done: frames follow */
    bool in_frame, in_msg, msg_skip;
    struct lmql__buf msg;       /* the message being assembled */
    bool throttled;             /* reading paused until the client reads its replies */
    bool parse_later;           /* messages wait in rx for the same reason */
    bool closing;               /* write what is queued, then close; read nothing more */
};

struct lmql_server {
    struct lmql_server_params p;
    char *model_id;             /* "llama.cpp:PATH" as given */
    char *real_path;            /* PATH resolved */
    char *constructor;          /* for MODEL_INFO */
    char *bound;                /* "127.0.0.1:8080 and [::1]:8080" */
    struct lmql__model *m;
    struct lmql__engine *eng;
    int lfd[8], n_lfd;          /* listening sockets */
    double accept_pause_until;  /* out of descriptors: accept nothing until then */
    int wake[2];                /* the engine's wake-up pipe */
    int port;
    pthread_mutex_t mu;
    struct conn *conns;
    int n_conns;                /* objects alive, sockets or streams (under the lock) */
    struct conn *live;          /* the transport's: connections it has not reaped */
    int n_live;
    volatile sig_atomic_t stop;
    volatile sig_atomic_t drain;   /* lmql_server_drain was called (a signal handler may) */
    /* The transport thread's own: */
    bool draining, drain_failed;   /* refusing new work; streams past --drain-timeout were ended */
    double drain_deadline;
    /* Counters for /metrics (transport thread). Commands answered here, by
    ** lmtp kind (LMTP_UNKNOWN + 1: a message that did not parse): */
    uint64_t cmd_ok[LMTP_UNKNOWN + 2], cmd_err[LMTP_UNKNOWN + 2];
    uint64_t conns_total, refused_handshakes, protocol_errors, refused_draining, http_requests;
};

/* Queue a reply frame for c (any thread; takes the lock). Frames for a
** closed connection are dropped. */
void lmql__serve_reply(struct conn *c, const char *text, size_t len);
void lmql__serve_reply_buf(struct conn *c, const struct lmql__buf *b);
void lmql__serve_reply_error(struct conn *c, const char *cmd, int64_t stream_id, const char *msg);
/* Drop one reference to c; with the lock held. */
void lmql__serve_unref_locked(struct lmql_server *S, struct conn *c);

/* One complete LMTP message from c (transport thread). */
void lmql__serve_command(struct conn *c, const char *text, size_t len);
/* The handshake's access rules: NULL to accept, or why not (HTTP 403). */
const char *lmql__serve_admit(struct lmql_server *S, const struct lmql__ws_request *rq);

/* Answer GET /health and GET /metrics (serve_ops.c); false for any other
** target, which the caller refuses as before. */
bool lmql__serve_http(struct conn *c, const struct lmql__ws_request *rq);
/* Whether the request carries the server's token (or none is set). */
bool lmql__serve_token_ok(struct lmql_server *S, const struct lmql__ws_request *rq);
/* Whether the request's Origin, if any, is allowed. */
bool lmql__serve_origin_ok(struct lmql_server *S, const struct lmql__ws_request *rq);
/* Open WebSocket connections (transport thread). */
int lmql__serve_open_conns(struct lmql_server *S);

void lmql__serve_logf(struct lmql_server *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
