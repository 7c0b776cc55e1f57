/*
** Runtime values: construction, reference counting, equality, ordering
** and the three text forms (str, repr, JSON).
*/
#include "value.h"

#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmql_val lmql__none = {.kind = LMQL_V_NONE, .refs = -1};
struct lmql_val lmql__true = {.kind = LMQL_V_BOOL, .refs = -1, .u.b = true};
struct lmql_val lmql__false = {.kind = LMQL_V_BOOL, .refs = -1, .u.b = false};
struct lmql_val lmql__missing = {.kind = LMQL_V_OBJ, .refs = -1, .u.obj = {"dataclasses.MISSING", NULL, NULL}};

/* ---------------------------------------------------------------------
** Containers that can hold references (lists, tuples, dicts, functions
** with a bound receiver) carry a header in front of the value: the links
** of the registry of the run that made them. Reference counting alone
** never frees a cycle (`a = []; a.append(a)`); at the end of a run the
** registry finds the containers that nothing outside the registry holds
** (CPython's trial deletion) and frees them.
*/
struct gc_node {
    struct gc_node *prev, *next;
    struct lmql__gc *owner;          /* NULL: untracked (made outside a run, or a survivor) */
    intptr_t gc_refs;                /* scratch of a collection */
    struct lmql_val v;
};
#define NODE(p) ((struct gc_node *)((char *)(p) - offsetof(struct gc_node, v)))

struct lmql__gc {
    pthread_mutex_t mu;              /* the threads of one run share its registry */
    struct gc_node head;             /* circular list sentinel */
    size_t n;
};

static _Thread_local struct lmql__gc *gc_current;

static bool tracked_kind(enum lmql_val_kind k) {
    return k == LMQL_V_LIST || k == LMQL_V_TUPLE || k == LMQL_V_DICT || k == LMQL_V_FUNC || k == LMQL_V_CLASS ||
           k == LMQL_V_INST;
}

static void gc_link(struct gc_node *n, struct lmql__gc *g) {
    n->owner = g;
    if (!g) { n->prev = n->next = NULL; return; }
    pthread_mutex_lock(&g->mu);
    n->next = g->head.next;
    n->prev = &g->head;
    g->head.next->prev = n;
    g->head.next = n;
    g->n++;
    pthread_mutex_unlock(&g->mu);
}

static void gc_unlink(struct gc_node *n) {
    struct lmql__gc *g = n->owner;
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    LMQL_ASSERT(g->n > 0 && n->prev && n->next);   /* a member is linked in its registry */
    n->prev->next = n->next;
    n->next->prev = n->prev;
    g->n--;
    pthread_mutex_unlock(&g->mu);
    n->owner = NULL;
    n->prev = n->next = NULL;
}

struct lmql__gc *lmql__gc_new(void) {
    struct lmql__gc *g = lmql__calloc(1, sizeof *g);
    if (!g) return NULL;
    if (pthread_mutex_init(&g->mu, NULL)) { free(g); return NULL; }
    g->head.next = g->head.prev = &g->head;
    return g;
}

struct lmql__gc *lmql__gc_enter(struct lmql__gc *g) {
    struct lmql__gc *prev = gc_current;
    gc_current = g;
    return prev;
}

struct lmql__gc *lmql__gc_current(void) { return gc_current; }

static struct lmql_val *val_new(enum lmql_val_kind k) {
    struct lmql_val *v;
    if (tracked_kind(k)) {
        struct gc_node *n = lmql__calloc(1, sizeof *n);
        if (!n) return NULL;
        gc_link(n, gc_current);
        v = &n->v;
    } else {
        v = lmql__calloc(1, sizeof *v);
        if (!v) return NULL;
    }
    v->kind = k;
    v->refs = 1;
    return v;
}

struct lmql_val *lmql__val_ref(struct lmql_val *v) {
    LMQL_ASSERT(!v || v->refs != 0);   /* 0: a freed value (static ones are < 0) */
    if (v && v->refs > 0) v->refs++;
    return v;
}

/* Drop the references a value holds (its contents), leaving it empty. */
static void clear_contents(struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_STR:
    case LMQL_V_NUM: free(v->u.str.s); v->u.str.s = NULL; v->u.str.len = 0; break;
    case LMQL_V_LIST:
    case LMQL_V_TUPLE: {
        struct lmql_val **items = v->u.list.items;
        size_t n = v->u.list.len;
        v->u.list.items = NULL;
        v->u.list.len = v->u.list.cap = 0;
        for (size_t i = 0; i < n; i++) lmql__val_unref(items[i]);
        free(items);
        break;
    }
    case LMQL_V_DICT: {
        struct lmql_val **k = v->u.dict.keys, **x = v->u.dict.vals;
        size_t n = v->u.dict.len;
        v->u.dict.keys = v->u.dict.vals = NULL;
        v->u.dict.len = v->u.dict.cap = 0;
        free(v->u.dict.ix);
        v->u.dict.ix = NULL;
        for (size_t i = 0; i < n; i++) {
            lmql__val_unref(k[i]);
            lmql__val_unref(x[i]);
        }
        free(k);
        free(x);
        break;
    }
    case LMQL_V_FUNC: {
        struct lmql_val *self = v->u.func.self, *env = v->u.func.env;
        v->u.func.self = v->u.func.env = NULL;
        lmql__val_unref(self);
        lmql__val_unref(env);
        break;
    }
    case LMQL_V_OBJ:
        if (v->u.obj.free) v->u.obj.free(v->u.obj.ptr);
        v->u.obj.free = NULL;
        break;
    case LMQL_V_CLASS: {
        struct lmql_val *base = v->u.cls.base, *attrs = v->u.cls.attrs, *fields = v->u.cls.fields;
        v->u.cls.base = v->u.cls.attrs = v->u.cls.fields = NULL;
        lmql__val_unref(base);
        lmql__val_unref(attrs);
        lmql__val_unref(fields);
        break;
    }
    case LMQL_V_INST: {
        struct lmql_val *cls = v->u.inst.cls, *attrs = v->u.inst.attrs;
        v->u.inst.cls = v->u.inst.attrs = NULL;
        lmql__val_unref(cls);
        lmql__val_unref(attrs);
        break;
    }
    default: break;
    }
}

