/*
** Following bytes through a grammar, and token masks (see grammar.h).
**
** The matcher is a nondeterministic pushdown automaton run on all its
** paths at once. A thread sits inside one terminal occurrence: alternative
** `alt`, item `idx` (a terminal), the terminal's DFA state `d`, and a stack
** of where to continue once the alternative is complete (interned frames:
** equal stacks have equal ids). A configuration is the sorted set of
** threads after some bytes, closed under "a terminal that may end here
** ends, and what follows it begins", plus whether the start symbol may be
** complete. Configurations are interned too, and steps between them are
** remembered, so stepping a configuration seen before costs a table
** lookup per byte. A mask is the union of the threads' terminal splits
** (gsplit.c; see "masks" below), kept per configuration in a small cache.
**
** Every thread's DFA state is alive (the regex DFAs keep only states that
** can still match, a literal's prefix can always finish) and every
** alternative left in a finished grammar derives some string, so every
** configuration with a thread, or complete, is alive: no mask leads into a
** dead end. Left recursion is refused by lmql__gb_finish, which is what
** makes the closure below finite.
*/
#include "grammar.h"

#include <stdlib.h>
#include <string.h>

#include "grammar_int.h"
#include "memo.h"
#include "model.h"
#include "regex.h"
#include "trie.h"
#include "gsplit.h"

/* Bounds on what one matcher remembers: past them a step fails as out of
** memory rather than exhaust the machine (a generation of thousands of
** tokens through a deep grammar stays far below). */
#define MAX_THREADS_TOTAL (1 << 22)
#define MAX_THREADS_CFG   4096
#define MAX_BYTE_SPLITS   64

struct thread {
    int32_t alt, idx, d, stack;
};

struct frame {
    int32_t alt, idx, parent;    /* continue at item idx of alt, then parent (-1: the start symbol is complete) */
};

/* Open addressing over ids; equality is decided by the caller's data. */
struct idtab {
    int32_t *slot;               /* -1 empty */
    uint32_t cap, n;
};

/* Open addressing from non-zero 64-bit keys to ids (0: empty slot). */
struct u64map {
    uint64_t *key;
    int32_t *val;
    uint32_t cap, n;
};


struct wstate;

struct lmql__gm {
    const struct lmql_grammar *g;
    const struct lmql_trie *trie;

    struct frame *fr;
    int32_t n_fr, cap_fr;
    struct idtab fr_tab;

    struct thread *pool;         /* threads of all configurations */
    int64_t n_pool, cap_pool;
    int64_t *cfg_off;
    int32_t *cfg_n;
    uint8_t *cfg_acc;
    uint32_t *cfg_hash;
    int32_t n_cfg, cap_cfg;
    struct idtab cfg_tab;

    struct u64map tr;            /* (cfg << 8 | byte) + 1 -> the next configuration */

    /* closure scratch */
    struct thread *scr;
    int32_t n_scr, cap_scr;
    struct frame *work;          /* advance points: (alt, idx, stack) */
    int32_t n_work, cap_work;
    struct u64map seen;          /* advance points already taken in this closure */
    bool acc;

    int32_t start;               /* -3: not made yet */
    struct lmql_trie_cache *cache;
    bool oom;

    /* Inside one regex terminal: per (terminal, DFA state), the tokens that
    ** stay inside it and the tokens that may leave it (see split_of). */
    struct lmql__split *splits;
    int32_t n_splits, cap_splits;
    struct u64map split_ix;      /* (terminal << 32 | d) + 1 -> index */

    struct wstate *wst;          /* feed_sorted's states, one per depth of the trie */
    int32_t **ltab;              /* per terminal: its leave_dfa table, or NULL */
    uint8_t **lal;               /* per terminal: that table's sink flags */
    int32_t *lit;                /* a literal's inside tokens */
    int32_t n_byte_splits;       /* splits with their inside expanded to bytes */
    int32_t cap_lit;
};

/* ------------------------------------------------------------ hashing -- */

static uint32_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

/* The slot of key in m: where it is, or the empty slot where it goes. */
static uint32_t u64_slot(const struct u64map *m, uint64_t key) {
    uint32_t h = mix(key) & (m->cap - 1);
    while (m->key[h] && m->key[h] != key) h = (h + 1) & (m->cap - 1);
    return h;
}

