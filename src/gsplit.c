/*
** Splits of regex terminal states (see gsplit.h): how they are found, and
** the vocabulary-wide memo that shares them.
**
** Cost, measured on 200 MaskBench schemas (Llama 3, 128k tokens): before
** the memo was keyed by language (residual_key), split walks were 22% of
** all masks and nearly all of the slow tail; a dense walk is two trie walks
** plus passes over 128k tokens (~0.5-1 ms), a sparse one (the rest of a
** property name) a few nodes -- so sparse states are found as ranges of
** trie positions and never touch a 128k-entry mask.
*/
#include "gsplit.h"

#include <stdlib.h>
#include <string.h>

#include "lmql_int.h"
#include "memo.h"
#include "model.h"
#include "regex.h"
#include "trie.h"

static bool accepting(const struct lmql__gterm *t, int32_t d) { return lmql__regex_accepting(t->re, d); }

/* An automaton the walks run on: a terminal's DFA, or the part of it
** within reach of one state (see local_dfa). */
struct dfa {
    const int32_t *table;        /* n x n_cls, -1 dead */
    const uint8_t *cls;
    int32_t n_cls, n;
    const uint8_t *acc;          /* per state */
};

/* Bit patterns spread to bytes: spread[v] has byte i = bit i of v. */
#define SPREAD1(v)                                                                                         \
    ((uint64_t)((v) & 1) | (uint64_t)(((v) >> 1) & 1) << 8 | (uint64_t)(((v) >> 2) & 1) << 16 |            \
     (uint64_t)(((v) >> 3) & 1) << 24 | (uint64_t)(((v) >> 4) & 1) << 32 | (uint64_t)(((v) >> 5) & 1) << 40 | \
     (uint64_t)(((v) >> 6) & 1) << 48 | (uint64_t)(((v) >> 7) & 1) << 56)
#define SPREAD4(v)  SPREAD1(v), SPREAD1((v) + 1), SPREAD1((v) + 2), SPREAD1((v) + 3)
#define SPREAD16(v) SPREAD4(v), SPREAD4((v) + 4), SPREAD4((v) + 8), SPREAD4((v) + 12)
#define SPREAD64(v) SPREAD16(v), SPREAD16((v) + 16), SPREAD16((v) + 32), SPREAD16((v) + 48)
static const uint64_t spread[256] = {SPREAD64(0), SPREAD64(64), SPREAD64(128), SPREAD64(192)};

/* The bitset of nv tokens into out as bytes: copied, or or-ed when `or`. */
static void expand(const uint8_t *bits, int32_t nv, uint8_t *out, bool or) {
    int32_t full = nv / 8;
    if (or) {
        for (int32_t k = 0; k < full; k++) {
            uint64_t x;
            memcpy(&x, out + 8 * k, 8);
            x |= spread[bits[k]];
            memcpy(out + 8 * k, &x, 8);
        }
    } else {
        for (int32_t k = 0; k < full; k++) memcpy(out + 8 * k, &spread[bits[k]], 8);
    }
    for (int32_t i = 8 * full; i < nv; i++) {
        uint8_t b = (bits[i >> 3] >> (i & 7)) & 1;
        out[i] = or ? (uint8_t)(out[i] | b) : b;
    }
}

