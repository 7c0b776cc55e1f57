/*
** `llama.cpp:PATH`: a model served by `lmql serve-model` (or any LMTP
** server), reached over WebSocket.
**
** Masks go to the server as logit_bias, as LMQL's client sends them: +100
** on the allowed tokens when they are fewer than half the vocabulary, -100
** on the others otherwise. Each GENERATE asks for a chunk of tokens (LMQL's
** `chunksize`, 16): the next steps are answered from that stream while the
** sequence follows it under the same mask, so a run costs one request per
** chunk, not per token. A stream that is left is cancelled (an extension
** of ours; other servers answer it with an error, which is ignored).
**
** The vocabulary: from the GGUF at PATH when this machine has it, else
** from the server (VOCAB and TOKENIZE extensions). No tokenizer is ever
** guessed.
*/
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmtp.h"
#include "lmtp_conn.h"
#include "model.h"

#define LMTP_SLOTS   64
#define LMTP_TOP     5        /* top_logprobs asked for: the choices a client-side sampler sees */
#define LMTP_TIMEOUT 300000   /* ms without any reply before giving up */
struct rstream {
    int64_t id;
    int32_t *prompt;
    int32_t n_prompt;
    uint64_t key;               /* stream_key() of the request that started it */
    int32_t max_tokens;
    int32_t *tok;               /* received, position by position */
    float *lp;                  /* LMTP_TOP + 1 per position: the top list's logprobs */
    int32_t *top;               /* LMTP_TOP + 1 ids per position (-1 past the end) */
    int32_t n_recv, cap;
    bool finished;
    bool sampled;               /* the server drew its tokens (temperature > 0) */
    int32_t served;             /* positions handed out: a draw is handed out once */
    char *error;
};

struct lmtp {
    struct lmql__model base;
    struct lmql__model *local;  /* vocab-only model of the local GGUF, or NULL */
    struct lmql__lmtp_conn *conn;
    char *endpoint, *token;
    char **eps;                 /* endpoint=["h1:p", "h2:p"]: the servers to try, in order */
    int n_eps, ep_at;           /* how many; the one connected (or tried last) */
    int chunk;
    int64_t next_id;
    struct rstream *slot[LMTP_SLOTS];
    struct rstream *scoring;    /* the SCORE stream being read */
    float *dist[LMTP_SLOTS];
    struct lmql__buf out;
    char *chat_template;        /* base.chat_template when it is not the local model's */
};

/* Where errors come from: "the model server at HOST:PORT". */
#define SRV "the model server at %s"
#define WHERE(m) lmql__lmtp_where((m)->conn)

static const char *clean(const char *s, char *buf, size_t cap) { return lmql__lmtp_clean(s, buf, cap); }

static void stream_free(struct rstream *s) {
    if (!s) return;
    free(s->prompt);
    free(s->tok);
    free(s->lp);
    free(s->top);
    free(s->error);
    free(s);
}

static struct rstream *find_stream(struct lmtp *m, int64_t id) {
    for (int i = 0; i < LMTP_SLOTS; i++)
        if (m->slot[i] && m->slot[i]->id == id) return m->slot[i];
    if (m->scoring && m->scoring->id == id) return m->scoring;
    return NULL;
}

