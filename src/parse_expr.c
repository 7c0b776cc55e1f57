/*
** parse_expr.c -- expressions of the Python subset (Python's precedence).
**
** Binary operators from '|' down to '*' share one precedence-climbing
** function (binary) instead of one function per level; its table lists
** the grammar rules it stands for.  Every nesting point goes through
** lmql__p_expr, factor or not_test, which count depth against max_depth.
*/
#include "parse.h"

#include <string.h>

#define K(x) LMQL_TOK_##x

static struct lmql_node *error_node(struct lmql_parser *p) {
  return lmql__p_node_tok(p, LMQL_NODE_ERROR, lmql__p_tok(p));
}

/* Tokens that can start an expression (used to tell `return` from
** `return x`, and `[sample X]` decoders from trailing tokens). */
static int starts_expr(int k) {
  switch (k) {
    case K(NAME): case K(INT): case K(FLOAT): case K(STRING): case K(LPAREN):
    case K(LBRACKET): case K(LBRACE): case K(MINUS): case K(PLUS): case K(TILDE):
    case K(KW_NOT): case K(KW_TRUE): case K(KW_FALSE): case K(KW_NONE):
    case K(ELLIPSIS): case K(KW_LAMBDA): case K(KW_AWAIT): case K(STAR):
      return 1;
    default:
      return 0;
  }
}

static struct lmql_node *comp_for(struct lmql_parser *p);
static struct lmql_node *or_test(struct lmql_parser *p);

/* Finish a comprehension whose element is elt (and value for dicts):
** comprehension -> elt comp_for { comp_for } */
static struct lmql_node *comprehension(struct lmql_parser *p, enum lmql_node_kind k,
                                       struct lmql_node *elt, struct lmql_node *value) {
  struct lmql_node *n = lmql__p_node(p, k, elt->pos.offset);
  n->u.comp.elt = elt;
  n->u.comp.value = value;
  struct lmql_vec gens = {0};
  while (lmql__p_kind(p) == K(KW_FOR) || lmql__p_kind(p) == K(KW_ASYNC)) {
    if (lmql__p_kind(p) == K(KW_ASYNC)) {
      lmql__p_unsupported(p, lmql__p_tok(p));
      lmql__p_next(p);
      continue;
    }
    lmql__p_push(p, &gens, comp_for(p));
  }
  n->u.comp.gens = lmql__p_list(&gens);
  return n;
}

/* comp_for -> 'for' target_list 'in' or_test { 'if' or_test } */
static struct lmql_node *comp_for(struct lmql_parser *p) {
  struct lmql_token *t = lmql__p_next(p);
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_COMP_FOR, t);
  n->u.gen.target = lmql__p_target_list(p);
  lmql__p_check_target(p, n->u.gen.target, 0);
  lmql__p_expect(p, K(KW_IN), "expected 'in' in comprehension");
  n->u.gen.iter = or_test(p);
  struct lmql_vec ifs = {0};
  while (lmql__p_accept(p, K(KW_IF))) lmql__p_push(p, &ifs, or_test(p));
  n->u.gen.ifs = lmql__p_list(&ifs);
  return n;
}

/* Items up to `close` after a first item: [',' item]* [','] */
static void more_items(struct lmql_parser *p, struct lmql_vec *items, int close) {
  while (lmql__p_accept(p, K(COMMA))) {
    if (lmql__p_kind(p) == close) break;
    lmql__p_push(p, items, lmql__p_expr(p));
  }
}

/* paren -> '(' ')' | '(' expr comp_for ')' | '(' expr ')' | '(' expr ',' [items] ')' */
static struct lmql_node *paren(struct lmql_parser *p) {
  struct lmql_token *open = lmql__p_next(p);
  if (lmql__p_accept(p, K(RPAREN))) return lmql__p_node_tok(p, LMQL_NODE_TUPLE, open);
  struct lmql_node *first = lmql__p_expr(p);
  if (lmql__p_kind(p) == K(KW_FOR)) {
    struct lmql_node *g = comprehension(p, LMQL_NODE_GENEXP, first, NULL);
    lmql__p_expect(p, K(RPAREN), "expected ')' after generator expression");
    return g;
  }
  if (lmql__p_kind(p) == K(COMMA)) {
    struct lmql_node *tup = lmql__p_node_tok(p, LMQL_NODE_TUPLE, open);
    struct lmql_vec items = {0};
    lmql__p_push(p, &items, first);
    more_items(p, &items, K(RPAREN));
    tup->u.items = lmql__p_list(&items);
    lmql__p_expect(p, K(RPAREN), "expected ')' to close tuple");
    return tup;
  }
  lmql__p_expect(p, K(RPAREN), "expected ')'");
  return first;
}

