/*
** Allocation failures: every query below runs once to learn its result and
** how many allocations our code makes, then again with the 1st, 2nd, ...
** Nth allocation failing (all of the first ones, then spread over the
** rest). Each run must give the same result or fail with LMQL_ERR_NOMEM:
** never a crash, never a different result reported as success.
**
** Only our own allocations fail: the binary is linked with
** -Wl,--wrap=malloc (and calloc, realloc, strdup), which redirects the
** calls in our objects and leaves llama.cpp's and libc's own alone.
*/
#include "harness.h"

#include <lmql.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static atomic_long g_count;      /* allocations so far */
static atomic_long g_fail_at;    /* the one that fails (1-based); 0: none */

static bool fail_now(void) {
    long k = atomic_fetch_add(&g_count, 1) + 1;
    return k == atomic_load(&g_fail_at);
}
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t k) { return fail_now() ? NULL : __real_calloc(n, k); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }

static bool g_compile_only;      /* compile, do not run */

/* One run: the status, and the result's JSON (or the error) in out. */
static lmql_status run_once(const char *src, char *out, size_t cap) {
    struct lmql *L = lmql_init(NULL);
    if (!L) { snprintf(out, cap, "out of memory"); return LMQL_ERR_NOMEM; }
    struct lmql_program *P = lmql_program_compile(L, "<alloc>", src, strlen(src));
    struct lmql_result *R = NULL;
    lmql_status st = !P ? lmql_error_status(L) : g_compile_only ? LMQL_OK : lmql_run(L, P, NULL, &R);
    if (st == LMQL_OK && g_compile_only) {
        snprintf(out, cap, "compiled");
        lmql_program_free(P);
        lmql_free(L);
        return st;
    }
    if (st == LMQL_OK) snprintf(out, cap, "%s", lmql_result_json(R) ? lmql_result_json(R) : "(null)");
    else snprintf(out, cap, "%s", lmql_errmsg(L) ? lmql_errmsg(L) : "(no message)");
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
    return st;
}

