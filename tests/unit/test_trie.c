/*
** The vocabulary trie: every mask equals a brute-force check of each token's
** bytes, for several constraints, on the three real vocabularies and on a
** hand-made one with the awkward cases (duplicates, empty pieces, NUL and
** 0xFF bytes, pieces too deep for the on-stack walk stacks). Then the speed
** of the masks is printed (not asserted: machines differ).
** Run from the repository root.  `test_trie --bench` times 1000 masks per case (default 20).
*/
#include "harness.h"
#include "model.h"
#include "memo.h"
#include "trie.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const VOCABS[] = {
    "build/vocab/ggml-vocab-llama-spm.gguf",
    "build/vocab/ggml-vocab-gpt-2.gguf",
    "build/vocab/ggml-vocab-llama-bpe.gguf",
};
#define N_VOCABS ((int)(sizeof VOCABS / sizeof *VOCABS))

static int n_timed = 20;   /* --bench: 1000 */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static struct lmql__model *open_vocab(const char *path) {
    struct lmql__err err = {0};
    struct lmql__kv kv = {"vocab_only", "true"};
    struct lmql__model *m = lmql__llama_open(path, &kv, 1, &err);
    if (!m) th_fail(__FILE__, __LINE__, "open %s: %s", path, err.msg);
    return m;
}

/* ------------------------------------------------------------ walkers */

static void set_all(uint64_t set[4]) {
    set[0] = set[1] = set[2] = set[3] = ~(uint64_t)0;
}

static bool step_any(void *ctx, const void *s, unsigned char b, void *out) {
    *(int32_t *)out = 0;
    return true;
}
static void loops_any(void *ctx, const void *s, uint64_t set[4]) { set_all(set); }

static bool step_no_nl(void *ctx, const void *s, unsigned char b, void *out) {
    *(int32_t *)out = 0;
    return b != '\n';
}
static void loops_no_nl(void *ctx, const void *s, uint64_t set[4]) {
    set_all(set);
    set['\n' >> 6] &= ~((uint64_t)1 << ('\n' & 63));
}

static bool step_digits(void *ctx, const void *s, unsigned char b, void *out) {
    *(int32_t *)out = 0;
    return b >= '0' && b <= '9';
}

/* State: how many bytes of the phrase (ctx) are matched. */
static bool step_phrase(void *ctx, const void *s, unsigned char b, void *out) {
    const char *ph = ctx;
    int32_t k = *(const int32_t *)s;
    *(int32_t *)out = k + 1;
    return ph[k] && (unsigned char)ph[k] == b;
}

/* [0-9]+-[0-9]+ : classes digit, '-', other; state 3 accepts. */
static const int32_t RX_TABLE[4 * 3] = {
    1, -1, -1,
    1,  2, -1,
    3, -1, -1,
    3, -1, -1,
};
static const uint8_t RX_ACCEPT[4] = {0, 0, 0, 1};
static uint8_t rx_class[256];

static bool step_rx(void *ctx, const void *s, unsigned char b, void *out) {
    int32_t n = RX_TABLE[*(const int32_t *)s * 3 + rx_class[b]];
    *(int32_t *)out = n;
    return n >= 0;
}
static bool allow_rx_accept(void *ctx, const void *s) { return RX_ACCEPT[*(const int32_t *)s]; }
static void loops_rx(void *ctx, const void *s, uint64_t set[4]) {
    int32_t st = *(const int32_t *)s;
    memset(set, 0, 4 * sizeof *set);
    for (unsigned b = 0; b < 256; b++)
        if (RX_TABLE[st * 3 + rx_class[b]] == st) set[b >> 6] |= (uint64_t)1 << (b & 63);
}

/* A length budget: state = bytes used, at most 3. */
static bool step_len3(void *ctx, const void *s, unsigned char b, void *out) {
    int32_t k = *(const int32_t *)s;
    *(int32_t *)out = k + 1;
    return k < 3;
}
static bool allow_exactly2(void *ctx, const void *s) { return *(const int32_t *)s == 2; }

