/*
** `lmql serve-model`: LMTP over WebSocket (libwebsockets), in front of the
** batching engine (serve_engine.c).
**
** Threads: libwebsockets' service loop runs in lmql_server_run and owns
** every socket; the engine thread evaluates. Replies cross over through a
** per-connection queue of frames under the server's lock, and the engine
** wakes the loop with lws_cancel_service. A connection object lives until
** both the socket and every stream of it are gone (reference counted), so
** the engine never writes into freed memory after a client hangs up.
*/
#include "lmql.h"

#include <libwebsockets.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp.h"
#include "model.h"
#include "serve.h"
#include "wsq.h"

struct conn {
    struct conn *next, **prev;  /* in the server's list */
    struct lws *wsi;            /* NULL once the socket closed */
    struct lmql_server *srv;
    int refs;                   /* the socket's + one per stream */
    struct lmql__wsq out;       /* replies not yet written */
    bool throttled;             /* reading paused until the client reads its replies */
    bool close_after_flush;
    struct lmql__buf in;        /* the message being received (service thread only) */
    bool in_skip;
};

struct lmql_server {
    struct lmql_server_params p;
    char *model_id;             /* "llama.cpp:PATH" as given */
    char *real_path;            /* PATH resolved */
    char *constructor;          /* for MODEL_INFO */
    struct lmql__model *m;
    struct lmql__engine *eng;
    struct lws_context *ctx;
    int port;
    pthread_mutex_t mu;
    struct conn *conns;
    int n_conns;
    bool shutting;
    volatile sig_atomic_t stop;
};

/* ------------------------------------------------------------- frames -- */

/* Queue a frame for c; with the lock held. */
static void enqueue_locked(struct conn *c, const char *text, size_t len) {
    if (c->wsi) lmql__wsq_push(&c->out, text, len);   /* out of memory: the frame is lost, not the server */
}

/* A client that sends requests but does not read the replies: stop reading
** its requests until it has read most of what is queued, so it cannot make
** the server's memory grow without bound. Service thread only. */
#define OUT_CAP ((size_t)8 << 20)
static void throttle(struct conn *c) {
    if (!c->wsi) return;
    pthread_mutex_lock(&c->srv->mu);
    size_t queued = c->out.bytes;
    pthread_mutex_unlock(&c->srv->mu);
    if (!c->throttled && queued > OUT_CAP) {
        c->throttled = true;
        lws_rx_flow_control(c->wsi, 0);
    } else if (c->throttled && queued < OUT_CAP / 2) {
        c->throttled = false;
        lws_rx_flow_control(c->wsi, 1);
    }
}

/* From the service thread. */
static void reply(struct conn *c, const struct lmql__buf *b) {
    pthread_mutex_lock(&c->srv->mu);
    enqueue_locked(c, b->data, b->len);
    pthread_mutex_unlock(&c->srv->mu);
    if (c->wsi) lws_callback_on_writable(c->wsi);
    throttle(c);
}

static void reply_error(struct conn *c, const char *cmd, int64_t stream_id, const char *msg) {
    struct lmql__buf b = {0};
    if (!lmql__lmtp_error(&b, cmd, stream_id, msg)) reply(c, &b);
    lmql__buf_free(&b);
}

static void conn_unref_locked(struct lmql_server *S, struct conn *c) {
    if (--c->refs > 0) return;
    *c->prev = c->next;
    if (c->next) c->next->prev = c->prev;
    lmql__wsq_clear(&c->out);
    lmql__buf_free(&c->in);
    free(c);
    S->n_conns--;
}

/* Engine callbacks (engine thread). */
static void on_emit(void *ud, void *conn, const char *frame, size_t len) {
    struct lmql_server *S = ud;
    pthread_mutex_lock(&S->mu);
    enqueue_locked(conn, frame, len);
    pthread_mutex_unlock(&S->mu);
}

static void on_wake(void *ud) {
    struct lmql_server *S = ud;
    pthread_mutex_lock(&S->mu);
    bool wake = !S->shutting;
    pthread_mutex_unlock(&S->mu);
    if (wake) lws_cancel_service(S->ctx);
}

