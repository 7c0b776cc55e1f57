/*
** What a character of a string is, in one place: len(), `for c in s`,
** indexing, slicing, find() and format widths all count with these.
**
** A character is a valid UTF-8 sequence (RFC 3629: no overlong forms, no
** surrogates, nothing past U+10FFFF). Where none starts, the bytes one
** U+FFFD stands for when the string is printed as JSON count as one
** character: a lead byte and the continuation bytes that follow it, short
** of a whole sequence; any other byte alone. On valid UTF-8 this is
** Python's str.
*/
#ifndef LMQL_UTF8_H
#define LMQL_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s[0..n) (1..4), or 0 if none
** starts there (n > 0). */
size_t lmql__utf8_seq_len(const unsigned char *s, size_t n);

/* The code point of the valid UTF-8 sequence at s[0..n) in *cp and its
** length (1..4), or 0 (and *cp untouched) if none starts there (n may be 0). */
size_t lmql__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* At s, where no valid UTF-8 sequence starts: how many bytes one
** replacement character stands for (n > 0). */
size_t lmql__utf8_invalid_len(const unsigned char *s, size_t n);

/* Bytes of the character at s[0..n) (n > 0): a sequence or an invalid piece. */
size_t lmql__utf8_char_len(const char *s, size_t n);

/* The number of characters of s[0..n), and the byte offset of character k
** (n when k is past the end). */
size_t lmql__utf8_count(const char *s, size_t n);
size_t lmql__utf8_offset(const char *s, size_t n, size_t k);

/* Whether s[0..n) is all valid UTF-8, as a WebSocket text message must be. */
bool lmql__utf8_valid(const unsigned char *s, size_t n);

#endif
