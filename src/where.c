/*
** The where clauses of a program, checked and compiled once (see where.h).
**
** Semantics follow LMQL (LANGUAGE.md §3). A conjunct constrains the hole
** whose variable it names; one that does not name it is a test of other
** values, true while they are unknown. Constraint functions (TOKENS, INT,
** STOPS_AT, ...) say nothing about holes other than the one they name.
*/
#include "where.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataclass.h"
#include "gbnf.h"
#include "grammar.h"
#include "json.h"
#include "jsonschema.h"
#include "regex.h"
#include "value.h"

/* ---------------------------------------------- constraint functions -- */

/* LMQL's constraint functions, from constraints.def. */
enum cfn {
    CFN_NONE,
#define CFN(id, name, argc, args) CFN_##id,
#define ALIAS(id, name)
#include "constraints.def"
#undef CFN
#undef ALIAS
};

static const struct {
    const char *name;
    enum cfn id;
} cfn_names[] = {
#define CFN(id, name, argc, args) {name, CFN_##id},
#define ALIAS(id, name) {name, CFN_##id},
#include "constraints.def"
#undef CFN
#undef ALIAS
};

static const struct {
    int argc;
    const char *args;
} cfn_info[] = {
    [CFN_NONE] = {0, NULL},
#define CFN(id, name, argc, args) [CFN_##id] = {argc, args},
#define ALIAS(id, name)
#include "constraints.def"
#undef CFN
#undef ALIAS
};

static const char *call_name(const struct lmql_node *n) {
    if (!n || n->kind != LMQL_NODE_CALL || n->u.call.func->kind != LMQL_NODE_NAME) return NULL;
    return n->u.call.func->u.name;
}

/* The constraint function called by n (CFN_NONE for anything else). */
static enum cfn cfn_of(const struct lmql_node *n) {
    const char *f = call_name(n);
    if (!f) return CFN_NONE;
    for (size_t i = 0; i < sizeof cfn_names / sizeof *cfn_names; i++)
        if (!strcmp(f, cfn_names[i].name)) return cfn_names[i].id;
    return CFN_NONE;
}

/* ------------------------------------------------------------ errors -- */

/* The query is wrong at node n (NULL: no place). Returns -1. */
#define wfail(e, n, ...) lmql__err_set((e), LMQL_ERR_QUERY, (n) ? &(n)->pos : NULL, __VA_ARGS__)
/* Out of memory is no fault of the query. */
#define woom(e) lmql__err_nomem(e)

/* A literal pattern: compiled, or the error at its place in the query. */
static struct lmql_regex *literal_regex(const struct lmql_node *p, struct lmql__err *e) {
    struct lmql__err re_err = {0};
    struct lmql_regex *re = lmql__regex_compile(p->u.str.text, p->u.str.len, &re_err);
    if (re) return re;
    if (re_err.status == LMQL_ERR_NOMEM) woom(e);
    else wfail(e, p, "bad regex: %s (at offset %zu of the pattern)", re_err.msg, re_err.pos.offset);
    return NULL;
}

/* ------------------------------------------------------------ checks -- */

/* The calls of constraint functions anywhere in n: the right number of
** arguments, and a REGEX pattern written as a literal must compile. */
/* The keyword arguments of json(SCHEMA, ...) / JSON(X, SCHEMA, ...) from
** argument `first` on: whitespace="compact" (the default: json.dumps's
** separators) or "free" (any JSON whitespace between tokens). Sets *kind
** (may be NULL); returns 0 or -1 with e filled. */
static int json_ws(const struct lmql_node *call, int32_t first, enum lmql__gkind *kind, struct lmql__err *e) {
    if (kind) *kind = LMQL_G_JSON_SCHEMA;
    for (int32_t i = first; i < call->u.call.args.n; i++) {
        const struct lmql_node *a = call->u.call.args.items[i];
        const struct lmql_node *v = a->kind == LMQL_NODE_KEYWORD ? a->u.kw.value : NULL;
        if (!v || strcmp(a->u.kw.name, "whitespace"))
            return wfail(e, a, "%s() takes one schema and whitespace=\"compact\" or \"free\"", call_name(call));
        bool compact = v->kind == LMQL_NODE_STR && v->u.str.len == 7 && !memcmp(v->u.str.text, "compact", 7);
        bool free_ws = v->kind == LMQL_NODE_STR && v->u.str.len == 4 && !memcmp(v->u.str.text, "free", 4);
        if (!compact && !free_ws) return wfail(e, v, "whitespace= is \"compact\" (the default) or \"free\"");
        if (kind) *kind = free_ws ? LMQL_G_JSON_SCHEMA_FREE_WS : LMQL_G_JSON_SCHEMA;
    }
    return 0;
}

