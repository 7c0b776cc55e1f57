/*
** test_regex.c -- tests for the byte-level regex automaton (src/regex.h).
**
**   test_regex [tests/cases/regex.test]
**
** Three parts:
**   1. the data-driven cases of tests/cases/regex.test (format described at
**      the top of that file), one numbered `ok N`/`not ok N` line each;
**   2. API edge cases and structural properties of the automaton (every
**      state reachable, every state co-reachable, ids in range);
**   3. a differential check: lmql__regex_fullmatch against a small
**      reference matcher written here, independently of the library, over
**      exhaustive short strings and seeded random ones.  The reference
**      works on code points with sets of positions, so it shares no code
**      or technique with the byte-level DFA it checks.
** Ends with `regex: N passed, M failed`; exits 1 on any failure.
*/
#include "harness.h"
#include "lmql_int.h"
#include "regex.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int n_checks;

__attribute__((format(printf, 2, 3)))
static void report(bool ok, const char *fmt, ...) {
    va_list ap;
    n_checks++;
    if (ok) th_passed++;
    else th_failed++;
    printf("%s %d - ", ok ? "ok" : "not ok", n_checks);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

static struct lmql_regex *compile_str(const char *pat) {
    struct lmql__err e;
    struct lmql_regex *re = lmql__regex_compile(pat, strlen(pat), &e);
    if (!re) fprintf(stderr, "compile %s: %s at %zu\n", pat, e.msg, e.pos.offset);
    return re;
}

/* ------------------------------------------------------- 1. case file */

/* The pattern as one printable line (control bytes as \xHH,
** so a pattern holding a newline cannot break the `ok N` output). */
static const char *shown(const char *s, size_t n) {
    static char buf[200];
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < sizeof buf; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7F) buf[o++] = (char)c;
        else o += (size_t)snprintf(buf + o, sizeof buf - o, "\\x%02x", c);
    }
    buf[o] = 0;
    return buf;
}

/* Decode the line escapes \xHH \n \t \r \\ \e into out; returns length. */
static size_t decode_line(const char *s, char *out) {
    size_t n = 0;
    while (*s) {
        if (s[0] == '\\' && s[1]) {
            char c = s[1];
            s += 2;
            if (c == 'x' && s[0] && s[1]) {
                char hex[3] = {s[0], s[1], 0};
                out[n++] = (char)strtol(hex, NULL, 16);
                s += 2;
            } else if (c == 'n') out[n++] = '\n';
            else if (c == 't') out[n++] = '\t';
            else if (c == 'r') out[n++] = '\r';
            else if (c == 'e') continue;
            else out[n++] = c;
        } else {
            out[n++] = *s++;
        }
    }
    out[n] = 0;
    return n;
}

enum section { SEC_NONE, SEC_REGEX, SEC_REGEXB, SEC_MATCH, SEC_NOMATCH, SEC_PREFIX, SEC_DEAD,
               SEC_STATES, SEC_ERROR };

struct case_state {
    char pat[4096];
    size_t pat_len;
    int pat_line;
    struct lmql_regex *re;
    char err[sizeof ((struct lmql__err *)0)->msg];
    size_t err_off;
    bool expect_error;   /* an %%ERROR section follows; checked when it comes */
};

static void case_compile(struct case_state *cs) {
    lmql__regex_free(cs->re);
    cs->err[0] = 0;
    cs->err_off = (size_t)-1;
    struct lmql__err e;
    cs->re = lmql__regex_compile(cs->pat, cs->pat_len, &e);
    if (!cs->re) {
        snprintf(cs->err, sizeof cs->err, "%s", e.msg);
        cs->err_off = e.pos.offset;
    }
}

