/*
** Builtin functions, methods of str/list/dict, the `lmql` module, and
** calls of functions defined in a query.
*/
#include "constraint.h"
#include "decorators.h"
#include "interp_int.h"
#include "modules.h"
#include "parse.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static bool intlike(const struct lmql_val *v) { return v->kind == LMQL_V_INT || v->kind == LMQL_V_BOOL; }
static int64_t ival(const struct lmql_val *v) { return v->kind == LMQL_V_INT ? v->u.i : v->u.b; }

static int n_positional(int argc, const char **names) {
    int k = 0;
    for (int i = 0; i < argc; i++) k += names[i] == NULL;
    return k;
}

/* ---------------------------------------------------------- functions -- */

/* A failed equality/ordering/str/repr of values: why (value.h), in err. */
static struct lmql_val *val_berr(struct lmql__err *err) {
    const char *e = lmql__val_error();
    if (!e) return NULL;   /* out of memory */
    return lmql__errp(err, "%s: %s", strstr(e, "Circular") ? "ValueError" : "RecursionError", e);
}

static struct lmql_val *to_str(struct lmql_val *v, struct lmql__err *err) {
    struct lmql__buf b = {0};
    if (lmql__val_str_into(&b, v)) { lmql__buf_free(&b); return val_berr(err); }
    struct lmql_val *s = lmql__val_str(b.data ? b.data : "", b.len);
    lmql__buf_free(&b);
    return s;
}

static struct lmql_val *parse_int(const char *s, size_t len, struct lmql__err *err) {
    char tmp[64];
    while (len && isspace((unsigned char)*s)) s++, len--;
    while (len && isspace((unsigned char)s[len - 1])) len--;
    if (len == 0 || len >= sizeof tmp) return lmql__errp(err, "invalid literal for int()");
    memcpy(tmp, s, len);
    tmp[len] = 0;
    char *end;
    errno = 0;
    long long x = strtoll(tmp, &end, 10);
    if (*end || errno) return lmql__errp(err, "invalid literal for int() with base 10: '%s'", tmp);
    return lmql__val_int(x);
}

static struct lmql_val *builtin_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                   struct lmql__err *err) {
    const char *name = ud;
    int np = n_positional(argc, names);
    if (np != argc && strcmp(name, "print"))
        return lmql__errp(err, "%s() takes no keyword arguments", name);
    struct lmql_val *a = argc ? argv[0] : NULL;

