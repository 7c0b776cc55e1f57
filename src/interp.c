/*
** Running the program of a query: statements, prompt strings and their
** holes (distribution variables included), and query functions called as
** sub-queries. How a query becomes sequences, and the decoders that search
** over them, are in seqs.c and search.c.
*/
#include "interp_int.h"
#include "dataclass.h"
#include "decorators.h"
#include "json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int lmql__fail(struct interp *I, const struct lmql_node *n, lmql_status st, const char *fmt, ...) {
    /* Keep the first, innermost cause; a run stopped at its frontier has none. */
    if (!I || I->err->msg[0] || I->frontier) return -1;
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

static int emit_raw(struct interp *I, const char *s, size_t n) {
    if (lmql__buf_add(&I->res->prompt, s, n) || lmql__buf_add(&I->pending, s, n))
        return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    const struct lmql_params *p = I->host->params;
    if (p->on_text && I->slot == 0 && n) p->on_text(p->user_data, s, n, LMQL_TEXT_PROMPT);
    return 0;
}

static bool chat_on(const struct interp *I) {
    return I->model && I->model->chat_template && I->model->ops->tokenize_special;
}
static bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

int lmql__chat_flush(struct interp *I) {
    size_t n = I->chat_ws.len;
    I->chat_ws.len = 0;   /* emit_raw does not touch it */
    return n ? emit_raw(I, I->chat_ws.data, n) : 0;
}

/* Prompt text. Under a chat template, the whitespace around a message's
** text is the template's business (templates trim contents): whitespace
** after a role tag is dropped, and whitespace at the end of a text is held
** back (chat_ws) until more text, a hole or the end of the prompt shows it
** is inside the message; a role tag drops it. So LMQL's multi-line form,
** a role tag per line, renders as the template does. */
static int emit_text(struct interp *I, const char *s, size_t n) {
    if (!chat_on(I)) return emit_raw(I, s, n);
    if (I->chat_trim) {
        while (n && is_ws(*s)) s++, n--;
        if (!n) return 0;
        I->chat_trim = false;
    }
    size_t body = n;
    while (body && is_ws(s[body - 1])) body--;
    if (body && (lmql__chat_flush(I) || emit_raw(I, s, body))) return -1;
    if (lmql__buf_add(&I->chat_ws, s + body, n - body)) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return 0;
}

static void stream_token(void *ud, const char *bytes, size_t len) {
    struct interp *I = ud;
    const struct lmql_params *p = I->host->params;
    if (p->on_text && len) p->on_text(p->user_data, bytes, len, LMQL_TEXT_GENERATED);
}

/* Tokenize text and append it to the sequence: BOS when it starts the
** sequence, and as a continuation otherwise (no invented SPM space).
** `special`: chat template text, whose special tokens are parsed. */
static int push_text_as(struct interp *I, const struct lmql_node *at, const char *s, size_t n, bool special) {
    struct lmql__model *m = I->model;
    int32_t (*tokenize)(struct lmql__model *, const char *, size_t, bool, bool, int32_t *, int32_t, struct lmql__err *) =
        special ? m->ops->tokenize_special : m->ops->tokenize;
    bool first = I->seq.n == 0;
    if (n == 0 && !first) return 0;
    struct lmql__err e = {0};
    int32_t cap = (int32_t)(n + 8 > 64 ? n + 8 : 64);
    int32_t *t = lmql__malloc((size_t)cap * sizeof *t);
    if (!t) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    int32_t k = tokenize(m, s, n, first, !first, t, cap, &e);
    if (k < 0 && k != INT32_MIN) {
        int32_t *bigger = lmql__realloc(t, (size_t)(-k) * sizeof *t);
        if (!bigger) { free(t); return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"); }
        t = bigger;
        k = tokenize(m, s, n, first, !first, t, -k, &e);
    }
    if (k < 0) { free(t); return lmql__fail(I, at, LMQL_ERR_RUNTIME, "tokenizing failed: %s", e.msg); }
    /* A template that writes BOS itself (Llama 2's "<s>") gets no second one. */
    int32_t skip = special && first && k >= 2 && t[0] == m->vocab->bos && t[1] == t[0];
    int rc = lmql__seq_push(&I->seq, t + skip, k - skip);
    free(t);
    if (rc) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    if (I->seq.n == 0) {
        /* Nothing to condition on: start from BOS, or EOS as GPT-2 does. */
        int32_t start = m->vocab->bos >= 0 ? m->vocab->bos : m->vocab->eos;
        if (start < 0) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "the prompt is empty and the model has no BOS token");
        if (lmql__seq_push(&I->seq, &start, 1)) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    }
    return 0;
}

