/*
** regex.h -- a byte-level regex automaton for constrained decoding.
**
** LMQL constrains generated text with regexes (`REGEX(X, r"...")`,
** `[X: r"..."]`).  At each decoding step the decoder extends the text by a
** token whose piece is an arbitrary byte string (possibly half a UTF-8
** character), so the question it asks is "after these bytes, can the text
** still become a full match?".  This module compiles a pattern into a
** deterministic automaton over BYTES that answers that in O(1) per byte.
**
** Semantics: Python `re.fullmatch` over the whole value, for the subset of
** Python syntax listed below.  A "character" is one whole UTF-8 encoded
** code point; the surrogates U+D800..U+DFFF are not characters (valid UTF-8
** cannot encode them).  Invalid UTF-8 in the subject simply leads to the
** dead state.
**
** Supported syntax:
**   literals (any UTF-8 text), `.` (any character except "\n"),
**   escapes \\ \. \n \t \r \f \v \a \0 \ooo \xHH \uHHHH \UHHHHHHHH and any
**   escaped punctuation; class shorthands \d \D \w \W \s \S;
**   bracket classes [abc] [a-z] [^...] [à-ÿ] [一-龥] with escapes and
**   shorthands inside (in a class, \b is backspace and \1..\7 start an
**   octal escape);
**   groups ( ), (?: ), (?P<name> ) (all non-capturing in effect), (?#...);
**   alternation |; quantifiers * + ? {m} {m,} {m,n} {,n} and their lazy
**   forms (*? etc.: same language under fullmatch);
**   anchors ^ / \A as the very first item of the pattern and $ / \Z as the
**   very last (no-ops under fullmatch).
**   As in Python, a `{` that does not start a valid {m,n} is a literal.
**
**   NOTE: \d \w \s have their ASCII meaning ([0-9], [A-Za-z0-9_],
**   [ \t\n\r\f\v]), like Python's re.ASCII flag, not Python's Unicode
**   default; \D \W \S are their complements over all characters.
**
** Rejected with an error (message + byte offset into the pattern):
**   backreferences (\1, (?P=name)), lookaround ((?= (?! (?<= (?<!),
**   conditionals, atomic groups, possessive quantifiers (a*+), inline flags
**   ((?i) ...), \b \B word boundaries, \N{...}, ^/$ anywhere but the pattern
**   ends; bad syntax (unbalanced parentheses, unterminated [...], bad range
**   z-a, {3,1}, nothing to repeat, multiple repeat, trailing backslash, bad
**   escape, invalid UTF-8 in the pattern); repetition counts above
**   LMQL_REGEX_MAX_REPEAT; group nesting deeper than LMQL_REGEX_MAX_DEPTH;
**   automata larger than LMQL_REGEX_MAX_STATES ("regex too complex", at
**   offset 0).  The state cap applies BEFORE minimisation, so a pattern
**   whose subset construction explodes is refused even if its minimal
**   DFA would be small (e.g. `.{0,1000}x.{0,1000}` or `(a|b)*a(a|b){16}`).
**
** Automaton: Thompson NFA over byte ranges (code-point ranges are compiled
** into UTF-8 byte-sequence alternatives), then eager subset construction
** over byte equivalence classes, then pruning of states from which no
** accepting state is reachable, then Hopcroft minimisation; ids are then
** numbered breadth-first from the start (deterministic; start is 0).  The
** transition table is n_states x n_classes int32 entries plus one 256-byte
** class map.  Compiling is eager: a date regex takes ~10 us, a pattern with
** thousands of states ~10 ms.  Every function below requires re != NULL.
**
** States are int32 ids in [0, n_states); -1 is the dead state.  EVERY id
** other than -1 that the functions below return is co-reachable: some
** continuation leads to a full match.  So "state == -1" is exactly "no
** continuation of the bytes fed so far can match".
**
** Ownership and threads: the pattern is borrowed (copied as needed); the
** compiled regex is immutable after compile, so any number of threads may
** step it concurrently.  lmql__regex_free(NULL) is a no-op.
*/
#ifndef LMQL_REGEX_H
#define LMQL_REGEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmql_int.h"