/* list -> '[' [ expr ( comp_for | { ',' expr } [','] ) ] ']' */
static struct lmql_node *list_display(struct lmql_parser *p) {
  struct lmql_token *open = lmql__p_next(p);
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_LIST, open);
  if (lmql__p_accept(p, K(RBRACKET))) return n;
  struct lmql_node *first = lmql__p_expr(p);
  if (lmql__p_kind(p) == K(KW_FOR)) {
    struct lmql_node *c = comprehension(p, LMQL_NODE_LISTCOMP, first, NULL);
    c->pos = n->pos;
    lmql__p_expect(p, K(RBRACKET), "expected ']' after list comprehension");
    return c;
  }
  struct lmql_vec items = {0};
  lmql__p_push(p, &items, first);
  more_items(p, &items, K(RBRACKET));
  n->u.items = lmql__p_list(&items);
  lmql__p_expect(p, K(RBRACKET), "expected ']' to close list");
  return n;
}

/* brace -> '{' '}' | '{' expr ':' expr ( comp_for | {',' expr ':' expr} ) '}'
**        | '{' expr ( comp_for | {',' expr} ) '}' */
static struct lmql_node *brace_display(struct lmql_parser *p) {
  struct lmql_token *open = lmql__p_next(p);
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_DICT, open);
  if (lmql__p_accept(p, K(RBRACE))) return n;
  if (lmql__p_kind(p) == K(POW)) {
    lmql__p_error_at(p, lmql__p_tok(p)->off, "'**' unpacking is not supported in LMQL queries");
    return n;
  }
  struct lmql_node *first = lmql__p_expr(p);
  if (lmql__p_accept(p, K(COLON))) {
    struct lmql_node *v = lmql__p_expr(p);
    if (lmql__p_kind(p) == K(KW_FOR)) {
      struct lmql_node *c = comprehension(p, LMQL_NODE_DICTCOMP, first, v);
      c->pos = n->pos;
      lmql__p_expect(p, K(RBRACE), "expected '}' after dict comprehension");
      return c;
    }
    struct lmql_vec keys = {0}, vals = {0};
    lmql__p_push(p, &keys, first);
    lmql__p_push(p, &vals, v);
    while (lmql__p_accept(p, K(COMMA))) {
      if (lmql__p_kind(p) == K(RBRACE)) break;
      lmql__p_push(p, &keys, lmql__p_expr(p));
      lmql__p_expect(p, K(COLON), "expected ':' in dict display");
      lmql__p_push(p, &vals, lmql__p_expr(p));
    }
    n->u.dict.keys = lmql__p_list(&keys);
    n->u.dict.values = lmql__p_list(&vals);
    lmql__p_expect(p, K(RBRACE), "expected '}' to close dict");
    return n;
  }
  if (lmql__p_kind(p) == K(KW_FOR)) {
    struct lmql_node *c = comprehension(p, LMQL_NODE_SETCOMP, first, NULL);
    c->pos = n->pos;
    lmql__p_expect(p, K(RBRACE), "expected '}' after set comprehension");
    return c;
  }
  n->kind = LMQL_NODE_SET;
  struct lmql_vec items = {0};
  lmql__p_push(p, &items, first);
  more_items(p, &items, K(RBRACE));
  n->u.items = lmql__p_list(&items);
  lmql__p_expect(p, K(RBRACE), "expected '}' to close set");
  return n;
}

