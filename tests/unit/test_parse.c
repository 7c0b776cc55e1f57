/*
** test_parse.c -- golden tests for the LMQL front end (lexer, parser, AST).
**
** Usage: test_parse [CASES]          run tests/cases/parse.test (default)
**        test_parse --dump FILE      print the AST dump / diagnostics of FILE
**
** The case file holds blocks separated by blank lines; '#' lines before a
** block describe it:
**
**   %%PROGRAM            query text (any lines) ...
**   %%AST                ... then the expected dump (up to a blank line)
**   %%AST+POS            same, with @LINE:COL on every node
**   %%FAIL               query text ...
**   %%EXPECT             ... then the expected diagnostics, one per line,
**                        as "<input>:LINE:COL: error: message"; the first
**                        N diagnostics must match the N lines given.
**
** A few checks that do not fit that format (caret rendering, nesting
** limits, odd bytes) are built in below.  All helpers are static so this
** file can be linked next to other test_*.c harness objects.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "parse.h"

static int n_pass, n_fail;

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 4096, n = 0;
  char *s = malloc(cap + 1);
  for (;;) {
    if (!s) { fclose(f); return NULL; }
    size_t r = fread(s + n, 1, cap - n, f);
    n += r;
    if (n < cap) break;
    cap *= 2;
    char *ns = realloc(s, cap + 1);
    if (!ns) { free(s); fclose(f); return NULL; }
    s = ns;
  }
  fclose(f);
  s[n] = 0;
  *len = n;
  return s;
}

static void print_prefixed(const char *label, const char *text) {
  printf("#   %s\n", label);
  const char *s = text;
  while (*s) {
    const char *e = strchr(s, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    printf("#     %.*s\n", (int)n, s);
    if (!e) break;
    s = e + 1;
  }
}

static void report(int ok, const char *desc) {
  if (ok) n_pass++; else n_fail++;
  printf("%s %d - %s\n", ok ? "ok" : "not ok", n_pass + n_fail, desc);
}

/* Render the first diagnostics (without excerpts), one per line. */
static char *first_diags(const struct lmql_diags *d, int n_lines) {
  size_t cap = 256, len = 0;
  char *s = malloc(cap);
  if (!s) return NULL;
  s[0] = 0;
  for (int32_t i = 0; i < d->n && i < n_lines; i++) {
    size_t need = lmql__diag_render(&d->items[i], 0, NULL, 0);
    while (len + need + 2 > cap) {
      cap *= 2;
      char *ns = realloc(s, cap);
      if (!ns) { free(s); return NULL; }
      s = ns;
    }
    if (i) s[len++] = '\n';
    lmql__diag_render(&d->items[i], 0, s + len, cap - len);
    len += need;
  }
  return s;
}

static int count_lines(const char *s) {
  int n = 1;
  for (; *s; s++) if (*s == '\n') n++;
  return n;
}

enum kind { CASE_AST, CASE_AST_POS, CASE_FAIL };

static void run_case(enum kind k, const char *desc, const char *prog, size_t prog_len,
                     const char *expect) {
  struct lmql_arena a;
  struct lmql_diags d;
  lmql__arena_init(&a);
  lmql__diags_init(&d);
  struct lmql_ast_query *q = lmql__parse_query(&a, prog, prog_len, "<input>", &d, NULL);
  if (!q) {
    report(0, desc);
    printf("#   parser ran out of memory\n");
  } else if (k == CASE_FAIL) {
    char *got = first_diags(&d, count_lines(expect));
    int ok = d.n > 0 && got && strcmp(got, expect) == 0;
    report(ok, desc);
    if (!ok) {
      print_prefixed("expected:", expect);
      print_prefixed("got:", d.n ? (got ? got : "?") : "(no diagnostics)");
    }
    free(got);
  } else {
    char *got = lmql__ast_dump_query(q, k == CASE_AST_POS ? LMQL_DUMP_POS : 0);
    int ok = d.n == 0 && got && strcmp(got, expect) == 0;
    report(ok, desc);
    if (!ok) {
      print_prefixed("expected:", expect);
      print_prefixed("got:", got ? got : "?");
      if (d.n) {
        char *all = lmql__diags_render_all(&d);
        print_prefixed("diagnostics:", all ? all : "?");
        free(all);
      }
    }
    free(got);
  }
  lmql__diags_free(&d);
  lmql__arena_free(&a);
}

