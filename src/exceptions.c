/*
** Python's exceptions in query code: the built-in exception classes (as
** callables that make exception values and as `except` clause types), the
** Python class of a runtime error, and try/except/else/finally, raise and
** del statements.
**
** A runtime error is an error of the run (struct lmql__err) whose message
** names its Python class ("ValueError: ...", or a message Python gives a
** known class, "division by zero"). Only those can be caught: query and
** model errors, out of memory, the step limit, max_len and every other
** error of the engine itself pass through any `except`, so a program can
** never swallow a failure of the run it is part of.
*/
#include "interp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct exc_class {
    const char *name;
    int parent;                      /* index, -1 for BaseException */
};

/* Python's hierarchy, for the classes query code can meet: index, name,
** parent. JSONDecodeError (json.) and FrozenInstanceError (dataclasses.)
** are raised by modules and are no builtins. */
#define EXC_LIST(X) \
    X(0, BaseException, -1) X(1, Exception, 0) X(2, ArithmeticError, 1) X(3, ZeroDivisionError, 2) \
    X(4, OverflowError, 2) X(5, LookupError, 1) X(6, IndexError, 5) X(7, KeyError, 5) X(8, AssertionError, 1) \
    X(9, AttributeError, 1) X(10, NameError, 1) X(11, RuntimeError, 1) X(12, RecursionError, 11) \
    X(13, NotImplementedError, 11) X(14, TypeError, 1) X(15, ValueError, 1) X(16, JSONDecodeError, 15) \
    X(17, UnicodeError, 15) X(18, FrozenInstanceError, 9) X(19, StopIteration, 1) X(20, SyntaxError, 1)
#define EXC_CLASS(i, n, p) {#n, p},
static const struct exc_class CLASSES[] = {EXC_LIST(EXC_CLASS)};
#define N_CLASSES ((int)(sizeof CLASSES / sizeof *CLASSES))
enum { EXC_ZERODIV = 3, EXC_OVERFLOW = 4, EXC_INDEX = 6, EXC_ATTR = 9, EXC_NAME = 10, EXC_RECURSION = 12,
       EXC_TYPE = 14, EXC_VALUE = 15, EXC_JSON = 16, EXC_FROZEN = 18 };

static struct lmql_val *exc_new(void *ud, int argc, struct lmql_val **argv, const char **names,
                                struct lmql__err *err);

