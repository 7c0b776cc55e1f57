/*
** regex_exec.c -- the backtracking machine of regex_match.h and the Unicode
** character classes it and the compiler use.
**
** The program (regex_match.c) runs with an explicit stack of choices and
** undo records: SPLIT stacks its second branch, SAVE and MARK stack the
** slot's old value, so backtracking restores captures and loop marks
** exactly, and no C recursion happens per character (only per nested
** lookaround, which is bounded).
*/
#include "regex_match_int.h"

/* The step budget of one match: LMQL_RX_MAX_STEPS; a fuzz target lowers it
** so that a runaway pattern is found in seconds, not minutes. */
long lmql__rx_max_steps = LMQL_RX_MAX_STEPS;
#include "alloc.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LOOK_DEPTH 32

/* ------------------------------------------------------------- Unicode */

static bool in_ranges(const uint32_t (*r)[2], size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (c < r[m][0]) hi = m;
        else if (c > r[m][1]) lo = m + 1;
        else return true;
    }
    return false;
}

static bool is_word(uint32_t c, bool ascii) {
    if (c < 0x80 || ascii) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return in_ranges(lmql__rx_uni_w, lmql__rx_uni_w_n, c);
}
static bool is_digit(uint32_t c, bool ascii) {
    if (c < 0x80 || ascii) return c >= '0' && c <= '9';
    return in_ranges(lmql__rx_uni_d, lmql__rx_uni_d_n, c);
}
static bool is_space(uint32_t c, bool ascii) {
    /* Unicode \s also takes the separators U+001C..U+001F, as Python's str.isspace() */
    if (ascii) return c == ' ' || (c >= '\t' && c <= '\r');
    return in_ranges(lmql__rx_uni_s, lmql__rx_uni_s_n, c);
}

/* The next code point IGNORECASE treats as c (c itself when none). */
static uint32_t case_next(uint32_t c, bool ascii) {
    if (ascii) {
        if (c >= 'a' && c <= 'z') return c - 32;
        if (c >= 'A' && c <= 'Z') return c + 32;
        return c;
    }
    size_t lo = 0, hi = lmql__rx_uni_case_n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (lmql__rx_uni_case[m][0] < c) lo = m + 1;
        else hi = m;
    }
    return lo < lmql__rx_uni_case_n && lmql__rx_uni_case[lo][0] == c ? lmql__rx_uni_case[lo][1] : c;
}

/* Python's simple lowercase of c (what IGNORECASE backreferences compare). */
static uint32_t lower(uint32_t c, bool ascii) {
    if (ascii || c < 0x80) return c >= 'A' && c <= 'Z' ? c + 32 : c;
    size_t lo = 0, hi = lmql__rx_uni_case_n;
    while (lo < hi) {
        size_t m = (lo + hi) / 2;
        if (lmql__rx_uni_case[m][0] < c) lo = m + 1;
        else hi = m;
    }
    return lo < lmql__rx_uni_case_n && lmql__rx_uni_case[lo][0] == c ? lmql__rx_uni_case[lo][2] : c;
}

/* The least member of c's case class: equal for characters IGNORECASE equates. */
uint32_t lmql__rx_fold(uint32_t c, bool ascii) {
    uint32_t m = c;
    for (uint32_t x = case_next(c, ascii); x != c; x = case_next(x, ascii))
        if (x < m) m = x;
    return m;
}

/* Decode the character at s[i] (i < n): its length, RX_BAD_CP for an invalid byte. */
size_t lmql__rx_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    size_t len = lmql__utf8_decode(s + i, n - i, cp);
    if (len) return len;
    *cp = RX_BAD_CP;
    return 1;
}

/* The start of the character that ends at i (i > 0). */
static size_t prev_start(const unsigned char *s, size_t n, size_t i) {
    for (size_t k = 1; k <= 4 && k <= i; k++) {
        unsigned c = s[i - k];
        if ((c & 0xC0) != 0x80) {
            uint32_t cp;
            return lmql__rx_decode(s, n, i - k, &cp) == k ? i - k : i - 1;
        }
    }
    return i - 1;
}

/* ------------------------------------------------------------- matcher */

/* Backtrack stack entry: pc >= 0 resumes there at position v; RESTORE_CAP
** and RESTORE_REG put v back into that slot. */
enum { RESTORE_CAP = -1, RESTORE_REG = -2 };
struct bt {
    int32_t pc, slot;
    ptrdiff_t v;
};

struct vm {
    const struct lmql__rx *rx;
    const unsigned char *s;
    size_t n, start;
    int mode;
    bool no_empty;
    ptrdiff_t *caps, *regs;
    struct bt *st;
    size_t nst, cap;
    long steps;
    int depth;
    struct lmql__err *err;
};

static int vm_fail(struct vm *V, int status, const char *msg) {
    snprintf(V->err->msg, sizeof V->err->msg, "%s", msg);
    V->err->status = status;
    return -2;
}

