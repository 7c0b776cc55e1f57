/*
** The LMTP frame reader and reply writers (src/lmtp.c), without sockets:
** what LMQL's client sends parses to the right fields, every malformed or
** out-of-range field is an error that names it (keeping the stream id for
** the reply), and replies have LMQL's shape.
*/
#include "harness.h"
#include "lmtp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int parse(const char *frame, struct lmql__lmtp_cmd *c, char *err) {
    return lmql__lmtp_parse(frame, strlen(frame), 1000, c, err, 256);
}

static void test_lmql_client_frames(void) {
    struct lmql__lmtp_cmd c;
    char err[256];
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
        char err[256];
        int rc = parse(cases[i].frame, &c, err);
        CHECK_INT(rc, -1);
        CHECK_CONTAINS(err, cases[i].msg);
        if (cases[i].stream_id >= 0) CHECK(c.has_stream_id && c.stream_id == cases[i].stream_id);
        else CHECK(!c.has_stream_id);
        lmql__lmtp_cmd_free(&c);
    }
    /* More ids than the cap: an error, not an allocation of what the frame claims. */
    struct lmql__lmtp_cmd c;
    char err[256];
    struct lmql__buf b = {0};
    lmql__buf_adds(&b, "GENERATE {\"stream_id\": 1, \"prompt\": [");
    for (int i = 0; i < 1001; i++) lmql__buf_addf(&b, "%s1", i ? "," : "");
    lmql__buf_adds(&b, "]}");
    CHECK_INT(lmql__lmtp_parse(b.data, b.len, 1000, &c, err, sizeof err), -1);
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

int main(void) {
    RUN(test_lmql_client_frames);
    RUN(test_errors);
    RUN(test_replies);
    return th_report("lmtp");
}
