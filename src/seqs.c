/*
** A query as a set of sequences: the decoder configuration, the model, and
** the runs of the program. A sequence is one run of the program. Decoders
** that return several sequences (sample with n > 1) run the program once
** per sequence, each with its own model slot and random stream, so no
** interpreter state is ever shared between branches; with a model that
** batches they run in threads, decoded together. Beam search and best_k
** (search.c) replay lists of choices with lmql__replay.
*/
#include "search.h"

#include <pthread.h>

#include "batch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------ decoder and model -- */

static bool name_in(const char *name, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(*list, name)) return true;
    return false;
}

/* One decoder argument k=v (from the decoder clause, or a call of a query
** function); at: where its errors point. */
static int decoder_arg(struct interp *I, struct lmql__decoder_cfg *cfg, const char *d, const char *k,
                       const struct lmql_val *v, const struct lmql_node *at, bool *temp_set) {
    static const char *const shared[] = {"max_len", "max_length", "chunksize", "step_budget", "cache", "verbose",
                                         "chunk_timeout", "openai_nonstop", "certificate", "top_k", "top_p",
                                         "repetition_penalty", "frequency_penalty", "presence_penalty", NULL};
    static const char *const best_k_args[] = {"k", "budget", "kappa", "beta", "gamma", "max_heap_size",
                                              "top_k_continuations", NULL};
    bool sample = !strcmp(d, "sample"), best_k = !strcmp(d, "best_k"), beam_sample = !strcmp(d, "beam_sample");
    bool own = !strcmp(k, "n") || !strcmp(k, "num_beams") ||
               (!strcmp(k, "temperature") && (sample || beam_sample || !strcmp(d, "__dynamic__"))) ||
               (best_k && name_in(k, best_k_args));
    if (!own && !name_in(k, shared)) return lmql__fail(I, at, LMQL_ERR_QUERY, "Unknown decoder argument: %s", k);
    const struct lmql_node *kw = at;
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
        else { cfg->temperature = x; *temp_set = true; }
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
    return rc;
}

static int decoder_config(struct interp *I, struct lmql__decoder_cfg *cfg) {
    const struct lmql_ast_query *q = I->q;
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
        struct lmql_val *v = lmql__eval(I, kw->u.kw.value);
        if (!v) return -1;
        int rc = decoder_arg(I, cfg, d, kw->u.kw.name, v, kw, &temp_set);
        lmql__val_unref(v);
        if (rc) return rc;
    }
    /* a query function's call-time options (q(x, n=2, max_len=64)) */
    for (size_t i = 0; I->decoder_kwargs && i < I->decoder_kwargs->u.dict.len; i++) {
        const struct lmql_val *k = I->decoder_kwargs->u.dict.keys[i];
        LMQL_ASSERT(k->kind == LMQL_V_STR);   /* keyword names */
        if (decoder_arg(I, cfg, d, k->u.str.s, I->decoder_kwargs->u.dict.vals[i], I->call_at, &temp_set)) return -1;
    }
    int32_t cap = I->host->params->max_len;
    if (cap > 0 && cfg->max_len > cap) cfg->max_len = cap;
    /* LMQL: a query without a decoder keyword samples when given a
    ** temperature other than 0, and is argmax otherwise. */
    if (!beam && !beam_sample && !best_k && (sample || (temp_set && cfg->temperature != 0))) cfg->kind = LMQL_DEC_SAMPLE;
    /* What the search loops and the sequence arrays rely on, as checked above. */
    LMQL_ASSERT(cfg->n >= 1 && cfg->n <= 256 && cfg->max_len >= 1);
    LMQL_ASSERT(cfg->budget >= 1 && cfg->max_heap >= 1 && cfg->continuations >= 1);
    return 0;
}

