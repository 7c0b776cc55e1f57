/*
** Automata over characters for the JSON Schema compiler: what regex text
** cannot say directly, the complement of a pattern or of a set of names
** and the intersection of two languages, is computed on small DFAs over
** classes of code points and written back as one regex (state
** elimination), in json.dumps's spelling of each character.
**
** Used for property names: the names under a patternProperties pattern
** but no declared property, the names under no pattern at all, the names
** propertyNames allows but no property declares; and for two patterns on
** one string. Sizes are bounded (states, regex text): past them the
** caller's keyword is refused with an error, never approximated.
*/
#include <stdlib.h>
#include <string.h>

#include "jsonschema_int.h"

#define DFA_MAX_STATES 4096      /* while determinizing or multiplying */
#define DFA_MAX_REGEX ((size_t)256 << 10)

static int bsearch_bound(const uint32_t *b, int32_t n, uint32_t x) {
    /* the class k with b[k] <= x < b[k + 1] */
    int32_t lo = 0, hi = n - 1;
    while (lo < hi) {
        int32_t mid = (lo + hi + 1) / 2;
        if (b[mid] <= x) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorted unique boundaries of the ranges, from 0 to 0x110000. */
static int32_t make_bounds(struct js_ctx *c, uint32_t *tmp, int32_t n, uint32_t **out) {
    tmp[n++] = 0;
    tmp[n++] = 0x110000;
    qsort(tmp, (size_t)n, sizeof *tmp, cmp_u32);
    int32_t m = 0;
    for (int32_t i = 0; i < n; i++)
        if (m == 0 || tmp[i] != tmp[m - 1]) tmp[m++] = tmp[i];
    *out = js_alloc(c, (size_t)m * sizeof **out);
    if (!*out) return -1;
    memcpy(*out, tmp, (size_t)m * sizeof **out);
    return m - 1;   /* classes */
}

static struct js_cdfa *dfa_new(struct js_ctx *c, int32_t n, int32_t n_cls, uint32_t *bound) {
    struct js_cdfa *d = js_alloc(c, sizeof *d);
    if (!d) return NULL;
    d->n = n;
    d->n_cls = n_cls;
    d->bound = bound;
    d->next = js_alloc(c, (size_t)n * (size_t)n_cls * sizeof *d->next);
    d->acc = js_alloc(c, (size_t)n);
    return d->next && d->acc ? d : NULL;
}

/* -------------------------------------------------------- subsets -- */

struct sets {
    int32_t *off, *len, n, cap;
    int32_t *pool;
    size_t n_pool, cap_pool;
    int32_t *hash;   /* open addressing over set ids, -1 empty */
    size_t hcap;
};

static uint64_t set_hash(const int32_t *s, int32_t n) {
    uint64_t h = 1469598103934665603ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint64_t)(uint32_t)s[i]) * 1099511628211ull;
    return h;
}

