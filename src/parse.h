/*
** parse.h -- recursive-descent parser for LMQL queries.
**
** Entry point: lmql__parse_query.  It lexes the source, splits it into
** prologue / decoder / prompt body / from / where / distribution the way
** LMQL's fragment parser does (see LANGUAGE.md §1), parses the Python
** subset, and splits prompt strings into segments (text, {expr}, {:role},
** [holes]).  All syntax errors become diagnostics; the parser recovers at
** statement and clause boundaries and reports as many as it sensibly can.
**
** The parser is split by concern: parse.c (tokens, errors, query layout),
** parse_stmt.c (statements and blocks), parse_expr.c (expressions),
** parse_str.c (string literals, f-strings, query strings).  The section
** "parser internals" below is shared by those files only.
*/
#ifndef LMQL_PARSE_H
#define LMQL_PARSE_H

#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "ast.h"
#include "diag.h"
#include "lex.h"

#define LMQL_PARSE_DEFAULT_MAX_DEPTH 200
/* Links of operator and trailer chains (a+b+c, a.b.c, a[0][0], a**b**c)
** on one path of the tree.  They nest the tree as brackets do, but a
** program writes thousands without a bracket: every walk over the tree
** (evaluation, where-clause compilation) recurses once per link. */
#define LMQL_PARSE_MAX_CHAIN 2000

struct lmql_parse_opts {
  /* Nesting limit for brackets, operators, blocks and nested queries, so
  ** deep input cannot exhaust the C stack; 0 = default (200).  Exceeding
  ** it is a diagnostic and stops the parse. */
  int32_t max_depth;
};

/*
** Parse the LMQL query src[0..len) (need not be NUL-terminated; may hold
** any bytes).  `filename` (borrowed; NULL = "<input>") is used in
** diagnostics, which are appended to d (sorted by position).  opts may be
** NULL for defaults.
**
** Returns the query, allocated in `a` (free everything with
** lmql__arena_free), or NULL only when out of memory.  The query is
** complete when no diagnostics were added; otherwise it holds whatever
** could be recovered (ERROR nodes mark the broken places).
**
** Integers are int64: a literal that does not fit is a diagnostic.
*/
struct lmql_ast_query *lmql__parse_query(struct lmql_arena *a, const char *src,
                                         size_t len, const char *filename,
                                         struct lmql_diags *d,
                                         const struct lmql_parse_opts *opts);

/* Is `name` (n bytes) one of LMQL's decoder keywords (case-insensitive)? */
int lmql__is_decoder_name(const char *name, size_t n);

/* ======================= parser internals ======================= */

/* A virtual token kind: "this token starts a new logical line". */
#define LMQL_P_NEWLINE ((int)LMQL_TOK__COUNT)

struct lmql_vec {                 /* growable node list in the arena */
  struct lmql_node **items;
  int32_t n, cap;
};

struct lmql_parser {
  struct lmql_arena *a;
  struct lmql_diags *d;
  struct lmql_srcmap sm;
  int32_t max_depth, depth;
  int32_t chain;                  /* chain links on the current path */
  jmp_buf *bail;                  /* out of memory / too deep: abandon */
  int oom;

  /* the token stream being parsed (swapped for sub-parses) */
  const struct lmql_lex_input *in;
  struct lmql_token *toks;
  int32_t n_toks, i;
  int32_t stmt_first;             /* token that may start a line (bol) */
  int32_t stop_i;                 /* prologue ends here (-1: none) */

  int join;                       /* newlines insignificant (clauses) */
  int in_query_body;              /* from/where/distribution end blocks */
  int in_function;                /* plain def: strings aren't prompts */
  int32_t level;                  /* indentation of the current block */
  int32_t dedent;                 /* removed from prompt string lines */
  int suppress;                   /* an error was already reported here */
  struct lmql_ast_query *query;   /* query under construction */
};

