/*
** Data-driven query tests: each block of a case file is a query and what
** must hold for its result (or its error). Queries run on the real tiny
** llama.cpp models and on the random model, so expectations state
** properties that hold for any draw where the output is random.
**
** Format (blocks start with a %% header; `#` lines before a block
** describe it):
**   %%PROGRAM            a query that must succeed
**   %%FAIL               a query that must fail
**   %%ARGS               optional: NAME=VALUE per line, the query's
**                        arguments as `lmql run` reads them (an integer,
**                        a float, else a string)
**   %%EXPECT             one check per line:
**     prompt == TEXT       exact prompt; {VAR} stands for a variable's value
**     prompt ^= TEXT       prompt prefix ($= suffix)
**     var X == TEXT        exact value (\n, \t, \\ escapes)
**     var X ^= TEXT / $= TEXT / !~ TEXT / ~ TEXT   prefix, suffix, lacks, has
**     tokens X <= N / == N / >= N   canonical token count of X's value
**     vars == A,B          variable names in order
**     count == N           number of sequences
**     json == TEXT         the whole JSON result
**     status query|model|runtime    (FAIL) the kind of error
**     error ~ TEXT         (FAIL) the message contains TEXT
**     line N / col N       (FAIL) the error position
*/
#include "harness.h"
#include "model.h"

#include <lmql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>

/* Token counts use the vocabulary of the case's model: GPT-2's for the
** random model (its default, as LMQL's), SPM's for the tiny SPM model. */
static struct lmql__model *g_vocab, *g_gpt2, *g_spm;

/* C-style escapes in expectation text. */
static void unescape(const char *s, char *out, size_t cap) {
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            out[n++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
        } else out[n++] = *s;
    }
    out[n] = 0;
}

static const char *var_text(const struct lmql_result *R, const char *name, char *buf, size_t cap) {
    for (int k = 0; k < lmql_result_variable_count(R, 0); k++) {
        if (strcmp(lmql_result_variable_name(R, 0, k), name)) continue;
        const char *j = lmql_result_variable_json(R, 0, k);
        /* JSON string -> text (the escapes our writer produces). */
        if (*j != '"') { snprintf(buf, cap, "%s", j); return buf; }
        size_t n = 0;
        for (j++; *j && *j != '"' && n + 1 < cap; j++) {
            if (*j == '\\') {
                j++;
                if (*j == 'u') { unsigned c; sscanf(j + 1, "%4x", &c); buf[n++] = (char)c; j += 4; continue; }
                buf[n++] = *j == 'n' ? '\n' : *j == 't' ? '\t' : *j == 'r' ? '\r' : *j;
            } else buf[n++] = *j;
        }
        buf[n] = 0;
        return buf;
    }
    return NULL;
}

static int count_tokens(const char *text) {
    int32_t t[4096];
    struct lmql__err err;
    return g_vocab->ops->tokenize(g_vocab, text, strlen(text), false, true, t, 4096, &err);
}

/* Expand {VAR} in a template with variable values. */
static void expand(const struct lmql_result *R, const char *tmpl, char *out, size_t cap) {
    size_t n = 0;
    while (*tmpl && n + 1 < cap) {
        const char *close = *tmpl == '{' ? strchr(tmpl, '}') : NULL;
        if (close) {
            char name[128], val[8192];
            snprintf(name, sizeof name, "%.*s", (int)(close - tmpl - 1), tmpl + 1);
            const char *v = var_text(R, name, val, sizeof val);
            if (v) {
                n += (size_t)snprintf(out + n, cap - n, "%s", v);
                tmpl = close + 1;
                continue;
            }
        }
        out[n++] = *tmpl++;
    }
    out[n < cap ? n : cap - 1] = 0;
}

