/*
** Searching over the program's choices: beam search (beam, beam_sample)
** and best_k. A candidate sequence is the list of tokens chosen so far;
** each step replays candidates (seqs.c) to their next choice, together
** when the model batches, and extends them by the candidates there.
*/
#include "search.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A candidate sequence of a search. */
struct cand_seq {
    int32_t *trace;              /* the tokens chosen so far */
    int32_t n;
    double score;                /* sum of the chosen tokens' log-probabilities */
    int time;                    /* best_k: the step it was made in */
    bool done;                   /* beam: finished, res filled */
    struct lmql__seq_result res;
};

static void cand_seqs_free(struct cand_seq *v, int n) {
    for (int i = 0; v && i < n; i++) {
        free(v[i].trace);
        lmql__seq_result_free(&v[i].res);
    }
}

/* Into *nb: b extended by candidate c. */
static int cand_extend(struct interp *I, struct cand_seq *nb, const struct cand_seq *b, const struct lmql__cand *c,
                       int time) {
    memset(nb, 0, sizeof *nb);
    nb->trace = lmql__malloc(((size_t)b->n + 1) * sizeof *nb->trace);
    if (!nb->trace) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    if (b->n) memcpy(nb->trace, b->trace, (size_t)b->n * sizeof *nb->trace);
    nb->trace[b->n] = c->tok;
    nb->n = b->n + 1;
    nb->score = b->score + c->lp;
    nb->time = time;
    return 0;
}

/* The results of the finished sequences v[0..n), in that order, into out. */
static int cand_collect(struct interp *I, struct cand_seq *v, int n, struct lmql__run_out *out) {
    free(out->seqs);
    out->seqs = lmql__calloc((size_t)(n > 0 ? n : 1), sizeof *out->seqs);
    if (!out->seqs) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        out->seqs[i] = v[i].res;
        memset(&v[i].res, 0, sizeof v[i].res);
        if (out->seqs[i].ret) out->has_return = true;
        out->n_seqs = i + 1;
    }
    return 0;
}

/* ------------------------------------------------------------ replays -- */

/* The replays of one search step: which traces, in which slots, and how
** each ended (finished with a result, or at its candidates). */
struct replays {
    int n;
    int *slots, *ends;           /* enum lmql__replay_end */
    struct lmql__beam_io *ios;
    struct lmql__seq_result *ress;
    struct lmql__cand *cands;    /* width per replay */
    int width;
    struct lmql_val *args;
};

static int replays_init(struct replays *r, int n, int width, struct lmql_val *args) {
    LMQL_ASSERT(n >= 1 && width >= 1);   /* the decoder's n and continuations are at least 1 */
    memset(r, 0, sizeof *r);
    r->width = width;
    r->args = args;
    r->slots = lmql__calloc((size_t)n + 1, sizeof *r->slots);
    r->ends = lmql__calloc((size_t)n + 1, sizeof *r->ends);
    r->ios = lmql__calloc((size_t)n + 1, sizeof *r->ios);
    r->ress = lmql__calloc((size_t)n + 1, sizeof *r->ress);
    r->cands = lmql__calloc(((size_t)n + 1) * (size_t)width, sizeof *r->cands);
    return r->slots && r->ends && r->ios && r->ress && r->cands ? 0 : -1;
}

/* Add the replay of c's trace in slot. */
static void replays_add(struct replays *r, const struct cand_seq *c, int slot) {
    int k = r->n++;
    r->slots[k] = slot;
    r->ios[k] = (struct lmql__beam_io){.trace = c->trace, .n_trace = c->n, .width = r->width,
                                       .cand = r->cands + (size_t)k * (size_t)r->width};
}

static void replays_free(struct replays *r) {
    for (int k = 0; r->ress && k < r->n; k++) lmql__seq_result_free(&r->ress[k]);
    free(r->slots); free(r->ends); free(r->ios); free(r->ress); free(r->cands);
}

static int replay_job(struct interp *T, int k, void *ud) {
    struct replays *r = ud;
    return (int)lmql__replay(T, r->args, &r->ios[k], r->slots[k], &r->ress[k]);
}

/* Run them: together when the model batches, else one after another.
** Returns -1 when one failed (the error is on I). */
static int replays_run(struct interp *I, struct replays *r) {
    if (r->n < 2 || lmql__seqs_parallel(I, r->n, false, "beam", replay_job, r, r->ends) != 0)
        for (int k = 0; k < r->n; k++) r->ends[k] = replay_job(I, k, r);
    for (int k = 0; k < r->n; k++) if (r->ends[k] == LMQL_REPLAY_FAILED) return -1;
    return 0;
}

