/*
** parse.c -- parser core: token access, errors, node allocation, and the
** query layout  [prologue] DECODER[(kwargs)] body [from] [where]
** [distribution]  (LMQL's fragment_parser.py, re-done over our tokens).
*/
#include "parse.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const decoder_names[] = {
  "argmax", "sample", "beam", "beam_search", "beam_sample", "beam_var",
  "var", "bsseq", "best_k", "incontext",
};

static int ci_equal(const char *a, size_t n, const char *word) {
  size_t wn = strlen(word);
  if (n != wn) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
    if (c != word[i]) return 0;
  }
  return 1;
}

int lmql__is_decoder_name(const char *name, size_t n) {
  for (size_t i = 0; i < sizeof decoder_names / sizeof decoder_names[0]; i++)
    if (ci_equal(name, n, decoder_names[i])) return 1;
  return 0;
}

/* ---- tokens ---- */

struct lmql_token *lmql__p_tok(struct lmql_parser *p) {
  return &p->toks[p->i];
}

struct lmql_token *lmql__p_tok_at(struct lmql_parser *p, int32_t ahead) {
  int32_t j = p->i + ahead;
  if (j >= p->n_toks) j = p->n_toks - 1; /* the EOF token */
  if (j < 0) j = 0;
  return &p->toks[j];
}

int lmql__p_kind(struct lmql_parser *p) {
  const struct lmql_token *t = &p->toks[p->i];
  if (t->bol && !p->join && p->i != p->stmt_first && t->kind != LMQL_TOK_EOF)
    return LMQL_P_NEWLINE;
  return (int)t->kind;
}

struct lmql_token *lmql__p_next(struct lmql_parser *p) {
  struct lmql_token *t = &p->toks[p->i];
  if (p->i < p->n_toks - 1) p->i++;
  return t;
}

int lmql__p_accept(struct lmql_parser *p, int kind) {
  if (lmql__p_kind(p) != kind) return 0;
  lmql__p_next(p);
  return 1;
}

/* Source offset just past token t (for "expected X" at the end of a line). */
static size_t tok_end_off(struct lmql_parser *p, const struct lmql_token *t) {
  if (p->in->map) return p->in->map[t->end];
  return t->end;
}

/* Where to report a problem with the current token: at it, or, when the
** statement ran into the end of its line, just after the previous token. */
static size_t error_off(struct lmql_parser *p) {
  int k = lmql__p_kind(p);
  if ((k == LMQL_P_NEWLINE || k == LMQL_TOK_EOF) && p->i > 0)
    return tok_end_off(p, &p->toks[p->i - 1]);
  return p->toks[p->i].off;
}

int lmql__p_expect(struct lmql_parser *p, int kind, const char *msg) {
  if (lmql__p_accept(p, kind)) return 1;
  if (p->toks[p->i].bad) { p->suppress = 1; return 0; }
  lmql__p_error_at(p, error_off(p), "%s", msg);
  return 0;
}

int lmql__p_tok_is_word(struct lmql_parser *p, const struct lmql_token *t,
                        const char *word) {
  if (t->kind != LMQL_TOK_NAME) return 0;
  return ci_equal(p->in->buf + t->start, t->end - t->start, word);
}

int lmql__p_is_clause(struct lmql_parser *p, const struct lmql_token *t) {
  if (t->depth != 0) return 0;
  int32_t idx = (int32_t)(t - p->toks);
  if (idx > 0 && p->toks[idx - 1].kind == LMQL_TOK_DOT) return 0;
  if (t->kind == LMQL_TOK_KW_FROM) {
    /* `from x import y` on one logical line is an import, not a clause:
    ** a model expression never contains the keyword 'import' */
    for (int32_t j = idx + 1; j < p->n_toks; j++) {
      const struct lmql_token *u = &p->toks[j];
      /* stopping at the next 'from' keeps repeated checks linear */
      if (u->kind == LMQL_TOK_EOF || u->bol || u->kind == LMQL_TOK_KW_FROM) break;
      if (u->kind == LMQL_TOK_KW_IMPORT && u->depth == 0) return 0;
    }
    return 1;
  }
  return lmql__p_tok_is_word(p, t, "from") || lmql__p_tok_is_word(p, t, "where") ||
         lmql__p_tok_is_word(p, t, "distribution");
}

char *lmql__p_tok_text(struct lmql_parser *p, const struct lmql_token *t) {
  return lmql__p_strndup(p, p->in->buf + t->start, t->end - t->start);
}

/* ---- errors ---- */