/* The tokens able to leave a regex terminal from a state: a product of
** its DFA with "some prefix of one byte or more may end the terminal",
** state 2d + flag, and a sink 2n once the DFA died after such a prefix
** (every continuation is kept, to be checked against what follows). A
** table lets lmql__trie_mask_dfa walk it; the generic walker with a loops
** callback cost 6.8 of 8.6 s of split walks on 200 schemas (a 256-byte row
** scan at every node with a byte set). */
static int leave_dfa(const struct dfa *a, int32_t **table, uint8_t **allowed) {
    int32_t n = a->n, nc = a->n_cls, sink = 2 * n;
    int32_t *tb = lmql__malloc(((size_t)sink + 1) * (size_t)nc * sizeof *tb);
    uint8_t *al = lmql__calloc((size_t)sink + 1, 1);
    if (!tb || !al) {
        free(tb);
        free(al);
        return -1;
    }
    for (int32_t d = 0; d < n; d++) {
        const int32_t *row = a->table + (size_t)d * (size_t)nc;
        int32_t *r0 = tb + (size_t)(2 * d) * (size_t)nc, *r1 = r0 + nc;
        for (int32_t k = 0; k < nc; k++) {
            int32_t e = row[k];
            r0[k] = e >= 0 ? 2 * e + a->acc[e] : -1;
            r1[k] = e >= 0 ? 2 * e + 1 : sink;
        }
    }
    for (int32_t k = 0; k < nc; k++) tb[(size_t)sink * (size_t)nc + k] = sink;
    al[sink] = 1;
    *table = tb;
    *allowed = al;
    return 0;
}

/* The whole DFA of t as a struct dfa (acc allocated: free it). */
static int full_dfa(const struct lmql__gterm *t, struct dfa *a, uint8_t **acc) {
    int32_t n = lmql__regex_n_states(t->re);
    if (!(*acc = lmql__malloc((size_t)n + 1))) return -1;
    /* Flags first: a pattern counting 500 characters has thousands of
    ** states, and a call per table entry made its leave table a 16 ms
    ** first split. */
    for (int32_t d = 0; d < n; d++) (*acc)[d] = accepting(t, d);
    *a = (struct dfa){t->table, t->cls, t->n_cls, n, *acc};
    return 0;
}

int lmql__leave_dfa(const struct lmql__gterm *t, int32_t **table, uint8_t **allowed) {
    struct dfa a;
    uint8_t *acc;
    if (full_dfa(t, &a, &acc)) return -1;
    int rc = leave_dfa(&a, table, allowed);
    free(acc);
    return rc;
}

/* Most split walks were of states whose language many patterns share: the
** inside of a JSON string after `, "name": "` in every property of every
** schema, the `": ` ending every key (200 MaskBench schemas: 11,354
** distinct pattern and state pairs, 13,385 walks, 22% of all masks). And
** a token has at most D bytes (the trie's longest piece, 128 for Llama 3),
** so a split depends only on the states within D bytes of d: the states
** of a string counting 500 characters share one split while 128 remain.
**
** So the memo key is that local automaton: the states reachable from d in
** at most D bytes, numbered breadth-first (bytes in order), each with its
** accepting flag and its transitions as runs of bytes with one target
** (-1 dead or out of reach). A string of at most D bytes from d never
** leaves it (a state first reached after k < D bytes has all its
** successors within k + 1), so equal keys mean equal splits. The walks
** then run on the local automaton (local->table), much smaller than a
** large pattern's. Returns 0; 1 past LOCAL_MAX_STATES states (the caller
** keys by pattern text and state and walks the whole DFA); -1 out of
** memory. The key's byte 0 is left for the memo tag. */
#define LOCAL_MAX_STATES 4096

struct local {
    struct dfa a;
    int32_t *table;
    uint8_t *acc;
    char *key;
    size_t kl;
};

static void local_free(struct local *l) {
    free(l->table);
    free(l->acc);
    free(l->key);
}

/* State -> local number, open addressing (slot: state << 32 | number,
** empty = ~0). */
struct idmap {
    uint64_t *slot;
    uint32_t cap, n;
};

static uint32_t idmap_hash(int32_t s, uint32_t cap) { return ((uint32_t)s * 2654435761u) & (cap - 1); }

static int32_t idmap_get(const struct idmap *m, int32_t s) {
    if (!m->cap) return -1;
    for (uint32_t h = idmap_hash(s, m->cap);; h = (h + 1) & (m->cap - 1)) {
        if (m->slot[h] == ~(uint64_t)0) return -1;
        if ((int32_t)(m->slot[h] >> 32) == s) return (int32_t)(uint32_t)m->slot[h];
    }
}

