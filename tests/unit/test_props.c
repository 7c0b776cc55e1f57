/*
** Property test: whatever the draw, a generated value never breaks a
** constraint that LMQL's semantics say holds. Thousands of runs on the
** random model (its draws differ from run to run) and sampled runs on the
** tiny llama.cpp models; every value is checked here by code independent
** of the constraint engine.
*/
#include <lmql.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

/* The value of variable `name` in sequence 0, decoded from JSON. */
static int var_text(const struct lmql_result *R, const char *name, char *out, size_t cap) {
    for (int k = 0; k < lmql_result_variable_count(R, 0); k++) {
        if (strcmp(lmql_result_variable_name(R, 0, k), name)) continue;
        const char *j = lmql_result_variable_json(R, 0, k);
        size_t n = 0;
        if (*j != '"') { snprintf(out, cap, "%s", j); return 0; }
        for (j++; *j && *j != '"' && n + 1 < cap; j++) {
            if (*j == '\\') {
                j++;
                /* Control bytes come as \u00XX; NUL would end the C string. */
                if (*j == 'u') { unsigned c = 0; sscanf(j + 1, "%4x", &c); out[n++] = c ? (char)c : '?'; j += 4; continue; }
                out[n++] = *j == 'n' ? '\n' : *j == 't' ? '\t' : *j == 'r' ? '\r' : *j;
            } else out[n++] = *j;
        }
        out[n] = 0;
        return 0;
    }
    return -1;
}

static size_t chars(const char *s) {
    size_t k = 0;
    for (; *s; s++) k += ((unsigned char)*s & 0xC0) != 0x80;
    return k;
}

/* [0-9]{2}-[a-z]+ */
static bool date_like(const char *s) {
    if (!(s[0] >= '0' && s[0] <= '9' && s[1] >= '0' && s[1] <= '9' && s[2] == '-' && s[3] >= 'a' && s[3] <= 'z')) return false;
    for (s += 3; *s; s++) if (*s < 'a' || *s > 'z') return false;
    return true;
}

struct prop {
    const char *query;
    const char *var;
    bool (*holds)(const char *value);
};

static bool in_list(const char *v) { return !strcmp(v, " red") || !strcmp(v, " green") || !strcmp(v, " blue sky"); }
static bool no_newline(const char *v) { return !strchr(v, '\n'); }
static bool short_text(const char *v) { return chars(v) <= 7; }
static bool is_int(const char *v) { if (!*v) return false; for (; *v; v++) if (*v < '0' || *v > '9') return false; return true; }
static bool starts_hi(const char *v) { return !strncmp(v, " Hi", 3); }
static bool stops_at_dot(const char *v) { const char *d = strchr(v, '.'); return !d || d[1] == 0; }
/* "x" in X and len(X) < 40: the value has an x, or the length ran out
** first (LMQL ends a variable whose constraints cannot hold any more). */
static bool has_x(const char *v) { return strchr(v, 'x') != NULL || chars(v) == 39; }

static const struct prop PROPS[] = {
    {"argmax \"Color:[C]\" from \"M\" where C in [\" red\", \" green\", \" blue sky\"]", "C", in_list},
    {"argmax \"Line:[L]\" from \"M\" where not \"\\n\" in L and len(TOKENS(L)) < 12", "L", no_newline},
    {"argmax \"Word:[W]\" from \"M\" where len(W) < 8", "W", short_text},
    {"argmax \"Date:[D]\" from \"M\" where REGEX(D, r\"[0-9]{2}-[a-z]+\") and len(TOKENS(D)) < 8", "D", date_like},
    /* len(N) < 19 keeps it an int64: GPT-2 (the random model's vocabulary)
    ** has number tokens of up to 16 digits */
    {"argmax \"N:[N: int]\" from \"M\" where len(TOKENS(N)) < 5 and len(N) < 19", "N", is_int},
    {"argmax \"Greet:[G]\" from \"M\" where STARTS_WITH(G, \" Hi\") and len(TOKENS(G)) < 6", "G", starts_hi},
    {"argmax \"S:[S]\" from \"M\" where STOPS_AT(S, \".\") and len(TOKENS(S)) < 40", "S", stops_at_dot},
    {"argmax \"X:[X]\" from \"M\" where \"x\" in X and len(X) < 40", "X", has_x},
};

static void run_props(const char *model, const char *decoder, int runs) {
    struct lmql *L = lmql_init(NULL);
    for (size_t p = 0; p < sizeof PROPS / sizeof *PROPS; p++) {
        /* The query with its model and decoder put in. */
        char q[512], *at;
        snprintf(q, sizeof q, "%s", PROPS[p].query);
        at = strstr(q, "\"M\"");
        char full[1024];
        snprintf(full, sizeof full, "%s%.*s\"%s\"%s", decoder, (int)(at - q) - 6, q + 6, model, at + 3);
        struct lmql_program *P = lmql_program_compile(L, "<prop>", full, strlen(full));
        if (!P) { th_fail(__FILE__, __LINE__, "%s: %s", full, lmql_errmsg(L)); continue; }
        int bad = 0;
        for (int r = 0; r < runs; r++) {
            lmql_set_seed(L, (uint64_t)r);
            struct lmql_result *R = NULL;
            char v[4096];
            if (lmql_run(L, P, NULL, &R) != LMQL_OK) {
                th_fail(__FILE__, __LINE__, "%s (seed %d): %s", full, r, lmql_errmsg(L));
                bad++;
            } else if (var_text(R, PROPS[p].var, v, sizeof v) || !PROPS[p].holds(v)) {
                th_fail(__FILE__, __LINE__, "%s (seed %d): value \"%s\" breaks the constraint", full, r, v);
                bad++;
            }
            lmql_result_free(R);
            if (bad > 3) break;
        }
        if (!bad) th_passed++;
        lmql_program_free(P);
    }
    lmql_free(L);
}

/* Runs per query and model (LMQL_PROPS_RUNS changes it; the sanitizer
** build uses fewer). */
static int g_runs = 300;

static void test_random_model(void) { run_props("random", "argmax", g_runs * 2); }
static void test_tiny_spm(void) { run_props("local:llama.cpp:build/models/tiny-spm.gguf", "sample(temperature=1.5)", g_runs / 3); }
static void test_tiny_gpt2(void) { run_props("local:llama.cpp:build/models/tiny-gpt2.gguf", "sample(temperature=1.5)", g_runs / 6); }
static void test_tiny_llama3(void) { run_props("local:llama.cpp:build/models/tiny-llama3.gguf", "sample(temperature=1.5)", g_runs / 10); }

int main(int argc, char **argv) {
    const char *env = getenv("LMQL_PROPS_RUNS");
    if (env && atoi(env) > 0) g_runs = atoi(env);
    (void)argc; (void)argv;
    RUN(test_random_model);
    RUN(test_tiny_spm);
    RUN(test_tiny_gpt2);
    RUN(test_tiny_llama3);
    return th_report("props");
}
