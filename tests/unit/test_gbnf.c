/*
** GBNF grammars (llama.cpp's format) compiled into our grammars: languages
** of grammars in the style of llama.cpp's examples (JSON, arithmetic, lists,
** chess, recursion, every operator, Unicode, escapes) checked on accepted
** and refused strings, some exhaustively against a reference; what becomes
** one regex; every error with its line and column; and token masks against
** a brute-force check of each token of a small vocabulary.
*/
#include "gbnf.h"

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model.h"
#include "trie.h"

static struct lmql_grammar *compile_root(const char *text, const char *root, int line) {
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__gbnf_compile(text, strlen(text), root, &e);
    if (!g) th_fail(__FILE__, line, "compile: %d:%d %s", e.pos.line, e.pos.col, e.msg);
    else th_passed++;
    return g;
}
static struct lmql_grammar *compile(const char *text, int line) { return compile_root(text, NULL, line); }

/* Every string of yes (NULL-terminated) is accepted, every one of no refused. */
static void lang(struct lmql_grammar *g, const char *const *yes, const char *const *no, int line) {
    if (!g) return;
    for (; yes && *yes; yes++) {
        int r = lmql__grammar_accepts(g, *yes, strlen(*yes));
        if (r != 1) th_fail(__FILE__, line, "\"%s\" refused (%d)", *yes, r);
        else th_passed++;
    }
    for (; no && *no; no++) {
        int r = lmql__grammar_accepts(g, *no, strlen(*no));
        if (r != 0) th_fail(__FILE__, line, "\"%s\" accepted (%d)", *no, r);
        else th_passed++;
    }
}

/* Compile text, check its language, free it. */
static void check_lang(const char *text, const char *const *yes, const char *const *no, int line) {
    struct lmql_grammar *g = compile(text, line);
    lang(g, yes, no, line);
    lmql__grammar_free(g);
}

/* Every string over alpha (single bytes) up to max long: accepted exactly
** when ref says so. */
static void all_strings(struct lmql_grammar *g, const char *alpha, int max, bool (*ref)(const char *, size_t),
                        int line) {
    if (!g) return;
    size_t k = strlen(alpha);
    char s[32];
    int bad = 0, n_yes = 0, n_checked = 0;
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
            bool want = ref(s, (size_t)len);
            n_checked++;
            n_yes += want;
            if (got != (int)want && bad++ < 3)
                th_fail(__FILE__, line, "\"%.*s\" accepted %d, want %d", len, s, got, want);
        }
    }
    CHECK(bad == 0 && n_yes > 0 && n_yes < n_checked);
}

/* --------------------------------------------------------- languages -- */

static const char json_gbnf[] =
    "# JSON, in the style of llama.cpp's grammars/json.gbnf\n"
    "root   ::= object\n"
    "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
    "\n"
    "object ::=\n"
    "  \"{\" ws (\n"
    "            string \":\" ws value\n"
    "    (\",\" ws string \":\" ws value)*\n"
    "  )? \"}\" ws\n"
    "\n"
    "array  ::=\n"
    "  \"[\" ws (\n"
    "            value\n"
    "    (\",\" ws value)*\n"
    "  )? \"]\" ws\n"
    "\n"
    "string ::=\n"
    "  \"\\\"\" (\n"
    "    [^\"\\\\\\x7F\\x00-\\x1F] |\n"
    "    \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) # escapes\n"
    "  )* \"\\\"\" ws\n"
    "\n"
    "number ::= (\"-\"? ([0-9] | [1-9] [0-9]{0,15})) (\".\" [0-9]+)? ([eE] [-+]? [0-9]{1,3})? ws\n"
    "\n"
    "# optional space after a token: none, one space, or a line break and an indent\n"
    "ws ::= | \" \" | \"\\n\" [ \\t]{0,20}\n";

static void test_json(void) {
    struct lmql_grammar *g = compile(json_gbnf, __LINE__);
    lang(g,
         (const char *[]){"{}", "{ }", "{\"a\": 1}", "{\"a\":[1, 2.5, -3e10, true, null, \"x\\n\\u00e9\"]}",
                          "{\"k\": {\"n\": {}}, \"l\": []}", "{\"é 日本\": \"\\\"\"}",
                          "{\n  \"a\": 0,\n  \"b\": -0.5E+2\n}", "{\"a\":\"\\/\"} ", NULL},
         (const char *[]){"", "[]", "{", "{\"a\"}", "{\"a\": }", "{\"a\": tru}", "{\"a\": 01}", "{\"a\": 1,}",
                          "{'a': 1}", "{\"a\": \"\x01\"}", "{\"a\": \"\\x\"}", "{\"a\": \"\\u12\"}",
                          "{\"a\": 1}  ", "{\"a\": 1}\n\n", "{\"a\": 1}\n \n", NULL},
         __LINE__);
    /* The regular rules (string, number, ws) are inlined into terminals:
    ** only object, array, value and the repetitions are rules. */
    if (g) CHECK(lmql__grammar_n_nonterminals(g) <= 8);
    lmql__grammar_free(g);
}

/* Arithmetic: recursion through parentheses, repetitions of operators. */
static const char arith_gbnf[] = "root   ::= expr\n"
                                 "expr   ::= term (ws [-+] ws term)*\n"
                                 "term   ::= factor (ws [*/] ws factor)*\n"
                                 "factor ::= number | \"(\" ws expr ws \")\" | \"-\" factor\n"
                                 "number ::= [0-9]+ (\".\" [0-9]+)?\n"
                                 "ws     ::= [ \\t]*\n";

