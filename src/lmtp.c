/*
** LMTP frames (see lmtp.h): a one-pass reader for client commands and the
** writers of server replies.
*/
#include "lmtp.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct rd {
    const char *s;
    size_t n, i;
    int depth;
    struct lmql__err *err;   /* the first error wins */
    bool failed;
    bool unknown;       /* an unknown command: that stays the message, whatever follows */
};

static void rfail(struct rd *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void rfail(struct rd *r, const char *fmt, ...) {
    if (r->failed) return;
    r->failed = true;
    r->err->status = LMQL_ERR_QUERY;   /* the request is wrong */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err->msg, sizeof r->err->msg, fmt, ap);
    va_end(ap);
}

static void ws(struct rd *r) {
    while (r->i < r->n && (r->s[r->i] == ' ' || r->s[r->i] == '\t' || r->s[r->i] == '\n' || r->s[r->i] == '\r'))
        r->i++;
}

static bool eat(struct rd *r, char c) {
    ws(r);
    if (r->i < r->n && r->s[r->i] == c) {
        r->i++;
        return true;
    }
    return false;
}

/* A syntax error: the rest of the frame cannot be read. */
static int syntax(struct rd *r, const char *what) {
    if (r->unknown) return -1;
    r->failed = false;   /* a syntax error replaces a field error: it is the real cause */
    rfail(r, "malformed JSON at byte %zu: %s", r->i, what);
    if (!strcmp(what, "out of memory")) r->err->status = LMQL_ERR_NOMEM;
    return -1;
}

/* A string into out (decoded, NUL-terminated) or skipped when out is NULL. */
static int read_string(struct rd *r, struct lmql__buf *out) {
    ws(r);
    const char *bad = lmql__json_unescape(r->s, r->n, &r->i, out);
    if (!bad && out && lmql__buf_add(out, "", 1)) bad = "out of memory";
    if (bad) return syntax(r, bad);
    LMQL_ASSERT(!out || (out->len >= 1 && out->data[out->len - 1] == 0));   /* NUL-terminated, the NUL counted */
    return 0;
}

/* A JSON number (its exact grammar), as a double. */
static int read_number(struct rd *r, double *out) {
    ws(r);
    int64_t iv;
    bool is_int;
    const char *bad = lmql__json_number(r->s, r->n, &r->i, out, &iv, &is_int);
    return bad ? syntax(r, bad) : 0;
}

static bool word(struct rd *r, const char *w) {
    size_t k = strlen(w);
    ws(r);
    if (r->i + k <= r->n && !memcmp(r->s + r->i, w, k)) {
        r->i += k;
        return true;
    }
    return false;
}