static int idmap_put(struct idmap *m, int32_t s, int32_t id) {
    if ((m->n + 1) * 2 > m->cap) {
        struct idmap nm = {lmql__malloc((m->cap ? m->cap * 2 : 64) * sizeof *nm.slot), m->cap ? m->cap * 2 : 64, 0};
        if (!nm.slot) return -1;
        memset(nm.slot, 0xff, nm.cap * sizeof *nm.slot);
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->slot[i] != ~(uint64_t)0) {
                uint32_t h = idmap_hash((int32_t)(m->slot[i] >> 32), nm.cap);
                while (nm.slot[h] != ~(uint64_t)0) h = (h + 1) & (nm.cap - 1);
                nm.slot[h] = m->slot[i];
            }
        nm.n = m->n;
        free(m->slot);
        *m = nm;
    }
    uint32_t h = idmap_hash(s, m->cap);
    while (m->slot[h] != ~(uint64_t)0) h = (h + 1) & (m->cap - 1);
    m->slot[h] = (uint64_t)(uint32_t)s << 32 | (uint32_t)id;
    m->n++;
    return 0;
}

static int local_dfa(const struct lmql__gterm *t, int32_t d, int32_t D, struct local *l) {
    *l = (struct local){0};
    int32_t n = lmql__regex_n_states(t->re), nc = t->n_cls;
    int32_t run_lo[257], run_cls[256], n_runs = 0;
    for (int c = 0; c < 256; c++)
        if (c == 0 || t->cls[c] != t->cls[c - 1]) {
            run_lo[n_runs] = c;
            run_cls[n_runs++] = t->cls[c];
        }
    run_lo[n_runs] = 256;
    (void)n;
    /* Local numbers through a small hash (a dense array over a large
    ** pattern's states was a 200 KB memset per split looked up). */
    struct idmap ids = {0};
    int32_t *q = lmql__malloc(LOCAL_MAX_STATES * sizeof *q), *depth = lmql__malloc(LOCAL_MAX_STATES * sizeof *depth);
    int rc = !q || !depth || idmap_put(&ids, d, 0) ? -1 : 0;
    int32_t m = 0;
    if (rc == 0) {
        q[m] = d;
        depth[m++] = 0;
    }
    for (int32_t h = 0; rc == 0 && h < m; h++) {
        if (depth[h] == D) continue;
        const int32_t *row = t->table + (size_t)q[h] * (size_t)nc;
        for (int r = 0; r < n_runs; r++) {
            int32_t e = row[run_cls[r]];
            if (e < 0 || idmap_get(&ids, e) >= 0) continue;
            if (m == LOCAL_MAX_STATES) {
                rc = 1;
                break;
            }
            if (idmap_put(&ids, e, m)) {
                rc = -1;
                break;
            }
            q[m] = e;
            depth[m++] = depth[h] + 1;
        }
    }
    size_t per = 1 + 5 * (size_t)n_runs;
    if (rc == 0) {
        l->table = lmql__malloc((size_t)m * (size_t)nc * sizeof *l->table);
        l->acc = lmql__malloc((size_t)m);
        l->key = lmql__malloc(2 + sizeof D + (size_t)m * per);
        if (!l->table || !l->acc || !l->key) rc = -1;
    }
    if (rc == 0) {
        char *w = l->key;
        *w++ = 0;
        *w++ = 'L';
        memcpy(w, &D, sizeof D);
        w += sizeof D;
        for (int32_t i = 0; i < m; i++) {
            const int32_t *row = t->table + (size_t)q[i] * (size_t)nc;
            for (int32_t k = 0; k < nc; k++) l->table[(size_t)i * (size_t)nc + k] = row[k] >= 0 ? idmap_get(&ids, row[k]) : -1;
            l->acc[i] = accepting(t, q[i]);
            *w++ = (char)l->acc[i];
            int32_t prev = -2;
            for (int r = 0; r < n_runs; r++) {
                int32_t e = row[run_cls[r]], ce = e >= 0 ? idmap_get(&ids, e) : -1;
                if (ce == prev) continue;
                prev = ce;
                *w++ = (char)run_lo[r];
                memcpy(w, &ce, 4);
                w += 4;
            }
        }
        l->kl = (size_t)(w - l->key);
        l->a = (struct dfa){l->table, t->cls, nc, m, l->acc};
    }
    free(ids.slot);
    free(q);
    free(depth);
    if (rc) {
        local_free(l);
        *l = (struct local){0};
    }
    return rc;
}


