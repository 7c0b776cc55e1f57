/*
** dataclass.c -- dataclasses as the types of holes (dataclass.h): finding
** the class a hole names, its JSON Schema from the annotations of its
** fields, and an instance from the JSON value generated under it.
**
** Both the schema and the conversion read a field's annotation through
** one classification (tform), so what the schema admits is exactly what
** the conversion takes.
*/
#include "dataclass.h"

#include "interp_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NEST 64          /* dataclasses inside dataclasses, base chains */
#define MAX_ALTS 16          /* alternatives of a Union */

/* ------------------------------------------------------ finding classes -- */

static const struct lmql_node *find_in(const struct lmql_node_list *b, const char *name) {
    for (int32_t i = 0; i < b->n; i++) {
        const struct lmql_node *s = b->items[i], *r = NULL;
        switch (s->kind) {
        case LMQL_NODE_CLASS:
            if (!strcmp(s->u.cls.name, name)) return s;
            break;
        case LMQL_NODE_IF:
        case LMQL_NODE_WHILE:
            if (!(r = find_in(&s->u.if_.body, name))) r = find_in(&s->u.if_.orelse, name);
            break;
        case LMQL_NODE_FOR:
            if (!(r = find_in(&s->u.for_.body, name))) r = find_in(&s->u.for_.orelse, name);
            break;
        case LMQL_NODE_TRY:
            if (!(r = find_in(&s->u.try_.body, name)) && !(r = find_in(&s->u.try_.handlers, name)) &&
                !(r = find_in(&s->u.try_.orelse, name)))
                r = find_in(&s->u.try_.finalbody, name);
            break;
        case LMQL_NODE_EXCEPT:
            r = find_in(&s->u.except_.body, name);
            break;
        default: break;
        }
        if (r) return r;
    }
    return NULL;
}

const struct lmql_node *lmql__class_find(const struct lmql_ast_query *q, const char *name) {
    for (; q; q = q->parent) {
        const struct lmql_node *r = find_in(&q->prologue, name);
        if (!r) r = find_in(&q->body, name);
        if (r) return r;
    }
    return NULL;
}

const struct lmql_node *lmql__class_node(const struct lmql_val *cls) {
    LMQL_ASSERT(cls->kind == LMQL_V_CLASS);
    return cls->u.cls.node;
}

static bool is_dataclass_node(const struct lmql_node *cls) {
    for (int32_t i = 0; i < cls->u.cls.decorators.n; i++) {
        const struct lmql_node *d = cls->u.cls.decorators.items[i];
        if (d->kind == LMQL_NODE_CALL) d = d->u.call.func;
        if ((d->kind == LMQL_NODE_NAME && !strcmp(d->u.name, "dataclass")) ||
            (d->kind == LMQL_NODE_ATTR && !strcmp(d->u.attr.name, "dataclass")))
            return true;
    }
    return false;
}

static bool is_classvar(const struct lmql_node *ann) {
    if (ann->kind == LMQL_NODE_SUBSCRIPT) ann = ann->u.sub.obj;
    if (ann->kind == LMQL_NODE_NAME) return !strcmp(ann->u.name, "ClassVar");
    return ann->kind == LMQL_NODE_ATTR && !strcmp(ann->u.attr.name, "ClassVar");
}

/* ------------------------------------------------------- annotations -- */

