/*
** The builtins that need the interpreter: eval() parses and evaluates an
** expression in the caller's scope; sorted/min/max with key=, map and
** filter call a function of the query for each item.
*/
#include "interp_int.h"
#include "parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- builtins that call functions: sorted/min/max with key=, map, filter */

/* Merge sort of idx[0..n) by keys (stable); *bad set when two keys do not
** compare. Returns -1 when memory runs out. */
static int sort_by_keys(struct lmql_val **keys, size_t *idx, size_t n, bool reverse, bool *bad) {
    size_t *tmp = lmql__malloc((n ? n : 1) * sizeof *tmp);
    if (!tmp) return -1;
    for (size_t w = 1; w < n && !*bad; w *= 2) {
        for (size_t lo = 0; lo < n && !*bad; lo += 2 * w) {
            size_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n, i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                int c = lmql__val_compare(keys[idx[j]], keys[idx[i]]);
                if (c == -2) { *bad = true; break; }
                /* take from the right only when it is strictly first: stable */
                tmp[k++] = (reverse ? c > 0 : c < 0) ? idx[j++] : idx[i++];
            }
            while (i < mid) tmp[k++] = idx[i++];
            while (j < hi) tmp[k++] = idx[j++];
            memcpy(idx + lo, tmp + lo, (hi - lo) * sizeof *idx);
        }
    }
    free(tmp);
    return 0;
}

/* sorted(it, key=f, reverse=b) (f may be absent), min/max(it or a, b, ..., key=f), map(f, it),
** filter(f or None, it): map and filter give lists. */
static struct lmql_val *call_with_fn(struct interp *I, const struct lmql_node *at, const char *name, int argc,
                                     struct lmql_val **argv, const char **names) {
    struct lmql_val *fn = NULL, *src = NULL;
    bool reverse = false, is_map = !strcmp(name, "map"), is_filter = !strcmp(name, "filter");
    int np = 0;
    while (np < argc && !names[np]) np++;
    for (int i = np; i < argc; i++) {
        if (!strcmp(names[i], "key") && !is_map && !is_filter) fn = argv[i];
        else if (!strcmp(names[i], "reverse") && name[0] == 's') reverse = lmql__val_truthy(argv[i]);
        else {
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() got an unexpected keyword argument '%s'", name, names[i]);
            return NULL;
        }
    }
    struct lmql_val *items = NULL;
    if (is_map || is_filter) {
        if (np != 2) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes a function and one iterable", name), NULL;
        fn = argv[0]->kind == LMQL_V_NONE && is_filter ? NULL : argv[0];
        src = argv[1];
    } else if (name[0] == 's' || np == 1) {
        if (np != 1) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes one iterable", name), NULL;
        src = argv[0];
    } else {   /* min(a, b, ..., key=f) */
        if (np < 2) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() expected at least 1 argument", name), NULL;
        items = lmql__val_list((size_t)np);
        for (int i = 0; items && i < np; i++) lmql__list_push(items, lmql__val_ref(argv[i]));
        if (!items) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
    }
    if (src && !(items = lmql__iter_list(NULL, NULL, src)))
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: '%s' object is not iterable", lmql__val_type_name(src)),
               NULL;
    size_t n = items->u.list.len;
    struct lmql_val **keys = lmql__calloc(n ? n : 1, sizeof *keys), *out = NULL;
    size_t *idx = lmql__malloc((n ? n : 1) * sizeof *idx);
    if (!keys || !idx) {
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        idx[i] = i;
        struct lmql_val *x = items->u.list.items[i];
        keys[i] = fn ? lmql__call(I, at, fn, 1, &x, (const char *[]){NULL}) : lmql__val_ref(x);
        if (!keys[i]) goto done;
    }
    if (is_map || is_filter) {
        out = lmql__val_list(n);
        for (size_t i = 0; out && i < n; i++)
            if (is_map) lmql__list_push(out, lmql__val_ref(keys[i]));
            else if (lmql__val_truthy(keys[i])) lmql__list_push(out, lmql__val_ref(items->u.list.items[i]));
        if (!out) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        goto done;
    }
    if (n == 0 && name[0] == 'm') {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "ValueError: %s() arg is an empty sequence", name);
        goto done;
    }
    bool bad = false;
    if (name[0] == 's') {
        if (sort_by_keys(keys, idx, n, reverse, &bad)) { lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); goto done; }
    } else {
        /* the first of the least (min) or greatest (max) keys, as Python */
        for (size_t i = 1; i < n && !bad; i++) {
            int c = lmql__val_compare(keys[i], keys[idx[0]]);
            bad = c == -2;
            if (name[1] == 'i' ? c < 0 : c > 0) idx[0] = i;
        }
    }
    if (bad) {
        if (lmql__val_error()) lmql__val_fail(I, at);
        else lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s(): the %s cannot be compared", name, fn ? "keys" : "values");
        goto done;
    }
    if (name[0] != 's') {
        out = lmql__val_ref(items->u.list.items[idx[0]]);
        goto done;
    }
    out = lmql__val_list(n);
    for (size_t i = 0; out && i < n; i++) lmql__list_push(out, lmql__val_ref(items->u.list.items[idx[i]]));
    if (!out) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
