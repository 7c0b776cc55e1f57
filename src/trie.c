/*
** The vocabulary trie (see trie.h for what it is for).
**
** Layout. Tokens are sorted by piece (bytewise, a prefix before its
** extensions), which is exactly the preorder of the nodes where they end;
** perm lists them in that order. Nodes live in one array in depth-first
** preorder; node i stores the byte on the edge into it, its depth, and
** `skip`, the index just past its subtree, so a dead state drops the
** subtree with one jump and a walk is a forward scan of the array (no child
** pointers). `tok` is the number of tokens ending at nodes before i: the
** tokens ending at i are perm[tok(i) .. tok(i+1)) and those of its whole
** subtree perm[tok(i) .. tok(skip(i))). A sentinel node at n_nodes closes
** both ranges.
**
** A level-by-level layout with contiguous children was tried and measured:
** full walks got 4x slower (each descent jumps to another level) and sparse
** walks no faster, so preorder stayed.
**
** Walks carry one state per depth on an explicit stack: the parent of node i
** is the last node seen at depth(i) - 1, so its state is stack[depth - 1].
**
** Nodes with a large subtree also carry the set of bytes used below them.
** When every one of those bytes loops on the current (allowed) state, all
** tokens of the subtree are allowed without stepping it: this is what makes
** permissive states ("anything but a newline", no constraint at all) cost
** little more than copying a mask.
*/
#include "trie.h"

#include "model.h"

#include <stdlib.h>
#include <string.h>

/* Subtrees of at least this many nodes record their byte set: small ones
** are cheaper to walk than to test, and the sets stay a few % of nodes. */
#define TRIE_SET_MIN_NODES 16
#define TRIE_NO_SET        UINT32_MAX
/* Bytes of walk stack kept on the C stack; deeper tries allocate. */
#define TRIE_LOCAL_STACK   8192

struct trie_node {
    uint32_t skip;          /* index just past this node's subtree */
    uint32_t tok;           /* tokens ending at nodes before this one */
    uint32_t set;           /* index into sets of the bytes below, or TRIE_NO_SET */
    uint16_t depth;         /* bytes from the root (root = 0) */
    uint8_t  byte;          /* the byte on the edge into this node */
    uint8_t  pad;
};

struct trie_set {
    uint64_t w[4];
};

struct lmql_trie {
    const struct lmql__vocab *vocab;   /* built from; it owns the trie, so it outlives it */
    int32_t n_vocab;        /* mask length */
    int32_t n_tokens;       /* tokens with a non-empty piece */
    uint32_t n_nodes;       /* real nodes, root included; nodes[n_nodes] is the sentinel */
    int32_t max_len;        /* deepest node */
    uint32_t n_sets, cap_sets;
    struct trie_node *nodes;
    int32_t *perm;          /* token ids in trie order */
    struct trie_set *sets;
    uint8_t *base;          /* n_vocab bytes: 1 for every token in the trie */
    uint32_t root_child[256];   /* node of each first byte, 0 when none */
    uint8_t ident[256];         /* byte_class when the DFA gives none */
};

/* ---------------------------------------------------------------- build */

struct sort_item {
    const unsigned char *p;
    uint32_t len;
    int32_t id;
};