/* Put key -> val (key not in m yet, key != 0). 0, or -1 out of memory. */
static int u64_put(struct u64map *m, uint64_t key, int32_t val) {
    LMQL_ASSERT(key != 0);
    if ((m->n + 1) * 2 > m->cap) {
        struct u64map nm = {.cap = m->cap ? m->cap * 2 : 256};
        nm.key = lmql__calloc(nm.cap, sizeof *nm.key);
        nm.val = lmql__malloc(nm.cap * sizeof *nm.val);
        if (!nm.key || !nm.val || m->cap >= (1u << 30)) {
            free(nm.key);
            free(nm.val);
            return -1;
        }
        for (uint32_t i = 0; i < m->cap; i++) {
            if (!m->key[i]) continue;
            uint32_t h = u64_slot(&nm, m->key[i]);
            nm.key[h] = m->key[i];
            nm.val[h] = m->val[i];
        }
        nm.n = m->n;
        free(m->key);
        free(m->val);
        *m = nm;
    }
    uint32_t h = u64_slot(m, key);
    LMQL_ASSERT(!m->key[h]);
    m->key[h] = key;
    m->val[h] = val;
    m->n++;
    return 0;
}

/* The id under key, or -3 when absent. */
static int32_t u64_get(const struct u64map *m, uint64_t key) {
    if (!m->cap) return -3;
    uint32_t h = u64_slot(m, key);
    return m->key[h] ? m->val[h] : -3;
}

/* Empty m; a large table is released rather than wiped, so one big
** closure does not make every later one clear megabytes. */
static void u64_clear(struct u64map *m) {
    if (!m->n) return;
    if (m->cap > 4096) {
        free(m->key);
        free(m->val);
        *m = (struct u64map){0};
        return;
    }
    memset(m->key, 0, (size_t)m->cap * sizeof *m->key);
    m->n = 0;
}

static void u64_free(struct u64map *m) {
    free(m->key);
    free(m->val);
}

static int idtab_init(struct idtab *t, uint32_t cap) {
    t->slot = lmql__malloc((size_t)cap * sizeof *t->slot);
    if (!t->slot) return -1;
    memset(t->slot, 0xff, (size_t)cap * sizeof *t->slot);
    t->cap = cap;
    t->n = 0;
    return 0;
}

/* Rehash into twice the room; hash_of gives an id's hash. */
static int idtab_grow(struct idtab *t, uint32_t (*hash_of)(const struct lmql__gm *, int32_t), const struct lmql__gm *m) {
    struct idtab nt;
    if (t->cap > (1u << 30) || idtab_init(&nt, t->cap * 2)) return -1;
    for (uint32_t i = 0; i < t->cap; i++) {
        int32_t id = t->slot[i];
        if (id < 0) continue;
        uint32_t h = hash_of(m, id) & (nt.cap - 1);
        while (nt.slot[h] >= 0) h = (h + 1) & (nt.cap - 1);
        nt.slot[h] = id;
        nt.n++;
    }
    free(t->slot);
    *t = nt;
    return 0;
}

/* ------------------------------------------------------------- frames -- */

static uint32_t frame_hash(const struct frame *f) {
    return mix(((uint64_t)(uint32_t)f->alt << 32 | (uint32_t)f->idx) ^ ((uint64_t)(uint32_t)f->parent * 0x9E3779B97F4A7C15ULL));
}

static uint32_t frame_hash_id(const struct lmql__gm *m, int32_t id) { return frame_hash(&m->fr[id]); }

/* The id of frame (alt, idx, parent), made when new; -2 out of memory. */
static int32_t frame_of(struct lmql__gm *m, int32_t alt, int32_t idx, int32_t parent) {
    struct frame f = {alt, idx, parent};
    uint32_t h = frame_hash(&f) & (m->fr_tab.cap - 1);
    for (int32_t id; (id = m->fr_tab.slot[h]) >= 0; h = (h + 1) & (m->fr_tab.cap - 1))
        if (m->fr[id].alt == alt && m->fr[id].idx == idx && m->fr[id].parent == parent) return id;
    if (m->n_fr == m->cap_fr) {
        int32_t cap = m->cap_fr * 2;
        struct frame *p = cap > 0 ? lmql__realloc(m->fr, (size_t)cap * sizeof *p) : NULL;
        if (!p) return -2;
        m->fr = p;
        m->cap_fr = cap;
    }
    int32_t id = m->n_fr++;
    m->fr[id] = f;
    m->fr_tab.slot[h] = id;
    if (++m->fr_tab.n * 2 > m->fr_tab.cap && idtab_grow(&m->fr_tab, frame_hash_id, m)) return -2;
    return id;
}

/* ----------------------------------------------------- configurations -- */

