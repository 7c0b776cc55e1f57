/*
** `lmql serve-model`'s transport: listening sockets, WebSocket handshakes
** and frames (ws_frame.c), time-outs, and the loop that owns every socket
** (see serve_int.h for the threads).
**
** Our own loop over poll(2) rather than a WebSocket library: the server must
** bind exactly the address it names, read the whole Origin header, refuse
** unmasked client frames, time out slow handshakes without a shared header
** pool a slow client can exhaust, and close the idlest connection to admit a
** new one; each of those fought the library we used before.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "serve_int.h"

/* A handshake's request head beyond this is refused: real ones are < 1 KiB. */
#define HEAD_MAX (16 << 10)
/* Connections still in their handshake, at most: the oldest goes to admit
** a newer one, so slow handshakes (slowloris) cannot keep others out. */
#define PENDING_MAX 256
/* Bytes read from one socket per turn of the loop, so one busy client
** cannot hold the loop. */
#define READ_CHUNK (64 << 10)

void lmql__serve_logf(struct lmql_server *S, const char *fmt, ...) {
    if (S->p.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("lmql serve-model: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ------------------------------------------------------------- replies -- */

static void wake(struct lmql_server *S) {
    char b = 1;
    ssize_t w = write(S->wake[1], &b, 1);   /* a full pipe already holds a wake-up */
    (void)w;
}

void lmql__serve_reply(struct conn *c, const char *text, size_t len) {
    struct lmql_server *S = c->srv;
    pthread_mutex_lock(&S->mu);
    LMQL_ASSERT(c->refs > 0);   /* whoever replies holds a reference (the socket's or a stream's) */
    /* A reply that cannot be queued must not vanish (a stream missing a
    ** token reads as a whole answer): the connection is closed instead, and
    ** its client sees that its requests failed. */
    bool lost = c->open && lmql__wsq_push(&c->out, text, len);
    if (lost) c->broken = true;
    pthread_mutex_unlock(&S->mu);
    if (lost) wake(S);
}

void lmql__serve_reply_buf(struct conn *c, const struct lmql__buf *b) { lmql__serve_reply(c, b->data, b->len); }

void lmql__serve_reply_error(struct conn *c, const char *cmd, int64_t stream_id, const char *msg) {
    struct lmql__buf b = {0};
    if (!lmql__lmtp_error(&b, cmd, stream_id, msg)) lmql__serve_reply_buf(c, &b);
    lmql__buf_free(&b);
}

void lmql__serve_unref_locked(struct lmql_server *S, struct conn *c) {
    LMQL_ASSERT(c->refs > 0);
    if (--c->refs > 0) return;
    LMQL_ASSERT(c->fd < 0 && !c->open);   /* the socket's reference goes last but for streams' */
    *c->prev = c->next;
    if (c->next) c->next->prev = c->prev;
    lmql__wsq_clear(&c->out);
    lmql__buf_free(&c->rx);
    lmql__buf_free(&c->tx);
    lmql__buf_free(&c->msg);
    free(c);
    S->n_conns--;
}

/* Replies queued or being written, not yet taken by the client's socket.
** The transport's part (tx) is read without the lock: a stale value only
** moves the moment a budget applies by one write. */
static size_t unread_locked(const struct conn *c) { return c->out.bytes + (c->tx.len - c->tx_off); }

/* Engine callbacks (engine thread). */
static void on_emit(void *ud, void *conn, const char *frame, size_t len) {
    (void)ud;
    lmql__serve_reply(conn, frame, len);
}

static void on_wake(void *ud) { wake(ud); }

static void on_release(void *ud, void *conn) {
    struct lmql_server *S = ud;
    pthread_mutex_lock(&S->mu);
    lmql__serve_unref_locked(S, conn);
    pthread_mutex_unlock(&S->mu);
}

static size_t unread(struct conn *c) {
    pthread_mutex_lock(&c->srv->mu);
    size_t n = unread_locked(c);
    pthread_mutex_unlock(&c->srv->mu);
    return n;
}

static size_t on_unread(void *ud, void *conn) {
    (void)ud;
    return unread(conn);
}

/* --------------------------------------------------------- connections -- */

/* Close the socket now; the object stays on the live list (the loop may
** still hold it) until reap drops the socket's reference. */
static void conn_close(struct conn *c) {
    struct lmql_server *S = c->srv;
    if (c->fd < 0) return;
    close(c->fd);
    c->fd = -1;
    pthread_mutex_lock(&S->mu);
    c->open = false;
    pthread_mutex_unlock(&S->mu);
    /* Its streams stop now; the object goes when the engine lets go. */
    if (S->eng) lmql__engine_cancel(S->eng, c, -1);
}

/* Connections whose socket closed leave the live list. */
static void reap(struct lmql_server *S) {
    for (struct conn **pp = &S->live; *pp;) {
        struct conn *c = *pp;
        if (c->fd >= 0) {
            pp = &c->lnext;
            continue;
        }
        *pp = c->lnext;
        S->n_live--;
        LMQL_ASSERT(S->n_live >= 0);
        pthread_mutex_lock(&S->mu);
        lmql__serve_unref_locked(S, c);
        pthread_mutex_unlock(&S->mu);
    }
}

/* Queue a control frame ahead of nothing else: it goes after what is
** already on its way out. */
static void send_control(struct conn *c, int opcode, const void *payload, size_t n) {
    unsigned char h[10];
    size_t hn = lmql__ws_frame_header(h, opcode, n);
    if (lmql__buf_add(&c->tx, h, hn) || lmql__buf_add(&c->tx, payload, n)) {
        pthread_mutex_lock(&c->srv->mu);
        c->broken = true;
        pthread_mutex_unlock(&c->srv->mu);
    }
}

/* Move queued reply frames into tx, each with its header, until tx holds
** `limit` bytes; with the lock held. -1 when out of memory. */
static int take_frames_locked(struct conn *c, size_t limit) {
    LMQL_ASSERT(pthread_mutex_trylock(&c->srv->mu) == EBUSY);   /* the lock is held */
    int rc = 0;
    for (struct lmql__wsframe *f; !rc && c->tx.len < limit && (f = lmql__wsq_pop(&c->out));) {
        size_t len;
        const char *t = lmql__wsframe_text(f, &len);
        unsigned char h[10];
        size_t hn = lmql__ws_frame_header(h, WS_TEXT, len);
        rc = lmql__buf_add(&c->tx, h, hn) || lmql__buf_add(&c->tx, t, len) ? -1 : 0;
        lmql__wsframe_free(f);
    }
    return rc;
}

/* Fail or end the connection with a close frame (code and reason), written
** after the replies already queued; nothing more is read. */
static void close_with(struct conn *c, int code, const char *why) {
    if (c->closing) return;
    unsigned char p[125];
    size_t n = strlen(why);
    if (n > 123) n = 123;
    p[0] = (unsigned char)(code >> 8);
    p[1] = (unsigned char)code;
    memcpy(p + 2, why, n);
    /* Replies the engine queued go first; then the close frame. */
    pthread_mutex_lock(&c->srv->mu);
    if (take_frames_locked(c, SIZE_MAX)) c->broken = true;
    c->open = false;   /* nothing more is queued */
    pthread_mutex_unlock(&c->srv->mu);
    send_control(c, WS_CLOSE, p, n + 2);
    c->closing = true;
    lmql__engine_cancel(c->srv->eng, c, -1);
}

/* An HTTP answer to a request that does not become a WebSocket. */
static void http_refuse(struct conn *c, int status, const char *reason, const char *body) {
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\nConnection: close\r\n%s\r\n",
                     status, reason, strlen(body) + 1, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
    lmql__buf_add(&c->tx, head, (size_t)n);
    lmql__buf_add(&c->tx, body, strlen(body));
    lmql__buf_add(&c->tx, "\n", 1);
    c->closing = true;
}

int lmql__serve_open_conns(struct lmql_server *S) {
    int n = 0;
    for (struct conn *k = S->live; k; k = k->lnext) n += k->fd >= 0 && k->open && !k->closing;
    return n;
}

/* The open connection idle longest with no stream and nothing to send, or
** NULL. */
static struct conn *idlest(struct lmql_server *S, struct conn *except) {
    struct conn *best = NULL;
    for (struct conn *k = S->live; k; k = k->lnext) {
        if (k == except || k->fd < 0 || !k->open || k->closing || k->tx.len > k->tx_off) continue;
        pthread_mutex_lock(&S->mu);
        bool queued = k->out.head != NULL;
        pthread_mutex_unlock(&S->mu);
        if (queued || lmql__engine_streams(S->eng, k)) continue;
        if (!best || k->t_active < best->t_active) best = k;
    }
    return best;
}

/* Close the idlest open connection but `except`, telling it why; false
** when none is idle. */
static bool evict_idlest(struct lmql_server *S, struct conn *except, const char *why) {
    struct conn *old = idlest(S, except);
    if (!old) return false;
    char msg[200];
    snprintf(msg, sizeof msg, "closed: %s and this connection was the idlest", why);
    lmql__serve_reply_error(old, "MSG", -1, msg);
    close_with(old, 1001, "idle connection closed to admit another");
    return true;
}

static void handshake(struct conn *c) {
    struct lmql_server *S = c->srv;
    size_t n = lmql__ws_head_len(c->rx.data, c->rx.len);
    if (n > HEAD_MAX || (!n && c->rx.len > HEAD_MAX)) {
        http_refuse(c, 431, "Request Header Fields Too Large", "request head too large");
        return;
    }
    if (!n) return;
    struct lmql__ws_request rq;
    const char *bad = lmql__ws_parse_request(c->rx.data, n, &rq);
    const char *denied = NULL;
    if (bad) {
        http_refuse(c, !strcmp(bad, "Method Not Allowed") ? 405 : !strcmp(bad, "Bad Request") ? 400 : 505, bad,
                    "this is an LMTP server: connect with a WebSocket");
    } else if (!rq.upgrade && lmql__serve_http(c, &rq)) {
        /* /health or /metrics: answered, and the connection closes */
    } else if (!rq.upgrade) {
        http_refuse(c, 400, "Bad Request", "this is an LMTP server: connect with a WebSocket");
    } else if (!rq.version_13) {
        http_refuse(c, 426, "Upgrade Required", "WebSocket version 13 is required");
    } else if (!rq.key || rq.key_len != 24) {
        http_refuse(c, 400, "Bad Request", "Sec-WebSocket-Key must be 16 bytes in base64");
    } else if ((denied = lmql__serve_admit(S, &rq))) {
        http_refuse(c, 403, "Forbidden", denied);
    } else if (S->draining) {
        http_refuse(c, 503, "Service Unavailable", "the server is draining (shutting down): connect to another server");
        S->refused_draining++;
    }
    if (c->closing) {
        S->refused_handshakes += !c->upgraded && c->tx.len && strncmp(c->tx.data, "HTTP/1.1 200", 12) &&
                                 strncmp(c->tx.data, "HTTP/1.1 503", 12);
        return;
    }
    char accept[29];
    lmql__ws_accept_key(rq.key, rq.key_len, accept);
    char head[256];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Accept: %s\r\n%s\r\n", accept, rq.offers_lmtp ? "Sec-WebSocket-Protocol: lmtp\r\n" : "");
    lmql__buf_add(&c->tx, head, (size_t)hn);
    /* What came after the head is the first frames. */
    memmove(c->rx.data, c->rx.data + n, c->rx.len - n);
    c->rx.len -= n;
    c->t_active = lmql__now();
    /* At the connection limit the idlest connection (no stream, nothing to
    ** send) makes room: idle clients cannot lock out working ones. */
    bool full = lmql__serve_open_conns(S) >= S->p.max_connections;
    if (full && evict_idlest(S, c, "the server is at its connection limit")) {
        lmql__serve_logf(S, "closed the idlest connection to admit a new one (limit %d)", S->p.max_connections);
        full = false;
    }
    c->upgraded = true;
    S->conns_total++;
    pthread_mutex_lock(&S->mu);
    c->open = true;
    pthread_mutex_unlock(&S->mu);
    if (full) {
        char msg[128];
        snprintf(msg, sizeof msg, "too many connections (limit %d); try again later", S->p.max_connections);
        lmql__serve_reply_error(c, "MSG", -1, msg);
        close_with(c, 1013, "too many connections");
    }
}

/* A complete message arrived. */
static void message(struct conn *c) {
    LMQL_ASSERT(c->in_msg && !c->in_frame);   /* the last frame of a message has just ended */
    c->in_msg = false;
    if (c->msg_skip) return;
    if (!lmql__utf8_valid((const unsigned char *)c->msg.data, c->msg.len)) {
        c->srv->protocol_errors++;
        close_with(c, 1007, "a text message must be UTF-8");
        return;
    }
    lmql__serve_command(c, c->msg.data ? c->msg.data : "", c->msg.len);
    c->msg.len = 0;
    if (c->msg.cap > (1u << 20)) lmql__buf_free(&c->msg);   /* do not keep a huge buffer around */
}

static void control(struct conn *c, const struct lmql__ws_hdr *h, unsigned char *p) {
    LMQL_ASSERT(h->opcode >= WS_CLOSE && h->len <= 125 && h->fin);   /* lmql__ws_parse_header refuses others */
    if (h->opcode == WS_PING) {
        send_control(c, WS_PONG, p, h->len);
    } else if (h->opcode == WS_CLOSE) {
        /* Echo the code (RFC 6455 5.5.1); a 1-byte body is malformed. */
        if (h->len == 1) close_with(c, 1002, "a close frame's body is a code and a reason");
        else close_with(c, h->len >= 2 ? (p[0] << 8 | p[1]) : 1000, "");
    }
}

/* Parse what has arrived: frames, or the handshake before them. */
static void parse(struct conn *c) {
    struct lmql_server *S = c->srv;
    if (c->closing) return;
    if (!c->upgraded) {
        handshake(c);
        if (!c->upgraded) return;
    }
    size_t at = 0;
    unsigned char *d = (unsigned char *)c->rx.data;
    c->parse_later = false;
    while (!c->closing && at < c->rx.len) {
        if (!c->in_frame && unread(c) > (size_t)S->p.max_unread) {   /* the rest waits until the client reads */
            c->parse_later = true;
            break;
        }
        if (!c->in_frame) {
            struct lmql__ws_hdr h;
            const char *why = NULL;
            int code;
            int hn = lmql__ws_parse_header(d + at, c->rx.len - at, &h, &why, &code);
            if (hn < 0) {
                lmql__serve_logf(S, "closed a connection that broke the WebSocket protocol: %s", why);
                S->protocol_errors++;
                close_with(c, code, why);
                break;
            }
            if (hn == 0) break;
            if (h.opcode >= WS_CLOSE) {   /* control frames come whole, between a message's frames */
                if (c->rx.len - at < (size_t)hn + h.len) break;
                lmql__ws_unmask(d + at + hn, (size_t)h.len, h.mask, 0);
                control(c, &h, d + at + hn);
                at += (size_t)hn + (size_t)h.len;
                continue;
            }
            at += (size_t)hn;
            if ((h.opcode == WS_CONT) != c->in_msg) {
                close_with(c, 1002, c->in_msg ? "a new message began before the last one ended"
                                              : "a continuation frame with no message to continue");
                break;
            }
            if (h.opcode != WS_CONT) {
                c->in_msg = true;
                c->msg_skip = false;
                c->msg.len = 0;
                if (h.opcode == WS_BINARY) {
                    lmql__serve_reply_error(c, "MSG", -1, "LMTP messages are text frames, not binary");
                    c->msg_skip = true;
                }
            }
            c->fr = h;
            c->fr_got = 0;
            c->in_frame = true;
        }
        /* Payload: as much of the frame as has arrived. */
        LMQL_ASSERT(c->fr_got <= c->fr.len && c->in_msg);
        uint64_t left = c->fr.len - c->fr_got;
        size_t k = c->rx.len - at < left ? c->rx.len - at : (size_t)left;
        if (!c->msg_skip) {
            if (c->msg.len + k > (size_t)S->p.max_frame) {
                char msg[128];
                snprintf(msg, sizeof msg, "message larger than this server's limit of %d bytes", S->p.max_frame);
                lmql__serve_reply_error(c, "MSG", -1, msg);
                c->msg_skip = true;
                lmql__buf_free(&c->msg);
            } else {
                lmql__ws_unmask(d + at, k, c->fr.mask, c->fr_got);
                if (lmql__buf_add(&c->msg, d + at, k)) {
                    lmql__serve_reply_error(c, "MSG", -1, "out of memory");
                    c->msg_skip = true;
                }
            }
        }
        at += k;
        c->fr_got += k;
        if (c->fr_got == c->fr.len) {
            c->in_frame = false;
            if (c->fr.fin) message(c);
        }
    }
    LMQL_ASSERT(at <= c->rx.len);   /* parsed no further than what was read */
    memmove(c->rx.data, c->rx.data + at, c->rx.len - at);
    c->rx.len -= at;
}

static void conn_read(struct conn *c) {
    if (lmql__buf_reserve(&c->rx, READ_CHUNK)) { conn_close(c); return; }
    ssize_t r = recv(c->fd, c->rx.data + c->rx.len, READ_CHUNK, 0);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        conn_close(c);
        return;
    }
    if (r < 0) return;
    if (c->closing) return;   /* nothing more is read from a closing connection */
    c->rx.len += (size_t)r;
    if (c->upgraded) c->t_active = lmql__now();
    parse(c);
    if (c->rx.cap > (4u << 20) && c->rx.len < (1u << 16)) {   /* give back what a burst took */
        struct lmql__buf small = {0};
        if (!lmql__buf_add(&small, c->rx.data, c->rx.len)) {
            lmql__buf_free(&c->rx);
            c->rx = small;
        }
    }
}

/* Write what is queued until the socket takes no more. */
static void conn_write(struct conn *c) {
    struct lmql_server *S = c->srv;
    for (;;) {
        if (c->tx_off == c->tx.len) {
            c->tx.len = c->tx_off = 0;
            pthread_mutex_lock(&S->mu);
            bool oom = take_frames_locked(c, 256u << 10);
            pthread_mutex_unlock(&S->mu);
            if (oom) { conn_close(c); return; }
            if (!c->tx.len) break;
        }
        LMQL_ASSERT(c->tx_off < c->tx.len);
        ssize_t w = send(c->fd, c->tx.data + c->tx_off, c->tx.len - c->tx_off, MSG_NOSIGNAL);
        if (w > 0) {
            c->tx_off += (size_t)w;
            if (c->upgraded) c->t_active = lmql__now();
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            conn_close(c);
            return;
        }
    }
    if (c->tx.cap > (1u << 20)) lmql__buf_free(&c->tx);
    if (c->closing) conn_close(c);
}

/* A client that sends requests but does not read the replies: stop reading
** its requests until it has read most of what is queued. */
static void throttle(struct conn *c) {
    size_t queued = unread(c), cap = (size_t)c->srv->p.max_unread;
    if (!c->throttled && queued > cap) c->throttled = true;
    else if (c->throttled && queued < cap / 2) c->throttled = false;
}

/* The handshake open longest, for at least min_age seconds; *n counts all
** the handshakes open. */
static struct conn *oldest_handshake(struct lmql_server *S, double min_age, int *n) {
    struct conn *old = NULL;
    double now = lmql__now();
    *n = 0;
    for (struct conn *k = S->live; k; k = k->lnext) {
        if (k->fd < 0 || k->upgraded || k->closing) continue;
        ++*n;
        if (now - k->t_start >= min_age && (!old || k->t_start < old->t_start)) old = k;
    }
    return old;
}

static void conn_accept(struct lmql_server *S, int lfd) {
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR) continue;
            if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM) return;
            /* Out of descriptors: a handshake slow for a second makes room (a
            ** newer one has not had its turn to be read yet); else the idlest
            ** connection, and the listeners rest a moment (polling them would spin). */
            int n;
            struct conn *old = oldest_handshake(S, 1.0, &n);
            if (!old) {
                /* The idlest open connection makes room, as at --max-connections. */
                evict_idlest(S, NULL, "the server is out of file descriptors");
                S->accept_pause_until = lmql__now() + 0.1;
                return;
            }
            conn_close(old);
            continue;
        }
        int pending;
        struct conn *old = oldest_handshake(S, 0, &pending);
        if (pending >= PENDING_MAX && old) conn_close(old);
        struct conn *c = lmql__calloc(1, sizeof *c);
        if (!c) { close(fd); return; }
        int one = 1, sndbuf = 256 << 10;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        /* A fixed send buffer: what a client leaves unread is bounded by
        ** --max-unread plus this, not by the kernel's autotuning (up to 4 MiB). */
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
        c->fd = fd;
        c->srv = S;
        c->refs = 1;
        c->t_start = c->t_active = lmql__now();
        pthread_mutex_lock(&S->mu);
        c->next = S->conns;
        if (c->next) c->next->prev = &c->next;
        c->prev = &S->conns;
        S->conns = c;
        S->n_conns++;
        pthread_mutex_unlock(&S->mu);
        c->lnext = S->live;
        S->live = c;
        S->n_live++;
    }
}

