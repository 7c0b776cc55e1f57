/*
** Hole decorators: [@pre_fn @stream_fn @post_fn X] (decorators.c says
** which stage calls which, in what order and with what).
*/
#ifndef LMQL_DECORATORS_H
#define LMQL_DECORATORS_H

#include "interp_int.h"

/* The decorators of one hole, evaluated. */
struct lmql__decos {
    struct lmql_val **fns;
    int n, n_stream;
};

/* Evaluate seg's decorator expressions. 0, or -1 with the error in I
** (free d either way). */
int lmql__decos_eval(struct interp *I, const struct lmql_node *seg, struct lmql__decos *d);
void lmql__decos_free(struct lmql__decos *d);

/* The pre stage: *fixed is a value to use instead of generating (a new
** reference), or NULL to generate. 0 or -1. */
int lmql__decos_pre(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d,
                    struct lmql_val **fixed);

/* The streaming stage with the value so far; an error stays in I. */
void lmql__decos_stream(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, const char *text,
                        size_t len);

/* The post stage: *v (owned) and the prompt text in shown are replaced by
** each decorator's result. 0 or -1. */
int lmql__decos_post(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, struct lmql_val **v,
                     struct lmql__buf *shown);

/* LMQL's variable object for pre decorators (variable.name). */
struct lmql_val *lmql__template_variable(const char *name);

/* lmql.decorators.pre / .streaming applied to f. */
struct lmql_val *lmql__decorator_mark(const struct lmql_val *f, unsigned flag, struct lmql__err *err);

#endif
