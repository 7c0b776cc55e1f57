/*
** Expressions of the scripting subset: names, literals, operators,
** calls, subscripts, displays, f-strings and assignment targets.
*/
#include "interp_int.h"
#include "modules.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The dict of an enclosing def (env: value.h) that binds key, or NULL. */
static struct lmql_val *env_scope(struct lmql_val *env, const struct lmql_val *key) {
    for (; env && env->kind == LMQL_V_TUPLE; env = env->u.list.items[1]) {
        LMQL_ASSERT(env->u.list.len == 2 && env->u.list.items[0]->kind == LMQL_V_DICT);
        if (lmql__dict_get(env->u.list.items[0], key)) return env->u.list.items[0];
    }
    return NULL;
}

/* Python's rule for a name: the running def's locals, then the defs around
** it (closures), then the globals; a name the def declared global skips to
** the globals, one declared nonlocal to the enclosing defs. */
struct lmql_val *lmql__lookup(struct interp *I, const char *name) {
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
    struct lmql_val *v = NULL, *d;
    struct lmql_val *decl = I->decl ? lmql__dict_get(I->decl, &key) : NULL;
    if (!decl && I->locals && (v = lmql__dict_get(I->locals, &key))) return v;
    if ((!decl || !decl->u.b) && (d = env_scope(I->env, &key))) return lmql__dict_get(d, &key);
    if ((v = lmql__dict_get(I->globals, &key))) return v;
    return NULL;
}

int lmql__set_name(struct interp *I, const char *name, struct lmql_val *v) {
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
    struct lmql_val *scope = I->locals ? I->locals : I->globals;
    struct lmql_val *decl = I->decl ? lmql__dict_get(I->decl, &key) : NULL;
    if (decl) {
        /* nonlocal was checked when declared: an enclosing def binds it */
        struct lmql_val *d = decl->u.b ? I->globals : env_scope(I->env, &key);
        LMQL_ASSERT(d != NULL);
        if (d) scope = d;
    }
    if (lmql__dict_set(scope, lmql__val_cstr(name), lmql__val_ref(v)))
        return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return 0;
}

int lmql__declare(struct interp *I, const struct lmql_node *s) {
    bool global = s->kind == LMQL_NODE_GLOBAL;
    if (!I->locals || I->class_body) {
        if (global) return 0;   /* at the top (or in a class body): names are global already */
        return lmql__fail(I, s, LMQL_ERR_RUNTIME, "SyntaxError: nonlocal declaration not allowed at module level");
    }
    if (!I->decl && !(I->decl = lmql__val_dict())) return lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; i < s->u.items.n; i++) {
        const char *name = s->u.items.items[i]->u.name;
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)name, strlen(name)}};
        if (!global && !env_scope(I->env, &key))
            return lmql__fail(I, s->u.items.items[i], LMQL_ERR_RUNTIME, "SyntaxError: no binding for nonlocal '%s' found",
                              name);
        if (lmql__dict_set(I->decl, lmql__val_cstr(name), lmql__val_bool(global)))
            return lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
    }
    return 0;
}

struct lmql_val *lmql__def_value(struct interp *I, const struct lmql_node *def) {
    struct lmql_val *v = lmql__val_builtin(def->u.def.name, NULL, (void *)def, NULL);
    if (!v) return NULL;
    /* A def inside a def sees that def's scope, and the scopes it saw; in a
    ** class body, the scopes around the class (not the class's dict). */
    if (I->locals && !I->class_body) {
        struct lmql_val *env = lmql__val_tuple(2);
        if (!env || lmql__list_push(env, lmql__val_ref(I->locals)) ||
            lmql__list_push(env, I->env ? lmql__val_ref(I->env) : &lmql__none)) {
            lmql__val_unref(env);
            lmql__val_unref(v);
            return NULL;
        }
        v->u.func.env = env;
    } else if (I->env) {
        v->u.func.env = lmql__val_ref(I->env);
    }
    return v;
}

static struct lmql_val *oom(struct interp *I) {
    lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return NULL;
}

int lmql__val_fail(struct interp *I, const struct lmql_node *n) {
    const char *e = lmql__val_error();
    if (!e) return lmql__fail(I, n, LMQL_ERR_NOMEM, "out of memory");
    return lmql__fail(I, n, LMQL_ERR_RUNTIME, "%s: %s", strstr(e, "Circular") ? "ValueError" : "RecursionError", e);
}

/* The list or dict that makes key unhashable (key itself, or in a tuple). */
static const struct lmql_val *unhashable_part(const struct lmql_val *key) {
    if (key->kind != LMQL_V_TUPLE) return key;
    for (size_t i = 0; i < key->u.list.len; i++)
        if (!lmql__val_hashable(key->u.list.items[i])) return unhashable_part(key->u.list.items[i]);
    return key;
}

int lmql__check_key(struct interp *I, const struct lmql_node *n, const struct lmql_val *key) {
    if (lmql__val_hashable(key)) return 0;
    return lmql__fail(I, n, LMQL_ERR_RUNTIME, "TypeError: unhashable type: '%s'",
                      lmql__val_type_name(unhashable_part(key)));
}

