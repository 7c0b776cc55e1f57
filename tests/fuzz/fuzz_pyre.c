/*
** fuzz_pyre.c -- libFuzzer target for the `re` module's matcher
** (src/regex_match.h: Python's pattern syntax, backtracking machine).
**
** The input is a flags byte, then a pattern and a subject split at the
** first NUL (no NUL: all pattern, empty subject). Any pattern must compile
** or fail with an offset inside the pattern; a compiled one is run in the
** three modes and as findall does (every match after the last, empty ones
** not twice at one place), and every capture must be -1/-1 or a range
** inside the subject with its start before its end.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "regex_match.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_caps(const ptrdiff_t *caps, int ngroups, size_t n) {
    for (int g = 0; g <= ngroups; g++) {
        ptrdiff_t a = caps[2 * g], b = caps[2 * g + 1];
        if ((a < 0) != (b < 0)) abort();
        if (a >= 0 && (a > b || (size_t)b > n)) abort();
    }
    if (caps[0] < 0) abort();   /* group 0 always takes part in a match */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    lmql__rx_max_steps = 2000000;   /* instrumented steps are slow: a runaway is found at 2M */
    int flags = 0;
    if (data[0] & 1) flags |= LMQL_RX_IGNORECASE;
    if (data[0] & 2) flags |= LMQL_RX_MULTILINE;
    if (data[0] & 4) flags |= LMQL_RX_DOTALL;
    if (data[0] & 8) flags |= LMQL_RX_ASCII;
    const char *p = (const char *)data + 1;
    size_t rest = size - 1;
    const char *nul = memchr(p, 0, rest);
    size_t plen = nul ? (size_t)(nul - p) : rest;
    const char *s = nul ? nul + 1 : "";
    size_t n = nul ? rest - plen - 1 : 0;
    struct lmql__err err = {0};
    struct lmql__rx *rx = lmql__rx_compile(p, plen, flags, &err);
    if (!rx) {
        if (!err.msg[0] || err.pos.offset > plen) abort();
        return 0;
    }
    int ng = lmql__rx_ngroups(rx);
    if (ng < 0 || ng > 100) abort();
    ptrdiff_t *caps = malloc(2 * ((size_t)ng + 1) * sizeof *caps);
    if (!caps) abort();
    for (int mode = LMQL_RX_SEARCH; mode <= LMQL_RX_FULLMATCH; mode++) {
        int r = lmql__rx_exec(rx, s, n, 0, mode, 0, caps, &err);
        if (r == 1) {
            check_caps(caps, ng, n);
            if (mode != LMQL_RX_SEARCH && caps[0] != 0) abort();
            if (mode == LMQL_RX_FULLMATCH && (size_t)caps[1] != n) abort();
        }
        if (r < 0) goto done;   /* step limit or memory: reported, never a wrong match */
    }
    /* findall's walk: each match starts at or after the previous end */
    size_t at = 0;
    int empty_last = 0;
    for (int k = 0; k < 256 && at <= n; k++) {
        int r = lmql__rx_exec(rx, s, n, at, LMQL_RX_SEARCH, empty_last, caps, &err);
        if (r != 1) break;
        check_caps(caps, ng, n);
        if ((size_t)caps[0] < at) abort();
        empty_last = caps[0] == caps[1];
        at = (size_t)caps[1];
    }
done:
    free(caps);
    lmql__rx_free(rx);
    return 0;
}