/* The annotation text, for messages. */
static void ann_text(struct lmql__buf *b, const struct lmql_node *t, int depth) {
    if (depth > 8) { lmql__buf_adds(b, "..."); return; }
    switch (t->kind) {
    case LMQL_NODE_NAME: lmql__buf_adds(b, t->u.name); break;
    case LMQL_NODE_NONE: lmql__buf_adds(b, "None"); break;
    case LMQL_NODE_INT: lmql__buf_addf(b, "%lld", (long long)t->u.i); break;
    case LMQL_NODE_STR: lmql__buf_adds(b, "'"); lmql__buf_add(b, t->u.str.text, t->u.str.len); lmql__buf_adds(b, "'"); break;
    case LMQL_NODE_ATTR: ann_text(b, t->u.attr.obj, depth + 1); lmql__buf_addf(b, ".%s", t->u.attr.name); break;
    case LMQL_NODE_SUBSCRIPT:
        ann_text(b, t->u.sub.obj, depth + 1);
        lmql__buf_adds(b, "[");
        ann_text(b, t->u.sub.index, depth + 1);
        lmql__buf_adds(b, "]");
        break;
    case LMQL_NODE_TUPLE:
        for (int32_t i = 0; i < t->u.items.n; i++) {
            if (i) lmql__buf_adds(b, ", ");
            ann_text(b, t->u.items.items[i], depth + 1);
        }
        break;
    case LMQL_NODE_BINOP:
        ann_text(b, t->u.bin.left, depth + 1);
        lmql__buf_addf(b, " %s ", lmql__binop_text(t->u.bin.op));
        ann_text(b, t->u.bin.right, depth + 1);
        break;
    default: lmql__buf_adds(b, "..."); break;
    }
}

enum tform { TF_INT, TF_FLOAT, TF_STR, TF_BOOL, TF_NONE, TF_LIST, TF_DICT, TF_UNION, TF_LITERAL, TF_CLASS };

struct tinfo {
    enum tform f;
    const struct lmql_node *item;                 /* LIST: the items' type; DICT: the values' */
    const struct lmql_node *alts[MAX_ALTS];       /* UNION: the alternatives (None as a NONE node) */
    int n_alts;
    const struct lmql_node_list *literals;        /* LITERAL: the values (one: a list of one) */
    const struct lmql_node *one_literal;
    const char *cls;                              /* CLASS: the name */
};

/* Where a field's type is, for messages: "field 'x' of Person". */
struct where {
    const char *field, *cls;
};

static int bad_type(struct lmql__err *e, const struct where *w, const struct lmql_node *t, const char *why) {
    struct lmql__buf b = {0};
    ann_text(&b, t, 0);
    lmql__err_set(e, LMQL_ERR_QUERY, &t->pos, "field '%s' of %s: %s%s%s", w->field, w->cls,
                  b.data ? b.data : "this type", why ? " " : "", why ? why : "");
    lmql__buf_free(&b);
    return -1;
}

#define NO_SCHEMA "has no JSON schema (use int, float, str, bool, None, list[T], dict[str, T], Optional[T], " \
                  "Union[...], Literal[...] or a dataclass)"

/* The name a type is written with: NAME, typing.NAME, or a string (a forward reference). */
static const char *type_name(const struct lmql_node *t) {
    if (t->kind == LMQL_NODE_NAME) return t->u.name;
    if (t->kind == LMQL_NODE_ATTR && t->u.attr.obj->kind == LMQL_NODE_NAME && !strcmp(t->u.attr.obj->u.name, "typing"))
        return t->u.attr.name;
    if (t->kind == LMQL_NODE_STR && t->u.str.len && strlen(t->u.str.text) == t->u.str.len) return t->u.str.text;
    return NULL;
}

static int add_alts(struct tinfo *ti, const struct lmql_node *t, const struct where *w, struct lmql__err *e) {
    if (t->kind == LMQL_NODE_BINOP && t->u.bin.op == LMQL_BINOP_BITOR)
        return add_alts(ti, t->u.bin.left, w, e) || add_alts(ti, t->u.bin.right, w, e) ? -1 : 0;
    if (ti->n_alts == MAX_ALTS) return bad_type(e, w, t, "makes a union of more than 16 types");
    ti->alts[ti->n_alts++] = t;
    return 0;
}

