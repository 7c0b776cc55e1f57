/*
** The serving engine (see serve.h).
**
** One thread owns the model. Each turn of its loop admits queued streams
** into free sequence slots, then evaluates every running GENERATE stream in
** one next_logprobs call (one llama_decode for the whole batch) and the
** next slice of every SCORE stream in one score call, and emits one TOKEN
** frame per token.
** Connections only ever touch the queues, under the engine's lock.
*/
#include "serve.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A running stream may share its cache with a newcomer when their prompts
** agree on at least this many more tokens than the best idle slot offers:
** below that a fork costs more bookkeeping than it saves. */
#define FORK_MIN_GAIN 16
/* KV cells a stream reserves beyond its prompt at a time (see grow). */
#define GROW_STEP 64
/* SCORE tokens evaluated per step, per stream and in all: a long SCORE is
** scored a slice at a time between generation steps, so it cannot stall
** the other streams (one 900-token SCORE took a whole step before). */
#define SCORE_SLICE 32
#define SCORE_STEP_MAX 128

struct stream {
    struct stream *next;
    void *conn;
    int64_t id;
    enum lmql__lmtp_kind kind;
    int32_t *toks;              /* prompt, then generated (GENERATE) or scored (SCORE) tokens */
    int32_t n, cap, n_prompt;
    int32_t scored_to;          /* SCORE: tokens before this one are scored */
    int64_t max_tokens, n_gen;
    double temperature, top_p;
    int64_t top_k;
    int top_logprobs;
    struct lmql__lmtp_bias *bias;
    int32_t n_bias;
    bool allow_list;            /* some bias >= 100: only those tokens may come */
    int32_t reserve;            /* KV cells counted against n_ctx */
    int slot;
    bool cancelled, done;
    bool slot_lost;             /* an evaluation failed: the backend dropped the slot */
    int err_kind;               /* ERR_*: why it ended with an error, 0 when it did not */
    int32_t hit;                /* prompt tokens found in its slot's cache */
    double t_submit, t_first;   /* queued; first token sent (0: none yet) */
};

enum { ERR_NONE, ERR_CONTEXT, ERR_EVAL, ERR_SLOW_READER, ERR_OTHER };

struct slot {
    int32_t *toks;              /* what the slot's cache holds (as far as we know) */
    int32_t n, cap;
    struct stream *s;           /* the stream using it, or NULL */
    uint64_t used;
};

struct lmql__engine {
    struct lmql__model *m;
    struct lmql__engine_io io;
    struct lmql__engine_limits lim;
    pthread_t th;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;
    struct stream *pending, *pending_tail, *active;
    struct slot *slots;
    int64_t reserved;
    uint64_t clock, rng;
    float *x;                   /* n_vocab scratch */
    double *w;
    int32_t *cand;
    struct lmql__buf out;
    bool emitted;               /* frames went out this step: wake the transport once */
    const char *fail_why;       /* set by lmql__engine_fail_all: end every stream with it */
    struct lmql__engine_stats st;   /* counters (under the lock) */
};

const double lmql__engine_buckets[LMQL_ENGINE_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                           0.5, 1, 2.5, 5, 10, 30};

static void observe(struct lmql__engine_hist *h, double v) {
    int b = 0;
    while (b < LMQL_ENGINE_NBUCKETS && v > lmql__engine_buckets[b]) b++;
    h->n[b]++;
    h->count++;
    h->sum += v;
}

static void stream_free(struct stream *s) {
    if (!s) return;
    free(s->toks);
    free(s->bias);
    free(s);
}