/* One TOKEN payload into its stream. */
static void take_token(struct lmtp *m, const struct lmql__lmtp_reply *r, size_t i) {
    struct lmql__lmtp_token_reply t;
    lmql__lmtp_read_token(r, i, m->base.vocab->n_tokens, LMTP_TOP, &t);
    LMQL_ASSERT(t.n_top >= 0 && t.n_top <= LMTP_TOP);   /* at most max_top kept: they fit LMTP_TOP + 1 */
    if (t.stream_id < 0) return;
    struct rstream *s = find_stream(m, t.stream_id);
    if (!s || s->finished) return;
    if (t.has_error) {
        s->error = lmql__strdup(t.error);
        s->finished = true;
        return;
    }
    if (!t.has_token) {
        /* A stream that ends without a usable token still ends. */
        if (!t.finished) s->error = lmql__strdup("the server sent a token outside the vocabulary");
        s->finished = true;
        return;
    }
    if (s->n_recv == s->cap) {
        int32_t c = s->cap ? s->cap * 2 : 16;
        int32_t *tk = lmql__realloc(s->tok, (size_t)c * sizeof *tk);
        if (tk) s->tok = tk;
        float *l = lmql__realloc(s->lp, (size_t)c * (LMTP_TOP + 1) * sizeof *l);
        if (l) s->lp = l;
        int32_t *tp = lmql__realloc(s->top, (size_t)c * (LMTP_TOP + 1) * sizeof *tp);
        if (tp) s->top = tp;
        if (!tk || !l || !tp) { s->error = lmql__strdup("out of memory"); s->finished = true; return; }
        s->cap = c;
    }
    int32_t at = s->n_recv++;
    s->tok[at] = t.token;
    int32_t *top = s->top + (size_t)at * (LMTP_TOP + 1);
    float *lp = s->lp + (size_t)at * (LMTP_TOP + 1);
    int k = 0;
    top[k] = t.token;
    lp[k++] = (float)t.logprob;
    for (int q = 0; q < t.n_top; q++, k++) {
        top[k] = t.top[q];
        lp[k] = t.top_lp[q];
    }
    for (; k < LMTP_TOP + 1; k++) top[k] = -1;
    if (t.finished) s->finished = true;
}

/* Read one message (waiting up to the timeout) and file it. A message that
** is not TOKEN goes to *msg_out when given (else it is dropped); msg_out->list
** is NULL when there was none. */
static int pump(struct lmtp *m, struct lmql__lmtp_reply *msg_out, struct lmql__err *err) {
    if (msg_out) memset(msg_out, 0, sizeof *msg_out);
    char *text;
    size_t len;
    int rc = lmql__lmtp_recv(m->conn, &text, &len, LMTP_TIMEOUT, err);
    if (rc < 0) return -1;
    if (rc == 0) return lmql__errf(err, SRV " sent nothing for %d s", WHERE(m), LMTP_TIMEOUT / 1000);
    struct lmql__lmtp_reply r;
    struct lmql__err why;
    rc = lmql__lmtp_read_reply(text, len, &r, &why);
    free(text);
    if (rc) return lmql__errf(err, SRV " %s", WHERE(m), why.msg);
    for (size_t i = 0; r.token && i < r.n; i++) take_token(m, &r, i);
    /* Other servers answer a failed GENERATE/SCORE with a MSG error: it ends the stream. */
    for (size_t i = 0; !r.token && i < r.n; i++) {
        int64_t id = lmql__lmtp_read_stream(&r, i);
        struct rstream *s = id >= 0 ? find_stream(m, id) : NULL;
        char e[512];
        if (s && !s->finished && lmql__lmtp_read_error(&r, i, e, sizeof e)) {
            s->error = lmql__strdup(e);
            s->finished = true;
        }
    }
    if (!r.token && msg_out) *msg_out = r;
    else lmql__lmtp_reply_free(&r);
    return 0;
}

/* A MSG reply to a request of ours (VOCAB, TOKENIZE): the first payload
** with that stream id, as *r (freed by the caller) and its index *at.
** A payload with an error is -1, with *refused set. */
static int await_msg(struct lmtp *m, int64_t id, struct lmql__lmtp_reply *r, size_t *at, bool *refused,
                     struct lmql__err *err) {
    if (refused) *refused = false;
    for (;;) {
        if (pump(m, r, err)) return -1;
        for (size_t i = 0; i < r->n; i++) {
            if (lmql__lmtp_read_stream(r, i) != id) continue;
            char shown[512];
            if (lmql__lmtp_read_error(r, i, shown, sizeof shown)) {
                if (refused) *refused = true;
                lmql__errf(err, SRV ": %s", WHERE(m), shown);
                lmql__lmtp_reply_free(r);
                return -1;
            }
            *at = i;
            return 0;
        }
        lmql__lmtp_reply_free(r);
    }
}

static int send_buf(struct lmtp *m, struct lmql__err *err) {
    int rc = lmql__lmtp_send(m->conn, m->out.data, m->out.len, err);
    m->out.len = 0;
    return rc;
}