/* A large state: 64 bytes, of which byte 0 counts and byte 63 is a
** checksum, so the walk must copy every byte of it. */
static bool step_big(void *ctx, const void *s, unsigned char b, void *out) {
    const unsigned char *in = s;
    unsigned char *o = out;
    memcpy(o, in, LMQL_TRIE_MAX_STATE);
    o[0] = (unsigned char)(in[0] + 1);
    o[63] = (unsigned char)(in[63] ^ b);
    return b != 'q';
}
static bool allow_big(void *ctx, const void *s) {
    const unsigned char *in = s;
    return in[1] == 0x5a && (in[63] & 1) == 0;
}

struct named_walker {
    const char *name;
    struct lmql_trie_walker w;
    unsigned char start[LMQL_TRIE_MAX_STATE];
};

static const char PHRASE[] = " hello world";

static int make_walkers(struct named_walker *out) {
    int n = 0;
    int32_t zero = 0, one = 1, two = 2, six = 6;
#define ADD(nm, stp, al, lp, sz, cx, start_) do { \
        out[n].name = nm; \
        out[n].w = (struct lmql_trie_walker){.step = stp, .allow = al, .loops = lp, .state_size = sz, .ctx = cx}; \
        memset(out[n].start, 0, sizeof out[n].start); \
        memcpy(out[n].start, start_, sz); \
        n++; \
    } while (0)
    ADD("allow-all", step_any, NULL, loops_any, 4, NULL, &zero);
    ADD("allow-all (no loops)", step_any, NULL, NULL, 4, NULL, &zero);
    ADD("no \\n", step_no_nl, NULL, loops_no_nl, 4, NULL, &zero);
    ADD("no \\n (no loops)", step_no_nl, NULL, NULL, 4, NULL, &zero);
    ADD("digits", step_digits, NULL, NULL, 4, NULL, &zero);
    ADD("prefix of ' hello world'", step_phrase, NULL, NULL, 4, (void *)PHRASE, &zero);
    ADD("prefix of ' hello world' @6", step_phrase, NULL, NULL, 4, (void *)PHRASE, &six);
    ADD("regex [0-9]+-[0-9]+", step_rx, NULL, loops_rx, 4, NULL, &zero);
    ADD("regex @1, accepting only", step_rx, allow_rx_accept, loops_rx, 4, NULL, &one);
    ADD("regex @2 (no loops)", step_rx, NULL, NULL, 4, NULL, &two);
    ADD("at most 3 bytes", step_len3, NULL, NULL, 4, NULL, &zero);
    ADD("exactly 2 bytes (allow)", step_len3, allow_exactly2, NULL, 4, NULL, &zero);
    unsigned char big[LMQL_TRIE_MAX_STATE] = {0};
    big[1] = 0x5a;
    ADD("64-byte state", step_big, allow_big, NULL, LMQL_TRIE_MAX_STATE, NULL, big);
#undef ADD
    return n;
}

/* The reference: run the walker over each token's bytes on its own. */
static void brute_mask(const struct lmql__vocab *v, const struct lmql_trie_walker *w, const void *start,
                       uint8_t *mask) {
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        const unsigned char *p = (const unsigned char *)lmql__vocab_piece(v, t, &len);
        uint64_t a[LMQL_TRIE_MAX_STATE / 8], b[LMQL_TRIE_MAX_STATE / 8];
        memcpy(a, start, w->state_size);
        bool alive = len > 0;
        for (uint32_t k = 0; alive && k < len; k++) {
            alive = w->step(w->ctx, a, p[k], b);
            memcpy(a, b, w->state_size);
        }
        mask[t] = alive && (!w->allow || w->allow(w->ctx, a));
    }
}

/* A DFA for the fast path, with the reference on the same table. */
struct dfa {
    const char *name;
    int32_t *table;
    int n_classes;
    uint8_t cls[256];
    uint8_t *allowed;   /* NULL = every live state */
    int32_t start;
};