/*
** The C stack a thread may use for evaluation: below stack_floor an
** expression fails instead of overflowing the stack. Parse limits bound
** each expression, but evaluation also nests through calls of defs and
** queries; the floor leaves a margin for what runs under an expression
** (a nested query decoding, str() of a deep value).
*/
static _Thread_local uintptr_t stack_floor;

void lmql__stack_mark(void) {
    pthread_attr_t a;
    void *lo;
    size_t size;
    stack_floor = 0;
    if (pthread_getattr_np(pthread_self(), &a)) return;
    if (!pthread_attr_getstack(&a, &lo, &size)) {
        size_t margin = size / 4 < ((size_t)1 << 20) ? size / 4 : ((size_t)1 << 20);
        stack_floor = (uintptr_t)lo + margin;
    }
    pthread_attr_destroy(&a);
}

static struct lmql_val *str_concat(struct interp *I, const struct lmql_val *a, const struct lmql_val *b) {
    struct lmql_val *v = lmql__val_str(NULL, 0);
    if (!v) return oom(I);
    char *p = lmql__malloc(a->u.str.len + b->u.str.len + 1);
    if (!p) { lmql__val_unref(v); return oom(I); }
    memcpy(p, a->u.str.s, a->u.str.len);
    memcpy(p + a->u.str.len, b->u.str.s, b->u.str.len);
    p[a->u.str.len + b->u.str.len] = 0;
    free(v->u.str.s);
    v->u.str.s = p;
    v->u.str.len = a->u.str.len + b->u.str.len;
    return v;
}

static struct lmql_val *repeat(struct interp *I, const struct lmql_node *n, const struct lmql_val *s, int64_t k) {
    if (k < 0) k = 0;
    if (s->kind == LMQL_V_STR) {
        if (s->u.str.len && (uint64_t)k > (64u << 20) / s->u.str.len) {
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "string repetition too large");
            return NULL;
        }
        struct lmql__buf b = {0};
        for (int64_t i = 0; i < k; i++)
            if (lmql__buf_add(&b, s->u.str.s, s->u.str.len)) { lmql__buf_free(&b); return oom(I); }
        struct lmql_val *v = lmql__val_str(b.data ? b.data : "", b.len);
        lmql__buf_free(&b);
        return v ? v : oom(I);
    }
    if (s->u.list.len && (uint64_t)k > (16u << 20) / s->u.list.len) {
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "list repetition too large");
        return NULL;
    }
    struct lmql_val *v = s->kind == LMQL_V_LIST ? lmql__val_list(0) : lmql__val_tuple(0);
    if (!v) return oom(I);
    for (int64_t i = 0; i < k; i++)
        for (size_t j = 0; j < s->u.list.len; j++)
            if (lmql__list_push(v, lmql__val_ref(s->u.list.items[j]))) { lmql__val_unref(v); return oom(I); }
    return v;
}

static bool is_intlike(const struct lmql_val *v) { return v->kind == LMQL_V_INT || v->kind == LMQL_V_BOOL; }
static int64_t as_int(const struct lmql_val *v) { return v->kind == LMQL_V_INT ? v->u.i : v->u.b; }
/* An exact number (value.h: a JSON number beyond int64 and double) in an
** operation: say so, rather than that ints do not add. Returns whether
** it failed. */
static bool exact_number_fails(struct interp *I, const struct lmql_node *n, const struct lmql_val *a,
                               const struct lmql_val *b) {
    const struct lmql_val *x = a && a->kind == LMQL_V_NUM ? a : b && b->kind == LMQL_V_NUM ? b : NULL;
    if (!x) return false;
    lmql__fail(I, n, LMQL_ERR_RUNTIME,
               "%.40s%s is a number beyond what a 64-bit integer or a double holds: it is kept exactly, as "
               "its text, and cannot be computed with (str() gives the text)",
               x->u.str.s, x->u.str.len > 40 ? "..." : "");
    return true;
}

static bool is_number(const struct lmql_val *v) { return is_intlike(v) || v->kind == LMQL_V_FLOAT; }
static double as_float(const struct lmql_val *v) { return v->kind == LMQL_V_FLOAT ? v->u.f : (double)as_int(v); }