/* The same language by hand, over "1+*()- ." */
static bool arith_expr(const char *s, size_t n, size_t *i);
static void arith_ws(const char *s, size_t n, size_t *i) {
    while (*i < n && (s[*i] == ' ' || s[*i] == '\t')) (*i)++;
}
static bool arith_factor(const char *s, size_t n, size_t *i) {
    if (*i < n && s[*i] == '-') {
        (*i)++;
        return arith_factor(s, n, i);
    }
    if (*i < n && s[*i] == '(') {
        (*i)++;
        arith_ws(s, n, i);
        if (!arith_expr(s, n, i)) return false;
        arith_ws(s, n, i);
        if (*i >= n || s[*i] != ')') return false;
        (*i)++;
        return true;
    }
    size_t d = *i;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9') (*i)++;
    if (*i == d) return false;
    if (*i + 1 < n && s[*i] == '.' && s[*i + 1] >= '0' && s[*i + 1] <= '9') {
        (*i)++;
        while (*i < n && s[*i] >= '0' && s[*i] <= '9') (*i)++;
    }
    return true;
}
/* Binary operators: a failed "ws op ws operand" is not taken (its
** language is a prefix-free choice here: an operator is never optional). */
static bool arith_chain(const char *s, size_t n, size_t *i, const char *ops,
                        bool (*operand)(const char *, size_t, size_t *)) {
    if (!operand(s, n, i)) return false;
    for (;;) {
        size_t j = *i;
        arith_ws(s, n, &j);
        if (j >= n || !strchr(ops, s[j]) || !s[j]) return true;
        j++;
        arith_ws(s, n, &j);
        if (!operand(s, n, &j)) return false;
        *i = j;
    }
}
static bool arith_term(const char *s, size_t n, size_t *i) { return arith_chain(s, n, i, "*", arith_factor); }
static bool arith_expr(const char *s, size_t n, size_t *i) { return arith_chain(s, n, i, "+-", arith_term); }
static bool is_arith(const char *s, size_t n) {
    size_t i = 0;
    return arith_expr(s, n, &i) && i == n;
}

static void test_arithmetic(void) {
    struct lmql_grammar *g = compile(arith_gbnf, __LINE__);
    lang(g, (const char *[]){"1", "1+2", "(1 + 2) * 3", "--4", "2*(3-1)/4.5", "( ( 7 ) )", "1\t-\t-1", NULL},
         (const char *[]){"", "1+", "(1", "1 2", "+1", ")", "1.", ".5", "()", "1 + (2", NULL}, __LINE__);
    /* The reference knows no '/' and no digits but 1: strings over "1+*()- ." */
    all_strings(g, "1+*()- .", 6, is_arith, __LINE__);
    lmql__grammar_free(g);
}

static void test_lists(void) {
    /* README-style: a list of lines, and single lines */
    check_lang("root ::= (\"- \" item)+\nitem ::= [^\\n]+ \"\\n\"\n",
               (const char *[]){"- a\n", "- milk\n- eggs 12\n- \xc3\xa9t\xc3\xa9\n", "- - -\n", NULL},
               (const char *[]){"", "- \n", "- a", "-a\n", "- a\n\n", "- a\n-b\n", NULL}, __LINE__);
    check_lang("root ::= item (\", \" item)* \".\"\nitem ::= [a-z]+ | \"'\" [^']* \"'\"\n",
               (const char *[]){"a.", "ab, cd, ''.", "x, 'y, z'.", NULL},
               (const char *[]){"", ".", "a,b.", "a, .", "'a.", "A.", NULL}, __LINE__);
    /* Numbered lines with the count in a rule: {m,n} on a rule reference */
    check_lang("root ::= line{2,3}\nline ::= [0-9] \". \" [a-z ]+ \"\\n\"\n",
               (const char *[]){"1. a\n2. b c\n", "1. a\n2. b\n3. c\n", NULL},
               (const char *[]){"1. a\n", "1. a\n2. b\n3. c\n4. d\n", "1. a\n2.b\n", NULL}, __LINE__);
}

/* A chess game in algebraic notation: regular, so one terminal. */
static const char chess_gbnf[] = "# numbered turns of one or two moves\n"
                                 "root       ::= turn (\"\\n\" turn)* \"\\n\"?\n"
                                 "turn       ::= number \". \" move (\" \" move)?\n"
                                 "number     ::= [1-9] [0-9]{0,2}\n"
                                 "move       ::= (piece-move | pawn-move | castle) check?\n"
                                 "piece-move ::= [KQRBN] [a-h]? [1-8]? \"x\"? square\n"
                                 "pawn-move  ::= ([a-h] \"x\")? square (\"=\" [QRBN])?\n"
                                 "square     ::= [a-h] [1-8]\n"
                                 "castle     ::= \"O-O\" (\"-O\")?\n"
                                 "check      ::= [+#]\n";

static void test_chess(void) {
    struct lmql_grammar *g = compile(chess_gbnf, __LINE__);
    lang(g,
         (const char *[]){"1. e4 e5", "1. e4 e5\n2. Nf3 Nc6\n3. Bb5 a6\n", "12. O-O O-O-O+", "5. exd5 Qxd5",
                          "40. b8=Q# Kxh1", "7. Nbd2", "9. R1e2 Ke7", NULL},
         (const char *[]){"", "1.e4", "0. e4", "1. e9", "1. Pe4", "1. O-O-O-O", "1. e4 e5 d4", "1. e4\n\n2. d4",
                          "1. b8=K", NULL},
         __LINE__);
    if (g) {
        CHECK_INT(lmql__grammar_n_nonterminals(g), 1);
        CHECK_INT(lmql__grammar_n_terminals(g), 1);
    }
    lmql__grammar_free(g);
}

