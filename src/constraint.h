/*
** The `where` clause: LMQL's constraints as exact token masks.
**
** For the hole being generated, its plan (compiled with the program,
** where.h) becomes a tree of operators over the hole's text (and/or/not,
** token and character lengths, phrase lists, substrings, regexes, INT,
** STARTS_WITH) with the values its expressions have now. At each step the
** tree gives the set of tokens whose bytes keep it satisfiable, and
** whether the value may end here (EOS). Token sets come from walks of the
** vocabulary trie. Stop phrases are collected alongside. Parts that do not
** mention the hole are evaluated as script values; ones naming holes not
** generated yet do not constrain.
*/
#ifndef LMQL_CONSTRAINT_H
#define LMQL_CONSTRAINT_H

#include "ast.h"
#include "decode.h"
#include "value.h"
#include "where.h"

struct lmql_trie;

/* What instantiating needs from the interpreter: the model (vocabulary,
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

/* The constraints of hole `var` now: its plan (where.h) with the values
** of the expressions it names. Returns 0 and *out (free with
** lmql__cons_free), or -1 with e filled: a value that does not fit
** (LMQL_ERR_QUERY, with its position), or LMQL_ERR_NOMEM. */
int lmql__cons_new(const struct lmql__where *w, const char *var, const struct lmql__cons_env *env,
                   struct lmql__cons **out, struct lmql__err *e);
void lmql__cons_free(struct lmql__cons *c);

/* The mask after the value's bytes so far and n_tokens generated tokens:
** mask[t] for tokens with text (0 for others), *eos_ok whether the value
** may end. A constraint already violated allows only the end, as in LMQL
** (violations end the variable, they are not errors). Returns 0, or -1
** when out of memory. */
int lmql__cons_mask(struct lmql__cons *c, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask,
                    bool *eos_ok);

/* What the value becomes afterwards (LMQL_POST_*). */
unsigned lmql__cons_post(const struct lmql__cons *c);

/* The rules for lmql__generate, backed by the compiled constraints. */
void lmql__cons_rules(struct lmql__cons *c, struct lmql__hole_rules *r);

#endif
