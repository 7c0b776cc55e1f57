#include "harness.h"

#include <stdarg.h>

int th_passed, th_failed;
const char *th_current = "";

void th_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    th_failed++;
    fprintf(stderr, "FAIL %s (%s:%d): ", th_current, file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void th_run(const char *name, void (*fn)(void)) {
    int before = th_failed;
    th_current = name;
    fn();
    printf("%s %s\n", th_failed == before ? "ok" : "not ok", name);
    fflush(stdout);
}

int th_report(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, th_passed, th_failed);
    return th_failed ? 1 : 0;
}