static int check_calls(const struct lmql_node *n, struct lmql__err *e) {
    if (!n) return 0;
    switch (n->kind) {
    case LMQL_NODE_CALL: {
        enum cfn fn = cfn_of(n);
        int32_t argc = n->u.call.args.n, npos = 0;
        while (npos < argc && n->u.call.args.items[npos]->kind != LMQL_NODE_KEYWORD) npos++;
        if (fn == CFN_JSON && npos == 2 && json_ws(n, 2, NULL, e)) return -1;
        if (fn != CFN_NONE && (npos != cfn_info[fn].argc || (npos != argc && fn != CFN_JSON)))
            return wfail(e, n, "%s() takes %s", call_name(n), cfn_info[fn].args);
        if (fn == CFN_REGEX && n->u.call.args.items[1]->kind == LMQL_NODE_STR) {
            struct lmql_regex *re = literal_regex(n->u.call.args.items[1], e);
            if (!re) return -1;
            lmql__regex_free(re);
        }
        for (int32_t i = 0; i < argc; i++) if (check_calls(n->u.call.args.items[i], e)) return -1;
        return 0;
    }
    case LMQL_NODE_KEYWORD: return check_calls(n->u.kw.value, e);
    case LMQL_NODE_UNARY: return check_calls(n->u.unary.operand, e);
    case LMQL_NODE_BINOP: return check_calls(n->u.bin.left, e) || check_calls(n->u.bin.right, e) ? -1 : 0;
    case LMQL_NODE_COMPARE:
        if (check_calls(n->u.cmp.left, e)) return -1;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) if (check_calls(n->u.cmp.comparators.items[i], e)) return -1;
        return 0;
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) if (check_calls(n->u.boolop.values.items[i], e)) return -1;
        return 0;
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE:
        for (int32_t i = 0; i < n->u.items.n; i++) if (check_calls(n->u.items.items[i], e)) return -1;
        return 0;
    default:
        return 0;
    }
}

int lmql__where_check(const struct lmql_node *n, struct lmql__err *e) {
    if (!n) return 0;
    switch (n->kind) {
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++)
            if (lmql__where_check(n->u.boolop.values.items[i], e)) return -1;
        return 0;
    case LMQL_NODE_UNARY:
        return lmql__where_check(n->u.unary.operand, e);
    case LMQL_NODE_COMPARE: {
        if (n->u.cmp.comparators.n > 1)
            return wfail(e, n, "constraints do not support comparison with more than one operator");
        enum lmql_cmpop op = n->u.cmp.ops[0];
        if (op == LMQL_CMPOP_LE || op == LMQL_CMPOP_GE || op == LMQL_CMPOP_NE)
            return wfail(e, n, "the constraint operator '%s' is not supported; use <, > or ==", lmql__cmpop_text(op));
        return check_calls(n, e);
    }
    case LMQL_NODE_CALL:
        if (n->u.call.func->kind == LMQL_NODE_ATTR)
            return wfail(e, n, "method calls like '.%s(...)' are not supported in constraints",
                         n->u.call.func->u.attr.name);
        return check_calls(n, e);
    default:
        return check_calls(n, e);
    }
}

/* --------------------------------------------------------- compiling -- */

struct compiler {
    struct lmql__where *w;
    const char *var;
    struct lmql__err *e;
    const struct lmql_ast_query *q;   /* the hole's query: the classes it sees */
    int in_or;                        /* inside an 'or' */
};

static bool is_var(const struct compiler *k, const struct lmql_node *n) {
    return n && n->kind == LMQL_NODE_NAME && !strcmp(n->u.name, k->var);
}

/* Does n mention the hole? */
static bool mentions(const struct compiler *k, const struct lmql_node *n) {
    if (!n) return false;
    switch (n->kind) {
    case LMQL_NODE_NAME: return !strcmp(n->u.name, k->var);
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) if (mentions(k, n->u.boolop.values.items[i])) return true;
        return false;
    case LMQL_NODE_COMPARE:
        if (mentions(k, n->u.cmp.left)) return true;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) if (mentions(k, n->u.cmp.comparators.items[i])) return true;
        return false;
    case LMQL_NODE_CALL:
        if (mentions(k, n->u.call.func)) return true;
        for (int32_t i = 0; i < n->u.call.args.n; i++) if (mentions(k, n->u.call.args.items[i])) return true;
        return false;
    case LMQL_NODE_KEYWORD: return mentions(k, n->u.kw.value);
    case LMQL_NODE_UNARY: return mentions(k, n->u.unary.operand);
    case LMQL_NODE_BINOP: return mentions(k, n->u.bin.left) || mentions(k, n->u.bin.right);
    case LMQL_NODE_ATTR: return mentions(k, n->u.attr.obj);
    case LMQL_NODE_SUBSCRIPT: return mentions(k, n->u.sub.obj) || mentions(k, n->u.sub.index);
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE:
        for (int32_t i = 0; i < n->u.items.n; i++) if (mentions(k, n->u.items.items[i])) return true;
        return false;
    default: return false;
    }
}

