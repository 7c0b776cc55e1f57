/*
** The `where` clause as token masks (see constraint.h).
**
** Semantics follow LMQL (LANGUAGE.md §3): `and` intersects the allowed
** tokens, `or` unites them, a violated constraint leaves only EOS; EOS is
** allowed when every conjunct may end here. Phrase lists allow the first
** token of the canonical tokenization of each remaining phrase suffix.
*/
#include "constraint.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmql.h"
#include "memo.h"
#include "model.h"
#include "regex.h"
#include "trie.h"

enum ck {
    CK_TRUE, CK_FALSE, CK_AND, CK_OR, CK_NOT,
    CK_TOKLEN,      /* len(TOKENS(X)) op n */
    CK_CHARLEN,     /* len(X) op n */
    CK_PHRASES,     /* X in [...], X == "s" */
    CK_CONTAINS,    /* "s" in X */
    CK_REGEX,       /* REGEX(X, r), [X: r"..."] */
    CK_INT,         /* INT(X), [X: int] */
    CK_STARTS,      /* STARTS_WITH(X, s | [s, ...]) */
    CK_STOP,        /* STOPS_AT / STOPS_BEFORE: no mask; stop n's place in the tree */
};

struct cnode {
    enum ck kind;
    enum lmql_cmpop op;
    int64_t n;
    struct cnode **kids;
    int n_kids;
    char **ph;                    /* phrases (CK_PHRASES, CK_CONTAINS, CK_STARTS) */
    size_t *phl;
    int n_ph;
    struct lmql_regex *re;
    int32_t **first;              /* CK_PHRASES: first canonical token of phrase i from offset k (-2: not yet) */
    struct lmql_trie_cache *cache;
    uint8_t *buf;                 /* this node's mask */
};

struct lmql__cons {
    struct lmql__model *model;
    struct lmql_trie *trie;       /* borrowed from the vocabulary */
    struct cnode *root;           /* an AND of everything */
    struct lmql__stop stops[32];
    struct cnode *stop_parent[32];   /* the node a stop is a conjunct of */
    int n_stops;
    unsigned post;
    uint8_t *all;                 /* every token with text */
    struct lmql__err why;         /* why the last mask failed, when not for memory */
};

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

/* The constraint function called by n (CFN_NONE for anything else). */
static enum cfn cfn_of(const struct lmql_node *n) {
    if (!n || n->kind != LMQL_NODE_CALL || n->u.call.func->kind != LMQL_NODE_NAME) return CFN_NONE;
    const char *f = n->u.call.func->u.name;
    for (size_t i = 0; i < sizeof cfn_names / sizeof *cfn_names; i++)
        if (!strcmp(f, cfn_names[i].name)) return cfn_names[i].id;
    return CFN_NONE;
}

/* ------------------------------------------------------------ checks -- */

