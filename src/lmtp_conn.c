/*
** LMTP client connection over libwebsockets (see lmtp_conn.h).
**
** lws runs its event loop only inside lws_service(), which here is called
** from send/recv on the caller's thread, so no lock is needed. A timer
** wakes the loop every 50 ms so waits can end on time.
*/
#include "lmtp_conn.h"
#include "wsq.h"

#include <libwebsockets.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct msg {
    struct msg *next;
    size_t len;
    char *text;
};

/* The largest message a server may send (as the server's own --max-frame
** default): a 256k-token vocabulary (VOCAB) is ~5 MiB; more is a broken or
** hostile server, which must not make the client buffer without bound. */
#define LMTP_MAX_MESSAGE ((size_t)16 << 20)

struct lmql__lmtp_conn {
    struct lws_context *ctx;
    struct lws *wsi;
    bool established, closed;
    char why[256];
    char host[256];
    char where[300];            /* "host:port", for errors */
    char auth[512];
    struct lmql__wsq out;
    struct msg *in, *in_tail;
    struct lmql__buf part;      /* a message arriving in fragments */
    lws_sorted_usec_list_t tick;
};

static void on_tick(lws_sorted_usec_list_t *sul) {
    struct lmql__lmtp_conn *c = lws_container_of(sul, struct lmql__lmtp_conn, tick);
    lws_sul_schedule(c->ctx, 0, &c->tick, on_tick, 50 * LWS_US_PER_MS);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len) {
    struct lmql__lmtp_conn *c = lws_context_user(lws_get_context(wsi));
    switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
        if (!c->auth[0]) return 0;
        unsigned char **p = in, *end = *p + len;
        if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION, (const unsigned char *)c->auth,
                                         (int)strlen(c->auth), p, end))
            return -1;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        c->established = true;
        if (c->out.head) lws_callback_on_writable(wsi);
        return 0;
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        snprintf(c->why, sizeof c->why, "%s", in && len ? (const char *)in : "connection refused");
        c->closed = true;
        c->wsi = NULL;
        return 0;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!c->why[0]) snprintf(c->why, sizeof c->why, "the server closed the connection");
        c->closed = true;
        c->wsi = NULL;
        return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
        if (lws_is_first_fragment(wsi)) c->part.len = 0;
        if (len > LMTP_MAX_MESSAGE - c->part.len) {
            snprintf(c->why, sizeof c->why, "it sent a message of more than %zu MiB; the connection was closed",
                     LMTP_MAX_MESSAGE >> 20);
            lmql__buf_free(&c->part);
            return -1;
        }
        if (lmql__buf_add(&c->part, in, len)) {
            snprintf(c->why, sizeof c->why, "out of memory for a message of %zu bytes", c->part.len + len);
            return -1;
        }
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi)) return 0;
        struct msg *m = lmql__malloc(sizeof *m);
        char *text = lmql__malloc(c->part.len + 1);
        if (!m || !text) {
            free(m);
            free(text);
            snprintf(c->why, sizeof c->why, "out of memory for a message of %zu bytes", c->part.len);
            return -1;
        }
        memcpy(text, c->part.data ? c->part.data : "", c->part.len);
        text[c->part.len] = 0;
        *m = (struct msg){NULL, c->part.len, text};
        if (c->in_tail) c->in_tail->next = m;
        else c->in = m;
        c->in_tail = m;
        c->part.len = 0;
        return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
        struct lmql__wsframe *f = lmql__wsq_pop(&c->out);
        if (f && lmql__wsq_send(wsi, f)) return -1;
        if (c->out.head) lws_callback_on_writable(wsi);
        return 0;
    }
    default:
        return 0;
    }
}