/* A command that names only its stream and the model (CANCEL, VOCAB, MODEL_INFO). */
static int send_cmd(struct lmtp *m, enum lmql__lmtp_kind kind, int64_t id, struct lmql__err *err) {
    struct lmql__lmtp_cmd c = {.kind = kind, .stream_id = id, .has_stream_id = true, .model = m->base.id};
    if (lmql__lmtp_request(&m->out, &c)) { m->out.len = 0; return lmql__errf(err, "out of memory"); }
    return send_buf(m, err);
}

static void cancel(struct lmtp *m, int slot) {
    struct rstream *s = m->slot[slot];
    if (!s) return;
    if (!s->finished) {
        struct lmql__err err;
        send_cmd(m, LMTP_CANCEL, s->id, &err);
    }
    stream_free(s);
    m->slot[slot] = NULL;
}

/* What a chunk was generated under: the mask and, for a sampled one, the
** sampling parameters (a sampled chunk cannot answer an argmax step). */
static uint64_t stream_key(const struct lmql__eval_req *q, int32_t n) {
    /* Every step asks this: eight mask bytes per multiply, not one. */
    uint64_t h = 1469598103934665603ull;
    int32_t i = 0;
    for (; q->mask && i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, q->mask + i, 8);
        h = (h ^ w) * 1099511628211ull;
    }
    for (; q->mask && i < n; i++) h = (h ^ q->mask[i]) * 1099511628211ull;
    if (q->sampling) {
        const struct lmql__sampling *sp = q->sampling;
        double v[3] = {sp->temperature, (double)sp->top_k, sp->top_p};
        const unsigned char *b = (const unsigned char *)v;
        for (size_t k = 0; k < sizeof v; k++) h = (h ^ b[k]) * 1099511628211ull;
    }
    return h;
}

/* Connect to the first of the endpoints, from the `from`-th on, that
** answers; the error names each one tried. */
static int connect_any(struct lmtp *m, int from, struct lmql__err *err) {
    struct lmql__buf why = {0};
    for (int k = 0; k < m->n_eps; k++) {
        int i = (from + k) % m->n_eps;
        struct lmql__err e = {0};
        m->conn = lmql__lmtp_connect(m->eps[i], m->token, 10000, &e);
        if (m->conn) {
            m->ep_at = i;
            lmql__buf_free(&why);
            return 0;
        }
        lmql__buf_addf(&why, "%s%s", why.len ? "; " : "", e.msg);
    }
    if (m->n_eps > 1) lmql__errf(err, "none of the %d model servers answered: %s", m->n_eps, why.data ? why.data : "");
    else lmql__errf(err, "%s", why.data ? why.data : "no endpoint");
    lmql__buf_free(&why);
    return -1;
}

/* Before a new request: a connection found closed while no request of ours
** is unanswered moves on to the next endpoint of the list (nothing is lost:
** no stream was running there). */
static int ensure_conn(struct lmtp *m, struct lmql__err *err) {
    if (m->n_eps < 2 || !lmql__lmtp_closed(m->conn)) return 0;
    if (m->scoring && !m->scoring->finished) return 0;   /* its request fails with the connection's error */
    for (int i = 0; i < LMTP_SLOTS; i++)
        if (m->slot[i] && !m->slot[i]->finished) return 0;
    lmql__lmtp_close(m->conn);
    m->conn = NULL;
    return connect_any(m, m->ep_at + 1, err);
}