static void check_subject(struct case_state *cs, enum section sec, const char *line, int lineno) {
    char buf[4096];
    size_t n = decode_line(line, buf);
    if (!cs->re) {
        report(false, "line %d: pattern of line %d did not compile: %s (offset %zu)", lineno,
               cs->pat_line, cs->err, cs->err_off);
        return;
    }
    int32_t s = lmql__regex_feed(cs->re, lmql__regex_start(cs->re), buf, n);
    bool acc = lmql__regex_accepting(cs->re, s);
    bool full = lmql__regex_fullmatch(cs->re, buf, n);
    bool ok;
    const char *what;
    switch (sec) {
    case SEC_MATCH: ok = full && acc; what = "MATCH"; break;
    case SEC_NOMATCH: ok = !full && !acc; what = "NOMATCH"; break;
    case SEC_PREFIX: ok = s >= 0 && !acc; what = "PREFIX"; break;
    default: ok = s < 0; what = "DEAD"; break;
    }
    report(ok, "line %d: /%.60s/ %s \"%s\" (state %d)", lineno, shown(cs->pat, cs->pat_len), what, line, s);
}

static void run_case_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        report(false, "cannot open %s", path);
        return;
    }
    static struct case_state cs;
    memset(&cs, 0, sizeof cs);
    enum section sec = SEC_NONE;
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t l = strlen(line);
        while (l && (line[l - 1] == '\n' || line[l - 1] == '\r')) line[--l] = 0;
        if (l == 0 || (line[0] == '#' && line[1] == ' ') || !strcmp(line, "#")) continue;
        if (!strncmp(line, "%%", 2)) {
            const char *k = line + 2;
            sec = !strcmp(k, "REGEX") ? SEC_REGEX : !strcmp(k, "REGEXB") ? SEC_REGEXB
                : !strcmp(k, "MATCH") ? SEC_MATCH : !strcmp(k, "NOMATCH") ? SEC_NOMATCH
                : !strcmp(k, "PREFIX") ? SEC_PREFIX : !strcmp(k, "DEAD") ? SEC_DEAD
                : !strcmp(k, "STATES") ? SEC_STATES : !strcmp(k, "ERROR") ? SEC_ERROR : SEC_NONE;
            if (sec == SEC_NONE) report(false, "line %d: unknown section %s", lineno, line);
            continue;
        }
        switch (sec) {
        case SEC_REGEX:
        case SEC_REGEXB:
            if (sec == SEC_REGEX) {
                memcpy(cs.pat, line, l + 1);
                cs.pat_len = l;
            } else {
                cs.pat_len = decode_line(line, cs.pat);
            }
            cs.pat_line = lineno;
            case_compile(&cs);
            sec = SEC_NONE;
            break;
        case SEC_MATCH: case SEC_NOMATCH: case SEC_PREFIX: case SEC_DEAD:
            check_subject(&cs, sec, line, lineno);
            break;
        case SEC_STATES: {
            long want = strtol(line, NULL, 10);
            int32_t got = cs.re ? lmql__regex_n_states(cs.re) : -1;
            report(got == want, "line %d: /%.60s/ has %ld states (got %d)", lineno,
                   shown(cs.pat, cs.pat_len), want, got);
            sec = SEC_NONE;
            break;
        }
        case SEC_ERROR: {
            char *sp = strchr(line, ' ');
            size_t want_off = (size_t)strtoul(line, NULL, 10);
            const char *msg = sp ? sp + 1 : "";
            bool ok = !cs.re && cs.err_off == want_off && strstr(cs.err, msg);
            report(ok, "line %d: /%.40s/ error \"%s\" at %zu (got \"%s\" at %lld)", lineno,
                   shown(cs.pat, cs.pat_len),
                   msg, want_off, cs.re ? "(compiled)" : cs.err,
                   cs.re ? -1LL : (long long)cs.err_off);
            sec = SEC_NONE;
            break;
        }
        default:
            report(false, "line %d: text outside a section: %s", lineno, line);
            break;
        }
    }
    lmql__regex_free(cs.re);
    fclose(f);
}

/* ------------------------------------------------- 2. API and structure */