    if (!strcmp(name, "len")) {
        if (argc != 1) return lmql__errp(err, "len() takes exactly one argument");
        if (a->kind == LMQL_V_STR) return lmql__val_int((int64_t)lmql__utf8_count(a->u.str.s, a->u.str.len));
        if (a->kind == LMQL_V_LIST || a->kind == LMQL_V_TUPLE) return lmql__val_int((int64_t)a->u.list.len);
        if (a->kind == LMQL_V_DICT) return lmql__val_int((int64_t)a->u.dict.len);
        return lmql__errp(err, "object of type '%s' has no len()", lmql__val_type_name(a));
    }
    if (!strcmp(name, "str")) return argc ? to_str(a, err) : lmql__val_str("", 0);
    if (!strcmp(name, "repr")) {
        if (argc != 1) return lmql__errp(err, "repr() takes exactly one argument");
        struct lmql__buf b = {0};
        if (lmql__val_repr_into(&b, a)) { lmql__buf_free(&b); return val_berr(err); }
        struct lmql_val *s = lmql__val_str(b.data ? b.data : "", b.len);
        lmql__buf_free(&b);
        return s;
    }
    if (!strcmp(name, "int")) {
        if (!argc) return lmql__val_int(0);
        if (intlike(a)) return lmql__val_int(ival(a));
        if (a->kind == LMQL_V_FLOAT) {
            if (!isfinite(a->u.f) || fabs(a->u.f) > 9.2e18) return lmql__errp(err, "cannot convert float to int");
            return lmql__val_int((int64_t)a->u.f);
        }
        if (a->kind == LMQL_V_STR) return parse_int(a->u.str.s, a->u.str.len, err);
        return lmql__errp(err, "int() argument must be a string or a number, not '%s'", lmql__val_type_name(a));
    }
    if (!strcmp(name, "float")) {
        if (!argc) return lmql__val_float(0);
        if (intlike(a)) return lmql__val_float((double)ival(a));
        if (a->kind == LMQL_V_FLOAT) return lmql__val_ref(a);
        if (a->kind == LMQL_V_STR) {
            char *end;
            double d = strtod(a->u.str.s, &end);
            while (isspace((unsigned char)*end)) end++;
            if (end == a->u.str.s || *end) return lmql__errp(err, "could not convert string to float: '%s'", a->u.str.s);
            return lmql__val_float(d);
        }
        return lmql__errp(err, "float() argument must be a string or a number");
    }
    if (!strcmp(name, "bool")) return lmql__val_bool(argc && lmql__val_truthy(a));
    if (!strcmp(name, "abs")) {
        if (argc != 1) return lmql__errp(err, "abs() takes exactly one argument");
        if (a->kind == LMQL_V_FLOAT) return lmql__val_float(fabs(a->u.f));
        if (intlike(a) && ival(a) == INT64_MIN) return lmql__errp(err, "integer overflow in abs(): the result does not fit in 64 bits");
        if (intlike(a)) return lmql__val_int(ival(a) < 0 ? -ival(a) : ival(a));
        return lmql__errp(err, "bad operand type for abs(): '%s'", lmql__val_type_name(a));
    }
    if (!strcmp(name, "range")) {
        int64_t lo = 0, hi, step = 1;
        for (int i = 0; i < argc; i++)
            if (!intlike(argv[i])) return lmql__errp(err, "range() arguments must be integers");
        if (argc == 1) hi = ival(argv[0]);
        else if (argc == 2 || argc == 3) {
            lo = ival(argv[0]);
            hi = ival(argv[1]);
            if (argc == 3) step = ival(argv[2]);
        } else return lmql__errp(err, "range expected 1 to 3 arguments");
        if (step == 0) return lmql__errp(err, "range() arg 3 must not be zero");
        /* The item count exactly, in unsigned arithmetic: hi - lo and lo + k*step
        ** overflow int64 near its limits (range(2**63-2, 2**63-1, 2**63-1)). */
        uint64_t mag = step > 0 ? (uint64_t)step : 0 - (uint64_t)step, count = 0;
        if (step > 0 ? lo < hi : lo > hi)
            count = (step > 0 ? (uint64_t)hi - (uint64_t)lo : (uint64_t)lo - (uint64_t)hi) - 1;
        if (step > 0 ? lo < hi : lo > hi) count = count / mag + 1;
        if (count > 10000000) return lmql__errp(err, "range() of more than 10,000,000 items is not supported");
        struct lmql_val *l = lmql__val_list((size_t)count);
        for (uint64_t k = 0; l && k < count; k++)
            if (lmql__list_push(l, lmql__val_int((int64_t)((uint64_t)lo + k * (uint64_t)step)))) {
                lmql__val_unref(l);
                return NULL;
            }
        return l;
    }
    if (!strcmp(name, "list") || !strcmp(name, "tuple")) {
        struct lmql_val *out = name[0] == 'l' ? lmql__val_list(0) : lmql__val_tuple(0);
        if (!argc || !out) return out;
        struct lmql_val *items = lmql__iter_list(NULL, NULL, a);
        if (!items) { lmql__val_unref(out); return lmql__errp(err, "'%s' object is not iterable", lmql__val_type_name(a)); }
        for (size_t i = 0; i < items->u.list.len; i++) lmql__list_push(out, lmql__val_ref(items->u.list.items[i]));
        lmql__val_unref(items);
        return out;
    }
    if (!strcmp(name, "dict")) {
        if (argc) return lmql__errp(err, "dict() takes no arguments here");
        return lmql__val_dict();
    }
    if (!strcmp(name, "print")) return &lmql__none;   /* queries print through their prompt */
    if (!strcmp(name, "set")) {
        /* No set type: a list without duplicates, in first-seen order. */
        struct lmql_val *out = lmql__val_list(0);
        if (!argc || !out) return out;
        struct lmql_val *items = lmql__iter_list(NULL, NULL, a);
        if (!items) { lmql__val_unref(out); return lmql__errp(err, "'%s' object is not iterable", lmql__val_type_name(a)); }
        for (size_t i = 0; i < items->u.list.len; i++) {
            bool seen = false;
            for (size_t j = 0; j < out->u.list.len && !seen; j++) {
                seen = lmql__val_equal(out->u.list.items[j], items->u.list.items[i]);
                if (lmql__val_error()) { lmql__val_unref(items); lmql__val_unref(out); return val_berr(err); }
            }
            if (!seen) lmql__list_push(out, lmql__val_ref(items->u.list.items[i]));
        }
        lmql__val_unref(items);
        return out;
    }
    if (!strcmp(name, "isinstance")) {
        if (argc != 2) return lmql__errp(err, "isinstance() takes two arguments");
        struct lmql_val *types = argv[1];
        size_t n = types->kind == LMQL_V_TUPLE ? types->u.list.len : 1;
        for (size_t i = 0; i < n; i++) {
            struct lmql_val *t = types->kind == LMQL_V_TUPLE ? types->u.list.items[i] : types;
            if (t->kind == LMQL_V_CLASS) {
                if (lmql__class_isinstance(a, t)) return &lmql__true;
                continue;
            }
            if (t->kind != LMQL_V_FUNC || !t->u.func.fn || t->u.func.fn != builtin_fn)
                return lmql__errp(err, "isinstance() arg 2 must be a type or a tuple of types");
            const char *tn = t->u.func.name, *vn = lmql__val_type_name(a);
            if (!strcmp(tn, vn) || (!strcmp(tn, "int") && a->kind == LMQL_V_BOOL)) return &lmql__true;
        }
        return &lmql__false;
    }
    if (!strcmp(name, "type")) {
        if (argc != 1) return lmql__errp(err, "type() takes 1 argument");
        if (a->kind == LMQL_V_INST) return lmql__val_ref(a->u.inst.cls);
        const char *tn = lmql__val_type_name(a);   /* "type" for a class */
        static const char *const named[] = {"bool", "int", "float", "str", "list", "tuple", "dict", "type"};
        for (size_t i = 0; i < sizeof named / sizeof *named; i++)
            if (!strcmp(named[i], tn)) return lmql__builtin(tn);
        return lmql__errp(err, "type() of a '%s' value is not supported", tn);
    }
    if (!strcmp(name, "round")) {
        if (argc < 1 || argc > 2) return lmql__errp(err, "round() takes a number and optional digits");
        double x = a->kind == LMQL_V_FLOAT ? a->u.f : intlike(a) ? (double)ival(a) : NAN;
        if (isnan(x)) return lmql__errp(err, "round() needs a number");
        if (argc == 1) {
            double r = nearbyint(x);   /* banker's rounding, as Python's round */
            if (fabs(r) > 9.2e18) return lmql__errp(err, "round(): number too large");
            return lmql__val_int((int64_t)r);
        }
        if (!intlike(argv[1])) return lmql__errp(err, "round() digits must be an integer");
        double p = pow(10.0, (double)ival(argv[1]));
        return lmql__val_float(nearbyint(x * p) / p);
    }
    if (!strcmp(name, "min") || !strcmp(name, "max") || !strcmp(name, "sum")) {
        struct lmql_val *items = argc == 1 ? lmql__iter_list(NULL, NULL, a) : NULL;
        if (argc == 1 && !items) return lmql__errp(err, "%s() argument is not iterable", name);
        size_t n = items ? items->u.list.len : (size_t)argc;
        struct lmql_val **v = items ? items->u.list.items : argv;
        struct lmql_val *out = NULL;
        if (!strcmp(name, "sum")) {
            int64_t si = 0;
            double sf = 0;
            bool fl = false;
            for (size_t i = 0; i < n; i++) {
                if (v[i]->kind == LMQL_V_FLOAT) { fl = true; sf += v[i]->u.f; }
                else if (intlike(v[i])) {
                    /* Python's ints do not overflow; ours say so instead of wrapping */
                    if (!fl && __builtin_add_overflow(si, ival(v[i]), &si)) {
                        lmql__val_unref(items);
                        return lmql__errp(err, "integer overflow in sum(): the result does not fit in 64 bits");
                    }
                    sf += (double)ival(v[i]);
                }
                else { lmql__val_unref(items); return lmql__errp(err, "unsupported operand type for sum: '%s'", lmql__val_type_name(v[i])); }
            }
            out = fl ? lmql__val_float(sf) : lmql__val_int(si);
        } else if (n == 0) {
            lmql__val_unref(items);
            return lmql__errp(err, "%s() arg is an empty sequence", name);
        } else {
            struct lmql_val *best = v[0];
            for (size_t i = 1; i < n; i++) {
                int c = lmql__val_compare(v[i], best);
                if (c == -2) {
                    lmql__val_unref(items);
                    return lmql__val_error() ? val_berr(err) : lmql__errp(err, "values of %s() cannot be compared", name);
                }
                if (name[1] == 'i' ? c < 0 : c > 0) best = v[i];
            }
            out = lmql__val_ref(best);
        }
        lmql__val_unref(items);
        return out;
    }
    if (!strcmp(name, "all") || !strcmp(name, "any")) {
        if (argc != 1) return lmql__errp(err, "%s() takes one argument", name);
        struct lmql_val *items = lmql__iter_list(NULL, NULL, a);
        if (!items) return lmql__errp(err, "%s() argument is not iterable", name);
        bool want = name[1] == 'n', found = false;   /* any: a truthy item; all: a falsy one */
        for (size_t i = 0; !found && i < items->u.list.len; i++) found = lmql__val_truthy(items->u.list.items[i]) == want;
        lmql__val_unref(items);
        return lmql__val_bool(want ? found : !found);
    }
    if (!strcmp(name, "enumerate") || !strcmp(name, "zip")) {
        struct lmql_val *out = lmql__val_list(0);
        if (name[0] == 'e') {
            if (argc != 1) { lmql__val_unref(out); return lmql__errp(err, "enumerate() takes one argument"); }
            struct lmql_val *items = lmql__iter_list(NULL, NULL, a);
            if (!items) { lmql__val_unref(out); return lmql__errp(err, "enumerate() argument is not iterable"); }
            for (size_t i = 0; i < items->u.list.len; i++) {
                struct lmql_val *t = lmql__val_tuple(2);
                lmql__list_push(t, lmql__val_int((int64_t)i));
                lmql__list_push(t, lmql__val_ref(items->u.list.items[i]));
                lmql__list_push(out, t);
            }
            lmql__val_unref(items);
            return out;
        }
        struct lmql_val *lists[8];
        if (argc > 8) { lmql__val_unref(out); return lmql__errp(err, "zip() of more than 8 iterables"); }
        size_t n = SIZE_MAX;
        for (int i = 0; i < argc; i++) {
            lists[i] = lmql__iter_list(NULL, NULL, argv[i]);
            if (!lists[i]) {
                for (int j = 0; j < i; j++) lmql__val_unref(lists[j]);
                lmql__val_unref(out);
                return lmql__errp(err, "zip() argument is not iterable");
            }
            if (lists[i]->u.list.len < n) n = lists[i]->u.list.len;
        }
        for (size_t k = 0; argc && k < n; k++) {
            struct lmql_val *t = lmql__val_tuple((size_t)argc);
            for (int i = 0; i < argc; i++) lmql__list_push(t, lmql__val_ref(lists[i]->u.list.items[k]));
            lmql__list_push(out, t);
        }
        for (int i = 0; i < argc; i++) lmql__val_unref(lists[i]);
        return out;
    }
    return lmql__errp(err, "%s() is not supported yet", name);
}

