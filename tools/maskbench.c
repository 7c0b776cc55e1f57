/*
** lmql-maskbench: our grammar engine measured the way MaskBench
** (guidance-ai/jsonschemabench, folder maskbench) measures llguidance,
** XGrammar and llama.cpp. bench/maskbench.py drives it; see the MaskBench
** section of docs/BENCHMARKS.md.
**
**   lmql-maskbench --vocab VOCAB.gguf [--threads N] [--free-ws] [--reuse]
**   lmql-maskbench --vocab VOCAB.gguf --tokenize
**   lmql-maskbench --vocab VOCAB.gguf --grammar-sampler STEPS [--free-ws]
**   lmql-maskbench --vocab VOCAB.gguf --gbnf-check [--free-ws]
**   lmql-maskbench --gbnf SCHEMA.json [--free-ws]
**
** Jobs on stdin, one a line: SCHEMA_FILE <TAB> TOKENS_FILE. The schema file
** holds the schema alone as JSON; the tokens file one line per instance,
** its token ids separated by spaces. Answers on stdout, JSON lines, flushed
** after the compile line and after each job:
**
**   {"compile_us": T, "grammar_us": G, "first_mask_us": F, "nonterminals": N, "terminals": M}
**       G: schema text to grammar, plus the matcher and its start state
**       (what MaskBench times as TTFM: its engines' compile call); F: the
**       first mask from the start state; T = G + F.
**   or {"compile_error": "why"}
**   then per instance, in order:
**   {"test": I, "rejected_at": K, "us": [...], "cpu_us": [...]}   (+ "accepting": B when K is -1)
**   {"done": true}
**   A job that cannot be read answers {"error": "why"} and {"done": true};
**   an instance whose matcher fails (out of memory, a mask that let a token
**   through which the matcher then refused) gets "error": "why".
**
** Step j of an instance, as MaskBench's runner does it (compute_mask then
** commit_token, timed together): compute the full mask in the current
** configuration (lmql__gm_mask), check token j in it, and when allowed
** advance by the token's bytes. K is the index of the first token the mask
** refused, or -1 when every one was allowed; "us" (wall clock) and "cpu_us"
** (this thread's CPU time, less the CPU clock's median cost as measured
** at start) have one entry per step taken, the refused one
** included. After the last token of an instance that was allowed to its
** end, "accepting" says whether the bytes are a whole sentence.
**
** Each instance gets a fresh matcher (created outside the timing), as
** MaskBench's engines reset per instance (XGrammar makes a new matcher,
** llguidance copies the compiled one): nothing an instance computed is
** reused by the next. --reuse keeps one matcher per schema instead (its
** caches warm across instances, restarting from the start configuration).
** --threads N spreads a job's instances over N threads, each with its own
** matcher (the grammar is shared, read only); MaskBench runs every engine on
** one thread per sequence, which is the default here.
**
** --free-ws compiles with any JSON whitespace between tokens (the default
** grammar admits exactly json.dumps's separators, which is how the
** instances are written).
**
** --grammar-sampler: the same jobs against llama.cpp's grammar sampler on
** the schema's grammar as GBNF (see vs_job below). --gbnf: the grammar of
** one schema as GBNF text, for users and for checking the export by eye;
** --gbnf-check: the export compiled back by our GBNF parser, checked on
** every instance (see check_job below).
**
** --tokenize: each stdin line is a JSON string literal; each stdout line
** the token ids of its text (the model's tokenizer, no BOS, special-token
** text not parsed), separated by spaces.
*/
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <math.h>

#include "bench_util.h"
#include "gbnf.h"
#include "grammar.h"
#include "jsonschema.h"
#include "lmql_int.h"
#include "model.h"
#include "trie.h"

static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Reading the thread's CPU clock is a system call (one to two microseconds
** on a VM): the median cost of an empty timed step, measured at start, is
** taken off every cpu_us figure. (The wall clock is read inside the CPU
** clock readings, so "us" does not include it.) */
static double g_cpu_overhead;

