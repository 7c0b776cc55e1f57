/*
** Classes of query code, as Python has them in the subset LMQL programs
** use: class statements, instances, attributes, methods (@staticmethod,
** @property, @lmql.query with `self` first), single inheritance from another class of the query, and
** the dataclasses and typing modules (dataclass, field, asdict; typing's
** names exist so they can be imported and written in annotations, which
** are never evaluated).
**
** A class is a value (LMQL_V_CLASS) with a dict of attributes, made by
** running its body with that dict as the local scope; @dataclass fills in
** its fields from the body's annotated names. An instance (LMQL_V_INST)
** has its class and a dict of attributes. Both are containers of the run's
** registry (value.h), so an instance that holds itself is freed with the
** run. Equality, hashing, repr and JSON of instances are in value.c.
*/
#include "interp_int.h"
#include "modules.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ helpers -- */

static struct lmql_val *nomem(struct interp *I, const struct lmql_node *at) {
    lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    return NULL;
}

/* The spec field() returns: a tuple (marker, default, factory), so the
** run's registry sees what it holds. Lookups of class attributes skip it:
** it stands for a field that has no class attribute. */
static struct lmql_val g_field_marker = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"dataclasses.Field", NULL, NULL}};

static bool is_field_spec(const struct lmql_val *v) {
    return v->kind == LMQL_V_TUPLE && v->u.list.len == 3 && v->u.list.items[0] == &g_field_marker;
}

/* A class attribute along the base chain (borrowed), or NULL. */
static struct lmql_val *class_lookup(const struct lmql_val *cls, const char *name) {
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
    for (; cls; cls = cls->u.cls.base) {
        struct lmql_val *v = lmql__dict_get(cls->u.cls.attrs, &key);
        if (v) return is_field_spec(v) ? NULL : v;
    }
    return NULL;
}

static bool is_script_fn(const struct lmql_val *v) { return v->kind == LMQL_V_FUNC && !v->u.func.fn; }

bool lmql__class_isinstance(const struct lmql_val *v, const struct lmql_val *cls) {
    if (v->kind != LMQL_V_INST) return false;
    for (const struct lmql_val *c = v->u.inst.cls; c; c = c->u.cls.base)
        if (c == cls) return true;
    return false;
}

/* Call a script def as a method of self: self, then the arguments. */
static struct lmql_val *call_method(struct interp *I, const struct lmql_node *at, struct lmql_val *fn,
                                    struct lmql_val *self, int argc, struct lmql_val **argv, const char **names) {
    struct lmql_val **av = lmql__malloc(((size_t)argc + 1) * sizeof *av);
    const char **nm = lmql__malloc(((size_t)argc + 1) * sizeof *nm);
    struct lmql_val *out = NULL;
    if (!av || !nm) {
        nomem(I, at);
    } else {
        av[0] = self;
        nm[0] = NULL;
        if (argc) {
            memcpy(av + 1, argv, (size_t)argc * sizeof *av);
            memcpy(nm + 1, names, (size_t)argc * sizeof *nm);
        }
        out = lmql__call(I, at, fn, argc + 1, av, nm);
    }
    free(av);
    free(nm);
    return out;
}

/* ------------------------------------------------ modules and typing -- */

static struct lmql_val *dataclass_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                     struct lmql__err *err);
static struct lmql_val *field_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                 struct lmql__err *err);
static struct lmql_val *asdict_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                  struct lmql__err *err);

static struct lmql_val g_dataclasses = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", (void *)"dataclasses", NULL}};
static struct lmql_val g_typing = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"module", (void *)"typing", NULL}};

#define FUNC_VAL(n, f) {.kind = LMQL_V_FUNC, .refs = -1, .u.func = {.name = n, .fn = f}}
static struct lmql_val g_dataclasses_names[] = {FUNC_VAL("dataclass", dataclass_fn), FUNC_VAL("field", field_fn),
                                                FUNC_VAL("asdict", asdict_fn)};

/* typing's names: placeholders to import and to write in annotations. */
#define TYPING_VAL(n) {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"typing." n, (void *)n, NULL}}
static struct lmql_val g_typing_names[] = {TYPING_VAL("List"), TYPING_VAL("Dict"), TYPING_VAL("Optional"),
                                           TYPING_VAL("Literal"), TYPING_VAL("Union"), TYPING_VAL("Any"),
                                           TYPING_VAL("ClassVar"), TYPING_VAL("Tuple")};

/* LMQL's runtime classes that decorator signatures annotate their parameters
** with (docs/language/decorators): importable placeholders for annotations. */
static struct {
    const char *mod;
    struct lmql_val val;
} g_lmql_types[] = {
    {"lmql.runtime.program_state", {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"type", (void *)"ProgramState", NULL}}},
    {"lmql.language.qstrings", {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"type", (void *)"TemplateVariable", NULL}}},
};