/* Freeing a container frees its items, which may be containers: a list
** nested 100,000 deep would recurse 100,000 frames. Past a small depth the
** containers to free are queued (through their free header) and freed by
** the outermost call, one after another (CPython's trashcan). */
#define TRASH_DEPTH 50
static _Thread_local int trash_depth;
static _Thread_local struct gc_node *trash;

static void free_value(struct lmql_val *v) {
    LMQL_ASSERT(v->refs == 0);   /* the last reference went */
    if (!tracked_kind(v->kind)) {
        clear_contents(v);
        free(v);
        return;
    }
    struct gc_node *n = NODE(v);
    gc_unlink(n);
    if (trash_depth >= TRASH_DEPTH) {
        n->next = trash;
        trash = n;
        return;
    }
    trash_depth++;
    clear_contents(v);
    free(n);
    if (trash_depth == 1) {
        while (trash) {
            n = trash;
            trash = n->next;
            clear_contents(&n->v);
            free(n);
        }
    }
    trash_depth--;
}

void lmql__val_unref(struct lmql_val *v) {
    LMQL_ASSERT(!v || v->refs != 0);   /* unreferencing a freed value */
    if (!v || v->refs < 0 || --v->refs > 0) return;
    free_value(v);
}

/* The references a tracked container holds, for the collector. */
static void each_child(struct lmql_val *v, void (*fn)(struct lmql_val *c, void *ud), void *ud) {
    switch (v->kind) {
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        for (size_t i = 0; i < v->u.list.len; i++) fn(v->u.list.items[i], ud);
        break;
    case LMQL_V_DICT:
        for (size_t i = 0; i < v->u.dict.len; i++) {
            fn(v->u.dict.keys[i], ud);
            fn(v->u.dict.vals[i], ud);
        }
        break;
    case LMQL_V_FUNC:
        if (v->u.func.self) fn(v->u.func.self, ud);
        if (v->u.func.env) fn(v->u.func.env, ud);
        break;
    case LMQL_V_CLASS:
        if (v->u.cls.base) fn(v->u.cls.base, ud);
        if (v->u.cls.attrs) fn(v->u.cls.attrs, ud);
        if (v->u.cls.fields) fn(v->u.cls.fields, ud);
        break;
    case LMQL_V_INST:
        if (v->u.inst.cls) fn(v->u.inst.cls, ud);
        if (v->u.inst.attrs) fn(v->u.inst.attrs, ud);
        break;
    default: break;
    }
}

static struct gc_node *member(struct lmql_val *c, struct lmql__gc *g) {
    if (!c || c->refs <= 0 || !tracked_kind(c->kind)) return NULL;
    struct gc_node *n = NODE(c);
    return n->owner == g ? n : NULL;
}

static void subtract_internal(struct lmql_val *c, void *ud) {
    struct gc_node *n = member(c, ud);
    if (n) n->gc_refs--;
}

struct mark_ctx {
    struct lmql__gc *g;
    struct gc_node **stack;
    size_t n;
};

static void mark_child(struct lmql_val *c, void *ud) {
    struct mark_ctx *m = ud;
    struct gc_node *n = member(c, m->g);
    if (n && n->gc_refs >= 0) {
        n->gc_refs = -1;   /* reachable */
        m->stack[m->n++] = n;
    }
}