/* Handshakes that take too long, and connections idle too long. */
static void timeouts(struct lmql_server *S, double now) {
    for (struct conn *c = S->live; c; c = c->lnext) {
        if (c->fd < 0) continue;
        if (!c->upgraded && !c->closing && now - c->t_start > S->p.handshake_timeout) {
            conn_close(c);
        } else if (c->closing && now - c->t_active > S->p.handshake_timeout) {
            conn_close(c);   /* a client that does not read its close frame */
        } else if (c->open && !c->closing && S->p.idle_timeout > 0 && now - c->t_active > S->p.idle_timeout &&
                   c->tx.len == c->tx_off && !lmql__engine_streams(S->eng, c)) {
            char msg[128];
            snprintf(msg, sizeof msg, "closed: idle for %d s (--idle-timeout)", S->p.idle_timeout);
            lmql__serve_reply_error(c, "MSG", -1, msg);
            close_with(c, 1001, "idle time-out");
        }
    }
}

/* SIGTERM: refuse new connections and streams (/health says 503, so a load
** balancer moves on), let running streams finish until --drain-timeout,
** then end them with an error; stop once nothing is left to send. */
static void drain_step(struct lmql_server *S, double now) {
    if (!S->draining) {
        S->draining = true;
        S->drain_deadline = now + S->p.drain_timeout;
        lmql__serve_logf(S, "draining: new connections and streams are refused; running streams have %d s to finish",
                         S->p.drain_timeout);
    }
    bool busy = lmql__engine_busy(S->eng);
    if (busy && now >= S->drain_deadline && !S->drain_failed) {
        S->drain_failed = true;
        lmql__serve_logf(S, "drain time-out: ending the streams still running");
        lmql__engine_fail_all(S->eng, "the server shut down before this stream finished (--drain-timeout)");
    }
    if (busy) return;
    /* Nothing runs: stop once the last replies are written (or after a
    ** moment more for a client that does not read them). */
    bool pending = false;
    pthread_mutex_lock(&S->mu);
    for (struct conn *c = S->live; c; c = c->lnext)
        pending |= c->fd >= 0 && c->upgraded && (c->tx.len > c->tx_off || c->out.head);
    pthread_mutex_unlock(&S->mu);
    if (!pending || now >= S->drain_deadline + 2) S->stop = 1;
}

