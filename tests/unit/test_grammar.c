/*
** Context-free grammars and their matcher: languages known in closed form
** (balanced brackets, a^n b^n, arithmetic) against lmql__grammar_accepts
** on every short string, what lmql__gb_finish refuses, and every token
** mask against a brute-force check of each token's bytes on a real
** vocabulary (Llama 3's), along valid and random texts.
*/
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model.h"
#include "trie.h"

#define T(t) LMQL_G_T(t)

static struct lmql_grammar *finish(struct lmql__gb *b, int32_t start) {
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__gb_finish(b, start, &e);
    if (!g) th_fail(__FILE__, __LINE__, "finish: %s", e.msg);
    return g;
}

/* S -> "(" S ")" S | "" : balanced parentheses. */
static struct lmql_grammar *balanced(void) {
    struct lmql__gb *b = lmql__gb_new();
    struct lmql__err e;
    int32_t S = lmql__gb_nonterminal(b, "S");
    int32_t o = lmql__gb_literal(b, "(", 1, &e), c = lmql__gb_literal(b, ")", 1, &e);
    lmql__gb_alt(b, S, (int32_t[]){T(o), S, T(c), S}, 4);
    lmql__gb_alt(b, S, NULL, 0);
    return finish(b, S);
}

static bool is_balanced(const char *s, size_t n) {
    int depth = 0;
    for (size_t i = 0; i < n; i++) {
        depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 1000;
        if (depth < 0 || depth >= 1000) return false;
    }
    return depth == 0;
}

/* S -> "a" S "b" | "ab" : a^n b^n, n >= 1. */
static struct lmql_grammar *anbn(void) {
    struct lmql__gb *b = lmql__gb_new();
    struct lmql__err e;
    int32_t S = lmql__gb_nonterminal(b, "S");
    int32_t a = lmql__gb_literal(b, "a", 1, &e), bb = lmql__gb_literal(b, "b", 1, &e);
    int32_t ab = lmql__gb_literal(b, "ab", 2, &e);
    lmql__gb_alt(b, S, (int32_t[]){T(a), S, T(bb)}, 3);
    lmql__gb_alt(b, S, (int32_t[]){T(ab)}, 1);
    return finish(b, S);
}

static bool is_anbn(const char *s, size_t n) {
    if (n < 2 || n % 2) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != (i < n / 2 ? 'a' : 'b')) return false;
    return true;
}

/* Every string over alphabet up to length max: accepts == reference. */
static void all_strings(struct lmql_grammar *g, const char *alpha, int max, bool (*ref)(const char *, size_t),
                        const char *what) {
    if (!g) return;
    size_t k = strlen(alpha);
    char s[16];
    int bad = 0, n_checked = 0;
    for (int len = 0; len <= max; len++) {
        size_t total = 1;
        for (int i = 0; i < len; i++) total *= k;
        for (size_t x = 0; x < total; x++) {
            size_t y = x;
            for (int i = 0; i < len; i++) {
                s[i] = alpha[y % k];
                y /= k;
            }
            int got = lmql__grammar_accepts(g, s, (size_t)len);
            n_checked++;
            if (got != (int)ref(s, (size_t)len) && bad++ < 3)
                th_fail(__FILE__, __LINE__, "%s: \"%.*s\" accepted %d", what, len, s, got);
        }
    }
    CHECK(bad == 0 && n_checked > 100);
}

static void test_languages(void) {
    struct lmql_grammar *g = balanced();
    all_strings(g, "()x", 9, is_balanced, "balanced");
    lmql__grammar_free(g);
    g = anbn();
    all_strings(g, "ab", 12, is_anbn, "a^n b^n");
    lmql__grammar_free(g);
}

