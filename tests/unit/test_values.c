/*
** Runtime values at scale and at their limits, through the value API and
** through whole queries: cycles are freed by the run's registry, freeing
** a deeply nested value does not recurse once per level, big dicts and
** scopes are indexed (a generated query with 100,000 variables), and flat
** operator chains of 100,000 terms either run or are refused by the
** parser with a position.
*/
#include <lmql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "lmql_int.h"
#include "json.h"
#include "value.h"

static int g_freed;
static void count_free(void *p) { (void)p; g_freed++; }

/* A cycle nothing outside holds is freed by lmql__gc_finish; a container
** still held from outside survives it and is freed later by its count. */
static void test_registry_frees_cycles(void) {
    g_freed = 0;
    struct lmql__gc *g = lmql__gc_new();
    CHECK(g != NULL);
    struct lmql__gc *prev = lmql__gc_enter(g);
    struct lmql_val *a = lmql__val_list(0), *d = lmql__val_dict();
    lmql__list_push(a, lmql__val_obj("probe", NULL, count_free));
    lmql__list_push(a, lmql__val_ref(a));             /* a = [probe, a] */
    lmql__dict_set(d, lmql__val_cstr("a"), lmql__val_ref(a));
    lmql__dict_set(d, lmql__val_cstr("d"), lmql__val_ref(d));
    lmql__list_push(a, lmql__val_ref(d));             /* a -> d -> a, d -> d */
    lmql__val_unref(a);
    lmql__val_unref(d);
    struct lmql_val *kept = lmql__val_list(0);        /* held by "the result" */
    lmql__list_push(kept, lmql__val_obj("probe", NULL, count_free));
    struct lmql_val *inner = lmql__val_list(0);
    lmql__list_push(kept, inner);
    CHECK_INT(g_freed, 0);                            /* counting alone frees nothing */
    lmql__gc_enter(prev);
    lmql__gc_finish(g);
    CHECK_INT(g_freed, 1);                            /* the cycle's probe */
    CHECK_INT(kept->u.list.len, 2);
    CHECK(kept->u.list.items[1] == inner && inner->refs == 1);
    lmql__val_unref(kept);
    CHECK_INT(g_freed, 2);
}

/* Freeing a list nested 1,000,000 deep (a C recursion per level would
** need far more than the stack has). */
static void test_deep_free(void) {
    g_freed = 0;
    struct lmql_val *a = lmql__val_list(0);
    lmql__list_push(a, lmql__val_obj("probe", NULL, count_free));
    for (int i = 0; i < 1000000; i++) {
        struct lmql_val *b = lmql__val_list(1);
        lmql__list_push(b, a);
        a = b;
    }
    struct lmql__buf s = {0};
    CHECK(lmql__val_repr_into(&s, a) != 0);   /* past the depth limit: an error, not a crash */
    CHECK_CONTAINS(lmql__val_error(), "maximum recursion depth exceeded");
    lmql__buf_free(&s);
    lmql__val_unref(a);
    CHECK_INT(g_freed, 1);
}

/* A dict of 100,000 keys finds each of them and keeps insertion order. */
static void test_big_dict(void) {
    struct lmql_val *d = lmql__val_dict();
    char k[32];
    int failed = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        failed += lmql__dict_set(d, lmql__val_cstr(k), lmql__val_int(i)) != 0;
    }
    CHECK_INT(failed, 0);
    lmql__dict_set(d, lmql__val_cstr("k5"), lmql__val_int(-5));   /* replaces */
    CHECK_INT(d->u.dict.len, 100000);
    int bad = 0;
    for (int i = 0; i < 100000; i++) {
        snprintf(k, sizeof k, "k%d", i);
        struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {k, strlen(k)}};
        struct lmql_val *v = lmql__dict_get(d, &key);
        bad += !v || v->u.i != (i == 5 ? -5 : i);
        bad += d->u.dict.keys[i]->u.str.len != strlen(k) || memcmp(d->u.dict.keys[i]->u.str.s, k, strlen(k));
    }
    CHECK_INT(bad, 0);
    struct lmql_val one = {.kind = LMQL_V_FLOAT, .refs = -1, .u.f = 1.0};
    lmql__dict_set(d, lmql__val_int(1), lmql__val_cstr("one"));
    struct lmql_val *v = lmql__dict_get(d, &one);             /* 1.0 == 1: the same key */
    CHECK(v && v->kind == LMQL_V_STR && !strcmp(v->u.str.s, "one"));
    lmql__val_unref(d);
}

