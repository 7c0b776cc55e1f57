/*
** ast.c -- node names and the s-expression dump used by golden tests.
*/
#include "ast.h"
#include "alloc.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const node_names[LMQL_NODE__COUNT] = {
#define NODE(id, dump) dump,
#define BINOP(id, text)
#define UNOP(id, text)
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
};

static const char *const binop_texts[LMQL_BINOP__COUNT] = {
#define NODE(id, dump)
#define BINOP(id, text) text,
#define UNOP(id, text)
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
};

static const char *const unop_texts[LMQL_UNOP__COUNT] = {
#define NODE(id, dump)
#define BINOP(id, text)
#define UNOP(id, text) text,
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
};

static const char *const cmpop_texts[LMQL_CMPOP__COUNT] = {
#define NODE(id, dump)
#define BINOP(id, text)
#define UNOP(id, text)
#define CMPOP(id, text) text,
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
};

const char *lmql__node_kind_name(enum lmql_node_kind k) {
  return (unsigned)k < LMQL_NODE__COUNT ? node_names[k] : "?";
}
const char *lmql__binop_text(enum lmql_binop op) {
  return (unsigned)op < LMQL_BINOP__COUNT ? binop_texts[op] : "?";
}
const char *lmql__unop_text(enum lmql_unop op) {
  return (unsigned)op < LMQL_UNOP__COUNT ? unop_texts[op] : "?";
}
const char *lmql__cmpop_text(enum lmql_cmpop op) {
  return (unsigned)op < LMQL_CMPOP__COUNT ? cmpop_texts[op] : "?";
}

/* ---- output buffer ---- */

struct dump {
  char *s;
  size_t len, cap;
  int oom;
  unsigned flags;
};

static void put(struct dump *b, const char *s, size_t n) {
  if (b->oom) return;
  if (b->len + n + 1 > b->cap) {
    size_t ncap = b->cap ? b->cap : 256;
    while (ncap < b->len + n + 1) ncap *= 2;
    char *ns = lmql__realloc(b->s, ncap);
    if (!ns) { b->oom = 1; return; }
    b->s = ns;
    b->cap = ncap;
  }
  memcpy(b->s + b->len, s, n);
  b->len += n;
  b->s[b->len] = 0;
}

static void puts_(struct dump *b, const char *s) { put(b, s, strlen(s)); }

