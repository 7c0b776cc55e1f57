/*
** The last step of a run: its results must convert to JSON. Python's json
** refuses a circular structure; here a cycle could not even be freed once
** the run's registry has let the results go (value.h), so a result with a
** cycle fails the run while the registry can still collect it.
*/
#include "interp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_one(const struct lmql_val *v, const char *what, const char *name, struct lmql__err *err) {
    if (!v) return 0;
    struct lmql__buf b = {0};
    int rc = lmql__val_json_into(&b, v);
    lmql__buf_free(&b);
    if (!rc) return 0;
    const char *why = lmql__val_error();
    memset(err, 0, sizeof *err);
    if (!why) {
        err->status = LMQL_ERR_NOMEM;
        snprintf(err->msg, sizeof err->msg, "out of memory");
    } else {
        err->status = LMQL_ERR_RUNTIME;
        snprintf(err->msg, sizeof err->msg, "%s%s%s cannot be returned as JSON: %s: %s", what, name ? " " : "",
                 name ? name : "", strstr(why, "Circular") ? "ValueError" : "RecursionError", why);
    }
    return -1;
}

/* *slot as its JSON shows it; -1 when out of memory. */
static int make_plain(struct lmql_val **slot, struct lmql__err *err) {
    if (!*slot) return 0;
    struct lmql_val *p = lmql__val_plain(*slot);
    if (!p) return lmql__err_nomem(err);
    lmql__val_unref(*slot);
    *slot = p;
    return 0;
}

int lmql__results_check(struct lmql__run_out *out, struct lmql__err *err) {
    for (int i = 0; out->seqs && i < out->n_seqs; i++) {
        struct lmql__seq_result *s = &out->seqs[i];
        if (check_one(s->ret, "the return value", NULL, err)) return -1;
        if (check_one(s->dist_values, "the distribution", NULL, err)) return -1;
        for (size_t k = 0; s->vars && k < s->vars->u.dict.len; k++) {
            const struct lmql_val *key = s->vars->u.dict.keys[k];
            if (check_one(s->vars->u.dict.vals[k], "the variable", key->kind == LMQL_V_STR ? key->u.str.s : "?", err))
                return -1;
        }
        if (make_plain(&s->ret, err)) return -1;
        for (size_t k = 0; s->vars && k < s->vars->u.dict.len; k++)
            if (make_plain(&s->vars->u.dict.vals[k], err)) return -1;
    }
    return 0;
}

void lmql__seq_result_free(struct lmql__seq_result *r) {
    lmql__buf_free(&r->prompt);
    lmql__val_unref(r->vars);
    lmql__val_unref(r->ret);
    lmql__val_unref(r->dist_values);
    memset(r, 0, sizeof *r);
}

void lmql__run_out_free(struct lmql__run_out *out) {
    for (int i = 0; out->seqs && i < out->n_seqs; i++) lmql__seq_result_free(&out->seqs[i]);
    free(out->seqs);
    memset(out, 0, sizeof *out);
}
