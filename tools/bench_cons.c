/*
** lmql-bench-cons: what constraints cost.
**
**   lmql-bench-cons [--vocab spm|bpe|all] [--seqs N] [--grammar-steps N]
**                   [--runs N] [--threads N] [--skip-e2e] [--out FILE.json]
**
** Run from the repository root (it reads build/vocab and build/models).
**
**  1. Mask time per step of the constraint engine (lmql__cons_mask) for six
**     where clauses on the llama-spm (32k) and llama-bpe (128k)
**     vocabularies. Generation is simulated: at each step the mask is
**     computed (timed), then a uniformly random allowed token is appended,
**     or the value ends (EOS) when that is allowed. A fresh constraint is
**     compiled per sequence, as the interpreter does per hole, so the trie
**     caches start cold at each sequence as they do in a real query.
**  2. The same languages as GBNF through llama.cpp's grammar sampler on the
**     same vocabularies and the same simulation: per step the time of
**     llama_sampler_apply on the full vocabulary plus llama_sampler_accept
**     of the chosen token. Copying the candidate array from a template is
**     timed apart and not included.
**  3. End to end on the bench model: a 128-token constrained query through
**     the public API against a bare llama.cpp greedy loop over the same
**     model with the same threads, interleaved, median of the runs.
**     llama.cpp's threads spin at graph barriers, so with as many threads
**     as cores any other busy process slows runs several times over, and
**     unevenly: on a shared machine use --threads 1 for a stable ratio.
**  4. A JSON template and a JSON regex on the tiny model: generated tokens,
**     model queries, forward passes and forced tokens.
**
** Prints a table and writes the figures as JSON (bench/results/...).
** Targets are reported as pass/miss, never asserted.
*/
#include <lmql.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <ggml-backend.h>
#include <llama.h>

#include "arena.h"
#include "constraint.h"
#include "diag.h"
#include "interp.h"
#include "bench_util.h"
#include "model.h"
#include "parse.h"
#include "trie.h"
#include "value.h"

/* ------------------------------------------------------------ helpers -- */

/* A growing list of timings in seconds. */
struct samples {
    double *v;
    size_t n, cap;
};

static int samples_add(struct samples *s, double x) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        double *p = realloc(s->v, cap * sizeof *p);
        if (!p) return -1;
        s->v = p;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

/* Nearest-rank percentile (p in 0..1); sorts the samples. 0 when empty. */
static double samples_pct(struct samples *s, double p) {
    if (s->n == 0) return 0;
    qsort(s->v, s->n, sizeof *s->v, bench_cmp_double);
    size_t k = (size_t)ceil(p * (double)s->n);
    return s->v[k ? k - 1 : 0];
}

static double uniform(uint64_t *rng) { return (double)(lmql__rng_next(rng) >> 11) / 9007199254740992.0; }

/* "2 cores, AMD EPYC ..." from /proc/cpuinfo. */
static void machine_line(char *out, size_t cap) {
    char model[256] = "unknown CPU", line[512];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10)) continue;
        const char *c = strchr(line, ':');
        if (!c) continue;
        for (c++; *c == ' ' || *c == '\t'; c++) {}
        snprintf(model, sizeof model, "%s", c);
        model[strcspn(model, "\n")] = 0;
        break;
    }
    if (f) fclose(f);
    snprintf(out, cap, "%d cores, %s", lmql__ncores(), model);
}

/* ---------------------------------------------------------- workloads -- */

/* Twenty realistic phrases for `X in [...]`: their common prefixes ("the",
** "I", "see", "the meeting") make the phrase set branch after a few tokens. */
static const char *const k_phrases[20] = {
    "the weather is nice today",      "I would like a cup of coffee",  "please send me the report",
    "see you tomorrow morning",       "thank you very much",           "the meeting was moved to Friday",
    "how much does it cost",          "I am not sure about that",      "let me check my calendar",
    "the train is running late",      "could you repeat the question", "we need more information",
    "it depends on the budget",       "the results look promising",    "I will call you back later",
    "the store closes at nine",       "she left the keys on the table", "that sounds like a good plan",
    "the package arrived yesterday",  "nobody answered the phone",
};

/*
** One constraint, as a where clause on X and as the closest GBNF grammar.
** The simulation ends a value at EOS, at `stop` (STOPS_AT), or after
** max_tokens tokens; when the end is allowed and so are other tokens, it
** ends with probability p_eos.
*/
struct workload {
    const char *key;
    const char *where;
    const char *gbnf;
    const char *note;        /* how the grammar differs, or NULL */
    double p_eos;
    int max_tokens;
    const char *stop;
};

static char g_phrase_where[2048], g_phrase_gbnf[2048];

static struct workload g_work[] = {
    {"phrases", g_phrase_where, g_phrase_gbnf, NULL, 0.2, 64, NULL},
    {"int", "INT(X) and len(TOKENS(X)) < 12",
     "root ::= (\" \" [0-9] | [1-9]) [0-9]*",
     "the 11-token bound is the simulation's cap (not expressible in GBNF)", 0.2, 11, NULL},
    {"date", "REGEX(X, r\"\\d{4}-\\d{2}-\\d{2}\")",
     "root ::= [0-9]{4} \"-\" [0-9]{2} \"-\" [0-9]{2}", NULL, 0.2, 64, NULL},
    {"stops_at", "STOPS_AT(X, \".\") and len(TOKENS(X)) < 64",
     "root ::= [^.]{0,200} \".\"",
     "grammar: 200 characters then '.'; tokens with text after the '.' are refused (ours cuts the value)", 0.0, 63,
     "."},
    {"no_newline", "len(TOKENS(X)) < 50 and not \"\\n\" in X",
     "root ::= [^\\n]{0,200}",
     "grammar: 200 characters instead of 49 tokens (token counts are not expressible)", 0.0, 49, NULL},
    {"json", "REGEX(X, r'\\{\"name\": \"[a-z]{1,12}\", \"age\": [0-9]{1,3}\\}')",
     "root ::= \"{\\\"name\\\": \\\"\" [a-z]{1,12} \"\\\", \\\"age\\\": \" [0-9]{1,3} \"}\"", NULL, 0.2, 64, NULL},
};
#define N_WORK ((int)(sizeof g_work / sizeof g_work[0]))

