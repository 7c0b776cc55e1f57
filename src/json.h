/*
** JSON text to runtime values (value.h does the other direction).
*/
#ifndef LMQL_JSON_H
#define LMQL_JSON_H

#include "value.h"

/* Parse one JSON value (RFC 8259; surrounding whitespace allowed). Objects
** become dicts, arrays lists, numbers ints when they have no fraction or
** exponent and fit in 64 bits, floats when a double holds them, else
** exact numbers (lmql__val_num; json.c says when). Returns a new reference, or NULL with err
** saying what is wrong and at which byte. Nesting is limited to 256. */
struct lmql_val *lmql__json_parse(const char *text, size_t len, struct lmql__err *err);

/* The same, with every number an int64 does not hold made the nearest
** double (inf beyond its range), as Python's json.loads reads fractions:
** for JSON Schemas, whose bounds the schema compiler takes as doubles, and
** for the protocol's replies. */
struct lmql_val *lmql__json_parse_doubles(const char *text, size_t len, struct lmql__err *err);


#endif
