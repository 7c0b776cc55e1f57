/*
** The public C API (include/lmql.h) as a host program uses it: compile
** once and run many times with arguments, host functions, streaming,
** errors with positions, result accessors, NULL handling.
*/
#include <lmql.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void test_compile_once_run_many(void) {
    struct lmql *L = lmql_init(NULL);
    const char *src = "argmax \"Hello {name}, you are {age + 1}:[X]\" from \"random\" where len(TOKENS(X)) < 3";
    struct lmql_program *P = lmql_program_compile(L, "q.lmql", src, strlen(src));
    CHECK(P != NULL);
    const char *names[] = {"Ann", "Bob", "Cy"};
    for (int i = 0; i < 3; i++) {
        struct lmql_args *A = lmql_args_init();
        CHECK_INT(lmql_args_set_str(A, "name", names[i]), LMQL_OK);
        CHECK_INT(lmql_args_set_int(A, "age", 40 + i), LMQL_OK);
        struct lmql_result *R = NULL;
        CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
        char want[64];
        snprintf(want, sizeof want, "Hello %s, you are %d:", names[i], 41 + i);
        const char *p = lmql_result_prompt(R, 0);
        CHECK(p && !strncmp(p, want, strlen(want)));
        CHECK_INT(lmql_result_count(R), 1);
        CHECK_INT(lmql_result_variable_count(R, 0), 1);
        CHECK_STR(lmql_result_variable_name(R, 0, 0), "X");
        CHECK(lmql_result_variable_json(R, 0, 0)[0] == '"');
        CHECK(lmql_result_variable_name(R, 0, 1) == NULL);
        CHECK(lmql_result_prompt(R, 1) == NULL);
        lmql_result_free(R);
        lmql_args_free(A);
    }
    /* A missing argument is a runtime error naming it. */
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_RUNTIME);
    CHECK(R == NULL);
    CHECK_CONTAINS(lmql_errmsg(L), "name 'name' is not defined");
    lmql_program_free(P);
    lmql_free(L);
}

/* Arguments of any JSON shape: lists, dicts, nesting, null and booleans
** arrive as the values Python's json.loads would make. */
static void test_args_json(void) {
    struct lmql *L = lmql_init(NULL);
    const char *src = "argmax\n    \"{items[1]['n'] + 1} {len(items)} {flag} {nothing is None} {x / 2}\"\n"
                      "    return items\nfrom \"random\"";
    struct lmql_program *P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK(P != NULL);
    struct lmql_args *A = lmql_args_init();
    CHECK_INT(lmql_args_set_json(A, "items", "[\"a\", {\"n\": 41, \"l\": [1.5, null]}]"), LMQL_OK);
    CHECK_INT(lmql_args_set_json(A, "flag", "true"), LMQL_OK);
    CHECK_INT(lmql_args_set_json(A, "nothing", " null "), LMQL_OK);
    CHECK_INT(lmql_args_set_json(A, "x", "0.1"), LMQL_OK);
    CHECK_INT(lmql_args_set_json(A, "bad", "{not json"), LMQL_ERR_QUERY);
    CHECK_INT(lmql_args_set_json(A, "two", "1 2"), LMQL_ERR_QUERY);
    CHECK_INT(lmql_args_set_json(A, NULL, "1"), LMQL_ERR_MISUSE);
    CHECK_INT(lmql_args_set_json(A, "x", NULL), LMQL_ERR_MISUSE);
    CHECK_INT(lmql_args_set_json(NULL, "x", "1"), LMQL_ERR_MISUSE);
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
    CHECK_STR(lmql_result_prompt(R, 0), "42 2 True True 0.05");
    CHECK_STR(lmql_result_json(R), "[\"a\", {\"n\": 41, \"l\": [1.5, null]}]");
    lmql_result_free(R);
    lmql_args_free(A);
    lmql_program_free(P);
    lmql_free(L);
}

