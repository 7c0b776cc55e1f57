/*
** lex.h -- hand-written lexer for LMQL queries and the Python subset.
**
** The lexer turns a byte range into an array of tokens in one pass.  It
** does not emit NEWLINE/INDENT/DEDENT tokens; instead each token says
** whether it starts a logical line (`bol`) and, if so, the width of that
** line's indentation.  The parser derives blocks from that, which lets
** LMQL's clauses switch between layout-sensitive prompt code and "lines
** joined" where/from clauses without re-lexing.  Inside brackets, after a
** backslash continuation, and in `joined` inputs no token has bol set.
**
** String tokens are not decoded here; lmql__str_decode does that on
** demand, because the dedent applied to prompt strings is only known to
** the parser.
*/
#ifndef LMQL_LEX_H
#define LMQL_LEX_H

#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"
#include "lmql_int.h"   /* struct lmql_pos */

enum lmql_tok_kind {
#define TOK(id, text) LMQL_TOK_##id,
#define KW(id, text) LMQL_TOK_KW_##id,
#define OP(id, text) LMQL_TOK_##id,
#include "tokens.def"
#undef TOK
#undef KW
#undef OP
  LMQL_TOK__COUNT
};

/* Flags of string tokens (lmql_token.str_flags). */
enum {
  LMQL_STR_RAW = 1,     /* r/R prefix: no escape processing */
  LMQL_STR_F = 2,       /* f/F prefix */
  LMQL_STR_BYTES = 4,   /* b/B prefix (rejected with a diagnostic) */
  LMQL_STR_TRIPLE = 8   /* ''' or """ */
};

/* Line table of one source text, for offset -> line:col. */
struct lmql_srcmap {
  const char *src;
  size_t len;
  const char *file;      /* borrowed, for diagnostics */
  size_t *lines;         /* start offset of each line */
  int32_t n_lines;
  /* UTF-8 continuation bytes before each multiple of LMQL_SRCMAP_STRIDE:
  ** a column is then a subtraction plus a scan of under one stride, so a
  ** lookup costs the same wherever it lands.  (A cache of the last lookup
  ** made flat chains such as a+a+...+a quadratic: every operator node
  ** looks up its left operand's start, far back on the same line.) */
  uint32_t *cont;
};
#define LMQL_SRCMAP_STRIDE 64

struct lmql_token {
  enum lmql_tok_kind kind;
  uint8_t bol;           /* first token of a logical line */
  uint8_t bad;           /* a diagnostic was already reported for it */
  uint8_t str_flags;     /* LMQL_STR_* for strings */
  char quote;            /* ' or " for strings */
  int32_t indent;        /* indentation width of its line when bol */
  int32_t depth;         /* bracket nesting outside this token */
  size_t start, end;     /* byte range in the lexer buffer */
  size_t body_start, body_end; /* strings: bytes between the quotes */
  size_t off;            /* source offset of `start` */
  union { int64_t i; double f; } v; /* INT / FLOAT value */
};

struct lmql_token_list {
  struct lmql_token *toks; /* arena memory; ends with one EOF token */
  int32_t n;
};

/* What to lex: buf[start, end).  When map is NULL buf is the source text of
** the srcmap and offsets are used as they are; otherwise map[i] gives the
** source offset of buf[i] (start <= i <= end), as for text decoded from a
** string literal.  joined = 1 lexes as if inside brackets (no layout). */
struct lmql_lex_input {
  const char *buf;
  size_t start, end;
  const size_t *map;
  int joined;
  int check_encoding;    /* report NUL bytes and invalid UTF-8 once */
};

/* Build the line table of src (arena memory).  0, or -1 on OOM. */
int lmql__srcmap_init(struct lmql_srcmap *m, struct lmql_arena *a,
                      const char *file, const char *src, size_t len);
/* Position of a byte offset (clamped to the text length). */
struct lmql_pos lmql__srcmap_pos(const struct lmql_srcmap *m, size_t offset);

/* Report a diagnostic at source offset `off`. */
void lmql__srcmap_error(const struct lmql_srcmap *m, struct lmql_diags *d,
                        size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Lex the whole input into out.  Lexical errors become diagnostics and
** the lexer carries on (bad characters give ERROR tokens with bad = 1).
** Returns 0, or -1 when out of memory. */
int lmql__lex(struct lmql_arena *a, const struct lmql_srcmap *sm,
              struct lmql_diags *d, const struct lmql_lex_input *in,
              struct lmql_token_list *out);

/* Human-readable spelling of a kind, e.g. "'('" or "name". */
const char *lmql__tok_kind_name(enum lmql_tok_kind k);

/* Decoded string text with, for every byte, the source offset it came
** from; map[len] is the offset just past the text (a closing quote). */
struct lmql_strbuf {
  char *text;            /* NUL-terminated */
  size_t *map;
  size_t len, cap;
};

/* Append the decoded body of string token t (lexed from in) to out.
** Escapes are processed unless the token is raw; CRLF becomes LF; after each
** source newline up to `dedent` spaces/tabs are dropped (LMQL removes the
** common indentation of prompt code, also inside """ strings).  Bad escapes
** are reported to d.  Returns 0, or -1 when out of memory. */
int lmql__str_decode(struct lmql_arena *a, const struct lmql_srcmap *sm,
                     struct lmql_diags *d, const struct lmql_lex_input *in,
                     const struct lmql_token *t, int32_t dedent,
                     struct lmql_strbuf *out);

/* Append one byte; 0 or -1 on OOM. */
int lmql__strbuf_put(struct lmql_arena *a, struct lmql_strbuf *b, char c,
                     size_t src_off);


#endif
