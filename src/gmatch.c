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
** remembered, so walking the vocabulary trie over a configuration seen
** before costs a table lookup per byte, and its mask comes from a cache.
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

/* Bounds on what one matcher remembers: past them a step fails as out of
** memory rather than exhaust the machine (a generation of thousands of
** tokens through a deep grammar stays far below). */
#define MAX_THREADS_TOTAL (1 << 22)
#define MAX_THREADS_CFG   4096

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

/* The tokens of a terminal's DFA state: `inside` (n_vocab bytes) those
** whose every byte keeps the terminal alive -- allowed whatever follows the
** terminal; `leave` those that are not inside but have a prefix (maybe
** empty) after which the terminal may end -- allowed or not depending on
** what follows it, checked per configuration. No other token can be
** allowed from a configuration whose one thread is in this state. */
struct split {
    uint8_t *inside;
    int32_t *leave;
    int32_t n_leave;
};

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
    struct split *splits;
    int32_t n_splits, cap_splits;
    struct u64map split_ix;      /* (terminal << 32 | d) + 1 -> index */
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
    for (int32_t i = 0; i < m->n_splits; i++) {
        free(m->splits[i].inside);
        free(m->splits[i].leave);
    }
    free(m->splits);
    u64_free(&m->split_ix);
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
** The walk's state is a configuration, or, inside the one terminal of a
** single-thread configuration (a string, a number), that configuration with
** its thread's DFA state moved on: stepping it is one table lookup, and a
** configuration is interned only when the terminal may end (its successors
** begin) -- most bytes of most tokens never get there.
*/
struct wstate {
    int32_t c;    /* a configuration id */
    int32_t d;    /* -1: c itself; else c has one thread, now in DFA state d (which cannot end the terminal) */
};

static const struct thread *only_thread(const struct lmql__gm *m, int32_t c) {
    return m->cfg_n[c] == 1 ? &m->pool[m->cfg_off[c]] : NULL;
}

static const struct lmql__gterm *term_of(const struct lmql__gm *m, const struct thread *t) {
    const struct lmql_grammar *g = m->g;
    return &g->terms[LMQL_G_T_ID(g->items[g->alts[t->alt].off + t->idx])];
}