static void build_phrase_workload(void) {
    size_t a = 0, b = 0;
    a += (size_t)snprintf(g_phrase_where + a, sizeof g_phrase_where - a, "X in [");
    b += (size_t)snprintf(g_phrase_gbnf + b, sizeof g_phrase_gbnf - b, "root ::= ");
    for (int i = 0; i < 20; i++) {
        a += (size_t)snprintf(g_phrase_where + a, sizeof g_phrase_where - a, "%s\"%s\"", i ? ", " : "", k_phrases[i]);
        b += (size_t)snprintf(g_phrase_gbnf + b, sizeof g_phrase_gbnf - b, "%s\"%s\"", i ? " | " : "", k_phrases[i]);
    }
    snprintf(g_phrase_where + a, sizeof g_phrase_where - a, "]");
}

/* --------------------------------------------- compiling a where clause -- */

/* The constraint engine asks for the values of the parts that do not name
** the hole. The workloads only hold literals: strings, integers and lists
** of them, which is all this evaluator knows. */
static struct lmql_val *literal_eval(void *ctx, const struct lmql_node *n, bool *unknown) {
    (void)ctx;
    *unknown = false;
    switch (n->kind) {
    case LMQL_NODE_STR: return lmql__val_str(n->u.str.text, n->u.str.len);
    case LMQL_NODE_INT: return lmql__val_int(n->u.i);
    case LMQL_NODE_LIST:
    case LMQL_NODE_TUPLE: {
        struct lmql_val *l = lmql__val_list((size_t)n->u.items.n);
        for (int32_t i = 0; l && i < n->u.items.n; i++) {
            struct lmql_val *v = literal_eval(ctx, n->u.items.items[i], unknown);
            if (!v || lmql__list_push(l, v)) {
                lmql__val_unref(v);
                lmql__val_unref(l);
                return NULL;
            }
        }
        return l;
    }
    default: return NULL;
    }
}

/* A where clause compiled for the hole X; the arena owns the AST, src must
** outlive it. */
struct where {
    struct lmql_arena arena;
    char *src;
    struct lmql__wheres *plans;
    const struct lmql__where *plan;   /* X's */
};

static int where_parse(struct where *w, const char *clause) {
    memset(w, 0, sizeof *w);
    lmql__arena_init(&w->arena);
    size_t cap = strlen(clause) + 64;
    if (!(w->src = malloc(cap))) return -1;
    int len = snprintf(w->src, cap, "argmax \"[X]\" from \"random\" where %s", clause);
    struct lmql_diags d;
    lmql__diags_init(&d);
    struct lmql_ast_query *q = lmql__parse_query(&w->arena, w->src, (size_t)len, "<bench>", &d, NULL);
    if (!q || d.n > 0 || !q->where) {
        char *msg = lmql__diags_render_all(&d);
        fprintf(stderr, "lmql-bench-cons: cannot parse `%s`\n%s", clause, msg ? msg : "");
        free(msg);
        lmql__diags_free(&d);
        return -1;
    }
    lmql__diags_free(&d);
    struct lmql__err e;
    if (lmql__wheres_compile(q, &w->plans, &e)) {
        fprintf(stderr, "lmql-bench-cons: constraint `%s`: %d:%d: %s\n", clause, e.pos.line, e.pos.col, e.msg);
        return -1;
    }
    const struct lmql_node *prompt = q->body.items[0];
    w->plan = prompt->u.prompt.segs.items[0]->u.hole.where;
    return 0;
}

static void where_free(struct where *w) {
    lmql__wheres_free(w->plans);
    lmql__arena_free(&w->arena);
    free(w->src);
}

static int cons_compile(struct lmql__model *m, const struct where *w, struct lmql__cons **out) {
    struct lmql__cons_env env = {.model = m, .eval = literal_eval, .ctx = NULL};
    struct lmql__err e;
    if (lmql__cons_new(w->plan, "X", &env, out, &e) == 0) return 0;
    fprintf(stderr, "lmql-bench-cons: constraint `%s`: %d:%d: %s\n", w->src, e.pos.line, e.pos.col, e.msg);
    return -1;
}

/* ---------------------------------------------------- the simulations -- */

struct sim_result {
    struct samples step;     /* seconds per step (mask; or apply + accept) */
    struct samples copy;     /* grammar: copying the candidate array */
    struct samples compile;  /* ours: compiling the constraint */
    int n_seqs;
    uint64_t n_tokens;       /* tokens appended over all sequences */
    uint64_t n_allowed;      /* allowed tokens summed over steps (density) */
    bool failed;             /* the grammar sampler refused the grammar */
};

static void sim_free(struct sim_result *r) {
    free(r->step.v);
    free(r->copy.v);
    free(r->compile.v);
}

static bool has_stop(const struct workload *w, const struct lmql__buf *v) {
    return w->stop && v->len && memmem(v->data, v->len, w->stop, strlen(w->stop));
}