/* Regex terminals, nullable ones, ambiguity: a comma-separated list of
** numbers in brackets, with optional spaces, where the number terminal can
** split in many ways ("12" = "1" "2" would be wrong: numbers need a comma). */
static struct lmql_grammar *numlist(void) {
    struct lmql__gb *b = lmql__gb_new();
    struct lmql__err e;
    int32_t L = lmql__gb_nonterminal(b, "list"), R = lmql__gb_nonterminal(b, "rest");
    int32_t open = lmql__gb_literal(b, "[", 1, &e), close = lmql__gb_literal(b, "]", 1, &e);
    int32_t num = lmql__gb_regex(b, "-?(0|[1-9][0-9]*)", 17, &e), comma = lmql__gb_regex(b, ", ?", 3, &e);
    int32_t ws = lmql__gb_regex(b, " *", 2, &e);   /* nullable */
    CHECK(num >= 0 && comma >= 0 && ws >= 0);
    lmql__gb_alt(b, L, (int32_t[]){T(open), T(ws), T(close)}, 3);
    lmql__gb_alt(b, L, (int32_t[]){T(open), T(ws), T(num), R}, 4);
    lmql__gb_alt(b, R, (int32_t[]){T(ws), T(close)}, 2);
    lmql__gb_alt(b, R, (int32_t[]){T(comma), T(num), R}, 3);
    return finish(b, L);
}

static void test_regex_terminals(void) {
    struct lmql_grammar *g = numlist();
    if (!g) return;
    const char *yes[] = {"[]", "[ ]", "[1]", "[ 12, -3,4 ]", "[0,0]", "[-0]", "[10,200, 3000   ]"};
    const char *no[] = {"", "[", "[01]", "[1,]", "[,1]", "[1 2]", "[1]]", "[--1]", "[1,,2]", "[ 1 , 2]"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        int r = lmql__grammar_accepts(g, yes[i], strlen(yes[i]));
        if (r != 1) th_fail(__FILE__, __LINE__, "'%s' refused", yes[i]);
        else th_passed++;
    }
    for (size_t i = 0; i < sizeof no / sizeof *no; i++) {
        int r = lmql__grammar_accepts(g, no[i], strlen(no[i]));
        if (r != 0) th_fail(__FILE__, __LINE__, "'%s' accepted", no[i]);
        else th_passed++;
    }
    /* Equal prefixes reach the same configuration; prefixes stay alive. */
    struct lmql__gm *m = lmql__gm_new(g, NULL);
    int32_t s = lmql__gm_start(m);
    int32_t a = lmql__gm_feed(m, s, "[1", 2), b2 = lmql__gm_feed(m, s, "[1", 2);
    CHECK(a >= 0 && a == b2);
    CHECK(lmql__gm_feed(m, s, "[1,", 3) >= 0);
    CHECK_INT(lmql__gm_feed(m, s, "[1,]", 4), -1);
    CHECK(!lmql__gm_accepting(m, a) && lmql__gm_accepting(m, lmql__gm_step(m, a, ']')));
    /* forced: after "[1, 2" nothing is forced; the start forces "[". */
    char f[8];
    CHECK_INT(lmql__gm_forced(m, s, f, 8), 1);
    CHECK(f[0] == '[');
    CHECK_INT(lmql__gm_forced(m, a, f, 8), 0);
    lmql__gm_free(m);
    lmql__grammar_free(g);
}

static void expect_error(struct lmql__gb *b, int32_t start, const char *needle) {
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__gb_finish(b, start, &e);
    CHECK(g == NULL);
    CHECK_INT(e.status, LMQL_ERR_QUERY);
    CHECK_CONTAINS(e.msg, needle);
    lmql__grammar_free(g);
}