static int start(struct lmtp *m, int slot, const struct lmql__eval_req *q, uint64_t key, struct lmql__err *err) {
    cancel(m, slot);
    if (ensure_conn(m, err)) return -1;
    struct rstream *s = lmql__calloc(1, sizeof *s);
    if (!s || !(s->prompt = lmql__malloc((size_t)q->n_tokens * sizeof *s->prompt))) {
        free(s);
        return lmql__errf(err, "out of memory");
    }
    s->id = ++m->next_id;
    memcpy(s->prompt, q->tokens, (size_t)q->n_tokens * sizeof *s->prompt);
    s->n_prompt = q->n_tokens;
    s->key = key;
    s->max_tokens = m->chunk;
    m->slot[slot] = s;
    s->sampled = q->sampling != NULL;
    struct lmql__lmtp_cmd c = {.kind = LMTP_GENERATE, .stream_id = s->id, .has_stream_id = true, .model = m->base.id,
                               .prompt = (int32_t *)q->tokens, .n_prompt = q->n_tokens, .max_tokens = m->chunk,
                               .top_logprobs = LMTP_TOP, .top_p = 1};
    if (q->sampling) {
        c.temperature = q->sampling->temperature;
        c.top_k = q->sampling->top_k > 0 ? q->sampling->top_k : 0;
        c.top_p = q->sampling->top_p;
    }
    if (q->mask) {
        int32_t nv = m->base.vocab->n_tokens, allowed = 0;
        for (int32_t t = 0; t < nv; t++) allowed += q->mask[t] != 0;
        bool plus = allowed < nv / 2;
        if (!(c.bias = lmql__malloc((size_t)(plus ? allowed : nv - allowed) * sizeof *c.bias + 1)))
            return lmql__errf(err, "out of memory");
        for (int32_t t = 0; t < nv; t++)
            if ((q->mask[t] != 0) == plus) c.bias[c.n_bias++] = (struct lmql__lmtp_bias){t, plus ? 100.0f : -100.0f};
        LMQL_ASSERT(c.n_bias == (plus ? allowed : nv - allowed));   /* as many as were counted */
    }
    int rc = lmql__lmtp_request(&m->out, &c);
    free(c.bias);
    if (rc) { m->out.len = 0; return lmql__errf(err, "out of memory"); }
    m->base.stats.n_calls++;   /* a request is this model's forward pass */
    return send_buf(m, err);
}

/* Does stream s, as far as it went (or may still go), continue q? */
static bool follows(const struct rstream *s, const struct lmql__eval_req *q, uint64_t key) {
    if (!s || s->error || s->key != key || q->n_tokens < s->n_prompt) return false;
    int32_t j = q->n_tokens - s->n_prompt;
    if (j >= s->max_tokens || (s->finished && j >= s->n_recv)) return false;
    if (s->sampled && j < s->served) return false;   /* that draw was used: a new one is due */
    if (memcmp(q->tokens, s->prompt, (size_t)s->n_prompt * sizeof *q->tokens)) return false;
    for (int32_t i = 0; i < j; i++)
        if (i >= s->n_recv || q->tokens[s->n_prompt + i] != s->tok[i]) return false;
    return true;
}

static int lmtp_next_logprobs(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs,
                              const float **out, struct lmql__err *err) {
    struct lmtp *m = (struct lmtp *)base;
    int32_t nv = base->vocab->n_tokens;
    for (int r = 0; r < n_req; r++) {
        const struct lmql__eval_req *q = &reqs[r];
        if (q->slot < 0 || q->slot >= LMTP_SLOTS) return lmql__errf(err, "sequence slot %d out of range", q->slot);
        uint64_t key = stream_key(q, nv);
        if (!follows(m->slot[q->slot], q, key) && start(m, q->slot, q, key, err)) return -1;
    }
    for (int r = 0; r < n_req; r++) {
        const struct lmql__eval_req *q = &reqs[r];
        struct rstream *s = m->slot[q->slot];
        /* The first pass left a stream in every slot asked for, whose prompt the request continues. */
        LMQL_ASSERT(s != NULL && q->n_tokens >= s->n_prompt);
        int32_t j = q->n_tokens - s->n_prompt;
        while (s->n_recv <= j && !s->finished)
            if (pump(m, NULL, err)) return -1;
        /* An error that came after this position's token concerns a later one. */
        char shown[512];
        if (s->n_recv <= j && s->error) return lmql__errf(err, SRV ": %s", WHERE(m), clean(s->error, shown, sizeof shown));
        if (s->n_recv <= j) {   /* ended early: ask again from here */
            if (start(m, q->slot, q, stream_key(q, nv), err)) return -1;
            r--;
            continue;
        }
        if (j + 1 > s->served) s->served = j + 1;
        float *d = m->dist[q->slot];
        if (!d && !(d = m->dist[q->slot] = lmql__malloc((size_t)nv * sizeof *d))) return lmql__errf(err, "out of memory");
        for (int32_t t = 0; t < nv; t++) d[t] = -INFINITY;
        const int32_t *top = s->top + (size_t)j * (LMTP_TOP + 1);
        const float *lp = s->lp + (size_t)j * (LMTP_TOP + 1);
        /* A drawn token is the decoder's only choice (it would draw again
        ** otherwise); an argmax step sees the server's top tokens. */
        for (int k = 0; k < (s->sampled ? 1 : LMTP_TOP + 1) && top[k] >= 0; k++)
            if (top[k] < nv) d[top[k]] = lp[k];
        out[r] = d;
    }
    return 0;
}