/* atom -> NAME | INT | FLOAT | STRING+ | 'True' | 'False' | 'None' | '...'
**       | paren | list | brace */
static struct lmql_node *atom(struct lmql_parser *p) {
  struct lmql_token *t = lmql__p_tok(p);
  struct lmql_node *n;
  switch (lmql__p_kind(p)) {
    case K(NAME):
      if (lmql__p_is_clause(p, t) && p->in_query_body) break;
      lmql__p_next(p);
      n = lmql__p_node_tok(p, LMQL_NODE_NAME, t);
      n->u.name = lmql__p_tok_text(p, t);
      return n;
    case K(INT):
      lmql__p_next(p);
      if (t->bad) { p->suppress = 1; return lmql__p_node_tok(p, LMQL_NODE_ERROR, t); }
      n = lmql__p_node_tok(p, LMQL_NODE_INT, t);
      n->u.i = t->v.i;
      return n;
    case K(FLOAT):
      lmql__p_next(p);
      if (t->bad) { p->suppress = 1; return lmql__p_node_tok(p, LMQL_NODE_ERROR, t); }
      n = lmql__p_node_tok(p, LMQL_NODE_FLOAT, t);
      n->u.f = t->v.f;
      return n;
    case K(STRING):
      return lmql__p_strings(p);
    case K(KW_TRUE): case K(KW_FALSE):
      lmql__p_next(p);
      n = lmql__p_node_tok(p, LMQL_NODE_BOOL, t);
      n->u.b = t->kind == K(KW_TRUE);
      return n;
    case K(KW_NONE):
      lmql__p_next(p);
      return lmql__p_node_tok(p, LMQL_NODE_NONE, t);
    case K(ELLIPSIS):
      lmql__p_next(p);
      return lmql__p_node_tok(p, LMQL_NODE_ELLIPSIS, t);
    case K(LPAREN):
      return paren(p);
    case K(LBRACKET):
      return list_display(p);
    case K(LBRACE):
      return brace_display(p);
    case K(STAR): case K(POW):
      lmql__p_error_at(p, t->off, "'%s' unpacking is not supported in LMQL queries",
                       t->kind == K(STAR) ? "*" : "**");
      return error_node(p);
    default:
      break;
  }
  lmql__p_unexpected(p, NULL);
  return error_node(p);
}

/* slice_item -> expr | [expr] ':' [expr] [':' [expr]] */
static struct lmql_node *slice_item(struct lmql_parser *p) {
  struct lmql_token *t = lmql__p_tok(p);
  struct lmql_node *lo = NULL;
  int k = lmql__p_kind(p);
  if (k != K(COLON)) {
    lo = lmql__p_expr(p);
    if (lmql__p_kind(p) != K(COLON)) return lo;
  }
  struct lmql_node *s = lmql__p_node_tok(p, LMQL_NODE_SLICE, t);
  s->u.slice.lo = lo;
  lmql__p_next(p); /* ':' */
  k = lmql__p_kind(p);
  if (k != K(COLON) && k != K(RBRACKET) && k != K(COMMA)) s->u.slice.hi = lmql__p_expr(p);
  if (lmql__p_accept(p, K(COLON))) {
    k = lmql__p_kind(p);
    if (k != K(RBRACKET) && k != K(COMMA)) s->u.slice.step = lmql__p_expr(p);
  }
  return s;
}

/* subscript -> '[' slice_item { ',' slice_item } [','] ']' */
static struct lmql_node *subscript(struct lmql_parser *p, struct lmql_node *obj) {
  struct lmql_token *open = lmql__p_next(p);
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_SUBSCRIPT, obj->pos.offset);
  n->u.sub.obj = obj;
  struct lmql_node *first = slice_item(p);
  if (lmql__p_kind(p) == K(COMMA)) {
    struct lmql_node *tup = lmql__p_node(p, LMQL_NODE_TUPLE, first->pos.offset);
    struct lmql_vec items = {0};
    lmql__p_push(p, &items, first);
    while (lmql__p_accept(p, K(COMMA))) {
      if (lmql__p_kind(p) == K(RBRACKET)) break;
      lmql__p_push(p, &items, slice_item(p));
    }
    tup->u.items = lmql__p_list(&items);
    first = tup;
  }
  (void)open;
  n->u.sub.index = first;
  lmql__p_expect(p, K(RBRACKET), "expected ']' to close subscript");
  return n;
}

