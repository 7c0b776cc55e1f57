/*
** lmql-bench: prompt and generation speed of a model through the model
** layer (the path queries take), and the end-to-end time of the seed query.
**
**   lmql-bench MODEL.gguf [--prompt 128] [--gen 64] [--runs 5] [--threads N] [--poll 0..100]
**
** Prompt speed: one evaluation of a fresh prompt. Generation speed: greedy
** steps, each adding one token to the sequence (KV-cache reuse). Reports
** the median of the runs.
*/
#include <lmql.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "model.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: lmql-bench MODEL.gguf [--prompt N] [--gen N] [--runs N] [--threads N]\n");
        return 2;
    }
    const char *path = argv[1];
    int n_prompt = 128, n_gen = 64, runs = 5;
    char threads[16] = "", poll[16] = "0";
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--prompt")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--gen")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--runs")) runs = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--threads")) snprintf(threads, sizeof threads, "%s", argv[i + 1]);
        else if (!strcmp(argv[i], "--poll")) snprintf(poll, sizeof poll, "%s", argv[i + 1]);
        else { fprintf(stderr, "lmql-bench: unknown option %s\n", argv[i]); return 2; }
    }
    if (n_prompt < 1 || n_gen < 1 || runs < 1 || runs > 100) { fprintf(stderr, "lmql-bench: bad sizes\n"); return 2; }
    struct lmql__kv kv[3] = {{"n_ctx", "1024"}, {"poll", poll}, {"n_threads", threads}};
    struct lmql__err err = {0};
    double t0 = lmql__now();
    struct lmql__model *m = lmql__llama_open(path, kv, threads[0] ? 3 : 2, &err);
    if (!m) { fprintf(stderr, "lmql-bench: %s\n", err.msg); return 1; }
    double t_load = lmql__now() - t0;
    int32_t *toks = malloc((size_t)(n_prompt + n_gen + 1) * sizeof *toks);
    double *pp = calloc((size_t)runs, sizeof *pp), *tg = calloc((size_t)runs, sizeof *tg);
    if (!toks || !pp || !tg) return 1;
    /* A deterministic prompt of ordinary tokens. */
    toks[0] = m->vocab->bos >= 0 ? m->vocab->bos : 0;
    for (int i = 1; i < n_prompt; i++) toks[i] = 1000 + (i * 7919) % (m->vocab->n_tokens - 2000);
    for (int r = 0; r < runs; r++) {
        m->ops->slot_drop(m, 0);
        toks[1] = 1000 + r;   /* a different prompt each run: nothing reused */
        struct lmql__eval_req q = {0, toks, n_prompt, NULL, NULL};
        const float *lp;
        double t = lmql__now();
        if (m->ops->next_logprobs(m, 1, &q, &lp, &err)) { fprintf(stderr, "lmql-bench: %s\n", err.msg); return 1; }
        pp[r] = n_prompt / (lmql__now() - t);
        int32_t n = n_prompt;
        t = lmql__now();
        for (int g = 0; g < n_gen; g++) {
            int32_t best = 0;
            for (int32_t i = 1; i < m->vocab->n_tokens; i++) if (lp[i] > lp[best]) best = i;
            toks[n++] = best;
            q.n_tokens = n;
            if (m->ops->next_logprobs(m, 1, &q, &lp, &err)) { fprintf(stderr, "lmql-bench: %s\n", err.msg); return 1; }
        }
        tg[r] = n_gen / (lmql__now() - t);
    }
    printf("%-32s load %.2fs  prompt(%d) %8.1f tok/s  generation(%d) %7.1f tok/s  threads %s  poll %s  (median of %d)\n",
           path, t_load, n_prompt, bench_median(pp, runs), n_gen, bench_median(tg, runs), threads[0] ? threads : "all cores",
           poll, runs);
    lmql__model_free(m);

    /* The seed query end to end through the public API, model loaded. */
    char src[1024];
    snprintf(src, sizeof src,
             "argmax \"Say 'this is a test':[RESPONSE]\" from \"local:llama.cpp:%s\" where len(TOKENS(RESPONSE)) < 10",
             path);
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *P = lmql_program_compile(L, "<bench>", src, strlen(src));
    double q_ms[100];
    for (int r = 0; P && r <= runs; r++) {
        struct lmql_result *R;
        double t = lmql__now();
        if (lmql_run(L, P, NULL, &R) != LMQL_OK) { fprintf(stderr, "lmql-bench: %s\n", lmql_errmsg(L)); break; }
        if (r > 0) q_ms[r - 1] = (lmql__now() - t) * 1000;   /* run 0 loads the model */
        lmql_result_free(R);
        if (r == runs) printf("%-32s seed query %.1f ms (median of %d, model loaded)\n", path, bench_median(q_ms, runs), runs);
    }
    lmql_program_free(P);
    lmql_free(L);
    free(toks);
    free(pp);
    free(tg);
    return 0;
}
