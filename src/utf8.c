/*
** Characters of UTF-8 strings (see utf8.h).
*/
#include "utf8.h"
#include "lmql_int.h"

size_t lmql__utf8_seq_len(const unsigned char *s, size_t n) {
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

size_t lmql__utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    size_t l = n ? lmql__utf8_seq_len(s, n) : 0;
    if (!l) return 0;
    uint32_t v = l == 1 ? s[0] : (uint32_t)(s[0] & (0x7Fu >> l));
    for (size_t k = 1; k < l; k++) v = (v << 6) | (s[k] & 0x3Fu);
    *cp = v;
    return l;
}

size_t lmql__utf8_invalid_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t need = c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 0;
    size_t k = 1;
    while (k <= need && k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

size_t lmql__utf8_char_len(const char *s, size_t n) {
    LMQL_ASSERT(n > 0);
    const unsigned char *u = (const unsigned char *)s;
    size_t l = lmql__utf8_seq_len(u, n);
    return l ? l : lmql__utf8_invalid_len(u, n);
}

size_t lmql__utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; k++) i += lmql__utf8_char_len(s + i, n - i);
    return k;
}

size_t lmql__utf8_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    while (k-- > 0 && i < n) i += lmql__utf8_char_len(s + i, n - i);
    return i;
}

bool lmql__utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0, l; i < n; i += l)
        if (!(l = lmql__utf8_seq_len(s + i, n - i))) return false;
    return true;
}
