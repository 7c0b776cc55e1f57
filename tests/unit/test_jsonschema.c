/*
** JSON Schema to grammar (src/jsonschema*.c): for each keyword, texts the
** grammar must accept and texts it must refuse (lmql__grammar_accepts),
** the errors of what cannot be enforced (naming the keyword and where it
** is), the limits against hostile schemas, and a pass over the MaskBench
** sample (../shared/data/maskbench, or $LMQL_MASKBENCH) when it is there:
** every instance labelled invalid must be refused (zero invalidation errors,
** a hard failure otherwise); the share of valid ones accepted is printed.
*/
#include "jsonschema.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "json.h"

static struct lmql_grammar *compile(const char *schema, bool ws, struct lmql__err *e) {
    struct lmql__js_opts o = {ws};
    return lmql__jsonschema_compile_text(schema, strlen(schema), &o, e);
}

/* A schema, texts it accepts and texts it refuses (NULL-terminated). */
struct jcase {
    const char *schema;
    const char *yes[16];
    const char *no[24];
};

static void run_cases(const struct jcase *cs, size_t n, bool ws) {
    for (size_t i = 0; i < n; i++) {
        struct lmql__err e = {0};
        struct lmql_grammar *g = compile(cs[i].schema, ws, &e);
        if (!g) {
            th_fail(__FILE__, __LINE__, "schema %s: %s", cs[i].schema, e.msg);
            continue;
        }
        for (int k = 0; k < 16 && cs[i].yes[k]; k++) {
            int a = lmql__grammar_accepts(g, cs[i].yes[k], strlen(cs[i].yes[k]));
            if (a == 1) th_passed++;
            else th_fail(__FILE__, __LINE__, "schema %s should accept %s", cs[i].schema, cs[i].yes[k]);
        }
        for (int k = 0; k < 24 && cs[i].no[k]; k++) {
            int a = lmql__grammar_accepts(g, cs[i].no[k], strlen(cs[i].no[k]));
            if (a == 0) th_passed++;
            else th_fail(__FILE__, __LINE__, "schema %s should refuse %s", cs[i].schema, cs[i].no[k]);
        }
        lmql__grammar_free(g);
    }
}

#define CASES(a, ws) run_cases(a, sizeof a / sizeof a[0], ws)

static void test_types(void) {
    static const struct jcase c[] = {
        {"true", {"null", "1", "-2.5e3", "\"x\"", "[1, {\"a\": []}]", "{}", "{\"a\": {\"b\": null}}"}, {"", "nul", "[1,2]", "{\"a\":1}", " 1", "01", "1.", "+1", "\"\\x\"", "NaN"}},
        {"{}", {"null", "true", "0", "\"\"", "[]", "{}"}, {"x", "[", "{\"a\" : 1}"}},
        {"{\"type\": \"null\"}", {"null"}, {"0", "\"null\"", "false"}},
        {"{\"type\": \"boolean\"}", {"true", "false"}, {"0", "null", "True"}},
        {"{\"type\": \"integer\"}", {"0", "-1", "123456789012345678901234567890", "-0"}, {"1.0", "1e3", "00", "-", "1.5", "\"1\""}},
        {"{\"type\": \"number\"}", {"0", "-1.5", "2.0", "1e-05", "1E+10", "-0.0", "3.14159"}, {".5", "5.", "1e", "0x10", "Infinity", "--1"}},
        {"{\"type\": \"string\"}", {"\"\"", "\"a b\"", "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\u00e9\\uD83D\\uDE00\"", "\"\xc3\xa9\xf0\x9f\x98\x80\""},
         {"\"\n\"", "\"\\x41\"", "\"\\u12\"", "\"\\uD83D\"", "\"\\uDE00\\uD83D\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "'a'", "\"a"}},
        {"{\"type\": [\"string\", \"null\"]}", {"null", "\"a\""}, {"1", "[]"}},
        {"{\"type\": [\"integer\", \"boolean\"], \"minimum\": 2}", {"2", "true", "7"}, {"1", "null", "2.5"}},
        {"{\"type\": \"array\"}", {"[]", "[1, \"a\", null, [], {}]"}, {"[1,2]", "[1, ]", "{}", "[ ]"}},
        {"{\"type\": \"object\"}", {"{}", "{\"a\": 1, \"b\": [true]}"}, {"{\"a\":1}", "{a: 1}", "[]", "{\"a\": 1,}"}},
    };
    CASES(c, false);
}

static void test_numbers(void) {
    static const struct jcase c[] = {
        {"{\"type\": \"integer\", \"minimum\": -15, \"maximum\": 123}", {"-15", "-9", "0", "99", "100", "123", "-10"}, {"-16", "-150", "124", "200", "1000", "-100"}},
        {"{\"type\": \"integer\", \"minimum\": 0}", {"0", "7", "123456789012345678901"}, {"-1", "-0.5"}},
        {"{\"type\": \"integer\", \"exclusiveMinimum\": 0, \"exclusiveMaximum\": 10}", {"1", "9"}, {"0", "10", "-1"}},
        {"{\"$schema\": \"http://json-schema.org/draft-04/schema#\", \"type\": \"integer\", \"minimum\": 5, \"exclusiveMinimum\": true, \"maximum\": 8, \"exclusiveMaximum\": true}", {"6", "7"}, {"5", "8"}},
        {"{\"type\": \"integer\", \"minimum\": 1.5, \"maximum\": 3.7}", {"2", "3"}, {"1", "4"}},
        {"{\"type\": \"integer\", \"maximum\": -100}", {"-100", "-101", "-99999"}, {"-99", "0", "100"}},
        {"{\"type\": \"number\", \"minimum\": 0, \"maximum\": 1}", {"0", "1", "0.5", "0.999", "1.0", "1.000", "0.0", "-0.0"}, {"1.0001", "-0.1", "2", "-1", "1e-5", "10.0"}},
        {"{\"type\": \"number\", \"exclusiveMinimum\": 0}", {"1", "0.1", "0.0001", "12.5"}, {"0", "0.0", "-0.5", "-3"}},
        {"{\"type\": \"number\", \"minimum\": -2.5, \"maximum\": 3.25}", {"-2.5", "-2.49", "3.25", "3.2", "0", "-1", "3"}, {"-2.51", "3.26", "3.3", "4", "-3"}},
        {"{\"type\": \"number\", \"minimum\": 10.05, \"maximum\": 10.1}", {"10.05", "10.06", "10.1", "10.09999", "10.0500"}, {"10.04", "10.0", "10.10001", "10.2", "10", "11"}},
        {"{\"type\": \"number\", \"minimum\": 1.5, \"exclusiveMaximum\": 2}", {"1.5", "1.9", "1.99999999"}, {"2", "2.0", "1.49"}},
        {"{\"type\": \"integer\", \"multipleOf\": 5}", {"0", "5", "-10", "1235"}, {"3", "12", "7.5"}},
        {"{\"type\": \"integer\", \"multipleOf\": 3, \"minimum\": 1, \"maximum\": 10}", {"3", "6", "9"}, {"1", "4", "12", "0"}},
        {"{\"type\": \"number\", \"multipleOf\": 1}", {"3", "-4"}, {"3.5"}},
        {"{\"minimum\": 5}", {"5", "\"any string\"", "null"}, {"4", "-1.5"}},
    };
    CASES(c, false);
}