static void brute_dfa(const struct lmql__vocab *v, const struct dfa *d, uint8_t *mask) {
    for (int32_t t = 0; t < v->n_tokens; t++) {
        uint32_t len;
        const unsigned char *p = (const unsigned char *)lmql__vocab_piece(v, t, &len);
        int32_t s = len ? d->start : -1;
        for (uint32_t k = 0; s >= 0 && k < len; k++) s = d->table[s * d->n_classes + d->cls[p[k]]];
        mask[t] = s >= 0 && (!d->allowed || d->allowed[s]);
    }
}

static int run_dfa(const struct lmql_trie *t, const struct dfa *d, uint8_t *mask) {
    return lmql__trie_mask_dfa(t, d->table, d->n_classes, d->cls, d->allowed, d->start, mask);
}

/* Fixed DFAs mirroring the walkers, plus random ones. Tables are static
** storage or malloc'd into *owned (freed by the caller). */
static int make_dfas(struct dfa *out, uint64_t seed, int32_t **owned, int n_owned_max) {
    static int32_t any_t[1] = {0}, nonl_t[2] = {0, -1}, dig_t[2] = {0, -1}, len_t[4] = {1, 2, 3, -1};
    static int32_t rx_t[12];
    static int32_t ph_t[13 * 256];
    static uint8_t rx_acc[4];
    int n = 0, n_owned = 0;
    memcpy(rx_t, RX_TABLE, sizeof rx_t);
    memcpy(rx_acc, RX_ACCEPT, sizeof rx_acc);
    for (int s = 0; s < 13; s++)
        for (int b = 0; b < 256; b++)
            ph_t[s * 256 + b] = s < 12 && (unsigned char)PHRASE[s] == b ? s + 1 : -1;

    memset(out, 0, 16 * sizeof *out);
    out[n] = (struct dfa){.name = "allow-all", .table = any_t, .n_classes = 1};
    n++;
    out[n] = (struct dfa){.name = "no \\n", .table = nonl_t, .n_classes = 2};
    out[n].cls['\n'] = 1;
    n++;
    out[n] = (struct dfa){.name = "digits", .table = dig_t, .n_classes = 2};
    for (int b = 0; b < 256; b++) out[n].cls[b] = !(b >= '0' && b <= '9');
    n++;
    out[n] = (struct dfa){.name = "prefix of ' hello world'", .table = ph_t, .n_classes = 256};
    for (int b = 0; b < 256; b++) out[n].cls[b] = (uint8_t)b;
    n++;
    out[n] = (struct dfa){.name = "regex [0-9]+-[0-9]+", .table = rx_t, .n_classes = 3};
    memcpy(out[n].cls, rx_class, 256);
    n++;
    out[n] = out[n - 1];
    out[n].name = "regex @1, accepting only";
    out[n].start = 1;
    out[n].allowed = rx_acc;
    n++;
    out[n] = (struct dfa){.name = "at most 3 bytes", .table = len_t, .n_classes = 1};
    n++;
    /* Random DFAs: mostly self-loops (to exercise subtree fills), some
    ** moves to other states, some deaths, some states not allowed. */
    for (int r = 0; r < 3 && n_owned + 2 <= n_owned_max; r++) {
        int ns = 2 + r * 3;
        int32_t *tab = malloc((size_t)ns * 256 * sizeof *tab);
        uint8_t *alw = malloc((size_t)ns);
        if (!tab || !alw) { free(tab); free(alw); break; }
        owned[n_owned++] = tab;
        owned[n_owned++] = (int32_t *)alw;
        for (int s = 0; s < ns; s++) {
            alw[s] = (lmql__rng_next(&seed) % 4) != 0;
            for (int b = 0; b < 256; b++) {
                uint64_t x = lmql__rng_next(&seed) % 100;
                tab[s * 256 + b] = x < 85 ? s : x < 95 ? (int32_t)(lmql__rng_next(&seed) % (uint64_t)ns) : -1;
            }
        }
        out[n] = (struct dfa){.name = "random", .table = tab, .n_classes = 256, .allowed = r ? alw : NULL,
                              .start = r % ns};
        for (int b = 0; b < 256; b++) out[n].cls[b] = (uint8_t)b;
        n++;
    }
    return n;
}