void lmql__gc_finish(struct lmql__gc *g) {
    if (!g) return;
    if (gc_current == g) gc_current = NULL;
    /* Trial deletion: references not held by containers of this registry
    ** come from outside (results, host values); everything reachable
    ** from those is alive, the rest is garbage (cycles included). */
    size_t n = g->n, k = 0;
    struct gc_node **all = n ? lmql__malloc(n * sizeof *all) : NULL;
    struct gc_node **stack = n ? lmql__malloc(n * sizeof *stack) : NULL;
    if (n && (!all || !stack)) {
        free(all);
        free(stack);
        all = stack = NULL;   /* out of memory: nothing is collected, survivors are untracked below */
        n = 0;
    }
    for (struct gc_node *p = g->head.next; n && p != &g->head; p = p->next) {
        p->gc_refs = p->v.refs;
        all[k++] = p;
    }
    LMQL_ASSERT(k == n);   /* g->n counts the members; nothing runs in the registry now */
    for (size_t i = 0; i < n; i++) each_child(&all[i]->v, subtract_internal, g);
    struct mark_ctx m = {g, stack, 0};
    for (size_t i = 0; i < n; i++)
        if (all[i]->gc_refs > 0) {
            all[i]->gc_refs = -1;
            stack[m.n++] = all[i];
        }
    while (m.n) {
        struct gc_node *p = stack[--m.n];
        each_child(&p->v, mark_child, &m);
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        if (all[i]->gc_refs >= 0) all[ng++] = all[i];   /* garbage, in place */
    /* Hold each garbage container while all are emptied, so none is
    ** freed half-way; then the last references go. */
    for (size_t i = 0; i < ng; i++) all[i]->v.refs++;
    for (size_t i = 0; i < ng; i++) clear_contents(&all[i]->v);
    for (size_t i = 0; i < ng; i++) lmql__val_unref(&all[i]->v);
    free(all);
    free(stack);
    /* The survivors (results) go on as plain reference-counted values. */
    while (g->head.next != &g->head) gc_unlink(g->head.next);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

struct lmql_val *lmql__val_bool(bool b) { return b ? &lmql__true : &lmql__false; }

struct lmql_val *lmql__val_int(int64_t i) {
    struct lmql_val *v = val_new(LMQL_V_INT);
    if (v) v->u.i = i;
    return v;
}

struct lmql_val *lmql__val_float(double f) {
    struct lmql_val *v = val_new(LMQL_V_FLOAT);
    if (v) v->u.f = f;
    return v;
}

struct lmql_val *lmql__val_str(const char *s, size_t len) {
    struct lmql_val *v = val_new(LMQL_V_STR);
    if (!v) return NULL;
    v->u.str.s = lmql__malloc(len + 1);
    if (!v->u.str.s) { free(v); return NULL; }
    if (len) memcpy(v->u.str.s, s, len);
    v->u.str.s[len] = 0;
    v->u.str.len = len;
    return v;
}

struct lmql_val *lmql__val_cstr(const char *s) { return lmql__val_str(s, strlen(s)); }

struct lmql_val *lmql__val_num(const char *s, size_t len) {
    struct lmql_val *v = lmql__val_str(s, len);
    if (v) v->kind = LMQL_V_NUM;
    return v;
}

bool lmql__num_integral(const struct lmql_val *v) {
    LMQL_ASSERT(v->kind == LMQL_V_NUM);
    return !memchr(v->u.str.s, '.', v->u.str.len) && !memchr(v->u.str.s, 'e', v->u.str.len) &&
           !memchr(v->u.str.s, 'E', v->u.str.len);
}

static struct lmql_val *seq_new(enum lmql_val_kind k, size_t cap) {
    struct lmql_val *v = val_new(k);
    if (!v) return NULL;
    if (cap) {
        v->u.list.items = lmql__malloc(cap * sizeof *v->u.list.items);
        if (!v->u.list.items) { lmql__val_unref(v); return NULL; }
        v->u.list.cap = cap;
    }
    return v;
}
struct lmql_val *lmql__val_list(size_t cap) { return seq_new(LMQL_V_LIST, cap); }
struct lmql_val *lmql__val_tuple(size_t cap) { return seq_new(LMQL_V_TUPLE, cap); }
struct lmql_val *lmql__val_dict(void) { return val_new(LMQL_V_DICT); }

struct lmql_val *lmql__val_builtin(const char *name, lmql__builtin_fn fn, void *ud, struct lmql_val *self) {
    struct lmql_val *v = val_new(LMQL_V_FUNC);
    if (!v) return NULL;
    v->u.func.name = name;
    v->u.func.fn = fn;
    v->u.func.ud = ud;
    v->u.func.self = lmql__val_ref(self);
    return v;
}

struct lmql_val *lmql__val_class(const char *name, const struct lmql_node *node, struct lmql_val *base) {
    struct lmql_val *v = val_new(LMQL_V_CLASS);
    if (!v) return NULL;
    v->u.cls.name = name;
    v->u.cls.node = node;
    v->u.cls.base = lmql__val_ref(base);
    v->u.cls.attrs = lmql__val_dict();
    if (!v->u.cls.attrs) { lmql__val_unref(v); return NULL; }
    return v;
}

struct lmql_val *lmql__val_inst(struct lmql_val *cls) {
    LMQL_ASSERT(cls && cls->kind == LMQL_V_CLASS);
    struct lmql_val *v = val_new(LMQL_V_INST);
    if (!v) return NULL;
    v->u.inst.cls = lmql__val_ref(cls);
    v->u.inst.attrs = lmql__val_dict();
    if (!v->u.inst.attrs) { lmql__val_unref(v); return NULL; }
    return v;
}

const struct lmql_val *lmql__class_dc(const struct lmql_val *cls) {
    /* Base chains are short: each base was a class when its subclass was made, so there is no cycle. */
    for (; cls; cls = cls->u.cls.base)
        if (cls->u.cls.flags & LMQL_CLS_DATACLASS) return cls;
    return NULL;
}

/* The fields of a dataclass instance (a tuple of (name, default, factory)),
** with its dataclass's flags in *flags; NULL for other instances. */
static const struct lmql_val *inst_fields(const struct lmql_val *v, unsigned *flags) {
    const struct lmql_val *dc = lmql__class_dc(v->u.inst.cls);
    if (flags) *flags = dc ? dc->u.cls.flags : 0;
    return dc ? dc->u.cls.fields : NULL;
}

/* The value of field i of a dataclass instance, as getattr finds it: its
** own attribute, else its class's (a field of init=False); borrowed, NULL
** when neither has one. A field() spec in a class (class.c) is no value. */
static struct lmql_val *field_value(const struct lmql_val *v, const struct lmql_val *fields, size_t i) {
    const struct lmql_val *name = fields->u.list.items[i]->u.list.items[0];
    struct lmql_val *x = lmql__dict_get(v->u.inst.attrs, name);
    for (const struct lmql_val *c = v->u.inst.cls; !x && c; c = c->u.cls.base) {
        x = lmql__dict_get(c->u.cls.attrs, name);
        if (x && x->kind == LMQL_V_TUPLE && x->u.list.len == 3 && x->u.list.items[0]->kind == LMQL_V_OBJ &&
            !strcmp(x->u.list.items[0]->u.obj.type, "dataclasses.Field"))
            return NULL;
    }
    return x;
}

struct lmql_val *lmql__val_obj(const char *type, void *ptr, void (*free_fn)(void *)) {
    struct lmql_val *v = val_new(LMQL_V_OBJ);
    if (!v) { if (free_fn) free_fn(ptr); return NULL; }
    v->u.obj.type = type;
    v->u.obj.ptr = ptr;
    v->u.obj.free = free_fn;
    return v;
}

int lmql__list_push(struct lmql_val *list, struct lmql_val *item) {
    /* A list whose allocation failed takes nothing (the run ends with "out of
    ** memory": alloc.c counted the failure). */
    if (!list) {
        lmql__val_unref(item);
        return -1;
    }
    LMQL_ASSERT(list->kind == LMQL_V_LIST || list->kind == LMQL_V_TUPLE);
    if (!item) return -1;
    if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        struct lmql_val **p = lmql__realloc(list->u.list.items, cap * sizeof *p);
        if (!p) { lmql__val_unref(item); return -1; }
        list->u.list.items = p;
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.len++] = item;
    return 0;
}

/* ------------------------------------------------------------ hashing --
** Dicts keep insertion order in keys/vals and, from DICT_INDEX_MIN entries
** on, an open-addressing index of entry numbers by key hash: a scope with
** 100,000 names is a dict, and a linear scan per lookup made programs
** quadratic in their number of variables. Equal values hash alike
** (1 == 1.0 == True). */
#define DICT_INDEX_MIN 8

struct dict_ix {
    size_t mask;                     /* slots - 1, slots a power of two */
    uint32_t slot[];                 /* entry + 1, 0 = empty */
};

static uint64_t mix(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static uint64_t hash_at(const struct lmql_val *v, int depth) {
    switch (v->kind) {
    case LMQL_V_NONE: return 0x9e3779b97f4a7c15ull;
    case LMQL_V_BOOL: return mix((uint64_t)v->u.b);
    case LMQL_V_INT: return mix((uint64_t)v->u.i);
    case LMQL_V_FLOAT: {
        double f = v->u.f;
        if (f == floor(f) && f >= -9223372036854775808.0 && f < 9223372036854775808.0) return mix((uint64_t)(int64_t)f);
        uint64_t bits;
        memcpy(&bits, &f, sizeof bits);
        return mix(bits);
    }
    case LMQL_V_STR:
    case LMQL_V_NUM: {
        uint64_t h = 0xcbf29ce484222325ull;   /* FNV-1a */
        for (size_t i = 0; i < v->u.str.len; i++) h = (h ^ (unsigned char)v->u.str.s[i]) * 0x100000001b3ull;
        return mix(h);
    }
    case LMQL_V_TUPLE: {
        uint64_t h = 0x345678;
        /* Past the depth limit the rest of a (very deep) tuple does not
        ** count: still equal values hash alike. */
        if (depth < LMQL_VAL_MAX_DEPTH)
            for (size_t i = 0; i < v->u.list.len; i++) h = mix(h * 1000003u ^ hash_at(v->u.list.items[i], depth + 1));
        return h;
    }
    case LMQL_V_INST: {
        unsigned fl;
        const struct lmql_val *fs = inst_fields(v, &fl);
        if (!fs || !(fl & LMQL_CLS_EQ)) return mix((uint64_t)(uintptr_t)v);
        /* a frozen dataclass: the hash of the tuple of its fields, as Python's */
        uint64_t h = mix((uint64_t)(uintptr_t)v->u.inst.cls);
        if (depth < LMQL_VAL_MAX_DEPTH)
            for (size_t i = 0; i < fs->u.list.len; i++) {
                const struct lmql_val *x = field_value(v, fs, i);
                h = mix(h * 1000003u ^ (x ? hash_at(x, depth + 1) : 0));
            }
        return h;
    }
    case LMQL_V_FUNC:
    case LMQL_V_CLASS:
    case LMQL_V_OBJ: return mix((uint64_t)(uintptr_t)v);   /* equal only to themselves */
    default: return (uint64_t)v->kind;   /* unhashable (list, dict): the interpreter refuses them as keys */
    }
}

static bool hashable_at(const struct lmql_val *v, int depth) {
    if (v->kind == LMQL_V_LIST || v->kind == LMQL_V_DICT) return false;
    if (v->kind == LMQL_V_INST) {
        /* Python's dataclass with eq and not frozen sets __hash__ to None */
        unsigned fl;
        const struct lmql_val *fs = inst_fields(v, &fl);
        if (!fs || !(fl & LMQL_CLS_EQ)) return true;
        if (!(fl & LMQL_CLS_FROZEN)) return false;
        for (size_t i = 0; depth < LMQL_VAL_MAX_DEPTH && i < fs->u.list.len; i++) {
            const struct lmql_val *x = field_value(v, fs, i);
            if (x && !hashable_at(x, depth + 1)) return false;
        }
        return true;
    }
    /* Past the depth limit a tuple counts as hashable; comparing it
    ** fails on the same limit. */
    if (v->kind == LMQL_V_TUPLE && depth < LMQL_VAL_MAX_DEPTH)
        for (size_t i = 0; i < v->u.list.len; i++)
            if (!hashable_at(v->u.list.items[i], depth + 1)) return false;
    return true;
}

bool lmql__val_hashable(const struct lmql_val *v) { return hashable_at(v, 0); }

static int dict_reindex(struct lmql_val *d, size_t want) {
    size_t slots = 16;
    while (slots < want * 2) slots *= 2;
    struct dict_ix *ix = lmql__calloc(1, sizeof *ix + slots * sizeof ix->slot[0]);
    if (!ix) return -1;
    ix->mask = slots - 1;
    for (size_t i = 0; i < d->u.dict.len; i++) {
        size_t j = (size_t)hash_at(d->u.dict.keys[i], 0) & ix->mask;
        while (ix->slot[j]) j = (j + 1) & ix->mask;
        ix->slot[j] = (uint32_t)(i + 1);
    }
    free(d->u.dict.ix);
    d->u.dict.ix = ix;
    LMQL_ASSERT(d->u.dict.len * 2 <= slots);   /* at most half full: probes always end on an empty slot */
    return 0;
}

/* The entry of key in d, or (size_t)-1; *slot (when given) is where an
** index lookup stopped, the place for a new key. */
static size_t dict_find(const struct lmql_val *d, const struct lmql_val *key, size_t *slot) {
    const struct dict_ix *ix = d->u.dict.ix;
    if (!ix) {
        for (size_t i = 0; i < d->u.dict.len; i++)
            if (lmql__val_equal(d->u.dict.keys[i], key)) return i;
        return (size_t)-1;
    }
    size_t j = (size_t)hash_at(key, 0) & ix->mask;
    for (; ix->slot[j]; j = (j + 1) & ix->mask) {
        size_t i = ix->slot[j] - 1;
        if (lmql__val_equal(d->u.dict.keys[i], key)) return i;
    }
    if (slot) *slot = j;
    return (size_t)-1;
}

int lmql__dict_set(struct lmql_val *d, struct lmql_val *key, struct lmql_val *val) {
    LMQL_ASSERT(d->kind == LMQL_V_DICT);
    /* Lists and dicts are not hashable: the interpreter refuses them as keys. */
    LMQL_ASSERT(!key || (key->kind != LMQL_V_LIST && key->kind != LMQL_V_DICT));
    if (!key || !val) { lmql__val_unref(key); lmql__val_unref(val); return -1; }
    size_t slot = 0, i = dict_find(d, key, &slot);
    if (i != (size_t)-1) {
        lmql__val_unref(key);
        lmql__val_unref(d->u.dict.vals[i]);
        d->u.dict.vals[i] = val;
        return 0;
    }
    if (d->u.dict.len >= UINT32_MAX - 1) { lmql__val_unref(key); lmql__val_unref(val); return -1; }
    if (d->u.dict.len == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
        struct lmql_val **k = lmql__realloc(d->u.dict.keys, cap * sizeof *k);
        if (k) d->u.dict.keys = k;
        struct lmql_val **v = k ? lmql__realloc(d->u.dict.vals, cap * sizeof *v) : NULL;
        if (v) d->u.dict.vals = v;
        if (!k || !v) { lmql__val_unref(key); lmql__val_unref(val); return -1; }
        d->u.dict.cap = cap;
    }
    size_t n = d->u.dict.len;
    d->u.dict.keys[n] = key;
    d->u.dict.vals[n] = val;
    d->u.dict.len = n + 1;
    struct dict_ix *ix = d->u.dict.ix;
    if (ix && (n + 1) * 2 <= ix->mask + 1) {
        ix->slot[slot] = (uint32_t)(n + 1);
    } else if ((ix || n + 1 >= DICT_INDEX_MIN) && dict_reindex(d, (n + 1) * 2)) {
        d->u.dict.len = n;   /* out of memory: the entry is not added */
        lmql__val_unref(key);
        lmql__val_unref(val);
        return -1;
    }
    return 0;
}

void lmql__val_text_free(void *p) { free(p); }

int lmql__dict_del(struct lmql_val *d, const struct lmql_val *key) {
    LMQL_ASSERT(d->kind == LMQL_V_DICT);
    size_t i = dict_find(d, key, NULL);
    if (i == (size_t)-1) return 0;
    lmql__val_unref(d->u.dict.keys[i]);
    lmql__val_unref(d->u.dict.vals[i]);
    size_t rest = d->u.dict.len - i - 1;
    memmove(d->u.dict.keys + i, d->u.dict.keys + i + 1, rest * sizeof *d->u.dict.keys);
    memmove(d->u.dict.vals + i, d->u.dict.vals + i + 1, rest * sizeof *d->u.dict.vals);
    d->u.dict.len--;
    /* Entry numbers moved: index again. Without memory for it the dict
    ** is scanned, which finds the same entries. */
    free(d->u.dict.ix);
    d->u.dict.ix = NULL;
    if (d->u.dict.len >= DICT_INDEX_MIN) (void)dict_reindex(d, d->u.dict.len * 2);
    return 1;
}

struct lmql_val *lmql__dict_get(struct lmql_val *d, const struct lmql_val *key) {
    size_t i = dict_find(d, key, NULL);
    return i == (size_t)-1 ? NULL : d->u.dict.vals[i];
}

bool lmql__val_truthy(const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return false;
    case LMQL_V_BOOL: return v->u.b;
    case LMQL_V_INT: return v->u.i != 0;
    case LMQL_V_FLOAT: return v->u.f != 0;
    case LMQL_V_STR: return v->u.str.len != 0;
    case LMQL_V_LIST:
    case LMQL_V_TUPLE: return v->u.list.len != 0;
    case LMQL_V_DICT: return v->u.dict.len != 0;
    default: return true;
    }
}

static bool is_num(const struct lmql_val *v) {
    return v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT || v->kind == LMQL_V_BOOL;
}
static double num(const struct lmql_val *v) {
    return v->kind == LMQL_V_FLOAT ? v->u.f : v->kind == LMQL_V_INT ? (double)v->u.i : (double)v->u.b;
}

/* ------------------------------------------------- recursion guards --
** Equality, ordering, str/repr and JSON recurse into containers. Each
** counts its depth: past LMQL_VAL_MAX_DEPTH the operation fails with
** Python's RecursionError message (left in val_err for the interpreter
** to raise) instead of exhausting the C stack. str/repr/JSON also keep
** the containers they are inside of: a container met again inside itself
** prints as [...] / {...} (Python's reprlib rule) or, in JSON, fails
** with "Circular reference detected" as Python's json does. */
static _Thread_local const char *val_err;
static _Thread_local int val_depth;
static _Thread_local const struct lmql_val *inside[LMQL_VAL_MAX_DEPTH + 1];

const char *lmql__val_error(void) { return val_err; }

/* Enter one level; false (val_err set) past the limit. A fresh top-level
** operation starts without an old error. */
static bool enter(const char *what) {
    if (val_depth == 0) val_err = NULL;
    if (val_depth >= LMQL_VAL_MAX_DEPTH) {
        val_err = what;
        return false;
    }
    val_depth++;
    return true;
}
static void leave(void) {
    LMQL_ASSERT(val_depth > 0);   /* paired with a successful enter() */
    val_depth--;
}

static bool is_inside(const struct lmql_val *v) {
    for (int i = 0; i < val_depth; i++)
        if (inside[i] == v) return true;
    return false;
}

#define ERR_CMP "maximum recursion depth exceeded in comparison"
#define ERR_REPR "maximum recursion depth exceeded while getting the repr of an object"
#define ERR_JSON_DEPTH "maximum recursion depth exceeded while encoding a JSON object"
#define ERR_CIRCULAR "Circular reference detected"

static bool equal_at(const struct lmql_val *a, const struct lmql_val *b) {
    if (a == b) return true;   /* identity first, as Python's containers compare items */
    if (is_num(a) && is_num(b)) {
        if (a->kind != LMQL_V_FLOAT && b->kind != LMQL_V_FLOAT) {
            int64_t x = a->kind == LMQL_V_INT ? a->u.i : a->u.b, y = b->kind == LMQL_V_INT ? b->u.i : b->u.b;
            return x == y;
        }
        return num(a) == num(b);
    }
    if (a->kind != b->kind) return false;
    bool eq = true;
    switch (a->kind) {
    case LMQL_V_NONE: return true;
    case LMQL_V_STR:
    case LMQL_V_NUM: return a->u.str.len == b->u.str.len && !memcmp(a->u.str.s, b->u.str.s, a->u.str.len);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        if (a->u.list.len != b->u.list.len) return false;
        if (!enter(ERR_CMP)) return false;
        for (size_t i = 0; eq && !val_err && i < a->u.list.len && i < b->u.list.len; i++)
            eq = equal_at(a->u.list.items[i], b->u.list.items[i]);
        leave();
        return eq && !val_err;
    case LMQL_V_DICT:
        if (a->u.dict.len != b->u.dict.len) return false;
        if (!enter(ERR_CMP)) return false;
        for (size_t i = 0; eq && !val_err && i < a->u.dict.len; i++) {
            struct lmql_val *o = lmql__dict_get((struct lmql_val *)b, a->u.dict.keys[i]);
            eq = o && equal_at(o, a->u.dict.vals[i]);
        }
        leave();
        return eq && !val_err;
    case LMQL_V_INST: {
        /* a dataclass's __eq__: the same class and equal fields, in order */
        unsigned fl;
        const struct lmql_val *fs = inst_fields(a, &fl);
        if (!fs || !(fl & LMQL_CLS_EQ) || a->u.inst.cls != b->u.inst.cls) return false;
        if (!enter(ERR_CMP)) return false;
        for (size_t i = 0; eq && !val_err && i < fs->u.list.len; i++) {
            const struct lmql_val *x = field_value(a, fs, i), *y = field_value(b, fs, i);
            eq = x && y ? equal_at(x, y) : x == y;
        }
        leave();
        return eq && !val_err;
    }
    default: return false;
    }
}

bool lmql__val_equal(const struct lmql_val *a, const struct lmql_val *b) {
    if (val_depth == 0) val_err = NULL;
    return equal_at(a, b);
}

int lmql__val_compare(const struct lmql_val *a, const struct lmql_val *b) {
    if (val_depth == 0) val_err = NULL;
    if (is_num(a) && is_num(b)) {
        double x = num(a), y = num(b);
        if (a->kind != LMQL_V_FLOAT && b->kind != LMQL_V_FLOAT) {
            int64_t p = a->kind == LMQL_V_INT ? a->u.i : a->u.b, q = b->kind == LMQL_V_INT ? b->u.i : b->u.b;
            return p < q ? -1 : p > q;
        }
        if (isnan(x) || isnan(y)) return -2;
        return x < y ? -1 : x > y;
    }
    if (a->kind == LMQL_V_STR && b->kind == LMQL_V_STR) {
        size_t n = a->u.str.len < b->u.str.len ? a->u.str.len : b->u.str.len;
        int c = memcmp(a->u.str.s, b->u.str.s, n);
        if (c) return c < 0 ? -1 : 1;
        return a->u.str.len < b->u.str.len ? -1 : a->u.str.len > b->u.str.len;
    }
    if ((a->kind == LMQL_V_LIST && b->kind == LMQL_V_LIST) || (a->kind == LMQL_V_TUPLE && b->kind == LMQL_V_TUPLE)) {
        if (!enter(ERR_CMP)) return -2;
        int c = 2;
        for (size_t i = 0; c == 2 && i < a->u.list.len && i < b->u.list.len; i++) {
            if (lmql__val_equal(a->u.list.items[i], b->u.list.items[i])) continue;
            c = val_err ? -2 : lmql__val_compare(a->u.list.items[i], b->u.list.items[i]);
        }
        leave();
        if (val_err) return -2;
        if (c != 2) return c;
        return a->u.list.len < b->u.list.len ? -1 : a->u.list.len > b->u.list.len;
    }
    return -2;
}

const char *lmql__val_type_name(const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return "NoneType";
    case LMQL_V_BOOL: return "bool";
    case LMQL_V_INT: return "int";
    case LMQL_V_FLOAT: return "float";
    case LMQL_V_STR: return "str";
    case LMQL_V_LIST: return "list";
    case LMQL_V_TUPLE: return "tuple";
    case LMQL_V_DICT: return "dict";
    case LMQL_V_FUNC: return "function";
    case LMQL_V_OBJ: return v->u.obj.type;
    case LMQL_V_CLASS: return "type";
    case LMQL_V_INST: return v->u.inst.cls->u.cls.name;
    case LMQL_V_NUM: return lmql__num_integral(v) ? "int" : "float";
    }
    return "?";
}