#define COUNT(a) (sizeof a / sizeof *a)

/* from lmql.runtime.program_state import ProgramState (and the like):
** 1 when s is such an import (names bound), 0 when not, -1 on error. */
static int import_lmql_type(struct interp *I, const struct lmql_node *s) {
    const char *mod = s->u.import.module;
    if (!mod || s->u.import.level || strncmp(mod, "lmql.", 5)) return 0;
    bool known = false;
    for (size_t k = 0; k < COUNT(g_lmql_types); k++) known |= !strcmp(g_lmql_types[k].mod, mod);
    if (!known) return 0;
    const struct lmql_node_list *names = &s->u.import.names;
    for (int32_t i = 0; i < names->n; i++) {
        const struct lmql_node *a = names->items[i];
        struct lmql_val *v = NULL;
        for (size_t k = 0; k < COUNT(g_lmql_types); k++)
            if (!strcmp(g_lmql_types[k].mod, mod) && !strcmp(g_lmql_types[k].val.u.obj.ptr, a->u.alias.name))
                v = &g_lmql_types[k].val;
        if (!v)
            return lmql__fail(I, a, LMQL_ERR_QUERY, "cannot import name '%s' from '%s' (only the type names "
                              "ProgramState and TemplateVariable, for annotations)", a->u.alias.name, mod);
        if (lmql__set_name(I, a->u.alias.asname ? a->u.alias.asname : a->u.alias.name, v))
            return -1;
    }
    return 1;
}

static struct lmql_val *module_attr(const struct lmql_val *mod, const char *name) {
    if (lmql__is_std_module(mod)) return lmql__std_module_attr(mod, name);
    if (mod == &g_dataclasses) {
        for (size_t i = 0; i < COUNT(g_dataclasses_names); i++)
            if (!strcmp(g_dataclasses_names[i].u.func.name, name)) return &g_dataclasses_names[i];
        if (!strcmp(name, "MISSING")) return &lmql__missing;
    } else if (mod == &g_typing) {
        for (size_t i = 0; i < COUNT(g_typing_names); i++)
            if (!strcmp(g_typing_names[i].u.obj.ptr, name)) return &g_typing_names[i];
    }
    return NULL;
}

static bool is_class_module(const struct lmql_val *v) {
    return v == &g_dataclasses || v == &g_typing || lmql__is_std_module(v);
}

static struct lmql_val *find_module(const char *mod) {
    return !strcmp(mod, "dataclasses") ? &g_dataclasses : !strcmp(mod, "typing") ? &g_typing : lmql__std_module(mod);
}

#define IMPORTABLE "queries can import lmql, dataclasses, typing, json, math and re"

/* import M [as N] / from M import a [as b], ...: lmql, dataclasses, typing,
** json, math, re. */
int lmql__exec_import(struct interp *I, const struct lmql_node *s) {
    const struct lmql_node_list *names = &s->u.import.names;
    if (s->kind == LMQL_NODE_IMPORT) {
        for (int32_t i = 0; i < names->n; i++) {
            const struct lmql_node *a = names->items[i];
            const char *mod = a->u.alias.name;
            struct lmql_val *v = !strcmp(mod, "lmql") ? lmql__builtin("lmql") : find_module(mod);
            if (!v) return lmql__fail(I, s, LMQL_ERR_QUERY, "import of '%s' is not supported: " IMPORTABLE, mod);
            if ((a->u.alias.asname || v != lmql__builtin("lmql")) &&
                lmql__set_name(I, a->u.alias.asname ? a->u.alias.asname : mod, v))
                return -1;
        }
        return 0;
    }
    int t = import_lmql_type(I, s);
    if (t) return t < 0 ? -1 : 0;
    const char *mod = s->u.import.module;
    struct lmql_val *m = !mod || s->u.import.level ? NULL : find_module(mod);
    if (mod && !s->u.import.level && !strcmp(mod, "lmql"))
        return lmql__fail(I, s, LMQL_ERR_QUERY, "'from lmql import ...' is not supported; use 'import lmql'");
    if (!m)
        return lmql__fail(I, s, LMQL_ERR_QUERY, "import of '%s' is not supported: " IMPORTABLE,
                          mod && !s->u.import.level ? mod : ".");
    for (int32_t i = 0; i < names->n; i++) {
        const struct lmql_node *a = names->items[i];
        if (!strcmp(a->u.alias.name, "*"))
            return lmql__fail(I, a, LMQL_ERR_QUERY, "'from %s import *' is not supported: name what you import", mod);
        struct lmql_val *v = module_attr(m, a->u.alias.name);
        if (!v) {
            struct lmql__buf list = {0};
            if (lmql__is_std_module(m)) lmql__std_module_list(m, &list);
            lmql__fail(I, a, LMQL_ERR_QUERY, "cannot import name '%s' from '%s' (supported: %s)", a->u.alias.name, mod,
                       m == &g_dataclasses ? "dataclass, field, asdict, MISSING"
                       : m == &g_typing    ? "List, Dict, Optional, Literal, Union, Any, ClassVar, Tuple"
                                           : list.data ? list.data : "");
            lmql__buf_free(&list);
            return -1;
        }
        if (lmql__set_name(I, a->u.alias.asname ? a->u.alias.asname : a->u.alias.name, v)) return -1;
    }
    return 0;
}

