/*
** lmql-bench-serve: the LMTP server under concurrent clients, against the
** ceiling of this machine, a bare llama.cpp loop that decodes as many
** sequences per step in one llama_decode; and the time to the first token
** of a request whose 1000-token prefix the server has seen before.
**
**   lmql-bench-serve [MODEL.gguf] [--gen 64] [--prefix 1000] [--runs 2] [--out FILE.json]
**
** The server runs in this process (lmql.h's server API) on a free loopback
** port; each client is a thread with its own WebSocket connection.
*/
#include <lmql.h>
#include <llama.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmql_int.h"
#include "lmtp_conn.h"

static const char *g_model_id;
static int g_gen;
static char g_ep[64];   /* 127.0.0.1:PORT */

/* Prompts: BOS and a few ordinary tokens, different per client. */
static int prompt_of(int k, int32_t *p) {
    p[0] = 1;
    p[1] = 400 + 7 * k;
    p[2] = 900 + 11 * k;
    p[3] = 1500 + 13 * k;
    return 4;
}

static int send_generate(struct lmql__lmtp_conn *c, int64_t id, const int32_t *p, int n, int max_tokens) {
    struct lmql__buf b = {0};
    struct lmql__err err;
    lmql__buf_adds(&b, "GENERATE {\"model\": ");
    lmql__buf_json_str(&b, g_model_id, strlen(g_model_id));
    lmql__buf_addf(&b, ", \"stream_id\": %lld, \"max_tokens\": %d, \"temperature\": 0.0, \"prompt\": [", (long long)id,
                   max_tokens);
    for (int i = 0; i < n; i++) lmql__buf_addf(&b, "%s%d", i ? "," : "", p[i]);
    lmql__buf_adds(&b, "]}");
    int rc = b.data ? lmql__lmtp_send(c, b.data, b.len, &err) : -1;
    lmql__buf_free(&b);
    return rc;
}

/* Read TOKEN frames until the stream ends; returns tokens seen, -1 on error.
** *t_first gets the arrival time of the first. */
static int read_stream(struct lmql__lmtp_conn *c, double *t_first) {
    int n = 0;
    for (;;) {
        char *text;
        size_t len;
        struct lmql__err err;
        if (lmql__lmtp_recv(c, &text, &len, 600000, &err) != 1) {
            fprintf(stderr, "lmql-bench-serve: %s\n", err.msg);
            return -1;
        }
        bool bad = strstr(text, "\"error\"") != NULL, end = strstr(text, "\"finish_reason\": \"") != NULL;
        if (bad) fprintf(stderr, "lmql-bench-serve: %s\n", text);
        free(text);
        if (bad) return -1;
        if (n++ == 0 && t_first) *t_first = lmql__now();
        if (end) return n;
    }
}

struct client {
    pthread_t th;
    int k;
    pthread_barrier_t *go;
    double t_start, t_end;
    int n;
};

static void *client_main(void *arg) {
    struct client *cl = arg;
    struct lmql__err err;
    struct lmql__lmtp_conn *c = lmql__lmtp_connect(g_ep, NULL, 10000, &err);
    cl->n = -1;
    pthread_barrier_wait(cl->go);
    if (!c) return NULL;
    int32_t p[8];
    int np = prompt_of(cl->k, p);
    cl->t_start = lmql__now();
    if (!send_generate(c, 1, p, np, g_gen)) cl->n = read_stream(c, NULL);
    cl->t_end = lmql__now();
    lmql__lmtp_close(c);
    return NULL;
}

/* n clients at once; the aggregate tokens/s, or < 0. */
static double serve_run(int n) {
    struct client cl[8];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        cl[i] = (struct client){.k = i, .go = &go};
        pthread_create(&cl[i].th, NULL, client_main, &cl[i]);
    }
    pthread_barrier_wait(&go);
    double t0 = lmql__now(), t1 = t0;
    int total = 0;
    bool ok = true;
    for (int i = 0; i < n; i++) {
        pthread_join(cl[i].th, NULL);
        ok &= cl[i].n == g_gen;
        total += cl[i].n;
        if (cl[i].t_end > t1) t1 = cl[i].t_end;
    }
    pthread_barrier_destroy(&go);
    return ok ? total / (t1 - t0) : -1;
}

/* ------------------------------------------------------------ bare loop -- */

struct bare {
    struct llama_model *model;
    struct llama_context *ctx;
    struct llama_batch batch;
};

