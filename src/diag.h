/*
** diag.h -- diagnostics collected by the front end.
**
** The lexer and parser never stop at the first problem: they append a
** diagnostic and recover.  Each diagnostic records where it happened
** (file name, 1-based line and column, byte offset) and a message; the
** source text is borrowed so the offending line can be shown with a caret,
** jq-style:
**
**   query.lmql:3:9: error: unterminated placeholder
**   "Hello [X
**          ^
**
** Columns count UTF-8 code points from the start of the line (a tab is one
** column), so the caret lines up with what an editor shows.
**
** Ownership: messages are owned by the list (lmql__diags_free releases them);
** `file` and `src` are borrowed and must outlive rendering.
*/
#ifndef LMQL_DIAG_H
#define LMQL_DIAG_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

struct lmql_diag {
  const char *file;    /* borrowed; "<input>" if NULL was given */
  const char *src;     /* borrowed source (may be NULL: no excerpt) */
  size_t src_len;
  size_t offset;       /* byte offset into src */
  int32_t line, col;   /* 1-based */
  char *msg;           /* owned, without "error: " prefix */
};

struct lmql_diags {
  struct lmql_diag *items;
  int32_t n, cap;
  int32_t max;         /* collect at most this many (0 = 100) */
  int32_t n_dropped;   /* diagnostics beyond max, not stored */
  int oom;             /* a diagnostic could not be stored */
};

#define LMQL_DIAGS_DEFAULT_MAX 100

void lmql__diags_init(struct lmql_diags *d);
/* Release all messages; the list is empty afterwards.  NULL is a no-op. */
void lmql__diags_free(struct lmql_diags *d);

/* Append a diagnostic (a printf-style message and its arguments).  Returns
** 0, or -1 when it was dropped (limit reached or out of memory; recorded in d). */
int lmql__diag_addv(struct lmql_diags *d, const char *file, const char *src,
                    size_t src_len, size_t offset, int32_t line, int32_t col,
                    const char *fmt, va_list ap)
#if defined(__GNUC__)
    __attribute__((format(printf, 8, 0)))
#endif
    ;

/* Stable sort by byte offset, so the earliest problem in the file comes
** first even though lexer errors are found before parser errors. */
void lmql__diags_sort(struct lmql_diags *d);

/* Render one diagnostic as "FILE:LINE:COL: error: MSG\n<line>\n<caret>\n"
** into buf (always NUL-terminated when cap > 0).  Returns the length the
** full text needs, excluding the NUL, like snprintf.  with_excerpt = 0
** gives only the first line (no trailing newline). */
size_t lmql__diag_render(const struct lmql_diag *g, int with_excerpt,
                         char *buf, size_t cap);

/* All diagnostics rendered with excerpts into one malloc'd string that the
** caller frees; NULL on out of memory. */
char *lmql__diags_render_all(const struct lmql_diags *d);

#endif