/* The id of set s[0..n) (sorted), added when new (*added). -1 on error. */
static int32_t set_id(struct js_ctx *c, struct sets *S, const int32_t *s, int32_t n, bool *added) {
    *added = false;
    if (!S->hcap) {
        S->hcap = 1024;
        if (!(S->hash = lmql__malloc(S->hcap * sizeof *S->hash))) return (void)js_oom(c), -1;
        memset(S->hash, 0xff, S->hcap * sizeof *S->hash);
    }
    size_t h = set_hash(s, n) & (S->hcap - 1);
    for (; S->hash[h] >= 0; h = (h + 1) & (S->hcap - 1)) {
        int32_t id = S->hash[h];
        if (S->len[id] == n && (n == 0 || !memcmp(S->pool + S->off[id], s, (size_t)n * sizeof *s))) return id;
    }
    if (S->n >= DFA_MAX_STATES) return (void)js_fail(c, "#", "the automaton of these constraints is too large"), -1;
    if (S->n == S->cap) {
        int32_t nc = S->cap ? S->cap * 2 : 64;
        int32_t *o = lmql__realloc(S->off, (size_t)nc * sizeof *o);
        if (!o) return (void)js_oom(c), -1;
        S->off = o;
        int32_t *l = lmql__realloc(S->len, (size_t)nc * sizeof *l);
        if (!l) return (void)js_oom(c), -1;
        S->len = l;
        S->cap = nc;
    }
    if (S->n_pool + (size_t)n + 1 > S->cap_pool) {
        size_t nc = S->cap_pool ? S->cap_pool * 2 : 1024;
        while (nc < S->n_pool + (size_t)n + 1) nc *= 2;
        int32_t *p = lmql__realloc(S->pool, nc * sizeof *p);
        if (!p) return (void)js_oom(c), -1;
        S->pool = p;
        S->cap_pool = nc;
    }
    if (n) memcpy(S->pool + S->n_pool, s, (size_t)n * sizeof *s);
    S->off[S->n] = (int32_t)S->n_pool;
    S->len[S->n] = n;
    S->n_pool += (size_t)n;
    S->hash[h] = S->n;
    *added = true;
    int32_t id = S->n++;
    if ((size_t)S->n * 2 > S->hcap) {
        /* grow the table */
        size_t nc = S->hcap * 2;
        int32_t *nh = lmql__malloc(nc * sizeof *nh);
        if (!nh) return (void)js_oom(c), -1;
        memset(nh, 0xff, nc * sizeof *nh);
        for (int32_t i = 0; i < S->n; i++) {
            size_t k = set_hash(S->pool + S->off[i], S->len[i]) & (nc - 1);
            while (nh[k] >= 0) k = (k + 1) & (nc - 1);
            nh[k] = i;
        }
        free(S->hash);
        S->hash = nh;
        S->hcap = nc;
    }
    return id;
}

static void sets_free(struct sets *S) {
    free(S->off);
    free(S->len);
    free(S->pool);
    free(S->hash);
}

static int cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return x < y ? -1 : x > y;
}

/* The determinization's scratch: edges by source, a stack, marks. */
struct det {
    const struct js_cnfa *a;
    int32_t *first, *order, *stack, *mark, *buf;
    int32_t stamp;
};

/* The epsilon closure of src[0..cnt) into D->buf, sorted; its size. */
static int32_t closure(struct det *D, const int32_t *src, int32_t cnt) {
    int32_t sp = 0, m = 0;
    D->stamp++;
    for (int32_t q = 0; q < cnt; q++)
        if (D->mark[src[q]] != D->stamp) {
            D->mark[src[q]] = D->stamp;
            D->stack[sp++] = src[q];
        }
    while (sp > 0) {
        int32_t x = D->stack[--sp];
        D->buf[m++] = x;
        for (int32_t j = D->first[x]; j < D->first[x + 1]; j++) {
            const struct js_cedge *e = &D->a->e[D->order[j]];
            if (e->nr == 0 && D->mark[e->to] != D->stamp) {
                D->mark[e->to] = D->stamp;
                D->stack[sp++] = e->to;
            }
        }
    }
    qsort(D->buf, (size_t)m, sizeof *D->buf, cmp_i32);
    return m;
}

