/*
** fuzz_gbnf.c -- libFuzzer target for the GBNF compiler (src/gbnf.h).
**
**   make build/fuzz/fuzz_gbnf
**   build/fuzz/fuzz_gbnf -max_total_time=60 -timeout=60 build/fuzz/gbnf-corpus
**
** (A regex the regex engine refuses as too complex costs its work limit,
** and a compile may meet two before it builds the rest cautiously; under
** the sanitizers that is tens of seconds: hence -timeout=60.)
**
** The input is split at its first NUL into a grammar and a subject (no NUL:
** all grammar, empty subject). Any grammar must compile or fail cleanly:
** a query error whose line and column agree with its byte offset inside
** the text, or out of memory. When it compiles, compiling it again gives
** the same sizes, and the subject is fed byte by byte through a matcher,
** which must agree with lmql__grammar_accepts (unless one of them ran into
** the matcher's bounds).
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gbnf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The place of offset off in text, counted as gbnf.h says. */
static struct lmql_pos place(const char *text, size_t n, size_t off) {
    struct lmql_pos p = {1, 1, off};
    for (size_t i = 0; i < off && i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n' || (c == '\r' && (i + 1 >= n || text[i + 1] != '\n'))) {
            p.line++;
            p.col = 1;
        } else if ((c & 0xC0) != 0x80 && c != '\r') {
            p.col++;
        }
    }
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *text = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t n = nul ? (size_t)(nul - data) : size;
    const char *subj = nul ? (const char *)nul + 1 : "";
    size_t slen = nul ? size - n - 1 : 0;
    struct lmql__err e = {0};
    /* the whole input: the compiler stops at the NUL itself */
    struct lmql_grammar *g = lmql__gbnf_compile(text, size, NULL, &e);
    if (!g) {
        if (e.status != LMQL_ERR_QUERY && e.status != LMQL_ERR_NOMEM) abort();
        if (!e.msg[0] || strlen(e.msg) >= sizeof e.msg) abort();
        if (e.pos.line > 0) {
            if (e.pos.offset > n) abort();
            struct lmql_pos p = place(text, n, e.pos.offset);
            if (p.line != e.pos.line || p.col != e.pos.col) abort();
        }
        return 0;
    }
    struct lmql__err e2 = {0};
    struct lmql_grammar *g2 = lmql__gbnf_compile(text, n, "root", &e2);
    if (!g2 || lmql__grammar_n_nonterminals(g2) != lmql__grammar_n_nonterminals(g) ||
        lmql__grammar_n_terminals(g2) != lmql__grammar_n_terminals(g))
        abort();
    lmql__grammar_free(g2);

    int acc = lmql__grammar_accepts(g, subj, slen);
    struct lmql__gm *m = lmql__gm_new(g, NULL);
    if (!m) abort();
    int32_t c = lmql__gm_start(m);
    bool oom = c == -2;
    for (size_t i = 0; i < slen && c >= 0; i++) {
        c = lmql__gm_step(m, c, (unsigned char)subj[i]);
        oom = c == -2;
    }
    /* the matcher bounds its work: out of memory then, in both */
    if (!oom && acc >= 0 && acc != (c >= 0 && lmql__gm_accepting(m, c))) abort();
    lmql__gm_free(m);
    lmql__grammar_free(g);
    return 0;
}