static int lmtp_score(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs, const int32_t *from,
                      float **scores, struct lmql__err *err) {
    struct lmtp *m = (struct lmtp *)base;
    if (ensure_conn(m, err)) return -1;
    for (int r = 0; r < n_req; r++) {
        const struct lmql__eval_req *q = &reqs[r];
        if (from[r] < 1 || from[r] > q->n_tokens) return lmql__errf(err, "scored tokens need a prefix");
        if (from[r] == q->n_tokens) continue;
        struct rstream *s = lmql__calloc(1, sizeof *s);
        if (!s) return lmql__errf(err, "out of memory");
        s->id = ++m->next_id;
        m->scoring = s;
        struct lmql__lmtp_cmd c = {.kind = LMTP_SCORE, .stream_id = s->id, .has_stream_id = true, .model = base->id,
                                   .prompt = (int32_t *)q->tokens, .n_prompt = from[r],
                                   .scored = (int32_t *)q->tokens + from[r], .n_scored = q->n_tokens - from[r]};
        base->stats.n_calls++;
        int rc = lmql__lmtp_request(&m->out, &c) ? (m->out.len = 0, lmql__errf(err, "out of memory")) : send_buf(m, err);
        while (rc == 0 && !s->finished) rc = pump(m, NULL, err);
        char shown[512];
        if (rc == 0 && s->error) rc = lmql__errf(err, SRV ": %s", WHERE(m), clean(s->error, shown, sizeof shown));
        if (rc == 0 && s->n_recv != q->n_tokens - from[r])
            rc = lmql__errf(err, SRV " scored %d tokens of %d", WHERE(m), s->n_recv, q->n_tokens - from[r]);
        for (int32_t i = 0; rc == 0 && i < s->n_recv; i++) scores[r][i] = s->lp[(size_t)i * (LMTP_TOP + 1)];
        m->scoring = NULL;
        stream_free(s);
        if (rc) return -1;
    }
    return 0;
}

static int32_t remote_tokenize(struct lmtp *m, const char *text, size_t len, bool bos, bool cont, bool special,
                               int32_t *out, int32_t cap, struct lmql__err *err) {
    struct lmql__model *base = &m->base;
    int64_t id = ++m->next_id;
    struct lmql__lmtp_cmd c = {.kind = LMTP_TOKENIZE, .stream_id = id, .has_stream_id = true, .text = (char *)text,
                               .text_len = len, .bos = bos, .cont = cont, .special = special};
    if (lmql__lmtp_request(&m->out, &c)) { m->out.len = 0; lmql__errf(err, "out of memory"); return INT32_MIN; }
    if (send_buf(m, err)) return INT32_MIN;
    struct lmql__lmtp_reply r;
    size_t at;
    if (await_msg(m, id, &r, &at, NULL, err)) return INT32_MIN;
    struct lmql__err why;
    int32_t n = lmql__lmtp_read_tokens(&r, at, base->vocab->n_tokens, out, cap, &why);
    lmql__lmtp_reply_free(&r);
    if (n == INT32_MIN) lmql__errf(err, SRV " %s", WHERE(m), why.msg);
    return n;
}