static void test_strings(void) {
    static const struct jcase c[] = {
        /* lengths count characters: an escape or a surrogate pair is one */
        {"{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}", {"\"ab\"", "\"abc\"", "\"\\n\\t\"", "\"\\uD83D\\uDE00x\"", "\"\xc3\xa9\xc3\xa9\""},
         {"\"a\"", "\"abcd\"", "\"\"", "\"\\uD83D\\uDE00\"", "\"\xf0\x9f\x98\x80\""}},
        {"{\"type\": \"string\", \"maxLength\": 0}", {"\"\""}, {"\"a\""}},
        {"{\"type\": \"string\", \"pattern\": \"^[a-z]+$\"}", {"\"abc\""}, {"\"\"", "\"aBc\"", "\"abc \""}},
        /* a pattern is searched anywhere */
        {"{\"type\": \"string\", \"pattern\": \"\\\\d{3}\"}", {"\"123\"", "\"ab1234\"", "\"x999y\""}, {"\"12\"", "\"1a2b3\""}},
        {"{\"type\": \"string\", \"pattern\": \"^ab|cd$\"}", {"\"abx\"", "\"xcd\"", "\"ab\""}, {"\"xab\"", "\"cdx\""}},
        {"{\"type\": \"string\", \"pattern\": \"a.c\"}", {"\"abc\"", "\"a\\\"c\"", "\"a\\tc\""}, {"\"a\\nc\"", "\"ac\""}},
        {"{\"type\": \"string\", \"pattern\": \"^\\\\S+@\\\\S+$\"}", {"\"a@b\""}, {"\"a @b\"", "\"@b\""}},
        {"{\"type\": \"string\", \"pattern\": \"^[^\\\"]*$\"}", {"\"abc\"", "\"\""}, {"\"a\\\"b\""}},
        {"{\"type\": \"string\", \"pattern\": \"^(?:ab){2,3}$\"}", {"\"abab\"", "\"ababab\""}, {"\"ab\"", "\"abababab\""}},
        /* lengths folded into the pattern's one repetition */
        {"{\"type\": \"string\", \"pattern\": \"^[a-z]+$\", \"maxLength\": 4, \"minLength\": 2}", {"\"ab\"", "\"abcd\""}, {"\"a\"", "\"abcde\"", "\"AB\""}},
        {"{\"type\": \"string\", \"pattern\": \"^x\", \"maxLength\": 3}", {"\"x\"", "\"xyz\""}, {"\"xyzw\"", "\"y\""}},
        /* what one regex cannot say: automata */
        {"{\"allOf\": [{\"type\": \"string\", \"pattern\": \"a\"}, {\"pattern\": \"b\"}]}", {"\"ab\"", "\"ba\"", "\"xaxbx\""}, {"\"a\"", "\"b\"", "\"\"", "1"}},
        {"{\"type\": \"string\", \"pattern\": \"[a-z]\", \"maxLength\": 5}", {"\"a\"", "\"12a45\""}, {"\"123456a\"", "\"12345\"", "\"abcdef\""}},
        {"{\"type\": \"string\", \"not\": {\"enum\": [\"ab\", \"b\"]}, \"maxLength\": 2}", {"\"a\"", "\"\"", "\"ba\""}, {"\"ab\"", "\"b\"", "\"abc\""}},
        /* long bounds are counted in chunks */
        {"{\"type\": \"string\", \"minLength\": 70, \"maxLength\": 100}", {NULL}, {"\"\"", "\"abc\""}},
        {"{\"enum\": [\"a\", \"b\\\"c\", 1, 2.5, null, true, [1, \"x\"], {\"k\": {\"v\": [null]}}]}",
         {"\"a\"", "\"b\\\"c\"", "1", "1.0", "2.5", "null", "true", "[1, \"x\"]", "{\"k\": {\"v\": [null]}}"},
         {"\"b\"", "2", "false", "[1]", "{\"k\": {}}", "[1,\"x\"]", "\"\\u0061\""}},
        {"{\"const\": 5.0}", {"5", "5.0"}, {"5.5", "\"5\""}},
        {"{\"type\": \"string\", \"enum\": [\"a\", 1, \"b\"]}", {"\"a\"", "\"b\""}, {"1"}},
    };
    CASES(c, false);
    /* chunked lengths at their edges */
    struct lmql__err e = {0};
    struct lmql_grammar *g = compile("{\"type\": \"string\", \"minLength\": 70, \"maxLength\": 1000}", false, &e);
    CHECK(g != NULL);
    char *s = malloc(1100);
    if (g && s) {
        for (int len = 60; len <= 1010; len += len < 80 || len > 990 ? 1 : 97) {
            s[0] = '"';
            for (int i = 1; i <= len; i++) s[i] = (char)('a' + i % 26);
            s[len + 1] = '"';
            int a = lmql__grammar_accepts(g, s, (size_t)len + 2);
            if (a == (len >= 70 && len <= 1000)) th_passed++;
            else th_fail(__FILE__, __LINE__, "string of length %d: accepts = %d", len, a);
        }
        /* one character as a surrogate pair escape still counts one */
        memcpy(s + 1, "\\uD83D\\uDE00", 12);
        for (int i = 13; i < 13 + 999; i++) s[i] = 'x';
        s[13 + 999] = '"';
        CHECK_INT(lmql__grammar_accepts(g, s, 13 + 1000), 1);
        s[13 + 999] = 'x';
        s[13 + 1000] = '"';
        CHECK_INT(lmql__grammar_accepts(g, s, 13 + 1001), 0);
    }
    free(s);
    lmql__grammar_free(g);
}