static void check_line(const char *where, const struct lmql_result *R, const char *line) {
    char a[256], op[8], raw[8192], want[8192], got_buf[8192];
    raw[0] = 0;
    if (sscanf(line, "prompt %7s %8191[^\n]", op, raw) >= 1 && !strncmp(line, "prompt", 6)) {
        unescape(raw, want, sizeof want);
        const char *p = lmql_result_prompt(R, 0);
        if (!strcmp(op, "==")) {
            char full[8192];
            expand(R, want, full, sizeof full);
            if (p && !strcmp(p, full)) th_passed++;
            else th_fail(where, 0, "prompt \"%s\" != \"%s\"", p ? p : "(null)", full);
        } else if (!strcmp(op, "^=")) {
            if (p && !strncmp(p, want, strlen(want))) th_passed++;
            else th_fail(where, 0, "prompt \"%s\" does not start with \"%s\"", p ? p : "(null)", want);
        } else if (!strcmp(op, "$=")) {
            size_t lp = p ? strlen(p) : 0, lw = strlen(want);
            if (p && lp >= lw && !strcmp(p + lp - lw, want)) th_passed++;
            else th_fail(where, 0, "prompt \"%s\" does not end with \"%s\"", p ? p : "(null)", want);
        } else th_fail(where, 0, "bad check: %s", line);
        return;
    }
    if (sscanf(line, "var %255s %7s", a, op) == 2 && !strncmp(line, "var ", 4)) {
        /* The text is everything after "var NAME OP ", spaces included. */
        const char *rest = line + 4 + strlen(a) + 1 + strlen(op);
        if (*rest == ' ') rest++;
        unescape(rest, want, sizeof want);
        const char *v = var_text(R, a, got_buf, sizeof got_buf);
        if (!v) { th_fail(where, 0, "no variable %s", a); return; }
        size_t lv = strlen(v), lw = strlen(want);
        bool ok = !strcmp(op, "==") ? !strcmp(v, want)
                : !strcmp(op, "^=") ? !strncmp(v, want, lw)
                : !strcmp(op, "$=") ? lv >= lw && !strcmp(v + lv - lw, want)
                : !strcmp(op, "!~") ? strstr(v, want) == NULL
                : !strcmp(op, "~") ? strstr(v, want) != NULL : false;
        if (ok) th_passed++;
        else th_fail(where, 0, "var %s = \"%s\": fails %s \"%s\"", a, v, op, want);
        return;
    }
    int n;
    if (sscanf(line, "tokens %255s %7s %d", a, op, &n) == 3) {
        const char *v = var_text(R, a, got_buf, sizeof got_buf);
        if (!v) { th_fail(where, 0, "no variable %s", a); return; }
        int k = count_tokens(v);
        bool ok = !strcmp(op, "<=") ? k <= n : !strcmp(op, "==") ? k == n : !strcmp(op, ">=") ? k >= n : false;
        if (ok) th_passed++;
        else th_fail(where, 0, "tokens(%s \"%s\") = %d, wanted %s %d", a, v, k, op, n);
        return;
    }
    if (!strncmp(line, "vars == ", 8)) {
        snprintf(a, sizeof a, "%s", line + 8);
        char names[512] = "";
        for (int k = 0; k < lmql_result_variable_count(R, 0); k++) {
            if (k) strcat(names, ",");
            strncat(names, lmql_result_variable_name(R, 0, k), sizeof names - strlen(names) - 2);
        }
        if (!strcmp(names, a)) th_passed++;
        else th_fail(where, 0, "vars %s != %s", names, a);
        return;
    }
    if (sscanf(line, "count == %d", &n) == 1) {
        if (lmql_result_count(R) == n) th_passed++;
        else th_fail(where, 0, "count %d != %d", lmql_result_count(R), n);
        return;
    }
    if (!strncmp(line, "json == ", 8)) {
        const char *j = lmql_result_json(R);
        if (j && !strcmp(j, line + 8)) th_passed++;
        else th_fail(where, 0, "json %s != %s", j ? j : "(null)", line + 8);
        return;
    }
    th_fail(where, 0, "unknown check: %s", line);
}

static void check_fail(const char *where, const struct lmql *L, lmql_status st, const char *line) {
    char a[256];
    int n;
    if (sscanf(line, "status %255s", a) == 1) {
        lmql_status want = !strcmp(a, "query") ? LMQL_ERR_QUERY : !strcmp(a, "model") ? LMQL_ERR_MODEL : LMQL_ERR_RUNTIME;
        if (st == want) th_passed++;
        else th_fail(where, 0, "status %d, wanted %s (%s)", st, a, lmql_errmsg(L));
    } else if (!strncmp(line, "error ~ ", 8)) {
        if (strstr(lmql_errmsg(L), line + 8)) th_passed++;
        else th_fail(where, 0, "error \"%s\" lacks \"%s\"", lmql_errmsg(L), line + 8);
    } else if (sscanf(line, "line %d", &n) == 1) {
        if (lmql_error_line(L) == n) th_passed++;
        else th_fail(where, 0, "error line %d, wanted %d (%s)", lmql_error_line(L), n, lmql_errmsg(L));
    } else if (sscanf(line, "col %d", &n) == 1) {
        if (lmql_error_col(L) == n) th_passed++;
        else th_fail(where, 0, "error col %d, wanted %d (%s)", lmql_error_col(L), n, lmql_errmsg(L));
    } else th_fail(where, 0, "unknown check: %s", line);
}

struct lmql_case {
    char desc[256];
    int line;
    bool must_fail;
    struct lmql__buf program, args, expect;
};

/* The query's arguments, typed as the command line types them. */
static struct lmql_args *case_args(const char *where, char *text) {
    struct lmql_args *A = lmql_args_init();
    char *save = NULL;
    for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
        char *eq = strchr(line, '=');
        if (!eq) { th_fail(where, 0, "bad argument line: %s", line); continue; }
        *eq = 0;
        char *value = eq + 1, *end;
        long long i = strtoll(value, &end, 10);
        if (*value && !*end) { lmql_args_set_int(A, line, i); continue; }
        double d = strtod(value, &end);
        if (*value && !*end) { lmql_args_set_float(A, line, d); continue; }
        lmql_args_set_str(A, line, value);
    }
    return A;
}