static uint32_t threads_hash(const struct thread *t, int32_t n, bool acc) {
    uint64_t h = 0x84222325ULL ^ (uint64_t)acc;
    for (int32_t i = 0; i < n; i++) {
        h = (h ^ mix(((uint64_t)(uint32_t)t[i].alt << 32) | (uint32_t)t[i].idx)) * 0x100000001b3ULL;
        h = (h ^ mix(((uint64_t)(uint32_t)t[i].d << 32) | (uint32_t)t[i].stack)) * 0x100000001b3ULL;
    }
    return mix(h);
}

static uint32_t cfg_hash_id(const struct lmql__gm *m, int32_t id) { return m->cfg_hash[id]; }

static int thread_cmp(const void *a, const void *b) {
    const struct thread *x = a, *y = b;
    if (x->alt != y->alt) return x->alt < y->alt ? -1 : 1;
    if (x->idx != y->idx) return x->idx < y->idx ? -1 : 1;
    if (x->d != y->d) return x->d < y->d ? -1 : 1;
    if (x->stack != y->stack) return x->stack < y->stack ? -1 : 1;
    return 0;
}

/* The id of the configuration in the scratch (sorted here), made when new;
** -1 when it has no thread and is not complete (dead); -2 out of memory. */
static int32_t intern_scratch(struct lmql__gm *m) {
    int32_t n = m->n_scr;
    if (n == 0 && !m->acc) return -1;
    if (n > 1) qsort(m->scr, (size_t)n, sizeof *m->scr, thread_cmp);
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (k == 0 || thread_cmp(&m->scr[k - 1], &m->scr[i])) m->scr[k++] = m->scr[i];
    n = k;
    uint32_t hash = threads_hash(m->scr, n, m->acc);
    uint32_t h = hash & (m->cfg_tab.cap - 1);
    for (int32_t id; (id = m->cfg_tab.slot[h]) >= 0; h = (h + 1) & (m->cfg_tab.cap - 1))
        if (m->cfg_hash[id] == hash && m->cfg_n[id] == n && m->cfg_acc[id] == m->acc &&
            !memcmp(m->pool + m->cfg_off[id], m->scr, (size_t)n * sizeof *m->scr))
            return id;
    if (n > MAX_THREADS_CFG || m->n_pool + n > MAX_THREADS_TOTAL) return -2;
    if (m->n_pool + n > m->cap_pool) {
        int64_t cap = m->cap_pool ? m->cap_pool : 1024;
        while (cap < m->n_pool + n) cap *= 2;
        struct thread *p = lmql__realloc(m->pool, (size_t)cap * sizeof *p);
        if (!p) return -2;
        m->pool = p;
        m->cap_pool = cap;
    }
    if (m->n_cfg == m->cap_cfg) {
        int32_t cap = m->cap_cfg ? m->cap_cfg * 2 : 256;
        int64_t *o = lmql__realloc(m->cfg_off, (size_t)cap * sizeof *o);
        if (o) m->cfg_off = o;
        int32_t *c = lmql__realloc(m->cfg_n, (size_t)cap * sizeof *c);
        if (c) m->cfg_n = c;
        uint8_t *a = lmql__realloc(m->cfg_acc, (size_t)cap * sizeof *a);
        if (a) m->cfg_acc = a;
        uint32_t *hs = lmql__realloc(m->cfg_hash, (size_t)cap * sizeof *hs);
        if (hs) m->cfg_hash = hs;
        if (!o || !c || !a || !hs) return -2;
        m->cap_cfg = cap;
    }
    int32_t id = m->n_cfg++;
    m->cfg_off[id] = m->n_pool;
    m->cfg_n[id] = n;
    m->cfg_acc[id] = m->acc;
    m->cfg_hash[id] = hash;
    if (n) memcpy(m->pool + m->n_pool, m->scr, (size_t)n * sizeof *m->scr);
    m->n_pool += n;
    m->cfg_tab.slot[h] = id;
    if (++m->cfg_tab.n * 2 > m->cfg_tab.cap && idtab_grow(&m->cfg_tab, cfg_hash_id, m)) return -2;
    return id;
}

/* ------------------------------------------------------------ closure -- */

static bool term_accepting(const struct lmql__gterm *t, int32_t d) {
    return t->is_re ? lmql__regex_accepting(t->re, d) : (size_t)d == t->len;
}

static int push_work(struct lmql__gm *m, int32_t alt, int32_t idx, int32_t stack) {
    if (m->n_work == m->cap_work) {
        int32_t cap = m->cap_work ? m->cap_work * 2 : 64;
        struct frame *p = lmql__realloc(m->work, (size_t)cap * sizeof *p);
        if (!p) return -1;
        m->work = p;
        m->cap_work = cap;
    }
    m->work[m->n_work++] = (struct frame){alt, idx, stack};
    return 0;
}