static struct lmql_val *binop(struct interp *I, const struct lmql_node *n, enum lmql_binop op,
                              struct lmql_val *a, struct lmql_val *b) {
    if (op == LMQL_BINOP_ADD && a->kind == LMQL_V_STR && b->kind == LMQL_V_STR) return str_concat(I, a, b);
    if (op == LMQL_BINOP_ADD && a->kind == b->kind && (a->kind == LMQL_V_LIST || a->kind == LMQL_V_TUPLE)) {
        struct lmql_val *v = a->kind == LMQL_V_LIST ? lmql__val_list(0) : lmql__val_tuple(0);
        if (!v) return oom(I);
        for (size_t i = 0; i < a->u.list.len; i++) lmql__list_push(v, lmql__val_ref(a->u.list.items[i]));
        for (size_t i = 0; i < b->u.list.len; i++) lmql__list_push(v, lmql__val_ref(b->u.list.items[i]));
        return v;
    }
    if (op == LMQL_BINOP_MUL && (a->kind == LMQL_V_STR || a->kind == LMQL_V_LIST || a->kind == LMQL_V_TUPLE) &&
        is_intlike(b))
        return repeat(I, n, a, as_int(b));
    if (op == LMQL_BINOP_MUL && (b->kind == LMQL_V_STR || b->kind == LMQL_V_LIST || b->kind == LMQL_V_TUPLE) &&
        is_intlike(a))
        return repeat(I, n, b, as_int(a));
    if (op == LMQL_BINOP_MOD && a->kind == LMQL_V_STR) {
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "'%%' string formatting is not supported; use an f-string");
        return NULL;
    }
    if (exact_number_fails(I, n, a, b)) return NULL;
    if (!is_number(a) || !is_number(b)) {
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "unsupported operand types for %s: '%s' and '%s'", lmql__binop_text(op),
                   lmql__val_type_name(a), lmql__val_type_name(b));
        return NULL;
    }
    if (is_intlike(a) && is_intlike(b) && op != LMQL_BINOP_DIV) {
        int64_t x = as_int(a), y = as_int(b), r;
        switch (op) {
        case LMQL_BINOP_ADD: if (__builtin_add_overflow(x, y, &r)) goto overflow; break;
        case LMQL_BINOP_SUB: if (__builtin_sub_overflow(x, y, &r)) goto overflow; break;
        case LMQL_BINOP_MUL: if (__builtin_mul_overflow(x, y, &r)) goto overflow; break;
        case LMQL_BINOP_FLOORDIV:
        case LMQL_BINOP_MOD:
            if (y == 0) { lmql__fail(I, n, LMQL_ERR_RUNTIME, "integer division or modulo by zero"); return NULL; }
            if (x == INT64_MIN && y == -1) {   /* C leaves both undefined; Python: // overflows, % is 0 */
                if (op == LMQL_BINOP_FLOORDIV) goto overflow;
                r = 0;
                break;
            }
            r = op == LMQL_BINOP_FLOORDIV ? x / y - ((x % y != 0) && ((x < 0) != (y < 0))) : x % y;
            if (op == LMQL_BINOP_MOD && r != 0 && ((r < 0) != (y < 0))) r += y;
            break;
        case LMQL_BINOP_POW:
            if (y < 0) return lmql__val_float(pow((double)x, (double)y));
            /* by squaring: 1 ** 10**18 must not loop 10**18 times */
            r = 1;
            for (int64_t base = x, e = y;;) {
                if ((e & 1) && __builtin_mul_overflow(r, base, &r)) goto overflow;
                e >>= 1;
                if (!e) break;
                if (__builtin_mul_overflow(base, base, &base)) goto overflow;
            }
            break;
        case LMQL_BINOP_LSHIFT:
            if (y < 0) {
                lmql__fail(I, n, LMQL_ERR_RUNTIME, "ValueError: negative shift count");
                return NULL;
            }
            /* x << y is x * 2**y (a shift of a negative number is undefined in C) */
            if (x == 0) { r = 0; break; }
            if (y > 62 || __builtin_mul_overflow(x, (int64_t)1 << y, &r)) goto overflow;
            break;
        case LMQL_BINOP_RSHIFT:
            if (y < 0) {
                lmql__fail(I, n, LMQL_ERR_RUNTIME, "ValueError: negative shift count");
                return NULL;
            }
            r = y > 63 ? (x < 0 ? -1 : 0) : x >> y; break;
        case LMQL_BINOP_BITAND: r = x & y; break;
        case LMQL_BINOP_BITOR: r = x | y; break;
        case LMQL_BINOP_BITXOR: r = x ^ y; break;
        default: goto overflow;
        }
        struct lmql_val *v = lmql__val_int(r);
        return v ? v : oom(I);
    overflow:
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "integer overflow in %s: the result does not fit in 64 bits",
                   lmql__binop_text(op));
        return NULL;
    }
    double x = as_float(a), y = as_float(b), r;
    switch (op) {
    case LMQL_BINOP_ADD: r = x + y; break;
    case LMQL_BINOP_SUB: r = x - y; break;
    case LMQL_BINOP_MUL: r = x * y; break;
    case LMQL_BINOP_DIV:
    case LMQL_BINOP_FLOORDIV:
    case LMQL_BINOP_MOD:
        if (y == 0) { lmql__fail(I, n, LMQL_ERR_RUNTIME, "division by zero"); return NULL; }
        r = op == LMQL_BINOP_DIV ? x / y : op == LMQL_BINOP_FLOORDIV ? floor(x / y) : x - floor(x / y) * y;
        break;
    case LMQL_BINOP_POW: r = pow(x, y); break;
    default:
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "unsupported operand type for %s: 'float'", lmql__binop_text(op));
        return NULL;
    }
    struct lmql_val *v = lmql__val_float(r);
    return v ? v : oom(I);
}

