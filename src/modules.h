/*
** Standard modules for query code: json and math (modules.c). dataclasses,
** typing and lmql are class.c's and builtins.c's.
*/
#ifndef LMQL_MODULES_H
#define LMQL_MODULES_H

#include "value.h"

/* The module `name` (a static value), or NULL when it is not one of these. */
struct lmql_val *lmql__std_module(const char *name);
bool lmql__is_std_module(const struct lmql_val *v);

/* A member of such a module (static), or NULL. */
struct lmql_val *lmql__std_module_attr(const struct lmql_val *mod, const char *name);

/* Its members' names, comma separated, for errors. */
void lmql__std_module_list(const struct lmql_val *mod, struct lmql__buf *out);

#endif