static void test_refused(void) {
    struct lmql__err e;
    /* left recursion, direct and through a nullable prefix */
    struct lmql__gb *b = lmql__gb_new();
    int32_t E = lmql__gb_nonterminal(b, "expr");
    int32_t x = lmql__gb_literal(b, "x", 1, &e), plus = lmql__gb_literal(b, "+", 1, &e);
    lmql__gb_alt(b, E, (int32_t[]){E, T(plus), T(x)}, 3);
    lmql__gb_alt(b, E, (int32_t[]){T(x)}, 1);
    expect_error(b, E, "'expr' is left-recursive");
    b = lmql__gb_new();
    int32_t A = lmql__gb_nonterminal(b, "A"), N = lmql__gb_nonterminal(b, "maybe");
    x = lmql__gb_literal(b, "x", 1, &e);
    lmql__gb_alt(b, N, NULL, 0);
    lmql__gb_alt(b, N, (int32_t[]){T(x)}, 1);
    lmql__gb_alt(b, A, (int32_t[]){N, A, T(x)}, 3);
    lmql__gb_alt(b, A, (int32_t[]){T(x)}, 1);
    expect_error(b, A, "left-recursive");
    /* a cycle of empty derivations */
    b = lmql__gb_new();
    A = lmql__gb_nonterminal(b, "A");
    int32_t B = lmql__gb_nonterminal(b, "B");
    lmql__gb_alt(b, A, (int32_t[]){B}, 1);
    lmql__gb_alt(b, B, (int32_t[]){A}, 1);
    lmql__gb_alt(b, B, NULL, 0);
    expect_error(b, A, "left-recursive");
    /* nothing derivable; a bad pattern; a symbol out of range */
    b = lmql__gb_new();
    A = lmql__gb_nonterminal(b, "loop");
    x = lmql__gb_literal(b, "x", 1, &e);
    lmql__gb_alt(b, A, (int32_t[]){T(x), A}, 2);
    expect_error(b, A, "derives no string");
    b = lmql__gb_new();
    CHECK_INT(lmql__gb_regex(b, "(ab", 3, &e), -1);
    CHECK_INT(e.status, LMQL_ERR_QUERY);
    CHECK(lmql__gb_alt(b, 0, NULL, 0) < 0);   /* no nonterminal 0 yet */
    A = lmql__gb_nonterminal(b, "A");
    lmql__gb_alt(b, A, NULL, 0);
    struct lmql_grammar *g = lmql__gb_finish(b, A, &e);
    CHECK(g == NULL);   /* the failed alternative poisons the builder */
    /* Unproductive alternatives are dropped, the rest works. */
    b = lmql__gb_new();
    A = lmql__gb_nonterminal(b, "A");
    B = lmql__gb_nonterminal(b, "never");
    x = lmql__gb_literal(b, "x", 1, &e);
    int32_t y = lmql__gb_literal(b, "y", 1, &e);
    lmql__gb_alt(b, B, (int32_t[]){T(y), B}, 2);
    lmql__gb_alt(b, A, (int32_t[]){T(y), B}, 2);
    lmql__gb_alt(b, A, (int32_t[]){T(x)}, 1);
    g = finish(b, A);
    CHECK(g && lmql__grammar_accepts(g, "x", 1) == 1 && lmql__grammar_accepts(g, "y", 1) == 0);
    if (g) {
        /* "y" leads nowhere, so it is dead at once, not later */
        struct lmql__gm *m = lmql__gm_new(g, NULL);
        CHECK_INT(lmql__gm_step(m, lmql__gm_start(m), 'y'), -1);
        lmql__gm_free(m);
    }
    lmql__grammar_free(g);
}

/* ------------------------------------------------------------ masks -- */