/* `x in container`: substring, element or key. */
static int contains(struct interp *I, const struct lmql_node *n, struct lmql_val *c, struct lmql_val *x) {
    if (c->kind == LMQL_V_STR) {
        if (x->kind != LMQL_V_STR)
            return lmql__fail(I, n, LMQL_ERR_RUNTIME, "'in <string>' requires a string, not %s", lmql__val_type_name(x)),
                   -1;
        if (x->u.str.len == 0) return 1;
        if (x->u.str.len > c->u.str.len) return 0;
        for (size_t i = 0; i + x->u.str.len <= c->u.str.len; i++)
            if (!memcmp(c->u.str.s + i, x->u.str.s, x->u.str.len)) return 1;
        return 0;
    }
    if (c->kind == LMQL_V_LIST || c->kind == LMQL_V_TUPLE) {
        for (size_t i = 0; i < c->u.list.len; i++) {
            if (lmql__val_equal(c->u.list.items[i], x)) return 1;
            if (lmql__val_error()) return lmql__val_fail(I, n);
        }
        return 0;
    }
    if (c->kind == LMQL_V_DICT) {
        if (lmql__check_key(I, n, x)) return -1;
        int r = lmql__dict_get(c, x) != NULL;
        return lmql__val_error() ? lmql__val_fail(I, n) : r;
    }
    lmql__fail(I, n, LMQL_ERR_RUNTIME, "argument of type '%s' is not iterable", lmql__val_type_name(c));
    return -1;
}

static int compare1(struct interp *I, const struct lmql_node *n, enum lmql_cmpop op, struct lmql_val *a,
                    struct lmql_val *b) {
    int c;
    switch (op) {
    case LMQL_CMPOP_EQ:
    case LMQL_CMPOP_NE:
        c = lmql__val_equal(a, b);
        if (lmql__val_error()) return lmql__val_fail(I, n);
        return op == LMQL_CMPOP_EQ ? c : !c;
    case LMQL_CMPOP_IS: return a == b || (a->kind == LMQL_V_NONE && b->kind == LMQL_V_NONE);
    case LMQL_CMPOP_IS_NOT: return !(a == b || (a->kind == LMQL_V_NONE && b->kind == LMQL_V_NONE));
    case LMQL_CMPOP_IN: return contains(I, n, b, a);
    case LMQL_CMPOP_NOT_IN: c = contains(I, n, b, a); return c < 0 ? -1 : !c;
    default:
        c = lmql__val_compare(a, b);
        if (c == -2 && lmql__val_error()) return lmql__val_fail(I, n);
        if (c == -2) {
            if (exact_number_fails(I, n, a, b)) return -1;
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "'%s' not supported between '%s' and '%s'", lmql__cmpop_text(op),
                       lmql__val_type_name(a), lmql__val_type_name(b));
            return -1;
        }
        return op == LMQL_CMPOP_LT ? c < 0 : op == LMQL_CMPOP_GT ? c > 0 : op == LMQL_CMPOP_LE ? c <= 0 : c >= 0;
    }
}

/* Python index normalisation; -1 when out of range. */
static int64_t norm_index(int64_t i, size_t len) {
    if (i < 0) i += (int64_t)len;
    return i < 0 || i >= (int64_t)len ? -1 : i;
}

static int64_t clamp_slice(const struct lmql_val *v, int64_t dflt, size_t len, int64_t step) {
    if (!v || v->kind == LMQL_V_NONE) return dflt;
    int64_t i = as_int(v);
    if (i < 0) i += (int64_t)len;
    if (step > 0) return i < 0 ? 0 : i > (int64_t)len ? (int64_t)len : i;
    return i < -1 ? -1 : i >= (int64_t)len ? (int64_t)len - 1 : i;
}