/* What the annotation t says, or -1 with e set. */
static int classify(const struct lmql_node *t, struct tinfo *ti, const struct where *w, struct lmql__err *e) {
    memset(ti, 0, sizeof *ti);
    if (t->kind == LMQL_NODE_NONE) { ti->f = TF_NONE; return 0; }
    if (t->kind == LMQL_NODE_BINOP && t->u.bin.op == LMQL_BINOP_BITOR) {
        ti->f = TF_UNION;
        return add_alts(ti, t, w, e);
    }
    const char *n = type_name(t);
    if (n) {
        static const struct { const char *name; enum tform f; } simple[] = {
            {"int", TF_INT}, {"float", TF_FLOAT}, {"str", TF_STR}, {"bool", TF_BOOL}};
        for (size_t i = 0; i < sizeof simple / sizeof *simple; i++)
            if (!strcmp(n, simple[i].name)) { ti->f = simple[i].f; return 0; }
        if (!strcmp(n, "list") || !strcmp(n, "List") || !strcmp(n, "dict") || !strcmp(n, "Dict"))
            return bad_type(e, w, t, "needs the type of its items (list[str], dict[str, int])");
        if (!strcmp(n, "Optional") || !strcmp(n, "Union") || !strcmp(n, "Literal") || !strcmp(n, "Any") ||
            !strcmp(n, "Tuple") || !strcmp(n, "tuple") || !strcmp(n, "ClassVar") || !strcmp(n, "object"))
            return bad_type(e, w, t, NO_SCHEMA);
        ti->f = TF_CLASS;
        ti->cls = n;
        return 0;
    }
    if (t->kind != LMQL_NODE_SUBSCRIPT || !(n = type_name(t->u.sub.obj)) || t->u.sub.obj->kind == LMQL_NODE_STR)
        return bad_type(e, w, t, NO_SCHEMA);
    const struct lmql_node *ix = t->u.sub.index;
    int32_t nargs = ix->kind == LMQL_NODE_TUPLE ? ix->u.items.n : 1;
    const struct lmql_node *const *args = ix->kind == LMQL_NODE_TUPLE ? (const struct lmql_node *const *)ix->u.items.items : &ix;
    if (!strcmp(n, "list") || !strcmp(n, "List")) {
        if (nargs != 1) return bad_type(e, w, t, "takes one type");
        ti->f = TF_LIST;
        ti->item = args[0];
        return 0;
    }
    if (!strcmp(n, "dict") || !strcmp(n, "Dict")) {
        if (nargs != 2) return bad_type(e, w, t, "takes two types");
        const char *k = type_name(args[0]);
        if (!k || strcmp(k, "str")) return bad_type(e, w, args[0], "cannot be the type of JSON keys (str can)");
        ti->f = TF_DICT;
        ti->item = args[1];
        return 0;
    }
    if (!strcmp(n, "Optional")) {
        if (nargs != 1) return bad_type(e, w, t, "takes one type");
        ti->f = TF_UNION;
        static const struct lmql_node none = {.kind = LMQL_NODE_NONE};
        if (add_alts(ti, args[0], w, e)) return -1;
        if (ti->n_alts == MAX_ALTS) return bad_type(e, w, t, "makes a union of more than 16 types");
        ti->alts[ti->n_alts++] = &none;
        return 0;
    }
    if (!strcmp(n, "Union")) {
        ti->f = TF_UNION;
        for (int32_t i = 0; i < nargs; i++)
            if (add_alts(ti, args[i], w, e)) return -1;
        return 0;
    }
    if (!strcmp(n, "Literal")) {
        for (int32_t i = 0; i < nargs; i++) {
            const struct lmql_node *a = args[i];
            if (a->kind == LMQL_NODE_UNARY && (a->u.unary.op == LMQL_UNOP_NEG || a->u.unary.op == LMQL_UNOP_POS))
                a = a->u.unary.operand;
            if (a->kind != LMQL_NODE_STR && a->kind != LMQL_NODE_INT && a->kind != LMQL_NODE_FLOAT &&
                a->kind != LMQL_NODE_BOOL && a->kind != LMQL_NODE_NONE)
                return bad_type(e, w, args[i], "is not a literal value (strings, numbers, True, False, None are)");
        }
        ti->f = TF_LITERAL;
        if (ix->kind == LMQL_NODE_TUPLE) ti->literals = &ix->u.items;
        else ti->one_literal = ix;
        return 0;
    }
    return bad_type(e, w, t, NO_SCHEMA);
}

/* The annotated fields of a dataclass statement, in Python's order: its
** base dataclass's first (a field annotated again keeps its place). */
struct field {
    const char *name;
    const struct lmql_node *ann;
};
struct fields {
    struct field *items;
    int32_t n;
};