static void calibrate_cpu_clock(void) {
    enum { N = 2001 };
    static double d[N];
    for (int i = 0; i < N; i++) {
        double c0 = cpu_now();
        double w0 = lmql__now(), w1 = lmql__now();
        double c1 = cpu_now();
        (void)w0, (void)w1;
        d[i] = c1 - c0;
    }
    g_cpu_overhead = bench_median(d, N);
}

static void die_oom(void) {
    fprintf(stderr, "lmql-maskbench: out of memory\n");
    exit(1);
}

/* The whole file at path, NUL-terminated; NULL with errno set. */
static char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    struct lmql__buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (lmql__buf_add(&b, chunk, k)) {
            fclose(f);
            lmql__buf_free(&b);
            errno = ENOMEM;
            return NULL;
        }
    }
    bool bad = ferror(f);
    fclose(f);
    if (bad) {
        lmql__buf_free(&b);
        errno = EIO;
        return NULL;
    }
    if (!b.data && !(b.data = calloc(1, 1))) {   /* an empty file */
        errno = ENOMEM;
        return NULL;
    }
    *n = b.len;
    return b.data;
}

/* ------------------------------------------------------------- instances -- */

struct instance {
    int32_t *toks;
    int32_t  n;
    /* results */
    int32_t  rejected_at;
    int32_t  n_steps;
    bool     accepting;
    double  *us, *cpu_us;
    const char *error;
};

struct job {
    const struct lmql_grammar *g;
    const struct lmql_trie *trie;
    const struct lmql__vocab *v;
    struct instance *inst;
    int n_inst;
    bool reuse;
    _Atomic int next;
};

/* Parse one line of token ids into inst->toks. Returns 0 or -1 (bad text). */
static int parse_tokens(const char *s, size_t len, struct instance *inst) {
    size_t i = 0, cap = 0;
    inst->toks = NULL;
    inst->n = 0;
    while (i < len) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r')) i++;
        if (i >= len) break;
        if (s[i] < '0' || s[i] > '9') return -1;
        long long x = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            x = x * 10 + (s[i] - '0');
            if (x > INT32_MAX) return -1;
            i++;
        }
        if ((size_t)inst->n == cap) {
            cap = cap ? cap * 2 : 64;
            int32_t *p = realloc(inst->toks, cap * sizeof *p);
            if (!p) die_oom();
            inst->toks = p;
        }
        inst->toks[inst->n++] = (int32_t)x;
    }
    return 0;
}

/* Run one instance on matcher m (fresh, or reused from its start). */
static void run_instance(struct lmql__gm *m, const struct job *jb, struct instance *in) {
    int32_t n_vocab = jb->v->n_tokens;
    in->rejected_at = -1;
    in->n_steps = 0;
    in->accepting = false;
    in->error = NULL;
    in->us = malloc(((size_t)in->n + 1) * sizeof *in->us);
    in->cpu_us = malloc(((size_t)in->n + 1) * sizeof *in->cpu_us);
    if (!in->us || !in->cpu_us) die_oom();
    int32_t c = lmql__gm_start(m);
    if (c < 0) { in->error = "out of memory (start)"; return; }
    for (int32_t j = 0; j < in->n; j++) {
        int32_t t = in->toks[j];
        double c0 = cpu_now();
        double w0 = lmql__now();
        const uint8_t *mask = lmql__gm_mask(m, c);
        bool ok = false;
        int32_t c2 = c;
        if (mask) {
            ok = t >= 0 && t < n_vocab && mask[t];
            if (ok) {
                uint32_t len;
                const char *piece = lmql__vocab_piece(jb->v, t, &len);
                c2 = lmql__gm_feed(m, c, piece, len);
            }
        }
        double w1 = lmql__now();
        double c1 = cpu_now();
        in->us[in->n_steps] = (w1 - w0) * 1e6;
        in->cpu_us[in->n_steps] = c1 - c0 > g_cpu_overhead ? (c1 - c0 - g_cpu_overhead) * 1e6 : 0;
        in->n_steps++;
        if (!mask) { in->error = "out of memory (mask)"; in->rejected_at = j; return; }
        if (!ok) { in->rejected_at = j; return; }
        if (c2 == -2) { in->error = "out of memory (feed)"; in->rejected_at = j; return; }
        if (c2 < 0) { in->error = "the mask allowed a token the matcher then refused"; in->rejected_at = j; return; }
        c = c2;
    }
    in->accepting = lmql__gm_accepting(m, c);
}

