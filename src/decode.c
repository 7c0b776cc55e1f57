/*
** Generation of one hole, token by token.
*/
#include "decode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lmql__seq_push(struct lmql__seq *s, const int32_t *t, int32_t n) {
    if (n <= 0) return 0;
    if (s->n + n > s->cap) {
        int32_t cap = s->cap ? s->cap : 64;
        while (cap < s->n + n) cap *= 2;
        int32_t *p = lmql__realloc(s->toks, (size_t)cap * sizeof *p);
        if (!p) return -1;
        s->toks = p;
        s->cap = cap;
    }
    memcpy(s->toks + s->n, t, (size_t)n * sizeof *t);
    s->n += n;
    return 0;
}

void lmql__seq_free(struct lmql__seq *s) {
    free(s->toks);
    memset(s, 0, sizeof *s);
}

struct cand { float lp; int32_t t; };

static int cmp_cand(const void *a, const void *b) {
    float x = ((const struct cand *)a)->lp, y = ((const struct cand *)b)->lp;
    return x > y ? -1 : x < y ? 1 : ((const struct cand *)a)->t - ((const struct cand *)b)->t;
}

/* top_k / top_p sampling: sort the allowed tokens by probability, keep the
** k best and the smallest prefix reaching top_p of their mass, draw. */
static int32_t pick_truncated(struct lmql__gen *g, const float *lp, const uint8_t *mask) {
    int32_t n = g->model->vocab->n_tokens, k = 0;
    struct cand *c = lmql__malloc((size_t)n * sizeof *c);
    if (!c) return -1;
    for (int32_t t = 0; t < n; t++)
        if (mask[t]) c[k++] = (struct cand){lp[t] / (float)g->temperature, t};
    if (k == 0) { free(c); return -1; }
    qsort(c, (size_t)k, sizeof *c, cmp_cand);
    if (g->top_k > 0 && k > g->top_k) k = g->top_k;
    double total = 0, mx = c[0].lp;
    for (int32_t i = 0; i < k; i++) total += exp(c[i].lp - mx);
    if (g->top_p < 1.0) {
        double acc = 0;
        int32_t keep = 0;
        while (keep < k && acc < g->top_p * total) acc += exp(c[keep++].lp - mx);
        k = keep > 0 ? keep : 1;
        total = acc > 0 ? acc : exp(c[0].lp - mx);
    }
    double r = (double)(lmql__rng_next(g->rng) >> 11) / 9007199254740992.0 * total;
    int32_t pickt = c[k - 1].t;
    for (int32_t i = 0; i < k; i++) {
        r -= exp(c[i].lp - mx);
        if (r < 0) { pickt = c[i].t; break; }
    }
    free(c);
    return pickt;
}

static int32_t pick(struct lmql__gen *g, const float *lp, const uint8_t *mask) {
    struct lmql__model *m = g->model;
    int32_t n = m->vocab->n_tokens;
    if (m->ops->choose) return m->ops->choose(m, lp, mask);
    if (g->decoder == LMQL_DEC_ARGMAX || g->temperature <= 0) {
        int32_t best = -1;
        for (int32_t t = 0; t < n; t++)
            if (mask[t] && (best < 0 || lp[t] > lp[best])) best = t;
        return best;
    }
    /* Sample from softmax(lp / T) restricted to the mask, and to the top_k
    ** most likely / the top_p nucleus when those are set. */
    if (g->top_k > 0 || g->top_p < 1.0) return pick_truncated(g, lp, mask);
    double mx = -INFINITY, sum = 0;
    for (int32_t t = 0; t < n; t++)
        if (mask[t] && lp[t] > mx) mx = lp[t];
    if (mx == -INFINITY) return -1;
    float inv_t = (float)(1.0 / g->temperature), fmx = (float)mx;
    for (int32_t t = 0; t < n; t++)
        if (mask[t]) sum += expf((lp[t] - fmx) * inv_t);
    double r = (double)(lmql__rng_next(g->rng) >> 11) / 9007199254740992.0 * sum;
    int32_t last = -1;
    for (int32_t t = 0; t < n; t++) {
        if (!mask[t]) continue;
        last = t;
        r -= expf((lp[t] - fmx) * inv_t);
        if (r < 0) return t;
    }
    return last;
}

/* The earliest stop-phrase match that ends inside the newest bytes
** (from `fresh` on); earlier matches were already seen and ignored. */
static const struct lmql__stop *find_stop(const struct lmql__hole_rules *r, const struct lmql__buf *v, size_t fresh,
                                          int32_t n_tokens, size_t *at) {
    const struct lmql__stop *best = NULL;
    size_t best_pos = 0;
    for (int i = 0; i < r->n_stops; i++) {
        const struct lmql__stop *s = &r->stops[i];
        if (s->len == 0 || s->len > v->len) continue;
        if (r->stop_active && !r->stop_active(r->ctx, i, v->data, v->len, n_tokens)) continue;
        size_t from = fresh >= s->len ? fresh - s->len + 1 : 0;
        for (size_t p = from; p + s->len <= v->len; p++) {
            if (memcmp(v->data + p, s->text, s->len) == 0) {
                if (!best || p < best_pos) { best = s; best_pos = p; }
                break;
            }
        }
    }
    *at = best_pos;
    return best;
}

