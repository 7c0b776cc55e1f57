/*
** RFC 6455 for the server (see ws_frame.h).
*/
#include "ws_frame.h"
#include "lmql_int.h"

#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ request -- */

size_t lmql__ws_head_len(const char *p, size_t n) {
    for (size_t i = 3; i < n; i++)
        if (p[i] == '\n' && p[i - 1] == '\r' && p[i - 2] == '\n' && p[i - 3] == '\r') return i + 1;
    return 0;
}

static bool ieq(const char *a, size_t n, const char *lit) {
    return strlen(lit) == n && !strncasecmp(a, lit, n);
}

/* Whether the comma-separated list v[0..n) has the token tok (any case). */
static bool has_token(const char *v, size_t n, const char *tok) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',') i++;
        size_t e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) e--;
        if (e > s && ieq(v + s, e - s, tok)) return true;
    }
    return false;
}

const char *lmql__ws_parse_request(const char *p, size_t n, struct lmql__ws_request *rq) {
    memset(rq, 0, sizeof *rq);
    const char *end = p + n, *eol = memchr(p, '\n', n);
    if (!eol || eol == p || eol[-1] != '\r') return "Bad Request";
    /* Request line: GET SP target SP HTTP/1.1 */
    const char *sp1 = memchr(p, ' ', (size_t)(eol - p));
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (!sp1 || !sp2 || sp2 == sp1 + 1) return "Bad Request";
    if (sp1 - p != 3 || memcmp(p, "GET", 3)) return "Method Not Allowed";
    /* HTTP/1.0 only for plain requests (a load balancer's /health check);
    ** a WebSocket needs 1.1. */
    bool v10 = eol - 1 - (sp2 + 1) == 8 && !memcmp(sp2 + 1, "HTTP/1.0", 8);
    if (!v10 && (eol - 1 - (sp2 + 1) != 8 || memcmp(sp2 + 1, "HTTP/1.1", 8))) return "HTTP Version Not Supported";
    rq->target = sp1 + 1;
    rq->target_len = (size_t)(sp2 - sp1 - 1);
    bool conn_upgrade = false, up_ws = false;
    int n_origin = 0, n_auth = 0, n_key = 0;
    for (const char *l = eol + 1; l < end;) {
        const char *e = memchr(l, '\n', (size_t)(end - l));
        if (!e || e == l || e[-1] != '\r') return "Bad Request";
        size_t len = (size_t)(e - 1 - l);
        if (!len) break;                                /* the blank line */
        const char *colon = memchr(l, ':', len);
        if (!colon || colon == l || *l == ' ' || *l == '\t') return "Bad Request";   /* no folded lines */
        size_t kn = (size_t)(colon - l);
        const char *v = colon + 1, *ve = e - 1;
        while (v < ve && (*v == ' ' || *v == '\t')) v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
        size_t vn = (size_t)(ve - v);
        if (ieq(l, kn, "Origin")) { rq->origin = v; rq->origin_len = vn; n_origin++; }
        else if (ieq(l, kn, "Authorization")) { rq->auth = v; rq->auth_len = vn; n_auth++; }
        else if (ieq(l, kn, "Sec-WebSocket-Key")) { rq->key = v; rq->key_len = vn; n_key++; }
        else if (ieq(l, kn, "Sec-WebSocket-Version")) rq->version_13 = vn == 2 && !memcmp(v, "13", 2);
        else if (ieq(l, kn, "Upgrade")) up_ws |= has_token(v, vn, "websocket");
        else if (ieq(l, kn, "Connection")) conn_upgrade |= has_token(v, vn, "upgrade");
        else if (ieq(l, kn, "Sec-WebSocket-Protocol")) rq->offers_lmtp |= has_token(v, vn, "lmtp");
        l = e + 1;
    }
    if (n_origin > 1 || n_auth > 1 || n_key > 1) return "Bad Request";
    /* Every string points into the request. */
    LMQL_ASSERT(rq->target > p && rq->target + rq->target_len <= end);
    rq->upgrade = up_ws && conn_upgrade;
    if (v10 && (rq->upgrade || up_ws)) return "HTTP Version Not Supported";
    return NULL;
}

/* -------------------------------------------------------- accept key -- */