void lmql__p_error_at(struct lmql_parser *p, size_t off, const char *fmt, ...) {
  if (p->suppress) return;
  p->suppress = 1;
  struct lmql_pos pos = lmql__srcmap_pos(&p->sm, off);
  va_list ap;
  va_start(ap, fmt);
  lmql__diag_addv(p->d, p->sm.file, p->sm.src, p->sm.len, pos.offset, pos.line,
                  pos.col, fmt, ap);
  va_end(ap);
}

static const char *unsupported_word(struct lmql_parser *p, const struct lmql_token *t) {
  switch (t->kind) {
    case LMQL_TOK_KW_TRY: case LMQL_TOK_KW_EXCEPT: case LMQL_TOK_KW_FINALLY: return "try";
    case LMQL_TOK_KW_WITH: return "with";
    case LMQL_TOK_KW_LAMBDA: return "lambda";
    case LMQL_TOK_KW_YIELD: return "yield";
    case LMQL_TOK_KW_GLOBAL: return "global";
    case LMQL_TOK_KW_NONLOCAL: return "nonlocal";
    case LMQL_TOK_KW_ASYNC: return "async";
    case LMQL_TOK_KW_AWAIT: return "await";
    case LMQL_TOK_KW_DEL: return "del";
    case LMQL_TOK_KW_RAISE: return "raise";
    case LMQL_TOK_WALRUS: return ":=";
    case LMQL_TOK_AT_ASSIGN: return "@=";
    default: return NULL;
  }
}

void lmql__p_unsupported(struct lmql_parser *p, const struct lmql_token *t) {
  const char *w = unsupported_word(p, t);
  if (!w && lmql__p_tok_is_word(p, t, "match")) w = "match";
  lmql__p_error_at(p, t->off, "'%s' is not supported in LMQL queries", w ? w : "this");
}

void lmql__p_unexpected(struct lmql_parser *p, const char *where) {
  const struct lmql_token *t = &p->toks[p->i];
  int k = lmql__p_kind(p);
  if (t->bad) { p->suppress = 1; return; }
  if (k != LMQL_P_NEWLINE && unsupported_word(p, t)) { lmql__p_unsupported(p, t); return; }
  const char *sep = where && *where ? " " : "";
  if (!where) where = "";
  if (k == LMQL_P_NEWLINE) {
    lmql__p_error_at(p, error_off(p), "unexpected end of line%s%s", sep, where);
  } else if (k == LMQL_TOK_EOF) {
    lmql__p_error_at(p, error_off(p), "unexpected end of input%s%s", sep, where);
  } else if (k == LMQL_TOK_NAME) {
    int n = (int)(t->end - t->start);
    lmql__p_error_at(p, t->off, "unexpected name '%.*s'%s%s", n > 40 ? 40 : n,
                     p->in->buf + t->start, sep, where);
  } else {
    lmql__p_error_at(p, t->off, "unexpected %s%s%s", lmql__tok_kind_name(t->kind), sep, where);
  }
}

void lmql__p_enter(struct lmql_parser *p) {
  if (++p->depth > p->max_depth) {
    p->suppress = 0;
    lmql__p_error_at(p, p->toks[p->i].off, "nesting too deep (more than %ld levels)",
                     (long)p->max_depth);
    longjmp(*p->bail, 1);
  }
}

void lmql__p_leave(struct lmql_parser *p) { p->depth--; }

void lmql__p_chain_link(struct lmql_parser *p) {
  if (++p->chain > LMQL_PARSE_MAX_CHAIN) {
    p->suppress = 0;
    lmql__p_error_at(p, p->toks[p->i].off,
                     "expression nested too deeply (more than %d chained operations); "
                     "split it into several statements", LMQL_PARSE_MAX_CHAIN);
    longjmp(*p->bail, 1);
  }
}

/* ---- memory ---- */

void lmql__p_oom(struct lmql_parser *p) {
  p->oom = 1;
  longjmp(*p->bail, 1);
}

void *lmql__p_alloc(struct lmql_parser *p, size_t size) {
  void *m = lmql__arena_alloc(p->a, size);
  if (!m) lmql__p_oom(p);
  return m;
}

char *lmql__p_strndup(struct lmql_parser *p, const char *s, size_t n) {
  char *m = lmql__arena_strndup(p->a, s, n);
  if (!m) lmql__p_oom(p);
  return m;
}

struct lmql_node *lmql__p_node(struct lmql_parser *p, enum lmql_node_kind k,
                               size_t src_off) {
  struct lmql_node *n = lmql__p_alloc(p, sizeof *n);
  n->kind = k;
  n->pos = lmql__srcmap_pos(&p->sm, src_off);
  return n;
}