static bool is_balanced(const char *s, size_t n) {
    int d = 0;
    for (size_t i = 0; i < n; i++) {
        d += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 1000;
        if (d < 0 || d >= 1000) return false;
    }
    return d == 0;
}
static bool is_anbn(const char *s, size_t n) {
    if (n < 2 || n % 2) return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] != (i < n / 2 ? 'a' : 'b')) return false;
    return true;
}
static bool is_palindrome(const char *s, size_t n) {
    for (size_t i = 0; i < n / 2; i++)
        if (s[i] != s[n - 1 - i]) return false;
    return true;
}
static bool is_nested_list(const char *s, size_t n) {
    /* list ::= "[" (list ("," list)*)? "]" */
    int d = 0;
    char prev = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '[') {
            if (i && prev != '[' && prev != ',') return false;
            d++;
        } else if (c == ']') {
            if (prev == ',' || --d < 0) return false;
        } else if (c == ',') {
            if (prev != ']' || d < 1) return false;
        } else {
            return false;
        }
        if (d == 0 && i + 1 < n) return false;
        prev = c;
    }
    return n > 0 && d == 0;
}

static void test_recursion(void) {
    struct lmql_grammar *g = compile("root ::= \"(\" root \")\" root | \"\"\n", __LINE__);
    all_strings(g, "()x", 8, is_balanced, __LINE__);
    lmql__grammar_free(g);
    g = compile("root ::= \"a\" root \"b\" | \"ab\"\n", __LINE__);
    all_strings(g, "ab", 12, is_anbn, __LINE__);
    lmql__grammar_free(g);
    g = compile("root ::= \"a\" root \"a\" | \"b\" root \"b\" | [ab]?\n", __LINE__);
    all_strings(g, "ab", 10, is_palindrome, __LINE__);
    lmql__grammar_free(g);
    /* mutual recursion, repetition of a recursive rule */
    g = compile("root ::= list\nlist ::= \"[\" (elems)? \"]\"\nelems ::= list (\",\" list)*\n", __LINE__);
    all_strings(g, "[],", 8, is_nested_list, __LINE__);
    lmql__grammar_free(g);
    /* right recursion on a rule that is not regular */
    check_lang("root ::= \"<\" root | \">\" root | \"(\" root \")\" | \"\"\n",
               (const char *[]){"", "<<>", "(<)", "((<>))", "<(>)", NULL},
               (const char *[]){"(", ")", "(()", "<(", NULL},
               __LINE__);
}

/* -------------------------------------------------------- operators -- */

struct lang_case {
    const char *gbnf;
    const char *yes[8], *no[8];
};

