/*
** The LMTP commands of `lmql serve-model` (MODEL_INFO, VOCAB, TOKENIZE,
** CANCEL, and GENERATE/SCORE handed to the engine) and who may connect.
*/
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve_int.h"

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

/* The reply in b, or nothing when it could not be written (out of memory). */
static void reply(struct conn *c, struct lmql__buf *b, int rc) {
    if (!rc) lmql__serve_reply_buf(c, b);
    lmql__buf_free(b);
}

static void model_info(struct conn *c, const struct lmql__lmtp_cmd *cmd) {
    struct lmql_server *S = c->srv;
    struct lmql__buf b = {0};
    /* vocab_hash: a client that reads the vocabulary from its own copy of
    ** the GGUF checks that it is the one served (lmql__vocab_fingerprint,
    ** computed at open). */
    struct lmql__lmtp_info info = {S->real_path, S->constructor, "lmql-c " LMQL_VERSION, S->m->vocab->n_tokens,
                                   S->m->n_ctx, S->m->n_slots, S->m->vocab->fingerprint, S->m->chat_template};
    reply(c, &b, lmql__lmtp_model_info(&b, cmd->has_stream_id ? cmd->stream_id : -1, &info));
}

/* Extension: the vocabulary, so a client without the GGUF tokenizes
** nothing wrong. */
static void vocab_reply(struct conn *c, const struct lmql__lmtp_cmd *cmd) {
    const struct lmql__vocab *v = c->srv->m->vocab;
    struct lmql__buf b = {0};
    struct lmql__lmtp_vocab lv = {v->n_tokens, v->bos, v->eos, v->add_bos, v->eog, v->n_eog, v->bytes, v->off};
    reply(c, &b, lmql__lmtp_vocab(&b, cmd->stream_id, &lv));
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
        lmql__serve_reply_error(c, "MSG", cmd->stream_id, msg);
        return;
    }
    int32_t (*tokenize)(struct lmql__model *, const char *, size_t, bool, bool, int32_t *, int32_t, struct lmql__err *) =
        cmd->special ? m->ops->tokenize_special : m->ops->tokenize;
    if (!tokenize) {
        lmql__serve_reply_error(c, "MSG", cmd->stream_id, "this model tokenizes no special tokens");
        return;
    }
    int32_t cap = (int32_t)(cmd->text_len + 8), *t = lmql__malloc((size_t)cap * sizeof *t);
    int32_t n = t ? tokenize(m, cmd->text, cmd->text_len, cmd->bos, cmd->cont, t, cap, &err) : INT32_MIN;
    if (n < 0 && n != INT32_MIN) {   /* more tokens than bytes: the size it asked for */
        int32_t *more = lmql__realloc(t, (size_t)(-n) * sizeof *t);
        if (more) t = more;
        n = more ? tokenize(m, cmd->text, cmd->text_len, cmd->bos, cmd->cont, t, -n, &err) : INT32_MIN;
    }
    if (n < 0) {
        lmql__serve_reply_error(c, "MSG", cmd->stream_id, t && err.msg[0] ? err.msg : "the text could not be tokenized");
        free(t);
        return;
    }
    struct lmql__buf b = {0};
    reply(c, &b, lmql__lmtp_tokens(&b, cmd->stream_id, t, n));
    free(t);
}