static int collect_fields(const struct lmql_ast_query *q, const struct lmql_node *cls, struct fields *out, int depth,
                          struct lmql__err *e) {
    if (depth > MAX_NEST)
        return lmql__err_set(e, LMQL_ERR_QUERY, &cls->pos, "class %s: more than %d base classes", cls->u.cls.name, MAX_NEST);
    for (int32_t i = 0; i < cls->u.cls.bases.n; i++) {
        const struct lmql_node *b = cls->u.cls.bases.items[i];
        const struct lmql_node *bc = b->kind == LMQL_NODE_NAME && strcmp(b->u.name, "object") ? lmql__class_find(q, b->u.name) : NULL;
        if (bc && bc != cls && is_dataclass_node(bc) && collect_fields(q, bc, out, depth + 1, e)) return -1;
    }
    const struct lmql_node_list *body = &cls->u.cls.body;
    for (int32_t k = 0; k < body->n; k++) {
        const struct lmql_node *st = body->items[k];
        if (st->kind != LMQL_NODE_ANNASSIGN || st->u.ann.target->kind != LMQL_NODE_NAME || is_classvar(st->u.ann.annotation))
            continue;
        const char *name = st->u.ann.target->u.name;
        int32_t at = 0;
        while (at < out->n && strcmp(out->items[at].name, name)) at++;
        if (at == out->n) {
            struct field *f = lmql__realloc(out->items, ((size_t)out->n + 1) * sizeof *f);
            if (!f) return lmql__err_nomem(e);
            out->items = f;
            out->n++;
        }
        out->items[at] = (struct field){name, st->u.ann.annotation};
    }
    return 0;
}

/* ------------------------------------------------------------ schema -- */

struct sctx {
    const struct lmql_ast_query *q;
    struct lmql__err *e;
    const struct lmql_node *root;
    const struct lmql_node *stack[MAX_NEST];
    int depth;
    struct lmql_val *defs;          /* NAME -> schema, None while still to be made */
};

static struct lmql_val *sfail_nomem(struct sctx *c) {
    lmql__err_nomem(c->e);
    return NULL;
}

/* d[k] = v (v taken); -1 when out of memory. */
static int put(struct lmql_val *d, const char *k, struct lmql_val *v) { return lmql__dict_set(d, lmql__val_cstr(k), v); }

static struct lmql_val *one(const char *k, struct lmql_val *v) {
    struct lmql_val *d = lmql__val_dict();
    if (!d) { lmql__val_unref(v); return NULL; }
    if (put(d, k, v)) { lmql__val_unref(d); return NULL; }
    return d;
}

static struct lmql_val *type_schema(struct sctx *c, const struct lmql_node *t, const struct where *w);
static struct lmql_val *obj_schema(struct sctx *c, const struct lmql_node *cls, const struct lmql_node *at);

static struct lmql_val *ref_to(struct sctx *c, const struct lmql_node *cls) {
    if (cls == c->root) return one("$ref", lmql__val_cstr("#"));
    struct lmql__buf b = {0};
    lmql__buf_addf(&b, "#/$defs/%s", cls->u.cls.name);
    struct lmql_val *r = b.data ? one("$ref", lmql__val_cstr(b.data)) : NULL;
    lmql__buf_free(&b);
    return r;
}

static struct lmql_val *class_schema(struct sctx *c, const char *name, const struct lmql_node *at, const struct where *w) {
    const struct lmql_node *cls = lmql__class_find(c->q, name);
    if (!cls) {
        bad_type(c->e, w, at, "is not a type this query defines (use int, float, str, bool, None, list[T], "
                              "dict[str, T], Optional[T], Union[...], Literal[...] or a dataclass)");
        return NULL;
    }
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
    if (cls == c->root || (c->defs && lmql__dict_get(c->defs, &key))) return ref_to(c, cls);
    for (int i = 0; i < c->depth; i++)
        if (c->stack[i] == cls) {   /* inside itself: a definition of its own */
            if (!c->defs && !(c->defs = lmql__val_dict())) return sfail_nomem(c);
            if (put(c->defs, name, &lmql__none)) return sfail_nomem(c);
            return ref_to(c, cls);
        }
    return obj_schema(c, cls, at);
}