struct lmql_node *lmql__p_node_tok(struct lmql_parser *p, enum lmql_node_kind k,
                                   const struct lmql_token *t) {
  return lmql__p_node(p, k, t->off);
}

void lmql__p_push(struct lmql_parser *p, struct lmql_vec *v, struct lmql_node *n) {
  if (v->n == v->cap) {
    int32_t ncap = v->cap ? v->cap * 2 : 4;
    struct lmql_node **ni =
        lmql__arena_grow(p->a, v->items, (size_t)v->n, (size_t)ncap, sizeof *ni);
    if (!ni) lmql__p_oom(p);
    v->items = ni;
    v->cap = ncap;
  }
  v->items[v->n++] = n;
}

struct lmql_node_list lmql__p_list(const struct lmql_vec *v) {
  struct lmql_node_list l = {v->items, v->n};
  return l;
}

/* ---- sub-streams ---- */

void lmql__p_stream_begin(struct lmql_parser *p, struct lmql_p_saved *s,
                          struct lmql_lex_input *in) {
  s->in = p->in;
  s->toks = p->toks;
  s->n_toks = p->n_toks;
  s->i = p->i;
  s->stmt_first = p->stmt_first;
  s->stop_i = p->stop_i;
  s->level = p->level;
  s->dedent = p->dedent;
  s->join = p->join;
  s->in_query_body = p->in_query_body;
  s->in_function = p->in_function;
  s->suppress = p->suppress;
  s->query = p->query;

  struct lmql_token_list tl;
  if (lmql__lex(p->a, &p->sm, p->d, in, &tl) != 0) lmql__p_oom(p);
  p->in = in;
  p->toks = tl.toks;
  p->n_toks = tl.n;
  p->i = 0;
  p->stmt_first = 0;
  p->stop_i = -1;
  p->level = 0;
  p->join = in->joined;
  p->in_query_body = 0;
  p->suppress = 0;
}

void lmql__p_stream_end(struct lmql_parser *p, const struct lmql_p_saved *s) {
  p->in = s->in;
  p->toks = s->toks;
  p->n_toks = s->n_toks;
  p->i = s->i;
  p->stmt_first = s->stmt_first;
  p->stop_i = s->stop_i;
  p->level = s->level;
  p->dedent = s->dedent;
  p->join = s->join;
  p->in_query_body = s->in_query_body;
  p->in_function = s->in_function;
  p->suppress = s->suppress;
  p->query = s->query;
}

/* ---- the query layout ---- */

/* The decoder keyword that starts the query: the first decoder name that
** begins a line at the outermost indentation, not after '.', and before any
** where/distribution clause word (LMQL: then everything is prompt).
** Returns its token index or -1. */
static int32_t find_decoder(struct lmql_parser *p) {
  int32_t first_indent = p->toks[p->i].indent;
  for (int32_t i = p->i; i < p->n_toks; i++) {
    const struct lmql_token *t = &p->toks[i];
    if (t->kind != LMQL_TOK_NAME || t->depth != 0) continue;
    if (i > 0 && p->toks[i - 1].kind == LMQL_TOK_DOT) continue;
    if (lmql__p_tok_is_word(p, t, "where") || lmql__p_tok_is_word(p, t, "distribution"))
      return -1;
    if (t->bol && t->indent <= first_indent &&
        lmql__is_decoder_name(p->in->buf + t->start, t->end - t->start))
      return i;
  }
  return -1;
}

/* Visual column of a token in its physical line (tabs to multiples of 8). */
static int32_t tok_vcol(struct lmql_parser *p, const struct lmql_token *t) {
  if (t->bol) return t->indent;
  if (p->in->map) return 0;
  size_t ls = t->start;
  while (ls > 0 && p->in->buf[ls - 1] != '\n') ls--;
  int32_t col = 0;
  for (size_t k = ls; k < t->start && col < INT32_MAX / 2; k++) {
    unsigned char c = (unsigned char)p->in->buf[k];
    if (c == '\t') col = (col / 8 + 1) * 8;
    else if ((c & 0xC0) != 0x80) col++;
  }
  return col;
}

/* The indentation LMQL strips from prompt code (and so from the lines of
** multi-line strings in it): the smallest indentation among the body's
** lines.  We take the first body line and the next line that starts a
** statement, which is the same unless the code is mis-indented. */
static int32_t body_dedent(struct lmql_parser *p) {
  const struct lmql_token *t0 = &p->toks[p->i];
  int32_t d = tok_vcol(p, t0);
  if (t0->bol) return d;
  for (int32_t i = p->i + 1; i < p->n_toks; i++) {
    const struct lmql_token *t = &p->toks[i];
    if (t->kind == LMQL_TOK_EOF) break;
    if (!t->bol) continue;
    if (!lmql__p_is_clause(p, t) && t->indent < d) d = t->indent;
    break;
  }
  return d;
}