/* Python's float repr: the shortest digits that read back the same, written
** positionally when the exponent is in [-4, 16), else as d.ddde+XX. */
static int float_into(struct lmql__buf *b, double f) {
    if (isnan(f)) return lmql__buf_adds(b, "nan");
    if (isinf(f)) return lmql__buf_adds(b, f < 0 ? "-inf" : "inf");
    char tmp[40];
    int prec = 1;
    for (; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp is [-]D[.DDD]e[+-]XX: its digits and exponent */
    char digits[24];
    int nd = 0, exp10;
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9') digits[nd++] = *p;
    exp10 = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    struct lmql__buf *o = b;
    int rc = neg ? lmql__buf_adds(o, "-") : 0;
    if (exp10 >= -4 && exp10 < 16) {
        if (exp10 < 0) {
            rc = rc || lmql__buf_adds(o, "0.");
            for (int i = 0; i < -exp10 - 1; i++) rc = rc || lmql__buf_adds(o, "0");
            rc = rc || lmql__buf_add(o, digits, (size_t)nd);
        } else {
            for (int i = 0; i <= exp10; i++) rc = rc || lmql__buf_add(o, i < nd ? &digits[i] : "0", 1);
            rc = rc || lmql__buf_adds(o, ".");
            if (nd > exp10 + 1) rc = rc || lmql__buf_add(o, digits + exp10 + 1, (size_t)(nd - exp10 - 1));
            else rc = rc || lmql__buf_adds(o, "0");
        }
        return rc ? -1 : 0;
    }
    rc = rc || lmql__buf_add(o, digits, 1);
    if (nd > 1) rc = rc || lmql__buf_adds(o, ".") || lmql__buf_add(o, digits + 1, (size_t)(nd - 1));
    rc = rc || lmql__buf_addf(o, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
    return rc ? -1 : 0;
}

static int str_repr(struct lmql__buf *b, const char *s, size_t n) {
    char q = memchr(s, '\'', n) && !memchr(s, '"', n) ? '"' : '\'';
    if (lmql__buf_add(b, &q, 1)) return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == (unsigned char)q || c == '\\') rc = lmql__buf_addf(b, "\\%c", c);
        else if (c == '\n') rc = lmql__buf_adds(b, "\\n");
        else if (c == '\t') rc = lmql__buf_adds(b, "\\t");
        else if (c == '\r') rc = lmql__buf_adds(b, "\\r");
        else if (c < 0x20 || c == 0x7F) rc = lmql__buf_addf(b, "\\x%02x", c);
        else rc = lmql__buf_add(b, &c, 1);
        if (rc) return -1;
    }
    return lmql__buf_add(b, &q, 1);
}

