/*
** LMQL's Generations API from query code: `m.generate(prompt, max_tokens)`
** and `m.score(prompt, values)` on an lmql.model(...) value, the top-level
** `lmql.generate` / `lmql.score` (model=), their `_sync` forms (query code
** runs in order, so they are the same functions), and `context.score(values)`
** against the running prompt.
**
** generate is the query LMQL's own implementation runs,
** `"{prompt}[RESPONSE]" where len(TOKENS(RESPONSE)) < max_tokens + 1`, as a
** query function (lmql.F), so decoders, n= and every constraint machinery
** apply unchanged. score tokenizes the prompt and each value apart (as
** LMQL's dc_score) and asks the model for the values' token
** log-probabilities; the result is a ScoringResult value with LMQL's
** methods (scores, logprobs, probs, argmax with agg="sum"|"mean"|
** "normalized") and attributes (prompt, continuations, token_scores, full_token_scores,
** num_value_tokens, model_identifier).
*/
#include "interp_int.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The methods a model value has, and the lmql.* functions. */
enum gen_kind { GEN_GENERATE, GEN_SCORE, GEN_CONTEXT_SCORE, SR_SCORES, SR_LOGPROBS, SR_PROBS, SR_ARGMAX };

struct scoring {
    char *prompt;
    struct lmql_val *values;     /* list of str */
    struct lmql_val *tokens;     /* list of lists of float: each value's token log-probabilities */
    struct lmql_val *full;       /* the same over the prompt's tokens and the value's (BOS not counted) */
    char *model_id;
};

static void scoring_free(void *p) {
    struct scoring *s = p;
    free(s->prompt);
    lmql__val_unref(s->values);
    lmql__val_unref(s->tokens);
    lmql__val_unref(s->full);
    free(s->model_id);
    free(s);
}

/* The builtins of this file all run through lmql__generations_call, which
** the interpreter recognizes by this function pointer (they need the
** interpreter); called any other way it is a misuse. */
struct lmql_val *lmql__generations_fn(void *ud, int argc, struct lmql_val **argv, const char **names,
                                      struct lmql__err *err) {
    (void)ud; (void)argc; (void)argv; (void)names;
    return lmql__errp(err, "internal error: a Generations API function called without the interpreter");
}

static struct lmql_val *method(struct interp *I, const struct lmql_node *at, const char *name, enum gen_kind k,
                               struct lmql_val *self) {
    struct lmql_val *f = lmql__val_builtin(name, lmql__generations_fn, (void *)(uintptr_t)k, self);
    if (!f) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    return f;
}