/* Our engine: time lmql__cons_mask at every step of n_seqs sequences. */
static int sim_ours(struct lmql__model *m, const struct workload *w, const struct where *wh, int n_seqs, uint64_t seed,
                    struct sim_result *r) {
    int32_t nv = m->vocab->n_tokens;
    uint8_t *mask = malloc((size_t)nv);
    int32_t *allowed = malloc((size_t)nv * sizeof *allowed);
    struct lmql__buf value = {0};
    uint64_t rng = seed;
    int rc = -1;
    if (!mask || !allowed) goto done;
    for (int s = 0; s < n_seqs; s++) {
        struct lmql__cons *c;
        double t0 = lmql__now();
        if (cons_compile(m, wh, &c)) goto done;
        samples_add(&r->compile, lmql__now() - t0);
        value.len = 0;
        if (lmql__buf_reserve(&value, 1)) { lmql__cons_free(c); goto done; }
        value.data[0] = 0;
        for (int32_t n = 0; n < w->max_tokens; n++) {
            bool eos;
            t0 = lmql__now();
            int mrc = lmql__cons_mask(c, value.data, value.len, n, mask, &eos);
            double dt = lmql__now() - t0;
            if (mrc || samples_add(&r->step, dt)) { lmql__cons_free(c); goto done; }
            int32_t k = 0;
            for (int32_t t = 0; t < nv; t++)
                if (mask[t]) allowed[k++] = t;
            r->n_allowed += (uint64_t)k;
            if (k == 0 || (eos && uniform(&rng) < w->p_eos)) break;
            uint32_t len;
            const char *piece = lmql__vocab_piece(m->vocab, allowed[lmql__rng_next(&rng) % (uint64_t)k], &len);
            if (lmql__buf_add(&value, piece, len)) { lmql__cons_free(c); goto done; }
            r->n_tokens++;
            if (has_stop(w, &value)) break;
        }
        lmql__cons_free(c);
        r->n_seqs++;
    }
    rc = 0;
done:
    if (rc) fprintf(stderr, "lmql-bench-cons: %s: out of memory or a failed mask\n", w->key);
    free(mask);
    free(allowed);
    lmql__buf_free(&value);
    return rc;
}

/*
** llama.cpp's grammar sampler on the same simulation, until n_seqs
** sequences or max_steps steps, whichever comes first (it is slow). The
** pieces for the stop check come from our vocabulary of the same file, so
** token ids agree.
*/
static int sim_grammar(const struct llama_vocab *lv, const struct lmql__vocab *vb, const struct workload *w, int n_seqs,
                       int max_steps, uint64_t seed, struct sim_result *r) {
    struct bench_cands cs;
    int32_t *allowed = malloc((size_t)llama_vocab_n_tokens(lv) * sizeof *allowed);
    struct lmql__buf value = {0};
    uint64_t rng = seed;
    int rc = -1, steps = 0;
    double t_end = lmql__now() + 5.0;   /* and at most about 5 s per constraint */
    if (bench_cands_init(&cs, lv) || !allowed) goto done;
    for (int s = 0; s < n_seqs && steps < max_steps && lmql__now() < t_end; s++) {
        struct llama_sampler *g = llama_sampler_init_grammar(lv, w->gbnf, "root");
        if (!g) {
            r->failed = true;
            rc = 0;
            goto done;
        }
        value.len = 0;
        for (int32_t n = 0; n < w->max_tokens && steps < max_steps; n++, steps++) {
            llama_token_data_array arr;
            double t_copy, dt = bench_grammar_apply(&cs, g, &arr, &t_copy), t1;
            samples_add(&r->copy, t_copy);
            int32_t k = 0;
            bool eog = false;
            for (size_t i = 0; i < arr.size; i++) {
                if (arr.data[i].logit == -INFINITY) continue;
                if (llama_vocab_is_eog(lv, arr.data[i].id)) eog = true;
                else allowed[k++] = arr.data[i].id;
            }
            r->n_allowed += (uint64_t)k;
            if (k == 0 || (eog && uniform(&rng) < w->p_eos)) {
                samples_add(&r->step, dt);
                break;
            }
            llama_token tok = allowed[lmql__rng_next(&rng) % (uint64_t)k];
            t1 = lmql__now();
            llama_sampler_accept(g, tok);
            dt += lmql__now() - t1;
            if (samples_add(&r->step, dt)) { llama_sampler_free(g); goto done; }
            uint32_t len;
            const char *piece = lmql__vocab_piece(vb, tok, &len);
            if (lmql__buf_add(&value, piece, len)) { llama_sampler_free(g); goto done; }
            r->n_tokens++;
            if (has_stop(w, &value)) break;
        }
        llama_sampler_free(g);
        r->n_seqs++;
    }
    rc = 0;
done:
    bench_cands_free(&cs);
    free(allowed);
    lmql__buf_free(&value);
    return rc;
}

/* ------------------------------------------------------------- JSON out -- */

static void json_key(struct lmql__buf *b, const char *k) {
    lmql__buf_json_str(b, k, strlen(k));
    lmql__buf_adds(b, ": ");
}

static void json_str(struct lmql__buf *b, const char *k, const char *v) {
    json_key(b, k);
    if (v) lmql__buf_json_str(b, v, strlen(v));
    else lmql__buf_adds(b, "null");
}

/* Numbers: JSON has no NaN or infinity; those become null. */
static void json_num(struct lmql__buf *b, const char *k, double v) {
    json_key(b, k);
    if (isfinite(v)) lmql__buf_addf(b, "%.6g", v);
    else lmql__buf_adds(b, "null");
}

/* --------------------------------------------------- part 1 and 2 -------- */

struct vocab_spec {
    const char *name, *path;
    double med_target_us, p99_target_us;
};

static const char *pass(bool ok) { return ok ? "pass" : "MISS"; }