typedef int (*into_fn)(struct lmql__buf *, const struct lmql_val *);

static int seq_into(struct lmql__buf *b, const struct lmql_val *v, into_fn item, const char *open, const char *close) {
    if (lmql__buf_adds(b, open)) return -1;
    for (size_t i = 0; i < v->u.list.len; i++) {
        if (i && lmql__buf_adds(b, ", ")) return -1;
        if (item(b, v->u.list.items[i])) return -1;
    }
    if (v->kind == LMQL_V_TUPLE && v->u.list.len == 1 && close[0] == ')' && lmql__buf_adds(b, ",")) return -1;
    return lmql__buf_adds(b, close);
}

/* A container's text inside the guards: [...] when it is being printed
** already (or an error for JSON), an error past the depth limit. */
static int container_into(struct lmql__buf *b, const struct lmql_val *v, bool json,
                          int (*body)(struct lmql__buf *, const struct lmql_val *)) {
    if (val_depth == 0) val_err = NULL;
    if (is_inside(v)) {
        if (json) { val_err = ERR_CIRCULAR; return -1; }
        return lmql__buf_adds(b, v->kind == LMQL_V_DICT ? "{...}" : v->kind == LMQL_V_TUPLE ? "(...)"
                                 : v->kind == LMQL_V_INST ? "..." : "[...]");
    }
    if (!enter(json ? ERR_JSON_DEPTH : ERR_REPR)) return -1;
    inside[val_depth - 1] = v;
    int rc = body(b, v);
    leave();
    return rc;
}

