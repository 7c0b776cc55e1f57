/*
** Runtime values of the query scripting language (a Python subset).
**
** Ownership, the one rule: a `struct lmql_val *` is reference counted.
** Functions that return a value return a new reference the caller must
** release with lmql__val_unref(); arguments are borrowed. Containers hold
** their own references. Small immutable values (None, True, False) are
** static and ignore reference counting.
*/
#ifndef LMQL_VALUE_H
#define LMQL_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmql_int.h"

enum lmql_val_kind {
    LMQL_V_NONE,
    LMQL_V_BOOL,
    LMQL_V_INT,
    LMQL_V_FLOAT,
    LMQL_V_STR,
    LMQL_V_LIST,
    LMQL_V_TUPLE,
    LMQL_V_DICT,
    LMQL_V_FUNC,      /* a `def` of the query, or a builtin */
    LMQL_V_OBJ,       /* an opaque host object (models, modules) */
    LMQL_V_CLASS,     /* a class of the query (class statement) */
    LMQL_V_INST,      /* an instance of such a class */
    LMQL_V_NUM,       /* a JSON number no int64 or double holds: its text, exact (u.str) */
};

/* func.flags */
enum {
    LMQL_FUNC_BOUND = 1,      /* a script def bound to `self` (a method of an instance) */
    LMQL_FUNC_STATIC = 2,     /* @staticmethod: never bound */
    LMQL_FUNC_PROPERTY = 4,   /* @property: reading the attribute calls it */
    LMQL_FUNC_PRE = 8,        /* @lmql.decorators.pre: a hole decorator called before generating */
    LMQL_FUNC_STREAMING = 16, /* @lmql.decorators.streaming: called with the value as it grows */
};

/* cls.flags */
enum {
    LMQL_CLS_DATACLASS = 1,   /* @dataclass was applied: `fields` is set */
    LMQL_CLS_FROZEN = 2,      /* dataclass(frozen=True) */
    LMQL_CLS_EQ = 4,          /* dataclass(eq=True): == compares the fields */
    LMQL_CLS_REPR = 8,        /* dataclass(repr=True): Name(field=value, ...) */
    LMQL_CLS_INIT = 16,       /* dataclass(init=True): calling it takes the fields */
};

struct lmql_val;
struct lmql_node;

/* Builtin: called with positional args and keyword args (names[i] for
** kwargs, NULL for positionals). Returns a new reference or NULL with
** err set. */
typedef struct lmql_val *(*lmql__builtin_fn)(void *ud, int argc, struct lmql_val **argv, const char **names,
                                             struct lmql__err *err);

struct lmql_val {
    enum lmql_val_kind kind;
    int32_t refs;               /* < 0: static, never freed */
    union {
        bool    b;
        int64_t i;
        double  f;
        struct { char *s; size_t len; } str;
        struct { struct lmql_val **items; size_t len, cap; } list;   /* list and tuple */
        struct {
            struct lmql_val **keys, **vals;   /* insertion order */
            size_t len, cap;
            struct dict_ix *ix;               /* hash index (value.c), NULL while small */
        } dict;
        struct {
            const char *name;
            lmql__builtin_fn fn;       /* builtin, or NULL for a script def */
            void *ud;                  /* builtin data, or the def's AST node */
            struct lmql_val *self;     /* bound method receiver, or NULL */
            struct lmql_val *env;      /* a def made inside a def: the scopes it sees (a tuple
                                       ** (locals dict, env of that def or None)), or NULL */
            unsigned flags;            /* LMQL_FUNC_* */
        } func;
        struct {
            const char *type;          /* "model", "module" */
            void *ptr;
            void (*free)(void *);
            /* str()/repr() when set (re's Match and Pattern print as Python's), else "<type>" */
            int (*repr)(struct lmql__buf *b, const struct lmql_val *v);
        } obj;
        struct {
            const char *name;             /* the class statement's (AST, outlives the run) */
            const struct lmql_node *node; /* that CLASS statement */
            struct lmql_val *base;        /* the base class, or NULL */
            struct lmql_val *attrs;       /* dict: class attributes and methods */
            struct lmql_val *fields;      /* dataclass: tuple of (name, default, factory) tuples, in
                                          ** order; default lmql__missing and factory None when absent */
            unsigned flags;               /* LMQL_CLS_* */
        } cls;
        struct {
            struct lmql_val *cls;         /* its class */
            struct lmql_val *attrs;       /* dict: its attributes */
        } inst;
    } u;
};

extern struct lmql_val lmql__none, lmql__true, lmql__false;
/* dataclasses.MISSING: a field without a default. */
extern struct lmql_val lmql__missing;

/* How deep equality, ordering, hashing, str/repr and JSON go into nested
** containers before they fail (Python's RecursionError) instead of
** exhausting the C stack. */
#define LMQL_VAL_MAX_DEPTH 500

/* Why the last equality/ordering/str/repr/JSON of this thread failed:
** a recursion-depth or circular-reference message, or NULL (then a -1
** from the text forms means out of memory). Equality reads false and
** ordering -2 when it is set; check it right after the call. */
const char *lmql__val_error(void);