struct lmql_val *lmql__generations_attr(struct interp *I, const struct lmql_node *at, struct lmql_val *obj,
                                        const char *name, bool *handled) {
    *handled = true;
    bool is_lmql = obj == NULL;   /* lmql.generate / lmql.score */
    bool is_model = !is_lmql && obj->kind == LMQL_V_OBJ && !strcmp(obj->u.obj.type, "model");
    if (is_model || is_lmql) {
        if (!strcmp(name, "generate") || !strcmp(name, "generate_sync"))
            return method(I, at, is_lmql ? "lmql.generate" : "generate", GEN_GENERATE, obj);
        if (!strcmp(name, "score") || !strcmp(name, "score_sync"))
            return method(I, at, is_lmql ? "lmql.score" : "score", GEN_SCORE, obj);
        if (is_model && !strcmp(name, "model_identifier")) {
            const struct lmql__model_spec *sp = obj->u.obj.ptr;
            struct lmql_val *s = lmql__val_cstr(sp->id);
            if (!s) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
            return s;
        }
        if (is_lmql) { *handled = false; return NULL; }
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: 'LLM' object has no attribute '%s' (generate, score, "
                   "their _sync forms and model_identifier are supported)", name);
        return NULL;
    }
    if (!is_lmql && obj->kind == LMQL_V_OBJ && !strcmp(obj->u.obj.type, "ScoringResult")) {
        struct scoring *s = obj->u.obj.ptr;
        struct lmql_val *v = NULL;
        if (!strcmp(name, "scores")) return method(I, at, "scores", SR_SCORES, obj);
        if (!strcmp(name, "logprobs")) return method(I, at, "logprobs", SR_LOGPROBS, obj);
        if (!strcmp(name, "probs")) return method(I, at, "probs", SR_PROBS, obj);
        if (!strcmp(name, "argmax")) return method(I, at, "argmax", SR_ARGMAX, obj);
        if (!strcmp(name, "prompt")) v = lmql__val_cstr(s->prompt);
        else if (!strcmp(name, "continuations")) v = lmql__val_ref(s->values);
        else if (!strcmp(name, "token_scores")) v = lmql__val_ref(s->tokens);
        else if (!strcmp(name, "full_token_scores")) v = lmql__val_ref(s->full);
        else if (!strcmp(name, "model_identifier")) v = lmql__val_cstr(s->model_id);
        else if (!strcmp(name, "num_value_tokens")) {
            v = lmql__val_list(s->tokens->u.list.len);
            for (size_t i = 0; v && i < s->tokens->u.list.len; i++)
                lmql__list_push(v, lmql__val_int((int64_t)s->tokens->u.list.items[i]->u.list.len));
        } else {
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "AttributeError: 'ScoringResult' object has no attribute '%s' "
                       "(scores, logprobs, probs, argmax, prompt, continuations, token_scores, full_token_scores, num_value_tokens, "
                       "model_identifier are supported)", name);
            return NULL;
        }
        if (!v) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        return v;
    }
    *handled = false;
    return NULL;
}

/* ------------------------------------------------------------ generate -- */

static bool generate_option(const char *name) {
    static const char *const opts[] = {"decoder", "n", "temperature", "top_k", "top_p", "max_len", "max_length",
                                       "chunksize", NULL};
    for (int i = 0; opts[i]; i++)
        if (!strcmp(opts[i], name)) return true;
    return false;
}