/* A thread inside terminal item idx of alt in state d; when the terminal may
** end there, what follows it begins too. */
static int add_thread(struct lmql__gm *m, int32_t alt, int32_t idx, int32_t d, int32_t stack) {
    if (m->n_scr == m->cap_scr) {
        int32_t cap = m->cap_scr ? m->cap_scr * 2 : 64;
        struct thread *p = lmql__realloc(m->scr, (size_t)cap * sizeof *p);
        if (!p) return -1;
        m->scr = p;
        m->cap_scr = cap;
    }
    m->scr[m->n_scr++] = (struct thread){alt, idx, d, stack};
    const struct lmql_grammar *g = m->g;
    const struct lmql__gterm *t = &g->terms[LMQL_G_T_ID(g->items[g->alts[alt].off + idx])];
    return term_accepting(t, d) ? push_work(m, alt, idx + 1, stack) : 0;
}

/* Mark advance point (alt, idx, stack) as taken: 1 the first time, 0 after,
** -1 out of memory or past the packing's range (alternatives and frames
** below 2^24, items of an alternative below 2^16), treated as out of memory
** rather than risk two points sharing a key. */
static int first_visit(struct lmql__gm *m, int32_t alt, int32_t idx, int32_t stack) {
    if ((uint32_t)alt >= (1u << 24) || (uint32_t)idx >= (1u << 16) || (uint32_t)(stack + 1) >= (1u << 24)) return -1;
    uint64_t key = (((uint64_t)(uint32_t)alt << 40) | ((uint64_t)(uint32_t)idx << 24) | (uint64_t)(uint32_t)(stack + 1)) + 1;
    if (u64_get(&m->seen, key) != -3) return 0;
    return u64_put(&m->seen, key, 0) ? -1 : 1;
}

/* Take every pending advance point: enter terminals, predict nonterminals,
** return from complete alternatives. 0, or -1 out of memory. */
static int close_work(struct lmql__gm *m) {
    const struct lmql_grammar *g = m->g;
    while (m->n_work > 0) {
        struct frame p = m->work[--m->n_work];
        int v = first_visit(m, p.alt, p.idx, p.parent);
        if (v < 0) return -1;
        if (v == 0) continue;
        const struct lmql__galt *al = &g->alts[p.alt];
        if (p.idx == al->n) {   /* complete: continue where the stack says */
            if (p.parent < 0) m->acc = true;
            else if (push_work(m, m->fr[p.parent].alt, m->fr[p.parent].idx, m->fr[p.parent].parent)) return -1;
            continue;
        }
        int32_t sym = g->items[al->off + p.idx];
        if (LMQL_G_IS_T(sym)) {
            int32_t d0 = lmql__gterm_start(&g->terms[LMQL_G_T_ID(sym)]);
            if (d0 >= 0 && add_thread(m, p.alt, p.idx, d0, p.parent)) return -1;
            continue;
        }
        int32_t f = frame_of(m, p.alt, p.idx + 1, p.parent);
        if (f < 0) return -1;
        for (int32_t k = 0; k < g->nt_n_alts[sym]; k++)
            if (push_work(m, g->nt_alts[g->nt_first[sym] + k], 0, f)) return -1;
    }
    return 0;
}

static void closure_reset(struct lmql__gm *m) {
    m->n_scr = 0;
    m->n_work = 0;
    m->acc = false;
    u64_clear(&m->seen);
}

/* --------------------------------------------------------------- API -- */

struct lmql__gm *lmql__gm_new(const struct lmql_grammar *g, const struct lmql_trie *t) {
    struct lmql__gm *m = lmql__calloc(1, sizeof *m);
    if (!m) return NULL;
    m->g = g;
    m->trie = t;
    m->start = -3;
    m->cap_fr = 64;
    m->fr = lmql__malloc((size_t)m->cap_fr * sizeof *m->fr);
    if (!m->fr || idtab_init(&m->fr_tab, 128) || idtab_init(&m->cfg_tab, 256) ||
        (t && !(m->cache = lmql__trie_cache_new(t, 16)))) {
        lmql__gm_free(m);
        return NULL;
    }
    return m;
}

