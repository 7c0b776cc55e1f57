/*
** jsonschema.h -- JSON Schema as a grammar of the JSON texts it accepts.
**
** The grammar (grammar.h) derives exactly JSON texts that are valid under the
** schema, written as Python's json.dumps writes them by default (", " and
** ": " between items, no other whitespace) or, with free whitespace, with
** any JSON whitespace between tokens. A keyword this compiler cannot
** enforce is an error naming it, unless ignoring it cannot admit an
** invalid instance (annotations such as title or description): the grammar
** may refuse some valid instances, it never admits an invalid one.
*/
#ifndef LMQL_JSONSCHEMA_H
#define LMQL_JSONSCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include "grammar.h"
#include "lmql_int.h"

struct lmql_val;

struct lmql__js_opts {
    bool free_ws;        /* any JSON whitespace between tokens (default: json.dumps's separators only) */
};

/* Compile the schema (a parsed JSON value: dict, or True/False) into a
** grammar. o may be NULL (defaults). Returns the grammar, or NULL with e
** filled: LMQL_ERR_QUERY naming the keyword (and its JSON pointer in the
** schema, e.g. "/properties/age/minimum") and what is wrong, or
** LMQL_ERR_NOMEM. */
struct lmql_grammar *lmql__jsonschema_compile(const struct lmql_val *schema, const struct lmql__js_opts *o,
                                              struct lmql__err *e);

/* The same from the schema's JSON text (e.pos.offset: where in the text a
** syntax error is). */
struct lmql_grammar *lmql__jsonschema_compile_text(const char *text, size_t n, const struct lmql__js_opts *o,
                                                   struct lmql__err *e);

#endif