/* Ranges of a walk tried before a mask: past this many, the walk starts
** over into a mask. (At 256, a string's inside overflowed late and was
** walked twice: the first try was 2/3 of split walk instructions.) */
#define SPLIT_RANGES 8192
/* Inside tokens kept as a list rather than a bitset up to this many. */
#define SPLIT_LIST_MAX 1024

/* Tokens in ranges r[0..nr) of trie positions. */
static int32_t range_tokens(const uint32_t (*r)[2], int nr) {
    int32_t n = 0;
    for (int i = 0; i < nr; i++) n += (int32_t)(r[i][1] - r[i][0]);
    return n;
}

/* The inside tokens of t from d into sp (inside or in_list, n_inside). */
static int walk_inside(const struct lmql_trie *trie, const struct dfa *t, int32_t d, uint32_t (*r)[2],
                       struct lmql__split *sp) {
    int32_t nv = lmql__trie_n_vocab(trie);
    size_t nbits = ((size_t)nv + 7) / 8;
    const int32_t *perm;
    lmql__trie_order(trie, &perm);
    int nr = lmql__trie_ranges_dfa(trie, t->table, t->n_cls, t->cls, NULL, d, r, SPLIT_RANGES);
    if (nr >= 0) {
        int32_t n = range_tokens((const uint32_t (*)[2])r, nr);
        sp->n_inside = n;
        if (n <= SPLIT_LIST_MAX) {
            if (!(sp->in_list = lmql__malloc(((size_t)n + 1) * sizeof *sp->in_list))) return -1;
            for (int i = 0, k = 0; i < nr; i++)
                for (uint32_t j = r[i][0]; j < r[i][1]; j++) sp->in_list[k++] = perm[j];
            return 0;
        }
        if (!(sp->inside = lmql__calloc(nbits, 1))) return -1;
        for (int i = 0; i < nr; i++)
            for (uint32_t j = r[i][0]; j < r[i][1]; j++) sp->inside[perm[j] >> 3] |= (uint8_t)(1u << (perm[j] & 7));
        return 0;
    }
    /* Dense: a mask, packed 8 tokens a word (per-token passes over 128k
    ** tokens cost 3x the trie walks themselves, callgrind on 10 schemas). */
    uint8_t *in = lmql__malloc((size_t)nv + 8);
    sp->inside = lmql__malloc(nbits);
    if (!in || !sp->inside || lmql__trie_mask_dfa(trie, t->table, t->n_cls, t->cls, NULL, d, in)) {
        free(in);
        return -1;
    }
    memset(in + nv, 0, 8);
    int32_t n = 0;
    for (size_t k = 0; k < nbits; k++) {
        uint64_t w;
        memcpy(&w, in + 8 * k, 8);
        sp->inside[k] = (uint8_t)((w * 0x0102040810204080ULL) >> 56);   /* byte i's 0/1 to bit i */
        n += (int32_t)((w * 0x0101010101010101ULL) >> 56);                /* bytes are 0/1: their sum */
    }
    sp->n_inside = n;
    free(in);
    return 0;
}

/* The leaving tokens and, after them, their lcp bytes (see gsplit.h). */
#define LEAVE_BYTES(n) ((size_t)(n) * 5 + 8)