struct js_cdfa *js_cdfa_of(struct js_ctx *c, const struct js_cnfa *a, const char *ptr) {
    /* classes */
    size_t nr = 0;
    for (int32_t i = 0; i < a->ne; i++) nr += (size_t)a->e[i].nr * 2;
    uint32_t *tmp = lmql__malloc((nr + 2) * sizeof *tmp);
    if (!tmp) return js_oom(c);
    int32_t nt = 0;
    for (int32_t i = 0; i < a->ne; i++)
        for (int k = 0; k < a->e[i].nr; k++) {
            tmp[nt++] = a->e[i].r[2 * k];
            tmp[nt++] = a->e[i].r[2 * k + 1] + 1;
        }
    uint32_t *bound;
    int32_t n_cls = make_bounds(c, tmp, nt, &bound);
    free(tmp);
    if (n_cls < 0) return NULL;
    struct det D = {a, NULL, NULL, NULL, NULL, NULL, 0};
    D.first = lmql__calloc((size_t)a->n + 1, sizeof *D.first);
    D.order = lmql__malloc(((size_t)a->ne + 1) * sizeof *D.order);
    D.stack = lmql__malloc(((size_t)a->n + 1) * sizeof *D.stack);
    D.mark = lmql__calloc((size_t)a->n + 1, sizeof *D.mark);
    D.buf = lmql__malloc(((size_t)a->n + 1) * sizeof *D.buf);
    /* per class: the targets of one step, as lists */
    int32_t *thead = lmql__malloc((size_t)n_cls * sizeof *thead), *tnext = NULL, *tval = NULL, *src = NULL;
    size_t tcap = 0, tn = 0;
    int32_t *used = lmql__malloc((size_t)n_cls * sizeof *used), n_used = 0;
    int32_t *rows = NULL;   /* the DFA's transitions, grown by states */
    size_t rows_cap = 0;
    struct sets S = {0};
    struct js_cdfa *d = NULL;
    bool added;
    if (!D.first || !D.order || !D.stack || !D.mark || !D.buf || !thead || !used) goto oom;
    for (int32_t i = 0; i < a->ne; i++) D.first[a->e[i].from + 1]++;
    for (int32_t i = 0; i < a->n; i++) D.first[i + 1] += D.first[i];
    {
        int32_t *fill = lmql__calloc((size_t)a->n + 1, sizeof *fill);
        if (!fill) goto oom;
        for (int32_t i = 0; i < a->ne; i++) D.order[D.first[a->e[i].from] + fill[a->e[i].from]++] = i;
        free(fill);
    }
    for (int32_t k = 0; k < n_cls; k++) thead[k] = -1;
    if (set_id(c, &S, NULL, 0, &added) != 0) goto fail;   /* the dead state: 0 */
    int32_t st = a->start;
    int32_t n0 = closure(&D, &st, 1);
    int32_t start = set_id(c, &S, D.buf, n0, &added);
    if (start < 0) goto fail;
    for (int32_t id = 0; id < S.n; id++) {
        if (!js_step(c)) goto fail;
        if ((size_t)(id + 1) * (size_t)n_cls > rows_cap) {
            size_t nc = rows_cap ? rows_cap * 2 : (size_t)n_cls * 16;
            while (nc < (size_t)(id + 1) * (size_t)n_cls) nc *= 2;
            int32_t *r = lmql__realloc(rows, nc * sizeof *r);
            if (!r) goto oom;
            rows = r;
            rows_cap = nc;
        }
        for (int32_t k = 0; k < n_cls; k++) rows[(size_t)id * (size_t)n_cls + (size_t)k] = 0;
        /* the moves of every member, by class */
        tn = 0;
        n_used = 0;
        for (int32_t q = 0; q < S.len[id]; q++) {
            int32_t x = S.pool[S.off[id] + q];
            for (int32_t j = D.first[x]; j < D.first[x + 1]; j++) {
                const struct js_cedge *e = &a->e[D.order[j]];
                for (int r = 0; r < e->nr; r++) {
                    int32_t k1 = bsearch_bound(bound, n_cls + 1, e->r[2 * r]);
                    int32_t k2 = bsearch_bound(bound, n_cls + 1, e->r[2 * r + 1]);
                    for (int32_t k = k1; k <= k2; k++) {
                        if (tn == tcap) {
                            size_t nc = tcap ? tcap * 2 : 1024;
                            int32_t *nn = lmql__realloc(tnext, nc * sizeof *nn);
                            if (!nn) goto oom;
                            tnext = nn;
                            int32_t *nv = lmql__realloc(tval, nc * sizeof *nv);
                            if (!nv) goto oom;
                            tval = nv;
                            int32_t *ns = lmql__realloc(src, nc * sizeof *ns);
                            if (!ns) goto oom;
                            src = ns;
                            tcap = nc;
                        }
                        if (thead[k] < 0) used[n_used++] = k;
                        tval[tn] = e->to;
                        tnext[tn] = thead[k];
                        thead[k] = (int32_t)tn++;
                    }
                }
            }
        }
        for (int32_t u = 0; u < n_used; u++) {
            int32_t k = used[u], cnt = 0;
            for (int32_t t = thead[k]; t >= 0; t = tnext[t]) src[cnt++] = tval[t];
            int32_t m = closure(&D, src, cnt);
            int32_t to = set_id(c, &S, D.buf, m, &added);
            if (to < 0) goto fail;
            rows[(size_t)id * (size_t)n_cls + (size_t)k] = to;
            thead[k] = -1;
        }
    }
    d = dfa_new(c, S.n, n_cls, bound);
    if (!d) goto fail;
    memcpy(d->next, rows, (size_t)S.n * (size_t)n_cls * sizeof *d->next);
    for (int32_t id = 0; id < S.n; id++) {
        d->acc[id] = 0;
        for (int32_t q = 0; q < S.len[id]; q++)
            if (S.pool[S.off[id] + q] == a->final) d->acc[id] = 1;
    }
    d->start = start;
    goto done;
oom:
    js_oom(c);
fail:
    d = NULL;
done:
    (void)ptr;
    free(D.first);
    free(D.order);
    free(D.stack);
    free(D.mark);
    free(D.buf);
    free(thead);
    free(tnext);
    free(tval);
    free(src);
    free(used);
    free(rows);
    sets_free(&S);
    return d;
}