static void *worker(void *arg) {
    struct job *jb = arg;
    struct lmql__gm *shared = NULL;
    for (;;) {
        int i = atomic_fetch_add(&jb->next, 1);
        if (i >= jb->n_inst) break;
        struct instance *in = &jb->inst[i];
        struct lmql__gm *m = shared;
        if (!m) m = lmql__gm_new(jb->g, jb->trie);
        if (!m) {
            in->error = "out of memory (matcher)";
            in->rejected_at = -1;
            in->n_steps = 0;
            continue;
        }
        run_instance(m, jb, in);
        if (jb->reuse) shared = m;
        else lmql__gm_free(m);
    }
    lmql__gm_free(shared);
    return NULL;
}

/* ------------------------------------------------------------------ jobs -- */

static void out_err(const char *key, const char *msg) {
    struct lmql__buf b = {0};
    if (lmql__buf_addf(&b, "{\"%s\": ", key) || lmql__buf_json_str(&b, msg, strlen(msg)) || lmql__buf_adds(&b, "}\n"))
        die_oom();
    fputs(b.data, stdout);
    lmql__buf_free(&b);
}

static void out_times(struct lmql__buf *b, const char *key, const double *v, int n) {
    if (lmql__buf_addf(b, ", \"%s\": [", key)) die_oom();
    for (int i = 0; i < n; i++)
        if (lmql__buf_addf(b, i ? ", %.3f" : "%.3f", v[i])) die_oom();
    if (lmql__buf_adds(b, "]")) die_oom();
}

struct opts {
    int threads;
    bool free_ws;
    bool reuse;
};