/* Every state is reachable from the start and can reach an accepting
** state; every transition stays in range.  Uses only the public API. */
static bool check_structure(const struct lmql_regex *re, char *why, size_t whycap) {
    int32_t n = lmql__regex_n_states(re), start = lmql__regex_start(re);
    if (n == 0) {
        if (start != -1) { snprintf(why, whycap, "no states but start %d", start); return false; }
        return true;
    }
    if (start != 0) { snprintf(why, whycap, "start %d", start); return false; }
    uint8_t *seen = calloc((size_t)n, 1), *live = calloc((size_t)n, 1);
    int32_t *queue = malloc((size_t)n * sizeof *queue);
    bool ok = false;
    if (!seen || !live || !queue) { snprintf(why, whycap, "out of memory"); goto done; }
    int32_t qh = 0, qt = 0;
    seen[0] = 1;
    queue[qt++] = 0;
    while (qh < qt) {
        int32_t s = queue[qh++];
        for (int b = 0; b < 256; b++) {
            int32_t t = lmql__regex_step(re, s, (unsigned char)b);
            if (t < -1 || t >= n) { snprintf(why, whycap, "step(%d,%d) = %d", s, b, t); goto done; }
            if (t >= 0 && !seen[t]) { seen[t] = 1; queue[qt++] = t; }
        }
    }
    if (qt != n) { snprintf(why, whycap, "%d of %d states reachable", qt, n); goto done; }
    for (int32_t s = 0; s < n; s++) live[s] = lmql__regex_accepting(re, s);
    for (bool changed = true; changed;) {
        changed = false;
        for (int32_t s = 0; s < n; s++) {
            if (live[s]) continue;
            for (int b = 0; b < 256; b++) {
                int32_t t = lmql__regex_step(re, s, (unsigned char)b);
                if (t >= 0 && live[t]) { live[s] = 1; changed = true; break; }
            }
        }
    }
    for (int32_t s = 0; s < n; s++)
        if (!live[s]) { snprintf(why, whycap, "state %d cannot reach a match", s); goto done; }
    ok = true;
done:
    free(seen);
    free(live);
    free(queue);
    return ok;
}

static void test_api(void) {
    struct lmql__err e = {.pos = {0, 0, 99}};
    /* errors without a record must not crash */
    CHECK(lmql__regex_compile("(", 1, NULL) == NULL);
    /* the record says what, where in the pattern, and that the pattern is at fault */
    CHECK(lmql__regex_compile("(abc", 4, &e) == NULL);
    CHECK(strstr(e.msg, "missing )") != NULL);
    CHECK_INT(e.pos.offset, 0);
    CHECK_INT(e.pos.line, 0);
    CHECK_INT(e.status, LMQL_ERR_QUERY);
    CHECK(lmql__regex_compile("ab)", 3, &e) == NULL);
    CHECK(strstr(e.msg, "unbalanced parenthesis") != NULL);
    CHECK_INT(e.pos.offset, 2);
    /* len, not the NUL, ends the pattern */
    struct lmql_regex *re = lmql__regex_compile("ab(", 2, &e);
    CHECK(re != NULL);
    if (re) {
        CHECK(lmql__regex_fullmatch(re, "ab", 2));
        CHECK(!lmql__regex_fullmatch(re, "ab(", 3));
        int32_t s = lmql__regex_start(re);
        CHECK_INT(lmql__regex_feed(re, s, "", 0), s);
        CHECK_INT(lmql__regex_step(re, -1, 'a'), -1);
        CHECK_INT(lmql__regex_step(re, lmql__regex_n_states(re), 'a'), -1);
        CHECK_INT(lmql__regex_step(re, INT32_MAX, 'a'), -1);
        CHECK(!lmql__regex_accepting(re, -1));
        CHECK(!lmql__regex_accepting(re, INT32_MAX));
        CHECK_INT(lmql__regex_feed(re, -1, "ab", 2), -1);
        /* feeding in pieces equals feeding at once */
        CHECK_INT(lmql__regex_feed(re, lmql__regex_feed(re, s, "a", 1), "b", 1),
                  lmql__regex_feed(re, s, "ab", 2));
        CHECK(lmql__regex_n_classes(re) >= 1 && lmql__regex_n_classes(re) <= 256);
    }
    lmql__regex_free(re);
    lmql__regex_free(NULL);
    /* NULL pattern with length 0 is the empty pattern */
    re = lmql__regex_compile(NULL, 0, &e);
    CHECK(re && lmql__regex_fullmatch(re, NULL, 0));
    lmql__regex_free(re);
    /* a language with no strings has no start state */
    re = compile_str("[^\\x00-\\U0010ffff]x");
    CHECK(re && lmql__regex_start(re) == -1 && lmql__regex_n_states(re) == 0);
    CHECK(re && !lmql__regex_fullmatch(re, "x", 1));
    lmql__regex_free(re);
    /* identical patterns compile to identical automata */
    struct lmql_regex *a = compile_str("(\\w+ )*\\w+[.!?]"), *b = compile_str("(\\w+ )*\\w+[.!?]");
    CHECK(a && b);
    if (a && b) {
        bool same = lmql__regex_n_states(a) == lmql__regex_n_states(b);
        for (int32_t s = 0; same && s < lmql__regex_n_states(a); s++)
            for (int c = 0; c < 256; c++)
                same = same && lmql__regex_step(a, s, (unsigned char)c) == lmql__regex_step(b, s, (unsigned char)c);
        CHECK(same);
    }
    lmql__regex_free(a);
    lmql__regex_free(b);
}