/* ------------------------------------------------------ operations -- */

/* Moore's refinement: the smallest DFA of the same language, from the
** states reachable from the start. */
static struct js_cdfa *minimize(struct js_ctx *c, const struct js_cdfa *d) {
    int32_t n = d->n, k = d->n_cls;
    int32_t *reach = lmql__malloc((size_t)n * sizeof *reach), *queue = lmql__malloc((size_t)n * sizeof *queue);
    int32_t *cls = lmql__malloc((size_t)n * sizeof *cls), *ncls = lmql__malloc((size_t)n * sizeof *ncls);
    int32_t *sig = lmql__malloc(((size_t)k + 1) * sizeof *sig);
    struct sets S = {0};
    struct js_cdfa *m = NULL;
    if (!reach || !queue || !cls || !ncls || !sig) {
        js_oom(c);
        goto done;
    }
    for (int32_t i = 0; i < n; i++) reach[i] = -1;
    int32_t head = 0, tail = 0, nr = 0;
    reach[d->start] = nr++;
    queue[tail++] = d->start;
    while (head < tail) {
        int32_t q = queue[head++];
        for (int32_t j = 0; j < k; j++) {
            int32_t t = d->next[(size_t)q * (size_t)k + (size_t)j];
            if (reach[t] < 0) {
                reach[t] = nr++;
                queue[tail++] = t;
            }
        }
    }
    /* states in BFS order: queue[0..nr) */
    for (int32_t i = 0; i < nr; i++) cls[i] = d->acc[queue[i]] ? 1 : 0;
    int32_t n_classes = 0;
    for (;;) {
        if (!js_step(c)) goto done;
        memset(&S, 0, sizeof S);
        for (int32_t i = 0; i < nr; i++) {
            int32_t q = queue[i];
            sig[0] = cls[i];
            for (int32_t j = 0; j < k; j++) sig[j + 1] = cls[reach[d->next[(size_t)q * (size_t)k + (size_t)j]]];
            bool added;
            ncls[i] = set_id(c, &S, sig, k + 1, &added);
            if (ncls[i] < 0) {
                sets_free(&S);
                goto done;
            }
        }
        int32_t got = S.n;
        sets_free(&S);
        memcpy(cls, ncls, (size_t)nr * sizeof *cls);
        if (got == n_classes) break;
        n_classes = got;
    }
    m = dfa_new(c, n_classes, k, d->bound);
    if (!m) goto done;
    for (int32_t i = 0; i < nr; i++) {
        int32_t q = queue[i];
        m->acc[cls[i]] = d->acc[q];
        for (int32_t j = 0; j < k; j++) m->next[(size_t)cls[i] * (size_t)k + (size_t)j] = cls[reach[d->next[(size_t)q * (size_t)k + (size_t)j]]];
    }
    m->start = cls[0];
done:
    free(reach);
    free(queue);
    free(cls);
    free(ncls);
    free(sig);
    return m;
}