static void on_release(void *ud, void *conn) {
    struct lmql_server *S = ud;
    pthread_mutex_lock(&S->mu);
    conn_unref_locked(S, conn);
    pthread_mutex_unlock(&S->mu);
}

/* ----------------------------------------------------------- commands -- */

/* The model a request names must be the one served: the same identifier,
** or the same file under another spelling of its path. */
static bool same_model(struct lmql_server *S, const char *want) {
    if (!want || !strcmp(want, S->model_id)) return true;
    const char *path = !strncmp(want, "llama.cpp:", 10) ? want + 10 : !strncmp(want, "local:llama.cpp:", 16) ? want + 16 : NULL;
    if (!path) return false;
    char rp[PATH_MAX];
    return realpath(path, rp) && !strcmp(rp, S->real_path);
}

static void model_info(struct conn *c, const struct lmql__lmtp_cmd *cmd) {
    struct lmql_server *S = c->srv;
    struct lmql__buf b = {0};
    lmql__buf_adds(&b, "MSG [{\"stream_id\": ");
    if (cmd->has_stream_id) lmql__buf_addf(&b, "%lld", (long long)cmd->stream_id);
    else lmql__buf_adds(&b, "null");
    lmql__buf_adds(&b, ", \"model_info\": {\"model_identifier\": ");
    lmql__buf_json_str(&b, S->real_path, strlen(S->real_path));
    lmql__buf_adds(&b, ", \"model_type\": \"llama.cpp\", \"constructor\": ");
    lmql__buf_json_str(&b, S->constructor, strlen(S->constructor));
    lmql__buf_addf(&b, ", \"server\": \"lmql-c " LMQL_VERSION "\", \"n_vocab\": %d, \"n_ctx\": %d, \"n_seq_max\": %d}}]",
                   S->m->vocab.n_tokens, S->m->n_ctx, S->m->n_slots);
    reply(c, &b);
    lmql__buf_free(&b);
}

/* Extension: the vocabulary, each piece as hex (pieces are bytes, not
** always UTF-8), so a client without the GGUF tokenizes nothing wrong. */
static void vocab_reply(struct conn *c, const struct lmql__lmtp_cmd *cmd) {
    const struct lmql__vocab *v = &c->srv->m->vocab;
    struct lmql__buf b = {0};
    static const char hex[] = "0123456789abcdef";
    lmql__buf_addf(&b, "MSG [{\"stream_id\": %lld, \"vocab\": {\"n_vocab\": %d, \"bos\": %d, \"eos\": %d, \"add_bos\": %s, "
                   "\"eog\": [", (long long)cmd->stream_id, v->n_tokens, v->bos, v->eos, v->add_bos ? "true" : "false");
    for (int32_t i = 0; i < v->n_eog; i++) lmql__buf_addf(&b, "%s%d", i ? ", " : "", v->eog[i]);
    lmql__buf_adds(&b, "], \"pieces\": [");
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        const char *p = lmql__vocab_piece(v, t, &len);
        if (lmql__buf_reserve(&b, 2 * (size_t)len + 4)) break;
        b.data[b.len++] = t ? ',' : '"';
        if (t) b.data[b.len++] = '"';
        for (uint32_t k = 0; k < len; k++) {
            b.data[b.len++] = hex[(unsigned char)p[k] >> 4];
            b.data[b.len++] = hex[(unsigned char)p[k] & 15];
        }
        b.data[b.len++] = '"';
    }
    lmql__buf_adds(&b, "]}}]");
    reply(c, &b);
    lmql__buf_free(&b);
}

/* Tokenizing runs on the service thread: the text is capped so that one
** request cannot hold up every other client for long (~0.5 s at most). */
#define TOKENIZE_MAX ((size_t)256 << 10)