static struct lmql_val *subscript(struct interp *I, const struct lmql_node *n, struct lmql_val *obj,
                                  const struct lmql_node *index) {
    if (index->kind == LMQL_NODE_SLICE) {
        if (obj->kind != LMQL_V_STR && obj->kind != LMQL_V_LIST && obj->kind != LMQL_V_TUPLE) {
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "'%s' object is not sliceable", lmql__val_type_name(obj));
            return NULL;
        }
        struct lmql_val *parts[3] = {NULL, NULL, NULL};
        const struct lmql_node *src[3] = {index->u.slice.lo, index->u.slice.hi, index->u.slice.step};
        for (int k = 0; k < 3; k++) {
            if (!src[k]) continue;
            parts[k] = lmql__eval(I, src[k]);
            if (!parts[k] || (parts[k]->kind != LMQL_V_NONE && !is_intlike(parts[k]))) {
                if (parts[k]) lmql__fail(I, src[k], LMQL_ERR_RUNTIME, "slice indices must be integers");
                for (int j = 0; j <= k; j++) lmql__val_unref(parts[j]);
                return NULL;
            }
        }
        int64_t step = parts[2] && parts[2]->kind != LMQL_V_NONE ? as_int(parts[2]) : 1;
        size_t len = obj->kind == LMQL_V_STR ? lmql__utf8_count(obj->u.str.s, obj->u.str.len) : obj->u.list.len;
        struct lmql_val *out = NULL;
        if (step == 0) {
            lmql__fail(I, index, LMQL_ERR_RUNTIME, "slice step cannot be zero");
        } else {
            int64_t lo = clamp_slice(parts[0], step > 0 ? 0 : (int64_t)len - 1, len, step);
            int64_t hi = clamp_slice(parts[1], step > 0 ? (int64_t)len : -1, len, step);
            if (obj->kind == LMQL_V_STR) {
                struct lmql__buf b = {0};
                lmql__buf_reserve(&b, 0);
                const char *str = obj->u.str.s;
                size_t sl = obj->u.str.len;
                for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) {
                    size_t at = lmql__utf8_offset(str, sl, (size_t)i);
                    lmql__buf_add(&b, str + at, lmql__utf8_offset(str + at, sl - at, 1));
                }
                out = lmql__val_str(b.data ? b.data : "", b.len);
                lmql__buf_free(&b);
            } else {
                out = obj->kind == LMQL_V_LIST ? lmql__val_list(0) : lmql__val_tuple(0);
                for (int64_t i = lo; out && (step > 0 ? i < hi : i > hi); i += step)
                    lmql__list_push(out, lmql__val_ref(obj->u.list.items[i]));
            }
            if (!out) oom(I);
        }
        for (int k = 0; k < 3; k++) lmql__val_unref(parts[k]);
        return out;
    }
    struct lmql_val *key = lmql__eval(I, index);
    if (!key) return NULL;
    struct lmql_val *out = NULL;
    if (obj->kind == LMQL_V_OBJ && !strcmp(obj->u.obj.type, "re.Match")) {   /* m[g]: m.group(g) */
        struct lmql__err e = {0};
        if (!(out = lmql__re_getitem(obj, key, &e)))
            lmql__fail(I, n, e.msg[0] ? LMQL_ERR_RUNTIME : LMQL_ERR_NOMEM, "%s", e.msg[0] ? e.msg : "out of memory");
    } else if (obj->kind == LMQL_V_DICT) {
        out = lmql__check_key(I, n, key) ? NULL : lmql__dict_get(obj, key);
        if (out) lmql__val_ref(out);
        else if (I->err->msg[0] || lmql__val_error()) {
            if (!I->err->msg[0]) lmql__val_fail(I, n);
        } else {
            struct lmql__buf b = {0};
            lmql__val_repr_into(&b, key);
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "KeyError: %s", b.data ? b.data : "?");
            lmql__buf_free(&b);
        }
    } else if (obj->kind == LMQL_V_STR || obj->kind == LMQL_V_LIST || obj->kind == LMQL_V_TUPLE) {
        if (!is_intlike(key)) {
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "%s indices must be integers, not %s", lmql__val_type_name(obj),
                       lmql__val_type_name(key));
        } else {
            size_t len = obj->kind == LMQL_V_STR ? lmql__utf8_count(obj->u.str.s, obj->u.str.len) : obj->u.list.len;
            int64_t i = norm_index(as_int(key), len);
            if (i < 0) lmql__fail(I, n, LMQL_ERR_RUNTIME, "%s index out of range", lmql__val_type_name(obj));
            else if (obj->kind == LMQL_V_STR) {
                const char *str = obj->u.str.s;
                size_t at = lmql__utf8_offset(str, obj->u.str.len, (size_t)i);
                out = lmql__val_str(str + at, lmql__utf8_offset(str + at, obj->u.str.len - at, 1));
            }
            else out = lmql__val_ref(obj->u.list.items[i]);
        }
    } else {
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "'%s' object is not subscriptable", lmql__val_type_name(obj));
    }
    lmql__val_unref(key);
    return out;
}

static struct lmql_val *eval_call(struct interp *I, const struct lmql_node *n) {
    struct lmql_val *fn;
    const struct lmql_node *f = n->u.call.func;
    if (f->kind == LMQL_NODE_ATTR) {
        struct lmql_val *obj = lmql__eval(I, f->u.attr.obj);
        if (!obj) return NULL;
        fn = lmql__method(I, f, obj, f->u.attr.name);
        lmql__val_unref(obj);
    } else {
        fn = lmql__eval(I, f);
    }
    if (!fn) return NULL;
    int32_t argc = n->u.call.args.n;
    struct lmql_val **argv = lmql__calloc((size_t)(argc ? argc : 1), sizeof *argv);
    const char **names = lmql__calloc((size_t)(argc ? argc : 1), sizeof *names);
    struct lmql_val *out = NULL;
    if (!argv || !names) { oom(I); goto done; }
    for (int32_t i = 0; i < argc; i++) {
        const struct lmql_node *a = n->u.call.args.items[i];
        if (a->kind == LMQL_NODE_KEYWORD) {
            names[i] = a->u.kw.name;
            argv[i] = lmql__eval(I, a->u.kw.value);
        } else {
            argv[i] = lmql__eval(I, a);
        }
        if (!argv[i]) goto done;
    }
    out = lmql__call(I, n, fn, argc, argv, names);
done:
    for (int32_t i = 0; argv && i < argc; i++) lmql__val_unref(argv[i]);
    free(argv);
    free(names);
    lmql__val_unref(fn);
    return out;
}

