/*
** The server's half of RFC 6455, as pure functions over bytes (no sockets),
** so each is unit-tested and fuzzed on its own: the handshake request, the
** accept key, and the header of every frame a client sends.
**
** The server reads clients' frames and writes its own; it never masks, and
** it refuses what a client must not send (unmasked frames, reserved bits
** without an extension, fragmented or long control frames).
*/
#ifndef LMQL_WS_FRAME_H
#define LMQL_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { WS_CONT = 0, WS_TEXT = 1, WS_BINARY = 2, WS_CLOSE = 8, WS_PING = 9, WS_PONG = 10 };

/* The handshake request: the parts the server decides on. Every string
** points into the request (not NUL-terminated); NULL when absent. */
struct lmql__ws_request {
    const char *target;  size_t target_len;     /* path and query */
    const char *origin;  size_t origin_len;
    const char *auth;    size_t auth_len;       /* Authorization */
    const char *key;     size_t key_len;        /* Sec-WebSocket-Key */
    bool upgrade;                               /* Upgrade: websocket and Connection: upgrade */
    bool version_13;
    bool offers_lmtp;                           /* Sec-WebSocket-Protocol lists "lmtp" */
};

/* The end of the request head in p[0..n): the length up to and including
** the blank line, or 0 when it has not all arrived. */
size_t lmql__ws_head_len(const char *p, size_t n);

/* Parse a whole request head (as measured by lmql__ws_head_len). NULL, or
** why it is not a request this server can take (an HTTP status line's
** reason). A header that may decide access (Origin, Authorization) given
** twice is refused: two values could be read two ways. */
const char *lmql__ws_parse_request(const char *p, size_t n, struct lmql__ws_request *rq);

/* Sec-WebSocket-Accept for key: 28 characters and a NUL. */
void lmql__ws_accept_key(const char *key, size_t n, char out[29]);

/* A frame's header as sent by a client. */
struct lmql__ws_hdr {
    bool fin;
    int opcode;
    uint64_t len;
    unsigned char mask[4];
};

/* Parse the frame header at p[0..n): its length in bytes, 0 when more
** bytes are needed, or -1 with *why (and the close code for it in *code)
** when the client broke the protocol. */
int lmql__ws_parse_header(const unsigned char *p, size_t n, struct lmql__ws_hdr *h, const char **why, int *code);

/* Unmask n payload bytes that start at byte `at` of their frame. */
void lmql__ws_unmask(unsigned char *p, size_t n, const unsigned char mask[4], uint64_t at);

/* The header of an unmasked server frame of len bytes (FIN set) into
** out[0..10): its length. */
size_t lmql__ws_frame_header(unsigned char out[10], int opcode, uint64_t len);

/* lmql__utf8_valid: whether a text message is valid UTF-8. */
#include "utf8.h"

#endif