/* ----------------------------------------------------------- listening -- */

static int listen_on(struct lmql_server *S, const struct sockaddr *a, socklen_t alen, struct lmql__err *err) {
    int fd = socket(a->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    /* An IPv6 address means that address only, never IPv4 as well. */
    if (a->sa_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, a, alen) || listen(fd, 128)) {
        lmql__errf(err, "%s", strerror(errno));
        close(fd);
        return -1;
    }
    S->lfd[S->n_lfd++] = fd;
    return 0;
}

static void addr_text(const struct sockaddr *a, char *out, size_t cap) {
    char h[INET6_ADDRSTRLEN] = "?";
    int port;
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const void *)a;
        inet_ntop(AF_INET6, &s6->sin6_addr, h, sizeof h);
        port = ntohs(s6->sin6_port);
        snprintf(out, cap, "[%s]:%d", h, port);
    } else {
        const struct sockaddr_in *s4 = (const void *)a;
        inet_ntop(AF_INET, &s4->sin_addr, h, sizeof h);
        port = ntohs(s4->sin_port);
        snprintf(out, cap, "%s:%d", h, port);
    }
}

/* Bind exactly what host names: "localhost" is 127.0.0.1 and ::1; an
** address is that address; a name is each address it resolves to. */
static int bind_host(struct lmql_server *S, const char *host, int port, struct lmql__err *err) {
    const char *names[2] = {host, NULL};
    if (!strcmp(host, "localhost")) { names[0] = "127.0.0.1"; names[1] = "::1"; }
    struct lmql__err why = {.msg = "no address"};
    struct lmql__buf bound = {0};
    for (int k = 0; k < 2 && names[k]; k++) {
        struct addrinfo hints = {0}, *res = NULL;
        hints.ai_socktype = SOCK_STREAM;
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
        char ps[16];
        snprintf(ps, sizeof ps, "%d", S->port > 0 ? S->port : port);
        int g = getaddrinfo(names[k], ps, &hints, &res);
        if (g) { lmql__errf(&why, "%s", gai_strerror(g)); continue; }
        for (struct addrinfo *ai = res; ai && S->n_lfd < 8; ai = ai->ai_next) {
            if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
            if (S->port > 0) {   /* every socket on the port the first one got */
                if (ai->ai_family == AF_INET6) ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port = htons((uint16_t)S->port);
                else ((struct sockaddr_in *)ai->ai_addr)->sin_port = htons((uint16_t)S->port);
            }
            if (listen_on(S, ai->ai_addr, ai->ai_addrlen, &why)) continue;
            struct sockaddr_storage ss;
            socklen_t sl = sizeof ss;
            getsockname(S->lfd[S->n_lfd - 1], (struct sockaddr *)&ss, &sl);
            char t[80];
            addr_text((struct sockaddr *)&ss, t, sizeof t);
            if (S->port <= 0) S->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                                       : ((struct sockaddr_in *)&ss)->sin_port);
            lmql__buf_addf(&bound, "%s%s", bound.len ? " and " : "", t);
        }
        freeaddrinfo(res);
    }
    if (!S->n_lfd) {
        lmql__buf_free(&bound);
        lmql__errf(err, "cannot listen on %s port %d: %s", host, port, why.msg);
        return -1;
    }
    S->bound = bound.data;
    return 0;
}

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
    p->idle_timeout = 300;
    p->handshake_timeout = 10;
    p->max_unread = 8 << 20;
    p->max_queued_bias = 1 << 20;
    p->max_score_tokens = 1 << 16;
    p->drain_timeout = 30;
}