static int bare_open(struct bare *b, const char *path, int threads) {
    memset(b, 0, sizeof *b);
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    if (!(b->model = llama_model_load_from_file(path, mp))) return -1;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 4096;
    cp.n_batch = 512;
    cp.n_ubatch = 512;
    cp.n_threads = cp.n_threads_batch = threads;
    cp.n_seq_max = 8;
    cp.kv_unified = true;
    if (!(b->ctx = llama_init_from_model(b->model, cp))) return -1;
    b->batch = llama_batch_init(512, 0, 1);
    return 0;
}

static void bare_close(struct bare *b) {
    if (b->batch.token) llama_batch_free(b->batch);
    if (b->ctx) llama_free(b->ctx);
    if (b->model) llama_model_free(b->model);
}

static void add(struct llama_batch *bt, llama_token t, int pos, int seq, bool logits) {
    int i = bt->n_tokens++;
    bt->token[i] = t;
    bt->pos[i] = pos;
    bt->n_seq_id[i] = 1;
    bt->seq_id[i][0] = seq;
    bt->logits[i] = logits;
}

/* n sequences, g_gen greedy tokens each, one llama_decode per step for all:
** aggregate tokens/s, or < 0. */
static double bare_run(struct bare *b, int n) {
    int32_t nv = llama_vocab_n_tokens(llama_model_get_vocab(b->model));
    llama_memory_clear(llama_get_memory(b->ctx), true);
    double t0 = lmql__now();
    int32_t p[8], np = 0, row[8];
    llama_token next[8];
    b->batch.n_tokens = 0;
    for (int s = 0; s < n; s++) {
        np = prompt_of(s, p);
        for (int i = 0; i < np; i++) add(&b->batch, p[i], i, s, i == np - 1);
        row[s] = b->batch.n_tokens - 1;
    }
    for (int step = 0; step < g_gen; step++) {
        if (llama_decode(b->ctx, b->batch)) return -1;
        for (int s = 0; s < n; s++) {
            const float *lg = llama_get_logits_ith(b->ctx, row[s]);
            int32_t best = 0;
            for (int32_t t = 1; t < nv; t++)
                if (lg[t] > lg[best]) best = t;
            next[s] = best;
        }
        if (step == g_gen - 1) break;
        b->batch.n_tokens = 0;
        for (int s = 0; s < n; s++) {
            add(&b->batch, next[s], np + step, s, true);
            row[s] = s;
        }
    }
    return n * g_gen / (lmql__now() - t0);
}

/* --------------------------------------------------------------- prefix -- */

/* Seconds to the first token of a request with the shared prefix and tail. */
static double ttft(const int32_t *prefix, int n, int32_t tail) {
    struct lmql__err err;
    struct lmql__lmtp_conn *c = lmql__lmtp_connect(g_ep, NULL, 10000, &err);
    if (!c) return -1;
    int32_t *p = malloc(((size_t)n + 1) * sizeof *p);
    memcpy(p, prefix, (size_t)n * sizeof *p);
    p[n] = tail;
    double t0 = lmql__now(), t1 = -1;
    if (send_generate(c, 1, p, n + 1, 1) || read_stream(c, &t1) != 1) t1 = -1;
    free(p);
    lmql__lmtp_close(c);
    return t1 < 0 ? -1 : t1 - t0;
}

static void *serve_thread(void *S) {
    lmql_server_run(S);
    return NULL;
}