static int toks_reserve(int32_t **p, int32_t *cap, int32_t n) {
    if (n <= *cap) return 0;
    int32_t c = *cap ? *cap : 64;
    while (c < n) c *= 2;
    int32_t *q = lmql__realloc(*p, (size_t)c * sizeof *q);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

static int32_t common_prefix(const int32_t *a, int32_t na, const int32_t *b, int32_t nb) {
    int32_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

static bool grow(struct lmql__engine *e, struct stream *s);

/* ------------------------------------------------------------ replies -- */

/* Send the frame in e->out for s, unless s was cancelled meanwhile; `last`
** ends the stream. Under the lock, and `done` is set before the frame
** leaves: a client that reacts to the last token (reusing the stream id,
** counting its streams) must find the stream over, and a cancelled stream
** sends nothing after CANCEL is answered. */
static void emit(struct lmql__engine *e, struct stream *s, bool last) {
    pthread_mutex_lock(&e->mu);
    bool send = !s->cancelled && e->out.len;
    if (last || s->cancelled) s->done = true;
    if (send) e->io.emit(e->io.ud, s->conn, e->out.data, e->out.len);
    e->emitted |= send;
    pthread_mutex_unlock(&e->mu);
    e->out.len = 0;
}

static void fail_stream(struct lmql__engine *e, struct stream *s, int kind, const char *msg) {
    if (!s->err_kind) s->err_kind = kind;
    e->out.len = 0;
    if (lmql__lmtp_error(&e->out, "TOKEN", s->id, msg)) e->out.len = 0;
    emit(e, s, true);
}

/* ------------------------------------------------------------ sampling -- */

/* Apply the stream's logit_bias to x (LMQL's convention: -100 forbids a
** token, +100 marks the allowed ones; other values add) and renormalise.
** Returns the most likely token, -1 when nothing is allowed, or -2 when
** the stream has no bias (e->x untouched: lp is used as it is). */
static int32_t biased(struct lmql__engine *e, const struct stream *s, const float *lp) {
    int32_t nv = e->m->vocab->n_tokens;
    float *x = e->x;
    if (!s->n_bias) return -2;
    if (s->allow_list) {
        for (int32_t t = 0; t < nv; t++) x[t] = -INFINITY;
        for (int32_t i = 0; i < s->n_bias; i++) {
            const struct lmql__lmtp_bias *b = &s->bias[i];
            if (b->value >= 100) x[b->tok] = lp[b->tok];
        }
        for (int32_t i = 0; i < s->n_bias; i++) {
            const struct lmql__lmtp_bias *b = &s->bias[i];
            if (b->value > -100 && b->value < 100 && isfinite(x[b->tok])) x[b->tok] += b->value;
        }
    } else {
        memcpy(x, lp, (size_t)nv * sizeof *x);
        for (int32_t i = 0; i < s->n_bias; i++) {
            const struct lmql__lmtp_bias *b = &s->bias[i];
            x[b->tok] = b->value <= -100 ? -INFINITY : x[b->tok] + b->value;
        }
    }
    float mx = -INFINITY;
    for (int32_t t = 0; t < nv; t++)
        if (x[t] > mx) mx = x[t];
    if (mx == -INFINITY) return -1;
    return lmql__log_softmax(x, nv);
}

static int cmp_cand_desc(const void *a, const void *b, void *ctx) {
    const float *x = ctx;
    float fa = x[*(const int32_t *)a], fb = x[*(const int32_t *)b];
    return fa < fb ? 1 : fa > fb ? -1 : 0;
}

/* A draw from softmax(x / T) limited to the top_k most likely and the
** smallest set holding top_p of the probability. */
static int32_t sample(struct lmql__engine *e, const struct stream *s, const float *x, int32_t best) {
    int32_t nv = e->m->vocab->n_tokens, k = 0;
    for (int32_t t = 0; t < nv; t++)
        if (x[t] > -INFINITY) e->cand[k++] = t;
    if (s->top_k > 0 || s->top_p < 1) {
        qsort_r(e->cand, (size_t)k, sizeof *e->cand, cmp_cand_desc, (void *)x);
        if (s->top_k > 0 && k > s->top_k) k = (int32_t)s->top_k;
    }
    double sum = 0;
    for (int32_t i = 0; i < k; i++) sum += e->w[i] = exp((x[e->cand[i]] - x[best]) / s->temperature);
    if (s->top_p < 1) {
        double acc = 0;
        for (int32_t i = 0; i < k; i++) {
            acc += e->w[i];
            if (acc >= s->top_p * sum) { k = i + 1; sum = acc; break; }
        }
    }
    double u = (double)(lmql__rng_next(&e->rng) >> 11) / 9007199254740992.0 * sum;
    for (int32_t i = 0; i < k; i++) {
        u -= e->w[i];
        if (u < 0) return e->cand[i];
    }
    return k ? e->cand[k - 1] : best;
}

/* The n most likely tokens of x, most likely first, plus tok if missing. */
static int top_tokens(const float *x, int32_t nv, int n, int32_t tok, int32_t *top, float *lp) {
    int k = 0;
    for (int32_t t = 0; t < nv && n > 0; t++) {
        if (x[t] == -INFINITY || (k == n && x[t] <= lp[k - 1])) continue;
        int i = k < n ? k++ : n - 1;
        while (i > 0 && lp[i - 1] < x[t]) {
            top[i] = top[i - 1];
            lp[i] = lp[i - 1];
            i--;
        }
        top[i] = t;
        lp[i] = x[t];
    }
    bool have = false;
    for (int i = 0; i < k; i++) have |= top[i] == tok;
    if (!have) {
        top[k] = tok;
        lp[k++] = x[tok];
    }
    return k;
}

/* -------------------------------------------------------------- steps -- */

/* A client that does not read its replies while its streams run would make
** them pile up without bound: past the budget its streams end with an
** error, and the transport stops reading its requests meanwhile. */
static bool reader_keeps_up(struct lmql__engine *e, struct stream *s) {
    size_t unread = e->io.unread(e->io.ud, s->conn);
    if (unread <= e->lim.max_unread) return true;
    char msg[200];
    snprintf(msg, sizeof msg, "the client has not read %zu bytes of replies (limit %zu): its streams end until "
             "it reads", unread, e->lim.max_unread);
    fail_stream(e, s, ERR_SLOW_READER, msg);
    return false;
}

static void generate_step(struct lmql__engine *e, struct stream **ss, int n) {
    struct lmql__model *m = e->m;
    LMQL_ASSERT(n >= 1 && n <= 256);   /* the batch arrays below */
    struct lmql__eval_req reqs[256];
    const float *outs[256];
    struct stream *batch[256];
    int k = 0;
    for (int i = 0; i < n; i++) {
        struct stream *s = ss[i];
        if (s->n > m->n_ctx) {
            char msg[160];
            snprintf(msg, sizeof msg, "the sequence reached the server's context size (n_ctx=%d)", m->n_ctx);
            fail_stream(e, s, ERR_CONTEXT, msg);
            continue;
        }
        if (!reader_keeps_up(e, s)) continue;
        reqs[k] = (struct lmql__eval_req){s->slot, s->toks, s->n, NULL, NULL};
        batch[k++] = s;
    }
    if (!k) return;
    struct lmql__err err = {0};
    if (m->ops->next_logprobs(m, k, reqs, outs, &err)) {
        char msg[1100];
        snprintf(msg, sizeof msg, "failed to generate tokens '%s'", err.msg);
        for (int i = 0; i < k; i++) {
            fail_stream(e, batch[i], ERR_EVAL, msg);
            batch[i]->slot_lost = true;
        }
        return;
    }
    int32_t nv = m->vocab->n_tokens;
    int32_t top[128];
    float top_lp[128];
    for (int i = 0; i < k; i++) {
        struct stream *s = batch[i];
        int32_t best = biased(e, s, outs[i]);
        if (best == -1) {
            fail_stream(e, s, ERR_OTHER, "the logit_bias forbids every token");
            continue;
        }
        /* No bias: the model's own distribution, read in place. */
        const float *x = best == -2 ? outs[i] : e->x;
        if (best == -2) {
            best = 0;
            for (int32_t t = 1; t < nv; t++)
                if (x[t] > x[best]) best = t;
        }
        int32_t tok = s->temperature > 0 ? sample(e, s, x, best) : best;
        LMQL_ASSERT(tok >= 0 && tok < nv);
        if (toks_reserve(&s->toks, &s->cap, s->n + 1)) {
            fail_stream(e, s, ERR_OTHER, "out of memory");
            continue;
        }
        s->toks[s->n++] = tok;
        s->n_gen++;
        const char *finish = m->vocab->is_eog[tok] ? "stop" : s->n_gen >= s->max_tokens ? "length" : NULL;
        if (!finish && s->n > s->reserve && !grow(e, s)) finish = "length";   /* KV space is taken */
        /* top_logprobs is capped at 100 on submit: the top list and tok fit the 128 entries. */
        LMQL_ASSERT(s->top_logprobs >= 0 && s->top_logprobs < 128);
        int nt = top_tokens(x, nv, s->top_logprobs, tok, top, top_lp);
        e->out.len = 0;
        if (lmql__lmtp_token(&e->out, s->id, tok, x[tok], finish, top, top_lp, nt)) {
            fail_stream(e, s, ERR_OTHER, "out of memory");
            continue;
        }
        emit(e, s, finish != NULL);
        if (s->n_gen == 1) s->t_first = lmql__now();
    }
}

/* The next slice of each SCORE stream, at most SCORE_STEP_MAX tokens in all
** (the streams beyond wait for the next step). */
static void score_step(struct lmql__engine *e, struct stream **all, int n_all) {
    struct lmql__model *m = e->m;
    LMQL_ASSERT(n_all >= 1 && n_all <= 256);   /* the batch arrays below */
    struct lmql__eval_req reqs[256];
    int32_t from[256];
    float *scores[256];
    struct stream *ss[256];
    bool ok = true;
    int n = 0, budget = SCORE_STEP_MAX;
    for (int i = 0; i < n_all && budget > 0; i++) {
        struct stream *s = all[i];
        if (!reader_keeps_up(e, s)) continue;
        int32_t k = s->n - s->scored_to;
        LMQL_ASSERT(k > 0);   /* the slice with the last token ends the stream */
        if (k > SCORE_SLICE) k = SCORE_SLICE;
        if (k > budget) k = budget;
        budget -= k;
        ss[n] = s;
        reqs[n] = (struct lmql__eval_req){s->slot, s->toks, s->scored_to + k, NULL, NULL};
        from[n] = s->scored_to;
        scores[n] = lmql__malloc((size_t)k * sizeof **scores);
        ok &= scores[n] != NULL;
        n++;
    }
    if (!n) return;
    struct lmql__err err = {0};
    if (!ok) snprintf(err.msg, sizeof err.msg, "out of memory");
    if (!ok || m->ops->score(m, n, reqs, from, scores, &err)) {
        char msg[1100];
        snprintf(msg, sizeof msg, "failed to score tokens '%s'", err.msg);
        for (int i = 0; i < n; i++) {
            fail_stream(e, ss[i], ERR_EVAL, msg);
            ss[i]->slot_lost = true;
        }
    } else {
        for (int i = 0; i < n; i++) {
            struct stream *s = ss[i];
            for (int32_t j = from[i]; j < reqs[i].n_tokens && !s->done; j++) {
                e->out.len = 0;
                bool last = j == s->n - 1;
                if (lmql__lmtp_token(&e->out, s->id, s->toks[j], scores[i][j - from[i]], last ? "stop" : NULL,
                                     NULL, NULL, 0)) {
                    fail_stream(e, s, ERR_OTHER, "out of memory");
                    break;
                }
                emit(e, s, last);
            }
            s->scored_to = reqs[i].n_tokens;
        }
    }
    for (int i = 0; i < n; i++) free(scores[i]);
}

/* ---------------------------------------------------------- admission -- */

/* Whether `need` more KV cells fit next to the running streams'
** reservations, dropping idle slots' caches (least recently used first,
** never `keep`) until they do. Engine thread. */
static bool make_room(struct lmql__engine *e, int64_t need, int keep) {
    struct lmql__model *m = e->m;
    LMQL_ASSERT(need >= 0 && keep >= 0 && keep < m->n_slots);
    if (e->reserved + need > m->n_ctx) return false;
    for (;;) {
        int64_t held = 0;
        int lru = -1;
        for (int i = 0; i < m->n_slots; i++) {
            struct slot *sl = &e->slots[i];
            if (sl->s || i == keep || !sl->n) continue;
            held += sl->n;
            if (lru < 0 || sl->used < e->slots[lru].used) lru = i;
        }
        if (e->reserved + need + held <= m->n_ctx) return true;
        if (lru < 0) return false;
        m->ops->slot_drop(m, lru);
        e->slots[lru].n = 0;
    }
}

/* More KV cells for a running stream that has used its reservation: the
** next GROW_STEP tokens (or what max_tokens and n_ctx leave). False when
** they do not fit: the stream then ends with "length" and the client asks
** again, instead of one long request holding the whole context from its
** start. */
static bool grow(struct lmql__engine *e, struct stream *s) {
    int64_t target = (int64_t)s->reserve + GROW_STEP, cap = (int64_t)s->n_prompt + s->max_tokens;
    if (target > cap) target = cap;
    if (target > e->m->n_ctx) target = e->m->n_ctx;
    if (target < s->n || !make_room(e, target - s->reserve, s->slot)) return false;
    e->reserved += target - s->reserve;
    s->reserve = (int32_t)target;
    /* The reservations of the running streams never exceed the context. */
    LMQL_ASSERT(s->reserve >= s->n && e->reserved <= e->m->n_ctx);
    return true;
}

/* A slot for s: the idle one whose cache shares most of its prompt, or a
** fork of a running stream's cache when that shares clearly more. Idle
** caches are dropped (least recently used first) while KV space is short.
** Called with the lock held. */
static bool admit_one(struct lmql__engine *e, struct stream *s) {
    struct lmql__model *m = e->m;
    if (e->reserved + s->reserve > m->n_ctx) return false;
    int idle = -1, busy = -1;
    int32_t idle_len = -1, busy_len = 0;
    for (int i = 0; i < m->n_slots; i++) {
        struct slot *sl = &e->slots[i];
        int32_t c = common_prefix(sl->toks, sl->n, s->toks, s->n_prompt);
        if (sl->s) {
            if (c > busy_len) { busy_len = c; busy = i; }
        } else if (c > idle_len || (c == idle_len && sl->used < e->slots[idle].used)) {
            idle_len = c;
            idle = i;
        }
    }
    if (idle < 0 || !make_room(e, s->reserve, idle)) return false;
    struct slot *sl = &e->slots[idle];
    if (busy >= 0 && busy_len >= idle_len + FORK_MIN_GAIN) {
        m->ops->slot_copy(m, busy, idle);
        struct slot *src = &e->slots[busy];
        if (!toks_reserve(&sl->toks, &sl->cap, src->n)) {
            memcpy(sl->toks, src->toks, (size_t)src->n * sizeof *sl->toks);
            sl->n = src->n;
        } else {
            sl->n = 0;
        }
    }
    sl->s = s;
    sl->used = ++e->clock;
    s->slot = idle;
    /* The backend evaluates at least the prompt's last token (for its logits). */
    s->hit = busy >= 0 && busy_len >= idle_len + FORK_MIN_GAIN ? busy_len : idle_len;
    if (s->hit >= s->n_prompt) s->hit = s->n_prompt - 1;
    if (s->hit < 0) s->hit = 0;
    e->reserved += s->reserve;
    LMQL_ASSERT(e->reserved <= m->n_ctx);   /* make_room made room for it */
    return true;
}

/* A finished stream leaves its tokens as the slot's cache for the next. */
static void retire(struct lmql__engine *e, struct stream *s) {
    struct slot *sl = &e->slots[s->slot];
    LMQL_ASSERT(sl->s == s);   /* a running stream owns its slot */
    sl->s = NULL;
    sl->used = ++e->clock;
    sl->n = 0;
    if (!s->slot_lost) {
        if (!toks_reserve(&sl->toks, &sl->cap, s->n)) {
            memcpy(sl->toks, s->toks, (size_t)s->n * sizeof *sl->toks);
            sl->n = s->n;
        }
    }
    e->reserved -= s->reserve;
    LMQL_ASSERT(e->reserved >= 0);
    struct lmql__engine_stats *st = &e->st;
    int kind = s->kind == LMTP_SCORE;
    st->done[kind][s->err_kind ? 1 : s->cancelled ? 2 : 0]++;
    if (s->err_kind == ERR_CONTEXT) st->errors_context++;
    else if (s->err_kind == ERR_EVAL) st->errors_eval++;
    else if (s->err_kind == ERR_SLOW_READER) st->errors_slow_reader++;
    else if (s->err_kind) st->errors_other++;
    st->tokens_generated += (uint64_t)s->n_gen;
    int32_t evaluated = kind ? s->scored_to - s->hit : s->n_prompt - s->hit + (int32_t)s->n_gen;
    if (evaluated > 0) st->tokens_evaluated += (uint64_t)evaluated;
    st->prefix_hit_tokens += (uint64_t)s->hit;
    double now = lmql__now();
    observe(&st->latency, now - s->t_submit);
    if (s->t_first > 0) observe(&st->ttft, s->t_first - s->t_submit);
}

/* Which queued stream goes next: the oldest of the connection that has
** the fewest running, so one client's burst cannot hold the slots while
** others wait. Looks at the first 256 queued. Returns the link to it. */
static struct stream **next_fair(struct lmql__engine *e) {
    struct stream **best = &e->pending;
    int best_n = INT32_MAX, seen = 0;
    for (struct stream **p = &e->pending; *p && seen < 256; p = &(*p)->next, seen++) {
        int n = 0;
        for (struct stream *a = e->active; a; a = a->next) n += a->conn == (*p)->conn;
        if (n < best_n) {
            best_n = n;
            best = p;
            if (n == 0) break;
        }
    }
    return best;
}

/* The drain's time-out: every stream, queued or running, ends with an error
** reply. With the lock held; returns with it held. */
static void fail_everything(struct lmql__engine *e) {
    const char *why = e->fail_why;
    e->fail_why = NULL;
    struct stream *queued = e->pending;
    e->pending = e->pending_tail = NULL;
    pthread_mutex_unlock(&e->mu);
    for (struct stream *s = e->active; s; s = s->next)   /* only this thread changes the active list */
        if (!s->done && !s->cancelled) fail_stream(e, s, ERR_OTHER, why);
    for (struct stream *s = queued, *nx; s; s = nx) {
        nx = s->next;
        fail_stream(e, s, ERR_OTHER, why);
        pthread_mutex_lock(&e->mu);
        e->st.done[s->kind == LMTP_SCORE][1]++;
        e->st.errors_other++;
        pthread_mutex_unlock(&e->mu);
        e->io.release(e->io.ud, s->conn);
        stream_free(s);
    }
    if (e->emitted) {
        e->emitted = false;
        e->io.wake(e->io.ud);
    }
    pthread_mutex_lock(&e->mu);
    /* The active streams are done now: the turn that follows retires them. */
}

static void *engine_main(void *arg) {
    struct lmql__engine *e = arg;
    struct stream *gen[256], *sco[256], *gone[256];
    pthread_mutex_lock(&e->mu);
    for (;;) {
        while (!e->stop && !e->pending && !e->active && !e->fail_why) pthread_cond_wait(&e->cv, &e->mu);
        if (e->stop) break;
        for (struct stream **p; e->pending && admit_one(e, *(p = next_fair(e)));) {
            struct stream *s = *p;
            *p = s->next;
            if (e->pending_tail == s) {   /* the new tail: the stream before it, if any */
                e->pending_tail = NULL;
                for (struct stream *t = e->pending; t; t = t->next) e->pending_tail = t;
            }
            s->next = e->active;
            e->active = s;
        }
        LMQL_ASSERT(!e->pending == !e->pending_tail);   /* the queue's tail is set exactly when it is not empty */
        if (e->fail_why) fail_everything(e);
        int ng = 0, ns = 0;
        for (struct stream *s = e->active; s; s = s->next) {
            if (s->cancelled) s->done = true;
            else if (s->done) continue;   /* failed by fail_everything: retired below */
            else if (s->kind == LMTP_SCORE && ns < 256) sco[ns++] = s;
            else if (s->kind == LMTP_GENERATE && ng < 256) gen[ng++] = s;
        }
        pthread_mutex_unlock(&e->mu);
        if (ns) score_step(e, sco, ns);
        if (ng) generate_step(e, gen, ng);
        if (e->emitted) {   /* one wake-up per step, outside every lock */
            e->emitted = false;
            e->io.wake(e->io.ud);
        }
        pthread_mutex_lock(&e->mu);
        int n_gone = 0;
        for (struct stream **p = &e->active; *p;) {
            struct stream *s = *p;
            if (s->done && n_gone < 256) {
                *p = s->next;
                retire(e, s);
                gone[n_gone++] = s;
            } else {
                p = &s->next;
            }
        }
        if (n_gone) {
            pthread_mutex_unlock(&e->mu);
            for (int i = 0; i < n_gone; i++) {
                e->io.release(e->io.ud, gone[i]->conn);
                stream_free(gone[i]);
            }
            pthread_mutex_lock(&e->mu);
        }
    }
    pthread_mutex_unlock(&e->mu);
    return NULL;
}

/* ---------------------------------------------------------------- API -- */

struct lmql__engine *lmql__engine_new(struct lmql__model *m, const struct lmql__engine_io *io,
                                      const struct lmql__engine_limits *lim, uint64_t seed, struct lmql__err *err) {
    struct lmql__engine *e = lmql__calloc(1, sizeof *e);
    if (!e) { lmql__errf(err, "out of memory"); return NULL; }
    e->m = m;
    e->io = *io;
    e->lim = *lim;
    e->rng = seed;
    size_t nv = (size_t)m->vocab->n_tokens;
    e->slots = lmql__calloc((size_t)m->n_slots, sizeof *e->slots);
    e->x = lmql__malloc(nv * sizeof *e->x);
    e->w = lmql__malloc(nv * sizeof *e->w);
    e->cand = lmql__malloc(nv * sizeof *e->cand);
    if (!e->slots || !e->x || !e->w || !e->cand) {
        lmql__errf(err, "out of memory");
        lmql__engine_free(e);
        return NULL;
    }
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->th, NULL, engine_main, e)) {
        lmql__errf(err, "cannot start the engine thread");
        lmql__engine_free(e);
        return NULL;
    }
    e->started = true;
    return e;
}