/* Does n use one of LMQL's constraint functions? Those constrain the
** variable they name while it is generated; for another hole they say
** nothing (and are never evaluated as script calls). */
static bool uses_constraint_fn(const struct lmql_node *n) {
    if (!n) return false;
    switch (n->kind) {
    case LMQL_NODE_CALL:
        if (cfn_of(n) != CFN_NONE) return true;
        for (int32_t i = 0; i < n->u.call.args.n; i++) if (uses_constraint_fn(n->u.call.args.items[i])) return true;
        return false;
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) if (uses_constraint_fn(n->u.boolop.values.items[i])) return true;
        return false;
    case LMQL_NODE_COMPARE:
        if (uses_constraint_fn(n->u.cmp.left)) return true;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) if (uses_constraint_fn(n->u.cmp.comparators.items[i])) return true;
        return false;
    case LMQL_NODE_UNARY: return uses_constraint_fn(n->u.unary.operand);
    case LMQL_NODE_BINOP: return uses_constraint_fn(n->u.bin.left) || uses_constraint_fn(n->u.bin.right);
    default: return false;
    }
}

static struct lmql__wnode *node_new(struct compiler *k, enum lmql__wk kind, const struct lmql_node *expr,
                                    const struct lmql_node *at) {
    struct lmql__wnode *w = lmql__calloc(1, sizeof *w);
    if (!w) {
        woom(k->e);
        return NULL;
    }
    w->kind = kind;
    w->expr = expr;
    w->at = at;
    return w;
}

static void node_free(struct lmql__wnode *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kids; i++) node_free(w->kids[i]);
    free(w->kids);
    lmql__regex_free(w->re);
    lmql__grammar_free(w->gram);
    free(w);
}

