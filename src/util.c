/*
** Small shared utilities: error formatting, byte buffers, JSON strings.
*/
#include "lmql_int.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

int lmql__err_set(struct lmql__err *err, lmql_status status, const struct lmql_pos *pos, const char *fmt, ...) {
    if (err) {
        err->status = status;
        err->pos = pos ? *pos : (struct lmql_pos){0, 0, 0};
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int lmql__err_nomem(struct lmql__err *err) { return lmql__err_set(err, LMQL_ERR_NOMEM, NULL, "out of memory"); }

int lmql__buf_reserve(struct lmql__buf *b, size_t extra) {
    LMQL_ASSERT(b->cap == 0 || b->len < b->cap);   /* room for the NUL after the bytes */
    if (b->len + extra + 1 <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return -1;
        cap *= 2;
    }
    char *p = lmql__realloc(b->data, cap);
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
    LMQL_ASSERT(b->len < b->cap && b->data[b->len] == 0);   /* NUL-terminated */
    return 0;
}

void lmql__buf_free(struct lmql__buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
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
            size_t l = lmql__utf8_seq_len(u + i, n - i);
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

static int hex4(const char *s, size_t n, size_t *i, unsigned *out) {
    if (*i + 4 > n) return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        char c = s[(*i)++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(struct lmql__buf *b, unsigned cp) {
    char u[4];
    size_t k;
    if (cp < 0x80) { u[0] = (char)cp; k = 1; }
    else if (cp < 0x800) { u[0] = (char)(0xC0 | cp >> 6); u[1] = (char)(0x80 | (cp & 0x3F)); k = 2; }
    else if (cp < 0x10000) {
        u[0] = (char)(0xE0 | cp >> 12); u[1] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[2] = (char)(0x80 | (cp & 0x3F)); k = 3;
    } else {
        u[0] = (char)(0xF0 | cp >> 18); u[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); u[3] = (char)(0x80 | (cp & 0x3F)); k = 4;
    }
    return b ? lmql__buf_add(b, u, k) : 0;
}

const char *lmql__json_unescape(const char *s, size_t n, size_t *i, struct lmql__buf *out) {
    LMQL_ASSERT(*i <= n);
    if (*i >= n || s[*i] != '"') return "expected a string";
    (*i)++;
    while (*i < n) {
        unsigned char c = (unsigned char)s[(*i)++];
        if (c == '"') return NULL;
        if (c < 0x20) { (*i)--; return "control character in a string"; }
        if (c != '\\') {
            if (out && lmql__buf_add(out, &c, 1)) return "out of memory";
            continue;
        }
        if (*i >= n) break;
        char e = s[(*i)++], one;
        unsigned cp;
        switch (e) {
        case '"': case '\\': case '/': one = e; break;
        case 'b': one = '\b'; break;
        case 'f': one = '\f'; break;
        case 'n': one = '\n'; break;
        case 'r': one = '\r'; break;
        case 't': one = '\t'; break;
        case 'u':
            if (hex4(s, n, i, &cp)) return "bad \\u escape";
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (*i + 6 <= n && s[*i] == '\\' && s[*i + 1] == 'u') {
                    *i += 2;
                    if (hex4(s, n, i, &lo) || lo < 0xDC00 || lo > 0xDFFF) return "bad surrogate pair";
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else {
                    cp = 0xFFFD;
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = 0xFFFD;
            }
            if (put_utf8(out, cp)) return "out of memory";
            continue;
        default: return "bad escape";
        }
        if (out && lmql__buf_add(out, &one, 1)) return "out of memory";
    }
    return "unterminated string";
}

static bool digit_at(const char *s, size_t n, size_t i) { return i < n && s[i] >= '0' && s[i] <= '9'; }

const char *lmql__json_number(const char *s, size_t n, size_t *i, double *d, int64_t *iv, bool *is_int) {
    size_t a = *i, k = a;
    bool frac = false;
    if (k < n && s[k] == '-') k++;
    if (!digit_at(s, n, k)) { *i = k; return "expected a number"; }
    if (s[k] == '0') k++;
    else while (digit_at(s, n, k)) k++;
    if (k < n && s[k] == '.') {
        frac = true;
        if (!digit_at(s, n, ++k)) { *i = k; return "bad fraction"; }
        while (digit_at(s, n, k)) k++;
    }
    if (k < n && (s[k] == 'e' || s[k] == 'E')) {
        frac = true;
        k++;
        if (k < n && (s[k] == '+' || s[k] == '-')) k++;
        if (!digit_at(s, n, k)) { *i = k; return "bad exponent"; }
        while (digit_at(s, n, k)) k++;
    }
    /* strtod and strtoll want a NUL: a copy, on the heap when long, so
    ** that every digit counts. */
    char small[64], *tmp = small;
    size_t len = k - a;
    if (len >= sizeof small && !(tmp = lmql__malloc(len + 1))) return "out of memory";
    memcpy(tmp, s + a, len);
    tmp[len] = 0;
    *is_int = false;
    if (!frac) {
        errno = 0;
        long long v = strtoll(tmp, NULL, 10);
        if (errno == 0) { *is_int = true; *iv = v; }
    }
    *d = strtod(tmp, NULL);
    if (tmp != small) free(tmp);
    *i = k;
    return NULL;
}

double lmql__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