struct js_cdfa *js_cdfa_product(struct js_ctx *c, const struct js_cdfa *a, const struct js_cdfa *b, bool and_, const char *ptr) {
    /* the common classes, and each one's class in a and in b */
    uint32_t *tmp = lmql__malloc(((size_t)a->n_cls + (size_t)b->n_cls + 4) * sizeof *tmp);
    if (!tmp) return js_oom(c);
    int32_t nt = 0;
    for (int32_t i = 0; i <= a->n_cls; i++) tmp[nt++] = a->bound[i];
    for (int32_t i = 0; i <= b->n_cls; i++) tmp[nt++] = b->bound[i];
    uint32_t *bound;
    int32_t k = make_bounds(c, tmp, nt, &bound);
    free(tmp);
    if (k < 0) return NULL;
    int32_t *ka = js_alloc(c, (size_t)k * sizeof *ka), *kb = js_alloc(c, (size_t)k * sizeof *kb);
    if (!ka || !kb) return NULL;
    for (int32_t j = 0; j < k; j++) {
        ka[j] = bsearch_bound(a->bound, a->n_cls + 1, bound[j]);
        kb[j] = bsearch_bound(b->bound, b->n_cls + 1, bound[j]);
    }
    if ((int64_t)a->n * b->n > ((int64_t)1 << 22)) return js_fail(c, ptr, "the automaton of these constraints is too large");
    int32_t *idx = lmql__malloc((size_t)a->n * (size_t)b->n * sizeof *idx);
    int32_t *qa = lmql__malloc(DFA_MAX_STATES * sizeof *qa), *qb = lmql__malloc(DFA_MAX_STATES * sizeof *qb);
    int32_t *rows = lmql__malloc((size_t)DFA_MAX_STATES * (size_t)k * sizeof *rows);
    struct js_cdfa *p = NULL, *m = NULL;
    if (!idx || !qa || !qb || !rows) {
        js_oom(c);
        goto done;
    }
    for (size_t i = 0; i < (size_t)a->n * (size_t)b->n; i++) idx[i] = -1;
    int32_t n = 0;
    idx[(size_t)a->start * (size_t)b->n + (size_t)b->start] = n;
    qa[n] = a->start;
    qb[n] = b->start;
    n++;
    for (int32_t q = 0; q < n; q++) {
        if (!js_step(c)) goto done;
        for (int32_t j = 0; j < k; j++) {
            int32_t x = a->next[(size_t)qa[q] * (size_t)a->n_cls + (size_t)ka[j]];
            int32_t y = b->next[(size_t)qb[q] * (size_t)b->n_cls + (size_t)kb[j]];
            int32_t *slot = &idx[(size_t)x * (size_t)b->n + (size_t)y];
            if (*slot < 0) {
                if (n >= DFA_MAX_STATES) {
                    js_fail(c, ptr, "the automaton of these constraints is too large");
                    goto done;
                }
                *slot = n;
                qa[n] = x;
                qb[n] = y;
                n++;
            }
            rows[(size_t)q * (size_t)k + (size_t)j] = *slot;
        }
    }
    p = dfa_new(c, n, k, bound);
    if (!p) goto done;
    memcpy(p->next, rows, (size_t)n * (size_t)k * sizeof *rows);
    for (int32_t q = 0; q < n; q++) p->acc[q] = and_ ? a->acc[qa[q]] && b->acc[qb[q]] : a->acc[qa[q]] || b->acc[qb[q]];
    p->start = 0;
    m = minimize(c, p);
done:
    free(idx);
    free(qa);
    free(qb);
    free(rows);
    return m;
}

void js_cdfa_complement(struct js_cdfa *d) {
    for (int32_t i = 0; i < d->n; i++) d->acc[i] = !d->acc[i];
}

