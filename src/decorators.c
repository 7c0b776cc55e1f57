/*
** Hole decorators as LMQL has them (docs/language/decorators.md):
** [@a @b @c X] calls
**   - pre decorators (@lmql.decorators.pre) before generating, a, b, c in
**     order, each given the variable (and the context) and the previous
**     one's result: the variable to generate, or a string to use as value;
**   - streaming decorators (@lmql.decorators.streaming) with the value so
**     far: twice with "" first, once per token, once with the whole value
**     (LMQL's calls, which its own tests record);
**   - any other callable after generating, c, b, a in reverse, with the
**     value (and the prompt text and context when it takes them): it
**     returns the new value, or (value, prompt_text); the prompt shows
**     str(value) unless a prompt text was given.
*/
#include "decorators.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The variable a pre decorator sees: variable.name (LMQL's TemplateVariable). */
struct lmql_val *lmql__template_variable(const char *name) {
    return lmql__val_obj("TemplateVariable", (void *)name, NULL);
}

static int fn_flags(const struct lmql_val *f) { return f->kind == LMQL_V_FUNC ? (int)f->u.func.flags : 0; }

int lmql__decos_eval(struct interp *I, const struct lmql_node *seg, struct lmql__decos *d) {
    memset(d, 0, sizeof *d);
    const struct lmql_node_list *l = &seg->u.hole.decorators;
    if (!l->n) return 0;
    d->fns = lmql__calloc((size_t)l->n, sizeof *d->fns);
    if (!d->fns) return lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < l->n; i++) {
        struct lmql_val *f = lmql__eval(I, l->items[i]);
        if (!f) return -1;
        d->fns[d->n++] = f;
        if (f->kind != LMQL_V_FUNC && f->kind != LMQL_V_CLASS)
            return lmql__fail(I, l->items[i], LMQL_ERR_RUNTIME, "the decorator of %s is a %s, not a function",
                              seg->u.hole.name, lmql__val_type_name(f));
        d->n_stream += (fn_flags(f) & LMQL_FUNC_STREAMING) != 0;
    }
    return 0;
}

void lmql__decos_free(struct lmql__decos *d) {
    for (int i = 0; i < d->n; i++) lmql__val_unref(d->fns[i]);
    free(d->fns);
    memset(d, 0, sizeof *d);
}

/* The number of parameters a script function takes (builtins: 1). */
static int arity(const struct lmql_val *f) {
    if (f->kind != LMQL_V_FUNC || f->u.func.fn) return 1;
    const struct lmql_node *def = f->u.func.ud;
    int n = def->u.def.params.n - ((f->u.func.flags & LMQL_FUNC_BOUND) != 0);
    return n < 1 ? 1 : n;
}

/* f(args[0], ..., args[k-1]) with k the most of n_avail it takes. */
static struct lmql_val *call_up_to(struct interp *I, const struct lmql_node *at, struct lmql_val *f,
                                   struct lmql_val **args, int n_avail) {
    int k = arity(f);
    if (k > n_avail) k = n_avail;
    const char *names[3] = {NULL, NULL, NULL};
    return lmql__call(I, at, f, k, args, names);
}

int lmql__decos_pre(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d,
                    struct lmql_val **fixed) {
    *fixed = NULL;
    struct lmql_val *var = NULL, *cur = NULL;   /* both owned */
    for (int i = 0; i < d->n; i++) {
        if (!(fn_flags(d->fns[i]) & LMQL_FUNC_PRE)) continue;
        if (!var) {
            if (!(var = lmql__template_variable(seg->u.hole.name))) return lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
            cur = lmql__val_ref(var);
        }
        struct lmql_val *args[2] = {cur, lmql__builtin("context")};
        struct lmql_val *r = call_up_to(I, seg, d->fns[i], args, 2);
        lmql__val_unref(cur);
        cur = r;
        if (!cur) {
            lmql__val_unref(var);
            return -1;
        }
    }
    int rc = 0;
    if (cur && cur->kind == LMQL_V_STR) *fixed = lmql__val_ref(cur);
    else if (cur && !(cur->kind == LMQL_V_OBJ && !strcmp(cur->u.obj.type, "TemplateVariable")))
        rc = lmql__fail(I, seg, LMQL_ERR_RUNTIME,
                        "a pre decorator of %s returns the variable (generate it) or a string (its value), not %s",
                        seg->u.hole.name, lmql__val_type_name(cur));
    lmql__val_unref(cur);
    lmql__val_unref(var);
    return rc;
}

void lmql__decos_stream(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, const char *text,
                        size_t len) {
    if (!d->n_stream || I->err->msg[0]) return;
    struct lmql_val *s = lmql__val_str(text, len);
    if (!s) {
        lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        return;
    }
    for (int i = 0; i < d->n && !I->err->msg[0]; i++) {
        if (!(fn_flags(d->fns[i]) & LMQL_FUNC_STREAMING)) continue;
        struct lmql_val *args[2] = {s, lmql__builtin("context")};
        lmql__val_unref(call_up_to(I, seg, d->fns[i], args, 2));
    }
    lmql__val_unref(s);
}

int lmql__decos_post(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, struct lmql_val **v,
                     struct lmql__buf *shown) {
    for (int i = d->n - 1; i >= 0; i--) {
        if (fn_flags(d->fns[i]) & (LMQL_FUNC_PRE | LMQL_FUNC_STREAMING)) continue;
        struct lmql_val *prompt = lmql__val_str(shown->data ? shown->data : "", shown->len);
        if (!prompt) return lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        struct lmql_val *args[3] = {*v, prompt, lmql__builtin("context")};
        struct lmql_val *r = call_up_to(I, seg, d->fns[i], args, 3);
        lmql__val_unref(prompt);
        if (!r) return -1;
        /* (value, prompt_text), or a value shown as str(value) */
        struct lmql_val *nv = r, *text = NULL;
        if (r->kind == LMQL_V_TUPLE && r->u.list.len == 2 && r->u.list.items[1]->kind == LMQL_V_STR) {
            nv = r->u.list.items[0];
            text = r->u.list.items[1];
        }
        shown->len = 0;
        int rc = text ? lmql__buf_add(shown, text->u.str.s, text->u.str.len) : lmql__val_str_into(shown, nv);
        struct lmql_val *keep = lmql__val_ref(nv);
        lmql__val_unref(r);
        if (rc) {
            lmql__val_unref(keep);
            return text ? lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory") : lmql__val_fail(I, seg);
        }
        lmql__val_unref(*v);
        *v = keep;
    }
    return 0;
}

/* lmql.decorators.pre / .streaming: the function, marked. */
struct lmql_val *lmql__decorator_mark(const struct lmql_val *f, unsigned flag, struct lmql__err *err) {
    if (f->kind != LMQL_V_FUNC) {
        snprintf(err->msg, sizeof err->msg, "TypeError: lmql.decorators.%s takes a function, not %s",
                 flag == LMQL_FUNC_PRE ? "pre" : "streaming", lmql__val_type_name(f));
        err->status = LMQL_ERR_RUNTIME;
        return NULL;
    }
    struct lmql_val *m = lmql__val_builtin(f->u.func.name, f->u.func.fn, f->u.func.ud, f->u.func.self);
    if (!m) {
        lmql__err_nomem(err);
        return NULL;
    }
    m->u.func.flags = f->u.func.flags | flag;
    m->u.func.env = lmql__val_ref(f->u.func.env);
    return m;
}