static int push(struct vm *V, int32_t pc, int32_t slot, ptrdiff_t v) {
    if (V->nst == V->cap) {
        size_t nc = V->cap ? V->cap * 2 : 64;
        struct bt *q = lmql__realloc(V->st, nc * sizeof *q);
        if (!q) return -1;
        V->st = q;
        V->cap = nc;
    }
    V->st[V->nst++] = (struct bt){pc, slot, v};
    return 0;
}

static bool set_match(const struct lmql__rx *rx, const struct cset *cs, uint32_t c) {
    /* a set of classes only (\w) has no ranges, and the program may have none at all */
    const uint32_t (*r)[2] = rx->ranges ? (const uint32_t (*)[2])rx->ranges + cs->off : NULL;
    LMQL_ASSERT(r || cs->n == 0);
    bool hit = false;
    uint32_t x = c;
    do {
        for (int32_t i = 0; i < cs->n && !hit; i++) hit = x >= r[i][0] && x <= r[i][1];
        x = rx->icase ? case_next(x, rx->ascii) : c;
    } while (!hit && x != c);
    if (!hit && cs->sh) {
        bool a = rx->ascii, valid = c != RX_BAD_CP;
        hit = ((cs->sh & SH_W) && valid && is_word(c, a)) || ((cs->sh & SH_NW) && !(valid && is_word(c, a))) ||
              ((cs->sh & SH_D) && valid && is_digit(c, a)) || ((cs->sh & SH_ND) && !(valid && is_digit(c, a))) ||
              ((cs->sh & SH_S) && valid && is_space(c, a)) || ((cs->sh & SH_NS) && !(valid && is_space(c, a)));
    }
    return hit != cs->negate;
}

static bool word_at(const struct vm *V, size_t pos, bool before) {
    uint32_t c;
    if (before) {
        if (pos == 0) return false;
        lmql__rx_decode(V->s, V->n, prev_start(V->s, V->n, pos), &c);
    } else {
        if (pos >= V->n) return false;
        lmql__rx_decode(V->s, V->n, pos, &c);
    }
    return c != RX_BAD_CP && is_word(c, V->rx->ascii);
}

static bool assert_ok(const struct vm *V, uint32_t kind, size_t pos) {
    bool ml = V->rx->flags & LMQL_RX_MULTILINE;
    const unsigned char *s = V->s;
    switch (kind) {
    case A_BOL: return pos == 0 || (ml && s[pos - 1] == '\n');
    case A_EOL: return pos == V->n || (pos + 1 == V->n && s[pos] == '\n') || (ml && s[pos] == '\n');
    case A_START: return pos == 0;
    case A_END: return pos == V->n;
    case A_WORDB: return word_at(V, pos, true) != word_at(V, pos, false);
    default: return V->n > 0 && word_at(V, pos, true) == word_at(V, pos, false); /* sre: \B never matches "" */
    }
}

/* Go back k characters from pos; -1 when the text has fewer. */
static ptrdiff_t back_chars(const struct vm *V, size_t pos, uint32_t k) {
    for (uint32_t i = 0; i < k; i++) {
        if (pos == 0) return -1;
        pos = prev_start(V->s, V->n, pos);
    }
    return (ptrdiff_t)pos;
}