/* body -> stmt* (at one indentation level; the first statement may share
** the decoder's line) */
static void parse_body(struct lmql_parser *p, struct lmql_vec *body) {
  const struct lmql_token *t = lmql__p_tok(p);
  if (t->kind == LMQL_TOK_EOF || lmql__p_is_clause(p, t)) return;
  p->in_query_body = 1;
  p->dedent = body_dedent(p);
  int32_t level;
  if (t->bol) {
    level = t->indent;
  } else {
    /* `argmax "..."`: the first statement is on the decoder's line; the
    ** next line that starts a statement fixes the body's indentation */
    p->level = 0;
    p->stmt_first = p->i;
    p->suppress = 0;
    lmql__p_stmt(p, body);
    if (p->suppress) lmql__p_sync(p, 0);
    t = lmql__p_tok(p);
    level = t->indent;
  }
  for (;;) {
    t = lmql__p_tok(p);
    if (t->kind == LMQL_TOK_EOF || lmql__p_is_clause(p, t)) break;
    int32_t before = p->i;
    lmql__p_block(p, body, level);
    t = lmql__p_tok(p);
    if (t->kind == LMQL_TOK_EOF || lmql__p_is_clause(p, t)) break;
    p->suppress = 0;
    if (t->bol) {
      lmql__p_error_at(p, t->off, "unindent does not match any outer indentation level");
      level = t->indent;
    } else {
      lmql__p_unexpected(p, NULL);
      p->stmt_first = -1;
      lmql__p_sync(p, level);
    }
    if (p->i == before) lmql__p_next(p);
  }
  p->in_query_body = 0;
  p->dedent = 0;
}

/* distribution -> 'distribution' NAME 'in' expr */
struct lmql_node *lmql__p_distribution(struct lmql_parser *p, size_t kw_off) {
  struct lmql_node *e = lmql__p_expr(p);
  if (e->kind != LMQL_NODE_COMPARE || e->u.cmp.comparators.n != 1 ||
      e->u.cmp.ops[0] != LMQL_CMPOP_IN || e->u.cmp.left->kind != LMQL_NODE_NAME) {
    if (e->kind != LMQL_NODE_ERROR)
      lmql__p_error_at(p, kw_off,
                       "the distribution clause must be formed like 'VAR in [list of values]'");
    return e;
  }
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_DISTRIBUTION, kw_off);
  n->u.dist.var = e->u.cmp.left->u.name;
  n->u.dist.values = e->u.cmp.comparators.items[0];
  return n;
}

/* Skip to the next clause keyword (or the end) after a bad clause. */
static void skip_to_clause(struct lmql_parser *p) {
  while (lmql__p_tok(p)->kind != LMQL_TOK_EOF && !lmql__p_is_clause(p, lmql__p_tok(p)))
    lmql__p_next(p);
}

/* clauses -> { 'from' expr | 'where' expr | 'distribution' NAME 'in' expr }
** Newlines do not matter here: LMQL joins the lines of these clauses. */
static void parse_clauses(struct lmql_parser *p, struct lmql_ast_query *q) {
  p->join = 1;
  for (;;) {
    struct lmql_token *t = lmql__p_tok(p);
    if (t->kind == LMQL_TOK_EOF) break;
    p->suppress = 0;
    if (!lmql__p_is_clause(p, t)) {
      lmql__p_unexpected(p, "after the query");
      lmql__p_next(p);
      skip_to_clause(p);
      continue;
    }
    lmql__p_next(p);
    const char *what;
    if (t->kind == LMQL_TOK_KW_FROM || lmql__p_tok_is_word(p, t, "from")) {
      what = "in from clause";
      if (q->from) lmql__p_error_at(p, t->off, "duplicate 'from' clause");
      q->from = lmql__p_expr(p);
    } else if (lmql__p_tok_is_word(p, t, "where")) {
      what = "in where clause";
      if (q->where) lmql__p_error_at(p, t->off, "duplicate 'where' clause");
      q->where = lmql__p_expr(p);
    } else {
      what = "in distribution clause";
      if (q->distribution) lmql__p_error_at(p, t->off, "duplicate 'distribution' clause");
      q->distribution = lmql__p_distribution(p, t->off);
    }
    t = lmql__p_tok(p);
    if (t->kind != LMQL_TOK_EOF && !lmql__p_is_clause(p, t)) {
      lmql__p_unexpected(p, what);
      skip_to_clause(p);
    }
  }
  p->join = 0;
}

