/*
** Internal definitions shared by the library's modules (not installed).
*/
#ifndef LMQL_INT_H
#define LMQL_INT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lmql.h>

#include "alloc.h"

#include "utf8.h"

/*
** LMQL_ASSERT(cond): an invariant the code relies on (what a comment says
** "must", "always", "never" hold), never a check of user input: input
** errors are returned as errors. Active when LMQL_DEBUG is defined (the
** sanitizer and fuzz builds, `make DEBUG=1`): a false cond prints
** "file:line: assertion failed: cond (in function())" to stderr and aborts.
** Otherwise it compiles to nothing: cond is type-checked but not
** evaluated (the mask walks run per token over the whole vocabulary).
** Self-contained (no function of util.c), so the fuzz targets that link a
** few modules alone can use it.
*/
#ifdef LMQL_DEBUG
#include <stdio.h>
#include <stdlib.h>
__attribute__((noreturn, cold)) static inline void lmql__assert_fail(const char *file, int line, const char *func,
                                                                     const char *cond) {
    fprintf(stderr, "%s:%d: assertion failed: %s (in %s())\n", file, line, cond, func);
    abort();
}
#define LMQL_ASSERT(cond) ((cond) ? (void)0 : lmql__assert_fail(__FILE__, __LINE__, __func__, #cond))
#else
#define LMQL_ASSERT(cond) ((void)sizeof(!(cond)))
#endif


/* A place in a source text: 1-based line and column (line 0: no place)
** and the byte offset. */
struct lmql_pos {
    int32_t line, col;
    size_t offset;
};

/*
** The one error record of the library's modules: what kind of failure (an
** lmql_status; LMQL_OK while unclassified, which the caller that reports it
** turns into its own default), where in the query or pattern it is (line 0
** when it has no place there; a regex error sets only the byte offset into
** its pattern) and what happened. Zero-initialised is "no error". The
** parser, which collects several errors at once, keeps a list of them
** (diag.h); everything else fills one of these. Leaf scanners (a JSON
** string or number, a WebSocket handshake line) return a static reason
** instead, which their caller puts in its record with the place.
*/
struct lmql__err {
    lmql_status status;
    struct lmql_pos pos;
    char msg[1024];
};

/* Format a message into err (err may be NULL); status and place stay as
** they are. Returns -1 so callers can write `return lmql__errf(err, ...)`. */
int lmql__errf(struct lmql__err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same for functions that return a pointer: `return lmql__errp(err, ...)` gives NULL. */
#define lmql__errp(err, ...) (lmql__errf((err), __VA_ARGS__), NULL)
/* The same with the kind and place (pos NULL: no place). */
int lmql__err_set(struct lmql__err *err, lmql_status status, const struct lmql_pos *pos, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "out of memory", LMQL_ERR_NOMEM, no place; returns -1. */
int lmql__err_nomem(struct lmql__err *err);

/* Growing byte buffer. Zero-initialised is empty; data is always
** NUL-terminated once anything was appended. */
struct lmql__buf {
    char  *data;
    size_t len, cap;
};
int  lmql__buf_reserve(struct lmql__buf *b, size_t extra);
int  lmql__buf_add(struct lmql__buf *b, const void *p, size_t n);
int  lmql__buf_adds(struct lmql__buf *b, const char *s);
int  lmql__buf_addf(struct lmql__buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void lmql__buf_free(struct lmql__buf *b);
/* Append s as a JSON string literal (with quotes); invalid UTF-8 bytes
** become U+FFFD so the output is always valid JSON. */
int  lmql__buf_json_str(struct lmql__buf *b, const char *s, size_t n);
/* Decode the JSON string literal at s[*i] (its opening quote) into out
** (appended as UTF-8, not NUL-terminated; out NULL only checks it) and
** advance *i past its closing quote. Returns NULL, or what is wrong with
** *i at the fault. A lone surrogate becomes U+FFFD. */
const char *lmql__json_unescape(const char *s, size_t n, size_t *i, struct lmql__buf *out);
/* Read the JSON number at s[*i] (RFC 8259's grammar exactly) and advance
** *i past it. *d is its value, correctly rounded whatever its length;
** *is_int is set when it has no fraction or exponent and fits in 64 bits
** (then *iv is its value). Returns NULL, or what is wrong with *i at the
** fault (or "out of memory"): never a different number. */
const char *lmql__json_number(const char *s, size_t n, size_t *i, double *d, int64_t *iv, bool *is_int);

/* splitmix64: a small, fast generator that gives the same sequence on every
** platform, so seeded runs repeat anywhere. Advances *state. */
uint64_t lmql__rng_next(uint64_t *state);

/* Seconds on the monotonic clock (for durations). */
double lmql__now(void);

/* Number of CPU cores this process may run on (at least 1). */
int lmql__ncores(void);

#endif