/* Bytewise order with a prefix first; equal pieces by id so builds repeat. */
static int cmp_item(const void *a, const void *b) {
    const struct sort_item *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static uint32_t common_prefix(const struct sort_item *a, const struct sort_item *b) {
    uint32_t n = a->len < b->len ? a->len : b->len, i = 0;
    while (i < n && a->p[i] == b->p[i]) i++;
    return i;
}

static inline void set_or(struct trie_set *d, const struct trie_set *s) {
    for (int k = 0; k < 4; k++) d->w[k] |= s->w[k];
}

static inline void set_add(struct trie_set *d, unsigned b) {
    d->w[b >> 6] |= (uint64_t)1 << (b & 63);
}

/*
** Close the open node at depth d (its subtree ends before node `end`): fix
** its skip, hand its byte set up to its parent, and keep the set if the
** subtree is large. acc[d] holds the bytes below the open node at depth d.
*/
static int close_node(struct lmql_trie *t, const uint32_t *path, struct trie_set *acc, int d, uint32_t end) {
    struct trie_node *x = &t->nodes[path[d]];
    x->skip = end;
    if (d > 0) {
        set_or(&acc[d - 1], &acc[d]);
        set_add(&acc[d - 1], x->byte);
    }
    if (end - path[d] < TRIE_SET_MIN_NODES) return 0;
    if (t->n_sets == t->cap_sets) {
        uint32_t cap = t->cap_sets ? t->cap_sets * 2 : 256;
        struct trie_set *s = lmql__realloc(t->sets, cap * sizeof *s);
        if (!s) return -1;
        t->sets = s;
        t->cap_sets = cap;
    }
    t->sets[t->n_sets] = acc[d];
    x->set = t->n_sets++;
    return 0;
}

/* Nodes in preorder from the sorted items; fills perm and base too. */
static int build_nodes(struct lmql_trie *t, const struct sort_item *items, int32_t n) {
    uint32_t *path = lmql__malloc(((size_t)t->max_len + 1) * sizeof *path);
    struct trie_set *acc = lmql__calloc((size_t)t->max_len + 1, sizeof *acc);
    t->nodes = lmql__calloc((size_t)t->n_nodes + 1, sizeof *t->nodes);
    if (!path || !acc || !t->nodes) goto fail;

    /* path[d] is the open node at depth d on the current token's path;
    ** nodes deeper than the shared prefix are closed (their subtree ends
    ** here) before the new branch opens. */
    uint32_t ni = 1;
    int open = 0;               /* depth of the deepest open node */
    path[0] = 0;
    t->nodes[0].set = TRIE_NO_SET;
    for (int32_t k = 0; k < n; k++) {
        const struct sort_item *it = &items[k];
        uint32_t lcp = k ? common_prefix(&items[k - 1], it) : 0;
        for (; open > (int)lcp; open--)
            if (close_node(t, path, acc, open, ni)) goto fail;
        for (uint32_t d = lcp + 1; d <= it->len; d++) {
            struct trie_node *x = &t->nodes[ni];
            x->tok = (uint32_t)k;
            x->set = TRIE_NO_SET;
            x->depth = (uint16_t)d;
            x->byte = it->p[d - 1];
            if (d == 1) t->root_child[x->byte] = ni;
            memset(&acc[d], 0, sizeof acc[d]);
            path[d] = ni++;
            open = (int)d;
        }
        /* Duplicate pieces (lcp == len) end at the node already open. */
        t->perm[k] = it->id;
        t->base[it->id] = 1;
    }
    for (; open >= 0; open--)
        if (close_node(t, path, acc, open, ni)) goto fail;
    LMQL_ASSERT(ni == t->n_nodes);   /* one node per byte beyond the shared prefix, as counted */
    t->nodes[ni].tok = (uint32_t)n;     /* the sentinel */
    t->nodes[ni].skip = ni;
    t->nodes[ni].set = TRIE_NO_SET;
    free(path);
    free(acc);
    return 0;
fail:
    free(path);
    free(acc);
    return -1;
}

struct lmql_trie *lmql__trie_build(const struct lmql__vocab *v) {
    struct lmql_trie *t = lmql__calloc(1, sizeof *t);
    struct sort_item *items = NULL;
    if (!t) return NULL;
    t->vocab = v;
    t->n_vocab = v->n_tokens;
    for (int i = 0; i < 256; i++) t->ident[i] = (uint8_t)i;

    items = lmql__malloc((v->n_tokens ? (size_t)v->n_tokens : 1) * sizeof *items);
    if (!items) goto fail;
    int32_t n = 0;
    uint32_t max_len = 0;
    for (int32_t i = 0; i < v->n_tokens; i++) {
        uint32_t len;
        const char *p = lmql__vocab_piece(v, i, &len);
        if (!len) continue;
        /* Depths are 16-bit; no real vocabulary comes near. */
        if (len > UINT16_MAX) goto fail;
        items[n].p = (const unsigned char *)p;
        items[n].len = len;
        items[n].id = i;
        if (len > max_len) max_len = len;
        n++;
    }
    qsort(items, (size_t)n, sizeof *items, cmp_item);
    t->n_tokens = n;
    t->max_len = (int32_t)max_len;

    /* Each token adds one node per byte beyond what it shares with the
    ** token before it (its longest shared prefix with any earlier token). */
    size_t n_nodes = 1;
    for (int32_t k = 0; k < n; k++)
        n_nodes += items[k].len - (k ? common_prefix(&items[k - 1], &items[k]) : 0);
    if (n_nodes >= UINT32_MAX) goto fail;
    t->n_nodes = (uint32_t)n_nodes;
    t->perm = lmql__malloc((n ? (size_t)n : 1) * sizeof *t->perm);
    t->base = lmql__calloc(v->n_tokens ? (size_t)v->n_tokens : 1, 1);
    if (!t->perm || !t->base) goto fail;
    if (build_nodes(t, items, n)) goto fail;

    free(items);
    return t;
fail:
    free(items);
    lmql__trie_free(t);
    return NULL;
}

void lmql__trie_free(struct lmql_trie *t) {
    if (!t) return;
    free(t->nodes);
    free(t->perm);
    free(t->sets);
    free(t->base);
    free(t);
}

const struct lmql__vocab *lmql__trie_vocab(const struct lmql_trie *t) { return t->vocab; }
int32_t lmql__trie_n_vocab(const struct lmql_trie *t) { return t->n_vocab; }
int32_t lmql__trie_n_tokens(const struct lmql_trie *t) { return t->n_tokens; }
int32_t lmql__trie_n_nodes(const struct lmql_trie *t) { return (int32_t)t->n_nodes; }
int32_t lmql__trie_max_len(const struct lmql_trie *t) { return t->max_len; }

size_t lmql__trie_memory(const struct lmql_trie *t) {
    return sizeof *t + ((size_t)t->n_nodes + 1) * sizeof *t->nodes + (size_t)t->n_tokens * sizeof *t->perm +
           (size_t)t->n_sets * sizeof *t->sets + (size_t)t->n_vocab;
}

/* ----------------------------------------------------------------- walks */

static uint32_t child(const struct lmql_trie *t, uint32_t p, unsigned char b);

/*
** Writing the mask. A walk finds the allowed tokens as ranges of trie
** positions, in increasing order. Writing them through perm is one random
** store per token, which dominates permissive masks (nearly every token
** allowed). So the ranges are buffered: at the end, if fewer tokens are
** denied than allowed, the mask starts as a copy of `base` (every trie token
** allowed) and only the gaps between ranges are cleared. When the buffer
** overflows, the walk has been long anyway: it writes the allowed tokens
** directly from then on.
*/
#define EMIT_RANGES 4096

struct emitter {
    const struct lmql_trie *t;
    uint8_t *mask;
    uint32_t (*r)[2];       /* buffered ranges [lo, hi); NULL = streaming */
    int n;
    uint32_t allowed;
    bool pos;               /* the mask is by trie position: ranges are set directly */
    bool ranges;            /* no mask: the caller's ranges r[0..cap) are the result */
    bool over;              /* ranges: more than cap of them */
    uint8_t val;            /* pos: the value written (the allowed entry of the state) */
    int cap;
};

static inline void scatter(const int32_t *perm, uint32_t lo, uint32_t hi, uint8_t *mask, uint8_t v) {
    for (uint32_t k = lo; k < hi; k++) mask[perm[k]] = v;
}

static void emit_begin(struct emitter *e, const struct lmql_trie *t, uint8_t *mask) {
    e->t = t;
    e->mask = mask;
    e->n = 0;
    e->allowed = 0;
    e->pos = e->ranges = e->over = false;
    /* Without a buffer, stream from the start (no failure to report). */
    e->r = lmql__malloc(EMIT_RANGES * sizeof *e->r);
    if (!e->r) memset(mask, 0, (size_t)t->n_vocab);
}

static void emit_stream(struct emitter *e) {
    memset(e->mask, 0, (size_t)e->t->n_vocab);
    for (int k = 0; k < e->n; k++) scatter(e->t->perm, e->r[k][0], e->r[k][1], e->mask, 1);
    free(e->r);
    e->r = NULL;
}

/* Allow the tokens at trie positions [lo, hi). */
static inline void emit(struct emitter *e, uint32_t lo, uint32_t hi) {
    if (lo == hi) return;
    if (e->ranges) {
        if (e->n && e->r[e->n - 1][1] == lo) {
            e->r[e->n - 1][1] = hi;
        } else if (e->n == e->cap) {
            e->over = true;
        } else {
            e->r[e->n][0] = lo;
            e->r[e->n][1] = hi;
            e->n++;
        }
        return;
    }
    if (e->pos) {
        memset(e->mask + lo, e->val, hi - lo);
        return;
    }
    if (!e->r) {
        scatter(e->t->perm, lo, hi, e->mask, 1);
        return;
    }
    e->allowed += hi - lo;
    if (e->n && e->r[e->n - 1][1] == lo) {
        e->r[e->n - 1][1] = hi;
        return;
    }
    if (e->n == EMIT_RANGES) {
        emit_stream(e);
        scatter(e->t->perm, lo, hi, e->mask, 1);
        return;
    }
    e->r[e->n][0] = lo;
    e->r[e->n][1] = hi;
    e->n++;
}

static void emit_end(struct emitter *e) {
    if (e->pos || e->ranges || !e->r) return;
    const struct lmql_trie *t = e->t;
    LMQL_ASSERT(e->allowed <= (uint32_t)t->n_tokens);   /* the ranges are disjoint */
    uint32_t denied = (uint32_t)t->n_tokens - e->allowed;
    if (denied < e->allowed) {
        memcpy(e->mask, t->base, (size_t)t->n_vocab);
        uint32_t at = 0;
        for (int k = 0; k < e->n; k++) {
            scatter(t->perm, at, e->r[k][0], e->mask, 0);
            at = e->r[k][1];
        }
        scatter(t->perm, at, (uint32_t)t->n_tokens, e->mask, 0);
        free(e->r);
        e->r = NULL;
    } else {
        emit_stream(e);
    }
}

static inline bool set_within(const struct trie_set *s, const uint64_t loops[4]) {
    return !((s->w[0] & ~loops[0]) | (s->w[1] & ~loops[1]) | (s->w[2] & ~loops[2]) | (s->w[3] & ~loops[3]));
}

/* Blobs on the walk stack are 8-byte aligned and at least 8 bytes apart. */
static size_t state_stride(size_t n) { return (n + 7) & ~(size_t)7; }

/* Whether every byte below node x loops on state s of walker w (which has a
** loops callback), s being allowed: then the whole subtree is allowed. */
static bool subtree_loops(const struct lmql_trie *t, const struct lmql_trie_walker *w, const struct trie_node *x,
                          const void *s) {
    uint64_t loops[4] = {0, 0, 0, 0};
    w->loops(w->ctx, s, loops);
    return set_within(&t->sets[x->set], loops) && (!w->allow || w->allow(w->ctx, s));
}

int lmql__trie_mask(const struct lmql_trie *t, const struct lmql_trie_walker *w, const void *start_state,
                    uint8_t *mask) {
    union { max_align_t a; unsigned char b[TRIE_LOCAL_STACK]; } local;
    if (!w->state_size || w->state_size > LMQL_TRIE_MAX_STATE) {
        memset(mask, 0, (size_t)t->n_vocab);
        return -1;
    }
    size_t ss = w->state_size, stride = state_stride(ss);
    size_t need = ((size_t)t->max_len + 1) * stride;
    unsigned char *st = need <= sizeof local.b ? local.b : lmql__malloc(need);
    if (!st) {
        memset(mask, 0, (size_t)t->n_vocab);
        return -1;
    }
    memcpy(st, start_state, ss);

    struct emitter e;
    emit_begin(&e, t, mask);
    const struct trie_node *nd = t->nodes;
    uint32_t i = 1;
    if (w->loops && nd[0].set != TRIE_NO_SET && subtree_loops(t, w, &nd[0], st)) {
        emit(&e, 0, (uint32_t)t->n_tokens);
        i = t->n_nodes;
    }
    while (i < t->n_nodes) {
        const struct trie_node *x = &nd[i];
        unsigned char *cur = st + x->depth * stride;
        if (!w->step(w->ctx, cur - stride, x->byte, cur)) {
            i = x->skip;
            continue;
        }
        if (x->set != TRIE_NO_SET && w->loops && subtree_loops(t, w, x, cur)) {
            emit(&e, x->tok, nd[x->skip].tok);
            i = x->skip;
            continue;
        }
        if (nd[i + 1].tok != x->tok && (!w->allow || w->allow(w->ctx, cur))) emit(&e, x->tok, nd[i + 1].tok);
        i++;
    }
    emit_end(&e);
    if (st != local.b) free(st);
    return 0;
}

int lmql__trie_mask_below(const struct lmql_trie *t, const struct lmql_trie_walker *w, const void *bytes, size_t n,
                          const void *state, uint8_t *mask) {
    union { max_align_t a; unsigned char b[TRIE_LOCAL_STACK]; } local;
    if (!w->state_size || w->state_size > LMQL_TRIE_MAX_STATE) return -1;
    uint32_t x = 0;
    for (size_t k = 0; k < n; k++)
        if (!(x = child(t, x, ((const unsigned char *)bytes)[k]))) return 0;
    const struct trie_node *nd = t->nodes;
    size_t ss = w->state_size, stride = state_stride(ss), base = nd[x].depth;
    size_t need = ((size_t)t->max_len + 1 - base) * stride;
    unsigned char *st = need <= sizeof local.b ? local.b : lmql__malloc(need);
    if (!st) return -1;
    memcpy(st, state, ss);
    for (uint32_t i = x + 1; i < nd[x].skip;) {
        const struct trie_node *y = &nd[i];
        unsigned char *cur = st + (y->depth - base) * stride;
        if (!w->step(w->ctx, cur - stride, y->byte, cur)) {
            i = y->skip;
            continue;
        }
        if (!w->allow || w->allow(w->ctx, cur)) scatter(t->perm, y->tok, nd[i + 1].tok, mask, 1);
        i++;
    }
    if (st != local.b) free(st);
    return 0;
}

/*
** What the DFA walk needs to know of a state beyond its row: the bytes that
** loop on it, and whether any byte leaves it alive (a state with none, like
** the end of a length budget, ends the walk below the current node). Found
** on demand for recently seen states; rows of states never reached where it
** matters are never scanned.
*/
#define DFA_INFO_SLOTS 16
struct dfa_info {
    int32_t state[DFA_INFO_SLOTS];
    bool live[DFA_INFO_SLOTS];
    uint64_t loops[DFA_INFO_SLOTS][4];
};

/* cset (NULL when there are over TRIE_CSET_MAX classes): per class, its
** bytes, so a row is read per class rather than per byte (a new state's
** 256-byte scan was 8% of all instructions on 10 MaskBench schemas). */
#define TRIE_CSET_MAX 64
static unsigned dfa_info_of(struct dfa_info *c, const int32_t *table, int n_classes, const uint8_t *cls,
                            const uint64_t (*cset)[4], int32_t s) {
    unsigned h = (unsigned)s % DFA_INFO_SLOTS;
    if (c->state[h] != s) {
        const int32_t *row = table + (size_t)s * (size_t)n_classes;
        uint64_t *set = c->loops[h];
        bool live = false;
        c->state[h] = s;
        memset(set, 0, sizeof c->loops[h]);
        if (cset) {
            for (int k = 0; k < n_classes; k++) {
                live |= row[k] >= 0;
                if (row[k] == s)
                    for (int j = 0; j < 4; j++) set[j] |= cset[k][j];
            }
        } else {
            for (unsigned b = 0; b < 256; b++) {
                int32_t n = row[cls[b]];
                live |= n >= 0;
                if (n == s) set[b >> 6] |= (uint64_t)1 << (b & 63);
            }
        }
        c->live[h] = live;
    }
    return h;
}

/* The DFA walk into a mask by token (pos false), a mask by trie position
** (pos true), or, when mask is NULL, ranges of positions into r[0..cap):
** their count, or -2 past cap (the walk stops there). */
static int mask_dfa(const struct lmql_trie *t, const int32_t *table, int n_classes, const uint8_t *byte_class,
                    const uint8_t *allowed, int32_t start, uint8_t *mask, bool pos, uint32_t (*r)[2], int cap) {
    int32_t local[TRIE_LOCAL_STACK / sizeof(int32_t)];
    size_t len = !mask ? 0 : pos ? (size_t)t->n_tokens : (size_t)t->n_vocab;
    struct dfa_info info;
    LMQL_ASSERT(byte_class || n_classes == 256);   /* no class map: the byte is its column */
    LMQL_ASSERT(n_classes >= 1 && n_classes <= 256);
    if (start < 0) {
        if (len) memset(mask, 0, len);
        return 0;
    }
    const uint8_t *cls = byte_class ? byte_class : t->ident;
    size_t need = (size_t)t->max_len + 1;
    int32_t *st = need <= sizeof local / sizeof *local ? local : lmql__malloc(need * sizeof *st);
    if (!st) {
        if (len) memset(mask, 0, len);
        return -1;
    }
    for (int k = 0; k < DFA_INFO_SLOTS; k++) info.state[k] = -1;
    st[0] = start;
    uint64_t csetv[TRIE_CSET_MAX][4];
    const uint64_t (*cset)[4] = NULL;
    if (n_classes <= TRIE_CSET_MAX) {
        memset(csetv, 0, (size_t)n_classes * sizeof csetv[0]);
        for (unsigned b = 0; b < 256; b++) csetv[cls[b]][b >> 6] |= (uint64_t)1 << (b & 63);
        cset = (const uint64_t (*)[4])csetv;
    }

    struct emitter e;
    if (!mask) {
        e = (struct emitter){.t = t, .r = r, .ranges = true, .cap = cap};
    } else if (pos) {
        e = (struct emitter){.t = t, .mask = mask, .pos = true};
        memset(mask, 0, len);
    } else {
        emit_begin(&e, t, mask);
    }
    const struct trie_node *nd = t->nodes;
    uint32_t i = 1;
    e.val = allowed ? allowed[start] : 1;
    if ((!allowed || allowed[start]) && nd[0].set != TRIE_NO_SET &&
        set_within(&t->sets[nd[0].set], info.loops[dfa_info_of(&info, table, n_classes, cls, cset, start)])) {
        emit(&e, 0, (uint32_t)t->n_tokens);
        i = t->n_nodes;
    }
    while (i < t->n_nodes && !e.over) {
        const struct trie_node *x = &nd[i];
        int32_t s = table[(size_t)st[x->depth - 1] * (size_t)n_classes + cls[x->byte]];
        if (s < 0) {
            i = x->skip;
            continue;
        }
        st[x->depth] = s;
        bool ok = !allowed || allowed[s];
        e.val = allowed ? allowed[s] : 1;
        /* Children: maybe all allowed at once, maybe all dead. Asked only
        ** where a subtree is large (it has a byte set): a state's info is a
        ** scan of its 256-byte row, and a counting DFA (a string with a
        ** maxLength) meets a new state at nearly every node -- that scan
        ** was most of a 25-77 ms split walk of such a string. */
        if (x->set != TRIE_NO_SET) {
            unsigned h = dfa_info_of(&info, table, n_classes, cls, cset, s);
            if (ok && set_within(&t->sets[x->set], info.loops[h])) {
                emit(&e, x->tok, nd[x->skip].tok);
                i = x->skip;
                continue;
            }
            if (!info.live[h]) {
                if (ok) emit(&e, x->tok, nd[i + 1].tok);
                i = x->skip;
                continue;
            }
        }
        if (ok) emit(&e, x->tok, nd[i + 1].tok);
        i++;
    }
    emit_end(&e);
    if (st != local) free(st);
    return !mask ? (e.over ? -2 : e.n) : 0;
}

int lmql__trie_mask_dfa(const struct lmql_trie *t, const int32_t *table, int n_classes,
                        const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint8_t *mask) {
    return mask_dfa(t, table, n_classes, byte_class, allowed, start, mask, false, NULL, 0);
}

int lmql__trie_mask_dfa_order(const struct lmql_trie *t, const int32_t *table, int n_classes,
                              const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint8_t *mask) {
    return mask_dfa(t, table, n_classes, byte_class, allowed, start, mask, true, NULL, 0);
}

int lmql__trie_ranges_dfa(const struct lmql_trie *t, const int32_t *table, int n_classes,
                          const uint8_t *byte_class, const uint8_t *allowed, int32_t start, uint32_t (*r)[2],
                          int cap) {
    int n = mask_dfa(t, table, n_classes, byte_class, allowed, start, NULL, false, r, cap);
    return n < 0 ? -1 : n;
}

/* --------------------------------------------------------------- lookups */

/* The child of node p along byte b, or 0 when there is none. Children are
** in byte order, so the scan stops early. */
static uint32_t child(const struct lmql_trie *t, uint32_t p, unsigned char b) {
    if (p == 0) return t->root_child[b];
    const struct trie_node *nd = t->nodes;
    for (uint32_t j = p + 1; j < nd[p].skip; j = nd[j].skip) {
        if (nd[j].byte == b) return j;
        if (nd[j].byte > b) break;
    }
    return 0;
}

int32_t lmql__trie_tokens_with_prefix(const struct lmql_trie *t, const void *bytes, size_t n,
                                      const int32_t **toks) {
    const unsigned char *p = bytes;
    uint32_t x = 0;
    *toks = t->perm;
    for (size_t k = 0; k < n; k++)
        if (!(x = child(t, x, p[k]))) return 0;
    *toks = t->perm + t->nodes[x].tok;
    LMQL_ASSERT(t->nodes[t->nodes[x].skip].tok >= t->nodes[x].tok);   /* a subtree's tokens are a range */
    return (int32_t)(t->nodes[t->nodes[x].skip].tok - t->nodes[x].tok);
}

int32_t lmql__trie_order(const struct lmql_trie *t, const int32_t **perm) {
    *perm = t->perm;
    return t->n_tokens;
}

int32_t lmql__trie_tokens_prefix_of(const struct lmql_trie *t, const void *bytes, size_t n, int32_t *out,
                                    int32_t cap) {
    const unsigned char *p = bytes;
    const struct trie_node *nd = t->nodes;
    int32_t count = 0;
    uint32_t x = 0;
    for (size_t k = 0; k < n; k++) {
        if (!(x = child(t, x, p[k]))) break;
        for (uint32_t j = nd[x].tok; j < nd[x + 1].tok; j++, count++)
            if (count < cap) out[count] = t->perm[j];
    }
    return count;
}

/* ----------------------------------------------------------------- cache */

struct cache_entry {
    uint64_t used;          /* clock of the last use; 0 = empty */
    size_t n;
    unsigned char key[LMQL_TRIE_MAX_STATE];
    uint8_t *mask;
};

struct lmql_trie_cache {
    int n_entries;
    size_t n_vocab;
    uint64_t clock, hits, misses;
    struct cache_entry *e;
    uint8_t *masks;         /* n_entries * n_vocab bytes, one block */
};

struct lmql_trie_cache *lmql__trie_cache_new(const struct lmql_trie *t, int n_entries) {
    if (n_entries < 1) n_entries = 1;
    struct lmql_trie_cache *c = lmql__calloc(1, sizeof *c);
    if (!c) return NULL;
    c->n_entries = n_entries;
    c->n_vocab = (size_t)t->n_vocab;
    c->e = lmql__calloc((size_t)n_entries, sizeof *c->e);
    c->masks = lmql__malloc((size_t)n_entries * (c->n_vocab ? c->n_vocab : 1));
    if (!c->e || !c->masks) {
        lmql__trie_cache_free(c);
        return NULL;
    }
    for (int k = 0; k < n_entries; k++) c->e[k].mask = c->masks + (size_t)k * c->n_vocab;
    return c;
}

void lmql__trie_cache_free(struct lmql_trie_cache *c) {
    if (!c) return;
    free(c->e);
    free(c->masks);
    free(c);
}

void lmql__trie_cache_clear(struct lmql_trie_cache *c) {
    for (int k = 0; k < c->n_entries; k++) c->e[k].used = 0;
}

const uint8_t *lmql__trie_cache_find(struct lmql_trie_cache *c, const void *key, size_t n) {
    if (n > LMQL_TRIE_MAX_STATE) return NULL;
    for (int k = 0; k < c->n_entries; k++) {
        struct cache_entry *e = &c->e[k];
        if (e->used && e->n == n && !memcmp(e->key, key, n)) {
            e->used = ++c->clock;
            c->hits++;
            return e->mask;
        }
    }
    c->misses++;
    return NULL;
}

uint8_t *lmql__trie_cache_slot(struct lmql_trie_cache *c, const void *key, size_t n) {
    if (n > LMQL_TRIE_MAX_STATE) return NULL;
    struct cache_entry *victim = &c->e[0];
    for (int k = 1; k < c->n_entries && victim->used; k++)
        if (c->e[k].used < victim->used) victim = &c->e[k];
    victim->used = ++c->clock;
    victim->n = n;
    memcpy(victim->key, key, n);
    return victim->mask;
}

const uint8_t *lmql__trie_cache_mask(struct lmql_trie_cache *c, const struct lmql_trie *t,
                                     const struct lmql_trie_walker *w, const void *start_state) {
    /* One cache per trie: its masks are n_vocab bytes long. */
    LMQL_ASSERT(c->n_vocab == (size_t)t->n_vocab);
    const uint8_t *m = lmql__trie_cache_find(c, start_state, w->state_size);
    if (m) return m;
    uint8_t *slot = lmql__trie_cache_slot(c, start_state, w->state_size);
    if (!slot) return NULL;
    if (lmql__trie_mask(t, w, start_state, slot)) {
        lmql__trie_cache_clear(c);
        return NULL;
    }
    return slot;
}

void lmql__trie_cache_stats(const struct lmql_trie_cache *c, uint64_t *hits, uint64_t *misses) {
    *hits = c->hits;
    *misses = c->misses;
}