static int add_kid(struct compiler *k, struct lmql__wnode *parent, struct lmql__wnode *kid) {
    if (!kid) return -1;
    struct lmql__wnode **p = lmql__realloc(parent->kids, ((size_t)parent->n_kids + 1) * sizeof *p);
    if (!p) {
        node_free(kid);
        return woom(k->e);
    }
    parent->kids = p;
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

static struct lmql__wnode *compile(struct compiler *k, const struct lmql_node *n);
static struct lmql__wnode *compile_type_is(struct compiler *k, const struct lmql_node *n, const struct lmql_node *type);

/* The value of an expression made of literals only (a schema written in the
** query): NULL when it is not one, or when memory runs out (*oom set). */
static struct lmql_val *literal_value(const struct lmql_node *n, bool *oom) {
    struct lmql_val *v = NULL;
    switch (n->kind) {
    case LMQL_NODE_INT: v = lmql__val_int(n->u.i); break;
    case LMQL_NODE_FLOAT: v = lmql__val_float(n->u.f); break;
    case LMQL_NODE_BOOL: return n->u.b ? &lmql__true : &lmql__false;
    case LMQL_NODE_NONE: return &lmql__none;
    case LMQL_NODE_STR: v = lmql__val_str(n->u.str.text, n->u.str.len); break;
    case LMQL_NODE_UNARY:
        if (n->u.unary.op != LMQL_UNOP_NEG) return NULL;
        if (n->u.unary.operand->kind == LMQL_NODE_INT && n->u.unary.operand->u.i != INT64_MIN)
            v = lmql__val_int(-n->u.unary.operand->u.i);
        else if (n->u.unary.operand->kind == LMQL_NODE_FLOAT)
            v = lmql__val_float(-n->u.unary.operand->u.f);
        else
            return NULL;
        break;
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE:
        if (!(v = lmql__val_list((size_t)n->u.items.n))) break;
        for (int32_t i = 0; i < n->u.items.n; i++) {
            struct lmql_val *x = literal_value(n->u.items.items[i], oom);
            if (!x || lmql__list_push(v, x)) {
                if (x) *oom = true;   /* the push failed (and released x) */
                lmql__val_unref(v);
                return NULL;
            }
        }
        return v;
    case LMQL_NODE_DICT:
        if (!(v = lmql__val_dict())) break;
        for (int32_t i = 0; i < n->u.dict.keys.n; i++) {
            /* {**d} has no key: not a literal */
            const struct lmql_node *kn = n->u.dict.keys.items[i];
            struct lmql_val *key = kn ? literal_value(kn, oom) : NULL;
            /* an unhashable key is the interpreter's error to report */
            bool hashable = key && key->kind != LMQL_V_LIST && key->kind != LMQL_V_DICT;
            struct lmql_val *x = hashable ? literal_value(n->u.dict.values.items[i], oom) : NULL;
            if (!x) {
                lmql__val_unref(key);
                lmql__val_unref(v);
                return NULL;
            }
            if (lmql__dict_set(v, key, x)) {   /* it released key and x */
                *oom = true;
                lmql__val_unref(v);
                return NULL;
            }
        }
        return v;
    default:
        return NULL;
    }
    if (!v) *oom = true;
    return v;
}

struct lmql_grammar *lmql__where_grammar(enum lmql__gkind kind, const struct lmql_val *v, const struct lmql_node *at,
                                         struct lmql__err *e) {
    struct lmql__err ge = {0};
    struct lmql_grammar *g = NULL;
    struct lmql__js_opts o = {.free_ws = kind == LMQL_G_JSON_SCHEMA_FREE_WS};
    if (kind == LMQL_G_GBNF) {
        if (v->kind != LMQL_V_STR) {
            wfail(e, at, "a grammar is a string in llama.cpp's GBNF, not %s", lmql__val_type_name(v));
            return NULL;
        }
        g = lmql__gbnf_compile(v->u.str.s, v->u.str.len, NULL, &ge);
        if (!g && ge.status != LMQL_ERR_NOMEM && ge.pos.line)
            wfail(e, at, "bad grammar: %d:%d: %s", ge.pos.line, ge.pos.col, ge.msg);
        else if (!g && ge.status != LMQL_ERR_NOMEM)   /* about the whole grammar, not a place in it */
            wfail(e, at, "bad grammar: %s", ge.msg);
    } else if (v->kind == LMQL_V_STR) {   /* the schema's JSON text, e.g. a query argument */
        g = lmql__jsonschema_compile_text(v->u.str.s, v->u.str.len, &o, &ge);
        if (!g && ge.status != LMQL_ERR_NOMEM) wfail(e, at, "bad JSON schema: %s", ge.msg);
    } else if (v->kind == LMQL_V_DICT || v->kind == LMQL_V_BOOL) {
        g = lmql__jsonschema_compile(v, &o, &ge);
        if (!g && ge.status != LMQL_ERR_NOMEM) wfail(e, at, "bad JSON schema: %s", ge.msg);
    } else {
        wfail(e, at, "a JSON schema is a dict, True/False or its JSON text, not %s", lmql__val_type_name(v));
        return NULL;
    }
    if (!g && ge.status == LMQL_ERR_NOMEM) woom(e);
    return g;
}

/* A grammar constraint from expr: compiled now when expr is a literal (its
** errors are the program's), else when the hole runs. */
static struct lmql__wnode *grammar_node(struct compiler *k, const struct lmql_node *at, const struct lmql_node *expr,
                                        enum lmql__gkind kind) {
    struct lmql__wnode *w = node_new(k, LMQL_W_GRAMMAR, expr, at);
    if (!w) return NULL;
    w->gkind = kind;
    bool oom = false;
    struct lmql_val *v = expr ? literal_value(expr, &oom) : &lmql__true;
    if (oom) {
        node_free(w);
        woom(k->e);
        return NULL;
    }
    if (v) {
        w->gram = lmql__where_grammar(kind, v, expr ? expr : at, k->e);
        lmql__val_unref(v);
        if (!w->gram) {
            node_free(w);
            return NULL;
        }
    }
    return w;
}

/* Something that does not name the hole: a test of other values. */
static struct lmql__wnode *test(struct compiler *k, const struct lmql_node *n) {
    return node_new(k, uses_constraint_fn(n) ? LMQL_W_TRUE : LMQL_W_TEST, n, n);
}

/* len(TOKENS(X)) -> 2, len(X) -> 1, else 0. */
static int length_of_var(struct compiler *k, const struct lmql_node *n) {
    const char *f = call_name(n);
    if (!f || strcmp(f, "len") || n->u.call.args.n != 1) return 0;
    const struct lmql_node *a = n->u.call.args.items[0];
    if (is_var(k, a)) return 1;
    if (cfn_of(a) == CFN_TOKENS && a->u.call.args.n == 1 && is_var(k, a->u.call.args.items[0])) return 2;
    return 0;
}

static struct lmql__wnode *compile_compare(struct compiler *k, const struct lmql_node *n, const struct lmql_node *l,
                                           const struct lmql_node *r, enum lmql_cmpop op) {
    if (!mentions(k, n)) return test(k, n);
    /* type(X) is T */
    const char *lf = call_name(l);
    if (op == LMQL_CMPOP_IS && lf && !strcmp(lf, "type") && l->u.call.args.n == 1 && is_var(k, l->u.call.args.items[0]))
        return compile_type_is(k, n, r);
    /* Lengths: len(TOKENS(X)) < N, N > len(X), ... */
    int ll = length_of_var(k, l), lr = length_of_var(k, r);
    if (ll || lr) {
        if (lr && !ll) {
            const struct lmql_node *t = l;
            l = r;
            r = t;
            ll = lr;
            op = op == LMQL_CMPOP_LT ? LMQL_CMPOP_GT : op == LMQL_CMPOP_GT ? LMQL_CMPOP_LT : op;
        }
        if (op != LMQL_CMPOP_LT && op != LMQL_CMPOP_GT && op != LMQL_CMPOP_EQ) {
            wfail(k->e, n, "a length can be compared with <, > or == only");
            return NULL;
        }
        if (mentions(k, r)) {
            wfail(k->e, r, "the bound of a length must not involve %s", k->var);
            return NULL;
        }
        struct lmql__wnode *w = node_new(k, ll == 2 ? LMQL_W_TOKLEN : LMQL_W_CHARLEN, r, r);
        if (w) w->op = op;
        return w;
    }
    /* X == expr, X in [...] */
    if (is_var(k, l) && (op == LMQL_CMPOP_EQ || op == LMQL_CMPOP_IN) && !mentions(k, r))
        return node_new(k, op == LMQL_CMPOP_EQ ? LMQL_W_EQ : LMQL_W_IN, r, r);
    if (is_var(k, r) && op == LMQL_CMPOP_EQ && !mentions(k, l)) return node_new(k, LMQL_W_EQ, l, l);
    /* "s" in X */
    if (is_var(k, r) && op == LMQL_CMPOP_IN && !mentions(k, l)) return node_new(k, LMQL_W_CONTAINS, l, l);
    wfail(k->e, n, "this comparison on %s is not supported as a constraint", k->var);
    return NULL;
}

static struct lmql__wnode *compile_call(struct compiler *k, const struct lmql_node *n) {
    enum cfn fn = cfn_of(n);
    const struct lmql_node *a0 = n->u.call.args.n > 0 ? n->u.call.args.items[0] : NULL;
    const struct lmql_node *a1 = n->u.call.args.n > 1 ? n->u.call.args.items[1] : NULL;
    bool on_var = is_var(k, a0);
    /* Argument counts were checked with the clause (lmql__where_check). */
    switch (fn) {
    case CFN_STOPS_AT:
    case CFN_STOPS_BEFORE: {
        if (!on_var) return node_new(k, LMQL_W_TRUE, NULL, n);
        if (k->w->n_stops >= LMQL_MAX_STOPS) {
            wfail(k->e, n, "too many stop phrases (at most %d on one variable)", LMQL_MAX_STOPS);
            return NULL;
        }
        struct lmql__wnode *w = node_new(k, LMQL_W_STOP, a1, n);
        if (w) {
            w->before = fn == CFN_STOPS_BEFORE;
            w->stop = k->w->n_stops++;
        }
        return w;
    }
    case CFN_INT:
    case CFN_ERASE:
    case CFN_ESCAPED:
        if (!on_var) return node_new(k, LMQL_W_TRUE, NULL, n);
        if (fn == CFN_INT) {
            k->w->post |= LMQL_POST_INT;
            return node_new(k, LMQL_W_INT, NULL, n);
        }
        k->w->post |= fn == CFN_ERASE ? LMQL_POST_ERASE : LMQL_POST_ESCAPED;
        return node_new(k, LMQL_W_TRUE, NULL, n);
    case CFN_REGEX: {
        if (!on_var) return node_new(k, LMQL_W_TRUE, NULL, n);
        struct lmql__wnode *w = node_new(k, LMQL_W_REGEX, a1, a1);
        if (w && a1->kind == LMQL_NODE_STR) {
            w->pat = a1->u.str.text;
            w->pat_len = a1->u.str.len;
            if (!(w->re = literal_regex(a1, k->e))) {
                node_free(w);
                return NULL;
            }
        }
        return w;
    }
    case CFN_STARTS_WITH:
        if (!on_var) return node_new(k, LMQL_W_TRUE, NULL, n);
        return node_new(k, LMQL_W_STARTS, a1, n);
    case CFN_JSON:
    case CFN_GRAMMAR:
        if (!on_var) return node_new(k, LMQL_W_TRUE, NULL, n);
        if (fn == CFN_GRAMMAR) return grammar_node(k, n, a1, LMQL_G_GBNF);
        k->w->post |= LMQL_POST_JSON;
        enum lmql__gkind gk;
        if (json_ws(n, 2, &gk, k->e)) return NULL;
        return grammar_node(k, n, a1, gk);
    default:
        break;
    }
    if (!mentions(k, n)) return test(k, n);
    const char *f = call_name(n);
    wfail(k->e, n, "the constraint %s(...) is not supported", f ? f : "call");
    return NULL;
}

static struct lmql__wnode *compile(struct compiler *k, const struct lmql_node *n) {
    switch (n->kind) {
    case LMQL_NODE_BOOLOP: {
        struct lmql__wnode *w = node_new(k, n->u.boolop.is_or ? LMQL_W_OR : LMQL_W_AND, NULL, n);
        k->in_or += n->u.boolop.is_or;
        for (int32_t i = 0; w && i < n->u.boolop.values.n; i++)
            if (add_kid(k, w, compile(k, n->u.boolop.values.items[i]))) {
                node_free(w);
                w = NULL;
            }
        k->in_or -= n->u.boolop.is_or;
        return w;
    }
    case LMQL_NODE_UNARY:
        if (n->u.unary.op == LMQL_UNOP_NOT && mentions(k, n)) {
            struct lmql__wnode *kid = compile(k, n->u.unary.operand);
            if (!kid) return NULL;
            if (kid->kind == LMQL_W_TRUE || kid->kind == LMQL_W_FALSE) {
                kid->kind = kid->kind == LMQL_W_TRUE ? LMQL_W_FALSE : LMQL_W_TRUE;
                return kid;
            }
            if (kid->kind != LMQL_W_CONTAINS) {
                node_free(kid);
                wfail(k->e, n, "'not' is supported before '\"...\" in %s' only", k->var);
                return NULL;
            }
            struct lmql__wnode *w = node_new(k, LMQL_W_NOT, NULL, n);
            if (!w) node_free(kid);
            else if (add_kid(k, w, kid)) {
                node_free(w);
                return NULL;
            }
            return w;
        }
        return test(k, n);
    case LMQL_NODE_COMPARE:
        /* One operator: lmql__where_check refused chains. */
        return compile_compare(k, n, n->u.cmp.left, n->u.cmp.comparators.items[0], n->u.cmp.ops[0]);
    case LMQL_NODE_CALL:
        return compile_call(k, n);
    default:
        if (!mentions(k, n)) return test(k, n);
        wfail(k->e, n, "this expression on %s is not supported as a constraint", k->var);
        return NULL;
    }
}

/* A regex the hole's value must match, written by the type. */
static struct lmql__wnode *type_regex(struct compiler *k, const struct lmql_node *at, const char *pat) {
    struct lmql__wnode *r = node_new(k, LMQL_W_REGEX, at, at);
    struct lmql__err re_err = {0};
    if (r && !(r->re = lmql__regex_compile(pat, strlen(pat), &re_err))) {
        node_free(r);
        woom(k->e);   /* the patterns below are fixed: only memory can fail */
        return NULL;
    }
    if (r) {
        r->pat = pat;
        r->pat_len = strlen(pat);
    }
    return r;
}

/* The dataclass `name` as the hole's type: its JSON Schema's grammar. */
static struct lmql__wnode *class_type(struct compiler *k, const struct lmql_node *type,
                                      const struct lmql_node *cls) {
    struct lmql_val *schema = lmql__class_schema(k->q, cls, k->e);
    if (!schema) return NULL;
    struct lmql__wnode *w = node_new(k, LMQL_W_GRAMMAR, NULL, type);
    if (w) {
        w->gkind = LMQL_G_JSON_SCHEMA;
        if (!(w->gram = lmql__where_grammar(LMQL_G_JSON_SCHEMA, schema, type, k->e))) {
            node_free(w);
            w = NULL;
        }
    }
    lmql__val_unref(schema);
    if (w) {
        k->w->type = LMQL_HT_CLASS;
        k->w->post |= LMQL_POST_JSON;
        k->w->cls = type;
        k->w->cls_def = cls;
    }
    return w;
}

/* The constraint a type puts on the hole: the T of [X: T] or of `where
** type(X) is T`. r"..." and int, float, bool, str; a dataclass of the
** query; another name or a call names a query function, which the
** interpreter resolves when the hole runs. Sets the plan's type and post.
** Returns 0 and *out (NULL: no constraint), or -1 with k->e filled. */
static int type_constraint(struct compiler *k, const struct lmql_node *type, struct lmql__wnode **out) {
    struct lmql__where *w = k->w;
    *out = NULL;
    if (w->type != LMQL_HT_NONE)
        return wfail(k->e, type, "%s has two types (a [%s: ...] annotation and 'type(%s) is ...', or two of those)",
                     k->var, k->var, k->var);
    if (type->kind == LMQL_NODE_STR) {
        w->type = LMQL_HT_REGEX;
        struct lmql__wnode *r = node_new(k, LMQL_W_REGEX, type, type);
        if (r) {
            r->pat = type->u.str.text;
            r->pat_len = type->u.str.len;
            if (!(r->re = literal_regex(type, k->e))) {
                node_free(r);
                return -1;
            }
        }
        return (*out = r) ? 0 : -1;
    }
    const char *name = type->kind == LMQL_NODE_NAME ? type->u.name : "";
    if (!strcmp(name, "int")) {
        w->type = LMQL_HT_INT;
        w->post |= LMQL_POST_INT;
        return (*out = node_new(k, LMQL_W_INT, NULL, type)) ? 0 : -1;
    }
    if (!strcmp(name, "float")) {
        /* As Python's repr writes a float, without exponents: 3.8, -0.25, 12 */
        w->type = LMQL_HT_FLOAT;
        w->post |= LMQL_POST_FLOAT;
        return (*out = type_regex(k, type, "-?(0|[1-9][0-9]{0,17})(\\.[0-9]{1,17})?")) ? 0 : -1;
    }
    if (!strcmp(name, "bool")) {
        w->type = LMQL_HT_BOOL;
        w->post |= LMQL_POST_BOOL;
        return (*out = type_regex(k, type, "True|False")) ? 0 : -1;
    }
    if (!strcmp(name, "str")) {
        w->type = LMQL_HT_STR;
        return 0;
    }
    /* [X: json] any JSON value; [X: json(SCHEMA)]; [X: grammar(GBNF)] */
    const char *f = call_name(type);
    if (!strcmp(name, "json") || (f && !strcmp(f, "json"))) {
        /* json, json(SCHEMA), json(SCHEMA, whitespace=...), json(whitespace=...) */
        const struct lmql_node *schema = NULL;
        enum lmql__gkind gk = LMQL_G_JSON_SCHEMA;
        if (f) {
            int32_t argc = type->u.call.args.n;
            bool has_schema = argc > 0 && type->u.call.args.items[0]->kind != LMQL_NODE_KEYWORD;
            schema = has_schema ? type->u.call.args.items[0] : NULL;
            if (argc > 1 + has_schema || (argc > has_schema && type->u.call.args.items[has_schema]->kind != LMQL_NODE_KEYWORD))
                return wfail(k->e, type, "json() in a hole takes one schema: [X: json(SCHEMA)]");
            if (json_ws(type, has_schema, &gk, k->e)) return -1;
        }
        w->type = LMQL_HT_JSON;
        w->post |= LMQL_POST_JSON;
        return (*out = grammar_node(k, type, schema, gk)) ? 0 : -1;
    }
    if (f && !strcmp(f, "grammar")) {
        if (type->u.call.args.n != 1 || type->u.call.args.items[0]->kind == LMQL_NODE_KEYWORD)
            return wfail(k->e, type, "grammar() in a hole takes one GBNF grammar: [X: grammar(GBNF)]");
        w->type = LMQL_HT_GRAMMAR;
        return (*out = grammar_node(k, type, type->u.call.args.items[0], LMQL_G_GBNF)) ? 0 : -1;
    }
    const struct lmql_node *cls = *name ? lmql__class_find(k->q, name) : NULL;
    if (cls) return (*out = class_type(k, type, cls)) ? 0 : -1;
    w->type = LMQL_HT_OTHER;
    return 0;
}

/* `type(X) is T` in a where clause: X has type T, as [X: T] says. */
static struct lmql__wnode *compile_type_is(struct compiler *k, const struct lmql_node *n,
                                           const struct lmql_node *type) {
    if (k->in_or) {
        wfail(k->e, n, "'type(%s) is ...' cannot be a branch of 'or'", k->var);
        return NULL;
    }
    if (mentions(k, type)) {
        wfail(k->e, type, "the type of %s must not involve %s", k->var, k->var);
        return NULL;
    }
    struct lmql__wnode *c;
    if (type_constraint(k, type, &c)) return NULL;
    if (k->w->type == LMQL_HT_OTHER) {
        wfail(k->e, type, "'type(%s) is ...' takes int, float, bool, str or a dataclass of the query", k->var);
        return NULL;
    }
    return c ? c : node_new(k, LMQL_W_TRUE, NULL, n);
}

/* The plan of one hole: its query's and its prompt's where, and its type. */
static struct lmql__where *compile_hole(const struct lmql_ast_query *q, const struct lmql_node *const wheres[2],
                                        const struct lmql_node *seg, struct lmql__err *e) {
    struct lmql__where *w = lmql__calloc(1, sizeof *w);
    if (!w) {
        woom(e);
        return NULL;
    }
    struct compiler k = {w, seg->u.hole.name, e, q, 0};
    int rc = (w->root = node_new(&k, LMQL_W_AND, NULL, seg)) ? 0 : -1;
    for (int i = 0; rc == 0 && i < 2; i++) {
        if (!wheres[i]) continue;
        w->mentioned |= mentions(&k, wheres[i]);
        rc = add_kid(&k, w->root, compile(&k, wheres[i]));
    }
    if (rc == 0 && seg->u.hole.type) {
        struct lmql__wnode *t;
        rc = type_constraint(&k, seg->u.hole.type, &t);
        if (rc == 0 && t) rc = add_kid(&k, w->root, t);
    }
    if (rc) {
        node_free(w->root);
        free(w);
        return NULL;
    }
    return w;
}

/* ------------------------------------------------------ the program -- */

struct lmql__wheres {
    struct lmql__where **items;
    int n, cap;
};

void lmql__wheres_free(struct lmql__wheres *ws) {
    if (!ws) return;
    for (int i = 0; i < ws->n; i++) {
        node_free(ws->items[i]->root);
        free(ws->items[i]);
    }
    free(ws->items);
    free(ws);
}

struct walk {
    const char **holes;                    /* the names of every hole of the program */
    int n_holes, cap_holes;
    struct lmql__wheres *ws;
    const struct lmql_ast_query **stack;   /* the queries around the statement */
    int depth, cap;
    struct lmql__err *e;
};

static int collect_holes(void *ud, const struct lmql_node *s) {
    struct walk *W = ud;
    if (s->kind != LMQL_NODE_PROMPT) return 0;
    for (int32_t i = 0; i < s->u.prompt.segs.n; i++) {
        const struct lmql_node *seg = s->u.prompt.segs.items[i];
        if (seg->kind != LMQL_NODE_SEG_HOLE || !seg->u.hole.name) continue;
        if (W->n_holes == W->cap_holes) {
            int cap = W->cap_holes ? 2 * W->cap_holes : 16;
            const char **p = lmql__realloc(W->holes, (size_t)cap * sizeof *p);
            if (!p) return woom(W->e);
            W->holes = p;
            W->cap_holes = cap;
        }
        W->holes[W->n_holes++] = seg->u.hole.name;
    }
    return 0;
}

/* A constraint function applies to a hole: one on a name that no hole of
** the program has is LMQL's "failed to resolve variable", not a constraint
** that silently never applies. */
static int check_names(const struct walk *W, const struct lmql_node *n) {
    if (!n) return 0;
    switch (n->kind) {
    case LMQL_NODE_CALL: {
        const struct lmql_node *a0 = n->u.call.args.n ? n->u.call.args.items[0] : NULL;
        if (cfn_of(n) != CFN_NONE && a0 && a0->kind == LMQL_NODE_NAME) {
            bool hole = false;
            for (int i = 0; i < W->n_holes && !hole; i++) hole = !strcmp(W->holes[i], a0->u.name);
            if (!hole)
                return wfail(W->e, a0, "failed to resolve variable '%s': %s() applies to a hole, and the query has no [%s]",
                             a0->u.name, call_name(n), a0->u.name);
        }
        for (int32_t i = 0; i < n->u.call.args.n; i++)
            if (check_names(W, n->u.call.args.items[i])) return -1;
        return 0;
    }
    case LMQL_NODE_KEYWORD: return check_names(W, n->u.kw.value);
    case LMQL_NODE_UNARY: return check_names(W, n->u.unary.operand);
    case LMQL_NODE_BINOP: return check_names(W, n->u.bin.left) || check_names(W, n->u.bin.right) ? -1 : 0;
    case LMQL_NODE_COMPARE:
        if (check_names(W, n->u.cmp.left)) return -1;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++)
            if (check_names(W, n->u.cmp.comparators.items[i])) return -1;
        return 0;
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++)
            if (check_names(W, n->u.boolop.values.items[i])) return -1;
        return 0;
    default: return 0;
    }
}

