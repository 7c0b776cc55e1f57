/*
** Small shared utilities: error formatting, byte buffers, JSON strings.
*/
#include "lmql_int.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int lmql__errf(struct lmql__err *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lmql__buf_reserve(struct lmql__buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = realloc(b->data, cap);
    if (!p) return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int lmql__buf_add(struct lmql__buf *b, const void *p, size_t n) {
    if (lmql__buf_reserve(b, n)) return -1;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

int lmql__buf_adds(struct lmql__buf *b, const char *s) { return lmql__buf_add(b, s, strlen(s)); }

int lmql__buf_addf(struct lmql__buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || lmql__buf_reserve(b, (size_t)n)) return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void lmql__buf_free(struct lmql__buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Length of the valid UTF-8 sequence at s (1..4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; min = 0x10000; }
    else return 0;
    if (n < len) return 0;
    unsigned cp = c & (0x3F >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

size_t lmql__utf8_invalid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    size_t k = 1;
    while (k <= need && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

/* Bytes of the character at s: a whole UTF-8 sequence, or the invalid
** piece one replacement character would stand for. */
static size_t char_len(const unsigned char *s, size_t n) {
    size_t l = utf8_len(s, n);
    return l ? l : lmql__utf8_invalid_len(s, n);
}

size_t lmql__utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; k++) i += char_len((const unsigned char *)s + i, n - i);
    return k;
}

size_t lmql__utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k-- > 0 && i < n) i += char_len((const unsigned char *)s + i, n - i);
    return i;
}

int lmql__buf_json_str(struct lmql__buf *b, const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    if (lmql__buf_add(b, "\"", 1)) return -1;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int rc;
        if (c == '"') rc = lmql__buf_adds(b, "\\\"");
        else if (c == '\\') rc = lmql__buf_adds(b, "\\\\");
        else if (c == '\n') rc = lmql__buf_adds(b, "\\n");
        else if (c == '\r') rc = lmql__buf_adds(b, "\\r");
        else if (c == '\t') rc = lmql__buf_adds(b, "\\t");
        else if (c < 0x20 || c == 0x7F) rc = lmql__buf_addf(b, "\\u%04x", c);
        else {
            size_t l = utf8_len(u + i, n - i);
            if (l == 0) {
                /* One U+FFFD for a truncated sequence (its lead byte and the
                ** continuation bytes that came), as Python's decoder does. */
                rc = lmql__buf_adds(b, "\xEF\xBF\xBD");
                i += lmql__utf8_invalid_len(u + i, n - i);
            } else {
                rc = lmql__buf_add(b, u + i, l);
                i += l;
            }
            if (rc) return -1;
            continue;
        }
        if (rc) return -1;
        i++;
    }
    return lmql__buf_add(b, "\"", 1);
}

int lmql__ncores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

uint64_t lmql__rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