static struct lmql_val *generate(struct interp *I, const struct lmql_node *at, struct lmql_val *self, int argc,
                                 struct lmql_val **argv, const char **names) {
    const char *fname = self ? "generate" : "lmql.generate";
    struct lmql_val *prompt = NULL, *max_tokens = NULL, *model = self;
    int np = 0;
    for (int i = 0; i < argc; i++) {
        if (!names[i]) {
            if (np == 0) prompt = argv[i];
            else if (np == 1) max_tokens = argv[i];
            else return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes prompt and max_tokens", fname), NULL;
            np++;
        } else if (!strcmp(names[i], "prompt") && !prompt) prompt = argv[i];
        else if (!strcmp(names[i], "max_tokens") && !max_tokens) max_tokens = argv[i];
        else if (!strcmp(names[i], "model") && !self) model = argv[i];
        else if (!generate_option(names[i]))
            return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() got an unexpected keyword argument '%s' "
                              "(decoder=, n=, temperature=, top_k=, top_p=, max_len=, chunksize= are passed to the "
                              "query)", fname, names[i]), NULL;
    }
    if (!prompt || prompt->kind != LMQL_V_STR)
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() needs a prompt string", fname), NULL;
    if (max_tokens && max_tokens->kind == LMQL_V_NONE) max_tokens = NULL;
    if (max_tokens && (max_tokens->kind != LMQL_V_INT || max_tokens->u.i < 1 || max_tokens->u.i > 1000000))
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "ValueError: %s(): max_tokens must be a positive integer", fname),
               NULL;
    if (model && model->kind == LMQL_V_NONE) model = NULL;
    /* The query function LMQL runs for it, made by lmql.F. */
    char cons[64];
    if (max_tokens) snprintf(cons, sizeof cons, "len(TOKENS(RESPONSE)) < %lld", (long long)max_tokens->u.i + 1);
    struct lmql_val *fargs[3];
    const char *fnames[3] = {NULL, "constraints", "model"};
    int fc = 1;
    struct lmql__err e = {0};
    fargs[0] = lmql__val_cstr("{prompt}[RESPONSE]");
    if (max_tokens) fargs[fc++] = lmql__val_cstr(cons);
    else fargs[fc++] = lmql__val_ref(&lmql__none);
    if (model) fargs[fc++] = lmql__val_ref(model);
    struct lmql_val *q = NULL;
    bool ok = fargs[0] && fargs[1];
    if (ok) q = lmql__lmql_F(NULL, fc, fargs, fnames, &e);
    for (int i = 0; i < fc; i++) lmql__val_unref(fargs[i]);
    if (!q) {
        if (!ok || !e.msg[0]) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        else lmql__fail(I, at, LMQL_ERR_RUNTIME, "%s(): %s", fname, e.msg);
        return NULL;
    }
    /* prompt= and the options go to the query function's call */
    struct lmql_val **cv = lmql__malloc(((size_t)argc + 2) * sizeof *cv);
    const char **cn = lmql__malloc(((size_t)argc + 2) * sizeof *cn);
    struct lmql_val *out = NULL;
    if (!cv || !cn) {
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    } else {
        int c = 0;
        bool has_dec = false, sampled = false;
        cv[c] = prompt; cn[c++] = "prompt";
        for (int i = 0; i < argc; i++) {
            if (!names[i] || !generate_option(names[i])) continue;
            has_dec |= !strcmp(names[i], "decoder");
            /* LMQL's generate query names no decoder: a temperature other than 0 samples */
            sampled |= !strcmp(names[i], "temperature") && lmql__val_truthy(argv[i]);
            cv[c] = argv[i]; cn[c++] = names[i];
        }
        struct lmql_val sample = {.kind = LMQL_V_STR, .refs = -1, .u.str = {"sample", 6}};
        if (sampled && !has_dec) { cv[c] = &sample; cn[c++] = "decoder"; }
        out = lmql__call(I, at, q, c, cv, cn);
    }
    free(cv);
    free(cn);
    lmql__val_unref(q);
    /* Several sequences come back as results: their RESPONSE, as LMQL returns. */
    if (out && out->kind == LMQL_V_LIST) {
        for (size_t i = 0; i < out->u.list.len; i++) {
            struct lmql_val *r = out->u.list.items[i], *vars = NULL, *resp = NULL;
            struct lmql_val kv = {.kind = LMQL_V_STR, .refs = -1, .u.str = {"variables", 9}};
            struct lmql_val kr = {.kind = LMQL_V_STR, .refs = -1, .u.str = {"RESPONSE", 8}};
            if (r->kind == LMQL_V_DICT && (vars = lmql__dict_get(r, &kv)) && vars->kind == LMQL_V_DICT &&
                (resp = lmql__dict_get(vars, &kr))) {
                out->u.list.items[i] = lmql__val_ref(resp);
                lmql__val_unref(r);
            }
        }
    }
    return out;
}

/* --------------------------------------------------------------- score -- */