static void run_job(const char *schema_path, const char *tokens_path, struct lmql__vocab *v,
                    const struct lmql_trie *trie, const struct opts *o) {
    size_t n_schema = 0, n_toks = 0;
    char *schema = read_file(schema_path, &n_schema);
    char msg[1200];
    if (!schema) {
        snprintf(msg, sizeof msg, "%s: %s", schema_path, strerror(errno));
        out_err("error", msg);
        goto done;
    }
    char *toks = read_file(tokens_path, &n_toks);
    if (!toks) {
        snprintf(msg, sizeof msg, "%s: %s", tokens_path, strerror(errno));
        out_err("error", msg);
        free(schema);
        goto done;
    }

    /* The instances, read before any timing. */
    struct instance *inst = NULL;
    int n_inst = 0, cap = 0;
    for (size_t i = 0; i < n_toks;) {
        const char *nl = memchr(toks + i, '\n', n_toks - i);
        size_t e = nl ? (size_t)(nl - toks) : n_toks;
        if (n_inst == cap) {
            cap = cap ? cap * 2 : 16;
            struct instance *p = realloc(inst, (size_t)cap * sizeof *p);
            if (!p) die_oom();
            inst = p;
        }
        memset(&inst[n_inst], 0, sizeof inst[n_inst]);
        if (parse_tokens(toks + i, e - i, &inst[n_inst])) {
            snprintf(msg, sizeof msg, "%s: line %d: not token ids", tokens_path, n_inst + 1);
            out_err("error", msg);
            for (int k = 0; k <= n_inst; k++) free(inst[k].toks);
            free(inst);
            free(toks);
            free(schema);
            goto done;
        }
        n_inst++;
        i = e + 1;
    }
    free(toks);

    /* Compile: schema text to grammar, a matcher and its start (what
    ** MaskBench's compile call does), then the first mask. */
    struct lmql__js_opts jo = {.free_ws = o->free_ws};
    struct lmql__err err = {0};
    double t0 = lmql__now();
    struct lmql_grammar *g = lmql__jsonschema_compile_text(schema, n_schema, &jo, &err);
    struct lmql__gm *m0 = NULL;
    int32_t c0 = -2;
    if (g) {
        m0 = lmql__gm_new(g, trie);
        if (m0) c0 = lmql__gm_start(m0);
    }
    double t1 = lmql__now();
    const uint8_t *mask0 = c0 >= 0 ? lmql__gm_mask(m0, c0) : NULL;
    double t2 = lmql__now();
    free(schema);
    if (!g || !m0 || c0 < 0 || !mask0) {
        out_err("compile_error", !g ? (err.msg[0] ? err.msg : "compile failed") : "out of memory");
        lmql__gm_free(m0);
        lmql__grammar_free(g);
        for (int k = 0; k < n_inst; k++) free(inst[k].toks);
        free(inst);
        goto done;
    }
    lmql__gm_free(m0);
    printf("{\"compile_us\": %.3f, \"grammar_us\": %.3f, \"first_mask_us\": %.3f, \"nonterminals\": %d, "
           "\"terminals\": %d}\n",
           (t2 - t0) * 1e6, (t1 - t0) * 1e6, (t2 - t1) * 1e6, (int)lmql__grammar_n_nonterminals(g),
           (int)lmql__grammar_n_terminals(g));
    fflush(stdout);

    struct job jb = {.g = g, .trie = trie, .v = v, .inst = inst, .n_inst = n_inst, .reuse = o->reuse};
    atomic_init(&jb.next, 0);
    int nt = o->threads < n_inst ? o->threads : n_inst;
    if (nt <= 1) {
        worker(&jb);
    } else {
        pthread_t *th = calloc((size_t)nt, sizeof *th);
        if (!th) die_oom();
        int started = 0;
        for (; started < nt; started++)
            if (pthread_create(&th[started], NULL, worker, &jb)) break;
        if (started == 0) worker(&jb);
        for (int k = 0; k < started; k++) pthread_join(th[k], NULL);
        free(th);
    }

    struct lmql__buf b = {0};
    for (int i = 0; i < n_inst; i++) {
        struct instance *in = &inst[i];
        b.len = 0;
        if (lmql__buf_addf(&b, "{\"test\": %d, \"rejected_at\": %d", i, (int)in->rejected_at)) die_oom();
        out_times(&b, "us", in->us, in->n_steps);
        out_times(&b, "cpu_us", in->cpu_us, in->n_steps);
        if (in->rejected_at < 0 && !in->error && lmql__buf_addf(&b, ", \"accepting\": %s", in->accepting ? "true" : "false"))
            die_oom();
        if (in->error) {
            if (lmql__buf_adds(&b, ", \"error\": ") || lmql__buf_json_str(&b, in->error, strlen(in->error))) die_oom();
        }
        if (lmql__buf_adds(&b, "}\n")) die_oom();
        fputs(b.data, stdout);
        free(in->toks);
        free(in->us);
        free(in->cpu_us);
    }
    lmql__buf_free(&b);
    free(inst);
    lmql__grammar_free(g);
done:
    fputs("{\"done\": true}\n", stdout);
    fflush(stdout);
}

/* ------------------------------------------ against llama.cpp's sampler -- */

/*
** --grammar-sampler N: per job, the schema's grammar exported as GBNF
** (lmql__grammar_gbnf) and given to llama.cpp's grammar sampler, then the
** first N tokens of the job's first instance through both engines, step by
** step: ours as above (mask, check, advance), llama.cpp's as MaskBench times
** it (llama_sampler_apply on every candidate, then llama_sampler_accept).
** Both masks are compared at each step, over the tokens with text (control
** and end-of-generation tokens left out: llama.cpp matches a control
** token's name as text, ours never offers one). Answers one line:
**   {"gbnf_bytes", "gbnf_us", "llama": "ok" | "refused", "llama_init_us",
**    "steps", "ours_us": [...], "llama_us": [...], "ours_rejected_at",
**    "llama_rejected_at", "diff_steps", "diff_tokens", "diffs": [[step, token, ours], ...]}
** or {"compile_error": why} / {"gbnf_error": why}, then {"done": true}.
** A token one engine refuses ends the instance there (llama.cpp aborts the
** process when it is made to accept a token it refused).
*/
struct vs {
    const struct llama_vocab *lv;
    struct bench_cands cands;
    uint8_t *skip;           /* per token: left out of the mask comparison */
    uint8_t *ours;           /* our mask, copied before the matcher advances */
    char llama_err[512];     /* llama.cpp's last error message */
};