static int bench_masks(const struct vocab_spec *vs, int n_seqs, int grammar_steps, bool grammar, struct lmql__buf *js,
                       bool *first_row) {
    struct lmql__err err = {0};
    struct lmql__kv kv[1] = {{"vocab_only", "true"}};
    struct lmql__model *m = lmql__llama_open(vs->path, kv, 1, &err);
    if (!m) {
        fprintf(stderr, "lmql-bench-cons: %s: %s\n", vs->path, err.msg);
        return -1;
    }
    double t0 = lmql__now();
    struct lmql_trie *trie = lmql__vocab_trie(m->vocab);
    double t_trie = lmql__now() - t0;
    if (!trie) { fprintf(stderr, "lmql-bench-cons: out of memory building the trie\n"); lmql__model_free(m); return -1; }

    /* The grammar sampler needs llama.cpp's own vocabulary object; the
    ** lmql__llama_open above has loaded the backends and set the log. */
    struct llama_model *lm = NULL;
    if (grammar) {
        struct llama_model_params mp = llama_model_default_params();
        mp.vocab_only = true;
        lm = llama_model_load_from_file(vs->path, mp);
        if (!lm) fprintf(stderr, "lmql-bench-cons: llama.cpp could not load %s; no grammar figures\n", vs->path);
    }
    const struct llama_vocab *lv = lm ? llama_model_get_vocab(lm) : NULL;

    printf("\n%s: %d tokens, trie %d nodes, %.1f MiB, built in %.0f ms\n", vs->path, m->vocab->n_tokens,
           lmql__trie_n_nodes(trie), lmql__trie_memory(trie) / 1048576.0, t_trie * 1e3);
    printf("%-11s %6s %5s %7s %9s %9s %9s %9s | %6s %9s %9s %9s | %8s  %s\n", "constraint", "steps", "seqs", "allowed",
           "median", "p99", "max", "compile", "steps", "median", "p99", "copy", "gram/our", "targets (med, p99, >=100x)");
    int rc = 0;
    for (int i = 0; i < N_WORK; i++) {
        const struct workload *w = &g_work[i];
        struct where wh;
        struct sim_result ours = {0}, gram = {0};
        if (where_parse(&wh, w->where)) { rc = -1; break; }
        uint64_t seed = 0x5EED0000u + (uint64_t)i;
        if (sim_ours(m, w, &wh, n_seqs, seed, &ours)) { where_free(&wh); sim_free(&ours); rc = -1; break; }
        if (lv && sim_grammar(lv, m->vocab, w, n_seqs, grammar_steps, seed, &gram)) {
            where_free(&wh);
            sim_free(&ours);
            sim_free(&gram);
            rc = -1;
            break;
        }
        double o_med = samples_pct(&ours.step, 0.5) * 1e6, o_p99 = samples_pct(&ours.step, 0.99) * 1e6;
        double o_max = samples_pct(&ours.step, 1.0) * 1e6, o_comp = samples_pct(&ours.compile, 0.5) * 1e6;
        double o_allowed = ours.step.n ? (double)ours.n_allowed / (double)ours.step.n : 0;
        bool have_g = lv && !gram.failed && gram.step.n > 0;
        double g_med = have_g ? samples_pct(&gram.step, 0.5) * 1e6 : NAN;
        double g_p99 = have_g ? samples_pct(&gram.step, 0.99) * 1e6 : NAN;
        double g_copy = have_g ? samples_pct(&gram.copy, 0.5) * 1e6 : NAN;
        double ratio = have_g && o_med > 0 ? g_med / o_med : NAN;
        bool ok_med = o_med <= vs->med_target_us, ok_p99 = o_p99 <= vs->p99_target_us;
        char gcols[128];
        if (have_g)
            snprintf(gcols, sizeof gcols, "%6zu %9.1f %9.1f %9.1f | %7.0fx", gram.step.n, g_med, g_p99, g_copy, ratio);
        else
            snprintf(gcols, sizeof gcols, "%6s %9s %9s %9s | %8s", "-", gram.failed ? "REFUSED" : "-", "-", "-", "-");
        printf("%-11s %6zu %5d %7.0f %9.1f %9.1f %9.1f %9.1f | %s  %s %s %s\n", w->key, ours.step.n, ours.n_seqs,
               o_allowed, o_med, o_p99, o_max, o_comp, gcols, pass(ok_med), pass(ok_p99), have_g ? pass(ratio >= 100) : "n/a");

        lmql__buf_adds(js, *first_row ? "\n    {" : ",\n    {");
        *first_row = false;
        json_str(js, "vocab", vs->name);
        lmql__buf_adds(js, ", ");
        json_num(js, "n_vocab", m->vocab->n_tokens);
        lmql__buf_adds(js, ", ");
        json_str(js, "constraint", w->key);
        lmql__buf_adds(js, ", ");
        json_str(js, "where", w->where);
        lmql__buf_adds(js, ",\n     \"ours\": {");
        json_num(js, "steps", (double)ours.step.n);
        lmql__buf_adds(js, ", ");
        json_num(js, "sequences", ours.n_seqs);
        lmql__buf_adds(js, ", ");
        json_num(js, "tokens", (double)ours.n_tokens);
        lmql__buf_adds(js, ", ");
        json_num(js, "mean_allowed", o_allowed);
        lmql__buf_adds(js, ", ");
        json_num(js, "median_us", o_med);
        lmql__buf_adds(js, ", ");
        json_num(js, "p99_us", o_p99);
        lmql__buf_adds(js, ", ");
        json_num(js, "max_us", o_max);
        lmql__buf_adds(js, ", ");
        json_num(js, "compile_median_us", o_comp);
        lmql__buf_adds(js, "},\n     \"grammar\": {");
        json_str(js, "gbnf", w->gbnf);
        lmql__buf_adds(js, ", ");
        json_str(js, "note", w->note);
        lmql__buf_adds(js, ", ");
        json_str(js, "status", !lv ? "not run" : gram.failed ? "llama_sampler_init_grammar returned NULL" : "ok");
        lmql__buf_adds(js, ", ");
        json_num(js, "steps", (double)gram.step.n);
        lmql__buf_adds(js, ", ");
        json_num(js, "sequences", gram.n_seqs);
        lmql__buf_adds(js, ", ");
        json_num(js, "median_us", g_med);
        lmql__buf_adds(js, ", ");
        json_num(js, "p99_us", g_p99);
        lmql__buf_adds(js, ", ");
        json_num(js, "copy_median_us", g_copy);
        lmql__buf_adds(js, ", ");
        json_num(js, "mean_allowed", have_g ? (double)gram.n_allowed / (double)gram.step.n : NAN);
        lmql__buf_adds(js, "},\n     ");
        json_num(js, "ratio_grammar_over_ours", ratio);
        lmql__buf_adds(js, ", \"targets\": {");
        json_num(js, "median_us", vs->med_target_us);
        lmql__buf_adds(js, ", ");
        json_num(js, "p99_us", vs->p99_target_us);
        lmql__buf_adds(js, ", ");
        json_str(js, "median", pass(ok_med));
        lmql__buf_adds(js, ", ");
        json_str(js, "p99", pass(ok_p99));
        lmql__buf_adds(js, ", ");
        json_str(js, "grammar_100x", have_g ? pass(ratio >= 100) : NULL);
        lmql__buf_adds(js, "}}");
        where_free(&wh);
        sim_free(&ours);
        sim_free(&gram);
        fflush(stdout);
    }
    if (lm) llama_model_free(lm);
    lmql__model_free(m);
    return rc;
}

