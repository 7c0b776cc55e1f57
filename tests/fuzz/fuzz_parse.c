/*
** fuzz_parse.c -- libFuzzer target for the LMQL front end.
**
**   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc \
**     src/arena.c src/diag.c src/lex.c src/ast.c src/parse*.c \
**     tests/fuzz/fuzz_parse.c -o fuzz_parse
**   ./fuzz_parse -max_total_time=120 -timeout=5 CORPUS_DIR
**
** Any bytes go through lexer, parser, AST dump and diagnostic rendering;
** nothing may crash, leak or hang.  When the first byte is 0xA5 the arena
** gets a small memory limit chosen by the second byte, so the out-of-memory
** paths (longjmp out of the parser) are exercised too.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct lmql_arena a;
  struct lmql_diags d;
  lmql__arena_init(&a);
  lmql__diags_init(&d);
  if (size >= 2 && data[0] == 0xA5) {
    a.limit = 4096 + (size_t)data[1] * 512;
    data += 2;
    size -= 2;
  }
  struct lmql_parse_opts opts = {0};
  struct lmql_ast_query *q =
      lmql__parse_query(&a, (const char *)data, size, "fuzz.lmql", &d, &opts);
  if (q) {
    char *s = lmql__ast_dump_query(q, LMQL_DUMP_POS);
    free(s);
  }
  char *r = lmql__diags_render_all(&d);
  free(r);
  lmql__diags_free(&d);
  lmql__arena_free(&a);
  return 0;
}
