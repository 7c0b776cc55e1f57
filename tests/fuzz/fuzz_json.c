/*
** libFuzzer target for the JSON reader (src/json.c): it reads what a model
** server sends the LMTP client and what host functions return. A parsed
** value is printed back (str and JSON), which walks all of it.
*/
#include <stdint.h>
#include <stdlib.h>

#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct lmql__err err;
    struct lmql_val *v = lmql__json_parse((const char *)data, size, &err);
    if (!v) return 0;
    struct lmql__buf b = {0};
    lmql__val_json_into(&b, v);
    b.len = 0;
    lmql__val_str_into(&b, v);
    lmql__buf_free(&b);
    lmql__val_unref(v);
    return 0;
}