void lmql__serve_command(struct conn *c, const char *text, size_t len) {
    struct lmql_server *S = c->srv;
    struct lmql__lmtp_cmd cmd;
    struct lmql__err err = {0};
    /* Arrays beyond these cannot be valid (a prompt longer than the context,
    ** a bias over more tokens than the vocabulary has): refuse them early. */
    int32_t cap = S->m->vocab->n_tokens > S->m->n_ctx ? S->m->vocab->n_tokens : S->m->n_ctx;
    int rc = lmql__lmtp_parse(text, len, cap + 1, &cmd, &err);
    bool stream_cmd = cmd.kind == LMTP_GENERATE || cmd.kind == LMTP_SCORE;
    /* LMQL's client reads stream errors from TOKEN replies only. */
    const char *word = rc == 0 || cmd.has_stream_id ? (stream_cmd ? "TOKEN" : "MSG") : "MSG";
    if (rc) {
        lmql__serve_reply_error(c, word, cmd.has_stream_id ? cmd.stream_id : -1, err.msg);
        lmql__lmtp_cmd_free(&cmd);
        S->cmd_err[LMTP_UNKNOWN + 1]++;
        return;
    }
    /* Counted as answered here unless it goes to the engine, which counts
    ** how its streams end. */
    bool failed = true, submitted = false;
    if ((stream_cmd || cmd.kind == LMTP_CANCEL || cmd.kind == LMTP_VOCAB || cmd.kind == LMTP_TOKENIZE) &&
        !cmd.has_stream_id) {
        lmql__serve_reply_error(c, word, -1, "'stream_id' is required");
    } else if (!same_model(S, cmd.model)) {
        lmql__errf(&err, "this server serves '%s', not '%.300s' (start an lmql serve-model for that one)",
                 S->model_id, cmd.model);
        lmql__serve_reply_error(c, word, cmd.stream_id, err.msg);
    } else if (cmd.kind == LMTP_MODEL_INFO) {
        model_info(c, &cmd);
        failed = false;
    } else if (cmd.kind == LMTP_VOCAB) {
        vocab_reply(c, &cmd);
        failed = false;
    } else if (cmd.kind == LMTP_TOKENIZE) {
        tokenize_reply(c, &cmd);
        failed = false;
    } else if (cmd.kind == LMTP_CANCEL) {
        int n = lmql__engine_cancel(S->eng, c, cmd.stream_id);
        struct lmql__buf b = {0};
        reply(c, &b, lmql__lmtp_cancelled(&b, cmd.stream_id, n));
        failed = false;
    } else if (cmd.kind == LMTP_UNKNOWN) {
        lmql__serve_reply_error(c, word, cmd.stream_id, "unknown command");
    } else if (S->draining) {
        /* SIGTERM: running streams finish, new ones go elsewhere. */
        lmql__serve_reply_error(c, word, cmd.stream_id, "the server is draining (shutting down): send the request "
                                "to another server");
        S->refused_draining++;
    } else if (lmql__engine_streams(S->eng, c) >= S->p.max_streams) {
        lmql__errf(&err, "too many streams on this connection (limit %d)", S->p.max_streams);
        lmql__serve_reply_error(c, word, cmd.stream_id, err.msg);
    } else {
        /* LMQL's client sends a constraint's token bound as max_tokens, uncapped:
        ** the stream ends with "length" at the limit and the client asks again. */
        if (cmd.max_tokens > S->p.max_tokens) cmd.max_tokens = S->p.max_tokens;
        pthread_mutex_lock(&S->mu);
        c->refs++;
        pthread_mutex_unlock(&S->mu);
        if (lmql__engine_submit(S->eng, c, &cmd, &err)) {
            pthread_mutex_lock(&S->mu);
            lmql__serve_unref_locked(S, c);
            pthread_mutex_unlock(&S->mu);
            lmql__serve_reply_error(c, word, cmd.stream_id, err.msg);
        } else {
            submitted = true;
        }
    }
    if (!submitted) {
        int k = cmd.kind >= 0 && cmd.kind <= LMTP_UNKNOWN ? (int)cmd.kind : LMTP_UNKNOWN;
        if (failed) S->cmd_err[k]++;
        else S->cmd_ok[k]++;
    }
    lmql__lmtp_cmd_free(&cmd);
}

/* ----------------------------------------------------------- handshake -- */