void lmql__engine_free(struct lmql__engine *e) {
    if (!e) return;
    if (e->started) {
        pthread_mutex_lock(&e->mu);
        e->stop = true;
        pthread_cond_broadcast(&e->cv);
        pthread_mutex_unlock(&e->mu);
        pthread_join(e->th, NULL);
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
    }
    struct stream *lists[2] = {e->pending, e->active};
    for (int l = 0; l < 2; l++)
        for (struct stream *s = lists[l], *nx; s; s = nx) {
            nx = s->next;
            e->io.release(e->io.ud, s->conn);
            stream_free(s);
        }
    for (int i = 0; e->slots && i < e->m->n_slots; i++) free(e->slots[i].toks);
    free(e->slots);
    free(e->x);
    free(e->w);
    free(e->cand);
    lmql__buf_free(&e->out);
    free(e);
}

static bool running(struct lmql__engine *e, void *conn, int64_t id) {
    struct stream *lists[2] = {e->pending, e->active};
    for (int l = 0; l < 2; l++)
        for (struct stream *s = lists[l]; s; s = s->next)
            if (s->conn == conn && s->id == id && !s->cancelled && !s->done) return true;
    return false;
}

static int check_ids(const int32_t *t, int32_t n, int32_t nv, const char *what, struct lmql__err *err) {
    for (int32_t i = 0; i < n; i++)
        if (t[i] >= nv) {
            lmql__errf(err, "%s holds token id %d, outside the vocabulary (0..%d)", what, t[i], nv - 1);
            return -1;
        }
    return 0;
}