static struct vs g_vs;

static void vs_log(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR) snprintf(g_vs.llama_err, sizeof g_vs.llama_err, "%s", text);
}

static int vs_init(const char *vocab, const struct lmql__vocab *v) {
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *lm = llama_model_load_from_file(vocab, mp);
    if (!lm) return -1;
    g_vs.lv = llama_model_get_vocab(lm);
    if (bench_cands_init(&g_vs.cands, g_vs.lv) || g_vs.cands.n != v->n_tokens) return -1;
    g_vs.skip = calloc((size_t)v->n_tokens, 1);
    g_vs.ours = calloc((size_t)v->n_tokens, 1);
    if (!g_vs.skip || !g_vs.ours) die_oom();
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        lmql__vocab_piece(v, t, &len);
        g_vs.skip[t] = len == 0 || llama_vocab_is_control(g_vs.lv, t) || llama_vocab_is_eog(g_vs.lv, t);
    }
    llama_log_set(vs_log, NULL);
    return 0;
}

static void vs_job(const char *schema_path, const char *tokens_path, struct lmql__vocab *v, const struct lmql_trie *trie,
                   const struct opts *o, int max_steps) {
    size_t n_schema = 0, n_toks = 0;
    char *schema = read_file(schema_path, &n_schema), *toks = schema ? read_file(tokens_path, &n_toks) : NULL;
    struct instance in = {0};
    struct lmql__buf gbnf = {0}, b = {0};
    struct lmql_grammar *g = NULL;
    struct lmql__gm *m = NULL;
    struct llama_sampler *smp = NULL;
    double *ours_us = NULL, *llama_us = NULL;
    if (!toks) {
        out_err("error", strerror(errno));
        goto done;
    }
    const char *nl = memchr(toks, '\n', n_toks);
    if (parse_tokens(toks, nl ? (size_t)(nl - toks) : n_toks, &in)) {
        out_err("error", "not token ids");
        goto done;
    }
    struct lmql__js_opts jo = {.free_ws = o->free_ws};
    struct lmql__err err = {0};
    if (!(g = lmql__jsonschema_compile_text(schema, n_schema, &jo, &err))) {
        out_err("compile_error", err.msg[0] ? err.msg : "compile failed");
        goto done;
    }
    double t0 = lmql__now();
    if (lmql__grammar_gbnf(g, &gbnf, &err) || lmql__buf_add(&gbnf, "", 1)) {
        out_err("gbnf_error", err.msg);
        goto done;
    }
    double t1 = lmql__now();
    g_vs.llama_err[0] = 0;
    smp = llama_sampler_init_grammar(g_vs.lv, gbnf.data, "root");
    double t2 = lmql__now();
    if (lmql__buf_addf(&b, "{\"gbnf_bytes\": %zu, \"gbnf_us\": %.1f, \"llama_init_us\": %.1f, \"llama\": \"%s\"",
                       gbnf.len - 1, (t1 - t0) * 1e6, (t2 - t1) * 1e6, smp ? "ok" : "refused"))
        die_oom();
    if (!smp) {
        if (lmql__buf_adds(&b, ", \"llama_error\": ") || lmql__buf_json_str(&b, g_vs.llama_err, strlen(g_vs.llama_err)))
            die_oom();
        goto answer;
    }
    if (!(m = lmql__gm_new(g, trie))) die_oom();
    int32_t c = lmql__gm_start(m), n = in.n < max_steps ? in.n : max_steps, steps = 0;
    int32_t ours_rej = -1, llama_rej = -1, diff_steps = 0, diff_tokens = 0, n_diffs = 0;
    ours_us = malloc(((size_t)n + 1) * sizeof *ours_us);
    llama_us = malloc(((size_t)n + 1) * sizeof *llama_us);
    if (c < 0 || !ours_us || !llama_us) die_oom();
    struct lmql__buf diffs = {0};
    for (int32_t j = 0; j < n; j++, steps++) {
        int32_t t = in.toks[j];
        double w0 = lmql__now();
        const uint8_t *mask = lmql__gm_mask(m, c);
        double w1 = lmql__now();
        if (!mask) die_oom();
        memcpy(g_vs.ours, mask, (size_t)v->n_tokens);
        double w2 = lmql__now();
        bool ok = t >= 0 && t < v->n_tokens && g_vs.ours[t];
        int32_t c2 = c;
        if (ok) {
            uint32_t len;
            const char *piece = lmql__vocab_piece(v, t, &len);
            c2 = lmql__gm_feed(m, c, piece, len);
        }
        ours_us[j] = (w1 - w0 + lmql__now() - w2) * 1e6;
        llama_token_data_array arr;
        llama_us[j] = bench_grammar_apply(&g_vs.cands, smp, &arr, NULL) * 1e6;
        int32_t d = 0;
        for (int32_t k = 0; k < v->n_tokens; k++) {
            if (g_vs.skip[k] || (g_vs.ours[k] != 0) == (arr.data[k].logit != -INFINITY)) continue;
            if (d++ == 0 && n_diffs < 8) {   /* the first of each step, for the report */
                if (lmql__buf_addf(&diffs, "%s[%d, %d, %d]", n_diffs ? ", " : "", (int)j, (int)k, g_vs.ours[k])) die_oom();
                n_diffs++;
            }
        }
        diff_steps += d > 0;
        diff_tokens += d;
        bool l_ok = t >= 0 && t < v->n_tokens && arr.data[t].logit != -INFINITY;
        if (!ok) ours_rej = j;
        if (!l_ok) llama_rej = j;
        if (!ok || !l_ok || c2 < 0) {
            steps++;
            break;
        }
        double a0 = lmql__now();
        llama_sampler_accept(smp, t);
        llama_us[j] += (lmql__now() - a0) * 1e6;
        c = c2;
    }
    if (lmql__buf_addf(&b, ", \"steps\": %d, \"ours_rejected_at\": %d, \"llama_rejected_at\": %d, \"diff_steps\": %d, "
                           "\"diff_tokens\": %d, \"diffs\": [%s]",
                       (int)steps, (int)ours_rej, (int)llama_rej, (int)diff_steps, (int)diff_tokens,
                       diffs.data ? diffs.data : ""))
        die_oom();
    lmql__buf_free(&diffs);
    out_times(&b, "ours_us", ours_us, steps);
    out_times(&b, "llama_us", llama_us, steps);
answer:
    if (lmql__buf_adds(&b, "}\n")) die_oom();
    fputs(b.data, stdout);
done:
    if (smp) llama_sampler_free(smp);
    lmql__gm_free(m);
    lmql__grammar_free(g);
    lmql__buf_free(&gbnf);
    lmql__buf_free(&b);
    free(ours_us);
    free(llama_us);
    free(in.toks);
    free(schema);
    free(toks);
    fputs("{\"done\": true}\n", stdout);
    fflush(stdout);
}

