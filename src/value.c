/*
** Runtime values: construction, reference counting, equality, ordering
** and the three text forms (str, repr, JSON).
*/
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lmql_val lmql__none = {.kind = LMQL_V_NONE, .refs = -1};
struct lmql_val lmql__true = {.kind = LMQL_V_BOOL, .refs = -1, .u.b = true};
struct lmql_val lmql__false = {.kind = LMQL_V_BOOL, .refs = -1, .u.b = false};

static struct lmql_val *val_new(enum lmql_val_kind k) {
    struct lmql_val *v = calloc(1, sizeof *v);
    if (v) {
        v->kind = k;
        v->refs = 1;
    }
    return v;
}

struct lmql_val *lmql__val_ref(struct lmql_val *v) {
    if (v && v->refs > 0) v->refs++;
    return v;
}

void lmql__val_unref(struct lmql_val *v) {
    if (!v || v->refs < 0 || --v->refs > 0) return;
    switch (v->kind) {
    case LMQL_V_STR: free(v->u.str.s); break;
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        for (size_t i = 0; i < v->u.list.len; i++) lmql__val_unref(v->u.list.items[i]);
        free(v->u.list.items);
        break;
    case LMQL_V_DICT:
        for (size_t i = 0; i < v->u.dict.len; i++) {
            lmql__val_unref(v->u.dict.keys[i]);
            lmql__val_unref(v->u.dict.vals[i]);
        }
        free(v->u.dict.keys);
        free(v->u.dict.vals);
        break;
    case LMQL_V_FUNC: lmql__val_unref(v->u.func.self); break;
    case LMQL_V_OBJ: if (v->u.obj.free) v->u.obj.free(v->u.obj.ptr); break;
    default: break;
    }
    free(v);
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
    v->u.str.s = malloc(len + 1);
    if (!v->u.str.s) { free(v); return NULL; }
    if (len) memcpy(v->u.str.s, s, len);
    v->u.str.s[len] = 0;
    v->u.str.len = len;
    return v;
}

struct lmql_val *lmql__val_cstr(const char *s) { return lmql__val_str(s, strlen(s)); }