/* Fill sp->lcp: each leaving token's common prefix with the one before. */
static void leave_lcp(const struct lmql_trie *trie, struct lmql__split *sp) {
    const struct lmql__vocab *v = lmql__trie_vocab(trie);
    sp->lcp = (uint8_t *)(sp->leave + sp->n_leave);
    const char *prev = NULL;
    uint32_t prev_len = 0;
    for (int32_t i = 0; i < sp->n_leave; i++) {
        uint32_t len, l = 0;
        const char *p = lmql__vocab_piece(v, sp->leave[i], &len);
        uint32_t lim = len < prev_len ? len : prev_len;
        if (lim > 255) lim = 255;
        if (prev)
            while (l < lim && p[l] == prev[l]) l++;
        sp->lcp[i] = (uint8_t)l;
        prev = p;
        prev_len = len;
    }
}

/* The leaving tokens of t from d into sp (leave, n_leave), in trie order. */
static int walk_leave(const struct lmql_trie *trie, const struct dfa *t, int32_t d, const int32_t *ltab,
                      const uint8_t *lal, uint32_t (*r)[2], struct lmql__split *sp) {
    const int32_t *perm;
    int32_t nt = lmql__trie_order(trie, &perm);
    int nr = lmql__trie_ranges_dfa(trie, ltab, t->n_cls, t->cls, lal, 2 * d, r, SPLIT_RANGES);
    if (nr >= 0) {
        int32_t n = range_tokens((const uint32_t (*)[2])r, nr);
        if (!(sp->leave = lmql__malloc(LEAVE_BYTES(n)))) return -1;
        for (int i = 0; i < nr; i++)
            for (uint32_t j = r[i][0]; j < r[i][1]; j++) sp->leave[sp->n_leave++] = perm[j];
        return 0;
    }
    /* By trie position: a forward scan gives the list in order. */
    uint8_t *left = lmql__malloc((size_t)nt + 8);
    if (!left || lmql__trie_mask_dfa_order(trie, ltab, t->n_cls, t->cls, lal, 2 * d, left)) {
        free(left);
        return -1;
    }
    memset(left + nt, 0, 8);
    int32_t n = 0;
    for (int32_t k = 0; k < nt; k += 8) {
        uint64_t w;
        memcpy(&w, left + k, 8);
        n += (int32_t)((w * 0x0101010101010101ULL) >> 56);
    }
    if (!(sp->leave = lmql__malloc(LEAVE_BYTES(n)))) {
        free(left);
        return -1;
    }
    for (int32_t k = 0; k < nt; k += 8) {
        uint64_t w;
        memcpy(&w, left + k, 8);
        if (!w) continue;
        for (int32_t j = k; j < k + 8 && j < nt; j++)
            if (left[j]) sp->leave[sp->n_leave++] = perm[j];
    }
    LMQL_ASSERT(sp->n_leave == n);
    free(left);
    return 0;
}

/* A dense state (many bytes live from it: a string's inside, a count of
** characters, any name but a few) in one walk of its leave table, whose
** non-sink states are exactly the DFA's live ones: each token is sorted
** into inside (1), leaving (2) or neither by the state it ends in. One
** walk instead of three (a try at ranges, the inside, the leaving). */
#define SPLIT_DENSE_BYTES 32

static bool dense(const struct dfa *t, int32_t d) {
    const int32_t *row = t->table + (size_t)d * (size_t)t->n_cls;
    int live = 0;
    for (int b = 0; b < 256; b++) live += row[t->cls[b]] >= 0;
    return live >= SPLIT_DENSE_BYTES;
}