done:
    for (size_t i = 0; keys && i < n; i++) lmql__val_unref(keys[i]);
    free(keys);
    free(idx);
    lmql__val_unref(items);
    return out;
}

static bool has_kw(int argc, const char **names, const char *kw) {
    for (int i = 0; i < argc; i++)
        if (names[i] && !strcmp(names[i], kw)) return true;
    return false;
}

/* eval(EXPR): the text parsed as one expression of the query language and
** evaluated in the caller's scope (the calculator of LMQL's tool-use
** examples). Nothing but an expression is accepted: no statements, no
** holes. An error inside it is reported at the call, naming eval(). */
static struct lmql_val *eval_text(struct interp *I, const struct lmql_node *at, int argc, struct lmql_val **argv,
                                  const char **names) {
    if (argc != 1 || names[0]) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: eval() takes one string (globals and locals are not supported)");
        return NULL;
    }
    if (argv[0]->kind != LMQL_V_STR) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: eval() arg 1 must be a string, not %s",
                   lmql__val_type_name(argv[0]));
        return NULL;
    }
    static const char head[] = "__lmql_eval__ = (", tail[] = "\n)";
    struct lmql__buf src = {0};
    if (lmql__buf_adds(&src, head) || lmql__buf_add(&src, argv[0]->u.str.s, argv[0]->u.str.len) ||
        lmql__buf_adds(&src, tail)) {
        lmql__buf_free(&src);
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    struct lmql_arena a;
    lmql__arena_init(&a);
    struct lmql_diags d;
    lmql__diags_init(&d);
    struct lmql_ast_query *q = lmql__parse_query(&a, src.data, src.len, "<string>", &d, NULL);
    struct lmql_val *out = NULL;
    const struct lmql_node *st = q && q->body.n + q->prologue.n == 1
                                     ? (q->body.n ? q->body.items[0] : q->prologue.items[0]) : NULL;
    if (!q || d.oom) {
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    } else if (d.n) {
        const struct lmql_diag *g = &d.items[0];
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "SyntaxError in eval(): %s (at character %zu)", g->msg,
                   g->offset >= sizeof head - 1 ? g->offset - (sizeof head - 1) : 0);
    } else if (!st || st->kind != LMQL_NODE_ASSIGN || st->u.assign.targets.n != 1 || (q->decoder && strcmp(q->decoder, "__dynamic__")) || q->from ||
               q->where || q->distribution || q->query_defs.n) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "SyntaxError: eval() takes one expression");
    } else if (!(out = lmql__eval(I, st->u.assign.value)) && I->err->msg[0]) {
        /* the expression's positions are in the string: report at the call */
        char msg[sizeof I->err->msg];
        snprintf(msg, sizeof msg, "%s", I->err->msg);
        snprintf(I->err->msg, sizeof I->err->msg, "in eval(): %.1000s", msg);
        I->err->pos = at->pos;
    }
    lmql__diags_free(&d);
    lmql__arena_free(&a);
    lmql__buf_free(&src);
    return out;
}

/* locals() and globals(): copies of the scopes (Python's globals() is the
** live dict; writing to this one changes nothing). At the top level the
** query's globals are the names the prologue bound (I->module_names),
** its locals the arguments and the names the body bound. */
static struct lmql_val *scope_dict(struct interp *I, const struct lmql_node *at, const char *name, int argc) {
    if (argc) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes no arguments (%d given)", name, argc), NULL;
    bool want_locals = name[0] == 'l';
    struct lmql_val *out = lmql__val_dict(), *src = want_locals && I->locals ? I->locals : I->globals;
    if (!out) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
    for (size_t i = 0; i < src->u.dict.len; i++) {
        struct lmql_val *k = src->u.dict.keys[i];
        if (src == I->globals && I->module_names) {
            /* a module name is a global; in a def, every top-level name is
            ** one (the query's locals are no def's globals, but our defs
            ** see them, so they are listed with the globals there) */
            bool global = I->locals || lmql__dict_get(I->module_names, k);
            if (global == want_locals) continue;
        }
        if (lmql__dict_set(out, lmql__val_ref(k), lmql__val_ref(src->u.dict.vals[i]))) {
            lmql__val_unref(out);
            return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
        }
    }
    return out;
}

struct lmql_val *lmql__call_interp_builtin(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                                           struct lmql_val **argv, const char **names, bool *handled) {
    /* fn is one of builtins.c's static builtins: its name says which */
    const char *name = fn->u.func.name;
    *handled = true;
    if (!strcmp(name, "eval")) return eval_text(I, at, argc, argv, names);
    if (!strcmp(name, "locals") || !strcmp(name, "globals")) return scope_dict(I, at, name, argc);
    /* sorted() always: a stable merge sort (an insertion sort was quadratic on long lists) */
    if (!strcmp(name, "map") || !strcmp(name, "filter") || !strcmp(name, "sorted") ||
        ((!strcmp(name, "min") || !strcmp(name, "max")) && has_kw(argc, names, "key")))
        return call_with_fn(I, at, name, argc, argv, names);
    *handled = false;
    return NULL;
}
