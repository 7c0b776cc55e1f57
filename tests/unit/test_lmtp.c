/*
** The LMTP frame reader and reply writers (src/lmtp.c), without sockets:
** what LMQL's client sends parses to the right fields, every malformed or
** out-of-range field is an error that names it (keeping the stream id for
** the reply), and replies have LMQL's shape.
*/
#include "harness.h"
#include "json.h"
#include "lmtp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The parser's error message into err (1024 bytes). */
static int parse_n(const char *frame, size_t n, int32_t max, struct lmql__lmtp_cmd *c, char *err) {
    struct lmql__err e;
    int rc = lmql__lmtp_parse(frame, n, max, c, &e);
    snprintf(err, 1024, "%s", rc ? e.msg : "");
    return rc;
}

static int parse(const char *frame, struct lmql__lmtp_cmd *c, char *err) { return parse_n(frame, strlen(frame), 1000, c, err); }

static void test_lmql_client_frames(void) {
    struct lmql__lmtp_cmd c;
    char err[1024];
    /* The frame of LMTP.md's example, as LMQL's client writes it. */
    const char *g = "GENERATE {\"max_tokens\": 16, \"temperature\": 0.0, \"logit_bias\": {\"3869\": 100, \"1939\": 100.0, "
                    "\"29871\": 100}, \"top_logprobs\": 1, \"model\": \"llama.cpp:/models/m.gguf\", "
                    "\"prompt\": [1, 660, 29901], \"stream_id\": 1}";
    CHECK_INT(parse(g, &c, err), 0);
    CHECK_INT(c.kind, LMTP_GENERATE);
    CHECK_INT(c.stream_id, 1);
    CHECK(c.has_stream_id);
    CHECK_STR(c.model, "llama.cpp:/models/m.gguf");
    CHECK_INT(c.n_prompt, 3);
    CHECK(c.n_prompt == 3 && c.prompt[0] == 1 && c.prompt[2] == 29901);
    CHECK_INT(c.max_tokens, 16);
    CHECK_INT(c.top_logprobs, 1);
    CHECK(c.temperature == 0.0);
    CHECK_INT(c.n_bias, 3);
    CHECK(c.n_bias == 3 && c.bias[1].tok == 1939 && c.bias[1].value == 100.0f);
    lmql__lmtp_cmd_free(&c);

    CHECK_INT(parse("SCORE {\"model\": \"m\", \"prompt\": [1, 2], \"scored\": [3], \"stream_id\": 2}", &c, err), 0);
    CHECK(c.kind == LMTP_SCORE && c.n_scored == 1 && c.scored[0] == 3 && c.stream_id == 2);
    lmql__lmtp_cmd_free(&c);

    CHECK_INT(parse("MODEL_INFO {\"stream_id\": 3, \"model\": \"m\", \"data\": {\"model\": [1, {\"x\": null}]}}", &c, err), 0);
    CHECK(c.kind == LMTP_MODEL_INFO && c.stream_id == 3);
    lmql__lmtp_cmd_free(&c);

    /* Defaults when fields are absent: LMQL's server's. */
    CHECK_INT(parse("GENERATE {\"prompt\": [1], \"stream_id\": 4}", &c, err), 0);
    CHECK(c.max_tokens == 32 && c.top_logprobs == 1 && c.temperature == 0 && c.top_p == 1 && c.top_k == 0);
    lmql__lmtp_cmd_free(&c);

    /* Escapes, surrogate pairs, whitespace around everything. */
    CHECK_INT(parse("TOKENIZE  {  \"stream_id\" : 5 , \"text\" : \"a\\u00e9\\ud83d\\ude00\\n\" , \"bos\": true }", &c, err), 0);
    CHECK(c.kind == LMTP_TOKENIZE && c.text_len == 8 && !memcmp(c.text, "a\xc3\xa9\xf0\x9f\x98\x80\n", 8) && c.bos);
    lmql__lmtp_cmd_free(&c);

    /* A repeated key: the last one counts (as in any JSON object). */
    CHECK_INT(parse("GENERATE {\"prompt\": [1], \"logit_bias\": {\"5\": 1}, \"logit_bias\": {\"6\": -100, \"7\": 2}, "
                    "\"stream_id\": 6}", &c, err), 0);
    CHECK(c.n_bias == 2 && c.bias[0].tok == 6 && c.bias[0].value == -100);
    lmql__lmtp_cmd_free(&c);
}

