/*
** Running a query: statements, prompt strings and their holes, decoder
** arguments, the model, and the results of each sequence.
**
** A sequence is one run of the program. Decoders that return several
** sequences (sample with n > 1) replay the program once per sequence, each
** with its own model slot and random stream, so no interpreter state is
** ever shared between branches.
*/
#include "interp_int.h"

#include <pthread.h>

#include "batch.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lmql__fail(struct interp *I, const struct lmql_node *n, lmql_status st, const char *fmt, ...) {
    if (!I || I->err->msg[0]) return -1;   /* keep the first, innermost cause */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(I->err->msg, sizeof I->err->msg, fmt, ap);
    va_end(ap);
    I->err->status = st;
    if (n) I->err->pos = n->pos;
    return -1;
}

int lmql__step(struct interp *I, const struct lmql_node *n) {
    if (++I->steps > I->host->params->max_steps)
        return lmql__fail(I, n, LMQL_ERR_RUNTIME, "the query ran more than %d steps (max_steps); is it in an endless loop?",
                          I->host->params->max_steps);
    return 0;
}

/* ----------------------------------------------------------- prompts -- */

static int emit_text(struct interp *I, const char *s, size_t n) {
    if (lmql__buf_add(&I->res->prompt, s, n) || lmql__buf_add(&I->pending, s, n))
        return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    const struct lmql_params *p = I->host->params;
    if (p->on_text && I->slot == 0 && n) p->on_text(p->user_data, s, n, LMQL_TEXT_PROMPT);
    return 0;
}

static void stream_token(void *ud, const char *bytes, size_t len) {
    struct interp *I = ud;
    const struct lmql_params *p = I->host->params;
    if (p->on_text && len) p->on_text(p->user_data, bytes, len, LMQL_TEXT_GENERATED);
}

/* Tokenize text and append it to the sequence: BOS when it starts the
** sequence, and as a continuation otherwise (no invented SPM space). */
static int push_text(struct interp *I, const struct lmql_node *at, const char *s, size_t n) {
    struct lmql__model *m = I->model;
    bool first = I->seq.n == 0;
    if (n == 0 && !first) return 0;
    struct lmql__err e = {{0}};
    int32_t cap = (int32_t)(n + 8 > 64 ? n + 8 : 64);
    int32_t *t = malloc((size_t)cap * sizeof *t);
    if (!t) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    int32_t k = m->ops->tokenize(m, s, n, first, !first, t, cap, &e);
    if (k < 0 && k != INT32_MIN) {
        int32_t *bigger = realloc(t, (size_t)(-k) * sizeof *t);
        if (!bigger) { free(t); return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); }
        t = bigger;
        k = m->ops->tokenize(m, s, n, first, !first, t, -k, &e);
    }
    if (k < 0) { free(t); return lmql__fail(I, at, LMQL_ERR_RUNTIME, "tokenizing failed: %s", e.msg); }
    int rc = lmql__seq_push(&I->seq, t, k);
    free(t);
    if (rc) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    if (I->seq.n == 0) {
        /* Nothing to condition on: start from BOS, or EOS as GPT-2 does. */
        int32_t start = m->vocab.bos >= 0 ? m->vocab.bos : m->vocab.eos;
        if (start < 0) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "the prompt is empty and the model has no BOS token");
        if (lmql__seq_push(&I->seq, &start, 1)) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    }
    return 0;
}

static int set_variable(struct interp *I, const char *name, struct lmql_val *v) {
    if (lmql__set_name(I, name, v)) return -1;
    if (lmql__dict_set(I->res->vars, lmql__val_cstr(name), lmql__val_ref(v)))
        return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return 0;
}

/* The function a hole type like `q(args)` calls, if it is a query
** function; NULL (and no error) when it is something else. */
static const struct lmql_node *query_fn_of(struct interp *I, const struct lmql_node *type) {
    if (type->kind != LMQL_NODE_CALL && type->kind != LMQL_NODE_NAME) return NULL;
    if (type->kind == LMQL_NODE_NAME && !lmql__lookup(I, type->u.name)) return NULL;
    struct lmql_val *f = lmql__eval(I, type->kind == LMQL_NODE_CALL ? type->u.call.func : type);
    const struct lmql_node *def = NULL;
    if (f && f->kind == LMQL_V_FUNC && !f->u.func.fn && ((const struct lmql_node *)f->u.func.ud)->u.def.query)
        def = f->u.func.ud;
    lmql__val_unref(f);
    return def;
}

static int run_nested(struct interp *I, const struct lmql_node *seg, const struct lmql_node *def);

/* Is `name` a hole of these statements (or of blocks inside them)? */
static bool is_hole(const struct lmql_node_list *stmts, const char *name) {
    for (int32_t i = 0; i < stmts->n; i++) {
        const struct lmql_node *s = stmts->items[i];
        switch (s->kind) {
        case LMQL_NODE_PROMPT:
            for (int32_t k = 0; k < s->u.prompt.segs.n; k++) {
                const struct lmql_node *g = s->u.prompt.segs.items[k];
                if (g->kind == LMQL_NODE_SEG_HOLE && !strcmp(g->u.hole.name, name)) return true;
            }
            break;
        case LMQL_NODE_IF:
        case LMQL_NODE_WHILE:
            if (is_hole(&s->u.if_.body, name) || is_hole(&s->u.if_.orelse, name)) return true;
            break;
        case LMQL_NODE_FOR:
            if (is_hole(&s->u.for_.body, name) || is_hole(&s->u.for_.orelse, name)) return true;
            break;
        default: break;
        }
    }
    return false;
}

/* Names an expression reads that have no value (yet). */
static bool names_known(struct interp *I, const struct lmql_node *n) {
    if (!n) return true;
    switch (n->kind) {
    case LMQL_NODE_NAME:
        /* Only holes that have no value yet are unknown; any other missing
        ** name is evaluated, so that it is reported as not defined. */
        return lmql__lookup(I, n->u.name) || lmql__builtin_exists(n->u.name) || !is_hole(&I->q->body, n->u.name);
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) if (!names_known(I, n->u.boolop.values.items[i])) return false;
        return true;
    case LMQL_NODE_COMPARE:
        if (!names_known(I, n->u.cmp.left)) return false;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) if (!names_known(I, n->u.cmp.comparators.items[i])) return false;
        return true;
    case LMQL_NODE_CALL:
        if (!names_known(I, n->u.call.func)) return false;
        for (int32_t i = 0; i < n->u.call.args.n; i++) if (!names_known(I, n->u.call.args.items[i])) return false;
        return true;
    case LMQL_NODE_KEYWORD: return names_known(I, n->u.kw.value);
    case LMQL_NODE_UNARY: return names_known(I, n->u.unary.operand);
    case LMQL_NODE_BINOP: return names_known(I, n->u.bin.left) && names_known(I, n->u.bin.right);
    case LMQL_NODE_ATTR: return names_known(I, n->u.attr.obj);
    case LMQL_NODE_SUBSCRIPT: return names_known(I, n->u.sub.obj) && names_known(I, n->u.sub.index);
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE:
        for (int32_t i = 0; i < n->u.items.n; i++) if (!names_known(I, n->u.items.items[i])) return false;
        return true;
    default: return true;
    }
}

/* For constraints: the value of a part that does not involve the hole, or
** "unknown" while it reads a hole that has not been generated. */
static struct lmql_val *env_eval(void *ctx, const struct lmql_node *n, bool *unknown) {
    struct interp *I = ctx;
    if (!names_known(I, n)) { *unknown = true; return NULL; }
    *unknown = false;
    return lmql__eval(I, n);
}

/* Does the expression mention variable `name`? */
static bool mentions(const struct lmql_node *n, const char *name) {
    if (!n) return false;
    switch (n->kind) {
    case LMQL_NODE_NAME: return !strcmp(n->u.name, name);
    case LMQL_NODE_BOOLOP:
        for (int32_t i = 0; i < n->u.boolop.values.n; i++) if (mentions(n->u.boolop.values.items[i], name)) return true;
        return false;
    case LMQL_NODE_COMPARE:
        if (mentions(n->u.cmp.left, name)) return true;
        for (int32_t i = 0; i < n->u.cmp.comparators.n; i++) if (mentions(n->u.cmp.comparators.items[i], name)) return true;
        return false;
    case LMQL_NODE_CALL:
        for (int32_t i = 0; i < n->u.call.args.n; i++) if (mentions(n->u.call.args.items[i], name)) return true;
        return false;
    case LMQL_NODE_UNARY: return mentions(n->u.unary.operand, name);
    default: return false;
    }
}

static struct lmql_val *pair(const char *value, size_t len, double x) {
    struct lmql_val *t = lmql__val_tuple(2);
    if (t) {
        lmql__list_push(t, lmql__val_str(value, len));
        lmql__list_push(t, lmql__val_float(x));
    }
    return t;
}

