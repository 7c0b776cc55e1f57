/*
** JSON text to runtime values (value.h does the other direction).
*/
#ifndef LMQL_JSON_H
#define LMQL_JSON_H

#include "value.h"

/* Parse one JSON value (RFC 8259; surrounding whitespace allowed). Objects
** become dicts, arrays lists, numbers ints when they have no fraction or
** exponent and fit in 64 bits. Returns a new reference, or NULL with err
** saying what is wrong and at which byte. Nesting is limited to 256. */
struct lmql_val *lmql__json_parse(const char *text, size_t len, struct lmql__err *err);

/* Whether every number in the JSON text (valid JSON) has a value
** lmql__json_parse can give: integers within 64 bits; others a finite
** double, and not 0 unless they are 0 (a fraction with more digits than a
** double holds becomes the nearest double, as Python's json.loads makes
** it). Returns 0, or -1 with *at and *n set to the first number that has
** none. */
int lmql__json_numbers_fit(const char *text, size_t len, size_t *at, size_t *n);

#endif