/* Errors: the message names the problem; the stream id survives a field
** error so the reply can name the stream. */
static void test_errors(void) {
    static const struct {
        const char *frame, *msg;
        int64_t stream_id;   /* -1: none known */
    } cases[] = {
        {"GENERATE {\"prompt\": [1, -5], \"stream_id\": 7}", "'prompt' must be an integer from 0", 7},
        {"GENERATE {\"prompt\": \"abc\", \"stream_id\": 8}", "'prompt' must be a list of token ids, not a string", 8},
        {"GENERATE {\"prompt\": [1], \"max_tokens\": 0, \"stream_id\": 9}", "'max_tokens' must be an integer from 1", 9},
        {"GENERATE {\"prompt\": [1], \"max_tokens\": 2.5, \"stream_id\": 10}", "'max_tokens' must be an integer", 10},
        {"GENERATE {\"prompt\": [1], \"temperature\": \"hot\", \"stream_id\": 11}", "'temperature' must be a number, not a string", 11},
        {"GENERATE {\"prompt\": [1], \"temperature\": -1, \"stream_id\": 12}", "'temperature' must be a number from 0", 12},
        {"GENERATE {\"prompt\": [1], \"top_p\": 0, \"stream_id\": 13}", "'top_p' must be a number", 13},
        {"GENERATE {\"prompt\": [1], \"logit_bias\": {\"x\": 1}, \"stream_id\": 14}", "key \"x\" is not a token id", 14},
        {"GENERATE {\"prompt\": [1], \"logit_bias\": [1], \"stream_id\": 15}", "'logit_bias' must be an object", 15},
        {"GENERATE {\"prompt\": [1], \"repetition_penalty\": 1.1, \"stream_id\": 16}", "unsupported parameter 'repetition_penalty'", 16},
        {"GENERATE {\"stream_id\": 17}", "'prompt' is required", 17},
        {"SCORE {\"prompt\": [1], \"stream_id\": 18}", "'scored' is required", 18},
        {"FROB {\"stream_id\": 19}", "Unknown command: FROB", 19},
        {"GENERATE {\"prompt\": [1], \"stream_id\": -3}", "'stream_id' must be an integer from 0", -1},
        {"GENERATE {\"prompt\": [1, 2", "malformed JSON", -1},
        {"GENERATE", "expected '{'", -1},
        {"", "Unknown command", -1},
        {"FOO", "Unknown command: FOO", -1},
        {"GENERATE {\"prompt\": [1]} trailing", "trailing characters", -1},
        {"GENERATE {\"prompt\": [1], \"s\": \"\x01\"}", "control character", -1},
        {"GENERATE {\"a\": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}", "nesting too deep", -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct lmql__lmtp_cmd c;
        char err[1024];
        int rc = parse(cases[i].frame, &c, err);
        CHECK_INT(rc, -1);
        CHECK_CONTAINS(err, cases[i].msg);
        if (cases[i].stream_id >= 0) CHECK(c.has_stream_id && c.stream_id == cases[i].stream_id);
        else CHECK(!c.has_stream_id);
        lmql__lmtp_cmd_free(&c);
    }
    /* More ids than the cap: an error, not an allocation of what the frame claims. */
    struct lmql__lmtp_cmd c;
    char err[1024];
    struct lmql__buf b = {0};
    lmql__buf_adds(&b, "GENERATE {\"stream_id\": 1, \"prompt\": [");
    for (int i = 0; i < 1001; i++) lmql__buf_addf(&b, "%s1", i ? "," : "");
    lmql__buf_adds(&b, "]}");
    CHECK_INT(parse_n(b.data, b.len, 1000, &c, err), -1);
    CHECK_CONTAINS(err, "more than 1000 tokens");
    lmql__lmtp_cmd_free(&c);
    lmql__buf_free(&b);
}

static void test_replies(void) {
    struct lmql__buf b = {0};
    int32_t top[2] = {5, 9};
    float lp[2] = {-0.5f, -INFINITY};
    CHECK_INT(lmql__lmtp_token(&b, 3, 5, -0.5, NULL, top, lp, 2), 0);
    CHECK_STR(b.data, "TOKEN [{\"token\": 5, \"stream_id\": 3, \"logprob\": -0.5, \"finish_reason\": null, "
                      "\"top_logprobs\": {\"5\": -0.5, \"9\": -1e+30}}]");
    b.len = 0;
    CHECK_INT(lmql__lmtp_token(&b, 4, 2, -1.25, "stop", NULL, NULL, 0), 0);
    lmql__buf_add(&b, "", 1);
    CHECK_STR(b.data, "TOKEN [{\"token\": 2, \"stream_id\": 4, \"logprob\": -1.25, \"finish_reason\": \"stop\"}]");
    b.len = 0;
    CHECK_INT(lmql__lmtp_error(&b, "MSG", -1, "bad \"thing\"\n"), 0);
    lmql__buf_add(&b, "", 1);
    CHECK_STR(b.data, "MSG [{\"stream_id\": null, \"error\": \"bad \\\"thing\\\"\\n\"}]");
    lmql__buf_free(&b);
}

/* The one JSON number reader (util.c), for both the LMTP parser and
** json.c: exact for any length, never a different number. */
static void test_numbers(void) {
    char big[128];
    memset(big, '9', 100);
    big[100] = 0;
    double d;
    int64_t iv;
    bool is_int;
    size_t i = 0;
    CHECK(lmql__json_number(big, 100, &i, &d, &iv, &is_int) == NULL);
    CHECK_INT(i, 100);
    CHECK(!is_int && d == 1e100);
    /* 1 followed by 99 zeros and an exponent: the exponent still counts. */
    char e[400];
    snprintf(e, sizeof e, "1%0*de-99", 99, 0);
    i = 0;
    CHECK(lmql__json_number(e, strlen(e), &i, &d, &iv, &is_int) == NULL && i == strlen(e) && d == 1.0);
    /* 0.000...0001e+100 with 80 zeros: 1e19. */
    snprintf(e, sizeof e, "0.%0*d1e+100", 80, 0);
    i = 0;
    CHECK(lmql__json_number(e, strlen(e), &i, &d, &iv, &is_int) == NULL && d == 1e19);
    /* A long exponent. */
    const char *le = "-2.5e0000000000000000000000000000000000000000000000000000000000000000000000000003";
    i = 0;
    CHECK(lmql__json_number(le, strlen(le), &i, &d, &iv, &is_int) == NULL && d == -2500.0 && !is_int);
    i = 0;
    CHECK(lmql__json_number("1e400", 5, &i, &d, &iv, &is_int) == NULL && isinf(d));
    i = 0;
    CHECK(lmql__json_number("-9223372036854775808", 20, &i, &d, &iv, &is_int) == NULL && is_int &&
          iv == INT64_MIN);
    i = 0;
    CHECK(lmql__json_number("9223372036854775808", 19, &i, &d, &iv, &is_int) == NULL && !is_int &&
          d == 9223372036854775808.0);
    const char *bad[] = {"-", "01", "1.", "1.e5", "1e", "1e+", ".5", "x"};
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        i = 0;
        const char *why = lmql__json_number(bad[k], strlen(bad[k]), &i, &d, &iv, &is_int);
        /* "01" reads as 0 and stops before the 1: the caller sees trailing text. */
        CHECK(why != NULL || (k == 1 && i == 1 && d == 0));
    }
    /* Both readers use it. */
    struct lmql__err err = {0};
    snprintf(e, sizeof e, "[%s, %s]", big, le);
    struct lmql_val *v = lmql__json_parse_doubles(e, strlen(e), &err);
    CHECK(v && v->kind == LMQL_V_LIST && v->u.list.len == 2 && v->u.list.items[0]->kind == LMQL_V_FLOAT &&
          v->u.list.items[0]->u.f == 1e100 && v->u.list.items[1]->u.f == -2500.0);
    lmql__val_unref(v);
    struct lmql__lmtp_cmd c;
    char msg[256];
    snprintf(e, sizeof e, "GENERATE {\"stream_id\": 1, \"prompt\": [1], \"top_p\": %s}", le + 1);
    CHECK_INT(parse(e, &c, msg), -1);   /* 2500 is past the range, not a huge value */
    CHECK_CONTAINS(msg, "2500");
    lmql__lmtp_cmd_free(&c);
    snprintf(e, sizeof e, "GENERATE {\"stream_id\": 1, \"prompt\": [1], \"temperature\": 0.%0*d5}", 90, 0);
    CHECK_INT(parse(e, &c, msg), 0);
    CHECK(c.temperature == 5e-91);
    lmql__lmtp_cmd_free(&c);
}