/* distribution VAR in [values] (LMQL's conditional_prob): each value is
** tokenized alone and scored after the prompt as the mean log-probability
** of its tokens; the scores are normalized over the values. All values are
** scored in one batched evaluation, in slots forked from the prompt's. */
static int run_distribution(struct interp *I, const struct lmql_node *seg) {
    const struct lmql_node *d = I->dist;
    const char *name = d->u.dist.var;
    if (mentions(I->q->where, name) || mentions(I->inline_where, name))
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "the distribution variable %s cannot be constrained in where", name);
    if (I->dist_end) return lmql__fail(I, seg, LMQL_ERR_QUERY, "the distribution variable %s appears twice", name);
    struct lmql_val *vals = lmql__eval(I, d->u.dist.values);
    if (!vals) return -1;
    struct lmql_val *items = lmql__iter_list(I, d->u.dist.values, vals);
    lmql__val_unref(vals);
    if (!items) return -1;
    size_t n = items->u.list.len;
    int rc = 0;
    if (n == 0) rc = lmql__fail(I, d, LMQL_ERR_QUERY, "the distribution of %s has no values", name);
    for (size_t k = 0; rc == 0 && k < n; k++)
        if (items->u.list.items[k]->kind != LMQL_V_STR || items->u.list.items[k]->u.str.len == 0)
            rc = lmql__fail(I, d, LMQL_ERR_QUERY, "distribution values must be non-empty strings");
    if (rc == 0) rc = push_text(I, seg, I->pending.data ? I->pending.data : "", I->pending.len);
    I->pending.len = 0;
    double *score = calloc(n ? n : 1, sizeof *score);
    if (!score && rc == 0) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");

    struct lmql__model *m = I->model;
    struct lmql__err e = {{0}};
    /* The prompt is evaluated once in our slot; value slots start as forks. */
    if (rc == 0) {
        struct lmql__eval_req base = {I->slot, I->seq.toks, I->seq.n, NULL, NULL};
        const float *lp;
        if (m->ops->next_logprobs(m, 1, &base, &lp, &e)) rc = lmql__fail(I, seg, LMQL_ERR_RUNTIME, "%s", e.msg);
    }
    int per = m->n_slots > 1 ? m->n_slots - 1 : 1;
    for (size_t k0 = 0; rc == 0 && k0 < n; k0 += (size_t)per) {
        size_t cnt = n - k0 < (size_t)per ? n - k0 : (size_t)per;
        struct lmql__eval_req *reqs = calloc(cnt, sizeof *reqs);
        int32_t *from = calloc(cnt, sizeof *from);
        float **sc = calloc(cnt, sizeof *sc);
        struct lmql__seq *seqs = calloc(cnt, sizeof *seqs);
        if (!reqs || !from || !sc || !seqs) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        for (size_t j = 0; rc == 0 && j < cnt; j++) {
            const struct lmql_val *v = items->u.list.items[k0 + j];
            int slot = m->n_slots > 1 ? (I->slot + 1 + (int)j) % m->n_slots : I->slot;
            int32_t t[512];
            int32_t nt = m->ops->tokenize(m, v->u.str.s, v->u.str.len, false, true, t, 512, &e);
            if (nt <= 0) { rc = lmql__fail(I, d, LMQL_ERR_RUNTIME, "cannot tokenize distribution value (too long?)"); break; }
            if (lmql__seq_push(&seqs[j], I->seq.toks, I->seq.n) || lmql__seq_push(&seqs[j], t, nt) ||
                !(sc[j] = calloc((size_t)nt, sizeof **sc))) { rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory"); break; }
            if (slot != I->slot) m->ops->slot_copy(m, I->slot, slot);
            reqs[j] = (struct lmql__eval_req){slot, seqs[j].toks, seqs[j].n, NULL, NULL};
            from[j] = I->seq.n;
        }
        if (rc == 0 && m->ops->score(m, (int)cnt, reqs, from, sc, &e)) rc = lmql__fail(I, seg, LMQL_ERR_RUNTIME, "%s", e.msg);
        for (size_t j = 0; rc == 0 && j < cnt; j++) {
            int32_t nt = seqs[j].n - from[j];
            double sum = 0;
            for (int32_t i = 0; i < nt; i++) sum += sc[j][i];
            score[k0 + j] = sum / nt;
        }
        for (size_t j = 0; seqs && j < cnt; j++) lmql__seq_free(&seqs[j]);
        for (size_t j = 0; sc && j < cnt; j++) free(sc[j]);
        free(reqs); free(from); free(sc); free(seqs);
    }
    if (rc == 0) {
        double mx = score[0], sum = 0;
        size_t best = 0;
        for (size_t k = 1; k < n; k++) if (score[k] > mx) { mx = score[k]; best = k; }
        for (size_t k = 0; k < n; k++) sum += exp(score[k] - mx);
        struct lmql_val *probs = lmql__val_list(n), *logps = lmql__val_list(n);
        for (size_t k = 0; probs && logps && k < n; k++) {
            const struct lmql_val *v = items->u.list.items[k];
            double lp = score[k] - mx - log(sum);
            lmql__list_push(probs, pair(v->u.str.s, v->u.str.len, exp(lp)));
            lmql__list_push(logps, pair(v->u.str.s, v->u.str.len, lp));
        }
        const struct lmql_val *bv = items->u.list.items[best];
        if (!probs || !logps) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        if (rc == 0) rc = emit_text(I, bv->u.str.s, bv->u.str.len);
        if (rc == 0) rc = set_variable(I, name, (struct lmql_val *)bv);
        char key[300];
        snprintf(key, sizeof key, "P(%s)", name);
        if (rc == 0 && lmql__dict_set(I->res->vars, lmql__val_cstr(key), probs)) rc = -1;
        else if (rc) lmql__val_unref(probs);
        snprintf(key, sizeof key, "log P(%s)", name);
        if (rc == 0 && lmql__dict_set(I->res->vars, lmql__val_cstr(key), logps)) rc = -1;
        else if (rc) lmql__val_unref(logps);
        if (rc == 0) {
            I->res->dist_var = name;
            lmql__val_unref(I->res->dist_values);
            I->res->dist_values = lmql__val_list(n);
            for (size_t k = 0; I->res->dist_values && k < n; k++)
                lmql__list_push(I->res->dist_values, lmql__val_ref(items->u.list.items[k]));
            I->dist_end = I->res->prompt.len;
        }
    }
    free(score);
    lmql__val_unref(items);
    return rc;
}

static int run_hole(struct interp *I, const struct lmql_node *seg) {
    const char *name = seg->u.hole.name;
    if (seg->u.hole.decoder)
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "variable-decoder declarations are not supported yet ([%s %s])",
                          seg->u.hole.decoder, name);
    if (seg->u.hole.decorators.n)
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "hole decorators are not supported yet");
    if (seg->u.hole.call)
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "holes with a function call are not supported yet");

    if (I->dist && !strcmp(I->dist->u.dist.var, name)) return run_distribution(I, seg);
    const struct lmql_node *type = seg->u.hole.type;
    if (type && type->kind != LMQL_NODE_STR && !(type->kind == LMQL_NODE_NAME && !strcmp(type->u.name, "int"))) {
        const struct lmql_node *def = query_fn_of(I, type);
        if (def) return run_nested(I, seg, def);
        if (I->err->msg[0]) return -1;
        return lmql__fail(I, type, LMQL_ERR_QUERY,
                          "Not a valid type expression for [%s: ...]: use int, a regex string or a query function", name);
    }

    const struct lmql_node *wheres[2] = {I->q->where, I->inline_where};
    struct lmql__cons_env env = {.model = I->model, .eval = env_eval, .ctx = I};
    struct lmql__cons *cons = NULL;
    struct lmql__cerr ce = {.status = 0};
    int rc = lmql__cons_compile(wheres, 2, name, &env, &cons, &ce);
    if (rc == 0 && type && type->kind == LMQL_NODE_STR) rc = lmql__cons_add_regex(cons, type, &ce);
    else if (rc == 0 && type) rc = lmql__cons_add_int(cons);
    if (rc) {
        lmql__cons_free(cons);
        if (I->err->msg[0]) return -1;   /* evaluating part of the clause failed */
        I->err->pos = ce.pos.line ? ce.pos : seg->pos;
        return lmql__fail(I, NULL, ce.status ? ce.status : LMQL_ERR_QUERY, "%s", ce.msg);
    }
    struct lmql__hole_rules rules;
    lmql__cons_rules(cons, &rules);
    unsigned post = lmql__cons_post(cons);
    if (push_text(I, seg, I->pending.data ? I->pending.data : "", I->pending.len)) { lmql__cons_free(cons); return -1; }
    I->pending.len = 0;

    struct lmql__buf value = {0};
    struct lmql__err e = {{0}};
    int32_t before = I->seq.n;
    I->gen.slot = I->slot;
    I->gen.on_token = I->slot == 0 && I->depth == 0 ? stream_token : NULL;
    I->gen.ud = I;
    int32_t n = lmql__generate(&I->gen, &rules, &I->seq, &value, &e);
    lmql__cons_free(cons);
    if (n == -2) {   /* a beam replay reached its next choice: stop the run here */
        lmql__buf_free(&value);
        I->frontier = true;
        return lmql__fail(I, seg, LMQL_ERR_RUNTIME, "beam frontier");
    }
    if (n < 0) {
        lmql__buf_free(&value);
        return lmql__fail(I, seg, LMQL_ERR_RUNTIME, "%s", e.msg);
    }
    I->n_generated += (uint64_t)n;
    /* The value's canonical tokens replace the generated ones. ERASE and
    ** ESCAPED change what the prompt shows, not the value. */
    I->seq.n = before;
    const char *text = value.data ? value.data : "";
    struct lmql_val *v = NULL;
    rc = 0;
    if (post & LMQL_POST_INT) {
        /* INT keeps the digits and makes them a number (LMQL's IntOp). */
        int64_t x = 0;
        bool over = false, digits = false;
        for (size_t i = 0; i < value.len; i++)
            if (text[i] >= '0' && text[i] <= '9') {
                digits = true;
                over |= __builtin_mul_overflow(x, 10, &x) || __builtin_add_overflow(x, text[i] - '0', &x);
            }
        if (over) rc = lmql__fail(I, seg, LMQL_ERR_RUNTIME, "the value of %s is too large for an integer", name);
        else v = digits ? lmql__val_int(x) : &lmql__none;
    } else {
        v = lmql__val_str(text, value.len);
    }
    /* What the prompt shows: the number as written by str() for INT (as
    ** LMQL rewrites it), nothing for ERASE, escaped for ESCAPED. */
    struct lmql__buf shown = {0};
    if (rc == 0 && v && (post & LMQL_POST_INT)) {
        if (v->kind == LMQL_V_INT) lmql__val_str_into(&shown, v);
    } else if (post & LMQL_POST_ESCAPED) {
        for (size_t i = 0; i < value.len; i++) {
            if (text[i] == '\n') lmql__buf_adds(&shown, "\\n");
            else if (text[i] == '\t') lmql__buf_adds(&shown, "\\t");
            else lmql__buf_add(&shown, text + i, 1);
        }
    } else if (!(post & LMQL_POST_ERASE)) {
        lmql__buf_add(&shown, text, value.len);
    }
    if (rc == 0) rc = push_text(I, seg, shown.data ? shown.data : "", shown.len);
    if (!rc && lmql__buf_add(&I->res->prompt, shown.data ? shown.data : "", shown.len))
        rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    lmql__buf_free(&shown);
    lmql__buf_free(&value);
    if (rc || !v) return rc ? -1 : lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    rc = set_variable(I, name, v);
    lmql__val_unref(v);
    return rc;
}