static int first_diff(const uint8_t *a, const uint8_t *b, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return -1;
}

/* ------------------------------------------------------------- tests */

/* Check trie vs brute force for every walker and DFA on one vocabulary. */
static void check_vocab(const char *label, const struct lmql__vocab *v) {
    struct lmql_trie *t = lmql__trie_build(v);
    CHECK(t != NULL);
    if (!t) return;
    int32_t n = v->n_tokens;
    uint8_t *m1 = malloc((size_t)n + 1), *m2 = malloc((size_t)n + 1);
    CHECK(m1 && m2);
    if (!m1 || !m2) goto done;

    struct named_walker ws[16];
    int nw = make_walkers(ws);
    for (int i = 0; i < nw; i++) {
        brute_mask(v, &ws[i].w, ws[i].start, m1);
        memset(m2, 7, (size_t)n);
        CHECK_INT(lmql__trie_mask(t, &ws[i].w, ws[i].start, m2), 0);
        int d = first_diff(m1, m2, n);
        if (d >= 0) th_fail(__FILE__, __LINE__, "%s, walker %s: token %d brute %d trie %d", label, ws[i].name, d,
                            m1[d], m2[d]);
        else th_passed++;
    }

    struct dfa ds[16];
    int32_t *owned[8] = {0};
    int nd = make_dfas(ds, 0x5eed + (uint64_t)n, owned, 8);
    for (int i = 0; i < nd; i++) {
        brute_dfa(v, &ds[i], m1);
        memset(m2, 7, (size_t)n);
        CHECK_INT(run_dfa(t, &ds[i], m2), 0);
        int d = first_diff(m1, m2, n);
        if (d >= 0) th_fail(__FILE__, __LINE__, "%s, DFA %s (#%d): token %d brute %d trie %d", label, ds[i].name, i,
                            d, m1[d], m2[d]);
        else th_passed++;
    }
    for (int i = 0; i < 6; i++) free(owned[i]);

    /* A dead start allows nothing. */
    memset(m2, 7, (size_t)n);
    CHECK_INT(lmql__trie_mask_dfa(t, ds[0].table, 1, ds[0].cls, NULL, -1, m2), 0);
    CHECK_INT(first_diff(m2, memset(m1, 0, (size_t)n), n), -1);
    /* A state size out of range is refused, leaving an all-0 mask. */
    struct lmql_trie_walker bad = ws[0].w;
    bad.state_size = LMQL_TRIE_MAX_STATE + 1;
    CHECK_INT(lmql__trie_mask(t, &bad, ws[0].start, m2), -1);
    CHECK_INT(first_diff(m2, m1, n), -1);
done:
    free(m1);
    free(m2);
    lmql__trie_free(t);
}