int main(int argc, char **argv) {
    const char *path = "build/models/bench-q4_0.gguf", *out_path = "bench/results/serve.json";
    int n_prefix = 1000, runs = 3;
    const char *poll = NULL;   /* the server's threadpool polling; default: the server's own (0) */
    g_gen = 64;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (a[0] != '-') { path = a; continue; }
        if (!v) { fprintf(stderr, "lmql-bench-serve: %s needs a value\n", a); return 2; }
        if (!strcmp(a, "--gen")) g_gen = atoi(v);
        else if (!strcmp(a, "--prefix")) n_prefix = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--out")) out_path = v;
        else if (!strcmp(a, "--poll")) poll = v;
        else { fprintf(stderr, "usage: lmql-bench-serve [MODEL.gguf] [--gen N] [--prefix N] [--runs N] [--poll N] [--out F]\n"); return 2; }
        i++;
    }
    if (g_gen < 2 || n_prefix < 16 || n_prefix > 3000 || runs < 1) { fprintf(stderr, "lmql-bench-serve: bad numbers\n"); return 2; }
    int threads = lmql__ncores();
    char id[1024], nt[16], err[1024];
    snprintf(id, sizeof id, "llama.cpp:%s", path);
    snprintf(nt, sizeof nt, "%d", threads);
    g_model_id = id;
    const char *keys[] = {"n_ctx", "n_seq_max", "n_threads", "poll"}, *vals[] = {"4096", "8", nt, poll};
    struct lmql_server_params sp;
    lmql_server_default_params(&sp);
    sp.model = id;
    sp.port = 0;   /* a free port */
    sp.quiet = 1;
    sp.param_keys = keys;
    sp.param_values = vals;
    sp.n_params = poll ? 4 : 3;
    struct lmql_server *S = lmql_server_open(&sp, err, sizeof err);
    if (!S) { fprintf(stderr, "lmql-bench-serve: %s\n", err); return 1; }
    snprintf(g_ep, sizeof g_ep, "127.0.0.1:%d", lmql_server_port(S));
    pthread_t th;
    pthread_create(&th, NULL, serve_thread, S);
    struct bare b;
    int rc = 1;
    if (bare_open(&b, path, threads)) { fprintf(stderr, "lmql-bench-serve: llama.cpp cannot load %s\n", path); goto done; }

    time_t t = time(NULL);
    char date[64];
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    printf("lmql-bench-serve  %d cores  %s  %s, %d tokens per client, best of %d runs\n", threads, date, path, g_gen, runs);
    int saved = g_gen;   /* warm both up */
    g_gen = 4;
    serve_run(1);
    bare_run(&b, 1);
    g_gen = saved;
    static const int ns[3] = {1, 4, 8};
    double srv[3] = {0}, bare[3] = {0};
    for (int r = 0; r < runs; r++)
        for (int i = 0; i < 3; i++) {
            double s = serve_run(ns[i]), x = bare_run(&b, ns[i]);
            if (s < 0 || x < 0) { fprintf(stderr, "lmql-bench-serve: a run failed\n"); goto done; }
            if (s > srv[i]) srv[i] = s;
            if (x > bare[i]) bare[i] = x;
        }
    printf("clients  server tok/s  vs 1 client  bare loop tok/s  server/bare  target >= 0.85\n");
    for (int i = 0; i < 3; i++)
        printf("%7d  %12.1f  %10.2fx  %15.1f  %11.3f  %s\n", ns[i], srv[i], srv[i] / srv[0], bare[i], srv[i] / bare[i],
               srv[i] / bare[i] >= 0.85 ? "pass" : "MISS");

    int32_t *prefix = malloc((size_t)n_prefix * sizeof *prefix);
    prefix[0] = 1;
    for (int i = 1; i < n_prefix; i++) prefix[i] = 300 + (i * 37) % 5000;
    double t_first = ttft(prefix, n_prefix, 5001), t_second = ttft(prefix, n_prefix, 6002);
    free(prefix);
    if (t_first < 0 || t_second < 0) { fprintf(stderr, "lmql-bench-serve: the prefix requests failed\n"); goto done; }
    printf("time to first token, %d-token prompt: first %.3f s, second (same prefix, new last token) %.3f s: %.1fx  "
           "target >= 5x %s\n", n_prefix + 1, t_first, t_second, t_first / t_second, t_first / t_second >= 5 ? "pass" : "MISS");

    FILE *f = fopen(out_path, "w");
    if (f) {
        fprintf(f, "{\n  \"date\": \"%s\", \"cores\": %d, \"model\": \"%s\", \"tokens_per_client\": %d, \"runs\": %d,\n  \"clients\": [",
                date, threads, path, g_gen, runs);
        for (int i = 0; i < 3; i++)
            fprintf(f, "%s\n    {\"clients\": %d, \"server_tok_s\": %.2f, \"bare_tok_s\": %.2f, \"ratio\": %.4f}", i ? "," : "",
                    ns[i], srv[i], bare[i], srv[i] / bare[i]);
        fprintf(f, "\n  ],\n  \"prefix\": {\"prompt_tokens\": %d, \"first_s\": %.4f, \"second_s\": %.4f, \"speedup\": %.2f}\n}\n",
                n_prefix + 1, t_first, t_second, t_first / t_second);
        fclose(f);
        printf("wrote %s\n", out_path);
    }
    rc = 0;
done:
    bare_close(&b);
    lmql_server_stop(S);
    pthread_join(th, NULL);
    lmql_server_free(S);
    return rc;
}
