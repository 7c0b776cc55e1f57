/*
** parse_stmt.c -- statements and indented blocks of the Python subset,
** plus LMQL's prompt statements and @lmql.query functions.
**
** Blocks come from the tokens' layout flags (see lex.h): a statement ends
** at a token that starts a new logical line; a block continues while such
** tokens sit at the block's indentation.  In a query body the clause words
** from/where/distribution also end every enclosing block.
*/
#include "parse.h"

#include <string.h>

#define K(x) LMQL_TOK_##x

static int at_clause(struct lmql_parser *p) {
  return p->in_query_body && lmql__p_is_clause(p, lmql__p_tok(p));
}

/* Does the current token end a simple statement? */
static int at_stmt_end(struct lmql_parser *p) {
  int k = lmql__p_kind(p);
  return k == LMQL_P_NEWLINE || k == K(EOF) || k == K(SEMI) || at_clause(p);
}

/* After an error: skip the rest of the statement and any lines indented
** deeper than `level` (the block of a broken compound statement), so one
** mistake gives one diagnostic. */
void lmql__p_sync(struct lmql_parser *p, int32_t level) {
  if (p->i == p->stmt_first) lmql__p_next(p);
  for (;;) {
    const struct lmql_token *t = lmql__p_tok(p);
    if (t->kind == K(EOF)) break;
    if (p->stop_i >= 0 && p->i >= p->stop_i) break;
    if (t->bol && !p->join) {
      if (t->indent <= level) break;
    } else if (at_clause(p)) {
      break;
    }
    lmql__p_next(p);
  }
}

/* Is this raw token a continuation keyword (elif/else) of the compound
** statement at the current level? */
static int continues(struct lmql_parser *p, int kind) {
  const struct lmql_token *t = lmql__p_tok(p);
  if (t->kind != (enum lmql_tok_kind)kind) return 0;
  if (t->bol ? t->indent != p->level : lmql__p_kind(p) != kind) return 0;
  p->stmt_first = p->i;
  lmql__p_next(p);
  return 1;
}

static void simple_stmts(struct lmql_parser *p, struct lmql_vec *out);

/* suite -> simple_stmts | NEWLINE INDENT stmt+ DEDENT
** Returns 1 when the suite was an indented block. */
static int suite(struct lmql_parser *p, struct lmql_vec *out, const char *what) {
  int k = lmql__p_kind(p);
  const struct lmql_token *t = lmql__p_tok(p);
  if (k != LMQL_P_NEWLINE && k != K(EOF) && !at_clause(p)) {
    simple_stmts(p, out);
    return 0;
  }
  if (k == K(EOF) || t->indent <= p->level || at_clause(p) ||
      (p->stop_i >= 0 && p->i >= p->stop_i)) {
    size_t off = k == LMQL_P_NEWLINE ? t->off
                 : p->i > 0 ? p->toks[p->i - 1].off : t->off;
    lmql__p_error_at(p, off, "expected an indented block after %s", what);
    return 0;
  }
  lmql__p_block(p, out, t->indent);
  return 1;
}

/* block -> { stmt }   (all at indentation `level`) */
void lmql__p_block(struct lmql_parser *p, struct lmql_vec *out, int32_t level) {
  lmql__p_enter(p);
  int32_t saved = p->level;
  p->level = level;
  int last_block = 0;
  for (;;) {
    const struct lmql_token *t = lmql__p_tok(p);
    if (t->kind == K(EOF)) break;
    if (p->stop_i >= 0 && p->i >= p->stop_i) break;
    if (at_clause(p)) break;
    if (t->bol && t->indent < level) break;
    if (t->bol && t->indent > level) {
      p->suppress = 0;
      lmql__p_error_at(p, t->off, last_block
                                      ? "unindent does not match any outer indentation level"
                                      : "unexpected indent");
      /* take the over-indented lines as a block of their own: one report */
      lmql__p_block(p, out, t->indent);
      p->level = level;
      last_block = 1;
      continue;
    }
    p->suppress = 0;
    p->stmt_first = p->i;
    int32_t before = p->i;
    last_block = lmql__p_stmt(p, out);
    if (p->suppress) lmql__p_sync(p, level);
    if (p->i == before) lmql__p_next(p);
  }
  p->level = saved;
  lmql__p_leave(p);
}

/* ---- simple statements ---- */

/* dotted_name -> NAME { '.' NAME } */
static const char *dotted_name(struct lmql_parser *p) {
  if (lmql__p_kind(p) != K(NAME)) {
    lmql__p_unexpected(p, "in module name");
    return NULL;
  }
  struct lmql_token *t = lmql__p_next(p);
  struct lmql_strbuf b = {0};
  for (;;) {
    for (size_t i = t->start; i < t->end; i++)
      if (lmql__strbuf_put(p->a, &b, p->in->buf[i], 0)) lmql__p_oom(p);
    if (lmql__p_kind(p) != K(DOT)) break;
    lmql__p_next(p);
    if (lmql__p_kind(p) != K(NAME)) {
      lmql__p_unexpected(p, "in module name");
      break;
    }
    if (lmql__strbuf_put(p->a, &b, '.', 0)) lmql__p_oom(p);
    t = lmql__p_next(p);
  }
  return b.text;
}