static void test_limits(void) {
    /* large but reasonable counts compile */
    struct lmql_regex *re = compile_str(".{1000}");
    CHECK(re != NULL);
    if (re) {
        char buf[3000];
        memset(buf, 'x', 1000);
        CHECK(lmql__regex_fullmatch(re, buf, 1000));
        CHECK(!lmql__regex_fullmatch(re, buf, 999));
        for (int i = 0; i < 1000; i++) memcpy(buf + 3 * i, "\xe4\xb8\x80", 3);
        CHECK(lmql__regex_fullmatch(re, buf, 3000));
        CHECK_INT(lmql__regex_feed(re, 0, buf, 2999) >= 0, 1);
    }
    lmql__regex_free(re);
    re = compile_str("a{1000}b{0,1000}");
    CHECK(re != NULL);
    lmql__regex_free(re);
    /* a long flat pattern must not recurse per character (90k literals
    ** stay under the state cap; the long alternation is 2 states) */
    size_t n = 90000;
    char *big = malloc(n);
    if (big) {
        for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 7);
        re = lmql__regex_compile(big, n, NULL);
        CHECK(re != NULL);
        if (re) CHECK(lmql__regex_fullmatch(re, big, n));
        lmql__regex_free(re);
        /* a long alternation too */
        for (size_t i = 0; i < n; i += 2) { big[i] = (char)('a' + i % 26); big[i + 1] = '|'; }
        re = lmql__regex_compile(big, n - 1, NULL);
        CHECK(re != NULL);
        if (re) CHECK(lmql__regex_fullmatch(re, "q", 1));
        lmql__regex_free(re);
        free(big);
    }
}

/* Properties over a set of patterns: structure, and that a full match
** keeps every prefix live. */
static const char *structure_patterns[] = {
    "[0-9]{4}-[0-9]{2}", "-?(0|[1-9][0-9]*)(\\.[0-9]+)?", "(a|b)*abb", ".*", "[^a]*",
    "[à-ÿ]+|[一-龥]{2,3}", "(yes|no|maybe)", "((ab|a)*|c+)+d?", "\\W\\S\\D", "(a|b)*a(a|b){8}",
    "[a-z]{1,50}@[a-z]{1,20}\\.(com|org)", "[\\s\\S]{0,5}", "x*y*z*", "(é|e)+",
    "[^\\x00-\\U0010ffff]",
};