/* Keep the `width` best candidates (beam) or `width` draws (beam_sample)
** among the allowed tokens and the end of the value. */
static void frontier(struct lmql__gen *g, const float *lp, bool eos_ok) {
    struct lmql__beam_io *b = g->beam;
    const struct lmql__vocab *v = g->model->vocab;
    LMQL_ASSERT(b->width >= 1 && b->cand != NULL);   /* width entries to fill */
    b->n_cand = 0;
    float eos_lp = -INFINITY;
    for (int32_t k = 0; k < v->n_eog; k++) {
        float x = lp[v->eog[k]];
        eos_lp = eos_lp == -INFINITY ? x : fmaxf(eos_lp, x) + log1pf(expf(-fabsf(eos_lp - x)));
    }
    if (g->decoder == LMQL_DEC_BEAM_SAMPLE) {
        /* `width` draws from softmax(lp / T) over the allowed tokens and the
        ** end: one cumulative table, then a binary search per draw. */
        int32_t n = v->n_tokens;
        double *cdf = lmql__malloc(((size_t)n + 1) * sizeof *cdf);
        if (!cdf) return;
        double mx = eos_ok ? eos_lp : -INFINITY, acc = 0;
        for (int32_t t = 0; t < n; t++)
            if (g->mask[t] && !v->is_eog[t] && lp[t] > mx) mx = lp[t];
        for (int32_t t = 0; t < n; t++) {
            if (g->mask[t] && !v->is_eog[t]) acc += exp((lp[t] - mx) / g->temperature);
            cdf[t] = acc;
        }
        if (eos_ok) acc += exp((eos_lp - mx) / g->temperature);
        cdf[n] = acc;
        for (int i = 0; i < b->width && acc > 0; i++) {
            double r = (double)(lmql__rng_next(g->rng) >> 11) / 9007199254740992.0 * acc;
            int32_t lo = 0, hi = n;   /* the first index whose cdf exceeds r */
            while (lo < hi) {
                int32_t mid = lo + (hi - lo) / 2;
                if (cdf[mid] > r) hi = mid; else lo = mid + 1;
            }
            int32_t tok = lo >= n ? LMQL__END : lo;
            bool dup = false;
            for (int j = 0; j < b->n_cand && !dup; j++) dup = b->cand[j].tok == tok;
            if (!dup) b->cand[b->n_cand++] = (struct lmql__cand){tok, tok == LMQL__END ? eos_lp : lp[tok]};
        }
        free(cdf);
        return;
    }
    /* The best `width`, by insertion into a small sorted array. */
    for (int32_t t = -1; t < v->n_tokens; t++) {
        float x;
        int32_t tok;
        if (t < 0) {
            if (!eos_ok) continue;
            x = eos_lp;
            tok = LMQL__END;
        } else {
            if (!g->mask[t] || v->is_eog[t]) continue;
            x = lp[t];
            tok = t;
        }
        if (b->n_cand == b->width && x <= b->cand[b->n_cand - 1].lp) continue;
        int i = b->n_cand < b->width ? b->n_cand++ : b->n_cand - 1;
        while (i > 0 && b->cand[i - 1].lp < x) { b->cand[i] = b->cand[i - 1]; i--; }
        b->cand[i] = (struct lmql__cand){tok, x};
    }
}

/* The token to take without the model when the rules force bytes: the
** first of their canonical tokenization, if the mask allows it. -1 when
** nothing is forced (or that token is not allowed), -2 with err. */
static int32_t fast_forward(struct lmql__gen *g, const struct lmql__hole_rules *rules, const struct lmql__buf *value,
                            struct lmql__err *err) {
    char text[64];
    int n = rules->forced(rules->ctx, value->data ? value->data : "", value->len, text, (int)sizeof text, err);
    if (n < 0) return -2;
    if (n == 0) return -1;
    int32_t toks[64];
    int32_t k = g->model->ops->tokenize(g->model, text, (size_t)n, false, true, toks, 64, err);
    if (k == INT32_MIN) return -2;
    if (k <= 0) return -1;
    int32_t t = toks[0];
    uint32_t len;
    const char *piece = lmql__vocab_piece(g->model->vocab, t, &len);
    /* the token must spell forced bytes, and every other rule must allow it */
    if (t < 0 || t >= g->model->vocab->n_tokens || !g->mask[t] || len == 0 || len > (uint32_t)n ||
        memcmp(piece, text, len))
        return -1;
    return t;
}

