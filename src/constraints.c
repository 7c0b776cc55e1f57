/*
** The `where` clause, as far as this version enforces it: conjunctions of
** token-length bounds and stop phrases on the hole being generated.
** Anything else that mentions a hole is reported as not supported, never
** silently ignored: a constraint that does not hold would be a wrong answer.
*/
#include "constraints.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int cfail(struct lmql__cerr *e, const struct lmql_node *n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int cfail(struct lmql__cerr *e, const struct lmql_node *n, const char *fmt, ...) {
    va_list ap;
    e->pos = n->pos;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

static bool is_name(const struct lmql_node *n, const char *name) {
    return n && n->kind == LMQL_NODE_NAME && !strcmp(n->u.name, name);
}

/* The function name of a call `f(...)`, or NULL. */
static const char *call_name(const struct lmql_node *n) {
    if (!n || n->kind != LMQL_NODE_CALL || n->u.call.func->kind != LMQL_NODE_NAME) return NULL;
    return n->u.call.func->u.name;
}

static int positional_args(const struct lmql_node *call) {
    int k = 0;
    for (int32_t i = 0; i < call->u.call.args.n; i++) k += call->u.call.args.items[i]->kind != LMQL_NODE_KEYWORD;
    return k;
}

/* len(TOKENS(X)) -> X, else NULL. */
static const char *len_tokens_var(const struct lmql_node *n) {
    const char *f = call_name(n);
    if (!f || strcmp(f, "len") || n->u.call.args.n != 1) return NULL;
    const struct lmql_node *inner = n->u.call.args.items[0];
    const char *g = call_name(inner);
    if (!g || strcmp(g, "TOKENS") || inner->u.call.args.n != 1) return NULL;
    const struct lmql_node *v = inner->u.call.args.items[0];
    return v->kind == LMQL_NODE_NAME ? v->u.name : NULL;
}

static bool is_stop_op(const char *f, bool *before) {
    if (!f) return false;
    if (!strcmp(f, "STOPS_AT") || !strcmp(f, "stops_at")) { *before = false; return true; }
    if (!strcmp(f, "STOPS_BEFORE") || !strcmp(f, "stops_before")) { *before = true; return true; }
    return false;
}

int lmql__where_check(const struct lmql_node *n, struct lmql__cerr *e) {
    if (!n) return 0;
    switch (n->kind) {
    case LMQL_NODE_BOOLOP:
        if (n->u.boolop.is_or) return cfail(e, n, "%s", "'or' in constraints is not supported yet");
        for (int32_t i = 0; i < n->u.boolop.values.n; i++)
            if (lmql__where_check(n->u.boolop.values.items[i], e)) return -1;
        return 0;
    case LMQL_NODE_COMPARE: {
        if (n->u.cmp.comparators.n > 1)
            return cfail(e, n, "%s", "constraints do not support comparison with more than one operator");
        enum lmql_cmpop op = n->u.cmp.ops[0];
        if (op == LMQL_CMPOP_LE || op == LMQL_CMPOP_GE || op == LMQL_CMPOP_NE)
            return cfail(e, n, "the constraint operator '%s' is not supported; use <, > or ==", lmql__cmpop_text(op));
        const struct lmql_node *l = n->u.cmp.left, *r = n->u.cmp.comparators.items[0];
        bool swapped = false;
        if (!len_tokens_var(l) && len_tokens_var(r)) { const struct lmql_node *t = l; l = r; r = t; swapped = true; }
        (void)swapped;
        if (len_tokens_var(l) && (op == LMQL_CMPOP_LT || op == LMQL_CMPOP_GT || op == LMQL_CMPOP_EQ)) {
            if (r->kind != LMQL_NODE_INT) return cfail(e, r, "%s", "the token bound must be an integer literal");
            return 0;
        }
        return cfail(e, n, "%s", "this constraint is not supported yet (supported: len(TOKENS(X)) <, >, == N; "
                                  "STOPS_AT; STOPS_BEFORE; INT)");
    }
    case LMQL_NODE_CALL: {
        bool before;
        const char *f = call_name(n);
        if (n->u.call.func->kind == LMQL_NODE_ATTR)
            return cfail(e, n, "method calls like '.%s(...)' are not supported in constraints",
                         n->u.call.func->u.attr.name);
        if (f && !strcmp(f, "INT")) {
            if (positional_args(n) != 1 || n->u.call.args.items[0]->kind != LMQL_NODE_NAME)
                return cfail(e, n, "%s", "INT() takes one variable");
            return 0;
        }
        if (is_stop_op(f, &before)) {
            if (positional_args(n) != 2 || n->u.call.args.items[0]->kind != LMQL_NODE_NAME)
                return cfail(e, n, "%s() takes a variable and a string", f);
            const struct lmql_node *s = n->u.call.args.items[1];
            if (s->kind != LMQL_NODE_STR) return cfail(e, s, "the phrase of %s() must be a string literal", f);
            if (s->u.str.len == 0) return cfail(e, s, "the phrase of %s() must not be empty", f);
            return 0;
        }
        return cfail(e, n, "the constraint '%s' is not supported yet", f ? f : "call");
    }
    case LMQL_NODE_BOOL:
        return 0;
    default:
        return cfail(e, n, "%s", "this constraint is not supported yet (supported: len(TOKENS(X)) <, >, == N; "
                                  "STOPS_AT; STOPS_BEFORE; INT)");
    }
}

