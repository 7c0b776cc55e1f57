/*
** Grammars written as GBNF (grammar_gbnf.c), checked by the round trip: the
** GBNF text compiled again by our own GBNF front end (gbnf.c) must accept and
** refuse exactly what the original grammar does, on listed strings and on
** every one-character edit of them (edits reach the edges of each DFA state's
** classes, where a wrong range would show).
*/
#include <stdlib.h>
#include <string.h>

#include "gbnf.h"
#include "grammar.h"
#include "harness.h"
#include "jsonschema.h"

/* The export of g compiled back; NULL (a failure recorded) when either fails. */
static struct lmql_grammar *round_trip(const struct lmql_grammar *g, struct lmql__buf *text, int line) {
    struct lmql__err e = {0};
    text->len = 0;
    if (lmql__grammar_gbnf(g, text, &e)) {
        th_fail(__FILE__, line, "export: %s", e.msg);
        return NULL;
    }
    struct lmql_grammar *back = lmql__gbnf_compile(text->data, text->len, "root", &e);
    if (!back) th_fail(__FILE__, line, "re-parse: %d:%d %s\n%s", e.pos.line, e.pos.col, e.msg, text->data);
    else th_passed++;
    return back;
}

/* Both grammars give s the same verdict; returns that verdict (or -1). */
static int same(const struct lmql_grammar *a, const struct lmql_grammar *b, const char *s, size_t n, int line) {
    int x = lmql__grammar_accepts(a, s, n), y = lmql__grammar_accepts(b, s, n);
    if (x != y) {
        th_fail(__FILE__, line, "\"%.*s\": original %d, from GBNF %d", (int)n, s, x, y);
        return -1;
    }
    th_passed++;
    return x;
}

