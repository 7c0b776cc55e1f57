/*
** regex_dfa.c -- NFA to DFA for regex.h, and the stepping API.
**
** Pipeline: byte equivalence classes (bytes no NFA range tells apart share
** a column) -> eager subset construction -> drop states that cannot reach
** an accepting state (the decoder must never walk into a dead end) ->
** Hopcroft minimisation (fewer states means fewer per-state token masks
** for the decoder to compute) -> breadth-first renumbering from the start, so
** ids are deterministic and the start state is 0.
**
** Subsets keep only the NFA states that matter for the future: RANGE
** states and MATCH.  Two closures with the same such states behave alike,
** whatever epsilon states they passed through.
*/
#include "regex.h"
#include "alloc.h"
#include "lmql_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Table entries (states x classes) and work units allowed; past these a
** pattern is "too complex" rather than slow or huge. */
#define RX_MAX_TABLE  (8u << 20)
#define RX_MAX_WORK   ((uint64_t)400 << 20)

struct lmql_regex {
    int32_t n_states, n_classes, start;
    uint8_t cls[256];   /* byte -> column */
    int32_t *trans;     /* n_states x n_classes; -1 = dead */
    uint8_t *accept;    /* n_states */
};

struct dfa_build {
    const struct lmql__rx_nfa *nfa;
    struct lmql__err *err;
    bool failed;
    int32_t k;                /* byte classes */
    uint8_t cls[256];
    uint8_t *span_lo, *span_hi; /* per NFA state: classes its range covers */
    /* subsets: state i holds pool[off[i] .. off[i] + len[i]) */
    int32_t n, cap;
    size_t *off;
    int32_t *len;
    uint8_t *acc;
    int32_t *pool;
    size_t n_pool, cap_pool;
    int32_t *trans;           /* n x k */
    int32_t *hash;            /* open addressing over subset ids, -1 empty */
    size_t hash_cap;
    /* closure scratch, all sized to the NFA */
    uint32_t *mark;
    uint32_t gen;
    int32_t *stack, *out;
    int32_t *seeds;           /* moves of one subset, bucketed by class */
    size_t cap_seeds;
    uint64_t work;
};

__attribute__((format(printf, 2, 3)))
static int dfail(struct dfa_build *D, const char *fmt, ...) {
    if (!D->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(D->err->msg, sizeof D->err->msg, fmt, ap);
        va_end(ap);
        D->err->pos = (struct lmql_pos){0, 0, 0};
        D->err->status = LMQL_ERR_QUERY;
        D->failed = true;
    }
    return -1;
}

/* Out of memory: no fault of the pattern. */
static int doom(struct dfa_build *D) {
    bool first = !D->failed;
    dfail(D, "out of memory");
    if (first) D->err->status = LMQL_ERR_NOMEM;
    return -1;
}