static int run_prompt(struct interp *I, const struct lmql_node *p) {
    if (p->u.prompt.dist) {
        if (I->dist && I->dist != p->u.prompt.dist)
            return lmql__fail(I, p->u.prompt.dist, LMQL_ERR_QUERY, "a query can have only one distribution clause");
        I->dist = p->u.prompt.dist;
    }
    if (p->u.prompt.where) {
        struct lmql__cerr ce = {.status = 0};
        if (lmql__where_check(p->u.prompt.where, &ce)) {
            I->err->pos = ce.pos;
            return lmql__fail(I, NULL, ce.status ? ce.status : LMQL_ERR_QUERY, "%s", ce.msg);
        }
    }
    I->inline_where = p->u.prompt.where;
    int rc = 0;
    for (int32_t i = 0; i < p->u.prompt.segs.n && rc == 0; i++) {
        const struct lmql_node *s = p->u.prompt.segs.items[i];
        switch (s->kind) {
        case LMQL_NODE_SEG_TEXT: rc = emit_text(I, s->u.text.text, s->u.text.len); break;
        case LMQL_NODE_SEG_ROLE: {
            /* Models here are not chat models: a role tag is written as
            ** "\n((role)):", without the newline at the start. */
            struct lmql__buf b = {0};
            lmql__buf_addf(&b, "%s((%.*s)):", I->res->prompt.len ? "\n" : "", (int)s->u.text.len, s->u.text.text);
            rc = emit_text(I, b.data, b.len);
            lmql__buf_free(&b);
            break;
        }
        case LMQL_NODE_INTERP: {
            struct lmql_val *v = lmql__eval(I, s->u.interp.expr);
            if (!v) { rc = -1; break; }
            struct lmql__buf b = {0};
            rc = lmql__interp_text(I, s, v, &b);
            if (rc == 0) rc = emit_text(I, b.data ? b.data : "", b.len);
            lmql__buf_free(&b);
            lmql__val_unref(v);
            break;
        }
        case LMQL_NODE_SEG_HOLE: rc = run_hole(I, s); break;
        default: rc = lmql__fail(I, s, LMQL_ERR_QUERY, "unexpected part of a query string");
        }
    }
    I->inline_where = NULL;
    return rc;
}

/* -------------------------------------------------------- statements -- */

static int exec_stmt(struct interp *I, const struct lmql_node *s);

int lmql__exec_block(struct interp *I, const struct lmql_node_list *body) {
    for (int32_t i = 0; i < body->n; i++) {
        if (exec_stmt(I, body->items[i])) return -1;
        if (I->flow != FLOW_NORMAL) break;
    }
    return 0;
}

static int exec_loop_body(struct interp *I, const struct lmql_node_list *body, bool *stop) {
    if (lmql__exec_block(I, body)) return -1;
    *stop = false;
    if (I->flow == FLOW_BREAK) { I->flow = FLOW_NORMAL; *stop = true; }
    else if (I->flow == FLOW_CONTINUE) I->flow = FLOW_NORMAL;
    else if (I->flow == FLOW_RETURN) *stop = true;
    return 0;
}

static int exec_stmt(struct interp *I, const struct lmql_node *s) {
    if (lmql__step(I, s)) return -1;
    struct lmql_val *v;
    int rc = 0;
    switch (s->kind) {
    case LMQL_NODE_PROMPT:
        if (I->locals) return 0;   /* a docstring inside a def */
        return run_prompt(I, s);
    case LMQL_NODE_EXPR_STMT:
        v = lmql__eval(I, s->u.expr);
        lmql__val_unref(v);
        return v ? 0 : -1;
    case LMQL_NODE_ASSIGN:
        v = lmql__eval(I, s->u.assign.value);
        if (!v) return -1;
        for (int32_t i = 0; i < s->u.assign.targets.n && rc == 0; i++) rc = lmql__assign(I, s->u.assign.targets.items[i], v);
        lmql__val_unref(v);
        return rc;
    case LMQL_NODE_AUGASSIGN: {
        /* x += v  is  x = x + v, with x evaluated as an expression. */
        struct lmql_node bin = {.kind = LMQL_NODE_BINOP, .pos = s->pos};
        bin.u.bin.op = s->u.aug.op;
        bin.u.bin.left = s->u.aug.target;
        bin.u.bin.right = s->u.aug.value;
        struct lmql_val *cur = lmql__eval(I, s->u.aug.target);
        if (!cur) return -1;
        if (cur->kind == LMQL_V_LIST && s->u.aug.op == LMQL_BINOP_ADD) {
            /* list += iterable extends in place, as in Python */
            struct lmql_val *add = lmql__eval(I, s->u.aug.value);
            if (!add) { lmql__val_unref(cur); return -1; }
            if (add->kind != LMQL_V_LIST && add->kind != LMQL_V_TUPLE)
                rc = lmql__fail(I, s, LMQL_ERR_RUNTIME, "can only extend a list by a list or tuple");
            for (size_t i = 0; rc == 0 && i < add->u.list.len; i++) lmql__list_push(cur, lmql__val_ref(add->u.list.items[i]));
            lmql__val_unref(add);
            lmql__val_unref(cur);
            return rc;
        }
        lmql__val_unref(cur);
        v = lmql__eval(I, &bin);
        if (!v) return -1;
        rc = lmql__assign(I, s->u.aug.target, v);
        lmql__val_unref(v);
        return rc;
    }
    case LMQL_NODE_IF:
        v = lmql__eval(I, s->u.if_.test);
        if (!v) return -1;
        rc = lmql__exec_block(I, lmql__val_truthy(v) ? &s->u.if_.body : &s->u.if_.orelse);
        lmql__val_unref(v);
        return rc;
    case LMQL_NODE_WHILE:
        for (;;) {
            if (lmql__step(I, s)) return -1;
            v = lmql__eval(I, s->u.if_.test);
            if (!v) return -1;
            bool go = lmql__val_truthy(v), stop;
            lmql__val_unref(v);
            if (!go) return lmql__exec_block(I, &s->u.if_.orelse);
            if (exec_loop_body(I, &s->u.if_.body, &stop)) return -1;
            if (stop) return 0;
        }
    case LMQL_NODE_FOR: {
        struct lmql_val *it = lmql__eval(I, s->u.for_.iter);
        if (!it) return -1;
        struct lmql_val *items = lmql__iter_list(I, s->u.for_.iter, it);
        lmql__val_unref(it);
        if (!items) return -1;
        bool stop = false;
        for (size_t i = 0; i < items->u.list.len && !stop && rc == 0; i++) {
            rc = lmql__step(I, s);
            if (rc == 0) rc = lmql__assign(I, s->u.for_.target, items->u.list.items[i]);
            if (rc == 0) rc = exec_loop_body(I, &s->u.for_.body, &stop);
        }
        lmql__val_unref(items);
        if (rc == 0 && !stop) rc = lmql__exec_block(I, &s->u.for_.orelse);
        return rc;
    }
    case LMQL_NODE_BREAK: I->flow = FLOW_BREAK; return 0;
    case LMQL_NODE_CONTINUE: I->flow = FLOW_CONTINUE; return 0;
    case LMQL_NODE_PASS: return 0;
    case LMQL_NODE_RETURN:
        v = s->u.value ? lmql__eval(I, s->u.value) : NULL;
        if (s->u.value && !v) return -1;
        lmql__val_unref(I->retval);
        I->retval = v;
        I->flow = FLOW_RETURN;
        return 0;
    case LMQL_NODE_DEF:
        if (s->u.def.decorators.n && !s->u.def.query)
            return lmql__fail(I, s, LMQL_ERR_QUERY, "decorators other than @lmql.query are not supported");
        v = lmql__val_builtin(s->u.def.name, NULL, (void *)s, NULL);
        if (!v) return lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
        rc = lmql__set_name(I, s->u.def.name, v);
        lmql__val_unref(v);
        return rc;
    case LMQL_NODE_ASSERT:
        v = lmql__eval(I, s->u.assert_.test);
        if (!v) return -1;
        if (!lmql__val_truthy(v)) {
            struct lmql_val *msg = s->u.assert_.msg ? lmql__eval(I, s->u.assert_.msg) : NULL;
            struct lmql__buf b = {0};
            if (msg) lmql__val_str_into(&b, msg);
            rc = lmql__fail(I, s, LMQL_ERR_RUNTIME, "AssertionError%s%s", b.len ? ": " : "", b.data ? b.data : "");
            lmql__buf_free(&b);
            lmql__val_unref(msg);
        }
        lmql__val_unref(v);
        return rc;
    case LMQL_NODE_IMPORT:
    case LMQL_NODE_IMPORT_FROM:
        for (int32_t i = 0; i < s->u.import.names.n; i++) {
            const char *mod = s->kind == LMQL_NODE_IMPORT ? s->u.import.names.items[i]->u.alias.name : s->u.import.module;
            if (!mod || strcmp(mod, "lmql"))
                return lmql__fail(I, s, LMQL_ERR_QUERY, "import of '%s' is not supported: queries can import only lmql",
                                  mod ? mod : ".");
            if (s->kind == LMQL_NODE_IMPORT_FROM)
                return lmql__fail(I, s, LMQL_ERR_QUERY, "'from lmql import ...' is not supported; use 'import lmql'");
        }
        return 0;
    default:
        return lmql__fail(I, s, LMQL_ERR_QUERY, "'%s' statements are not supported", lmql__node_kind_name(s->kind));
    }
}