static void test_structure(void) {
    for (size_t i = 0; i < sizeof structure_patterns / sizeof *structure_patterns; i++) {
        struct lmql_regex *re = compile_str(structure_patterns[i]);
        char why[160] = "did not compile";
        bool ok = re && check_structure(re, why, sizeof why);
        report(ok, "structure /%s/ (%d states)%s%s", structure_patterns[i],
               re ? lmql__regex_n_states(re) : -1, ok ? "" : ": ", ok ? "" : why);
        lmql__regex_free(re);
    }
}

/* Random byte patterns must never crash (ASan watches); when one compiles,
** fullmatch must agree with feed + accepting and the automaton must be
** well formed. */
static void test_random_patterns(void) {
    static const char alpha[] = "ab()[]{}|*+?.^$\\-,0123:P<>=!dwsxu\xc3\xa9\xff";
    uint64_t rng = 12345;
    int compiled = 0, bad = 0;
    for (int i = 0; i < 3000; i++) {
        char pat[24], subj[12];
        size_t pl = lmql__rng_next(&rng) % sizeof pat, sl = lmql__rng_next(&rng) % sizeof subj;
        for (size_t j = 0; j < pl; j++) pat[j] = alpha[lmql__rng_next(&rng) % (sizeof alpha - 1)];
        for (size_t j = 0; j < sl; j++) subj[j] = alpha[lmql__rng_next(&rng) % (sizeof alpha - 1)];
        struct lmql__err e = {0};
        struct lmql_regex *re = lmql__regex_compile(pat, pl, &e);
        if (!re) {
            if (e.pos.offset > pl || !e.msg[0] || e.status != LMQL_ERR_QUERY) bad++;
            continue;
        }
        compiled++;
        int32_t s = lmql__regex_feed(re, lmql__regex_start(re), subj, sl);
        if (lmql__regex_fullmatch(re, subj, sl) != lmql__regex_accepting(re, s)) bad++;
        char why[160];
        if (i % 10 == 0 && !check_structure(re, why, sizeof why)) bad++;
        lmql__regex_free(re);
    }
    report(bad == 0 && compiled > 100, "3000 random patterns: %d compiled, %d inconsistent", compiled, bad);
}

/* ------------------------------------------- 3. reference matcher */

/* A tiny independent regex implementation for the differential check:
** parse into a tree, then compute the set of end positions (a bitmask over
** code-point positions) reachable from a set of start positions. */
enum { RF_SET, RF_CAT, RF_ALT, RF_REP };

struct rf_node {
    int kind;
    int kids[64], n_kids;                  /* CAT, ALT; REP uses kids[0] */
    int min, max;                          /* REP; max -1 = unbounded */
    uint32_t lo[48], hi[48]; int n_rng;    /* SET */
    bool neg;
};

struct rf {
    struct rf_node node[256];
    int n;
    const char *p;
    bool bad;
};

static uint32_t rf_utf8(const char **s) {
    const unsigned char *u = (const unsigned char *)*s;
    uint32_t c = u[0];
    int len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
    if (len > 1) c &= 0x3Fu >> (len - 1);
    for (int i = 1; i < len; i++) c = (c << 6) | (u[i] & 0x3F);
    *s += len;
    return c;
}

static int rf_new(struct rf *r, int kind) {
    if (r->n >= 256) { r->bad = true; return 0; }
    memset(&r->node[r->n], 0, sizeof r->node[0]);
    r->node[r->n].kind = kind;
    return r->n++;
}

static void rf_add(struct rf *r, int id, uint32_t lo, uint32_t hi) {
    struct rf_node *nd = &r->node[id];
    if (nd->n_rng >= 48) { r->bad = true; return; }
    nd->lo[nd->n_rng] = lo;
    nd->hi[nd->n_rng++] = hi;
}