static void run_case(struct lmql *L, const char *file, struct lmql_case *c) {
    g_vocab = c->program.data && strstr(c->program.data, "-spm.gguf") ? g_spm : g_gpt2;
    char where[512];
    snprintf(where, sizeof where, "%s:%d %s", file, c->line, c->desc);
    /* Trailing newline of the block is not part of the program. */
    while (c->program.len && c->program.data[c->program.len - 1] == '\n') c->program.data[--c->program.len] = 0;
    int before = th_failed;
    th_current = where;
    struct lmql_program *P = lmql_program_compile(L, "<case>", c->program.data ? c->program.data : "", c->program.len);
    struct lmql_result *R = NULL;
    struct lmql_args *A = c->args.data ? case_args(where, c->args.data) : NULL;
    lmql_status st = P ? lmql_run(L, P, A, &R) : LMQL_ERR_QUERY;
    lmql_args_free(A);
    char *save = NULL;
    int checks = 0;
    for (char *line = c->expect.data ? strtok_r(c->expect.data, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save)) {
        if (!*line) continue;
        checks++;
        if (c->must_fail) {
            if (st == LMQL_OK) { th_fail(where, 0, "succeeded, but must fail: %s", lmql_result_json(R)); break; }
            check_fail(where, L, st, line);
        } else {
            if (st != LMQL_OK) { th_fail(where, 0, "failed: %s", lmql_errmsg(L)); break; }
            check_line(where, R, line);
        }
    }
    if (checks == 0) th_fail(where, 0, "the case checks nothing: give it an %%%%EXPECT section");
    printf("%s %s\n", th_failed == before ? "ok" : "not ok", where);
    lmql_result_free(R);
    lmql_program_free(P);
}

static void run_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) { th_fail(path, 0, "cannot open"); return; }
    struct lmql_params params = lmql_default_params();
    params.max_steps = 100000;
    struct lmql *L = lmql_init(&params);
    struct lmql_case c = {0};
    struct lmql__buf *into = NULL;
    char line[8192], desc[8192] = "";
    int lineno = 0, have = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        if (!strncmp(line, "%%PROGRAM", 9) || !strncmp(line, "%%FAIL", 6)) {
            if (have) run_case(L, path, &c);
            lmql__buf_free(&c.program);
            lmql__buf_free(&c.args);
            lmql__buf_free(&c.expect);
            memset(&c, 0, sizeof c);
            snprintf(c.desc, sizeof c.desc, "%.200s", desc);
            desc[0] = 0;
            c.line = lineno;
            c.must_fail = line[2] == 'F';
            into = &c.program;
            have = 1;
            continue;
        }
        if (!strncmp(line, "%%EXPECT", 8)) { into = &c.expect; continue; }
        if (!strncmp(line, "%%ARGS", 6)) { into = &c.args; continue; }
        if (into == &c.expect && line[0] == '#') {
            snprintf(desc, sizeof desc, "%s", line + 2);
            desc[strcspn(desc, "\n")] = 0;
            continue;
        }
        if (into) lmql__buf_adds(into, line);
        else if (line[0] == '#') { snprintf(desc, sizeof desc, "%s", line + 2); desc[strcspn(desc, "\n")] = 0; }
    }
    if (have) run_case(L, path, &c);
    lmql__buf_free(&c.program);
    lmql__buf_free(&c.args);
    lmql__buf_free(&c.expect);
    fclose(f);
    lmql_free(L);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every case file of a directory, in name order (LMQL's own tests, one
** file per test file of theirs). */
static void run_dir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { th_fail(dir, 0, "cannot open"); return; }
    char *names[256];
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) && n < 256;) {
        size_t l = strlen(e->d_name);
        if (l > 5 && !strcmp(e->d_name + l - 5, ".test")) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_names);
    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        run_file(path);
        free(names[i]);
    }
}

int main(int argc, char **argv) {
    struct lmql__err err;
    struct lmql__kv kv = {"vocab_only", "true"};
    g_spm = lmql__llama_open("build/vocab/ggml-vocab-llama-spm.gguf", &kv, 1, &err);
    if (!g_spm) { fprintf(stderr, "%s\n", err.msg); return 1; }
    g_gpt2 = lmql__llama_open("build/vocab/ggml-vocab-gpt-2.gguf", &kv, 1, &err);
    if (!g_gpt2) { fprintf(stderr, "%s\n", err.msg); return 1; }
    if (argc > 1)
        for (int i = 1; i < argc; i++) run_file(argv[i]);
    else {
        run_file("tests/cases/run.test");
        run_file("tests/cases/language.test");
        run_file("tests/cases/docs.test");
        run_file("tests/cases/docs-lib.test");
        run_file("tests/cases/values.test");
        run_file("tests/cases/typed.test");
        run_file("tests/cases/classes.test");
        run_file("tests/cases/programs.test");
        run_file("tests/cases/random.test");
        run_file("tests/cases/chat.test");
        run_dir("tests/cases/lmql");
    }
    lmql__model_free(g_spm);
    lmql__model_free(g_gpt2);
    return th_report("queries");
}