/* Limits that turn hostile patterns into errors instead of memory blowups. */
#define LMQL_REGEX_MAX_REPEAT    1000     /* largest m or n in {m,n} */
#define LMQL_REGEX_MAX_DEPTH     256      /* group nesting */
#define LMQL_REGEX_MAX_STATES    100000   /* DFA states during construction */

struct lmql_regex;

/*
** Compile `len` bytes of `pattern` (need not be NUL-terminated; may hold any
** bytes).  Returns the compiled regex, or NULL on error: then, when err
** is non-NULL, err->msg says what is wrong, err->pos.offset is the byte
** offset in the pattern it refers to (line 0: a place in the pattern, not
** in a query) and err->status is LMQL_ERR_QUERY, or LMQL_ERR_NOMEM for
** "out of memory" (offset 0).  Automata over the size limit are "regex too
** complex".
*/
struct lmql_regex *lmql__regex_compile(const char *pattern, size_t len, struct lmql__err *err);

/* Release a compiled regex; NULL is a no-op. */
void lmql__regex_free(struct lmql_regex *re);

/* The start state, or -1 when the pattern matches nothing at all (e.g.
** `[^\x00-\U0010ffff]`). */
int32_t lmql__regex_start(const struct lmql_regex *re);

/* The state after `byte` from `state`, or -1 when no continuation can match
** any more.  Stepping -1 (or any id out of range) returns -1. */
int32_t lmql__regex_step(const struct lmql_regex *re, int32_t state,
                         unsigned char byte);

/* Step through n bytes; returns -1 as soon as the state dies. */
int32_t lmql__regex_feed(const struct lmql_regex *re, int32_t state,
                         const char *bytes, size_t n);

/* True when the bytes that led to `state` fully match the pattern.
** False for -1 and ids out of range. */
bool lmql__regex_accepting(const struct lmql_regex *re, int32_t state);

/* Python re.fullmatch(pattern, s) over n bytes of s. */
bool lmql__regex_fullmatch(const struct lmql_regex *re, const char *s,
                           size_t n);

/* Number of live DFA states (ids are 0..n-1); for caches sized per state
** and for measurements. */
int32_t lmql__regex_n_states(const struct lmql_regex *re);

/* Number of byte equivalence classes (columns of the transition table). */
int32_t lmql__regex_n_classes(const struct lmql_regex *re);

/* The transition table, for walkers that step many bytes (the vocabulary
** trie): the state after byte b from state s is
** table[s * n_classes + byte_class[b]], -1 for dead. Valid while re lives. */
const int32_t *lmql__regex_table(const struct lmql_regex *re, const uint8_t **byte_class);

/*
** ---- Internal: the NFA handed from regex_parse.c to regex_dfa.c ----
** Not for other modules.  A Thompson NFA whose only consuming edges are
** byte ranges.  RANGE moves to `out` on a byte in [lo, hi]; SPLIT is an
** epsilon fork to `out` and `out1` (either may be -1: no edge; a SPLIT with
** both -1 is a state that never matches); MATCH is the single final state.
*/
enum { LMQL_RXN_RANGE, LMQL_RXN_SPLIT, LMQL_RXN_MATCH };

struct lmql__rx_nstate {
    uint8_t kind, lo, hi;
    int32_t out, out1;
};

struct lmql__rx_nfa {
    struct lmql__rx_nstate *st;
    int32_t n, cap;
    int32_t start, match;
};

/* Parse `pattern` and build its NFA into *nfa (zeroed by the caller).
** Returns 0, or -1 with *err filled; *nfa must be released with
** lmql__regex_nfa_free() either way. */
int  lmql__regex_nfa_build(const char *pattern, size_t len,
                           struct lmql__rx_nfa *nfa, struct lmql__err *err);
void lmql__regex_nfa_free(struct lmql__rx_nfa *nfa);

#endif