/* ---------------------------------------------------------- part 3 ------ */

/* The bare loop is bench_util.h's (struct bench_bare), prompted with "Q:". */

static struct lmql_program *e2e_program(struct lmql *L, const char *path, int threads, int n) {
    char src[1024];
    snprintf(src, sizeof src,
             "argmax \"Q:[X]\" from lmql.model(\"local:llama.cpp:%s\", n_threads=%d) "
             "where len(TOKENS(X)) == %d and not \"\\n\" in X",
             path, threads, n);
    struct lmql_program *P = lmql_program_compile(L, "<bench>", src, strlen(src));
    if (!P) fprintf(stderr, "lmql-bench-cons: %s\n", lmql_errmsg(L));
    return P;
}

/* Returns the wall time of one run, with its stats; < 0 on failure. */
static double lmql_timed_run(struct lmql *L, struct lmql_program *P, struct lmql_stats *st) {
    struct lmql_result *R;
    double t0 = lmql__now();
    if (lmql_run(L, P, NULL, &R) != LMQL_OK) {
        fprintf(stderr, "lmql-bench-cons: %s\n", lmql_errmsg(L));
        return -1;
    }
    double dt = lmql__now() - t0;
    lmql_result_free(R);
    lmql_last_stats(L, st);
    return dt;
}

static int bench_e2e(const char *path, int n_gen, int threads, int runs, struct lmql__buf *js) {
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *warm = L ? e2e_program(L, path, threads, 8) : NULL;
    struct lmql_program *P = warm ? e2e_program(L, path, threads, n_gen) : NULL;
    struct bench_bare b;
    memset(&b, 0, sizeof b);
    double q_tps[16], b_tps[16], q_over[16], b_over[16];
    int rc = -1;
    struct lmql_stats st;
    double t_eval;
    if (!P) goto done;
    /* Warm-up: loads both models (the lmql run first: it loads the CPU
    ** backend the bare loop uses too) and touches their pages. */
    if (lmql_timed_run(L, warm, &st) < 0) goto done;
    if (bench_bare_open(&b, path, threads, "Q:")) {
        fprintf(stderr, "lmql-bench-cons: llama.cpp could not load %s for the bare loop\n", path);
        goto done;
    }
    double t_warm = bench_bare_run(&b, 8, &t_eval);
    if (t_warm < 0) goto done;
    /* Keep the part near a minute and a half: a loaded machine can make
    ** one run take a minute (see below), so fewer runs, at least one. */
    double est = 2 * n_gen * t_warm / 8;
    if (runs > 16) runs = 16;
    if (runs > 1 && runs * est > 90) {
        int fit = (int)(90 / est);
        runs = fit < 1 ? 1 : fit;
        printf("\n  (the warm-up ran at %.1f tok/s: only %d run%s of each)", 8 / t_warm, runs, runs > 1 ? "s" : "");
    }
    double q_best = 0, b_best = 0, t_start = lmql__now();
    int done_runs = 0;
    for (int r = 0; r < runs; r++, done_runs++) {
        /* The estimate above can be wrong; stop on time as well. */
        if (r > 0 && lmql__now() - t_start > 90) {
            printf("\n  (stopped after %d of %d runs: over a minute and a half, the machine is busy)", r, runs);
            break;
        }
        /* Interleaved, in alternating order, so that bursts of load from
        ** other processes hit both alike. */
        for (int k = 0; k < 2; k++) {
            if ((k == 0) == (r % 2 == 0)) {
                double tb = bench_bare_run(&b, n_gen, &t_eval);
                if (tb < 0) goto done;
                b_tps[r] = n_gen / tb;
                b_over[r] = (tb - t_eval) / n_gen;
                if (b_tps[r] > b_best) b_best = b_tps[r];
            } else {
                double tq = lmql_timed_run(L, P, &st);
                if (tq < 0) goto done;
                if ((int)st.n_generated != n_gen)
                    fprintf(stderr, "lmql-bench-cons: the query generated %llu tokens, not %d\n",
                            (unsigned long long)st.n_generated, n_gen);
                q_tps[r] = (double)st.n_generated / tq;
                q_over[r] = (tq - st.t_eval) / (double)st.n_generated;
                if (q_tps[r] > q_best) q_best = q_tps[r];
            }
        }
    }
    runs = done_runs;
    double qm = bench_median(q_tps, runs), bm = bench_median(b_tps, runs);
    double qo = bench_median(q_over, runs) * 1e3, bo = bench_median(b_over, runs) * 1e3;
    printf("\nEnd to end, %s, %d threads, %d tokens after \"Q:\", median of %d (interleaved, after warm-up)\n", path,
           threads, n_gen, runs);
    printf("  bare llama.cpp greedy loop     %7.2f tok/s (best %.2f)  outside llama_decode: %.3f ms/token\n", bm,
           b_best, bo);
    printf("  lmql query (len == %d, no \\n) %7.2f tok/s (best %.2f)  outside forward passes: %.3f ms/token\n", n_gen,
           qm, q_best, qo);
    printf("  ratio lmql/bare %.3f (of the bests %.3f)   target >= 0.95: %s\n", qm / bm, q_best / b_best,
           pass(qm / bm >= 0.95));
    /* llama.cpp's threads spin at every barrier of the graph: on a machine
    ** with as many threads as cores, another busy process slows a run many
    ** times over. Say so when the runs disagree that much. */
    if (b_best > 1.5 * bm || q_best > 1.5 * qm)
        printf("  (runs differ by more than 1.5x: the machine was busy; compare the bests or rerun)\n");
    lmql__buf_adds(js, "{");
    json_str(js, "model", path);
    lmql__buf_adds(js, ", ");
    json_num(js, "threads", threads);
    lmql__buf_adds(js, ", ");
    json_num(js, "tokens", n_gen);
    lmql__buf_adds(js, ", ");
    json_num(js, "runs", runs);
    lmql__buf_adds(js, ", ");
    json_num(js, "bare_tok_s", bm);
    lmql__buf_adds(js, ", ");
    json_num(js, "lmql_tok_s", qm);
    lmql__buf_adds(js, ", ");
    json_num(js, "bare_best_tok_s", b_best);
    lmql__buf_adds(js, ", ");
    json_num(js, "lmql_best_tok_s", q_best);
    lmql__buf_adds(js, ", ");
    json_num(js, "ratio", qm / bm);
    lmql__buf_adds(js, ", ");
    json_num(js, "bare_ms_per_token_outside_decode", bo);
    lmql__buf_adds(js, ", ");
    json_num(js, "lmql_ms_per_token_outside_decode", qo);
    lmql__buf_adds(js, ", ");
    json_str(js, "target_0.95", pass(qm / bm >= 0.95));
    lmql__buf_adds(js, "}");
    rc = 0;
done:
    bench_bare_close(&b);
    lmql_program_free(warm);
    lmql_program_free(P);
    lmql_free(L);
    return rc;
}