/* Helpers: with_prefix and prefix_of against brute force. */
static void check_lookups(const char *label, const struct lmql__vocab *v) {
    struct lmql_trie *t = lmql__trie_build(v);
    CHECK(t != NULL);
    if (!t) return;
    static const char *const prefixes[] = {"", " hel", "\n", "1", " the", "zzzzzzq", "\xe2", " hello world"};
    uint8_t *want = calloc((size_t)v->n_tokens, 1), *got = calloc((size_t)v->n_tokens, 1);
    if (!want || !got) goto done;
    for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
        const char *pre = prefixes[i];
        size_t pn = strlen(pre);
        /* with_prefix */
        const int32_t *toks = NULL;
        int32_t c = lmql__trie_tokens_with_prefix(t, pre, pn, &toks);
        memset(got, 0, (size_t)v->n_tokens);
        bool dup = false;
        for (int32_t k = 0; k < c; k++) {
            if (got[toks[k]]) dup = true;
            got[toks[k]] = 1;
        }
        int32_t nwant = 0;
        for (int32_t tk = 0; tk < v->n_tokens; tk++) {
            uint32_t len;
            const char *p = lmql__vocab_piece(v, tk, &len);
            want[tk] = len > 0 && len >= pn && !memcmp(p, pre, pn);
            nwant += want[tk];
        }
        CHECK(!dup);
        CHECK_INT(c, nwant);
        if (first_diff(want, got, v->n_tokens) >= 0)
            th_fail(__FILE__, __LINE__, "%s: with_prefix \"%s\" differs", label, pre);
        /* prefix_of: tokens whose piece is a prefix of pre, shortest first. */
        int32_t out[512];
        c = lmql__trie_tokens_prefix_of(t, pre, pn, out, 512);
        nwant = 0;
        memset(got, 0, (size_t)v->n_tokens);
        uint32_t last_len = 0;
        bool ordered = true;
        for (int32_t k = 0; k < c && k < 512; k++) {
            uint32_t len;
            lmql__vocab_piece(v, out[k], &len);
            if (len < last_len) ordered = false;
            last_len = len;
            got[out[k]] = 1;
        }
        for (int32_t tk = 0; tk < v->n_tokens; tk++) {
            uint32_t len;
            const char *p = lmql__vocab_piece(v, tk, &len);
            want[tk] = len > 0 && len <= pn && !memcmp(p, pre, len);
            nwant += want[tk];
        }
        CHECK(ordered);
        CHECK_INT(c, nwant);
        if (first_diff(want, got, v->n_tokens) >= 0)
            th_fail(__FILE__, __LINE__, "%s: prefix_of \"%s\" differs", label, pre);
        /* A short buffer gets the first ones and the full count. */
        if (c > 1) {
            int32_t few[1] = {-5};
            CHECK_INT(lmql__trie_tokens_prefix_of(t, pre, pn, few, 1), c);
            CHECK_INT(few[0], out[0]);
        }
    }
    /* The whole vocabulary through with_prefix(""): every non-empty piece. */
    {
        const int32_t *toks;
        int32_t nonempty = 0;
        for (int32_t tk = 0; tk < v->n_tokens; tk++) nonempty += v->off[tk + 1] > v->off[tk];
        CHECK_INT(lmql__trie_tokens_with_prefix(t, "", 0, &toks), nonempty);
        CHECK_INT(lmql__trie_n_tokens(t), nonempty);
        CHECK_INT(lmql__trie_n_vocab(t), v->n_tokens);
    }
done:
    free(want);
    free(got);
    lmql__trie_free(t);
}

static void test_real_vocabs(void) {
    for (int i = 0; i < N_VOCABS; i++) {
        struct lmql__model *m = open_vocab(VOCABS[i]);
        if (!m) continue;
        check_vocab(VOCABS[i], m->vocab);
        check_lookups(VOCABS[i], m->vocab);
        lmql__model_free(m);
    }
}