/* ----------------------------------------------------------- dataclass -- */

/* Is this annotation ClassVar or ClassVar[...] (not a field)? */
static bool is_classvar(const struct lmql_node *ann) {
    if (ann->kind == LMQL_NODE_SUBSCRIPT) ann = ann->u.sub.obj;
    if (ann->kind == LMQL_NODE_NAME) return !strcmp(ann->u.name, "ClassVar");
    return ann->kind == LMQL_NODE_ATTR && !strcmp(ann->u.attr.name, "ClassVar");
}

/* Make cls a dataclass: its fields are the base dataclass's, then the
** names its body annotates (not ClassVar), in order; a default is the
** class attribute of that name or what field() gave. */
static struct lmql_val *make_dataclass(struct lmql_val *cls, unsigned flags, struct lmql__err *err) {
    if (cls->kind != LMQL_V_CLASS) return lmql__errp(err, "TypeError: dataclass() should be applied to a class");
    const struct lmql_val *base = cls->u.cls.base ? lmql__class_dc(cls->u.cls.base) : NULL;
    if (base && (base->u.cls.flags & LMQL_CLS_FROZEN) != (flags & LMQL_CLS_FROZEN))
        return lmql__errp(err, "TypeError: cannot inherit %s dataclass from a %s one",
                     flags & LMQL_CLS_FROZEN ? "frozen" : "non-frozen", flags & LMQL_CLS_FROZEN ? "non-frozen" : "frozen");
    struct lmql_val *fields = lmql__val_tuple(0);   /* fields never change once the class is made */
    if (!fields) return NULL;
    for (size_t i = 0; base && i < base->u.cls.fields->u.list.len; i++)
        if (lmql__list_push(fields, lmql__val_ref(base->u.cls.fields->u.list.items[i]))) goto oom;
    const struct lmql_node_list *body = &cls->u.cls.node->u.cls.body;
    for (int32_t k = 0; k < body->n; k++) {
        const struct lmql_node *st = body->items[k];
        if (st->kind != LMQL_NODE_ANNASSIGN || st->u.ann.target->kind != LMQL_NODE_NAME ||
            is_classvar(st->u.ann.annotation))
            continue;
        const char *name = st->u.ann.target->u.name;
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
        struct lmql_val *v = lmql__dict_get(cls->u.cls.attrs, &key);
        struct lmql_val *dflt = &lmql__missing, *factory = &lmql__none;
        if (v && is_field_spec(v)) {
            dflt = v->u.list.items[1];
            factory = v->u.list.items[2];
            /* the class attribute is the default, as Python sets it */
            if (dflt != &lmql__missing && lmql__dict_set(cls->u.cls.attrs, lmql__val_cstr(name), lmql__val_ref(dflt)))
                goto oom;
        } else if (v) {
            dflt = v;
        }
        if (dflt->kind == LMQL_V_LIST || dflt->kind == LMQL_V_DICT ||
            (dflt->kind == LMQL_V_INST && !lmql__val_hashable(dflt))) {
            lmql__val_unref(fields);
            return lmql__errp(err, "ValueError: mutable default <class '%s'> for field %s is not allowed: use default_factory",
                         lmql__val_type_name(dflt), name);
        }
        struct lmql_val *f = lmql__val_tuple(3);
        if (!f) goto oom;
        if (lmql__list_push(f, lmql__val_cstr(name)) | lmql__list_push(f, lmql__val_ref(dflt)) |
            lmql__list_push(f, lmql__val_ref(factory))) {
            lmql__val_unref(f);
            goto oom;
        }
        size_t at = 0;
        while (at < fields->u.list.len && !lmql__val_equal(fields->u.list.items[at]->u.list.items[0], &key)) at++;
        if (at < fields->u.list.len) {   /* redefined in a subclass: keeps its place */
            lmql__val_unref(fields->u.list.items[at]);
            fields->u.list.items[at] = f;
        } else if (lmql__list_push(fields, f)) {
            goto oom;
        }
    }
    if (flags & LMQL_CLS_INIT) {
        const char *seen = NULL;
        for (size_t i = 0; i < fields->u.list.len; i++) {
            struct lmql_val **f = fields->u.list.items[i]->u.list.items;
            bool has = f[1] != &lmql__missing || f[2] != &lmql__none;
            if (has && !seen) seen = f[0]->u.str.s;
            if (!has && seen) {
                lmql__errf(err, "TypeError: non-default argument '%s' follows default argument '%s'", f[0]->u.str.s, seen);
                lmql__val_unref(fields);   /* the names were in it */
                return NULL;
            }
        }
    }
    lmql__val_unref(cls->u.cls.fields);
    cls->u.cls.fields = fields;
    cls->u.cls.flags = flags | LMQL_CLS_DATACLASS;
    return lmql__val_ref(cls);
oom:
    lmql__val_unref(fields);
    return NULL;
}