static struct lmql_val *seq_new(enum lmql_val_kind k, size_t cap) {
    struct lmql_val *v = val_new(k);
    if (!v) return NULL;
    if (cap) {
        v->u.list.items = malloc(cap * sizeof *v->u.list.items);
        if (!v->u.list.items) { free(v); return NULL; }
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

struct lmql_val *lmql__val_obj(const char *type, void *ptr, void (*free_fn)(void *)) {
    struct lmql_val *v = val_new(LMQL_V_OBJ);
    if (!v) { if (free_fn) free_fn(ptr); return NULL; }
    v->u.obj.type = type;
    v->u.obj.ptr = ptr;
    v->u.obj.free = free_fn;
    return v;
}

int lmql__list_push(struct lmql_val *list, struct lmql_val *item) {
    if (!item) return -1;
    if (list->u.list.len == list->u.list.cap) {
        size_t cap = list->u.list.cap ? list->u.list.cap * 2 : 4;
        struct lmql_val **p = realloc(list->u.list.items, cap * sizeof *p);
        if (!p) { lmql__val_unref(item); return -1; }
        list->u.list.items = p;
        list->u.list.cap = cap;
    }
    list->u.list.items[list->u.list.len++] = item;
    return 0;
}

static size_t dict_find(const struct lmql_val *d, const struct lmql_val *key) {
    for (size_t i = 0; i < d->u.dict.len; i++)
        if (lmql__val_equal(d->u.dict.keys[i], key)) return i;
    return (size_t)-1;
}

int lmql__dict_set(struct lmql_val *d, struct lmql_val *key, struct lmql_val *val) {
    if (!key || !val) { lmql__val_unref(key); lmql__val_unref(val); return -1; }
    size_t i = dict_find(d, key);
    if (i != (size_t)-1) {
        lmql__val_unref(key);
        lmql__val_unref(d->u.dict.vals[i]);
        d->u.dict.vals[i] = val;
        return 0;
    }
    if (d->u.dict.len == d->u.dict.cap) {
        size_t cap = d->u.dict.cap ? d->u.dict.cap * 2 : 4;
        struct lmql_val **k = realloc(d->u.dict.keys, cap * sizeof *k);
        if (k) d->u.dict.keys = k;
        struct lmql_val **v = realloc(d->u.dict.vals, cap * sizeof *v);
        if (v) d->u.dict.vals = v;
        if (!k || !v) { lmql__val_unref(key); lmql__val_unref(val); return -1; }
        d->u.dict.cap = cap;
    }
    d->u.dict.keys[d->u.dict.len] = key;
    d->u.dict.vals[d->u.dict.len++] = val;
    return 0;
}

struct lmql_val *lmql__dict_get(struct lmql_val *d, const struct lmql_val *key) {
    size_t i = dict_find(d, key);
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

bool lmql__val_equal(const struct lmql_val *a, const struct lmql_val *b) {
    if (a == b) return true;
    if (is_num(a) && is_num(b)) {
        if (a->kind != LMQL_V_FLOAT && b->kind != LMQL_V_FLOAT) {
            int64_t x = a->kind == LMQL_V_INT ? a->u.i : a->u.b, y = b->kind == LMQL_V_INT ? b->u.i : b->u.b;
            return x == y;
        }
        return num(a) == num(b);
    }
    if (a->kind != b->kind) return false;
    switch (a->kind) {
    case LMQL_V_NONE: return true;
    case LMQL_V_STR: return a->u.str.len == b->u.str.len && !memcmp(a->u.str.s, b->u.str.s, a->u.str.len);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE:
        if (a->u.list.len != b->u.list.len) return false;
        for (size_t i = 0; i < a->u.list.len; i++)
            if (!lmql__val_equal(a->u.list.items[i], b->u.list.items[i])) return false;
        return true;
    case LMQL_V_DICT:
        if (a->u.dict.len != b->u.dict.len) return false;
        for (size_t i = 0; i < a->u.dict.len; i++) {
            struct lmql_val *o = lmql__dict_get((struct lmql_val *)b, a->u.dict.keys[i]);
            if (!o || !lmql__val_equal(o, a->u.dict.vals[i])) return false;
        }
        return true;
    default: return false;
    }
}

int lmql__val_compare(const struct lmql_val *a, const struct lmql_val *b) {
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
        for (size_t i = 0; i < a->u.list.len && i < b->u.list.len; i++) {
            if (lmql__val_equal(a->u.list.items[i], b->u.list.items[i])) continue;
            return lmql__val_compare(a->u.list.items[i], b->u.list.items[i]);
        }
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
    }
    return "?";
}

/* Python's float repr: the shortest text that reads back the same. */
static int float_into(struct lmql__buf *b, double f) {
    if (isnan(f)) return lmql__buf_adds(b, "nan");
    if (isinf(f)) return lmql__buf_adds(b, f < 0 ? "-inf" : "inf");
    char tmp[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, f);
        if (strtod(tmp, NULL) == f) break;
    }
    if (!strpbrk(tmp, ".eninf")) strcat(tmp, ".0");
    return lmql__buf_adds(b, tmp);
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

static int seq_into(struct lmql__buf *b, const struct lmql_val *v, int (*item)(struct lmql__buf *, const struct lmql_val *),
                    const char *open, const char *close) {
    if (lmql__buf_adds(b, open)) return -1;
    for (size_t i = 0; i < v->u.list.len; i++) {
        if (i && lmql__buf_adds(b, ", ")) return -1;
        if (item(b, v->u.list.items[i])) return -1;
    }
    if (v->kind == LMQL_V_TUPLE && v->u.list.len == 1 && close[0] == ')' && lmql__buf_adds(b, ",")) return -1;
    return lmql__buf_adds(b, close);
}

int lmql__val_repr_into(struct lmql__buf *b, const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_STR: return str_repr(b, v->u.str.s, v->u.str.len);
    case LMQL_V_LIST: return seq_into(b, v, lmql__val_repr_into, "[", "]");
    case LMQL_V_TUPLE: return seq_into(b, v, lmql__val_repr_into, "(", ")");
    case LMQL_V_DICT:
        if (lmql__buf_adds(b, "{")) return -1;
        for (size_t i = 0; i < v->u.dict.len; i++) {
            if ((i && lmql__buf_adds(b, ", ")) || lmql__val_repr_into(b, v->u.dict.keys[i]) ||
                lmql__buf_adds(b, ": ") || lmql__val_repr_into(b, v->u.dict.vals[i]))
                return -1;
        }
        return lmql__buf_adds(b, "}");
    default: return lmql__val_str_into(b, v);
    }
}

int lmql__val_str_into(struct lmql__buf *b, const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return lmql__buf_adds(b, "None");
    case LMQL_V_BOOL: return lmql__buf_adds(b, v->u.b ? "True" : "False");
    case LMQL_V_INT: return lmql__buf_addf(b, "%lld", (long long)v->u.i);
    case LMQL_V_FLOAT: return float_into(b, v->u.f);
    case LMQL_V_STR: return lmql__buf_add(b, v->u.str.s, v->u.str.len);
    case LMQL_V_FUNC: return lmql__buf_addf(b, "<function %s>", v->u.func.name);
    case LMQL_V_OBJ: return lmql__buf_addf(b, "<%s>", v->u.obj.type);
    default: return lmql__val_repr_into(b, v);
    }
}

int lmql__val_json_into(struct lmql__buf *b, const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: return lmql__buf_adds(b, "null");
    case LMQL_V_BOOL: return lmql__buf_adds(b, v->u.b ? "true" : "false");
    case LMQL_V_INT: return lmql__buf_addf(b, "%lld", (long long)v->u.i);
    case LMQL_V_FLOAT:
        if (!isfinite(v->u.f)) return lmql__buf_adds(b, "null");   /* JSON has no NaN/inf */
        return float_into(b, v->u.f);
    case LMQL_V_STR: return lmql__buf_json_str(b, v->u.str.s, v->u.str.len);
    case LMQL_V_LIST:
    case LMQL_V_TUPLE: return seq_into(b, v, lmql__val_json_into, "[", "]");
    case LMQL_V_DICT:
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
    default: {
        struct lmql__buf s = {0};
        int rc = lmql__val_str_into(&s, v) || lmql__buf_json_str(b, s.data ? s.data : "", s.len);
        lmql__buf_free(&s);
        return rc ? -1 : 0;
    }
    }
}
