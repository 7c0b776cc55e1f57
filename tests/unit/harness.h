/*
** A minimal test harness: checks count, failures print where and why, and
** each test program ends with `NAME: N passed, M failed`.
*/
#ifndef LMQL_TEST_HARNESS_H
#define LMQL_TEST_HARNESS_H

#include <stdio.h>
#include <string.h>

extern int th_passed, th_failed;
extern const char *th_current;

void th_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int  th_report(const char *suite);
void th_run(const char *name, void (*fn)(void));

#define CHECK(c) \
    ((c) ? (void)th_passed++ : th_fail(__FILE__, __LINE__, "%s", #c))
#define CHECK_INT(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) th_passed++; \
    else th_fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_STR(a, b) do { const char *a_ = (a), *b_ = (b); \
    if (a_ && b_ && !strcmp(a_, b_)) th_passed++; \
    else th_fail(__FILE__, __LINE__, "%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } while (0)
#define CHECK_CONTAINS(hay, needle) do { const char *h_ = (hay), *n_ = (needle); \
    if (h_ && strstr(h_, n_)) th_passed++; \
    else th_fail(__FILE__, __LINE__, "\"%s\" does not contain \"%s\"", h_ ? h_ : "(null)", n_); } while (0)
#define RUN(fn) th_run(#fn, fn)

#endif