static int cfail(struct lmql__cerr *e, const struct lmql_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int cfail(struct lmql__cerr *e, const struct lmql_node *n, const char *fmt, ...) {
    va_list ap;
    e->status = 0;
    if (n) e->pos = n->pos;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Out of memory is no fault of the query: a runtime failure, not a query error. */
static int coom(struct lmql__cerr *e) {
    cfail(e, NULL, "out of memory");
    e->status = LMQL_ERR_NOMEM;
    return -1;
}

/* The calls of constraint functions anywhere in n: the right number of
** arguments, and a REGEX pattern written as a literal must compile. */
static int check_calls(const struct lmql_node *n, struct lmql__cerr *e) {
    if (!n) return 0;
    switch (n->kind) {
    case LMQL_NODE_CALL: {
        enum cfn fn = cfn_of(n);
        int32_t argc = n->u.call.args.n;
        if (fn != CFN_NONE && argc != cfn_info[fn].argc)
            return cfail(e, n, "%s() takes %s", n->u.call.func->u.name, cfn_info[fn].args);
        if (fn == CFN_REGEX && n->u.call.args.items[1]->kind == LMQL_NODE_STR) {
            const struct lmql_node *p = n->u.call.args.items[1];
            char msg[256];
            size_t off = 0;
            struct lmql_regex *re = lmql__regex_compile(p->u.str.text, p->u.str.len, msg, sizeof msg, &off);
            if (!re) return cfail(e, p, "bad regex: %s (at offset %zu of the pattern)", msg, off);
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

int lmql__where_check(const struct lmql_node *n, struct lmql__cerr *e) {
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
            return cfail(e, n, "constraints do not support comparison with more than one operator");
        enum lmql_cmpop op = n->u.cmp.ops[0];
        if (op == LMQL_CMPOP_LE || op == LMQL_CMPOP_GE || op == LMQL_CMPOP_NE)
            return cfail(e, n, "the constraint operator '%s' is not supported; use <, > or ==", lmql__cmpop_text(op));
        return check_calls(n, e);
    }
    case LMQL_NODE_CALL:
        if (n->u.call.func->kind == LMQL_NODE_ATTR)
            return cfail(e, n, "method calls like '.%s(...)' are not supported in constraints",
                         n->u.call.func->u.attr.name);
        return check_calls(n, e);
    default:
        return check_calls(n, e);
    }
}

static int check_query_where(void *ud, const struct lmql_ast_query *q) { return lmql__where_check(q->where, ud); }

static int check_prompt_where(void *ud, const struct lmql_node *s) {
    return s->kind == LMQL_NODE_PROMPT ? lmql__where_check(s->u.prompt.where, ud) : 0;
}

int lmql__where_check_all(const struct lmql_ast_query *q, struct lmql__cerr *e) {
    memset(e, 0, sizeof *e);
    struct lmql_ast_visitor v = {.query = check_query_where, .stmt = check_prompt_where, .ud = e};
    return lmql__ast_visit(q, &v) ? -1 : 0;
}

/* --------------------------------------------------------- compiling -- */

struct compiler {
    const struct lmql__cons_env *env;
    struct lmql__cons *c;
    const char *var;
    struct lmql__cerr *e;
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

static const char *call_name(const struct lmql_node *n) {
    if (!n || n->kind != LMQL_NODE_CALL || n->u.call.func->kind != LMQL_NODE_NAME) return NULL;
    return n->u.call.func->u.name;
}

static struct cnode *node_new(struct compiler *k, enum ck kind) {
    struct cnode *c = lmql__calloc(1, sizeof *c);
    if (!c) coom(k->e);
    else c->kind = kind;
    return c;
}

static void node_free(struct cnode *c) {
    if (!c) return;
    for (int i = 0; i < c->n_kids; i++) node_free(c->kids[i]);
    for (int i = 0; i < c->n_ph; i++) {
        free(c->ph[i]);
        if (c->first) free(c->first[i]);
    }
    free(c->first);
    free(c->kids);
    free(c->ph);
    free(c->phl);
    lmql__regex_free(c->re);
    lmql__trie_cache_free(c->cache);
    free(c->buf);
    free(c);
}

static int add_kid(struct compiler *k, struct cnode *parent, struct cnode *kid) {
    if (!kid) return -1;
    struct cnode **p = lmql__realloc(parent->kids, ((size_t)parent->n_kids + 1) * sizeof *p);
    if (!p) { node_free(kid); return coom(k->e); }
    parent->kids = p;
    parent->kids[parent->n_kids++] = kid;
    return 0;
}

static int add_phrase(struct compiler *k, struct cnode *c, const char *s, size_t n) {
    char **p = lmql__realloc(c->ph, ((size_t)c->n_ph + 1) * sizeof *p);
    if (p) c->ph = p;
    size_t *l = lmql__realloc(c->phl, ((size_t)c->n_ph + 1) * sizeof *l);
    if (l) c->phl = l;
    char *copy = lmql__malloc(n + 1);
    if (!p || !l || !copy) { free(copy); return coom(k->e); }
    memcpy(copy, s, n);
    copy[n] = 0;
    c->ph[c->n_ph] = copy;
    c->phl[c->n_ph++] = n;
    return 0;
}

/* Evaluate an expression free of the hole: a value, NULL+unknown for a
** hole not generated yet, NULL on error. */
static struct lmql_val *value_of(struct compiler *k, const struct lmql_node *n, bool *unknown) {
    *unknown = false;
    struct lmql_val *v = k->env->eval(k->env->ctx, n, unknown);
    if (!v && !*unknown) cfail(k->e, n, "this constraint could not be evaluated");
    return v;
}

/* Phrases from a string or a list of strings. */
static int phrases_from(struct compiler *k, struct cnode *c, const struct lmql_node *at, struct lmql_val *v) {
    if (v->kind == LMQL_V_STR) return add_phrase(k, c, v->u.str.s, v->u.str.len);
    if (v->kind != LMQL_V_LIST && v->kind != LMQL_V_TUPLE)
        return cfail(k->e, at, "expected a string or a list of strings, not %s", lmql__val_type_name(v));
    for (size_t i = 0; i < v->u.list.len; i++) {
        struct lmql_val *s = v->u.list.items[i];
        struct lmql__buf b = {0};
        if (s->kind == LMQL_V_STR) lmql__buf_add(&b, s->u.str.s, s->u.str.len);
        else lmql__val_str_into(&b, s);
        int rc = add_phrase(k, c, b.data ? b.data : "", b.len);
        lmql__buf_free(&b);
        if (rc) return -1;
    }
    return 0;
}

static struct cnode *compile(struct compiler *k, const struct lmql_node *n);

/* Something that does not involve the hole: its truth now, or no
** constraint while it names holes that have no value yet. */
/* Does n use one of LMQL's constraint functions (TOKENS, INT, ...)? Those
** constrain the variable they name while it is generated; for another
** hole they say nothing. */
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

static struct cnode *constant(struct compiler *k, const struct lmql_node *n) {
    if (uses_constraint_fn(n)) return node_new(k, CK_TRUE);
    bool unknown;
    struct lmql_val *v = value_of(k, n, &unknown);
    if (!v) return unknown ? node_new(k, CK_TRUE) : NULL;
    struct cnode *c = node_new(k, lmql__val_truthy(v) ? CK_TRUE : CK_FALSE);
    lmql__val_unref(v);
    return c;
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

static struct cnode *compile_compare(struct compiler *k, const struct lmql_node *n) {
    const struct lmql_node *l = n->u.cmp.left, *r = n->u.cmp.comparators.items[0];
    enum lmql_cmpop op = n->u.cmp.ops[0];
    if (!mentions(k, n)) return constant(k, n);
    /* Lengths: len(TOKENS(X)) < N, N > len(X), ... */
    int ll = length_of_var(k, l), lr = length_of_var(k, r);
    if (ll || lr) {
        if (lr && !ll) {
            const struct lmql_node *t = l; l = r; r = t;
            ll = lr;
            op = op == LMQL_CMPOP_LT ? LMQL_CMPOP_GT : op == LMQL_CMPOP_GT ? LMQL_CMPOP_LT : op;
        }
        if (op != LMQL_CMPOP_LT && op != LMQL_CMPOP_GT && op != LMQL_CMPOP_EQ) {
            cfail(k->e, n, "a length can be compared with <, > or == only");
            return NULL;
        }
        if (mentions(k, r)) { cfail(k->e, r, "the bound of a length must not involve %s", k->var); return NULL; }
        bool unknown;
        struct lmql_val *v = value_of(k, r, &unknown);
        if (!v) return unknown ? node_new(k, CK_TRUE) : NULL;
        if (v->kind != LMQL_V_INT) {
            lmql__val_unref(v);
            cfail(k->e, r, "a length bound must be an integer");
            return NULL;
        }
        struct cnode *c = node_new(k, ll == 2 ? CK_TOKLEN : CK_CHARLEN);
        if (c) { c->op = op; c->n = v->u.i; }
        lmql__val_unref(v);
        return c;
    }
    /* X == expr, X in [...] */
    if (is_var(k, l) && (op == LMQL_CMPOP_EQ || op == LMQL_CMPOP_IN) && !mentions(k, r)) {
        bool unknown;
        struct lmql_val *v = value_of(k, r, &unknown);
        if (!v) return unknown ? node_new(k, CK_TRUE) : NULL;
        struct cnode *c = node_new(k, CK_PHRASES);
        if (c && (op == LMQL_CMPOP_EQ ? phrases_from(k, c, r, v->kind == LMQL_V_STR ? v : NULL) : phrases_from(k, c, r, v))) {
            node_free(c);
            c = NULL;
        }
        lmql__val_unref(v);
        return c;
    }
    if (is_var(k, r) && op == LMQL_CMPOP_EQ && !mentions(k, l)) {
        struct lmql_node swapped = *n;
        struct lmql_node *items[1] = {(struct lmql_node *)l};
        swapped.u.cmp.left = (struct lmql_node *)r;
        swapped.u.cmp.comparators.items = items;
        return compile_compare(k, &swapped);
    }
    /* "s" in X */
    if (is_var(k, r) && op == LMQL_CMPOP_IN && !mentions(k, l)) {
        bool unknown;
        struct lmql_val *v = value_of(k, l, &unknown);
        if (!v) return unknown ? node_new(k, CK_TRUE) : NULL;
        struct cnode *c = NULL;
        if (v->kind != LMQL_V_STR) cfail(k->e, l, "'... in %s' needs a string", k->var);
        else if ((c = node_new(k, CK_CONTAINS)) && add_phrase(k, c, v->u.str.s, v->u.str.len)) { node_free(c); c = NULL; }
        lmql__val_unref(v);
        return c;
    }
    cfail(k->e, n, "this comparison on %s is not supported as a constraint", k->var);
    return NULL;
}

static int add_stop(struct compiler *k, const struct lmql_node *n, bool before) {
    enum cfn fn = cfn_of(n);
    if (n->u.call.args.n != cfn_info[fn].argc) return cfail(k->e, n, "%s() takes %s", call_name(n), cfn_info[fn].args);
    bool unknown;
    struct lmql_val *v = value_of(k, n->u.call.args.items[1], &unknown);
    if (!v) return unknown ? 0 : -1;
    struct lmql__cons *c = k->c;
    int rc = 0;
    if (v->kind != LMQL_V_STR || v->u.str.len == 0) rc = cfail(k->e, n, "the phrase of %s() must be a non-empty string", call_name(n));
    else if (c->n_stops >= (int)(sizeof c->stops / sizeof *c->stops)) rc = cfail(k->e, n, "too many stop phrases");
    else {
        char *copy = lmql__malloc(v->u.str.len + 1);
        if (!copy) rc = coom(k->e);
        else {
            memcpy(copy, v->u.str.s, v->u.str.len + 1);
            c->stops[c->n_stops++] = (struct lmql__stop){copy, v->u.str.len, before};
        }
    }
    lmql__val_unref(v);
    return rc;
}

static struct cnode *regex_node(struct compiler *k, const struct lmql_node *at, const char *pat, size_t len) {
    char msg[256];
    size_t off = 0;
    struct lmql_regex *re = lmql__regex_compile(pat, len, msg, sizeof msg, &off);
    if (!re) {
        cfail(k->e, at, "bad regex: %s (at offset %zu of the pattern)", msg, off);
        return NULL;
    }
    struct cnode *c = node_new(k, CK_REGEX);
    if (c) c->re = re;
    else lmql__regex_free(re);
    /* The pattern names the masks in the vocabulary's memo. */
    if (c && add_phrase(k, c, pat, len)) {
        node_free(c);
        return NULL;
    }
    return c;
}

static struct cnode *compile_call(struct compiler *k, const struct lmql_node *n) {
    const char *f = call_name(n);
    enum cfn fn = cfn_of(n);
    int32_t argc = n->u.call.args.n;
    const struct lmql_node *a0 = argc > 0 ? n->u.call.args.items[0] : NULL;
    bool on_var = is_var(k, a0);
    switch (fn) {
    case CFN_STOPS_AT:
    case CFN_STOPS_BEFORE: {
        if (!on_var) return node_new(k, CK_TRUE);
        if (add_stop(k, n, fn == CFN_STOPS_BEFORE)) return NULL;
        struct cnode *c = node_new(k, CK_STOP);
        if (c) c->n = k->c->n_stops - 1;
        return c;
    }
    case CFN_INT:
    case CFN_ERASE:
    case CFN_ESCAPED:
        if (argc != cfn_info[fn].argc) { cfail(k->e, n, "%s() takes %s", f, cfn_info[fn].args); return NULL; }
        if (!on_var) return node_new(k, CK_TRUE);
        if (fn == CFN_INT) { k->c->post |= LMQL_POST_INT; return node_new(k, CK_INT); }
        k->c->post |= fn == CFN_ERASE ? LMQL_POST_ERASE : LMQL_POST_ESCAPED;
        return node_new(k, CK_TRUE);
    case CFN_REGEX:
    case CFN_STARTS_WITH: {
        if (argc != cfn_info[fn].argc) { cfail(k->e, n, "%s() takes %s", f, cfn_info[fn].args); return NULL; }
        if (!on_var) return node_new(k, CK_TRUE);
        bool unknown;
        struct lmql_val *v = value_of(k, n->u.call.args.items[1], &unknown);
        if (!v) return unknown ? node_new(k, CK_TRUE) : NULL;
        struct cnode *c = NULL;
        if (fn == CFN_REGEX) {
            if (v->kind != LMQL_V_STR) cfail(k->e, n, "REGEX() needs a pattern string");
            else c = regex_node(k, n->u.call.args.items[1], v->u.str.s, v->u.str.len);
        } else if ((c = node_new(k, CK_STARTS)) && phrases_from(k, c, n, v)) {
            node_free(c);
            c = NULL;
        }
        lmql__val_unref(v);
        return c;
    }
    default:
        break;
    }
    if (!mentions(k, n)) return constant(k, n);
    cfail(k->e, n, "the constraint %s(...) is not supported", f ? f : "call");
    return NULL;
}

static struct cnode *compile(struct compiler *k, const struct lmql_node *n) {
    switch (n->kind) {
    case LMQL_NODE_BOOLOP: {
        struct cnode *c = node_new(k, n->u.boolop.is_or ? CK_OR : CK_AND);
        for (int32_t i = 0; c && i < n->u.boolop.values.n; i++)
            if (add_kid(k, c, compile(k, n->u.boolop.values.items[i]))) { node_free(c); return NULL; }
        return c;
    }
    case LMQL_NODE_UNARY:
        if (n->u.unary.op == LMQL_UNOP_NOT && mentions(k, n)) {
            struct cnode *kid = compile(k, n->u.unary.operand);
            if (!kid) return NULL;
            if (kid->kind != CK_CONTAINS && kid->kind != CK_TRUE && kid->kind != CK_FALSE) {
                node_free(kid);
                cfail(k->e, n, "'not' is supported before '\"...\" in %s' only", k->var);
                return NULL;
            }
            if (kid->kind != CK_CONTAINS) { kid->kind = kid->kind == CK_TRUE ? CK_FALSE : CK_TRUE; return kid; }
            struct cnode *c = node_new(k, CK_NOT);
            if (c && add_kid(k, c, kid)) { node_free(c); return NULL; }
            if (!c) node_free(kid);
            return c;
        }
        return constant(k, n);
    case LMQL_NODE_COMPARE:
        if (n->u.cmp.comparators.n > 1) {
            cfail(k->e, n, "constraints do not support comparison with more than one operator");
            return NULL;
        }
        return compile_compare(k, n);
    case LMQL_NODE_CALL:
        return compile_call(k, n);
    default:
        if (!mentions(k, n)) return constant(k, n);
        cfail(k->e, n, "this expression on %s is not supported as a constraint", k->var);
        return NULL;
    }
}

static void set_parents(struct lmql__cons *c, struct cnode *nd, struct cnode *parent) {
    if (nd->kind == CK_STOP && nd->n >= 0 && nd->n < c->n_stops) c->stop_parent[nd->n] = parent;
    for (int i = 0; i < nd->n_kids; i++) set_parents(c, nd->kids[i], nd);
}

int lmql__cons_compile(const struct lmql_node *const *wheres, int n, const char *var, const struct lmql__cons_env *env,
                       struct lmql__cons **out, struct lmql__cerr *e) {
    *out = NULL;
    memset(e, 0, sizeof *e);
    struct lmql__cons *c = lmql__calloc(1, sizeof *c);
    if (!c) return coom(e);
    c->model = env->model;
    c->trie = lmql__vocab_trie(env->model->vocab);
    c->all = lmql__malloc((size_t)env->model->vocab->n_tokens);
    struct compiler k = {env, c, var, e};
    c->root = node_new(&k, CK_AND);
    if (!c->trie || !c->all || !c->root) {
        lmql__cons_free(c);
        return coom(e);
    }
    const struct lmql__vocab *v = env->model->vocab;
    for (int32_t t = 0; t < v->n_tokens; t++) c->all[t] = v->off[t + 1] > v->off[t];
    for (int i = 0; i < n; i++) {
        if (!wheres[i]) continue;
        if (add_kid(&k, c->root, compile(&k, wheres[i]))) {
            lmql__cons_free(c);
            return -1;
        }
    }
    set_parents(c, c->root, NULL);
    *out = c;
    return 0;
}

void lmql__cons_free(struct lmql__cons *c) {
    if (!c) return;
    node_free(c->root);
    for (int i = 0; i < c->n_stops; i++) free((char *)c->stops[i].text);
    free(c->all);
    free(c);
}

int lmql__cons_add_int(struct lmql__cons *c) {
    struct lmql__cerr e;
    struct compiler k = {NULL, c, "", &e};
    c->post |= LMQL_POST_INT;
    return add_kid(&k, c->root, node_new(&k, CK_INT));
}

int lmql__cons_add_regex(struct lmql__cons *c, const struct lmql_node *pattern, struct lmql__cerr *e) {
    struct compiler k = {NULL, c, "", e};
    if (pattern->kind != LMQL_NODE_STR) return cfail(e, pattern, "a regex hole needs a string pattern");
    return add_kid(&k, c->root, regex_node(&k, pattern, pattern->u.str.text, pattern->u.str.len));
}

unsigned lmql__cons_post(const struct lmql__cons *c) { return c->post; }

/* ------------------------------------------------------------- masks -- */

/* Masks are bytes of 0/1; combine them eight at a time (byte loops that
** may alias do not vectorise, and this runs over the whole vocabulary). */
/* dst = a & b in one pass, eight bytes at a time; dst may be a. */
static void mask_and_of(uint8_t *dst, const uint8_t *a, const uint8_t *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        x &= y;
        memcpy(dst + i, &x, 8);
    }
    for (; i < n; i++) dst[i] = a[i] & b[i];
}

static void mask_and(uint8_t *dst, const uint8_t *a, size_t n) { mask_and_of(dst, dst, a, n); }

static void mask_or(uint8_t *restrict dst, const uint8_t *restrict a, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, dst + i, 8);
        memcpy(&y, a + i, 8);
        x |= y;
        memcpy(dst + i, &x, 8);
    }
    for (; i < n; i++) dst[i] |= a[i];
}

static bool mask_any(const uint8_t *m, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x;
        memcpy(&x, m + i, 8);
        if (x) return true;
    }
    for (; i < n; i++) if (m[i]) return true;
    return false;
}

/* What a node allows: nothing but EOS, every token, or its mask. */
enum cover { C_NONE, C_ALL, C_MASK };

/*
** Characters as Python counts them in text decoded with errors="replace":
** a whole UTF-8 sequence is one, and so is each broken piece (a truncated
** sequence, a stray continuation byte, an invalid byte). The walker state
** packs the remaining budget with the continuation bytes still expected.
*/
static int32_t char_step(int32_t need, unsigned char b, int32_t *count) {
    if (need > 0 && (b & 0xC0) == 0x80) { *count = 0; return need - 1; }
    *count = 1;
    if (b >= 0xC2 && b <= 0xDF) return 1;
    if (b >= 0xE0 && b <= 0xEF) return 2;
    if (b >= 0xF0 && b <= 0xF4) return 3;
    return 0;
}

static int64_t utf8_chars(const char *s, size_t n, int32_t *need_out) {
    int64_t k = 0;
    int32_t need = 0, c;
    for (size_t i = 0; i < n; i++) { need = char_step(need, (unsigned char)s[i], &c); k += c; }
    *need_out = need;
    return k;
}

static bool budget_step(void *ctx, const void *state, unsigned char b, void *out) {
    (void)ctx;
    int32_t st = *(const int32_t *)state, c;
    int32_t need = char_step(st & 3, b, &c), left = (st >> 2) - c;
    *(int32_t *)out = left * 4 + need;
    return left >= 0;
}

/* "s" must not occur: the state is how much of s the text ends with. */
struct absent { const char *s; size_t n; };
static bool absent_step(void *ctx, const void *state, unsigned char b, void *out) {
    const struct absent *a = ctx;
    int32_t m = *(const int32_t *)state;
    /* Fall back along s's own prefixes (phrases are short: a direct scan). */
    for (;;) {
        if ((size_t)m < a->n && (unsigned char)a->s[m] == b) { m++; break; }
        if (m == 0) break;
        int32_t k = m - 1;
        while (k > 0 && memcmp(a->s, a->s + (m - k), (size_t)k)) k--;
        m = k;
    }
    *(int32_t *)out = m;
    return (size_t)m < a->n;
}

/* At state 0 every byte but the phrase's first keeps the state: whole
** trie subtrees without that byte are allowed without a walk. */
static void absent_loops(void *ctx, const void *state, uint64_t set[4]) {
    const struct absent *a = ctx;
    memset(set, 0, 4 * sizeof *set);
    if (*(const int32_t *)state != 0) return;
    for (int b = 0; b < 256; b++) set[b >> 6] |= 1ull << (b & 63);
    unsigned char f = (unsigned char)a->s[0];
    set[f >> 6] &= ~(1ull << (f & 63));
}

static int32_t absent_state(const struct absent *a, const char *v, size_t n) {
    int32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t out;
        if (!absent_step((void *)a, &m, (unsigned char)v[i], &out)) return -1;
        m = out;
    }
    return m;
}

/* INT: [ 1-9] first, then digits; the value may end once it has a digit. */
static bool int_step(void *ctx, const void *state, unsigned char b, void *out) {
    (void)ctx;
    int32_t s = *(const int32_t *)state, t = -1;
    if (s == 0) t = b == ' ' ? 1 : (b >= '1' && b <= '9') ? 2 : -1;
    else t = (b >= '0' && b <= '9') ? 2 : -1;
    *(int32_t *)out = t;
    return t >= 0;
}

static void int_loops(void *ctx, const void *state, uint64_t set[4]) {
    (void)ctx;
    memset(set, 0, 4 * sizeof *set);
    if (*(const int32_t *)state == 2) set[0] = 0x03FF000000000000ull;   /* '0'..'9' */
}

static int32_t int_state(const char *v, size_t n) {
    int32_t s = 0;
    for (size_t i = 0; i < n && s >= 0; i++) {
        int32_t t;
        int_step(NULL, &s, (unsigned char)v[i], &t);
        s = t;
    }
    return s;
}

/* A memo key (memo.h): what a mask means on this vocabulary, so that the
** next compiled copy of the same constraint finds it. 0 when it does not
** fit (then the mask is only cached by its node). */
static size_t memo_key(char *key, size_t cap, char tag, int32_t state, const char *s, size_t n) {
    if (1 + sizeof state + n > cap) return 0;
    key[0] = tag;
    memcpy(key + 1, &state, sizeof state);
    if (n) memcpy(key + 1 + sizeof state, s, n);
    return 1 + sizeof state + n;
}

/* The mask of a node in a state: from the node's own cache, else from the
** vocabulary's memo, else by a trie walk (the regex's DFA walk when w is
** NULL), remembered in both. */
static const uint8_t *walk(struct lmql__cons *c, struct cnode *nd, const struct lmql_trie_walker *w, int32_t state,
                           char tag, const char *text, size_t tlen) {
    if (!nd->cache && !(nd->cache = lmql__trie_cache_new(c->trie, w ? 4 : 8))) return NULL;
    const uint8_t *hit = lmql__trie_cache_find(nd->cache, &state, sizeof state);
    if (hit) return hit;
    uint8_t *slot = lmql__trie_cache_slot(nd->cache, &state, sizeof state);
    if (!slot) return NULL;
    size_t nv = (size_t)c->model->vocab->n_tokens;
    struct lmql__memo *memo = lmql__vocab_memo(c->model->vocab);
    char key[320];
    size_t kl = memo_key(key, sizeof key, tag, state, text, tlen);
    if (kl && lmql__memo_get(memo, key, kl, slot, nv)) return slot;
    int rc;
    if (w) {
        rc = lmql__trie_mask(c->trie, w, &state, slot);
    } else {
        const uint8_t *cls;
        const int32_t *table = lmql__regex_table(nd->re, &cls);
        rc = lmql__trie_mask_dfa(c->trie, table, lmql__regex_n_classes(nd->re), cls, NULL, state, slot);
    }
    if (rc) {
        lmql__trie_cache_clear(nd->cache);
        return NULL;
    }
    if (kl) lmql__memo_put(memo, key, kl, slot, nv);
    return slot;
}

static int eval_node(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, int32_t ntok,
                     enum cover *cover, const uint8_t **mask, bool *eos);

static uint8_t *node_buf(struct lmql__cons *c, struct cnode *nd) {
    if (!nd->buf) nd->buf = lmql__malloc((size_t)c->model->vocab->n_tokens);
    return nd->buf;
}

/* The first token of the canonical tokenization of text (-1: none), also
** remembered in the vocabulary's memo: the next hole's copy of the same
** phrase list asks for the same remainders. */
static int first_token(struct lmql__cons *c, const char *text, size_t n, int32_t *tok) {
    struct lmql__memo *memo = lmql__vocab_memo(c->model->vocab);
    char key[320];
    size_t kl = memo_key(key, sizeof key, 'P', 0, text, n);
    if (kl && lmql__memo_get(memo, key, kl, tok, sizeof *tok)) return 0;
    int32_t toks[64];
    struct lmql__err err = {{0}};
    int32_t k = c->model->ops->tokenize(c->model, text, n, false, true, toks, 64, &err);
    *tok = -1;
    /* A phrase left out of the mask would be a wrong mask: fail instead. */
    if (k == INT32_MIN) return lmql__errf(&c->why, "tokenizing a phrase of the constraint failed: %s", err.msg);
    if (k < 0 && k != INT32_MIN) {   /* a long remainder: only its first token matters */
        int32_t *big = lmql__malloc((size_t)(-k) * sizeof *big);
        if (!big) return -1;
        k = c->model->ops->tokenize(c->model, text, n, false, true, big, -k, &err);
        if (k > 0) *tok = big[0];
        free(big);
        if (k == INT32_MIN) return lmql__errf(&c->why, "tokenizing a phrase of the constraint failed: %s", err.msg);
    } else if (k > 0) {
        *tok = toks[0];
    }
    if (kl) lmql__memo_put(memo, key, kl, tok, sizeof *tok);
    return 0;
}

/* Phrase list: the first canonical token of every phrase's remainder. */
static int eval_phrases(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, enum cover *cover,
                        const uint8_t **mask, bool *eos) {
    uint8_t *buf = node_buf(c, nd);
    if (!buf) return -1;
    int32_t nv = c->model->vocab->n_tokens;
    memset(buf, 0, (size_t)nv);
    bool any = false;
    *eos = false;
    for (int i = 0; i < nd->n_ph; i++) {
        if (nd->phl[i] < vlen || memcmp(nd->ph[i], v, vlen)) continue;
        if (nd->phl[i] == vlen) { *eos = true; continue; }
        /* Tokenizing is the slow part (BPE on 128k vocabularies), and the
        ** offsets into a phrase repeat from step to step: remember them. */
        if (!nd->first && !(nd->first = lmql__calloc((size_t)nd->n_ph, sizeof *nd->first))) return -1;
        if (!nd->first[i]) {
            if (!(nd->first[i] = lmql__malloc((nd->phl[i] + 1) * sizeof **nd->first))) return -1;
            for (size_t k = 0; k <= nd->phl[i]; k++) nd->first[i][k] = -2;
        }
        int32_t *memo = &nd->first[i][vlen];
        if (*memo == -2 && first_token(c, nd->ph[i] + vlen, nd->phl[i] - vlen, memo)) return -1;
        if (*memo >= 0 && *memo < nv) { buf[*memo] = 1; any = true; }
    }
    *cover = any ? C_MASK : C_NONE;
    *mask = buf;
    return 0;
}

/* STARTS_WITH: consistent with a prefix, then anything. */
static int eval_starts(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, enum cover *cover,
                       const uint8_t **mask, bool *eos) {
    *eos = false;
    for (int i = 0; i < nd->n_ph; i++)
        if (vlen >= nd->phl[i] && !memcmp(v, nd->ph[i], nd->phl[i])) { *cover = C_ALL; *eos = true; return 0; }
    uint8_t *buf = node_buf(c, nd);
    if (!buf) return -1;
    memset(buf, 0, (size_t)c->model->vocab->n_tokens);
    bool any = false;
    int32_t cap = lmql__trie_max_len(c->trie) + 1, *pre = lmql__malloc((size_t)cap * sizeof *pre);
    if (!pre) return -1;
    for (int i = 0; i < nd->n_ph; i++) {
        if (vlen > nd->phl[i] || memcmp(nd->ph[i], v, vlen)) continue;
        const char *rest = nd->ph[i] + vlen;
        size_t rn = nd->phl[i] - vlen;
        const int32_t *toks;
        int32_t k = lmql__trie_tokens_with_prefix(c->trie, rest, rn, &toks);   /* piece covers the rest */
        for (int32_t j = 0; j < k; j++) buf[toks[j]] = 1;
        k = lmql__trie_tokens_prefix_of(c->trie, rest, rn, pre, cap);        /* piece inside the rest */
        for (int32_t j = 0; j < k && j < cap; j++) buf[pre[j]] = 1;
        any = true;
    }
    free(pre);
    *cover = any ? C_MASK : C_NONE;
    *mask = buf;
    return 0;
}

static int eval_node(struct lmql__cons *c, struct cnode *nd, const char *v, size_t vlen, int32_t ntok,
                     enum cover *cover, const uint8_t **mask, bool *eos) {
    int32_t nv = c->model->vocab->n_tokens;
    struct lmql_trie_walker w = {.state_size = sizeof(int32_t)};
    int32_t st;
    *mask = NULL;
    switch (nd->kind) {
    case CK_TRUE:
    case CK_STOP: *cover = C_ALL; *eos = true; return 0;
    case CK_FALSE: *cover = C_NONE; *eos = true; return 0;
    case CK_TOKLEN:
        if (nd->op == LMQL_CMPOP_LT) { *cover = ntok + 1 < nd->n ? C_ALL : C_NONE; *eos = true; }
        else if (nd->op == LMQL_CMPOP_EQ) { *cover = ntok < nd->n ? C_ALL : C_NONE; *eos = ntok >= nd->n; }
        else { *cover = C_ALL; *eos = ntok > nd->n; }
        return 0;
    case CK_CHARLEN: {
        int32_t need;
        int64_t have = utf8_chars(v, vlen, &need);
        if (nd->op == LMQL_CMPOP_GT) { *cover = C_ALL; *eos = have > nd->n; return 0; }
        int64_t left = (nd->op == LMQL_CMPOP_LT ? nd->n - 1 : nd->n) - have;
        *eos = nd->op == LMQL_CMPOP_LT || have == nd->n;
        if (left < 0 || (left == 0 && need == 0)) { *cover = C_NONE; return 0; }
        st = (int32_t)((left > INT32_MAX / 4 ? INT32_MAX / 4 : left) * 4 + need);
        w.step = budget_step;
        *mask = walk(c, nd, &w, st, 'L', NULL, 0);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    }
    case CK_PHRASES: return eval_phrases(c, nd, v, vlen, cover, mask, eos);
    case CK_STARTS: return eval_starts(c, nd, v, vlen, cover, mask, eos);
    case CK_CONTAINS:
        *cover = C_ALL;
        *eos = false;
        for (size_t i = 0; i + nd->phl[0] <= vlen && !*eos; i++) *eos = !memcmp(v + i, nd->ph[0], nd->phl[0]);
        if (nd->phl[0] == 0) *eos = true;
        return 0;
    case CK_REGEX:
        st = lmql__regex_feed(nd->re, lmql__regex_start(nd->re), v, vlen);
        if (st < 0) { *cover = C_NONE; *eos = true; return 0; }   /* violated: the value ends */
        *eos = lmql__regex_accepting(nd->re, st);
        *mask = walk(c, nd, NULL, st, 'R', nd->ph[0], nd->phl[0]);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    case CK_INT:
        st = int_state(v, vlen);
        if (st < 0) { *cover = C_NONE; *eos = true; return 0; }
        *eos = st == 2;
        w.step = int_step;
        w.loops = int_loops;
        *mask = walk(c, nd, &w, st, 'I', NULL, 0);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    case CK_NOT: {
        struct cnode *k = nd->kids[0];
        struct absent a = {k->ph[0], k->phl[0]};
        *eos = true;
        if (a.n == 0) { *cover = C_NONE; return 0; }
        st = absent_state(&a, v, vlen);
        if (st < 0) { *cover = C_NONE; return 0; }
        w.step = absent_step;
        w.loops = absent_loops;
        w.ctx = &a;
        /* The walker's ctx is rebuilt each call but means the same thing. */
        *mask = walk(c, nd, &w, st, 'N', a.s, a.n);
        *cover = C_MASK;
        return *mask ? 0 : -1;
    }
    case CK_AND:
    case CK_OR: {
        bool is_and = nd->kind == CK_AND;
        enum cover acc = is_and ? C_ALL : C_NONE;
        bool e_acc = is_and;
        const uint8_t *acc_mask = NULL;   /* a kid's own mask until a second one needs combining */
        uint8_t *buf = NULL;
        for (int i = 0; i < nd->n_kids; i++) {
            enum cover kc;
            const uint8_t *km;
            bool ke;
            if (eval_node(c, nd->kids[i], v, vlen, ntok, &kc, &km, &ke)) return -1;
            e_acc = is_and ? (e_acc && ke) : (e_acc || ke);
            if (is_and ? kc == C_ALL : kc == C_NONE) continue;
            if (is_and ? kc == C_NONE : kc == C_ALL) { acc = kc; continue; }
            if (is_and ? acc == C_NONE : acc == C_ALL) continue;
            if (acc == (is_and ? C_ALL : C_NONE)) { acc_mask = km; acc = C_MASK; continue; }
            if (!buf && !(buf = node_buf(c, nd))) return -1;
            if (acc_mask != buf) {
                memcpy(buf, acc_mask, (size_t)nv);
                acc_mask = buf;
            }
            if (is_and) mask_and(buf, km, (size_t)nv);
            else mask_or(buf, km, (size_t)nv);
        }
        *cover = acc;
        *mask = acc == C_MASK ? acc_mask : NULL;
        *eos = e_acc;
        return 0;
    }
    }
    return 0;
}

int lmql__cons_mask(struct lmql__cons *c, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask,
                    bool *eos_ok) {
    enum cover cv;
    const uint8_t *m;
    if (eval_node(c, c->root, value ? value : "", vlen, n_tokens, &cv, &m, eos_ok)) return -1;
    size_t nv = (size_t)c->model->vocab->n_tokens;
    if (cv == C_ALL) memcpy(mask, c->all, nv);
    else if (cv == C_NONE) memset(mask, 0, nv);
    else mask_and_of(mask, m, c->all, nv);
    /* Nothing allowed and no end allowed: the constraints cannot hold any
    ** more, and LMQL ends the variable. */
    if (!*eos_ok && cv != C_ALL && !mask_any(mask, nv)) *eos_ok = true;
    return 0;
}

/* LMQL: a stop phrase is in force only while its `and` siblings hold
** (`len(TOKENS(X)) > 10 and STOPS_AT(X, "r")` stops after 10 tokens); under
** `or` each branch's stop is in force. */
static bool stop_active(void *ctx, int i, const char *value, size_t vlen, int32_t n_tokens) {
    struct lmql__cons *c = ctx;
    struct cnode *p = i >= 0 && i < c->n_stops ? c->stop_parent[i] : NULL;
    if (!p || p->kind != CK_AND) return true;
    for (int k = 0; k < p->n_kids; k++) {
        struct cnode *sib = p->kids[k];
        if (sib->kind == CK_STOP) continue;
        enum cover cv;
        const uint8_t *m;
        bool eos;
        if (eval_node(c, sib, value ? value : "", vlen, n_tokens, &cv, &m, &eos)) return true;
        if (!eos) return false;
    }
    return true;
}

static int rules_mask(void *ctx, const char *value, size_t vlen, int32_t n_tokens, uint8_t *mask, bool *eos_ok,
                      struct lmql__err *err) {
    struct lmql__cons *c = ctx;
    c->why.msg[0] = 0;
    if (!lmql__cons_mask(c, value, vlen, n_tokens, mask, eos_ok)) return 0;
    return lmql__errf(err, "%s", c->why.msg[0] ? c->why.msg : "out of memory computing a token mask");
}

void lmql__cons_rules(struct lmql__cons *c, struct lmql__hole_rules *r) {
    memset(r, 0, sizeof *r);
    r->stops = c->stops;
    r->n_stops = c->n_stops;
    r->mask = rules_mask;
    r->stop_active = stop_active;
    r->ctx = c;
}