/* Whether s would take conn past its budgets of queued work: logit_bias
** entries of streams not yet running (each costs memory while it waits),
** and SCORE tokens queued or running. With the lock held. */
static bool over_budget(struct lmql__engine *e, void *conn, const struct stream *s, struct lmql__err *err) {
    int64_t bias = s->n_bias, score = s->kind == LMTP_SCORE ? s->n - s->n_prompt : 0;
    for (struct stream *q = e->pending; q; q = q->next)
        if (q->conn == conn) {
            bias += q->n_bias;
            if (q->kind == LMTP_SCORE) score += q->n - q->n_prompt;
        }
    for (struct stream *q = e->active; q; q = q->next)
        if (q->conn == conn && q->kind == LMTP_SCORE && !q->done) score += q->n - q->scored_to;
    if (bias > e->lim.max_queued_bias) {
        lmql__errf(err, "too much queued work on this connection: %lld logit_bias entries in streams not yet "
                 "running (limit %lld); wait for some to finish", (long long)bias, (long long)e->lim.max_queued_bias);
        return true;
    }
    if (score > e->lim.max_score_tokens) {
        lmql__errf(err, "too much queued work on this connection: %lld SCORE tokens queued or running (limit %lld); "
                 "wait for some to finish", (long long)score, (long long)e->lim.max_score_tokens);
        return true;
    }
    return false;
}