/* Every client command the writer makes reads back as itself. */
static void test_request_round_trip(void) {
    int32_t prompt[3] = {1, 660, 29901}, scored[2] = {7, 8};
    struct lmql__lmtp_bias bias[2] = {{3, 100}, {17, -100}};
    struct lmql__lmtp_cmd in[] = {
        {.kind = LMTP_GENERATE, .stream_id = 5, .has_stream_id = true, .model = "llama.cpp:/m \"x\".gguf",
         .prompt = prompt, .n_prompt = 3, .has_prompt = true, .max_tokens = 16, .temperature = 0.7,
         .top_logprobs = 5, .top_k = 40, .top_p = 0.9, .bias = bias, .n_bias = 2},
        {.kind = LMTP_GENERATE, .stream_id = 6, .has_stream_id = true, .model = "m", .prompt = prompt, .n_prompt = 1,
         .has_prompt = true, .max_tokens = 1, .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_SCORE, .stream_id = 7, .has_stream_id = true, .model = "m", .prompt = prompt, .n_prompt = 3,
         .has_prompt = true, .scored = scored, .n_scored = 2, .has_scored = true, .max_tokens = 32,
         .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_MODEL_INFO, .stream_id = 1, .has_stream_id = true, .model = "m", .max_tokens = 32,
         .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_CANCEL, .stream_id = 9, .has_stream_id = true, .model = "m", .max_tokens = 32,
         .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_VOCAB, .stream_id = 10, .has_stream_id = true, .model = "m", .max_tokens = 32,
         .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_TOKENIZE, .stream_id = 11, .has_stream_id = true, .text = "a\"\n\xc3\xa9\0b", .text_len = 7,
         .bos = true, .cont = false, .max_tokens = 32, .top_logprobs = 1, .top_p = 1},
        {.kind = LMTP_TOKENIZE, .stream_id = 12, .has_stream_id = true, .text = "<|eot_id|>", .text_len = 10,
         .cont = true, .special = true, .max_tokens = 32, .top_logprobs = 1, .top_p = 1},
    };
    for (size_t k = 0; k < sizeof in / sizeof *in; k++) {
        const struct lmql__lmtp_cmd *a = &in[k];
        struct lmql__buf b = {0};
        CHECK_INT(lmql__lmtp_request(&b, a), 0);
        struct lmql__lmtp_cmd c;
        char err[1024];
        CHECK_INT(parse_n(b.data, b.len, 1000, &c, err), 0);
        CHECK_INT(c.kind, a->kind);
        CHECK(c.stream_id == a->stream_id && c.has_stream_id);
        CHECK(a->model ? c.model && !strcmp(c.model, a->model) : !c.model);
        CHECK(c.n_prompt == a->n_prompt && (!a->n_prompt || !memcmp(c.prompt, a->prompt, (size_t)a->n_prompt * 4)));
        CHECK(c.n_scored == a->n_scored && (!a->n_scored || !memcmp(c.scored, a->scored, (size_t)a->n_scored * 4)));
        CHECK(c.has_prompt == a->has_prompt && c.has_scored == a->has_scored);
        CHECK_INT(c.max_tokens, a->max_tokens);
        CHECK_INT(c.top_logprobs, a->top_logprobs);
        CHECK_INT(c.top_k, a->top_k);
        CHECK(c.temperature == a->temperature && c.top_p == a->top_p);
        CHECK_INT(c.n_bias, a->n_bias);
        for (int32_t i = 0; i < c.n_bias && i < a->n_bias; i++)
            CHECK(c.bias[i].tok == a->bias[i].tok && c.bias[i].value == a->bias[i].value);
        CHECK(c.text_len == a->text_len && (!a->text || !memcmp(c.text, a->text, a->text_len)));
        CHECK(c.bos == a->bos && c.cont == a->cont && c.special == a->special);
        CHECK(a->special || !strstr(b.data, "special"));   /* sent only when set: older servers refuse it */
        lmql__lmtp_cmd_free(&c);
        lmql__buf_free(&b);
    }
}