/* A dataclass instance as its generated __repr__ writes it. */
static int repr_inst(struct lmql__buf *b, const struct lmql_val *v) {
    const struct lmql_val *fs = inst_fields(v, NULL);
    if (lmql__buf_adds(b, v->u.inst.cls->u.cls.name) || lmql__buf_adds(b, "(")) return -1;
    bool first = true;
    for (size_t i = 0; i < fs->u.list.len; i++) {
        const struct lmql_val *name = fs->u.list.items[i]->u.list.items[0], *x = field_value(v, fs, i);
        if (!x) continue;
        if ((!first && lmql__buf_adds(b, ", ")) || lmql__buf_add(b, name->u.str.s, name->u.str.len) ||
            lmql__buf_adds(b, "=") || lmql__val_repr_into(b, x))
            return -1;
        first = false;
    }
    return lmql__buf_adds(b, ")");
}

static int repr_body(struct lmql__buf *b, const struct lmql_val *v) {
    if (v->kind == LMQL_V_INST) return repr_inst(b, v);
    if (v->kind == LMQL_V_LIST) return seq_into(b, v, lmql__val_repr_into, "[", "]");
    if (v->kind == LMQL_V_TUPLE) return seq_into(b, v, lmql__val_repr_into, "(", ")");
    if (lmql__buf_adds(b, "{")) return -1;
    for (size_t i = 0; i < v->u.dict.len; i++) {
        if ((i && lmql__buf_adds(b, ", ")) || lmql__val_repr_into(b, v->u.dict.keys[i]) ||
            lmql__buf_adds(b, ": ") || lmql__val_repr_into(b, v->u.dict.vals[i]))
            return -1;
    }
    return lmql__buf_adds(b, "}");
}