/* query -> [prologue] [DECODER ['(' kwargs ')']] body clauses EOF */
struct lmql_ast_query *lmql__p_query(struct lmql_parser *p) {
  struct lmql_ast_query *q = lmql__p_alloc(p, sizeof *q);
  struct lmql_ast_query *outer = p->query;
  q->parent = outer;
  p->query = q;
  lmql__p_enter(p);
  q->pos = lmql__srcmap_pos(&p->sm, lmql__p_tok(p)->off);
  q->decoder = "__dynamic__";
  p->in_query_body = 0;
  p->in_function = 0;
  p->dedent = 0;
  p->join = 0;
  struct lmql_vec prologue = {0}, body = {0};

  int32_t dec = find_decoder(p);
  if (dec >= 0) {
    p->stop_i = dec;
    while (p->i < dec) {
      int32_t before = p->i;
      lmql__p_block(p, &prologue, lmql__p_tok(p)->indent);
      if (p->i < dec && p->i == before) lmql__p_next(p);
    }
    p->stop_i = -1;
    struct lmql_token *t = lmql__p_next(p);
    char *name = lmql__p_tok_text(p, t);
    for (char *c = name; *c; c++)
      if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    q->decoder = name;
    q->decoder_pos = lmql__srcmap_pos(&p->sm, t->off);
    p->stmt_first = -1;
    p->suppress = 0;
    if (lmql__p_kind(p) == LMQL_TOK_LPAREN) {
      struct lmql_token *open = lmql__p_next(p);
      struct lmql_vec args = {0};
      lmql__p_call_args(p, &args, LMQL_TOK_RPAREN);
      for (int32_t i = 0; i < args.n; i++) {
        if (args.items[i]->kind != LMQL_NODE_KEYWORD) {
          lmql__p_error_at(p, args.items[i]->pos.offset,
                           "decoder arguments must be keyword arguments (name=value)");
        }
      }
      (void)open;
      q->decoder_args = lmql__p_list(&args);
    }
    t = lmql__p_tok(p);
    if (!t->bol && t->kind != LMQL_TOK_EOF && t->kind != LMQL_TOK_STRING &&
        !lmql__p_is_clause(p, t)) {
      lmql__p_unexpected(p, "after the decoder");
      while (!lmql__p_tok(p)->bol && lmql__p_tok(p)->kind != LMQL_TOK_EOF)
        lmql__p_next(p);
    }
  }
  parse_body(p, &body);
  parse_clauses(p, q);
  q->prologue = lmql__p_list(&prologue);
  q->body = lmql__p_list(&body);
  lmql__p_leave(p);
  p->query = outer;
  return q;
}

/* ---- entry point ---- */

struct parse_run {
  struct lmql_parser p;
  struct lmql_lex_input in;
  struct lmql_ast_query *result;
};

static void run_parse(struct parse_run *r) {
  struct lmql_parser *p = &r->p;
  struct lmql_token_list tl;
  if (lmql__lex(p->a, &p->sm, p->d, &r->in, &tl) != 0) lmql__p_oom(p);
  p->in = &r->in;
  p->toks = tl.toks;
  p->n_toks = tl.n;
  p->i = 0;
  p->stop_i = -1;
  p->stmt_first = 0;
  r->result = lmql__p_query(p);
}

struct lmql_ast_query *lmql__parse_query(struct lmql_arena *a, const char *src,
                                         size_t len, const char *filename,
                                         struct lmql_diags *d,
                                         const struct lmql_parse_opts *opts) {
  static const char empty[] = "";
  if (!src) { src = empty; len = 0; }
  /* Everything the parser touches after setjmp lives in the arena, so its
  ** values are well-defined after a longjmp. */
  struct parse_run *r = lmql__arena_alloc(a, sizeof *r);
  struct lmql_ast_query *fallback = lmql__arena_alloc(a, sizeof *fallback);
  if (!r || !fallback) return NULL;
  fallback->decoder = "__dynamic__";
  struct lmql_parser *p = &r->p;
  p->a = a;
  p->d = d;
  p->max_depth = opts && opts->max_depth > 0 ? opts->max_depth : LMQL_PARSE_DEFAULT_MAX_DEPTH;
  if (lmql__srcmap_init(&p->sm, a, filename, src, len) != 0) return NULL;
  r->in.buf = src;
  r->in.start = 0;
  r->in.end = len;
  r->in.check_encoding = 1;
  jmp_buf bail;
  p->bail = &bail;
  if (setjmp(bail) == 0) {
    run_parse(r);
  }
  lmql__diags_sort(d);
  if (r->p.oom) return NULL;
  return r->result ? r->result : fallback;
}
