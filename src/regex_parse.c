/*
** regex_parse.c -- pattern parser and Thompson NFA construction (regex.h).
**
** The parser is recursive descent over the pattern bytes and builds a small
** AST in growable arrays (indices, not pointers, so growth never leaves a
** dangling pointer).  Recursion depth is bounded by group nesting, which is
** capped, so hostile patterns cannot overflow the stack; long flat patterns
** are handled by loops.
**
** Every character-matching item becomes a set of code-point ranges.  The NFA
** builder turns each set into alternatives of UTF-8 byte-range sequences,
** splitting ranges where the encoded length or a continuation byte's span
** changes, so the automaton consumes whole encoded characters and nothing
** else (invalid UTF-8 cannot take any edge).
**
** The NFA is built backwards: build(node, next) returns the entry state of
** `node` whose exits all lead to `next`.  That needs no patch lists, and a
** counted repetition is just a loop that builds fresh copies.
*/
#include "regex.h"
#include "utf8.h"
#include "alloc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NFA states allowed; past this a pattern is "too complex" (each state is
** 12 bytes, and subset construction time grows with it). */
#define RX_MAX_NFA 250000

#define RX_MAX_CP 0x10FFFFu

enum rx_kind { RX_EMPTY, RX_SET, RX_CAT, RX_ALT, RX_REP };

struct rx_node {
    uint8_t kind;
    int32_t child;      /* CAT/ALT: LAST child; REP: the operand */
    int32_t sib;        /* previous sibling in the parent's list, or -1 */
    int32_t r_off, r_n; /* SET: ranges[r_off .. r_off + r_n) */
    int32_t min, max;   /* REP: max == -1 means unbounded */
};

struct rx_range {
    uint32_t lo, hi;
};

struct rx_parser {
    const unsigned char *p;
    size_t len, pos;
    int depth;
    struct rx_node *nodes;
    int32_t n_nodes, cap_nodes;
    struct rx_range *ranges; /* normalised sets, referenced by SET nodes */
    int32_t n_ranges, cap_ranges;
    struct rx_range *tmp;    /* the set being assembled */
    int32_t n_tmp, cap_tmp;
    struct lmql__err *err;
    bool failed;
};