/* as_name -> NAME_OR_DOTTED ['as' NAME] */
static struct lmql_node *alias(struct lmql_parser *p, int dotted) {
  struct lmql_token *t = lmql__p_tok(p);
  struct lmql_node *a = lmql__p_node_tok(p, LMQL_NODE_ALIAS, t);
  if (dotted) {
    a->u.alias.name = dotted_name(p);
  } else if (lmql__p_kind(p) == K(NAME)) {
    a->u.alias.name = lmql__p_tok_text(p, lmql__p_next(p));
  } else {
    lmql__p_unexpected(p, "in import");
  }
  if (!a->u.alias.name) a->u.alias.name = "?";
  if (lmql__p_accept(p, K(KW_AS))) {
    if (lmql__p_kind(p) == K(NAME)) a->u.alias.asname = lmql__p_tok_text(p, lmql__p_next(p));
    else lmql__p_unexpected(p, "after 'as'");
  }
  return a;
}

/* import_stmt -> 'import' dotted_name ['as' NAME] { ',' dotted_name ['as' NAME] } */
static struct lmql_node *import_stmt(struct lmql_parser *p) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_IMPORT, lmql__p_next(p));
  struct lmql_vec names = {0};
  do {
    lmql__p_push(p, &names, alias(p, 1));
  } while (!p->suppress && lmql__p_accept(p, K(COMMA)));
  n->u.import.names = lmql__p_list(&names);
  return n;
}

/* param -> NAME [':' expr] ['=' expr], at a NAME token; annotations only
** in a def (in a lambda the ':' ends the parameters). Pushed onto params. */
void lmql__p_param(struct lmql_parser *p, struct lmql_vec *params, int *seen_default, int in_def) {
  struct lmql_token *t = lmql__p_next(p);
  struct lmql_node *prm = lmql__p_node_tok(p, LMQL_NODE_PARAM, t);
  prm->u.param.name = lmql__p_tok_text(p, t);
  for (int32_t i = 0; i < params->n; i++)
    if (strcmp(params->items[i]->u.param.name, prm->u.param.name) == 0)
      lmql__p_error_at(p, t->off, "duplicate argument '%s' in %s", prm->u.param.name,
                       in_def ? "function definition" : "lambda");
  if (in_def && lmql__p_accept(p, K(COLON))) (void)lmql__p_expr(p);
  if (lmql__p_accept(p, K(ASSIGN))) {
    prm->u.param.dflt = lmql__p_expr(p);
    *seen_default = 1;
  } else if (*seen_default) {
    lmql__p_error_at(p, t->off, "non-default argument follows default argument");
  }
  lmql__p_push(p, params, prm);
}

/* global_stmt -> ('global' | 'nonlocal') NAME {',' NAME} */
static struct lmql_node *global_stmt(struct lmql_parser *p) {
  struct lmql_token *t = lmql__p_next(p);
  struct lmql_node *n = lmql__p_node_tok(p, t->kind == K(KW_GLOBAL) ? LMQL_NODE_GLOBAL : LMQL_NODE_NONLOCAL, t);
  struct lmql_vec names = {0};
  do {
    if (lmql__p_kind(p) != K(NAME)) {
      lmql__p_unexpected(p, t->kind == K(KW_GLOBAL) ? "after 'global'" : "after 'nonlocal'");
      break;
    }
    struct lmql_token *nt = lmql__p_next(p);
    struct lmql_node *name = lmql__p_node_tok(p, LMQL_NODE_NAME, nt);
    name->u.name = lmql__p_tok_text(p, nt);
    lmql__p_push(p, &names, name);
  } while (!p->suppress && lmql__p_accept(p, K(COMMA)));
  n->u.items = lmql__p_list(&names);
  return n;
}

/* import_from -> 'from' {'.'} [dotted_name] 'import'
**                ('*' | '(' as_names [','] ')' | as_names) */
static struct lmql_node *import_from(struct lmql_parser *p) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_IMPORT_FROM, lmql__p_next(p));
  for (;;) {
    if (lmql__p_accept(p, K(DOT))) n->u.import.level++;
    else if (lmql__p_accept(p, K(ELLIPSIS))) n->u.import.level += 3;
    else break;
  }
  if (lmql__p_kind(p) == K(NAME)) n->u.import.module = dotted_name(p);
  else if (n->u.import.level == 0) { lmql__p_unexpected(p, "in module name"); return n; }
  if (!lmql__p_expect(p, K(KW_IMPORT), "expected 'import' after module name")) return n;
  struct lmql_vec names = {0};
  if (lmql__p_kind(p) == K(STAR)) {
    struct lmql_node *a = lmql__p_node_tok(p, LMQL_NODE_ALIAS, lmql__p_next(p));
    a->u.alias.name = "*";
    lmql__p_push(p, &names, a);
  } else {
    int paren = lmql__p_accept(p, K(LPAREN));
    do {
      if (paren && lmql__p_kind(p) == K(RPAREN)) break;
      lmql__p_push(p, &names, alias(p, 0));
    } while (!p->suppress && lmql__p_accept(p, K(COMMA)));
    if (paren) lmql__p_expect(p, K(RPAREN), "expected ')' after imported names");
  }
  n->u.import.names = lmql__p_list(&names);
  return n;
}