/* Listed strings (yes accepted, no refused by both), then every edit of the
** yes strings: one character deleted, replaced or inserted, from a set
** chosen to hit class edges. */
static void check(const struct lmql_grammar *g, const char *const *yes, const char *const *no, int line) {
    struct lmql__buf text = {0};
    struct lmql_grammar *back = g ? round_trip(g, &text, line) : NULL;
    if (!back) {
        if (!g) th_fail(__FILE__, line, "no grammar");
        lmql__buf_free(&text);
        return;
    }
    static const char *const alpha[] = {"a", "z", "0", "9", "-", "\"", "\\", " ", ",", ":", "{", "}", "[", "]", ".",
                                        "e", "E", "+", "\x01", "\x1f", "\x7f", "\xc3\xa9", "\xe4\xb8\x80",
                                        "\xed\x9f\xbf", "\xee\x80\x80", "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    enum { N_ALPHA = sizeof alpha / sizeof *alpha };
    int bad = 0;
    for (const char *const *p = yes; *p; p++) {
        size_t n = strlen(*p);
        if (same(g, back, *p, n, line) != 1) th_fail(__FILE__, line, "\"%s\" refused", *p);
        char buf[512];
        for (size_t i = 0; i <= n && bad < 5 && n + 8 < sizeof buf; i++) {
            memcpy(buf, *p, i);
            if (i < n) {   /* byte i deleted */
                memcpy(buf + i, *p + i + 1, n - i - 1);
                if (same(g, back, buf, n - 1, line) < 0) bad++;
            }
            for (int k = 0; k < N_ALPHA; k++) {
                size_t a = strlen(alpha[k]);
                memcpy(buf + i, alpha[k], a);
                memcpy(buf + i + a, *p + i, n - i);   /* inserted before byte i */
                if (same(g, back, buf, n + a, line) < 0) bad++;
                if (i < n) {   /* byte i replaced */
                    memcpy(buf + i + a, *p + i + 1, n - i - 1);
                    if (same(g, back, buf, n + a - 1, line) < 0) bad++;
                }
            }
        }
    }
    for (const char *const *p = no; p && *p; p++)
        if (same(g, back, *p, strlen(*p), line) != 0) th_fail(__FILE__, line, "\"%s\" accepted", *p);
    lmql__grammar_free(back);
    lmql__buf_free(&text);
}

static void check_schema(const char *schema, bool free_ws, const char *const *yes, const char *const *no, int line) {
    struct lmql__js_opts o = {.free_ws = free_ws};
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__jsonschema_compile_text(schema, strlen(schema), &o, &e);
    if (!g) th_fail(__FILE__, line, "schema: %s", e.msg);
    check(g, yes, no, line);
    lmql__grammar_free(g);
}

static void test_schemas(void) {
    check_schema("{\"type\": \"object\", \"properties\": {\"name\": {\"type\": \"string\", \"maxLength\": 3}, "
                 "\"age\": {\"type\": \"integer\", \"minimum\": 0, \"maximum\": 120}, "
                 "\"tags\": {\"type\": \"array\", \"items\": {\"enum\": [\"a-b\", \"c\\\"d\", \"\\u00e9\"]}}}, "
                 "\"required\": [\"name\", \"age\"]}",
                 false,
                 (const char *const[]){"{\"name\": \"ab\", \"age\": 7}", "{\"name\": \"\", \"age\": 120, \"tags\": []}",
                                       "{\"name\": \"\\u00e9\", \"age\": 0, \"tags\": [\"a-b\", \"c\\\"d\"]}",
                                       "{\"name\": \"\xe4\xb8\x80\", \"age\": 19, \"tags\": [\"\xc3\xa9\"]}", NULL},
                 (const char *const[]){"{\"name\": \"abcd\", \"age\": 7}", "{\"age\": 7}", "{\"name\": \"a\", \"age\": 121}",
                                       NULL},
                 __LINE__);
    check_schema("{\"type\": \"object\", \"properties\": {\"d\": {\"type\": \"string\", \"pattern\": "
                 "\"^[0-9]{4}-[01][0-9]$\"}, \"x\": {\"type\": \"number\"}, \"u\": {\"type\": \"string\", "
                 "\"pattern\": \"^[\\u4e00-\\u9fa5a-z]+$\"}, \"b\": {\"type\": [\"boolean\", \"null\"]}}, "
                 "\"additionalProperties\": false}",
                 true,
                 (const char *const[]){"{}", "{\"d\": \"2024-12\"}", "{ \"x\" : -1.5e+3 ,\"b\":null}",
                                       "{\"u\": \"a\xe4\xb8\x80z\", \"b\": true}", NULL},
                 (const char *const[]){"{\"d\": \"2024-22\"}", "{\"e\": 1}", "{\"u\": \"\"}", NULL}, __LINE__);
    check_schema("{\"anyOf\": [{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"maxItems\": 3}, "
                 "{\"type\": \"object\", \"additionalProperties\": {\"type\": \"string\", \"format\": \"date\"}}]}",
                 false,
                 (const char *const[]){"[]", "[1, -2, 30]", "{\"k\": \"2020-02-29\"}", "{}", NULL},
                 (const char *const[]){"[1, 2, 3, 4]", "{\"k\": \"2020-13-01\"}", NULL}, __LINE__);
    check_schema("true", false, (const char *const[]){"{\"a\": [1, \"x\", null]}", "\"\\ud83d\\ude00\"", "-0.5", NULL},
                 (const char *const[]){"{a}", NULL}, __LINE__);
}

/* Hand-built grammars: recursion, an empty alternative, terminals reaching
** the ends of Unicode, a nullable terminal; and the literals GBNF cannot
** write. */
static void test_built(void) {
    struct lmql__err e = {0};
    struct lmql__gb *b = lmql__gb_new();
    int32_t S = lmql__gb_nonterminal(b, "list of things!"), T = lmql__gb_nonterminal(b, "");
    int32_t open = lmql__gb_literal(b, "(", 1, &e), close = lmql__gb_literal(b, ")", 1, &e);
    const char *wide_re = "[\\U0001F600-\\U0010FFFF\\x00]";
    int32_t any = lmql__gb_regex(b, "[^()]*", 6, &e), wide = lmql__gb_regex(b, wide_re, strlen(wide_re), &e);
    lmql__gb_alt(b, S, (int32_t[]){LMQL_G_T(open), T, LMQL_G_T(close), S}, 4);
    lmql__gb_alt(b, S, NULL, 0);
    lmql__gb_alt(b, T, (int32_t[]){LMQL_G_T(any)}, 1);
    lmql__gb_alt(b, T, (int32_t[]){LMQL_G_T(wide), S}, 2);
    struct lmql_grammar *g = lmql__gb_finish(b, S, &e);
    check(g, (const char *const[]){"", "()", "(ab)(\xf0\x9f\x98\x80())", "(\xf4\x8f\xbf\xbf)", "(x\xc3\xa9)()", NULL},
          (const char *const[]){"(", "(()", "(\xf0\x9f\x98\x80)(", NULL}, __LINE__);
    /* U+0000 is the one difference: GBNF never matches it. */
    struct lmql__buf text = {0};
    struct lmql_grammar *back = g ? round_trip(g, &text, __LINE__) : NULL;
    CHECK(g && lmql__grammar_accepts(g, "(\0)", 3) == 1);
    CHECK(back && lmql__grammar_accepts(back, "(\0)", 3) == 0);
    CHECK_CONTAINS(text.data, "root ::= n0-list-of-things\n");
    lmql__grammar_free(back);
    lmql__grammar_free(g);
    lmql__buf_free(&text);

    b = lmql__gb_new();
    S = lmql__gb_nonterminal(b, "s");
    int32_t half = lmql__gb_literal(b, "\xc3", 1, &e);
    lmql__gb_alt(b, S, (int32_t[]){LMQL_G_T(half)}, 1);
    g = lmql__gb_finish(b, S, &e);
    CHECK(g != NULL);
    text.len = 0;
    CHECK(g && lmql__grammar_gbnf(g, &text, &e) == -1 && e.status == LMQL_ERR_QUERY);
    CHECK_CONTAINS(e.msg, "not valid UTF-8");
    lmql__grammar_free(g);

    /* A regex that needs U+0000 after "a": refused, not written as an empty
    ** rule (which GBNF reads as the empty string). An unused bad literal is
    ** no obstacle. */
    b = lmql__gb_new();
    S = lmql__gb_nonterminal(b, "s");
    int32_t nul = lmql__gb_regex(b, "a\\x00|b", 7, &e);
    half = lmql__gb_literal(b, "\xc3", 1, &e);
    T = lmql__gb_nonterminal(b, "unused");
    lmql__gb_alt(b, S, (int32_t[]){LMQL_G_T(nul)}, 1);
    lmql__gb_alt(b, T, (int32_t[]){LMQL_G_T(half)}, 1);
    g = lmql__gb_finish(b, S, &e);
    text.len = 0;
    CHECK(g && lmql__grammar_gbnf(g, &text, &e) == -1 && e.status == LMQL_ERR_QUERY);
    CHECK_CONTAINS(e.msg, "U+0000");
    lmql__grammar_free(g);

    b = lmql__gb_new();
    S = lmql__gb_nonterminal(b, "s");
    int32_t ok = lmql__gb_regex(b, "b", 1, &e);
    half = lmql__gb_literal(b, "\xc3", 1, &e);
    T = lmql__gb_nonterminal(b, "unused");
    lmql__gb_alt(b, S, (int32_t[]){LMQL_G_T(ok)}, 1);
    lmql__gb_alt(b, T, (int32_t[]){LMQL_G_T(half)}, 1);
    g = lmql__gb_finish(b, S, &e);
    text.len = 0;
    CHECK(g && lmql__grammar_gbnf(g, &text, &e) == 0);
    CHECK_CONTAINS(text.data, "root ::= n0-s\nn0-s ::= t0\nt0 ::= \"b\"\n");
    lmql__grammar_free(g);
    lmql__buf_free(&text);
}

int main(void) {
    RUN(test_schemas);
    RUN(test_built);
    return th_report("grammar_gbnf");
}