/* The builtins: static values, shared by every thread. */
#define EXC_FUNC(i, n, p) \
    {.kind = LMQL_V_FUNC, .refs = -1, .u.func = {.name = #n, .fn = exc_new, .ud = (void *)&CLASSES[i]}},
static struct lmql_val EXC_FUNCS[] = {EXC_LIST(EXC_FUNC)};

static int class_index(const char *name, size_t len) {
    for (int i = 0; i < N_CLASSES; i++)
        if (strlen(CLASSES[i].name) == len && !memcmp(CLASSES[i].name, name, len)) return i;
    return -1;
}

static bool is_subclass(int c, int base) {
    for (; c >= 0; c = CLASSES[c].parent)
        if (c == base) return true;
    return false;
}

/* ValueError("message") and friends: an exception value, its class the
** object's type and its str() the message (Python's str of the args). */
static struct lmql_val *exc_new(void *ud, int argc, struct lmql_val **argv, const char **names,
                                struct lmql__err *err) {
    const struct exc_class *c = ud;
    for (int i = 0; i < argc; i++)
        if (names[i]) return lmql__errp(err, "TypeError: %s() takes no keyword arguments", c->name);
    struct lmql__buf b = {0};
    int bad = 0;
    if (argc == 1) {
        bad = lmql__val_str_into(&b, argv[0]);
    } else if (argc > 1) {
        struct lmql_val *t = lmql__val_tuple((size_t)argc);
        for (int i = 0; t && i < argc; i++) lmql__list_push(t, lmql__val_ref(argv[i]));
        bad = !t || lmql__val_repr_into(&b, t);
        lmql__val_unref(t);
    }
    if (bad || lmql__buf_reserve(&b, 0)) {
        lmql__buf_free(&b);
        return lmql__errp(err, "out of memory");
    }
    struct lmql_val *v = lmql__val_obj(c->name, b.data, lmql__val_text_free);
    return v ? v : lmql__errp(err, "out of memory");
}

struct lmql_val *lmql__exc_builtin(const char *name) {
    int i = class_index(name, strlen(name));
    if (i < 0 || i == EXC_JSON || i == EXC_FROZEN) return NULL;
    LMQL_ASSERT(EXC_FUNCS[i].u.func.ud == &CLASSES[i]);
    return &EXC_FUNCS[i];
}

/* The class of an error of the run, or -1 when it cannot be caught. */
static int error_class(const struct lmql__err *e) {
    if (e->status != LMQL_ERR_RUNTIME) return -1;
    const char *m = e->msg;
    if (!strncmp(m, "in eval(): ", 11)) m += 11;   /* the error of the expression eval() ran */
    /* "Name: ...", "Name ..." or "Name", Name possibly dotted (json.JSONDecodeError) */
    size_t n = strcspn(m, ": ");
    const char *last = m;
    for (const char *p = m; p < m + n; p++)
        if (*p == '.') last = p + 1;
    int c = n ? class_index(last, n - (size_t)(last - m)) : -1;
    if (c >= 0) return c;
    static const struct { const char *text; int cls; bool prefix; } known[] = {
        {"division by zero", EXC_ZERODIV, false},
        {"integer division or modulo by zero", EXC_ZERODIV, false},
        {"float division by zero", EXC_ZERODIV, false},
        {"integer overflow", EXC_OVERFLOW, true},
        {"name '", EXC_NAME, true},
        {"maximum call depth", EXC_RECURSION, true},
    };
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (known[i].prefix ? !strncmp(m, known[i].text, strlen(known[i].text)) : !strcmp(m, known[i].text))
            return known[i].cls;
    static const struct { const char *text; int cls; } inside[] = {
        {"index out of range", EXC_INDEX},
        {"object has no attribute", EXC_ATTR},
        {"object is not", EXC_TYPE},
        {"object does not support", EXC_TYPE},
        {"not supported between", EXC_TYPE},
        {"unsupported operand", EXC_TYPE},
        {"bad operand type", EXC_TYPE},
        {"indices must be", EXC_TYPE},
        {"is not iterable", EXC_TYPE},
        {"requires a string", EXC_TYPE},
        {"can only extend", EXC_TYPE},
        {"got an unexpected keyword argument", EXC_TYPE},
        {"missing argument", EXC_TYPE},
        {"arguments but", EXC_TYPE},
        {"unhashable type", EXC_TYPE},
        {"cannot unpack", EXC_VALUE},
        {"slice step cannot be zero", EXC_VALUE},
        {"repetition too large", EXC_OVERFLOW},
        {"too large for an integer", EXC_OVERFLOW},
    };
    for (size_t i = 0; i < sizeof inside / sizeof *inside; i++)
        if (strstr(m, inside[i].text)) return inside[i].cls;
    return -1;
}

/* str() of a caught error: its message without the class name. */
static const char *error_text(const struct lmql__err *e, int cls) {
    const char *m = e->msg;
    if (!strncmp(m, "in eval(): ", 11)) m += 11;
    const char *c = strstr(m, CLASSES[cls].name);
    size_t n = strcspn(m, ": ");
    if (c && c < m + n) {
        m += n;
        if (*m == ':') m++;
        if (*m == ' ') m++;
    }
    return m;
}

/* Does the class of an except clause (a class, or a tuple of them) take
** class cls? -1 with the error set when it names no exception class. */
static int handler_matches(struct interp *I, const struct lmql_node *at, const struct lmql_val *spec, int cls) {
    if (spec->kind == LMQL_V_TUPLE) {
        for (size_t i = 0; i < spec->u.list.len; i++) {
            int r = handler_matches(I, at, spec->u.list.items[i], cls);
            if (r) return r;
        }
        return 0;
    }
    if (spec->kind == LMQL_V_FUNC && spec->u.func.fn == exc_new) {
        const struct exc_class *c = spec->u.func.ud;
        return is_subclass(cls, (int)(c - CLASSES)) ? 1 : 0;
    }
    return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: catching classes that do not inherit from BaseException "
                      "is not allowed");
}

static void clear_error(struct interp *I) { memset(I->err, 0, sizeof *I->err); }

/* Run the handler that takes the error in I->err (the body failed), if
** one does: 1 handled (rc in *rc), 0 not (the error stays). */
static int handle(struct interp *I, const struct lmql_node *s, int *rc) {
    int cls = error_class(I->err);
    if (cls < 0) return 0;
    struct lmql__err caught = *I->err;
    for (int32_t i = 0; i < s->u.try_.handlers.n; i++) {
        const struct lmql_node *h = s->u.try_.handlers.items[i];
        int m = 1;
        if (h->u.except_.type) {
            clear_error(I);   /* evaluating the clause's class may fail on its own */
            struct lmql_val *spec = lmql__eval(I, h->u.except_.type);
            m = spec ? handler_matches(I, h->u.except_.type, spec, cls) : -1;
            lmql__val_unref(spec);
            if (m < 0) { *rc = -1; return 1; }   /* that error replaces the one raised */
            *I->err = caught;
        }
        if (!m) continue;
        clear_error(I);
        if (h->u.except_.name) {
            char *text = lmql__strdup(error_text(&caught, cls));
            struct lmql_val *v = text ? lmql__val_obj(CLASSES[cls].name, text, lmql__val_text_free) : NULL;
            int r = v ? lmql__set_name(I, h->u.except_.name, v) : lmql__fail(I, h, LMQL_ERR_NOMEM, "out of memory");
            lmql__val_unref(v);
            if (r) { *rc = -1; return 1; }
        }
        const struct lmql__err *outer = I->handling;
        I->handling = &caught;   /* a bare `raise` in the handler raises it again */
        *rc = lmql__exec_block(I, &h->u.except_.body);
        I->handling = outer;
        return 1;
    }
    return 0;
}

int lmql__exec_try(struct interp *I, const struct lmql_node *s) {
    int rc = lmql__exec_block(I, &s->u.try_.body);
    if (rc && I->frontier) return -1;   /* a replay stopped: nothing was raised */
    if (rc) {
        if (handle(I, s, &rc) == 0) rc = -1;
    } else if (I->flow == FLOW_NORMAL) {
        rc = lmql__exec_block(I, &s->u.try_.orelse);
    }
    if (!s->u.try_.finalbody.n || (rc && I->frontier)) return rc;
    /* finally: runs with the outcome set aside, which it may replace (an
    ** error, a return, a break), as in Python. */
    struct lmql__err pending = *I->err;
    enum flow flow = I->flow;
    struct lmql_val *retval = I->retval;
    clear_error(I);
    I->flow = FLOW_NORMAL;
    I->retval = NULL;
    int r2 = lmql__exec_block(I, &s->u.try_.finalbody);
    if (r2 || I->flow != FLOW_NORMAL) {
        lmql__val_unref(retval);
        return r2;
    }
    *I->err = pending;
    I->flow = flow;
    I->retval = retval;
    return rc;
}

int lmql__exec_raise(struct interp *I, const struct lmql_node *s) {
    if (!s->u.raise_.exc) {
        if (!I->handling) return lmql__fail(I, s, LMQL_ERR_RUNTIME, "RuntimeError: No active exception to reraise");
        *I->err = *I->handling;
        return -1;
    }
    struct lmql_val *v = lmql__eval(I, s->u.raise_.exc);
    if (!v) return -1;
    if (s->u.raise_.cause) {   /* `from` names the cause; only its evaluation matters here */
        struct lmql_val *c = lmql__eval(I, s->u.raise_.cause);
        if (!c) { lmql__val_unref(v); return -1; }
        lmql__val_unref(c);
    }
    int rc;
    if (v->kind == LMQL_V_FUNC && v->u.func.fn == exc_new) {
        rc = lmql__fail(I, s, LMQL_ERR_RUNTIME, "%s", ((const struct exc_class *)v->u.func.ud)->name);
    } else if (v->kind == LMQL_V_OBJ && v->u.obj.free == lmql__val_text_free &&
               class_index(v->u.obj.type, strlen(v->u.obj.type)) >= 0) {
        const char *text = v->u.obj.ptr;
        rc = *text ? lmql__fail(I, s, LMQL_ERR_RUNTIME, "%s: %s", v->u.obj.type, text)
                   : lmql__fail(I, s, LMQL_ERR_RUNTIME, "%s", v->u.obj.type);
    } else {
        rc = lmql__fail(I, s, LMQL_ERR_RUNTIME, "TypeError: exceptions must derive from BaseException");
    }
    lmql__val_unref(v);
    return rc;
}

/* del NAME / del OBJ[KEY] / del LIST[I] */
static int del_one(struct interp *I, const struct lmql_node *t) {
    if (t->kind == LMQL_NODE_NAME) {
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)t->u.name, strlen(t->u.name)}};
        struct lmql_val *decl = I->decl ? lmql__dict_get(I->decl, &key) : NULL;
        struct lmql_val *scope = decl && decl->u.b ? I->globals : I->locals ? I->locals : I->globals;
        if (decl && !decl->u.b)
            return lmql__fail(I, t, LMQL_ERR_QUERY, "'del' of a nonlocal name is not supported");
        if (!lmql__dict_del(scope, &key))
            return lmql__fail(I, t, LMQL_ERR_RUNTIME, "name '%s' is not defined", t->u.name);
        return 0;
    }
    if (t->kind != LMQL_NODE_SUBSCRIPT)
        return lmql__fail(I, t, LMQL_ERR_QUERY, "'del' of an attribute is not supported (names and subscripts are)");
    if (t->u.sub.index && t->u.sub.index->kind == LMQL_NODE_SLICE)
        return lmql__fail(I, t, LMQL_ERR_QUERY, "'del' of a slice is not supported");
    struct lmql_val *obj = lmql__eval(I, t->u.sub.obj);
    if (!obj) return -1;
    struct lmql_val *k = lmql__eval(I, t->u.sub.index);
    int rc = k ? 0 : -1;
    if (rc == 0 && obj->kind == LMQL_V_DICT) {
        if (lmql__check_key(I, t->u.sub.index, k)) rc = -1;
        else if (!lmql__dict_del(obj, k)) {
            struct lmql__buf b = {0};
            lmql__val_repr_into(&b, k);
            rc = lmql__fail(I, t, LMQL_ERR_RUNTIME, "KeyError: %s", b.data ? b.data : "?");
            lmql__buf_free(&b);
        }
    } else if (rc == 0 && obj->kind == LMQL_V_LIST) {
        if (k->kind != LMQL_V_INT && k->kind != LMQL_V_BOOL) {
            rc = lmql__fail(I, t, LMQL_ERR_RUNTIME, "list indices must be integers, not %s", lmql__val_type_name(k));
        } else {
            int64_t i = k->kind == LMQL_V_BOOL ? k->u.b : k->u.i, n = (int64_t)obj->u.list.len;
            if (i < 0) i += n;
            if (i < 0 || i >= n) {
                rc = lmql__fail(I, t, LMQL_ERR_RUNTIME, "list assignment index out of range");
            } else {
                lmql__val_unref(obj->u.list.items[i]);
                memmove(obj->u.list.items + i, obj->u.list.items + i + 1,
                        (size_t)(n - i - 1) * sizeof *obj->u.list.items);
                obj->u.list.len--;
            }
        }
    } else if (rc == 0) {
        rc = lmql__fail(I, t, LMQL_ERR_RUNTIME, "'%s' object doesn't support item deletion", lmql__val_type_name(obj));
    }
    lmql__val_unref(k);
    lmql__val_unref(obj);
    return rc;
}

int lmql__exec_del(struct interp *I, const struct lmql_node *s) {
    for (int32_t i = 0; i < s->u.del.n; i++)
        if (del_one(I, s->u.del.items[i])) return -1;
    return 0;
}