/* arglist -> [ arg { ',' arg } [','] ] close
** arg -> NAME '=' expr | expr [comp_for]   ('*'/'**' unpacking rejected) */
void lmql__p_call_args(struct lmql_parser *p, struct lmql_vec *args, int close) {
  int seen_kw = 0;
  while (lmql__p_kind(p) != close) {
    struct lmql_token *t = lmql__p_tok(p);
    int k = lmql__p_kind(p);
    if (k == K(STAR) || k == K(POW)) {
      lmql__p_error_at(p, t->off, "'%s' unpacking is not supported in LMQL queries",
                       k == K(STAR) ? "*" : "**");
      lmql__p_next(p);
      (void)lmql__p_expr(p);
    } else if (k == K(NAME) && lmql__p_tok_at(p, 1)->kind == K(ASSIGN)) {
      lmql__p_next(p);
      lmql__p_next(p);
      struct lmql_node *kw = lmql__p_node_tok(p, LMQL_NODE_KEYWORD, t);
      kw->u.kw.name = lmql__p_tok_text(p, t);
      kw->u.kw.value = lmql__p_expr(p);
      lmql__p_push(p, args, kw);
      seen_kw = 1;
    } else {
      struct lmql_node *e = lmql__p_expr(p);
      if (lmql__p_kind(p) == K(KW_FOR)) {
        e = comprehension(p, LMQL_NODE_GENEXP, e, NULL);
        if (args->n > 0 || lmql__p_kind(p) == K(COMMA))
          lmql__p_error_at(p, e->pos.offset, "generator expression must be parenthesized");
      }
      if (seen_kw)
        lmql__p_error_at(p, e->pos.offset, "positional argument follows keyword argument");
      lmql__p_push(p, args, e);
    }
    if (!lmql__p_accept(p, K(COMMA))) break;
  }
  if (!lmql__p_accept(p, close)) {
    if (p->toks[p->i].bad) { p->suppress = 1; return; }
    lmql__p_unexpected(p, "in argument list");
  }
}

/* primary -> atom { '.' NAME | '(' arglist ')' | '[' subscript ']' } */
struct lmql_node *lmql__p_primary(struct lmql_parser *p) {
  struct lmql_node *n = atom(p);
  int32_t links = 0;
  for (;; links++) {
    int k = lmql__p_kind(p);
    if (k == K(DOT) || k == K(LPAREN) || k == K(LBRACKET)) lmql__p_chain_link(p);
    if (k == K(DOT)) {
      lmql__p_next(p);
      struct lmql_token *t = lmql__p_tok(p);
      if (lmql__p_kind(p) != K(NAME)) {
        lmql__p_unexpected(p, "after '.'");
        p->chain -= links + 1;
        return n;
      }
      lmql__p_next(p);
      struct lmql_node *a = lmql__p_node(p, LMQL_NODE_ATTR, n->pos.offset);
      a->u.attr.obj = n;
      a->u.attr.name = lmql__p_tok_text(p, t);
      n = a;
    } else if (k == K(LPAREN)) {
      lmql__p_next(p);
      struct lmql_node *c = lmql__p_node(p, LMQL_NODE_CALL, n->pos.offset);
      c->u.call.func = n;
      struct lmql_vec args = {0};
      lmql__p_call_args(p, &args, K(RPAREN));
      c->u.call.args = lmql__p_list(&args);
      n = c;
    } else if (k == K(LBRACKET)) {
      n = subscript(p, n);
    } else {
      p->chain -= links;
      return n;
    }
  }
}

static struct lmql_node *factor(struct lmql_parser *p);

/* power -> ['await'] primary ['**' factor]
** Query code runs in order: awaiting a call is the call (async defs are
** defs), so 'await' is read and dropped. */
static struct lmql_node *power(struct lmql_parser *p) {
  lmql__p_accept(p, K(KW_AWAIT));
  struct lmql_node *n = lmql__p_primary(p);
  if (lmql__p_kind(p) == K(POW)) {
    lmql__p_chain_link(p);   /* a**b**c recurses here, through factor */
    lmql__p_next(p);
    struct lmql_node *b = lmql__p_node(p, LMQL_NODE_BINOP, n->pos.offset);
    b->u.bin.op = LMQL_BINOP_POW;
    b->u.bin.left = n;
    b->u.bin.right = factor(p);
    n = b;
    p->chain--;
  }
  return n;
}

