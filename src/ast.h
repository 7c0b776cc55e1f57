/*
** ast.h -- syntax tree of an LMQL query (and of its Python-subset code).
**
** All nodes, lists and strings live in the arena given to the parser and
** are freed with it.  Every node carries its source position (1-based
** line and column, byte offset); nodes parsed from inside a string literal
** (query-string holes, {expr} interpolations) point into the string's
** source text, not into the decoded value.
**
** The tree is plain data: later stages (validation, compilation) read it
** and may annotate nothing in place.  Node kinds and operators are listed
** once in ast_nodes.def.
*/
#ifndef LMQL_AST_H
#define LMQL_AST_H

#include <stddef.h>
#include <stdint.h>

#include "lex.h"

enum lmql_node_kind {
#define NODE(id, dump) LMQL_NODE_##id,
#define BINOP(id, text)
#define UNOP(id, text)
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
  LMQL_NODE__COUNT
};

enum lmql_binop {
#define NODE(id, dump)
#define BINOP(id, text) LMQL_BINOP_##id,
#define UNOP(id, text)
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
  LMQL_BINOP__COUNT
};

enum lmql_unop {
#define NODE(id, dump)
#define BINOP(id, text)
#define UNOP(id, text) LMQL_UNOP_##id,
#define CMPOP(id, text)
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
  LMQL_UNOP__COUNT
};

enum lmql_cmpop {
#define NODE(id, dump)
#define BINOP(id, text)
#define UNOP(id, text)
#define CMPOP(id, text) LMQL_CMPOP_##id,
#include "ast_nodes.def"
#undef NODE
#undef BINOP
#undef UNOP
#undef CMPOP
  LMQL_CMPOP__COUNT
};

struct lmql_node;
struct lmql_ast_query;
struct lmql__where;

struct lmql_node_list {
  struct lmql_node **items;
  int32_t n;
};

struct lmql_node {
  enum lmql_node_kind kind;
  struct lmql_pos pos;
  union {
    int64_t i;                      /* INT */
    double f;                       /* FLOAT */
    int b;                          /* BOOL */
    const char *name;               /* NAME (NUL-terminated) */
    struct {                        /* STR: decoded value (may hold NULs) */
      const char *text;
      size_t len;
      const size_t *map;            /* source offset of each byte; [len] = end */
      uint8_t flags;                /* LMQL_STR_* of the first piece */
      int32_t n_pieces;             /* >1 after adjacent concatenation */
      int32_t from_source;          /* 1 if raw_* index the file source */
      size_t raw_start, raw_end;    /* first piece: bytes between quotes */
    } str;
    struct lmql_node_list parts;    /* FSTRING: STR and INTERP parts */
    struct {                        /* INTERP */
      struct lmql_node *expr;
      char conv;                    /* 0, 'r', 's' or 'a' */
      const char *spec;             /* format spec text after ':' or NULL */
    } interp;
    struct { struct lmql_node *obj; const char *name; } attr;        /* ATTR */
    struct { struct lmql_node *func; struct lmql_node_list args; } call;
                                    /* CALL: args are exprs, then KEYWORD nodes */
    struct { const char *name; struct lmql_node *value; } kw;        /* KEYWORD */
    struct { struct lmql_node *obj, *index; } sub;   /* SUBSCRIPT (index may be SLICE/TUPLE) */
    struct { struct lmql_node *lo, *hi, *step; } slice; /* SLICE; members may be NULL */
    struct lmql_node_list items;    /* LIST, TUPLE, SET; GLOBAL, NONLOCAL: NAME nodes */
    struct { struct lmql_node_list keys, values; } dict;  /* DICT */
    struct {                        /* LISTCOMP SETCOMP GENEXP DICTCOMP */
      struct lmql_node *elt;        /* DICTCOMP: the key */
      struct lmql_node *value;      /* DICTCOMP only */
      struct lmql_node_list gens;   /* COMP_FOR nodes */
    } comp;
    struct { struct lmql_node *target, *iter; struct lmql_node_list ifs; } gen; /* COMP_FOR */
    struct { enum lmql_unop op; struct lmql_node *operand; } unary;
    struct { enum lmql_binop op; struct lmql_node *left, *right; } bin;
    struct { int is_or; struct lmql_node_list values; } boolop;  /* flattened */
    struct {                        /* COMPARE: kept chained, a < b < c */
      struct lmql_node *left;
      enum lmql_cmpop *ops;         /* comparators.n entries */
      struct lmql_node_list comparators;
    } cmp;
    struct { struct lmql_node *test, *body, *orelse; } ifexp;

    struct { const char *text; size_t len; } text;  /* SEG_TEXT; SEG_ROLE (role name) */
    struct {                        /* SEG_HOLE: [@deco... DECODER f(NAME): TYPE] */
      const char *name;             /* the variable */
      struct lmql_pos name_pos;
      struct lmql_node *call;       /* [f(X)]: the whole call, else NULL */
      const char *decoder;          /* [sample X]: "sample", else NULL */
      struct lmql_node_list decorators; /* expressions after '@' */
      struct lmql_node *type;       /* type expression or NULL */
      const struct lmql__where *where; /* its constraints, compiled with the program (where.h) */
    } hole;
    struct {                        /* PROMPT: a top-level string statement */
      struct lmql_node *str;        /* the STR literal */
      struct lmql_node_list segs;   /* SEG_TEXT / INTERP / SEG_ROLE / SEG_HOLE */
      struct lmql_node *where;      /* inline where, or NULL */
      struct lmql_node *dist;       /* inline distribution, or NULL */
    } prompt;
    struct {                        /* DISTRIBUTION: VAR in VALUES */
      const char *var;
      struct lmql_node *values;
    } dist;

