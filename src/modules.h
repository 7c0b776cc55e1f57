/*
** Standard modules for query code: json and math (modules.c), re
** (modules_re.c, over regex_match.h). dataclasses,
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

/* ---- re (modules_re.c) ---- */

/* The module functions; ud is one of these. */
enum { RE_SEARCH, RE_MATCH, RE_FULLMATCH, RE_FINDALL, RE_FINDITER, RE_SUB, RE_SUBN, RE_SPLIT, RE_COMPILE, RE_ESCAPE,
       RE_PURGE };
struct lmql_val *lmql__re_fn(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err);

/* Is v a Pattern or Match object; their attributes and bound methods (a
** new reference, or NULL with err set); m[g] of a Match. */
bool lmql__re_is_obj(const struct lmql_val *v);
struct lmql_val *lmql__re_attr(struct lmql_val *obj, const char *name, struct lmql__err *err);
struct lmql_val *lmql__re_getitem(struct lmql_val *obj, struct lmql_val *key, struct lmql__err *err);

/* re.sub/subn (module function or bound Pattern method) may take a function
** as replacement: the interpreter calls it through `call`, which returns a
** new reference or NULL (the interpreter's error is then already set, and
** err stays empty). */
typedef struct lmql_val *(*lmql__re_caller)(void *ctx, struct lmql_val *fn, struct lmql_val *arg);
bool lmql__re_is_sub(const struct lmql_val *fn);
struct lmql_val *lmql__re_sub_call(const struct lmql_val *fn, int argc, struct lmql_val **argv, const char **names,
                                   lmql__re_caller call, void *ctx, struct lmql__err *err);

#endif