static int push_text(struct interp *I, const struct lmql_node *at, const char *s, size_t n) {
    return push_text_as(I, at, s, n, false);
}

static int set_variable(struct interp *I, const char *name, struct lmql_val *v) {
    if (lmql__set_name(I, name, v)) return -1;
    if (lmql__dict_set(I->res->vars, lmql__val_cstr(name), lmql__val_ref(v)))
        return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    return 0;
}

/* The function a hole type like `q(args)`, `q` or `obj.method` calls, if it
** is a query function (a method of an instance comes bound to it); NULL
** (and no error) when it is something else. */
static struct lmql_val *query_fn_of(struct interp *I, const struct lmql_node *type) {
    if (type->kind != LMQL_NODE_CALL && type->kind != LMQL_NODE_NAME && type->kind != LMQL_NODE_ATTR) return NULL;
    if (type->kind == LMQL_NODE_NAME && !lmql__lookup(I, type->u.name)) return NULL;
    struct lmql_val *f = lmql__eval(I, type->kind == LMQL_NODE_CALL ? type->u.call.func : type);
    if (f && f->kind == LMQL_V_FUNC && (!f->u.func.fn || (f->u.func.flags & LMQL_FUNC_BOUND)) &&
        ((const struct lmql_node *)f->u.func.ud)->u.def.query)
        return f;
    lmql__val_unref(f);
    return NULL;
}