bool js_cdfa_empty(const struct js_cdfa *d) {
    /* no accepting state reachable (small: a linear scan of a BFS) */
    uint8_t *seen = lmql__calloc((size_t)d->n, 1);
    int32_t *queue = lmql__malloc((size_t)d->n * sizeof *queue);
    bool empty = true;
    if (!seen || !queue) {
        free(seen);
        free(queue);
        return false;   /* not proven */
    }
    int32_t head = 0, tail = 0;
    queue[tail++] = d->start;
    seen[d->start] = 1;
    while (head < tail && empty) {
        int32_t q = queue[head++];
        if (d->acc[q]) empty = false;
        for (int32_t j = 0; j < d->n_cls; j++) {
            int32_t t = d->next[(size_t)q * (size_t)d->n_cls + (size_t)j];
            if (!seen[t]) {
                seen[t] = 1;
                queue[tail++] = t;
            }
        }
    }
    free(seen);
    free(queue);
    return empty;
}

struct js_cdfa *js_cdfa_not_names(struct js_ctx *c, const struct lmql_val *const *names, int32_t n) {
    /* a trie; the classes split at every character a name uses */
    size_t total = 1;
    for (int32_t i = 0; i < n; i++) total += names[i]->u.str.len;
    uint32_t *cps = js_alloc(c, total * sizeof *cps), *tmp = js_alloc(c, (total * 2 + 4) * sizeof *tmp);
    int32_t *kid = js_alloc(c, total * sizeof *kid), *sib = js_alloc(c, total * sizeof *sib);
    uint8_t *end = js_alloc(c, total);
    if (!cps || !tmp || !kid || !sib || !end) return NULL;
    int32_t nt = 1, nb = 0;
    kid[0] = sib[0] = -1;
    for (int32_t i = 0; i < n; i++) {
        const unsigned char *s = (const unsigned char *)names[i]->u.str.s;
        size_t len = names[i]->u.str.len, at = 0;
        int32_t cur = 0;
        while (at < len) {
            uint32_t cp = 0xFFFD;
            size_t l = lmql__utf8_decode(s + at, len - at, &cp);
            at += l ? l : 1;
            int32_t y = kid[cur];
            while (y >= 0 && cps[y] != cp) y = sib[y];
            if (y < 0) {
                y = nt++;
                cps[y] = cp;
                kid[y] = -1;
                sib[y] = kid[cur];
                kid[cur] = y;
                tmp[nb++] = cp;
                tmp[nb++] = cp + 1;
            }
            cur = y;
        }
        end[cur] = 1;
    }
    if (nt + 1 > DFA_MAX_STATES) return js_fail(c, "#", "too many property names");
    uint32_t *bound;
    int32_t k = make_bounds(c, tmp, nb, &bound);
    if (k < 0) return NULL;
    struct js_cdfa *d = dfa_new(c, nt + 1, k, bound);
    if (!d) return NULL;
    int32_t out = nt;   /* off the trie: every continuation is no name */
    for (int32_t q = 0; q <= nt; q++) {
        d->acc[q] = q == out || !end[q];
        for (int32_t j = 0; j < k; j++) {
            int32_t to = out;
            if (q < nt && bound[j] + 1 == bound[j + 1])
                for (int32_t y = kid[q]; y >= 0; y = sib[y])
                    if (cps[y] == bound[j]) to = y;
            d->next[(size_t)q * (size_t)k + (size_t)j] = to;
        }
    }
    d->start = 0;
    return minimize(c, d);
}

struct js_cdfa *js_cdfa_lengths(struct js_ctx *c, int64_t m, int64_t M) {
    int64_t top = M >= 0 ? M + 1 : m;   /* M + 1: too long (dead); without M, m on saturates */
    if (top + 1 > DFA_MAX_STATES) return js_fail(c, "#", "a length bound is too large for this combination");
    uint32_t *bound = js_alloc(c, 2 * sizeof *bound);
    if (!bound) return NULL;
    bound[0] = 0;
    bound[1] = 0x110000;
    struct js_cdfa *d = dfa_new(c, (int32_t)top + 1, 1, bound);
    if (!d) return NULL;
    for (int64_t q = 0; q <= top; q++) {
        d->next[q] = (int32_t)(q < top ? q + 1 : top);
        d->acc[q] = q >= m && (M < 0 || q <= M);
    }
    d->start = 0;
    return d;
}

/* --------------------------------------------------------- to regex -- */

/* State elimination over a sparse generalized NFA: edges carry regexes. A
** DFA shaped like a trie (names) around a few shared states (what follows
** leaving it) stays linear: its nodes go first, leaves up, and the shared
** states' regexes are written once each. */
struct gedge {
    int32_t to;
    const char *rx;
};

