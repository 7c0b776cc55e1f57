/*
** regex_match_int.h -- what regex_match.c (parser, compiler) and
** regex_exec.c (Unicode classes, the backtracking machine) share.  Not for
** other modules: they use regex_match.h.
*/
#ifndef LMQL_REGEX_MATCH_INT_H
#define LMQL_REGEX_MATCH_INT_H

#include <stdbool.h>

#include "regex_match.h"

#define RX_MAX_CP 0x10FFFFu
#define RX_BAD_CP 0x110000u /* an invalid UTF-8 byte: only . and negated sets take it */

enum nkind { N_EMPTY, N_CHAR, N_ANY, N_SET, N_CAT, N_ALT, N_REP, N_GROUP, N_ASSERT, N_BREF, N_LOOK };
enum akind { A_BOL, A_EOL, A_START, A_END, A_WORDB, A_NWORDB };
enum lkind { L_AHEAD, L_NAHEAD, L_BEHIND, L_NBEHIND };

struct node {
    uint8_t kind, lazy;
    int32_t child, sib;   /* CAT/ALT: first child; REP/GROUP/LOOK: the operand; sib: next sibling */
    int32_t min, max;     /* REP (max -1: unbounded); GROUP: min = group number (0: non-capturing) */
    uint32_t c;           /* CHAR: code point; SET: set index; ASSERT: akind; BREF: group; LOOK: lkind */
};

/* A bracket class: ranges plus shorthand classes, maybe negated. */
enum { SH_W = 1, SH_NW = 2, SH_D = 4, SH_ND = 8, SH_S = 16, SH_NS = 32 };
struct cset {
    int32_t off, n; /* into rx->ranges */
    uint8_t sh, negate;
};

enum op { O_CHAR, O_ANY, O_ANYNL, O_SET, O_SPLIT, O_JMP, O_SAVE, O_ASSERT, O_BREF, O_MARK, O_PROG, O_LOOK, O_MATCH };

struct inst {
    uint8_t op;
    int32_t x, y;
    uint32_t c;
};

struct lmql__rx {
    int flags;
    bool icase, ascii;
    int ngroups, nregs;
    char **names;        /* [ngroups + 1] */
    struct inst *prog;
    int32_t n_prog, cap_prog;
    uint32_t (*ranges)[2];
    int32_t n_ranges, cap_ranges;
    struct cset *sets;
    int32_t n_sets, cap_sets;
    /* an ASCII byte every match contains (-1: none known): a search over
    ** text without it fails at once instead of trying every start */
    int required;
};

/* regex_exec.c: the character at s[i] (i < n) and its length (RX_BAD_CP for
** an invalid byte, length 1); the least member of c's IGNORECASE class. */
size_t lmql__rx_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp);
uint32_t lmql__rx_fold(uint32_t c, bool ascii);

#endif