/* A small JSON-like grammar: objects with string keys, nested values. */
static struct lmql_grammar *jsonish(void) {
    struct lmql__gb *b = lmql__gb_new();
    struct lmql__err e;
    int32_t V = lmql__gb_nonterminal(b, "value"), O = lmql__gb_nonterminal(b, "object");
    int32_t M = lmql__gb_nonterminal(b, "members"), A = lmql__gb_nonterminal(b, "array");
    int32_t I = lmql__gb_nonterminal(b, "items");
    const char *strp = "\"([^\"\\\\\\x00-\\x1f]|\\\\[\"\\\\/bfnrt]|\\\\u[0-9a-fA-F]{4})*\"";
    int32_t str = lmql__gb_regex(b, strp, strlen(strp), &e);
    const char *nump = "-?(0|[1-9][0-9]*)(\\.[0-9]+)?([eE][-+]?[0-9]+)?";
    int32_t num = lmql__gb_regex(b, nump, strlen(nump), &e);
    int32_t lb = lmql__gb_literal(b, "{", 1, &e), rb = lmql__gb_literal(b, "}", 1, &e);
    int32_t ls = lmql__gb_literal(b, "[", 1, &e), rs = lmql__gb_literal(b, "]", 1, &e);
    int32_t colon = lmql__gb_literal(b, ": ", 2, &e), comma = lmql__gb_literal(b, ", ", 2, &e);
    int32_t tru = lmql__gb_literal(b, "true", 4, &e), nul = lmql__gb_literal(b, "null", 4, &e);
    CHECK(str >= 0 && num >= 0);
    lmql__gb_alt(b, V, (int32_t[]){T(str)}, 1);
    lmql__gb_alt(b, V, (int32_t[]){T(num)}, 1);
    lmql__gb_alt(b, V, (int32_t[]){O}, 1);
    lmql__gb_alt(b, V, (int32_t[]){A}, 1);
    lmql__gb_alt(b, V, (int32_t[]){T(tru)}, 1);
    lmql__gb_alt(b, V, (int32_t[]){T(nul)}, 1);
    lmql__gb_alt(b, O, (int32_t[]){T(lb), T(rb)}, 2);
    lmql__gb_alt(b, O, (int32_t[]){T(lb), T(str), T(colon), V, M, T(rb)}, 6);
    lmql__gb_alt(b, M, NULL, 0);
    lmql__gb_alt(b, M, (int32_t[]){T(comma), T(str), T(colon), V, M}, 5);
    lmql__gb_alt(b, A, (int32_t[]){T(ls), T(rs)}, 2);
    lmql__gb_alt(b, A, (int32_t[]){T(ls), V, I, T(rs)}, 4);
    lmql__gb_alt(b, I, NULL, 0);
    lmql__gb_alt(b, I, (int32_t[]){T(comma), V, I}, 3);
    return finish(b, V);
}

/* mask[t] must be: every byte of t's piece steps alive from c. */
static int check_mask(struct lmql__gm *m, const struct lmql__vocab *v, int32_t c, const char *where) {
    const uint8_t *mask = lmql__gm_mask(m, c);
    if (!mask) {
        th_fail(__FILE__, __LINE__, "%s: no mask", where);
        return 1;
    }
    int bad = 0;
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        const char *p = lmql__vocab_piece(v, t, &len);
        bool want = len > 0 && lmql__gm_feed(m, c, p, len) >= 0;
        /* the feed above may evict the mask from the cache: fetch again */
        mask = lmql__gm_mask(m, c);
        if (!mask) return 1;
        if ((mask[t] != 0) != want && bad++ < 3)
            th_fail(__FILE__, __LINE__, "%s: token %d '%.*s' mask %d, brute force %d", where, t, (int)len, p, mask[t], want);
    }
    return bad;
}