static int resolve_model(struct interp *I, struct lmql__model *inherited) {
    const struct lmql_params *p = I->host->params;
    /* --model applies to the query that was run, not to the sub-queries it
    ** calls: those name their own model or use their caller's. */
    const char *id = inherited ? NULL : p->model_override;
    if (!inherited && !id && I->host->model) {   /* the host's model= replaces `from` too */
        I->model = I->host->model;
        return 0;
    }
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
    struct lmql__err e = {0};
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

static void reset_sequence(struct interp *I) {
    lmql__val_unref(I->globals);
    I->globals = NULL;
    lmql__val_unref(I->module_names);
    I->module_names = NULL;
    lmql__val_unref(I->retval);
    I->retval = NULL;
    I->flow = FLOW_NORMAL;
    I->seq.n = 0;
    I->pending.len = 0;
    I->chat_roles.len = 0;
    I->chat_n = 0;
    I->chat_trim = false;
    I->chat_ws.len = 0;
    I->locals = NULL;
    lmql__val_unref(I->decl);
    I->env = I->decl = NULL;
    I->class_body = false;
}

/* A fresh program state for one sequence in slot, writing into res. */
static int start_sequence(struct interp *I, int slot, struct lmql__seq_result *res) {
    res->vars = lmql__val_dict();
    if (!res->vars) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    reset_sequence(I);
    I->globals = lmql__val_dict();
    if (!I->globals) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    I->res = res;
    I->slot = slot;
    I->dist = I->q->distribution;
    I->dist_end = 0;
    return 0;
}

/* The names bound once the prologue has run, but for the arguments: LMQL
** runs the prologue at module level and the body as a function of the
** arguments, so these are the globals, the rest are locals. A called
** query function's arguments hold its caller's names too: the caller's
** globals stay globals. */
static int note_module_names(struct interp *I, struct lmql_val *args) {
    struct lmql_val *names = lmql__val_dict();
    if (!names) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < I->globals->u.dict.len; i++) {
        struct lmql_val *k = I->globals->u.dict.keys[i];
        if (args && lmql__dict_get(args, k) && !(I->caller_module_names && lmql__dict_get(I->caller_module_names, k)))
            continue;
        if (lmql__dict_set(names, lmql__val_ref(k), &lmql__true)) {
            lmql__val_unref(names);
            return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        }
    }
    I->module_names = names;
    return 0;
}

/* Run the program: its arguments, prologue and body. */
static int run_program(struct interp *I, struct lmql_val *args) {
    return bind_args(I, args) || lmql__exec_block(I, &I->q->prologue) || note_module_names(I, args) ||
           lmql__exec_block(I, &I->q->body) || lmql__chat_flush(I) ? -1 : 0;
}

/* A `return` of the program becomes the sequence's result. */
static void take_return(struct interp *I) {
    if (I->flow == FLOW_RETURN && I->retval) {
        I->res->ret = I->retval;
        I->retval = NULL;
    }
}

enum lmql__replay_end lmql__replay(struct interp *I, struct lmql_val *args, struct lmql__beam_io *io, int slot,
                                   struct lmql__seq_result *res) {
    memset(res, 0, sizeof *res);
    I->frontier = false;
    LMQL_ASSERT(slot >= 0 && slot < I->model->n_slots && io->width >= 1);
    if (start_sequence(I, slot, res)) return LMQL_REPLAY_FAILED;
    I->gen.beam = io;
    io->pos = 0;
    io->n_cand = 0;
    int rc = run_program(I, args);
    I->gen.beam = NULL;
    if (I->frontier) {   /* rc is -1: the run stopped at the hole, which is no error */
        I->frontier = false;
        memset(I->err, 0, sizeof *I->err);
        return LMQL_REPLAY_FRONTIER;
    }
    if (rc) return LMQL_REPLAY_FAILED;
    take_return(I);
    return LMQL_REPLAY_FINISHED;
}

/* One sequence of a query: a fresh program state, run to the end, into res. */
static int run_sequence(struct interp *I, struct lmql_val *args, int s, int first_slot, struct lmql__seq_result *res) {
    /* Sub-queries take slots from the top, so the caller's cache stays. */
    int n_slots = I->model->n_slots;
    if (start_sequence(I, I->depth == 0 ? s % n_slots : (n_slots - 1 - (I->depth + s) % n_slots), res)) return -1;
    LMQL_ASSERT(I->slot >= 0 && I->slot < n_slots && first_slot >= 0 && first_slot < n_slots);
    /* Later sequences start as a fork of the first: the prompt they share
    ** is in the KV cache already and is not evaluated again. */
    if (s > 0 && I->slot != first_slot) I->model->ops->slot_copy(I->model, first_slot, I->slot);
    I->rng = I->host->params->seed * 0x9E3779B97F4A7C15ull + (uint64_t)s + (uint64_t)I->depth * 7919;
    if (run_program(I, args)) return -1;
    if (I->dist && !I->dist_end)
        return lmql__fail(I, I->dist, LMQL_ERR_QUERY, "the distribution variable %s is not a hole of the query",
                          I->dist->u.dist.var);
    if (I->dist_end && res->prompt.len != I->dist_end)
        return lmql__fail(I, I->dist, LMQL_ERR_QUERY, "distribution variable must be the last statement");
    take_return(I);
    return 0;
}