/* --------------------------------------------------------- beam search -- */

static int cmp_score(const void *a, const void *b) {
    double x = ((const struct cand_seq *)a)->score, y = ((const struct cand_seq *)b)->score;
    return x > y ? -1 : x < y;
}

/*
** Beam search over the whole program (LMQL's beam, beam_sample): each beam
** is the list of choices made so far. Every step replays each open beam to
** its next choice, extends it by its best `width` candidates (or `width`
** draws), and keeps the `width` best beams by total log-probability,
** finished ones included, until all kept beams are finished. Replays cost
** no model calls for earlier choices (their tokens are known and the KV
** cache holds the shared prefixes); each open beam costs one evaluation per
** step. The result is the finished beams, best first.
*/
int lmql__run_beam(struct interp *I, const struct lmql__decoder_cfg *cfg, struct lmql_val *args,
                   struct lmql__run_out *out) {
    int width = cfg->n, rc = 0;
    struct cand_seq *cur = lmql__calloc(1, sizeof *cur), *next = NULL;
    int n_cur = 1, n_next = 0;
    if (!cur) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    for (int step = 0; rc == 0; step++) {
        bool open = false;
        for (int i = 0; i < n_cur; i++) open |= !cur[i].done;
        if (!open) break;
        if (step > cfg->max_len) { rc = lmql__fail(I, NULL, LMQL_ERR_RUNTIME, "beam search exceeded max_len steps"); break; }
        next = lmql__calloc((size_t)n_cur * (size_t)width + (size_t)n_cur, sizeof *next);
        n_next = 0;
        if (!next) { rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); break; }
        /* Replay the open beams to their next choice. */
        struct replays rp;
        if (replays_init(&rp, n_cur, width, args)) rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < n_cur; i++)
            if (!cur[i].done) replays_add(&rp, &cur[i], i % I->model->n_slots);
        if (rc == 0) rc = replays_run(I, &rp);
        for (int i = 0, k = 0; rc == 0 && i < n_cur; i++) {
            struct cand_seq *b = &cur[i];
            if (b->done) { next[n_next++] = *b; memset(b, 0, sizeof *b); continue; }
            LMQL_ASSERT(k < rp.n);   /* one replay per open beam, in order */
            struct lmql__beam_io *io = &rp.ios[k];
            struct lmql__seq_result *res = &rp.ress[k];
            if (rp.ends[k++] == LMQL_REPLAY_FINISHED) {
                b->done = true;
                b->res = *res;
                memset(res, 0, sizeof *res);
                next[n_next++] = *b;
                memset(b, 0, sizeof *b);
                continue;
            }
            LMQL_ASSERT(io->n_cand <= width);   /* next has room for width per beam */
            for (int c = 0; rc == 0 && c < io->n_cand; c++)
                if ((rc = cand_extend(I, &next[n_next], b, &io->cand[c], 0)) == 0) n_next++;
        }
        replays_free(&rp);
        /* Keep the best `width`. */
        qsort(next, (size_t)n_next, sizeof *next, cmp_score);
        if (n_next > width) cand_seqs_free(next + width, n_next - width);
        if (n_next > width) n_next = width;
        cand_seqs_free(cur, n_cur);
        free(cur);
        cur = next;
        n_cur = n_next;
        next = NULL;
    }
    if (rc == 0) rc = cand_collect(I, cur, n_cur, out);
    cand_seqs_free(cur, n_cur);
    free(cur);
    return rc;
}

/* -------------------------------------------------------------- best_k -- */

/* The length-normalized score. */
static double normalized(const struct cand_seq *b) {
    return b->score / pow(b->n > 1 ? (double)b->n : 1.0, 0.7);
}

/* LMQL's best_k ordering: length-normalized score, older entries decayed. */
static double bk_rank(const struct cand_seq *b, int t, const struct lmql__decoder_cfg *cfg) {
    double age = (double)(t - b->time);
    return normalized(b) - cfg->kappa * pow(age > 0 ? age : 0, cfg->beta);
}

static int bk_pick_best(struct cand_seq *v, int n, int t, const struct lmql__decoder_cfg *cfg) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (bk_rank(&v[i], t, cfg) > bk_rank(&v[best], t, cfg)) best = i;
    return best;
}