    struct lmql_node *expr;         /* EXPR_STMT */
    struct { struct lmql_node_list targets; struct lmql_node *value; } assign; /* a = b = v */
    struct { struct lmql_node *target; enum lmql_binop op; struct lmql_node *value; } aug;
    struct {                        /* IF, WHILE; elif is a nested IF in orelse */
      struct lmql_node *test;
      struct lmql_node_list body, orelse;
    } if_;
    struct {                        /* FOR */
      struct lmql_node *target, *iter;
      struct lmql_node_list body, orelse;
    } for_;
    struct {                        /* DEF; LAMBDA: name "<lambda>", a body of one RETURN */
      const char *name;
      struct lmql_node_list params; /* PARAM nodes */
      struct lmql_node_list decorators;
      struct lmql_node_list body;
      struct lmql_ast_query *query; /* @lmql.query with '''lmql ...''' body */
    } def;
    struct { const char *name; struct lmql_node *dflt; } param;      /* PARAM */
    struct lmql_node *value;        /* RETURN (NULL when bare) */
    struct { struct lmql_node *test, *msg; } assert_;               /* ASSERT */
    struct {                        /* TRY: handlers are EXCEPT statements */
      struct lmql_node_list body, handlers, orelse, finalbody;
    } try_;
    struct {                        /* EXCEPT: `except [TYPE [as NAME]]:` */
      struct lmql_node *type;       /* NULL: every exception */
      const char *name;             /* NULL: not bound */
      struct lmql_node_list body;
    } except_;
    struct { struct lmql_node *exc, *cause; } raise_;               /* RAISE (exc NULL: re-raise) */
    struct lmql_node_list del;      /* DEL: its targets */
    struct {                        /* IMPORT (module NULL), IMPORT_FROM */
      const char *module;           /* dotted; NULL for "from . import x" */
      int32_t level;                /* leading dots of a relative import */
      struct lmql_node_list names;  /* ALIAS nodes; "*" is a name */
    } import;
    struct { const char *name, *asname; } alias;                     /* ALIAS */
    struct {                        /* ANNASSIGN: target: annotation [= value] */
      struct lmql_node *target;     /* NAME, ATTR or SUBSCRIPT */
      struct lmql_node *annotation; /* never evaluated (as under `from __future__ import annotations`) */
      struct lmql_node *value;      /* NULL: a declaration only */
    } ann;
    struct {                        /* CLASS */
      const char *name;
      struct lmql_node_list bases;  /* expressions */
      struct lmql_node_list decorators;
      struct lmql_node_list body;   /* docstrings, pass, (annotated) assignments, defs */
    } cls;
  } u;
};

/*
** A parsed query: [prologue] DECODER[(kwargs)] body [from] [where]
** [distribution].  Without a decoder keyword everything is body and the
** decoder is "__dynamic__" (decoder_pos.line == 0).
*/
struct lmql_ast_query {
  struct lmql_pos pos;
  struct lmql_node_list prologue;   /* statements before the decoder */
  const char *decoder;              /* lower case */
  struct lmql_pos decoder_pos;
  struct lmql_node_list decoder_args; /* KEYWORD nodes */
  struct lmql_node_list body;       /* prompt statements and code */
  struct lmql_node *from;           /* model expression or NULL */
  struct lmql_node *where;          /* global constraint or NULL */
  struct lmql_node *distribution;   /* DISTRIBUTION node or NULL */
  struct lmql_node_list query_defs; /* DEF nodes with .query, source order */
  const struct lmql_ast_query *parent; /* the query whose code holds this one's
                                       ** @lmql.query def; NULL at the top */
};

/*
** The one walk over a query's statements, everywhere: prologue and body,
** the blocks of if/while/for (else blocks too), of def and class, and the queries
** of @lmql.query functions, at any depth. Statements in branches that never
** run are visited too. `stmt` sees each statement before the statements
** inside it; `query` sees each query after all its statements (so where
** clauses come in source order); `enter` sees each query before its
** statements. A callback returning nonzero stops the walk, and that value
** is returned. Any callback may be NULL.
*/
struct lmql_ast_visitor {
  int (*enter)(void *ud, const struct lmql_ast_query *q);
  int (*query)(void *ud, const struct lmql_ast_query *q);
  int (*stmt)(void *ud, const struct lmql_node *stmt);
  void *ud;
};
int lmql__ast_visit(const struct lmql_ast_query *q, const struct lmql_ast_visitor *v);

const char *lmql__node_kind_name(enum lmql_node_kind k);
const char *lmql__binop_text(enum lmql_binop op);
const char *lmql__unop_text(enum lmql_unop op);
const char *lmql__cmpop_text(enum lmql_cmpop op);

enum {
  LMQL_DUMP_POS = 1   /* append @LINE:COL to every node */
};

/*
** Deterministic s-expression dump, for golden tests and debugging.
** Returns a malloc'd NUL-terminated string the caller frees, or NULL on
** out of memory.  Format (see tests/cases/parse.test for many examples):
** names, numbers, True/False/None are bare atoms, strings are quoted with
** C escapes, everything else is (head child...).
*/
char *lmql__ast_dump_query(const struct lmql_ast_query *q, unsigned flags);

#endif