/* Log-probabilities of each value's tokens after the prompt's, on model m
** in slot: one value at a time in the same slot, so the prompt's cache is
** shared and no other sequence's slot is touched. */
static struct scoring *score_values(struct interp *I, const struct lmql_node *at, struct lmql__model *m, int slot,
                                    const char *prompt, size_t plen, struct lmql_val *values) {
    struct scoring *s = lmql__calloc(1, sizeof *s);
    size_t n = values->u.list.len;
    if (s && (s->prompt = lmql__malloc(plen + 1))) {
        memcpy(s->prompt, prompt, plen);
        s->prompt[plen] = 0;
    }
    if (!s || !s->prompt || !(s->tokens = lmql__val_list(n)) || !(s->full = lmql__val_list(n))) {
        if (s) scoring_free(s);
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    s->values = lmql__val_ref(values);
    struct lmql__err e = {0};
    int32_t np = m->ops->tokenize(m, prompt, plen, true, false, NULL, 0, &e);
    if (np == INT32_MIN) goto fail_model;
    np = np < 0 ? -np : np;
    if (np == 0) {   /* no BOS and no text: the first value token would have no context */
        scoring_free(s);
        lmql__fail(I, at, LMQL_ERR_RUNTIME, "score(): the prompt is empty and the model has no BOS token to score after");
        return NULL;
    }
    /* The prompt's first token has nothing before it unless the model puts
    ** BOS there: it scores 0, as in LMQL's sequences. */
    int32_t nb = m->ops->tokenize(m, prompt, plen, false, false, NULL, 0, &e);
    if (nb == INT32_MIN) goto fail_model;
    bool bos = np > (nb < 0 ? -nb : nb);
    int32_t *toks = NULL;
    int rc = 0;
    for (size_t k = 0; rc == 0 && k < n; k++) {
        const struct lmql_val *v = values->u.list.items[k];
        int32_t nv = m->ops->tokenize(m, v->u.str.s, v->u.str.len, false, true, NULL, 0, &e);
        if (nv == INT32_MIN) { rc = -1; break; }
        nv = nv < 0 ? -nv : nv;
        if ((int64_t)np + nv > m->n_ctx) {
            free(toks);
            scoring_free(s);
            lmql__fail(I, at, LMQL_ERR_RUNTIME, "score(): the prompt and value %zu take %d tokens, more than the "
                       "context holds (n_ctx=%d)", k, np + nv, m->n_ctx);
            return NULL;
        }
        int32_t *t2 = lmql__realloc(toks, ((size_t)np + (size_t)nv + 1) * sizeof *toks);
        float *sc = lmql__calloc((size_t)np + (size_t)nv, sizeof *sc);
        if (t2) toks = t2;
        if (!t2 || !sc) { free(sc); rc = -2; break; }
        int32_t a = m->ops->tokenize(m, prompt, plen, true, false, toks, np, &e);
        int32_t b = a == np ? m->ops->tokenize(m, v->u.str.s, v->u.str.len, false, true, toks + np, nv, &e) : -1;
        if (a != np || b != nv) { free(sc); rc = -1; break; }
        struct lmql__eval_req req = {slot, toks, np + nv, NULL, NULL};
        int32_t from = 1;   /* sc[i] is the score of token i + 1 */
        if (np + nv > 1 && m->ops->score(m, 1, &req, &from, &sc, &e)) { free(sc); rc = -1; break; }
        struct lmql_val *list = lmql__val_list((size_t)nv), *full = lmql__val_list((size_t)(np + nv));
        for (int32_t i = 0; list && i < nv; i++) lmql__list_push(list, lmql__val_float(sc[np - 1 + i]));
        if (full && !bos) lmql__list_push(full, lmql__val_float(0));
        for (int32_t i = 0; full && i < np + nv - 1; i++) lmql__list_push(full, lmql__val_float(sc[i]));
        free(sc);
        if (!list || lmql__list_push(s->tokens, list) || !full || lmql__list_push(s->full, full)) { rc = -2; break; }
    }
    free(toks);
    if (rc == 0) return s;
    if (rc == -2) {
        scoring_free(s);
        lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        return NULL;
    }
fail_model:
    scoring_free(s);
    lmql__fail(I, at, LMQL_ERR_MODEL, "score(): %s", e.msg[0] ? e.msg : "the model cannot tokenize the text");
    return NULL;
}

static struct lmql_val *score(struct interp *I, const struct lmql_node *at, enum gen_kind k, struct lmql_val *self,
                              int argc, struct lmql_val **argv, const char **names) {
    const char *fname = k == GEN_CONTEXT_SCORE ? "context.score" : self ? "score" : "lmql.score";
    struct lmql_val *prompt = NULL, *values = NULL, *model = self;
    int np = 0, want = k == GEN_CONTEXT_SCORE ? 1 : 2;
    for (int i = 0; i < argc; i++) {
        if (!names[i]) {
            if (np == want) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes %s", fname,
                                              want == 1 ? "values" : "prompt and values"), NULL;
            if (np++ == want - 1) values = argv[i];
            else prompt = argv[i];
        } else if (!strcmp(names[i], "values") && !values) values = argv[i];
        else if (!strcmp(names[i], "prompt") && !prompt && want == 2) prompt = argv[i];
        else if (!strcmp(names[i], "model") && !self) model = argv[i];
        else return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() got an unexpected keyword argument '%s'",
                               fname, names[i]), NULL;
    }
    if (model && model->kind == LMQL_V_NONE) model = NULL;
    if ((want == 2 && (!prompt || prompt->kind != LMQL_V_STR)) || !values)
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s() takes %s", fname,
                          want == 1 ? "values (a string or a list of strings)" : "a prompt string and values"), NULL;
    struct lmql_val *list = NULL;
    if (values->kind == LMQL_V_STR) {
        list = lmql__val_list(1);
        if (list) lmql__list_push(list, lmql__val_ref(values));
    } else if (values->kind == LMQL_V_LIST) {
        list = lmql__val_ref(values);
    }
    if (!list) {
        if (values->kind == LMQL_V_STR) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
        return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s(): values must be a string or a list of strings",
                          fname), NULL;
    }
    for (size_t i = 0; i < list->u.list.len; i++)
        if (list->u.list.items[i]->kind != LMQL_V_STR) {
            lmql__val_unref(list);
            return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: %s(): values must be strings, not %s", fname,
                              lmql__val_type_name(list->u.list.items[i])), NULL;
        }
    /* The model: the query's own unless one is named; the query's scores
    ** in its slot (the model layer re-evaluates what the slot held when the
    ** query goes on), another model in the slot a sub-query would take. */
    struct lmql__model *m = I->model;
    int slot = I->slot;
    if (model) {
        struct lmql__err e = {0};
        m = lmql__model_of(I, model, &e);
        if (!m) {
            lmql__val_unref(list);
            return lmql__fail(I, at, LMQL_ERR_MODEL, "%s", e.msg), NULL;
        }
        if (m != I->model) slot = m->n_slots - 1 - (I->depth + 1) % m->n_slots;
    }
    struct lmql__buf ctx = {0};
    const char *ptext;
    size_t plen;
    if (k == GEN_CONTEXT_SCORE) {
        /* the prompt as context.prompt reads it */
        if (I->res) lmql__buf_add(&ctx, I->res->prompt.data ? I->res->prompt.data : "", I->res->prompt.len);
        lmql__buf_add(&ctx, I->chat_ws.data ? I->chat_ws.data : "", I->chat_ws.len);
        if (lmql__buf_reserve(&ctx, 0)) {
            lmql__val_unref(list);
            return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
        }
        ptext = ctx.data;
        plen = ctx.len;
    } else {
        ptext = prompt->u.str.s;
        plen = prompt->u.str.len;
    }
    struct scoring *s = score_values(I, at, m, slot, ptext, plen, list);
    lmql__buf_free(&ctx);
    lmql__val_unref(list);
    if (!s) return NULL;
    const char *id = model && model->kind == LMQL_V_STR ? model->u.str.s
                   : model ? ((const struct lmql__model_spec *)model->u.obj.ptr)->id : m->id;
    s->model_id = lmql__strdup(id ? id : "");
    struct lmql_val *r = s->model_id ? lmql__val_obj("ScoringResult", s, scoring_free) : NULL;
    if (!s->model_id) scoring_free(s);
    if (!r) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    return r;
}