static void test_formats(void) {
    static const struct jcase c[] = {
        {"{\"format\": \"date\"}", {"\"2024-02-29\"", "\"2023-12-31\"", "\"2000-02-29\"", "\"0001-01-01\"", "5"},
         {"\"2023-02-29\"", "\"1900-02-29\"", "\"2023-04-31\"", "\"2023-13-01\"", "\"0000-01-01\"", "\"2023-1-01\"", "\"20230101\""}},
        {"{\"type\": \"string\", \"format\": \"time\"}", {"\"12:34:56Z\"", "\"23:59:59.123+02:00\""}, {"\"24:00:00Z\"", "\"12:34:56\"", "\"12:60:00Z\""}},
        {"{\"type\": \"string\", \"format\": \"date-time\"}", {"\"2024-01-15T08:30:00Z\"", "\"2024-01-15T08:30:00.5-05:00\""}, {"\"2024-01-15 08:30:00Z\"", "\"2024-01-15\"", "\"2024-01-32T00:00:00Z\""}},
        {"{\"type\": \"string\", \"format\": \"email\"}", {"\"john.doe@example.com\"", "\"a+b@x.co.uk\""}, {"\"john\"", "\"a@b\"", "\"a..b@x.com\"", "\"@x.com\""}},
        {"{\"type\": \"string\", \"format\": \"uuid\"}", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"123e4567e89b12d3a456426614174000\"", "\"123e4567-e89b-12d3-a456-42661417400g\""}},
        {"{\"type\": \"string\", \"format\": \"uri\"}", {"\"https://example.com/a/b?q=1#f\"", "\"urn:isbn:0451450523\"", "\"mailto:a@b.c\""}, {"\"example.com\"", "\"http://exa mple.com\"", "\"/relative\""}},
        {"{\"type\": \"string\", \"format\": \"ipv4\"}", {"\"192.168.0.1\"", "\"0.0.0.0\""}, {"\"256.1.1.1\"", "\"01.1.1.1\"", "\"1.1.1\""}},
        {"{\"type\": \"string\", \"format\": \"ipv6\"}", {"\"::1\"", "\"2001:db8::ff00:42:8329\"", "\"1:2:3:4:5:6:7:8\""}, {"\"1:2:3:4:5:6:7:8:9\"", "\"12345::\"", "\":::\""}},
        {"{\"type\": \"string\", \"format\": \"hostname\"}", {"\"example.com\"", "\"localhost\""}, {"\"-bad.com\"", "\"a..b\""}},
        /* formats JSON Schema does not define are annotations */
        {"{\"type\": \"string\", \"format\": \"int64\"}", {"\"anything\""}, {"1"}},
        {"{\"type\": \"string\", \"format\": \"uuid\", \"maxLength\": 36}", {"\"123e4567-e89b-12d3-a456-426614174000\""}, {"\"x\""}},
    };
    CASES(c, false);
}