static struct lmql_val *payload(const struct lmql__buf *b, const char *word) {
    size_t w = strlen(word);
    CHECK(b->len > w && !memcmp(b->data, word, w) && b->data[w] == ' ');
    struct lmql__err err = {0};
    struct lmql_val *v = lmql__json_parse(b->data + w + 1, b->len - w - 1, &err);
    CHECK(v && v->kind == LMQL_V_LIST && v->u.list.len == 1);
    struct lmql_val *p = v && v->kind == LMQL_V_LIST && v->u.list.len == 1 ? lmql__val_ref(v->u.list.items[0]) : NULL;
    lmql__val_unref(v);
    return p;
}

static const struct lmql_val *get(const struct lmql_val *d, const char *k) {
    for (size_t i = 0; d && d->kind == LMQL_V_DICT && i < d->u.dict.len; i++)
        if (!strcmp(d->u.dict.keys[i]->u.str.s, k)) return d->u.dict.vals[i];
    return NULL;
}

static long long int_of(const struct lmql_val *v) { return v && v->kind == LMQL_V_INT ? (long long)v->u.i : -999; }

/* Every server reply the writers make reads back (as JSON) as what went in. */
static void test_reply_round_trip(void) {
    struct lmql__buf b = {0};
    struct lmql__lmtp_info info = {"/m/a \"b\".gguf", "llama.cpp:/m", "lmql-c x", 32000, 4096, 8,
                                   0x0123456789abcdefull, NULL};
    CHECK_INT(lmql__lmtp_model_info(&b, 4, &info), 0);
    struct lmql_val *p = payload(&b, "MSG");
    const struct lmql_val *mi = get(p, "model_info");
    CHECK_INT(int_of(get(p, "stream_id")), 4);
    CHECK_STR(get(mi, "model_identifier")->u.str.s, info.model_identifier);
    CHECK_STR(get(mi, "constructor")->u.str.s, info.constructor);
    CHECK_STR(get(mi, "server")->u.str.s, info.server);
    CHECK_STR(get(mi, "vocab_hash")->u.str.s, "0123456789abcdef");
    CHECK(int_of(get(mi, "n_vocab")) == 32000 && int_of(get(mi, "n_ctx")) == 4096 && int_of(get(mi, "n_seq_max")) == 8);
    CHECK(get(mi, "chat_template") && get(mi, "chat_template")->kind == LMQL_V_NONE);   /* none: null */
    lmql__val_unref(p);

    b.len = 0;
    int32_t eog[2] = {2, 3};
    uint32_t off[5] = {0, 0, 1, 3, 4};
    struct lmql__lmtp_vocab voc = {4, 1, 2, true, eog, 2, "a\xff\x00" "b", off};
    CHECK_INT(lmql__lmtp_vocab(&b, 5, &voc), 0);
    p = payload(&b, "MSG");
    const struct lmql_val *vv = get(p, "vocab"), *pieces = get(vv, "pieces");
    CHECK(int_of(get(vv, "n_vocab")) == 4 && int_of(get(vv, "bos")) == 1 && int_of(get(vv, "eos")) == 2);
    CHECK(get(vv, "add_bos") && get(vv, "add_bos")->kind == LMQL_V_BOOL && get(vv, "add_bos")->u.b);
    CHECK(get(vv, "eog") && get(vv, "eog")->u.list.len == 2 && int_of(get(vv, "eog")->u.list.items[1]) == 3);
    CHECK(pieces && pieces->kind == LMQL_V_LIST && pieces->u.list.len == 4);
    if (pieces && pieces->kind == LMQL_V_LIST && pieces->u.list.len == 4) {
        CHECK_STR(pieces->u.list.items[0]->u.str.s, "");
        CHECK_STR(pieces->u.list.items[1]->u.str.s, "61");
        CHECK_STR(pieces->u.list.items[2]->u.str.s, "ff00");
        CHECK_STR(pieces->u.list.items[3]->u.str.s, "62");
    }
    lmql__val_unref(p);

    b.len = 0;
    int32_t toks[3] = {1, 0, 31999};
    CHECK_INT(lmql__lmtp_tokens(&b, 6, toks, 3), 0);
    p = payload(&b, "MSG");
    const struct lmql_val *tl = get(p, "tokens");
    CHECK(tl && tl->u.list.len == 3 && int_of(tl->u.list.items[2]) == 31999 && int_of(get(p, "stream_id")) == 6);
    lmql__val_unref(p);

    b.len = 0;
    CHECK_INT(lmql__lmtp_cancelled(&b, 7, 2), 0);
    p = payload(&b, "MSG");
    CHECK(int_of(get(p, "stream_id")) == 7 && int_of(get(p, "cancelled")) == 2);
    lmql__val_unref(p);

    b.len = 0;
    CHECK_INT(lmql__lmtp_token(&b, 8, 5, -0.25, "length", toks, (const float[]){-0.25f, -1.5f}, 2), 0);
    p = payload(&b, "TOKEN");
    CHECK(int_of(get(p, "token")) == 5 && int_of(get(p, "stream_id")) == 8);
    CHECK(get(p, "logprob") && get(p, "logprob")->u.f == -0.25);
    CHECK_STR(get(p, "finish_reason")->u.str.s, "length");
    lmql__val_unref(p);

    b.len = 0;
    CHECK_INT(lmql__lmtp_error(&b, "TOKEN", 9, "no \xff"), 0);
    p = payload(&b, "TOKEN");
    CHECK(int_of(get(p, "stream_id")) == 9);
    CHECK_STR(get(p, "error")->u.str.s, "no \xef\xbf\xbd");
    lmql__val_unref(p);
    lmql__buf_free(&b);
}

