/*
** The `where` clause: LMQL's constraints as exact token masks.
**
** For the hole being generated, the where expressions (global and inline)
** compile into a tree of operators over the hole's text (and/or/not,
** token and character lengths, phrase lists, substrings, regexes, INT,
** STARTS_WITH). At each step the tree gives the set of tokens whose bytes
** keep it satisfiable, and whether the value may end here (EOS). Token
** sets come from walks of the vocabulary trie. Stop phrases and the
** post-processing operators (ERASE, ESCAPED, INT's conversion) are
** collected alongside. Parts that do not mention the hole are evaluated as
** script values; ones naming holes not generated yet do not constrain.
*/
#ifndef LMQL_CONSTRAINT_H
#define LMQL_CONSTRAINT_H

#include "ast.h"
#include "decode.h"
#include "value.h"

struct lmql_trie;

/* A problem in a where clause: where and what. */
struct lmql__cerr {
    struct lmql_pos pos;
    char msg[512];
    int status;   /* 0: the query is wrong; else the lmql_status of a failure that is not its fault */
};

/* Reject what LMQL rejects in constraints (<=, >=, !=, chained
** comparisons, method calls on variables) and what this version cannot
** enforce. Returns 0, or -1 with e filled. */
int lmql__where_check(const struct lmql_node *where, struct lmql__cerr *e);
/* Check every where clause of a query and of the queries inside it (inline
** ones, in branches that never run too; @lmql.query functions), in source
** order, once, when it is compiled: the first error, or 0. */
int lmql__where_check_all(const struct lmql_ast_query *q, struct lmql__cerr *e);

/* What compiling needs from the interpreter: the model (vocabulary,
** tokenizer, trie) and the value of an expression that does not involve
** the hole. eval returns a new reference, or NULL with *unknown set when
** the expression names a variable that has no value yet, or NULL with
** *unknown clear on an error (the interpreter has recorded it). */
struct lmql__cons_env {
    struct lmql__model *model;
    struct lmql_val *(*eval)(void *ctx, const struct lmql_node *n, bool *unknown);
    void *ctx;
};

struct lmql__cons;

/* Compile the constraints on hole `var`. NULL entries of wheres are
** skipped. Returns 0 and *out (free with lmql__cons_free), or -1 with e. */
int lmql__cons_compile(const struct lmql_node *const *wheres, int n, const char *var, const struct lmql__cons_env *env,
                       struct lmql__cons **out, struct lmql__cerr *e);
void lmql__cons_free(struct lmql__cons *c);

/* Make the hole an integer ([X: int]). */
int lmql__cons_add_int(struct lmql__cons *c);
/* Add a regex the whole value must match ([X: r"..."]). */
int lmql__cons_add_regex(struct lmql__cons *c, const struct lmql_node *pattern, struct lmql__cerr *e);

/* The mask after the value's bytes so far and n_tokens generated tokens:
** mask[t] for tokens with text (0 for others), *eos_ok whether the value
** may end. A constraint already violated allows only the end, as in LMQL
** (violations end the variable, they are not errors). Returns 0, or -1
** when out of memory. */
int lmql__cons_mask(struct lmql__cons *c, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask,
                    bool *eos_ok);

/* Post-processing the where clause asks for. */
enum {
    LMQL_POST_INT = 1,       /* the value becomes an int */
    LMQL_POST_ERASE = 2,     /* the value stays, its prompt text is "" */
    LMQL_POST_ESCAPED = 4,   /* \n and \t in the prompt text become \\n, \\t */
};
unsigned lmql__cons_post(const struct lmql__cons *c);

/* The rules for lmql__generate, backed by the compiled constraints. */
void lmql__cons_rules(struct lmql__cons *c, struct lmql__hole_rules *r);

#endif
