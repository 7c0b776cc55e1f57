/*
** A queue of outgoing WebSocket text frames, shared by the server's
** connections (serve_ws.c) and the LMTP client (lmtp_conn.c). Each frame
** keeps LWS_PRE bytes of room before its text, as lws_write wants. The
** queue does no locking: the server holds its lock around push and pop.
*/
#ifndef LMQL_WSQ_H
#define LMQL_WSQ_H

#include <stddef.h>

struct lws;
struct lmql__wsframe;

struct lmql__wsq {
    struct lmql__wsframe *head, *tail;
    size_t bytes;               /* text queued, not yet written */
};

/* Append a copy of text: 0, or -1 when out of memory (nothing queued). */
int lmql__wsq_push(struct lmql__wsq *q, const char *text, size_t len);
/* The oldest frame, taken off the queue (NULL when empty). */
struct lmql__wsframe *lmql__wsq_pop(struct lmql__wsq *q);
/* Write f as one text frame and free it: 0, or -1 when the write fell short. */
int lmql__wsq_send(struct lws *wsi, struct lmql__wsframe *f);
void lmql__wsq_clear(struct lmql__wsq *q);
/* A popped frame's text, and freeing it (for writers other than lws_write). */
const char *lmql__wsframe_text(const struct lmql__wsframe *f, size_t *len);
void lmql__wsframe_free(struct lmql__wsframe *f);

#endif