/* ----------------------------------------------------------- the run -- */

struct decoder_cfg {
    enum lmql__decoder kind;
    int n;
    double temperature;
    int32_t max_len;
    int32_t top_k;
    double top_p;
    /* best_k (LMQL's defaults) */
    int budget, max_heap, continuations;
    double kappa, beta, gamma;
};

static bool name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(*list, name)) return true;
    return false;
}

static int decoder_config(struct interp *I, struct decoder_cfg *cfg) {
    const struct lmql_ast_query *q = I->q;
    static const char *const shared[] = {"max_len", "max_length", "chunksize", "step_budget", "cache", "verbose",
                                         "chunk_timeout", "openai_nonstop", "certificate", "top_k", "top_p",
                                         "repetition_penalty", "frequency_penalty", "presence_penalty", NULL};
    const char *d = I->decoder_override ? I->decoder_override : q->decoder ? q->decoder : "__dynamic__";
    cfg->kind = LMQL_DEC_ARGMAX;
    cfg->n = 1;
    cfg->temperature = 1.0;
    cfg->top_k = 0;
    cfg->top_p = 1.0;
    cfg->max_len = 2048;
    cfg->budget = 30;
    cfg->max_heap = 500;
    cfg->continuations = 5;
    cfg->kappa = 1;
    cfg->beta = 0.5;
    cfg->gamma = 0.05;
    bool sample = !strcmp(d, "sample"), best_k = !strcmp(d, "best_k");
    bool beam = !strcmp(d, "beam") || !strcmp(d, "beam_search"), beam_sample = !strcmp(d, "beam_sample");
    if (strcmp(d, "argmax") && !sample && !beam && !beam_sample && !best_k && strcmp(d, "__dynamic__")) {
        struct lmql_node at = {.pos = q->decoder_pos};
        return lmql__fail(I, &at, LMQL_ERR_QUERY,
                          "the decoder '%s' is not supported yet (supported: argmax, sample, beam, beam_sample, best_k)",
                          d);
    }
    if (best_k) {
        cfg->kind = LMQL_DEC_BEST_K;
        cfg->n = 4;
    }
    if (beam || beam_sample) {
        cfg->kind = beam ? LMQL_DEC_BEAM : LMQL_DEC_BEAM_SAMPLE;
        cfg->n = 4;   /* LMQL's default beam width */
    }
    bool temp_set = false;
    for (int32_t i = 0; i < q->decoder_args.n; i++) {
        const struct lmql_node *kw = q->decoder_args.items[i];
        if (kw->kind != LMQL_NODE_KEYWORD)
            return lmql__fail(I, kw, LMQL_ERR_QUERY, "decoder arguments must be given as name=value");
        const char *k = kw->u.kw.name;
        static const char *const best_k_args[] = {"k", "budget", "kappa", "beta", "gamma", "max_heap_size",
                                                  "top_k_continuations", NULL};
        bool own = !strcmp(k, "n") || !strcmp(k, "num_beams") ||
                   (!strcmp(k, "temperature") && (sample || beam_sample || !strcmp(d, "__dynamic__"))) ||
                   (best_k && name_in(k, best_k_args));
        if (!own && !name_in(k, shared)) return lmql__fail(I, kw, LMQL_ERR_QUERY, "Unknown decoder argument: %s", k);
        struct lmql_val *v = lmql__eval(I, kw->u.kw.value);
        if (!v) return -1;
        int rc = 0;
        bool num = v->kind == LMQL_V_INT || v->kind == LMQL_V_FLOAT;
        double x = v->kind == LMQL_V_INT ? (double)v->u.i : v->kind == LMQL_V_FLOAT ? v->u.f : 0;
        if (best_k && name_in(k, best_k_args) && strcmp(k, "k")) {
            bool is_int = strcmp(k, "kappa") && strcmp(k, "beta") && strcmp(k, "gamma");
            if (!num || x < 0 || (is_int && (v->kind != LMQL_V_INT || x < 1 || x > 100000)))
                rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "best_k argument %s must be a %s number", k,
                                is_int ? "positive whole" : "non-negative");
            else if (!strcmp(k, "budget")) cfg->budget = (int)x;
            else if (!strcmp(k, "max_heap_size")) cfg->max_heap = (int)x;
            else if (!strcmp(k, "top_k_continuations")) cfg->continuations = (int)x;
            else if (!strcmp(k, "kappa")) cfg->kappa = x;
            else if (!strcmp(k, "beta")) cfg->beta = x;
            else cfg->gamma = x;
        } else if (!strcmp(k, "n") || !strcmp(k, "num_beams") || !strcmp(k, "k")) {
            if (v->kind != LMQL_V_INT || v->u.i < 1 || v->u.i > 256)
                rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "decoder argument n must be an integer from 1 to 256");
            else cfg->n = (int)v->u.i;
        } else if (!strcmp(k, "temperature")) {
            if (!num || x < 0) rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "temperature must be a non-negative number");
            else { cfg->temperature = x; temp_set = true; }
        } else if (!strcmp(k, "top_k")) {
            if (v->kind != LMQL_V_INT || v->u.i < 0 || v->u.i > INT32_MAX)
                rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "top_k must be a non-negative integer");
            else cfg->top_k = (int32_t)v->u.i;
        } else if (!strcmp(k, "top_p")) {
            if (!num || x <= 0 || x > 1) rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "top_p must be a number in (0, 1]");
            else cfg->top_p = x;
        } else if (!strcmp(k, "max_len") || !strcmp(k, "max_length")) {
            if (v->kind != LMQL_V_INT || v->u.i < 1 || v->u.i > INT32_MAX)
                rc = lmql__fail(I, kw, LMQL_ERR_QUERY, "%s must be a positive integer", k);
            else cfg->max_len = (int32_t)v->u.i;
        }
        lmql__val_unref(v);
        if (rc) return rc;
    }
    int32_t cap = I->host->params->max_len;
    if (cap > 0 && cfg->max_len > cap) cfg->max_len = cap;
    /* LMQL: a query without a decoder keyword samples when given a
    ** temperature other than 0, and is argmax otherwise. */
    if (!beam && !beam_sample && !best_k && (sample || (temp_set && cfg->temperature != 0))) cfg->kind = LMQL_DEC_SAMPLE;
    return 0;
}

static int resolve_model(struct interp *I, struct lmql__model *inherited) {
    const struct lmql_params *p = I->host->params;
    /* --model applies to the query that was run, not to the sub-queries it
    ** calls: those name their own model or use their caller's. */
    const char *id = inherited ? NULL : p->model_override;
    struct lmql__model_spec *spec = NULL;
    struct lmql_val *v = NULL;
    if (!id && I->q->from) {
        v = lmql__eval(I, I->q->from);
        if (!v) return -1;
        if (v->kind == LMQL_V_STR) id = v->u.str.s;
        else if (v->kind == LMQL_V_OBJ && !strcmp(v->u.obj.type, "model")) spec = v->u.obj.ptr;
        else {
            lmql__fail(I, I->q->from, LMQL_ERR_QUERY, "'from' needs a model name or lmql.model(...), not %s",
                       lmql__val_type_name(v));
            lmql__val_unref(v);
            return -1;
        }
    }
    if (!id && !spec && inherited) {
        I->model = inherited;
        return 0;
    }
    if (!id && !spec) id = p->default_model;
    if (!id && !spec) id = getenv("LMQL_DEFAULT_MODEL");
    if ((!id || !*id) && !spec) {
        lmql__val_unref(v);   /* from "": the evaluated (empty) name */
        return lmql__fail(I, NULL, LMQL_ERR_MODEL, "no model: add `from \"local:llama.cpp:PATH.gguf\"` to the query, "
                          "pass --model ID, or set LMQL_DEFAULT_MODEL");
    }
    struct lmql__err e = {{0}};
    I->model = spec ? I->host->get_model(I->host->ud, spec->id, spec->kv, spec->n_kv, &e)
                    : I->host->get_model(I->host->ud, id, NULL, 0, &e);
    lmql__val_unref(v);
    if (!I->model) return lmql__fail(I, NULL, LMQL_ERR_MODEL, "%s", e.msg);
    return 0;
}

