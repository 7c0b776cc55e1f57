/*
** where.h -- the where clauses of a program, checked and compiled once.
**
** When a program is compiled, every where clause in it (the global one and
** the inline ones, of nested queries and @lmql.query functions, in code
** that never runs too) is checked, and for every hole the clauses that
** apply to it (its query's global where and its prompt's inline where, and
** its type) are compiled into a plan: which constraint kinds, in which
** and/or/not tree, with literal regexes already compiled. Every error that
** does not depend on a value is found here, with its position. At the hole,
** constraint.c evaluates the expressions the plan points at (bounds, phrase
** lists, patterns given as values) and computes masks.
*/
#ifndef LMQL_WHERE_H
#define LMQL_WHERE_H

#include <stdbool.h>

#include "ast.h"
#include "lmql_int.h"

struct lmql_regex;
struct lmql_grammar;
struct lmql_val;

/* At most this many STOPS_AT/STOPS_BEFORE on one hole. */
#define LMQL_MAX_STOPS 32

enum lmql__wk {
    LMQL_W_TRUE, LMQL_W_FALSE,
    LMQL_W_TEST,       /* expr does not involve the hole: its truth at the hole (none while unknown) */
    LMQL_W_AND, LMQL_W_OR,
    LMQL_W_NOT,        /* of one LMQL_W_CONTAINS kid */
    LMQL_W_TOKLEN,     /* len(TOKENS(X)) op expr */
    LMQL_W_CHARLEN,    /* len(X) op expr */
    LMQL_W_EQ,         /* X == expr (a string) */
    LMQL_W_IN,         /* X in expr (a string or a list of strings) */
    LMQL_W_CONTAINS,   /* expr in X */
    LMQL_W_REGEX,      /* REGEX(X, expr), [X: r"..."]: re when the pattern is a literal */
    LMQL_W_INT,        /* INT(X), [X: int] */
    LMQL_W_STARTS,     /* STARTS_WITH(X, expr) */
    LMQL_W_STOP,       /* STOPS_AT / STOPS_BEFORE(X, expr): the stop numbered `stop` */
    LMQL_W_GRAMMAR,    /* JSON(X, schema), GRAMMAR(X, gbnf), [X: json...]: gram when known at compile time */
};

/* What a grammar node's expression is. */
/* What a grammar constraint's value is: a JSON Schema written compactly
** (json.dumps's separators), one with any JSON whitespace between tokens
** (whitespace="free"), or a GBNF grammar. */
enum lmql__gkind { LMQL_G_JSON_SCHEMA, LMQL_G_JSON_SCHEMA_FREE_WS, LMQL_G_GBNF };

struct lmql__wnode {
    enum lmql__wk kind;
    enum lmql_cmpop op;              /* lengths: <, > or == */
    bool before;                     /* LMQL_W_STOP: STOPS_BEFORE */
    int stop;                        /* LMQL_W_STOP: its number, 0..n_stops-1 */
    const struct lmql_node *expr;    /* what is evaluated at the hole (AST memory), or NULL */
    const struct lmql_node *at;      /* where a value's error points */
    struct lmql_regex *re;           /* LMQL_W_REGEX with a literal pattern, else NULL */
    struct lmql_grammar *gram;       /* LMQL_W_GRAMMAR with a literal schema or grammar, else NULL */
    enum lmql__gkind gkind;          /* LMQL_W_GRAMMAR: what expr is */
    const char *pat;                 /* its text (AST memory) */
    size_t pat_len;
    struct lmql__wnode **kids;
    int n_kids;
};

/* Post-processing the where clause asks for. */
enum {
    LMQL_POST_INT = 1,       /* the value becomes an int */
    LMQL_POST_ERASE = 2,     /* the value stays, its prompt text is "" */
    LMQL_POST_ESCAPED = 4,   /* \n and \t in the prompt text become \\n, \\t */
    LMQL_POST_FLOAT = 8,     /* the value becomes a float ([X: float]) */
    LMQL_POST_BOOL = 16,     /* the value becomes True or False ([X: bool]) */
    LMQL_POST_JSON = 32,     /* the value becomes the JSON value it spells ([X: json...]) */
};

/* What the type of a hole [X: TYPE] is. */
enum lmql__htype {
    LMQL_HT_NONE,      /* no type */
    LMQL_HT_INT, LMQL_HT_FLOAT, LMQL_HT_BOOL, LMQL_HT_STR,
    LMQL_HT_REGEX,     /* [X: r"..."] */
    LMQL_HT_JSON,      /* [X: json], [X: json(SCHEMA)] */
    LMQL_HT_GRAMMAR,   /* [X: grammar(GBNF)] */
    LMQL_HT_CLASS,     /* [X: Person], type(X) is Person: a dataclass of the query */
    LMQL_HT_OTHER,     /* a name or call resolved when the hole runs: a query function */
};

/* The constraints on one hole. */
struct lmql__where {
    struct lmql__wnode *root;        /* an LMQL_W_AND */
    unsigned post;                   /* LMQL_POST_* */
    int n_stops;
    bool mentioned;                  /* a where clause names the hole's variable */
    enum lmql__htype type;
    const struct lmql_node *cls;     /* LMQL_HT_CLASS: the NAME of the class, evaluated at the hole */
    const struct lmql_node *cls_def; /* LMQL_HT_CLASS: the CLASS statement the grammar was made from */
};

/* Reject what LMQL rejects in one where clause (<=, >=, !=, chained
** comparisons, method calls on variables, constraint functions with the
** wrong number of arguments, literal patterns that do not compile).
** Returns 0, or -1 with e filled (status LMQL_ERR_QUERY, or NOMEM). */
int lmql__where_check(const struct lmql_node *where, struct lmql__err *e);

/* Compile a schema (a dict, True/False, or its JSON text as a string) or a
** GBNF grammar (a string) given as a value. at: where errors point. Returns
** the grammar, or NULL with e filled (LMQL_ERR_QUERY at `at`, or NOMEM). */
struct lmql_grammar *lmql__where_grammar(enum lmql__gkind kind, const struct lmql_val *v, const struct lmql_node *at,
                                         struct lmql__err *e);

/* The plans of one program, released together. */
struct lmql__wheres;

/* Check every where clause of q and of the queries inside it, in source
** order, then compile the plan of every hole and attach it to the hole's
** node (seg->u.hole.where). Returns 0 and *out (free with
** lmql__wheres_free, after the last run), or -1 with e filled (the first
** error in the source; *out NULL). */
int lmql__wheres_compile(struct lmql_ast_query *q, struct lmql__wheres **out, struct lmql__err *e);
void lmql__wheres_free(struct lmql__wheres *w);

#endif
