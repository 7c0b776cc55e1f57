/*
** One definition of a character (src/utf8.h): len(s), `for c in s`,
** s[i], s[i:j] and format widths agree on every string, invalid UTF-8
** included (an invalid piece is one character), and give Python's answers
** on valid UTF-8.
*/
#include "harness.h"
#include "lmql.h"
#include "utf8.h"

#include <stdio.h>
#include <string.h>

static void test_count(void) {
    /* valid: é (2 bytes), € (3), 😀 (4) */
    CHECK_INT(lmql__utf8_count("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10), 4);
    CHECK_INT(lmql__utf8_offset("a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10, 2), 3);
    CHECK_INT(lmql__utf8_offset("a\xc3\xa9", 3, 9), 3);
    /* invalid: a lone continuation byte, a cut sequence (one piece), a
    ** byte that never starts one, an overlong form (two pieces), a surrogate */
    CHECK_INT(lmql__utf8_count("\x80", 1), 1);
    CHECK_INT(lmql__utf8_count("\xe2\x82" "a", 3), 2);
    CHECK_INT(lmql__utf8_count("\xff\xfe", 2), 2);
    CHECK_INT(lmql__utf8_count("\xc0\xaf", 2), 2);
    CHECK_INT(lmql__utf8_count("\xed\xa0\x80", 3), 1);
    CHECK_INT(lmql__utf8_char_len("\xf0\x9f\x98" "a", 4), 3);
    CHECK(lmql__utf8_valid((const unsigned char *)"a\xc3\xa9", 3));
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xe2\x82", 2));
    /* Walking char by char visits exactly count characters, ending at n. */
    const char *s = "x\x80\xe2\x82\xc3\xa9\xff\xf0\x9f\x98\x80\xf0\x9f";
    size_t n = strlen(s), k = 0, i = 0;
    for (; i < n; k++) {
        CHECK_INT(lmql__utf8_offset(s, n, k), i);
        i += lmql__utf8_char_len(s + i, n - i);
    }
    CHECK_INT(i, n);
    CHECK_INT(k, lmql__utf8_count(s, n));
    CHECK_INT(k, 7);
}

/* The language's operations on a string with invalid bytes, run through a
** query (the argument carries the bytes in). */
static void test_language_agrees(void) {
    const char *src =
        "argmax\n"
        "    chars = []\n"
        "    for c in s:\n"
        "        chars.append(c)\n"
        "    ok = len(chars) == len(s)\n"
        "    for i in range(len(s)):\n"
        "        ok = ok and chars[i] == s[i] and s[i:i+1] == s[i] and s[i] + s[i+1:] == s[i:]\n"
        "    ok = ok and \"\".join(chars) == s and s[-1] == chars[-1] and len(f\"{s:>9}\") - len(s) == 9 - len(s)\n"
        "    \"R:{ok}:{len(s)}\"\n"
        "from \"random\"\n";
    struct { const char *s; int len; } cases[] = {
        {"a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 4},     /* valid: as Python */
        {"x\x80\xe2\x82y\xff", 5},                        /* x, \x80, \xe2\x82, y, \xff */
        {"\xf0\x9f\x98", 1},
        {"\xc0\xaf!", 3},
    };
    struct lmql *L = lmql_init(NULL);
    struct lmql_program *P = lmql_program_compile(L, "utf8.lmql", src, strlen(src));
    CHECK(P != NULL);
    if (!P) { puts(lmql_errmsg(L)); lmql_free(L); return; }
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        struct lmql_args *A = lmql_args_init();
        CHECK_INT(lmql_args_set_str(A, "s", cases[k].s), LMQL_OK);
        struct lmql_result *R = NULL;
        CHECK_INT(lmql_run(L, P, A, &R), LMQL_OK);
        char want[32];
        snprintf(want, sizeof want, "R:True:%d", cases[k].len);
        const char *p = R ? lmql_result_prompt(R, 0) : lmql_errmsg(L);
        CHECK_STR(p, want);
        lmql_result_free(R);
        lmql_args_free(A);
    }
    lmql_program_free(P);
    lmql_free(L);
}

/* The one decoder: code points of valid sequences, 0 for what is not one. */
static void test_decode(void) {
    static const struct { const char *s; size_t n; size_t len; uint32_t cp; } cases[] = {
        {"A", 1, 1, 0x41},         {"\xC3\xA9", 2, 2, 0xE9},        {"\xE2\x82\xAC", 3, 3, 0x20AC},
        {"\xF0\x9F\x98\x80", 4, 4, 0x1F600}, {"\xC3", 1, 0, 7}, {"\xC0\x80", 2, 0, 7},   /* truncated, overlong */
        {"\xED\xA0\x80", 3, 0, 7},  /* a surrogate */ {"\xF4\x90\x80\x80", 4, 0, 7},   /* past U+10FFFF */
        {"", 0, 0, 7},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        uint32_t cp = 7;
        CHECK_INT(lmql__utf8_decode((const unsigned char *)cases[i].s, cases[i].n, &cp), cases[i].len);
        CHECK_INT(cp, cases[i].cp);
    }
}

int main(void) {
    RUN(test_decode);
    RUN(test_count);
    RUN(test_language_agrees);
    return th_report("utf8");
}
