/*
** libFuzzer target for the server's WebSocket reader (src/ws_frame.c): the
** bytes are a handshake request head, then a run of client frames, read
** the way the transport reads them.
*/
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t head = lmql__ws_head_len((const char *)data, size);
    if (head) {
        struct lmql__ws_request rq;
        if (!lmql__ws_parse_request((const char *)data, head, &rq) && rq.key) {
            char out[29];
            lmql__ws_accept_key(rq.key, rq.key_len, out);
        }
    }
    unsigned char *p = malloc(size ? size : 1);
    if (!p) return 0;
    memcpy(p, data, size);
    size_t at = head;
    while (at < size) {
        struct lmql__ws_hdr h;
        const char *why;
        int code;
        int n = lmql__ws_parse_header(p + at, size - at, &h, &why, &code);
        if (n <= 0) break;
        at += (size_t)n;
        size_t k = size - at < h.len ? size - at : (size_t)h.len;
        lmql__ws_unmask(p + at, k, h.mask, 0);
        (void)lmql__utf8_valid(p + at, k);
        at += k;
    }
    free(p);
    return 0;
}