static void test_objects(void) {
    static const struct jcase c[] = {
        /* the order of properties, each at most once, extra names after */
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"integer\"}, \"b\": {\"type\": \"string\"}}}",
         {"{}", "{\"a\": 1}", "{\"b\": \"x\"}", "{\"a\": 1, \"b\": \"x\"}", "{\"a\": 1, \"c\": null}", "{\"c\": 1, \"d\": 2}", "{\"ab\": 1}", "{\"\": 1}"},
         {"{\"a\": \"x\"}", "{\"a\": 1, \"a\": 2}", "{\"a\": 1, \"b\": \"x\", \"a\": 3}", "{\"c\": 1, \"a\": 2}", "{\"b\": 1}"}},
        {"{\"properties\": {\"a\": {}, \"b\": {}}, \"required\": [\"b\"], \"additionalProperties\": false}",
         {"{\"b\": 1}", "{\"a\": 1, \"b\": 2}", "{\"b\": 2, \"a\": 1}", "5"},
         {"{}", "{\"a\": 1}", "{\"b\": 1, \"c\": 2}", "{\"b\": 1, \"b\": 1}"}},
        /* required names not in properties follow additionalProperties */
        {"{\"properties\": {\"a\": {}}, \"required\": [\"x\"], \"additionalProperties\": {\"type\": \"integer\"}}",
         {"{\"x\": 1}", "{\"a\": \"s\", \"x\": 1}", "{\"x\": 1, \"y\": 2}"}, {"{\"x\": \"s\"}", "{\"a\": 1}", "{\"x\": 1, \"y\": \"s\"}", "{\"x\": 1, \"x\": 2}"}},
        {"{\"required\": [\"x\"], \"additionalProperties\": false}", {"[]"}, {"{\"x\": 1}", "{}"}},
        {"{\"type\": \"object\", \"minProperties\": 1, \"maxProperties\": 2}", {"{\"a\": 1}", "{\"a\": 1, \"b\": 2}"}, {"{}", "{\"a\": 1, \"b\": 2, \"c\": 3}"}},
        /* below minProperties only one other name counts: it could repeat */
        {"{\"type\": \"object\", \"properties\": {\"p\": {}}, \"minProperties\": 2}", {"{\"p\": 1, \"q\": 2}"}, {"{\"q\": 1, \"q\": 2}", "{\"p\": 1}"}},
        {"{\"type\": \"object\", \"propertyNames\": {\"pattern\": \"^[a-z]+$\"}}", {"{\"ab\": 1}", "{}"}, {"{\"Ab\": 1}", "{\"a1\": 2}"}},
        {"{\"type\": \"object\", \"propertyNames\": {\"enum\": [\"x\", \"y\"]}}", {"{\"x\": 1, \"y\": []}"}, {"{\"z\": 1}"}},
        {"{\"type\": \"object\", \"patternProperties\": {\"^s_\": {\"type\": \"string\"}, \"^n_\": {\"type\": \"number\"}}, \"additionalProperties\": false}",
         {"{\"s_a\": \"x\", \"n_b\": 2}", "{}"}, {"{\"s_a\": 1}", "{\"x\": 1}", "{\"n_b\": \"x\"}"}},
        {"{\"properties\": {\"ab\": {\"type\": \"string\"}}, \"patternProperties\": {\"^x\": {\"maxLength\": 2}}, \"additionalProperties\": false}",
         {"{\"ab\": \"s\", \"x1\": \"ab\"}", "{\"x\": 1}"}, {"{\"ab\": \"s\", \"x1\": \"abc\"}", "{\"ab\": 1}", "{\"y\": 1}"}},
        {"{\"properties\": {\"k\": false}}", {"{}", "{\"j\": 1}"}, {"{\"k\": 1}", "{\"j\": 1, \"k\": 2}"}},
        /* names under a pattern, under none, declared: each once in its place */
        {"{\"type\": \"object\", \"patternProperties\": {\"^a\": {\"type\": \"integer\"}}}", {"{\"a1\": 5, \"b\": \"x\"}", "{\"b\": \"x\"}", "{\"a\": 1}"}, {"{\"a1\": \"x\"}", "{\"a\": \"s\"}", "{\"b\": 1, \"a\": \"s\"}"}},
        {"{\"properties\": {\"a\": {\"type\": \"string\"}}, \"patternProperties\": {\"^a\": {\"maxLength\": 2}}, \"additionalProperties\": false}",
         {"{\"a\": \"x\"}", "{\"ab\": 1}", "{\"a\": \"x\", \"ab\": 2}"}, {"{\"a\": 1}", "{\"a\": \"xyz\"}", "{\"b\": 1}", "{\"a\": \"x\", \"a\": \"y\"}", "{\"ab\": \"xyz\"}"}},
        {"{\"properties\": {\"ab\": {}}, \"propertyNames\": {\"maxLength\": 2}, \"additionalProperties\": {\"type\": \"integer\"}}",
         {"{\"ab\": \"s\", \"x\": 1}", "{\"cd\": 2}"}, {"{\"abc\": 1}", "{\"ab\": 1, \"ab\": 2}", "{\"x\": \"s\"}"}},
        /* Python's \\w matches \u00e9: a name one reading puts under the pattern gets its schema too */
        {"{\"properties\": {\"\u00e9\": {\"type\": \"string\"}}, \"patternProperties\": {\"^\\\\w+$\": {\"type\": \"integer\"}}}",
         {"{\"x\": 1}"}, {"{\"\u00e9\": \"s\"}", "{\"\u00e9\": 1}", "{\"x\": \"s\"}"}},
        {"{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"type\": \"object\", \"dependencies\": {\"a\": [\"b\"]}, \"properties\": {\"a\": {}, \"b\": {}}}",
         {"{}", "{\"b\": 1}", "{\"a\": 1, \"b\": 2}"}, {"{\"a\": 1}"}},
        {"{\"type\": \"object\", \"dependentRequired\": {\"a\": [\"b\"]}, \"dependentSchemas\": {\"b\": {\"required\": [\"c\"]}}}",
         {"{}", "{\"c\": 1}", "{\"a\": 1, \"b\": 2, \"c\": 3}"}, {"{\"a\": 1}", "{\"b\": 1}", "{\"a\": 1, \"b\": 2}"}},
        /* 2019-09 and later read no "dependencies" */
        {"{\"type\": \"object\", \"dependencies\": {\"a\": [\"b\"]}}", {"{\"a\": 1}"}, {"[]"}},
        {"{\"type\": \"object\", \"properties\": {\"\\u00e9\\n\": {\"const\": 1}}}", {"{\"\xc3\xa9\\n\": 1}"}, {"{\"\xc3\xa9\\n\": 2}", "{\"\\u00e9\\n\": 2}"}},
    };
    CASES(c, false);
}

static void test_arrays(void) {
    static const struct jcase c[] = {
        {"{\"type\": \"array\", \"items\": {\"type\": \"integer\"}, \"minItems\": 2, \"maxItems\": 3}",
         {"[1, 2]", "[1, 2, 3]"}, {"[]", "[1]", "[1, 2, 3, 4]", "[1, \"a\"]"}},
        {"{\"prefixItems\": [{\"type\": \"string\"}, {\"type\": \"integer\"}], \"items\": false}",
         {"[]", "[\"a\"]", "[\"a\", 1]"}, {"[1]", "[\"a\", 1, 2]", "[\"a\", \"b\"]"}},
        {"{\"items\": [{\"type\": \"string\"}, {\"type\": \"integer\"}], \"additionalItems\": {\"type\": \"boolean\"}, \"minItems\": 1}",
         {"[\"a\"]", "[\"a\", 1, true, false]"}, {"[]", "[\"a\", 1, 2]"}},
        {"{\"items\": [{\"type\": \"string\"}], \"minItems\": 3}", {"[\"a\", 1, null]"}, {"[\"a\", 1]", "[1, 2, 3]"}},
        {"{\"type\": \"array\", \"items\": {\"type\": \"object\"}, \"minItems\": 1000}", {NULL}, {"[]", "[{}]"}},
        {"{\"type\": \"array\", \"items\": {\"enum\": [\"a\", \"b\", \"c\"]}, \"uniqueItems\": true}",
         {"[]", "[\"a\"]", "[\"c\", \"a\"]", "[\"b\", \"c\", \"a\"]"}, {"[\"a\", \"a\"]", "[\"a\", \"b\", \"a\"]"}},
        {"{\"type\": \"array\", \"items\": {\"type\": \"boolean\"}, \"uniqueItems\": true, \"minItems\": 2}", {"[true, false]"}, {"[true, true]", "[true]"}},
    };
    CASES(c, false);
    /* large counts are rules over halves: 1000 items and not 999 or 1001 */
    struct lmql__err e = {0};
    struct lmql_grammar *g = compile("{\"type\": \"array\", \"items\": {\"type\": [\"object\", \"integer\"]}, \"minItems\": 998, \"maxItems\": 1000}", false, &e);
    CHECK(g != NULL);
    struct lmql__buf b = {0};
    for (int n = 996; g && n <= 1002; n++) {
        b.len = 0;
        lmql__buf_add(&b, "[", 1);
        for (int i = 0; i < n; i++) lmql__buf_adds(&b, i ? (i % 7 ? ", 1" : ", {}") : "{}");
        lmql__buf_add(&b, "]", 1);
        int a = lmql__grammar_accepts(g, b.data, b.len);
        if (a == (n >= 998 && n <= 1000)) th_passed++;
        else th_fail(__FILE__, __LINE__, "array of %d items: accepts = %d", n, a);
    }
    lmql__buf_free(&b);
    lmql__grammar_free(g);
}

