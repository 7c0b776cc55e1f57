/*
** regex_match.c -- Python `re` patterns with groups (regex_match.h): the
** parser and the compiler; regex_exec.c runs the program.
**
** Parse into a small AST (indices into a growable array), compile the AST
** into a program for a backtracking machine in the style of Python's sre:
** SPLIT tries its first branch and stacks the second, so alternation and
** quantifiers keep Python's leftmost, greedy-first order.  Every change to
** a capture slot or loop register is undone through the same stack, so a
** failed branch leaves no trace.  A loop whose body can match empty stops
** after an iteration that consumed nothing, as sre's MAX_UNTIL does (that
** iteration's captures stay).  Counted repeats are unrolled.
*/
#include "regex_match_int.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 200    /* group nesting */

struct parser {
    const unsigned char *p;
    size_t len, pos;
    int depth;
    struct node *nodes;
    int32_t n_nodes, cap_nodes;
    struct lmql__rx *rx;
    bool *closed;        /* per group: its ')' was seen (a backreference needs that) */
    int32_t *gnode;      /* per group: its GROUP node (a backreference's width in a lookbehind is its group's) */
    int cap_closed;
    struct lmql__err *err;
    bool failed;
};

__attribute__((format(printf, 3, 4)))
static int fail_at(struct parser *P, size_t off, const char *fmt, ...) {
    if (!P->failed) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(P->err->msg, sizeof P->err->msg, fmt, ap);
        va_end(ap);
        P->err->pos = (struct lmql_pos){0, 0, off};
        P->err->status = LMQL_ERR_QUERY;
        P->failed = true;
    }
    return -1;
}

static int oom(struct parser *P) {
    bool first = !P->failed;
    fail_at(P, 0, "out of memory");
    if (first) P->err->status = LMQL_ERR_NOMEM;
    return -1;
}