/* A run's own model and decoder: the model replaces `from`; the decoder and
** its arguments apply when the query names no decoder. */
static void test_run_options(void) {
    struct lmql *L = lmql_init(NULL);
    const char *src = "\"Hi[X]\" from \"no-such-model\" where len(TOKENS(X)) < 3";
    struct lmql_program *P = lmql_program_compile(L, "<t>", src, strlen(src));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_MODEL);
    struct lmql_args *A = lmql_args_init();
    const char *keys[] = {"seed"}, *vals[] = {"123"};
    CHECK_INT(lmql_args_set_model(A, "random", keys, vals, 1), LMQL_OK);
    CHECK_INT(lmql_args_set_model(A, "random", NULL, NULL, 1), LMQL_ERR_MISUSE);
    CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
    CHECK_INT(lmql_result_count(R), 1);
    lmql_result_free(R);
    CHECK_INT(lmql_args_set_option(A, "decoder", "\"sample\""), LMQL_OK);
    CHECK_INT(lmql_args_set_option(A, "decoder", "2"), LMQL_ERR_QUERY);
    CHECK_INT(lmql_args_set_option(A, "n", "2"), LMQL_OK);
    CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
    CHECK_INT(lmql_result_count(R), 2);
    CHECK(lmql_result_json(R)[0] == '[');
    lmql_result_free(R);
    lmql_program_free(P);
    /* the query's own decoder wins */
    src = "argmax \"Hi[X]\" where len(TOKENS(X)) < 3";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
    CHECK_INT(lmql_result_count(R), 1);
    lmql_result_free(R);
    lmql_program_free(P);
    /* an unknown decoder argument fails the run */
    src = "\"Hi[X]\" where len(TOKENS(X)) < 3";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_args_set_option(A, "bogus", "1"), LMQL_OK);
    CHECK_INT(lmql_run(L, P, A, &R), LMQL_ERR_QUERY);
    CHECK_CONTAINS(lmql_errmsg(L), "Unknown decoder argument: bogus");
    lmql_program_free(P);
    lmql_args_free(A);
    lmql_free(L);
}

static lmql_status add_fn(void *ud, int argc, const char *const *argv, char **result) {
    int *calls = ud;
    (*calls)++;
    if (argc != 2) {
        *result = strdup("add() takes two numbers");
        return LMQL_ERR_RUNTIME;
    }
    if (argv[0][0] == '"') {   /* a message naming a Python exception: catchable in the query */
        *result = strdup("ValueError: add() adds numbers");
        return LMQL_ERR_RUNTIME;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "{\"sum\": %d, \"args\": [%s, %s]}", atoi(argv[0]) + atoi(argv[1]), argv[0], argv[1]);
    *result = strdup(buf);
    return LMQL_OK;
}

static lmql_status bad_json_fn(void *ud, int argc, const char *const *argv, char **result) {
    (void)ud; (void)argc; (void)argv;
    *result = strdup("{not json");
    return LMQL_OK;
}

static void test_host_functions(void) {
    struct lmql *L = lmql_init(NULL);
    int calls = 0;
    CHECK_INT(lmql_register_function(L, "add", add_fn, &calls), LMQL_OK);
    CHECK_INT(lmql_register_function(L, "broken", bad_json_fn, NULL), LMQL_OK);
    CHECK_INT(lmql_register_function(L, "not a name", add_fn, NULL), LMQL_ERR_MISUSE);
    const char *src = "argmax\n    r = add(2, 3)\n    \"{r['sum']} {r['args']}\"\n    return r['sum']\nfrom \"random\"";
    struct lmql_program *P = lmql_program_compile(L, "<t>", src, strlen(src));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    CHECK_STR(lmql_result_prompt(R, 0), "5 [2, 3]");
    CHECK_STR(lmql_result_json(R), "5");
    CHECK_INT(calls, 1);
    lmql_result_free(R);
    lmql_program_free(P);
    /* Host errors and bad JSON become runtime errors with the cause. */
    src = "argmax \"{add(1)}\" from \"random\"";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_RUNTIME);
    CHECK_CONTAINS(lmql_errmsg(L), "add() takes two numbers");
    lmql_program_free(P);
    src = "argmax\n    try:\n        add('a', 1)\n    except ValueError as e:\n        \"caught {e}\"\nfrom \"random\"";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    CHECK_STR(lmql_result_prompt(R, 0), "caught add() adds numbers");
    lmql_result_free(R);
    lmql_program_free(P);
    src = "argmax \"{broken()}\" from \"random\"";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_RUNTIME);
    CHECK_CONTAINS(lmql_errmsg(L), "returned bad JSON");
    lmql_program_free(P);
    /* A list that holds itself cannot be JSON: the cause, not "out of memory". */
    src = "argmax\n    a = [1]\n    a.append(a)\n    \"{add(a, 1)}\"\nfrom \"random\"";
    P = lmql_program_compile(L, "<t>", src, strlen(src));
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_RUNTIME);
    CHECK_CONTAINS(lmql_errmsg(L), "add(): argument 1 cannot be passed as JSON");
    CHECK_CONTAINS(lmql_errmsg(L), "Circular reference");
    CHECK_INT(calls, 3);   /* add(1) and add('a', 1) above were calls; this one never reached the host */
    lmql_program_free(P);
    lmql_free(L);
}