static int walk_dense(const struct lmql_trie *trie, const struct dfa *t, int32_t d, const int32_t *ltab,
                      struct lmql__split *sp) {
    int32_t nv = lmql__trie_n_vocab(trie), sink = 2 * t->n;
    size_t nbits = ((size_t)nv + 7) / 8;
    const int32_t *perm;
    int32_t nt = lmql__trie_order(trie, &perm);
    uint8_t *kind = lmql__malloc((size_t)sink + 1), *pm = lmql__malloc((size_t)nt + 1);
    int rc = !kind || !pm ? -1 : 0;
    if (rc == 0) {
        memset(kind, 1, (size_t)sink);
        kind[sink] = 2;
        rc = lmql__trie_mask_dfa_order(trie, ltab, t->n_cls, t->cls, kind, 2 * d, pm);
    }
    int32_t n_in = 0, n_lv = 0;
    for (int32_t k = 0; rc == 0 && k < nt; k++) {
        n_in += pm[k] == 1;
        n_lv += pm[k] == 2;
    }
    if (rc == 0) {
        sp->leave = lmql__malloc(LEAVE_BYTES(n_lv));
        if (n_in <= SPLIT_LIST_MAX) sp->in_list = lmql__malloc(((size_t)n_in + 1) * sizeof *sp->in_list);
        else sp->inside = lmql__calloc(nbits, 1);
        if (!sp->leave || (!sp->in_list && !sp->inside)) rc = -1;
    }
    for (int32_t k = 0; rc == 0 && k < nt; k++) {
        if (pm[k] == 2) {
            sp->leave[sp->n_leave++] = perm[k];
        } else if (pm[k] == 1) {
            if (sp->in_list) sp->in_list[sp->n_inside++] = perm[k];
            else sp->inside[perm[k] >> 3] |= (uint8_t)(1u << (perm[k] & 7));
        }
    }
    if (rc == 0) sp->n_inside = n_in;
    free(kind);
    free(pm);
    return rc;
}

void lmql__split_free(struct lmql__split *sp) {
    if (sp->blob) {
        free(sp->blob);
    } else {
        free(sp->inside);
        free(sp->in_list);
        free(sp->leave);
    }
    free(sp->bytes);
    *sp = (struct lmql__split){0};
}

/* A split in the memo is one value (one lookup, one copy: three entries
** under tagged keys cost a hash of the key each, on the path of most new
** configurations' masks): {n_inside, n_leave, listed}, the inside tokens
** (a bitset, or n_inside ids when listed) padded to 4 bytes, the leaving
** ids, their lcp bytes. A loaded split points into the copy (sp->blob). */
static size_t inside_bytes(const int32_t h[3], size_t nbits) {
    size_t n = h[2] ? (size_t)h[0] * 4 : nbits;
    return (n + 3) & ~(size_t)3;
}

static bool memo_load(struct lmql__memo *memo, char *key, size_t kl, size_t nbits, struct lmql__split *sp) {
    void *blob;
    size_t len;
    key[0] = 'S';
    if (!lmql__memo_get_dup(memo, key, kl, &blob, &len)) return false;
    int32_t h[3];
    if (len < sizeof h) {
        free(blob);
        return false;
    }
    memcpy(h, blob, sizeof h);
    size_t ib = inside_bytes(h, nbits);
    if (h[0] < 0 || h[1] < 0 || len != sizeof h + ib + (size_t)h[1] * 5) {
        free(blob);
        return false;
    }
    char *p = (char *)blob + sizeof h;
    *sp = (struct lmql__split){.blob = blob, .n_inside = h[0], .n_leave = h[1]};
    if (h[2]) sp->in_list = (int32_t *)(void *)p;
    else sp->inside = (uint8_t *)p;
    sp->leave = (int32_t *)(void *)(p + ib);
    sp->lcp = (uint8_t *)(sp->leave + h[1]);
    return true;
}