static struct lmql_val *type_schema(struct sctx *c, const struct lmql_node *t, const struct where *w) {
    struct tinfo ti;
    if (classify(t, &ti, w, c->e)) return NULL;
    static const char *const simple[] = {[TF_INT] = "integer", [TF_FLOAT] = "number", [TF_STR] = "string",
                                         [TF_BOOL] = "boolean", [TF_NONE] = "null"};
    struct lmql_val *d = NULL, *x;
    switch (ti.f) {
    case TF_INT: case TF_FLOAT: case TF_STR: case TF_BOOL: case TF_NONE:
        d = one("type", lmql__val_cstr(simple[ti.f]));
        break;
    case TF_LIST:
    case TF_DICT:
        if (!(x = type_schema(c, ti.item, w))) return NULL;
        d = one("type", lmql__val_cstr(ti.f == TF_LIST ? "array" : "object"));
        if (d && put(d, ti.f == TF_LIST ? "items" : "additionalProperties", x)) { lmql__val_unref(d); d = NULL; }
        else if (!d) lmql__val_unref(x);
        break;
    case TF_UNION: {
        struct lmql_val *l = lmql__val_list((size_t)ti.n_alts);
        if (!l) return sfail_nomem(c);
        for (int i = 0; i < ti.n_alts; i++) {
            if (!(x = type_schema(c, ti.alts[i], w))) { lmql__val_unref(l); return NULL; }
            if (lmql__list_push(l, x)) { lmql__val_unref(l); return sfail_nomem(c); }
        }
        d = one("anyOf", l);
        break;
    }
    case TF_LITERAL: {
        int32_t n = ti.literals ? ti.literals->n : 1;
        struct lmql_val *l = lmql__val_list((size_t)n);
        for (int32_t i = 0; l && i < n; i++) {
            const struct lmql_node *a = ti.literals ? ti.literals->items[i] : ti.one_literal;
            bool neg = a->kind == LMQL_NODE_UNARY && a->u.unary.op == LMQL_UNOP_NEG;
            if (a->kind == LMQL_NODE_UNARY) a = a->u.unary.operand;
            struct lmql_val *v;
            switch (a->kind) {
            case LMQL_NODE_STR: v = lmql__val_str(a->u.str.text, a->u.str.len); break;
            case LMQL_NODE_INT:
                if (neg && a->u.i == INT64_MIN) { lmql__val_unref(l); bad_type(c->e, w, a, "is out of range"); return NULL; }
                v = lmql__val_int(neg ? -a->u.i : a->u.i);
                break;
            case LMQL_NODE_FLOAT: v = lmql__val_float(neg ? -a->u.f : a->u.f); break;
            case LMQL_NODE_BOOL: v = lmql__val_bool(a->u.b); break;
            default: v = &lmql__none; break;
            }
            if (lmql__list_push(l, v)) { lmql__val_unref(l); l = NULL; }
        }
        d = l ? one("enum", l) : NULL;
        break;
    }
    case TF_CLASS:
        return class_schema(c, ti.cls, t, w);
    }
    return d ? d : sfail_nomem(c);
}

static struct lmql_val *obj_schema(struct sctx *c, const struct lmql_node *cls, const struct lmql_node *at) {
    if (!is_dataclass_node(cls)) {
        lmql__err_set(c->e, LMQL_ERR_QUERY, &at->pos, "class %s is not a dataclass: decorate it with @dataclass to use it as a type",
                      cls->u.cls.name);
        return NULL;
    }
    if (c->depth == MAX_NEST) {
        lmql__err_set(c->e, LMQL_ERR_QUERY, &at->pos, "dataclasses nested more than %d deep", MAX_NEST);
        return NULL;
    }
    struct fields fs = {NULL, 0};
    if (collect_fields(c->q, cls, &fs, 0, c->e)) { free(fs.items); return NULL; }
    c->stack[c->depth++] = cls;
    struct lmql_val *d = lmql__val_dict(), *props = lmql__val_dict(), *req = lmql__val_list((size_t)fs.n);
    bool failed = !d || !props || !req;
    if (failed) lmql__err_nomem(c->e);
    for (int32_t i = 0; !failed && i < fs.n; i++) {
        struct where w = {fs.items[i].name, cls->u.cls.name};
        struct lmql_val *x = type_schema(c, fs.items[i].ann, &w);
        failed = !x || put(props, fs.items[i].name, x) || lmql__list_push(req, lmql__val_cstr(fs.items[i].name));
        if (failed && x && !c->e->msg[0]) lmql__err_nomem(c->e);
    }
    c->depth--;
    free(fs.items);
    if (!failed && (put(d, "type", lmql__val_cstr("object")) || put(d, "properties", lmql__val_ref(props)) ||
                    put(d, "required", lmql__val_ref(req)) || put(d, "additionalProperties", &lmql__false))) {
        lmql__err_nomem(c->e);
        failed = true;
    }
    lmql__val_unref(props);
    lmql__val_unref(req);
    if (failed) { lmql__val_unref(d); return NULL; }
    return d;
}