/* Split the case file into blocks and run them. */
static int run_file(const char *path) {
  size_t len;
  char *text = read_file(path, &len);
  if (!text) {
    fprintf(stderr, "test_parse: cannot read %s\n", path);
    return -1;
  }
  char desc[512] = "";
  char *line = text;
  int n_cases = 0;
  while (line && *line) {
    char *nl = strchr(line, '\n');
    if (nl) *nl = 0;
    char *next = nl ? nl + 1 : NULL;
    if (line[0] == '#') {
      snprintf(desc, sizeof desc, "%s", line[1] == ' ' ? line + 2 : line + 1);
      line = next;
      continue;
    }
    int is_prog = strcmp(line, "%%PROGRAM") == 0, is_fail = strcmp(line, "%%FAIL") == 0;
    if (!is_prog && !is_fail) {
      if (line[0]) fprintf(stderr, "test_parse: stray line ignored: %s\n", line);
      line = next;
      continue;
    }
    /* program: up to the %%AST / %%EXPECT line */
    char *prog = next, *p = next, *marker = NULL;
    while (p && *p) {
      char *e = strchr(p, '\n');
      size_t n = e ? (size_t)(e - p) : strlen(p);
      if (n >= 2 && p[0] == '%' && p[1] == '%') { marker = p; break; }
      p = e ? e + 1 : NULL;
    }
    if (!marker || !prog) {
      fprintf(stderr, "test_parse: case '%s' has no expectation\n", desc);
      n_fail++;
      break;
    }
    size_t prog_len = (size_t)(marker - prog);
    if (prog_len > 0) prog_len--; /* the newline before the marker */
    char *mend = strchr(marker, '\n');
    if (mend) *mend = 0;
    enum kind k;
    if (strcmp(marker, "%%AST") == 0) k = CASE_AST;
    else if (strcmp(marker, "%%AST+POS") == 0) k = CASE_AST_POS;
    else if (strcmp(marker, "%%EXPECT") == 0) k = CASE_FAIL;
    else {
      fprintf(stderr, "test_parse: unknown marker %s\n", marker);
      n_fail++;
      break;
    }
    if ((k == CASE_FAIL) != is_fail) {
      fprintf(stderr, "test_parse: %s does not go with this block (%s)\n", marker, desc);
      n_fail++;
    }
    /* expectation: up to a blank line */
    char *exp = mend ? mend + 1 : marker + strlen(marker);
    char *q = exp, *exp_end = exp;
    while (*q) {
      char *e = strchr(q, '\n');
      size_t n = e ? (size_t)(e - q) : strlen(q);
      if (n == 0) break;
      exp_end = q + n;
      q = e ? e + 1 : q + n;
    }
    char saved = *exp_end;
    *exp_end = 0;
    char prog_copy_last = prog[prog_len];
    /* the program is passed with its exact length: no NUL needed */
    run_case(k, desc[0] ? desc : "(no description)", prog, prog_len, exp);
    (void)prog_copy_last;
    *exp_end = saved;
    n_cases++;
    desc[0] = 0;
    line = *exp_end ? exp_end + 1 : NULL;
  }
  free(text);
  return n_cases;
}

/* ---- built-in checks ---- */

static struct lmql_diags parse_diags(const char *src, size_t len, int32_t max_depth,
                                     int *got_query) {
  struct lmql_arena a;
  struct lmql_diags d;
  struct lmql_parse_opts o = {max_depth};
  lmql__arena_init(&a);
  lmql__diags_init(&d);
  struct lmql_ast_query *q = lmql__parse_query(&a, src, len, "q.lmql", &d, &o);
  *got_query = q != NULL;
  lmql__arena_free(&a);
  return d;
}