/* A hand-made vocabulary of awkward pieces, including ones deeper than
** the on-stack walk stacks (the 64-byte walker keeps 128 levels there, the
** DFA 2048). */
static void test_synthetic(void) {
    static char deep[3000], mid[300];
    memset(deep, 'x', sizeof deep);
    memset(mid, 'x', sizeof mid);
    struct { const char *p; uint32_t n; } pieces[] = {
        {"", 0}, {"a", 1}, {"ab", 2}, {"ab", 2}, {"abc", 3}, {"b", 1}, {"\0", 1}, {"\xff\xff", 2}, {"", 0},
        {"abd", 3}, {"a\n", 2}, {"\n", 1}, {"12-3", 4}, {"-", 1}, {mid, sizeof mid}, {deep, sizeof deep},
        {"q", 1}, {"\0\0", 2}, {"ab", 2},
    };
    int32_t n = (int32_t)(sizeof pieces / sizeof *pieces);
    struct lmql__vocab v = {0};
    size_t total = 0;
    for (int32_t i = 0; i < n; i++) total += pieces[i].n;
    v.n_tokens = n;
    v.bytes = malloc(total + 1);
    v.off = malloc(((size_t)n + 1) * sizeof *v.off);
    if (!v.bytes || !v.off) { CHECK(0); goto done; }
    v.off[0] = 0;
    for (int32_t i = 0; i < n; i++) {
        memcpy(v.bytes + v.off[i], pieces[i].p, pieces[i].n);
        v.off[i + 1] = v.off[i] + pieces[i].n;
    }
    check_vocab("synthetic", &v);
    check_lookups("synthetic", &v);

    struct lmql_trie *t = lmql__trie_build(&v);
    CHECK(t != NULL);
    if (t) {
        CHECK_INT(lmql__trie_n_tokens(t), n - 2);
        CHECK_INT(lmql__trie_max_len(t), (int)sizeof deep);
        const int32_t *toks;
        /* The three "ab" tokens, "abc" and "abd" share the prefix "ab". */
        CHECK_INT(lmql__trie_tokens_with_prefix(t, "ab", 2, &toks), 5);
        int32_t out[8];
        CHECK_INT(lmql__trie_tokens_prefix_of(t, "abcd", 4, out, 8), 5);
        CHECK_INT(out[0], 1);   /* "a", then the "ab" tokens by id, then "abc" */
        CHECK_INT(out[1], 2);
        CHECK_INT(out[2], 3);
        CHECK_INT(out[3], 18);
        CHECK_INT(out[4], 4);
        CHECK_INT(lmql__trie_tokens_prefix_of(t, "\0\0\0", 3, out, 8), 2);
        CHECK_INT(lmql__trie_tokens_prefix_of(t, "zz", 2, out, 8), 0);
        CHECK_INT(lmql__trie_tokens_with_prefix(t, "abx", 3, &toks), 0);
        lmql__trie_free(t);
    }
    /* An empty vocabulary and one of only control tokens build too. */
    struct lmql__vocab e = {0};
    uint32_t off0[3] = {0, 0, 0};
    e.off = off0;
    e.bytes = (char *)"";
    t = lmql__trie_build(&e);
    CHECK(t != NULL);
    lmql__trie_free(t);
    e.n_tokens = 2;
    t = lmql__trie_build(&e);
    CHECK(t != NULL);
    if (t) {
        uint8_t m[2] = {7, 7};
        int32_t z = 0;
        struct lmql_trie_walker w = {.step = step_any, .loops = loops_any, .state_size = 4};
        CHECK_INT(lmql__trie_mask(t, &w, &z, m), 0);
        CHECK(m[0] == 0 && m[1] == 0);
        static const int32_t tab[1] = {0};
        CHECK_INT(lmql__trie_mask_dfa(t, tab, 256, NULL, NULL, 0, m), 0);
        CHECK(m[0] == 0 && m[1] == 0);
        lmql__trie_free(t);
    }
    lmql__trie_free(NULL);
done:
    free(v.bytes);
    free(v.off);
}

/* The cache returns what a walk returns, hits on repeats, evicts the least
** recently used state. */
static void test_cache(void) {
    struct lmql__model *m = open_vocab(VOCABS[0]);
    if (!m) return;
    struct lmql_trie *t = lmql__trie_build(m->vocab);
    struct lmql_trie_cache *c = t ? lmql__trie_cache_new(t, 2) : NULL;
    uint8_t *ref = malloc((size_t)m->vocab->n_tokens);
    CHECK(t && c && ref);
    if (!t || !c || !ref) goto done;
    struct lmql_trie_walker w = {.step = step_len3, .state_size = 4};
    uint64_t hits, misses;
    for (int round = 0; round < 2; round++)
        for (int32_t s = 0; s < 2; s++) {
            const uint8_t *cm = lmql__trie_cache_mask(c, t, &w, &s);
            CHECK(cm != NULL);
            lmql__trie_mask(t, &w, &s, ref);
            if (cm) CHECK_INT(first_diff(cm, ref, m->vocab->n_tokens), -1);
        }
    lmql__trie_cache_stats(c, &hits, &misses);
    CHECK_INT(hits, 2);
    CHECK_INT(misses, 2);
    /* State 2 evicts state 0 (used least recently); state 1 stays. */
    int32_t s2 = 2, s0 = 0, s1 = 1;
    CHECK(lmql__trie_cache_mask(c, t, &w, &s2) != NULL);
    CHECK(lmql__trie_cache_find(c, &s1, 4) != NULL);
    CHECK(lmql__trie_cache_find(c, &s0, 4) == NULL);
    /* The find/slot halves with a DFA state as key. */
    static const int32_t len_t[4] = {1, 2, 3, -1};
    int32_t key = 1;
    uint8_t *slot = lmql__trie_cache_slot(c, &key, sizeof key);
    CHECK(slot != NULL);
    if (slot) {
        lmql__trie_mask_dfa(t, len_t, 1, (const uint8_t[256]){0}, NULL, 1, slot);
        lmql__trie_mask(t, &w, &key, ref);
        CHECK_INT(first_diff(slot, ref, m->vocab->n_tokens), -1);
        CHECK(lmql__trie_cache_find(c, &key, sizeof key) == slot);
    }
    lmql__trie_cache_clear(c);
    CHECK(lmql__trie_cache_find(c, &key, sizeof key) == NULL);
done:
    free(ref);
    lmql__trie_cache_free(c);
    lmql__trie_free(t);
    lmql__model_free(m);
}