/* factor -> ('+' | '-' | '~') factor | power */
static struct lmql_node *factor(struct lmql_parser *p) {
  int k = lmql__p_kind(p);
  if (k != K(PLUS) && k != K(MINUS) && k != K(TILDE)) return power(p);
  struct lmql_token *t = lmql__p_next(p);
  lmql__p_enter(p);
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_UNARY, t);
  n->u.unary.op = k == K(PLUS) ? LMQL_UNOP_POS : k == K(MINUS) ? LMQL_UNOP_NEG : LMQL_UNOP_INVERT;
  n->u.unary.operand = factor(p);
  lmql__p_leave(p);
  return n;
}

/*
** binary(level) -> binary(level+1) { OP(level) binary(level+1) }
** stands for:   bitor  -> bitxor { '|' bitxor }
**               bitxor -> bitand { '^' bitand }
**               bitand -> shift { '&' shift }
**               shift  -> arith { ('<<'|'>>') arith }
**               arith  -> term { ('+'|'-') term }
**               term   -> factor { ('*'|'/'|'//'|'%') factor }
*/
static const struct {
  int tok;
  enum lmql_binop op;
  int level;
} binops[] = {
  {K(PIPE), LMQL_BINOP_BITOR, 0},    {K(CARET), LMQL_BINOP_BITXOR, 1},
  {K(AMP), LMQL_BINOP_BITAND, 2},    {K(LSHIFT), LMQL_BINOP_LSHIFT, 3},
  {K(RSHIFT), LMQL_BINOP_RSHIFT, 3}, {K(PLUS), LMQL_BINOP_ADD, 4},
  {K(MINUS), LMQL_BINOP_SUB, 4},     {K(STAR), LMQL_BINOP_MUL, 5},
  {K(SLASH), LMQL_BINOP_DIV, 5},     {K(DSLASH), LMQL_BINOP_FLOORDIV, 5},
  {K(PERCENT), LMQL_BINOP_MOD, 5},
};
#define BIN_LEVELS 6

static struct lmql_node *binary(struct lmql_parser *p, int level) {
  if (level >= BIN_LEVELS) return factor(p);
  struct lmql_node *left = binary(p, level + 1);
  int32_t links = 0;
  for (;;) {
    int k = lmql__p_kind(p), found = -1;
    for (size_t i = 0; i < sizeof binops / sizeof binops[0]; i++)
      if (binops[i].tok == k && binops[i].level == level) found = (int)i;
    if (found < 0) {
      if (k == K(AT) && level == BIN_LEVELS - 1) {
        lmql__p_error_at(p, lmql__p_tok(p)->off,
                         "the '@' operator is not supported in LMQL queries");
        lmql__p_next(p);
        (void)binary(p, level + 1);
        continue;
      }
      p->chain -= links;
      return left;
    }
    lmql__p_chain_link(p);
    links++;
    lmql__p_next(p);
    struct lmql_node *b = lmql__p_node(p, LMQL_NODE_BINOP, left->pos.offset);
    b->u.bin.op = binops[found].op;
    b->u.bin.left = left;
    b->u.bin.right = binary(p, level + 1);
    left = b;
  }
}

/* comp_op -> '<' | '>' | '==' | '>=' | '<=' | '!=' | 'in' | 'not' 'in'
**          | 'is' | 'is' 'not'.  Returns -1 if the next tokens are none. */
static int comp_op(struct lmql_parser *p) {
  switch (lmql__p_kind(p)) {
    case K(LT): lmql__p_next(p); return LMQL_CMPOP_LT;
    case K(GT): lmql__p_next(p); return LMQL_CMPOP_GT;
    case K(EQ): lmql__p_next(p); return LMQL_CMPOP_EQ;
    case K(NE): lmql__p_next(p); return LMQL_CMPOP_NE;
    case K(LE): lmql__p_next(p); return LMQL_CMPOP_LE;
    case K(GE): lmql__p_next(p); return LMQL_CMPOP_GE;
    case K(KW_IN): lmql__p_next(p); return LMQL_CMPOP_IN;
    case K(KW_NOT):
      if (lmql__p_tok_at(p, 1)->kind != K(KW_IN)) return -1;
      lmql__p_next(p);
      lmql__p_next(p);
      return LMQL_CMPOP_NOT_IN;
    case K(KW_IS):
      lmql__p_next(p);
      if (lmql__p_accept(p, K(KW_NOT))) return LMQL_CMPOP_IS_NOT;
      return LMQL_CMPOP_IS;
    default:
      return -1;
  }
}