struct lmql_val *lmql__class_schema(const struct lmql_ast_query *q, const struct lmql_node *cls, struct lmql__err *e) {
    LMQL_ASSERT(cls && cls->kind == LMQL_NODE_CLASS);
    memset(e, 0, sizeof *e);
    struct sctx c = {.q = q, .e = e, .root = cls};
    struct lmql_val *root = obj_schema(&c, cls, cls);
    /* The classes met inside themselves, each made once under $defs (more may come up while one is made). */
    for (size_t i = 0; root && c.defs && i < c.defs->u.dict.len; i++) {
        if (c.defs->u.dict.vals[i] != &lmql__none) continue;
        const struct lmql_node *dc = lmql__class_find(q, c.defs->u.dict.keys[i]->u.str.s);
        LMQL_ASSERT(dc != NULL);   /* it was found by this name before */
        struct lmql_val *x = obj_schema(&c, dc, dc);
        if (!x) { lmql__val_unref(root); root = NULL; break; }
        lmql__val_unref(c.defs->u.dict.vals[i]);
        c.defs->u.dict.vals[i] = x;
        i = (size_t)-1;   /* from the start: the dict may have grown */
    }
    if (root && c.defs && put(root, "$defs", lmql__val_ref(c.defs))) {
        lmql__val_unref(root);
        root = NULL;
        lmql__err_nomem(e);
    }
    lmql__val_unref(c.defs);
    return root;
}

/* ---------------------------------------------------------- instances -- */

/* The annotation of field `name` of a class value: the nearest class along
** its base chain that annotates it. */
static const struct lmql_node *field_ann(const struct lmql_val *cls, const char *name) {
    for (; cls; cls = cls->u.cls.base) {
        const struct lmql_node_list *body = &cls->u.cls.node->u.cls.body;
        for (int32_t k = body->n - 1; k >= 0; k--) {
            const struct lmql_node *st = body->items[k];
            if (st->kind == LMQL_NODE_ANNASSIGN && st->u.ann.target->kind == LMQL_NODE_NAME &&
                !strcmp(st->u.ann.target->u.name, name))
                return st->u.ann.annotation;
        }
    }
    return NULL;
}

static const char *json_kind(const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return "null";
    case LMQL_V_BOOL: return "boolean";
    case LMQL_V_INT: return "integer";
    case LMQL_V_FLOAT: return "number";
    case LMQL_V_NUM: return lmql__num_integral(v) ? "integer" : "number";
    case LMQL_V_STR: return "string";
    case LMQL_V_LIST: case LMQL_V_TUPLE: return "array";
    case LMQL_V_DICT: return "object";
    default: return lmql__val_type_name(v);
    }
}

static struct lmql_val *mismatch(struct interp *I, const struct lmql_node *at, const struct where *w,
                                 const struct lmql_node *t, const struct lmql_val *v) {
    struct lmql__buf b = {0};
    ann_text(&b, t, 0);
    lmql__fail(I, at, LMQL_ERR_RUNTIME, "field '%s' of %s: a JSON %s is no %s", w->field, w->cls, json_kind(v),
               b.data ? b.data : "value of its type");
    lmql__buf_free(&b);
    return NULL;
}