/* One static value per builtin, so that `type(x) is int` holds as in Python. */
#define BUILTIN(n) {.kind = LMQL_V_FUNC, .refs = -1, .u.func = {.name = n, .fn = builtin_fn, .ud = (void *)n}}
static struct lmql_val BUILTINS[] = {
    BUILTIN("len"), BUILTIN("str"), BUILTIN("repr"), BUILTIN("int"), BUILTIN("float"), BUILTIN("bool"),
    BUILTIN("abs"), BUILTIN("range"), BUILTIN("list"), BUILTIN("tuple"), BUILTIN("sorted"), BUILTIN("isinstance"),
    BUILTIN("set"), BUILTIN("round"), BUILTIN("dict"), BUILTIN("print"), BUILTIN("min"), BUILTIN("max"),
    BUILTIN("sum"), BUILTIN("all"), BUILTIN("any"), BUILTIN("eval"), BUILTIN("map"), BUILTIN("filter"), BUILTIN("enumerate"), BUILTIN("zip"), BUILTIN("type"),
    BUILTIN("locals"), BUILTIN("globals")};

static void model_spec_free_cb(void *p) { lmql__model_spec_free(p); }

void lmql__model_spec_free(void *p) {
    struct lmql__model_spec *s = p;
    if (!s) return;
    for (int i = 0; i < s->n_kv; i++) {
        free((char *)s->kv[i].key);
        free((char *)s->kv[i].value);
    }
    free(s->kv);
    free(s->id);
    free(s);
}

/* lmql.model("id", key=value, ...): keyword values are kept as text, the
** form the model backends take their parameters in. */
static struct lmql_val *lmql_model_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                      struct lmql__err *err) {
    (void)ud;
    if (argc < 1 || names[0] || argv[0]->kind != LMQL_V_STR)
        return lmql__errp(err, "lmql.model() takes the model identifier as its first argument");
    struct lmql__model_spec *s = lmql__calloc(1, sizeof *s);
    if (!s) return lmql__errp(err, "out of memory");
    s->id = lmql__strdup(argv[0]->u.str.s);
    s->kv = lmql__calloc((size_t)argc, sizeof *s->kv);
    if (!s->id || !s->kv) {
        lmql__model_spec_free(s);
        return lmql__errp(err, "out of memory");
    }
    for (int i = 1; i < argc; i++) {
        if (!names[i]) {
            lmql__model_spec_free(s);
            return lmql__errp(err, "lmql.model() takes one positional argument; pass the rest as key=value");
        }
        struct lmql__buf b = {0};
        int bad = argv[i]->kind == LMQL_V_BOOL ? lmql__buf_adds(&b, argv[i]->u.b ? "true" : "false")
                                               : lmql__val_str_into(&b, argv[i]);
        s->kv[s->n_kv].key = lmql__strdup(names[i]);
        s->kv[s->n_kv].value = b.data ? b.data : lmql__strdup("");
        s->n_kv++;
        if (bad || !s->kv[s->n_kv - 1].key || !s->kv[s->n_kv - 1].value) {
            lmql__model_spec_free(s);
            return lmql__errp(err, "out of memory");
        }
    }
    struct lmql_val *v = lmql__val_obj("model", s, model_spec_free_cb);   /* frees s when it fails */
    return v ? v : lmql__errp(err, "out of memory");
}

/* lmql.F(template, constraints=None, model=None): the query '"template"
** from model where constraints' as a function. Calling it binds the
** template's free variables, positionally in their order in the template
** or by name; it returns the single hole's value, or a dict of them. */
struct fquery {
    struct lmql_arena arena;
    struct lmql_node def;        /* a synthetic @lmql.query def around the query */
    struct lmql__wheres *wheres; /* its holes' constraints */
    const char **free_vars;      /* the template's {names} that are no hole, in order (arena) */
    int n_free;
};

/* The {name} interpolations of the template that are not holes, once each. */
static int free_vars(struct fquery *f, const struct lmql_ast_query *q) {
    for (int32_t i = 0; i < q->body.n; i++) {
        const struct lmql_node *st = q->body.items[i];
        if (st->kind != LMQL_NODE_PROMPT) continue;
        for (int32_t k = 0; k < st->u.prompt.segs.n; k++) {
            const struct lmql_node *seg = st->u.prompt.segs.items[k];
            if (seg->kind != LMQL_NODE_INTERP || !seg->u.interp.expr || seg->u.interp.expr->kind != LMQL_NODE_NAME)
                continue;
            const char *name = seg->u.interp.expr->u.name;
            bool seen = false;
            for (int j = 0; j < f->n_free && !seen; j++) seen = !strcmp(f->free_vars[j], name);
            if (seen) continue;
            const char **p = lmql__arena_alloc(&f->arena, ((size_t)f->n_free + 1) * sizeof *p);
            if (!p) return -1;
            if (f->n_free) memcpy(p, f->free_vars, (size_t)f->n_free * sizeof *p);
            p[f->n_free++] = name;
            f->free_vars = p;
        }
    }
    return 0;
}