static int cmp_normalized(const void *a, const void *b) {
    double nx = normalized(a), ny = normalized(b);
    return nx > ny ? -1 : nx < ny;
}

/* Room for one more in *v (of *cap). */
static int cand_grow(struct interp *I, struct cand_seq **v, int n, int *cap) {
    if (n < *cap) return 0;
    struct cand_seq *m = lmql__realloc(*v, (size_t)(*cap * 2) * sizeof *m);
    if (!m) return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
    *cap *= 2;
    *v = m;
    return 0;
}

/*
** best_k (LMQL's decoder of that name): a best-first search. Each step
** expands the k best open sequences (length-normalized log-probability,
** older ones decayed by kappa * age^beta) by their top continuations whose
** probability is at least gamma; finished sequences are collected. It runs
** until `budget` expansions were made (and at least one sequence finished),
** keeping at most max_heap_size open; the result is every finished
** sequence, best first. Expansions are replays, batched like beam steps.
*/
int lmql__run_best_k(struct interp *I, const struct lmql__decoder_cfg *cfg, struct lmql_val *args,
                     struct lmql__run_out *out) {
    int k = cfg->n, rc = 0, n_open = 1, cap_open = 16, n_done = 0, cap_done = 8, spent = 0;
    struct cand_seq *open = lmql__calloc((size_t)cap_open, sizeof *open), *done = lmql__calloc((size_t)cap_done, sizeof *done);
    if (!open || !done) { free(open); free(done); return lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory"); }
    open[0].time = -1;
    for (int t = 0; rc == 0 && n_open > 0 && (spent < cfg->budget || n_done == 0); t++) {
        if (t > cfg->max_len) { rc = lmql__fail(I, NULL, LMQL_ERR_RUNTIME, "best_k exceeded max_len steps"); break; }
        int g = n_open < k ? n_open : k;
        struct cand_seq *sel = lmql__calloc((size_t)g, sizeof *sel);
        struct replays rp;
        if (replays_init(&rp, g, cfg->continuations, args) || !sel)
            rc = lmql__fail(I, NULL, LMQL_ERR_NOMEM, "out of memory");
        for (int i = 0; rc == 0 && i < g; i++) {   /* take the g best out of the open set */
            int b = bk_pick_best(open, n_open, t, cfg);
            sel[i] = open[b];
            open[b] = open[--n_open];
            replays_add(&rp, &sel[i], i % I->model->n_slots);
        }
        if (rc == 0) rc = replays_run(I, &rp);
        for (int i = 0; rc == 0 && i < g; i++) {
            if (rp.ends[i] == LMQL_REPLAY_FINISHED) {
                if ((rc = cand_grow(I, &done, n_done, &cap_done))) break;
                sel[i].res = rp.ress[i];
                memset(&rp.ress[i], 0, sizeof rp.ress[i]);
                done[n_done++] = sel[i];
                memset(&sel[i], 0, sizeof sel[i]);
                continue;
            }
            for (int c = 0; rc == 0 && c < rp.ios[i].n_cand; c++) {
                /* Continuations below gamma are dropped, but a sequence keeps
                ** its best one (candidates come best first): with a flat
                ** distribution LMQL's loop would otherwise find nothing. */
                if (c > 0 && exp(rp.ios[i].cand[c].lp) < cfg->gamma) continue;
                if ((rc = cand_grow(I, &open, n_open, &cap_open)) == 0 &&
                    (rc = cand_extend(I, &open[n_open], &sel[i], &rp.ios[i].cand[c], t)) == 0)
                    n_open++;
            }
        }
        /* Keep the heap bounded: drop the lowest ranked. */
        while (rc == 0 && n_open > cfg->max_heap) {
            int worst = 0;
            for (int i = 1; i < n_open; i++)
                if (bk_rank(&open[i], t, cfg) < bk_rank(&open[worst], t, cfg)) worst = i;
            free(open[worst].trace);
            open[worst] = open[--n_open];
        }
        LMQL_ASSERT(rc != 0 || n_open <= cfg->max_heap);   /* at most max_heap_size kept open */
        spent += g;
        cand_seqs_free(sel, g);
        free(sel);
        replays_free(&rp);
    }
    if (rc == 0) {
        qsort(done, (size_t)n_done, sizeof *done, cmp_normalized);
        rc = cand_collect(I, done, n_done, out);
    }
    cand_seqs_free(open, n_open);
    cand_seqs_free(done, n_done);
    free(open);
    free(done);
    return rc;
}