struct collected { char text[4096]; size_t len; int generated; };

static void collect(void *ud, const char *text, size_t len, lmql_text_kind kind) {
    struct collected *c = ud;
    if (c->len + len < sizeof c->text) { memcpy(c->text + c->len, text, len); c->len += len; }
    c->generated += kind == LMQL_TEXT_GENERATED;
}

static void test_streaming(void) {
    struct collected c = {0};
    struct lmql_params p = lmql_default_params();
    p.on_text = collect;
    p.user_data = &c;
    struct lmql *L = lmql_init(&p);
    const char *src = "argmax \"Say 'this is a test':[R] and more\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" "
                      "where len(TOKENS(R)) < 6";
    struct lmql_program *P = lmql_program_compile(L, "<t>", src, strlen(src));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    c.text[c.len] = 0;
    /* The stream is the prompt, piece by piece. */
    CHECK_STR(c.text, lmql_result_prompt(R, 0));
    CHECK(c.generated >= 1 && c.generated <= 5);
    struct lmql_stats st;
    lmql_last_stats(L, &st);
    CHECK(st.n_generated >= 1 && st.n_generated <= 5);
    CHECK(st.n_decoded > 0);
    lmql_result_free(R);
    /* A second run reuses the cached prompt. */
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    lmql_last_stats(L, &st);
    CHECK(st.n_reused > 0);
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
}

static void test_errors(void) {
    struct lmql *L = lmql_init(NULL);
    const char *src = "argmax\n    \"ok\"\n    x = (1 +\nfrom \"random\"";
    CHECK(lmql_program_compile(L, "bad.lmql", src, strlen(src)) == NULL);
    CHECK_CONTAINS(lmql_errmsg(L), "bad.lmql:");
    CHECK(lmql_error_line(L) >= 3);
    CHECK(lmql_error_col(L) >= 1);
    src = "argmax \"A[X]\" from \"random\" where len(TOKENS(X)) != 3";
    CHECK(lmql_program_compile(L, "w.lmql", src, strlen(src)) == NULL);
    CHECK_INT(lmql_error_line(L), 1);
    CHECK_INT(lmql_error_col(L), 35);
    CHECK_CONTAINS(lmql_errmsg(L), "w.lmql:1:35: error:");
    /* NULL handles are safe. */
    lmql_program_free(NULL);
    lmql_result_free(NULL);
    lmql_args_free(NULL);
    lmql_free(NULL);
    struct lmql_result *R;
    CHECK_INT(lmql_run(NULL, NULL, NULL, &R), LMQL_ERR_MISUSE);
    CHECK(lmql_result_json(NULL) == NULL);
    CHECK_INT(lmql_result_count(NULL), 0);
    lmql_free(L);
}

static char *run_json(struct lmql *L, const char *src) {
    struct lmql_program *P = lmql_program_compile(L, "<t>", src, strlen(src));
    struct lmql_result *R = NULL;
    char *out = NULL;
    if (P && lmql_run(L, P, NULL, &R) == LMQL_OK) out = strdup(lmql_result_json(R));
    else th_fail(__FILE__, __LINE__, "%s: %s", src, lmql_errmsg(L));
    lmql_result_free(R);
    lmql_program_free(P);
    return out;
}

/* sample with top_k=1 is greedy, whatever the seed and temperature; a
** small top_p is too on a peaked distribution. */
static void test_top_k_top_p(void) {
    struct lmql *L = lmql_init(NULL);
    const char *tail = " \"Say 'this is a test':[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" "
                       "where len(TOKENS(R)) < 8";
    char q[512];
    snprintf(q, sizeof q, "argmax%s", tail);
    char *greedy = run_json(L, q);
    for (int seed = 0; seed < 3; seed++) {
        lmql_set_seed(L, (uint64_t)seed);
        snprintf(q, sizeof q, "sample(temperature=2.0, top_k=1)%s", tail);
        char *s = run_json(L, q);
        CHECK(greedy && s && !strcmp(greedy, s));
        free(s);
        snprintf(q, sizeof q, "sample(top_p=0.000001)%s", tail);
        s = run_json(L, q);
        CHECK(greedy && s && !strcmp(greedy, s));
        free(s);
    }
    free(greedy);
    const char *bad = "sample(top_p=1.5) \"[R]\" from \"random\"";
    struct lmql_program *P = lmql_program_compile(L, "<t>", bad, strlen(bad));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_ERR_QUERY);
    CHECK_CONTAINS(lmql_errmsg(L), "top_p");
    lmql_program_free(P);
    lmql_free(L);
}