static int bind_args(struct interp *I, struct lmql_val *args) {
    struct lmql_val *fns = I->host->functions;
    for (size_t i = 0; fns && i < fns->u.dict.len; i++)
        if (lmql__dict_set(I->globals, lmql__val_ref(fns->u.dict.keys[i]), lmql__val_ref(fns->u.dict.vals[i])))
            return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; args && i < args->u.dict.len; i++)
        if (lmql__dict_set(I->globals, lmql__val_ref(args->u.dict.keys[i]), lmql__val_ref(args->u.dict.vals[i])))
            return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return 0;
}

/* Check the global where clause once, before anything runs. */
static int check_where(struct interp *I) {
    struct lmql__cerr ce = {.status = 0};
    if (lmql__where_check(I->q->where, &ce)) {
        I->err->pos = ce.pos;
        return lmql__fail(I, NULL, ce.status ? ce.status : LMQL_ERR_QUERY, "%s", ce.msg);
    }
    return 0;
}

static void reset_sequence(struct interp *I) {
    lmql__val_unref(I->globals);
    I->globals = NULL;
    lmql__val_unref(I->retval);
    I->retval = NULL;
    I->flow = FLOW_NORMAL;
    I->seq.n = 0;
    I->pending.len = 0;
    I->locals = NULL;
}

/* One run of the program for beam search: replays `trace` and either
** finishes (*frontier false, res filled) or stops at the next choice with
** the candidates in io. */
static int beam_replay(struct interp *I, struct lmql_val *args, struct lmql__beam_io *io, int slot,
                       struct lmql__seq_result *res, bool *frontier) {
    const struct lmql_ast_query *q = I->q;
    memset(res, 0, sizeof *res);
    res->vars = lmql__val_dict();
    reset_sequence(I);
    I->globals = lmql__val_dict();
    if (!res->vars || !I->globals) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    I->res = res;
    I->slot = slot;
    I->frontier = false;
    I->dist = q->distribution;
    I->dist_end = 0;
    I->gen.beam = io;
    io->pos = 0;
    io->n_cand = 0;
    int rc = bind_args(I, args) || lmql__exec_block(I, &q->prologue) || lmql__exec_block(I, &q->body) ? -1 : 0;
    I->gen.beam = NULL;
    *frontier = I->frontier;
    if (rc && I->frontier) {
        memset(I->err, 0, sizeof *I->err);   /* not an error: the place of the next choice */
        return 0;
    }
    if (rc == 0 && I->flow == FLOW_RETURN && I->retval) {
        res->ret = I->retval;
        I->retval = NULL;
    }
    return rc;
}

/* A copy of I's configuration with a sequence state of its own (threads). */
static void interp_fork(struct interp *T, const struct interp *I, struct lmql__rerr *err, struct lmql__model *model) {
    *T = *I;
    T->gc = lmql__gc_current();
    T->err = err;
    T->globals = NULL;
    T->locals = NULL;
    T->retval = NULL;
    memset(&T->seq, 0, sizeof T->seq);
    memset(&T->pending, 0, sizeof T->pending);
    T->model = model;
    T->gen.model = model;
    T->gen.rng = &T->rng;
    T->gen.mask = malloc((size_t)I->model->vocab.n_tokens);
    T->n_generated = 0;
}

static void interp_fork_free(struct interp *T) {
    reset_sequence(T);
    lmql__seq_free(&T->seq);
    lmql__buf_free(&T->pending);
    free(T->gen.mask);
}

struct par_replay {
    struct interp I;
    struct lmql__rerr err;
    struct lmql_val *args;
    struct lmql__model *batcher;
    struct lmql__beam_io *io;
    struct lmql__seq_result *res;
    bool *frontier;
    int slot, rc;
};

static int beam_replay(struct interp *I, struct lmql_val *args, struct lmql__beam_io *io, int slot,
                       struct lmql__seq_result *res, bool *frontier);

static void *replay_main(void *p) {
    struct par_replay *r = p;
    lmql__gc_enter(r->I.gc);   /* containers made here belong to the run */
    r->rc = r->I.gen.mask ? beam_replay(&r->I, r->args, r->io, r->slot, r->res, r->frontier)
                          : lmql__fail(&r->I, NULL, LMQL_ERR_NOMEM, "out of memory");
    lmql__batcher_leave(r->batcher);
    return NULL;
}

/* Replay n beams, each in its own thread, their frontier evaluations
** decoded together. -1 (nothing done) when the model cannot be batched. */
static int replay_parallel(struct interp *I, struct lmql_val *args, int n, struct lmql__beam_io *ios, const int *slots,
                           struct lmql__seq_result *ress, bool *fronts, int *rcs) {
    struct lmql__model *b = lmql__batcher_new(I->model, n, false);
    if (!b) return -1;
    struct par_replay *rp = calloc((size_t)n, sizeof *rp);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    bool *started = calloc((size_t)n, sizeof *started);
    if (!rp || !th || !started) {
        free(rp); free(th); free(started);
        lmql__batcher_free(b);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        interp_fork(&rp[i].I, I, &rp[i].err, b);
        rp[i].args = args;
        rp[i].batcher = b;
        rp[i].io = &ios[i];
        rp[i].res = &ress[i];
        rp[i].frontier = &fronts[i];
        rp[i].slot = slots[i];
        if (pthread_create(&th[i], NULL, replay_main, &rp[i])) {
            rp[i].rc = lmql__fail(&rp[i].I, NULL, LMQL_ERR_NOMEM, "cannot start a beam");
            lmql__batcher_leave(b);
        } else {
            started[i] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        rcs[i] = rp[i].rc;
        I->n_generated += rp[i].I.n_generated;
        if (rp[i].rc && !I->err->msg[0]) *I->err = rp[i].err;
        interp_fork_free(&rp[i].I);
    }
    free(rp);
    free(th);
    free(started);
    lmql__batcher_free(b);
    return 0;
}

/* The replays of one search step: which traces, in which slots, and what
** each returned (finished with a result, or its candidates). */
struct replays {
    int n;
    int *slots, *rcs;
    struct lmql__beam_io *ios;
    struct lmql__seq_result *ress;
    bool *fronts;
    struct lmql__cand *cands;     /* width per replay */
    int width;
};

static int replays_init(struct replays *r, int n, int width) {
    memset(r, 0, sizeof *r);
    r->width = width;
    r->slots = calloc((size_t)n + 1, sizeof *r->slots);
    r->rcs = calloc((size_t)n + 1, sizeof *r->rcs);
    r->ios = calloc((size_t)n + 1, sizeof *r->ios);
    r->ress = calloc((size_t)n + 1, sizeof *r->ress);
    r->fronts = calloc((size_t)n + 1, sizeof *r->fronts);
    r->cands = calloc(((size_t)n + 1) * (size_t)width, sizeof *r->cands);
    return r->slots && r->rcs && r->ios && r->ress && r->fronts && r->cands ? 0 : -1;
}

/* Add the replay of trace[0..n) in slot. */
static void replays_add(struct replays *r, const int32_t *trace, int32_t n, int slot) {
    int k = r->n++;
    r->slots[k] = slot;
    r->ios[k] = (struct lmql__beam_io){.trace = trace, .n_trace = n, .width = r->width,
                                       .cand = r->cands + (size_t)k * (size_t)r->width};
}

static void seq_result_free(struct lmql__seq_result *r);

static void replays_free(struct replays *r) {
    for (int k = 0; r->ress && k < r->n; k++) seq_result_free(&r->ress[k]);
    free(r->slots); free(r->rcs); free(r->ios); free(r->ress); free(r->fronts); free(r->cands);
}

/* Run them: together when the model batches, else one after another.
** Returns -1 when one failed (the error is on I). */
static int replays_run(struct interp *I, struct lmql_val *args, struct replays *r) {
    if (r->n < 2 || replay_parallel(I, args, r->n, r->ios, r->slots, r->ress, r->fronts, r->rcs) != 0)
        for (int k = 0; k < r->n; k++) r->rcs[k] = beam_replay(I, args, &r->ios[k], r->slots[k], &r->ress[k], &r->fronts[k]);
    for (int k = 0; k < r->n; k++) if (r->rcs[k]) return -1;
    return 0;
}

struct beam {
    int32_t *trace;
    int32_t n;
    double score;             /* sum of the chosen tokens' log-probabilities */
    bool done;
    struct lmql__seq_result res;
};

static void seq_result_free(struct lmql__seq_result *r) {
    lmql__buf_free(&r->prompt);
    lmql__val_unref(r->vars);
    lmql__val_unref(r->ret);
    lmql__val_unref(r->dist_values);
    memset(r, 0, sizeof *r);
}

static int cmp_beam(const void *a, const void *b) {
    double x = ((const struct beam *)a)->score, y = ((const struct beam *)b)->score;
    return x > y ? -1 : x < y;
}

/*
** Beam search over the whole program (LMQL's beam, beam_sample): each beam
** is the list of choices made so far. Every step replays each open beam to
** its next choice, extends it by its best `width` candidates (or `width`
** draws), and keeps the `width` best beams by total log-probability,
** finished ones included, until all kept beams are finished. Replays cost
** no model calls for earlier choices (their tokens are known and the KV
** cache holds the shared prefixes); each open beam costs one evaluation per
** step. The result is the finished beams, best first.
*/
static int run_beam(struct interp *I, const struct decoder_cfg *cfg, struct lmql_val *args, struct lmql__run_out *out) {
    int width = cfg->n, rc = 0;
    struct beam *cur = calloc(1, sizeof *cur), *next = NULL;
    int n_cur = 1, n_next = 0;
    if (!cur) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    for (int step = 0; rc == 0; step++) {
        bool open = false;
        for (int i = 0; i < n_cur; i++) open |= !cur[i].done;
        if (!open) break;
        if (step > cfg->max_len) { rc = lmql__fail(I, NULL, LMQL_ERR_RUNTIME, "beam search exceeded max_len steps"); break; }
        next = calloc((size_t)n_cur * (size_t)width + (size_t)n_cur, sizeof *next);
        n_next = 0;
        if (!next) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
        /* Replay the open beams to their next choice. */
        struct replays rp;
        if (replays_init(&rp, n_cur, width)) rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < n_cur; i++)
            if (!cur[i].done) replays_add(&rp, cur[i].trace, cur[i].n, i % I->model->n_slots);
        if (rc == 0) rc = replays_run(I, args, &rp);
        for (int i = 0, k = 0; rc == 0 && i < n_cur; i++) {
            struct beam *b = &cur[i];
            if (b->done) { next[n_next++] = *b; memset(b, 0, sizeof *b); continue; }
            struct lmql__beam_io *io = &rp.ios[k];
            struct lmql__seq_result *res = &rp.ress[k];
            bool at_frontier = rp.fronts[k++];
            if (!at_frontier) {
                b->done = true;
                b->res = *res;
                memset(res, 0, sizeof *res);
                next[n_next++] = *b;
                memset(b, 0, sizeof *b);
                continue;
            }
            for (int c = 0; c < io->n_cand; c++) {
                struct beam *nb = &next[n_next];
                nb->trace = malloc(((size_t)b->n + 1) * sizeof *nb->trace);
                if (!nb->trace) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
                if (b->n) memcpy(nb->trace, b->trace, (size_t)b->n * sizeof *nb->trace);
                nb->trace[b->n] = io->cand[c].tok;
                nb->n = b->n + 1;
                nb->score = b->score + io->cand[c].lp;
                n_next++;
            }
        }
        replays_free(&rp);
        /* Keep the best `width`. */
        qsort(next, (size_t)n_next, sizeof *next, cmp_beam);
        for (int i = width; i < n_next; i++) { free(next[i].trace); seq_result_free(&next[i].res); }
        if (n_next > width) n_next = width;
        for (int i = 0; i < n_cur; i++) { free(cur[i].trace); seq_result_free(&cur[i].res); }
        free(cur);
        cur = next;
        n_cur = n_next;
        next = NULL;
    }
    if (rc == 0) {
        free(out->seqs);
        out->seqs = calloc((size_t)(n_cur > 0 ? n_cur : 1), sizeof *out->seqs);
        if (!out->seqs) rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < n_cur; i++) {
            out->seqs[i] = cur[i].res;
            memset(&cur[i].res, 0, sizeof cur[i].res);
            if (out->seqs[i].ret) out->has_return = true;
            out->n_seqs = i + 1;
        }
    }
    for (int i = 0; i < n_cur; i++) { free(cur[i].trace); seq_result_free(&cur[i].res); }
    free(cur);
    return rc;
}