/* comparison -> bitor { comp_op bitor }   (kept as one chained node) */
static struct lmql_node *comparison(struct lmql_parser *p) {
  struct lmql_node *left = binary(p, 0);
  int op = comp_op(p);
  if (op < 0) return left;
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_COMPARE, left->pos.offset);
  n->u.cmp.left = left;
  struct lmql_vec rights = {0};
  enum lmql_cmpop *ops = NULL;
  int32_t cap = 0;
  while (op >= 0) {
    if (rights.n == cap) {
      cap = cap ? cap * 2 : 2;
      ops = lmql__arena_grow(p->a, ops, (size_t)rights.n, (size_t)cap, sizeof *ops);
      if (!ops) lmql__p_oom(p);
    }
    ops[rights.n] = (enum lmql_cmpop)op;
    lmql__p_push(p, &rights, binary(p, 0));
    op = comp_op(p);
  }
  n->u.cmp.ops = ops;
  n->u.cmp.comparators = lmql__p_list(&rights);
  return n;
}

/* not_test -> 'not' not_test | comparison */
static struct lmql_node *not_test(struct lmql_parser *p) {
  if (lmql__p_kind(p) != K(KW_NOT)) return comparison(p);
  struct lmql_token *t = lmql__p_next(p);
  lmql__p_enter(p);
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_UNARY, t);
  n->u.unary.op = LMQL_UNOP_NOT;
  n->u.unary.operand = not_test(p);
  lmql__p_leave(p);
  return n;
}

/* and_test -> not_test { 'and' not_test }
** or_test  -> and_test { 'or' and_test }      (flattened like Python's BoolOp) */
static struct lmql_node *bool_chain(struct lmql_parser *p, int is_or) {
  struct lmql_node *first = is_or ? bool_chain(p, 0) : not_test(p);
  int kw = is_or ? K(KW_OR) : K(KW_AND);
  if (lmql__p_kind(p) != kw) return first;
  struct lmql_node *n = lmql__p_node(p, LMQL_NODE_BOOLOP, first->pos.offset);
  n->u.boolop.is_or = is_or;
  struct lmql_vec vals = {0};
  lmql__p_push(p, &vals, first);
  while (lmql__p_accept(p, kw))
    lmql__p_push(p, &vals, is_or ? bool_chain(p, 0) : not_test(p));
  n->u.boolop.values = lmql__p_list(&vals);
  return n;
}

static struct lmql_node *or_test(struct lmql_parser *p) { return bool_chain(p, 1); }

/* lambda -> 'lambda' [NAME ['=' expr] {',' NAME ['=' expr]}] ':' expr
** A LAMBDA node is a def named "<lambda>" whose body returns the expression. */
static struct lmql_node *lambda(struct lmql_parser *p) {
  struct lmql_node *n = lmql__p_node_tok(p, LMQL_NODE_LAMBDA, lmql__p_next(p));
  n->u.def.name = "<lambda>";
  struct lmql_vec params = {0};
  int seen_default = 0;
  while (lmql__p_kind(p) == K(NAME)) {
    lmql__p_param(p, &params, &seen_default, 0);
    if (!lmql__p_accept(p, K(COMMA))) break;
  }
  n->u.def.params = lmql__p_list(&params);
  if (!lmql__p_expect(p, K(COLON), "expected ':' after the lambda's parameters")) return error_node(p);
  struct lmql_node *body = lmql__p_expr(p);
  struct lmql_node *ret = lmql__p_node(p, LMQL_NODE_RETURN, body->pos.offset);
  ret->u.value = body;
  struct lmql_vec stmts = {0};
  lmql__p_push(p, &stmts, ret);
  n->u.def.body = lmql__p_list(&stmts);
  return n;
}

