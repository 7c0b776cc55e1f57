/*
** gbnf.h -- llama.cpp's GBNF grammars compiled into our grammar form.
**
** Users bring the grammars they wrote for llama.cpp; the language is the
** one llama.cpp's grammar sampler accepts from the root rule, over the
** characters (Unicode code points, UTF-8 in the output) of the text:
**
**   rules        name ::= alternatives   (names: letters, digits, '-', '_'),
**                a rule ends at the end of its line unless the line ends
**                inside parentheses or right after '|' or '::=', exactly
**                where llama.cpp's parser continues a rule
**   alternatives a | b, sequences a b, groups ( ), comments # ...
**   literals     "..." with \n \r \t \\ \" \[ \] \- \xHH \uHHHH \UHHHHHHHH
**   classes      [a-z0-9_] [^...] with the same escapes; . is any character
**   repetition   x* x+ x? x{m} x{m,} x{m,n}; llama.cpp's limits are kept:
**                a count above 2000 is refused, an upper bound above 2000
**                means no bound, and a repetition whose expansion would
**                make 2000 or more rules (nested ones multiply) is refused
**
** Refused with an error: token syntax (<[id]>, <token>, !<...>: these
** grammars are over text, not token ids), {,n} (llama.cpp has no such form:
** write {0,n}), left recursion (llama.cpp refuses it too), undefined rules,
** a root rule that matches no text. A rule defined twice keeps its last
** definition, as in llama.cpp. The text ends at its first NUL byte.
**
** As in llama.cpp, U+0000 never matches (its strings are C strings); the
** UTF-16 surrogates and code points above U+10FFFF, which no valid UTF-8
** encodes, never match either: a literal holding one matches nothing and a
** class simply lacks them.
**
** Regular parts become single regex terminals (a literal, a class, a
** repetition of them, a run of them in a sequence, a whole rule whose
** expansion is regular and not recursive, a right-recursive rule such as
** ws ::= [ \t\n] ws | ""): the matcher then steps one DFA per byte instead
** of changing rules. What is too large for one regex is built as rules.
*/
#ifndef LMQL_GBNF_H
#define LMQL_GBNF_H

#include <stddef.h>

#include "grammar.h"
#include "lmql_int.h"

/* Compile the GBNF text[0..n) with `root` (NULL: "root") as the start rule.
** Returns the grammar (free with lmql__grammar_free), or NULL with e
** filled: LMQL_ERR_QUERY with e->pos at the problem in the text (1-based
** line, column in code points, byte offset; line 0 when it has no place,
** e.g. a missing root rule) and a message saying what is wrong, or
** LMQL_ERR_NOMEM. */
struct lmql_grammar *lmql__gbnf_compile(const char *text, size_t n, const char *root, struct lmql__err *e);

#endif