/*
** --gbnf-check: per job, the schema's grammar exported as GBNF and compiled
** back by our GBNF front end (gbnf.c); every instance's text (its tokens'
** bytes) must get the same verdict from both. Answers
**   {"instances": N, "accepted": A, "differ": [i, ...]} or
**   {"compile_error"} / {"gbnf_error"} / {"reparse_error": why}, then {"done": true}.
*/
static void check_job(const char *schema_path, const char *tokens_path, struct lmql__vocab *v, const struct opts *o) {
    size_t n_schema = 0, n_toks = 0;
    char *schema = read_file(schema_path, &n_schema), *toks = schema ? read_file(tokens_path, &n_toks) : NULL;
    struct lmql__buf gbnf = {0}, text = {0}, b = {0};
    struct lmql_grammar *g = NULL, *back = NULL;
    struct lmql__err err = {0};
    struct lmql__js_opts jo = {.free_ws = o->free_ws};
    if (!toks) {
        out_err("error", strerror(errno));
    } else if (!(g = lmql__jsonschema_compile_text(schema, n_schema, &jo, &err))) {
        out_err("compile_error", err.msg[0] ? err.msg : "compile failed");
    } else if (lmql__grammar_gbnf(g, &gbnf, &err)) {
        out_err("gbnf_error", err.msg);
    } else if (!(back = lmql__gbnf_compile(gbnf.data, gbnf.len, "root", &err))) {
        char msg[1100];
        snprintf(msg, sizeof msg, "%d:%d: %.1024s", err.pos.line, err.pos.col, err.msg);
        out_err("reparse_error", msg);
    } else {
        int n = 0, accepted = 0, n_differ = 0;
        if (lmql__buf_adds(&b, "{\"differ\": [")) die_oom();
        for (size_t i = 0; i < n_toks; n++) {
            const char *nl = memchr(toks + i, '\n', n_toks - i);
            size_t e = nl ? (size_t)(nl - toks) : n_toks;
            struct instance in = {0};
            if (parse_tokens(toks + i, e - i, &in)) die_oom();
            text.len = 0;
            for (int32_t j = 0; j < in.n; j++) {
                uint32_t len = 0;
                const char *piece = in.toks[j] >= 0 && in.toks[j] < v->n_tokens ? lmql__vocab_piece(v, in.toks[j], &len) : "";
                if (lmql__buf_add(&text, piece, len)) die_oom();
            }
            free(in.toks);
            int x = lmql__grammar_accepts(g, text.data ? text.data : "", text.len);
            int y = lmql__grammar_accepts(back, text.data ? text.data : "", text.len);
            accepted += x == 1;
            if (x != y && lmql__buf_addf(&b, n_differ++ ? ", %d" : "%d", n)) die_oom();
            i = e + 1;
        }
        if (lmql__buf_addf(&b, "], \"instances\": %d, \"accepted\": %d, \"gbnf_bytes\": %zu}\n", n, accepted, gbnf.len))
            die_oom();
        fputs(b.data, stdout);
    }
    lmql__grammar_free(back);
    lmql__grammar_free(g);
    lmql__buf_free(&gbnf);
    lmql__buf_free(&text);
    lmql__buf_free(&b);
    free(schema);
    free(toks);
    fputs("{\"done\": true}\n", stdout);
    fflush(stdout);
}