static void test_operators(void) {
    static const struct lang_case cases[] = {
        {"root ::= \"ab\"*\n", {"", "ab", "abab"}, {"a", "aba", "ba"}},
        {"root ::= \"ab\"+\n", {"ab", "ababab"}, {"", "abb"}},
        {"root ::= \"ab\"?\n", {"", "ab"}, {"abab", "a"}},
        {"root ::= \"ab\"{2}\n", {"abab"}, {"ab", "ababab"}},
        {"root ::= \"a\"{2,}\n", {"aa", "aaaaaaa"}, {"", "a"}},
        {"root ::= \"a\"{1,3}\n", {"a", "aaa"}, {"", "aaaa"}},
        {"root ::= \"a\"{0,2} \"b\"\n", {"b", "ab", "aab"}, {"aaab", "a"}},
        {"root ::= \"a\" { 2 , 3 } \"b\"\n", {"aab", "aaab"}, {"ab"}},
        {"root ::= [a-c]{3}\n", {"abc", "ccc"}, {"ab", "abcd", "abd"}},
        {"root ::= (\"x\" | \"yz\"){2,3}\n", {"xx", "xyz", "yzyzx"}, {"x", "xxxx", "xy"}},
        /* stacked operators apply to what came before, repetitions included */
        {"root ::= \"a\"{2}{3}\n", {"aaaaaa"}, {"aa", "aaa", "aaaaaaaa"}},
        {"root ::= \"a\"?*\n", {"", "a", "aaaa"}, {"b"}},
        {"root ::= \"a\"+?\n", {"", "aaa"}, {"b"}},
        /* x{0} is nothing; [] and [^] match the empty text, as in llama.cpp */
        {"root ::= \"a\" \"b\"{0} \"c\"\n", {"ac"}, {"abc"}},
        {"root ::= \"a\" [] [^] \"b\"\n", {"ab"}, {"a b", "a]b"}},
        /* alternatives, empty ones, groups */
        {"root ::= \"a\" | | \"b\"\n", {"", "a", "b"}, {"ab"}},
        {"root ::= (\"a\" (\"b\" | \"c\")) \"d\"\n", {"abd", "acd"}, {"ad", "abcd"}},
        {"root ::= ()\n", {""}, {"a"}},
        {"root ::= .\n", {"a", "\n", "\xc3\xa9", "\xf0\x9f\x98\x80"}, {"", "ab", "\xc3"}},
        {"root ::= [^a]\n", {"b", "\n", "\xe6\x97\xa5"}, {"a", ""}},
        {"root ::= [a-]\n", {"a", "-"}, {"b"}},
        {"root ::= [-a]\n", {"a", "-"}, {"b"}},
        {"root ::= [c-a] | \"x\"\n", {"x"}, {"a", "b", "c"}},   /* a reversed range: nothing, as in llama.cpp */
        {"root ::= [^c-a]\n", {"a", "b", "z"}, {""}},
        /* an upper bound above 2000 means none, as in llama.cpp */
        {"root ::= \"a\"{0,5000} \"b\"\n", {"b", "aab"}, {"a"}},
        /* a rule defined twice keeps its last definition */
        {"root ::= x\nx ::= \"a\"\nx ::= \"b\"\n", {"b"}, {"a"}},
        /* names: letters, digits, '-', '_' */
        {"root ::= a-1 B_2\na-1 ::= \"x\"\nB_2 ::= \"y\"\n", {"xy"}, {"x"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct lang_case *k = &cases[i];
        struct lmql_grammar *g = compile(k->gbnf, __LINE__);
        if (!g) {
            th_fail(__FILE__, __LINE__, "case %zu: %s", i, k->gbnf);
            continue;
        }
        for (int j = 0; j < 8 && k->yes[j]; j++) {
            int r = lmql__grammar_accepts(g, k->yes[j], strlen(k->yes[j]));
            if (r != 1) th_fail(__FILE__, __LINE__, "%s: \"%s\" refused", k->gbnf, k->yes[j]);
            else th_passed++;
        }
        for (int j = 0; j < 8 && k->no[j]; j++) {
            int r = lmql__grammar_accepts(g, k->no[j], strlen(k->no[j]));
            if (r != 0) th_fail(__FILE__, __LINE__, "%s: \"%s\" accepted", k->gbnf, k->no[j]);
            else th_passed++;
        }
        lmql__grammar_free(g);
    }
    /* counts: 2500 a's under {0,3000} (no bound), exactly 1500 digits
    ** (regex counts go to 1000 only: split) */
    char *s = malloc(2601);
    if (!s) return;
    memset(s, 'a', 2600);
    struct lmql_grammar *g = compile("root ::= \"a\"{0,3000}\n", __LINE__);
    CHECK(g && lmql__grammar_accepts(g, s, 2500) == 1);
    lmql__grammar_free(g);
    memset(s, '7', 2600);
    g = compile("root ::= [0-9]{1500}\n", __LINE__);
    CHECK(g && lmql__grammar_accepts(g, s, 1500) == 1);
    CHECK(g && lmql__grammar_accepts(g, s, 1499) == 0);
    CHECK(g && lmql__grammar_accepts(g, s, 1501) == 0);
    lmql__grammar_free(g);
    g = compile("root ::= [0-9]{1200,2600}\n", __LINE__);   /* 2600: no bound */
    CHECK(g && lmql__grammar_accepts(g, s, 1199) == 0);
    CHECK(g && lmql__grammar_accepts(g, s, 1200) == 1);
    CHECK(g && lmql__grammar_accepts(g, s, 2600) == 1);
    lmql__grammar_free(g);
    g = compile("root ::= [0-9]{1200,1999}\n", __LINE__);
    CHECK(g && lmql__grammar_accepts(g, s, 1999) == 1);
    CHECK(g && lmql__grammar_accepts(g, s, 2000) == 0);
    lmql__grammar_free(g);
    free(s);
}

static void test_unicode_escapes(void) {
    check_lang("root ::= [ぁ-ゟ]+\n", (const char *[]){"ひらがな", "ぁ", NULL},
               (const char *[]){"", "カ", "a", "\xe3\x81", NULL}, __LINE__);
    check_lang("root ::= \"日本\" [^日]* \"é\"\n", (const char *[]){"日本é", "日本語é", "日本\néé", NULL},
               (const char *[]){"日本日é", "日é", NULL}, __LINE__);
    /* escapes in literals */
    check_lang("root ::= \"\\x41\\u00e9\\U0001F600\\n\\r\\t\\\\\\\"\\[\\]\\-\"\n",
               (const char *[]){"A\xc3\xa9\xf0\x9f\x98\x80\n\r\t\\\"[]-", NULL},
               (const char *[]){"A", "\\x41", NULL}, __LINE__);
    /* escapes in classes: ranges of escapes, ']' '-' '^' as characters */
    check_lang("root ::= [\\x30-\\x32\\]\\-^]+\n", (const char *[]){"012", "]-^", "0]", NULL},
               (const char *[]){"3", "\\", "", NULL}, __LINE__);
    check_lang("root ::= [\\u00e0-\\u00ff]\n", (const char *[]){"\xc3\xa0", "\xc3\xbf", NULL},
               (const char *[]){"\xc3\x9f", "\xc4\x80", "a", NULL}, __LINE__);
    check_lang("root ::= [^\\x00-\\x7f]\n", (const char *[]){"\xc3\xa9", "\xf0\x9f\x98\x80", NULL},
               (const char *[]){"a", "\x7f", NULL}, __LINE__);
    check_lang("root ::= [\\U0001F600-\\U0001F64F]\n", (const char *[]){"\xf0\x9f\x98\x80", "\xf0\x9f\x99\x8f", NULL},
               (const char *[]){"\xf0\x9f\x99\x90", NULL}, __LINE__);
    /* a class spanning the surrogates holds the characters around them */
    check_lang("root ::= [\\ud7ff-\\ue000]\n", (const char *[]){"\xed\x9f\xbf", "\xee\x80\x80", NULL},
               (const char *[]){"\xed\xa0\x80", NULL}, __LINE__);
    /* Code points no valid UTF-8 encodes never match: their alternatives
    ** drop out; U+0000 neither (llama.cpp's strings end there) */
    check_lang("root ::= \"\\uD800\" | \"\\U00110000\" | \"\\x00\" | \"ok\"\n", (const char *[]){"ok", NULL},
               (const char *[]){"", NULL}, __LINE__);
    static const char nul[] = "root ::= \"a\" [\\x00-\\x01]?";
    struct lmql_grammar *g = compile(nul, __LINE__);
    CHECK(g && lmql__grammar_accepts(g, "a\x01", 2) == 1);
    CHECK(g && lmql__grammar_accepts(g, "a\0", 2) == 0);
    lmql__grammar_free(g);
    g = compile("root ::= [^a]", __LINE__);
    CHECK(g && lmql__grammar_accepts(g, "\0", 1) == 0);
    CHECK(g && lmql__grammar_accepts(g, "\xed\xa0\x80", 3) == 0);   /* a surrogate: not UTF-8 */
    lmql__grammar_free(g);
}

/* Where a rule may go on over a line break, as llama.cpp's parser decides:
** inside parentheses, after '|', after '::='. */
static void test_layout(void) {
    check_lang("root ::= (\n  \"a\"\n  | \"b\" # comment\n  \"c\"\n)\n", (const char *[]){"a", "bc", NULL},
               (const char *[]){"b", "abc", NULL}, __LINE__);
    check_lang("root ::= \"a\" |\n  \"b\" |\n\n  \"c\"\n", (const char *[]){"a", "b", "c", NULL}, NULL, __LINE__);
    check_lang("root ::=\n  \"a\"\n", (const char *[]){"a", NULL}, NULL, __LINE__);
    check_lang("# first\n\n  root ::= x # the start\n# between\nx ::= \"#\" # a literal '#'\n",
               (const char *[]){"#", NULL}, NULL, __LINE__);
    check_lang("root ::= \"a\"\r\nb ::= \"b\"\r\n", (const char *[]){"a", NULL}, (const char *[]){"b", NULL},
               __LINE__);
    check_lang("root ::= (\"a\"\r\n\"b\")\rx ::= \"c\"", (const char *[]){"ab", NULL}, NULL, __LINE__);
    check_lang("root ::= \"a\"\t\"b\"   ", (const char *[]){"ab", NULL}, NULL, __LINE__);
    check_lang("root ::= (\"b\"{2 ,\n} # two or more\n)", (const char *[]){"bb", "bbb", NULL},
               (const char *[]){"b", NULL}, __LINE__);
    /* the text ends at its first NUL */
    static const char nul[] = "root ::= \"a\"\n\0garbage ::=";
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__gbnf_compile(nul, sizeof nul - 1, NULL, &e);
    CHECK(g && lmql__grammar_accepts(g, "a", 1) == 1);
    lmql__grammar_free(g);
    /* another start rule */
    g = compile_root(arith_gbnf, "number", __LINE__);
    lang(g, (const char *[]){"12.5", NULL}, (const char *[]){"1+2", NULL}, __LINE__);
    lmql__grammar_free(g);
    /* an unused rule may match nothing at all */
    check_lang("root ::= \"a\"\nunused ::= \"x\" unused | unused2\nunused2 ::= \"y\" unused2\n",
               (const char *[]){"a", NULL}, NULL, __LINE__);
    /* a line break in a class is a character of it */
    check_lang("root ::= [ab\n]\n", (const char *[]){"a", "\n", NULL}, (const char *[]){"]", NULL}, __LINE__);
}

/* ------------------------------------------------------------ shapes -- */

static void shape(const char *text, int32_t n_nt, int32_t n_term, int line) {
    struct lmql_grammar *g = compile(text, line);
    if (!g) return;
    if (lmql__grammar_n_nonterminals(g) != n_nt || lmql__grammar_n_terminals(g) != n_term)
        th_fail(__FILE__, line, "%d nonterminals and %d terminals, want %d and %d", lmql__grammar_n_nonterminals(g),
                lmql__grammar_n_terminals(g), n_nt, n_term);
    else th_passed++;
    lmql__grammar_free(g);
}

/* What becomes one regex: regular rules, right-recursive ones, runs of
** regular items in a sequence; rules that only name another cost nothing. */
static void test_regular(void) {
    shape("root ::= \"a\" [0-9]+ (\"x\" | \"y\")? ws\nws ::= [ \\t]*\n", 1, 1, __LINE__);
    shape("root ::= ws \"x\"\nws ::= [ \\t\\n] ws | \"\"\n", 1, 1, __LINE__);
    shape("root ::= ws \"x\"\nws ::= ([ \\t\\n] ws)?\n", 1, 1, __LINE__);
    shape("root ::= digits\ndigits ::= [0-9] digits | [0-9]\n", 1, 1, __LINE__);
    /* the recursion makes rules; the regular runs around it are terminals */
    shape("root ::= \"[\" ws (item (\",\" ws item)*)? \"]\"\nitem ::= [a-z]+ ws | root\nws ::= \" \"?\n", 4, 4,
          __LINE__);
    /* an alias of a rule is that rule */
    shape("root ::= a\na ::= b\nb ::= \"(\" b \")\" | \"x\"\n", 1, 3, __LINE__);
    check_lang("root ::= ws \"x\"\nws ::= ([ \\t] ws)?\n", (const char *[]){"x", " \t x", NULL},
               (const char *[]){"", " ", "x ", NULL}, __LINE__);
    check_lang("root ::= digits \".\"\ndigits ::= [0-9] digits | [0-9] \"_\"?\n",
               (const char *[]){"1.", "123_.", NULL}, (const char *[]){".", "1_2.", "_.", NULL}, __LINE__);
}

static bool ends_a_then_20(const char *s, size_t n) { return n >= 21 && s[n - 21] == 'a'; }
static bool ends_a_then_14(const char *s, size_t n) {
    /* x x with x = [ab]* "a" [ab]{14}: some split */
    for (size_t k = 15; k + 15 <= n; k++)
        if (s[k - 15] == 'a' && s[n - 15] == 'a') return true;
    return false;
}

/* A regex the regex engine refuses (too many DFA states) is built as
** rules, piece by piece: the language stays the same. */
static void test_fallback(void) {
    struct lmql_grammar *g = compile("root ::= [ab]* \"a\" [ab]{20}\n", __LINE__);
    if (g) CHECK(lmql__grammar_n_terminals(g) > 1);
    uint64_t rng = 1;
    int bad = 0;
    for (int i = 0; g && i < 400; i++) {
        char s[40];
        size_t n = 18 + lmql__rng_next(&rng) % 10;
        for (size_t j = 0; j < n; j++) s[j] = lmql__rng_next(&rng) % 3 ? 'a' : 'b';
        if (i % 2) s[n - 21 < n ? n - 21 : 0] = 'b';
        if (lmql__grammar_accepts(g, s, n) != (int)ends_a_then_20(s, n) && bad++ < 3)
            th_fail(__FILE__, __LINE__, "'%.*s'", (int)n, s);
    }
    CHECK_INT(bad, 0);
    lmql__grammar_free(g);
    g = compile("root ::= x x\nx ::= [ab]* \"a\" [ab]{14}\n", __LINE__);
    if (g) CHECK_INT(lmql__grammar_n_terminals(g), 1);   /* x alone is one regex, x x is not */
    for (int i = 0; g && i < 300; i++) {
        char s[40];
        size_t n = 28 + lmql__rng_next(&rng) % 8;
        for (size_t j = 0; j < n; j++) s[j] = lmql__rng_next(&rng) % 4 ? 'b' : 'a';
        if (lmql__grammar_accepts(g, s, n) != (int)ends_a_then_14(s, n) && bad++ < 3)
            th_fail(__FILE__, __LINE__, "'%.*s'", (int)n, s);
    }
    CHECK_INT(bad, 0);
    lmql__grammar_free(g);
    /* After two refusals the rest is built cautiously (classes, literals
    ** and their repetitions as terminals): the same language still. */
    g = compile("root ::= a \"|\" b \"|\" c\na ::= [ab]* \"a\" [ab]{16}\nb ::= [cd]* \"c\" [cd]{16}\n"
                "c ::= ([ef]* \"e\" [ef]{2} | \"x\") \"y\"+\n",
                __LINE__);
    lang(g,
         (const char *[]){"a" "bbbbbbbbbbbbbbbb|c" "dddddddddddddddd|eefyy", "ba" "aaaaaaaaaaaaaaaa|dc" "cccccccccccccccc|xy",
                          NULL},
         (const char *[]){"a" "bbbbbbbbbbbbbbb|c" "dddddddddddddddd|eefy", "a" "bbbbbbbbbbbbbbbb|c" "dddddddddddddddd|efy",
                          "b" "bbbbbbbbbbbbbbbb|c" "dddddddddddddddd|xy", NULL},
         __LINE__);
    if (g) CHECK(lmql__grammar_n_terminals(g) >= 9);
    lmql__grammar_free(g);
}

/* ------------------------------------------------------------ errors -- */

struct err_case {
    const char *gbnf;
    int line, col;
    const char *needle;
};

static void test_errors(void) {
    static const struct err_case cases[] = {
        {"root ::= \"abc", 1, 10, "unterminated string"},
        {"root ::= \"ab\\", 1, 10, "unterminated string"},
        {"root ::= [abc", 1, 10, "unterminated character class"},
        {"root ::= [a-", 1, 10, "unterminated character class"},
        {"root ::= foo", 1, 10, "undefined rule 'foo'"},
        {"root ::= \"a\" x\nx ::= \"b\" yy\n", 2, 11, "undefined rule 'yy'"},
        {"root ::= \"a\"\n  | \"b\"\n", 2, 3, "may not start with '|'"},
        {"root ::= (\"a\" | \"b\"", 1, 20, "expecting ')' to close the '(' at 1:10"},
        {"root ::= (\"a\" \"b\" ]", 1, 19, "expecting ')'"},
        {"root ::= \"a\" )", 1, 14, "no '(' is open"},
        {"root ::= \"a\" ; \"b\"", 1, 14, "unexpected ';'"},
        {"root ::= \"\\q\"", 1, 11, "unknown escape"},
        {"root ::= [\\d]", 1, 11, "unknown escape"},
        {"root ::= \"\\x4\"", 1, 11, "expecting 2 hex digits after '\\x'"},
        {"root ::= \"\\u12G4\"", 1, 11, "expecting 4 hex digits"},
        {"root ::= [\\U0001F60]", 1, 11, "expecting 8 hex digits"},
        {"root ::= *", 1, 10, "nothing to repeat before '*'"},
        {"root ::= \"a\" | +", 1, 16, "nothing to repeat"},
        {"root ::= \"\"*", 1, 12, "nothing to repeat"},
        {"root ::= \"a\"{0}?", 1, 16, "nothing to repeat"},
        {"root ::= \"a\"{,3}", 1, 14, "write {0,n}"},
        {"root ::= \"a\"{x}", 1, 14, "expecting a number after '{'"},
        {"root ::= \"a\"{3 4}", 1, 16, "expecting ',' or '}' in the '{' at 1:13"},
        {"root ::= \"a\"{3,4", 1, 17, "expecting '}'"},
        {"root ::= \"b\"{2 ,\n}", 1, 17, "expecting '}'"},   /* outside parentheses a rule ends at the line's end */
        {"root ::= \"a\"{3,1}", 1, 13, "minimum is above the maximum"},
        {"root ::= \"a\"{2001}", 1, 13, "above llama.cpp's limit of 2000"},
        {"root ::= \"a\"{2000}", 1, 13, "repetition too large"},
        {"root ::= \"a\"{0,2000}", 1, 13, "repetition too large"},
        {"root ::= (\"a\"{0,100}){20}", 1, 22, "repetition too large"},
        {"root ::= \"a\"{40}{40}{2}", 1, 21, "repetition too large"},
        {"root ::= <[42]>", 1, 10, "token syntax"},
        {"root ::= \"a\" !<think>", 1, 14, "token syntax"},
        {"expr ::= expr \"+\" \"1\" | \"1\"\nroot ::= expr", 1, 10, "rule 'expr' is left-recursive"},
        {"root ::= a\na ::= b \"x\"\nb ::= [ ]* a | \"y\"\n", 3, 12, "(a -> b -> a)"},
        {"root ::= x? root \"y\" | \"z\"\nx ::= \"x\"", 1, 13, "rule 'root' is left-recursive"},
        /* in a rule nothing uses, too (llama.cpp checks every rule) */
        {"root ::= \"a\"\nunused ::= unused \"x\"", 2, 12, "rule 'unused' is left-recursive"},
        {"root ::= x\nx ::= \"a\" x\n", 1, 1, "rule 'root' matches no text"},
        {"root ::= \"\\uD800\"", 1, 1, "matches no text"},
        {"root ::= (v?)*\nv ::= \"(\" v \")\" | \"x\"\n", 1, 14, "can match the empty text"},
        {"root = \"a\"", 1, 6, "expecting '::=' after the rule name 'root'"},
        {"root ::= \"a\"\n::= \"b\"", 2, 1, "expecting a rule name, found ':'"},
        {"a ::=\nroot ::= \"x\"", 2, 6, "unexpected '::='"},
        {"root ::= \"\xc3\"", 1, 11, "invalid UTF-8"},
        {"root ::= \"é\" foo", 1, 14, "undefined rule 'foo'"},
        {"", 0, 0, "defines no rule"},
        {"# only a comment\n", 0, 0, "defines no rule"},
        {"start ::= \"a\"", 0, 0, "no rule 'root'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const struct err_case *k = &cases[i];
        struct lmql__err e = {0};
        struct lmql_grammar *g = lmql__gbnf_compile(k->gbnf, strlen(k->gbnf), NULL, &e);
        if (g) {
            th_fail(__FILE__, __LINE__, "case %zu compiled: %s", i, k->gbnf);
            lmql__grammar_free(g);
            continue;
        }
        if (e.status != LMQL_ERR_QUERY || e.pos.line != k->line || e.pos.col != k->col || !strstr(e.msg, k->needle))
            th_fail(__FILE__, __LINE__, "case %zu (%s): status %d at %d:%d \"%s\", want %d:%d \"%s\"", i, k->gbnf,
                    e.status, e.pos.line, e.pos.col, e.msg, k->line, k->col, k->needle);
        else th_passed++;
    }
    /* offsets are bytes, columns characters */
    struct lmql__err e = {0};
    CHECK(!lmql__gbnf_compile("root ::= \"日本\" foo", strlen("root ::= \"日本\" foo"), NULL, &e));
    CHECK_INT(e.pos.col, 15);
    CHECK_INT(e.pos.offset, 18);
    /* nesting is bounded */
    char deep[400];
    memcpy(deep, "root ::= ", 9);
    memset(deep + 9, '(', 150);
    deep[159] = 0;
    CHECK(!lmql__gbnf_compile(deep, strlen(deep), NULL, &e));
    CHECK_CONTAINS(e.msg, "nested too deeply");
    strcpy(deep, "root ::= \"a\"");
    for (int i = 0; i < 300; i++) strcat(deep, "?");
    CHECK(!lmql__gbnf_compile(deep, strlen(deep), NULL, &e));
    CHECK_CONTAINS(e.msg, "too many nested");
    /* a missing start rule named by the caller */
    CHECK(!lmql__gbnf_compile("root ::= \"a\"", 12, "expr", &e));
    CHECK_CONTAINS(e.msg, "no rule 'expr'");
    CHECK_INT(e.pos.line, 0);
}

/* ------------------------------------------------------------- masks -- */

/* Every byte alone, pieces of JSON, chess and arithmetic, partial UTF-8,
** and one empty piece. */
static struct lmql__vocab *small_vocab(void) {
    static const char *pieces[] = {"{",   "}",     "[",     "]",      "\"",     "\":",    "{\"",   "\", \"",
                                   ", ",  ": ",    "true",  "false",  "null",   "tr",     "ue",    "12",
                                   "3.",  "5e",    "e+",    "-0",     "\\n",    "\\u00",  "é",     "日本",
                                   "\xe6\x97", "ab", "ba",  " (",     ") ",     "+ ",     "1.",    " O-O",
                                   "Nf3", "e4",    "xd5",   "=Q",     "\n",     " \n",    "\n  ",  "\"a\"",
                                   "}, {", "]}",   "1. e4", " e5\n",  "O-O-O",  "-1",     "  ",    ""};
    size_t n_pieces = sizeof pieces / sizeof *pieces, total = 256;
    for (size_t i = 0; i < n_pieces; i++) total += strlen(pieces[i]);
    struct lmql__vocab *v = lmql__vocab_new();
    if (!v) return NULL;
    v->n_tokens = (int32_t)(256 + n_pieces);
    v->bytes = lmql__malloc(total);
    v->off = lmql__malloc(((size_t)v->n_tokens + 1) * sizeof *v->off);
    if (!v->bytes || !v->off) {
        lmql__vocab_unref(v);
        return NULL;
    }
    uint32_t at = 0;
    for (int b = 0; b < 256; b++) {
        v->off[b] = at;
        v->bytes[at++] = (char)b;
    }
    for (size_t i = 0; i < n_pieces; i++) {
        v->off[256 + i] = at;
        memcpy(v->bytes + at, pieces[i], strlen(pieces[i]));
        at += (uint32_t)strlen(pieces[i]);
    }
    v->off[v->n_tokens] = at;
    return v;
}

/* mask[t] must be: t's piece is not empty and every byte of it steps alive. */
static int check_mask(struct lmql__gm *m, const struct lmql__vocab *v, int32_t c, const char *what, size_t at) {
    int bad = 0;
    for (int32_t t = 0; t < v->n_tokens; t++) {
        const uint8_t *mask = lmql__gm_mask(m, c);   /* again each time: a feed may evict it */
        if (!mask) {
            th_fail(__FILE__, __LINE__, "%s: no mask", what);
            return 1;
        }
        bool got = mask[t];
        uint32_t len;
        const char *p = lmql__vocab_piece(v, t, &len);
        bool want = len > 0 && lmql__gm_feed(m, c, p, len) >= 0;
        if (got != want && bad++ < 3)
            th_fail(__FILE__, __LINE__, "%s at %zu: token %d '%.*s' mask %d, brute force %d", what, at, t, (int)len, p,
                    got, want);
    }
    return bad;
}

/* Masks along each text (which must be in the language) and along random
** walks that pick only masked tokens (which must never die). */
static void masks_along(const char *gbnf, const char *const *texts, struct lmql__vocab *v, int line) {
    struct lmql_grammar *g = compile(gbnf, line);
    struct lmql_trie *t = v ? lmql__vocab_trie(v) : NULL;
    struct lmql__gm *m = g && t ? lmql__gm_new(g, t) : NULL;
    if (!m) {
        th_fail(__FILE__, line, "no matcher");
        lmql__grammar_free(g);
        return;
    }
    int bad = 0;
    for (; *texts; texts++) {
        int32_t c = lmql__gm_start(m);
        size_t n = strlen(*texts);
        for (size_t i = 0; i <= n && c >= 0; i++) {
            bad += check_mask(m, v, c, *texts, i);
            if (i < n) c = lmql__gm_step(m, c, (unsigned char)(*texts)[i]);
        }
        if (c < 0 || !lmql__gm_accepting(m, c)) th_fail(__FILE__, line, "\"%s\" not accepted", *texts);
        else th_passed++;
    }
    CHECK_INT(bad, 0);
    uint64_t rng = 5;
    int walks_ok = 0;
    for (int w = 0; w < 10; w++) {
        int32_t c = lmql__gm_start(m);
        for (int step = 0; step < 25 && c >= 0; step++) {
            const uint8_t *mask = lmql__gm_mask(m, c);
            if (!mask) break;
            int32_t n_ok = 0, pick = -1;
            for (int32_t k = 0; k < v->n_tokens; k++)
                if (mask[k] && lmql__rng_next(&rng) % (uint64_t)++n_ok == 0) pick = k;
            if (pick < 0) break;
            uint32_t len;
            const char *p = lmql__vocab_piece(v, pick, &len);
            c = lmql__gm_feed(m, c, p, len);
        }
        walks_ok += c >= 0;
    }
    CHECK_INT(walks_ok, 10);
    lmql__gm_free(m);
    lmql__grammar_free(g);
}

static void test_masks(void) {
    struct lmql__vocab *v = small_vocab();
    CHECK(v != NULL);
    if (!v) return;
    masks_along(json_gbnf, (const char *[]){"{\"a\": [1, -2.5e+3, true, {}], \"é\": \"x\\n\"}", "{ }", NULL}, v,
                __LINE__);
    masks_along(chess_gbnf, (const char *[]){"1. e4 e5\n2. Nf3 O-O-O+\n", NULL}, v, __LINE__);
    masks_along(arith_gbnf, (const char *[]){"(1 + 12) * -3.5", NULL}, v, __LINE__);
    masks_along("root ::= [^\\n]* \"\\n\" ([ぁ-ゟ] | \"日本\")+\n", (const char *[]){"ab{\"x\n日本ぁ", NULL}, v,
                __LINE__);
    lmql__vocab_unref(v);
}

int main(void) {
    RUN(test_json);
    RUN(test_arithmetic);
    RUN(test_lists);
    RUN(test_chess);
    RUN(test_recursion);
    RUN(test_operators);
    RUN(test_unicode_escapes);
    RUN(test_layout);
    RUN(test_regular);
    RUN(test_fallback);
    RUN(test_errors);
    RUN(test_masks);
    return th_report("gbnf");
}