/* run_once in a child process, so that a crash is one failure reported
** and not the end of the test: the status, and the text in out. */
static lmql_status run_child(const char *src, long fail_at, char *out, size_t cap, int *signal_out) {
    int fd[2];
    *signal_out = 0;
    if (pipe(fd)) { snprintf(out, cap, "pipe failed"); return LMQL_ERR_MISUSE; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        static char buf[8192];
        atomic_store(&g_count, 0);
        atomic_store(&g_fail_at, fail_at);
        lmql_status st = run_once(src, buf, sizeof buf);
        atomic_store(&g_fail_at, 0);
        int32_t s32 = st;
        ssize_t w = write(fd[1], &s32, sizeof s32);
        w += write(fd[1], buf, strlen(buf));
        _exit(w > 0 ? 0 : 1);
    }
    close(fd[1]);
    int32_t s32 = 0;
    size_t n = 0;
    ssize_t r = read(fd[0], &s32, sizeof s32);
    bool have = r == (ssize_t)sizeof s32;
    while (have && n + 1 < cap && (r = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(fd[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (WIFSIGNALED(ws)) *signal_out = WTERMSIG(ws);
    if (!have) snprintf(out, cap, "the run died (signal %d)", *signal_out);
    return have ? (lmql_status)s32 : LMQL_ERR_MISUSE;
}

/* The allocations to fail: all of the first ones, then as many again spread
** over the rest (fewer under the sanitizers, where each run is slower). */
#if defined(__SANITIZE_ADDRESS__)
#define FIRST 60
#else
#define FIRST 150
#endif
static long next_n(long n, long total) {
    if (n < FIRST) return n + 1;
    return n + (total - FIRST) / FIRST + 1;
}

static void fail_each(const char *name, const char *src, lmql_status want) {
    char expect[8192], got[8192];
    atomic_store(&g_fail_at, 0);
    atomic_store(&g_count, 0);
    lmql_status st0 = run_once(src, expect, sizeof expect);
    long total = atomic_load(&g_count);
    if (st0 != want) {
        th_fail(__FILE__, __LINE__, "%s: the run without failures gives status %d (%s), expected %d", name, st0, expect,
                want);
        return;
    }
    int bad = 0, nomem = 0, same = 0;
    for (long n = 1; n <= total && bad < 40; n = next_n(n, total)) {
        int sig;
        lmql_status st = run_child(src, n, got, sizeof got, &sig);
        if (!sig && st == st0 && !strcmp(got, expect)) {
            same++;
        } else if (st == LMQL_ERR_NOMEM && strstr(got, "out of memory")) {
            nomem++;
        } else {
            bad++;
            th_fail(__FILE__, __LINE__, "%s: allocation %ld of %ld failing gave status %d '%.300s' (expected %d '%.300s' "
                    "or out of memory)", name, n, total, st, got, st0, expect);
        }
    }
    if (!bad) th_passed++;
    printf("# %s: %ld allocations; failing each of %d of them: %d same result, %d out of memory\n", name, total,
           same + nomem, same, nomem);
}

/* Compiling (lexer, parser, where checks, error messages) under failures. */
static void test_compile(void) {
    g_compile_only = true;
    fail_each("compile: a script with a loop, a hole and a return value",
              "argmax\n    items = []\n    for i in range(3):\n        \"Item {i}:[X]\\n\"\n        items.append(X)\n"
              "    return {\"items\": items, \"n\": len(items)}\nfrom lmql.model(\"random\", seed=1)\n"
              "where len(TOKENS(X)) < 3 and STOPS_AT(X, \"\\n\")",
              LMQL_OK);
    fail_each("compile: a query function, a distribution and a nested query",
              "@lmql.query\ndef q(a):\n    '''lmql\n    \"{a}:[Y]\" where len(Y) < 5\n    return Y\n    '''\n"
              "argmax \"A [Z: q('x')] and [C]\" from \"random\" distribution C in [\" yes\", \" no\"]",
              LMQL_OK);
    fail_each("compile: a constraint LMQL rejects", "argmax \"[X]\" from \"random\" where len(TOKENS(X)) <= 3",
              LMQL_ERR_QUERY);
    fail_each("compile: a syntax error", "argmax \"[X]\" from \"random\" where (len(X) < 3", LMQL_ERR_QUERY);
    g_compile_only = false;
}

/* Whole runs: a script on the random model, a distribution on a llama.cpp
** model, two sampled sequences in threads. */
static void test_runs(void) {
    fail_each("random model, a script with a loop and a return value",
              "argmax\n    items = []\n    for i in range(3):\n        \"Item {i}:[X]\\n\"\n        items.append(X)\n"
              "    return {\"items\": items, \"n\": len(items)}\nfrom lmql.model(\"random\", seed=1)\n"
              "where len(TOKENS(X)) < 3",
              LMQL_OK);
    fail_each("tiny llama.cpp model, a distribution",
              "argmax \"Ripe?[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" distribution R in [\" yes\", \" no\"]",
              LMQL_OK);
    fail_each("sample(n=2)", "sample(n=2) \"A[X]\" from lmql.model(\"random\", seed=3) where len(TOKENS(X)) < 3",
              LMQL_OK);
}

int main(void) {
    /* LMQL_ALLOC_ONE="QUERY N": run QUERY once with allocation N failing, in
    ** this process (for a debugger or the sanitizers), and print what came. */
    const char *one = getenv("LMQL_ALLOC_ONE");
    if (one) {
        char out[8192];
        long n = atol(one);
        const char *src = strchr(one, ' ');
        atomic_store(&g_fail_at, n);
        lmql_status st = run_once(src ? src + 1 : "", out, sizeof out);
        printf("status %d: %s\n", st, out);
        return 0;
    }
    RUN(test_compile);
    RUN(test_runs);
    return th_report("alloc");
}