#define DC_DEFAULT (LMQL_CLS_EQ | LMQL_CLS_REPR | LMQL_CLS_INIT)

static struct lmql_val *dataclass_apply_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                           struct lmql__err *err) {
    (void)ud;
    /* argv[0]: the options (an int of LMQL_CLS_* flags), bound by dataclass(...) */
    if (argc != 2 || names[1]) return lmql__errp(err, "TypeError: dataclass(...) takes the class");
    return make_dataclass(argv[1], (unsigned)argv[0]->u.i, err);
}

/* dataclass(cls), or dataclass(frozen=..., ...) giving the decorator. */
static struct lmql_val *dataclass_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                     struct lmql__err *err) {
    (void)ud;
    if (argc == 1 && !names[0]) return make_dataclass(argv[0], DC_DEFAULT, err);
    unsigned flags = DC_DEFAULT;
    static const struct { const char *name; unsigned flag; } opts[] = {
        {"frozen", LMQL_CLS_FROZEN}, {"eq", LMQL_CLS_EQ}, {"repr", LMQL_CLS_REPR}, {"init", LMQL_CLS_INIT}};
    for (int i = 0; i < argc; i++) {
        if (!names[i]) return lmql__errp(err, "TypeError: dataclass() takes the class or keyword options");
        size_t k = 0;
        while (k < COUNT(opts) && strcmp(opts[k].name, names[i])) k++;
        bool on = lmql__val_truthy(argv[i]);
        if (k < COUNT(opts)) {
            flags = on ? flags | opts[k].flag : flags & ~opts[k].flag;
        } else if (!strcmp(names[i], "order") || !strcmp(names[i], "unsafe_hash") || !strcmp(names[i], "kw_only") ||
                   !strcmp(names[i], "slots") || !strcmp(names[i], "weakref_slot") || !strcmp(names[i], "match_args")) {
            if (on && strcmp(names[i], "match_args"))
                return lmql__errp(err, "dataclass(%s=True) is not supported (frozen, eq, repr and init are)", names[i]);
        } else {
            return lmql__errp(err, "TypeError: dataclass() got an unexpected keyword argument '%s'", names[i]);
        }
    }
    struct lmql_val *opt = lmql__val_int((int64_t)flags);
    struct lmql_val *f = opt ? lmql__val_builtin("dataclass", dataclass_apply_fn, NULL, opt) : NULL;
    lmql__val_unref(opt);
    return f;
}

/* field(default=..., default_factory=...) */
static struct lmql_val *field_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                 struct lmql__err *err) {
    (void)ud;
    struct lmql_val *dflt = &lmql__missing, *factory = &lmql__none;
    for (int i = 0; i < argc; i++) {
        if (!names[i]) return lmql__errp(err, "TypeError: field() takes keyword arguments only");
        if (!strcmp(names[i], "default")) dflt = argv[i];
        else if (!strcmp(names[i], "default_factory")) {
            if (argv[i]->kind != LMQL_V_FUNC && argv[i]->kind != LMQL_V_CLASS)
                return lmql__errp(err, "TypeError: field(default_factory=...) must be callable");
            factory = argv[i];
        } else return lmql__errp(err, "field(%s=...) is not supported (default and default_factory are)", names[i]);
    }
    if (dflt != &lmql__missing && factory != &lmql__none)
        return lmql__errp(err, "ValueError: cannot specify both default and default_factory");
    struct lmql_val *t = lmql__val_tuple(3);
    if (!t) return NULL;
    if (lmql__list_push(t, &g_field_marker) | lmql__list_push(t, lmql__val_ref(dflt)) |
        lmql__list_push(t, lmql__val_ref(factory))) {
        lmql__val_unref(t);
        return NULL;
    }
    return t;
}