/* One sequence of a query: a fresh program state, run to the end, into res. */
static int run_sequence(struct interp *I, struct lmql_val *args, int s, int first_slot, struct lmql__seq_result *res,
                        bool *has_return) {
    const struct lmql_ast_query *q = I->q;
    res->vars = lmql__val_dict();
    if (!res->vars) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    reset_sequence(I);
    I->globals = lmql__val_dict();
    if (!I->globals) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    I->res = res;
    /* Sub-queries take slots from the top, so the caller's cache stays. */
    int n_slots = I->model->n_slots;
    I->slot = I->depth == 0 ? s % n_slots : (n_slots - 1 - (I->depth + s) % n_slots);
    /* Later sequences start as a fork of the first: the prompt they share
    ** is in the KV cache already and is not evaluated again. */
    if (s > 0 && I->slot != first_slot) I->model->ops->slot_copy(I->model, first_slot, I->slot);
    I->rng = I->host->params->seed * 0x9E3779B97F4A7C15ull + (uint64_t)s + (uint64_t)I->depth * 7919;
    I->dist = q->distribution;
    I->dist_end = 0;
    if (bind_args(I, args) || lmql__exec_block(I, &q->prologue) || lmql__exec_block(I, &q->body)) return -1;
    if (I->dist && !I->dist_end)
        return lmql__fail(I, I->dist, LMQL_ERR_QUERY, "the distribution variable %s is not a hole of the query",
                          I->dist->u.dist.var);
    if (I->dist_end && res->prompt.len != I->dist_end)
        return lmql__fail(I, I->dist, LMQL_ERR_QUERY, "distribution variable must be the last statement");
    if (I->flow == FLOW_RETURN && I->retval) {
        res->ret = I->retval;
        I->retval = NULL;
        *has_return = true;
    }
    return 0;
}

struct par_seq {
    struct interp I;
    struct lmql__rerr err;
    struct lmql_val *args;
    struct lmql__model *batcher;
    struct lmql__seq_result *res;
    int s, rc;
    bool ret;
};

static void *par_main(void *p) {
    struct par_seq *ps = p;
    lmql__gc_enter(ps->I.gc);   /* containers made here belong to the run */
    ps->rc = run_sequence(&ps->I, ps->args, ps->s, 0, ps->res, &ps->ret);
    lmql__batcher_leave(ps->batcher);
    return NULL;
}

/*
** The sequences of sample(n) / argmax(n), each in its own thread, their
** next-token requests decoded together in one batch per step (batch.c).
** Returns -1 (and changes nothing) when the model cannot be batched; the
** caller then runs the sequences one after another. Errors of a sequence
** are reported through I->err (the first failing sequence's).
*/
static int run_parallel(struct interp *I, struct lmql_val *args, int n, struct lmql__run_out *out) {
    struct lmql__model *b = lmql__batcher_new(I->model, n, true);
    if (!b) return -1;
    struct par_seq *ps = calloc((size_t)n, sizeof *ps);
    pthread_t *th = calloc((size_t)n, sizeof *th);
    bool *started = calloc((size_t)n, sizeof *started);
    if (!ps || !th || !started) {
        free(ps); free(th); free(started);
        lmql__batcher_free(b);
        return -1;
    }
    for (int s = 0; s < n; s++) {
        struct par_seq *p = &ps[s];
        interp_fork(&p->I, I, &p->err, b);
        p->args = args;
        p->batcher = b;
        p->res = &out->seqs[s];
        p->s = s;
    }
    out->n_seqs = n;
    for (int s = 0; s < n; s++) {
        if (!ps[s].I.gen.mask || pthread_create(&th[s], NULL, par_main, &ps[s])) {
            ps[s].rc = lmql__fail(&ps[s].I, NULL, LMQL_ERR_NOMEM, "cannot start a sequence");
            lmql__batcher_leave(b);
        } else {
            started[s] = true;
        }
    }
    for (int s = 0; s < n; s++) {
        if (started[s]) pthread_join(th[s], NULL);
        struct par_seq *p = &ps[s];
        I->n_generated += p->I.n_generated;
        out->has_return |= p->ret;
        if (p->rc && !I->err->msg[0]) *I->err = p->err;
        interp_fork_free(&p->I);
    }
    free(ps);
    free(th);
    free(started);
    lmql__batcher_free(b);
    return 0;
}

struct bk_beam {
    int32_t *trace;
    int32_t n;
    double score;             /* sum of log-probabilities */
    int time;                 /* the step it was made in */
    struct lmql__seq_result res;
};

/* LMQL's best_k ordering: length-normalized score, older entries decayed. */
static double bk_rank(const struct bk_beam *b, int t, const struct decoder_cfg *cfg) {
    double norm = b->score / pow(b->n > 1 ? (double)b->n : 1.0, 0.7);
    double age = (double)(t - b->time);
    return norm - cfg->kappa * pow(age > 0 ? age : 0, cfg->beta);
}

static int bk_pick_best(struct bk_beam *v, int n, int t, const struct decoder_cfg *cfg) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (bk_rank(&v[i], t, cfg) > bk_rank(&v[best], t, cfg)) best = i;
    return best;
}

static int cmp_bk(const void *a, const void *b) {
    const struct bk_beam *x = a, *y = b;
    double nx = x->score / pow(x->n > 1 ? x->n : 1, 0.7), ny = y->score / pow(y->n > 1 ? y->n : 1, 0.7);
    return nx > ny ? -1 : nx < ny;
}