/* The last bytes of a value, quoted with \n \" \\ escaped, for a message;
** "..." in front when it was cut. */
static void value_tail(const char *v, size_t len, char *out, size_t cap) {
    LMQL_ASSERT(cap >= 16);
    size_t from = len > 240 ? len - 240 : 0, n = 0;
    while (from > 0 && from < len && ((unsigned char)v[from] & 0xC0) == 0x80) from++; /* a whole character */
    if (from) n += (size_t)snprintf(out, cap, "...");
    out[n++] = '"';
    for (size_t i = from; i < len && n + 4 < cap; i++) {
        char c = v[i];
        if (c == '\n') { out[n++] = '\\'; out[n++] = 'n'; }
        else if (c == '"' || c == '\\') { out[n++] = '\\'; out[n++] = c; }
        else out[n++] = c;
    }
    out[n++] = '"';
    out[n] = 0;
}

int32_t lmql__generate(struct lmql__gen *g, const struct lmql__hole_rules *rules, struct lmql__seq *seq,
                       struct lmql__buf *value, struct lmql__err *err) {
    struct lmql__model *m = g->model;
    const struct lmql__vocab *v = m->vocab;
    int32_t n_gen = 0;
    LMQL_ASSERT(g->mask != NULL && (!g->beam || g->beam->pos <= g->beam->n_trace));
    if (lmql__buf_reserve(value, 0)) return lmql__errf(err, "out of memory");
    for (;;) {
        int32_t limit = g->max_len < m->n_ctx ? g->max_len : m->n_ctx;
        if (seq->n >= limit) {
            /* LMQL ends the run with an error here too (its decoders stop
            ** at max_len and the interpreter refuses the unfinished result):
            ** a value cut short may break its constraints. What the hole had
            ** generated goes into the message so the user loses nothing. */
            char tail[400];
            value_tail(value->data, value->len, tail, sizeof tail);
            return lmql__errf(err, "the sequence reached %d tokens, the limit (%s=%d), with the hole unfinished "
                              "(its value so far: %s); raise the limit", seq->n,
                              g->max_len < m->n_ctx ? "max_len" : "n_ctx", limit, tail);
        }
        /* The mask first: when it leaves only EOS, or one forced token, the
        ** model has nothing to decide. */
        bool eos_ok = true;
        int32_t n_allowed = 0, only = -1;
        if (rules->mask) {
            if (rules->mask(rules->ctx, value->data, value->len, n_gen, g->mask, &eos_ok, err)) return -1;
            for (int32_t t = 0; t < v->n_tokens && n_allowed < 2; t++)
                if (g->mask[t]) { n_allowed++; only = t; }
        } else {
            for (int32_t t = 0; t < v->n_tokens; t++) g->mask[t] = v->off[t + 1] > v->off[t];
            n_allowed = 2;
        }
        if (n_allowed == 0) break;
        int32_t t;
        struct lmql__beam_io *b = g->beam;
        int32_t ff = -1;
        if (n_allowed == 1 && !eos_ok && !m->ops->choose) {
            t = only;
        } else if (n_allowed > 1 && !eos_ok && !m->ops->choose && rules->forced &&
                   (ff = fast_forward(g, rules, value, err)) != -1) {
            if (ff < -1) return -1;
            t = ff;
        } else if (b && b->pos < b->n_trace) {
            t = b->trace[b->pos++];      /* a choice made in an earlier step */
            if (t == LMQL__END) break;
            if (t < 0 || t >= v->n_tokens) return lmql__errf(err, "bad beam trace");
        } else if (b) {
            for (int32_t k = 0; k < v->n_eog; k++) g->mask[v->eog[k]] = eos_ok;
            struct lmql__eval_req req = {g->slot, seq->toks, seq->n, g->mask, NULL};
            const float *lp;
            if (m->ops->next_logprobs(m, 1, &req, &lp, err)) return -1;
            frontier(g, lp, eos_ok);
            return -2;
        } else {
            for (int32_t k = 0; k < v->n_eog; k++) g->mask[v->eog[k]] = eos_ok;
            struct lmql__sampling sp = {g->temperature, g->top_k, g->top_p};
            bool sampling = g->decoder == LMQL_DEC_SAMPLE && g->temperature > 0;
            struct lmql__eval_req req = {g->slot, seq->toks, seq->n, g->mask, sampling ? &sp : NULL};
            const float *lp;
            if (m->ops->next_logprobs(m, 1, &req, &lp, err)) return -1;
            t = pick(g, lp, g->mask);
            if (t < 0) return lmql__errf(err, "no token satisfies the constraints");
            LMQL_ASSERT(t < v->n_tokens && g->mask[t]);   /* a choice among the allowed tokens */
            if (v->is_eog[t]) break;
        }
        if (lmql__seq_push(seq, &t, 1)) return lmql__errf(err, "out of memory");
        n_gen++;
        uint32_t len;
        const char *piece = lmql__vocab_piece(v, t, &len);
        size_t fresh = value->len;
        if (lmql__buf_add(value, piece, len)) return lmql__errf(err, "out of memory");
        if (g->on_token) g->on_token(g->ud, piece, len);
        size_t at;
        const struct lmql__stop *s = find_stop(rules, value, fresh, n_gen, &at);
        if (s) {
            LMQL_ASSERT(at + s->len <= value->len);   /* the match lies in the value */
            value->len = s->before ? at : at + s->len;
            value->data[value->len] = 0;
            break;
        }
    }
    return n_gen;
}