/* ScoringResult.scores(agg) and the methods over it, as LMQL computes
** them: "sum" of the value's token log-probabilities, "mean" of them,
** "normalized" the sum over the whole sequence's length ** alpha (prompt and
** value tokens, BOS not counted, as LMQL's sequences). */
static int aggregate(struct interp *I, const struct lmql_node *at, const struct scoring *s, const char *agg,
                     double alpha, double *out) {
    bool sum = !strcmp(agg, "sum"), mean = !strcmp(agg, "mean"), norm = !strncmp(agg, "normalized", 10);
    if (!sum && !mean && !norm) return lmql__fail(I, at, LMQL_ERR_RUNTIME, "ValueError: invalid aggregation: %s", agg);
    for (size_t i = 0; i < s->tokens->u.list.len; i++) {
        const struct lmql_val *l = s->tokens->u.list.items[i];
        double t = 0;
        for (size_t j = 0; j < l->u.list.len; j++) t += l->u.list.items[j]->u.f;
        if (mean) t = l->u.list.len ? t / (double)l->u.list.len : NAN;
        /* the sequence's length as LMQL counts it: its scored tokens, BOS not among them */
        if (norm) t /= pow((double)s->full->u.list.items[i]->u.list.len, alpha);
        out[i] = t;
    }
    return 0;
}