static void putf(struct dump *b, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static void putf(struct dump *b, const char *fmt, ...) {
  char tmp[128];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void indent(struct dump *b, int ind) {
  put(b, "\n", 1);
  for (int i = 0; i < ind; i++) put(b, " ", 1);
}

static void quoted(struct dump *b, const char *s, size_t n) {
  put(b, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '"': puts_(b, "\\\""); break;
      case '\\': puts_(b, "\\\\"); break;
      case '\n': puts_(b, "\\n"); break;
      case '\t': puts_(b, "\\t"); break;
      case '\r': puts_(b, "\\r"); break;
      default:
        if (c < 0x20 || c == 0x7f) putf(b, "\\x%02x", c);
        else put(b, (const char *)&c, 1);
    }
  }
  put(b, "\"", 1);
}

static void pos(struct dump *b, const struct lmql_pos *p) {
  if (b->flags & LMQL_DUMP_POS) putf(b, "@%ld:%ld", (long)p->line, (long)p->col);
}

/* Shortest text that reads back as the same double, with '.' as decimal
** point whatever the locale, and always recognisable as a float. */
static void put_float(struct dump *b, double v) {
  char tmp[64];
  int sci = v != 0 && (fabs(v) >= 1e16 || fabs(v) < 1e-4);
  if (isinf(v) || isnan(v)) {
    snprintf(tmp, sizeof tmp, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
  } else if (sci) {
    for (int prec = 1; prec <= 17; prec++) {
      snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
      if (strtod(tmp, NULL) == v) break;
    }
  } else {
    /* like Python's repr: fixed notation with the fewest digits that
    ** read back exactly, at least one after the point */
    for (int prec = 1; prec <= 20; prec++) {
      snprintf(tmp, sizeof tmp, "%.*f", prec, v);
      if (strtod(tmp, NULL) == v) break;
    }
  }
  const char *dp = localeconv()->decimal_point;
  for (char *p = tmp; *p; p++)
    if (dp && *p == dp[0]) *p = '.';
  puts_(b, tmp);
}

static void expr(struct dump *b, const struct lmql_node *n);
static void stmts(struct dump *b, const struct lmql_node_list *l, int ind);
static void query(struct dump *b, const struct lmql_ast_query *q, int ind);

static void head(struct dump *b, const char *h, const struct lmql_node *n) {
  put(b, "(", 1);
  puts_(b, h);
  pos(b, &n->pos);
}

static void list(struct dump *b, const struct lmql_node_list *l) {
  for (int32_t i = 0; i < l->n; i++) {
    put(b, " ", 1);
    expr(b, l->items[i]);
  }
}

static void opt(struct dump *b, const struct lmql_node *n) {
  put(b, " ", 1);
  if (n) expr(b, n); else put(b, "_", 1);
}

static void expr(struct dump *b, const struct lmql_node *n) {
  if (!n) { puts_(b, "_"); return; }
  switch (n->kind) {
    case LMQL_NODE_INT: putf(b, "%lld", (long long)n->u.i); pos(b, &n->pos); return;
    case LMQL_NODE_FLOAT: put_float(b, n->u.f); pos(b, &n->pos); return;
    case LMQL_NODE_BOOL: puts_(b, n->u.b ? "True" : "False"); pos(b, &n->pos); return;
    case LMQL_NODE_NONE: puts_(b, "None"); pos(b, &n->pos); return;
    case LMQL_NODE_ELLIPSIS: puts_(b, "..."); pos(b, &n->pos); return;
    case LMQL_NODE_NAME: puts_(b, n->u.name); pos(b, &n->pos); return;
    case LMQL_NODE_STR: quoted(b, n->u.str.text, n->u.str.len); pos(b, &n->pos); return;
    default: break;
  }
  head(b, lmql__node_kind_name(n->kind), n);
  switch (n->kind) {
    case LMQL_NODE_FSTRING: list(b, &n->u.parts); break;
    case LMQL_NODE_INTERP:
      opt(b, n->u.interp.expr);
      if (n->u.interp.conv) putf(b, " !%c", n->u.interp.conv);
      if (n->u.interp.spec) { puts_(b, " :"); quoted(b, n->u.interp.spec, strlen(n->u.interp.spec)); }
      break;
    case LMQL_NODE_ATTR: opt(b, n->u.attr.obj); put(b, " ", 1); puts_(b, n->u.attr.name); break;
    case LMQL_NODE_CALL: opt(b, n->u.call.func); list(b, &n->u.call.args); break;
    case LMQL_NODE_KEYWORD: put(b, " ", 1); puts_(b, n->u.kw.name); opt(b, n->u.kw.value); break;
    case LMQL_NODE_SUBSCRIPT: opt(b, n->u.sub.obj); opt(b, n->u.sub.index); break;
    case LMQL_NODE_SLICE: opt(b, n->u.slice.lo); opt(b, n->u.slice.hi); opt(b, n->u.slice.step); break;
    case LMQL_NODE_LIST: case LMQL_NODE_TUPLE: case LMQL_NODE_SET: list(b, &n->u.items); break;
    case LMQL_NODE_DICT:
      for (int32_t i = 0; i < n->u.dict.keys.n; i++) {
        puts_(b, " (");
        expr(b, n->u.dict.keys.items[i]);
        opt(b, n->u.dict.values.items[i]);
        put(b, ")", 1);
      }
      break;
    case LMQL_NODE_LISTCOMP: case LMQL_NODE_SETCOMP: case LMQL_NODE_GENEXP: case LMQL_NODE_DICTCOMP:
      opt(b, n->u.comp.elt);
      if (n->kind == LMQL_NODE_DICTCOMP) opt(b, n->u.comp.value);
      list(b, &n->u.comp.gens);
      break;
    case LMQL_NODE_COMP_FOR:
      opt(b, n->u.gen.target);
      opt(b, n->u.gen.iter);
      for (int32_t i = 0; i < n->u.gen.ifs.n; i++) {
        puts_(b, " (if ");
        expr(b, n->u.gen.ifs.items[i]);
        put(b, ")", 1);
      }
      break;
    case LMQL_NODE_UNARY: put(b, " ", 1); puts_(b, lmql__unop_text(n->u.unary.op)); opt(b, n->u.unary.operand); break;
    case LMQL_NODE_BINOP: put(b, " ", 1); puts_(b, lmql__binop_text(n->u.bin.op)); opt(b, n->u.bin.left); opt(b, n->u.bin.right); break;
    case LMQL_NODE_BOOLOP: puts_(b, n->u.boolop.is_or ? " or" : " and"); list(b, &n->u.boolop.values); break;
    case LMQL_NODE_COMPARE:
      opt(b, n->u.cmp.left);
      for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) {
        put(b, " ", 1);
        puts_(b, lmql__cmpop_text(n->u.cmp.ops[i]));
        opt(b, n->u.cmp.comparators.items[i]);
      }
      break;
    case LMQL_NODE_IFEXP: opt(b, n->u.ifexp.test); opt(b, n->u.ifexp.body); opt(b, n->u.ifexp.orelse); break;
    case LMQL_NODE_LAMBDA:
      puts_(b, " (params");
      list(b, &n->u.def.params);
      put(b, ")", 1);
      LMQL_ASSERT(n->u.def.body.n == 1 && n->u.def.body.items[0]->kind == LMQL_NODE_RETURN);
      opt(b, n->u.def.body.items[0]->u.value);
      break;
    case LMQL_NODE_SEG_TEXT: case LMQL_NODE_SEG_ROLE:
      put(b, " ", 1);
      quoted(b, n->u.text.text, n->u.text.len);
      break;
    case LMQL_NODE_SEG_HOLE:
      put(b, " ", 1);
      puts_(b, n->u.hole.name ? n->u.hole.name : "_");
      if (n->u.hole.decoder) { puts_(b, " (decoder "); puts_(b, n->u.hole.decoder); put(b, ")", 1); }
      for (int32_t i = 0; i < n->u.hole.decorators.n; i++) {
        puts_(b, " (deco ");
        expr(b, n->u.hole.decorators.items[i]);
        put(b, ")", 1);
      }
      if (n->u.hole.call) { puts_(b, " (via "); expr(b, n->u.hole.call); put(b, ")", 1); }
      if (n->u.hole.type) { puts_(b, " (type "); expr(b, n->u.hole.type); put(b, ")", 1); }
      break;
    case LMQL_NODE_DISTRIBUTION:
      put(b, " ", 1);
      puts_(b, n->u.dist.var);
      opt(b, n->u.dist.values);
      break;
    case LMQL_NODE_PARAM:
      put(b, " ", 1);
      puts_(b, n->u.param.name);
      if (n->u.param.dflt) opt(b, n->u.param.dflt);
      break;
    case LMQL_NODE_ALIAS:
      put(b, " ", 1);
      puts_(b, n->u.alias.name);
      if (n->u.alias.asname) { put(b, " ", 1); puts_(b, n->u.alias.asname); }
      break;
    default:
      break;
  }
  put(b, ")", 1);
}

static void stmt(struct dump *b, const struct lmql_node *n, int ind) {
  switch (n->kind) {
    case LMQL_NODE_EXPR_STMT: head(b, "expr", n); opt(b, n->u.expr); break;
    case LMQL_NODE_PROMPT:
      head(b, "prompt", n);
      list(b, &n->u.prompt.segs);
      if (n->u.prompt.where) { puts_(b, " (where "); expr(b, n->u.prompt.where); put(b, ")", 1); }
      if (n->u.prompt.dist) { put(b, " ", 1); expr(b, n->u.prompt.dist); }
      break;
    case LMQL_NODE_ASSIGN:
      head(b, "assign", n);
      list(b, &n->u.assign.targets);
      opt(b, n->u.assign.value);
      break;
    case LMQL_NODE_AUGASSIGN:
      head(b, "augassign", n);
      opt(b, n->u.aug.target);
      put(b, " ", 1);
      puts_(b, lmql__binop_text(n->u.aug.op));
      opt(b, n->u.aug.value);
      break;
    case LMQL_NODE_IF: case LMQL_NODE_WHILE:
      head(b, lmql__node_kind_name(n->kind), n);
      opt(b, n->u.if_.test);
      stmts(b, &n->u.if_.body, ind + 2);
      if (n->u.if_.orelse.n) {
        indent(b, ind + 1);
        puts_(b, "else");
        stmts(b, &n->u.if_.orelse, ind + 2);
      }
      break;
    case LMQL_NODE_FOR:
      head(b, "for", n);
      opt(b, n->u.for_.target);
      opt(b, n->u.for_.iter);
      stmts(b, &n->u.for_.body, ind + 2);
      if (n->u.for_.orelse.n) {
        indent(b, ind + 1);
        puts_(b, "else");
        stmts(b, &n->u.for_.orelse, ind + 2);
      }
      break;
    case LMQL_NODE_TRY:
      head(b, "try", n);
      stmts(b, &n->u.try_.body, ind + 2);
      stmts(b, &n->u.try_.handlers, ind + 1);
      if (n->u.try_.orelse.n) {
        indent(b, ind + 1);
        puts_(b, "else");
        stmts(b, &n->u.try_.orelse, ind + 2);
      }
      if (n->u.try_.finalbody.n) {
        indent(b, ind + 1);
        puts_(b, "finally");
        stmts(b, &n->u.try_.finalbody, ind + 2);
      }
      break;
    case LMQL_NODE_EXCEPT:
      head(b, "except", n);
      opt(b, n->u.except_.type);
      if (n->u.except_.name) { puts_(b, " as "); puts_(b, n->u.except_.name); }
      stmts(b, &n->u.except_.body, ind + 1);
      break;
    case LMQL_NODE_RAISE:
      head(b, "raise", n);
      opt(b, n->u.raise_.exc);
      opt(b, n->u.raise_.cause);
      break;
    case LMQL_NODE_DEL:
      head(b, "del", n);
      list(b, &n->u.del);
      break;
    case LMQL_NODE_DEF:
      head(b, "def", n);
      put(b, " ", 1);
      puts_(b, n->u.def.name);
      puts_(b, " (params");
      list(b, &n->u.def.params);
      put(b, ")", 1);
      if (n->u.def.decorators.n) {
        puts_(b, " (decorators");
        list(b, &n->u.def.decorators);
        put(b, ")", 1);
      }
      if (n->u.def.query) {
        indent(b, ind + 2);
        query(b, n->u.def.query, ind + 2);
      } else {
        stmts(b, &n->u.def.body, ind + 2);
      }
      break;
    case LMQL_NODE_ANNASSIGN:
      head(b, "annassign", n);
      opt(b, n->u.ann.target);
      opt(b, n->u.ann.annotation);
      if (n->u.ann.value) opt(b, n->u.ann.value);
      break;
    case LMQL_NODE_CLASS:
      head(b, "class", n);
      put(b, " ", 1);
      puts_(b, n->u.cls.name);
      if (n->u.cls.bases.n) {
        puts_(b, " (bases");
        list(b, &n->u.cls.bases);
        put(b, ")", 1);
      }
      if (n->u.cls.decorators.n) {
        puts_(b, " (decorators");
        list(b, &n->u.cls.decorators);
        put(b, ")", 1);
      }
      stmts(b, &n->u.cls.body, ind + 2);
      break;
    case LMQL_NODE_RETURN:
      head(b, "return", n);
      if (n->u.value) opt(b, n->u.value);
      break;
    case LMQL_NODE_ASSERT:
      head(b, "assert", n);
      opt(b, n->u.assert_.test);
      if (n->u.assert_.msg) opt(b, n->u.assert_.msg);
      break;
    case LMQL_NODE_IMPORT: case LMQL_NODE_IMPORT_FROM:
      head(b, lmql__node_kind_name(n->kind), n);
      if (n->kind == LMQL_NODE_IMPORT_FROM) {
        put(b, " ", 1);
        for (int32_t i = 0; i < n->u.import.level; i++) put(b, ".", 1);
        if (n->u.import.module) puts_(b, n->u.import.module);
      }
      list(b, &n->u.import.names);
      break;
    case LMQL_NODE_BREAK: case LMQL_NODE_CONTINUE: case LMQL_NODE_PASS:
      head(b, lmql__node_kind_name(n->kind), n);
      break;
    case LMQL_NODE_GLOBAL: case LMQL_NODE_NONLOCAL:
      head(b, lmql__node_kind_name(n->kind), n);
      list(b, &n->u.items);
      break;
    default: /* an expression where a statement was expected (error recovery) */
      expr(b, n);
      return;
  }
  put(b, ")", 1);
}

static void stmts(struct dump *b, const struct lmql_node_list *l, int ind) {
  for (int32_t i = 0; i < l->n; i++) {
    indent(b, ind);
    stmt(b, l->items[i], ind);
  }
}

static void query(struct dump *b, const struct lmql_ast_query *q, int ind) {
  puts_(b, "(query");
  pos(b, &q->pos);
  if (q->prologue.n) {
    indent(b, ind + 1);
    puts_(b, "(prologue");
    stmts(b, &q->prologue, ind + 3);
    put(b, ")", 1);
  }
  indent(b, ind + 1);
  puts_(b, "(decoder ");
  puts_(b, q->decoder ? q->decoder : "_");
  if (q->decoder_pos.line) pos(b, &q->decoder_pos);
  list(b, &q->decoder_args);
  put(b, ")", 1);
  indent(b, ind + 1);
  puts_(b, "(body");
  stmts(b, &q->body, ind + 3);
  put(b, ")", 1);
  if (q->from) { indent(b, ind + 1); puts_(b, "(from "); expr(b, q->from); put(b, ")", 1); }
  if (q->where) { indent(b, ind + 1); puts_(b, "(where "); expr(b, q->where); put(b, ")", 1); }
  if (q->distribution) { indent(b, ind + 1); expr(b, q->distribution); }
  put(b, ")", 1);
}

/* ---- the statement visitor ---- */

static int visit_block(const struct lmql_node_list *b, const struct lmql_ast_visitor *v);

static int visit_stmt(const struct lmql_node *s, const struct lmql_ast_visitor *v) {
  int rc = v->stmt ? v->stmt(v->ud, s) : 0;
  if (rc) return rc;
  switch (s->kind) {
  case LMQL_NODE_IF:
  case LMQL_NODE_WHILE:
    if ((rc = visit_block(&s->u.if_.body, v))) return rc;
    return visit_block(&s->u.if_.orelse, v);
  case LMQL_NODE_FOR:
    if ((rc = visit_block(&s->u.for_.body, v))) return rc;
    return visit_block(&s->u.for_.orelse, v);
  case LMQL_NODE_DEF:
    if ((rc = visit_block(&s->u.def.body, v))) return rc;
    return s->u.def.query ? lmql__ast_visit(s->u.def.query, v) : 0;
  case LMQL_NODE_CLASS:
    return visit_block(&s->u.cls.body, v);
  case LMQL_NODE_TRY:
    if ((rc = visit_block(&s->u.try_.body, v)) || (rc = visit_block(&s->u.try_.handlers, v)) ||
        (rc = visit_block(&s->u.try_.orelse, v)))
      return rc;
    return visit_block(&s->u.try_.finalbody, v);
  case LMQL_NODE_EXCEPT:
    return visit_block(&s->u.except_.body, v);
  default:
    return 0;
  }
}

static int visit_block(const struct lmql_node_list *b, const struct lmql_ast_visitor *v) {
  for (int32_t i = 0; i < b->n; i++) {
    int rc = visit_stmt(b->items[i], v);
    if (rc) return rc;
  }
  return 0;
}

int lmql__ast_visit(const struct lmql_ast_query *q, const struct lmql_ast_visitor *v) {
  int rc = v->enter ? v->enter(v->ud, q) : 0;
  if (!rc) rc = visit_block(&q->prologue, v);
  if (!rc) rc = visit_block(&q->body, v);
  if (!rc && v->query) rc = v->query(v->ud, q);
  return rc;
}

char *lmql__ast_dump_query(const struct lmql_ast_query *q, unsigned flags) {
  struct dump b = {NULL, 0, 0, 0, flags};
  put(&b, "", 0);
  if (q) query(&b, q, 0);
  if (b.oom) { free(b.s); return NULL; }
  return b.s;
}