/*
** best_k (LMQL's decoder of that name): a best-first search. Each step
** expands the k best open sequences (length-normalized log-probability,
** older ones decayed by kappa * age^beta) by their top continuations whose
** probability is at least gamma; finished sequences are collected. It runs
** until `budget` expansions were made (and at least one sequence finished),
** keeping at most max_heap_size open; the result is every finished
** sequence, best first. Expansions are replays, batched like beam steps.
*/
static int run_best_k(struct interp *I, const struct decoder_cfg *cfg, struct lmql_val *args, struct lmql__run_out *out) {
    int k = cfg->n, rc = 0, n_open = 1, cap_open = 16, n_done = 0, cap_done = 8, spent = 0;
    struct bk_beam *open = calloc((size_t)cap_open, sizeof *open), *done = calloc((size_t)cap_done, sizeof *done);
    if (!open || !done) { free(open); free(done); return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); }
    open[0].time = -1;
    for (int t = 0; rc == 0 && n_open > 0 && (spent < cfg->budget || n_done == 0); t++) {
        if (t > cfg->max_len) { rc = lmql__fail(I, NULL, LMQL_ERR_RUNTIME, "best_k exceeded max_len steps"); break; }
        int g = n_open < k ? n_open : k;
        struct bk_beam *sel = calloc((size_t)g, sizeof *sel);
        struct replays rp;
        if (replays_init(&rp, g, cfg->continuations) || !sel) rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < g; i++) {   /* take the g best out of the open set */
            int b = bk_pick_best(open, n_open, t, cfg);
            sel[i] = open[b];
            open[b] = open[--n_open];
            replays_add(&rp, sel[i].trace, sel[i].n, i % I->model->n_slots);
        }
        if (rc == 0) rc = replays_run(I, args, &rp);
        for (int i = 0; rc == 0 && i < g; i++) {
            if (!rp.fronts[i]) {   /* finished */
                if (n_done == cap_done) {
                    struct bk_beam *m = realloc(done, (size_t)(cap_done *= 2) * sizeof *m);
                    if (!m) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
                    done = m;
                }
                sel[i].res = rp.ress[i];
                memset(&rp.ress[i], 0, sizeof rp.ress[i]);
                done[n_done++] = sel[i];
                memset(&sel[i], 0, sizeof sel[i]);
                continue;
            }
            for (int c = 0; c < rp.ios[i].n_cand; c++) {
                /* Continuations below gamma are dropped, but a sequence keeps
                ** its best one (candidates come best first): with a flat
                ** distribution LMQL's loop would otherwise find nothing. */
                if (c > 0 && exp(rp.ios[i].cand[c].lp) < cfg->gamma) continue;
                if (n_open == cap_open) {
                    struct bk_beam *m = realloc(open, (size_t)(cap_open *= 2) * sizeof *m);
                    if (!m) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
                    open = m;
                }
                struct bk_beam *nb = &open[n_open];
                memset(nb, 0, sizeof *nb);
                nb->trace = malloc(((size_t)sel[i].n + 1) * sizeof *nb->trace);
                if (!nb->trace) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
                if (sel[i].n) memcpy(nb->trace, sel[i].trace, (size_t)sel[i].n * sizeof *nb->trace);
                nb->trace[sel[i].n] = rp.ios[i].cand[c].tok;
                nb->n = sel[i].n + 1;
                nb->score = sel[i].score + rp.ios[i].cand[c].lp;
                nb->time = t;
                n_open++;
            }
        }
        /* Keep the heap bounded: drop the lowest ranked. */
        while (rc == 0 && n_open > cfg->max_heap) {
            int worst = 0;
            for (int i = 1; i < n_open; i++)
                if (bk_rank(&open[i], t, cfg) < bk_rank(&open[worst], t, cfg)) worst = i;
            free(open[worst].trace);
            open[worst] = open[--n_open];
        }
        spent += g;
        for (int i = 0; sel && i < g; i++) { free(sel[i].trace); seq_result_free(&sel[i].res); }
        free(sel);
        replays_free(&rp);
    }
    if (rc == 0) {
        qsort(done, (size_t)n_done, sizeof *done, cmp_bk);
        free(out->seqs);
        out->seqs = calloc((size_t)(n_done > 0 ? n_done : 1), sizeof *out->seqs);
        if (!out->seqs) rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < n_done; i++) {
            out->seqs[i] = done[i].res;
            memset(&done[i].res, 0, sizeof done[i].res);
            if (out->seqs[i].ret) out->has_return = true;
            out->n_seqs = i + 1;
        }
    }
    for (int i = 0; i < n_open; i++) { free(open[i].trace); seq_result_free(&open[i].res); }
    for (int i = 0; i < n_done; i++) { free(done[i].trace); seq_result_free(&done[i].res); }
    free(open);
    free(done);
    return rc;
}

/* Run query q: the top-level query (inherited NULL) or a query function
** called from script code (inherited = the caller's model). */
static int run_query(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                     struct lmql__model *inherited, const char *decoder, int depth, struct lmql__run_out *out,
                     struct lmql__rerr *err) {
    struct interp I = {.host = host, .q = q, .err = err, .depth = depth, .decoder_override = decoder};
    struct decoder_cfg cfg;
    memset(out, 0, sizeof *out);
    int rc = -1;

    /* The prologue may define what `from` and the decoder arguments use. */
    I.globals = lmql__val_dict();
    if (!I.globals) return lmql__fail(&I, NULL, LMQL_ERR_NOMEM, "out of memory");
    if (bind_args(&I, args) || lmql__exec_block(&I, &q->prologue) || check_where(&I) || decoder_config(&I, &cfg) ||
        resolve_model(&I, inherited))
        goto done;
    I.gen.model = I.model;
    I.gen.decoder = cfg.kind;
    I.gen.temperature = cfg.temperature;
    I.gen.top_k = cfg.top_k;
    I.gen.top_p = cfg.top_p;
    I.gen.max_len = cfg.max_len;
    I.gen.rng = &I.rng;
    I.gen.mask = malloc((size_t)I.model->vocab.n_tokens);
    out->seqs = calloc((size_t)cfg.n, sizeof *out->seqs);
    if (!I.gen.mask || !out->seqs) { lmql__fail(&I, NULL, LMQL_ERR_NOMEM, "out of memory"); goto done; }
    out->many = cfg.n > 1;
    if (cfg.kind == LMQL_DEC_BEAM || cfg.kind == LMQL_DEC_BEAM_SAMPLE) {
        out->many = true;
        rc = run_beam(&I, &cfg, args, out);
        goto done;
    }
    if (cfg.kind == LMQL_DEC_BEST_K) {
        out->many = true;
        rc = run_best_k(&I, &cfg, args, out);
        goto done;
    }

    int first_slot = depth == 0 ? 0 : I.model->n_slots - 1 - depth % I.model->n_slots;
    if (depth == 0 && cfg.n > 1 && cfg.n <= I.model->n_slots && run_parallel(&I, args, cfg.n, out) == 0) {
        if (err->msg[0]) goto done;
        rc = 0;
        goto done;
    }
    for (int s = 0; s < cfg.n; s++) {
        out->n_seqs = s + 1;
        bool ret = false;
        if (run_sequence(&I, args, s, first_slot, &out->seqs[s], &ret)) goto done;
        out->has_return |= ret;
    }
    rc = 0;
done:
    out->n_generated = I.n_generated;
    reset_sequence(&I);
    lmql__seq_free(&I.seq);
    lmql__buf_free(&I.pending);
    free(I.gen.mask);
    if (rc && !err->msg[0]) lmql__fail(&I, NULL, LMQL_ERR_RUNTIME, "the query failed");
    return rc;
}

int lmql__interp_run(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                     struct lmql__run_out *out, struct lmql__rerr *err) {
    memset(err, 0, sizeof *err);
    /* The containers of this run join a registry that frees their cycles
    ** at the end (value.h); results leave it checked free of cycles. */
    struct lmql__gc *gc = lmql__gc_new();
    if (!gc) {
        memset(out, 0, sizeof *out);
        snprintf(err->msg, sizeof err->msg, "out of memory");
        err->status = LMQL_ERR_NOMEM;
        return -1;
    }
    struct lmql__gc *prev = lmql__gc_enter(gc);
    int rc = run_query(host, q, args, NULL, NULL, 0, out, err);
    if (rc == 0) rc = lmql__results_check(out, err);
    if (rc) lmql__run_out_free(out);
    lmql__gc_enter(prev);
    lmql__gc_finish(gc);
    return rc;
}

/* A copy of the caller's top-level names, so query functions see the
** helpers and values of the program that defines them, plus parameters. */
static struct lmql_val *query_scope(struct interp *I, const struct lmql_node *at, const struct lmql_node *def, int argc,
                                    struct lmql_val **argv, const char **names) {
    struct lmql_val *scope = lmql__val_dict();
    if (!scope) { lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); return NULL; }
    for (size_t i = 0; i < I->globals->u.dict.len; i++)
        lmql__dict_set(scope, lmql__val_ref(I->globals->u.dict.keys[i]), lmql__val_ref(I->globals->u.dict.vals[i]));
    if (lmql__bind_params(I, at, def, argc, argv, names, scope)) { lmql__val_unref(scope); return NULL; }
    return scope;
}

