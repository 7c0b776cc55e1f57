/*
** fuzz_regex.c -- libFuzzer target for the regex automaton (src/regex.h).
**
**   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
**     src/regex*.c tests/fuzz/fuzz_regex.c -o fuzz_regex
**   ./fuzz_regex -max_total_time=180 -timeout=30 CORPUS_DIR
**
** (Compiles are capped by a work budget, ~0.3 s at -O2 at worst, but
** instrumented builds run that tens of times slower; hence -timeout=30.)
**
** The input is split at its first NUL into a pattern and a subject (no NUL:
** all pattern, empty subject).  Any pattern must compile or fail cleanly
** with an offset inside the pattern.  When it compiles, the subject is fed
** byte by byte and checked against feed() and fullmatch(); every state
** seen must be in range, and from every live state some path must still
** reach an accepting state (the promise the decoder relies on).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regex.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort unless an accepting state is reachable from `from`. */
static void check_coreachable(const struct lmql_regex *re, int32_t from) {
    int32_t n = lmql__regex_n_states(re);
    uint8_t *seen = calloc((size_t)n, 1);
    int32_t *queue = malloc((size_t)n * sizeof *queue);
    if (!seen || !queue) abort();
    int32_t qh = 0, qt = 0;
    bool found = false;
    seen[from] = 1;
    queue[qt++] = from;
    while (qh < qt && !found) {
        int32_t s = queue[qh++];
        if (lmql__regex_accepting(re, s)) found = true;
        for (int b = 0; b < 256 && !found; b++) {
            int32_t t = lmql__regex_step(re, s, (unsigned char)b);
            if (t < -1 || t >= n) abort();
            if (t >= 0 && !seen[t]) { seen[t] = 1; queue[qt++] = t; }
        }
    }
    free(seen);
    free(queue);
    if (!found) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *pat = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    const char *subj = nul ? (const char *)nul + 1 : "";
    size_t slen = nul ? size - plen - 1 : 0;
    struct lmql__err e = {.pos = {0, 0, (size_t)-1}};
    struct lmql_regex *re = lmql__regex_compile(pat, plen, &e);
    if (!re) {
        if (e.pos.offset > plen || !e.msg[0] || strlen(e.msg) >= sizeof e.msg) abort();
        return 0;
    }
    int32_t n = lmql__regex_n_states(re);
    int32_t s = lmql__regex_start(re);
    if (s < -1 || s >= n) abort();
    for (size_t i = 0; i < slen && s >= 0; i++) {
        s = lmql__regex_step(re, s, (unsigned char)subj[i]);
        if (s < -1 || s >= n) abort();
        /* checking every state is quadratic: the first ones and the last suffice */
        if (s >= 0 && (i < 32 || i + 1 == slen)) check_coreachable(re, s);
    }
    int32_t f = lmql__regex_feed(re, lmql__regex_start(re), subj, slen);
    if (f != s) abort();
    if (lmql__regex_fullmatch(re, subj, slen) != lmql__regex_accepting(re, f)) abort();
    if (lmql__regex_start(re) >= 0) check_coreachable(re, lmql__regex_start(re));
    lmql__regex_free(re);
    return 0;
}