static void test_combinators(void) {
    static const struct jcase c[] = {
        {"{\"anyOf\": [{\"type\": \"string\", \"maxLength\": 1}, {\"type\": \"integer\", \"minimum\": 10}]}", {"\"a\"", "10", "99"}, {"\"ab\"", "9", "null"}},
        {"{\"oneOf\": [{\"type\": \"string\"}, {\"type\": \"array\"}, {\"const\": 1}]}", {"\"a\"", "[]", "1"}, {"2", "null"}},
        {"{\"oneOf\": [{\"properties\": {\"k\": {\"const\": \"a\"}, \"v\": {\"type\": \"integer\"}}, \"required\": [\"k\"]},"
         "{\"properties\": {\"k\": {\"const\": \"b\"}, \"v\": {\"type\": \"string\"}}, \"required\": [\"k\"]}], \"type\": \"object\"}",
         {"{\"k\": \"a\", \"v\": 1}", "{\"k\": \"b\", \"v\": \"s\"}"}, {"{\"k\": \"a\", \"v\": \"s\"}", "{\"v\": 1}", "{\"k\": \"c\"}"}},
        /* allOf merges objects: properties in order, required united */
        {"{\"allOf\": [{\"properties\": {\"a\": {\"type\": \"integer\"}}, \"required\": [\"a\"]}, {\"properties\": {\"b\": {\"type\": \"string\"}, \"a\": {\"minimum\": 5}}}]}",
         {"{\"a\": 5}", "{\"a\": 7, \"b\": \"x\"}", "{\"a\": 5, \"c\": 1}"}, {"{\"a\": 4}", "{\"b\": \"x\"}", "{\"a\": 5.5}", "{\"b\": \"x\", \"a\": 5}"}},
        /* additionalProperties sees only the properties next to it */
        {"{\"allOf\": [{\"properties\": {\"a\": {}}}], \"additionalProperties\": false}", {"{}", "[]"}, {"{\"a\": 1}"}},
        {"{\"allOf\": [{\"properties\": {\"a\": {}}}], \"properties\": {\"a\": {\"type\": \"integer\"}}, \"additionalProperties\": false}", {"{\"a\": 1}"}, {"{\"a\": \"x\"}", "{\"b\": 1}"}},
        {"{\"type\": \"integer\", \"enum\": [1, \"a\", 3.5, 4], \"maximum\": 3}", {"1"}, {"\"a\"", "3.5", "4"}},
        {"{\"not\": {\"type\": \"string\"}}", {"1", "null", "{}"}, {"\"a\""}},
        /* keywords a draft does not know are no assertions there, as its validator reads them */
        {"{\"$schema\": \"http://json-schema.org/draft-06/schema#\", \"not\": {\"anyOf\": [{\"type\": \"string\"}, {\"const\": 1}]}}", {"2", "{}"}, {"1", "\"a\""}},
        {"{\"$schema\": \"http://json-schema.org/draft-07/schema#\", \"definitions\": {\"s\": {\"type\": \"string\"}}, \"$ref\": \"#/definitions/s\", \"maxLength\": 1}", {"\"abc\""}, {"1"}},
        /* oneOf: types no branch constrains match two, so they go; or branch i and no other */
        {"{\"oneOf\": [{\"required\": [\"a\"], \"properties\": {\"a\": {\"const\": 1}}}, {\"required\": [\"a\"], \"properties\": {\"a\": {\"const\": 2}}}]}",
         {"{\"a\": 1}", "{\"a\": 2, \"b\": 3}"}, {"null", "1", "\"s\"", "{}", "{\"a\": 3}"}},
        {"{\"type\": \"object\", \"oneOf\": [{\"required\": [\"a\"]}, {\"required\": [\"b\"]}]}",
         {"{\"a\": 1}", "{\"b\": 1}", "{\"a\": 1, \"c\": 2}"}, {"{}", "{\"a\": 1, \"b\": 2}", "{\"c\": 1}"}},
        {"{\"oneOf\": [{\"type\": \"integer\"}, {\"enum\": [2.5, \"x\"]}]}", {"3", "2.5", "\"x\""}, {"\"y\"", "null"}},
        {"{\"type\": \"object\", \"not\": {\"required\": [\"x\"]}}", {"{}", "{\"y\": 1}"}, {"{\"x\": 1}"}},
        {"{\"not\": {\"enum\": [\"a\", 2, true, null]}}", {"\"b\"", "\"\"", "\"ab\"", "1", "2.5", "false", "[]"}, {"\"a\"", "2", "2.0", "true", "null"}},
        {"{\"if\": {\"properties\": {\"t\": {\"const\": \"n\"}}, \"required\": [\"t\"]}, \"then\": {\"properties\": {\"v\": {\"type\": \"number\"}}}, \"else\": {\"properties\": {\"v\": {\"type\": \"string\"}}}, \"type\": \"object\"}",
         {"{\"t\": \"n\", \"v\": 1}", "{\"t\": \"s\", \"v\": \"x\"}", "{\"v\": \"x\"}"}, {"{\"t\": \"n\", \"v\": \"x\"}", "{\"t\": \"s\", \"v\": 1}"}},
        /* $ref: local pointers, recursion, the root */
        {"{\"$defs\": {\"n\": {\"type\": \"object\", \"properties\": {\"v\": {\"type\": \"integer\"}, \"next\": {\"$ref\": \"#/$defs/n\"}}, \"additionalProperties\": false}}, \"$ref\": \"#/$defs/n\"}",
         {"{}", "{\"v\": 1, \"next\": {\"v\": 2, \"next\": {}}}"}, {"{\"v\": 1, \"next\": {\"v\": \"x\"}}", "{\"next\": 1}"}},
        {"{\"type\": [\"array\", \"integer\"], \"items\": {\"$ref\": \"#\"}}", {"1", "[]", "[1, [2, [3]], []]"}, {"[\"a\"]", "[[null]]"}},
        {"{\"definitions\": {\"a~/b\": {\"type\": \"boolean\"}}, \"properties\": {\"x\": {\"$ref\": \"#/definitions/a~0~1b\"}}}", {"{\"x\": true}"}, {"{\"x\": 1}"}},
        {"{\"$id\": \"http://x.org/s.json\", \"definitions\": {\"a\": {\"const\": 1}}, \"items\": {\"$ref\": \"http://x.org/s.json#/definitions/a\"}}", {"[1, 1]"}, {"[2]"}},
        {"{\"$ref\": \"#/definitions/a\", \"definitions\": {\"a\": {\"type\": \"integer\"}}, \"minimum\": 3}", {"3"}, {"2", "\"x\""}},
    };
    CASES(c, false);
}