static int check_query(void *ud, const struct lmql_ast_query *q) {
    struct walk *W = ud;
    return lmql__where_check(q->where, W->e) || check_names(W, q->where) ? -1 : 0;
}

static int check_prompt(void *ud, const struct lmql_node *s) {
    struct walk *W = ud;
    if (s->kind != LMQL_NODE_PROMPT) return 0;
    return lmql__where_check(s->u.prompt.where, W->e) || check_names(W, s->u.prompt.where) ? -1 : 0;
}

static int enter_query(void *ud, const struct lmql_ast_query *q) {
    struct walk *W = ud;
    if (W->depth == W->cap) {
        int cap = W->cap ? 2 * W->cap : 4;
        const struct lmql_ast_query **p = lmql__realloc(W->stack, (size_t)cap * sizeof *p);
        if (!p) return woom(W->e);
        W->stack = p;
        W->cap = cap;
    }
    W->stack[W->depth++] = q;
    return 0;
}

static int leave_query(void *ud, const struct lmql_ast_query *q) {
    struct walk *W = ud;
    LMQL_ASSERT(W->depth > 0 && W->stack[W->depth - 1] == q);
    W->depth--;
    return 0;
}

static int plan_prompt(void *ud, const struct lmql_node *s) {
    struct walk *W = ud;
    if (s->kind != LMQL_NODE_PROMPT) return 0;
    LMQL_ASSERT(W->depth > 0);
    const struct lmql_node *wheres[2] = {W->stack[W->depth - 1]->where, s->u.prompt.where};
    for (int32_t i = 0; i < s->u.prompt.segs.n; i++) {
        /* The program owns its AST; plans are attached while it is
        ** compiled, before any run reads it. */
        struct lmql_node *seg = s->u.prompt.segs.items[i];
        if (seg->kind != LMQL_NODE_SEG_HOLE) continue;
        if (W->ws->n == W->ws->cap) {
            int cap = W->ws->cap ? 2 * W->ws->cap : 8;
            struct lmql__where **p = lmql__realloc(W->ws->items, (size_t)cap * sizeof *p);
            if (!p) return woom(W->e);
            W->ws->items = p;
            W->ws->cap = cap;
        }
        struct lmql__where *w = compile_hole(W->stack[W->depth - 1], wheres, seg, W->e);
        if (!w) return -1;
        W->ws->items[W->ws->n++] = w;
        seg->u.hole.where = w;
    }
    return 0;
}

int lmql__wheres_compile(struct lmql_ast_query *q, struct lmql__wheres **out, struct lmql__err *e) {
    *out = NULL;
    memset(e, 0, sizeof *e);
    struct walk W = {.e = e};
    /* First every clause as written, so its errors come in source order
    ** and before those of compiling it for a hole. */
    struct lmql_ast_visitor holes = {.stmt = collect_holes, .ud = &W};
    struct lmql_ast_visitor check = {.query = check_query, .stmt = check_prompt, .ud = &W};
    if (lmql__ast_visit(q, &holes) || lmql__ast_visit(q, &check)) {
        free(W.holes);
        return -1;
    }
    if (!(W.ws = lmql__calloc(1, sizeof *W.ws))) {
        free(W.holes);
        return woom(e);
    }
    struct lmql_ast_visitor plan = {.enter = enter_query, .query = leave_query, .stmt = plan_prompt, .ud = &W};
    int rc = lmql__ast_visit(q, &plan) ? -1 : 0;
    free(W.stack);
    free(W.holes);
    if (rc) {
        lmql__wheres_free(W.ws);
        return -1;
    }
    *out = W.ws;
    return 0;
}