int lmql__interp_text(struct interp *I, const struct lmql_node *p, struct lmql_val *v, struct lmql__buf *out) {
    struct lmql_val *shown = v;
    struct lmql__buf conv = {0};
    if (p->u.interp.conv == 'r' || p->u.interp.conv == 'a') {
        if (lmql__val_repr_into(&conv, v)) { lmql__buf_free(&conv); return lmql__val_fail(I, p); }
        shown = lmql__val_str(conv.data ? conv.data : "", conv.len);
        lmql__buf_free(&conv);
        if (!shown) return lmql__fail(I, p, LMQL_ERR_NOMEM, "out of memory");
    } else if (p->u.interp.conv == 's' && p->u.interp.spec && *p->u.interp.spec) {
        if (lmql__val_str_into(&conv, v)) { lmql__buf_free(&conv); return lmql__val_fail(I, p); }
        shown = lmql__val_str(conv.data ? conv.data : "", conv.len);
        lmql__buf_free(&conv);
        if (!shown) return lmql__fail(I, p, LMQL_ERR_NOMEM, "out of memory");
    }
    int rc = 0;
    if (p->u.interp.spec && *p->u.interp.spec) {
        struct lmql__err e = {0};
        if (lmql__val_format(out, shown, p->u.interp.spec, &e)) rc = lmql__fail(I, p, LMQL_ERR_RUNTIME, "%s", e.msg);
    } else {
        rc = lmql__val_str_into(out, shown) ? lmql__val_fail(I, p) : 0;
    }
    if (shown != v) lmql__val_unref(shown);
    return rc;
}

static struct lmql_val *eval_fstring(struct interp *I, const struct lmql_node *n) {
    struct lmql__buf b = {0};
    lmql__buf_reserve(&b, 0);
    for (int32_t i = 0; i < n->u.parts.n; i++) {
        const struct lmql_node *p = n->u.parts.items[i];
        if (p->kind == LMQL_NODE_STR) {
            lmql__buf_add(&b, p->u.str.text, p->u.str.len);
            continue;
        }
        struct lmql_val *v = lmql__eval(I, p->u.interp.expr);
        if (!v) { lmql__buf_free(&b); return NULL; }
        int rc = lmql__interp_text(I, p, v, &b);
        lmql__val_unref(v);
        if (rc) { lmql__buf_free(&b); return NULL; }
    }
    struct lmql_val *v = lmql__val_str(b.data, b.len);
    lmql__buf_free(&b);
    return v ? v : oom(I);
}

static struct lmql_val *eval_display(struct interp *I, const struct lmql_node *n) {
    if (n->kind == LMQL_NODE_DICT) {
        struct lmql_val *d = lmql__val_dict();
        if (!d) return oom(I);
        for (int32_t i = 0; i < n->u.dict.keys.n; i++) {
            struct lmql_val *k = lmql__eval(I, n->u.dict.keys.items[i]);
            if (k && lmql__check_key(I, n->u.dict.keys.items[i], k)) { lmql__val_unref(k); k = NULL; }
            struct lmql_val *v = k ? lmql__eval(I, n->u.dict.values.items[i]) : NULL;
            if (!k || !v || lmql__dict_set(d, k, v)) {
                if (k && !v) lmql__val_unref(k);
                lmql__val_unref(d);
                return NULL;
            }
        }
        return d;
    }
    if (n->kind == LMQL_NODE_SET) {
        lmql__fail(I, n, LMQL_ERR_QUERY, "sets are not supported");
        return NULL;
    }
    struct lmql_val *l = n->kind == LMQL_NODE_LIST ? lmql__val_list(0) : lmql__val_tuple(0);
    if (!l) return oom(I);
    for (int32_t i = 0; i < n->u.items.n; i++) {
        struct lmql_val *v = lmql__eval(I, n->u.items.items[i]);
        if (!v || lmql__list_push(l, v)) { lmql__val_unref(l); return NULL; }
    }
    return l;
}

/* Iterate: the items of an iterable as a new list (strings by character,
** dicts by key). */
struct lmql_val *lmql__iter_list(struct interp *I, const struct lmql_node *at, struct lmql_val *v) {
    if (v->kind == LMQL_V_LIST || v->kind == LMQL_V_TUPLE) return lmql__val_ref(v);
    struct lmql_val *l = lmql__val_list(0);
    if (!l) return oom(I);
    if (v->kind == LMQL_V_STR) {
        for (size_t i = 0; i < v->u.str.len;) {
            size_t k = lmql__utf8_char_len(v->u.str.s + i, v->u.str.len - i);   /* as len() counts */
            lmql__list_push(l, lmql__val_str(v->u.str.s + i, k));
            i += k;
        }
        return l;
    }
    if (v->kind == LMQL_V_DICT) {
        for (size_t i = 0; i < v->u.dict.len; i++) lmql__list_push(l, lmql__val_ref(v->u.dict.keys[i]));
        return l;
    }
    lmql__val_unref(l);
    lmql__fail(I, at, LMQL_ERR_RUNTIME, "'%s' object is not iterable", lmql__val_type_name(v));
    return NULL;
}