static void builtin_checks(void) {
  int gq;
  /* diagnostics render with the source line and a caret under the column */
  {
    const char *src = "argmax\n    \"Hello [X\"\nfrom \"m\"";
    struct lmql_diags d = parse_diags(src, strlen(src), 0, &gq);
    char *all = lmql__diags_render_all(&d);
    const char *want = "q.lmql:2:12: error: unterminated placeholder\n"
                       "    \"Hello [X\"\n"
                       "           ^\n";
    int ok = gq && all && strcmp(all, want) == 0;
    report(ok, "diagnostic rendering: FILE:LINE:COL, source line, caret");
    if (!ok && all) print_prefixed("got:", all);
    free(all);
    lmql__diags_free(&d);
  }
  /* deep nesting is a diagnostic, not a stack overflow */
  {
    size_t n = 100000;
    char *src = malloc(2 * n + 16);
    memcpy(src, "argmax\n x = ", 11);
    memset(src + 11, '(', n);
    memset(src + 11 + n, ')', n);
    struct lmql_diags d = parse_diags(src, 11 + 2 * n, 0, &gq);
    int ok = gq && d.n >= 1 && strstr(d.items[0].msg, "nesting too deep") != NULL;
    report(ok, "100000 nested parentheses: 'nesting too deep'");
    if (!ok && d.n) printf("#   got: %s\n", d.items[0].msg);
    lmql__diags_free(&d);
    memset(src, '-', n);
    memcpy(src + n, "1", 1);
    d = parse_diags(src, n + 1, 50, &gq);
    ok = gq && d.n >= 1 && strstr(d.items[0].msg, "more than 50 levels") != NULL;
    report(ok, "max_depth option is honoured");
    lmql__diags_free(&d);
    free(src);
  }
  /* NUL bytes and invalid UTF-8 are diagnostics */
  {
    const char src[] = "argmax \"a\0b\" from \"m\"";
    struct lmql_diags d = parse_diags(src, sizeof src - 1, 0, &gq);
    int ok = gq && d.n == 1 && strcmp(d.items[0].msg, "source contains a NUL byte") == 0 &&
             d.items[0].col == 10;
    report(ok, "NUL byte in source");
    lmql__diags_free(&d);
    const char bad[] = "argmax \"\xff\xfe[X]\"";
    d = parse_diags(bad, sizeof bad - 1, 0, &gq);
    ok = gq && d.n == 1 && strcmp(d.items[0].msg, "invalid UTF-8 in source") == 0;
    report(ok, "invalid UTF-8 in source");
    lmql__diags_free(&d);
  }
  /* the empty program is an empty query with the dynamic decoder */
  {
    struct lmql_arena a;
    struct lmql_diags d;
    lmql__arena_init(&a);
    lmql__diags_init(&d);
    struct lmql_ast_query *q = lmql__parse_query(&a, NULL, 0, NULL, &d, NULL);
    int ok = q && d.n == 0 && strcmp(q->decoder, "__dynamic__") == 0 && q->body.n == 0;
    report(ok, "empty input");
    lmql__diags_free(&d);
    lmql__arena_free(&a);
  }
  /* prompt segment text keeps a source map: hole name positions */
  {
    struct lmql_arena a;
    struct lmql_diags d;
    lmql__arena_init(&a);
    lmql__diags_init(&d);
    const char *src = "argmax\n  r'''a\n  b\\n[X]'''";
    struct lmql_ast_query *q = lmql__parse_query(&a, src, strlen(src), NULL, &d, NULL);
    int ok = q && d.n == 0 && q->body.n == 1 && q->body.items[0]->kind == LMQL_NODE_PROMPT;
    if (ok) {
      struct lmql_node *pr = q->body.items[0];
      ok = pr->u.prompt.segs.n == 2 &&
           pr->u.prompt.segs.items[0]->u.text.len == 5 &&
           memcmp(pr->u.prompt.segs.items[0]->u.text.text, "a\nb\\n", 5) == 0 &&
           pr->u.prompt.segs.items[1]->pos.line == 3 &&
           pr->u.prompt.segs.items[1]->pos.col == 6 &&
           pr->u.prompt.segs.items[1]->u.hole.name_pos.col == 7;
    }
    report(ok, "raw triple-quoted prompt: dedent and hole positions");
    lmql__diags_free(&d);
    lmql__arena_free(&a);
  }
}

static int dump_file(const char *path) {
  size_t len;
  char *src = read_file(path, &len);
  if (!src) { fprintf(stderr, "cannot read %s\n", path); return 2; }
  struct lmql_arena a;
  struct lmql_diags d;
  lmql__arena_init(&a);
  lmql__diags_init(&d);
  struct lmql_ast_query *q = lmql__parse_query(&a, src, len, path, &d, NULL);
  char *dump = q ? lmql__ast_dump_query(q, 0) : NULL;
  if (dump) printf("%s\n", dump);
  char *all = lmql__diags_render_all(&d);
  if (all) fputs(all, stdout);
  free(all);
  free(dump);
  int rc = d.n ? 1 : 0;
  lmql__diags_free(&d);
  lmql__arena_free(&a);
  free(src);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 2 && strcmp(argv[1], "--dump") == 0) return dump_file(argv[2]);
  const char *path = argc > 1 ? argv[1] : "tests/cases/parse.test";
  int n = run_file(path);
  if (n < 0) return 2;
  builtin_checks();
  printf("parse: %d passed, %d failed\n", n_pass, n_fail);
  return n_fail ? 1 : 0;
}