/* Runs src; returns the status, with the prompt or the error in out. */
static lmql_status run_query(const char *src, char *out, size_t cap) {
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *P = lmql_program_compile(L, "gen.lmql", src, strlen(src));
    lmql_status st = LMQL_ERR_QUERY;
    out[0] = 0;
    if (P) {
        struct lmql_result *R = NULL;
        st = lmql_run(L, P, NULL, &R);
        if (st == LMQL_OK) snprintf(out, cap, "%s", lmql_result_prompt(R, 0));
        lmql_result_free(R);
        lmql_program_free(P);
    }
    if (st != LMQL_OK) snprintf(out, cap, "%d:%d: %s", lmql_error_line(L), lmql_error_col(L), lmql_errmsg(L));
    lmql_free(L);
    return st;
}

/* 100,000 distinct top-level variables, each read back. */
static void test_many_variables(void) {
    enum { N = 100000 };
    struct lmql__buf q = {0};
    lmql__buf_adds(&q, "argmax\n");
    for (int i = 0; i < N; i++) lmql__buf_addf(&q, "    v%d = %d\n", i, i * 3);
    lmql__buf_adds(&q, "    t = 0\n");
    for (int i = 0; i < N; i += 7) lmql__buf_addf(&q, "    t = t + v%d\n", i);
    lmql__buf_adds(&q, "    \"{v0} {v1} {v99999} {t}\"\nfrom \"random\"\n");
    long long t = 0;
    for (int i = 0; i < N; i += 7) t += i * 3;
    char want[128], got[512];
    snprintf(want, sizeof want, "0 3 299997 %lld", t);
    CHECK_INT(run_query(q.data, got, sizeof got), LMQL_OK);
    CHECK_STR(got, want);
    lmql__buf_free(&q);
}

/* "argmax\n    a = ...\n    b = HEAD OP a OP a ... (n terms)\n    "{b}"\nfrom "random"" */
static lmql_status run_chain(const char *setup, const char *head, const char *op, const char *term, int n, char *out,
                             size_t cap) {
    struct lmql__buf q = {0};
    lmql__buf_addf(&q, "argmax\n    %s\n    b = %s", setup, head);
    for (int i = 1; i < n; i++) lmql__buf_addf(&q, "%s%s", op, term);
    lmql__buf_adds(&q, "\n    \"{b}\"\nfrom \"random\"\n");
    lmql_status st = run_query(q.data, out, cap);
    lmql__buf_free(&q);
    return st;
}

static void test_flat_chains(void) {
    /* Chains that nest the tree are refused past the limit, with a position
    ** (line 3); below it they run; and / or / comparisons are flat nodes, so
    ** 100,000 terms run. */
    static const struct {
        const char *init, *op, *term;
        int n;
        lmql_status st;
        const char *want;   /* the value, or part of the error */
    } cases[] = {
        {"a = 1", "+", "a", 100000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = 1", "*", "a", 60000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = 1", "-", "a", 60000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = 2", "**", "a", 100000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = [0]", "", "[0]", 100000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = 1", "", ".y", 100000, LMQL_ERR_QUERY, "expression nested too deeply"},
        {"a = 1", "+", "a", 1999, LMQL_OK, "1999"},
        {"a = 1", "-", "a", 1999, LMQL_OK, "-1997"},
        {"a = 1", " and ", "a", 100000, LMQL_OK, "1"},
        {"a = 0", " or ", "a", 100000, LMQL_OK, "0"},
        {"a = 1", " == ", "a", 100000, LMQL_OK, "True"},
    };
    char got[1024];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        CHECK_INT(run_chain(cases[i].init, "a", cases[i].op, cases[i].term, cases[i].n, got, sizeof got), cases[i].st);
        if (cases[i].st == LMQL_OK) CHECK_STR(got, cases[i].want);
        else CHECK_CONTAINS(got, cases[i].want);
    }
    CHECK_INT(run_chain("a = 1", "a", "+", "a", 100000, got, sizeof got), LMQL_ERR_QUERY);
    CHECK(!strncmp(got, "3:", 2));   /* the position of the chain */
}