static int too_complex(struct dfa_build *D) {
    return dfail(D, "regex too complex (DFA over %d states or work limit)", LMQL_REGEX_MAX_STATES);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* Epsilon closure of seeds[0..n); writes the RANGE/MATCH states, sorted,
** to D->out and returns their count. */
static int32_t closure(struct dfa_build *D, const int32_t *seeds, int32_t n) {
    const struct lmql__rx_nstate *st = D->nfa->st;
    int32_t sp = 0, m = 0;
    if (++D->gen == 0) { /* wrapped: old marks could alias */
        memset(D->mark, 0, (size_t)D->nfa->n * sizeof *D->mark);
        D->gen = 1;
    }
    for (int32_t i = 0; i < n; i++)
        if (seeds[i] >= 0 && D->mark[seeds[i]] != D->gen) {
            D->mark[seeds[i]] = D->gen;
            D->stack[sp++] = seeds[i];
        }
    while (sp > 0) {
        int32_t s = D->stack[--sp];
        D->work++;
        if (st[s].kind != LMQL_RXN_SPLIT) {
            D->out[m++] = s;
            continue;
        }
        int32_t t[2] = {st[s].out, st[s].out1};
        for (int j = 0; j < 2; j++)
            if (t[j] >= 0 && D->mark[t[j]] != D->gen) {
                D->mark[t[j]] = D->gen;
                D->stack[sp++] = t[j];
            }
    }
    /* Subsets need one canonical order (for hashing and comparing); sorted
    ** it is, by the cheapest route for the size at hand. */
    int32_t nn = D->nfa->n;
    if (m <= 16) {
        for (int32_t i = 1; i < m; i++) {
            int32_t v = D->out[i], j = i;
            for (; j > 0 && D->out[j - 1] > v; j--) D->out[j] = D->out[j - 1];
            D->out[j] = v;
        }
    } else if ((int64_t)m * 8 >= nn) {
        /* dense: the marks already say which states are in */
        m = 0;
        for (int32_t s = 0; s < nn; s++)
            if (D->mark[s] == D->gen && st[s].kind != LMQL_RXN_SPLIT) D->out[m++] = s;
        D->work += (uint64_t)nn / 8;
    } else {
        qsort(D->out, (size_t)m, sizeof *D->out, cmp_i32);
        D->work += (uint64_t)m * 4;
    }
    LMQL_ASSERT(m <= nn);   /* each NFA state once, at most */
    return m;
}

static uint64_t hash_set(const int32_t *s, int32_t n) {
    uint64_t h = 1469598103934665603u;
    for (int32_t i = 0; i < n; i++) {
        h ^= (uint32_t)s[i];
        h *= 1099511628211u;
    }
    return h ^ (h >> 29);
}

static int rehash(struct dfa_build *D) {
    size_t cap = D->hash_cap ? D->hash_cap * 2 : 1024;
    int32_t *h = lmql__malloc(cap * sizeof *h);
    if (!h) return doom(D);
    memset(h, 0xFF, cap * sizeof *h);
    for (int32_t i = 0; i < D->n; i++) {
        size_t j = hash_set(D->pool + D->off[i], D->len[i]) & (cap - 1);
        while (h[j] >= 0) j = (j + 1) & (cap - 1);
        h[j] = i;
    }
    free(D->hash);
    D->hash = h;
    D->hash_cap = cap;
    return 0;
}

/* The id of subset D->out[0..m), adding a new state when unseen; -1 on
** error.  The caller handles the empty subset (the dead state). */
static int32_t intern(struct dfa_build *D, int32_t m) {
    LMQL_ASSERT(m > 0);   /* the empty subset is the dead state, never interned */
    LMQL_ASSERT(D->hash_cap && !(D->hash_cap & (D->hash_cap - 1)));   /* a power of two: masks index it */
    uint64_t h = hash_set(D->out, m);
    size_t j = h & (D->hash_cap - 1);
    for (; D->hash[j] >= 0; j = (j + 1) & (D->hash_cap - 1)) {
        int32_t i = D->hash[j];
        if (D->len[i] == m && !memcmp(D->pool + D->off[i], D->out, (size_t)m * sizeof *D->out))
            return i;
    }
    if (D->n >= LMQL_REGEX_MAX_STATES || (size_t)(D->n + 1) * (size_t)D->k > RX_MAX_TABLE)
        return too_complex(D);
    if (D->n == D->cap) {
        int32_t nc = D->cap ? D->cap * 2 : 64;
        size_t *off = lmql__realloc(D->off, (size_t)nc * sizeof *off);
        if (off) D->off = off;
        int32_t *len = lmql__realloc(D->len, (size_t)nc * sizeof *len);
        if (len) D->len = len;
        uint8_t *acc = lmql__realloc(D->acc, (size_t)nc);
        if (acc) D->acc = acc;
        int32_t *tr = lmql__realloc(D->trans, (size_t)nc * (size_t)D->k * sizeof *tr);
        if (tr) D->trans = tr;
        if (!off || !len || !acc || !tr) return doom(D);
        D->cap = nc;
    }
    if (D->n_pool + (size_t)m > D->cap_pool) {
        size_t nc = D->cap_pool ? D->cap_pool : 1024;
        while (nc < D->n_pool + (size_t)m) nc *= 2;
        int32_t *p = lmql__realloc(D->pool, nc * sizeof *p);
        if (!p) return doom(D);
        D->pool = p;
        D->cap_pool = nc;
    }
    int32_t id = D->n++;
    memcpy(D->pool + D->n_pool, D->out, (size_t)m * sizeof *D->out);
    D->off[id] = D->n_pool;
    D->len[id] = m;
    D->n_pool += (size_t)m;
    D->acc[id] = 0;
    for (int32_t i = 0; i < m; i++)
        if (D->out[i] == D->nfa->match) D->acc[id] = 1;
    for (int32_t c = 0; c < D->k; c++) D->trans[(size_t)id * D->k + c] = -1;
    D->hash[j] = id;
    if ((size_t)D->n * 2 > D->hash_cap && rehash(D)) return -1;
    return id;
}

/* Columns: a new class starts at every byte where some range starts or
** just ended, so all bytes of a class take the same NFA edges. */
static int byte_classes(struct dfa_build *D) {
    const struct lmql__rx_nfa *nfa = D->nfa;
    bool cut[257] = {false};
    cut[0] = true;
    for (int32_t i = 0; i < nfa->n; i++)
        if (nfa->st[i].kind == LMQL_RXN_RANGE) {
            cut[nfa->st[i].lo] = true;
            cut[nfa->st[i].hi + 1] = true;
        }
    int32_t k = -1;
    for (int b = 0; b < 256; b++) {
        if (cut[b]) k++;
        D->cls[b] = (uint8_t)k;
    }
    D->k = k + 1;
    LMQL_ASSERT(D->k >= 1 && D->k <= 256);   /* cnt[257] and the uint8_t class map rely on it */
    D->span_lo = lmql__malloc((size_t)nfa->n);
    D->span_hi = lmql__malloc((size_t)nfa->n);
    if (!D->span_lo || !D->span_hi) return doom(D);
    for (int32_t i = 0; i < nfa->n; i++) {
        D->span_lo[i] = D->cls[nfa->st[i].lo];
        D->span_hi[i] = D->cls[nfa->st[i].hi];
    }
    return 0;
}

static int subset_construction(struct dfa_build *D) {
    const struct lmql__rx_nstate *st = D->nfa->st;
    size_t nn = (size_t)D->nfa->n;
    D->mark = lmql__calloc(nn, sizeof *D->mark);
    D->stack = lmql__malloc(nn * sizeof *D->stack);
    D->out = lmql__malloc(nn * sizeof *D->out);
    if (!D->mark || !D->stack || !D->out) return doom(D);
    if (rehash(D)) return -1;
    int32_t m = closure(D, &D->nfa->start, 1);
    if (m == 0) return 0; /* the pattern matches nothing: no states */
    if (intern(D, m) < 0) return -1;
    int32_t cnt[257];
    for (int32_t i = 0; i < D->n; i++) { /* D->n grows as subsets appear */
        /* bucket the moves of subset i by class: count, then place */
        const int32_t *set = D->pool + D->off[i];
        int32_t len = D->len[i];
        size_t total = 0;
        memset(cnt, 0, sizeof cnt);
        for (int32_t j = 0; j < len; j++) {
            int32_t s = set[j];
            if (st[s].kind != LMQL_RXN_RANGE) continue;
            for (int32_t c = D->span_lo[s]; c <= D->span_hi[s]; c++) cnt[c + 1]++;
            total += (size_t)(D->span_hi[s] - D->span_lo[s] + 1);
        }
        D->work += (uint64_t)len + total;
        if (D->work > RX_MAX_WORK) return too_complex(D);
        if (total > D->cap_seeds) {
            int32_t *p = lmql__realloc(D->seeds, total * sizeof *p);
            if (!p) return doom(D);
            D->seeds = p;
            D->cap_seeds = total;
        }
        for (int32_t c = 0; c < D->k; c++) cnt[c + 1] += cnt[c];
        for (int32_t j = 0; j < len; j++) {
            int32_t s = set[j];
            if (st[s].kind != LMQL_RXN_RANGE) continue;
            for (int32_t c = D->span_lo[s]; c <= D->span_hi[s]; c++) D->seeds[cnt[c]++] = st[s].out;
        }
        /* cnt[c] is now the end of class c's bucket; intern() may move the
        ** pool, but `set` is not used past this point */
        for (int32_t c = 0, lo = 0; c < D->k; lo = cnt[c], c++) {
            if (cnt[c] == lo) continue;
            m = closure(D, D->seeds + lo, cnt[c] - lo);
            if (m == 0) continue;
            int32_t t = intern(D, m);
            if (t < 0) return -1;
            D->trans[(size_t)i * D->k + c] = t;
        }
    }
    return 0;
}

/* Mark the states from which an accepting state is reachable: a reverse
** breadth-first search over a CSR copy of the reversed edges. */
static int coreachable(struct dfa_build *D, uint8_t *live) {
    int32_t n = D->n, k = D->k;
    size_t ne = 0;
    int32_t *start = lmql__calloc((size_t)n + 1, sizeof *start);
    int32_t *queue = lmql__malloc((size_t)n * sizeof *queue);
    int32_t *src = NULL;
    int rc = -1;
    if (!start || !queue) goto done;
    for (size_t e = 0; e < (size_t)n * k; e++)
        if (D->trans[e] >= 0) { start[D->trans[e] + 1]++; ne++; }
    for (int32_t i = 0; i < n; i++) start[i + 1] += start[i];
    src = lmql__malloc((ne ? ne : 1) * sizeof *src);
    if (!src) goto done;
    for (int32_t i = 0; i < n; i++)
        for (int32_t c = 0; c < k; c++) {
            int32_t t = D->trans[(size_t)i * k + c];
            if (t >= 0) src[start[t]++] = i;
        }
    /* the fill advanced start[t] to the end of t's slice; shift back */
    for (int32_t i = n; i > 0; i--) start[i] = start[i - 1];
    start[0] = 0;
    int32_t qh = 0, qt = 0;
    for (int32_t i = 0; i < n; i++) {
        live[i] = D->acc[i];
        if (live[i]) queue[qt++] = i;
    }
    while (qh < qt) {
        int32_t t = queue[qh++];
        for (int32_t e = start[t]; e < start[t + 1]; e++)
            if (!live[src[e]]) { live[src[e]] = 1; queue[qt++] = src[e]; }
    }
    LMQL_ASSERT(qt <= n);   /* each state queued once */
    rc = 0;
done:
    free(start);
    free(queue);
    free(src);
    return rc ? doom(D) : 0;
}

/*
** Hopcroft partition refinement over the n live states of table T (-1 =
** the implicit dead state).  Fills blk[] with each state's class and
** returns the class count, or -1 on out of memory.
**
** Blocks are contiguous ranges of elems[]; a block's marked states are
** swapped to its front, so a split is just moving a boundary.  Every
** block, once split, puts its smaller half on the worklist; a popped block
** splits others by its preimage under every class at once (using a
** snapshot of its members, since it may itself split meanwhile).
**
** The dead state never needs to be a splitter: it is distinguishable from
** every live state (they all reach a match), so the start partition may be
** {accepting, rejecting, dead} with only the first two on the worklist.
*/
static int32_t minimise(const int32_t *T, int32_t n, int32_t k, const uint8_t *acc, int32_t *blk) {
    size_t ne = 0;
    for (size_t e = 0; e < (size_t)n * k; e++) ne += T[e] >= 0;
    int32_t *in_off = lmql__calloc((size_t)n + 1, sizeof *in_off);
    int32_t *in_src = lmql__malloc((ne ? ne : 1) * sizeof *in_src);
    uint8_t *in_cls = lmql__malloc(ne ? ne : 1);
    int32_t *gsrc = lmql__malloc((ne ? ne : 1) * sizeof *gsrc);  /* preimage, grouped by class */
    int32_t *elems = lmql__malloc((size_t)n * sizeof *elems), *loc = lmql__malloc((size_t)n * sizeof *loc);
    int32_t *first = lmql__malloc((size_t)n * sizeof *first), *past = lmql__malloc((size_t)n * sizeof *past);
    int32_t *mark = lmql__malloc((size_t)n * sizeof *mark);      /* end of the marked front */
    int32_t *work = lmql__malloc((size_t)n * sizeof *work), *snap = lmql__malloc((size_t)n * sizeof *snap);
    int32_t *touched = lmql__malloc((size_t)n * sizeof *touched);
    int32_t cnt[257];
    int32_t blocks = -1;
    if (!in_off || !in_src || !in_cls || !gsrc || !elems || !loc || !first || !past || !mark ||
        !work || !snap || !touched)
        goto done;
    /* reverse edges, grouped by target */
    for (size_t e = 0; e < (size_t)n * k; e++)
        if (T[e] >= 0) in_off[T[e] + 1]++;
    for (int32_t i = 0; i < n; i++) in_off[i + 1] += in_off[i];
    for (int32_t s = 0; s < n; s++)
        for (int32_t c = 0; c < k; c++) {
            int32_t t = T[(size_t)s * k + c];
            if (t < 0) continue;
            in_src[in_off[t]] = s;
            in_cls[in_off[t]++] = (uint8_t)c;
        }
    for (int32_t i = n; i > 0; i--) in_off[i] = in_off[i - 1];
    in_off[0] = 0;
    /* start partition: accepting states first, then the others */
    int32_t m = 0, n_work = 0;
    for (int pass = 1; pass >= 0; pass--)
        for (int32_t s = 0; s < n; s++)
            if (acc[s] == pass) { loc[s] = m; elems[m++] = s; }
    blocks = 0;
    for (int32_t i = 0; i < n;) {
        int32_t j = i;
        while (j < n && acc[elems[j]] == acc[elems[i]]) j++;
        first[blocks] = mark[blocks] = i;
        past[blocks] = j;
        for (int32_t x = i; x < j; x++) blk[elems[x]] = blocks;
        work[n_work++] = blocks;
        blocks++;
        i = j;
    }
    while (n_work > 0) {
        int32_t a = work[--n_work];
        int32_t na = past[a] - first[a];
        memcpy(snap, elems + first[a], (size_t)na * sizeof *snap);
        /* counting sort of the preimage edges by class */
        memset(cnt, 0, sizeof cnt);
        for (int32_t i = 0; i < na; i++)
            for (int32_t e = in_off[snap[i]]; e < in_off[snap[i] + 1]; e++) cnt[in_cls[e] + 1]++;
        for (int c = 0; c < k; c++) cnt[c + 1] += cnt[c];
        for (int32_t i = 0; i < na; i++)
            for (int32_t e = in_off[snap[i]]; e < in_off[snap[i] + 1]; e++) gsrc[cnt[in_cls[e]]++] = in_src[e];
        /* cnt[c] is now the end of class c's group */
        for (int32_t c = 0, lo = 0; c < k; lo = cnt[c], c++) {
            int32_t n_touched = 0;
            /* a DFA state has one edge per class, so no state repeats here */
            for (int32_t e = lo; e < cnt[c]; e++) {
                int32_t s = gsrc[e], b = blk[s];
                if (mark[b] == first[b]) touched[n_touched++] = b;
                int32_t other = elems[mark[b]], ls = loc[s];
                elems[ls] = other;
                loc[other] = ls;
                elems[mark[b]] = s;
                loc[s] = mark[b]++;
            }
            for (int32_t i = 0; i < n_touched; i++) {
                int32_t b = touched[i], split = mark[b];
                mark[b] = first[b];
                if (split == past[b]) continue; /* all of b moves alike */
                int32_t nb = blocks++;
                if (split - first[b] <= past[b] - split) { /* marked part is smaller */
                    first[nb] = first[b];
                    past[nb] = split;
                    first[b] = split;
                } else {
                    first[nb] = split;
                    past[nb] = past[b];
                    past[b] = split;
                }
                mark[b] = first[b];
                mark[nb] = first[nb];
                for (int32_t x = first[nb]; x < past[nb]; x++) blk[elems[x]] = nb;
                /* whether or not b waits on the worklist, its smaller half
                ** (nb, by construction) goes on */
                work[n_work++] = nb;
            }
        }
    }
    LMQL_ASSERT(blocks <= n);   /* a partition of n states has at most n blocks */
done:
    free(in_off);
    free(in_src);
    free(in_cls);
    free(gsrc);
    free(elems);
    free(loc);
    free(first);
    free(past);
    free(mark);
    free(work);
    free(snap);
    free(touched);
    return blocks;
}

static void build_free(struct dfa_build *D) {
    free(D->span_lo);
    free(D->span_hi);
    free(D->off);
    free(D->len);
    free(D->acc);
    free(D->pool);
    free(D->trans);
    free(D->hash);
    free(D->mark);
    free(D->stack);
    free(D->out);
    free(D->seeds);
}

/* Prune, minimise and renumber D into re.  Returns 0 or -1. */
static int finish(struct dfa_build *D, struct lmql_regex *re) {
    int32_t n = D->n, k = D->k;
    int rc = -1;
    uint8_t *live = lmql__malloc((size_t)(n ? n : 1));
    int32_t *id = lmql__malloc((size_t)(n ? n : 1) * sizeof *id);
    int32_t *T = NULL, *blk = NULL, *order = NULL, *renum = NULL;
    uint8_t *acc = NULL;
    if (!live || !id) goto oom;
    memcpy(re->cls, D->cls, sizeof re->cls);
    re->n_classes = k;
    re->start = -1;
    if (n == 0) { rc = 0; goto done; }
    if (coreachable(D, live)) goto done;
    if (!live[0]) { rc = 0; goto done; } /* nothing can ever match */
    int32_t nl = 0;
    for (int32_t i = 0; i < n; i++) id[i] = live[i] ? nl++ : -1;
    T = lmql__malloc((size_t)nl * k * sizeof *T);
    acc = lmql__malloc((size_t)nl);
    blk = lmql__malloc((size_t)nl * sizeof *blk);
    if (!T || !acc || !blk) goto oom;
    for (int32_t i = 0; i < n; i++) {
        if (id[i] < 0) continue;
        acc[id[i]] = D->acc[i];
        for (int32_t c = 0; c < k; c++) {
            int32_t t = D->trans[(size_t)i * k + c];
            T[(size_t)id[i] * k + c] = t < 0 ? -1 : id[t];
        }
    }
    int32_t nb = minimise(T, nl, k, acc, blk);
    if (nb < 0) goto oom;
    /* breadth-first from the start block; every block is reachable since
    ** subset construction only made reachable states */
    order = lmql__malloc((size_t)nb * sizeof *order);
    renum = lmql__malloc((size_t)nb * sizeof *renum);
    int32_t *rep = id; /* reuse: a representative state per block */
    if (!order || !renum) goto oom;
    for (int32_t b = 0; b < nb; b++) renum[b] = -1;
    for (int32_t s = nl - 1; s >= 0; s--) rep[blk[s]] = s;
    int32_t qh = 0, qt = 0;
    renum[blk[0]] = qt;
    order[qt++] = blk[0];
    while (qh < qt) {
        int32_t s = rep[order[qh++]];
        for (int32_t c = 0; c < k; c++) {
            int32_t t = T[(size_t)s * k + c];
            if (t >= 0 && renum[blk[t]] < 0) {
                renum[blk[t]] = qt;
                order[qt++] = blk[t];
            }
        }
    }
    /* Every block is reachable from the start: each has its new number. */
    LMQL_ASSERT(qt == nb);
    re->trans = lmql__malloc((size_t)qt * k * sizeof *re->trans);
    re->accept = lmql__malloc((size_t)qt);
    if (!re->trans || !re->accept) goto oom;
    for (int32_t i = 0; i < qt; i++) {
        int32_t s = rep[order[i]];
        re->accept[i] = acc[s];
        for (int32_t c = 0; c < k; c++) {
            int32_t t = T[(size_t)s * k + c];
            re->trans[(size_t)i * k + c] = t < 0 ? -1 : renum[blk[t]];
        }
    }
    re->n_states = qt;
    re->start = 0;
    rc = 0;
    goto done;
oom:
    doom(D);
done:
    free(live);
    free(id);
    free(T);
    free(acc);
    free(blk);
    free(order);
    free(renum);
    return rc;
}

struct lmql_regex *lmql__regex_compile(const char *pattern, size_t len, struct lmql__err *out) {
    struct lmql__rx_nfa nfa;
    struct lmql__err err = {.status = LMQL_ERR_NOMEM};
    struct dfa_build D;
    struct lmql_regex *re = NULL;
    memset(&nfa, 0, sizeof nfa);
    memset(&D, 0, sizeof D);
    snprintf(err.msg, sizeof err.msg, "out of memory");
    if (lmql__regex_nfa_build(pattern, len, &nfa, &err)) goto fail;
    D.nfa = &nfa;
    D.err = &err;
    re = lmql__calloc(1, sizeof *re);
    if (!re) goto fail;
    if (byte_classes(&D) || subset_construction(&D) || finish(&D, re)) goto fail;
    build_free(&D);
    lmql__regex_nfa_free(&nfa);
    return re;
fail:
    if (out) *out = err;
    build_free(&D);
    lmql__regex_nfa_free(&nfa);
    lmql__regex_free(re);
    return NULL;
}

void lmql__regex_free(struct lmql_regex *re) {
    if (!re) return;
    free(re->trans);
    free(re->accept);
    free(re);
}

int32_t lmql__regex_start(const struct lmql_regex *re) {
    LMQL_ASSERT(re != NULL);
    LMQL_ASSERT(re->start == -1 || (re->start == 0 && re->n_states > 0));   /* numbered from the start */
    return re->start;
}

int32_t lmql__regex_step(const struct lmql_regex *re, int32_t state, unsigned char byte) {
    if (state < 0 || state >= re->n_states) return -1;
    return re->trans[(size_t)state * re->n_classes + re->cls[byte]];
}

int32_t lmql__regex_feed(const struct lmql_regex *re, int32_t state, const char *bytes, size_t n) {
    const unsigned char *b = (const unsigned char *)bytes;
    for (size_t i = 0; i < n && state >= 0; i++) state = lmql__regex_step(re, state, b[i]);
    return state;
}

bool lmql__regex_accepting(const struct lmql_regex *re, int32_t state) {
    return state >= 0 && state < re->n_states && re->accept[state];
}

bool lmql__regex_fullmatch(const struct lmql_regex *re, const char *s, size_t n) {
    return lmql__regex_accepting(re, lmql__regex_feed(re, re->start, s, n));
}

int32_t lmql__regex_n_states(const struct lmql_regex *re) { return re->n_states; }

int32_t lmql__regex_n_classes(const struct lmql_regex *re) { return re->n_classes; }

const int32_t *lmql__regex_table(const struct lmql_regex *re, const uint8_t **byte_class) {
    *byte_class = re->cls;
    return re->trans;
}