static void tokenize_reply(struct conn *c, const struct lmql__lmtp_cmd *cmd) {
    struct lmql__model *m = c->srv->m;
    struct lmql__err err = {0};
    if (cmd->text_len > TOKENIZE_MAX) {
        char msg[128];
        snprintf(msg, sizeof msg, "TOKENIZE takes at most %zu bytes of text; send it in parts", TOKENIZE_MAX);
        reply_error(c, "MSG", cmd->stream_id, msg);
        return;
    }
    int32_t cap = (int32_t)(cmd->text_len + 8), *t = malloc((size_t)cap * sizeof *t);
    int32_t n = t ? m->ops->tokenize(m, cmd->text, cmd->text_len, cmd->bos, cmd->cont, t, cap, &err) : INT32_MIN;
    if (n < 0 && n != INT32_MIN) {   /* more tokens than bytes: the size it asked for */
        int32_t *more = realloc(t, (size_t)(-n) * sizeof *t);
        if (more) t = more;
        n = more ? m->ops->tokenize(m, cmd->text, cmd->text_len, cmd->bos, cmd->cont, t, -n, &err) : INT32_MIN;
    }
    if (n < 0) {
        reply_error(c, "MSG", cmd->stream_id, t && err.msg[0] ? err.msg : "the text could not be tokenized");
        free(t);
        return;
    }
    struct lmql__buf b = {0};
    lmql__buf_addf(&b, "MSG [{\"stream_id\": %lld, \"tokens\": [", (long long)cmd->stream_id);
    for (int32_t i = 0; i < n; i++) lmql__buf_addf(&b, "%s%d", i ? ", " : "", t[i]);
    lmql__buf_adds(&b, "]}]");
    reply(c, &b);
    lmql__buf_free(&b);
    free(t);
}

static void handle(struct conn *c, const char *text, size_t len) {
    struct lmql_server *S = c->srv;
    struct lmql__lmtp_cmd cmd;
    char err[1024];
    /* Arrays beyond these cannot be valid (a prompt longer than the context,
    ** a bias over more tokens than the vocabulary has): refuse them early. */
    int32_t cap = S->m->vocab.n_tokens > S->m->n_ctx ? S->m->vocab.n_tokens : S->m->n_ctx;
    int rc = lmql__lmtp_parse(text, len, cap + 1, &cmd, err, sizeof err);
    bool stream_cmd = cmd.kind == LMTP_GENERATE || cmd.kind == LMTP_SCORE;
    /* LMQL's client reads stream errors from TOKEN replies only. */
    const char *word = rc == 0 || cmd.has_stream_id ? (stream_cmd ? "TOKEN" : "MSG") : "MSG";
    if (rc) {
        reply_error(c, word, cmd.has_stream_id ? cmd.stream_id : -1, err);
        lmql__lmtp_cmd_free(&cmd);
        return;
    }
    if ((stream_cmd || cmd.kind == LMTP_CANCEL || cmd.kind == LMTP_VOCAB || cmd.kind == LMTP_TOKENIZE) &&
        !cmd.has_stream_id) {
        reply_error(c, word, -1, "'stream_id' is required");
    } else if (!same_model(S, cmd.model)) {
        snprintf(err, sizeof err, "this server serves '%s', not '%.300s' (start an lmql serve-model for that one)",
                 S->model_id, cmd.model);
        reply_error(c, word, cmd.stream_id, err);
    } else if (cmd.kind == LMTP_MODEL_INFO) {
        model_info(c, &cmd);
    } else if (cmd.kind == LMTP_VOCAB) {
        vocab_reply(c, &cmd);
    } else if (cmd.kind == LMTP_TOKENIZE) {
        tokenize_reply(c, &cmd);
    } else if (cmd.kind == LMTP_CANCEL) {
        int n = lmql__engine_cancel(S->eng, c, cmd.stream_id);
        struct lmql__buf b = {0};
        lmql__buf_addf(&b, "MSG [{\"stream_id\": %lld, \"cancelled\": %d}]", (long long)cmd.stream_id, n);
        reply(c, &b);
        lmql__buf_free(&b);
    } else if (lmql__engine_streams(S->eng, c) >= S->p.max_streams) {
        snprintf(err, sizeof err, "too many streams on this connection (limit %d)", S->p.max_streams);
        reply_error(c, word, cmd.stream_id, err);
    } else {
        /* LMQL's client sends a constraint's token bound as max_tokens, uncapped:
        ** the stream ends with "length" at the limit and the client asks again. */
        if (cmd.max_tokens > S->p.max_tokens) cmd.max_tokens = S->p.max_tokens;
        pthread_mutex_lock(&S->mu);
        c->refs++;
        pthread_mutex_unlock(&S->mu);
        if (lmql__engine_submit(S->eng, c, &cmd, err, sizeof err)) {
            on_release(S, c);
            reply_error(c, word, cmd.stream_id, err);
        }
    }
    lmql__lmtp_cmd_free(&cmd);
}