static int32_t new_node(struct parser *P, uint8_t kind) {
    if (lmql__grow((void **)&P->nodes, P->n_nodes, &P->cap_nodes, sizeof *P->nodes)) return oom(P);
    struct node *n = &P->nodes[P->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->child = n->sib = -1;
    return P->n_nodes++;
}

static int add_range(struct parser *P, uint32_t lo, uint32_t hi) {
    struct lmql__rx *rx = P->rx;
    if (lmql__grow((void **)&rx->ranges, rx->n_ranges, &rx->cap_ranges, sizeof *rx->ranges)) return oom(P);
    rx->ranges[rx->n_ranges][0] = lo;
    rx->ranges[rx->n_ranges][1] = hi;
    rx->n_ranges++;
    return 0;
}

static int32_t new_set(struct parser *P, int32_t off, uint8_t sh, bool negate) {
    struct lmql__rx *rx = P->rx;
    if (lmql__grow((void **)&rx->sets, rx->n_sets, &rx->cap_sets, sizeof *rx->sets)) return oom(P);
    rx->sets[rx->n_sets] = (struct cset){off, rx->n_ranges - off, sh, negate};
    int32_t id = new_node(P, N_SET);
    if (id < 0) return -1;
    P->nodes[id].c = (uint32_t)rx->n_sets++;
    return id;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}
static bool is_octal(unsigned char c) { return c >= '0' && c <= '7'; }
static bool is_dig(unsigned char c) { return c >= '0' && c <= '9'; }

enum { E_CHAR, E_SHORT, E_ASSERT, E_BREF };

/* Parse the escape at P->pos (a backslash).  E_CHAR: *cp; E_SHORT: *cp is
** an SH_ bit; E_ASSERT: *cp an akind; E_BREF: *cp a group number. */
static int parse_escape(struct parser *P, bool in_class, uint32_t *cp) {
    size_t at = P->pos;
    if (at + 1 >= P->len) return fail_at(P, at, "bad escape (end of pattern)");
    unsigned char c = P->p[at + 1];
    P->pos = at + 2;
    switch (c) {
    case 'n': *cp = '\n'; return E_CHAR;
    case 't': *cp = '\t'; return E_CHAR;
    case 'r': *cp = '\r'; return E_CHAR;
    case 'f': *cp = '\f'; return E_CHAR;
    case 'v': *cp = '\v'; return E_CHAR;
    case 'a': *cp = 7; return E_CHAR;
    case 'w': *cp = SH_W; return E_SHORT;
    case 'W': *cp = SH_NW; return E_SHORT;
    case 'd': *cp = SH_D; return E_SHORT;
    case 'D': *cp = SH_ND; return E_SHORT;
    case 's': *cp = SH_S; return E_SHORT;
    case 'S': *cp = SH_NS; return E_SHORT;
    case 'b':
        if (in_class) { *cp = 8; return E_CHAR; }
        *cp = A_WORDB;
        return E_ASSERT;
    case 'B': case 'A': case 'Z':
        if (in_class) return fail_at(P, at, "bad escape \\%c", c);
        *cp = c == 'B' ? A_NWORDB : c == 'A' ? A_START : A_END;
        return E_ASSERT;
    case 'N': return fail_at(P, at, "named character escapes \\N{...} are not supported");
    case 'x': case 'u': case 'U': {
        int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t v = 0;
        for (int i = 0; i < nd; i++) {
            int h = P->pos < P->len ? hexval(P->p[P->pos]) : -1;
            if (h < 0) return fail_at(P, at, "incomplete escape \\%c", c);
            v = v * 16 + (uint32_t)h;
            P->pos++;
        }
        if (v > RX_MAX_CP) return fail_at(P, at, "bad escape \\%c: code point out of range", c);
        *cp = v;
        return E_CHAR;
    }
    case '0': {
        uint32_t v = 0;
        for (int i = 0; i < 2 && P->pos < P->len && is_octal(P->p[P->pos]); i++) v = v * 8 + (P->p[P->pos++] - '0');
        *cp = v;
        return E_CHAR;
    }
    default: break;
    }
    if (is_dig(c)) {
        /* three octal digits are a character; otherwise (outside a class) a
        ** group reference of one or two digits, as Python */
        if (is_octal(c) && at + 3 < P->len && is_octal(P->p[at + 2]) && is_octal(P->p[at + 3])) {
            uint32_t v = (uint32_t)((c - '0') * 64 + (P->p[at + 2] - '0') * 8 + (P->p[at + 3] - '0'));
            if (v > 0377) return fail_at(P, at, "octal escape value outside of range 0-0o377");
            P->pos = at + 4;
            *cp = v;
            return E_CHAR;
        }
        if (in_class) {
            if (!is_octal(c)) return fail_at(P, at, "bad escape \\%c", c);
            uint32_t v = (uint32_t)(c - '0');
            for (int i = 0; i < 2 && P->pos < P->len && is_octal(P->p[P->pos]); i++) v = v * 8 + (P->p[P->pos++] - '0');
            *cp = v;
            return E_CHAR;
        }
        uint32_t g = (uint32_t)(c - '0');
        if (P->pos < P->len && is_dig(P->p[P->pos])) g = g * 10 + (P->p[P->pos++] - '0');
        *cp = g;
        return E_BREF;
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return fail_at(P, at, "bad escape \\%c", c);
    P->pos = at + 1;
    P->pos += lmql__rx_decode(P->p, P->len, at + 1, cp);
    if (*cp == RX_BAD_CP) return fail_at(P, at + 1, "invalid UTF-8 in pattern");
    return E_CHAR;
}

static int32_t parse_alt(struct parser *P);

static int32_t parse_class(struct parser *P) {
    size_t start = P->pos++;
    bool negate = false, first = true;
    uint8_t sh = 0;
    int32_t off = P->rx->n_ranges;
    if (P->pos < P->len && P->p[P->pos] == '^') { negate = true; P->pos++; }
    for (;;) {
        if (P->pos >= P->len) return fail_at(P, start, "unterminated character set");
        if (P->p[P->pos] == ']' && !first) { P->pos++; break; }
        first = false;
        size_t item = P->pos;
        uint32_t lo, hi;
        if (P->p[P->pos] == '\\') {
            int k = parse_escape(P, true, &lo);
            if (k < 0) return -1;
            if (k == E_SHORT) {
                if (P->pos + 1 < P->len && P->p[P->pos] == '-' && P->p[P->pos + 1] != ']')
                    return fail_at(P, item, "bad character range");
                sh |= (uint8_t)lo;
                continue;
            }
        } else {
            P->pos += lmql__rx_decode(P->p, P->len, P->pos, &lo);
            if (lo == RX_BAD_CP) return fail_at(P, item, "invalid UTF-8 in pattern");
        }
        hi = lo;
        if (P->pos + 1 < P->len && P->p[P->pos] == '-' && P->p[P->pos + 1] != ']') {
            P->pos++;
            if (P->p[P->pos] == '\\') {
                int k = parse_escape(P, true, &hi);
                if (k < 0) return -1;
                if (k != E_CHAR) return fail_at(P, item, "bad character range");
            } else {
                P->pos += lmql__rx_decode(P->p, P->len, P->pos, &hi);
                if (hi == RX_BAD_CP) return fail_at(P, item, "invalid UTF-8 in pattern");
            }
            if (hi < lo) return fail_at(P, item, "bad character range %.*s", (int)(P->pos - item), (const char *)P->p + item);
        }
        if (add_range(P, lo, hi)) return -1;
    }
    return new_set(P, off, sh, negate);
}

static bool name_char(unsigned char c, bool first) {
    return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80 || (!first && is_dig(c));
}

/* Read a group name ending at `end_ch` from P->pos; returns its length. */
static int read_name(struct parser *P, unsigned char end_ch, size_t *name) {
    size_t i = P->pos;
    *name = i;
    for (; i < P->len && P->p[i] != end_ch; i++)
        if (!name_char(P->p[i], i == *name)) return fail_at(P, i, "bad character in group name");
    if (i >= P->len) return fail_at(P, *name, "missing %c, unterminated name", end_ch);
    if (i == *name) return fail_at(P, *name, "missing group name");
    P->pos = i + 1;
    return (int)(i - *name);
}

static int32_t group_body(struct parser *P, size_t start, int gnum, int look) {
    if (++P->depth > MAX_DEPTH) return fail_at(P, start, "groups nested deeper than %d are not supported", MAX_DEPTH);
    int32_t inner = parse_alt(P);
    P->depth--;
    if (inner < 0) return -1;
    if (P->pos >= P->len || P->p[P->pos] != ')') return fail_at(P, start, "missing ), unterminated subpattern");
    P->pos++;
    int32_t g = new_node(P, look >= 0 ? N_LOOK : N_GROUP);
    if (g < 0) return -1;
    P->nodes[g].child = inner;
    P->nodes[g].min = gnum;
    P->nodes[g].c = (uint32_t)(look >= 0 ? look : 0);
    if (gnum > 0) {
        P->closed[gnum] = true;
        P->gnode[gnum] = g;
    }
    return g;
}

static int new_group(struct parser *P, size_t at) {
    int g = ++P->rx->ngroups;
    if (g >= P->cap_closed) {
        int nc = P->cap_closed ? P->cap_closed * 2 : 16;
        bool *c = lmql__realloc(P->closed, (size_t)nc * sizeof *c);
        char **nm = lmql__realloc(P->rx->names, (size_t)nc * sizeof *nm);
        int32_t *gn = lmql__realloc(P->gnode, (size_t)nc * sizeof *gn);
        if (c) P->closed = c;
        if (nm) P->rx->names = nm;
        if (gn) P->gnode = gn;
        if (!c || !nm || !gn) return oom(P);
        memset(P->closed + P->cap_closed, 0, (size_t)(nc - P->cap_closed) * sizeof *c);
        memset(P->rx->names + P->cap_closed, 0, (size_t)(nc - P->cap_closed) * sizeof *nm);
        P->cap_closed = nc;
    }
    if (g > 100) return fail_at(P, at, "more than 100 groups are not supported");
    return g;
}

static int32_t bref_node(struct parser *P, size_t at, int g) {
    if (g < 1 || g > P->rx->ngroups) return fail_at(P, at, "invalid group reference %d", g);
    if (!P->closed[g]) return fail_at(P, at, "cannot refer to an open group");
    int32_t b = new_node(P, N_BREF);
    if (b >= 0) P->nodes[b].c = (uint32_t)g;
    return b;
}

static int32_t parse_group(struct parser *P) {
    size_t start = P->pos++;
    const unsigned char *p = P->p;
    if (P->pos >= P->len || p[P->pos] != '?') {
        int g = new_group(P, start);
        return g < 0 ? -1 : group_body(P, start, g, -1);
    }
    size_t q = P->pos + 1;
    unsigned char c = q < P->len ? p[q] : 0, c2 = q + 1 < P->len ? p[q + 1] : 0;
    if (c == ':') { P->pos = q + 1; return group_body(P, start, 0, -1); }
    if (c == 'P' && c2 == '<') {
        P->pos = q + 2;
        size_t name;
        int len = read_name(P, '>', &name);
        if (len < 0) return -1;
        if (lmql__rx_group_index(P->rx, (const char *)p + name, (size_t)len) > 0)
            return fail_at(P, name, "redefinition of group name '%.*s'", len, (const char *)p + name);
        int g = new_group(P, start);
        if (g < 0) return -1;
        if (!(P->rx->names[g] = lmql__malloc((size_t)len + 1))) return oom(P);
        memcpy(P->rx->names[g], p + name, (size_t)len);
        P->rx->names[g][len] = 0;
        return group_body(P, start, g, -1);
    }
    if (c == 'P' && c2 == '=') {
        P->pos = q + 2;
        size_t name;
        int len = read_name(P, ')', &name);
        if (len < 0) return -1;
        int g = lmql__rx_group_index(P->rx, (const char *)p + name, (size_t)len);
        if (g < 0) return fail_at(P, name, "unknown group name '%.*s'", len, (const char *)p + name);
        return bref_node(P, start, g);
    }
    if (c == '=' || c == '!') { P->pos = q + 1; return group_body(P, start, 0, c == '=' ? L_AHEAD : L_NAHEAD); }
    if (c == '<' && (c2 == '=' || c2 == '!')) {
        P->pos = q + 2;
        return group_body(P, start, 0, c2 == '=' ? L_BEHIND : L_NBEHIND);
    }
    if (c == '#') {
        size_t i = q + 1;
        while (i < P->len && p[i] != ')') i++;
        if (i >= P->len) return fail_at(P, start, "missing ), unterminated comment");
        P->pos = i + 1;
        return new_node(P, N_EMPTY);
    }
    if (c == '(') return fail_at(P, start, "conditional groups (?(...)...) are not supported");
    if (c == '>') return fail_at(P, start, "atomic groups (?>...) are not supported");
    if (c && strchr("aiLmsux-", c)) {
        /* global flags (?aimsux) at the start of the pattern; scoped ones are not supported */
        size_t i = q;
        int fl = 0;
        for (; i < P->len && strchr("aiLmsux", p[i]) && p[i]; i++)
            fl |= p[i] == 'a' ? LMQL_RX_ASCII : p[i] == 'i' ? LMQL_RX_IGNORECASE : p[i] == 'L' ? LMQL_RX_LOCALE
                : p[i] == 'm' ? LMQL_RX_MULTILINE : p[i] == 's' ? LMQL_RX_DOTALL : p[i] == 'u' ? LMQL_RX_UNICODE
                : LMQL_RX_VERBOSE;
        if (i < P->len && p[i] == ')' && start == 0) {
            if (fl & (LMQL_RX_LOCALE | LMQL_RX_VERBOSE))
                return fail_at(P, start, "the inline flag (?%s) is not supported", fl & LMQL_RX_LOCALE ? "L" : "x");
            P->rx->flags |= fl;
            P->pos = i + 1;
            return new_node(P, N_EMPTY);
        }
        if (i < P->len && p[i] == ')')
            return fail_at(P, start, "global flags not at the start of the expression");
        return fail_at(P, start, "scoped inline flags (?%.*s) are not supported", (int)(i - q + 1 < 8 ? i - q + 1 : 8), (const char *)p + q);
    }
    return fail_at(P, start, "unknown extension (?%c", c ? c : '?');
}

static bool scan_brace(const struct parser *P, size_t at, int32_t *min, int32_t *max, size_t *end) {
    size_t i = at + 1;
    int32_t lo = 0, hi = -1;
    bool have_lo = false, comma = false;
    if (at >= P->len || P->p[at] != '{') return false;
    for (; i < P->len && is_dig(P->p[i]); i++) {
        have_lo = true;
        if (lo <= LMQL_RX_MAX_REPEAT) lo = lo * 10 + (P->p[i] - '0');
    }
    if (i < P->len && P->p[i] == ',') {
        comma = true;
        for (i++; i < P->len && is_dig(P->p[i]); i++) {
            if (hi < 0) hi = 0;
            if (hi <= LMQL_RX_MAX_REPEAT) hi = hi * 10 + (P->p[i] - '0');
        }
    }
    if (i >= P->len || P->p[i] != '}') return false;
    if (!have_lo && !comma) return false;
    if (!comma) hi = lo;
    *min = lo;
    *max = hi;
    *end = i + 1;
    return true;
}

static bool quant_here(const struct parser *P, size_t at) {
    int32_t a, b;
    size_t e;
    if (at >= P->len) return false;
    unsigned char c = P->p[at];
    return c == '*' || c == '+' || c == '?' || scan_brace(P, at, &a, &b, &e);
}

static int32_t parse_atom(struct parser *P) {
    size_t at = P->pos;
    unsigned char c = P->p[at];
    if (quant_here(P, at)) return fail_at(P, at, "nothing to repeat");
    switch (c) {
    case '(': return parse_group(P);
    case '[': return parse_class(P);
    case '.': P->pos++; return new_node(P, N_ANY);
    case '^': case '$': {
        P->pos++;
        int32_t a = new_node(P, N_ASSERT);
        if (a >= 0) P->nodes[a].c = c == '^' ? A_BOL : A_EOL;
        return a;
    }
    case '\\': {
        uint32_t cp = 0;
        int k = parse_escape(P, false, &cp);
        if (k < 0) return -1;
        if (k == E_BREF) return bref_node(P, at, (int)cp);
        if (k == E_SHORT) return new_set(P, P->rx->n_ranges, (uint8_t)cp, false);
        int32_t a = new_node(P, k == E_ASSERT ? N_ASSERT : N_CHAR);
        if (a >= 0) P->nodes[a].c = cp;
        return a;
    }
    default: {
        uint32_t cp;
        P->pos += lmql__rx_decode(P->p, P->len, at, &cp);
        if (cp == RX_BAD_CP) return fail_at(P, at, "invalid UTF-8 in pattern");
        int32_t a = new_node(P, N_CHAR);
        if (a >= 0) P->nodes[a].c = cp;
        return a;
    }
    }
}

/* Append `a` to the list whose last member is *last (first in *first). */
static void link(struct parser *P, int32_t *first, int32_t *last, int32_t a) {
    if (*last >= 0) P->nodes[*last].sib = a;
    else *first = a;
    *last = a;
}

static int32_t parse_cat(struct parser *P) {
    int32_t first = -1, last = -1, count = 0;
    while (P->pos < P->len && P->p[P->pos] != '|' && P->p[P->pos] != ')') {
        size_t at = P->pos;
        int32_t a = parse_atom(P);
        if (a < 0) return -1;
        if (quant_here(P, P->pos)) {
            uint8_t k = P->nodes[a].kind;
            if (k == N_ASSERT || k == N_LOOK || (k == N_EMPTY && P->p[at] == '('))
                return fail_at(P, P->pos, "nothing to repeat");
            int32_t min, max;
            unsigned char q = P->p[P->pos];
            size_t qat = P->pos;
            if (q == '*') { min = 0; max = -1; P->pos++; }
            else if (q == '+') { min = 1; max = -1; P->pos++; }
            else if (q == '?') { min = 0; max = 1; P->pos++; }
            else {
                size_t end = qat;
                scan_brace(P, qat, &min, &max, &end);
                if (min > LMQL_RX_MAX_REPEAT || max > LMQL_RX_MAX_REPEAT)
                    return fail_at(P, qat, "repetition counts above %d are not supported", LMQL_RX_MAX_REPEAT);
                if (max >= 0 && min > max) return fail_at(P, qat, "min repeat greater than max repeat");
                P->pos = end;
            }
            bool lazy = false;
            if (P->pos < P->len && P->p[P->pos] == '?') { lazy = true; P->pos++; }
            else if (P->pos < P->len && P->p[P->pos] == '+')
                return fail_at(P, P->pos, "possessive quantifiers (%c+) are not supported", q);
            if (quant_here(P, P->pos)) return fail_at(P, P->pos, "multiple repeat");
            int32_t r = new_node(P, N_REP);
            if (r < 0) return -1;
            P->nodes[r].child = a;
            P->nodes[r].min = min;
            P->nodes[r].max = max;
            P->nodes[r].lazy = lazy;
            a = r;
        }
        link(P, &first, &last, a);
        count++;
    }
    if (count == 0) return new_node(P, N_EMPTY);
    if (count == 1) return first;
    int32_t c = new_node(P, N_CAT);
    if (c >= 0) P->nodes[c].child = first;
    return c;
}

static int32_t parse_alt(struct parser *P) {
    int32_t first = parse_cat(P), last = first, count = 1;
    if (first < 0) return -1;
    while (P->pos < P->len && P->p[P->pos] == '|') {
        P->pos++;
        int32_t c = parse_cat(P);
        if (c < 0) return -1;
        link(P, &first, &last, c);
        count++;
    }
    if (count == 1) return first;
    int32_t a = new_node(P, N_ALT);
    if (a >= 0) P->nodes[a].child = first;
    return a;
}

/* ------------------------------------------------------------- compile */

/* Can n match the empty string? (Loops over such bodies need the progress check.) */
static bool nullable(const struct parser *P, int32_t id) {
    const struct node *n = &P->nodes[id];
    switch (n->kind) {
    case N_CHAR: case N_ANY: case N_SET: return false;
    case N_CAT:
        for (int32_t c = n->child; c >= 0; c = P->nodes[c].sib)
            if (!nullable(P, c)) return false;
        return true;
    case N_ALT:
        for (int32_t c = n->child; c >= 0; c = P->nodes[c].sib)
            if (nullable(P, c)) return true;
        return false;
    case N_REP: return n->min == 0 || nullable(P, n->child);
    case N_GROUP: return nullable(P, n->child);
    default: return true; /* empty, assertions, backreferences, lookarounds */
    }
}

/* The width in characters of what n matches, or -1 when it varies (lookbehind needs it fixed). */
static int32_t width(const struct parser *P, int32_t id) {
    const struct node *n = &P->nodes[id];
    switch (n->kind) {
    case N_CHAR: case N_ANY: case N_SET: return 1;
    case N_CAT: {
        int64_t w = 0;
        for (int32_t c = n->child; c >= 0; c = P->nodes[c].sib) {
            int32_t x = width(P, c);
            if (x < 0) return -1;
            w += x;
        }
        return w > INT32_MAX / 2 ? -1 : (int32_t)w;
    }
    case N_ALT: {
        int32_t w = -2;
        for (int32_t c = n->child; c >= 0; c = P->nodes[c].sib) {
            int32_t x = width(P, c);
            if (x < 0 || (w != -2 && x != w)) return -1;
            w = x;
        }
        return w;
    }
    case N_REP: {
        int32_t x = width(P, n->child);
        return x == 0 ? 0 : x < 0 || n->min != n->max ? -1 : x * n->min;
    }
    case N_GROUP: return width(P, n->child);
    case N_BREF: return width(P, P->gnode[n->c]);   /* as Python: the group's width when fixed */
    default: return 0;
    }
}

static int32_t emit(struct parser *P, uint8_t op, int32_t x, int32_t y, uint32_t c) {
    struct lmql__rx *rx = P->rx;
    if (P->failed) return -1;
    if (rx->n_prog >= LMQL_RX_MAX_PROG) return fail_at(P, 0, "patterns over %d steps (counted repeats unrolled) are not supported", LMQL_RX_MAX_PROG);
    if (lmql__grow((void **)&rx->prog, rx->n_prog, &rx->cap_prog, sizeof *rx->prog)) return oom(P);
    rx->prog[rx->n_prog] = (struct inst){op, x, y, c};
    return rx->n_prog++;
}

static int compile(struct parser *P, int32_t id);

/* One optional iteration of a loop body: MARK, body, PROG (stop after an empty one). */
static int body_once(struct parser *P, int32_t child, bool check, int32_t *prog_at) {
    int32_t reg = check ? P->rx->nregs++ : -1;
    if (check && emit(P, O_MARK, reg, 0, 0) < 0) return -1;
    if (compile(P, child)) return -1;
    *prog_at = -1;
    if (check && (*prog_at = emit(P, O_PROG, reg, -1, 0)) < 0) return -1;
    return 0;
}

static int compile(struct parser *P, int32_t id) {
    struct lmql__rx *rx = P->rx;
    const struct node n = P->nodes[id];
    if (P->failed) return -1;
    switch (n.kind) {
    case N_EMPTY: return 0;
    case N_CHAR:
        return emit(P, O_CHAR, 0, 0, rx->icase ? lmql__rx_fold(n.c, rx->ascii) : n.c) < 0 ? -1 : 0;
    case N_ANY: return emit(P, rx->flags & LMQL_RX_DOTALL ? O_ANYNL : O_ANY, 0, 0, 0) < 0 ? -1 : 0;
    case N_SET: return emit(P, O_SET, 0, 0, n.c) < 0 ? -1 : 0;
    case N_ASSERT: return emit(P, O_ASSERT, 0, 0, n.c) < 0 ? -1 : 0;
    case N_BREF: return emit(P, O_BREF, 0, 0, n.c) < 0 ? -1 : 0;
    case N_CAT:
        for (int32_t c = n.child; c >= 0; c = P->nodes[c].sib)
            if (compile(P, c)) return -1;
        return 0;
    case N_ALT: {
        /* SPLIT next-alt; body; JMP end ... : the JMPs are patched to the end */
        int32_t jmps = -1; /* chain through .x of the JMPs */
        for (int32_t c = n.child; c >= 0; c = P->nodes[c].sib) {
            int32_t split = -1;
            if (P->nodes[c].sib >= 0 && (split = emit(P, O_SPLIT, 0, 0, 0)) < 0) return -1;
            if (split >= 0) rx->prog[split].x = rx->n_prog;
            if (compile(P, c)) return -1;
            if (P->nodes[c].sib >= 0) {
                int32_t j = emit(P, O_JMP, jmps, 0, 0);
                if (j < 0) return -1;
                jmps = j;
                rx->prog[split].y = rx->n_prog;
            }
        }
        while (jmps >= 0) {
            int32_t next = rx->prog[jmps].x;
            rx->prog[jmps].x = rx->n_prog;
            jmps = next;
        }
        return 0;
    }
    case N_GROUP:
        if (n.min && emit(P, O_SAVE, 2 * n.min, 0, 0) < 0) return -1;
        if (compile(P, n.child)) return -1;
        if (n.min && emit(P, O_SAVE, 2 * n.min + 1, 0, 0) < 0) return -1;
        return 0;
    case N_LOOK: {
        int32_t w = 0;
        if (n.c == L_BEHIND || n.c == L_NBEHIND) {
            if ((w = width(P, n.child)) < 0) return fail_at(P, 0, "look-behind requires fixed-width pattern");
        }
        int32_t look = emit(P, O_LOOK, 0, (int32_t)n.c, (uint32_t)w);
        if (look < 0 || compile(P, n.child) || emit(P, O_MATCH, 0, 0, 0) < 0) return -1;
        rx->prog[look].x = rx->n_prog;
        return 0;
    }
    default: break; /* N_REP */
    }
    bool check = nullable(P, n.child);
    for (int32_t i = 0; i < n.min; i++)
        if (compile(P, n.child)) return -1;
    if (n.max < 0) {
        /* L: SPLIT body, exit; body; [PROG -> exit]; JMP L */
        int32_t loop = emit(P, O_SPLIT, 0, 0, 0), prog_at;
        if (loop < 0) return -1;
        int32_t body = rx->n_prog;
        if (body_once(P, n.child, check, &prog_at) || emit(P, O_JMP, loop, 0, 0) < 0) return -1;
        int32_t exit = rx->n_prog;
        rx->prog[loop].x = n.lazy ? exit : body;
        rx->prog[loop].y = n.lazy ? body : exit;
        if (prog_at >= 0) rx->prog[prog_at].y = exit;
        return 0;
    }
    /* max - min optional copies, each entered only after the one before:
    ** SPLIT body, exit; body; SPLIT body2, exit; ... exit */
    int32_t first_fix = -1;    /* chain (through .c) of the instructions whose exit is patched */
    for (int32_t i = 0; i < n.max - n.min; i++) {
        int32_t split = emit(P, O_SPLIT, 0, 0, 0), prog_at;
        if (split < 0) return -1;
        int32_t body = rx->n_prog;
        if (body_once(P, n.child, check, &prog_at)) return -1;
        rx->prog[split].x = n.lazy ? -1 : body;
        rx->prog[split].y = n.lazy ? body : -1;
        rx->prog[split].c = (uint32_t)first_fix;
        first_fix = split;
        if (prog_at >= 0) {
            rx->prog[prog_at].c = (uint32_t)first_fix;
            first_fix = prog_at;
        }
    }
    int32_t exit = rx->n_prog;
    while (first_fix >= 0) {
        struct inst *in = &rx->prog[first_fix];
        int32_t next = (int32_t)in->c;
        if (in->op == O_PROG) in->y = exit;
        else if (in->x < 0) in->x = exit;
        else in->y = exit;
        in->c = 0;
        first_fix = next;
    }
    return 0;
}

/* An ASCII character every match of node id contains, or -1: a literal in
** the pattern's top-level sequence (through groups and repeats of at least
** one; never inside a lookaround, whose text is no part of the match). */
static int required_char(const struct parser *P, int32_t id, bool icase) {
    const struct node *n = &P->nodes[id];
    switch (n->kind) {
    case N_CHAR:
        if (n->c >= 0x80 || (icase && ((n->c | 0x20) >= 'a' && (n->c | 0x20) <= 'z'))) return -1;
        return (int)n->c;
    case N_CAT:
        for (int32_t c = n->child; c >= 0; c = P->nodes[c].sib) {
            int r = required_char(P, c, icase);
            if (r >= 0) return r;
        }
        return -1;
    case N_GROUP: return required_char(P, n->child, icase);
    case N_REP: return n->min >= 1 ? required_char(P, n->child, icase) : -1;
    default: return -1;
    }
}

struct lmql__rx *lmql__rx_compile(const char *pattern, size_t len, int flags, struct lmql__err *err) {
    struct lmql__rx *rx = lmql__calloc(1, sizeof *rx);
    struct parser P;
    memset(&P, 0, sizeof P);
    if (!rx) {
        snprintf(err->msg, sizeof err->msg, "out of memory");
        err->status = LMQL_ERR_NOMEM;
        return NULL;
    }
    rx->flags = flags;
    P.p = (const unsigned char *)(pattern ? pattern : "");
    P.len = pattern ? len : 0;
    P.rx = rx;
    P.err = err;
    if (flags & LMQL_RX_LOCALE) fail_at(&P, 0, "the LOCALE flag is not supported");
    else if (flags & LMQL_RX_VERBOSE) fail_at(&P, 0, "the VERBOSE flag is not supported");
    else if ((flags & LMQL_RX_ASCII) && (flags & LMQL_RX_UNICODE)) fail_at(&P, 0, "ASCII and UNICODE flags are incompatible");
    int32_t root = P.failed ? -1 : parse_alt(&P);
    if (root >= 0 && P.pos < P.len) fail_at(&P, P.pos, "unbalanced parenthesis");
    if (!P.failed && (rx->flags & LMQL_RX_LOCALE)) fail_at(&P, 0, "the LOCALE flag is not supported");
    if (!P.failed) {
        rx->icase = rx->flags & LMQL_RX_IGNORECASE;
        rx->ascii = rx->flags & LMQL_RX_ASCII;
        if (!(rx->ascii)) rx->flags |= LMQL_RX_UNICODE;
        /* under IGNORECASE 'k' also matches U+212A, so only non-letters count */
        rx->required = required_char(&P, root, rx->icase);
        if (!compile(&P, root)) emit(&P, O_MATCH, 0, 0, 0);
    }
    free(P.nodes);
    free(P.closed);
    free(P.gnode);
    if (P.failed) {
        lmql__rx_free(rx);
        return NULL;
    }
    return rx;
}

void lmql__rx_free(struct lmql__rx *rx) {
    if (!rx) return;
    for (int g = 0; rx->names && g <= rx->ngroups; g++) free(rx->names[g]);
    free(rx->names);
    free(rx->prog);
    free(rx->ranges);
    free(rx->sets);
    free(rx);
}

int lmql__rx_ngroups(const struct lmql__rx *rx) { return rx->ngroups; }
int lmql__rx_flags(const struct lmql__rx *rx) { return rx->flags; }

const char *lmql__rx_group_name(const struct lmql__rx *rx, int g) {
    return g >= 1 && g <= rx->ngroups && rx->names ? rx->names[g] : NULL;
}

int lmql__rx_group_index(const struct lmql__rx *rx, const char *name, size_t len) {
    for (int g = 1; rx->names && g <= rx->ngroups; g++)
        if (rx->names[g] && strlen(rx->names[g]) == len && !memcmp(rx->names[g], name, len)) return g;
    return -1;
}