int lmql__engine_submit(struct lmql__engine *e, void *conn, struct lmql__lmtp_cmd *c, struct lmql__err *err) {
    struct lmql__model *m = e->m;
    int32_t nv = m->vocab->n_tokens;
    if (c->kind != LMTP_GENERATE && c->kind != LMTP_SCORE) {
        lmql__errf(err, "not a GENERATE or SCORE command");
        return -1;
    }
    if (!c->has_stream_id) {
        lmql__errf(err, "'stream_id' is required");
        return -1;
    }
    if (c->n_prompt < 1) {
        lmql__errf(err, "the prompt is empty (it needs at least the BOS token)");
        return -1;
    }
    if (check_ids(c->prompt, c->n_prompt, nv, "the prompt", err) ||
        check_ids(c->scored, c->n_scored, nv, "'scored'", err))
        return -1;
    for (int32_t i = 0; i < c->n_bias; i++)
        if (c->bias[i].tok >= nv) {
            lmql__errf(err, "logit_bias names token id %d, outside the vocabulary (0..%d)", c->bias[i].tok, nv - 1);
            return -1;
        }
    int64_t need = c->kind == LMTP_SCORE ? (int64_t)c->n_prompt + c->n_scored : (int64_t)c->n_prompt + 1;
    if (c->kind == LMTP_SCORE && c->n_scored < 1) {
        lmql__errf(err, "'scored' is empty: nothing to score");
        return -1;
    }
    if (need > m->n_ctx) {
        lmql__errf(err, "the request needs %lld tokens of context; the server's context holds n_ctx=%d "
                 "(start lmql serve-model with a larger --n_ctx)", (long long)need, m->n_ctx);
        return -1;
    }
    struct stream *s = lmql__calloc(1, sizeof *s);
    if (!s || toks_reserve(&s->toks, &s->cap, (int32_t)need)) {
        free(s);
        lmql__err_set(err, LMQL_ERR_NOMEM, NULL, "out of memory");
        return -1;
    }
    s->conn = conn;
    s->id = c->stream_id;
    s->kind = c->kind;
    memcpy(s->toks, c->prompt, (size_t)c->n_prompt * sizeof *s->toks);
    s->n = s->n_prompt = c->n_prompt;
    if (c->kind == LMTP_SCORE) {
        memcpy(s->toks + s->n, c->scored, (size_t)c->n_scored * sizeof *s->toks);
        s->n += c->n_scored;
        s->reserve = s->n;
        s->scored_to = s->n_prompt;
    } else {
        int64_t r = (int64_t)c->n_prompt + (c->max_tokens < GROW_STEP ? c->max_tokens : GROW_STEP);
        s->reserve = (int32_t)(r > m->n_ctx ? m->n_ctx : r);
    }
    s->max_tokens = c->max_tokens;
    s->temperature = c->temperature;
    s->top_p = c->top_p;
    s->top_k = c->top_k;
    s->top_logprobs = (int)(c->top_logprobs > 100 ? 100 : c->top_logprobs);
    s->bias = c->bias;
    s->n_bias = c->n_bias;
    c->bias = NULL;
    c->n_bias = 0;
    for (int32_t i = 0; i < s->n_bias; i++) s->allow_list |= s->bias[i].value >= 100;
    s->t_submit = lmql__now();
    pthread_mutex_lock(&e->mu);
    if (running(e, conn, s->id)) {
        pthread_mutex_unlock(&e->mu);
        lmql__errf(err, "stream %lld is already running on this connection", (long long)s->id);
        stream_free(s);
        return -1;
    }
    if (over_budget(e, conn, s, err)) {
        pthread_mutex_unlock(&e->mu);
        stream_free(s);
        return -1;
    }
    if (e->pending_tail) e->pending_tail->next = s;
    else e->pending = s;
    e->pending_tail = s;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    return 0;
}