/* asdict(): fields to dicts, through lists, tuples and dicts, as copies. */
static struct lmql_val *asdict_at(struct lmql_val *v, int depth, struct lmql__err *err) {
    if (depth > LMQL_VAL_MAX_DEPTH) return lmql__errp(err, "RecursionError: maximum recursion depth exceeded in asdict()");
    const struct lmql_val *dc = v->kind == LMQL_V_INST ? lmql__class_dc(v->u.inst.cls) : NULL;
    if (dc) {
        struct lmql_val *d = lmql__val_dict();
        const struct lmql_val *fs = dc->u.cls.fields;
        for (size_t i = 0; d && i < fs->u.list.len; i++) {
            struct lmql_val *name = fs->u.list.items[i]->u.list.items[0];
            struct lmql_val *x = lmql__dict_get(v->u.inst.attrs, name);
            if (!x) continue;
            struct lmql_val *c = asdict_at(x, depth + 1, err);
            if (!c || lmql__dict_set(d, lmql__val_ref(name), c)) { lmql__val_unref(d); return NULL; }
        }
        return d;
    }
    if (v->kind == LMQL_V_LIST || v->kind == LMQL_V_TUPLE) {
        struct lmql_val *l = v->kind == LMQL_V_LIST ? lmql__val_list(v->u.list.len) : lmql__val_tuple(v->u.list.len);
        for (size_t i = 0; l && i < v->u.list.len; i++) {
            struct lmql_val *c = asdict_at(v->u.list.items[i], depth + 1, err);
            if (!c || lmql__list_push(l, c)) { lmql__val_unref(l); return NULL; }
        }
        return l;
    }
    if (v->kind == LMQL_V_DICT) {
        struct lmql_val *d = lmql__val_dict();
        for (size_t i = 0; d && i < v->u.dict.len; i++) {
            struct lmql_val *c = asdict_at(v->u.dict.vals[i], depth + 1, err);
            if (!c || lmql__dict_set(d, lmql__val_ref(v->u.dict.keys[i]), c)) { lmql__val_unref(d); return NULL; }
        }
        return d;
    }
    return lmql__val_ref(v);
}

static struct lmql_val *asdict_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                  struct lmql__err *err) {
    (void)ud;
    if (argc != 1 || names[0] || argv[0]->kind != LMQL_V_INST || !lmql__class_dc(argv[0]->u.inst.cls))
        return lmql__errp(err, "TypeError: asdict() should be called on dataclass instances");
    return asdict_at(argv[0], 0, err);
}

/* ------------------------------------------------------ class statement -- */

/* "a.b.c" of a dotted name, for messages. */
static const char *dotted(const struct lmql_node *n, char *buf, size_t cap) {
    if (n->kind == LMQL_NODE_NAME) {
        snprintf(buf, cap, "%s", n->u.name);
    } else if (n->kind == LMQL_NODE_ATTR) {
        char inner[200];
        snprintf(buf, cap, "%s.%s", dotted(n->u.attr.obj, inner, sizeof inner), n->u.attr.name);
    } else {
        snprintf(buf, cap, "...");
    }
    return buf;
}

/* The methods a class body may define: plain ones, @staticmethod,
** @property and @lmql.query; of the special methods __init__ and __post_init__ (others,
** such as __str__ or __eq__, would change what the value does without
** being called here, so they are refused). */
static int method_flags(struct interp *I, const struct lmql_node *def, unsigned *flags) {
    *flags = 0;
    const char *name = def->u.def.name;
    size_t n = strlen(name);
    if (n > 4 && !strncmp(name, "__", 2) && !strcmp(name + n - 2, "__") && strcmp(name, "__init__") &&
        strcmp(name, "__post_init__"))
        return lmql__fail(I, def, LMQL_ERR_QUERY,
                          "method %s is not supported: of the special methods, classes may define __init__ and "
                          "__post_init__",
                          name);
    for (int32_t i = 0; i < def->u.def.decorators.n; i++) {
        const struct lmql_node *d = def->u.def.decorators.items[i];
        const struct lmql_node *f = d->kind == LMQL_NODE_CALL ? d->u.call.func : d;
        /* @lmql.query(...) makes a query method: the parser took its docstring as the query, the call reads
        ** model= and decoder= */
        if (def->u.def.query && f->kind == LMQL_NODE_ATTR && !strcmp(f->u.attr.name, "query") &&
            f->u.attr.obj->kind == LMQL_NODE_NAME && !strcmp(f->u.attr.obj->u.name, "lmql"))
            continue;
        if (d->kind == LMQL_NODE_NAME && !strcmp(d->u.name, "staticmethod")) *flags |= LMQL_FUNC_STATIC;
        else if (d->kind == LMQL_NODE_NAME && !strcmp(d->u.name, "property")) *flags |= LMQL_FUNC_PROPERTY;
        else {
            char buf[256];
            return lmql__fail(I, d, LMQL_ERR_QUERY,
                              "decorator @%s on method %s is not supported (@staticmethod and @property are)",
                              dotted(d->kind == LMQL_NODE_CALL ? d->u.call.func : d, buf, sizeof buf), name);
        }
    }
    if (*flags == (LMQL_FUNC_STATIC | LMQL_FUNC_PROPERTY))
        return lmql__fail(I, def, LMQL_ERR_QUERY, "method %s cannot be both a staticmethod and a property", name);
    return 0;
}