static int augop(int k, enum lmql_binop *op) {
  switch (k) {
    case K(PLUS_ASSIGN): *op = LMQL_BINOP_ADD; return 1;
    case K(MINUS_ASSIGN): *op = LMQL_BINOP_SUB; return 1;
    case K(STAR_ASSIGN): *op = LMQL_BINOP_MUL; return 1;
    case K(SLASH_ASSIGN): *op = LMQL_BINOP_DIV; return 1;
    case K(DSLASH_ASSIGN): *op = LMQL_BINOP_FLOORDIV; return 1;
    case K(PERCENT_ASSIGN): *op = LMQL_BINOP_MOD; return 1;
    case K(POW_ASSIGN): *op = LMQL_BINOP_POW; return 1;
    case K(AMP_ASSIGN): *op = LMQL_BINOP_BITAND; return 1;
    case K(PIPE_ASSIGN): *op = LMQL_BINOP_BITOR; return 1;
    case K(CARET_ASSIGN): *op = LMQL_BINOP_BITXOR; return 1;
    case K(LSHIFT_ASSIGN): *op = LMQL_BINOP_LSHIFT; return 1;
    case K(RSHIFT_ASSIGN): *op = LMQL_BINOP_RSHIFT; return 1;
    default: return 0;
  }
}

/* Is s (decoded) a string whose text starts with "lmql" after blanks? */
static int starts_with_lmql(const struct lmql_node *s) {
  size_t i = 0;
  while (i < s->u.str.len && (s->u.str.text[i] == ' ' || s->u.str.text[i] == '\t' ||
                              s->u.str.text[i] == '\n' || s->u.str.text[i] == '\r'))
    i++;
  return s->u.str.len - i >= 4 && memcmp(s->u.str.text + i, "lmql", 4) == 0;
}

/* prompt_stmt -> STRING+ [ 'where' expr | 'distribution' NAME 'in' expr ]
** (where/distribution are inline only directly after the string, on the
** same logical line, as in LMQL) */
static struct lmql_node *prompt_stmt(struct lmql_parser *p, struct lmql_node *str) {
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_PROMPT, str->pos.offset);
  n->u.prompt.str = str;
  struct lmql_token *t = lmql__p_tok(p);
  if (lmql__p_kind(p) == K(NAME) && p->i > 0 && p->toks[p->i - 1].kind == K(STRING)) {
    if (lmql__p_tok_is_word(p, t, "where")) {
      lmql__p_next(p);
      n->u.prompt.where = lmql__p_expr(p);
    } else if (lmql__p_tok_is_word(p, t, "distribution")) {
      lmql__p_next(p);
      n->u.prompt.dist = lmql__p_distribution(p, t->off);
    }
  }
  /* problems inside the string do not make the statement unparseable */
  int s = p->suppress;
  p->suppress = 0;
  struct lmql_vec segs = {0};
  lmql__p_qstring(p, str, &segs);
  n->u.prompt.segs = lmql__p_list(&segs);
  p->suppress = s;
  return n;
}

