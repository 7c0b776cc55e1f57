/*
** lex.c -- hand-written lexer (in the manner of Lua's llex): one pass over
** a byte range, producing an arena array of tokens that carry byte offsets
** and layout flags.  See lex.h for the layout model.
*/
#include "lex.h"
#include "utf8.h"

#include <locale.h>
#include <stdlib.h>
#include <string.h>

/* ---- token spellings, generated from tokens.def ---- */

static const char *const tok_names[LMQL_TOK__COUNT] = {
#define TOK(id, text) text,
#define KW(id, text) "'" text "'",
#define OP(id, text) "'" text "'",
#include "tokens.def"
#undef TOK
#undef KW
#undef OP
};

struct spelling {
  const char *s;
  enum lmql_tok_kind kind;
};

static const struct spelling keywords[] = {
#define TOK(id, text)
#define KW(id, text) {text, LMQL_TOK_KW_##id},
#define OP(id, text)
#include "tokens.def"
#undef TOK
#undef KW
#undef OP
};

static const struct spelling operators[] = {
#define TOK(id, text)
#define KW(id, text)
#define OP(id, text) {text, LMQL_TOK_##id},
#include "tokens.def"
#undef TOK
#undef KW
#undef OP
};

const char *lmql__tok_kind_name(enum lmql_tok_kind k) {
  if ((unsigned)k >= LMQL_TOK__COUNT) return "token";
  return tok_names[k];
}

/* ---- source positions ---- */

int lmql__srcmap_init(struct lmql_srcmap *m, struct lmql_arena *a,
                      const char *file, const char *src, size_t len) {
  int32_t n = 1;
  for (size_t i = 0; i < len; i++)
    if (src[i] == '\n' && n < INT32_MAX - 1) n++;
  m->src = src;
  m->len = len;
  m->file = file ? file : "<input>";
  m->lines = lmql__arena_alloc(a, (size_t)n * sizeof *m->lines);
  m->cont = lmql__arena_alloc(a, (len / LMQL_SRCMAP_STRIDE + 1) * sizeof *m->cont);
  if (!m->lines || !m->cont) return -1;
  m->n_lines = n;
  int32_t k = 1;
  m->lines[0] = 0;
  for (size_t i = 0; i < len && k < n; i++)
    if (src[i] == '\n') m->lines[k++] = i + 1;
  uint32_t c = 0;
  for (size_t i = 0; i < len; i++) {
    if (i % LMQL_SRCMAP_STRIDE == 0) m->cont[i / LMQL_SRCMAP_STRIDE] = c;
    c += ((unsigned char)src[i] & 0xC0) == 0x80;
  }
  if (len % LMQL_SRCMAP_STRIDE == 0) m->cont[len / LMQL_SRCMAP_STRIDE] = c;
  return 0;
}

/* UTF-8 continuation bytes in src[0, off). */
static size_t cont_before(const struct lmql_srcmap *m, size_t off) {
  size_t c = m->cont[off / LMQL_SRCMAP_STRIDE];
  for (size_t i = off - off % LMQL_SRCMAP_STRIDE; i < off; i++)
    c += ((unsigned char)m->src[i] & 0xC0) == 0x80;
  return c;
}

struct lmql_pos lmql__srcmap_pos(const struct lmql_srcmap *m, size_t offset) {
  struct lmql_pos p;
  if (offset > m->len) offset = m->len;
  int32_t lo = 0, hi = m->n_lines - 1;
  while (lo < hi) { /* last line whose start <= offset */
    int32_t mid = lo + (hi - lo + 1) / 2;
    if (m->lines[mid] <= offset) lo = mid; else hi = mid - 1;
  }
  size_t from = m->lines[lo];
  /* characters = bytes - continuation bytes */
  size_t chars = (offset - from) - (cont_before(m, offset) - cont_before(m, from));
  p.line = lo + 1;
  p.col = chars < INT32_MAX - 1 ? (int32_t)chars + 1 : INT32_MAX;
  p.offset = offset;
  return p;
}

