/*
** The server's LMTP replies, read by a client (lmtp.h): the inverse of the
** reply writers of lmtp.c. Replies are small next to commands (a TOKEN
** payload, or one VOCAB per connection), so they go through the generic
** JSON reader; every field is checked here, once, for every client.
*/
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "lmtp.h"
#include "value.h"

const char *lmql__lmtp_clean(const char *s, char *buf, size_t cap) {
    size_t n = 0;
    if (!cap) return buf;
    for (; s && *s && n + 1 < cap; s++) buf[n++] = (unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s;
    buf[n] = 0;
    return buf;
}

static struct lmql_val *field(const struct lmql_val *d, const char *k) {
    if (!d || d->kind != LMQL_V_DICT) return NULL;
    for (size_t i = 0; i < d->u.dict.len; i++) {
        const struct lmql_val *key = d->u.dict.keys[i];
        if (key->kind == LMQL_V_STR && !strcmp(key->u.str.s, k)) return d->u.dict.vals[i];
    }
    return NULL;
}

static bool num(const struct lmql_val *v, double *out) {
    if (!v) return false;
    if (v->kind == LMQL_V_INT) { *out = (double)v->u.i; return true; }
    if (v->kind == LMQL_V_FLOAT) { *out = v->u.f; return true; }
    return false;
}

static const struct lmql_val *payload(const struct lmql__lmtp_reply *r, size_t i) {
    LMQL_ASSERT(!r->list || (r->list->kind == LMQL_V_LIST && r->n == r->list->u.list.len));
    return r->list && i < r->n ? r->list->u.list.items[i] : NULL;
}

int lmql__lmtp_read_reply(const char *frame, size_t n, struct lmql__lmtp_reply *r, struct lmql__err *err) {
    memset(r, 0, sizeof *r);
    const char *sp = memchr(frame, ' ', n);
    struct lmql__err jerr = {0};
    struct lmql_val *v = sp ? lmql__json_parse_doubles(sp + 1, n - (size_t)(sp + 1 - frame), &jerr) : NULL;
    if (!v || v->kind != LMQL_V_LIST) {
        lmql__val_unref(v);
        char shown[84], head[84];
        size_t k = n < sizeof head - 1 ? n : sizeof head - 1;
        memcpy(head, frame, k);
        head[k] = 0;
        lmql__errf(err, "sent a malformed message: %s", lmql__lmtp_clean(head, shown, sizeof shown));
        return -1;
    }
    r->token = sp - frame == 5 && !memcmp(frame, "TOKEN", 5);
    r->list = v;
    r->n = v->u.list.len;
    return 0;
}

void lmql__lmtp_reply_free(struct lmql__lmtp_reply *r) {
    lmql__val_unref(r->list);
    memset(r, 0, sizeof *r);
}

int64_t lmql__lmtp_read_stream(const struct lmql__lmtp_reply *r, size_t i) {
    double d;
    if (!num(field(payload(r, i), "stream_id"), &d) || !(d >= 0 && d < 9e15)) return -1;
    return (int64_t)d;
}

const char *lmql__lmtp_read_error(const struct lmql__lmtp_reply *r, size_t i, char *buf, size_t cap) {
    const struct lmql_val *e = field(payload(r, i), "error");
    if (!e) return NULL;
    return lmql__lmtp_clean(e->kind == LMQL_V_STR ? e->u.str.s : "the server reported an error", buf, cap);
}

void lmql__lmtp_read_token(const struct lmql__lmtp_reply *r, size_t i, int32_t n_vocab, int max_top,
                           struct lmql__lmtp_token_reply *t) {
    const struct lmql_val *p = payload(r, i);
    memset(t, 0, sizeof *t);
    t->logprob = -INFINITY;
    t->stream_id = lmql__lmtp_read_stream(r, i);
    if (t->stream_id < 0) return;
    if (lmql__lmtp_read_error(r, i, t->error, sizeof t->error)) {
        t->has_error = true;
        return;
    }
    const struct lmql_val *fr = field(p, "finish_reason");
    t->finished = fr && fr->kind == LMQL_V_STR;
    double d;
    if (!num(field(p, "token"), &d) || !(d >= 0 && d < n_vocab)) return;
    t->has_token = true;
    t->token = (int32_t)d;
    num(field(p, "logprob"), &t->logprob);
    if (max_top > LMQL__LMTP_MAX_TOP) max_top = LMQL__LMTP_MAX_TOP;
    const struct lmql_val *tl = field(p, "top_logprobs");
    for (size_t k = 0; tl && tl->kind == LMQL_V_DICT && k < tl->u.dict.len && t->n_top < max_top; k++) {
        const struct lmql_val *key = tl->u.dict.keys[k];
        double v;
        if (key->kind != LMQL_V_STR) continue;
        long id = strtol(key->u.str.s, NULL, 10);
        if (id == t->token || id < 0 || id >= n_vocab || !num(tl->u.dict.vals[k], &v)) continue;
        t->top[t->n_top] = (int32_t)id;
        t->top_lp[t->n_top++] = (float)v;
    }
}

void lmql__lmtp_read_info(const struct lmql__lmtp_reply *r, size_t i, struct lmql__lmtp_info_reply *info) {
    memset(info, 0, sizeof *info);
    const struct lmql_val *mi = field(payload(r, i), "model_info"), *h = field(mi, "vocab_hash");
    if (h && h->kind == LMQL_V_STR) {
        info->has_hash = true;
        info->hash_ok = h->u.str.len == 16;
        for (size_t k = 0; info->hash_ok && k < 16; k++) {
            char c = h->u.str.s[k];
            int x = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (x < 0) info->hash_ok = false;
            else info->vocab_hash = info->vocab_hash << 4 | (uint64_t)x;
        }
        if (!info->hash_ok) info->vocab_hash = 0;
    }
    info->has_n_vocab = num(field(mi, "n_vocab"), &info->n_vocab);
    const struct lmql_val *ct = field(mi, "chat_template");
    if (ct && (ct->kind == LMQL_V_STR || ct->kind == LMQL_V_NONE)) {
        info->has_template = true;
        info->chat_template = ct->kind == LMQL_V_STR ? ct->u.str.s : NULL;
        info->chat_template_len = ct->kind == LMQL_V_STR ? ct->u.str.len : 0;
    }
}

int32_t lmql__lmtp_read_tokens(const struct lmql__lmtp_reply *r, size_t i, int32_t n_vocab, int32_t *out,
                               int32_t cap, struct lmql__err *err) {
    const struct lmql_val *t = field(payload(r, i), "tokens");
    if (!t || t->kind != LMQL_V_LIST || t->u.list.len > INT32_MAX) {
        lmql__errf(err, "sent no tokens for TOKENIZE");
        return INT32_MIN;
    }
    int32_t n = (int32_t)t->u.list.len;
    /* Every id is checked, wherever it lands: a token outside the
    ** vocabulary would index past the end of its tables. */
    for (int32_t k = 0; k < n; k++) {
        double d = -1;
        if (!num(t->u.list.items[k], &d) || !(d >= 0 && d < n_vocab) || d != (int32_t)d) {
            lmql__errf(err, "answered TOKENIZE with a token outside its vocabulary of %d", n_vocab);
            return INT32_MIN;
        }
        if (k < cap) out[k] = (int32_t)d;
    }
    return n > cap ? -n : n;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

void lmql__lmtp_vocab_reply_free(struct lmql__lmtp_vocab_reply *v) {
    free(v->eog);
    free(v->bytes);
    free(v->off);
    memset(v, 0, sizeof *v);
}

int lmql__lmtp_read_vocab(const struct lmql__lmtp_reply *r, size_t i, struct lmql__lmtp_vocab_reply *v,
                          struct lmql__err *err) {
    memset(v, 0, sizeof *v);
    const struct lmql_val *vv = field(payload(r, i), "vocab"), *pieces = field(vv, "pieces"), *eog = field(vv, "eog");
    if (!pieces || pieces->kind != LMQL_V_LIST || !eog || eog->kind != LMQL_V_LIST || pieces->u.list.len < 1)
        return 1;
    if (pieces->u.list.len > LMQL__LMTP_MAX_VOCAB) {
        lmql__errf(err, "sent a vocabulary of %zu tokens (the limit is %d)", pieces->u.list.len,
                 LMQL__LMTP_MAX_VOCAB);
        return -1;
    }
    int32_t n = (int32_t)pieces->u.list.len;
    size_t total = 0;
    for (int32_t t = 0; t < n; t++) {
        const struct lmql_val *s = pieces->u.list.items[t];
        if (s->kind != LMQL_V_STR || s->u.str.len % 2) {
            lmql__errf(err, "sent a bad vocabulary: piece %d is not a hex string", t);
            return -1;
        }
        if (s->u.str.len / 2 > LMQL__LMTP_MAX_PIECE) {
            lmql__errf(err, "sent a vocabulary piece of %zu bytes (token %d; the limit is %d)", s->u.str.len / 2,
                     t, LMQL__LMTP_MAX_PIECE);
            return -1;
        }
        total += s->u.str.len / 2;
    }
    v->n_vocab = n;
    v->bytes = lmql__malloc(total + 1);
    v->off = lmql__malloc(((size_t)n + 1) * sizeof *v->off);
    v->eog = lmql__malloc(((size_t)n + 1) * sizeof *v->eog);
    uint8_t *seen = lmql__calloc((size_t)n, 1);
    if (!v->bytes || !v->off || !v->eog || !seen) {
        lmql__err_set(err, LMQL_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    size_t at = 0;
    for (int32_t t = 0; t < n; t++) {
        const struct lmql_val *s = pieces->u.list.items[t];
        v->off[t] = (uint32_t)at;
        for (size_t k = 0; k + 1 < s->u.str.len; k += 2) {
            int hi = hexval(s->u.str.s[k]), lo = hexval(s->u.str.s[k + 1]);
            if (hi < 0 || lo < 0) {
                lmql__errf(err, "sent a bad vocabulary: piece %d is not a hex string", t);
                goto fail;
            }
            v->bytes[at++] = (char)(hi << 4 | lo);
        }
    }
    LMQL_ASSERT(at == total);   /* every piece decoded to half its hex digits */
    v->off[n] = (uint32_t)at;
    /* Each end-of-generation token once, whatever the server repeats. */
    for (size_t k = 0; k < eog->u.list.len; k++) {
        double d;
        if (num(eog->u.list.items[k], &d) && d >= 0 && d < n && !seen[(int32_t)d]) {
            v->eog[v->n_eog++] = (int32_t)d;
            seen[(int32_t)d] = 1;
        }
    }
    free(seen);
    LMQL_ASSERT(v->n_eog <= n);   /* without repeats: each id once */
    double bos = -1, eos = -1;
    num(field(vv, "bos"), &bos);
    num(field(vv, "eos"), &eos);
    v->bos = bos >= 0 && bos < n ? (int32_t)bos : -1;
    v->eos = eos >= 0 && eos < n ? (int32_t)eos : -1;
    const struct lmql_val *ab = field(vv, "add_bos");
    v->add_bos = ab && ab->kind == LMQL_V_BOOL && ab->u.b;
    return 0;
fail:
    free(seen);
    lmql__lmtp_vocab_reply_free(v);
    return -1;
}