void lmql__gm_free(struct lmql__gm *m) {
    if (!m) return;
    free(m->fr);
    free(m->fr_tab.slot);
    free(m->pool);
    free(m->cfg_off);
    free(m->cfg_n);
    free(m->cfg_acc);
    free(m->cfg_hash);
    free(m->cfg_tab.slot);
    u64_free(&m->tr);
    free(m->scr);
    free(m->work);
    u64_free(&m->seen);
    for (int32_t i = 0; i < m->n_splits; i++) lmql__split_free(&m->splits[i]);
    free(m->splits);
    u64_free(&m->split_ix);
    free(m->wst);
    free(m->lit);
    for (int32_t i = 0; m->ltab && i < m->g->n_term; i++) {
        free(m->ltab[i]);
        free(m->lal[i]);
    }
    free(m->ltab);
    free(m->lal);
    lmql__trie_cache_free(m->cache);
    free(m);
}

int32_t lmql__gm_start(struct lmql__gm *m) {
    if (m->start != -3) return m->start;
    const struct lmql_grammar *g = m->g;
    closure_reset(m);
    for (int32_t k = 0; k < g->nt_n_alts[g->start]; k++)
        if (push_work(m, g->nt_alts[g->nt_first[g->start] + k], 0, -1)) return -2;
    if (close_work(m)) return -2;
    int32_t c = intern_scratch(m);
    /* A finished grammar derives some string, so its start is alive. */
    LMQL_ASSERT(c != -1);
    if (c >= 0) m->start = c;
    return c;
}

int32_t lmql__gm_step(struct lmql__gm *m, int32_t c, unsigned char b) {
    if (c < 0) return c == -2 ? -2 : -1;
    LMQL_ASSERT(c < m->n_cfg);
    uint64_t key = (((uint64_t)(uint32_t)c << 8) | b) + 1;
    int32_t known = u64_get(&m->tr, key);
    if (known != -3) return known;
    const struct lmql_grammar *g = m->g;
    closure_reset(m);
    int32_t n = m->cfg_n[c];
    for (int32_t i = 0; i < n; i++) {
        /* the pool may move while threads are added: index it each time */
        struct thread t = m->pool[m->cfg_off[c] + i];
        const struct lmql__gterm *term = &g->terms[LMQL_G_T_ID(g->items[g->alts[t.alt].off + t.idx])];
        int32_t d = lmql__gterm_step(term, t.d, b);
        if (d >= 0 && add_thread(m, t.alt, t.idx, d, t.stack)) return -2;
    }
    if (close_work(m)) return -2;
    int32_t next = intern_scratch(m);
    if (next == -2 || u64_put(&m->tr, key, next)) return -2;
    return next;
}

int32_t lmql__gm_feed(struct lmql__gm *m, int32_t c, const char *s, size_t n) {
    for (size_t i = 0; i < n && c >= 0; i++) c = lmql__gm_step(m, c, (unsigned char)s[i]);
    return c;
}

bool lmql__gm_accepting(struct lmql__gm *m, int32_t c) { return c >= 0 && c < m->n_cfg && m->cfg_acc[c]; }

/* ------------------------------------------------------------- masks -- */

/*
** A configuration's mask without walking the whole vocabulary. A token is
** allowed from c when some thread of c takes it: either every byte stays
** inside the thread's terminal (then it is allowed whatever follows: every
** DFA state is alive and the grammar productive), or the terminal ends
** after a prefix of one byte or more and what follows takes the rest (an
** end after the empty prefix is the closure's business: the successors are
** threads of c already). So the mask is the union over threads of the
** terminal state's `inside` tokens, plus those of its `leave` tokens that c
** takes, checked by stepping c -- exact whatever the grammar, since the
** candidates are a superset and the check is the matcher itself.
**
** Why not one trie walk from c: measured on 200 MaskBench schemas (Llama 3,
** 128k tokens), those walks were 44 of 65 s of mask time, p90 7.6 ms, p99
** 24 ms (a two-thread configuration inside two strings steps every byte of
** every token through the transition table); the splits below depend only
** on (pattern, DFA state) and are shared by every configuration, every
** matcher, every schema through the vocabulary's memo.
**
** The walk's state stepping c (see feed_sorted) is a configuration, or,
** inside the one terminal of a single-thread configuration (a string, a
** number), that configuration with its thread's DFA state moved on:
** stepping it is one table lookup, and a configuration is interned only
** when the terminal may end (its successors begin).
*/
struct wstate {
    int32_t c;    /* a configuration id */
    int32_t d;    /* -1: c itself; else c has one thread, now in DFA state d (which cannot end the terminal) */
};

static const struct thread *only_thread(const struct lmql__gm *m, int32_t c) {
    return m->cfg_n[c] == 1 ? &m->pool[m->cfg_off[c]] : NULL;
}