/* -------------------------------------------------------------- tokenize -- */

static int tokenize_lines(struct lmql__model *m) {
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int32_t *toks = NULL;
    int32_t tcap = 0;
    struct lmql__buf text = {0}, out = {0};
    long lineno = 0;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
        size_t i = 0;
        while (i < (size_t)n && line[i] == ' ') i++;
        text.len = 0;
        const char *why = i < (size_t)n && line[i] == '"' ? lmql__json_unescape(line, (size_t)n, &i, &text)
                                                          : "not a JSON string";
        if (why) {
            fprintf(stderr, "lmql-maskbench: stdin line %ld: %s\n", lineno, why);
            return 1;
        }
        struct lmql__err err = {0};
        int32_t k;
        for (;;) {
            k = m->ops->tokenize(m, text.len ? text.data : "", text.len, false, false, toks, tcap, &err);
            if (k == INT32_MIN) {
                fprintf(stderr, "lmql-maskbench: stdin line %ld: %s\n", lineno, err.msg);
                return 1;
            }
            if (k >= 0) break;
            tcap = -k;
            int32_t *p = realloc(toks, (size_t)tcap * sizeof *p);
            if (!p) die_oom();
            toks = p;
        }
        out.len = 0;
        for (int32_t j = 0; j < k; j++)
            if (lmql__buf_addf(&out, j ? " %d" : "%d", (int)toks[j])) die_oom();
        if (lmql__buf_adds(&out, "\n")) die_oom();
        fputs(out.data, stdout);
    }
    free(line);
    free(toks);
    lmql__buf_free(&text);
    lmql__buf_free(&out);
    return fflush(stdout) ? 1 : 0;
}

/* ------------------------------------------------------------------ main -- */