/* Record the first error only: later ones are usually consequences. */
__attribute__((format(printf, 3, 4)))
static int fail_at(struct rx_parser *P, size_t off, const char *fmt, ...) {
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

static int oom(struct rx_parser *P) {
    bool first = !P->failed;
    fail_at(P, 0, "out of memory");
    if (first) P->err->status = LMQL_ERR_NOMEM;
    return -1;
}


/* ---------------------------------------------------------------- UTF-8 */

static int utf8_encode(uint32_t cp, unsigned char *out) {
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/* ----------------------------------------------------------------- sets */

static int tmp_add(struct rx_parser *P, uint32_t lo, uint32_t hi) {
    if (lmql__grow((void **)&P->tmp, P->n_tmp, &P->cap_tmp, sizeof *P->tmp)) return oom(P);
    P->tmp[P->n_tmp].lo = lo;
    P->tmp[P->n_tmp].hi = hi;
    P->n_tmp++;
    return 0;
}

/* Append [lo, hi] to the pool minus the surrogates, which no valid UTF-8
** text contains (so a class of only surrogates matches nothing). */
static int pool_add(struct rx_parser *P, uint32_t lo, uint32_t hi) {
    if (lo <= 0xDFFF && hi >= 0xD800) {
        if (lo < 0xD800 && pool_add(P, lo, 0xD7FF)) return -1;
        if (hi > 0xDFFF && pool_add(P, 0xE000, hi)) return -1;
        return 0;
    }
    if (lmql__grow((void **)&P->ranges, P->n_ranges, &P->cap_ranges, sizeof *P->ranges))
        return oom(P);
    P->ranges[P->n_ranges].lo = lo;
    P->ranges[P->n_ranges].hi = hi;
    P->n_ranges++;
    return 0;
}

static int cmp_range(const void *a, const void *b) {
    const struct rx_range *x = a, *y = b;
    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static int32_t new_node(struct rx_parser *P, uint8_t kind) {
    if (lmql__grow((void **)&P->nodes, P->n_nodes, &P->cap_nodes, sizeof *P->nodes)) return oom(P);
    struct rx_node *n = &P->nodes[P->n_nodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->child = n->sib = -1;
    return P->n_nodes++;
}

/* Turn P->tmp (any order, overlaps allowed) into a sorted, merged SET node,
** complemented over all characters when `negate`.  Empties P->tmp. */
static int32_t finish_set(struct rx_parser *P, bool negate) {
    int32_t id = new_node(P, RX_SET);
    if (id < 0) return -1;
    qsort(P->tmp, (size_t)P->n_tmp, sizeof *P->tmp, cmp_range);
    int32_t m = 0;
    for (int32_t i = 0; i < P->n_tmp; i++) {
        if (m > 0 && P->tmp[i].lo <= P->tmp[m - 1].hi + 1) {
            if (P->tmp[i].hi > P->tmp[m - 1].hi) P->tmp[m - 1].hi = P->tmp[i].hi;
        } else {
            P->tmp[m++] = P->tmp[i];
        }
    }
    int32_t off = P->n_ranges;
    if (negate) {
        uint32_t next = 0;
        for (int32_t i = 0; i < m; i++) {
            if (P->tmp[i].lo > next && pool_add(P, next, P->tmp[i].lo - 1)) return -1;
            next = P->tmp[i].hi + 1;
        }
        if (next <= RX_MAX_CP && pool_add(P, next, RX_MAX_CP)) return -1;
    } else {
        for (int32_t i = 0; i < m; i++)
            if (pool_add(P, P->tmp[i].lo, P->tmp[i].hi)) return -1;
    }
    P->n_tmp = 0;
    P->nodes[id].r_off = off;
    P->nodes[id].r_n = P->n_ranges - off;
    return id;
}

/* Add \d \w \s (ASCII meaning) or their complements \D \W \S to P->tmp. */
static int add_shorthand(struct rx_parser *P, unsigned char c) {
    static const struct rx_range d[] = {{'0', '9'}};
    static const struct rx_range w[] = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    static const struct rx_range s[] = {{'\t', '\r'}, {' ', ' '}};
    const struct rx_range *r;
    int n;
    switch (c | 0x20) {
    case 'd': r = d; n = 1; break;
    case 'w': r = w; n = 4; break;
    default:  r = s; n = 2; break;
    }
    if (c >= 'a') {
        for (int i = 0; i < n; i++)
            if (tmp_add(P, r[i].lo, r[i].hi)) return -1;
        return 0;
    }
    uint32_t next = 0; /* the tables are sorted and disjoint */
    for (int i = 0; i < n; i++) {
        if (r[i].lo > next && tmp_add(P, next, r[i].lo - 1)) return -1;
        next = r[i].hi + 1;
    }
    return tmp_add(P, next, RX_MAX_CP);
}

/* -------------------------------------------------------------- escapes */

enum { ESC_CHAR, ESC_CLASS, ESC_START, ESC_END };

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bool is_octal(unsigned char c) { return c >= '0' && c <= '7'; }

/* A byte for messages: printable ASCII as is, otherwise \xHH. */
static const char *show(unsigned char c, char buf[8]) {
    if (c >= 0x21 && c < 0x7F) snprintf(buf, 8, "%c", c);
    else snprintf(buf, 8, "\\x%02x", c);
    return buf;
}

/*
** Parse the escape at P->pos (which holds the backslash) and advance past
** it.  Returns ESC_CHAR with *cp set, ESC_CLASS with *sh set to the
** shorthand letter, ESC_START/ESC_END for \A and \Z, or -1 on error.
*/
static int parse_escape(struct rx_parser *P, bool in_class, uint32_t *cp, unsigned char *sh) {
    size_t at = P->pos;
    char b[8];
    if (at + 1 >= P->len) return fail_at(P, at, "trailing backslash at end of pattern");
    unsigned char c = P->p[at + 1];
    P->pos = at + 2;
    switch (c) {
    case 'n': *cp = '\n'; return ESC_CHAR;
    case 't': *cp = '\t'; return ESC_CHAR;
    case 'r': *cp = '\r'; return ESC_CHAR;
    case 'f': *cp = '\f'; return ESC_CHAR;
    case 'v': *cp = '\v'; return ESC_CHAR;
    case 'a': *cp = 7; return ESC_CHAR;
    case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
        *sh = c;
        return ESC_CLASS;
    case 'b':
        if (in_class) { *cp = 8; return ESC_CHAR; }
        return fail_at(P, at, "word boundary \\b is not supported");
    case 'B':
        return fail_at(P, at, in_class ? "bad escape \\B" : "word boundary \\B is not supported");
    case 'A':
    case 'Z':
        if (in_class) return fail_at(P, at, "bad escape \\%c", c);
        return c == 'A' ? ESC_START : ESC_END;
    case 'N':
        return fail_at(P, at, "named character escapes \\N{...} are not supported");
    case 'x': case 'u': case 'U': {
        int nd = c == 'x' ? 2 : c == 'u' ? 4 : 8;
        uint32_t v = 0;
        for (int i = 0; i < nd; i++) {
            int h = P->pos < P->len ? hexval(P->p[P->pos]) : -1;
            if (h < 0) return fail_at(P, at, "incomplete escape \\%c: expected %d hex digits", c, nd);
            v = v * 16 + (uint32_t)h;
            P->pos++;
        }
        if (v > RX_MAX_CP) return fail_at(P, at, "bad escape \\U%08x: code point out of range", (unsigned)v);
        *cp = v;
        return ESC_CHAR;
    }
    case '0': {
        /* \0 plus up to two more octal digits, as Python */
        uint32_t v = 0;
        for (int i = 0; i < 2 && P->pos < P->len && is_octal(P->p[P->pos]); i++)
            v = v * 8 + (uint32_t)(P->p[P->pos++] - '0');
        *cp = v;
        return ESC_CHAR;
    }
    default:
        break;
    }
    if (c >= '1' && c <= '7' && in_class) {
        /* in a class there are no group references: 1 to 3 octal digits */
        uint32_t v = (uint32_t)(c - '0');
        for (int i = 0; i < 2 && P->pos < P->len && is_octal(P->p[P->pos]); i++)
            v = v * 8 + (uint32_t)(P->p[P->pos++] - '0');
        if (v > 0377) return fail_at(P, at, "octal escape value outside of range 0-0o377");
        *cp = v;
        return ESC_CHAR;
    }
    if (c >= '1' && c <= '9') {
        if (in_class) return fail_at(P, at, "bad escape \\%c", c);
        /* Python: three octal digits are a character, anything else a group
        ** reference (and in a class, an error either way). */
        if (is_octal(c) && at + 3 < P->len && is_octal(P->p[at + 2]) && is_octal(P->p[at + 3])) {
            uint32_t v = (uint32_t)((c - '0') * 64 + (P->p[at + 2] - '0') * 8 + (P->p[at + 3] - '0'));
            if (v > 0377) return fail_at(P, at, "octal escape value outside of range 0-0o377");
            P->pos = at + 4;
            *cp = v;
            return ESC_CHAR;
        }
        return fail_at(P, at, "backreferences (\\%c) are not supported", c);
    }
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return fail_at(P, at, "bad escape \\%c", c);
    if (c < 0x80) { *cp = c; return ESC_CHAR; }
    /* an escaped non-ASCII character is that character */
    size_t n = lmql__utf8_decode(P->p + at + 1, P->len - at - 1, cp);
    if (!n) return fail_at(P, at + 1, "invalid UTF-8 in pattern (byte %s)", show(c, b));
    P->pos = at + 1 + n;
    return ESC_CHAR;
}

/* ---------------------------------------------------------- quantifiers */

/* Scan a `{m}`, `{m,}`, `{,n}`, `{m,n}` at `at` without side effects.
** Returns true when it is one (Python treats anything else, including `{}`,
** as a literal brace); counts saturate just above the limit. */
static bool scan_brace(const struct rx_parser *P, size_t at, int32_t *min, int32_t *max, size_t *end) {
    size_t i = at + 1;
    int32_t lo = 0, hi = -1;
    bool have_lo = false, have_hi = false, comma = false;
    if (at >= P->len || P->p[at] != '{') return false;
    for (; i < P->len && P->p[i] >= '0' && P->p[i] <= '9'; i++) {
        have_lo = true;
        if (lo <= LMQL_REGEX_MAX_REPEAT) lo = lo * 10 + (P->p[i] - '0');
    }
    if (i < P->len && P->p[i] == ',') {
        comma = true;
        for (i++; i < P->len && P->p[i] >= '0' && P->p[i] <= '9'; i++) {
            if (!have_hi) hi = 0;
            have_hi = true;
            if (hi <= LMQL_REGEX_MAX_REPEAT) hi = hi * 10 + (P->p[i] - '0');
        }
    }
    if (i >= P->len || P->p[i] != '}') return false;
    if (!have_lo && !comma) return false; /* `{}` */
    if (!comma) hi = lo;
    *min = lo;
    *max = hi;
    *end = i + 1;
    return true;
}

/* Does a quantifier start at `at`? */
static bool quant_here(const struct rx_parser *P, size_t at) {
    int32_t a, b;
    size_t e;
    if (at >= P->len) return false;
    unsigned char c = P->p[at];
    return c == '*' || c == '+' || c == '?' || scan_brace(P, at, &a, &b, &e);
}

/* Read the quantifier at P->pos (quant_here() is true there). */
static int parse_quant(struct rx_parser *P, int32_t *min, int32_t *max) {
    size_t at = P->pos;
    unsigned char c = P->p[at];
    if (c == '*') { *min = 0; *max = -1; P->pos++; }
    else if (c == '+') { *min = 1; *max = -1; P->pos++; }
    else if (c == '?') { *min = 0; *max = 1; P->pos++; }
    else {
        size_t end = at;
        scan_brace(P, at, min, max, &end);
        if (*min > LMQL_REGEX_MAX_REPEAT || *max > LMQL_REGEX_MAX_REPEAT)
            return fail_at(P, at, "repetition count too large (max %d)", LMQL_REGEX_MAX_REPEAT);
        if (*max >= 0 && *min > *max)
            return fail_at(P, at, "min repeat greater than max repeat");
        P->pos = end;
    }
    if (P->pos < P->len && P->p[P->pos] == '?') P->pos++;           /* lazy: same language */
    else if (P->pos < P->len && P->p[P->pos] == '+')
        return fail_at(P, P->pos, "possessive quantifiers are not supported");
    if (quant_here(P, P->pos)) return fail_at(P, P->pos, "multiple repeat");
    return 0;
}

/* --------------------------------------------------------------- parser */

#define RX_NONE (-2) /* an item that matches nothing-width (anchor, comment) */

static int32_t parse_alt(struct rx_parser *P);

/* class -> '[' ['^'] item+ ']' ; item -> char ['-' char] | shorthand */
static int32_t parse_class(struct rx_parser *P) {
    size_t start = P->pos++;
    bool negate = false, first = true;
    char b[8];
    if (P->pos < P->len && P->p[P->pos] == '^') { negate = true; P->pos++; }
    P->n_tmp = 0;
    for (;;) {
        if (P->pos >= P->len) return fail_at(P, start, "unterminated character set");
        if (P->p[P->pos] == ']' && !first) { P->pos++; break; }
        first = false;
        size_t item = P->pos;
        uint32_t lo, hi;
        unsigned char sh = 0;
        if (P->p[P->pos] == '\\') {
            int k = parse_escape(P, true, &lo, &sh);
            if (k < 0) return -1;
            if (k == ESC_CLASS) {
                if (P->pos + 1 < P->len && P->p[P->pos] == '-' && P->p[P->pos + 1] != ']')
                    return fail_at(P, item, "bad character range \\%c-", sh);
                if (add_shorthand(P, sh)) return -1;
                continue;
            }
        } else {
            size_t n = lmql__utf8_decode(P->p + P->pos, P->len - P->pos, &lo);
            if (!n) return fail_at(P, P->pos, "invalid UTF-8 in pattern (byte %s)", show(P->p[P->pos], b));
            P->pos += n;
        }
        hi = lo;
        if (P->pos + 1 < P->len && P->p[P->pos] == '-' && P->p[P->pos + 1] != ']') {
            P->pos++;
            if (P->p[P->pos] == '\\') {
                int k = parse_escape(P, true, &hi, &sh);
                if (k < 0) return -1;
                if (k == ESC_CLASS) return fail_at(P, item, "bad character range");
            } else {
                size_t n = lmql__utf8_decode(P->p + P->pos, P->len - P->pos, &hi);
                if (!n) return fail_at(P, P->pos, "invalid UTF-8 in pattern (byte %s)", show(P->p[P->pos], b));
                P->pos += n;
            }
            if (hi < lo)
                return fail_at(P, item, "bad character range %.*s", (int)(P->pos - item),
                               (const char *)P->p + item);
        }
        if (tmp_add(P, lo, hi)) return -1;
    }
    return finish_set(P, negate);
}

static int32_t char_set(struct rx_parser *P, uint32_t lo, uint32_t hi) {
    P->n_tmp = 0;
    if (tmp_add(P, lo, hi)) return -1;
    return finish_set(P, false);
}

/* group -> '(' ['?:' | '?P<name>' | '?#...'] alt ')' */
static int32_t parse_group(struct rx_parser *P) {
    size_t start = P->pos++;
    const unsigned char *p = P->p;
    if (P->pos < P->len && p[P->pos] == '?') {
        size_t q = P->pos + 1;
        unsigned char c = q < P->len ? p[q] : 0;
        if (c == ':') {
            P->pos = q + 1;
        } else if (c == 'P' && q + 1 < P->len && p[q + 1] == '<') {
            size_t i = q + 2, name = i;
            for (; i < P->len && p[i] != '>'; i++) {
                bool ok = p[i] == '_' || (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
                          p[i] >= 0x80 || (i > name && p[i] >= '0' && p[i] <= '9');
                if (!ok) return fail_at(P, i, "bad character in group name");
            }
            if (i >= P->len) return fail_at(P, name, "missing >, unterminated name");
            if (i == name) return fail_at(P, name, "missing group name");
            P->pos = i + 1;
        } else if (c == 'P' && q + 1 < P->len && p[q + 1] == '=') {
            return fail_at(P, start, "backreferences ((?P=name)) are not supported");
        } else if (c == '=' || c == '!') {
            return fail_at(P, start, "lookahead assertions are not supported");
        } else if (c == '<' && q + 1 < P->len && (p[q + 1] == '=' || p[q + 1] == '!')) {
            return fail_at(P, start, "lookbehind assertions are not supported");
        } else if (c == '#') {
            size_t i = q + 1;
            while (i < P->len && p[i] != ')') i++;
            if (i >= P->len) return fail_at(P, start, "missing ), unterminated comment");
            P->pos = i + 1;
            return RX_NONE;
        } else if (c == '(') {
            return fail_at(P, start, "conditional groups are not supported");
        } else if (c == '>') {
            return fail_at(P, start, "atomic groups are not supported");
        } else if (c && strchr("aiLmsux-", c)) {
            return fail_at(P, start, "inline flags ((?%c...) are not supported", c);
        } else {
            char b[8];
            return fail_at(P, start, "unknown extension (?%s", c ? show(c, b) : "");
        }
    }
    if (++P->depth > LMQL_REGEX_MAX_DEPTH)
        return fail_at(P, start, "groups nested too deeply (max %d)", LMQL_REGEX_MAX_DEPTH);
    int32_t inner = parse_alt(P);
    P->depth--;
    if (inner < 0) return -1;
    if (P->pos >= P->len || P->p[P->pos] != ')')
        return fail_at(P, start, "missing ), unterminated subpattern");
    P->pos++;
    return inner;
}

/* atom -> group | class | '.' | '^' | '$' | escape | literal character */
static int32_t parse_atom(struct rx_parser *P) {
    size_t at = P->pos;
    unsigned char c = P->p[at];
    char b[8];
    if (quant_here(P, at)) return fail_at(P, at, "nothing to repeat");
    switch (c) {
    case '(': return parse_group(P);
    case '[': return parse_class(P);
    case '.':
        P->pos++;
        P->n_tmp = 0;
        if (tmp_add(P, '\n', '\n')) return -1;
        return finish_set(P, true);
    case '^':
        if (at != 0) return fail_at(P, at, "^ is only supported at the start of the pattern");
        P->pos++;
        return RX_NONE;
    case '$':
        if (at + 1 != P->len) return fail_at(P, at, "$ is only supported at the end of the pattern");
        P->pos++;
        return RX_NONE;
    case '\\': {
        uint32_t cp = 0;
        unsigned char sh = 0;
        int k = parse_escape(P, false, &cp, &sh);
        if (k < 0) return -1;
        if (k == ESC_START) {
            if (at != 0) return fail_at(P, at, "\\A is only supported at the start of the pattern");
            return RX_NONE;
        }
        if (k == ESC_END) {
            if (P->pos != P->len) return fail_at(P, at, "\\Z is only supported at the end of the pattern");
            return RX_NONE;
        }
        if (k == ESC_CLASS) {
            P->n_tmp = 0;
            if (add_shorthand(P, sh)) return -1;
            return finish_set(P, false);
        }
        return char_set(P, cp, cp);
    }
    default: {
        uint32_t cp;
        size_t n = lmql__utf8_decode(P->p + at, P->len - at, &cp);
        if (!n) return fail_at(P, at, "invalid UTF-8 in pattern (byte %s)", show(c, b));
        P->pos += n;
        return char_set(P, cp, cp);
    }
    }
}

/* cat -> (atom quantifier*)*   -- ends at '|', ')' or the end */
static int32_t parse_cat(struct rx_parser *P) {
    int32_t last = -1, count = 0;
    while (P->pos < P->len && P->p[P->pos] != '|' && P->p[P->pos] != ')') {
        int32_t a = parse_atom(P);
        if (a == RX_NONE) {
            if (quant_here(P, P->pos)) return fail_at(P, P->pos, "nothing to repeat");
            continue;
        }
        if (a < 0) return -1;
        if (quant_here(P, P->pos)) {
            int32_t min, max;
            if (parse_quant(P, &min, &max)) return -1;
            int32_t r = new_node(P, RX_REP);
            if (r < 0) return -1;
            P->nodes[r].child = a;
            P->nodes[r].min = min;
            P->nodes[r].max = max;
            a = r;
        }
        P->nodes[a].sib = last;
        last = a;
        count++;
    }
    if (count == 0) return new_node(P, RX_EMPTY);
    if (count == 1) return last;
    int32_t c = new_node(P, RX_CAT);
    if (c < 0) return -1;
    P->nodes[c].child = last;
    return c;
}

/* alt -> cat ('|' cat)* */
static int32_t parse_alt(struct rx_parser *P) {
    int32_t last = parse_cat(P), count = 1;
    if (last < 0) return -1;
    while (P->pos < P->len && P->p[P->pos] == '|') {
        P->pos++;
        int32_t c = parse_cat(P);
        if (c < 0) return -1;
        P->nodes[c].sib = last;
        last = c;
        count++;
    }
    if (count == 1) return last;
    int32_t a = new_node(P, RX_ALT);
    if (a < 0) return -1;
    P->nodes[a].child = last;
    return a;
}

/* ---------------------------------------------------------- NFA builder */

/* One shared suffix state of the set being compiled (see build_set). */
struct rx_suffix {
    uint8_t lo, hi;
    int32_t out, state;
};

struct rx_builder {
    struct rx_parser *P;
    struct lmql__rx_nfa *nfa;
    int32_t *alts; /* entry states of the set being compiled */
    int32_t n_alts, cap_alts;
    struct rx_suffix *suf;
    int32_t n_suf, cap_suf;
};

static int32_t new_state(struct rx_builder *B, uint8_t kind, uint8_t lo, uint8_t hi,
                         int32_t out, int32_t out1) {
    struct lmql__rx_nfa *nfa = B->nfa;
    if (B->P->failed) return -1;
    if (nfa->n >= RX_MAX_NFA)
        return fail_at(B->P, 0, "regex too complex (more than %d NFA states)", RX_MAX_NFA);
    if (lmql__grow((void **)&nfa->st, nfa->n, &nfa->cap, sizeof *nfa->st)) return oom(B->P);
    struct lmql__rx_nstate *s = &nfa->st[nfa->n];
    s->kind = kind;
    s->lo = lo;
    s->hi = hi;
    s->out = out;
    s->out1 = out1;
    return nfa->n++;
}

/* A continuation-byte state shared between the sequences of one set: many
** sequences end in the same [80-BF] tails, and sharing them keeps the NFA,
** and so every DFA subset, small. */
static int32_t suffix_state(struct rx_builder *B, uint8_t lo, uint8_t hi, int32_t out) {
    for (int32_t i = 0; i < B->n_suf; i++)
        if (B->suf[i].lo == lo && B->suf[i].hi == hi && B->suf[i].out == out) return B->suf[i].state;
    int32_t s = new_state(B, LMQL_RXN_RANGE, lo, hi, out, -1);
    if (s < 0) return -1;
    /* the table only saves states, so when it cannot grow just go on */
    if (B->n_suf < 256 && !lmql__grow((void **)&B->suf, B->n_suf, &B->cap_suf, sizeof *B->suf)) {
        B->suf[B->n_suf].lo = lo;
        B->suf[B->n_suf].hi = hi;
        B->suf[B->n_suf].out = out;
        B->suf[B->n_suf].state = s;
        B->n_suf++;
    }
    return s;
}

/* Add the byte sequences of code points [lo, hi] (all of one encoded
** length after the first split) as alternatives leading to `next`. */
static int utf8_seqs(struct rx_builder *B, uint32_t lo, uint32_t hi, int32_t next) {
    static const uint32_t len_max[] = {0x7F, 0x7FF, 0xFFFF};
    for (int i = 0; i < 3; i++)
        if (lo <= len_max[i] && hi > len_max[i])
            return utf8_seqs(B, lo, len_max[i], next) || utf8_seqs(B, len_max[i] + 1, hi, next) ? -1 : 0;
    unsigned char a[4], z[4];
    int n = utf8_encode(lo, a);
    /* Split until every byte position spans one contiguous range: for each
    ** continuation depth, lo must start and hi must end a full block unless
    ** both lie in the same block. */
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) == (hi & ~m)) continue;
        if (lo & m) return utf8_seqs(B, lo, lo | m, next) || utf8_seqs(B, (lo | m) + 1, hi, next) ? -1 : 0;
        if ((hi & m) != m) return utf8_seqs(B, lo, (hi & ~m) - 1, next) || utf8_seqs(B, hi & ~m, hi, next) ? -1 : 0;
    }
    utf8_encode(hi, z);
    int32_t s = next;
    for (int i = n - 1; i >= 1; i--)
        if ((s = suffix_state(B, a[i], z[i], s)) < 0) return -1;
    if ((s = new_state(B, LMQL_RXN_RANGE, a[0], z[0], s, -1)) < 0) return -1;
    if (lmql__grow((void **)&B->alts, B->n_alts, &B->cap_alts, sizeof *B->alts)) return oom(B->P);
    B->alts[B->n_alts++] = s;
    return 0;
}

static int32_t build_set(struct rx_builder *B, const struct rx_node *nd, int32_t next) {
    const struct rx_range *r = B->P->ranges + nd->r_off;
    if (nd->r_n == 0) return new_state(B, LMQL_RXN_SPLIT, 0, 0, -1, -1); /* matches nothing */
    B->n_alts = 0;
    B->n_suf = 0;
    for (int32_t i = 0; i < nd->r_n; i++)
        if (utf8_seqs(B, r[i].lo, r[i].hi, next)) return -1;
    int32_t s = B->alts[B->n_alts - 1];
    for (int32_t i = B->n_alts - 2; i >= 0 && s >= 0; i--)
        s = new_state(B, LMQL_RXN_SPLIT, 0, 0, B->alts[i], s);
    return s;
}

/* Build `id` so that every way through it continues at `next`; returns the
** entry state, or -1 with the error recorded. */
static int32_t build(struct rx_builder *B, int32_t id, int32_t next) {
    if (B->P->failed || next < 0) return -1;
    const struct rx_node nd = B->P->nodes[id];
    switch (nd.kind) {
    case RX_EMPTY:
        return next;
    case RX_SET:
        return build_set(B, &nd, next);
    case RX_CAT:
        for (int32_t c = nd.child; c >= 0 && next >= 0; c = B->P->nodes[c].sib)
            next = build(B, c, next);
        return next;
    case RX_ALT: {
        int32_t s = -2;
        for (int32_t c = nd.child; c >= 0; c = B->P->nodes[c].sib) {
            int32_t e = build(B, c, next);
            if (e < 0) return -1;
            s = s == -2 ? e : new_state(B, LMQL_RXN_SPLIT, 0, 0, e, s);
            if (s < 0) return -1;
        }
        return s;
    }
    default: { /* RX_REP */
        int32_t cur = next;
        if (nd.max < 0) {
            int32_t loop = new_state(B, LMQL_RXN_SPLIT, 0, 0, -1, next);
            int32_t e = build(B, nd.child, loop);
            if (e < 0) return -1;
            B->nfa->st[loop].out = e;
            cur = loop;
        } else {
            /* nested optionals (x(x(x)?)?)? so that skipping leaves at once */
            for (int32_t i = 0; i < nd.max - nd.min && cur >= 0; i++) {
                int32_t e = build(B, nd.child, cur);
                cur = e < 0 ? -1 : new_state(B, LMQL_RXN_SPLIT, 0, 0, e, next);
            }
        }
        for (int32_t i = 0; i < nd.min && cur >= 0; i++) cur = build(B, nd.child, cur);
        return cur;
    }
    }
}

int lmql__regex_nfa_build(const char *pattern, size_t len, struct lmql__rx_nfa *nfa,
                          struct lmql__err *err) {
    struct rx_parser P;
    memset(&P, 0, sizeof P);
    P.p = (const unsigned char *)(pattern ? pattern : "");
    P.len = pattern ? len : 0;
    P.err = err;
    int rc = -1;
    int32_t root = parse_alt(&P);
    if (root >= 0 && P.pos < P.len) /* only a ')' stops parse_alt early */
        fail_at(&P, P.pos, "unbalanced parenthesis");
    if (!P.failed) {
        struct rx_builder B;
        memset(&B, 0, sizeof B);
        B.P = &P;
        B.nfa = nfa;
        nfa->match = new_state(&B, LMQL_RXN_MATCH, 0, 0, -1, -1);
        nfa->start = build(&B, root, nfa->match);
        free(B.alts);
        free(B.suf);
        if (!P.failed) rc = 0;
    }
    free(P.nodes);
    free(P.ranges);
    free(P.tmp);
    return rc;
}

void lmql__regex_nfa_free(struct lmql__rx_nfa *nfa) {
    if (!nfa) return;
    free(nfa->st);
    memset(nfa, 0, sizeof *nfa);
}