static void fquery_free(void *p) {
    struct fquery *f = p;
    lmql__wheres_free(f->wheres);
    lmql__arena_free(&f->arena);
    free(f);
}

struct lmql_val *lmql__lmql_F(void *ud, int argc, struct lmql_val **argv, const char **names,
                              struct lmql__err *err) {
    (void)ud;
    const struct lmql_val *cons = NULL, *model = NULL;
    bool bad = argc < 1 || names[0] || argv[0]->kind != LMQL_V_STR;
    for (int i = 1; i < argc && !bad; i++) {
        if (!names[i] && i == 1) cons = argv[i];
        else if (names[i] && !strcmp(names[i], "constraints") && !cons) cons = argv[i];
        else if (names[i] && !strcmp(names[i], "model") && !model) model = argv[i];
        /* is_async=True makes LMQL's function a coroutine; query code awaits a call by making it, so the
        ** function is the same either way */
        else if (names[i] && !strcmp(names[i], "is_async") && argv[i]->kind == LMQL_V_BOOL) continue;
        else bad = true;
    }
    if (bad || (cons && cons->kind != LMQL_V_STR && cons->kind != LMQL_V_NONE))
        return lmql__errp(err, "lmql.F() takes a template string, constraints= (a where clause as a string), model= "
                               "and is_async= (True or False)");
    if (cons && cons->kind == LMQL_V_NONE) cons = NULL;
    struct lmql__buf src = {0};
    lmql__buf_adds(&src, "argmax ");
    lmql__buf_json_str(&src, argv[0]->u.str.s, argv[0]->u.str.len);   /* a JSON string is a valid Python string */
    if (model && model->kind == LMQL_V_STR) {
        lmql__buf_adds(&src, " from ");
        lmql__buf_json_str(&src, model->u.str.s, model->u.str.len);
    } else if (model && model->kind == LMQL_V_OBJ && !strcmp(model->u.obj.type, "model")) {
        /* lmql.model(ID, k=v, ...) written back as source */
        const struct lmql__model_spec *sp = model->u.obj.ptr;
        lmql__buf_adds(&src, " from lmql.model(");
        lmql__buf_json_str(&src, sp->id, strlen(sp->id));
        for (int i = 0; i < sp->n_kv; i++) {
            lmql__buf_addf(&src, ", %s=", sp->kv[i].key);
            lmql__buf_json_str(&src, sp->kv[i].value, strlen(sp->kv[i].value));
        }
        lmql__buf_adds(&src, ")");
    } else if (model && model->kind != LMQL_V_NONE) {
        lmql__buf_free(&src);
        return lmql__errp(err, "lmql.F(): model= needs a model name or lmql.model(...)");
    }
    if (cons) { lmql__buf_adds(&src, " where "); lmql__buf_add(&src, cons->u.str.s, cons->u.str.len); }
    struct fquery *f = lmql__calloc(1, sizeof *f);
    if (!f || !src.data) { free(f); lmql__buf_free(&src); return lmql__errp(err, "out of memory"); }
    lmql__arena_init(&f->arena);
    struct lmql_diags d;
    lmql__diags_init(&d);
    char *text = lmql__arena_strndup(&f->arena, src.data, src.len);
    struct lmql_ast_query *q = text ? lmql__parse_query(&f->arena, text, src.len, "<lmql.F>", &d, NULL) : NULL;
    lmql__buf_free(&src);
    if (!q || d.n) {
        if (d.n) lmql__errf(err, "lmql.F(): %s", d.items[0].msg);
        else lmql__errf(err, "out of memory");
        lmql__diags_free(&d);
        fquery_free(f);
        return NULL;
    }
    lmql__diags_free(&d);
    /* Its where clause is compiled here, as a program's are. */
    struct lmql__err we;
    if (lmql__wheres_compile(q, &f->wheres, &we)) {
        fquery_free(f);
        if (we.status == LMQL_ERR_NOMEM) return lmql__errp(err, "out of memory");
        return lmql__errp(err, "lmql.F(): %s", we.msg);
    }
    f->def.kind = LMQL_NODE_DEF;
    f->def.u.def.name = "<lmql.F>";
    f->def.u.def.query = q;
    if (free_vars(f, q)) {
        fquery_free(f);
        return lmql__errp(err, "out of memory");
    }
    struct lmql_val *owner = lmql__val_obj("lmql.F query", f, fquery_free);
    if (!owner) return lmql__errp(err, "out of memory");
    /* A script-level function (fn NULL) whose node is the synthetic def;
    ** `self` keeps the parsed query alive as long as the function is. */
    struct lmql_val *fn = lmql__val_builtin("<lmql.F>", NULL, &f->def, owner);
    lmql__val_unref(owner);
    return fn ? fn : lmql__errp(err, "out of memory");
}

static struct lmql_val g_lmql_module = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", NULL, NULL}};
static struct lmql_val g_lmql_decorators = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", NULL, NULL}};

static struct lmql_val *decorator_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                     struct lmql__err *err) {
    if (argc != 1 || names[0]) return lmql__errp(err, "TypeError: a decorator takes the function");
    return lmql__decorator_mark(argv[0], (unsigned)(uintptr_t)ud, err);
}
/* `context`: the running query as the program sees it (context.prompt). */
static struct lmql_val g_context = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"context", NULL, NULL}};

bool lmql__builtin_exists(const char *name) {
    if (!strcmp(name, "lmql") || !strcmp(name, "context")) return true;
    for (size_t i = 0; i < sizeof BUILTINS / sizeof *BUILTINS; i++)
        if (!strcmp(BUILTINS[i].u.func.name, name)) return true;
    return lmql__exc_builtin(name) != NULL;
}

struct lmql_val *lmql__builtin(const char *name) {
    if (!strcmp(name, "lmql")) return &g_lmql_module;
    if (!strcmp(name, "context")) return &g_context;
    for (size_t i = 0; i < sizeof BUILTINS / sizeof *BUILTINS; i++)
        if (!strcmp(BUILTINS[i].u.func.name, name)) return &BUILTINS[i];
    return lmql__exc_builtin(name);
}

/* ------------------------------------------------------------ methods -- */