/* Add shorthand c to set `id`; shorthands inside a negated class would
** need complements, so the patterns below avoid that case. */
static void rf_short(struct rf *r, int id, char c) {
    if (c == 'd') rf_add(r, id, '0', '9');
    else if (c == 'w') { rf_add(r, id, '0', '9'); rf_add(r, id, 'A', 'Z'); rf_add(r, id, 'a', 'z'); rf_add(r, id, '_', '_'); }
    else if (c == 's') { rf_add(r, id, '\t', '\r'); rf_add(r, id, ' ', ' '); }
    else r->bad = true;
}

static uint32_t rf_esc_char(char c) {
    return c == 'n' ? '\n' : c == 't' ? '\t' : (uint32_t)(unsigned char)c;
}

static int rf_alt(struct rf *r);

static int rf_atom(struct rf *r) {
    char c = *r->p;
    if (c == '(') {
        r->p++;
        if (r->p[0] == '?' && r->p[1] == ':') r->p += 2;
        int a = rf_alt(r);
        if (*r->p == ')') r->p++;
        else r->bad = true;
        return a;
    }
    int id = rf_new(r, RF_SET);
    if (c == '.') { r->p++; r->node[id].neg = true; rf_add(r, id, '\n', '\n'); return id; }
    if (c == '\\') {
        char e = r->p[1];
        r->p += 2;
        if (strchr("dws", e)) rf_short(r, id, e);
        else if (strchr("DWS", e)) { r->node[id].neg = true; rf_short(r, id, (char)(e + 32)); }
        else { uint32_t v = rf_esc_char(e); rf_add(r, id, v, v); }
        return id;
    }
    if (c == '[') {
        r->p++;
        if (*r->p == '^') { r->node[id].neg = true; r->p++; }
        while (*r->p && *r->p != ']') {
            uint32_t lo;
            if (*r->p == '\\') {
                char e = r->p[1];
                r->p += 2;
                if (strchr("dws", e)) { rf_short(r, id, e); continue; }
                lo = rf_esc_char(e);
            } else {
                lo = rf_utf8(&r->p);
            }
            uint32_t hi = lo;
            if (r->p[0] == '-' && r->p[1] && r->p[1] != ']') { r->p++; hi = rf_utf8(&r->p); }
            rf_add(r, id, lo, hi);
        }
        if (*r->p == ']') r->p++;
        else r->bad = true;
        return id;
    }
    uint32_t v = rf_utf8(&r->p);
    rf_add(r, id, v, v);
    return id;
}

static int rf_cat(struct rf *r) {
    int id = rf_new(r, RF_CAT);
    while (*r->p && *r->p != '|' && *r->p != ')') {
        int a = rf_atom(r);
        char q = *r->p;
        if (q == '*' || q == '+' || q == '?' || q == '{') {
            int rep = rf_new(r, RF_REP);
            r->node[rep].kids[0] = a;
            r->node[rep].n_kids = 1;
            int min = 0, max = -1;
            if (q == '+') min = 1;
            else if (q == '?') max = 1;
            else if (q == '{') {
                char *end;
                min = (int)strtol(r->p + 1, &end, 10);
                max = min;
                if (*end == ',') {
                    max = end[1] == '}' ? -1 : (int)strtol(end + 1, &end, 10);
                    if (max == -1) end++;
                }
                r->p = end;
            }
            r->p++;
            if (*r->p == '?') r->p++; /* lazy */
            r->node[rep].min = min;
            r->node[rep].max = max;
            a = rep;
        }
        struct rf_node *nd = &r->node[id];
        if (nd->n_kids >= 64) { r->bad = true; return id; }
        nd->kids[nd->n_kids++] = a;
    }
    return id;
}

static int rf_alt(struct rf *r) {
    int id = rf_new(r, RF_ALT);
    for (;;) {
        int c = rf_cat(r);
        struct rf_node *nd = &r->node[id];
        if (nd->n_kids >= 64) { r->bad = true; return id; }
        nd->kids[nd->n_kids++] = c;
        if (*r->p != '|') return id;
        r->p++;
    }
}