/* The statements of a class body (the parser let only these through),
** with the class's attribute dict as the local scope. */
static int class_body(struct interp *I, struct lmql_val *cls) {
    const struct lmql_node_list *body = &cls->u.cls.node->u.cls.body;
    for (int32_t i = 0; i < body->n; i++) {
        const struct lmql_node *s = body->items[i];
        if (lmql__step(I, s)) return -1;
        struct lmql_val *v;
        int rc = 0;
        switch (s->kind) {
        case LMQL_NODE_EXPR_STMT:   /* a docstring */
        case LMQL_NODE_PASS:
            break;
        case LMQL_NODE_ANNASSIGN:
            if (!s->u.ann.value) break;   /* a field without a default */
            v = lmql__eval(I, s->u.ann.value);
            if (!v) return -1;
            rc = lmql__assign(I, s->u.ann.target, v);
            lmql__val_unref(v);
            break;
        case LMQL_NODE_ASSIGN:
            v = lmql__eval(I, s->u.assign.value);
            if (!v) return -1;
            for (int32_t k = 0; k < s->u.assign.targets.n && rc == 0; k++)
                rc = lmql__assign(I, s->u.assign.targets.items[k], v);
            lmql__val_unref(v);
            break;
        case LMQL_NODE_DEF: {
            unsigned flags;
            if (method_flags(I, s, &flags)) return -1;
            v = lmql__def_value(I, s);
            if (!v) return nomem(I, s), -1;
            v->u.func.flags = flags;
            rc = lmql__set_name(I, s->u.def.name, v);
            lmql__val_unref(v);
            break;
        }
        default:
            return lmql__fail(I, s, LMQL_ERR_QUERY, "'%s' statements are not supported in a class body",
                              lmql__node_kind_name(s->kind));
        }
        if (rc) return -1;
    }
    return 0;
}

int lmql__exec_class(struct interp *I, const struct lmql_node *s) {
    struct lmql_val *base = NULL;
    char buf[256];
    for (int32_t i = 0; i < s->u.cls.bases.n; i++) {
        const struct lmql_node *b = s->u.cls.bases.items[i];
        if (b->kind == LMQL_NODE_NAME && !strcmp(b->u.name, "object") && !lmql__lookup(I, "object")) continue;
        struct lmql_val *v = NULL;
        if (b->kind != LMQL_NODE_NAME || lmql__lookup(I, b->u.name)) {
            v = lmql__eval(I, b);
            if (!v) { lmql__val_unref(base); return -1; }
        }
        if (!v || v->kind != LMQL_V_CLASS) {
            lmql__val_unref(v);
            lmql__val_unref(base);
            return lmql__fail(I, b, LMQL_ERR_QUERY,
                              "base class %s of %s is not supported: a class may derive from object or from one class "
                              "of the query",
                              dotted(b, buf, sizeof buf), s->u.cls.name);
        }
        if (base) {
            lmql__val_unref(v);
            lmql__val_unref(base);
            return lmql__fail(I, b, LMQL_ERR_QUERY, "multiple inheritance is not supported (class %s)", s->u.cls.name);
        }
        base = v;
    }
    struct lmql_val *cls = lmql__val_class(s->u.cls.name, s, base);
    lmql__val_unref(base);
    if (!cls) return nomem(I, s), -1;
    /* The body runs with the class's dict as its scope (names of an
    ** enclosing def are not seen: only the class's and the globals). */
    struct lmql_val *saved = I->locals, *env0 = I->env;
    bool class_body0 = I->class_body;
    int rc = 0;
    if (saved && !class_body0) {
        /* a class inside a def: its methods see the def's scope */
        struct lmql_val *env = lmql__val_tuple(2);
        if (!env || lmql__list_push(env, lmql__val_ref(saved)) ||
            lmql__list_push(env, I->env ? lmql__val_ref(I->env) : &lmql__none)) {
            lmql__val_unref(env);
            rc = -1;
        }
        I->env = env;
    }
    I->locals = cls->u.cls.attrs;
    I->class_body = true;
    if (rc == 0) rc = class_body(I, cls);
    else nomem(I, s);
    if (I->env != env0) lmql__val_unref(I->env);
    I->env = env0;
    I->class_body = class_body0;
    I->locals = saved;
    /* decorators, innermost first: each is called with the class */
    for (int32_t i = s->u.cls.decorators.n - 1; rc == 0 && i >= 0; i--) {
        const struct lmql_node *d = s->u.cls.decorators.items[i];
        struct lmql_val *f = lmql__eval(I, d);
        struct lmql_val *out = NULL;
        if (f) {
            const char *none = NULL;
            out = lmql__call(I, d, f, 1, &cls, &none);
            lmql__val_unref(f);
        }
        lmql__val_unref(cls);
        cls = out;
        if (!cls) rc = -1;
    }
    if (rc == 0) rc = lmql__set_name(I, s->u.cls.name, cls);
    lmql__val_unref(cls);
    return rc;
}