static int32_t term_id_of(const struct lmql__gm *m, const struct thread *t) {
    const struct lmql_grammar *g = m->g;
    return LMQL_G_T_ID(g->items[g->alts[t->alt].off + t->idx]);
}

static const struct lmql__gterm *term_of(const struct lmql__gm *m, const struct thread *t) {
    return &m->g->terms[term_id_of(m, t)];
}

/* One byte from s into o; false when dead (m->oom set when out of memory). */
static bool walk_step(struct lmql__gm *m, const struct wstate *s, unsigned char b, struct wstate *o) {
    const struct thread *t = only_thread(m, s->c);
    if (t) {
        const struct lmql__gterm *term = term_of(m, t);
        int32_t d = lmql__gterm_step(term, s->d >= 0 ? s->d : t->d, b);
        if (d < 0) return false;
        if (!term_accepting(term, d)) {
            *o = (struct wstate){s->c, d};
            return true;
        }
        /* The terminal may end: the configuration of the thread in d. */
        struct thread copy = *t;
        closure_reset(m);
        int32_t c2 = add_thread(m, copy.alt, copy.idx, d, copy.stack) || close_work(m) ? -2 : intern_scratch(m);
        if (c2 == -2) m->oom = true;
        if (c2 < 0) return false;
        *o = (struct wstate){c2, -1};
        return true;
    }
    LMQL_ASSERT(s->d < 0);
    int32_t c = lmql__gm_step(m, s->c, b);
    if (c == -2) m->oom = true;
    if (c < 0) return false;
    *o = (struct wstate){c, -1};
    return true;
}

/*
** Set out[tok] for each of toks[0..n) (sorted by piece, the trie's order)
** that configuration c takes. Consecutive pieces share prefixes: the walk
** keeps one state per depth and restarts each piece where it differs from
** the one before, and a piece that shares a dead prefix costs one compare.
** 0, or -1 out of memory.
*/
static int feed_sorted(struct lmql__gm *m, int32_t c, const int32_t *toks, const uint8_t *lcp, int32_t n,
                       uint8_t *out) {
    const struct lmql__vocab *v = lmql__trie_vocab(m->trie);
    struct wstate *st = m->wst;
    st[0] = (struct wstate){c, -1};
    uint32_t alive = 0;       /* st[0..alive] are the states after the previous piece's first bytes */
    bool prev_dead = false;   /* the previous piece died on its byte `alive` */
    m->oom = false;
    for (int32_t i = 0; i < n; i++) {
        /* Most pieces share the byte that killed the one before (all the
        ** tokens going on with a letter after a closing quote): the lcp
        ** byte alone skips them, the piece is not read (94k-token leaving
        ** lists were 1.4 ms masks when each piece was compared). */
        uint32_t l = lcp[i];
        if (prev_dead && l > alive) continue;
        uint32_t len;
        const unsigned char *p = (const unsigned char *)lmql__vocab_piece(v, toks[i], &len);
        uint32_t k = l < alive ? l : alive;
        prev_dead = false;
        for (; k < len; k++)
            if (!walk_step(m, &st[k], p[k], &st[k + 1])) {
                prev_dead = true;
                break;
            }
        if (m->oom) return -1;
        alive = k;
        if (!prev_dead) out[toks[i]] = 1;
    }
    return 0;
}

/* Terminal term's leave table (lmql__leave_dfa), made on first use. 0, or
** -1 out of memory. */
static int leave_table(struct lmql__gm *m, int32_t term, const int32_t **tab, const uint8_t **al) {
    if (!m->ltab) {
        m->ltab = lmql__calloc((size_t)m->g->n_term, sizeof *m->ltab);
        m->lal = lmql__calloc((size_t)m->g->n_term, sizeof *m->lal);
        if (!m->ltab || !m->lal) return -1;
    }
    if (!m->ltab[term] && lmql__leave_dfa(&m->g->terms[term], &m->ltab[term], &m->lal[term])) return -1;
    *tab = m->ltab[term];
    *al = m->lal[term];
    return 0;
}