int lmql__val_repr_into(struct lmql__buf *b, const struct lmql_val *v) {
    if (val_depth == 0) val_err = NULL;
    switch (v->kind) {
    case LMQL_V_STR: return str_repr(b, v->u.str.s, v->u.str.len);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
    case LMQL_V_DICT: return container_into(b, v, false, repr_body);
    case LMQL_V_CLASS: return lmql__buf_addf(b, "<class '%s'>", v->u.cls.name);
    case LMQL_V_INST: {
        unsigned fl;
        if (inst_fields(v, &fl) && (fl & LMQL_CLS_REPR)) return container_into(b, v, false, repr_body);
        return lmql__buf_addf(b, "<%s object>", v->u.inst.cls->u.cls.name);
    }
    default: return lmql__val_str_into(b, v);
    }
}

int lmql__val_str_into(struct lmql__buf *b, const struct lmql_val *v) {
    if (val_depth == 0) val_err = NULL;
    switch (v->kind) {
    case LMQL_V_NONE: return lmql__buf_adds(b, "None");
    case LMQL_V_BOOL: return lmql__buf_adds(b, v->u.b ? "True" : "False");
    case LMQL_V_INT: return lmql__buf_addf(b, "%lld", (long long)v->u.i);
    case LMQL_V_FLOAT: return float_into(b, v->u.f);
    case LMQL_V_STR:
    case LMQL_V_NUM: return lmql__buf_add(b, v->u.str.s, v->u.str.len);
    case LMQL_V_FUNC: return lmql__buf_addf(b, "<function %s>", v->u.func.name);
    case LMQL_V_OBJ:
        if (v->u.obj.free == lmql__val_text_free) return lmql__buf_adds(b, v->u.obj.ptr);
        return v->u.obj.repr ? v->u.obj.repr(b, v) : lmql__buf_addf(b, "<%s>", v->u.obj.type);
    default: return lmql__val_repr_into(b, v);   /* containers, classes, instances */
    }
}

/* ------------------------------------------------------- plain values -- */

static struct lmql_val *str_val(const struct lmql_val *v) {
    struct lmql__buf b = {0};
    struct lmql_val *s = lmql__val_str_into(&b, v) ? NULL : lmql__val_str(b.data ? b.data : "", b.len);
    lmql__buf_free(&b);
    return s;
}

static struct lmql_val *plain_at(struct lmql_val *v);

/* The entries of an instance as its JSON has them, each made plain. */
static struct lmql_val *plain_inst(struct lmql_val *v) {
    const struct lmql_val *fs = inst_fields(v, NULL);
    if (!fs) return plain_at(v->u.inst.attrs);
    struct lmql_val *d = lmql__val_dict();
    for (size_t i = 0; d && i < fs->u.list.len; i++) {
        struct lmql_val *name = fs->u.list.items[i]->u.list.items[0], *x = field_value(v, fs, i);
        if (x && lmql__dict_set(d, lmql__val_ref(name), plain_at(x))) { lmql__val_unref(d); d = NULL; }
    }
    return d;
}