/* ------------------------------------------------------------- timing */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void report(const char *what, const char *name, double *us, int n, int32_t allowed) {
    qsort(us, (size_t)n, sizeof *us, cmp_double);
    int p99 = (int)((double)n * 0.99);
    if (p99 >= n) p99 = n - 1;
    printf("    %-8s %-30s median %8.1f us  p99 %8.1f us  (%d allowed)\n", what, name, us[n / 2], us[p99],
           allowed);
}

static int32_t count_ones(const uint8_t *m, int32_t n) {
    int32_t c = 0;
    for (int32_t i = 0; i < n; i++) c += m[i];
    return c;
}

static void test_timing(void) {
    double *us = malloc((size_t)n_timed * sizeof *us);
    if (!us) return;
    for (int i = 0; i < N_VOCABS; i++) {
        struct lmql__model *m = open_vocab(VOCABS[i]);
        if (!m) continue;
        const struct lmql__vocab *v = m->vocab;
        double t0 = now_s();
        struct lmql_trie *t = lmql__trie_build(v);
        double t_build = now_s() - t0;
        uint8_t *mask = malloc((size_t)v->n_tokens);
        if (!t || !mask) { CHECK(0); free(mask); lmql__trie_free(t); lmql__model_free(m); continue; }
        printf("  %s: %d tokens, %d in trie, %d nodes, longest piece %d bytes, build %.1f ms, %.2f MiB\n",
               VOCABS[i], v->n_tokens, lmql__trie_n_tokens(t), lmql__trie_n_nodes(t), lmql__trie_max_len(t),
               t_build * 1e3, (double)lmql__trie_memory(t) / (1024.0 * 1024.0));

        /* The token-by-token loop the trie replaces, for scale. */
        struct named_walker ws[16];
        int nw = make_walkers(ws);
        int n_brute = n_timed < 20 ? n_timed : 20;
        for (int r = 0; r < n_brute; r++) {
            double a = now_s();
            brute_mask(v, &ws[2].w, ws[2].start, mask);
            us[r] = (now_s() - a) * 1e6;
        }
        report("brute", ws[2].name, us, n_brute, count_ones(mask, v->n_tokens));

        for (int k = 0; k < nw; k++) {
            for (int r = 0; r < n_timed; r++) {
                double a = now_s();
                lmql__trie_mask(t, &ws[k].w, ws[k].start, mask);
                us[r] = (now_s() - a) * 1e6;
            }
            report("walker", ws[k].name, us, n_timed, count_ones(mask, v->n_tokens));
        }
        struct dfa ds[16];
        int32_t *owned[8] = {0};
        int nd = make_dfas(ds, 1, owned, 8);
        for (int k = 0; k < nd; k++) {
            for (int r = 0; r < n_timed; r++) {
                double a = now_s();
                run_dfa(t, &ds[k], mask);
                us[r] = (now_s() - a) * 1e6;
            }
            report("dfa", ds[k].name, us, n_timed, count_ones(mask, v->n_tokens));
        }
        for (int k = 0; k < 6; k++) free(owned[k]);

        /* A cache hit: what a repeated state costs. */
        struct lmql_trie_cache *c = lmql__trie_cache_new(t, 4);
        if (c) {
            lmql__trie_cache_mask(c, t, &ws[3].w, ws[3].start);
            for (int r = 0; r < n_timed; r++) {
                double a = now_s();
                const uint8_t *cm = lmql__trie_cache_mask(c, t, &ws[3].w, ws[3].start);
                us[r] = (now_s() - a) * 1e6;
                if (!cm) us[r] = -1;
            }
            report("cached", ws[3].name, us, n_timed, 0);
            lmql__trie_cache_free(c);
        }
        free(mask);
        lmql__trie_free(t);
        lmql__model_free(m);
    }
    free(us);
}