static void test_whitespace(void) {
    static const struct jcase c[] = {
        {"{\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}}, \"required\": [\"a\"]}",
         {"{\"a\":[1,2]}", "{ \"a\" : [ 1 , 2 ] }", "{\n  \"a\": [\n    1,\n    2\n  ]\n}", "{\"a\":[]}", "{\"a\": [ ]}"},
         {" {\"a\":[]}", "{\"a\":[]} ", "{\"a\":[1 2]}", "{\"a\":[1,2],}", "{\"a\":\t\v[]}"}},
        {"{\"enum\": [{\"x\": [1, 2]}]}", {"{\"x\":[1,2]}", "{ \"x\" : [1, 2] }"}, {"{\"x\":[1,2,]}"}},
    };
    CASES(c, true);
    /* at most 32 whitespace characters in one place */
    char s[128];
    snprintf(s, sizeof s, "{%*s\"a\": []}", 32, "");
    struct lmql__err e = {0};
    struct lmql_grammar *g = compile(c[0].schema, true, &e);
    CHECK_INT(g ? lmql__grammar_accepts(g, s, strlen(s)) : -1, 1);
    snprintf(s, sizeof s, "{%*s\"a\": []}", 33, "");
    CHECK_INT(g ? lmql__grammar_accepts(g, s, strlen(s)) : -1, 0);
    lmql__grammar_free(g);
}

/* What cannot be enforced is an error naming the keyword and its place. */
static void test_errors(void) {
    static const struct {
        const char *schema, *msg[3];
    } c[] = {
        {"{\"properties\": {\"a\": {\"type\": \"array\", \"contains\": {\"type\": \"integer\"}}}}", {"#/properties/a/contains", "contains"}},
        {"{\"type\": \"string\", \"pattern\": \"a(?=b)\"}", {"#/pattern", "a(?=b)", "lookaround"}},
        {"{\"type\": \"string\", \"pattern\": \"(a)\\\\1\"}", {"#/pattern", "backreference"}},
        {"{\"type\": \"string\", \"pattern\": \"\\\\bword\"}", {"#/pattern", "word boundary"}},
        {"{\"type\": \"number\", \"multipleOf\": 0.01}", {"#/multipleOf", "integer"}},
        {"{\"oneOf\": [{\"type\": \"integer\"}, {\"type\": \"number\"}]}", {"#/oneOf", "disjoint"}},
        {"{\"oneOf\": [{\"type\": \"integer\"}, {\"enum\": [5.0]}]}", {"#/oneOf", "disjoint"}},
        {"{\"oneOf\": [{\"type\": \"string\", \"pattern\": \"^a\"}, {\"type\": \"string\", \"pattern\": \"b$\"}]}", {"#/oneOf", "disjoint"}},
        {"{\"exclusiveMinimum\": true, \"minimum\": 1}", {"#/exclusiveMinimum", "draft 4"}},
        {"{\"$schema\": \"http://json-schema.org/draft-03/schema#\"}", {"#/$schema", "draft 3"}},
        {"{\"oneOf\": [{\"required\": [\"a\"]}, {\"required\": [\"b\"], \"pattern\": \"x\"}]}", {"#/oneOf", "both match"}},
        {"{\"$ref\": \"other.json#/a\"}", {"#/$ref", "other.json"}},
        {"{\"$ref\": \"#/definitions/missing\"}", {"#/$ref", "does not point"}},
        {"{\"type\": \"string\", \"format\": \"regex\"}", {"#/format", "regex"}},
        {"{\"type\": \"array\", \"items\": {\"type\": \"string\"}, \"uniqueItems\": true}", {"#", "uniqueItems"}},
        {"{\"type\": \"frobnicate\"}", {"#/type", "unknown type"}},
        {"{\"type\": \"string\", \"pattern\": \"^a\", \"format\": \"email\"}", {"#/format", "pattern"}},
        {"{\"not\": {\"pattern\": \"a\"}}", {"#/not/pattern", "not"}},
        {"{\"type\": \"string\", \"pattern\": \"[a-z]\", \"maxLength\": 500}", {"#", "length bound over 200"}},
        {"{\"type\": \"object\", \"patternProperties\": {\"^a\": {\"type\": \"integer\"}, \"b$\": {}}}", {"#/patternProperties/b$", "may match one name"}},
        {"{\"type\": \"object\", \"patternProperties\": {\"^\\\\w+$\": {\"type\": \"integer\"}, \"^\u00e9\": {}}}", {"may match one name"}},
        {"{\"type\": \"integer\", \"minimum\": 5, \"maximum\": 3}", {"#", "no JSON value"}},
        {"false", {"no JSON value"}},
        /* draft 4 reads no const: {"const": 1} is {} there, and not anyOf of it is false */
        {"{\"$schema\": \"http://json-schema.org/draft-04/schema#\", \"not\": {\"anyOf\": [{\"type\": \"string\"}, {\"const\": 1}]}}", {"no JSON value"}},
        {"{\"not\": {}}", {"no JSON value"}},
        {"{\"allOf\": [{\"type\": \"string\"}, {\"type\": \"integer\"}]}", {"no JSON value"}},
        {"{\"type\": \"string\", \"format\": \"uuid\", \"maxLength\": 10}", {"no JSON value"}},

        {"{\"required\": true}", {"#/required", "draft 3"}},
        {"{\"definitions\": {\"a\": {\"allOf\": [{\"$ref\": \"#/definitions/a\"}, {\"type\": \"object\"}]}}, \"$ref\": \"#/definitions/a\"}", {"#/definitions/a/allOf/0/$ref", "recursive"}},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct lmql__err e = {0};
        struct lmql_grammar *g = compile(c[i].schema, false, &e);
        if (g) th_fail(__FILE__, __LINE__, "schema %s compiled", c[i].schema);
        else th_passed++;
        lmql__grammar_free(g);
        if (g) continue;
        CHECK_INT(e.status, LMQL_ERR_QUERY);
        for (int k = 0; k < 3 && c[i].msg[k]; k++) CHECK_CONTAINS(e.msg, c[i].msg[k]);
    }
    /* a syntax error: its byte offset */
    struct lmql__err e = {0};
    CHECK(compile("{\"type\": \"string\",, }", false, &e) == NULL);
    CHECK_INT(e.status, LMQL_ERR_QUERY);
    CHECK_INT(e.pos.offset, 18);
    /* annotations and names outside JSON Schema are ignored */
    struct lmql_grammar *g = compile("{\"title\": \"t\", \"description\": \"d\", \"default\": 3, \"examples\": [1], \"$comment\": \"c\","
                                     " \"x-vendor\": {\"minimum\": 100}, \"readOnly\": true, \"deprecated\": false, \"type\": \"integer\"}",
                                     false, &e);
    CHECK(g != NULL);
    CHECK_INT(g ? lmql__grammar_accepts(g, "7", 1) : -1, 1);
    lmql__grammar_free(g);
}

