/*
** grammar.h -- context-free grammars over bytes, and token masks for them.
**
** Every context-free constraint (JSON Schema, GBNF grammars, LMQL's types
** and dataclasses) is built into this one form by its front end, then
** matched by one engine.
**
** A grammar has nonterminals, each with one or more alternatives, and
** terminals. An alternative is a sequence of symbols (possibly empty). A
** terminal is a regular language of byte strings given as a regex
** (regex.h's syntax and its Python fullmatch semantics): literal text,
** a JSON string, a number, a pattern. Regular parts written as terminals
** rather than as rules cost one DFA step per byte instead of a change of
** the parser's stack, which is what keeps masks fast.
**
** The language is the set of byte strings the start symbol derives, each
** terminal occurrence matching one string of the terminal's language
** (ambiguous splits are all kept: the matcher is exact, whatever the
** grammar's ambiguity).
**
** What a grammar may not contain (lmql__gb_finish refuses it with a message
** naming the rule): a nonterminal without alternatives, a rule that derives
** no string at all (unproductive), left recursion (A derives A ... through
** a chain of nullable prefixes), or a cycle of empty derivations.
**
** Ownership and threads: a finished grammar is immutable; any number of
** matchers in any threads may use it. A matcher (struct lmql__gm) belongs to
** one thread at a time.
*/
#ifndef LMQL_GRAMMAR_H
#define LMQL_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmql_int.h"

struct lmql_trie;
struct lmql_grammar;

/* Symbols in an alternative: a nonterminal id n >= 0 is itself, a terminal
** id t >= 0 is written LMQL_G_T(t) (negative). */
#define LMQL_G_T(t) (-(int32_t)(t) - 1)
#define LMQL_G_IS_T(sym) ((sym) < 0)
#define LMQL_G_T_ID(sym) (-(sym) - 1)

/* ---------------------------------------------------------- building -- */

struct lmql__gb;

struct lmql__gb *lmql__gb_new(void);
/* Release a builder that was not finished; NULL is a no-op. */
void lmql__gb_free(struct lmql__gb *b);

/* A new nonterminal, named for messages (the name is copied; names need
** not be unique). Returns its id (0, 1, 2, ...), or -1 when out of memory. */
int32_t lmql__gb_nonterminal(struct lmql__gb *b, const char *name);

/* A terminal: the byte strings that fully match the regex pat[0..n).
** Returns its id (>= 0; the same id for the same pattern), or -1 with e
** filled: a pattern the regex engine refuses (LMQL_ERR_QUERY, the offset in
** the pattern) or out of memory (LMQL_ERR_NOMEM). */
int32_t lmql__gb_regex(struct lmql__gb *b, const char *pat, size_t n, struct lmql__err *e);

/* A terminal matching exactly the bytes s[0..n) (n >= 1). Returns its id,
** or -1 with e filled (out of memory). */
int32_t lmql__gb_literal(struct lmql__gb *b, const char *s, size_t n, struct lmql__err *e);

/* Add the alternative items[0..n) to nonterminal lhs (n may be 0: the
** empty string). Items are nonterminal ids and LMQL_G_T(terminal ids).
** Returns 0, or -1 when out of memory or an id is out of range (then the
** builder remembers it and lmql__gb_finish fails). */
int lmql__gb_alt(struct lmql__gb *b, int32_t lhs, const int32_t *items, int n);

/* Number of nonterminals and of alternatives so far (front ends bound the
** size of what they build with these). */
int32_t lmql__gb_n_nonterminals(const struct lmql__gb *b);
int32_t lmql__gb_n_alternatives(const struct lmql__gb *b);

/* Check the grammar and make it immutable, with `start` as its start
** symbol. The builder is consumed whatever the outcome. Returns the
** grammar, or NULL with e filled (LMQL_ERR_QUERY with what is wrong, naming
** the rule; or LMQL_ERR_NOMEM). */
struct lmql_grammar *lmql__gb_finish(struct lmql__gb *b, int32_t start, struct lmql__err *e);

/* NULL is a no-op. */
void lmql__grammar_free(struct lmql_grammar *g);

/* Sizes, for messages and measurements. */
int32_t lmql__grammar_n_nonterminals(const struct lmql_grammar *g);
int32_t lmql__grammar_n_terminals(const struct lmql_grammar *g);

/* Whether the whole of s[0..n) is in the language (no trie, no caches:
** the reference the tests compare masks with). Returns 1, 0, or -1 when
** out of memory. */
int lmql__grammar_accepts(const struct lmql_grammar *g, const char *s, size_t n);

/* Write g as GBNF text, llama.cpp's grammar format, appended to out: a rule
** `root` for the start symbol, one rule per nonterminal reachable from it,
** each regex terminal as rules of its DFA's states (grammar_gbnf.c). The
** language is the same, except strings holding U+0000 (GBNF never matches
** it). Returns 0, or -1 with e filled (out may then hold part of the text):
** LMQL_ERR_QUERY for a terminal in use that GBNF cannot write (a literal that
** is not valid UTF-8 or holds U+0000; a regex whose strings from some point
** on all hold U+0000), or LMQL_ERR_NOMEM. */
int lmql__grammar_gbnf(const struct lmql_grammar *g, struct lmql__buf *out, struct lmql__err *e);

/* ---------------------------------------------------------- matching -- */

/*
** A matcher follows byte strings through one grammar. Its states
** ("configurations") are small integers: every prefix read so far leads to
** one, and equal configurations get the same id, so masks can be cached by
** id. Every id >= 0 a matcher returns is alive: some continuation of the
** bytes that led there is in the language.
*/
struct lmql__gm;

/* A matcher over g; masks are over the vocabulary of trie t (t may be NULL
** for a matcher that only steps bytes). Returns NULL when out of memory. */
struct lmql__gm *lmql__gm_new(const struct lmql_grammar *g, const struct lmql_trie *t);
/* NULL is a no-op. */
void lmql__gm_free(struct lmql__gm *m);

/* The configuration before any byte. Returns its id, or -2 when out of
** memory. (The start is always alive: grammars are productive.) */
int32_t lmql__gm_start(struct lmql__gm *m);

/* The configuration after byte b from configuration c: its id, -1 when no
** continuation can be in the language any more, -2 when out of memory.
** Stepping -1 gives -1. */
int32_t lmql__gm_step(struct lmql__gm *m, int32_t c, unsigned char b);

/* Step through s[0..n); -1 as soon as it dies, -2 when out of memory. */
int32_t lmql__gm_feed(struct lmql__gm *m, int32_t c, const char *s, size_t n);

/* Whether the bytes that led to c are a whole sentence of the language. */
bool lmql__gm_accepting(struct lmql__gm *m, int32_t c);

/* The tokens (of the trie's vocabulary) whose bytes, appended in
** configuration c, keep it alive: n_vocab bytes of 0/1, valid until the next
** call on m. Tokens with empty pieces are 0. NULL when out of memory. */
const uint8_t *lmql__gm_mask(struct lmql__gm *m, int32_t c);

/* The bytes every continuation from c must start with, up to cap of them
** (JSON's `": "` after a key, a closing bracket): written to out, their
** count returned (0 when the next byte is not determined or c accepts).
** -2 when out of memory. */
int lmql__gm_forced(struct lmql__gm *m, int32_t c, char *out, int cap);

#endif