static bool is_space_byte(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

/* str.format: {} {0} {name} with optional !r/!s and :spec, {{ and }}. */
static struct lmql_val *str_format(struct lmql_val *self, int argc, struct lmql_val **argv, const char **names,
                                   struct lmql__err *err) {
    const char *s = self->u.str.s;
    size_t n = self->u.str.len;
    struct lmql__buf b = {0};
    lmql__buf_reserve(&b, n);
    int next = 0;
    for (size_t i = 0; i < n;) {
        char c = s[i];
        if ((c == '{' || c == '}') && i + 1 < n && s[i + 1] == c) { lmql__buf_add(&b, &c, 1); i += 2; continue; }
        if (c == '}') { lmql__buf_free(&b); return lmql__errp(err, "Single '}' encountered in format string"); }
        if (c != '{') { lmql__buf_add(&b, &c, 1); i++; continue; }
        size_t j = i + 1;
        while (j < n && s[j] != '}') j++;
        if (j >= n) { lmql__buf_free(&b); return lmql__errp(err, "Single '{' encountered in format string"); }
        char field[256];
        snprintf(field, sizeof field, "%.*s", (int)(j - i - 1), s + i + 1);
        i = j + 1;
        char *spec = strchr(field, ':'), *conv = strchr(field, '!');
        if (spec) *spec++ = 0;
        if (conv && (!spec || conv < spec)) *conv++ = 0; else conv = NULL;
        struct lmql_val *v = NULL;
        if (!field[0]) {
            int k = 0, pos = 0;
            for (; k < argc; k++) if (!names[k] && pos++ == next) break;
            next++;
            if (k < argc) v = argv[k];
        } else if (field[0] >= '0' && field[0] <= '9') {
            int want = atoi(field), k = 0, pos = 0;
            for (; k < argc; k++) if (!names[k] && pos++ == want) break;
            if (k < argc) v = argv[k];
        } else {
            for (int k = 0; k < argc && !v; k++) if (names[k] && !strcmp(names[k], field)) v = argv[k];
        }
        if (!v) { lmql__buf_free(&b); return lmql__errp(err, "str.format(): no argument for {%s}", field); }
        struct lmql__buf t = {0};
        struct lmql_val *shown = v;
        if (conv && *conv == 'r') {
            if (lmql__val_repr_into(&t, v)) { lmql__buf_free(&t); lmql__buf_free(&b); return val_berr(err); }
            shown = lmql__val_str(t.data ? t.data : "", t.len);
            lmql__buf_free(&t);
        }
        int rc = spec ? lmql__val_format(&b, shown, spec, err) : lmql__val_str_into(&b, shown);
        if (shown != v) lmql__val_unref(shown);
        if (rc) { lmql__buf_free(&b); return err->msg[0] ? NULL : val_berr(err); }
    }
    struct lmql_val *out = lmql__val_str(b.data ? b.data : "", b.len);
    lmql__buf_free(&b);
    return out;
}

static struct lmql_val *str_method(const char *m, struct lmql_val *self, int argc, struct lmql_val **argv,
                                   const char **names, struct lmql__err *err) {
    const char *s = self->u.str.s;
    size_t n = self->u.str.len;
    if (!strcmp(m, "format")) return str_format(self, argc, argv, names, err);
    for (int i = 0; i < argc && strcmp(m, "split"); i++)
        if (names[i]) return lmql__errp(err, "TypeError: str.%s() takes no keyword arguments", m);
    if (!strncmp(m, "is", 2)) {
        /* isdigit, isalpha, isalnum, islower, isupper, isspace on ASCII
        ** characters; any other byte makes the answer False. */
        bool ok = n > 0, cased = false;
        for (size_t i = 0; i < n && ok; i++) {
            unsigned char c = (unsigned char)s[i];
            if (!strcmp(m, "isdigit")) ok = c >= '0' && c <= '9';
            else if (!strcmp(m, "isalpha")) ok = isalpha(c) && c < 0x80;
            else if (!strcmp(m, "isalnum")) ok = isalnum(c) && c < 0x80;
            else if (!strcmp(m, "isspace")) ok = is_space_byte((char)c);
            else if (!strcmp(m, "islower")) { ok = !(c >= 'A' && c <= 'Z'); cased |= c >= 'a' && c <= 'z'; }
            else if (!strcmp(m, "isupper")) { ok = !(c >= 'a' && c <= 'z'); cased |= c >= 'A' && c <= 'Z'; }
        }
        if (!strcmp(m, "islower") || !strcmp(m, "isupper")) ok = ok && cased;
        return lmql__val_bool(ok);
    }
    for (int i = 0; i < argc; i++)
        if (argv[i]->kind != LMQL_V_STR && argv[i]->kind != LMQL_V_NONE && strcmp(m, "join") && strcmp(m, "split") &&
            strcmp(m, "replace") && strcmp(m, "startswith") && strcmp(m, "endswith"))
            return lmql__errp(err, "str.%s() argument must be a string", m);
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        const char *chars = argc && argv[0]->kind == LMQL_V_STR ? argv[0]->u.str.s : NULL;
        size_t lo = 0, hi = n;
        #define STRIPPABLE(c) (chars ? strchr(chars, (c)) != NULL && (c) : is_space_byte(c))
        if (m[0] != 'r') while (lo < hi && STRIPPABLE(s[lo])) lo++;
        if (m[0] != 'l') while (hi > lo && STRIPPABLE(s[hi - 1])) hi--;
        #undef STRIPPABLE
        return lmql__val_str(s + lo, hi - lo);
    }
    if (!strcmp(m, "lower") || !strcmp(m, "upper")) {
        struct lmql_val *v = lmql__val_str(s, n);
        for (size_t i = 0; v && i < n; i++)
            v->u.str.s[i] = (char)(m[0] == 'l' ? tolower((unsigned char)s[i]) : toupper((unsigned char)s[i]));
        return v;
    }
    if (!strcmp(m, "capitalize")) {   /* the first character upper case, the rest lower, as lower/upper do */
        struct lmql_val *v = lmql__val_str(s, n);
        for (size_t i = 0; v && i < n; i++)
            v->u.str.s[i] = (char)(i == 0 ? toupper((unsigned char)s[i]) : tolower((unsigned char)s[i]));
        return v;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        if (argc != 1 || argv[0]->kind != LMQL_V_STR) return lmql__errp(err, "str.%s() takes one string", m);
        size_t k = argv[0]->u.str.len;
        if (k > n) return &lmql__false;
        return lmql__val_bool(!memcmp(m[0] == 's' ? s : s + n - k, argv[0]->u.str.s, k));
    }
    if (!strcmp(m, "find") || !strcmp(m, "count")) {
        if (argc != 1) return lmql__errp(err, "str.%s() takes one argument", m);
        const char *sub = argv[0]->u.str.s;
        size_t k = argv[0]->u.str.len;
        int64_t count = 0;
        for (size_t i = 0; i + k <= n;) {
            if (!memcmp(s + i, sub, k)) {
                if (m[0] == 'f') return lmql__val_int((int64_t)lmql__utf8_count(s, i));
                count++;
                i += k ? k : 1;
            } else i++;
        }
        return lmql__val_int(m[0] == 'f' ? -1 : count);
    }
    if (!strcmp(m, "replace")) {
        if (argc != 2 || argv[0]->kind != LMQL_V_STR || argv[1]->kind != LMQL_V_STR)
            return lmql__errp(err, "str.replace() takes two strings");
        const char *old = argv[0]->u.str.s, *nw = argv[1]->u.str.s;
        size_t ko = argv[0]->u.str.len, kn = argv[1]->u.str.len;
        struct lmql__buf b = {0};
        lmql__buf_reserve(&b, n);
        for (size_t i = 0; i < n;) {
            if (ko && i + ko <= n && !memcmp(s + i, old, ko)) { lmql__buf_add(&b, nw, kn); i += ko; }
            else lmql__buf_add(&b, s + i++, 1);
        }
        struct lmql_val *v = lmql__val_str(b.data ? b.data : "", b.len);
        lmql__buf_free(&b);
        return v;
    }
    if (!strcmp(m, "split")) {
        /* split(sep=None, maxsplit=-1): at most maxsplit cuts, the rest of
        ** the string is the last item (s.split(":", 1)[1] is all after the
        ** first colon). */
        struct lmql_val *sepv = NULL, *maxv = NULL;
        for (int i = 0, pos = 0; i < argc; i++) {
            const char *name = names[i] ? names[i] : pos == 0 ? "sep" : pos == 1 ? "maxsplit" : "";
            pos += !names[i];
            struct lmql_val **slot = !strcmp(name, "sep") ? &sepv : !strcmp(name, "maxsplit") ? &maxv : NULL;
            if (!slot || *slot) return lmql__errp(err, "TypeError: str.split() takes at most 2 arguments (sep, maxsplit)");
            *slot = argv[i];
        }
        if (maxv && !intlike(maxv)) return lmql__errp(err, "TypeError: str.split() maxsplit must be an integer");
        int64_t left = maxv && ival(maxv) >= 0 ? ival(maxv) : INT64_MAX;
        struct lmql_val *out = lmql__val_list(0);
        if (!sepv || sepv->kind == LMQL_V_NONE) {
            for (size_t i = 0; i < n;) {
                while (i < n && is_space_byte(s[i])) i++;
                if (i < n && left == 0) {   /* the rest, its trailing spaces kept (as Python) */
                    lmql__list_push(out, lmql__val_str(s + i, n - i));
                    break;
                }
                size_t j = i;
                while (j < n && !is_space_byte(s[j])) j++;
                if (j > i) { lmql__list_push(out, lmql__val_str(s + i, j - i)); left--; }
                i = j;
            }
            return out;
        }
        if (sepv->kind != LMQL_V_STR || sepv->u.str.len == 0) {
            lmql__val_unref(out);
            return lmql__errp(err, "ValueError: empty separator");
        }
        const char *sep = sepv->u.str.s;
        size_t k = sepv->u.str.len, start = 0;
        for (size_t i = 0; i + k <= n && left > 0;) {
            if (!memcmp(s + i, sep, k)) {
                left--;
                lmql__list_push(out, lmql__val_str(s + start, i - start));
                i += k;
                start = i;
            } else i++;
        }
        lmql__list_push(out, lmql__val_str(s + start, n - start));
        return out;
    }
    if (!strcmp(m, "join")) {
        if (argc != 1) return lmql__errp(err, "str.join() takes one argument");
        struct lmql_val *items = lmql__iter_list(NULL, NULL, argv[0]);
        if (!items) return lmql__errp(err, "str.join() argument is not iterable");
        struct lmql__buf b = {0};
        lmql__buf_reserve(&b, 0);
        for (size_t i = 0; i < items->u.list.len; i++) {
            struct lmql_val *it = items->u.list.items[i];
            if (it->kind != LMQL_V_STR) {
                lmql__val_unref(items);
                lmql__buf_free(&b);
                return lmql__errp(err, "sequence item: expected str instance, %s found", lmql__val_type_name(it));
            }
            if (i) lmql__buf_add(&b, s, n);
            lmql__buf_add(&b, it->u.str.s, it->u.str.len);
        }
        lmql__val_unref(items);
        struct lmql_val *v = lmql__val_str(b.data, b.len);
        lmql__buf_free(&b);
        return v;
    }
    return lmql__errp(err, "'str' object has no attribute '%s'", m);
}