/* ---------------------------------------------------------- part 4 ------ */

/*
** A model that passes everything to a real one and counts what the
** interpreter asks of it. With the streamed tokens (on_text) it also finds
** the forced tokens: a generated token with no model query since the
** previous piece of text was taken without the model (decode.c takes the
** only allowed token when EOS is not allowed). lmql_stats does not expose
** forward passes or forced tokens, hence this.
*/
struct counting {
    struct lmql__model base;
    struct lmql__model *real;
    uint64_t n_queries, n_gen, n_forced, queries_since;
};

static struct lmql__model *real_of(struct lmql__model *m) { return ((struct counting *)m)->real; }

static void c_free(struct lmql__model *m) { (void)m; /* the owner frees the real model */ }
static int32_t c_tokenize(struct lmql__model *m, const char *text, size_t len, bool bos, bool cont, int32_t *out,
                          int32_t cap, struct lmql__err *err) {
    return real_of(m)->ops->tokenize(real_of(m), text, len, bos, cont, out, cap, err);
}
static int c_next(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs, const float **out,
                  struct lmql__err *err) {
    struct counting *c = (struct counting *)m;
    c->n_queries += (uint64_t)n_req;
    c->queries_since += (uint64_t)n_req;
    return c->real->ops->next_logprobs(c->real, n_req, reqs, out, err);
}
static int c_score(struct lmql__model *m, int n_req, const struct lmql__eval_req *reqs, const int32_t *from,
                   float **scores, struct lmql__err *err) {
    return real_of(m)->ops->score(real_of(m), n_req, reqs, from, scores, err);
}
static void c_copy(struct lmql__model *m, int src, int dst) { real_of(m)->ops->slot_copy(real_of(m), src, dst); }
static void c_drop(struct lmql__model *m, int slot) { real_of(m)->ops->slot_drop(real_of(m), slot); }

static const struct lmql__model_ops k_counting_ops = {
    .free = c_free, .tokenize = c_tokenize, .next_logprobs = c_next,
    .score = c_score, .slot_copy = c_copy, .slot_drop = c_drop, .choose = NULL,
};

static struct lmql__model *c_get_model(void *ud, const char *id, const struct lmql__kv *kv, int n_kv,
                                       struct lmql__err *err) {
    (void)id; (void)kv; (void)n_kv; (void)err;
    return ud;
}

static void c_on_text(void *ud, const char *text, size_t len, lmql_text_kind kind) {
    struct counting *c = ud;
    (void)text; (void)len;
    if (kind == LMQL_TEXT_GENERATED) {
        c->n_gen++;
        if (c->queries_since == 0) c->n_forced++;
    }
    c->queries_since = 0;
}

struct json_counts {
    uint64_t n_generated, n_queries, n_calls, n_decoded, n_forced;
    uint64_t api_generated, api_decoded, api_reused;
    double t_run;
    char value[256];
    char error[1200];        /* why the query failed, "" when it ran */
};