/* Could a value of this kind be of type t (for choosing a Union's alternative)? */
static bool may_be(const struct lmql_node *t, const struct lmql_val *v) {
    struct tinfo ti;
    struct where w = {"", ""};
    struct lmql__err e;
    if (classify(t, &ti, &w, &e)) return false;
    switch (ti.f) {
    case TF_INT: return v->kind == LMQL_V_INT || (v->kind == LMQL_V_NUM && lmql__num_integral(v));
    case TF_FLOAT: return v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT || v->kind == LMQL_V_NUM;
    case TF_STR: return v->kind == LMQL_V_STR;
    case TF_BOOL: return v->kind == LMQL_V_BOOL;
    case TF_NONE: return v->kind == LMQL_V_NONE;
    case TF_LIST: return v->kind == LMQL_V_LIST;
    case TF_DICT: case TF_CLASS: return v->kind == LMQL_V_DICT;
    case TF_LITERAL: {
        /* a literal of the value's kind (Optional[Literal["a"]] meets null) */
        int32_t n = ti.literals ? ti.literals->n : 1;
        for (int32_t i = 0; i < n; i++) {
            const struct lmql_node *a = ti.literals ? ti.literals->items[i] : ti.one_literal;
            if (a->kind == LMQL_NODE_UNARY) a = a->u.unary.operand;
            bool kind_ok = a->kind == LMQL_NODE_STR    ? v->kind == LMQL_V_STR
                           : a->kind == LMQL_NODE_INT   ? v->kind == LMQL_V_INT || v->kind == LMQL_V_NUM
                           : a->kind == LMQL_NODE_FLOAT ? v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT
                           : a->kind == LMQL_NODE_BOOL  ? v->kind == LMQL_V_BOOL
                                                        : v->kind == LMQL_V_NONE;
            if (kind_ok) return true;
        }
        return false;
    }
    case TF_UNION:
        for (int i = 0; i < ti.n_alts; i++)
            if (may_be(ti.alts[i], v)) return true;
        return false;
    }
    return false;
}

static struct lmql_val *instance_at(struct interp *I, const struct lmql_node *at, struct lmql_val *cls,
                                    const struct lmql_val *json, int depth);

static struct lmql_val *convert(struct interp *I, const struct lmql_node *at, const struct lmql_node *t,
                                const struct lmql_val *v, const struct where *w, int depth) {
    if (depth > LMQL_VAL_MAX_DEPTH) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "RecursionError: the value of %s is nested too deeply", w->cls);
        return NULL;
    }
    struct tinfo ti;
    struct lmql__err e = {0};
    if (classify(t, &ti, w, &e)) {
        lmql__fail(I, at, e.status, "%s", e.msg);
        return NULL;
    }
    struct lmql_val *out;
    switch (ti.f) {
    case TF_INT:
    case TF_STR:
    case TF_BOOL:
    case TF_NONE:
        if (!may_be(t, v)) return mismatch(I, at, w, t, v);
        return lmql__val_ref((struct lmql_val *)v);
    case TF_FLOAT:
        /* an exact number stays exact: a double would make it inf, 0 or round it */
        if (v->kind == LMQL_V_FLOAT || v->kind == LMQL_V_NUM) return lmql__val_ref((struct lmql_val *)v);
        if (v->kind != LMQL_V_INT) return mismatch(I, at, w, t, v);
        out = lmql__val_float((double)v->u.i);
        break;
    case TF_LIST:
        if (v->kind != LMQL_V_LIST) return mismatch(I, at, w, t, v);
        out = lmql__val_list(v->u.list.len);
        for (size_t i = 0; out && i < v->u.list.len; i++) {
            struct lmql_val *x = convert(I, at, ti.item, v->u.list.items[i], w, depth + 1);
            if (!x) { lmql__val_unref(out); return NULL; }
            if (lmql__list_push(out, x)) { lmql__val_unref(out); out = NULL; }
        }
        break;
    case TF_DICT:
        if (v->kind != LMQL_V_DICT) return mismatch(I, at, w, t, v);
        out = lmql__val_dict();
        for (size_t i = 0; out && i < v->u.dict.len; i++) {
            struct lmql_val *x = convert(I, at, ti.item, v->u.dict.vals[i], w, depth + 1);
            if (!x) { lmql__val_unref(out); return NULL; }
            if (lmql__dict_set(out, lmql__val_ref(v->u.dict.keys[i]), x)) { lmql__val_unref(out); out = NULL; }
        }
        break;
    case TF_UNION:
        for (int i = 0; i < ti.n_alts; i++)
            if (may_be(ti.alts[i], v)) return convert(I, at, ti.alts[i], v, w, depth + 1);
        return mismatch(I, at, w, t, v);
    case TF_LITERAL: {
        int32_t n = ti.literals ? ti.literals->n : 1;
        for (int32_t i = 0; i < n; i++) {
            struct lmql_val *lit = lmql__eval(I, ti.literals ? ti.literals->items[i] : ti.one_literal);
            if (!lit) return NULL;
            bool eq = lmql__val_equal(lit, v) && (lit->kind == LMQL_V_BOOL) == (v->kind == LMQL_V_BOOL);
            lmql__val_unref(lit);
            if (eq) return lmql__val_ref((struct lmql_val *)v);
        }
        return mismatch(I, at, w, t, v);
    }
    case TF_CLASS: {
        struct lmql_val *c = lmql__lookup(I, ti.cls);
        if (!c || c->kind != LMQL_V_CLASS) {
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "field '%s' of %s: %s is not a class here", w->field, w->cls, ti.cls);
            return NULL;
        }
        if (v->kind != LMQL_V_DICT) return mismatch(I, at, w, t, v);
        return instance_at(I, at, c, v, depth + 1);
    }
    default:
        return mismatch(I, at, w, t, v);
    }
    if (!out) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    return out;
}