/* Can v be a dict key (Python's hashable: not a list or dict, nor a
** tuple holding one)? */
bool lmql__val_hashable(const struct lmql_val *v);

/*
** Cycle collection. Reference counts never reach zero in a cycle
** (`a = []; a.append(a)`), so each run has a registry: every container
** made by a thread whose current registry it is joins it. At the end of
** the run lmql__gc_finish frees the containers that nothing outside the
** registry holds (cycles included) and lets the survivors (the results)
** go on as plain reference-counted values: results must then be free of
** cycles, which the interpreter checks (they become JSON anyway).
** The registry is locked for each join and leave, so the threads of a run
** share it; nothing may run in the registry while it is finished.
*/
struct lmql__gc;
struct lmql__gc *lmql__gc_new(void);
/* Make g this thread's current registry (NULL: none); returns the previous one. */
struct lmql__gc *lmql__gc_enter(struct lmql__gc *g);
struct lmql__gc *lmql__gc_current(void);
void lmql__gc_finish(struct lmql__gc *g);

struct lmql_val *lmql__val_ref(struct lmql_val *v);
void lmql__val_unref(struct lmql_val *v);

struct lmql_val *lmql__val_bool(bool b);
struct lmql_val *lmql__val_int(int64_t i);
struct lmql_val *lmql__val_float(double f);
struct lmql_val *lmql__val_str(const char *s, size_t len);
struct lmql_val *lmql__val_cstr(const char *s);
/* A JSON number that no int64 (an integer) or finite, nonzero double (a
** fraction) holds, kept as the text the JSON had: it prints as that text
** and compares equal to the same text; arithmetic on it is an error. */
struct lmql_val *lmql__val_num(const char *s, size_t len);
bool lmql__num_integral(const struct lmql_val *v);   /* no '.', 'e', 'E' */
struct lmql_val *lmql__val_list(size_t cap);
struct lmql_val *lmql__val_tuple(size_t cap);
struct lmql_val *lmql__val_dict(void);
struct lmql_val *lmql__val_builtin(const char *name, lmql__builtin_fn fn, void *ud, struct lmql_val *self);
struct lmql_val *lmql__val_obj(const char *type, void *ptr, void (*free_fn)(void *));
/* A class with an empty attribute dict (base is referenced), and an
** instance of cls with an empty attribute dict. */
struct lmql_val *lmql__val_class(const char *name, const struct lmql_node *node, struct lmql_val *base);
struct lmql_val *lmql__val_inst(struct lmql_val *cls);
/* The dataclass whose fields an instance of cls has: cls or its nearest
** base with LMQL_CLS_DATACLASS; NULL when none is. */
const struct lmql_val *lmql__class_dc(const struct lmql_val *cls);

/* Append to a list or tuple; takes ownership of item. Returns 0, or -1
** when out of memory or when list or item is NULL (an allocation that
** failed before: the item is released). */
int lmql__list_push(struct lmql_val *list, struct lmql_val *item);
/* Dict set (takes ownership of key and value) and get (borrowed or NULL). */
int lmql__dict_set(struct lmql_val *d, struct lmql_val *key, struct lmql_val *val);
struct lmql_val *lmql__dict_get(struct lmql_val *d, const struct lmql_val *key);
/* Remove key from d, keeping the others in order: 1, or 0 when absent. */
int lmql__dict_del(struct lmql_val *d, const struct lmql_val *key);
/* The free function of objects whose ptr is their str() text (a
** NUL-terminated string they own): exceptions (exceptions.c). */
void lmql__val_text_free(void *p);

bool lmql__val_truthy(const struct lmql_val *v);
bool lmql__val_equal(const struct lmql_val *a, const struct lmql_val *b);
/* Three-way comparison for <, >; returns -2 when the kinds do not order. */
int lmql__val_compare(const struct lmql_val *a, const struct lmql_val *b);
const char *lmql__val_type_name(const struct lmql_val *v);

/* str(v) and repr(v) appended to b. */
int lmql__val_str_into(struct lmql__buf *b, const struct lmql_val *v);
int lmql__val_repr_into(struct lmql__buf *b, const struct lmql_val *v);
/* format(v, spec) with Python's format mini-language (format.c). Returns
** 0, or -1 with err saying what is wrong with the spec. */
int lmql__val_format(struct lmql__buf *out, const struct lmql_val *v, const char *spec, struct lmql__err *err);
/* JSON for results: strings, numbers, lists, dicts, null, booleans. */
int lmql__val_json_into(struct lmql__buf *b, const struct lmql_val *v);
/* v as its JSON shows it, for results that leave a run: instances become
** dicts (of their fields, or attributes), classes and functions the strings
** JSON writes for them, dict keys holding those their str(); v itself (a
** new reference) when it holds none of them. Only for a v whose JSON was
** written without error (no cycle it can see). NULL when out of memory. */
struct lmql_val *lmql__val_plain(struct lmql_val *v);

#endif