/* Hostile schemas end in errors, not exhaustion. */
static void test_limits(void) {
    struct lmql__buf b = {0};
    /* nesting past the limit */
    for (int i = 0; i < 200; i++) lmql__buf_adds(&b, "{\"items\": ");
    lmql__buf_adds(&b, "{}");
    for (int i = 0; i < 200; i++) lmql__buf_adds(&b, "}");
    struct lmql__err e = {0};
    struct lmql_grammar *g = compile(b.data, false, &e);
    CHECK(g == NULL);
    CHECK_CONTAINS(e.msg, "nested too deep");
    lmql__grammar_free(g);
    /* an enum over the limit */
    b.len = 0;
    lmql__buf_adds(&b, "{\"enum\": [");
    for (int i = 0; i < 5000; i++) lmql__buf_addf(&b, "%s%d", i ? "," : "", i);
    lmql__buf_adds(&b, "]}");
    g = compile(b.data, false, &e);
    CHECK(g == NULL);
    CHECK_CONTAINS(e.msg, "enum");
    lmql__grammar_free(g);
    /* exponential allOf/anyOf products */
    b.len = 0;
    lmql__buf_adds(&b, "{\"allOf\": [");
    for (int i = 0; i < 12; i++) lmql__buf_addf(&b, "%s{\"anyOf\": [{\"minimum\": %d}, {\"maximum\": %d}]}", i ? "," : "", i, -i);
    lmql__buf_adds(&b, "]}");
    g = compile(b.data, false, &e);
    CHECK(g == NULL);
    CHECK_CONTAINS(e.msg, "alternatives");
    lmql__grammar_free(g);
    /* a huge maxItems and maxLength are counted by halves and chunks */
    g = compile("{\"type\": \"array\", \"maxItems\": 1000000000, \"items\": {\"type\": \"string\", \"maxLength\": 100000}}", false, &e);
    CHECK(g != NULL);
    CHECK_INT(g ? lmql__grammar_accepts(g, "[\"a\", \"b\"]", 10) : -1, 1);
    lmql__grammar_free(g);
    /* billion laughs through $ref */
    b.len = 0;
    lmql__buf_adds(&b, "{\"definitions\": {\"d0\": {\"type\": \"integer\"}");
    for (int i = 1; i < 40; i++) lmql__buf_addf(&b, ", \"d%d\": {\"allOf\": [{\"$ref\": \"#/definitions/d%d\"}, {\"$ref\": \"#/definitions/d%d\"}]}", i, i - 1, i - 1);
    lmql__buf_adds(&b, "}, \"$ref\": \"#/definitions/d39\"}");
    g = compile(b.data, false, &e);
    CHECK(g != NULL || e.status == LMQL_ERR_QUERY);
    lmql__grammar_free(g);
    lmql__buf_free(&b);
}

/* ---------------------------------------------------------- MaskBench -- */

/* json.dumps(v, ensure_ascii=False), written here on its own (not with
** the compiler's writer) so that the two check each other. */
static void py_float(struct lmql__buf *b, double d) {
    char t[64], dig[32];
    int p, n = 0;
    for (p = 1; p <= 17; p++) {
        snprintf(t, sizeof t, "%.*e", p - 1, d);
        if (strtod(t, NULL) == d) break;
    }
    char *e = strchr(t, 'e');
    int ex = atoi(e + 1);
    for (char *s = t; s < e; s++)
        if (*s >= '0' && *s <= '9') dig[n++] = *s;
    while (n > 1 && dig[n - 1] == '0') n--;
    dig[n] = 0;
    if (signbit(d)) lmql__buf_adds(b, "-");
    if (d == 0) {
        lmql__buf_adds(b, "0.0");
    } else if (ex < -4 || ex >= 16) {
        lmql__buf_addf(b, "%c%s%s", dig[0], n > 1 ? "." : "", dig + 1);
        lmql__buf_addf(b, "e%c%02d", ex < 0 ? '-' : '+', ex < 0 ? -ex : ex);
    } else if (ex < 0) {
        lmql__buf_adds(b, "0.");
        for (int k = 0; k < -ex - 1; k++) lmql__buf_add(b, "0", 1);
        lmql__buf_adds(b, dig);
    } else {
        for (int k = 0; k <= ex; k++) lmql__buf_add(b, k < n ? dig + k : "0", 1);
        lmql__buf_addf(b, ".%s", n > ex + 1 ? dig + ex + 1 : "0");
    }
}

static void py_str(struct lmql__buf *b, const char *s, size_t n) {
    lmql__buf_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        static const char esc[] = "\"\\\n\r\t\b\f", rep[] = "\"\\nrtbf";
        const char *q = ch ? strchr(esc, ch) : NULL;
        if (q) lmql__buf_addf(b, "\\%c", rep[q - esc]);
        else if (ch < 0x20) lmql__buf_addf(b, "\\u%04x", ch);
        else lmql__buf_add(b, s + i, 1);
    }
    lmql__buf_add(b, "\"", 1);
}