/* tokens */
struct lmql_token *lmql__p_tok(struct lmql_parser *p);
struct lmql_token *lmql__p_tok_at(struct lmql_parser *p, int32_t ahead);
int lmql__p_kind(struct lmql_parser *p);          /* or LMQL_P_NEWLINE */
struct lmql_token *lmql__p_next(struct lmql_parser *p); /* consume, return it */
int lmql__p_accept(struct lmql_parser *p, int kind);
int lmql__p_expect(struct lmql_parser *p, int kind, const char *msg);
int lmql__p_tok_is_word(struct lmql_parser *p, const struct lmql_token *t,
                        const char *word);  /* NAME, case-insensitive */
int lmql__p_is_clause(struct lmql_parser *p, const struct lmql_token *t);
char *lmql__p_tok_text(struct lmql_parser *p, const struct lmql_token *t);

/* errors */
void lmql__p_error_at(struct lmql_parser *p, size_t off, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
void lmql__p_unexpected(struct lmql_parser *p, const char *where);
/* A def's or lambda's parameter, at its NAME (parse_stmt.c). */
void lmql__p_param(struct lmql_parser *p, struct lmql_vec *params, int *seen_default, int in_def);
void lmql__p_unsupported(struct lmql_parser *p, const struct lmql_token *t);
void lmql__p_enter(struct lmql_parser *p);
void lmql__p_leave(struct lmql_parser *p);
/* One more link of an operator/trailer chain (see LMQL_PARSE_MAX_CHAIN);
** the caller takes its links back with p->chain -= n when the chain ends. */
void lmql__p_chain_link(struct lmql_parser *p);

/* memory and nodes */
void *lmql__p_alloc(struct lmql_parser *p, size_t size);
char *lmql__p_strndup(struct lmql_parser *p, const char *s, size_t n);
struct lmql_node *lmql__p_node(struct lmql_parser *p, enum lmql_node_kind k,
                               size_t src_off);
struct lmql_node *lmql__p_node_tok(struct lmql_parser *p, enum lmql_node_kind k,
                                   const struct lmql_token *t);
void lmql__p_push(struct lmql_parser *p, struct lmql_vec *v, struct lmql_node *n);
struct lmql_node_list lmql__p_list(const struct lmql_vec *v);
void lmql__p_oom(struct lmql_parser *p);

/* sub-streams: lex buf[start,end) (mapped by map) and parse it in place of
** the current stream; lmql__p_stream_end restores the outer one. */
struct lmql_p_saved {
  const struct lmql_lex_input *in;
  struct lmql_token *toks;
  int32_t n_toks, i, stmt_first, stop_i, level, dedent;
  int join, in_query_body, in_function, suppress;
  struct lmql_ast_query *query;
};
void lmql__p_stream_begin(struct lmql_parser *p, struct lmql_p_saved *s,
                          struct lmql_lex_input *in);
void lmql__p_stream_end(struct lmql_parser *p, const struct lmql_p_saved *s);

/* parse.c */
struct lmql_ast_query *lmql__p_query(struct lmql_parser *p);
struct lmql_node *lmql__p_distribution(struct lmql_parser *p, size_t kw_off);

/* parse_stmt.c */
void lmql__p_block(struct lmql_parser *p, struct lmql_vec *out, int32_t level);
int lmql__p_stmt(struct lmql_parser *p, struct lmql_vec *out);
void lmql__p_sync(struct lmql_parser *p, int32_t level);

/* parse_expr.c */
struct lmql_node *lmql__p_expr(struct lmql_parser *p);
struct lmql_node *lmql__p_expr_list(struct lmql_parser *p);
struct lmql_node *lmql__p_target_list(struct lmql_parser *p);
struct lmql_node *lmql__p_primary(struct lmql_parser *p);
void lmql__p_call_args(struct lmql_parser *p, struct lmql_vec *args, int close);
int lmql__p_check_target(struct lmql_parser *p, struct lmql_node *n, int aug);

/* parse_str.c */
struct lmql_node *lmql__p_strings(struct lmql_parser *p);
void lmql__p_qstring(struct lmql_parser *p, struct lmql_node *str,
                     struct lmql_vec *segs);

#endif