/* expr_stmt -> expr_list ( augop expr_list | { '=' expr_list } )
**            | prompt_stmt                 (a string, in a query body) */
static struct lmql_node *expr_stmt(struct lmql_parser *p) {
  struct lmql_node *e = lmql__p_expr_list(p);
  int k = lmql__p_kind(p);
  enum lmql_binop op;
  if (augop(k, &op)) {
    lmql__p_next(p);
    struct lmql_node *n = lmql__p_node(p, LMQL_NODE_AUGASSIGN, e->pos.offset);
    lmql__p_check_target(p, e, 1);
    n->u.aug.target = e;
    n->u.aug.op = op;
    n->u.aug.value = lmql__p_expr_list(p);
    return n;
  }
  if (k == K(ASSIGN)) {
    struct lmql_node *n = lmql__p_node(p, LMQL_NODE_ASSIGN, e->pos.offset);
    struct lmql_vec targets = {0};
    lmql__p_push(p, &targets, e);
    while (lmql__p_accept(p, K(ASSIGN))) {
      struct lmql_node *v = lmql__p_expr_list(p);
      if (lmql__p_kind(p) == K(ASSIGN)) lmql__p_push(p, &targets, v);
      else n->u.assign.value = v;
    }
    for (int32_t i = 0; i < targets.n; i++)
      if (!lmql__p_check_target(p, targets.items[i], 0)) break;
    n->u.assign.targets = lmql__p_list(&targets);
    return n;
  }
  if (k == K(COLON)) {
    /* annotated assignment: target ':' expr ['=' expr_list] */
    if (e->kind != LMQL_NODE_NAME && e->kind != LMQL_NODE_ATTR && e->kind != LMQL_NODE_SUBSCRIPT) {
      lmql__p_error_at(p, e->pos.offset, "only a name, attribute or subscript can be annotated");
      return e;
    }
    lmql__p_next(p);
    struct lmql_node *n = lmql__p_node(p, LMQL_NODE_ANNASSIGN, e->pos.offset);
    n->u.ann.target = e;
    n->u.ann.annotation = lmql__p_expr(p);
    if (lmql__p_accept(p, K(ASSIGN))) n->u.ann.value = lmql__p_expr_list(p);
    return n;
  }
  if (k == K(AT_ASSIGN)) {
    lmql__p_unsupported(p, lmql__p_tok(p));
    return e;
  }
  if (e->kind == LMQL_NODE_STR && p->in_query_body && !p->in_function &&
      !starts_with_lmql(e))
    return prompt_stmt(p, e);
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_EXPR_STMT, e->pos.offset);
  n->u.expr = e;
  return n;
}

/* simple_stmt -> 'pass' | 'break' | 'continue' | 'return' [expr_list]
**              | 'assert' expr [',' expr] | import_stmt | import_from | expr_stmt */
static struct lmql_node *simple_stmt(struct lmql_parser *p) {
  struct lmql_token *t = lmql__p_tok(p);
  struct lmql_node *n;
  switch (t->kind) {
    case K(KW_PASS):
      return lmql__p_node_tok(p, LMQL_NODE_PASS, lmql__p_next(p));
    case K(KW_BREAK):
      return lmql__p_node_tok(p, LMQL_NODE_BREAK, lmql__p_next(p));
    case K(KW_CONTINUE):
      return lmql__p_node_tok(p, LMQL_NODE_CONTINUE, lmql__p_next(p));
    case K(KW_RETURN):
      n = lmql__p_node_tok(p, LMQL_NODE_RETURN, lmql__p_next(p));
      if (!at_stmt_end(p)) n->u.value = lmql__p_expr_list(p);
      return n;
    case K(KW_ASSERT):
      n = lmql__p_node_tok(p, LMQL_NODE_ASSERT, lmql__p_next(p));
      n->u.assert_.test = lmql__p_expr(p);
      if (lmql__p_accept(p, K(COMMA))) n->u.assert_.msg = lmql__p_expr(p);
      return n;
    case K(KW_IMPORT):
      return import_stmt(p);
    case K(KW_FROM):
      return import_from(p);
    case K(KW_GLOBAL): case K(KW_NONLOCAL):
      return global_stmt(p);
    case K(KW_RAISE):
      /* raise [expr ['from' expr]] */
      n = lmql__p_node_tok(p, LMQL_NODE_RAISE, lmql__p_next(p));
      if (!at_stmt_end(p)) {
        n->u.raise_.exc = lmql__p_expr(p);
        if (lmql__p_accept(p, K(KW_FROM))) n->u.raise_.cause = lmql__p_expr(p);
      }
      return n;
    case K(KW_DEL): {
      /* del target {',' target} */
      n = lmql__p_node_tok(p, LMQL_NODE_DEL, lmql__p_next(p));
      struct lmql_vec targets = {0};
      do {
        if (at_stmt_end(p)) break;
        struct lmql_node *e = lmql__p_expr(p);
        if (e->kind != LMQL_NODE_NAME && e->kind != LMQL_NODE_SUBSCRIPT && e->kind != LMQL_NODE_ATTR &&
            e->kind != LMQL_NODE_ERROR) {
          lmql__p_error_at(p, e->pos.offset, "'del' takes names, subscripts and attributes");
          return n;
        }
        lmql__p_push(p, &targets, e);
      } while (lmql__p_accept(p, K(COMMA)));
      if (targets.n == 0) lmql__p_error_at(p, n->pos.offset, "'del' needs something to delete");
      n->u.del = lmql__p_list(&targets);
      return n;
    }
    case K(KW_YIELD): case K(KW_WITH):
    case K(KW_ASYNC): case K(KW_EXCEPT): case K(KW_FINALLY):
      lmql__p_unsupported(p, t);
      return NULL;
    case K(KW_ELIF): case K(KW_ELSE):
      lmql__p_error_at(p, t->off, "'%s' without a matching 'if'",
                       t->kind == K(KW_ELIF) ? "elif" : "else");
      return NULL;
    case K(NAME): {
      const struct lmql_token *nx = lmql__p_tok_at(p, 1);
      if (lmql__p_tok_is_word(p, t, "match") && !nx->bol &&
          (nx->kind == K(NAME) || nx->kind == K(STRING) || nx->kind == K(INT))) {
        lmql__p_unsupported(p, t);
        return NULL;
      }
      break;
    }
    default:
      break;
  }
  return expr_stmt(p);
}