/* ----------------------------------------------------------- instances -- */

/* "'a'", "'a' and 'b'", "'a', 'b', and 'c'": Python's list of missing arguments. */
static void name_list(char *out, size_t cap, const char **names, int n) {
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < n && k < cap; i++) {
        const char *sep = i == 0 ? "" : n == 2 ? " and " : i == n - 1 ? ", and " : ", ";
        int w = snprintf(out + k, cap - k, "%s'%s'", sep, names[i]);
        if (w < 0) break;
        k += (size_t)w;
    }
}

/* The __init__ @dataclass makes: the fields in order, by position or
** keyword, with their defaults. */
static int dataclass_init(struct interp *I, const struct lmql_node *at, const struct lmql_val *dc,
                          struct lmql_val *self, int argc, struct lmql_val **argv, const char **names) {
    const struct lmql_val *fs = dc->u.cls.fields;
    size_t n = fs->u.list.len;
    const char *cn = dc->u.cls.name;
    int np = 0;
    for (int i = 0; i < argc; i++) np += names[i] == NULL;
    if ((size_t)np > n)
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s.__init__() takes %zu positional argument%s but %d %s given",
                          cn, n + 1, n ? "s" : "", np + 1, np ? "were" : "was");
    struct lmql_val **vals = lmql__calloc(n ? n : 1, sizeof *vals);
    const char **missing = lmql__calloc(n ? n : 1, sizeof *missing);
    int rc = vals && missing ? 0 : (nomem(I, at), -1), n_missing = 0;
    for (int i = 0, p = 0; rc == 0 && i < argc; i++) {
        size_t k = 0;
        if (!names[i]) {
            k = (size_t)p++;
        } else {
            while (k < n && strcmp(fs->u.list.items[k]->u.list.items[0]->u.str.s, names[i])) k++;
            if (k == n) {
                rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s.__init__() got an unexpected keyword argument '%s'",
                                cn, names[i]);
                break;
            }
            if (vals[k]) {
                rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s.__init__() got multiple values for argument '%s'",
                                cn, names[i]);
                break;
            }
        }
        vals[k] = lmql__val_ref(argv[i]);
    }
    for (size_t k = 0; rc == 0 && k < n; k++)
        if (!vals[k] && fs->u.list.items[k]->u.list.items[1] == &lmql__missing &&
            fs->u.list.items[k]->u.list.items[2] == &lmql__none)
            missing[n_missing++] = fs->u.list.items[k]->u.list.items[0]->u.str.s;
    if (rc == 0 && n_missing) {
        char list[512];
        name_list(list, sizeof list, missing, n_missing);
        rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s.__init__() missing %d required positional argument%s: %s",
                        cn, n_missing, n_missing > 1 ? "s" : "", list);
    }
    for (size_t k = 0; rc == 0 && k < n; k++) {
        struct lmql_val **f = fs->u.list.items[k]->u.list.items;
        struct lmql_val *v = vals[k];
        vals[k] = NULL;
        if (!v && f[1] != &lmql__missing) v = lmql__val_ref(f[1]);
        if (!v) v = lmql__call(I, at, f[2], 0, NULL, NULL);   /* default_factory() */
        if (!v) { rc = -1; break; }
        if (lmql__dict_set(self->u.inst.attrs, lmql__val_ref(f[0]), v)) rc = (nomem(I, at), -1);
    }
    for (size_t k = 0; vals && k < n; k++) lmql__val_unref(vals[k]);
    free(vals);
    free(missing);
    return rc;
}

static int check_none(struct interp *I, const struct lmql_node *at, struct lmql_val *r, const char *what) {
    if (!r) return -1;
    int rc = r->kind == LMQL_V_NONE ? 0
             : lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() should return None, not '%s'", what,
                          lmql__val_type_name(r));
    lmql__val_unref(r);
    return rc;
}