static struct lmql_val *list_method(const char *m, struct lmql_val *self, int argc, struct lmql_val **argv,
                                    struct lmql__err *err) {
    if (!strcmp(m, "append")) {
        if (argc != 1) return lmql__errp(err, "list.append() takes one argument");
        return lmql__list_push(self, lmql__val_ref(argv[0])) ? NULL : &lmql__none;
    }
    if (!strcmp(m, "extend")) {
        if (argc != 1) return lmql__errp(err, "list.extend() takes one argument");
        struct lmql_val *items = lmql__iter_list(NULL, NULL, argv[0]);
        if (!items) return lmql__errp(err, "list.extend() argument is not iterable");
        for (size_t i = 0; i < items->u.list.len; i++) lmql__list_push(self, lmql__val_ref(items->u.list.items[i]));
        lmql__val_unref(items);
        return &lmql__none;
    }
    if (!strcmp(m, "pop")) {
        size_t n = self->u.list.len;
        if (n == 0) return lmql__errp(err, "pop from empty list");
        int64_t i = argc ? (intlike(argv[0]) ? ival(argv[0]) : INT64_MAX) : (int64_t)n - 1;
        if (i < 0) i += (int64_t)n;
        if (i < 0 || i >= (int64_t)n) return lmql__errp(err, "pop index out of range");
        struct lmql_val *v = self->u.list.items[i];
        memmove(self->u.list.items + i, self->u.list.items + i + 1, (n - (size_t)i - 1) * sizeof(void *));
        self->u.list.len--;
        return v;
    }
    if (!strcmp(m, "index")) {
        for (size_t i = 0; argc == 1 && i < self->u.list.len; i++)
            if (lmql__val_equal(self->u.list.items[i], argv[0])) return lmql__val_int((int64_t)i);
            else if (lmql__val_error()) return val_berr(err);
        return lmql__errp(err, "value is not in list");
    }
    if (!strcmp(m, "insert")) {
        if (argc != 2 || !intlike(argv[0])) return lmql__errp(err, "list.insert() takes an index and a value");
        int64_t n = (int64_t)self->u.list.len, i = ival(argv[0]);
        if (i < 0) i += n;
        if (i < 0) i = 0;
        if (i > n) i = n;
        if (lmql__list_push(self, lmql__val_ref(argv[1]))) return NULL;
        memmove(self->u.list.items + i + 1, self->u.list.items + i, (size_t)(n - i) * sizeof(void *));
        self->u.list.items[i] = argv[1];
        return &lmql__none;
    }
    return lmql__errp(err, "'list' object has no attribute '%s'", m);
}