/* simple_stmts -> simple_stmt { ';' simple_stmt } [';'] NEWLINE */
static void simple_stmts(struct lmql_parser *p, struct lmql_vec *out) {
  for (;;) {
    struct lmql_node *n = simple_stmt(p);
    if (n) lmql__p_push(p, out, n);
    if (p->suppress) return;
    if (lmql__p_accept(p, K(SEMI))) {
      int k = lmql__p_kind(p);
      if (k == LMQL_P_NEWLINE || k == K(EOF) || at_clause(p)) return;
      continue;
    }
    if (at_stmt_end(p)) return;
    lmql__p_unexpected(p, NULL);
    return;
  }
}

/* ---- compound statements ---- */

/* if_stmt -> 'if' expr ':' suite { 'elif' expr ':' suite } ['else' ':' suite] */
static int if_stmt(struct lmql_parser *p, struct lmql_vec *out) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_IF, lmql__p_next(p));
  lmql__p_push(p, out, n);
  n->u.if_.test = lmql__p_expr(p);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after if condition")) return 0;
  struct lmql_vec body = {0};
  int blk = suite(p, &body, "'if' statement");
  n->u.if_.body = lmql__p_list(&body);
  if (p->suppress) return blk;
  struct lmql_node *last = n;
  for (;;) {
    struct lmql_token *t = lmql__p_tok(p);
    if (continues(p, K(KW_ELIF))) {
      struct lmql_node *e = lmql__p_node_tok(p, LMQL_NODE_IF, t);
      struct lmql_vec one = {0};
      lmql__p_push(p, &one, e);
      last->u.if_.orelse = lmql__p_list(&one);
      last = e;
      e->u.if_.test = lmql__p_expr(p);
      if (!lmql__p_expect(p, K(COLON), "expected ':' after elif condition")) return 0;
      struct lmql_vec b = {0};
      blk = suite(p, &b, "'elif' statement");
      e->u.if_.body = lmql__p_list(&b);
      if (p->suppress) return blk;
    } else if (continues(p, K(KW_ELSE))) {
      if (!lmql__p_expect(p, K(COLON), "expected ':' after 'else'")) return 0;
      struct lmql_vec b = {0};
      blk = suite(p, &b, "'else'");
      last->u.if_.orelse = lmql__p_list(&b);
      return blk;
    } else {
      return blk;
    }
  }
}

/* Optional "else ':' suite" of loops. */
static int loop_else(struct lmql_parser *p, struct lmql_node_list *orelse, int blk) {
  if (p->suppress || !continues(p, K(KW_ELSE))) return blk;
  if (!lmql__p_expect(p, K(COLON), "expected ':' after 'else'")) return 0;
  struct lmql_vec b = {0};
  blk = suite(p, &b, "'else'");
  *orelse = lmql__p_list(&b);
  return blk;
}

/* while_stmt -> 'while' expr ':' suite ['else' ':' suite] */
static int while_stmt(struct lmql_parser *p, struct lmql_vec *out) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_WHILE, lmql__p_next(p));
  lmql__p_push(p, out, n);
  n->u.if_.test = lmql__p_expr(p);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after while condition")) return 0;
  struct lmql_vec body = {0};
  int blk = suite(p, &body, "'while' statement");
  n->u.if_.body = lmql__p_list(&body);
  return loop_else(p, &n->u.if_.orelse, blk);
}

/* for_stmt -> 'for' target_list 'in' expr_list ':' suite ['else' ':' suite] */
static int for_stmt(struct lmql_parser *p, struct lmql_vec *out) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_FOR, lmql__p_next(p));
  lmql__p_push(p, out, n);
  n->u.for_.target = lmql__p_target_list(p);
  if (!lmql__p_check_target(p, n->u.for_.target, 0)) return 0;
  if (!lmql__p_expect(p, K(KW_IN), "expected 'in' after for loop variable")) return 0;
  n->u.for_.iter = lmql__p_expr_list(p);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after for loop header")) return 0;
  struct lmql_vec body = {0};
  int blk = suite(p, &body, "'for' statement");
  n->u.for_.body = lmql__p_list(&body);
  return loop_else(p, &n->u.for_.orelse, blk);
}