struct lmql_val *lmql__class_call(struct interp *I, const struct lmql_node *at, struct lmql_val *cls, int argc,
                                  struct lmql_val **argv, const char **names) {
    struct lmql_val *self = lmql__val_inst(cls);
    if (!self) return nomem(I, at);
    /* __init__: the first class along the chain that defines one or had @dataclass make it */
    int rc = 0;
    const struct lmql_val *c = cls;
    for (; c; c = c->u.cls.base) {
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {"__init__", 8}};
        struct lmql_val *init = lmql__dict_get(c->u.cls.attrs, &key);
        if (init) {
            if (!is_script_fn(init) || (init->u.func.flags & (LMQL_FUNC_STATIC | LMQL_FUNC_PROPERTY))) {
                rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s.__init__ is not a method", c->u.cls.name);
                break;
            }
            rc = check_none(I, at, call_method(I, at, init, self, argc, argv, names), "__init__");
            break;
        }
        if ((c->u.cls.flags & LMQL_CLS_DATACLASS) && (c->u.cls.flags & LMQL_CLS_INIT)) {
            rc = dataclass_init(I, at, c, self, argc, argv, names);
            struct lmql_val *post = rc == 0 ? class_lookup(cls, "__post_init__") : NULL;
            if (post && is_script_fn(post)) rc = check_none(I, at, call_method(I, at, post, self, 0, NULL, NULL), "__post_init__");
            break;
        }
    }
    if (!c && argc)
        rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes no arguments", cls->u.cls.name);
    if (rc) {
        lmql__val_unref(self);
        return NULL;
    }
    return self;
}

/* ---------------------------------------------------------- attributes -- */

bool lmql__class_has_attrs(const struct lmql_val *obj) {
    return obj->kind == LMQL_V_INST || obj->kind == LMQL_V_CLASS || is_class_module(obj);
}

struct lmql_val *lmql__class_getattr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj,
                                     const char *name) {
    if (is_class_module(obj)) {
        struct lmql_val *v = module_attr(obj, name);
        if (!v)
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: module '%s' has no attribute '%s'",
                       (const char *)obj->u.obj.ptr, name);
        return v;
    }
    if (obj->kind == LMQL_V_CLASS) {
        if (!strcmp(name, "__name__")) {
            struct lmql_val *s = lmql__val_cstr(obj->u.cls.name);
            return s ? s : nomem(I, at);
        }
        struct lmql_val *v = class_lookup(obj, name);
        if (!v)
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: type object '%s' has no attribute '%s'",
                       obj->u.cls.name, name);
        return lmql__val_ref(v);
    }
    LMQL_ASSERT(obj->kind == LMQL_V_INST);
    if (!strcmp(name, "__class__")) return lmql__val_ref(obj->u.inst.cls);
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
    struct lmql_val *v = lmql__dict_get(obj->u.inst.attrs, &key);
    if (v) return lmql__val_ref(v);
    v = class_lookup(obj->u.inst.cls, name);
    if (!v) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: '%s' object has no attribute '%s'",
                   obj->u.inst.cls->u.cls.name, name);
        return NULL;
    }
    if (!is_script_fn(v) || (v->u.func.flags & LMQL_FUNC_STATIC)) return lmql__val_ref(v);
    if (v->u.func.flags & LMQL_FUNC_PROPERTY) return call_method(I, at, v, obj, 0, NULL, NULL);
    struct lmql_val *m = lmql__val_builtin(v->u.func.name, NULL, v->u.func.ud, obj);
    if (!m) return nomem(I, at);
    m->u.func.flags = LMQL_FUNC_BOUND;
    m->u.func.env = lmql__val_ref(v->u.func.env);
    return m;
}

int lmql__class_setattr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj, const char *name,
                        struct lmql_val *v) {
    struct lmql_val *attrs;
    if (obj->kind == LMQL_V_INST) {
        const struct lmql_val *dc = lmql__class_dc(obj->u.inst.cls);
        if (dc && (dc->u.cls.flags & LMQL_CLS_FROZEN))
            return lmql__fail(I, at, LMQL_ERR_RUNTIME, "dataclasses.FrozenInstanceError: cannot assign to field '%s'", name);
        const struct lmql_val *p = class_lookup(obj->u.inst.cls, name);
        if (p && is_script_fn(p) && (p->u.func.flags & LMQL_FUNC_PROPERTY))
            return lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: property '%s' of '%s' object has no setter", name,
                              obj->u.inst.cls->u.cls.name);
        attrs = obj->u.inst.attrs;
    } else if (obj->kind == LMQL_V_CLASS) {
        attrs = obj->u.cls.attrs;
    } else {
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: '%s' object has no attribute '%s'",
                          lmql__val_type_name(obj), name);
    }
    if (lmql__dict_set(attrs, lmql__val_cstr(name), lmql__val_ref(v))) return nomem(I, at), -1;
    return 0;
}