static struct lmql_val *eval_comp(struct interp *I, const struct lmql_node *n) {
    if (n->kind != LMQL_NODE_LISTCOMP && n->kind != LMQL_NODE_GENEXP) {
        lmql__fail(I, n, LMQL_ERR_QUERY, "only list comprehensions are supported");
        return NULL;
    }
    if (n->u.comp.gens.n != 1) {
        lmql__fail(I, n, LMQL_ERR_QUERY, "comprehensions with several 'for' clauses are not supported yet");
        return NULL;
    }
    const struct lmql_node *g = n->u.comp.gens.items[0];
    struct lmql_val *src = lmql__eval(I, g->u.gen.iter);
    if (!src) return NULL;
    struct lmql_val *items = lmql__iter_list(I, g->u.gen.iter, src);
    lmql__val_unref(src);
    if (!items) return NULL;
    struct lmql_val *out = lmql__val_list(0);
    for (size_t i = 0; out && i < items->u.list.len; i++) {
        if (lmql__step(I, n) || lmql__assign(I, g->u.gen.target, items->u.list.items[i])) goto fail;
        bool keep = true;
        for (int32_t k = 0; keep && k < g->u.gen.ifs.n; k++) {
            struct lmql_val *c = lmql__eval(I, g->u.gen.ifs.items[k]);
            if (!c) goto fail;
            keep = lmql__val_truthy(c);
            lmql__val_unref(c);
        }
        if (!keep) continue;
        struct lmql_val *v = lmql__eval(I, n->u.comp.elt);
        if (!v || lmql__list_push(out, v)) goto fail;
    }
    lmql__val_unref(items);
    return out ? out : oom(I);
fail:
    lmql__val_unref(items);
    lmql__val_unref(out);
    return NULL;
}

struct lmql_val *lmql__eval(struct interp *I, const struct lmql_node *n) {
    struct lmql_val *a, *b, *v;
    char here;
    if (!stack_floor) lmql__stack_mark();
    if ((uintptr_t)&here < stack_floor) {
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "RecursionError: expression nested too deeply (out of stack)");
        return NULL;
    }
    switch (n->kind) {
    case LMQL_NODE_INT: v = lmql__val_int(n->u.i); return v ? v : oom(I);
    case LMQL_NODE_FLOAT: v = lmql__val_float(n->u.f); return v ? v : oom(I);
    case LMQL_NODE_BOOL: return lmql__val_bool(n->u.b);
    case LMQL_NODE_NONE: return &lmql__none;
    case LMQL_NODE_STR: v = lmql__val_str(n->u.str.text, n->u.str.len); return v ? v : oom(I);
    case LMQL_NODE_FSTRING: return eval_fstring(I, n);
    case LMQL_NODE_NAME:
        if ((v = lmql__lookup(I, n->u.name))) return lmql__val_ref(v);
        if (lmql__builtin_exists(n->u.name)) return (v = lmql__builtin(n->u.name)) ? v : oom(I);
        lmql__fail(I, n, LMQL_ERR_RUNTIME, "name '%s' is not defined", n->u.name);
        return NULL;
    case LMQL_NODE_ATTR:
        a = lmql__eval(I, n->u.attr.obj);
        if (!a) return NULL;
        v = lmql__method(I, n, a, n->u.attr.name);
        lmql__val_unref(a);
        return v;
    case LMQL_NODE_CALL: return eval_call(I, n);
    case LMQL_NODE_LAMBDA:
        v = lmql__def_value(I, n);
        return v ? v : oom(I);
    case LMQL_NODE_SUBSCRIPT:
        a = lmql__eval(I, n->u.sub.obj);
        if (!a) return NULL;
        v = subscript(I, n, a, n->u.sub.index);
        lmql__val_unref(a);
        return v;
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE:
    case LMQL_NODE_SET:
    case LMQL_NODE_DICT: return eval_display(I, n);
    case LMQL_NODE_LISTCOMP:
    case LMQL_NODE_GENEXP:
    case LMQL_NODE_SETCOMP:
    case LMQL_NODE_DICTCOMP: return eval_comp(I, n);
    case LMQL_NODE_UNARY:
        a = lmql__eval(I, n->u.unary.operand);
        if (!a) return NULL;
        if (n->u.unary.op == LMQL_UNOP_NOT) v = lmql__val_bool(!lmql__val_truthy(a));
        else if (a->kind == LMQL_V_FLOAT)
            v = lmql__val_float(n->u.unary.op == LMQL_UNOP_NEG ? -a->u.f : a->u.f);
        else if (is_intlike(a) && n->u.unary.op == LMQL_UNOP_NEG && as_int(a) == INT64_MIN) {
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "integer overflow in unary -: the result does not fit in 64 bits");
            v = NULL;
        } else if (is_intlike(a) && n->u.unary.op != LMQL_UNOP_INVERT)
            v = lmql__val_int(n->u.unary.op == LMQL_UNOP_NEG ? -as_int(a) : as_int(a));
        else if (is_intlike(a) && n->u.unary.op == LMQL_UNOP_INVERT) v = lmql__val_int(~as_int(a));
        else if (exact_number_fails(I, n, a, NULL)) v = NULL;
        else {
            lmql__fail(I, n, LMQL_ERR_RUNTIME, "bad operand type for unary %s: '%s'", lmql__unop_text(n->u.unary.op),
                       lmql__val_type_name(a));
            v = NULL;
        }
        lmql__val_unref(a);
        return v;
    case LMQL_NODE_BINOP:
        a = lmql__eval(I, n->u.bin.left);
        if (!a) return NULL;
        b = lmql__eval(I, n->u.bin.right);
        if (!b) { lmql__val_unref(a); return NULL; }
        v = binop(I, n, n->u.bin.op, a, b);
        lmql__val_unref(a);
        lmql__val_unref(b);
        return v;
    case LMQL_NODE_BOOLOP:
        v = NULL;
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) {
            lmql__val_unref(v);
            v = lmql__eval(I, n->u.boolop.values.items[i]);
            if (!v) return NULL;
            if (lmql__val_truthy(v) == (bool)n->u.boolop.is_or) break;
        }
        return v;
    case LMQL_NODE_COMPARE: {
        a = lmql__eval(I, n->u.cmp.left);
        if (!a) return NULL;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) {
            b = lmql__eval(I, n->u.cmp.comparators.items[i]);
            if (!b) { lmql__val_unref(a); return NULL; }
            int r = compare1(I, n, n->u.cmp.ops[i], a, b);
            lmql__val_unref(a);
            a = b;
            if (r <= 0) { lmql__val_unref(a); return r < 0 ? NULL : &lmql__false; }
        }
        lmql__val_unref(a);
        return &lmql__true;
    }
    case LMQL_NODE_IFEXP:
        a = lmql__eval(I, n->u.ifexp.test);
        if (!a) return NULL;
        v = lmql__eval(I, lmql__val_truthy(a) ? n->u.ifexp.body : n->u.ifexp.orelse);
        lmql__val_unref(a);
        return v;
    default:
        lmql__fail(I, n, LMQL_ERR_QUERY, "'%s' expressions are not supported", lmql__node_kind_name(n->kind));
        return NULL;
    }
}