/* expr -> or_test [ 'if' or_test 'else' expr ] | lambda */
struct lmql_node *lmql__p_expr(struct lmql_parser *p) {
  int k = lmql__p_kind(p);
  if (k == K(KW_LAMBDA)) {
    lmql__p_enter(p);
    struct lmql_node *n = lambda(p);
    lmql__p_leave(p);
    return n;
  }
  if (k == K(KW_YIELD)) {
    lmql__p_unsupported(p, lmql__p_tok(p));
    return error_node(p);
  }
  lmql__p_enter(p);
  struct lmql_node *n = or_test(p);
  if (lmql__p_kind(p) == K(KW_IF)) {
    lmql__p_next(p);
    struct lmql_node *c = lmql__p_node(p, LMQL_NODE_IFEXP, n->pos.offset);
    c->u.ifexp.body = n;
    c->u.ifexp.test = or_test(p);
    if (lmql__p_expect(p, K(KW_ELSE), "expected 'else' in conditional expression"))
      c->u.ifexp.orelse = lmql__p_expr(p);
    else
      c->u.ifexp.orelse = error_node(p);
    n = c;
  }
  if (lmql__p_kind(p) == K(WALRUS)) lmql__p_unsupported(p, lmql__p_tok(p));
  lmql__p_leave(p);
  return n;
}

/* expr_list -> expr { ',' expr } [','] (a tuple when there is a comma) */
struct lmql_node *lmql__p_expr_list(struct lmql_parser *p) {
  struct lmql_node *first = lmql__p_expr(p);
  if (lmql__p_kind(p) != K(COMMA)) return first;
  struct lmql_node *tup = lmql__p_node(p, LMQL_NODE_TUPLE, first->pos.offset);
  struct lmql_vec items = {0};
  lmql__p_push(p, &items, first);
  while (lmql__p_accept(p, K(COMMA))) {
    if (!starts_expr(lmql__p_kind(p))) break;
    lmql__p_push(p, &items, lmql__p_expr(p));
  }
  tup->u.items = lmql__p_list(&items);
  return tup;
}

/* target_list -> bitor { ',' bitor } [',']  (stops before 'in') */
struct lmql_node *lmql__p_target_list(struct lmql_parser *p) {
  lmql__p_enter(p);
  struct lmql_node *first = binary(p, 0);
  if (lmql__p_kind(p) == K(COMMA)) {
    struct lmql_node *tup = lmql__p_node(p, LMQL_NODE_TUPLE, first->pos.offset);
    struct lmql_vec items = {0};
    lmql__p_push(p, &items, first);
    while (lmql__p_accept(p, K(COMMA))) {
      if (!starts_expr(lmql__p_kind(p))) break;
      lmql__p_push(p, &items, binary(p, 0));
    }
    tup->u.items = lmql__p_list(&items);
    first = tup;
  }
  lmql__p_leave(p);
  return first;
}

static const char *target_desc(const struct lmql_node *n) {
  switch (n->kind) {
    case LMQL_NODE_CALL: return "function call";
    case LMQL_NODE_INT: case LMQL_NODE_FLOAT: case LMQL_NODE_STR: case LMQL_NODE_FSTRING:
    case LMQL_NODE_BOOL: case LMQL_NODE_NONE: case LMQL_NODE_ELLIPSIS: return "literal";
    case LMQL_NODE_COMPARE: return "comparison";
    case LMQL_NODE_LISTCOMP: case LMQL_NODE_DICTCOMP: case LMQL_NODE_SETCOMP: return "comprehension";
    case LMQL_NODE_GENEXP: return "generator expression";
    case LMQL_NODE_DICT: return "dict literal";
    case LMQL_NODE_SET: return "set display";
    case LMQL_NODE_IFEXP: return "conditional expression";
    default: return "expression";
  }
}

/* Can n be assigned to?  aug = 1 for augmented assignment (no tuples).
** Reports "cannot assign to ..." and returns 0 if not. */
int lmql__p_check_target(struct lmql_parser *p, struct lmql_node *n, int aug) {
  switch (n->kind) {
    case LMQL_NODE_NAME: case LMQL_NODE_ATTR: case LMQL_NODE_SUBSCRIPT:
    case LMQL_NODE_ERROR:
      return 1;
    case LMQL_NODE_TUPLE: case LMQL_NODE_LIST:
      if (aug) {
        lmql__p_error_at(p, n->pos.offset, "illegal expression for augmented assignment");
        return 0;
      }
      for (int32_t i = 0; i < n->u.items.n; i++)
        if (!lmql__p_check_target(p, n->u.items.items[i], 0)) return 0;
      return 1;
    default:
      lmql__p_error_at(p, n->pos.offset, "cannot assign to %s", target_desc(n));
      return 0;
  }
}