/* ----------------------------------------------------------- handshake -- */

static bool local_origin(const char *o) {
    const char *h = strstr(o, "://");
    if (!h) return false;
    h += 3;
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(hosts[i]);
        if (!strncmp(h, hosts[i], n) && (h[n] == 0 || h[n] == ':' || h[n] == '/')) return true;
    }
    return false;
}

static bool origin_allowed(struct lmql_server *S, const char *o) {
    if (local_origin(o)) return true;
    const char *list = S->p.allow_origin;
    if (!list) return false;
    size_t on = strlen(o);
    while (*list) {
        size_t n = strcspn(list, ",");
        while (n && list[0] == ' ') { list++; n--; }
        if ((n == 1 && list[0] == '*') || (n == on && !memcmp(list, o, n))) return true;
        list += n;
        if (*list == ',') list++;
    }
    return false;
}

static bool token_ok(struct lmql_server *S, struct lws *wsi) {
    if (!S->p.token) return true;
    char got[512] = "";
    int n = lws_hdr_copy(wsi, got, sizeof got, WSI_TOKEN_HTTP_AUTHORIZATION);
    const char *t = n > 0 && !strncmp(got, "Bearer ", 7) ? got + 7 : NULL;
    char arg[512];
    if (!t) t = lws_get_urlarg_by_name(wsi, "token=", arg, sizeof arg);   /* points at the value */
    if (!t) t = n > 0 ? got : NULL;
    /* Compare every byte whatever the first difference: no timing hint. */
    size_t a = t ? strlen(t) : 0, b = strlen(S->p.token);
    unsigned diff = a != b;
    for (size_t i = 0; i < b; i++) diff |= (unsigned)((i < a ? t[i] : 0) ^ S->p.token[i]);
    return t && !diff;
}