static struct lmql_val *dict_method(const char *m, struct lmql_val *self, int argc, struct lmql_val **argv,
                                    struct lmql__err *err) {
    if (!strcmp(m, "get")) {
        if (argc < 1 || argc > 2) return lmql__errp(err, "dict.get() takes one or two arguments");
        struct lmql_val *v = lmql__dict_get(self, argv[0]);
        return lmql__val_ref(v ? v : argc == 2 ? argv[1] : &lmql__none);
    }
    if (!strcmp(m, "keys") || !strcmp(m, "values") || !strcmp(m, "items")) {
        struct lmql_val *out = lmql__val_list(self->u.dict.len);
        for (size_t i = 0; out && i < self->u.dict.len; i++) {
            if (m[0] == 'k') lmql__list_push(out, lmql__val_ref(self->u.dict.keys[i]));
            else if (m[0] == 'v') lmql__list_push(out, lmql__val_ref(self->u.dict.vals[i]));
            else {
                struct lmql_val *t = lmql__val_tuple(2);
                lmql__list_push(t, lmql__val_ref(self->u.dict.keys[i]));
                lmql__list_push(t, lmql__val_ref(self->u.dict.vals[i]));
                lmql__list_push(out, t);
            }
        }
        return out;
    }
    return lmql__errp(err, "'dict' object has no attribute '%s'", m);
}

static struct lmql_val *method_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                  struct lmql__err *err) {
    /* The receiver travels as the bound `self` of the function value;
    ** lmql__call passes it as argv[-1] by prepending. */
    struct lmql_val *self = argv[0];
    const char *m = ud;
    if (self->kind == LMQL_V_STR) return str_method(m, self, argc - 1, argv + 1, names + 1, err);
    for (int i = 1; i < argc && self->kind != LMQL_V_STR; i++)
        if (names[i]) return lmql__errp(err, "TypeError: %s.%s() takes no keyword arguments", lmql__val_type_name(self), m);
    if (self->kind == LMQL_V_LIST) return list_method(m, self, argc - 1, argv + 1, err);
    if (self->kind == LMQL_V_DICT) return dict_method(m, self, argc - 1, argv + 1, err);
    return lmql__errp(err, "'%s' object has no attribute '%s'", lmql__val_type_name(self), m);
}

struct lmql_val *lmql__method(struct interp *I, const struct lmql_node *at, struct lmql_val *obj, const char *name) {
    if (lmql__class_has_attrs(obj)) return lmql__class_getattr(I, at, obj, name);
    if (obj->kind == LMQL_V_OBJ && lmql__re_is_obj(obj)) {
        struct lmql__err e = {0};
        struct lmql_val *v = lmql__re_attr(obj, name, &e);
        if (!v) lmql__fail(I, at, e.msg[0] ? LMQL_ERR_RUNTIME : LMQL_ERR_NOMEM, "%s", e.msg[0] ? e.msg : "out of memory");
        return v;
    }
    if (obj == &g_context) {
        if (!strcmp(name, "prompt") && I->res) {
            /* The prompt as it stands, with the whitespace held back at its
            ** end (interp.c), which reading it must not emit: a role tag
            ** after it drops it as it would have. */
            struct lmql__buf b = {0};
            lmql__buf_add(&b, I->res->prompt.data ? I->res->prompt.data : "", I->res->prompt.len);
            lmql__buf_add(&b, I->chat_ws.data ? I->chat_ws.data : "", I->chat_ws.len);
            struct lmql_val *p = b.data ? lmql__val_str(b.data, b.len) : NULL;
            lmql__buf_free(&b);
            if (!p) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
            return p;
        }
        if (!strcmp(name, "score")) return lmql__context_score(I, at);
        lmql__fail(I, at, LMQL_ERR_QUERY, "context.%s is not supported (context.prompt and context.score are)", name);
        return NULL;
    }
    if (obj == &g_lmql_decorators) {
        bool pre = !strcmp(name, "pre");
        if (pre || !strcmp(name, "streaming"))
            return lmql__val_builtin(pre ? "lmql.decorators.pre" : "lmql.decorators.streaming", decorator_fn,
                                     (void *)(uintptr_t)(pre ? LMQL_FUNC_PRE : LMQL_FUNC_STREAMING), NULL);
        lmql__fail(I, at, LMQL_ERR_QUERY, "lmql.decorators.%s is not supported (pre and streaming are)", name);
        return NULL;
    }
    if (obj->kind == LMQL_V_OBJ) {
        bool handled;
        struct lmql_val *g = lmql__generations_attr(I, at, obj, name, &handled);
        if (handled) return g;
    }
    if (obj->kind == LMQL_V_OBJ && !strcmp(obj->u.obj.type, "TemplateVariable")) {
        if (!strcmp(name, "name")) {
            struct lmql_val *s = lmql__val_cstr(obj->u.obj.ptr);
            if (!s) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
            return s;
        }
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: 'TemplateVariable' object has no attribute '%s'", name);
        return NULL;
    }
    if (obj == &g_lmql_module) {
        if (!strcmp(name, "decorators")) return &g_lmql_decorators;
        if (!strcmp(name, "model")) return lmql__val_builtin("lmql.model", lmql_model_fn, NULL, NULL);
        if (!strcmp(name, "F")) return lmql__val_builtin("lmql.F", lmql__lmql_F, NULL, NULL);
        bool handled;
        struct lmql_val *g = lmql__generations_attr(I, at, NULL, name, &handled);
        if (handled) return g;
        lmql__fail(I, at, LMQL_ERR_QUERY, "lmql.%s is not supported", name);
        return NULL;
    }
    static const char *const str_methods[] = {"strip", "lstrip", "rstrip", "lower", "upper", "capitalize", "startswith",
        "endswith", "find", "count", "replace", "split", "join", "format", "isdigit", "isalpha", "isalnum",
        "islower", "isupper", "isspace", NULL};
    static const char *const list_methods[] = {"append", "extend", "pop", "index", "insert", NULL};
    static const char *const dict_methods[] = {"get", "keys", "values", "items", NULL};
    const char *const *known = obj->kind == LMQL_V_STR ? str_methods : obj->kind == LMQL_V_LIST ? list_methods
                             : obj->kind == LMQL_V_DICT ? dict_methods : NULL;
    for (int i = 0; known && known[i]; i++) {
        if (strcmp(known[i], name)) continue;
        /* The name lives in the AST (arena), which outlives the call. */
        struct lmql_val *f = lmql__val_builtin(name, method_fn, (void *)name, obj);
        if (!f) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        return f;
    }
    /* A query function's result (a dict of prompt and variables) reads as
    ** LMQL's result object: r.prompt, r.variables. */
    if (obj->kind == LMQL_V_DICT) {
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
        struct lmql_val *v = lmql__dict_get(obj, &key);
        if (v) return lmql__val_ref(v);
    }
    lmql__fail(I, at, LMQL_ERR_RUNTIME, "'%s' object has no attribute '%s'", lmql__val_type_name(obj), name);
    return NULL;
}

/* -------------------------------------------------------------- calls -- */

