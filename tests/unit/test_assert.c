/*
** LMQL_ASSERT (src/lmql_int.h): built with LMQL_DEBUG (the sanitizer build,
** `make DEBUG=1`) a false invariant aborts with "file:line: assertion
** failed: cond", in this file and in the library's own modules; built
** without it (the release build) the condition is not even evaluated.
** The tests are compiled with the library's flags, so LMQL_DEBUG here says
** which build this is.
*/
#include "harness.h"
#include "lmql_int.h"
#include "regex.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Used only inside LMQL_ASSERT: unused in the release build. */
__attribute__((unused)) static int bump(int *n) { return ++*n; }

static void test_evaluation(void) {
    int n = 0;
    LMQL_ASSERT(bump(&n) == 1);
#ifdef LMQL_DEBUG
    CHECK_INT(n, 1);   /* checked: evaluated exactly once */
#else
    CHECK_INT(n, 0);   /* release: compiled out, no side effect */
#endif
    /* A true condition passes whatever the build. */
    LMQL_ASSERT(n >= 0 && "a message in the condition");
    CHECK(1);
}

#ifdef LMQL_DEBUG
/* Run fn in a child process with its stderr into out (NUL-terminated);
** returns the child's wait status, or -1 when it could not run. */
static int in_child(void (*fn)(void), char *out, size_t cap) {
    int fd[2];
    out[0] = 0;
    if (pipe(fd)) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) { close(fd[0]); close(fd[1]); return -1; }
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 2);
        fn();
        _exit(0);   /* fn returned: the assertion did not fire */
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n < cap - 1 && (r = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    char rest[256];
    while (read(fd[0], rest, sizeof rest) > 0) {}   /* more than fits: the child must not block */
    close(fd[0]);
    int status;
    if (waitpid(pid, &status, 0) != pid) return -1;
    return status;
}

/* The assertion that fails is FAIL_LINE (three lines down). */
enum { FAIL_LINE = __LINE__ + 3 };
static void fail_here(void) {
    int x = 1;
    LMQL_ASSERT(x == 2);
}

static void pass_here(void) {
    int x = 2;
    LMQL_ASSERT(x == 2);
}

/* A library precondition: every regex function requires re != NULL. */
static void fail_in_library(void) { (void)lmql__regex_start(NULL); }

static void test_aborts(void) {
    char out[2048], want[256];
    int st = in_child(fail_here, out, sizeof out);
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    snprintf(want, sizeof want, "test_assert.c:%d: assertion failed: x == 2 (in fail_here())", (int)FAIL_LINE);
    CHECK_CONTAINS(out, want);
    /* A true one lets the child go on to its normal exit, silently. */
    st = in_child(pass_here, out, sizeof out);
    CHECK(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    CHECK_STR(out, "");
}

/* The library's modules are built with the same flags: their invariants
** are checked too. */
static void test_library(void) {
    char out[2048];
    int st = in_child(fail_in_library, out, sizeof out);
    CHECK(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
    CHECK_CONTAINS(out, "regex_dfa.c:");
    CHECK_CONTAINS(out, ": assertion failed: re != NULL (in lmql__regex_start())");
}
#endif

int main(void) {
    RUN(test_evaluation);
#ifdef LMQL_DEBUG
    RUN(test_aborts);
    RUN(test_library);
#endif
    return th_report("assert");
}