static int usage(void) {
    fprintf(stderr, "usage: lmql-maskbench --vocab VOCAB.gguf [--threads N] [--free-ws] [--reuse]\n"
                    "       lmql-maskbench --vocab VOCAB.gguf --tokenize\n"
                    "       lmql-maskbench --vocab VOCAB.gguf --grammar-sampler STEPS [--free-ws]\n"
                    "       lmql-maskbench --vocab VOCAB.gguf --gbnf-check [--free-ws]\n"
                    "       lmql-maskbench --gbnf SCHEMA.json [--free-ws]\n"
                    "jobs on stdin: SCHEMA_FILE<TAB>TOKENS_FILE per line; JSON lines on stdout\n");
    return 2;
}

/* --gbnf: the schema's grammar as GBNF on stdout (no vocabulary needed). */
static int print_gbnf(const char *path, bool free_ws) {
    size_t n = 0;
    char *text = read_file(path, &n);
    if (!text) {
        fprintf(stderr, "lmql-maskbench: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct lmql__js_opts jo = {.free_ws = free_ws};
    struct lmql__err err = {0};
    struct lmql_grammar *g = lmql__jsonschema_compile_text(text, n, &jo, &err);
    struct lmql__buf out = {0};
    int rc = !g || lmql__grammar_gbnf(g, &out, &err);
    if (rc) fprintf(stderr, "lmql-maskbench: %s: %s\n", path, err.msg);
    else fwrite(out.data, 1, out.len, stdout);
    lmql__buf_free(&out);
    lmql__grammar_free(g);
    free(text);
    return rc;
}

int main(int argc, char **argv) {
    const char *vocab = NULL, *gbnf = NULL;
    bool tokenize = false;
    int vs_steps = 0;
    bool gbnf_check = false;
    struct opts o = {.threads = 1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--vocab") && i + 1 < argc) vocab = argv[++i];
        else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *e;
            long t = strtol(argv[++i], &e, 10);
            if (*e || t < 1 || t > 1024) return usage();
            o.threads = (int)t;
        } else if (!strcmp(a, "--tokenize")) tokenize = true;
        else if (!strcmp(a, "--free-ws")) o.free_ws = true;
        else if (!strcmp(a, "--gbnf") && i + 1 < argc) gbnf = argv[++i];
        else if (!strcmp(a, "--gbnf-check")) gbnf_check = true;
        else if (!strcmp(a, "--grammar-sampler") && i + 1 < argc) {
            vs_steps = atoi(argv[++i]);
            if (vs_steps < 1) return usage();
        }
        else if (!strcmp(a, "--reuse")) o.reuse = true;
        else return usage();
    }
    if (gbnf) return print_gbnf(gbnf, o.free_ws);
    if (!vocab) return usage();

    struct lmql__err err = {0};
    struct lmql__kv kv[1] = {{"vocab_only", "true"}};
    struct lmql__model *m = lmql__llama_open(vocab, kv, 1, &err);
    if (!m) {
        fprintf(stderr, "lmql-maskbench: %s: %s\n", vocab, err.msg);
        return 1;
    }
    if (tokenize) {
        int rc = tokenize_lines(m);
        lmql__model_free(m);
        return rc;
    }
    calibrate_cpu_clock();
    /* Built once, before any thread shares the vocabulary. */
    struct lmql_trie *trie = lmql__vocab_share(m->vocab);
    if (!trie) die_oom();
    if (vs_steps && vs_init(vocab, m->vocab)) {
        fprintf(stderr, "lmql-maskbench: llama.cpp could not load %s\n", vocab);
        return 1;
    }

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (n == 0) continue;
        char *tab = strchr(line, '\t');
        if (!tab) {
            out_err("error", "a job is SCHEMA_FILE<TAB>TOKENS_FILE");
            fputs("{\"done\": true}\n", stdout);
            fflush(stdout);
            continue;
        }
        *tab = 0;
        if (gbnf_check) check_job(line, tab + 1, m->vocab, &o);
        else if (vs_steps) vs_job(line, tab + 1, m->vocab, trie, &o, vs_steps);
        else run_job(line, tab + 1, m->vocab, trie, &o);
    }
    free(line);
    lmql__model_free(m);
    return 0;
}