/* A frame from b read back as a client reads it. */
static int read_n(const char *frame, size_t n, struct lmql__lmtp_reply *r, char *err) {
    struct lmql__err e;
    int rc = lmql__lmtp_read_reply(frame, n, r, &e);
    snprintf(err, 1024, "%s", rc ? e.msg : "");
    return rc;
}

static int read_back(const struct lmql__buf *b, struct lmql__lmtp_reply *r, char *err) { return read_n(b->data, b->len, r, err); }

static int read_text(const char *frame, struct lmql__lmtp_reply *r, char *err) { return read_n(frame, strlen(frame), r, err); }

static void test_reply_readers(void) {
    struct lmql__buf b = {0};
    struct lmql__lmtp_reply r;
    char err[1024], e[512];
    struct lmql__err E;

    /* TOKEN: writer -> reader gives the same fields. */
    int32_t top[3] = {5, 7, 99};
    CHECK_INT(lmql__lmtp_token(&b, 8, 5, -0.25, "length", top, (const float[]){-0.25f, -1.5f, -2.0f}, 3), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    CHECK(r.token && r.n == 1);
    struct lmql__lmtp_token_reply t;
    lmql__lmtp_read_token(&r, 0, 50, 4, &t);
    CHECK(t.stream_id == 8 && t.has_token && t.token == 5 && t.logprob == -0.25 && t.finished && !t.has_error);
    /* The token itself and ids outside the vocabulary (99) are not among the top. */
    CHECK(t.n_top == 1 && t.top[0] == 7 && t.top_lp[0] == -1.5f);
    lmql__lmtp_reply_free(&r);

    b.len = 0;
    CHECK_INT(lmql__lmtp_token(&b, 0, 3, -INFINITY, NULL, NULL, NULL, 0), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    lmql__lmtp_read_token(&r, 0, 50, 4, &t);
    CHECK(t.stream_id == 0 && t.has_token && t.token == 3 && t.logprob == -1e30 && !t.finished && t.n_top == 0);
    /* Out of the vocabulary: no token. */
    lmql__lmtp_read_token(&r, 0, 3, 4, &t);
    CHECK(t.stream_id == 0 && !t.has_token);
    lmql__lmtp_reply_free(&r);

    /* Errors: cleaned of control characters; a stream id < 0 reads as none. */
    b.len = 0;
    CHECK_INT(lmql__lmtp_error(&b, "TOKEN", 9, "bad\x1b[2Jthing"), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    lmql__lmtp_read_token(&r, 0, 50, 4, &t);
    CHECK(t.stream_id == 9 && t.has_error);
    CHECK_STR(t.error, "bad?[2Jthing");
    CHECK_STR(lmql__lmtp_read_error(&r, 0, e, sizeof e), "bad?[2Jthing");
    lmql__lmtp_reply_free(&r);
    b.len = 0;
    CHECK_INT(lmql__lmtp_error(&b, "MSG", -1, "x"), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    CHECK(!r.token && lmql__lmtp_read_stream(&r, 0) == -1);
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 2, \"error\": 5}, {\"stream_id\": 1e16}]", &r, err), 0);
    CHECK_STR(lmql__lmtp_read_error(&r, 0, e, sizeof e), "the server reported an error");
    CHECK(lmql__lmtp_read_stream(&r, 1) == -1 && !lmql__lmtp_read_error(&r, 1, e, sizeof e));
    CHECK(lmql__lmtp_read_stream(&r, 2) == -1);   /* no such payload */
    lmql__lmtp_reply_free(&r);

    /* Malformed frames. */
    CHECK_INT(read_text("TOKEN {\"token\": 1}", &r, err), -1);
    CHECK(strstr(err, "sent a malformed message: TOKEN {") != NULL);
    CHECK_INT(read_text("TOKEN[]", &r, err), -1);
    CHECK_INT(read_text("MSG [1, \x01", &r, err), -1);
    CHECK(strchr(err, '\x01') == NULL);

    /* MODEL_INFO. */
    b.len = 0;
    struct lmql__lmtp_info info = {"m", "c", "s", 32000, 4096, 8, 0xfedcba9876543210ull, NULL};
    CHECK_INT(lmql__lmtp_model_info(&b, 4, &info), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    struct lmql__lmtp_info_reply ir;
    lmql__lmtp_read_info(&r, 0, &ir);
    CHECK(lmql__lmtp_read_stream(&r, 0) == 4);
    CHECK(ir.has_hash && ir.hash_ok && ir.vocab_hash == info.vocab_hash && ir.has_n_vocab && ir.n_vocab == 32000);
    CHECK(ir.has_template && !ir.chat_template);
    lmql__lmtp_reply_free(&r);
    b.len = 0;
    info.chat_template = "{{ '<|im_start|>' }}\n";
    CHECK_INT(lmql__lmtp_model_info(&b, 4, &info), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    lmql__lmtp_read_info(&r, 0, &ir);
    CHECK(ir.has_template && ir.chat_template && ir.chat_template_len == strlen(info.chat_template) &&
          !memcmp(ir.chat_template, info.chat_template, ir.chat_template_len));
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 1, \"model_info\": {\"vocab_hash\": \"FEDCBA9876543210\"}}]", &r, err), 0);
    lmql__lmtp_read_info(&r, 0, &ir);
    CHECK(ir.has_hash && !ir.hash_ok && !ir.has_n_vocab && !ir.has_template);   /* LMQL's server: not said */
    lmql__lmtp_reply_free(&r);

    /* TOKENIZE. */
    b.len = 0;
    int32_t toks[3] = {1, 0, 31999}, got[3];
    CHECK_INT(lmql__lmtp_tokens(&b, 6, toks, 3), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    CHECK_INT(lmql__lmtp_read_tokens(&r, 0, 32000, got, 3, &E), 3);
    CHECK(!memcmp(got, toks, sizeof toks));
    CHECK_INT(lmql__lmtp_read_tokens(&r, 0, 32000, got, 2, &E), -3);
    CHECK(lmql__lmtp_read_tokens(&r, 0, 31999, got, 3, &E) == INT32_MIN);
    CHECK_STR(E.msg, "answered TOKENIZE with a token outside its vocabulary of 31999");
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 6, \"tokens\": [1, 2.5]}]", &r, err), 0);
    CHECK(lmql__lmtp_read_tokens(&r, 0, 10, got, 3, &E) == INT32_MIN);
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 6}]", &r, err), 0);
    CHECK(lmql__lmtp_read_tokens(&r, 0, 10, got, 3, &E) == INT32_MIN);
    CHECK_STR(E.msg, "sent no tokens for TOKENIZE");
    lmql__lmtp_reply_free(&r);

    /* VOCAB. */
    b.len = 0;
    int32_t eog[3] = {2, 3, 2};
    uint32_t off[5] = {0, 0, 1, 3, 4};
    struct lmql__lmtp_vocab voc = {4, 1, 2, true, eog, 3, "a\xff\x00" "b", off};
    CHECK_INT(lmql__lmtp_vocab(&b, 5, &voc), 0);
    CHECK_INT(read_back(&b, &r, err), 0);
    struct lmql__lmtp_vocab_reply vr;
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), 0);
    CHECK(vr.n_vocab == 4 && vr.bos == 1 && vr.eos == 2 && vr.add_bos);
    CHECK(vr.n_eog == 2 && vr.eog[0] == 2 && vr.eog[1] == 3);   /* repeats dropped */
    CHECK(!memcmp(vr.off, off, sizeof off) && !memcmp(vr.bytes, "a\xff\x00" "b", 4));
    lmql__lmtp_vocab_reply_free(&vr);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 1, &vr, &E), 1);   /* no such payload */
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 5, \"vocab\": {\"eog\": [], \"pieces\": [\"6\"]}}]", &r, err), 0);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), -1);
    CHECK_STR(E.msg, "sent a bad vocabulary: piece 0 is not a hex string");
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 5, \"vocab\": {\"eog\": [9], \"bos\": 7, \"pieces\": [\"61\", \"zz\"]}}]",
                        &r, err), 0);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), -1);
    CHECK_STR(E.msg, "sent a bad vocabulary: piece 1 is not a hex string");
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 5, \"vocab\": {\"eog\": [9], \"bos\": 7, \"pieces\": [\"61\", \"\"]}}]",
                        &r, err), 0);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), 0);
    CHECK(vr.n_vocab == 2 && vr.n_eog == 0 && vr.bos == -1 && vr.eos == -1 && !vr.add_bos && vr.off[2] == 1);
    lmql__lmtp_vocab_reply_free(&vr);
    lmql__lmtp_reply_free(&r);
    CHECK_INT(read_text("MSG [{\"stream_id\": 5, \"vocab\": {\"pieces\": [\"61\"]}}]", &r, err), 0);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), 1);   /* no eog list: not a vocabulary */
    lmql__lmtp_reply_free(&r);
    /* A piece over the limit. */
    struct lmql__buf big = {0};
    lmql__buf_adds(&big, "MSG [{\"stream_id\": 5, \"vocab\": {\"eog\": [], \"pieces\": [\"");
    for (int k = 0; k < LMQL__LMTP_MAX_PIECE + 1; k++) lmql__buf_adds(&big, "41");
    lmql__buf_adds(&big, "\"]}}]");
    CHECK_INT(read_back(&big, &r, err), 0);
    CHECK_INT(lmql__lmtp_read_vocab(&r, 0, &vr, &E), -1);
    CHECK(strstr(E.msg, "sent a vocabulary piece of 4097 bytes") != NULL);
    lmql__lmtp_reply_free(&r);
    lmql__buf_free(&big);
    lmql__buf_free(&b);
}

int main(void) {
    RUN(test_lmql_client_frames);
    RUN(test_errors);
    RUN(test_replies);
    RUN(test_numbers);
    RUN(test_request_round_trip);
    RUN(test_reply_round_trip);
    RUN(test_reply_readers);
    return th_report("lmtp");
}