static bool walk_step(void *ctx, const void *state, unsigned char b, void *out) {
    struct lmql__gm *m = ctx;
    const struct wstate *s = state;
    struct wstate *o = out;
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

/* Bytes that leave every thread in its DFA state: the configuration then
** steps to itself (it is closed, and nothing changes). */
static void walk_loops(void *ctx, const void *state, uint64_t set[4]) {
    struct lmql__gm *m = ctx;
    const struct wstate *s = state;
    int32_t c = s->c;
    set[0] = set[1] = set[2] = set[3] = ~0ULL;
    for (int32_t i = 0; i < m->cfg_n[c]; i++) {
        const struct thread *t = &m->pool[m->cfg_off[c] + i];
        const struct lmql__gterm *term = term_of(m, t);
        if (!term->is_re) {
            set[0] = set[1] = set[2] = set[3] = 0;
            return;
        }
        int32_t d = s->d >= 0 ? s->d : t->d;
        const int32_t *row = term->table + (size_t)d * (size_t)term->n_cls;
        for (int b = 0; b < 256; b++)
            if (row[term->cls[b]] != d) set[b >> 6] &= ~(1ULL << (b & 63));
    }
}

/* The walk that finds the tokens able to leave a terminal: its state is
** the DFA state and whether some prefix so far may end the terminal; once
** the DFA dies after such a prefix, the token "left" and every continuation
** of it is kept (a sink), to be checked against what follows. */
struct lstate {
    int32_t d;         /* -1 once left */
    int32_t could_end; /* some prefix so far (the empty one too) may end the terminal */
};

static bool leave_step(void *ctx, const void *state, unsigned char b, void *out) {
    const struct lmql__gterm *t = ctx;
    const struct lstate *s = state;
    struct lstate *o = out;
    if (s->d < 0) {
        *o = *s;
        return true;
    }
    int32_t could = s->could_end || term_accepting(t, s->d);
    int32_t d = lmql__gterm_step(t, s->d, b);
    if (d < 0 && !could) return false;
    *o = (struct lstate){d, could};
    return true;
}

static bool leave_allow(void *ctx, const void *state) {
    (void)ctx;
    return ((const struct lstate *)state)->d < 0;
}

static void leave_loops(void *ctx, const void *state, uint64_t set[4]) {
    const struct lmql__gterm *t = ctx;
    const struct lstate *s = state;
    if (s->d < 0) {
        set[0] = set[1] = set[2] = set[3] = ~0ULL;
        return;
    }
    set[0] = set[1] = set[2] = set[3] = 0;
    /* Inside, a byte loops only where the state stays and the flag too. */
    if (!s->could_end && term_accepting(t, s->d)) return;
    const int32_t *row = t->table + (size_t)s->d * (size_t)t->n_cls;
    for (int b = 0; b < 256; b++)
        if (row[t->cls[b]] == s->d) set[b >> 6] |= 1ULL << (b & 63);
}

/* The split of regex terminal `term` in DFA state d, made on first use. */
static const struct split *split_of(struct lmql__gm *m, int32_t term, int32_t d) {
    uint64_t key = (((uint64_t)(uint32_t)term << 32) | (uint32_t)d) + 1;
    int32_t at = u64_get(&m->split_ix, key);
    if (at >= 0) return &m->splits[at];
    const struct lmql__gterm *t = &m->g->terms[term];
    int32_t nv = lmql__trie_n_vocab(m->trie);
    struct split sp = {lmql__malloc((size_t)nv), NULL, 0};
    uint8_t *left = lmql__malloc((size_t)nv);
    struct lmql_trie_walker w = {.step = leave_step, .allow = leave_allow, .loops = leave_loops,
                                 .state_size = sizeof(struct lstate), .ctx = (void *)t};
    struct lstate s0 = {d, 0};
    /* What a terminal state's tokens are depends only on the pattern, the
    ** state and the vocabulary: the vocabulary's memo keeps them for every
    ** matcher (the next hole, the next instance of a benchmark). Keys are
    ** tagged: 'I' inside mask, 'N' count and 'L' list of leaving tokens. */
    struct lmql__memo *memo = lmql__vocab_memo(lmql__trie_vocab(m->trie));
    size_t kl = 1 + sizeof d + t->len;
    char *mkey = lmql__malloc(kl);
    int rc = !sp.inside || !left || !mkey ? -1 : 0;
    if (mkey) {
        memcpy(mkey + 1, &d, sizeof d);
        memcpy(mkey + 1 + sizeof d, t->text, t->len);
    }
    int32_t n = -1;
    if (rc == 0 && memo) {
        mkey[0] = 'N';
        if (lmql__memo_get(memo, mkey, kl, &n, sizeof n) && n >= 0 && (sp.leave = lmql__malloc(((size_t)n + 1) * sizeof *sp.leave))) {
            mkey[0] = 'I';
            bool hit = lmql__memo_get(memo, mkey, kl, sp.inside, (size_t)nv);
            mkey[0] = 'L';
            if (hit && lmql__memo_get(memo, mkey, kl, sp.leave, (size_t)n * sizeof *sp.leave)) sp.n_leave = n;
            else n = -1;
        } else {
            n = -1;
        }
    }
    if (rc == 0 && n < 0) {   /* not remembered: walk */
        free(sp.leave);
        sp.leave = NULL;
        sp.n_leave = 0;
        rc = lmql__trie_mask_dfa(m->trie, t->table, t->n_cls, t->cls, NULL, d, sp.inside);
        if (rc == 0) rc = lmql__trie_mask(m->trie, &w, &s0, left);
        n = 0;
        for (int32_t i = 0; rc == 0 && i < nv; i++) n += left[i] && !sp.inside[i];
        if (rc == 0 && !(sp.leave = lmql__malloc(((size_t)n + 1) * sizeof *sp.leave))) rc = -1;
        for (int32_t i = 0; rc == 0 && i < nv; i++)
            if (left[i] && !sp.inside[i]) sp.leave[sp.n_leave++] = i;
        if (rc == 0 && memo) {
            mkey[0] = 'I';
            lmql__memo_put(memo, mkey, kl, sp.inside, (size_t)nv);
            mkey[0] = 'L';
            lmql__memo_put(memo, mkey, kl, sp.leave, (size_t)n * sizeof *sp.leave);
            mkey[0] = 'N';   /* last: a count found means the other two were stored */
            lmql__memo_put(memo, mkey, kl, &n, sizeof n);
        }
    }
    free(mkey);
    free(left);
    if (rc == 0 && m->n_splits == m->cap_splits) {
        int32_t cap = m->cap_splits ? m->cap_splits * 2 : 8;
        struct split *p = lmql__realloc(m->splits, (size_t)cap * sizeof *p);
        if (p) {
            m->splits = p;
            m->cap_splits = cap;
        } else {
            rc = -1;
        }
    }
    if (rc || u64_put(&m->split_ix, key, m->n_splits)) {
        free(sp.inside);
        free(sp.leave);
        return NULL;
    }
    m->splits[m->n_splits] = sp;
    return &m->splits[m->n_splits++];
}

/* The mask of a configuration whose one thread is inside regex terminal
** `term` (thread t): the split's inside tokens, and those of its leaving
** tokens whose bytes the configuration takes. Into out (n_vocab bytes);
** 0, or -1 out of memory. */
static int single_mask(struct lmql__gm *m, int32_t c, const struct thread *t, int32_t term, uint8_t *out) {
    const struct split *sp = split_of(m, term, t->d);
    if (!sp) return -1;
    memcpy(out, sp->inside, (size_t)lmql__trie_n_vocab(m->trie));
    const struct lmql__vocab *v = lmql__trie_vocab(m->trie);
    for (int32_t i = 0; i < sp->n_leave; i++) {
        uint32_t len;
        const char *p = lmql__vocab_piece(v, sp->leave[i], &len);
        int32_t r = lmql__gm_feed(m, c, p, len);
        if (r == -2) return -1;
        out[sp->leave[i]] = r >= 0;
    }
    return 0;
}

const uint8_t *lmql__gm_mask(struct lmql__gm *m, int32_t c) {
    LMQL_ASSERT(m->trie != NULL && c >= 0 && c < m->n_cfg);
    struct wstate s = {c, -1};
    const struct thread *t = only_thread(m, c);
    if (t && term_of(m, t)->is_re) {
        const uint8_t *hit = lmql__trie_cache_find(m->cache, &s, sizeof s);
        if (hit) return hit;
        uint8_t *slot = lmql__trie_cache_slot(m->cache, &s, sizeof s);
        const struct lmql_grammar *g = m->g;
        int32_t term = LMQL_G_T_ID(g->items[g->alts[t->alt].off + t->idx]);
        struct thread copy = *t;   /* the pool may move while the leaving tokens are fed */
        if (!slot || single_mask(m, c, &copy, term, slot)) {
            lmql__trie_cache_clear(m->cache);
            return NULL;
        }
        return slot;
    }
    struct lmql_trie_walker w = {
        .step = walk_step, .allow = NULL, .loops = walk_loops, .state_size = sizeof(struct wstate), .ctx = m};
    m->oom = false;
    const uint8_t *mask = lmql__trie_cache_mask(m->cache, m->trie, &w, &s);
    if (m->oom) {
        lmql__trie_cache_clear(m->cache);
        return NULL;
    }
    return mask;
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