static int rules_of(const struct lmql_node *n, const char *var, struct lmql__rules *out, struct lmql__cerr *e) {
    if (!n) return 0;
    if (n->kind == LMQL_NODE_BOOLOP) {
        for (int32_t i = 0; i < n->u.boolop.values.n; i++)
            if (rules_of(n->u.boolop.values.items[i], var, out, e)) return -1;
        return 0;
    }
    if (n->kind == LMQL_NODE_COMPARE) {
        const struct lmql_node *l = n->u.cmp.left, *r = n->u.cmp.comparators.items[0];
        enum lmql_cmpop op = n->u.cmp.ops[0];
        if (!len_tokens_var(l)) {   /* N > len(TOKENS(X)) reads as len(...) < N */
            const struct lmql_node *t = l; l = r; r = t;
            if (op == LMQL_CMPOP_LT) op = LMQL_CMPOP_GT;
            else if (op == LMQL_CMPOP_GT) op = LMQL_CMPOP_LT;
        }
        const char *v = len_tokens_var(l);
        if (!v || strcmp(v, var)) return 0;
        int64_t k = r->u.i;
        int32_t bound = k < 0 ? -1 : k > INT32_MAX ? INT32_MAX : (int32_t)k;
        if (op == LMQL_CMPOP_LT || op == LMQL_CMPOP_EQ) {
            int32_t max = op == LMQL_CMPOP_LT ? bound - 1 : bound;
            if (max < 0) max = 0;
            if (out->r.max_tokens < 0 || max < out->r.max_tokens) out->r.max_tokens = max;
        }
        if (op == LMQL_CMPOP_GT || op == LMQL_CMPOP_EQ) {
            int32_t min = op == LMQL_CMPOP_GT ? (bound == INT32_MAX ? bound : bound + 1) : bound;
            if (min > out->r.min_tokens) out->r.min_tokens = min;
        }
        return 0;
    }
    bool before;
    const char *f = call_name(n);
    if (f && !strcmp(f, "INT") && is_name(n->u.call.args.items[0], var)) {
        lmql__rules_set_int(out);
        return 0;
    }
    if (n->kind == LMQL_NODE_CALL && is_stop_op(f, &before)) {
        if (!is_name(n->u.call.args.items[0], var)) return 0;
        if (out->r.n_stops >= LMQL_MAX_STOPS) return cfail(e, n, "%s", "too many stop phrases for one variable");
        const struct lmql_node *s = n->u.call.args.items[1];
        struct lmql__stop *st = &out->stops[out->r.n_stops++];
        st->text = s->u.str.text;
        st->len = s->u.str.len;
        st->before = before;
    }
    return 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* LMQL's INT: the first token matches [ 1-9][0-9]*, later ones are digits. */
static bool int_piece(const char *value, size_t vlen, const char *piece, size_t plen) {
    size_t i = 0;
    if (vlen == 0) {
        if (piece[0] != ' ' && !(piece[0] >= '1' && piece[0] <= '9')) return false;
        i = 1;
    }
    for (; i < plen; i++)
        if (!is_digit(piece[i])) return false;
    (void)value;
    return true;
}

static bool int_end(const char *value, size_t vlen) {
    for (size_t i = 0; i < vlen; i++)
        if (is_digit(value[i])) return true;
    return false;
}

void lmql__rules_set_int(struct lmql__rules *r) {
    r->r.allow_piece = int_piece;
    r->r.allow_end = int_end;
    r->int_value = true;
}

int lmql__where_rules(const struct lmql_node *const *wheres, int n, const char *var, struct lmql__rules *out,
                      struct lmql__cerr *e) {
    memset(out, 0, sizeof *out);
    out->r.max_tokens = -1;
    out->r.stops = out->stops;
    for (int i = 0; i < n; i++)
        if (rules_of(wheres[i], var, out, e)) return -1;
    return 0;
}
