/*
** The server's WebSocket pieces (src/ws_frame.c), without sockets: the
** accept key of RFC 6455's own example, request heads that decide access
** (a long Origin is read whole, a repeated one refused), client frame
** headers (unmasked, reserved bits, long or fragmented control frames are
** errors), and UTF-8 as a text message must be.
*/
#include "harness.h"
#include "ws_frame.h"

#include <stdlib.h>
#include <string.h>

static void test_accept_key(void) {
    char out[29];
    const char *k = "dGhlIHNhbXBsZSBub25jZQ==";   /* RFC 6455 section 1.3 */
    lmql__ws_accept_key(k, strlen(k), out);
    CHECK_STR(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

static const char *req(const char *extra, struct lmql__ws_request *rq, char *buf, size_t cap) {
    snprintf(buf, cap, "GET /?token=a%%20b HTTP/1.1\r\nHost: x\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n", extra);
    size_t n = lmql__ws_head_len(buf, strlen(buf));
    if (n != strlen(buf)) return "head not found";
    return lmql__ws_parse_request(buf, n, rq);
}

static void test_request(void) {
    static char buf[8192];
    struct lmql__ws_request rq;
    CHECK(req("", &rq, buf, sizeof buf) == NULL);
    CHECK(rq.upgrade && rq.version_13 && rq.key_len == 24 && !rq.origin && !rq.auth && !rq.offers_lmtp);
    CHECK(rq.target_len == 13 && !memcmp(rq.target, "/?token=a%20b", 13));
    CHECK(req("Sec-WebSocket-Protocol: chat, lmtp\r\nAuthorization: Bearer t\r\n", &rq, buf, sizeof buf) == NULL);
    CHECK(rq.offers_lmtp && rq.auth_len == 8 && !memcmp(rq.auth, "Bearer t", 8));
    /* An Origin of any length is read whole (a 512-byte cut once skipped the check). */
    static char origin[6000];
    strcpy(origin, "Origin: http://evil.example/");
    size_t o = strlen(origin);
    memset(origin + o, 'a', 5000);
    strcpy(origin + o + 5000, "\r\n");
    CHECK(req(origin, &rq, buf, sizeof buf) == NULL);
    CHECK_INT(rq.origin_len, 5000 + strlen("http://evil.example/"));
    /* Two Origins or two Authorizations could be read two ways: refused. */
    CHECK(req("Origin: http://localhost\r\nOrigin: http://evil.example\r\n", &rq, buf, sizeof buf) != NULL);
    CHECK(req("Authorization: a\r\nauthorization: b\r\n", &rq, buf, sizeof buf) != NULL);
    /* Not a WebSocket request. */
    CHECK(lmql__ws_head_len("GET / HTTP/1.1\r\nHost: x\r\n", 25) == 0);
    const char *plain = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    CHECK(lmql__ws_parse_request(plain, strlen(plain), &rq) == NULL && !rq.upgrade);
    const char *post = "POST / HTTP/1.1\r\n\r\n";
    CHECK_STR(lmql__ws_parse_request(post, strlen(post), &rq), "Method Not Allowed");
    /* HTTP/1.0: a plain request (a load balancer's health check), never a WebSocket. */
    const char *old = "GET /health HTTP/1.0\r\n\r\n";
    CHECK(lmql__ws_parse_request(old, strlen(old), &rq) == NULL && !rq.upgrade);
    const char *old_ws = "GET / HTTP/1.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
    CHECK_STR(lmql__ws_parse_request(old_ws, strlen(old_ws), &rq), "HTTP Version Not Supported");
    const char *bad_ver = "GET / HTTP/2.0\r\n\r\n";
    CHECK(lmql__ws_parse_request(bad_ver, strlen(bad_ver), &rq) != NULL);
    const char *folded = "GET / HTTP/1.1\r\nOrigin: http://localhost\r\n http://evil\r\n\r\n";
    CHECK(lmql__ws_parse_request(folded, strlen(folded), &rq) != NULL);
    const char *bare_lf = "GET / HTTP/1.1\nOrigin: x\n\r\n";
    CHECK(lmql__ws_parse_request(bare_lf, strlen(bare_lf), &rq) != NULL);
}

static int hdr(const unsigned char *p, size_t n, struct lmql__ws_hdr *h, const char **why) {
    int code;
    *why = NULL;
    return lmql__ws_parse_header(p, n, h, why, &code);
}

static void test_frames(void) {
    struct lmql__ws_hdr h;
    const char *why;
    const unsigned char text[] = {0x81, 0x85, 1, 2, 3, 4};
    CHECK_INT(hdr(text, sizeof text, &h, &why), 6);
    CHECK(h.fin && h.opcode == WS_TEXT && h.len == 5 && h.mask[3] == 4);
    CHECK_INT(hdr(text, 5, &h, &why), 0);   /* the mask has not all arrived */
    const unsigned char unmasked[] = {0x81, 0x05, 'h', 'e', 'l', 'l', 'o'};
    CHECK_INT(hdr(unmasked, sizeof unmasked, &h, &why), -1);
    CHECK(why && strstr(why, "masked"));
    const unsigned char rsv[] = {0xC1, 0x80, 0, 0, 0, 0};
    CHECK_INT(hdr(rsv, sizeof rsv, &h, &why), -1);
    const unsigned char opc[] = {0x83, 0x80, 0, 0, 0, 0};
    CHECK_INT(hdr(opc, sizeof opc, &h, &why), -1);
    const unsigned char long_ping[] = {0x89, 0xFE, 0, 200, 0, 0, 0, 0};
    CHECK_INT(hdr(long_ping, sizeof long_ping, &h, &why), -1);
    const unsigned char frag_close[] = {0x08, 0x80, 0, 0, 0, 0};
    CHECK_INT(hdr(frag_close, sizeof frag_close, &h, &why), -1);
    const unsigned char len16[] = {0x02, 0xFE, 0x01, 0x00, 9, 9, 9, 9};
    CHECK_INT(hdr(len16, sizeof len16, &h, &why), 8);
    CHECK(!h.fin && h.opcode == WS_BINARY && h.len == 256);
    const unsigned char len64[] = {0x80, 0xFF, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 1};
    CHECK_INT(hdr(len64, sizeof len64, &h, &why), 14);
    CHECK(h.opcode == WS_CONT && h.len == ((uint64_t)1 << 32));
    const unsigned char top_bit[] = {0x81, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1};
    CHECK_INT(hdr(top_bit, sizeof top_bit, &h, &why), -1);

    /* Unmasking in pieces gives what unmasking at once gives. */
    unsigned char a[11] = "hello world", b[11];
    const unsigned char m[4] = {0x11, 0x22, 0x33, 0x44};
    lmql__ws_unmask(a, 11, m, 0);
    memcpy(b, a, 11);
    lmql__ws_unmask(a, 11, m, 0);
    CHECK(!memcmp(a, "hello world", 11));
    lmql__ws_unmask(b, 3, m, 0);
    lmql__ws_unmask(b + 3, 8, m, 3);
    CHECK(!memcmp(b, "hello world", 11));

    unsigned char out[10];
    CHECK_INT(lmql__ws_frame_header(out, WS_TEXT, 125), 2);
    CHECK(out[0] == 0x81 && out[1] == 125);
    CHECK_INT(lmql__ws_frame_header(out, WS_TEXT, 126), 4);
    CHECK(out[1] == 126 && out[2] == 0 && out[3] == 126);
    CHECK_INT(lmql__ws_frame_header(out, WS_CLOSE, 70000), 10);
    CHECK(out[0] == 0x88 && out[1] == 127 && out[7] == 1 && out[8] == 0x11 && out[9] == 0x70);
}

static void test_utf8(void) {
    CHECK(lmql__utf8_valid((const unsigned char *)"", 0));
    CHECK(lmql__utf8_valid((const unsigned char *)"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14));
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xc0\xaf", 2));           /* overlong '/' */
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xed\xa0\x80", 3));       /* a surrogate */
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xf4\x90\x80\x80", 4));   /* past U+10FFFF */
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xe2\x82", 2));           /* cut short */
    CHECK(!lmql__utf8_valid((const unsigned char *)"\x80", 1));
    CHECK(!lmql__utf8_valid((const unsigned char *)"\xff", 1));
}

int main(void) {
    RUN(test_accept_key);
    RUN(test_request);
    RUN(test_frames);
    RUN(test_utf8);
    return th_report("ws");
}