/* The value of a finished query without `return`: its prompt and
** variables, as LMQL's result object has them. */
static struct lmql_val *result_value(const struct lmql__seq_result *r) {
    struct lmql_val *d = lmql__val_dict();
    if (!d) return NULL;
    lmql__dict_set(d, lmql__val_cstr("prompt"), lmql__val_str(r->prompt.data ? r->prompt.data : "", r->prompt.len));
    lmql__dict_set(d, lmql__val_cstr("variables"), lmql__val_ref(r->vars));
    return d;
}

struct lmql_val *lmql__run_subquery(struct interp *I, const struct lmql_node *at, const struct lmql_node *def, int argc,
                                    struct lmql_val **argv, const char **names) {
    /* @lmql.query(model=..., decoder=...) chooses for the function. */
    struct lmql__model *model = I->model;
    const char *decoder = NULL;
    struct lmql_val *dec_val = NULL;
    for (int32_t d = 0; d < def->u.def.decorators.n; d++) {
        const struct lmql_node *c = def->u.def.decorators.items[d];
        if (c->kind != LMQL_NODE_CALL) continue;
        for (int32_t i = 0; i < c->u.call.args.n; i++) {
            const struct lmql_node *kw = c->u.call.args.items[i];
            if (kw->kind != LMQL_NODE_KEYWORD) continue;
            bool is_model = !strcmp(kw->u.kw.name, "model"), is_dec = !strcmp(kw->u.kw.name, "decoder");
            if (!is_model && !is_dec) continue;
            struct lmql_val *v = lmql__eval(I, kw->u.kw.value);
            if (!v) { lmql__val_unref(dec_val); return NULL; }
            if (is_dec) {
                if (v->kind != LMQL_V_STR) {
                    lmql__val_unref(v);
                    lmql__val_unref(dec_val);
                    lmql__fail(I, kw, LMQL_ERR_QUERY, "decoder= needs a decoder name");
                    return NULL;
                }
                lmql__val_unref(dec_val);
                dec_val = v;
                decoder = v->u.str.s;
                continue;
            }
            struct lmql__err e = {{0}};
            if (v->kind == LMQL_V_STR) model = I->host->get_model(I->host->ud, v->u.str.s, NULL, 0, &e);
            else if (v->kind == LMQL_V_OBJ && !strcmp(v->u.obj.type, "model")) {
                const struct lmql__model_spec *sp = v->u.obj.ptr;
                model = I->host->get_model(I->host->ud, sp->id, sp->kv, sp->n_kv, &e);
            } else {
                e.msg[0] = 0;
                model = NULL;
                snprintf(e.msg, sizeof e.msg, "model= needs a model name or lmql.model(...)");
            }
            lmql__val_unref(v);
            if (!model) {
                lmql__val_unref(dec_val);
                lmql__fail(I, kw, LMQL_ERR_MODEL, "%s", e.msg);
                return NULL;
            }
        }
    }
    struct lmql_val *scope = query_scope(I, at, def, argc, argv, names);
    if (!scope) { lmql__val_unref(dec_val); return NULL; }
    struct lmql__run_out o;
    int rc = run_query(I->host, def->u.def.query, scope, model, decoder, I->depth + 1, &o, I->err);
    lmql__val_unref(scope);
    lmql__val_unref(dec_val);
    I->n_generated += o.n_generated;
    struct lmql_val *v = NULL;
    if (rc == 0) {
        if (o.many) {
            v = lmql__val_list((size_t)o.n_seqs);
            for (int i = 0; v && i < o.n_seqs; i++)
                lmql__list_push(v, o.has_return ? lmql__val_ref(o.seqs[i].ret ? o.seqs[i].ret : &lmql__none)
                                                : result_value(&o.seqs[i]));
        } else if (o.n_seqs == 1 && !strcmp(def->u.def.name, "<lmql.F>")) {
            /* lmql.F: the single variable's value, or all of them. */
            struct lmql_val *vars = o.seqs[0].vars;
            v = vars->u.dict.len == 1 ? lmql__val_ref(vars->u.dict.vals[0]) : lmql__val_ref(vars);
        } else if (o.n_seqs == 1) {
            v = o.has_return ? lmql__val_ref(o.seqs[0].ret ? o.seqs[0].ret : &lmql__none) : result_value(&o.seqs[0]);
        }
        if (!v) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    } else if (I->err->pos.line == 0) {
        I->err->pos = at->pos;   /* a failure without a place is placed at the call */
    }
    lmql__run_out_free(&o);
    return v;
}

/* [X: q(args)]: the query function runs inside this sequence. Its prompt
** text is part of ours and its holes follow its own constraints. When it
** returns a value, X is that value and its part of the prompt becomes
** str(value); otherwise X is the text it added. */
static int run_nested(struct interp *I, const struct lmql_node *seg, const struct lmql_node *def) {
    const struct lmql_node *call = seg->u.hole.type;   /* q(args), or a bare name q */
    const struct lmql_ast_query *nq = def->u.def.query;
    int32_t argc = call->kind == LMQL_NODE_CALL ? call->u.call.args.n : 0;
    struct lmql_val **argv = calloc((size_t)argc + 1, sizeof *argv);
    const char **names = calloc((size_t)argc + 1, sizeof *names);
    int rc = argv && names ? 0 : lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    for (int32_t i = 0; rc == 0 && i < argc; i++) {
        const struct lmql_node *a = call->u.call.args.items[i];
        names[i] = a->kind == LMQL_NODE_KEYWORD ? a->u.kw.name : NULL;
        argv[i] = lmql__eval(I, a->kind == LMQL_NODE_KEYWORD ? a->u.kw.value : a);
        if (!argv[i]) rc = -1;
    }
    struct lmql_val *scope = rc == 0 ? query_scope(I, seg, def, argc, argv, names) : NULL;
    for (int32_t i = 0; argv && i < argc; i++) lmql__val_unref(argv[i]);
    free(argv);
    free(names);
    if (!scope) return -1;
    if (I->depth >= I->host->params->max_depth) {
        lmql__val_unref(scope);
        return lmql__fail(I, seg, LMQL_ERR_RUNTIME, "maximum call depth (%d) exceeded", I->host->params->max_depth);
    }

    /* What the sequence was before, to put str(value) in the nested part. */
    size_t prompt0 = I->res->prompt.len;
    int32_t seq0 = I->seq.n;
    struct lmql__buf pending0 = {0};
    if (lmql__buf_add(&pending0, I->pending.data ? I->pending.data : "", I->pending.len)) {
        lmql__val_unref(scope);
        return lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    }
    const struct lmql_ast_query *q0 = I->q;
    struct lmql_val *globals0 = I->globals, *locals0 = I->locals, *vars0 = I->res->vars;
    const struct lmql_node *where0 = I->inline_where;
    struct lmql__cerr ce = {.status = 0};
    struct lmql_val *nested_vars = lmql__val_dict();
    I->q = nq;
    I->globals = scope;
    I->locals = NULL;
    I->res->vars = nested_vars;
    I->depth++;
    if (!nested_vars) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    else if (nq->where && lmql__where_check(nq->where, &ce)) {
        I->err->pos = ce.pos;
        rc = lmql__fail(I, NULL, ce.status ? ce.status : LMQL_ERR_QUERY, "%s", ce.msg);
    }
    if (rc == 0) rc = lmql__exec_block(I, &nq->prologue);
    if (rc == 0 && I->flow == FLOW_NORMAL) rc = lmql__exec_block(I, &nq->body);
    struct lmql_val *ret = I->flow == FLOW_RETURN ? I->retval : NULL;
    I->retval = NULL;
    I->flow = FLOW_NORMAL;
    I->depth--;
    I->q = q0;
    I->globals = globals0;
    I->locals = locals0;
    I->res->vars = vars0;
    I->inline_where = where0;
    lmql__val_unref(scope);
    lmql__val_unref(nested_vars);

    struct lmql_val *x = NULL;
    if (rc == 0 && ret) {
        struct lmql__buf text = {0};
        lmql__val_str_into(&text, ret);
        I->res->prompt.len = prompt0;
        I->seq.n = seq0;
        I->pending.len = 0;
        if (lmql__buf_add(&I->pending, pending0.data, pending0.len) ||
            lmql__buf_add(&I->pending, text.data ? text.data : "", text.len) ||
            lmql__buf_add(&I->res->prompt, text.data ? text.data : "", text.len))
            rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        lmql__buf_free(&text);
        x = lmql__val_ref(ret);
    } else if (rc == 0) {
        x = lmql__val_str(I->res->prompt.data + prompt0, I->res->prompt.len - prompt0);
        if (!x) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    }
    lmql__val_unref(ret);
    lmql__buf_free(&pending0);
    if (rc == 0) rc = set_variable(I, seg->u.hole.name, x);
    lmql__val_unref(x);
    return rc;
}

void lmql__run_out_free(struct lmql__run_out *out) {
    for (int i = 0; out->seqs && i < out->n_seqs; i++) {
        lmql__buf_free(&out->seqs[i].prompt);
        lmql__val_unref(out->seqs[i].vars);
        lmql__val_unref(out->seqs[i].ret);
        lmql__val_unref(out->seqs[i].dist_values);
    }
    free(out->seqs);
    memset(out, 0, sizeof *out);
}
