/*
** Outgoing frame queue (see wsq.h).
*/
#include "wsq.h"
#include "alloc.h"
#include "lmql_int.h"

#include <libwebsockets.h>
#include <stdlib.h>
#include <string.h>

struct lmql__wsframe {
    struct lmql__wsframe *next;
    size_t len;
    unsigned char data[];       /* LWS_PRE bytes of room, then the text */
};

int lmql__wsq_push(struct lmql__wsq *q, const char *text, size_t len) {
    struct lmql__wsframe *f = lmql__malloc(sizeof *f + LWS_PRE + len);
    if (!f) return -1;
    f->next = NULL;
    f->len = len;
    memcpy(f->data + LWS_PRE, text, len);
    if (q->tail) q->tail->next = f;
    else q->head = f;
    q->tail = f;
    q->bytes += len;
    return 0;
}

struct lmql__wsframe *lmql__wsq_pop(struct lmql__wsq *q) {
    struct lmql__wsframe *f = q->head;
    LMQL_ASSERT(!f == !q->tail);   /* head and tail are both set or both NULL */
    if (!f) {
        LMQL_ASSERT(q->bytes == 0);
        return NULL;
    }
    q->head = f->next;
    if (!q->head) q->tail = NULL;
    LMQL_ASSERT(q->bytes >= f->len);   /* bytes counts the text queued */
    q->bytes -= f->len;
    return f;
}

int lmql__wsq_send(struct lws *wsi, struct lmql__wsframe *f) {
    int w = lws_write(wsi, f->data + LWS_PRE, f->len, LWS_WRITE_TEXT);
    int rc = w < (int)f->len ? -1 : 0;
    free(f);
    return rc;
}

void lmql__wsq_clear(struct lmql__wsq *q) {
    for (struct lmql__wsframe *f = q->head, *nx; f; f = nx) {
        nx = f->next;
        free(f);
    }
    *q = (struct lmql__wsq){0};
}

const char *lmql__wsframe_text(const struct lmql__wsframe *f, size_t *len) {
    *len = f->len;
    return (const char *)f->data + LWS_PRE;
}

void lmql__wsframe_free(struct lmql__wsframe *f) { free(f); }