static const struct lws_protocols k_protocols[] = {
    {"lmtp-client", callback, 0, 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

struct lmql__lmtp_conn *lmql__lmtp_connect(const char *endpoint, const char *token, int timeout_ms,
                                           struct lmql__err *err) {
    struct lmql__lmtp_conn *c = lmql__calloc(1, sizeof *c);
    if (!c) { lmql__errf(err, "out of memory"); return NULL; }
    const char *e = endpoint && *endpoint ? endpoint : "localhost:8080";
    if (!strncmp(e, "ws://", 5)) e += 5;
    else if (!strncmp(e, "http://", 7)) e += 7;
    const char *colon = strrchr(e, ':');
    int port = 8080;
    size_t hl = colon ? (size_t)(colon - e) : strcspn(e, "/");
    if (colon) {
        char *end;
        long p = strtol(colon + 1, &end, 10);
        if (p < 1 || p > 65535 || (*end && *end != '/')) {
            lmql__errf(err, "bad endpoint '%s': expected host:port", endpoint);
            free(c);
            return NULL;
        }
        port = (int)p;
    }
    snprintf(c->host, sizeof c->host, "%.*s", (int)(hl ? hl : 9), hl ? e : "localhost");
    snprintf(c->where, sizeof c->where, "%s:%d", c->host, port);
    if (token) snprintf(c->auth, sizeof c->auth, "Bearer %s", token);

    lws_set_log_level(0, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = k_protocols;
    info.user = c;
    c->ctx = lws_create_context(&info);
    if (!c->ctx) {
        lmql__errf(err, "cannot start a WebSocket client");
        free(c);
        return NULL;
    }
    lws_sul_schedule(c->ctx, 0, &c->tick, on_tick, 50 * LWS_US_PER_MS);
    struct lws_client_connect_info ci;
    memset(&ci, 0, sizeof ci);
    ci.context = c->ctx;
    ci.address = c->host;
    ci.port = port;
    ci.path = "/";
    ci.host = c->host;
    ci.local_protocol_name = "lmtp-client";
    ci.pwsi = &c->wsi;
    if (!lws_client_connect_via_info(&ci)) c->closed = true;
    double until = (lmql__now() * 1e3) + timeout_ms;
    while (!c->established && !c->closed && (lmql__now() * 1e3) < until) lws_service(c->ctx, 0);
    if (!c->established) {
        lmql__errf(err, "cannot reach the LMTP server at %s:%d (%s); start it with `lmql serve-model llama.cpp:PATH`",
                   c->host, port, c->closed ? (c->why[0] ? c->why : "connection refused") : "timed out");
        lmql__lmtp_close(c);
        return NULL;
    }
    return c;
}

void lmql__lmtp_close(struct lmql__lmtp_conn *c) {
    if (!c) return;
    lws_sul_cancel(&c->tick);
    if (c->ctx) lws_context_destroy(c->ctx);
    lmql__wsq_clear(&c->out);
    for (struct msg *m = c->in, *nx; m; m = nx) {
        nx = m->next;
        free(m->text);
        free(m);
    }
    lmql__buf_free(&c->part);
    free(c);
}

int lmql__lmtp_send(struct lmql__lmtp_conn *c, const char *text, size_t len, struct lmql__err *err) {
    if (c->closed) return lmql__errf(err, "the connection to the model server at %s is closed (%s)", c->where, c->why);
    if (lmql__wsq_push(&c->out, text, len)) return lmql__errf(err, "out of memory");
    if (c->wsi) lws_callback_on_writable(c->wsi);
    return 0;
}

int lmql__lmtp_recv(struct lmql__lmtp_conn *c, char **out, size_t *len, int timeout_ms, struct lmql__err *err) {
    double until = (lmql__now() * 1e3) + timeout_ms;
    for (;;) {
        if (c->in) {
            struct msg *m = c->in;
            c->in = m->next;
            if (!c->in) c->in_tail = NULL;
            *out = m->text;
            *len = m->len;
            LMQL_ASSERT(m->text[m->len] == 0);   /* a NUL-terminated *out */
            free(m);
            return 1;
        }
        if (c->closed) return lmql__errf(err, "lost the connection to the model server at %s: %s", c->where, c->why);
        if ((lmql__now() * 1e3) >= until) {
            if (timeout_ms > 0 || !c->out.head) return 0;
        }
        lws_service(c->ctx, 0);
        if (timeout_ms == 0 && !c->in && !c->out.head) return 0;
    }
}

const char *lmql__lmtp_where(const struct lmql__lmtp_conn *c) { return c ? c->where : "?"; }

bool lmql__lmtp_closed(const struct lmql__lmtp_conn *c) { return !c || c->closed; }