/* Beam search of width 1 is greedy decoding; wider beams give `n`
** distinct finished sequences, each within the constraints. */
static void test_beam(void) {
    struct lmql *L = lmql_init(NULL);
    const char *tail = " \"Say 'this is a test':[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" "
                       "where len(TOKENS(R)) < 6 and not \"e\" in R";
    char q[512];
    snprintf(q, sizeof q, "argmax%s", tail);
    struct lmql_program *P = lmql_program_compile(L, "<t>", q, strlen(q));
    struct lmql_result *G = NULL, *B = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &G), LMQL_OK);
    lmql_program_free(P);
    snprintf(q, sizeof q, "beam(n=1)%s", tail);
    P = lmql_program_compile(L, "<t>", q, strlen(q));
    CHECK_INT(lmql_run(L, P, NULL, &B), LMQL_OK);
    CHECK_INT(lmql_result_count(B), 1);
    CHECK_STR(lmql_result_prompt(B, 0), lmql_result_prompt(G, 0));
    lmql_result_free(B);
    lmql_program_free(P);
    snprintf(q, sizeof q, "beam(n=3)%s", tail);
    P = lmql_program_compile(L, "<t>", q, strlen(q));
    CHECK_INT(lmql_run(L, P, NULL, &B), LMQL_OK);
    CHECK_INT(lmql_result_count(B), 3);
    for (int i = 0; i < lmql_result_count(B); i++) {
        const char *p = lmql_result_prompt(B, i);
        CHECK(p && !strchr(p + strlen("Say 'this is a test':"), 'e'));
        for (int j = 0; j < i; j++) CHECK(strcmp(p, lmql_result_prompt(B, j)) != 0);
    }
    CHECK(lmql_result_json(B)[0] == '[');
    lmql_result_free(B);
    lmql_result_free(G);
    lmql_program_free(P);
    lmql_free(L);
}

/* sample(n) forks later sequences from the first: the shared prompt is
** evaluated once, not n times. */
static void test_sample_shares_prompt(void) {
    struct lmql *L = lmql_init(NULL);
    char q[4096] = "sample(n=4) \"";
    for (int i = 0; i < 40; i++) strcat(q, "a long shared prompt ");
    strcat(q, "[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" where len(TOKENS(R)) < 3");
    struct lmql_program *P = lmql_program_compile(L, "<t>", q, strlen(q));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    struct lmql_stats st;
    lmql_last_stats(L, &st);
    /* About 160 prompt tokens; four sequences of at most 2 tokens each. */
    CHECK(st.n_decoded < 200);
    CHECK(st.n_reused >= 3 * 150);
    CHECK_INT(lmql_result_count(R), 4);
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
}

/* The sequences of sample(n) are decoded together: one forward pass per
** step for all of them, not one per sequence. */
/* Run q on a fresh runtime: its result count and statistics. */
static int run_with_stats(const char *q, struct lmql_stats *st) {
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *P = lmql_program_compile(L, "<t>", q, strlen(q));
    struct lmql_result *R = NULL;
    CHECK_INT(lmql_run(L, P, NULL, &R), LMQL_OK);
    lmql_last_stats(L, st);
    int n = lmql_result_count(R);
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
    return n;
}

/* Beam search: the open beams of a step are evaluated in one pass. */
static void test_beam_batches_steps(void) {
    struct lmql_stats st;
    CHECK_INT(run_with_stats("beam(n=4) \"Say 'this is a test':[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" "
                             "where len(TOKENS(R)) == 6", &st), 4);
    CHECK(st.n_forward <= 8);   /* six choices */
}

/* The sequences of sample(n) are decoded together: one forward pass per
** step for all of them, not one per sequence. */
static void test_sample_batches_steps(void) {
    struct lmql_stats st;
    CHECK_INT(run_with_stats("sample(n=4, temperature=0.8) \"Say 'this is a test':[R]\" "
                             "from \"local:llama.cpp:build/models/tiny-spm.gguf\" where len(TOKENS(R)) == 6", &st), 4);
    CHECK_INT(st.n_generated, 24);
    /* 6 steps for 4 sequences: about 7 passes batched, 24 one by one. */
    CHECK(st.n_forward <= 10);
}

int main(void) {
    RUN(test_compile_once_run_many);
    RUN(test_args_json);
    RUN(test_run_options);
    RUN(test_host_functions);
    RUN(test_streaming);
    RUN(test_errors);
    RUN(test_top_k_top_p);
    RUN(test_beam);
    RUN(test_sample_shares_prompt);
    RUN(test_sample_batches_steps);
    RUN(test_beam_batches_steps);
    return th_report("api");
}
