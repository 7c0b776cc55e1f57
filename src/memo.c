/*
** The vocabulary-wide memo (see memo.h): a chained hash table under one
** mutex. Lookups are rare next to mask work (one per first walk of a
** state), so one lock is not contended.
*/
#include "memo.h"
#include "alloc.h"
#include "lmql_int.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEMO_BUCKETS 1024

struct entry {
    struct entry *next;
    uint64_t hash;
    size_t klen, vlen;
    unsigned char data[];   /* key, then value */
};

struct lmql__memo {
    pthread_mutex_t mu;
    size_t budget, used;
    struct entry *bucket[MEMO_BUCKETS];
};

static uint64_t fnv1a(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

struct lmql__memo *lmql__memo_new(size_t budget) {
    struct lmql__memo *m = lmql__calloc(1, sizeof *m);
    if (!m) return NULL;
    if (pthread_mutex_init(&m->mu, NULL)) {
        free(m);
        return NULL;
    }
    m->budget = budget;
    return m;
}

static void clear(struct lmql__memo *m) {
    for (int b = 0; b < MEMO_BUCKETS; b++) {
        for (struct entry *e = m->bucket[b], *nx; e; e = nx) {
            nx = e->next;
            free(e);
        }
        m->bucket[b] = NULL;
    }
    m->used = 0;
}

void lmql__memo_free(struct lmql__memo *m) {
    if (!m) return;
    clear(m);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static struct entry **find(struct lmql__memo *m, uint64_t h, const void *key, size_t klen) {
    struct entry **p = &m->bucket[h % MEMO_BUCKETS];
    for (; *p; p = &(*p)->next)
        if ((*p)->hash == h && (*p)->klen == klen && !memcmp((*p)->data, key, klen)) break;
    return p;
}

bool lmql__memo_get(struct lmql__memo *m, const void *key, size_t klen, void *out, size_t out_len) {
    if (!m) return false;
    uint64_t h = fnv1a(key, klen);
    pthread_mutex_lock(&m->mu);
    struct entry *e = *find(m, h, key, klen);
    bool hit = e && e->vlen == out_len;
    if (hit) memcpy(out, e->data + klen, out_len);
    pthread_mutex_unlock(&m->mu);
    return hit;
}

bool lmql__memo_get_dup(struct lmql__memo *m, const void *key, size_t klen, void **out, size_t *out_len) {
    if (!m) return false;
    uint64_t h = fnv1a(key, klen);
    pthread_mutex_lock(&m->mu);
    struct entry *e = *find(m, h, key, klen);
    void *copy = e ? lmql__malloc(e->vlen ? e->vlen : 1) : NULL;
    if (copy) {
        memcpy(copy, e->data + klen, e->vlen);
        *out_len = e->vlen;
    }
    pthread_mutex_unlock(&m->mu);
    *out = copy;
    return copy != NULL;
}

void lmql__memo_put(struct lmql__memo *m, const void *key, size_t klen, const void *val, size_t len) {
    if (!m) return;
    size_t cost = sizeof(struct entry) + klen + len;
    if (cost > m->budget) return;
    struct entry *e = lmql__malloc(cost);
    if (!e) return;
    e->hash = fnv1a(key, klen);
    e->klen = klen;
    e->vlen = len;
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, val, len);
    pthread_mutex_lock(&m->mu);
    if (m->used + cost > m->budget) clear(m);
    struct entry **p = find(m, e->hash, key, klen);
    if (*p) {   /* replace: another thread stored the same meaning first */
        struct entry *old = *p;
        e->next = old->next;
        m->used -= sizeof(struct entry) + old->klen + old->vlen;
        free(old);
    } else {
        e->next = NULL;
    }
    *p = e;
    m->used += cost;
    LMQL_ASSERT(m->used <= m->budget);   /* at most budget bytes: a full memo starts over */
    pthread_mutex_unlock(&m->mu);
}