/* try_stmt -> 'try' ':' suite { 'except' [expr ['as' NAME]] ':' suite }
**             ['else' ':' suite] ['finally' ':' suite]
** with at least one except or a finally; else only after an except, and a
** bare except only as the last one (Python's rules). */
static int try_stmt(struct lmql_parser *p, struct lmql_vec *out) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_TRY, lmql__p_next(p));
  lmql__p_push(p, out, n);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after 'try'")) return 0;
  struct lmql_vec body = {0}, handlers = {0};
  int blk = suite(p, &body, "'try' statement");
  n->u.try_.body = lmql__p_list(&body);
  if (p->suppress) return blk;
  int bare = 0;
  for (;;) {
    struct lmql_token *t = lmql__p_tok(p);
    if (!continues(p, K(KW_EXCEPT))) break;
    struct lmql_node *h = lmql__p_node_tok(p, LMQL_NODE_EXCEPT, t);
    if (bare) {
      lmql__p_error_at(p, t->off, "a bare 'except:' must be the last except clause");
      return 0;
    }
    if (lmql__p_kind(p) != K(COLON)) {
      h->u.except_.type = lmql__p_expr(p);
      if (lmql__p_accept(p, K(KW_AS))) {
        if (lmql__p_kind(p) != K(NAME)) { lmql__p_unexpected(p, "after 'as'"); return 0; }
        h->u.except_.name = lmql__p_tok_text(p, lmql__p_next(p));
      }
    } else {
      bare = 1;
    }
    if (!lmql__p_expect(p, K(COLON), "expected ':' after except clause")) return 0;
    struct lmql_vec b = {0};
    blk = suite(p, &b, "'except' clause");
    h->u.except_.body = lmql__p_list(&b);
    lmql__p_push(p, &handlers, h);
    if (p->suppress) return blk;
  }
  n->u.try_.handlers = lmql__p_list(&handlers);
  if (handlers.n && continues(p, K(KW_ELSE))) {
    if (!lmql__p_expect(p, K(COLON), "expected ':' after 'else'")) return 0;
    struct lmql_vec b = {0};
    blk = suite(p, &b, "'else'");
    n->u.try_.orelse = lmql__p_list(&b);
    if (p->suppress) return blk;
  }
  if (continues(p, K(KW_FINALLY))) {
    if (!lmql__p_expect(p, K(COLON), "expected ':' after 'finally'")) return 0;
    struct lmql_vec b = {0};
    blk = suite(p, &b, "'finally'");
    n->u.try_.finalbody = lmql__p_list(&b);
  } else if (!handlers.n) {
    lmql__p_error_at(p, lmql__p_tok(p)->off, "expected 'except' or 'finally' block after 'try'");
    return 0;
  }
  return blk;
}

/* Is d `lmql.query` or `lmql.query(...)`? */
static int is_query_decorator(const struct lmql_node *d) {
  if (d->kind == LMQL_NODE_CALL) d = d->u.call.func;
  return d->kind == LMQL_NODE_ATTR && strcmp(d->u.attr.name, "query") == 0 &&
         d->u.attr.obj->kind == LMQL_NODE_NAME && strcmp(d->u.attr.obj->u.name, "lmql") == 0;
}

static void add_query_def(struct lmql_parser *p, struct lmql_node *def) {
  struct lmql_ast_query *q = p->query;
  if (!q) return;
  struct lmql_node **items = lmql__arena_grow(p->a, q->query_defs.items,
                                              (size_t)q->query_defs.n,
                                              (size_t)q->query_defs.n + 1, sizeof *items);
  if (!items) lmql__p_oom(p);
  items[q->query_defs.n] = def;
  q->query_defs.items = items;
  q->query_defs.n++;
}

/* The body of a '''lmql ...''' docstring is a query of its own; it is
** parsed from the raw source between the quotes (as LMQL does, escapes in
** it are the inner strings' business), so positions stay exact. */
static void query_docstring(struct lmql_parser *p, struct lmql_node *def) {
  if (def->u.def.body.n < 1) return;
  struct lmql_node *st = def->u.def.body.items[0];
  if (st->kind != LMQL_NODE_EXPR_STMT || st->u.expr->kind != LMQL_NODE_STR) return;
  struct lmql_node *s = st->u.expr;
  if (!starts_with_lmql(s)) return;
  if (!s->u.str.from_source || s->u.str.n_pieces != 1) {
    lmql__p_error_at(p, s->pos.offset, "a query docstring must be a single string literal");
    return;
  }
  size_t k = s->u.str.raw_start;
  const char *src = p->sm.src;
  while (k < s->u.str.raw_end && (src[k] == ' ' || src[k] == '\t' || src[k] == '\n' || src[k] == '\r'))
    k++;
  if (s->u.str.raw_end - k < 4 || memcmp(src + k, "lmql", 4) != 0) {
    lmql__p_error_at(p, s->pos.offset, "a query docstring must start with 'lmql'");
    return;
  }
  struct lmql_lex_input in;
  memset(&in, 0, sizeof in);
  in.buf = src;
  in.start = k + 4;
  in.end = s->u.str.raw_end;
  struct lmql_p_saved sv;
  lmql__p_stream_begin(p, &sv, &in);
  def->u.def.query = lmql__p_query(p);
  lmql__p_stream_end(p, &sv);
}