static struct lmql_val *scoring_method(struct interp *I, const struct lmql_node *at, enum gen_kind k,
                                       struct lmql_val *self, int argc, struct lmql_val **argv, const char **names) {
    const struct scoring *s = self->u.obj.ptr;
    const char *agg = "sum";
    double alpha = 0.7;
    for (int i = 0; i < argc; i++) {
        const char *nm = names[i] ? names[i] : i == 0 ? "agg" : "";
        if (!strcmp(nm, "agg") && argv[i]->kind == LMQL_V_STR) agg = argv[i]->u.str.s;
        else if (!strcmp(nm, "alpha") && k == SR_SCORES && (argv[i]->kind == LMQL_V_FLOAT || argv[i]->kind == LMQL_V_INT))
            alpha = argv[i]->kind == LMQL_V_FLOAT ? argv[i]->u.f : (double)argv[i]->u.i;
        else return lmql__fail(I, at, LMQL_ERR_RUNTIME, "TypeError: ScoringResult method takes agg= (a string)%s",
                               k == SR_SCORES ? " and alpha=" : ""), NULL;
    }
    size_t n = s->tokens->u.list.len;
    double *sc = lmql__calloc(n ? n : 1, sizeof *sc);
    if (!sc) return lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory"), NULL;
    if (aggregate(I, at, s, agg, alpha, sc)) { free(sc); return NULL; }
    struct lmql_val *out = NULL;
    if (k == SR_ARGMAX) {
        /* numpy's argmax: the first of the largest (NaN wins as in numpy) */
        size_t best = 0;
        for (size_t i = 1; i < n && !isnan(sc[best]); i++)
            if (isnan(sc[i]) || sc[i] > sc[best]) best = i;
        if (n == 0) lmql__fail(I, at, LMQL_ERR_RUNTIME, "ValueError: attempt to get argmax of an empty sequence");
        else if (!(out = lmql__val_ref(s->values->u.list.items[best]))) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
        free(sc);
        return out;
    }
    if (k != SR_SCORES) {
        /* log-softmax over the values */
        double mx = -INFINITY, z = 0;
        for (size_t i = 0; i < n; i++) if (sc[i] > mx) mx = sc[i];
        for (size_t i = 0; i < n; i++) z += exp(sc[i] - mx);
        for (size_t i = 0; i < n; i++) sc[i] = k == SR_PROBS ? exp(sc[i] - mx) / z : sc[i] - mx - log(z);
    }
    out = lmql__val_list(n);
    for (size_t i = 0; out && i < n; i++) lmql__list_push(out, lmql__val_float(sc[i]));
    free(sc);
    if (!out) lmql__fail(I, at, LMQL_ERR_NOMEM, "out of memory");
    return out;
}

struct lmql_val *lmql__generations_call(struct interp *I, const struct lmql_node *at, struct lmql_val *fn, int argc,
                                        struct lmql_val **argv, const char **names) {
    enum gen_kind k = (enum gen_kind)(uintptr_t)fn->u.func.ud;
    struct lmql_val *self = fn->u.func.self;
    switch (k) {
    case GEN_GENERATE: return generate(I, at, self, argc, argv, names);
    case GEN_SCORE:
    case GEN_CONTEXT_SCORE: return score(I, at, k, self, argc, argv, names);
    default: return scoring_method(I, at, k, self, argc, argv, names);
    }
}

struct lmql_val *lmql__context_score(struct interp *I, const struct lmql_node *at) {
    return method(I, at, "context.score", GEN_CONTEXT_SCORE, NULL);
}