static struct lmql_val *instance_at(struct interp *I, const struct lmql_node *at, struct lmql_val *cls,
                                    const struct lmql_val *json, int depth) {
    const struct lmql_val *dc = lmql__class_dc(cls);
    if (!dc) {
        lmql__fail(I, at, LMQL_ERR_QUERY, "class %s is not a dataclass: decorate it with @dataclass to use it as a type",
                   cls->u.cls.name);
        return NULL;
    }
    if (json->kind != LMQL_V_DICT) {
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "a value of %s must be a JSON object, not a JSON %s", cls->u.cls.name,
                   json_kind(json));
        return NULL;
    }
    const struct lmql_val *fs = dc->u.cls.fields;
    size_t n = json->u.dict.len;
    struct lmql_val **argv = lmql__calloc(n ? n : 1, sizeof *argv);
    const char **names = lmql__calloc(n ? n : 1, sizeof *names);
    struct lmql_val *out = NULL;
    int rc = argv && names ? 0 : lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct lmql_val *k = json->u.dict.keys[i];
        size_t f = 0;
        while (k->kind == LMQL_V_STR && f < fs->u.list.len && !lmql__val_equal(fs->u.list.items[f]->u.list.items[0], k)) f++;
        if (k->kind != LMQL_V_STR || f == fs->u.list.len) {
            struct lmql__buf b = {0};
            lmql__val_repr_into(&b, k);
            rc = lmql__fail(I, at, LMQL_ERR_RUNTIME, "%s has no field %s", cls->u.cls.name, b.data ? b.data : "?");
            lmql__buf_free(&b);
            break;
        }
        names[i] = k->u.str.s;
        struct where w = {names[i], cls->u.cls.name};
        const struct lmql_node *ann = field_ann(cls, names[i]);
        LMQL_ASSERT(ann != NULL);   /* every field of a class value comes from an annotation of its chain */
        if (!(argv[i] = convert(I, at, ann, json->u.dict.vals[i], &w, depth))) rc = -1;
    }
    if (rc == 0) out = lmql__class_call(I, at, cls, (int)n, argv, names);
    for (size_t i = 0; argv && i < n; i++) lmql__val_unref(argv[i]);
    free(argv);
    free(names);
    return out;
}

struct lmql_val *lmql__class_instance(struct interp *I, const struct lmql_node *at, struct lmql_val *cls,
                                      const struct lmql_val *json) {
    LMQL_ASSERT(cls && cls->kind == LMQL_V_CLASS);
    return instance_at(I, at, cls, json, 0);
}