static int count_query(const char *path, const char *src, struct json_counts *out) {
    memset(out, 0, sizeof *out);
    struct lmql__err err = {0};
    struct lmql__model *real = lmql__llama_open(path, NULL, 0, &err);
    if (!real) { snprintf(out->error, sizeof out->error, "%s: %s", path, err.msg); return -1; }
    struct counting c = {.base = *real, .real = real};
    c.base.ops = &k_counting_ops;   /* the vocabulary (and its trie) stays real's: it frees them */

    struct lmql_arena a;
    lmql__arena_init(&a);
    struct lmql_diags d;
    lmql__diags_init(&d);
    struct lmql_ast_query *q = lmql__parse_query(&a, src, strlen(src), "<bench>", &d, NULL);
    int rc = -1;
    struct lmql__wheres *plans = NULL;
    struct lmql__err e;
    if (!q || d.n) { snprintf(out->error, sizeof out->error, "the query does not parse"); goto done; }
    if (lmql__wheres_compile(q, &plans, &e)) {
        snprintf(out->error, sizeof out->error, "%d:%d: %s", e.pos.line, e.pos.col, e.msg);
        goto done;
    }
    struct lmql_params params = lmql_default_params();
    params.on_text = c_on_text;
    params.user_data = &c;
    struct lmql__host host = {.get_model = c_get_model, .ud = &c.base, .params = &params, .functions = NULL};
    struct lmql__run_out o;
    struct lmql__model_stats before = real->stats;
    double t0 = lmql__now();
    if (lmql__interp_run(&host, q, NULL, &o, &e)) {
        snprintf(out->error, sizeof out->error, "%d:%d: %s", e.pos.line, e.pos.col, e.msg);
        goto done;
    }
    out->t_run = lmql__now() - t0;
    out->n_generated = o.n_generated;
    out->n_queries = c.n_queries;
    out->n_forced = c.n_forced;
    out->n_calls = real->stats.n_calls - before.n_calls;
    out->n_decoded = real->stats.n_decoded - before.n_decoded;
    if (o.n_seqs > 0 && o.seqs[0].prompt.data)
        snprintf(out->value, sizeof out->value, "%s", o.seqs[0].prompt.data);
    if (c.n_gen != o.n_generated)
        fprintf(stderr, "lmql-bench-cons: %llu tokens streamed, %llu generated: forced counts are off\n",
                (unsigned long long)c.n_gen, (unsigned long long)o.n_generated);
    lmql__run_out_free(&o);

    /* The same query through the public API, for what lmql_stats says. */
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *P = L ? lmql_program_compile(L, "<bench>", src, strlen(src)) : NULL;
    struct lmql_stats st;
    struct lmql_result *R = NULL;
    if (P && lmql_run(L, P, NULL, &R) == LMQL_OK) {
        lmql_last_stats(L, &st);
        out->api_generated = st.n_generated;
        out->api_decoded = st.n_decoded;
        out->api_reused = st.n_reused;
        rc = 0;
    } else {
        snprintf(out->error, sizeof out->error, "public API: %s", L ? lmql_errmsg(L) : "out of memory");
    }
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
done:
    lmql__wheres_free(plans);
    lmql__diags_free(&d);
    lmql__arena_free(&a);
    lmql__model_free(real);
    return rc;
}

static int bench_json(const char *path, struct lmql__buf *js) {
    char tmpl[1024], regex[1024];
    snprintf(tmpl, sizeof tmpl,
             "argmax \"{{\\\"name\\\": \\\"[NAME]\\\", \\\"age\\\": [AGE]}}\" from \"local:llama.cpp:%s\" "
             "where STOPS_BEFORE(NAME, '\"') and len(TOKENS(NAME)) < 12 and INT(AGE) and len(TOKENS(AGE)) < 4",
             path);
    snprintf(regex, sizeof regex,
             "argmax \"Person: [J]\" from \"local:llama.cpp:%s\" "
             "where REGEX(J, r'\\{\"name\": \"[a-z]{1,12}\", \"age\": [0-9]{1,3}\\}')",
             path);
    const char *names[2] = {"template", "regex"}, *srcs[2] = {tmpl, regex};
    int rc = 0;
    printf("\nJSON on %s (argmax; counts of one run)\n", path);
    printf("%-9s %9s %8s %8s %7s %8s | %13s %11s %9s | %s\n", "query", "generated", "queries", "forward", "forced",
           "decoded", "api generated", "api decoded", "run ms", "result");
    lmql__buf_adds(js, "[");
    for (int i = 0; i < 2; i++) {
        struct json_counts k;
        lmql__buf_adds(js, i ? ",\n    {" : "\n    {");
        json_str(js, "query", names[i]);
        lmql__buf_adds(js, ", ");
        json_str(js, "source", srcs[i]);
        if (count_query(path, srcs[i], &k)) {
            /* Report and go on: the other query and the file still count. */
            printf("%-9s FAILED: %s\n", names[i], k.error);
            lmql__buf_adds(js, ", ");
            json_str(js, "error", k.error);
            lmql__buf_adds(js, "}");
            rc = -1;
            continue;
        }
        printf("%-9s %9llu %8llu %8llu %7llu %8llu | %13llu %11llu %9.1f | %s\n", names[i],
               (unsigned long long)k.n_generated, (unsigned long long)k.n_queries, (unsigned long long)k.n_calls,
               (unsigned long long)k.n_forced, (unsigned long long)k.n_decoded, (unsigned long long)k.api_generated,
               (unsigned long long)k.api_decoded, k.t_run * 1e3, k.value);
        lmql__buf_adds(js, ",\n     ");
        json_num(js, "generated_tokens", (double)k.n_generated);
        lmql__buf_adds(js, ", ");
        json_num(js, "model_queries", (double)k.n_queries);
        lmql__buf_adds(js, ", ");
        json_num(js, "forward_passes", (double)k.n_calls);
        lmql__buf_adds(js, ", ");
        json_num(js, "forced_tokens", (double)k.n_forced);
        lmql__buf_adds(js, ", ");
        json_num(js, "decoded_tokens", (double)k.n_decoded);
        lmql__buf_adds(js, ",\n     ");
        json_num(js, "api_n_generated", (double)k.api_generated);
        lmql__buf_adds(js, ", ");
        json_num(js, "api_n_decoded", (double)k.api_decoded);
        lmql__buf_adds(js, ", ");
        json_num(js, "api_n_reused", (double)k.api_reused);
        lmql__buf_adds(js, ", ");
        json_num(js, "run_ms", k.t_run * 1e3);
        lmql__buf_adds(js, ", ");
        json_str(js, "prompt", k.value);
        lmql__buf_adds(js, "}");
    }
    lmql__buf_adds(js, "]");
    printf("  generated: tokens of the holes; queries: next-token distributions asked of the model;\n"
           "  forward: llama_decode calls; forced: tokens taken without the model (the only one allowed);\n"
           "  decoded: tokens run through the network (prompt and template text included).\n");
    return rc;
}