static uint64_t rf_ends(const struct rf *r, int id, uint64_t from, const uint32_t *cp, int n) {
    const struct rf_node *nd = &r->node[id];
    uint64_t out = 0;
    switch (nd->kind) {
    case RF_SET:
        for (int p = 0; p < n; p++) {
            if (!(from >> p & 1)) continue;
            bool in = false;
            for (int i = 0; i < nd->n_rng; i++) in = in || (cp[p] >= nd->lo[i] && cp[p] <= nd->hi[i]);
            if (in != nd->neg) out |= (uint64_t)1 << (p + 1);
        }
        return out;
    case RF_CAT:
        out = from;
        for (int i = 0; i < nd->n_kids && out; i++) out = rf_ends(r, nd->kids[i], out, cp, n);
        return out;
    case RF_ALT:
        for (int i = 0; i < nd->n_kids; i++) out |= rf_ends(r, nd->kids[i], from, cp, n);
        return out;
    default: {
        uint64_t cur = from;
        if (nd->min == 0) out = from;
        for (int i = 1; nd->max < 0 || i <= nd->max; i++) {
            cur = rf_ends(r, nd->kids[0], cur, cp, n);
            if (!cur) break;
            /* the step function distributes over unions, so once an
            ** iteration past min adds nothing, later ones cannot either */
            if (i > nd->min && (cur & ~out) == 0) break;
            if (i >= nd->min) out |= cur;
        }
        return out;
    }
    }
}

/* Strict UTF-8 to code points; false when s is not valid UTF-8. */
static bool rf_decode(const unsigned char *s, size_t n, uint32_t *cp, int *ncp) {
    int m = 0;
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
        if (!len || i + (size_t)len > n) return false;
        uint32_t v = len == 1 ? c : c & (0x7Fu >> len);
        for (int j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) return false;
            v = (v << 6) | (s[i + j] & 0x3F);
        }
        static const uint32_t minv[] = {0, 0, 0x80, 0x800, 0x10000};
        if (v < minv[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return false;
        if (m >= 62) return false;
        cp[m++] = v;
        i += (size_t)len;
    }
    *ncp = m;
    return true;
}

struct diff_case {
    const char *pattern;
    const char *alphabet[8];   /* pieces strings are built from */
};

static const struct diff_case diff_cases[] = {
    {"[0-9]{4}-[0-9]{2}", {"0", "2024", "-", "01", "x"}},
    {"-?(0|[1-9][0-9]*)(\\.[0-9]+)?", {"-", "0", "1", "5", ".", "e"}},
    {"(a|ab)(c|bcd)(d*)", {"a", "b", "c", "d"}},
    {"(a*)*b", {"a", "b", ""}},
    {"(a|b)*a(a|b){3}", {"a", "b"}},
    {"a{2,4}(ba){0,2}b?", {"a", "b"}},
    {"((ab|a)*|c+)+d?", {"a", "b", "c", "d"}},
    {"[^ab]*a.b", {"a", "b", "c", "\n", "é"}},
    {".*é.*", {"é", "e", "\xc3", "\xa9", "\n", "x"}},
    {"[à-ÿ]+x?", {"à", "ÿ", "ß", "x", "\xc3"}},
    {"\\w+@\\w+\\.(com|org)", {"a", "@", ".", "com", "org", "_", "o"}},
    {"(x|y|)*z{,2}", {"x", "y", "z"}},
    {"(?:a+?b)*", {"a", "b", "ab"}},
    {"[a-c\\d]{1,3}|\\s+", {"a", "c", "d", "5", " ", "\t"}},
    {"(\\d\\D)+", {"1", "a", "é", "\n"}},
    {"[^\\n]*\\n?", {"a", "\n", "中", "\xe4\xb8"}},
    {"(一|二|三)+[一-龥]?", {"一", "二", "三", "龥", "\xe4", "a"}},
    {"(\\W|\\S)\\s*", {" ", "a", "é", "\t"}},
    {"(ab|cd|ef){2,3}|x{0,2}y", {"ab", "cd", "ef", "x", "y", "a"}},
    {"((a|b)(c|d)?){1,3}e+", {"a", "b", "c", "d", "e"}},
    {"[😀-🙏]{1,2}.", {"😀", "🙏", "😐", "\xf0\x9f", "a"}},
    {"(.)(.)(.)", {"a", "é", "中", "😀", "\x80"}},
};