/* The split of regex terminal `term` in DFA state d, made on first use
** (see gsplit.c) and kept for the matcher's life. */
static struct lmql__split *split_of(struct lmql__gm *m, int32_t term, int32_t d) {
    uint64_t key = (((uint64_t)(uint32_t)term << 32) | (uint32_t)d) + 1;
    int32_t at = u64_get(&m->split_ix, key);
    if (at >= 0) return &m->splits[at];
    if (!m->ltab) {
        m->ltab = lmql__calloc((size_t)m->g->n_term, sizeof *m->ltab);
        m->lal = lmql__calloc((size_t)m->g->n_term, sizeof *m->lal);
        if (!m->ltab || !m->lal) return NULL;
    }
    if (m->n_splits == m->cap_splits) {
        int32_t cap = m->cap_splits ? m->cap_splits * 2 : 8;
        struct lmql__split *p = lmql__realloc(m->splits, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        m->splits = p;
        m->cap_splits = cap;
    }
    struct lmql__split sp;
    if (lmql__split_make(m->trie, &m->g->terms[term], d, &m->ltab[term], &m->lal[term], &sp)) return NULL;
    if (u64_put(&m->split_ix, key, m->n_splits)) {
        lmql__split_free(&sp);
        return NULL;
    }
    m->splits[m->n_splits] = sp;
    return &m->splits[m->n_splits++];
}

static bool walker_step(void *ctx, const void *state, unsigned char b, void *out) {
    return walk_step(ctx, state, b, out);
}

/* The leaving tokens of a regex thread by a walk of the trie: the state
** is the thread's leave_dfa state and c's walk state, a token is allowed
** once the former reaches the sink (the terminal has ended) with the latter
** alive. The product prunes the walk to the tokens that stay in the
** terminal or leave it: cheaper than feeding the leaving tokens one by one
** when few stay (`, ` as a regex after its comma: 1 token inside, 58k
** leaving, every one starting with a space). */
struct lwalk {
    struct lmql__gm *m;
    const int32_t *tab;
    const uint8_t *cls;
    int32_t n_cls, sink;
};

struct lwstate {
    int32_t p;
    struct wstate w;
};

static bool lwalk_step(void *ctx, const void *state, unsigned char b, void *out) {
    const struct lwalk *lw = ctx;
    const struct lwstate *s = state;
    struct lwstate *o = out;
    int32_t p = s->p == lw->sink ? lw->sink : lw->tab[(size_t)s->p * (size_t)lw->n_cls + lw->cls[b]];
    if (p < 0 || !walk_step(lw->m, &s->w, b, &o->w)) return false;
    o->p = p;
    return true;
}

static bool lwalk_allow(void *ctx, const void *state) {
    return ((const struct lwstate *)state)->p == ((const struct lwalk *)ctx)->sink;
}

/* Thread t's share of the mask of c (see above) into out, which the caller
** cleared; `first`: out holds nothing yet (an inside mask is then copied,
** not or-ed). 0, or -1 out of memory. */
static int thread_mask(struct lmql__gm *m, int32_t c, struct thread t, bool first, uint8_t *out) {
    const struct lmql__gterm *term = term_of(m, &t);
    int32_t nv = lmql__trie_n_vocab(m->trie);
    if (!term->is_re) {
        /* A literal: inside, the tokens that are a prefix of what is left of
        ** it; leaving, the longer tokens that start with all of it. */
        const char *rest = term->text + t.d;
        size_t n_rest = term->len - (size_t)t.d;
        if (n_rest == 0) return 0;   /* complete: its successors are threads of c */
        int32_t k = lmql__trie_tokens_prefix_of(m->trie, rest, n_rest, m->lit, m->cap_lit);
        if (k > m->cap_lit) {
            int32_t *p = lmql__realloc(m->lit, (size_t)k * sizeof *p);
            if (!p) return -1;
            m->lit = p;
            m->cap_lit = k;
            k = lmql__trie_tokens_prefix_of(m->trie, rest, n_rest, m->lit, m->cap_lit);
        }
        for (int32_t i = 0; i < k; i++) out[m->lit[i]] = 1;
        /* Leaving: the trie below the rest, walked from c after it (the
        ** rest may be one byte, a space: 58k of Llama 3's tokens start
        ** with one, too many to feed one by one). */
        struct wstate s = {c, -1};
        m->oom = false;
        for (size_t i = 0; i < n_rest; i++)
            if (!walk_step(m, &s, (unsigned char)rest[i], &s)) return m->oom ? -1 : 0;
        struct lmql_trie_walker w = {.step = walker_step, .state_size = sizeof s, .ctx = m};
        int rc = lmql__trie_mask_below(m->trie, &w, rest, n_rest, &s, out);
        return rc || m->oom ? -1 : 0;
    }
    struct lmql__split *sp = split_of(m, term_id_of(m, &t), t.d);
    if (!sp) return -1;
    /* A dense inside is expanded to bytes once per matcher (up to
    ** MAX_BYTE_SPLITS of them, 128 KB each for Llama 3): copying or or-ing
    ** bytes a word at a time is 3-4x cheaper than spreading the bitset
    ** again for every new configuration, most of the median mask. */
    if (sp->inside && !sp->bytes && m->n_byte_splits < MAX_BYTE_SPLITS &&
        (sp->bytes = lmql__malloc((size_t)nv + 8))) {
        m->n_byte_splits++;
        lmql__split_inside(sp, nv, sp->bytes, true);
    }
    if (sp->bytes && first) {
        memcpy(out, sp->bytes, (size_t)nv);
    } else if (sp->bytes) {
        int32_t k = 0;
        for (; k + 8 <= nv; k += 8) {
            uint64_t a, b;
            memcpy(&a, out + k, 8);
            memcpy(&b, sp->bytes + k, 8);
            a |= b;
            memcpy(out + k, &a, 8);
        }
        for (; k < nv; k++) out[k] |= sp->bytes[k];
    } else {
        lmql__split_inside(sp, nv, out, first);
    }
    if (sp->n_inside >= sp->n_leave / 4) return feed_sorted(m, c, sp->leave, sp->lcp, sp->n_leave, out);
    struct lwalk lw = {m, NULL, term->cls, term->n_cls, 2 * lmql__regex_n_states(term->re)};
    const uint8_t *al;
    if (leave_table(m, term_id_of(m, &t), &lw.tab, &al)) return -1;
    struct lwstate s0 = {2 * t.d, {c, -1}};
    struct lmql_trie_walker w = {.step = lwalk_step, .allow = lwalk_allow, .state_size = sizeof s0, .ctx = &lw};
    m->oom = false;
    int rc = lmql__trie_mask_below(m->trie, &w, NULL, 0, &s0, out);
    return rc || m->oom ? -1 : 0;
}

static int compute_mask(struct lmql__gm *m, int32_t c, uint8_t *out) {
    int32_t nv = lmql__trie_n_vocab(m->trie);
    if (!m->wst) {
        m->wst = lmql__malloc(((size_t)lmql__trie_max_len(m->trie) + 1) * sizeof *m->wst);
        if (!m->wst) return -1;
    }
    /* A regex thread first: its inside mask is copied rather than cleared and or-ed. */
    int32_t n = m->cfg_n[c], first = -1;
    for (int32_t i = 0; i < n && first < 0; i++)
        if (term_of(m, &m->pool[m->cfg_off[c] + i])->is_re) first = i;
    if (first < 0) memset(out, 0, (size_t)nv);
    /* Threads in the same terminal state (one string in several
    ** alternatives, the same literal under different stacks) add the same
    ** tokens: the inside is theirs alike and the leaving ones are checked
    ** against all of c. So each (terminal, state) counts once (the first
    ** 64 of them remembered; past that, repeats cost time only). */
    uint64_t done[64];
    int n_done = 0;
    for (int32_t k = -1; k < n; k++) {
        int32_t i = k < 0 ? first : k;
        if (i < 0 || (k >= 0 && k == first)) continue;
        struct thread t = m->pool[m->cfg_off[c] + i];   /* the pool may move while leaving tokens are fed */
        uint64_t key = (uint64_t)(uint32_t)term_id_of(m, &t) << 32 | (uint32_t)t.d;
        bool seen = false;
        for (int j = 0; j < n_done && !seen; j++) seen = done[j] == key;
        if (seen) continue;
        if (n_done < 64) done[n_done++] = key;
        if (thread_mask(m, c, t, k < 0, out)) return -1;
    }
    return 0;
}

const uint8_t *lmql__gm_mask(struct lmql__gm *m, int32_t c) {
    LMQL_ASSERT(m->trie != NULL && c >= 0 && c < m->n_cfg);
    const uint8_t *hit = lmql__trie_cache_find(m->cache, &c, sizeof c);
    if (hit) return hit;
    uint8_t *slot = lmql__trie_cache_slot(m->cache, &c, sizeof c);
    if (!slot || compute_mask(m, c, slot)) {
        lmql__trie_cache_clear(m->cache);
        return NULL;
    }
    return slot;
}

int lmql__gm_forced(struct lmql__gm *m, int32_t c, char *out, int cap) {
    int k = 0;
    while (k < cap && c >= 0 && !lmql__gm_accepting(m, c)) {
        int32_t only = -1;
        int n_alive = 0;
        for (int b = 0; b < 256 && n_alive < 2; b++) {
            int32_t s = lmql__gm_step(m, c, (unsigned char)b);
            if (s == -2) return -2;
            if (s >= 0) {
                n_alive++;
                only = b;
            }
        }
        if (n_alive != 1) break;
        out[k++] = (char)only;
        c = lmql__gm_step(m, c, (unsigned char)only);
    }
    return k;
}