struct gnode {
    struct gedge *out;
    int32_t nout, cap_out;
    int32_t *in;
    int32_t nin, cap_in;
    const char *loop;
    bool gone;
};

struct gnfa {
    struct js_ctx *c;
    struct gnode *v;
    int32_t n;
    bool big;
};

static const char *rx_union(struct gnfa *G, const char *a, const char *b) {
    if (!a) return b;
    if (!b || !strcmp(a, b)) return a;
    if (strlen(a) + strlen(b) > DFA_MAX_REGEX) G->big = true;
    if (G->big) return "";
    if (!*a) return js_printf(G->c, "(?:%s)?", b);
    if (!*b) return js_printf(G->c, "(?:%s)?", a);
    return js_printf(G->c, "(?:%s|%s)", a, b);
}

static const char *rx_cat3(struct gnfa *G, const char *a, const char *loop, const char *b) {
    if (strlen(a) + strlen(b) + (loop ? strlen(loop) : 0) > DFA_MAX_REGEX) G->big = true;
    if (G->big) return "";
    if (!loop || !*loop) return js_printf(G->c, "%s%s", a, b);
    return js_printf(G->c, "%s(?:%s)*%s", a, loop, b);
}

/* Add (union) the edge x -> y. */
static int g_edge(struct gnfa *G, int32_t x, int32_t y, const char *rx) {
    struct gnode *X = &G->v[x];
    if (x == y) {
        X->loop = rx_union(G, X->loop, rx);
        return X->loop ? 0 : -1;
    }
    for (int32_t i = 0; i < X->nout; i++)
        if (X->out[i].to == y) {
            X->out[i].rx = rx_union(G, X->out[i].rx, rx);
            return X->out[i].rx ? 0 : -1;
        }
    if (X->nout == X->cap_out) {
        int32_t nc = X->cap_out ? X->cap_out * 2 : 4;
        struct gedge *q = lmql__arena_grow(&G->c->arena, X->out, (size_t)X->nout, (size_t)nc, sizeof *q);
        if (!q) return (void)js_oom(G->c), -1;
        X->out = q;
        X->cap_out = nc;
    }
    X->out[X->nout++] = (struct gedge){y, rx};
    struct gnode *Y = &G->v[y];
    if (Y->nin == Y->cap_in) {
        int32_t nc = Y->cap_in ? Y->cap_in * 2 : 4;
        int32_t *q = lmql__arena_grow(&G->c->arena, Y->in, (size_t)Y->nin, (size_t)nc, sizeof *q);
        if (!q) return (void)js_oom(G->c), -1;
        Y->in = q;
        Y->cap_in = nc;
    }
    Y->in[Y->nin++] = x;
    return 0;
}

static const char *g_get(const struct gnfa *G, int32_t x, int32_t y) {
    const struct gnode *X = &G->v[x];
    for (int32_t i = 0; i < X->nout; i++)
        if (X->out[i].to == y) return X->out[i].rx;
    return NULL;
}

static int64_t g_live_degree(const struct gnfa *G, int32_t q) {
    int64_t in = 0, out = 0;
    for (int32_t i = 0; i < G->v[q].nin; i++) in += !G->v[G->v[q].in[i]].gone;
    for (int32_t i = 0; i < G->v[q].nout; i++) out += !G->v[G->v[q].out[i].to].gone;
    return in * out;
}