/* A chain of 20,000 rules, each defined after the rule that uses it, that
** derives something only through its last rule: productivity must reach
** the start rule from the end (a worklist, not sweeps; this checks the
** answer, timing is make bench's). */
static void test_long_chain(void) {
    struct lmql__err e;
    enum { N = 20000 };
    struct lmql__gb *b = lmql__gb_new();
    static int32_t nt[N];
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "r%d", i);
        nt[i] = lmql__gb_nonterminal(b, name);
    }
    int32_t x = lmql__gb_literal(b, "x", 1, &e), y = lmql__gb_literal(b, "y", 1, &e), z = lmql__gb_literal(b, "z", 1, &e);
    for (int i = 0; i + 1 < N; i++) {
        lmql__gb_alt(b, nt[i], (int32_t[]){T(x), nt[i + 1]}, 2);
        lmql__gb_alt(b, nt[i], (int32_t[]){T(y), nt[i + 1], nt[i + 1]}, 3);   /* a nonterminal twice in one alternative */
    }
    lmql__gb_alt(b, nt[N - 1], (int32_t[]){T(z)}, 1);
    struct lmql_grammar *g = finish(b, nt[0]);
    CHECK(g != NULL);
    static char text[N + 1];
    memset(text, 'x', N - 1);
    text[N - 1] = 'z';
    CHECK(g && lmql__grammar_accepts(g, text, N) == 1 && lmql__grammar_accepts(g, text, N - 1) == 0);
    lmql__grammar_free(g);
    /* the same with the last rule deriving nothing: no string at all */
    b = lmql__gb_new();
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "r%d", i);
        nt[i] = lmql__gb_nonterminal(b, name);
    }
    x = lmql__gb_literal(b, "x", 1, &e);
    for (int i = 0; i + 1 < N; i++) lmql__gb_alt(b, nt[i], (int32_t[]){T(x), nt[i + 1]}, 2);
    lmql__gb_alt(b, nt[N - 1], (int32_t[]){T(x), nt[N - 1]}, 2);
    expect_error(b, nt[0], "derives no string");
}

static void test_masks(void) {
    struct lmql__err err = {0};
    struct lmql__kv kv = {"vocab_only", "true"};
    struct lmql__model *md = lmql__llama_open("build/vocab/ggml-vocab-llama-bpe.gguf", &kv, 1, &err);
    if (!md) {
        th_fail(__FILE__, __LINE__, "open vocabulary: %s", err.msg);
        return;
    }
    struct lmql_trie *t = lmql__vocab_trie(md->vocab);
    struct lmql_grammar *g = jsonish();
    struct lmql__gm *m = g && t ? lmql__gm_new(g, t) : NULL;
    CHECK(m != NULL);
    if (!m) goto done;
    /* Along a valid text, at every prefix; and after random bytes. */
    const char *text = "{\"name\": \"Ada \\u00e9\", \"tags\": [1, -2.5e3, true, {}], \"n\": null}";
    int bad = 0;
    int32_t c = lmql__gm_start(m);
    for (size_t i = 0; i <= strlen(text) && c >= 0; i++) {
        if (i % 4 == 0 || i + 1 >= strlen(text)) {
            char where[64];
            snprintf(where, sizeof where, "prefix %zu", i);
            bad += check_mask(m, md->vocab, c, where);
        }
        if (i < strlen(text)) c = lmql__gm_step(m, c, (unsigned char)text[i]);
    }
    CHECK(c >= 0 && lmql__gm_accepting(m, c));
    CHECK_INT(bad, 0);
    /* Following masked tokens only never dies and ends accepting: a random
    ** walk choosing among allowed tokens, ending when only the end fits. */
    uint64_t rng = 7;
    int walks_ok = 0;
    for (int w = 0; w < 20; w++) {
        c = lmql__gm_start(m);
        for (int step = 0; step < 40 && c >= 0; step++) {
            const uint8_t *mask = lmql__gm_mask(m, c);
            if (!mask) break;
            int32_t n_ok = 0, pick = -1;
            for (int32_t k = 0; k < md->vocab->n_tokens; k++)
                if (mask[k] && lmql__rng_next(&rng) % (uint64_t)++n_ok == 0) pick = k;
            if (pick < 0) break;
            uint32_t len;
            const char *p = lmql__vocab_piece(md->vocab, pick, &len);
            c = lmql__gm_feed(m, c, p, len);
        }
        walks_ok += c >= 0;
    }
    CHECK_INT(walks_ok, 20);
done:
    lmql__gm_free(m);
    lmql__grammar_free(g);
    lmql__model_free(md);
}

int main(void) {
    RUN(test_languages);
    RUN(test_regex_terminals);
    RUN(test_refused);
    RUN(test_long_chain);
    RUN(test_masks);
    return th_report("grammar");
}