static void logf_srv(struct lmql_server *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_srv(struct lmql_server *S, const char *fmt, ...) {
    if (S->p.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("lmql serve-model: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ----------------------------------------------------------- callback -- */

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lmql_server *S = lws_context_user(lws_get_context(wsi));
    struct conn **pc = user, *c = pc ? *pc : NULL;
    switch (reason) {
    case LWS_CALLBACK_HTTP:
        lws_return_http_status(wsi, HTTP_STATUS_BAD_REQUEST, "this is an LMTP server: connect with a WebSocket");
        return -1;
    case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: {
        char origin[512] = "";
        if (lws_hdr_copy(wsi, origin, sizeof origin, WSI_TOKEN_ORIGIN) > 0 && !origin_allowed(S, origin)) {
            logf_srv(S, "refused a connection from origin %.200s (allow it with --allow-origin)", origin);
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "origin not allowed (see --allow-origin)");
            return -1;
        }
        if (!token_ok(S, wsi)) {
            logf_srv(S, "refused a connection without the right token");
            lws_return_http_status(wsi, HTTP_STATUS_FORBIDDEN, "a valid token is required");
            return -1;
        }
        return 0;
    }
    case LWS_CALLBACK_ESTABLISHED: {
        c = calloc(1, sizeof *c);
        if (!c) return -1;
        c->wsi = wsi;
        c->srv = S;
        c->refs = 1;
        pthread_mutex_lock(&S->mu);
        c->next = S->conns;
        if (c->next) c->next->prev = &c->next;
        c->prev = &S->conns;
        S->conns = c;
        bool over = ++S->n_conns > S->p.max_connections;
        pthread_mutex_unlock(&S->mu);
        *pc = c;
        if (over) {
            char msg[128];
            snprintf(msg, sizeof msg, "too many connections (limit %d); try again later", S->p.max_connections);
            reply_error(c, "MSG", -1, msg);
            c->close_after_flush = true;
        }
        return 0;
    }
    case LWS_CALLBACK_RECEIVE: {
        if (!c || c->close_after_flush) return 0;
        if (lws_is_first_fragment(wsi)) {
            c->in.len = 0;
            c->in_skip = false;
            if (lws_frame_is_binary(wsi)) {
                reply_error(c, "MSG", -1, "LMTP messages are text frames, not binary");
                c->in_skip = true;
            }
        }
        if (!c->in_skip) {
            if (c->in.len + len > (size_t)S->p.max_frame) {
                char msg[128];
                snprintf(msg, sizeof msg, "message larger than this server's limit of %d bytes", S->p.max_frame);
                reply_error(c, "MSG", -1, msg);
                c->in_skip = true;
                c->in.len = 0;
            } else if (lmql__buf_add(&c->in, in, len)) {
                reply_error(c, "MSG", -1, "out of memory");
                c->in_skip = true;
            }
        }
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            if (!c->in_skip) handle(c, c->in.data ? c->in.data : "", c->in.len);
            c->in.len = 0;
            if (c->in.cap > (1u << 20)) {   /* do not keep a huge buffer around */
                lmql__buf_free(&c->in);
                c->in = (struct lmql__buf){0};
            }
        }
        return 0;
    }
    case LWS_CALLBACK_SERVER_WRITEABLE: {
        if (!c) return 0;
        pthread_mutex_lock(&S->mu);
        struct lmql__wsframe *f = lmql__wsq_pop(&c->out);
        bool more = c->out.head != NULL;
        pthread_mutex_unlock(&S->mu);
        throttle(c);
        if (f && lmql__wsq_send(wsi, f)) return -1;
        if (more) lws_callback_on_writable(wsi);
        else if (c->close_after_flush) return -1;
        return 0;
    }
    case LWS_CALLBACK_CLOSED:
        if (!c) return 0;
        *pc = NULL;
        /* Its streams stop now; the object goes when the engine lets go. */
        lmql__engine_cancel(S->eng, c, -1);
        pthread_mutex_lock(&S->mu);
        c->wsi = NULL;
        conn_unref_locked(S, c);
        pthread_mutex_unlock(&S->mu);
        return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        pthread_mutex_lock(&S->mu);
        for (struct conn *k = S->conns; k; k = k->next)
            if (k->wsi && k->out.head) lws_callback_on_writable(k->wsi);
        pthread_mutex_unlock(&S->mu);
        return 0;
    default:
        return 0;
    }
}

static struct lws_protocols k_protocols[] = {
    {"lmtp", callback, sizeof(struct conn *), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

/* ---------------------------------------------------------------- API -- */

void lmql_server_default_params(struct lmql_server_params *p) {
    memset(p, 0, sizeof *p);
    p->host = "127.0.0.1";
    p->port = 8080;
    p->max_connections = 64;
    p->max_streams = 64;
    p->max_frame = 16 << 20;
    p->max_tokens = 4096;
    p->seed = 0x5EED;
}

struct lmql_server *lmql_server_open(const struct lmql_server_params *p, char *err, size_t cap) {
    struct lmql_server *S = calloc(1, sizeof *S);
    struct lmql__kv *kv = NULL;
    struct lmql__err e = {0};
    if (!S) { snprintf(err, cap, "out of memory"); return NULL; }
    S->p = *p;
    pthread_mutex_init(&S->mu, NULL);
    if (!p->model || strncmp(p->model, "llama.cpp:", 10) || !p->model[10]) {
        snprintf(err, cap, "serve-model needs a model as llama.cpp:PATH (a GGUF file), got '%s'", p->model ? p->model : "");
        goto fail;
    }
    if (p->max_connections < 1 || p->max_streams < 1 || p->max_frame < 1024 || p->max_tokens < 1 || p->port < 0 ||
        p->port > 65535) {
        snprintf(err, cap, "bad server limits: connections, streams and max_tokens >= 1, frames >= 1024 bytes, port 0..65535");
        goto fail;
    }
    const char *path = p->model + 10;
    char rp[PATH_MAX];
    S->model_id = strdup(p->model);
    S->real_path = strdup(realpath(path, rp) ? rp : path);
    kv = calloc((size_t)p->n_params + 1, sizeof *kv);
    struct lmql__buf ctor = {0};
    lmql__buf_adds(&ctor, "Llama(model_path=");
    lmql__buf_json_str(&ctor, S->real_path ? S->real_path : path, strlen(S->real_path ? S->real_path : path));
    for (int i = 0; kv && i < p->n_params; i++) {
        kv[i] = (struct lmql__kv){p->param_keys[i], p->param_values[i]};
        lmql__buf_addf(&ctor, ", %s=%s", p->param_keys[i], p->param_values[i]);
    }
    lmql__buf_adds(&ctor, ")");
    S->constructor = ctor.data;
    if (!S->model_id || !S->real_path || !kv || !S->constructor) { snprintf(err, cap, "out of memory"); goto fail; }
    /* The resolved path: a relative one keeps working whatever the cwd. */
    S->m = lmql__llama_open(S->real_path, kv, p->n_params, &e);
    if (!S->m) { snprintf(err, cap, "%s", e.msg); goto fail; }
    struct lmql__engine_io io = {on_emit, on_wake, on_release, S};
    S->eng = lmql__engine_new(S->m, &io, p->seed, &e);
    if (!S->eng) { snprintf(err, cap, "%s", e.msg); goto fail; }

    lws_set_log_level(p->quiet ? 0 : LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = p->port;
    info.iface = p->host && *p->host ? p->host : "127.0.0.1";
    info.protocols = k_protocols;
    info.user = S;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.ka_time = 0;
    info.timeout_secs = 30;
    S->ctx = lws_create_context(&info);
    struct lws_vhost *vh = S->ctx ? lws_get_vhost_by_name(S->ctx, "default") : NULL;
    S->port = vh ? lws_get_vhost_listen_port(vh) : -1;
    if (!S->ctx || S->port <= 0) {
        snprintf(err, cap, "cannot listen on %s:%d (in use, or not an address of this machine)", info.iface, p->port);
        goto fail;
    }
    free(kv);
    logf_srv(S, "%s loaded: %d-token vocabulary, n_ctx=%d shared by %d sequences; limits: %d connections, "
             "%d streams each, max_tokens %d; Ctrl-C stops", S->real_path, S->m->vocab.n_tokens, S->m->n_ctx,
             S->m->n_slots, p->max_connections, p->max_streams, p->max_tokens);
    return S;
fail:
    free(kv);
    lmql_server_free(S);
    return NULL;
}

int lmql_server_port(const struct lmql_server *S) { return S ? S->port : -1; }

lmql_status lmql_server_run(struct lmql_server *S) {
    if (!S || !S->ctx) return LMQL_ERR_MISUSE;
    /* A signal that stops the server can also interrupt the wait inside
    ** lws_service (which then reports a failure): that is the stop, not an error. */
    while (!S->stop)
        if (lws_service(S->ctx, 0) < 0 && !S->stop) return LMQL_ERR_RUNTIME;
    return LMQL_OK;
}

void lmql_server_stop(struct lmql_server *S) {
    if (!S) return;
    S->stop = 1;
    if (S->ctx) lws_cancel_service(S->ctx);
}

void lmql_server_free(struct lmql_server *S) {
    if (!S) return;
    pthread_mutex_lock(&S->mu);
    S->shutting = true;
    pthread_mutex_unlock(&S->mu);
    if (S->ctx) lws_context_destroy(S->ctx);   /* closes every socket: their streams are cancelled */
    lmql__engine_free(S->eng);
    while (S->conns) {   /* nothing refers to them any more */
        S->conns->refs = 1;
        conn_unref_locked(S, S->conns);
    }
    lmql__model_free(S->m);
    pthread_mutex_destroy(&S->mu);
    free(S->model_id);
    free(S->real_path);
    free(S->constructor);
    free(S);
}