/* funcdef -> 'def' NAME '(' [param {',' param} [',']] ')' ['->' expr] ':' suite
** param   -> NAME [':' expr] ['=' expr]      (annotations are ignored) */
static int funcdef(struct lmql_parser *p, struct lmql_vec *out, struct lmql_node_list decos) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_DEF, lmql__p_next(p));
  lmql__p_push(p, out, n);
  n->u.def.decorators = decos;
  n->u.def.name = "?";
  if (lmql__p_kind(p) != K(NAME)) {
    lmql__p_unexpected(p, "after 'def'");
    return 0;
  }
  n->u.def.name = lmql__p_tok_text(p, lmql__p_next(p));
  if (!lmql__p_expect(p, K(LPAREN), "expected '(' after function name")) return 0;
  struct lmql_vec params = {0};
  int seen_default = 0;
  while (lmql__p_kind(p) != K(RPAREN)) {
    struct lmql_token *t = lmql__p_tok(p);
    int k = lmql__p_kind(p);
    if (k == K(STAR) || k == K(POW) || k == K(SLASH)) {
      lmql__p_error_at(p, t->off, "'%s' parameters are not supported in LMQL queries",
                       k == K(STAR) ? "*" : k == K(POW) ? "**" : "/");
      return 0;
    }
    if (k != K(NAME)) {
      lmql__p_unexpected(p, "in parameter list");
      return 0;
    }
    lmql__p_param(p, &params, &seen_default, 1);
    if (!lmql__p_accept(p, K(COMMA))) break;
  }
  n->u.def.params = lmql__p_list(&params);
  if (!lmql__p_expect(p, K(RPAREN), "expected ')' after parameters")) return 0;
  if (lmql__p_accept(p, K(ARROW))) (void)lmql__p_expr(p);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after function signature")) return 0;
  int saved_fn = p->in_function, saved_body = p->in_query_body;
  p->in_function = 1;
  p->in_query_body = 0;
  struct lmql_vec body = {0};
  int blk = suite(p, &body, "function definition");
  p->in_function = saved_fn;
  p->in_query_body = saved_body;
  n->u.def.body = lmql__p_list(&body);
  for (int32_t i = 0; i < decos.n; i++) {
    if (is_query_decorator(decos.items[i])) {
      int s = p->suppress;
      p->suppress = 0;
      query_docstring(p, n);
      p->suppress = s;
      add_query_def(p, n);
      break;
    }
  }
  return blk;
}

/* The statements a class body may hold: a docstring (or `...`), pass,
** (annotated) assignments to names, and methods. Anything else is reported
** here, so a program with one fails before it runs. */
static void check_class_body(struct lmql_parser *p, const struct lmql_node *cls) {
  int suppressed = p->suppress;
  for (int32_t i = 0; i < cls->u.cls.body.n; i++) {
    const struct lmql_node *s = cls->u.cls.body.items[i];
    const char *what = NULL;
    switch (s->kind) {
      case LMQL_NODE_PASS: case LMQL_NODE_DEF:
        break;
      case LMQL_NODE_EXPR_STMT:
        if (s->u.expr->kind != LMQL_NODE_STR && s->u.expr->kind != LMQL_NODE_ELLIPSIS &&
            s->u.expr->kind != LMQL_NODE_ERROR)
          what = "expressions other than a docstring";
        break;
      case LMQL_NODE_ANNASSIGN:
        if (s->u.ann.target->kind != LMQL_NODE_NAME) what = "annotations of anything but a name";
        break;
      case LMQL_NODE_ASSIGN:
        for (int32_t k = 0; k < s->u.assign.targets.n && !what; k++)
          if (s->u.assign.targets.items[k]->kind != LMQL_NODE_NAME) what = "assignments to anything but a name";
        break;
      case LMQL_NODE_CLASS: what = "nested classes"; break;
      case LMQL_NODE_IF: what = "'if' statements"; break;
      case LMQL_NODE_WHILE: what = "'while' loops"; break;
      case LMQL_NODE_FOR: what = "'for' loops"; break;
      case LMQL_NODE_AUGASSIGN: what = "augmented assignments"; break;
      case LMQL_NODE_IMPORT: case LMQL_NODE_IMPORT_FROM: what = "imports"; break;
      case LMQL_NODE_RETURN: what = "'return' statements"; break;
      case LMQL_NODE_ASSERT: what = "'assert' statements"; break;
      case LMQL_NODE_BREAK: case LMQL_NODE_CONTINUE: what = "'break' and 'continue' statements"; break;
      case LMQL_NODE_TRY: what = "'try' statements"; break;
      case LMQL_NODE_RAISE: what = "'raise' statements"; break;
      case LMQL_NODE_DEL: what = "'del' statements"; break;
      default: break;   /* error recovery left it: reported already */
    }
    if (what) {
      p->suppress = 0;   /* one report per statement */
      lmql__p_error_at(p, s->pos.offset, "%s are not supported in a class body (docstrings, fields, "
                                         "attributes and methods are)", what);
      suppressed = 1;
    }
  }
  p->suppress = suppressed;
}