/* SHA-1 (FIPS 180-4), for the accept key only: a handshake detail, not a
** security measure. */
static uint32_t rol(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static void sha1_block(uint32_t h[5], const unsigned char *b) {
    uint32_t w[80];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)b[4 * i] << 24 | (uint32_t)b[4 * i + 1] << 16 | (uint32_t)b[4 * i + 2] << 8 | b[4 * i + 3];
    for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = h[0], bb = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) { f = (bb & c) | (~bb & d); k = 0x5A827999; }
        else if (i < 40) { f = bb ^ c ^ d; k = 0x6ED9EBA1; }
        else if (i < 60) { f = (bb & c) | (bb & d) | (c & d); k = 0x8F1BBCDC; }
        else { f = bb ^ c ^ d; k = 0xCA62C1D6; }
        uint32_t t = rol(a, 5) + f + e + k + w[i];
        e = d; d = c; c = rol(bb, 30); bb = a; a = t;
    }
    h[0] += a; h[1] += bb; h[2] += c; h[3] += d; h[4] += e;
}

static void sha1(const unsigned char *p, size_t n, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64) sha1_block(h, p + i);
    unsigned char last[128] = {0};
    size_t r = n - i;
    memcpy(last, p + i, r);
    last[r] = 0x80;
    size_t blocks = r + 9 <= 64 ? 1 : 2;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++) last[blocks * 64 - 1 - k] = (unsigned char)(bits >> (8 * k));
    for (size_t k = 0; k < blocks; k++) sha1_block(h, last + 64 * k);
    for (int k = 0; k < 20; k++) out[k] = (unsigned char)(h[k / 4] >> (24 - 8 * (k % 4)));
}

void lmql__ws_accept_key(const char *key, size_t n, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char buf[128 + sizeof guid], d[20];
    if (n > 128) n = 128;   /* a real key is 24 characters; the caller checks */
    memcpy(buf, key, n);
    memcpy(buf + n, guid, sizeof guid - 1);
    sha1(buf, n + sizeof guid - 1, d);
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    int o = 0;
    for (int i = 0; i < 21; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < 20 ? (uint32_t)d[i + 1] << 8 : 0) | (i + 2 < 20 ? d[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < 20 ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < 20 ? b64[v & 63] : '=';
    }
    out[28] = 0;
}

/* ------------------------------------------------------------- frames -- */

int lmql__ws_parse_header(const unsigned char *p, size_t n, struct lmql__ws_hdr *h, const char **why, int *code) {
    *code = 1002;
    if (n < 2) return 0;
    h->fin = p[0] & 0x80;
    h->opcode = p[0] & 0x0F;
    if (p[0] & 0x70) { *why = "reserved bits set (no extension was agreed)"; return -1; }
    if (!(p[1] & 0x80)) { *why = "frames from a client must be masked"; return -1; }
    int op = h->opcode;
    if (op != WS_CONT && op != WS_TEXT && op != WS_BINARY && op != WS_CLOSE && op != WS_PING && op != WS_PONG) {
        *why = "unknown opcode";
        return -1;
    }
    size_t at = 2;
    uint64_t len = p[1] & 0x7F;
    if (len == 126) {
        if (n < 4) return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        at = 4;
    } else if (len == 127) {
        if (n < 10) return 0;
        len = 0;
        for (int i = 0; i < 8; i++) len = len << 8 | p[2 + i];
        if (len >> 63) { *why = "frame length with the top bit set"; return -1; }
        at = 10;
    }
    if (op >= WS_CLOSE && (len > 125 || !h->fin)) { *why = "control frames are short and never fragmented"; return -1; }
    if (n < at + 4) return 0;
    memcpy(h->mask, p + at, 4);
    h->len = len;
    /* What the server relies on from here: a known opcode, a length below
    ** 2^63, control frames short and whole. */
    LMQL_ASSERT(at + 4 <= n && !(len >> 63) && (op < WS_CLOSE || (len <= 125 && h->fin)));
    return (int)(at + 4);
}

void lmql__ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t at) {
    for (size_t i = 0; i < n; i++) p[i] ^= mask[(at + i) & 3];
}

size_t lmql__ws_frame_header(unsigned char out[10], int opcode, uint64_t len) {
    LMQL_ASSERT(opcode >= 0 && opcode <= 0xF);   /* the low four bits of the first byte */
    out[0] = (unsigned char)(0x80 | opcode);
    if (len < 126) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len < 65536) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++) out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}
