/*
** regex_match.h -- Python `re` matching with capture groups, for the `re`
** module of query code (modules_re.c).
**
** regex.h's DFA answers "can these bytes still match?" for constraints and
** cannot say where groups matched, where a match starts, or honour anchors
** in the middle of a pattern.  This engine parses Python's pattern syntax
** into its own program and runs it with a backtracking machine (explicit
** stack, no C recursion per character), so it keeps Python's leftmost,
** greedy-first semantics, captures (the last iteration's), backreferences
** and lookarounds.  Characters are code points of UTF-8 text; offsets are
** bytes.  \w \d \s and IGNORECASE are Unicode (tables in regex_uni.c, made
** from Python's own re by scripts/gen_regex_uni.py) unless LMQL_RX_ASCII.
**
** Not supported (an error at compile, with the pattern offset): scoped
** inline flags (?i:...), verbose mode, LOCALE, conditionals (?(1)...),
** atomic groups, possessive quantifiers, \N{...}; repetition counts above
** LMQL_RX_MAX_REPEAT; programs above LMQL_RX_MAX_PROG instructions.
** A match that needs more than LMQL_RX_MAX_STEPS machine steps (runaway
** backtracking) is an error, never a wrong answer.
*/
#ifndef LMQL_REGEX_MATCH_H
#define LMQL_REGEX_MATCH_H

#include <stddef.h>
#include <stdint.h>

#include "lmql_int.h"

/* Python's flag values, so re.I etc. are the same integers as there. */
enum {
    LMQL_RX_IGNORECASE = 2,
    LMQL_RX_LOCALE = 4,
    LMQL_RX_MULTILINE = 8,
    LMQL_RX_DOTALL = 16,
    LMQL_RX_UNICODE = 32,
    LMQL_RX_VERBOSE = 64,
    LMQL_RX_ASCII = 256,
};

#define LMQL_RX_MAX_REPEAT 1000
#define LMQL_RX_MAX_PROG   200000
#define LMQL_RX_MAX_STEPS  200000000
extern long lmql__rx_max_steps;   /* LMQL_RX_MAX_STEPS; only a fuzz target changes it */

enum { LMQL_RX_SEARCH, LMQL_RX_MATCH, LMQL_RX_FULLMATCH };

struct lmql__rx;

/* Compile; NULL with err->msg and err->pos.offset (into the pattern) set. */
struct lmql__rx *lmql__rx_compile(const char *pattern, size_t len, int flags, struct lmql__err *err);
void lmql__rx_free(struct lmql__rx *rx);

/* Capture groups (not counting group 0), their names (NULL: unnamed; g in
** 1..n), the group of a name (-1: none) and the flags with inline ones. */
int lmql__rx_ngroups(const struct lmql__rx *rx);
const char *lmql__rx_group_name(const struct lmql__rx *rx, int g);
int lmql__rx_group_index(const struct lmql__rx *rx, const char *name, size_t len);
int lmql__rx_flags(const struct lmql__rx *rx);

/*
** Find a match in s[0..n) starting at or after byte `start` (SEARCH), or
** exactly at `start` (MATCH; FULLMATCH also ending at n).  ^ and \A still
** mean offset 0, and lookbehind and \b see the text before start.  When
** `no_empty_at_start`, a match that is empty and starts at `start` is not
** taken (finditer/sub after an empty match, as Python 3.7+).  caps gets
** 2 * (ngroups + 1) byte offsets, -1 for a group that did not take part.
** Returns 1 (match), 0 (none) or -1 with err set (too many steps, memory).
*/
int lmql__rx_exec(const struct lmql__rx *rx, const char *s, size_t n, size_t start, int mode,
                  int no_empty_at_start, ptrdiff_t *caps, struct lmql__err *err);

/* regex_uni.c */
extern const uint32_t lmql__rx_uni_w[][2], lmql__rx_uni_d[][2], lmql__rx_uni_s[][2], lmql__rx_uni_case[][3];
extern const size_t lmql__rx_uni_w_n, lmql__rx_uni_d_n, lmql__rx_uni_s_n, lmql__rx_uni_case_n;

#endif