static int run_nested(struct interp *I, const struct lmql_node *seg, const struct lmql_val *fn);

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
        case LMQL_NODE_TRY:
            if (is_hole(&s->u.try_.body, name) || is_hole(&s->u.try_.handlers, name) ||
                is_hole(&s->u.try_.orelse, name) || is_hole(&s->u.try_.finalbody, name))
                return true;
            break;
        case LMQL_NODE_EXCEPT:
            if (is_hole(&s->u.except_.body, name)) return true;
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
    LMQL_ASSERT(seg->u.hole.where != NULL);
    if (seg->u.hole.where->mentioned)
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
    double *score = lmql__calloc(n ? n : 1, sizeof *score);
    if (!score && rc == 0) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");

    struct lmql__model *m = I->model;
    struct lmql__err e = {0};
    /* The prompt is evaluated once in our slot; value slots start as forks. */
    if (rc == 0) {
        struct lmql__eval_req base = {I->slot, I->seq.toks, I->seq.n, NULL, NULL};
        const float *lp;
        if (m->ops->next_logprobs(m, 1, &base, &lp, &e)) rc = lmql__fail(I, seg, LMQL_ERR_RUNTIME, "%s", e.msg);
    }
    int per = m->n_slots > 1 ? m->n_slots - 1 : 1;
    for (size_t k0 = 0; rc == 0 && k0 < n; k0 += (size_t)per) {
        size_t cnt = n - k0 < (size_t)per ? n - k0 : (size_t)per;
        struct lmql__eval_req *reqs = lmql__calloc(cnt, sizeof *reqs);
        int32_t *from = lmql__calloc(cnt, sizeof *from);
        float **sc = lmql__calloc(cnt, sizeof *sc);
        struct lmql__seq *seqs = lmql__calloc(cnt, sizeof *seqs);
        if (!reqs || !from || !sc || !seqs) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        for (size_t j = 0; rc == 0 && j < cnt; j++) {
            const struct lmql_val *v = items->u.list.items[k0 + j];
            int slot = m->n_slots > 1 ? (I->slot + 1 + (int)j) % m->n_slots : I->slot;
            int32_t t[512];
            int32_t nt = m->ops->tokenize(m, v->u.str.s, v->u.str.len, false, true, t, 512, &e);
            if (nt <= 0) { rc = lmql__fail(I, d, LMQL_ERR_RUNTIME, "cannot tokenize distribution value (too long?)"); break; }
            if (lmql__seq_push(&seqs[j], I->seq.toks, I->seq.n) || lmql__seq_push(&seqs[j], t, nt) ||
                !(sc[j] = lmql__calloc((size_t)nt, sizeof **sc))) { rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory"); break; }
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
        if (rc == 0) rc = emit_raw(I, bv->u.str.s, bv->u.str.len);   /* the value, whitespace and all */
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

static int finish_hole(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, struct lmql_val *v,
                       struct lmql__buf *shown);
static void stream_decorated(void *ud, const char *bytes, size_t len);

/* Generate the hole's value (d: its decorators, or NULL). */
static int generate_hole(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d) {
    const char *name = seg->u.hole.name;
    if (I->dist && !strcmp(I->dist->u.dist.var, name)) return run_distribution(I, seg);
    /* Its plan was compiled with the program (where.h). */
    LMQL_ASSERT(seg->u.hole.where != NULL);
    const struct lmql_node *type = seg->u.hole.type;
    if (seg->u.hole.where->type == LMQL_HT_OTHER) {
        struct lmql_val *fn = query_fn_of(I, type);
        if (fn) {
            int rc = run_nested(I, seg, fn);
            lmql__val_unref(fn);
            return rc;
        }
        if (I->err->msg[0]) return -1;
        return lmql__fail(I, type, LMQL_ERR_QUERY,
                          "Not a valid type expression for [%s: ...]: use int, float, bool, str, a regex string or a "
                          "query function",
                          name);
    }
    /* A dataclass hole writes LMQL's "(continue in JSON) " before the
    ** object, as LMQL's is_type does (docs/DECISIONS.md). */
    static const char json_cue[] = "(continue in JSON) ";
    if (seg->u.hole.where->type == LMQL_HT_CLASS) {
        /* The grammar was made from the class statement the name meant when
        ** the program was compiled; the value is made by what it means now. */
        const struct lmql__where *w = seg->u.hole.where;
        struct lmql_val *cls = lmql__eval(I, w->cls);
        if (!cls) return -1;
        bool same = cls->kind == LMQL_V_CLASS && lmql__class_node(cls) == w->cls_def;
        lmql__val_unref(cls);
        if (!same)
            return lmql__fail(I, w->cls, LMQL_ERR_RUNTIME,
                              "%s is no longer the dataclass of line %d that is the type of %s (it was assigned since)",
                              w->cls->u.name, (int)w->cls_def->pos.line, name);
        if (emit_text(I, json_cue, sizeof json_cue - 1)) return -1;
    }
    struct lmql__cons_env env = {.model = I->model, .eval = env_eval, .ctx = I};
    struct lmql__cons *cons = NULL;
    struct lmql__err ce;
    if (lmql__cons_new(seg->u.hole.where, name, &env, &cons, &ce)) {
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
    struct lmql__err e = {0};
    int32_t before = I->seq.n;
    I->gen.slot = I->slot;
    I->gen.on_token = I->slot == 0 && I->depth == 0 ? stream_token : NULL;
    I->gen.ud = I;
    bool streams = d && d->n_stream;
    if (streams) {
        /* LMQL calls a streaming decorator twice with "" before the first token */
        I->decos = d;
        I->deco_seg = seg;
        I->deco_value.len = 0;
        lmql__decos_stream(I, seg, d, "", 0);
        lmql__decos_stream(I, seg, d, "", 0);
        I->gen.on_token = stream_decorated;
    }
    int32_t n = I->err->msg[0] ? -3 : lmql__generate(&I->gen, &rules, &I->seq, &value, &e);
    if (streams) {
        I->decos = NULL;
        if (n >= 0) lmql__decos_stream(I, seg, d, value.data ? value.data : "", value.len);
        if (I->err->msg[0] && n >= 0) n = -3;   /* a streaming decorator failed */
    }
    lmql__cons_free(cons);
    if (n == -3) {
        lmql__buf_free(&value);
        return -1;
    }
    if (n == -2) {   /* a beam replay reached its next choice: stop the run here */
        lmql__buf_free(&value);
        I->frontier = true;   /* no error: -1 unwinds the run to lmql__replay */
        return -1;
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
    int rc = 0;
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
    } else if (post & LMQL_POST_FLOAT) {
        /* The regex of [X: float] admits only what strtod reads whole. */
        v = value.len ? lmql__val_float(strtod(text, NULL)) : &lmql__none;
    } else if (post & LMQL_POST_JSON) {
        /* The grammar admits only whole JSON texts; one cut short (by a
        ** length bound, say) is an error, never a different value. Numbers
        ** no int64 or double holds keep their text (json.h). */
        struct lmql__err je = {0};
        if (!(v = lmql__json_parse(text, value.len, &je)))
            rc = lmql__fail(I, seg, je.status == LMQL_ERR_NOMEM ? LMQL_ERR_NOMEM : LMQL_ERR_RUNTIME,
                            "the value of %s is not a whole JSON value (%s): %.*s", name, je.msg,
                            (int)(value.len < 80 ? value.len : 80), text);   /* value is not NUL-terminated */
    } else if (post & LMQL_POST_BOOL) {
        v = value.len ? (value.len == 4 && !memcmp(text, "True", 4) ? &lmql__true : &lmql__false) : &lmql__none;
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
        /* LMQL's EscapedOp rewrites the value too, not only the prompt */
        if (rc == 0 && v && v->kind == LMQL_V_STR) {
            lmql__val_unref(v);
            v = lmql__val_str(shown.data ? shown.data : "", shown.len);
        }
    } else if (!(post & LMQL_POST_ERASE)) {
        lmql__buf_add(&shown, text, value.len);
    }
    lmql__buf_free(&value);
    if (rc == 0 && !v) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    if (rc) {
        lmql__val_unref(v);
        lmql__buf_free(&shown);
        return -1;
    }
    return finish_hole(I, seg, d, v, &shown);
}

/* The hole's value v (owned) and prompt text: a dataclass hole's object
** becomes an instance, post decorators run, the text joins the prompt and
** the value the variables. Frees shown. */
static int finish_hole(struct interp *I, const struct lmql_node *seg, const struct lmql__decos *d, struct lmql_val *v,
                       struct lmql__buf *shown) {
    int rc = 0;
    if (seg->u.hole.where->type == LMQL_HT_CLASS) {
        /* The object becomes an instance of the class the name means here. */
        struct lmql_val *cls = lmql__eval(I, seg->u.hole.where->cls);
        struct lmql_val *obj = cls ? lmql__class_instance(I, seg->u.hole.where->cls, cls, v) : NULL;
        lmql__val_unref(cls);
        lmql__val_unref(v);
        v = obj;
        if (!v) rc = -1;
    }
    if (rc == 0 && d) rc = lmql__decos_post(I, seg, d, &v, shown);
    if (rc == 0) rc = push_text(I, seg, shown->data ? shown->data : "", shown->len);
    if (rc == 0 && lmql__buf_add(&I->res->prompt, shown->data ? shown->data : "", shown->len))
        rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    lmql__buf_free(shown);
    if (rc == 0) rc = set_variable(I, seg->u.hole.name, v);
    lmql__val_unref(v);
    return rc;
}

/* Streaming decorators see the value as it grows (decorators.c). */
static void stream_decorated(void *ud, const char *bytes, size_t len) {
    struct interp *I = ud;
    if (I->slot == 0 && I->depth == 0) stream_token(I, bytes, len);
    if (lmql__buf_add(&I->deco_value, bytes, len)) {
        lmql__fail(I, I->deco_seg, LMQL_ERR_NOMEM, "out of memory");
        return;
    }
    lmql__decos_stream(I, I->deco_seg, I->decos, I->deco_value.data, I->deco_value.len);
}

static int run_hole(struct interp *I, const struct lmql_node *seg) {
    const char *name = seg->u.hole.name;
    I->chat_trim = false;   /* the value is the message's text, as generated */
    if (seg->u.hole.decoder)
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "variable-decoder declarations are not supported yet ([%s %s])",
                          seg->u.hole.decoder, name);
    if (seg->u.hole.call)
        return lmql__fail(I, seg, LMQL_ERR_QUERY, "holes with a function call are not supported yet");
    I->res->n_holes++;
    if (lmql__chat_flush(I)) return -1;   /* the whitespace before a hole is the message's */
    if (!seg->u.hole.decorators.n) return generate_hole(I, seg, NULL);
    struct lmql__decos d;
    struct lmql_val *fixed = NULL;
    int rc = lmql__decos_eval(I, seg, &d);
    if (rc == 0) rc = lmql__decos_pre(I, seg, &d, &fixed);
    if (rc == 0 && fixed) {
        /* a pre decorator gave the value: nothing is generated */
        struct lmql__buf shown = {0};
        rc = push_text(I, seg, I->pending.data ? I->pending.data : "", I->pending.len);
        I->pending.len = 0;
        if (rc == 0 && lmql__buf_add(&shown, fixed->u.str.s, fixed->u.str.len))
            rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        if (rc == 0) rc = finish_hole(I, seg, &d, lmql__val_ref(fixed), &shown);
        lmql__buf_free(&shown);
    } else if (rc == 0) {
        rc = generate_hole(I, seg, &d);
    }
    lmql__val_unref(fixed);
    lmql__decos_free(&d);
    return rc;
}

/* A role tag: the text the model's chat template puts there (chat.c), its
** special tokens parsed; without a template LMQL's "\n((role)):", without
** the newline at the start of the prompt. */
static int run_role(struct interp *I, const struct lmql_node *s) {
    struct lmql__model *m = I->model;
    struct lmql__buf b = {0};
    int rc = 0;
    if (!m->chat_template || !m->ops->tokenize_special) {
        lmql__buf_addf(&b, "%s((%.*s)):", I->res->prompt.len ? "\n" : "", (int)s->u.text.len, s->u.text.text);
        rc = b.data ? emit_text(I, b.data, b.len) : lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
        lmql__buf_free(&b);
        return rc;
    }
    struct lmql__err e = {0};
    if (lmql__chat_turn(m->chat_template, &I->chat_roles, I->chat_n, s->u.text.text, s->u.text.len, &b, &e)) {
        lmql__buf_free(&b);
        return lmql__fail(I, s, LMQL_ERR_RUNTIME, "%s: %s", m->id, e.msg);
    }
    if (lmql__buf_add(&I->chat_roles, s->u.text.text, s->u.text.len) || lmql__buf_add(&I->chat_roles, "", 1))
        rc = lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
    I->chat_n++;
    /* The text before it keeps its own tokenization; the template's is
    ** tokenized apart, with its special tokens. */
    I->chat_ws.len = 0;   /* the whitespace that ended the previous message: the template has its own */
    if (rc == 0 && I->pending.len) rc = push_text(I, s, I->pending.data, I->pending.len);
    I->pending.len = 0;
    if (rc == 0 && b.len) rc = push_text_as(I, s, b.data, b.len, true);
    if (rc == 0 && lmql__buf_add(&I->res->prompt, b.data ? b.data : "", b.len))
        rc = lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
    const struct lmql_params *p = I->host->params;
    if (rc == 0 && p->on_text && I->slot == 0 && b.len) p->on_text(p->user_data, b.data, b.len, LMQL_TEXT_PROMPT);
    I->chat_trim = true;   /* the message's text starts after its header */
    lmql__buf_free(&b);
    return rc;
}

static int run_prompt(struct interp *I, const struct lmql_node *p) {
    if (p->u.prompt.dist) {
        if (I->dist && I->dist != p->u.prompt.dist)
            return lmql__fail(I, p->u.prompt.dist, LMQL_ERR_QUERY, "a query can have only one distribution clause");
        I->dist = p->u.prompt.dist;
    }
    int rc = 0;
    for (int32_t i = 0; i < p->u.prompt.segs.n && rc == 0; i++) {
        const struct lmql_node *s = p->u.prompt.segs.items[i];
        switch (s->kind) {
        case LMQL_NODE_SEG_TEXT: rc = emit_text(I, s->u.text.text, s->u.text.len); break;
        case LMQL_NODE_SEG_ROLE: rc = run_role(I, s); break;
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
        /* `...` as a statement is a placeholder body (`def f(): ...`): it does nothing, as
        ** in Python; Ellipsis as a value is not supported. */
        if (s->u.expr->kind == LMQL_NODE_ELLIPSIS) return 0;
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
        v = lmql__def_value(I, s);
        if (!v) return lmql__fail(I, s, LMQL_ERR_NOMEM, "out of memory");
        /* Decorators as Python applies them, innermost first (a query
        ** function's @lmql.query(...) is its own: read when it is called). */
        for (int32_t i = s->u.def.decorators.n - 1; !s->u.def.query && i >= 0; i--) {
            const struct lmql_node *dn = s->u.def.decorators.items[i];
            struct lmql_val *d = lmql__eval(I, dn), *nv = NULL;
            if (d) {
                const char *names[1] = {NULL};
                nv = lmql__call(I, dn, d, 1, &v, names);
                lmql__val_unref(d);
            }
            lmql__val_unref(v);
            if (!(v = nv)) return -1;
        }
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
    case LMQL_NODE_IMPORT_FROM: return lmql__exec_import(I, s);
    case LMQL_NODE_GLOBAL:
    case LMQL_NODE_NONLOCAL: return lmql__declare(I, s);
    case LMQL_NODE_CLASS: return lmql__exec_class(I, s);
    case LMQL_NODE_TRY: return lmql__exec_try(I, s);
    case LMQL_NODE_RAISE: return lmql__exec_raise(I, s);
    case LMQL_NODE_DEL: return lmql__exec_del(I, s);
    case LMQL_NODE_ANNASSIGN:
        /* x: T = v assigns; x: T alone declares nothing at run time (annotations are not evaluated) */
        if (!s->u.ann.value) return 0;
        v = lmql__eval(I, s->u.ann.value);
        if (!v) return -1;
        rc = lmql__assign(I, s->u.ann.target, v);
        lmql__val_unref(v);
        return rc;
    default:
        return lmql__fail(I, s, LMQL_ERR_QUERY, "'%s' statements are not supported", lmql__node_kind_name(s->kind));
    }
}

/* -------------------------------------------------------- sub-queries -- */

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

struct lmql__model *lmql__model_of(struct interp *I, const struct lmql_val *v, struct lmql__err *e) {
    if (v->kind == LMQL_V_STR) return I->host->get_model(I->host->ud, v->u.str.s, NULL, 0, e);
    if (v->kind == LMQL_V_OBJ && !strcmp(v->u.obj.type, "model")) {
        const struct lmql__model_spec *sp = v->u.obj.ptr;
        return I->host->get_model(I->host->ud, sp->id, sp->kv, sp->n_kv, e);
    }
    snprintf(e->msg, sizeof e->msg, "model= needs a model name or lmql.model(...)");
    return NULL;
}

static bool is_param(const struct lmql_node *def, const char *name) {
    for (int32_t i = 0; i < def->u.def.params.n; i++)
        if (!strcmp(def->u.def.params.items[i]->u.param.name, name)) return true;
    return false;
}

/* Keywords a call of a query function takes besides its parameters. */
static bool is_call_option(const char *name) {
    static const char *const opts[] = {"decoder", "model", "n", "num_beams", "max_len", "max_length", "temperature",
                                       "top_k", "top_p", "chunksize", "step_budget", "k", "budget", NULL};
    for (int i = 0; opts[i]; i++)
        if (!strcmp(opts[i], name)) return true;
    return false;
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
            struct lmql__err e = {0};
            model = lmql__model_of(I, v, &e);
            lmql__val_unref(v);
            if (!model) {
                lmql__val_unref(dec_val);
                lmql__fail(I, kw, LMQL_ERR_MODEL, "%s", e.msg);
                return NULL;
            }
        }
    }
    /* Keywords of the call that are no parameter of the function choose how
    ** it runs, as in LMQL: q(x, decoder="sample", n=2, max_len=64, model=...). */
    struct lmql_val **pv = lmql__malloc(((size_t)argc + 1) * sizeof *pv), *opts = lmql__val_dict();
    const char **pn = lmql__malloc(((size_t)argc + 1) * sizeof *pn);
    int np = 0, rc = 0;
    if (!pv || !pn || !opts) rc = lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    for (int i = 0; rc == 0 && i < argc; i++) {
        if (!names[i] || is_param(def, names[i]) || !is_call_option(names[i])) {
            pv[np] = argv[i];
            pn[np++] = names[i];
        } else if (!strcmp(names[i], "decoder")) {
            if (argv[i]->kind != LMQL_V_STR) rc = lmql__fail(I, at, LMQL_ERR_QUERY, "decoder= needs a decoder name");
            else decoder = argv[i]->u.str.s;
        } else if (!strcmp(names[i], "model")) {
            struct lmql__err e = {0};
            model = lmql__model_of(I, argv[i], &e);
            if (!model) rc = lmql__fail(I, at, LMQL_ERR_MODEL, "%s", e.msg);
        } else if (lmql__dict_set(opts, lmql__val_cstr(names[i]), lmql__val_ref(argv[i]))) {
            rc = lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        }
    }
    struct lmql_val *scope = rc == 0 ? query_scope(I, at, def, np, pv, pn) : NULL;
    free(pv);
    free(pn);
    if (!scope) {
        lmql__val_unref(opts);
        lmql__val_unref(dec_val);
        return NULL;
    }
    struct lmql__run_out o;
    struct lmql__call_opts co = {decoder, opts->u.dict.len ? opts : NULL, at, I->module_names};
    rc = lmql__run_query(I->host, def->u.def.query, scope, model, &co, I->depth + 1, &o, I->err);
    lmql__val_unref(opts);
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
static int run_nested(struct interp *I, const struct lmql_node *seg, const struct lmql_val *fn) {
    const struct lmql_node *def = fn->u.func.ud;
    const struct lmql_node *call = seg->u.hole.type;   /* q(args), or a bare q or obj.q */
    const struct lmql_ast_query *nq = def->u.def.query;
    /* A method's instance is its first argument. */
    int32_t self = (fn->u.func.flags & LMQL_FUNC_BOUND) ? 1 : 0;
    int32_t argc = self + (call->kind == LMQL_NODE_CALL ? call->u.call.args.n : 0);
    struct lmql_val **argv = lmql__calloc((size_t)argc + 1, sizeof *argv);
    const char **names = lmql__calloc((size_t)argc + 1, sizeof *names);
    int rc = argv && names ? 0 : lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    if (rc == 0 && self) argv[0] = lmql__val_ref(fn->u.func.self);
    for (int32_t i = self; rc == 0 && i < argc; i++) {
        const struct lmql_node *a = call->u.call.args.items[i - self];
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

    /* The text before the call is tokenized apart from the nested query's
    ** prompt: LMQL tokenizes the calling prompt, then forces the tokens of
    ** the nested prompt (tokenized alone) after it, and seeded models
    ** (random) draw from the token ids, so the split shows in their text. */
    if (I->pending.len) {
        if (push_text(I, seg, I->pending.data, I->pending.len)) { lmql__val_unref(scope); return -1; }
        I->pending.len = 0;
    }
    /* What the sequence was before, to put str(value) in the nested part. */
    size_t prompt0 = I->res->prompt.len, roles0 = I->chat_roles.len;
    int32_t seq0 = I->seq.n;
    int chat_n0 = I->chat_n;
    struct lmql__buf pending0 = {0};
    if (lmql__buf_add(&pending0, I->pending.data ? I->pending.data : "", I->pending.len)) {
        lmql__val_unref(scope);
        return lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    }
    const struct lmql_ast_query *q0 = I->q;
    struct lmql_val *globals0 = I->globals, *locals0 = I->locals, *vars0 = I->res->vars;
    struct lmql_val *env0 = I->env, *decl0 = I->decl;
    bool class_body0 = I->class_body;
    struct lmql_val *nested_vars = lmql__val_dict();
    I->q = nq;
    I->globals = scope;
    I->locals = NULL;
    I->env = I->decl = NULL;
    I->class_body = false;
    I->res->vars = nested_vars;
    I->depth++;
    if (!nested_vars) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    if (rc == 0) rc = lmql__exec_block(I, &nq->prologue);
    if (rc == 0 && I->flow == FLOW_NORMAL) rc = lmql__exec_block(I, &nq->body);
    struct lmql_val *ret = I->flow == FLOW_RETURN ? I->retval : NULL;
    I->retval = NULL;
    I->flow = FLOW_NORMAL;
    I->depth--;
    I->q = q0;
    I->globals = globals0;
    I->locals = locals0;
    lmql__val_unref(I->decl);
    I->env = env0;
    I->decl = decl0;
    I->class_body = class_body0;
    I->res->vars = vars0;
    lmql__val_unref(scope);
    lmql__val_unref(nested_vars);

    struct lmql_val *x = NULL;
    if (rc == 0 && ret) {
        struct lmql__buf text = {0};
        lmql__val_str_into(&text, ret);
        I->res->prompt.len = prompt0;
        I->seq.n = seq0;
        I->pending.len = 0;
        I->chat_roles.len = roles0;   /* its role tags went with its text */
        I->chat_n = chat_n0;
        I->chat_ws.len = 0;
        if (lmql__buf_add(&I->pending, pending0.data, pending0.len) ||
            lmql__buf_add(&I->pending, text.data ? text.data : "", text.len) ||
            lmql__buf_add(&I->res->prompt, text.data ? text.data : "", text.len))
            rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
        lmql__buf_free(&text);
        x = lmql__val_ref(ret);
    } else if (rc == 0 && (rc = lmql__chat_flush(I)) == 0) {   /* X is its text, whitespace and all */
        x = lmql__val_str(I->res->prompt.data + prompt0, I->res->prompt.len - prompt0);
        if (!x) rc = lmql__fail(I, seg, LMQL_ERR_NOMEM, "out of memory");
    }
    lmql__val_unref(ret);
    lmql__buf_free(&pending0);
    if (rc == 0) rc = set_variable(I, seg->u.hole.name, x);
    lmql__val_unref(x);
    return rc;
}