static void test_differential(void) {
    uint64_t rng = 0x5eed;
    for (size_t ci = 0; ci < sizeof diff_cases / sizeof *diff_cases; ci++) {
        const struct diff_case *dc = &diff_cases[ci];
        static struct rf r;
        memset(&r, 0, sizeof r);
        r.p = dc->pattern;
        int root = rf_alt(&r);
        struct lmql_regex *re = compile_str(dc->pattern);
        if (r.bad || *r.p || !re) {
            report(false, "differential /%s/: setup (reference %s, regex %s)", dc->pattern,
                   r.bad || *r.p ? "bad" : "ok", re ? "ok" : "failed");
            lmql__regex_free(re);
            continue;
        }
        int na = 0;
        while (na < 8 && dc->alphabet[na]) na++;
        /* exhaustive up to the largest length with at most ~4000 strings,
        ** then random longer strings */
        int maxlen = 0;
        for (long total = 1, pw = 1; maxlen < 12; maxlen++) {
            pw *= na;
            if (total + pw > 4000) break;
            total += pw;
        }
        int tried = 0, mismatches = 0, dead_prefix = 0, matched = 0;
        for (int len = 0; len <= maxlen + 1; len++) {
            long count = 1;
            for (int i = 0; i < len; i++) count *= na;
            bool random = len > maxlen;
            if (random) count = 2000;
            for (long k = 0; k < count; k++) {
                char s[256];
                size_t n = 0;
                int pieces = random ? (int)(lmql__rng_next(&rng) % 14) : len;
                long idx = k;
                for (int i = 0; i < pieces; i++) {
                    int which = random ? (int)(lmql__rng_next(&rng) % (uint64_t)na) : (int)(idx % na);
                    idx /= na;
                    size_t pl = strlen(dc->alphabet[which]);
                    memcpy(s + n, dc->alphabet[which], pl);
                    n += pl;
                }
                uint32_t cp[64];
                int ncp = 0;
                bool want = rf_decode((const unsigned char *)s, n, cp, &ncp) &&
                            (rf_ends(&r, root, 1, cp, ncp) >> ncp & 1);
                bool got = lmql__regex_fullmatch(re, s, n);
                tried++;
                matched += want;
                if (want != got) {
                    if (mismatches++ < 3)
                        fprintf(stderr, "  /%s/ on \"%.*s\": reference %d, regex %d\n", dc->pattern,
                                (int)n, s, want, got);
                }
                /* a full match keeps every prefix alive */
                if (got) {
                    int32_t st = lmql__regex_start(re);
                    for (size_t i = 0; i < n && st >= 0; i++) st = lmql__regex_step(re, st, (unsigned char)s[i]);
                    if (st < 0) dead_prefix++;
                }
            }
        }
        char why[160] = "";
        bool structure = check_structure(re, why, sizeof why);
        report(mismatches == 0 && dead_prefix == 0 && structure && matched > 0,
               "differential /%s/: %d strings, %d matches, %d mismatches, %d dead prefixes%s%s",
               dc->pattern, tried, matched, mismatches, dead_prefix, structure ? "" : ", ", why);
        lmql__regex_free(re);
    }
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "tests/cases/regex.test";
    run_case_file(path);
    RUN(test_api);
    RUN(test_limits);
    test_structure();
    test_random_patterns();
    test_differential();
    return th_report("regex");
}