/* ------------------------------------------------------------------ main -- */

static int usage(void) {
    fprintf(stderr, "usage: lmql-bench-cons [--vocab spm|bpe|all] [--seqs N] [--grammar-steps N] [--runs N]\n"
                    "                       [--threads N] [--skip-e2e] [--out FILE.json]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *which = "all", *out_path = NULL;
    int n_seqs = 50, grammar_steps = 300, runs = 5, threads = 2;
    bool skip_e2e = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--skip-e2e")) { skip_e2e = true; continue; }
        if (!v) return usage();
        if (!strcmp(a, "--vocab")) which = v;
        else if (!strcmp(a, "--seqs")) n_seqs = atoi(v);
        else if (!strcmp(a, "--grammar-steps")) grammar_steps = atoi(v);
        else if (!strcmp(a, "--runs")) runs = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--out")) out_path = v;
        else return usage();
        i++;
    }
    if (strcmp(which, "spm") && strcmp(which, "bpe") && strcmp(which, "all")) return usage();
    if (n_seqs < 1 || grammar_steps < 0 || runs < 1 || runs > 16 || threads < 1) {
        fprintf(stderr, "lmql-bench-cons: --seqs >= 1, --grammar-steps >= 0, --runs 1..16, --threads >= 1\n");
        return 2;
    }
    char default_out[256];
    bool own_dir = !out_path;
    if (!out_path) {
        snprintf(default_out, sizeof default_out, "bench/results/constraints%s%s.json", strcmp(which, "all") ? "-" : "",
                 strcmp(which, "all") ? which : "");
        out_path = default_out;
    }
    build_phrase_workload();

    char machine[384], date[64];
    machine_line(machine, sizeof machine);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    printf("lmql-bench-cons  %s  %s\n", machine, date);
    printf("Mask time per step in microseconds (median, p99 over all steps of %d simulated sequences);\n"
           "grammar: llama.cpp grammar sampler, apply + accept per step, at most %d steps or ~5 s; copy: filling the\n"
           "candidate array (not counted); allowed: mean allowed tokens per step; compile: per sequence; max: the\n"
           "slowest step, the first sequence's first walk (later sequences find its masks in the vocabulary's memo).\n",
           n_seqs, grammar_steps);

    static const struct vocab_spec vocabs[2] = {
        {"llama-spm", "build/vocab/ggml-vocab-llama-spm.gguf", 20, 200},
        {"llama-bpe", "build/vocab/ggml-vocab-llama-bpe.gguf", 50, 500},
    };
    struct lmql__buf js = {0};
    lmql__buf_adds(&js, "{\n  ");
    json_str(&js, "machine", machine);
    lmql__buf_adds(&js, ",\n  ");
    json_str(&js, "date", date);
    lmql__buf_adds(&js, ",\n  ");
    json_num(&js, "sequences", n_seqs);
    lmql__buf_adds(&js, ",\n  ");
    json_num(&js, "grammar_max_steps", grammar_steps);
    lmql__buf_adds(&js, ",\n  \"masks\": [");
    double t0 = lmql__now();
    bool first = true;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        if (strcmp(which, "all") && strcmp(which, vocabs[i].name + 6)) continue;
        rc = bench_masks(&vocabs[i], n_seqs, grammar_steps, grammar_steps > 0, &js, &first);
    }
    /* Parts 3 and 4 write their JSON only once they have figures (part 4
    ** records a failed query in place); a failure leaves null and the
    ** rest still runs and is written. */
    lmql__buf_adds(&js, "\n  ],\n  \"end_to_end\": ");
    int bad = rc;
    if (rc || skip_e2e || bench_e2e("build/models/bench-q4_0.gguf", 128, threads, runs, &js)) {
        lmql__buf_adds(&js, "null");
        bad |= !skip_e2e;
    }
    lmql__buf_adds(&js, ",\n  \"json_template\": ");
    if (rc || skip_e2e) lmql__buf_adds(&js, "null");
    else if (bench_json("build/models/tiny-spm.gguf", &js)) bad = 1;
    lmql__buf_adds(&js, ",\n  ");
    json_num(&js, "seconds", lmql__now() - t0);
    lmql__buf_adds(&js, "\n}\n");
    printf("\ntotal %.1f s\n", lmql__now() - t0);

    if (!rc) {
        /* The default place is bench/results of the tree; make it. */
        if (own_dir && ((mkdir("bench", 0777) && errno != EEXIST) || (mkdir("bench/results", 0777) && errno != EEXIST)))
            fprintf(stderr, "lmql-bench-cons: cannot create bench/results: %s\n", strerror(errno));
        FILE *f = fopen(out_path, "w");
        if (!f || fwrite(js.data, 1, js.len, f) != js.len || fclose(f)) {
            fprintf(stderr, "lmql-bench-cons: cannot write %s: %s\n", out_path, strerror(errno));
            rc = 1;
        } else {
            printf("wrote %s\n", out_path);
        }
    }
    lmql__buf_free(&js);
    return rc || bad ? 1 : 0;
}
