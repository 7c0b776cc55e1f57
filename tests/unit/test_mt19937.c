/*
** src/mt19937.c against numpy's legacy RandomState: every value here was
** printed by numpy 1.24 (python3-numpy, Debian 12), which implements the
** reference MT19937 seeding and draws (its values for RandomState(0) are
** the ones its documentation shows). LMQL's random model draws with
** RandomState, so these must hold bit for bit.
*/
#include "harness.h"
#include "mt19937.h"

#include <stdio.h>
#include <string.h>

/* Doubles compared by their exact decimal round trip (%.17g). */
static void check_double(double got, const char *want) {
    char buf[40];
    snprintf(buf, sizeof buf, "%.17g", got);
    double w;
    sscanf(want, "%lf", &w);
    if (got != w) CHECK_STR(buf, want);
    CHECK(got == w);
}

static void test_random_sample(void) {
    struct lmql__mt s;
    lmql__mt_seed(&s, 0);   /* RandomState(0).random_sample(3) */
    check_double(lmql__mt_random_sample(&s), "0.5488135039273248");
    check_double(lmql__mt_random_sample(&s), "0.7151893663724195");
    check_double(lmql__mt_random_sample(&s), "0.6027633760716439");
    /* past a state refill: RandomState(7), the 401st random_sample */
    lmql__mt_seed(&s, 7);
    for (int i = 0; i < 400; i++) lmql__mt_random_sample(&s);
    check_double(lmql__mt_random_sample(&s), "0.8070553190721129");
}

static void test_randint(void) {
    struct lmql__mt s;
    static const int want[] = {5, 0, 3, 3, 7};   /* RandomState(0).randint(0, 10, 5) */
    lmql__mt_seed(&s, 0);
    for (int i = 0; i < 5; i++) CHECK_INT(lmql__mt_randint(&s, 0, 10), want[i]);
    /* ranges over 2**32 draw 64 bits: RandomState(12345).randint(0, 2**40, 3) */
    static const long long w40[] = {974485794277LL, 125115435137LL, 704545402281LL};
    lmql__mt_seed(&s, 12345);
    for (int i = 0; i < 3; i++) CHECK_INT(lmql__mt_randint(&s, 0, 1LL << 40), w40[i]);
    /* the largest integer seed: RandomState(2**32-1).randint(0, 2**32, 3, dtype=uint64) */
    static const long long wmax[] = {419326371LL, 479346978LL, 3918654476LL};
    lmql__mt_seed(&s, 4294967295U);
    for (int i = 0; i < 3; i++) CHECK_INT(lmql__mt_randint(&s, 0, 1LL << 32), wmax[i]);
}

static void test_seed_array(void) {
    struct lmql__mt s;
    static const uint32_t key[] = {1, 2, 3};   /* RandomState([1, 2, 3]) */
    lmql__mt_seed_array(&s, key, 3);
    check_double(lmql__mt_random_sample(&s), "0.6098612722867289");
    check_double(lmql__mt_random_sample(&s), "0.8866970434146851");
    static const int want[] = {69, 797, 922};  /* then randint(0, 1000, 3) */
    for (int i = 0; i < 3; i++) CHECK_INT(lmql__mt_randint(&s, 0, 1000), want[i]);
}

int main(void) {
    RUN(test_random_sample);
    RUN(test_randint);
    RUN(test_seed_array);
    return th_report("mt19937");
}