static int32_t lmtp_tokenize(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                             int32_t *out, int32_t cap, struct lmql__err *err) {
    struct lmtp *m = (struct lmtp *)base;
    if (m->local) return m->local->ops->tokenize(m->local, text, len, bos, cont, out, cap, err);
    return remote_tokenize(m, text, len, bos, cont, false, out, cap, err);
}

/* Chat template text, special tokens parsed: by the local copy of the
** model, else by the server (TOKENIZE's "special"). */
static int32_t lmtp_tokenize_special(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                                     int32_t *out, int32_t cap, struct lmql__err *err) {
    struct lmtp *m = (struct lmtp *)base;
    if (m->local) return m->local->ops->tokenize_special(m->local, text, len, bos, cont, out, cap, err);
    return remote_tokenize(m, text, len, bos, cont, true, out, cap, err);
}

static void lmtp_slot_copy(struct lmql__model *base, int src, int dst) { (void)base; (void)src; (void)dst; }

static void lmtp_slot_drop(struct lmql__model *base, int slot) {
    if (slot >= 0 && slot < LMTP_SLOTS) cancel((struct lmtp *)base, slot);
}

static void lmtp_free(struct lmql__model *base) {
    struct lmtp *m = (struct lmtp *)base;
    for (int i = 0; i < LMTP_SLOTS; i++) {
        if (m->conn) cancel(m, i);
        free(m->dist[i]);
    }
    lmql__lmtp_close(m->conn);
    lmql__vocab_unref(base->vocab);
    lmql__model_free(m->local);
    lmql__buf_free(&m->out);
    free(m->endpoint);
    for (int i = 0; i < m->n_eps; i++) free(m->eps[i]);
    free(m->eps);
    free(m->token);
    free(base->id);
    free(m->chat_template);
    free(m);
}

static const struct lmql__model_ops lmtp_ops = {
    .free = lmtp_free,
    .tokenize = lmtp_tokenize,
    .next_logprobs = lmtp_next_logprobs,
    .score = lmtp_score,
    .slot_copy = lmtp_slot_copy,
    .slot_drop = lmtp_slot_drop,
    .tokenize_special = lmtp_tokenize_special,
};

/* The vocabulary from the server (VOCAB extension). `why_not_local` says
** why the GGUF at PATH was not used, for the error when the server has no
** VOCAB either. Everything is checked (lmql__lmtp_read_vocab): the server
** may be broken or hostile. */
static int remote_vocab(struct lmtp *m, const char *why_not_local, struct lmql__err *err) {
    int64_t id = ++m->next_id;
    if (send_cmd(m, LMTP_VOCAB, id, err)) return -1;
    bool refused;
    struct lmql__lmtp_reply r = {0};
    size_t at = 0;
    if (await_msg(m, id, &r, &at, &refused, err) && !refused) return -1;
    struct lmql__lmtp_vocab_reply rv;
    struct lmql__err why;
    int rc = lmql__lmtp_read_vocab(&r, at, &rv, &why);
    lmql__lmtp_reply_free(&r);
    if (rc > 0) return lmql__errf(err, SRV " does not send its vocabulary (VOCAB) and %s", WHERE(m), why_not_local);
    if (rc < 0) return lmql__errf(err, SRV " %s", WHERE(m), why.msg);
    struct lmql__vocab *vb = m->base.vocab = lmql__vocab_new();
    if (!vb) { lmql__lmtp_vocab_reply_free(&rv); return lmql__errf(err, "out of memory"); }
    int32_t n = rv.n_vocab;
    vb->n_tokens = n;
    vb->bytes = rv.bytes;
    vb->off = rv.off;
    vb->eog = rv.eog;
    vb->n_eog = rv.n_eog;
    vb->bos = rv.bos;
    vb->eos = rv.eos;
    vb->add_bos = rv.add_bos;
    vb->is_eog = lmql__calloc((size_t)n, 1);
    vb->is_control = lmql__calloc((size_t)n, 1);
    if (!vb->is_eog || !vb->is_control) return lmql__errf(err, "out of memory");
    for (int32_t i = 0; i < rv.n_eog; i++) vb->is_eog[rv.eog[i]] = 1;
    for (int32_t t = 0; t < n; t++) vb->is_control[t] = vb->off[t] == vb->off[t + 1];
    return 0;
}