/* ------------------------------------------------- sequences in threads -- */

struct par_job {
    struct interp I;             /* a copy of the caller's, with a sequence state of its own */
    struct lmql__err err;
    struct lmql__model *batcher;
    int (*job)(struct interp *T, int i, void *ud);
    void *ud;
    int i, rc;
};

static void *par_main(void *p) {
    struct par_job *j = p;
    lmql__gc_enter(j->I.gc);   /* containers made here belong to the run */
    j->rc = j->job(&j->I, j->i, j->ud);
    lmql__batcher_leave(j->batcher);
    return NULL;
}

int lmql__seqs_parallel(struct interp *I, int n, bool fork_first, const char *what,
                        int (*job)(struct interp *T, int i, void *ud), void *ud, int *rcs) {
    struct lmql__model *b = lmql__batcher_new(I->model, n, fork_first);
    if (!b) return -1;
    struct par_job *js = lmql__calloc((size_t)n, sizeof *js);
    pthread_t *th = lmql__calloc((size_t)n, sizeof *th);
    bool *started = lmql__calloc((size_t)n, sizeof *started);
    if (!js || !th || !started) {
        free(js); free(th); free(started);
        lmql__batcher_free(b);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        struct interp *T = &js[i].I;
        *T = *I;
        T->gc = lmql__gc_current();
        T->err = &js[i].err;
        T->globals = NULL;
        T->locals = NULL;
        T->module_names = NULL;
        T->retval = NULL;
        memset(&T->seq, 0, sizeof T->seq);
        memset(&T->pending, 0, sizeof T->pending);
        memset(&T->chat_roles, 0, sizeof T->chat_roles);
        memset(&T->chat_ws, 0, sizeof T->chat_ws);
        T->chat_n = 0;
        T->chat_trim = false;
        memset(&T->deco_value, 0, sizeof T->deco_value);
        T->decos = NULL;
        T->env = T->decl = NULL;
        T->class_body = false;
        T->model = b;
        T->gen.model = b;
        T->gen.rng = &T->rng;
        T->gen.mask = lmql__malloc((size_t)I->model->vocab->n_tokens);
        T->n_generated = 0;
        js[i].batcher = b;
        js[i].job = job;
        js[i].ud = ud;
        js[i].i = i;
    }
    for (int i = 0; i < n; i++) {
        if (!js[i].I.gen.mask) {
            js[i].rc = lmql__fail(&js[i].I, NULL, LMQL_ERR_NOMEM, "out of memory");
            lmql__batcher_leave(b);
        } else if (pthread_create(&th[i], NULL, par_main, &js[i])) {
            js[i].rc = lmql__fail(&js[i].I, NULL, LMQL_ERR_NOMEM, "cannot start a %s", what);
            lmql__batcher_leave(b);
        } else {
            started[i] = true;
        }
    }
    for (int i = 0; i < n; i++) {
        struct interp *T = &js[i].I;
        if (started[i]) pthread_join(th[i], NULL);
        rcs[i] = js[i].rc;
        I->n_generated += T->n_generated;
        if (js[i].rc < 0 && !I->err->msg[0]) *I->err = js[i].err;
        reset_sequence(T);
        lmql__seq_free(&T->seq);
        lmql__buf_free(&T->pending);
        lmql__buf_free(&T->chat_roles);
        lmql__buf_free(&T->chat_ws);
        lmql__buf_free(&T->deco_value);
        free(T->gen.mask);
    }
    free(js);
    free(th);
    free(started);
    lmql__batcher_free(b);
    return 0;
}

struct sample_job {
    struct lmql_val *args;
    struct lmql__run_out *out;
};

static int sample_job(struct interp *T, int s, void *ud) {
    struct sample_job *j = ud;
    return run_sequence(T, j->args, s, 0, &j->out->seqs[s]);
}

/* -------------------------------------------------------------- a run -- */

