/*
** test_regex_match.c -- the `re` matcher (src/regex_match.h) against Python.
**
**   test_regex_match [build/regex_match.jsonl]
**
** Every expected answer in the table was computed by Python's own `re`
** (scripts/gen_regex_match_cases.py writes it): for each pattern, flags and
** subject, the group spans of match, fullmatch and each finditer match
** (the first is search's); a pattern Python rejects must be rejected too,
** and one using a feature this engine lacks must be refused, not answered.
** finditer is driven the way modules_re.c drives it (no empty match right
** where the last one ended). Ends with `regex_match: N passed, M failed`.
*/
#include "harness.h"
#include "json.h"
#include "lmql_int.h"
#include "regex_match.h"
#include "value.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct lmql_val *get(struct lmql_val *d, const char *k) {
    struct lmql_val key = {.kind = LMQL_V_STR, .refs = -1, .u.str = {(char *)k, strlen(k)}};
    return lmql__dict_get(d, &key);
}

/* Character index of byte offset b in s (-1 stays -1). */
static long chars(const char *s, ptrdiff_t b) {
    if (b < 0) return -1;
    long n = 0;
    for (ptrdiff_t i = 0; i < b; i++) n += ((unsigned char)s[i] & 0xC0) != 0x80;
    return n;
}

/* Do the caps (bytes) equal Python's spans (characters, or None)? */
static bool same(const char *s, int rc, const ptrdiff_t *caps, int ng, const struct lmql_val *want) {
    if (want->kind == LMQL_V_NONE) return rc == 0;
    if (rc != 1 || want->kind != LMQL_V_LIST || (int)want->u.list.len != 2 * (ng + 1)) return false;
    for (int i = 0; i < 2 * (ng + 1); i++)
        if (chars(s, caps[i]) != want->u.list.items[i]->u.i) return false;
    return true;
}

static void show(const char *what, const char *p, const char *s, int rc, const ptrdiff_t *caps, int ng) {
    printf("not ok - %s: pattern \"%s\" subject \"%s\": got", what, p, s);
    if (rc != 1) printf(rc ? " error" : " no match");
    else
        for (int i = 0; i < 2 * (ng + 1); i++) printf(" %ld", chars(s, caps[i]));
    printf("\n");
}

static void check_case(struct lmql_val *c) {
    const char *p = get(c, "p")->u.str.s;
    size_t plen = get(c, "p")->u.str.len;
    int flags = (int)get(c, "f")->u.i;
    struct lmql_val *err_kind = get(c, "err");
    struct lmql__err err = {0};
    struct lmql__rx *rx = lmql__rx_compile(p, plen, flags, &err);
    if (err_kind) {
        if (rx) {
            th_failed++;
            printf("not ok - pattern \"%s\" (flags %d) should be refused (%s)\n", p, flags, err_kind->u.str.s);
        } else {
            th_passed++;
        }
        lmql__rx_free(rx);
        return;
    }
    if (!rx) {
        th_failed++;
        printf("not ok - pattern \"%s\" (flags %d) refused: %s\n", p, flags, err.msg);
        return;
    }
    const char *s = get(c, "s")->u.str.s;
    size_t n = get(c, "s")->u.str.len;
    int ng = lmql__rx_ngroups(rx);
    ptrdiff_t *caps = malloc(sizeof *caps * 2 * (size_t)(ng + 1));
    static const char *const modes[] = {"match", "fullmatch"};
    for (int m = 0; m < 2; m++) {
        int rc = lmql__rx_exec(rx, s, n, 0, m ? LMQL_RX_FULLMATCH : LMQL_RX_MATCH, 0, caps, &err);
        if (same(s, rc, caps, ng, get(c, modes[m]))) th_passed++;
        else { th_failed++; show(modes[m], p, s, rc, caps, ng); }
    }
    /* finditer: search on from the end of each match; after an empty one
    ** the next may not be empty at the same place */
    struct lmql_val *all = get(c, "all");
    size_t at = 0, k = 0;
    bool no_empty = false, ok = true;
    for (;;) {
        int rc = lmql__rx_exec(rx, s, n, at, LMQL_RX_SEARCH, no_empty, caps, &err);
        if (rc != 1) {
            if (rc != 0 || k != all->u.list.len) { ok = false; show("finditer (too few or error)", p, s, rc, caps, ng); }
            break;
        }
        if (k >= all->u.list.len || !same(s, rc, caps, ng, all->u.list.items[k])) {
            ok = false;
            printf("    (match %zu of finditer)\n", k);
            show("finditer", p, s, rc, caps, ng);
            break;
        }
        k++;
        no_empty = caps[0] == caps[1];
        at = (size_t)caps[1];
        if (at > n) break;
    }
    if (ok) th_passed++;
    else th_failed++;
    free(caps);
    lmql__rx_free(rx);
}

int main(int argc, char **argv) {
    const char *path = argc > 1 ? argv[1] : "build/regex_match.jsonl";
    FILE *f = fopen(path, "r");
    if (!f) {
        printf("not ok - cannot open %s\n", path);
        th_failed++;
        return th_report("regex_match");
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        struct lmql__err err = {0};
        struct lmql_val *c = lmql__json_parse(line, (size_t)len, &err);
        if (!c) {
            th_failed++;
            printf("not ok - bad line: %s\n", err.msg);
            continue;
        }
        check_case(c);
        lmql__val_unref(c);
    }
    free(line);
    fclose(f);
    return th_report("regex_match");
}