static void py_dumps(struct lmql__buf *b, const struct lmql_val *v) {
    switch (v->kind) {
    case LMQL_V_NONE: lmql__buf_adds(b, "null"); break;
    case LMQL_V_BOOL: lmql__buf_adds(b, v->u.b ? "true" : "false"); break;
    case LMQL_V_INT: lmql__buf_addf(b, "%lld", (long long)v->u.i); break;
    case LMQL_V_FLOAT: py_float(b, v->u.f); break;
    case LMQL_V_STR: py_str(b, v->u.str.s, v->u.str.len); break;
    case LMQL_V_LIST:
        lmql__buf_add(b, "[", 1);
        for (size_t i = 0; i < v->u.list.len; i++) {
            if (i) lmql__buf_adds(b, ", ");
            py_dumps(b, v->u.list.items[i]);
        }
        lmql__buf_add(b, "]", 1);
        break;
    case LMQL_V_DICT:
        lmql__buf_add(b, "{", 1);
        for (size_t i = 0; i < v->u.dict.len; i++) {
            if (i) lmql__buf_adds(b, ", ");
            py_str(b, v->u.dict.keys[i]->u.str.s, v->u.dict.keys[i]->u.str.len);
            lmql__buf_adds(b, ": ");
            py_dumps(b, v->u.dict.vals[i]);
        }
        lmql__buf_add(b, "}", 1);
        break;
    default: break;
    }
}

static void test_py_dumps(void) {
    static const struct {
        double d;
        const char *s;
    } f[] = {{1.0, "1.0"}, {0.1, "0.1"}, {1e-05, "1e-05"}, {0.0001, "0.0001"}, {1e16, "1e+16"}, {1e15, "1000000000000000.0"},
             {-2.5, "-2.5"}, {123.456, "123.456"}, {1.5e300, "1.5e+300"}, {-0.0, "-0.0"}, {5e-324, "5e-324"}, {0.001234, "0.001234"}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++) {
        struct lmql__buf b = {0};
        py_float(&b, f[i].d);
        CHECK_STR(b.data, f[i].s);
        lmql__buf_free(&b);
    }
}

static const struct lmql_val *dget(const struct lmql_val *d, const char *k) {
    if (!d || d->kind != LMQL_V_DICT) return NULL;
    for (size_t i = 0; i < d->u.dict.len; i++)
        if (d->u.dict.keys[i]->kind == LMQL_V_STR && !strcmp(d->u.dict.keys[i]->u.str.s, k)) return d->u.dict.vals[i];
    return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_maskbench(void) {
    const char *dir = getenv("LMQL_MASKBENCH");
    if (!dir) dir = "../shared/data/maskbench";
    DIR *d = opendir(dir);
    if (!d) {
        printf("maskbench: %s not found, skipped (set LMQL_MASKBENCH)\n", dir);
        return;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".json")) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    /* under the sanitizers a quarter of the files, to keep the time */
    size_t stride = 1;
#if defined(__SANITIZE_ADDRESS__)
    stride = 4;
#endif
    if (getenv("LMQL_MASKBENCH_STRIDE")) stride = (size_t)atoi(getenv("LMQL_MASKBENCH_STRIDE"));
    if (stride < 1) stride = 1;
    int files = 0, cerr = 0, oom = 0, v_ok = 0, v_all = 0, i_ok = 0, i_all = 0, i_no_grammar = 0, v_no_grammar = 0;
    double t0 = lmql__now();
    for (size_t fi = 0; fi < n; fi += stride) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[fi]);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        struct lmql__buf txt = {0};
        char chunk[65536];
        for (size_t r; (r = fread(chunk, 1, sizeof chunk, f)) > 0;) lmql__buf_add(&txt, chunk, r);
        fclose(f);
        struct lmql__err e = {0};
        struct lmql_val *root = txt.data ? lmql__json_parse_doubles(txt.data, txt.len, &e) : NULL;
        lmql__buf_free(&txt);
        const struct lmql_val *schema = dget(root, "schema"), *tests = dget(root, "tests");
        if (!schema || !tests || tests->kind != LMQL_V_LIST) {
            lmql__val_unref(root);
            continue;
        }
        files++;
        struct lmql_grammar *g = lmql__jsonschema_compile(schema, NULL, &e);
        if (!g) {
            cerr++;
            oom += e.status != LMQL_ERR_QUERY;
        }
        for (size_t i = 0; i < tests->u.list.len; i++) {
            const struct lmql_val *t = tests->u.list.items[i], *valid = dget(t, "valid"), *data = dget(t, "data");
            if (!valid || !data) continue;
            bool is_valid = valid->kind == LMQL_V_BOOL && valid->u.b;
            if (!g) {
                if (is_valid) v_no_grammar++;
                else i_no_grammar++;
                continue;
            }
            struct lmql__buf b = {0};
            py_dumps(&b, data);
            int a = lmql__grammar_accepts(g, b.data ? b.data : "", b.len);
            if (is_valid) {
                v_all++;
                v_ok += a == 1;
            } else {
                i_all++;
                i_ok += a == 0;
                if (a != 0) th_fail(__FILE__, __LINE__, "invalidation error: %s test %zu accepted: %.300s", names[fi], i, b.data);
            }
            lmql__buf_free(&b);
        }
        lmql__grammar_free(g);
        lmql__val_unref(root);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    printf("maskbench: %d schemas (every %zu of %zu files): %d compile errors (%.1f%%); valid instances accepted %d/%d "
           "(%.1f%%; %d more under schemas that did not compile); invalid instances rejected %d/%d (invalidation errors: "
           "%d; %d more under schemas that did not compile); %.1f s\n",
           files, stride, n, cerr, 100.0 * cerr / (files ? files : 1), v_ok, v_all, 100.0 * v_ok / (v_all ? v_all : 1),
           v_no_grammar, i_ok, i_all, i_all - i_ok, i_no_grammar, lmql__now() - t0);
    CHECK_INT(i_all - i_ok, 0);   /* an invalid instance accepted is a bug */
    CHECK_INT(oom, 0);            /* every refusal is a query error with a reason */
    CHECK(files > 0);
}

int main(void) {
    RUN(test_types);
    RUN(test_numbers);
    RUN(test_strings);
    RUN(test_formats);
    RUN(test_objects);
    RUN(test_arrays);
    RUN(test_combinators);
    RUN(test_whitespace);
    RUN(test_errors);
    RUN(test_limits);
    RUN(test_py_dumps);
    RUN(test_maskbench);
    return th_report("jsonschema");
}