struct lmql_server *lmql_server_open(const struct lmql_server_params *p, char *err, size_t cap) {
    struct lmql_server *S = lmql__calloc(1, sizeof *S);
    struct lmql__kv *kv = NULL;
    struct lmql__err e = {0};
    if (!S) { snprintf(err, cap, "out of memory"); return NULL; }
    S->p = *p;
    S->wake[0] = S->wake[1] = -1;
    pthread_mutex_init(&S->mu, NULL);
    if (!p->model || strncmp(p->model, "llama.cpp:", 10) || !p->model[10]) {
        lmql__errf(&e, "serve-model needs a model as llama.cpp:PATH (a GGUF file), got '%s'", p->model ? p->model : "");
        goto fail;
    }
    if (p->max_connections < 1 || p->max_streams < 1 || p->max_frame < 1024 || p->max_tokens < 1 || p->port < 0 ||
        p->port > 65535 || p->idle_timeout < 0 || p->handshake_timeout < 1 || p->max_unread < 65536 ||
        p->max_queued_bias < 0 || p->max_score_tokens < 1) {
        lmql__errf(&e, "bad server limits: connections, streams, max_tokens and score tokens >= 1, frames >= 1024 "
                 "bytes, unread replies >= 65536 bytes, handshake time-out >= 1 s, idle time-out >= 0 s, port 0..65535");
        goto fail;
    }
    /* Many slow clients each hold a descriptor: use all the process may. */
    struct rlimit rl;
    if (!getrlimit(RLIMIT_NOFILE, &rl) && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    const char *path = p->model + 10;
    char rp[PATH_MAX];
    S->model_id = lmql__strdup(p->model);
    S->real_path = lmql__strdup(realpath(path, rp) ? rp : path);
    kv = lmql__calloc((size_t)p->n_params + 1, sizeof *kv);   /* + use_mmap below */
    struct lmql__buf ctor = {0};
    lmql__buf_adds(&ctor, "Llama(model_path=");
    lmql__buf_json_str(&ctor, S->real_path ? S->real_path : path, strlen(S->real_path ? S->real_path : path));
    for (int i = 0; kv && i < p->n_params; i++) {
        kv[i] = (struct lmql__kv){p->param_keys[i], p->param_values[i]};
        lmql__buf_addf(&ctor, ", %s=%s", p->param_keys[i], p->param_values[i]);
    }
    /* The weights are copied into memory unless --use_mmap true: a mapped
    ** file truncated while serving kills the server (SIGBUS), and one
    ** rewritten in place changes the served weights silently. */
    int n_kv = p->n_params;
    bool mmap_given = false;
    for (int i = 0; i < p->n_params; i++) mmap_given |= !strcmp(p->param_keys[i], "use_mmap");
    if (kv && !mmap_given) kv[n_kv++] = (struct lmql__kv){"use_mmap", "false"};
    lmql__buf_adds(&ctor, ")");
    S->constructor = ctor.data;
    if (!S->model_id || !S->real_path || !kv || !S->constructor) { lmql__errf(&e, "out of memory"); goto fail; }
    if (pipe2(S->wake, O_NONBLOCK | O_CLOEXEC)) { lmql__errf(&e, "cannot make a pipe: %s", strerror(errno)); goto fail; }
    /* The socket before the model: a port in use is reported at once. */
    if (bind_host(S, p->host && *p->host ? p->host : "127.0.0.1", p->port, &e)) goto fail;
    /* The resolved path: a relative one keeps working whatever the cwd. */
    S->m = lmql__llama_open(S->real_path, kv, n_kv, &e);
    if (!S->m) goto fail;
    lmql__vocab_fingerprint(S->m);   /* for MODEL_INFO, before any other thread runs */
    struct lmql__engine_io io = {on_emit, on_wake, on_release, on_unread, S};
    struct lmql__engine_limits lim = {(size_t)p->max_unread, p->max_queued_bias, p->max_score_tokens};
    S->eng = lmql__engine_new(S->m, &io, &lim, p->seed, &e);
    if (!S->eng) goto fail;
    free(kv);
    lmql__serve_logf(S, "%s loaded: %d-token vocabulary, n_ctx=%d shared by %d sequences; listening on %s; limits: "
                     "%d connections, %d streams each, max_tokens %d, idle time-out %d s; Ctrl-C stops",
                     S->real_path, S->m->vocab->n_tokens, S->m->n_ctx, S->m->n_slots, S->bound, p->max_connections,
                     p->max_streams, p->max_tokens, p->idle_timeout);
    return S;
fail:
    snprintf(err, cap, "%s", e.msg);
    free(kv);
    lmql_server_free(S);
    return NULL;
}

int lmql_server_port(const struct lmql_server *S) { return S ? S->port : -1; }

const char *lmql_server_address(const struct lmql_server *S) { return S && S->bound ? S->bound : ""; }

lmql_status lmql_server_run(struct lmql_server *S) {
    if (!S || !S->n_lfd) return LMQL_ERR_MISUSE;
    struct pollfd *pf = NULL;
    struct conn **who = NULL;
    size_t pcap = 0;
    double last_tick = 0;
    lmql_status rc = LMQL_OK;
    while (!S->stop) {
        size_t need = 1 + (size_t)S->n_lfd + (size_t)S->n_live;
        if (need > pcap) {
            size_t nc = need * 2;
            struct pollfd *np = lmql__realloc(pf, nc * sizeof *np);
            if (np) pf = np;
            struct conn **nw = np ? lmql__realloc(who, nc * sizeof *nw) : NULL;
            if (nw) who = nw;
            if (!np || !nw) { rc = LMQL_ERR_NOMEM; break; }
            pcap = nc;
        }
        size_t n = 0;
        pf[n++] = (struct pollfd){S->wake[0], POLLIN, 0};
        bool accepting = lmql__now() >= S->accept_pause_until;
        for (int i = 0; i < S->n_lfd; i++) pf[n++] = (struct pollfd){S->lfd[i], accepting ? POLLIN : 0, 0};
        size_t first = n;
        pthread_mutex_lock(&S->mu);
        for (struct conn *c = S->live; c; c = c->lnext) {
            if (c->fd < 0) continue;
            short ev = 0;
            if (!c->closing && !c->throttled) ev |= POLLIN;
            if (c->tx.len > c->tx_off || c->out.head) ev |= POLLOUT;
            LMQL_ASSERT(n < pcap);   /* sized for every live connection */
            who[n] = c;
            pf[n++] = (struct pollfd){c->fd, ev, 0};
        }
        pthread_mutex_unlock(&S->mu);
        int r = poll(pf, (nfds_t)n, accepting ? 1000 : 100);
        if (r < 0 && errno != EINTR) { rc = LMQL_ERR_RUNTIME; break; }
        if (S->stop) break;
        if (r > 0 && (pf[0].revents & POLLIN)) {
            char b[256];
            while (read(S->wake[0], b, sizeof b) > 0) {}
        }
        for (size_t i = first; i < n; i++) {
            struct conn *c = who[i];
            pthread_mutex_lock(&S->mu);
            bool broken = c->broken;
            pthread_mutex_unlock(&S->mu);
            if (broken) conn_close(c);   /* a reply was lost: see lmql__serve_reply */
            if (c->fd < 0 || r <= 0) continue;
            if (pf[i].revents & (POLLIN | POLLHUP | POLLERR)) conn_read(c);
            if (c->fd >= 0 && (pf[i].revents & POLLOUT || c->tx.len > c->tx_off)) conn_write(c);
            if (c->fd >= 0) throttle(c);
            if (c->fd >= 0 && c->parse_later && !c->throttled) parse(c);
        }
        for (int i = 0; r > 0 && i < S->n_lfd; i++)
            if (pf[1 + i].revents & POLLIN) conn_accept(S, S->lfd[i]);
        double now = lmql__now();
        if (S->drain) drain_step(S, now);
        if (now - last_tick >= 0.5) {
            last_tick = now;
            timeouts(S, now);
        }
        reap(S);
    }
    free(pf);
    free(who);
    return rc;
}

void lmql_server_stop(struct lmql_server *S) {
    if (!S) return;
    S->stop = 1;
    if (S->wake[1] >= 0) wake(S);   /* write(2) is async-signal-safe */
}

void lmql_server_drain(struct lmql_server *S) {
    if (!S) return;
    S->drain = 1;
    if (S->wake[1] >= 0) wake(S);   /* write(2) is async-signal-safe */
}

void lmql_server_free(struct lmql_server *S) {
    if (!S) return;
    for (struct conn *c = S->live; c; c = c->lnext) conn_close(c);   /* their streams are cancelled */
    reap(S);
    lmql__engine_free(S->eng);
    while (S->conns) {   /* nothing refers to them any more */
        S->conns->refs = 1;
        lmql__serve_unref_locked(S, S->conns);
    }
    for (int i = 0; i < S->n_lfd; i++) close(S->lfd[i]);
    if (S->wake[0] >= 0) close(S->wake[0]);
    if (S->wake[1] >= 0) close(S->wake[1]);
    lmql__model_free(S->m);
    pthread_mutex_destroy(&S->mu);
    free(S->model_id);
    free(S->real_path);
    free(S->constructor);
    free(S->bound);
    free(S);
}