/* A container is copied only from its first item that changes. */
static struct lmql_val *plain_at(struct lmql_val *v) {
    struct lmql_val *copy = NULL;
    switch (v->kind) {
    case LMQL_V_INST: return plain_inst(v);
    case LMQL_V_CLASS:
    case LMQL_V_FUNC: return str_val(v);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        for (size_t i = 0; i < v->u.list.len; i++) {
            struct lmql_val *x = v->u.list.items[i], *c = plain_at(x);
            if (!c) { lmql__val_unref(copy); return NULL; }
            if (c != x && !copy) {
                copy = v->kind == LMQL_V_LIST ? lmql__val_list(v->u.list.len) : lmql__val_tuple(v->u.list.len);
                for (size_t k = 0; copy && k < i; k++) lmql__list_push(copy, lmql__val_ref(v->u.list.items[k]));
                if (!copy) { lmql__val_unref(c); return NULL; }
            }
            if (copy) {
                if (lmql__list_push(copy, c)) { lmql__val_unref(copy); return NULL; }
            } else {
                lmql__val_unref(c);
            }
        }
        return copy ? copy : lmql__val_ref(v);
    case LMQL_V_DICT:
        for (size_t i = 0; i < v->u.dict.len; i++) {
            struct lmql_val *k = v->u.dict.keys[i], *x = v->u.dict.vals[i];
            struct lmql_val *pk = plain_at(k), *px = pk ? plain_at(x) : NULL;
            if (pk && pk != k) {   /* a key JSON writes as its str() */
                lmql__val_unref(pk);
                pk = str_val(k);
            }
            if (!pk || !px) { lmql__val_unref(pk); lmql__val_unref(px); lmql__val_unref(copy); return NULL; }
            if ((pk != k || px != x) && !copy) {
                copy = lmql__val_dict();
                for (size_t j = 0; copy && j < i; j++)
                    if (lmql__dict_set(copy, lmql__val_ref(v->u.dict.keys[j]), lmql__val_ref(v->u.dict.vals[j]))) {
                        lmql__val_unref(copy);
                        copy = NULL;
                    }
                if (!copy) { lmql__val_unref(pk); lmql__val_unref(px); return NULL; }
            }
            if (copy) {
                if (lmql__dict_set(copy, pk, px)) { lmql__val_unref(copy); return NULL; }
            } else {
                lmql__val_unref(pk);
                lmql__val_unref(px);
            }
        }
        return copy ? copy : lmql__val_ref(v);
    default:
        return lmql__val_ref(v);
    }
}

struct lmql_val *lmql__val_plain(struct lmql_val *v) { return plain_at(v); }

static int json_body(struct lmql__buf *b, const struct lmql_val *v);

/* An instance in JSON: an object of its fields (a dataclass's, in order)
** or of its attributes. */
static int json_inst(struct lmql__buf *b, const struct lmql_val *v) {
    const struct lmql_val *fs = inst_fields(v, NULL);
    if (!fs) return json_body(b, v->u.inst.attrs);
    if (lmql__buf_adds(b, "{")) return -1;
    bool first = true;
    for (size_t i = 0; i < fs->u.list.len; i++) {
        const struct lmql_val *name = fs->u.list.items[i]->u.list.items[0], *x = field_value(v, fs, i);
        if (!x) continue;
        if ((!first && lmql__buf_adds(b, ", ")) || lmql__buf_json_str(b, name->u.str.s, name->u.str.len) ||
            lmql__buf_adds(b, ": ") || lmql__val_json_into(b, x))
            return -1;
        first = false;
    }
    return lmql__buf_adds(b, "}");
}

static int json_body(struct lmql__buf *b, const struct lmql_val *v) {
    if (v->kind == LMQL_V_INST) return json_inst(b, v);
    if (v->kind != LMQL_V_DICT) return seq_into(b, v, lmql__val_json_into, "[", "]");
    if (lmql__buf_adds(b, "{")) return -1;
    for (size_t i = 0; i < v->u.dict.len; i++) {
        struct lmql__buf k = {0};
        const struct lmql_val *key = v->u.dict.keys[i];
        int rc = key->kind == LMQL_V_STR ? lmql__buf_add(&k, key->u.str.s, key->u.str.len)
                                         : lmql__val_str_into(&k, key);
        rc = rc || (i && lmql__buf_adds(b, ", ")) || lmql__buf_json_str(b, k.data ? k.data : "", k.len) ||
             lmql__buf_adds(b, ": ") || lmql__val_json_into(b, v->u.dict.vals[i]);
        lmql__buf_free(&k);
        if (rc) return -1;
    }
    return lmql__buf_adds(b, "}");
}

int lmql__val_json_into(struct lmql__buf *b, const struct lmql_val *v) {
    if (val_depth == 0) val_err = NULL;
    switch (v->kind) {
    case LMQL_V_NONE: return lmql__buf_adds(b, "null");
    case LMQL_V_BOOL: return lmql__buf_adds(b, v->u.b ? "true" : "false");
    case LMQL_V_INT: return lmql__buf_addf(b, "%lld", (long long)v->u.i);
    case LMQL_V_FLOAT:
        if (!isfinite(v->u.f)) return lmql__buf_adds(b, "null");   /* JSON has no NaN/inf */
        return float_into(b, v->u.f);
    case LMQL_V_STR: return lmql__buf_json_str(b, v->u.str.s, v->u.str.len);
    case LMQL_V_NUM: return lmql__buf_add(b, v->u.str.s, v->u.str.len);   /* valid JSON: it was read as JSON */
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
    case LMQL_V_DICT:
    case LMQL_V_INST: return container_into(b, v, true, json_body);
    default: {
        struct lmql__buf s = {0};
        int rc = lmql__val_str_into(&s, v) || lmql__buf_json_str(b, s.data ? s.data : "", s.len);
        lmql__buf_free(&s);
        return rc ? -1 : 0;
    }
    }
}