const char *js_cdfa_regex(struct js_ctx *c, const struct js_cdfa *d, const char *ptr) {
    int32_t n = d->n, k = d->n_cls;
    /* the useful states: reachable (all are, minimized) and co-reachable */
    uint8_t *live = lmql__calloc((size_t)n, 1);
    int32_t *id = lmql__malloc(((size_t)n + 1) * sizeof *id), m = 0;
    uint32_t *ranges = lmql__malloc(((size_t)k + 1) * 2 * sizeof *ranges);
    const char *res = NULL;
    if (!live || !id || !ranges) {
        js_oom(c);
        goto done;
    }
    for (int32_t q = 0; q < n; q++) live[q] = d->acc[q];
    for (bool ch = true; ch;) {
        ch = false;
        for (int32_t q = 0; q < n; q++) {
            if (live[q]) continue;
            for (int32_t j = 0; j < k && !live[q]; j++)
                if (live[d->next[(size_t)q * (size_t)k + (size_t)j]]) live[q] = ch = 1;
        }
    }
    if (!live[d->start]) {
        res = js_strdup(c, "\"[^\\x00-\\U0010ffff]\"", 20);   /* nothing (a quote first: no pattern of only an empty class) */
        goto done;
    }
    for (int32_t q = 0; q < n; q++) id[q] = live[q] ? m++ : -1;
    /* nodes 0..m-1, start m, final m + 1 */
    struct gnfa G = {c, js_alloc(c, ((size_t)m + 2) * sizeof *G.v), m + 2, false};
    if (!G.v) goto done;
    for (int32_t q = 0; q < n; q++) {
        if (id[q] < 0) continue;
        for (int32_t j0 = 0; j0 < k; j0++) {
            /* each target once, with all its classes */
            int32_t t = d->next[(size_t)q * (size_t)k + (size_t)j0];
            if (id[t] < 0) continue;
            bool seen = false;
            for (int32_t j = 0; j < j0 && !seen; j++) seen = d->next[(size_t)q * (size_t)k + (size_t)j] == t;
            if (seen) continue;
            int nr = 0;
            for (int32_t j = j0; j < k; j++) {
                if (d->next[(size_t)q * (size_t)k + (size_t)j] != t) continue;
                uint32_t lo = d->bound[j], hi = d->bound[j + 1] - 1;
                if (hi > 0x10FFFF) hi = 0x10FFFF;
                if (nr > 0 && ranges[2 * nr - 1] + 1 == lo) ranges[2 * nr - 1] = hi;
                else {
                    ranges[2 * nr] = lo;
                    ranges[2 * nr + 1] = hi;
                    nr++;
                }
            }
            struct lmql__buf b = {0};
            int rc = js_rx_cset(&b, ranges, nr);
            if (rc < 0) {
                lmql__buf_free(&b);
                js_oom(c);
                goto done;
            }
            if (rc == 0) {
                const char *rx = js_buf_keep(c, &b);
                if (!rx || g_edge(&G, id[q], id[t], rx)) goto done;
            } else {
                lmql__buf_free(&b);
            }
        }
        if (!js_step(c)) goto done;
        if (d->acc[q] && g_edge(&G, id[q], m + 1, "")) goto done;
    }
    if (g_edge(&G, m, id[d->start], "")) goto done;
    /* eliminate, fewest paths through first */
    for (int32_t round = 0; round < m; round++) {
        int32_t q = -1;
        int64_t best = 0;
        for (int32_t x = 0; x < m; x++) {
            if (G.v[x].gone) continue;
            int64_t cost = g_live_degree(&G, x);
            if (q < 0 || cost < best) {
                q = x;
                best = cost;
            }
        }
        struct gnode *Q = &G.v[q];
        Q->gone = true;
        for (int32_t i = 0; i < Q->nin; i++) {
            int32_t x = Q->in[i];
            if (G.v[x].gone) continue;
            const char *in = g_get(&G, x, q);
            if (!in) continue;
            for (int32_t j = 0; j < Q->nout; j++) {
                int32_t y = Q->out[j].to;
                if (G.v[y].gone) continue;
                const char *path = rx_cat3(&G, in, Q->loop, Q->out[j].rx);
                if (!path || g_edge(&G, x, y, path)) goto done;
                Q = &G.v[q];
                if (G.big) {
                    js_fail(c, ptr, "the automaton of these constraints is too large to write as one regex");
                    goto done;
                }
            }
        }
        if (!js_step(c)) goto done;
    }
    {
        const char *body = g_get(&G, m, m + 1);
        res = body ? js_printf(c, "\"%s\"", body) : js_strdup(c, "\"[^\\x00-\\U0010ffff]\"", 20);
    }
done:
    free(live);
    free(id);
    free(ranges);
    return res;
}