/* Any value, skipped; nesting is bounded so hostile frames cannot recurse deep. */
static int skip_value(struct rd *r) {
    ws(r);
    if (r->i >= r->n) return syntax(r, "unexpected end");
    char c = r->s[r->i];
    if (c == '"') return read_string(r, NULL);
    if (c == '-' || (c >= '0' && c <= '9')) {
        double d;
        return read_number(r, &d);
    }
    if (word(r, "true") || word(r, "false") || word(r, "null")) return 0;
    if (c != '{' && c != '[') return syntax(r, "unexpected character");
    if (++r->depth > 32) return syntax(r, "nesting too deep");
    bool obj = c == '{';
    r->i++;
    if (!eat(r, obj ? '}' : ']')) {
        for (;;) {
            if (obj && (read_string(r, NULL) || (!eat(r, ':') && syntax(r, "expected ':'")))) return -1;
            if (skip_value(r)) return -1;
            if (eat(r, ',')) continue;
            if (eat(r, obj ? '}' : ']')) break;
            return syntax(r, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    r->depth--;
    return 0;
}

/* What kind of value starts here: '"', '0' (number), '[', '{', 't'/'f' (bool), 'n'. */
static char peek_kind(struct rd *r) {
    ws(r);
    if (r->i >= r->n) return 0;
    char c = r->s[r->i];
    return c == '-' || (c >= '0' && c <= '9') ? '0' : c;
}

static const char *kind_name(char k) {
    switch (k) {
    case '"': return "a string";
    case '0': return "a number";
    case '[': return "a list";
    case '{': return "an object";
    case 't': case 'f': return "a boolean";
    case 'n': return "null";
    default: return "nothing";
    }
}

/* An integer field in [lo, hi]. */
static int read_int(struct rd *r, const char *key, int64_t lo, int64_t hi, int64_t *out) {
    char k = peek_kind(r);
    if (k != '0') {
        rfail(r, "'%s' must be an integer, not %s", key, kind_name(k));
        return skip_value(r);
    }
    double d;
    if (read_number(r, &d)) return -1;
    if (d != floor(d) || !(d >= (double)lo && d <= (double)hi)) {
        rfail(r, "'%s' must be an integer from %lld to %lld, not %g", key, (long long)lo, (long long)hi, d);
        return 0;
    }
    *out = (int64_t)d;
    return 0;
}

static int read_real(struct rd *r, const char *key, double lo, double hi, double *out) {
    char k = peek_kind(r);
    if (k != '0') {
        rfail(r, "'%s' must be a number, not %s", key, kind_name(k));
        return skip_value(r);
    }
    double d;
    if (read_number(r, &d)) return -1;
    if (!(d >= lo && d <= hi)) {
        rfail(r, "'%s' must be a number from %g to %g, not %g", key, lo, hi, d);
        return 0;
    }
    *out = d;
    return 0;
}

static int read_bool(struct rd *r, const char *key, bool *out) {
    if (word(r, "true")) { *out = true; return 0; }
    if (word(r, "false")) { *out = false; return 0; }
    rfail(r, "'%s' must be true or false, not %s", key, kind_name(peek_kind(r)));
    return skip_value(r);
}

static int read_ids(struct rd *r, const char *key, int32_t max_items, int32_t **out, int32_t *n_out) {
    if (peek_kind(r) != '[') {
        rfail(r, "'%s' must be a list of token ids, not %s", key, kind_name(peek_kind(r)));
        return skip_value(r);
    }
    r->i++;
    int32_t n = 0, cap = 0, *v = NULL;
    bool bad = false;
    if (!eat(r, ']')) {
        for (;;) {
            int64_t id = 0;
            bool was_failed = r->failed;
            if (read_int(r, key, 0, INT32_MAX, &id)) { free(v); return -1; }
            if (r->failed && !was_failed) bad = true;
            if (n == max_items) {
                rfail(r, "'%s' holds more than %d tokens", key, max_items);
                bad = true;
            }
            if (!bad) {
                if (n == cap) {
                    int32_t nc = cap ? cap * 2 : 64;
                    int32_t *p = lmql__realloc(v, (size_t)nc * sizeof *p);
                    if (!p) { free(v); return syntax(r, "out of memory"); }
                    v = p;
                    cap = nc;
                }
                v[n++] = (int32_t)id;
            }
            if (eat(r, ',')) continue;
            if (eat(r, ']')) break;
            free(v);
            return syntax(r, "expected ',' or ']'");
        }
    }
    if (bad) { free(v); return 0; }
    free(*out);
    *out = v;
    *n_out = n;
    return 0;
}

/* logit_bias: {"<token id>": number, ...}; null means none. */
static int read_bias(struct rd *r, int32_t max_items, struct lmql__lmtp_cmd *c) {
    if (word(r, "null")) return 0;
    if (peek_kind(r) != '{') {
        rfail(r, "'logit_bias' must be an object of token id: bias, not %s", kind_name(peek_kind(r)));
        return skip_value(r);
    }
    r->i++;
    /* A repeated key replaces the earlier value, as in any JSON object. */
    free(c->bias);
    c->bias = NULL;
    c->n_bias = 0;
    int32_t cap = 0;
    struct lmql__buf key = {0};
    bool bad = false;
    int rc = 0;
    if (!eat(r, '}')) {
        for (;;) {
            key.len = 0;
            if (read_string(r, &key) || (!eat(r, ':') && syntax(r, "expected ':'"))) { rc = -1; break; }
            char *end;
            long long id = strtoll(key.data, &end, 10);
            if (!key.data[0] || *end || id < 0 || id > INT32_MAX) {
                rfail(r, "'logit_bias' key \"%.40s\" is not a token id", key.data);
                bad = true;
            }
            double v = 0;
            bool was_failed = r->failed;
            if (read_real(r, "logit_bias value", -1e30, 1e30, &v)) { rc = -1; break; }
            if (r->failed && !was_failed) bad = true;
            if (!bad && c->n_bias == max_items) {
                rfail(r, "'logit_bias' holds more than %d entries", max_items);
                bad = true;
            }
            if (!bad) {
                if (c->n_bias == cap) {
                    int32_t nc = cap ? cap * 2 : 64;
                    struct lmql__lmtp_bias *p = lmql__realloc(c->bias, (size_t)nc * sizeof *p);
                    if (!p) { rc = syntax(r, "out of memory"); break; }
                    c->bias = p;
                    cap = nc;
                }
                c->bias[c->n_bias++] = (struct lmql__lmtp_bias){(int32_t)id, (float)v};
            }
            if (eat(r, ',')) continue;
            if (eat(r, '}')) break;
            rc = syntax(r, "expected ',' or '}'");
            break;
        }
    }
    lmql__buf_free(&key);
    return rc;
}

static const char *const k_keys =
    "stream_id, model, prompt, scored, max_tokens, temperature, top_logprobs, top_k, top_p, logit_bias, data";

static int read_field(struct rd *r, const char *key, int32_t max_items, struct lmql__lmtp_cmd *c) {
    if (!strcmp(key, "stream_id")) {
        int64_t id = -1;
        bool was_failed = r->failed;
        if (read_int(r, key, 0, INT64_MAX / 2, &id)) return -1;
        if (!r->failed || was_failed) {
            c->stream_id = id;
            c->has_stream_id = id >= 0;
        }
        return 0;
    }
    if (!strcmp(key, "model") || !strcmp(key, "text")) {
        if (peek_kind(r) != '"') {
            rfail(r, "'%s' must be a string, not %s", key, kind_name(peek_kind(r)));
            return skip_value(r);
        }
        struct lmql__buf s = {0};
        if (read_string(r, &s)) { lmql__buf_free(&s); return -1; }
        if (key[0] == 'm') { free(c->model); c->model = s.data; }
        else { free(c->text); c->text = s.data; c->text_len = s.len - 1; }
        return 0;
    }
    if (!strcmp(key, "prompt")) { c->has_prompt = true; return read_ids(r, key, max_items, &c->prompt, &c->n_prompt); }
    if (!strcmp(key, "scored")) { c->has_scored = true; return read_ids(r, key, max_items, &c->scored, &c->n_scored); }
    if (!strcmp(key, "max_tokens")) return read_int(r, key, 1, INT32_MAX, &c->max_tokens);
    if (!strcmp(key, "top_logprobs")) return read_int(r, key, 0, 1000, &c->top_logprobs);
    if (!strcmp(key, "top_k")) return read_int(r, key, 0, INT32_MAX, &c->top_k);
    if (!strcmp(key, "temperature")) return read_real(r, key, 0, 1e6, &c->temperature);
    if (!strcmp(key, "top_p")) return read_real(r, key, 1e-9, 1, &c->top_p);
    if (!strcmp(key, "logit_bias")) return read_bias(r, max_items, c);
    if (!strcmp(key, "bos")) return read_bool(r, key, &c->bos);
    if (!strcmp(key, "cont")) return read_bool(r, key, &c->cont);
    if (!strcmp(key, "special")) return read_bool(r, key, &c->special);
    if (!strcmp(key, "data")) return skip_value(r);   /* MODEL_INFO's echo of the model name */
    rfail(r, "unsupported parameter '%.40s' (this server takes: %s)", key, k_keys);
    return skip_value(r);
}

static const struct {
    const char *name;
    enum lmql__lmtp_kind kind;
} k_cmds[] = {
    {"GENERATE", LMTP_GENERATE}, {"SCORE", LMTP_SCORE}, {"MODEL_INFO", LMTP_MODEL_INFO},
    {"CANCEL", LMTP_CANCEL},     {"VOCAB", LMTP_VOCAB}, {"TOKENIZE", LMTP_TOKENIZE},
};

int lmql__lmtp_parse(const char *frame, size_t n, int32_t max_items, struct lmql__lmtp_cmd *c,
                     struct lmql__err *err) {
    memset(c, 0, sizeof *c);
    c->stream_id = -1;
    c->max_tokens = 32;
    c->top_logprobs = 1;
    c->top_p = 1;
    struct rd r = {frame, n, 0, 0, err, false, false};
    LMQL_ASSERT(err != NULL && max_items >= 0 && (frame || n == 0));
    memset(err, 0, sizeof *err);
    size_t sp = 0;
    while (sp < n && frame[sp] != ' ') sp++;
    bool known = false;
    c->kind = LMTP_UNKNOWN;
    for (size_t k = 0; k < sizeof k_cmds / sizeof *k_cmds; k++)
        if (strlen(k_cmds[k].name) == sp && !memcmp(frame, k_cmds[k].name, sp)) {
            c->kind = k_cmds[k].kind;
            known = true;
        }
    if (!known) {
        /* Printable bytes only: the name goes back into a JSON reply. */
        char name[41];
        size_t k = 0;
        for (; k < sp && k < 40; k++) name[k] = frame[k] >= 0x20 && frame[k] < 0x7f ? frame[k] : '?';
        name[k] = 0;
        rfail(&r, "Unknown command: %s", name);
        r.unknown = true;
    }
    r.i = sp < n ? sp + 1 : n;
    if (!eat(&r, '{')) return syntax(&r, "expected '{' after the command");
    if (!eat(&r, '}')) {
        struct lmql__buf key = {0};
        for (;;) {
            key.len = 0;
            if (read_string(&r, &key) || (!eat(&r, ':') && syntax(&r, "expected ':'")) ||
                read_field(&r, key.data, max_items, c)) {
                lmql__buf_free(&key);
                return -1;
            }
            if (eat(&r, ',')) continue;
            if (eat(&r, '}')) break;
            lmql__buf_free(&key);
            return syntax(&r, "expected ',' or '}'");
        }
        lmql__buf_free(&key);
    }
    ws(&r);
    if (r.i != n) return syntax(&r, "trailing characters");
    LMQL_ASSERT(r.depth == 0);   /* every object and list skipped was closed */
    /* "max_items caps the length of each array and of logit_bias" */
    LMQL_ASSERT(c->n_prompt <= max_items && c->n_scored <= max_items && c->n_bias <= max_items);
    if (!r.failed && (c->kind == LMTP_GENERATE || c->kind == LMTP_SCORE) && !c->has_prompt)
        rfail(&r, "'prompt' is required");
    if (!r.failed && c->kind == LMTP_SCORE && !c->has_scored) rfail(&r, "'scored' is required");
    if (!r.failed && c->kind == LMTP_TOKENIZE && !c->text) rfail(&r, "'text' is required");
    return r.failed ? -1 : 0;
}

void lmql__lmtp_cmd_free(struct lmql__lmtp_cmd *c) {
    free(c->model);
    free(c->prompt);
    free(c->scored);
    free(c->bias);
    free(c->text);
    memset(c, 0, sizeof *c);
}

/* ------------------------------------------------------------ replies -- */

static int add_id(struct lmql__buf *b, int64_t stream_id) {
    return stream_id >= 0 ? lmql__buf_addf(b, "%lld", (long long)stream_id) : lmql__buf_adds(b, "null");
}

/* Log-probabilities: JSON has no -Infinity; a forbidden token is -1e30. */
static int add_lp(struct lmql__buf *b, double lp) {
    if (!isfinite(lp)) lp = lp > 0 ? 1e30 : -1e30;
    return lmql__buf_addf(b, "%.9g", lp);
}

int lmql__lmtp_token(struct lmql__buf *b, int64_t stream_id, int32_t tok, double logprob, const char *finish,
                     const int32_t *top, const float *top_lp, int n_top) {
    LMQL_ASSERT(tok >= 0 && n_top >= 0 && (!top || top_lp));
    int rc = lmql__buf_addf(b, "TOKEN [{\"token\": %d, \"stream_id\": ", tok);
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_adds(b, ", \"logprob\": ");
    rc |= add_lp(b, logprob);
    rc |= lmql__buf_adds(b, ", \"finish_reason\": ");
    rc |= finish ? lmql__buf_addf(b, "\"%s\"", finish) : lmql__buf_adds(b, "null");
    if (top) {
        rc |= lmql__buf_adds(b, ", \"top_logprobs\": {");
        for (int k = 0; k < n_top; k++) {
            rc |= lmql__buf_addf(b, "%s\"%d\": ", k ? ", " : "", top[k]);
            rc |= add_lp(b, top_lp[k]);
        }
        rc |= lmql__buf_adds(b, "}");
    }
    rc |= lmql__buf_adds(b, "}]");
    return rc ? -1 : 0;
}

int lmql__lmtp_error(struct lmql__buf *b, const char *cmd, int64_t stream_id, const char *msg) {
    int rc = lmql__buf_addf(b, "%s [{\"stream_id\": ", cmd);
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_adds(b, ", \"error\": ");
    rc |= lmql__buf_json_str(b, msg, strlen(msg));
    rc |= lmql__buf_adds(b, "}]");
    return rc ? -1 : 0;
}

int lmql__lmtp_model_info(struct lmql__buf *b, int64_t stream_id, const struct lmql__lmtp_info *info) {
    int rc = lmql__buf_adds(b, "MSG [{\"stream_id\": ");
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_adds(b, ", \"model_info\": {\"model_identifier\": ");
    rc |= lmql__buf_json_str(b, info->model_identifier, strlen(info->model_identifier));
    rc |= lmql__buf_adds(b, ", \"model_type\": \"llama.cpp\", \"constructor\": ");
    rc |= lmql__buf_json_str(b, info->constructor, strlen(info->constructor));
    rc |= lmql__buf_adds(b, ", \"server\": ");
    rc |= lmql__buf_json_str(b, info->server, strlen(info->server));
    rc |= lmql__buf_addf(b, ", \"n_vocab\": %d, \"n_ctx\": %d, \"n_seq_max\": %d, \"vocab_hash\": \"%016llx\"",
                         info->n_vocab, info->n_ctx, info->n_seq_max, (unsigned long long)info->vocab_hash);
    /* An extension: clients render role tags with it (null: LMQL's text). */
    rc |= lmql__buf_adds(b, ", \"chat_template\": ");
    if (info->chat_template) rc |= lmql__buf_json_str(b, info->chat_template, strlen(info->chat_template));
    else rc |= lmql__buf_adds(b, "null");
    rc |= lmql__buf_adds(b, "}}]");
    return rc ? -1 : 0;
}

/* ", " between the items of a list, "" before the first. */
static int add_ids(struct lmql__buf *b, const int32_t *v, int32_t n, const char *sep) {
    int rc = 0;
    for (int32_t i = 0; i < n; i++) rc |= lmql__buf_addf(b, "%s%d", i ? sep : "", v[i]);
    return rc;
}

int lmql__lmtp_vocab(struct lmql__buf *b, int64_t stream_id, const struct lmql__lmtp_vocab *v) {
    static const char hex[] = "0123456789abcdef";
    int rc = lmql__buf_adds(b, "MSG [{\"stream_id\": ");
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_addf(b, ", \"vocab\": {\"n_vocab\": %d, \"bos\": %d, \"eos\": %d, \"add_bos\": %s, \"eog\": [",
                         v->n_vocab, v->bos, v->eos, v->add_bos ? "true" : "false");
    rc |= add_ids(b, v->eog, v->n_eog, ", ");
    rc |= lmql__buf_adds(b, "], \"pieces\": [");
    for (int32_t t = 0; !rc && t < v->n_vocab; t++) {
        LMQL_ASSERT(v->off[t] <= v->off[t + 1]);   /* piece t is bytes[off[t] .. off[t+1]) */
        uint32_t len = v->off[t + 1] - v->off[t];
        const unsigned char *p = (const unsigned char *)v->bytes + v->off[t];
        if (lmql__buf_reserve(b, 2 * (size_t)len + 4)) return -1;
        b->data[b->len++] = t ? ',' : '"';
        if (t) b->data[b->len++] = '"';
        for (uint32_t k = 0; k < len; k++) {
            b->data[b->len++] = hex[p[k] >> 4];
            b->data[b->len++] = hex[p[k] & 15];
        }
        b->data[b->len++] = '"';
        b->data[b->len] = 0;
    }
    rc |= lmql__buf_adds(b, "]}}]");
    return rc ? -1 : 0;
}

int lmql__lmtp_tokens(struct lmql__buf *b, int64_t stream_id, const int32_t *tok, int32_t n) {
    int rc = lmql__buf_adds(b, "MSG [{\"stream_id\": ");
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_adds(b, ", \"tokens\": [");
    rc |= add_ids(b, tok, n, ", ");
    rc |= lmql__buf_adds(b, "]}]");
    return rc ? -1 : 0;
}

int lmql__lmtp_cancelled(struct lmql__buf *b, int64_t stream_id, int n) {
    int rc = lmql__buf_adds(b, "MSG [{\"stream_id\": ");
    rc |= add_id(b, stream_id);
    rc |= lmql__buf_addf(b, ", \"cancelled\": %d}]", n);
    return rc ? -1 : 0;
}

/* ----------------------------------------------------------- requests -- */

static int add_str_field(struct lmql__buf *b, const char *key, const char *s, size_t n) {
    int rc = lmql__buf_addf(b, ", \"%s\": ", key);
    return rc | lmql__buf_json_str(b, s, n);
}

int lmql__lmtp_request(struct lmql__buf *b, const struct lmql__lmtp_cmd *c) {
    const char *name = NULL;
    for (size_t k = 0; k < sizeof k_cmds / sizeof *k_cmds; k++)
        if (k_cmds[k].kind == c->kind) name = k_cmds[k].name;
    if (!name) return -1;
    int rc = lmql__buf_addf(b, "%s {\"stream_id\": ", name);
    rc |= add_id(b, c->stream_id);
    if (c->model) rc |= add_str_field(b, "model", c->model, strlen(c->model));
    switch (c->kind) {
    case LMTP_GENERATE:
        rc |= lmql__buf_addf(b, ", \"max_tokens\": %lld, \"top_logprobs\": %lld", (long long)c->max_tokens,
                             (long long)c->top_logprobs);
        rc |= c->temperature == 0 ? lmql__buf_adds(b, ", \"temperature\": 0.0")
                                  : lmql__buf_addf(b, ", \"temperature\": %.17g", c->temperature);
        if (c->top_k > 0) rc |= lmql__buf_addf(b, ", \"top_k\": %lld", (long long)c->top_k);
        if (c->top_p < 1) rc |= lmql__buf_addf(b, ", \"top_p\": %.17g", c->top_p);
        rc |= lmql__buf_adds(b, ", \"prompt\": [");
        rc |= add_ids(b, c->prompt, c->n_prompt, ",");
        rc |= lmql__buf_adds(b, "]");
        if (c->n_bias > 0) {
            rc |= lmql__buf_adds(b, ", \"logit_bias\": {");
            for (int32_t i = 0; i < c->n_bias; i++)
                rc |= lmql__buf_addf(b, "%s\"%d\": %.9g", i ? ", " : "", c->bias[i].tok, (double)c->bias[i].value);
            rc |= lmql__buf_adds(b, "}");
        }
        break;
    case LMTP_SCORE:
        rc |= lmql__buf_adds(b, ", \"prompt\": [");
        rc |= add_ids(b, c->prompt, c->n_prompt, ",");
        rc |= lmql__buf_adds(b, "], \"scored\": [");
        rc |= add_ids(b, c->scored, c->n_scored, ",");
        rc |= lmql__buf_adds(b, "]");
        break;
    case LMTP_MODEL_INFO:
        if (c->model) {
            rc |= lmql__buf_adds(b, ", \"data\": {\"model\": ");
            rc |= lmql__buf_json_str(b, c->model, strlen(c->model));
            rc |= lmql__buf_adds(b, "}");
        }
        break;
    case LMTP_TOKENIZE:
        rc |= lmql__buf_addf(b, ", \"bos\": %s, \"cont\": %s", c->bos ? "true" : "false", c->cont ? "true" : "false");
        if (c->special) rc |= lmql__buf_adds(b, ", \"special\": true");   /* older servers refuse the key */
        rc |= add_str_field(b, "text", c->text ? c->text : "", c->text_len);
        break;
    default:
        break;
    }
    rc |= lmql__buf_adds(b, "}");
    return rc ? -1 : 0;
}