/* Browsers send the page's origin; a page on this machine may connect. */
static bool local_origin(const char *o, size_t n) {
    static const char *const schemes[] = {"http://", "https://"};
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (int s = 0; s < 2; s++) {
        size_t sn = strlen(schemes[s]);
        if (n < sn || strncmp(o, schemes[s], sn)) continue;
        const char *h = o + sn;
        size_t hn = n - sn;
        for (int i = 0; i < 3; i++) {
            size_t k = strlen(hosts[i]);
            if (hn >= k && !memcmp(h, hosts[i], k) && (hn == k || h[k] == ':' || h[k] == '/')) {
                /* What follows the host is a port (digits) and nothing else. */
                size_t j = k;
                if (j < hn && h[j] == ':') {
                    j++;
                    while (j < hn && h[j] >= '0' && h[j] <= '9') j++;
                }
                return j == hn || h[j] == '/';
            }
        }
    }
    return false;
}

static bool origin_allowed(struct lmql_server *S, const char *o, size_t on) {
    if (local_origin(o, on)) return true;
    const char *list = S->p.allow_origin;
    if (!list) return false;
    while (*list) {
        size_t n = strcspn(list, ",");
        const char *e = list + n;
        while (list < e && *list == ' ') list++;
        size_t k = (size_t)(e - list);
        while (k && list[k - 1] == ' ') k--;
        if ((k == 1 && list[0] == '*') || (k == on && !memcmp(list, o, k))) return true;
        list = *e ? e + 1 : e;
    }
    return false;
}

bool lmql__serve_origin_ok(struct lmql_server *S, const struct lmql__ws_request *rq) {
    return !rq->origin || origin_allowed(S, rq->origin, rq->origin_len);
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The token of ?token=... in the request target, percent-decoded into out;
** false when there is none or it does not fit. */
static bool url_token(const struct lmql__ws_request *rq, char *out, size_t cap) {
    const char *q = memchr(rq->target, '?', rq->target_len), *end = rq->target + rq->target_len;
    while (q && q < end) {
        q++;
        const char *amp = memchr(q, '&', (size_t)(end - q)), *ae = amp ? amp : end;
        if (ae - q >= 6 && !memcmp(q, "token=", 6)) {
            size_t o = 0;
            for (const char *v = q + 6; v < ae; v++) {
                int c = (unsigned char)*v;
                if (c == '%' && ae - v >= 3 && hexval(v[1]) >= 0 && hexval(v[2]) >= 0) {
                    c = hexval(v[1]) * 16 + hexval(v[2]);
                    v += 2;
                } else if (c == '+') {
                    c = ' ';
                }
                if (o + 1 >= cap) return false;
                out[o++] = (char)c;
            }
            out[o] = 0;
            return true;
        }
        q = amp;
    }
    return false;
}

/* Compare every byte whatever the first difference: no timing hint. */
static bool same_secret(const char *t, size_t a, const char *want) {
    size_t b = strlen(want);
    unsigned diff = a != b;
    for (size_t i = 0; i < b; i++) diff |= (unsigned)((i < a ? (unsigned char)t[i] : 0) ^ (unsigned char)want[i]);
    return !diff;
}

bool lmql__serve_token_ok(struct lmql_server *S, const struct lmql__ws_request *rq) {
    if (!S->p.token) return true;
    /* Authorization: Bearer T; else ?token=T; else the bare header. */
    if (rq->auth && rq->auth_len > 7 && !strncmp(rq->auth, "Bearer ", 7))
        return same_secret(rq->auth + 7, rq->auth_len - 7, S->p.token);
    char arg[1024];
    if (url_token(rq, arg, sizeof arg)) return same_secret(arg, strlen(arg), S->p.token);
    return rq->auth && same_secret(rq->auth, rq->auth_len, S->p.token);
}

const char *lmql__serve_admit(struct lmql_server *S, const struct lmql__ws_request *rq) {
    if (rq->origin && !origin_allowed(S, rq->origin, rq->origin_len)) {
        lmql__serve_logf(S, "refused a connection from origin %.*s (allow it with --allow-origin)",
                         (int)(rq->origin_len > 200 ? 200 : rq->origin_len), rq->origin);
        return "origin not allowed (see --allow-origin)";
    }
    if (!lmql__serve_token_ok(S, rq)) {
        lmql__serve_logf(S, "refused a connection without the right token");
        return "a valid token is required";
    }
    return NULL;
}