int lmql__assign(struct interp *I, const struct lmql_node *t, struct lmql_val *v) {
    if (t->kind == LMQL_NODE_NAME) return lmql__set_name(I, t->u.name, v);
    if (t->kind == LMQL_NODE_TUPLE || t->kind == LMQL_NODE_LIST) {
        struct lmql_val *items = lmql__iter_list(I, t, v);
        if (!items) return -1;
        int rc = 0;
        if ((int64_t)items->u.list.len != t->u.items.n)
            rc = lmql__fail(I, t, LMQL_ERR_RUNTIME, "cannot unpack %zu values into %d targets", items->u.list.len,
                            t->u.items.n);
        for (int32_t i = 0; rc == 0 && i < t->u.items.n; i++) rc = lmql__assign(I, t->u.items.items[i], items->u.list.items[i]);
        lmql__val_unref(items);
        return rc;
    }
    if (t->kind == LMQL_NODE_SUBSCRIPT && t->u.sub.index->kind != LMQL_NODE_SLICE) {
        struct lmql_val *obj = lmql__eval(I, t->u.sub.obj);
        if (!obj) return -1;
        struct lmql_val *key = lmql__eval(I, t->u.sub.index);
        int rc = -1;
        if (!key) goto out;
        if (obj->kind == LMQL_V_DICT) {
            rc = lmql__check_key(I, t->u.sub.index, key);
            if (rc == 0 && lmql__dict_set(obj, lmql__val_ref(key), lmql__val_ref(v)))
                rc = lmql__val_fail(I, t);
        } else if (obj->kind == LMQL_V_LIST && is_intlike(key)) {
            int64_t i = norm_index(as_int(key), obj->u.list.len);
            if (i < 0) lmql__fail(I, t, LMQL_ERR_RUNTIME, "list assignment index out of range");
            else {
                lmql__val_unref(obj->u.list.items[i]);
                obj->u.list.items[i] = lmql__val_ref(v);
                rc = 0;
            }
        } else {
            lmql__fail(I, t, LMQL_ERR_RUNTIME, "'%s' object does not support item assignment", lmql__val_type_name(obj));
        }
    out:
        lmql__val_unref(key);
        lmql__val_unref(obj);
        return rc;
    }
    if (t->kind == LMQL_NODE_ATTR) {
        struct lmql_val *obj = lmql__eval(I, t->u.attr.obj);
        if (!obj) return -1;
        int rc = lmql__class_setattr(I, t, obj, t->u.attr.name, v);
        lmql__val_unref(obj);
        return rc;
    }
    return lmql__fail(I, t, LMQL_ERR_QUERY, "cannot assign to this expression");
}