/* The numbers JSON values hold: integers within 64 bits, finite doubles
** (rounded like Python's json.loads), and exact numbers for the rest:
** nothing becomes inf or 0 or loses an integer's digits. */
static void test_json_numbers(void) {
    /* the kinds of the items of each array, and the array printed back */
    static const struct { const char *text, *kinds, *json; } cases[] = {
        {"[1, -9223372036854775808, 9223372036854775807]", "iii", "[1, -9223372036854775808, 9223372036854775807]"},
        {"[1, 9223372036854775808]", "in", "[1, 9223372036854775808]"},
        {"[\"99999999999999999999\", 1234567890123456789012345678901234567890]", "sn",
         "[\"99999999999999999999\", 1234567890123456789012345678901234567890]"},
        {"[6.606530820028091517]", "f", "[6.606530820028092]"},
        {"[0.0, -0.0, 0e5, 1e-300, 1.5E+300]", "fffff", "[0.0, -0.0, 0.0, 1e-300, 1.5e+300]"},
        {"[1e400, -1E+400]", "nn", "[1e400, -1E+400]"},
        {"[2, 1e-400]", "in", "[2, 1e-400]"},
        {"[0.00000e-999]", "f", "[0.0]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct lmql__err e = {0};
        struct lmql_val *v = lmql__json_parse(cases[i].text, strlen(cases[i].text), &e);
        CHECK(v != NULL);
        if (!v) continue;
        char kinds[16] = {0};
        for (size_t k = 0; k < v->u.list.len && k < 15; k++) {
            enum lmql_val_kind kk = v->u.list.items[k]->kind;
            kinds[k] = kk == LMQL_V_INT ? 'i' : kk == LMQL_V_FLOAT ? 'f' : kk == LMQL_V_NUM ? 'n' : kk == LMQL_V_STR ? 's' : '?';
        }
        CHECK_STR(kinds, cases[i].kinds);
        struct lmql__buf b = {0};
        CHECK(lmql__val_json_into(&b, v) == 0);
        CHECK_STR(b.data ? b.data : "", cases[i].json);
        lmql__buf_free(&b);
        lmql__val_unref(v);
    }
    /* an exact number: its text in str/repr, int or float by its text, equal to the same text only */
    struct lmql__err e = {0};
    struct lmql_val *a = lmql__json_parse("123456789012345678901234567890", 30, &e), *b2 = lmql__val_num("123456789012345678901234567890", 30);
    CHECK(a && b2 && lmql__val_equal(a, b2));
    CHECK_STR(a ? lmql__val_type_name(a) : "", "int");
    struct lmql_val *c = lmql__json_parse("-2.5e999", 8, &e);
    CHECK_STR(c ? lmql__val_type_name(c) : "", "float");
    CHECK(c && !lmql__val_equal(a, c));
    lmql__val_unref(a);
    lmql__val_unref(b2);
    lmql__val_unref(c);
}

int main(void) {
    RUN(test_json_numbers);
    RUN(test_registry_frees_cycles);
    RUN(test_deep_free);
    RUN(test_big_dict);
    RUN(test_many_variables);
    RUN(test_flat_chains);
    return th_report("values");
}