/* classdef -> 'class' NAME ['(' [expr {',' expr} [',']] ')'] ':' suite */
static int classdef(struct lmql_parser *p, struct lmql_vec *out, struct lmql_node_list decos) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_CLASS, lmql__p_next(p));
  lmql__p_push(p, out, n);
  n->u.cls.decorators = decos;
  n->u.cls.name = "?";
  if (lmql__p_kind(p) != K(NAME)) {
    lmql__p_unexpected(p, "after 'class'");
    return 0;
  }
  n->u.cls.name = lmql__p_tok_text(p, lmql__p_next(p));
  if (lmql__p_accept(p, K(LPAREN))) {
    struct lmql_vec bases = {0};
    lmql__p_call_args(p, &bases, K(RPAREN));
    if (p->suppress) return 0;
    for (int32_t i = 0; i < bases.n; i++)
      if (bases.items[i]->kind == LMQL_NODE_KEYWORD)
        lmql__p_error_at(p, bases.items[i]->pos.offset, "class keyword arguments (%s=...) are not supported",
                         bases.items[i]->u.kw.name);
    n->u.cls.bases = lmql__p_list(&bases);
  }
  if (!lmql__p_expect(p, K(COLON), "expected ':' after class name")) return 0;
  int saved_fn = p->in_function, saved_body = p->in_query_body;
  p->in_function = 1;   /* its strings are docstrings, not prompts */
  p->in_query_body = 0;
  struct lmql_vec body = {0};
  int blk = suite(p, &body, "class definition");
  p->in_function = saved_fn;
  p->in_query_body = saved_body;
  n->u.cls.body = lmql__p_list(&body);
  check_class_body(p, n);
  return blk;
}

/* decorated -> '@' expr NEWLINE { '@' expr NEWLINE } (funcdef | classdef) */
static int decorated(struct lmql_parser *p, struct lmql_vec *out) {
  struct lmql_vec decos = {0};
  while (lmql__p_tok(p)->kind == K(AT)) {
    lmql__p_next(p);
    lmql__p_push(p, &decos, lmql__p_expr(p));
    if (p->suppress) return 0;
    if (lmql__p_kind(p) != LMQL_P_NEWLINE) {
      lmql__p_unexpected(p, "after decorator");
      return 0;
    }
    const struct lmql_token *t = lmql__p_tok(p);
    if (t->indent != p->level) break;
    p->stmt_first = p->i;
  }
  const struct lmql_token *t = lmql__p_tok(p);
  if (t->kind == K(KW_DEF) && p->stmt_first == p->i) return funcdef(p, out, lmql__p_list(&decos));
  if (t->kind == K(KW_CLASS) && p->stmt_first == p->i) return classdef(p, out, lmql__p_list(&decos));
  if (t->kind == K(KW_ASYNC) && lmql__p_tok_at(p, 1)->kind == K(KW_DEF) && p->stmt_first == p->i) {
    lmql__p_next(p);   /* async def: a def (query code runs in order) */
    p->stmt_first = p->i;
    return funcdef(p, out, lmql__p_list(&decos));
  }
  lmql__p_error_at(p, t->off, "expected 'def' or 'class' after decorator");
  return 0;
}

/* stmt -> if_stmt | while_stmt | for_stmt | funcdef | classdef | decorated | simple_stmts
** Returns 1 when the statement ended with an indented block. */
int lmql__p_stmt(struct lmql_parser *p, struct lmql_vec *out) {
  switch (lmql__p_tok(p)->kind) {
    case K(KW_IF): return if_stmt(p, out);
    case K(KW_WHILE): return while_stmt(p, out);
    case K(KW_FOR): return for_stmt(p, out);
    case K(KW_TRY): return try_stmt(p, out);
    case K(KW_CLASS): {
      struct lmql_node_list none = {NULL, 0};
      return classdef(p, out, none);
    }
    case K(KW_DEF): {
      struct lmql_node_list none = {NULL, 0};
      return funcdef(p, out, none);
    }
    case K(AT): return decorated(p, out);
    case K(KW_ASYNC):
      if (lmql__p_tok_at(p, 1)->kind == K(KW_DEF)) {
        /* async def: a def; query code runs in order and 'await f()' is f() */
        struct lmql_node_list none = {NULL, 0};
        lmql__p_next(p);
        p->stmt_first = p->i;
        return funcdef(p, out, none);
      }
      simple_stmts(p, out);
      return 0;
    default:
      simple_stmts(p, out);
      return 0;
  }
}