void lmql__srcmap_error(const struct lmql_srcmap *m, struct lmql_diags *d,
                        size_t off, const char *fmt, ...) {
  struct lmql_pos p = lmql__srcmap_pos(m, off);
  va_list ap;
  va_start(ap, fmt);
  lmql__diag_addv(d, m->file, m->src, m->len, p.offset, p.line, p.col, fmt, ap);
  va_end(ap);
}

/* ---- the lexer ---- */

#define MAX_BRACKETS 256 /* deeper nesting is only counted, not matched */

struct lexer {
  struct lmql_arena *a;
  const struct lmql_srcmap *sm;
  struct lmql_diags *d;
  const struct lmql_lex_input *in;
  const char *buf;
  size_t pos, end;
  struct lmql_token_list *out;
  int32_t cap;
  int32_t depth;
  char stack[MAX_BRACKETS];
  size_t stack_pos[MAX_BRACKETS];
  int at_line_start;
  int oom;
};

static size_t srcoff(const struct lexer *lx, size_t i) {
  if (i > lx->end) i = lx->end;
  return lx->in->map ? lx->in->map[i] : i;
}

static void lex_error(struct lexer *lx, size_t i, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void lex_error(struct lexer *lx, size_t i, const char *fmt, ...) {
  struct lmql_pos p = lmql__srcmap_pos(lx->sm, srcoff(lx, i));
  va_list ap;
  va_start(ap, fmt);
  lmql__diag_addv(lx->d, lx->sm->file, lx->sm->src, lx->sm->len, p.offset,
                  p.line, p.col, fmt, ap);
  va_end(ap);
}

static int peekc(const struct lexer *lx, size_t i) {
  return i < lx->end ? (unsigned char)lx->buf[i] : -1;
}

static int is_ident_start(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static int is_ident_char(int c) {
  return is_ident_start(c) || (c >= '0' && c <= '9');
}

/* Visual column (tabs to multiples of 8) of buf[i] in its physical line;
** this is the indentation width when the token starts a line. */
static int32_t visual_col(const struct lexer *lx, size_t i) {
  size_t ls = i;
  while (ls > 0 && lx->buf[ls - 1] != '\n') ls--;
  int32_t col = 0;
  for (size_t k = ls; k < i; k++) {
    unsigned char c = (unsigned char)lx->buf[k];
    if (c == '\t') col = (col / 8 + 1) * 8;
    else if ((c & 0xC0) != 0x80) col++;
    if (col > INT32_MAX / 2) break;
  }
  return col;
}

static struct lmql_token *new_token(struct lexer *lx, enum lmql_tok_kind k,
                                    size_t start) {
  struct lmql_token_list *o = lx->out;
  if (o->n == lx->cap) {
    /* sub-streams (holes, {expr}) are tiny and numerous: start small */
    int32_t ncap = lx->cap ? lx->cap * 2 : lx->end - lx->in->start < 256 ? 8 : 256;
    struct lmql_token *nt =
        lmql__arena_grow(lx->a, o->toks, (size_t)o->n, (size_t)ncap, sizeof *nt);
    if (!nt) { lx->oom = 1; return NULL; }
    o->toks = nt;
    lx->cap = ncap;
  }
  struct lmql_token *t = &o->toks[o->n++];
  memset(t, 0, sizeof *t);
  t->kind = k;
  t->start = start;
  t->end = start;
  t->off = srcoff(lx, start);
  t->depth = lx->depth;
  if (lx->at_line_start && lx->depth == 0 && !lx->in->joined) {
    t->bol = 1;
    t->indent = visual_col(lx, start);
  }
  lx->at_line_start = 0;
  return t;
}

static void check_encoding(struct lexer *lx) {
  int seen_nul = 0, seen_bad = 0;
  size_t i = lx->pos;
  while (i < lx->end && !(seen_nul && seen_bad)) {
    unsigned char c = (unsigned char)lx->buf[i];
    if (c == 0) {
      if (!seen_nul) lex_error(lx, i, "source contains a NUL byte");
      seen_nul = 1;
      i++;
    } else if (c < 0x80) {
      i++;
    } else {
      uint32_t cp;
      int n = lmql__utf8_decode((const unsigned char *)lx->buf + i, lx->end - i, &cp);
      if (n == 0) {
        if (!seen_bad) lex_error(lx, i, "invalid UTF-8 in source");
        seen_bad = 1;
        n = 1;
      }
      i += (size_t)n;
    }
  }
}

/* Digits of `base` with single underscores between them; returns the end.
** *ok is cleared on a misplaced underscore. */
static size_t scan_digits(struct lexer *lx, size_t p, int base, int *ok,
                          int allow_leading_underscore) {
  int prev_digit = allow_leading_underscore;
  for (;;) {
    int c = peekc(lx, p);
    int dv = -1;
    if (c >= '0' && c <= '9') dv = c - '0';
    else if (c >= 'a' && c <= 'f') dv = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') dv = c - 'A' + 10;
    if (dv >= 0 && dv < base) { prev_digit = 1; p++; continue; }
    if (c == '_') {
      int n = peekc(lx, p + 1), nd = -1;
      if (n >= '0' && n <= '9') nd = n - '0';
      else if (n >= 'a' && n <= 'f') nd = n - 'a' + 10;
      else if (n >= 'A' && n <= 'F') nd = n - 'A' + 10;
      if (!prev_digit || nd < 0 || nd >= base) { *ok = 0; p++; continue; }
      p++;
      continue;
    }
    return p;
  }
}

static void lex_number(struct lexer *lx, struct lmql_token *t) {
  size_t p = lx->pos, s = lx->pos;
  int ok = 1, is_float = 0, base = 10;
  int c1 = peekc(lx, p + 1);
  if (peekc(lx, p) == '0' && (c1 == 'x' || c1 == 'X' || c1 == 'o' || c1 == 'O' ||
                              c1 == 'b' || c1 == 'B')) {
    base = (c1 == 'x' || c1 == 'X') ? 16 : (c1 == 'o' || c1 == 'O') ? 8 : 2;
    size_t q = scan_digits(lx, p + 2, base, &ok, 1);
    if (q == p + 2) ok = 0;
    p = q;
  } else {
    p = scan_digits(lx, p, 10, &ok, 0);
    if (peekc(lx, p) == '.') {
      is_float = 1;
      int n = peekc(lx, p + 1);
      p++;
      if (n >= '0' && n <= '9') p = scan_digits(lx, p, 10, &ok, 0);
      else if (n == '_') ok = 0;
    }
    int e = peekc(lx, p);
    if (e == 'e' || e == 'E') {
      size_t q = p + 1;
      if (peekc(lx, q) == '+' || peekc(lx, q) == '-') q++;
      int dc = peekc(lx, q);
      if (dc >= '0' && dc <= '9') {
        p = scan_digits(lx, q, 10, &ok, 0);
        is_float = 1;
      } else {
        ok = 0;
        p = q;
      }
    }
  }
  int c = peekc(lx, p);
  if (c == 'j' || c == 'J') {
    lex_error(lx, s, "complex numbers are not supported in LMQL queries");
    t->bad = 1;
    p++;
  } else if (is_ident_char(c)) {
    ok = 0;
  }
  while (is_ident_char(peekc(lx, p))) p++; /* swallow the bad tail */
  t->end = p;
  lx->pos = p;
  if (t->bad) { t->kind = LMQL_TOK_INT; return; }
  if (!ok) {
    lex_error(lx, s, "invalid %s literal",
              base == 16 ? "hexadecimal" : base == 8 ? "octal" : base == 2 ? "binary" : "decimal");
    t->bad = 1;
    t->kind = is_float ? LMQL_TOK_FLOAT : LMQL_TOK_INT;
    return;
  }
  if (is_float) {
    /* strtod wants the locale's decimal point and no underscores */
    char local[128];
    size_t n = p - s;
    char *tmp = n < sizeof local ? local : lmql__arena_alloc(lx->a, n + 1);
    if (!tmp) { lx->oom = 1; return; }
    const char *dp = localeconv()->decimal_point;
    size_t k = 0;
    for (size_t i = s; i < p; i++) {
      char ch = lx->buf[i];
      if (ch == '_') continue;
      tmp[k++] = ch == '.' && dp && dp[0] ? dp[0] : ch;
    }
    tmp[k] = 0;
    t->kind = LMQL_TOK_FLOAT;
    t->v.f = strtod(tmp, NULL);
    return;
  }
  t->kind = LMQL_TOK_INT;
  uint64_t v = 0;
  int over = 0, nonzero = 0;
  size_t i = base == 10 ? s : s + 2;
  for (; i < p; i++) {
    int ch = (unsigned char)lx->buf[i];
    if (ch == '_') continue;
    int dv = ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
    if (dv) nonzero = 1;
    if (v > (UINT64_MAX - (uint64_t)dv) / (uint64_t)base) over = 1;
    else v = v * (uint64_t)base + (uint64_t)dv;
  }
  if (base == 10 && lx->buf[s] == '0' && nonzero) {
    lex_error(lx, s, "leading zeros in decimal integer literals are not permitted");
    t->bad = 1;
  } else if (over || v > (uint64_t)INT64_MAX) {
    /* Documented choice: integers are int64 in this implementation. */
    lex_error(lx, s, "integer literal is too large (exceeds 64-bit range)");
    t->bad = 1;
  } else {
    t->v.i = (int64_t)v;
  }
}

static void lex_string(struct lexer *lx, struct lmql_token *t, size_t qpos,
                       int flags) {
  char q = lx->buf[qpos];
  int triple = peekc(lx, qpos + 1) == q && peekc(lx, qpos + 2) == q;
  size_t p = qpos + (triple ? 3 : 1);
  t->kind = LMQL_TOK_STRING;
  t->quote = q;
  t->str_flags = (uint8_t)(flags | (triple ? LMQL_STR_TRIPLE : 0));
  t->body_start = p;
  for (;;) {
    if (p >= lx->end) {
      lex_error(lx, t->start, triple ? "unterminated triple-quoted string" : "unterminated string");
      t->bad = 1;
      t->body_end = t->end = lx->end;
      break;
    }
    char c = lx->buf[p];
    if (c == '\\') {
      p += 2;
      if (p <= lx->end && lx->buf[p - 1] == '\r' && peekc(lx, p) == '\n') p++;
      if (p > lx->end) p = lx->end;
      continue;
    }
    if (c == '\n' && !triple) {
      lex_error(lx, t->start, "unterminated string");
      t->bad = 1;
      t->body_end = t->end = p;
      if (p > t->body_start && lx->buf[p - 1] == '\r') t->body_end = p - 1;
      break;
    }
    if (c == q && (!triple || (peekc(lx, p + 1) == q && peekc(lx, p + 2) == q))) {
      t->body_end = p;
      t->end = p + (triple ? 3 : 1);
      break;
    }
    p++;
  }
  if (flags & LMQL_STR_BYTES) {
    lex_error(lx, t->start, "bytes literals are not supported in LMQL queries");
    t->bad = 1;
  }
  lx->pos = t->end;
}

/* If buf[s, e) is a valid string prefix (r, u, f, b, br, rb, fr, rf in any
** case), return its LMQL_STR_* flags; else -1. */
static int string_prefix(const char *s, size_t n) {
  if (n > 2) return -1;
  int flags = 0, seen_u = 0;
  for (size_t i = 0; i < n; i++) {
    switch (s[i] | 0x20) {
      case 'r': if (flags & LMQL_STR_RAW) return -1; flags |= LMQL_STR_RAW; break;
      case 'f': if (flags & LMQL_STR_F) return -1; flags |= LMQL_STR_F; break;
      case 'b': if (flags & LMQL_STR_BYTES) return -1; flags |= LMQL_STR_BYTES; break;
      case 'u': seen_u = 1; break;
      default: return -1;
    }
  }
  if (seen_u && n != 1) return -1;
  if ((flags & LMQL_STR_F) && (flags & LMQL_STR_BYTES)) return -1;
  return flags;
}

static void lex_name(struct lexer *lx, struct lmql_token *t) {
  size_t p = lx->pos;
  while (is_ident_char(peekc(lx, p))) p++;
  int nc = peekc(lx, p);
  if (nc == '\'' || nc == '"') {
    int flags = string_prefix(lx->buf + lx->pos, p - lx->pos);
    if (flags >= 0) { lex_string(lx, t, p, flags); return; }
  }
  t->end = p;
  lx->pos = p;
  t->kind = LMQL_TOK_NAME;
  size_t n = p - t->start;
  for (size_t i = 0; i < sizeof keywords / sizeof keywords[0]; i++) {
    if (strlen(keywords[i].s) == n && memcmp(keywords[i].s, lx->buf + t->start, n) == 0) {
      t->kind = keywords[i].kind;
      break;
    }
  }
}

static char closer_of(char open) {
  return open == '(' ? ')' : open == '[' ? ']' : '}';
}

static void lex_operator(struct lexer *lx, struct lmql_token *t) {
  size_t best = 0;
  enum lmql_tok_kind kind = LMQL_TOK_ERROR;
  for (size_t i = 0; i < sizeof operators / sizeof operators[0]; i++) {
    size_t n = strlen(operators[i].s);
    if (n > best && n <= lx->end - lx->pos &&
        memcmp(operators[i].s, lx->buf + lx->pos, n) == 0) {
      best = n;
      kind = operators[i].kind;
    }
  }
  if (best == 0) {
    unsigned char c = (unsigned char)lx->buf[lx->pos];
    uint32_t cp;
    int n = lmql__utf8_decode((const unsigned char *)lx->buf + lx->pos, lx->end - lx->pos, &cp);
    if (c >= 0x21 && c < 0x7f)
      lex_error(lx, lx->pos, "unexpected character '%c'", c);
    else
      lex_error(lx, lx->pos, "unexpected byte 0x%02x", c);
    t->kind = LMQL_TOK_ERROR;
    t->bad = 1;
    lx->pos += n > 0 ? (size_t)n : 1;
    t->end = lx->pos;
    return;
  }
  t->kind = kind;
  t->end = lx->pos + best;
  char c = lx->buf[lx->pos];
  lx->pos += best;
  if (best == 1 && (c == '(' || c == '[' || c == '{')) {
    if (lx->depth < MAX_BRACKETS) {
      lx->stack[lx->depth] = c;
      lx->stack_pos[lx->depth] = t->start;
    }
    if (lx->depth < INT32_MAX - 1) lx->depth++;
  } else if (best == 1 && (c == ')' || c == ']' || c == '}')) {
    if (lx->depth == 0) {
      lex_error(lx, t->start, "unmatched '%c'", c);
      t->bad = 1;
    } else {
      lx->depth--;
      if (lx->depth < MAX_BRACKETS && closer_of(lx->stack[lx->depth]) != c) {
        lex_error(lx, t->start,
                  "closing parenthesis '%c' does not match opening parenthesis '%c'",
                  c, lx->stack[lx->depth]);
        t->bad = 1;
      }
      t->depth = lx->depth;
    }
  }
}

int lmql__lex(struct lmql_arena *a, const struct lmql_srcmap *sm,
              struct lmql_diags *d, const struct lmql_lex_input *in,
              struct lmql_token_list *out) {
  struct lexer lx;
  memset(&lx, 0, sizeof lx);
  lx.a = a;
  lx.sm = sm;
  lx.d = d;
  lx.in = in;
  lx.buf = in->buf;
  lx.pos = in->start;
  lx.end = in->end;
  lx.out = out;
  lx.at_line_start = !in->joined;
  out->toks = NULL;
  out->n = 0;
  if (in->check_encoding) check_encoding(&lx);

  while (!lx.oom) {
    int c = peekc(&lx, lx.pos);
    if (c < 0) break;
    if (c == ' ' || c == '\t' || c == '\f' || c == '\r' || c == 0) {
      /* NUL was reported by check_encoding; lone CR is plain space */
      if (c == 0 && !in->check_encoding) lex_error(&lx, lx.pos, "source contains a NUL byte");
      lx.pos++;
      continue;
    }
    if (c == '#') {
      while (lx.pos < lx.end && lx.buf[lx.pos] != '\n') lx.pos++;
      continue;
    }
    if (c == '\n') {
      lx.pos++;
      if (lx.depth == 0 && !in->joined) lx.at_line_start = 1;
      continue;
    }
    if (c == '\\') {
      int n = peekc(&lx, lx.pos + 1);
      if (n == '\n') { lx.pos += 2; continue; }
      if (n == '\r' && peekc(&lx, lx.pos + 2) == '\n') { lx.pos += 3; continue; }
      if (n < 0) { lx.pos++; continue; }
      lex_error(&lx, lx.pos, "unexpected character after line continuation character");
      struct lmql_token *t = new_token(&lx, LMQL_TOK_ERROR, lx.pos);
      if (!t) break;
      t->bad = 1;
      lx.pos++;
      t->end = lx.pos;
      continue;
    }
    struct lmql_token *t = new_token(&lx, LMQL_TOK_ERROR, lx.pos);
    if (!t) break;
    if (is_ident_start(c)) {
      lex_name(&lx, t);
    } else if ((c >= '0' && c <= '9') ||
               (c == '.' && peekc(&lx, lx.pos + 1) >= '0' && peekc(&lx, lx.pos + 1) <= '9')) {
      lex_number(&lx, t);
    } else if (c == '\'' || c == '"') {
      lex_string(&lx, t, lx.pos, 0);
    } else {
      lex_operator(&lx, t);
    }
  }
  if (lx.oom) return -1;
  if (lx.depth > 0) {
    int32_t i = lx.depth <= MAX_BRACKETS ? lx.depth - 1 : MAX_BRACKETS - 1;
    lex_error(&lx, lx.stack_pos[i], "'%c' was never closed", lx.stack[i]);
    lx.depth = 0;
  }
  lx.at_line_start = !in->joined;
  struct lmql_token *eof = new_token(&lx, LMQL_TOK_EOF, lx.end);
  if (!eof) return -1;
  eof->indent = 0;
  return 0;
}

/* ---- string decoding ---- */

int lmql__strbuf_put(struct lmql_arena *a, struct lmql_strbuf *b, char c,
                     size_t src_off) {
  if (b->len + 1 >= b->cap) {
    size_t ncap = b->cap ? b->cap * 2 : 32;
    char *nt = lmql__arena_grow(a, b->text, b->len, ncap, 1);
    size_t *nm = lmql__arena_grow(a, b->map, b->len, ncap, sizeof *nm);
    if (!nt || !nm) return -1;
    b->text = nt;
    b->map = nm;
    b->cap = ncap;
  }
  b->text[b->len] = c;
  b->map[b->len] = src_off;
  b->len++;
  b->text[b->len] = 0;
  b->map[b->len] = src_off + 1;
  return 0;
}

static int put_utf8(struct lmql_arena *a, struct lmql_strbuf *b, uint32_t cp,
                    size_t off) {
  char tmp[4];
  int n;
  if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
  else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
  else if (cp < 0x10000) {
    tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
  } else {
    tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
  }
  for (int i = 0; i < n; i++)
    if (lmql__strbuf_put(a, b, tmp[i], off)) return -1;
  return 0;
}

static int hexval(int c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int lmql__str_decode(struct lmql_arena *a, const struct lmql_srcmap *sm,
                     struct lmql_diags *d, const struct lmql_lex_input *in,
                     const struct lmql_token *t, int32_t dedent,
                     struct lmql_strbuf *out) {
  const char *buf = in->buf;
  const size_t *map = in->map;
  size_t p = t->body_start, e = t->body_end;
  int raw = (t->str_flags & LMQL_STR_RAW) != 0;
#define OFF(i) (map ? map[i] : (i))
#define PUT(ch, i) do { if (lmql__strbuf_put(a, out, (char)(ch), OFF(i))) return -1; } while (0)
  while (p < e) {
    unsigned char c = (unsigned char)buf[p];
    if (c == '\r' && p + 1 < e && buf[p + 1] == '\n') { p++; continue; }
    if (c == '\n') {
      PUT('\n', p);
      p++;
      for (int32_t k = 0; k < dedent && p < e && (buf[p] == ' ' || buf[p] == '\t'); k++) p++;
      continue;
    }
    if (c != '\\' || raw || p + 1 >= e) { PUT(c, p); p++; continue; }
    size_t bs = p;
    unsigned char n = (unsigned char)buf[p + 1];
    p += 2;
    switch (n) {
      case '\n': /* backslash-newline joins the lines */
        for (int32_t k = 0; k < dedent && p < e && (buf[p] == ' ' || buf[p] == '\t'); k++) p++;
        break;
      case '\r':
        if (p < e && buf[p] == '\n') p++;
        break;
      case '\\': PUT('\\', bs); break;
      case '\'': PUT('\'', bs); break;
      case '"': PUT('"', bs); break;
      case 'a': PUT(7, bs); break;
      case 'b': PUT(8, bs); break;
      case 'f': PUT(12, bs); break;
      case 'n': PUT(10, bs); break;
      case 'r': PUT(13, bs); break;
      case 't': PUT(9, bs); break;
      case 'v': PUT(11, bs); break;
      case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': {
        uint32_t v = n - '0';
        for (int k = 0; k < 2 && p < e && buf[p] >= '0' && buf[p] <= '7'; k++)
          v = v * 8 + (uint32_t)(buf[p++] - '0');
        if (put_utf8(a, out, v, OFF(bs))) return -1;
        break;
      }
      case 'x': case 'u': case 'U': {
        int want = n == 'x' ? 2 : n == 'u' ? 4 : 8;
        uint32_t v = 0;
        int k = 0;
        for (; k < want && p < e && hexval((unsigned char)buf[p]) >= 0; k++)
          v = v * 16 + (uint32_t)hexval((unsigned char)buf[p++]);
        if (k < want) {
          lmql__srcmap_error(sm, d, OFF(bs), "truncated \\%c escape in string", n);
        } else if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) {
          lmql__srcmap_error(sm, d, OFF(bs), "illegal Unicode character in string escape");
        } else if (put_utf8(a, out, v, OFF(bs))) {
          return -1;
        }
        break;
      }
      case 'N':
        lmql__srcmap_error(sm, d, OFF(bs), "\\N{...} escapes are not supported in LMQL queries");
        PUT('\\', bs);
        PUT('N', bs + 1);
        break;
      default: /* unknown escapes stay as written, as in Python */
        PUT('\\', bs);
        p--;
        break;
    }
  }
  if (!out->text) { /* empty string: still provide text and sentinel */
    out->text = lmql__arena_alloc(a, 1);
    out->map = lmql__arena_alloc(a, sizeof *out->map);
    if (!out->text || !out->map) return -1;
    out->cap = 1;
  }
  out->map[out->len] = OFF(e);
  return 0;
#undef PUT
#undef OFF
}