/* Run from pc at pos: the end position of the first match in backtracking
** order, -1 for none, -2 for an error.  Lookaround bodies run nested with
** `want_end` (lookbehind: the body must end there, else -1). */
static ptrdiff_t run(struct vm *V, int32_t pc, size_t pos, ptrdiff_t want_end, bool top) {
    const struct lmql__rx *rx = V->rx;
    size_t base = V->nst;
    for (;;) {
        bool ok = true;
        if (++V->steps > lmql__rx_max_steps) return vm_fail(V, LMQL_ERR_RUNTIME, "the match takes too many steps (runaway backtracking)");
        const struct inst *in = &rx->prog[pc];
        uint32_t c;
        switch (in->op) {
        case O_CHAR: case O_ANY: case O_ANYNL: case O_SET: {
            if (pos >= V->n) { ok = false; break; }
            size_t len = lmql__rx_decode(V->s, V->n, pos, &c);
            if (in->op == O_CHAR) ok = c == in->c || (rx->icase && lmql__rx_fold(c, rx->ascii) == in->c);
            else if (in->op == O_ANY) ok = c != '\n';
            else if (in->op == O_SET) ok = set_match(rx, &rx->sets[in->c], c);
            if (ok) { pos += len; pc++; }
            break;
        }
        case O_SPLIT:
            if (push(V, in->y, 0, (ptrdiff_t)pos)) return vm_fail(V, LMQL_ERR_NOMEM, "out of memory");
            pc = in->x;
            break;
        case O_JMP: pc = in->x; break;
        case O_SAVE:
            if (push(V, RESTORE_CAP, in->x, V->caps[in->x])) return vm_fail(V, LMQL_ERR_NOMEM, "out of memory");
            V->caps[in->x] = (ptrdiff_t)pos;
            pc++;
            break;
        case O_MARK:
            if (push(V, RESTORE_REG, in->x, V->regs[in->x])) return vm_fail(V, LMQL_ERR_NOMEM, "out of memory");
            V->regs[in->x] = (ptrdiff_t)pos;
            pc++;
            break;
        case O_PROG: pc = V->regs[in->x] == (ptrdiff_t)pos ? in->y : pc + 1; break;
        case O_ASSERT:
            ok = assert_ok(V, in->c, pos);
            pc++;
            break;
        case O_BREF: {
            ptrdiff_t a = V->caps[2 * in->c], b = V->caps[2 * in->c + 1];
            if (a < 0 || b < 0) { ok = false; break; }
            size_t i = (size_t)a, p = pos;
            while (ok && i < (size_t)b) {
                uint32_t x, y;
                if (p >= V->n) { ok = false; break; }
                size_t lx = lmql__rx_decode(V->s, V->n, i, &x), ly = lmql__rx_decode(V->s, V->n, p, &y);
                ok = x == y || (rx->icase && lower(x, rx->ascii) == lower(y, rx->ascii));
                i += lx;
                p += ly;
            }
            if (ok) { pos = p; pc++; }
            break;
        }
        case O_LOOK: {
            bool behind = in->y == L_BEHIND || in->y == L_NBEHIND, neg = in->y == L_NAHEAD || in->y == L_NBEHIND;
            if (V->depth >= MAX_LOOK_DEPTH) return vm_fail(V, LMQL_ERR_RUNTIME, "lookarounds nested too deeply");
            int ng = 2 * (rx->ngroups + 1);
            ptrdiff_t *saved = lmql__malloc((size_t)ng * sizeof *saved);
            if (!saved) return vm_fail(V, LMQL_ERR_NOMEM, "out of memory");
            memcpy(saved, V->caps, (size_t)ng * sizeof *saved);
            ptrdiff_t from = behind ? back_chars(V, pos, in->c) : (ptrdiff_t)pos, r = -1;
            if (from >= 0) {
                V->depth++;
                r = run(V, pc + 1, (size_t)from, behind ? (ptrdiff_t)pos : -1, false);
                V->depth--;
            }
            if (r == -2) { free(saved); return -2; }
            ok = (r >= 0) != neg;
            if (ok && !neg) {
                /* keep the captures it made, undone if this path fails later */
                for (int i = 0; i < ng; i++)
                    if (saved[i] != V->caps[i] && push(V, RESTORE_CAP, i, saved[i])) {
                        free(saved);
                        return vm_fail(V, LMQL_ERR_NOMEM, "out of memory");
                    }
            } else {
                memcpy(V->caps, saved, (size_t)ng * sizeof *saved);
            }
            free(saved);
            pc = in->x;
            break;
        }
        case O_MATCH:
            if (want_end >= 0 && (ptrdiff_t)pos != want_end) ok = false;
            else if (top && V->mode == LMQL_RX_FULLMATCH && pos != V->n) ok = false;
            else if (top && V->no_empty && V->caps[0] == (ptrdiff_t)V->start && pos == V->start) ok = false;
            if (ok) {
                V->nst = base; /* the choices left are not needed: the captures stand */
                return (ptrdiff_t)pos;
            }
            break;
        }
        if (ok) continue;
        /* backtrack */
        for (;;) {
            if (V->nst == base) return -1;
            struct bt b = V->st[--V->nst];
            if (b.pc == RESTORE_CAP) V->caps[b.slot] = b.v;
            else if (b.pc == RESTORE_REG) V->regs[b.slot] = b.v;
            else { pc = b.pc; pos = (size_t)b.v; break; }
        }
    }
}

int lmql__rx_exec(const struct lmql__rx *rx, const char *s, size_t n, size_t start, int mode,
                  int no_empty_at_start, ptrdiff_t *caps, struct lmql__err *err) {
    struct vm V;
    memset(&V, 0, sizeof V);
    V.rx = rx;
    V.s = (const unsigned char *)(s ? s : "");
    V.n = n;
    V.start = start;
    V.mode = mode;
    V.no_empty = no_empty_at_start;
    V.caps = caps;
    V.err = err;
    V.regs = lmql__malloc((size_t)(rx->nregs ? rx->nregs : 1) * sizeof *V.regs);
    if (!V.regs) return vm_fail(&V, LMQL_ERR_NOMEM, "out of memory"), -1;
    int ng = 2 * (rx->ngroups + 1), rc = 0;
    if (rx->required >= 0 && start <= n && !memchr(V.s + start, rx->required, n - start)) {
        for (int i = 0; i < ng; i++) caps[i] = -1;
        free(V.regs);
        return 0;
    }
    for (size_t at = start; at <= n;) {
        for (int i = 0; i < ng; i++) caps[i] = -1;
        for (int i = 0; i < rx->nregs; i++) V.regs[i] = -1;
        caps[0] = (ptrdiff_t)at;
        V.nst = 0;
        ptrdiff_t end = run(&V, 0, at, -1, true);
        if (end == -2) { rc = -1; break; }
        if (end >= 0) { caps[1] = end; rc = 1; break; }
        if (mode != LMQL_RX_SEARCH || at == n) break;
        uint32_t c;
        at += lmql__rx_decode(V.s, n, at, &c);
    }
    if (rc != 1)
        for (int i = 0; i < ng; i++) caps[i] = -1;
    free(V.st);
    free(V.regs);
    return rc;
}