/* Is the GGUF at `path` on this machine the model the server serves? Our
** server's MODEL_INFO carries the fingerprint of its vocabulary; others'
** may carry n_vocab, or nothing (then the file is trusted, as LMQL does).
** A different file (replaced since the server loaded it, or another model
** at the same path here) would give token ids the server reads as other
** tokens, so its vocabulary is not used. */
static bool local_matches(struct lmtp *m, const struct lmql__lmtp_reply *r, size_t at, struct lmql__err *why) {
    struct lmql__lmtp_info_reply info;
    lmql__lmtp_read_info(r, at, &info);
    if (info.has_hash) {
        if (info.hash_ok && info.vocab_hash == lmql__vocab_fingerprint(m->local)) return true;
        lmql__errf(why, "'%s' on this machine is not the model it serves (their vocabularies differ)",
                 m->base.id + 10);
        return false;
    }
    if (info.has_n_vocab && info.n_vocab != m->local->vocab->n_tokens) {
        lmql__errf(why, "'%s' on this machine is not the model it serves (%d tokens, it serves %.0f)",
                 m->base.id + 10, m->local->vocab->n_tokens, info.n_vocab);
        return false;
    }
    return true;
}

/* The template role tags are rendered with, here in the client: the
** client's chat_template= (False: none; a name: that one); else the one the
** server says it renders with (MODEL_INFO's chat_template, null when it has
** none or runs with --chat_template false); else, from a server that does
** not say, the local GGUF's. */
static int chat_template_of(struct lmtp *m, const char *param, const struct lmql__lmtp_reply *r, size_t at,
                            struct lmql__err *err) {
    bool on = strcmp(param, "false") && strcmp(param, "False") && strcmp(param, "0");
    bool named = on && strcmp(param, "true") && strcmp(param, "True") && strcmp(param, "1");
    struct lmql__lmtp_info_reply info = {0};
    if (r->n) lmql__lmtp_read_info(r, at, &info);
    const char *t = NULL;
    size_t len = 0;
    if (!on) return 0;
    if (named && m->local) {
        m->base.chat_template = m->local->chat_template;   /* checked when it was opened */
        return 0;
    }
    if (named) t = param, len = strlen(param);
    else if (info.has_template) t = info.chat_template, len = info.chat_template_len;
    else if (m->local) {
        m->base.chat_template = m->local->chat_template;   /* borrowed from it */
        return 0;
    }
    if (!t) return 0;
    m->chat_template = lmql__malloc(len + 1);
    if (!m->chat_template) return lmql__errf(err, "out of memory");
    memcpy(m->chat_template, t, len);
    m->chat_template[len] = 0;
    m->base.chat_template = m->chat_template;
    return 0;
}

/* endpoint="h:p", or a list endpoint=["h1:p", "h2:p"] (it arrives as the
** list's text): the servers to try in order. */
static int parse_endpoints(struct lmtp *m, const char *ep, struct lmql__err *err) {
    const char *p = ep ? ep : "";
    while (*p == ' ') p++;
    bool list = *p == '[';
    int cap = 1;
    for (const char *q = p; *q; q++) cap += *q == ',';
    m->eps = lmql__calloc((size_t)cap, sizeof *m->eps);
    if (!m->eps) return lmql__errf(err, "out of memory");
    if (!list) {
        if (!(m->eps[0] = lmql__strdup(p))) return lmql__errf(err, "out of memory");
        m->n_eps = 1;
        return 0;
    }
    p++;
    for (;;) {
        while (*p == ' ') p++;
        if (*p == ']' && !m->n_eps) break;
        char quote = *p;
        if (quote != '\'' && quote != '"') return lmql__errf(err, "bad endpoint list %s: expected [\"host:port\", ...]", ep);
        const char *e = strchr(p + 1, quote);
        if (!e) return lmql__errf(err, "bad endpoint list %s: a string is not closed", ep);
        size_t n = (size_t)(e - p - 1);
        char *one = lmql__malloc(n + 1);
        if (!one) return lmql__errf(err, "out of memory");
        memcpy(one, p + 1, n);
        one[n] = 0;
        m->eps[m->n_eps++] = one;
        p = e + 1;
        while (*p == ' ') p++;
        if (*p == ']') break;
        if (*p != ',' || m->n_eps == cap) return lmql__errf(err, "bad endpoint list %s: expected [\"host:port\", ...]", ep);
        p++;
    }
    if (!m->n_eps) return lmql__errf(err, "endpoint=[] names no server");
    return 0;
}