int lmql__bind_params(struct interp *I, const struct lmql_node *at, const struct lmql_node *def, int argc,
                      struct lmql_val **argv, const char **names, struct lmql_val *scope) {
    const struct lmql_node_list *ps = &def->u.def.params;
    if (!strcmp(def->u.def.name, "<lmql.F>")) {
        /* positional arguments bind the template's free variables in order */
        const struct fquery *f = (const struct fquery *)(const void *)((const char *)def - offsetof(struct fquery, def));
        for (int i = 0; i < argc; i++) {
            if (!names[i] && i >= f->n_free)
                return lmql__fail(I, at, LMQL_ERR_RUNTIME, "this lmql.F query takes %d argument%s (%s%s), not %d",
                                  f->n_free, f->n_free == 1 ? "" : "s", f->n_free ? f->free_vars[0] : "none",
                                  f->n_free > 1 ? ", ..." : "", n_positional(argc, names));
            const char *name = names[i] ? names[i] : f->free_vars[i];
            if (lmql__dict_set(scope, lmql__val_cstr(name), lmql__val_ref(argv[i])))
                return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        }
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        if (!names[i]) continue;
        int32_t p = 0;
        while (p < ps->n && strcmp(ps->items[p]->u.param.name, names[i])) p++;
        if (p == ps->n)
            return lmql__fail(I, at, LMQL_ERR_RUNTIME, "%s() got an unexpected keyword argument '%s'", def->u.def.name,
                              names[i]);
    }
    if (n_positional(argc, names) > ps->n)
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "%s() takes %d arguments but %d were given", def->u.def.name, ps->n,
                          n_positional(argc, names));
    for (int32_t p = 0; p < ps->n; p++) {
        const char *pn = ps->items[p]->u.param.name;
        struct lmql_val *v = NULL;
        if (p < argc && !names[p]) v = lmql__val_ref(argv[p]);
        for (int i = 0; i < argc && !v; i++)
            if (names[i] && !strcmp(names[i], pn)) v = lmql__val_ref(argv[i]);
        if (!v && ps->items[p]->u.param.dflt) v = lmql__eval(I, ps->items[p]->u.param.dflt);
        if (!v) {
            if (I->err->msg[0] == 0)
                lmql__fail(I, at, LMQL_ERR_RUNTIME, "%s() missing argument '%s'", def->u.def.name, pn);
            return -1;
        }
        if (lmql__dict_set(scope, lmql__val_cstr(pn), v)) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    }
    return 0;
}

static struct lmql_val *call_def(struct interp *I, const struct lmql_node *at, const struct lmql_val *fn, int argc,
                                 struct lmql_val **argv, const char **names) {
    const struct lmql_node *def = fn->u.func.ud;
    if (I->depth >= I->host->params->max_depth) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "maximum call depth (%d) exceeded", I->host->params->max_depth);
        return NULL;
    }
    if (def->u.def.query) return lmql__run_subquery(I, at, def, argc, argv, names);
    struct lmql_val *locals = lmql__val_dict();
    if (!locals) { lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); return NULL; }
    int rc = lmql__bind_params(I, at, def, argc, argv, names, locals);
    struct lmql_val *out = NULL;
    if (rc == 0) {
        struct lmql_val *saved = I->locals, *env0 = I->env, *decl0 = I->decl;
        bool class_body0 = I->class_body;
        I->locals = locals;
        I->env = fn->u.func.env;
        I->decl = NULL;
        I->class_body = false;
        I->depth++;
        rc = lmql__exec_block(I, &def->u.def.body);
        I->depth--;
        lmql__val_unref(I->decl);
        I->locals = saved;
        I->env = env0;
        I->decl = decl0;
        I->class_body = class_body0;
        if (rc == 0) {
            out = I->flow == FLOW_RETURN && I->retval ? I->retval : &lmql__none;
            I->retval = NULL;
            I->flow = FLOW_NORMAL;
        }
    }
    lmql__val_unref(locals);
    return out;
}

/* re.sub's way to call a replacement function of the query with a Match. */
struct re_caller {
    struct interp *I;
    const struct lmql_node *at;
    bool failed;
};

static struct lmql_val *re_call(void *ctx, struct lmql_val *fn, struct lmql_val *arg) {
    struct re_caller *c = ctx;
    struct lmql_val *r = lmql__call(c->I, c->at, fn, 1, &arg, (const char *[]){NULL});
    if (!r) c->failed = true;
    return r;
}

struct lmql_val *lmql__call(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                            struct lmql_val **argv, const char **names) {
    if (fn->kind == LMQL_V_CLASS) return lmql__class_call(I, at, fn, argc, argv, names);
    if (fn->kind != LMQL_V_FUNC) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "'%s' object is not callable", lmql__val_type_name(fn));
        return NULL;
    }
    if (!fn->u.func.fn && !(fn->u.func.flags & LMQL_FUNC_BOUND)) return call_def(I, at, fn, argc, argv, names);
    if (fn->u.func.fn == lmql__generations_fn) return lmql__generations_call(I, at, fn, argc, argv, names);
    bool handled = false;
    /* only the static builtins (an array) can be eval/map/filter/sorted/min/max: a pointer range check
    ** instead of name lookups on every call */
    struct lmql_val *r = fn >= BUILTINS && fn < BUILTINS + sizeof BUILTINS / sizeof *BUILTINS
                             ? lmql__call_interp_builtin(I, at, fn, argc, argv, names, &handled)
                             : NULL;
    if (handled) return r;
    struct lmql__err err = {0};
    struct lmql_val *out;
    if (lmql__re_is_sub(fn)) {   /* its replacement may be a function of the query */
        struct re_caller c = {I, at, false};
        out = lmql__re_sub_call(fn, argc, argv, names, re_call, &c, &err);
        if (!out && !c.failed)
            lmql__fail(I, at, err.msg[0] ? LMQL_ERR_RUNTIME : LMQL_ERR_NOMEM, "%s", err.msg[0] ? err.msg : "out of memory");
        return out;
    }
    if (fn->u.func.self) {
        struct lmql_val **av = lmql__malloc(((size_t)argc + 1) * sizeof *av);
        const char **nm = lmql__malloc(((size_t)argc + 1) * sizeof *nm);
        if (!av || !nm) { free(av); free(nm); lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); return NULL; }
        av[0] = fn->u.func.self;
        nm[0] = NULL;
        if (argc) {
            memcpy(av + 1, argv, (size_t)argc * sizeof *av);
            memcpy(nm + 1, names, (size_t)argc * sizeof *nm);
        }
        if (fn->u.func.fn) {
            out = fn->u.func.fn(fn->u.func.ud, argc + 1, av, nm, &err);
        } else {   /* a method of an instance: self first */
            out = call_def(I, at, fn, argc + 1, av, nm);
            free(av);
            free(nm);
            return out;
        }
        free(av);
        free(nm);
    } else {
        out = fn->u.func.fn(fn->u.func.ud, argc, argv, names, &err);
    }
    if (!out) lmql__fail(I, at, err.msg[0] ? LMQL_ERR_RUNTIME : LMQL_ERR_NOMEM, "%s", err.msg[0] ? err.msg : "out of memory");
    return out;
}