int lmql__run_query(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                    struct lmql__model *inherited, const struct lmql__call_opts *opts, int depth,
                    struct lmql__run_out *out, struct lmql__err *err) {
    struct interp I = {.host = host, .q = q, .err = err, .depth = depth};
    if (opts) {
        I.decoder_override = opts->decoder;
        I.decoder_kwargs = opts->kwargs;
        I.call_at = opts->at;
        I.caller_module_names = opts->module_names;
    } else if (!inherited && (!q->decoder || !strcmp(q->decoder, "__dynamic__"))) {
        /* the host's decoder= and its arguments: as in LMQL, a decoder the
        ** query names wins over them */
        I.decoder_override = host->decoder;
        I.decoder_kwargs = host->decoder_kwargs;
    }
    struct lmql__decoder_cfg cfg;
    memset(out, 0, sizeof *out);
    int rc = -1;

    /* The prologue may define what `from` and the decoder arguments use.
    ** Where clauses were checked when the program was compiled. */
    I.globals = lmql__val_dict();
    if (!I.globals) return lmql__fail(&I, NULL, LMQL_ERR_NOMEM, "out of memory");
    if (bind_args(&I, args) || lmql__exec_block(&I, &q->prologue) || decoder_config(&I, &cfg) ||
        resolve_model(&I, inherited))
        goto done;
    I.gen.model = I.model;
    I.gen.decoder = cfg.kind;
    I.gen.temperature = cfg.temperature;
    I.gen.top_k = cfg.top_k;
    I.gen.top_p = cfg.top_p;
    I.gen.max_len = cfg.max_len;
    I.gen.rng = &I.rng;
    I.gen.mask = lmql__malloc((size_t)I.model->vocab->n_tokens);
    out->seqs = lmql__calloc((size_t)cfg.n, sizeof *out->seqs);
    if (!I.gen.mask || !out->seqs) { lmql__fail(&I, NULL, LMQL_ERR_NOMEM, "out of memory"); goto done; }
    out->many = cfg.n > 1;
    if (cfg.kind == LMQL_DEC_BEAM || cfg.kind == LMQL_DEC_BEAM_SAMPLE) {
        out->many = true;
        rc = lmql__run_beam(&I, &cfg, args, out);
        goto done;
    }
    if (cfg.kind == LMQL_DEC_BEST_K) {
        out->many = true;
        rc = lmql__run_best_k(&I, &cfg, args, out);
        goto done;
    }

    /* sample(n) / argmax(n): the sequences in threads, decoded together
    ** in one batch per step, when the model batches; else one by one. */
    int first_slot = depth == 0 ? 0 : I.model->n_slots - 1 - depth % I.model->n_slots;
    int *rcs = depth == 0 && cfg.n > 1 && cfg.n <= I.model->n_slots ? lmql__calloc((size_t)cfg.n, sizeof *rcs) : NULL;
    struct sample_job job = {.args = args, .out = out};
    if (rcs && lmql__seqs_parallel(&I, cfg.n, true, "sequence", sample_job, &job, rcs) == 0) {
        free(rcs);
        out->n_seqs = cfg.n;
        for (int s = 0; s < cfg.n; s++) out->has_return |= out->seqs[s].ret != NULL;
        if (err->msg[0]) goto done;
        rc = 0;
        goto done;
    }
    free(rcs);
    for (int s = 0; s < cfg.n; s++) {
        out->n_seqs = s + 1;
        if (run_sequence(&I, args, s, first_slot, &out->seqs[s])) goto done;
        out->has_return |= out->seqs[s].ret != NULL;
    }
    rc = 0;
done:
    /* LMQL's rule: a query that ends before any hole has one result,
    ** whatever n is (sequences that differ only by sampling are the same) */
    if (rc == 0 && out->n_seqs >= 1 && out->many) {
        bool none = true;
        for (int s = 0; s < out->n_seqs; s++) none &= out->seqs[s].n_holes == 0;
        if (none) {
            for (int s = 1; s < out->n_seqs; s++) lmql__seq_result_free(&out->seqs[s]);
            out->n_seqs = 1;
            out->many = false;
        }
    }
    out->n_generated = I.n_generated;
    reset_sequence(&I);
    lmql__seq_free(&I.seq);
    lmql__buf_free(&I.pending);
    lmql__buf_free(&I.chat_roles);
    lmql__buf_free(&I.chat_ws);
    lmql__buf_free(&I.deco_value);
    free(I.gen.mask);
    if (rc && !err->msg[0]) lmql__fail(&I, NULL, LMQL_ERR_RUNTIME, "the query failed");
    return rc;
}

int lmql__interp_run(const struct lmql__host *host, const struct lmql_ast_query *q, struct lmql_val *args,
                     struct lmql__run_out *out, struct lmql__err *err) {
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
    int rc = lmql__run_query(host, q, args, NULL, NULL, 0, out, err);
    if (rc == 0) rc = lmql__results_check(out, err);
    if (rc) lmql__run_out_free(out);
    lmql__gc_enter(prev);
    lmql__gc_finish(gc);
    return rc;
}