struct lmql__model *lmql__lmtp_open(const char *id, const struct lmql__kv *kv, int n_kv, struct lmql__err *err) {
    struct lmtp *m = lmql__calloc(1, sizeof *m);
    if (!m) { lmql__errf(err, "out of memory"); return NULL; }
    m->base.ops = &lmtp_ops;
    m->base.n_slots = LMTP_SLOTS;
    m->base.n_ctx = INT32_MAX;   /* the server checks its own context */
    m->chunk = 16;
    m->base.id = lmql__strdup(id);
    const char *endpoint = NULL, *token = NULL;
    /* Role tags are rendered here (chat_template_of). */
    struct lmql__kv vo[2] = {{"vocab_only", "true"}, {"chat_template", "true"}};
    for (int i = 0; i < n_kv; i++) {
        if (!strcmp(kv[i].key, "endpoint")) endpoint = kv[i].value;
        else if (!strcmp(kv[i].key, "chat_template")) vo[1].value = kv[i].value;
        else if (!strcmp(kv[i].key, "token")) token = kv[i].value;
        else if (!strcmp(kv[i].key, "chunksize")) {
            char *end;
            long c = strtol(kv[i].value, &end, 10);
            if (*end || c < 1 || c > 4096) {
                lmql__errf(err, "chunksize must be an integer from 1 to 4096, not '%s'", kv[i].value);
                goto fail;
            }
            m->chunk = (int)c;
        } else {
            lmql__errf(err, "%s: unknown parameter '%s' (valid: endpoint, chunksize, token, chat_template; model parameters such as "
                       "n_ctx belong on the `lmql serve-model` command line)", id, kv[i].key);
            goto fail;
        }
    }
    if (!token) token = getenv("LMQL_SERVER_TOKEN");
    if (!m->base.id) { lmql__errf(err, "out of memory"); goto fail; }
    if (token && !(m->token = lmql__strdup(token))) { lmql__errf(err, "out of memory"); goto fail; }
    if (parse_endpoints(m, endpoint, err) || connect_any(m, 0, err)) goto fail;
    /* MODEL_INFO goes out first and is answered while the local file loads. */
    int64_t info_id = ++m->next_id;
    if (send_cmd(m, LMTP_MODEL_INFO, info_id, err)) goto fail;
    /* The tokenizer from PATH when this machine has it as a regular file
    ** (a FIFO there must not block us); otherwise, or when it cannot be
    ** read, or is not the served model, the server's. */
    const char *path = id + strlen("llama.cpp:");
    struct lmql__err why;
    struct stat st;
    lmql__errf(&why, "'%s' is not on this machine", path);
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        struct lmql__err lerr = {0};
        m->local = lmql__llama_open(path, vo, 2, &lerr);
        if (!m->local) lmql__errf(&why, "the copy here cannot be read: %s", lerr.msg);
    }
    bool refused;
    struct lmql__lmtp_reply info = {0};
    size_t info_at = 0;
    if (await_msg(m, info_id, &info, &info_at, &refused, err) && !refused) goto fail;   /* the connection failed; a server without MODEL_INFO is fine */
    if (m->local && !local_matches(m, &info, info_at, &why)) {
        lmql__model_free(m->local);
        m->local = NULL;
    }
    int rc = chat_template_of(m, vo[1].value, &info, info_at, err);
    lmql__lmtp_reply_free(&info);
    if (rc) goto fail;
    if (m->local) m->base.vocab = lmql__vocab_ref(m->local->vocab);   /* shared with the vocab-only model */
    else if (remote_vocab(m, why.msg, err)) goto fail;
    return &m->base;
fail:
    lmtp_free(&m->base);
    return NULL;
}