/* The vocabulary memo: exact keys, exact value sizes, replacement, a full
** memo starting over, and threads storing and reading at once. */
struct memo_job {
    struct lmql__memo *m;
    int base, bad;
};

static void *memo_worker(void *arg) {
    struct memo_job *j = arg;
    for (int r = 0; r < 200; r++)
        for (int k = 0; k < 16; k++) {
            int key = j->base + k, val = key * 7, got = -1;
            lmql__memo_put(j->m, &key, sizeof key, &val, sizeof val);
            if (lmql__memo_get(j->m, &key, sizeof key, &got, sizeof got) && got != val) j->bad++;
        }
    return NULL;
}

static void test_memo(void) {
    struct lmql__memo *m = lmql__memo_new(4096);
    CHECK(m != NULL);
    if (!m) return;
    int32_t v = 0;
    CHECK(!lmql__memo_get(m, "Pabc", 4, &v, sizeof v));
    int32_t t = 42;
    lmql__memo_put(m, "Pabc", 4, &t, sizeof t);
    CHECK(lmql__memo_get(m, "Pabc", 4, &v, sizeof v));
    CHECK_INT(v, 42);
    CHECK(!lmql__memo_get(m, "Pab", 3, &v, sizeof v));            /* a prefix is another key */
    uint8_t big[8];
    CHECK(!lmql__memo_get(m, "Pabc", 4, big, sizeof big));        /* another size is a miss */
    t = 7;
    lmql__memo_put(m, "Pabc", 4, &t, sizeof t);
    CHECK(lmql__memo_get(m, "Pabc", 4, &v, sizeof v));
    CHECK_INT(v, 7);
    /* 1000-byte values in a 4096-byte memo: the fourth starts it over. */
    uint8_t blob[1000];
    for (int k = 0; k < 4; k++) {
        memset(blob, k, sizeof blob);
        lmql__memo_put(m, &k, sizeof k, blob, sizeof blob);
    }
    int k3 = 3, k0 = 0;
    CHECK(lmql__memo_get(m, &k3, sizeof k3, blob, sizeof blob) && blob[999] == 3);
    CHECK(!lmql__memo_get(m, &k0, sizeof k0, blob, sizeof blob));
    uint8_t huge[5000] = {0};
    lmql__memo_put(m, "H", 1, huge, sizeof huge);                 /* over budget: not kept */
    CHECK(!lmql__memo_get(m, "H", 1, huge, sizeof huge));
    lmql__memo_free(m);

    m = lmql__memo_new(2048);   /* small: threads also race through restarts */
    pthread_t th[4];
    struct memo_job jobs[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (struct memo_job){m, i * 8, 0};   /* overlapping keys, same values */
        pthread_create(&th[i], NULL, memo_worker, &jobs[i]);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += jobs[i].bad;
    }
    CHECK_INT(bad, 0);
    lmql__memo_free(m);
    lmql__memo_free(NULL);
}

int main(int argc, char **argv) {
    for (int b = 0; b < 256; b++) rx_class[b] = b >= '0' && b <= '9' ? 0 : b == '-' ? 1 : 2;
    if (argc > 1 && !strcmp(argv[1], "--bench")) n_timed = 1000;
    RUN(test_synthetic);
    RUN(test_real_vocabs);
    RUN(test_cache);
    RUN(test_memo);
    RUN(test_timing);
    return th_report("trie");
}
