/*
** The `where` clause: checks of the forms LMQL rejects, and the rules it
** sets for one hole (token budget, stop phrases).
*/
#ifndef LMQL_CONSTRAINTS_H
#define LMQL_CONSTRAINTS_H

#include "ast.h"
#include "decode.h"

#define LMQL_MAX_STOPS 32

struct lmql__rules {
    struct lmql__hole_rules r;
    struct lmql__stop stops[LMQL_MAX_STOPS];
    bool int_value;          /* INT(X) / [X: int]: the value becomes a number */
};

/* Make the hole an integer: digits only (one leading space allowed, as
** tokenizers put spaces in front of words), at least one digit. */
void lmql__rules_set_int(struct lmql__rules *r);

/* A problem in a where clause: where and what. */
struct lmql__cerr {
    struct lmql_pos pos;
    char msg[512];
};

/* Reject what LMQL rejects in constraints (<=, >=, !=, chained
** comparisons, method calls) and what this version cannot enforce.
** Returns 0, or -1 with e filled. */
int lmql__where_check(const struct lmql_node *where, struct lmql__cerr *e);

/* The rules for hole `var` under the given where expressions (NULLs are
** skipped). Returns 0, or -1 with e filled. */
int lmql__where_rules(const struct lmql_node *const *wheres, int n, const char *var, struct lmql__rules *out,
                      struct lmql__cerr *e);

#endif
