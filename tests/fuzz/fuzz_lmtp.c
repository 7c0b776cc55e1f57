/*
** fuzz_lmtp.c -- libFuzzer target for the LMTP command parser
** (src/lmtp.h): every frame a client can send the server goes through it.
**
**   make fuzz   (or: build/fuzz/fuzz_lmtp -max_total_time=60 build/fuzz/lmtp-corpus)
**
** Any input must parse or fail with a NUL-terminated message; a parsed
** command must be consistent (counts within the cap, ids and values in
** their documented ranges), and the reply writers must produce frames of
** the expected shape for whatever the command held.
*/
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CAP 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lmql__lmtp_cmd c;
    struct lmql__err err;
    int rc = lmql__lmtp_parse((const char *)data, size, CAP, &c, &err);
    if (strnlen(err.msg, sizeof err.msg) == sizeof err.msg || (rc && (!err.msg[0] || !err.status))) abort();
    if (rc == 0) {
        if (c.n_prompt < 0 || c.n_prompt > CAP || c.n_scored < 0 || c.n_scored > CAP || c.n_bias < 0 || c.n_bias > CAP)
            abort();
        for (int32_t i = 0; i < c.n_prompt; i++)
            if (c.prompt[i] < 0) abort();
        for (int32_t i = 0; i < c.n_bias; i++)
            if (c.bias[i].tok < 0 || !isfinite(c.bias[i].value)) abort();
        if (c.max_tokens < 1 || c.temperature < 0 || c.top_logprobs < 0 || c.top_p <= 0 || c.top_p > 1) abort();
        if ((c.kind == LMTP_GENERATE || c.kind == LMTP_SCORE) && !c.has_prompt) abort();
        if (c.kind == LMTP_UNKNOWN) abort();   /* unknown commands are errors */
        struct lmql__buf b = {0};
        int32_t tok = c.n_prompt ? c.prompt[0] : 0;
        float lp = c.n_bias ? c.bias[0].value : -1.0f;
        if (lmql__lmtp_token(&b, c.stream_id, tok, lp, c.n_prompt % 2 ? "length" : NULL, &tok, &lp, 1)) abort();
        if (b.len < 7 || memcmp(b.data, "TOKEN [", 7) || b.data[b.len - 1] != ']') abort();
        b.len = 0;
        if (lmql__lmtp_error(&b, "MSG", c.stream_id, c.model ? c.model : "")) abort();
        if (memcmp(b.data, "MSG [", 5) || b.data[b.len - 1] != ']') abort();
        lmql__buf_free(&b);
    } else if (!err[0]) {
        abort();   /* a failure always says why */
    }
    lmql__lmtp_cmd_free(&c);
    return 0;
}