static void memo_store(struct lmql__memo *memo, char *key, size_t kl, size_t nbits, const struct lmql__split *sp) {
    int32_t h[3] = {sp->n_inside, sp->n_leave, sp->inside == NULL};
    size_t ib = inside_bytes(h, nbits), len = sizeof h + ib + (size_t)sp->n_leave * 5;
    char *blob = lmql__calloc(len, 1);
    if (!blob) return;
    memcpy(blob, h, sizeof h);
    memcpy(blob + sizeof h, sp->inside ? (const void *)sp->inside : (const void *)sp->in_list,
           sp->inside ? nbits : (size_t)sp->n_inside * 4);
    memcpy(blob + sizeof h + ib, sp->leave, (size_t)sp->n_leave * 4);
    memcpy(blob + sizeof h + ib + (size_t)sp->n_leave * 4, sp->lcp, (size_t)sp->n_leave);
    key[0] = 'S';
    lmql__memo_put(memo, key, kl, blob, len);
    free(blob);
}

int lmql__split_make(const struct lmql_trie *trie, const struct lmql__gterm *t, int32_t d, int32_t **ltab,
                     uint8_t **lal, struct lmql__split *out) {
    LMQL_ASSERT(t->is_re && d >= 0);
    *out = (struct lmql__split){0};
    size_t nbits = ((size_t)lmql__trie_n_vocab(trie) + 7) / 8;
    /* What a terminal state's tokens are depends only on the language from
    ** that state (within a token's reach) and the vocabulary: the
    ** vocabulary's memo keeps them for every matcher (the next hole, the
    ** next instance, the next schema), keyed by that local automaton or,
    ** when it is large, by the pattern and the state. */
    struct lmql__memo *memo = lmql__vocab_memo(lmql__trie_vocab(trie));
    struct local l;
    int lr = local_dfa(t, d, lmql__trie_max_len(trie), &l);
    if (lr < 0) return -1;
    char *key = l.key;
    size_t kl = l.kl;
    if (lr > 0) {
        kl = 2 + sizeof d + t->len;
        if (!(key = lmql__malloc(kl))) return -1;
        key[1] = 'P';
        memcpy(key + 2, &d, sizeof d);
        memcpy(key + 2 + sizeof d, t->text, t->len);
    }
    int rc = 0;
    if (memo && memo_load(memo, key, kl, nbits, out)) goto done;
    /* The walks: on the local automaton from its state 0, or on the whole
    ** DFA from d with the matcher's cached leave table. */
    struct dfa full;
    uint8_t *full_acc = NULL;
    int32_t *tab = NULL;
    uint8_t *al = NULL;
    const struct dfa *a = &l.a;
    int32_t s0 = 0;
    if (lr > 0) {
        if (full_dfa(t, &full, &full_acc) || (!*ltab && leave_dfa(&full, ltab, lal))) {
            free(full_acc);
            rc = -1;
            goto done;
        }
        a = &full;
        s0 = d;
    } else if (leave_dfa(a, &tab, &al)) {
        rc = -1;
        goto done;
    }
    const int32_t *lt = lr > 0 ? *ltab : tab;
    const uint8_t *la = lr > 0 ? *lal : al;
    uint32_t (*r)[2] = lmql__malloc(SPLIT_RANGES * sizeof *r);
    rc = !r ? -1 : 0;
    if (rc == 0 && dense(a, s0)) {
        rc = walk_dense(trie, a, s0, lt, out);
    } else {
        if (rc == 0) rc = walk_inside(trie, a, s0, r, out);
        if (rc == 0) rc = walk_leave(trie, a, s0, lt, la, r, out);
    }
    if (rc == 0) leave_lcp(trie, out);
    if (rc == 0 && memo) memo_store(memo, key, kl, nbits, out);
    if (rc) lmql__split_free(out);
    free(r);
    free(tab);
    free(al);
    free(full_acc);
done:
    if (lr > 0) free(key);
    local_free(&l);
    return rc;
}

void lmql__split_inside(const struct lmql__split *sp, int32_t nv, uint8_t *out, bool first) {
    if (sp->inside) {
        expand(sp->inside, nv, out, !first);
        return;
    }
    if (first) memset(out, 0, (size_t)nv);
    for (int32_t i = 0; i < sp->n_inside; i++) out[sp->in_list[i]] = 1;
}