int lmql__engine_cancel(struct lmql__engine *e, void *conn, int64_t stream_id) {
    struct stream *gone = NULL;
    int n = 0;
    pthread_mutex_lock(&e->mu);
    /* Queued streams go now; running ones at the start of the next step. */
    struct stream *tail = NULL;
    for (struct stream **p = &e->pending; *p;) {
        struct stream *s = *p;
        if (s->conn == conn && (stream_id < 0 || s->id == stream_id)) {
            *p = s->next;
            s->next = gone;
            gone = s;
            n++;
            e->st.done[s->kind == LMTP_SCORE][2]++;
        } else {
            tail = s;
            p = &s->next;
        }
    }
    e->pending_tail = tail;
    LMQL_ASSERT(!e->pending == !e->pending_tail);
    for (struct stream *s = e->active; s; s = s->next)
        if (s->conn == conn && (stream_id < 0 || s->id == stream_id) && !s->cancelled) {
            s->cancelled = true;
            n++;
        }
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    for (struct stream *s = gone, *nx; s; s = nx) {
        nx = s->next;
        e->io.release(e->io.ud, s->conn);
        stream_free(s);
    }
    return n;
}

int lmql__engine_streams(struct lmql__engine *e, void *conn) {
    int n = 0;
    pthread_mutex_lock(&e->mu);
    struct stream *lists[2] = {e->pending, e->active};
    for (int l = 0; l < 2; l++)
        for (struct stream *s = lists[l]; s; s = s->next)
            n += s->conn == conn && !s->cancelled && !s->done;
    pthread_mutex_unlock(&e->mu);
    return n;
}

void lmql__engine_stats(struct lmql__engine *e, struct lmql__engine_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->st;
    out->running = out->waiting = out->slots_busy = 0;
    for (struct stream *s = e->active; s; s = s->next) out->running += !s->done;
    for (struct stream *s = e->pending; s; s = s->next) out->waiting++;
    for (int i = 0; i < e->m->n_slots; i++) out->slots_busy += e->slots[i].s != NULL;
    out->slots_total = e->m->n_slots;
    out->kv_used = e->reserved;
    out->kv_total = e->m->n_ctx;
    pthread_mutex_unlock(&e->mu);
}

bool lmql__engine_busy(struct lmql__engine *e) {
    pthread_mutex_lock(&e->mu);
    bool busy = e->pending || e->active;
    pthread_mutex_unlock(&e->mu);
    return busy;
}

void lmql__engine_fail_all(struct lmql__engine *e, const char *why) {
    pthread_mutex_lock(&e->mu);
    e->fail_why = why;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
}
