/*
** libFuzzer target for the JSON Schema compiler (src/jsonschema*.c),
** seeded from tests/fuzz/jsonschema. The input is a schema's text, then
** (after NUL bytes) candidate instances. The schema must compile or fail
** with a query error (or out of memory) and a message, in both whitespace
** modes; a compiled grammar must accept nothing but JSON texts: every
** candidate it accepts must parse as JSON, and stay accepted with free
** whitespace.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "jsonschema.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, 0, size);
    size_t n = nul ? (size_t)(nul - s) : size;
    struct lmql__err e = {0}, ew = {0};
    struct lmql__js_opts ws = {true};
    struct lmql_grammar *g = lmql__jsonschema_compile_text(s, n, NULL, &e);
    struct lmql_grammar *gw = lmql__jsonschema_compile_text(s, n, &ws, &ew);
    if (!g && ((e.status != LMQL_ERR_QUERY && e.status != LMQL_ERR_NOMEM) || !e.msg[0])) abort();
    if (!gw && ((ew.status != LMQL_ERR_QUERY && ew.status != LMQL_ERR_NOMEM) || !ew.msg[0])) abort();
    for (const char *p = nul; g && p && p < s + size;) {
        const char *t = p + 1, *end = memchr(t, 0, (size_t)(s + size - t));
        size_t len = end ? (size_t)(end - t) : (size_t)(s + size - t);
        int a = lmql__grammar_accepts(g, t, len);
        if (a == 1) {
            struct lmql__err pe = {0};
            struct lmql_val *v = lmql__json_parse_doubles(t, len, &pe);
            if (!v && !strstr(pe.msg, "out of memory") && !strstr(pe.msg, "nesting")) abort();
            lmql__val_unref(v);
            if (gw && lmql__grammar_accepts(gw, t, len) == 0) abort();
        }
        p = end;
    }
    lmql__grammar_free(g);
    lmql__grammar_free(gw);
    return 0;
}
