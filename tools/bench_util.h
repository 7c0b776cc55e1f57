/*
** Small helpers shared by the benchmark tools (header-only: each tool is
** one translation unit): medians, llama.cpp's grammar sampler stepped over
** the whole vocabulary, and the bare llama.cpp greedy loop the end-to-end
** figures compare with.
*/
#ifndef LMQL_BENCH_UTIL_H
#define LMQL_BENCH_UTIL_H

#include <stdlib.h>
#include <string.h>

#include <ggml-backend.h>
#include <llama.h>

#include "lmql_int.h"

static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v. */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ------------------------------------------- llama.cpp's grammar sampler -- */

/*
** One step of llama.cpp's grammar sampler as MaskBench times it: the full
** candidate array of the vocabulary (refilled from a template first, not
** timed: a sampler chain gets it from the logits) through
** llama_sampler_apply. The sampler leaves the array in place, in token
** order, refused tokens at -INFINITY. Accepting a token it refused (or an
** end-of-generation token where the grammar cannot end) aborts the
** process inside llama.cpp, so callers check the array first.
*/
struct bench_cands {
    llama_token_data *tmpl, *cand;
    int32_t n;
};

static inline int bench_cands_init(struct bench_cands *c, const struct llama_vocab *v) {
    c->n = llama_vocab_n_tokens(v);
    c->tmpl = malloc((size_t)c->n * sizeof *c->tmpl);
    c->cand = malloc((size_t)c->n * sizeof *c->cand);
    if (!c->tmpl || !c->cand) return -1;
    for (int32_t t = 0; t < c->n; t++) c->tmpl[t] = (llama_token_data){t, 0.0f, 0.0f};
    return 0;
}

static inline void bench_cands_free(struct bench_cands *c) {
    free(c->tmpl);
    free(c->cand);
}

/* Apply g to a fresh copy of every candidate; returns the seconds apply took
** (*t_copy: the copy's). *arr is the result. */
static inline double bench_grammar_apply(struct bench_cands *c, struct llama_sampler *g, llama_token_data_array *arr,
                                         double *t_copy) {
    double t0 = lmql__now();
    memcpy(c->cand, c->tmpl, (size_t)c->n * sizeof *c->cand);
    *arr = (llama_token_data_array){c->cand, (size_t)c->n, -1, false};
    double t1 = lmql__now();
    llama_sampler_apply(g, arr);
    double t2 = lmql__now();
    if (t_copy) *t_copy = t1 - t0;
    return t2 - t1;
}

/* -------------------------------------------------- the bare llama.cpp loop -- */

/* llama.cpp alone: a model, a context and a threadpool with polling off, as
** the backend makes its own (see attach_threadpools in backend_llama.c), so
** only the query layer differs from a query run. */
struct bench_bare {
    struct llama_model *model;
    struct llama_context *ctx;
    struct ggml_threadpool *tp;
    void (*tp_free)(struct ggml_threadpool *);
    llama_token prompt[64];
    int32_t n_prompt;
};

/* prompt: the text the query starts with (BOS added). 0 or -1. */
static inline int bench_bare_open(struct bench_bare *b, const char *path, int threads, const char *prompt) {
    memset(b, 0, sizeof *b);
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    if (!(b->model = llama_model_load_from_file(path, mp))) return -1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 2048;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.n_seq_max = 1;
    if (!(b->ctx = llama_init_from_model(b->model, cp))) return -1;
    ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
    if (cpu) {
        struct ggml_threadpool *(*tp_new)(struct ggml_threadpool_params *) =
            (struct ggml_threadpool *(*)(struct ggml_threadpool_params *))ggml_backend_reg_get_proc_address(cpu, "ggml_threadpool_new");
        b->tp_free = (void (*)(struct ggml_threadpool *))ggml_backend_reg_get_proc_address(cpu, "ggml_threadpool_free");
        struct ggml_threadpool_params tpp = ggml_threadpool_params_default(threads);
        tpp.poll = 0;
        if (tp_new && b->tp_free && (b->tp = tp_new(&tpp))) llama_attach_threadpool(b->ctx, b->tp, b->tp);
    }
    b->n_prompt = llama_tokenize(llama_model_get_vocab(b->model), prompt, (int32_t)strlen(prompt), b->prompt, 64, true, false);
    return b->n_prompt > 0 ? 0 : -1;
}

static inline void bench_bare_close(struct bench_bare *b) {
    if (b->ctx) llama_free(b->ctx);
    if (b->tp) b->tp_free(b->tp);
    if (b->model) llama_model_free(b->model);
}

/* Generate n tokens greedily as our decoder does: the prompt in one
** decode, then one decode per token except after the last. Returns the
** wall time, *t_eval the time inside llama_decode; < 0 on failure. */
static inline double bench_bare_run(struct bench_bare *b, int n, double *t_eval) {
    const struct llama_vocab *v = llama_model_get_vocab(b->model);
    int32_t nv = llama_vocab_n_tokens(v);
    llama_memory_clear(llama_get_memory(b->ctx), true);
    *t_eval = 0;
    double t0 = lmql__now(), t1 = lmql__now();
    if (llama_decode(b->ctx, llama_batch_get_one(b->prompt, b->n_prompt))) return -1;
    *t_eval += lmql__now() - t1;
    for (int i = 0; i < n; i++) {
        const float *lg = llama_get_logits_ith(b->ctx, -1);
        llama_token best = 0;
        for (int32_t t = 1; t < nv; t++) if (lg[t] > lg[best]) best = t;
        if (i == n - 1) break;
        t1 = lmql__now();
        if (llama_decode(b->ctx, llama_batch_get_one(&best, 1))) return -1;
        *t_eval += lmql__now() - t1;
    }
    return lmql__now() - t0;
}

#endif
