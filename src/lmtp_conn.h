/*
** The client end of an LMTP connection: one WebSocket (libwebsockets) to a
** model server, used synchronously by one thread. Frames go out in order;
** incoming messages queue until read.
*/
#ifndef LMQL_LMTP_CONN_H
#define LMQL_LMTP_CONN_H

#include <stddef.h>

#include "lmql_int.h"

struct lmql__lmtp_conn;

/* Connect to "host:port" (or "ws://host:port"; host defaults to
** localhost, port to 8080). token, when set, goes in an Authorization
** header. Blocks until the handshake is done (at most timeout_ms). */
struct lmql__lmtp_conn *lmql__lmtp_connect(const char *endpoint, const char *token, int timeout_ms,
                                           struct lmql__err *err);
void lmql__lmtp_close(struct lmql__lmtp_conn *c);

/* Queue one text frame (sent by the next send or recv). */
int lmql__lmtp_send(struct lmql__lmtp_conn *c, const char *text, size_t len, struct lmql__err *err);
/* Send what is queued and wait for the next message: 1 with a malloc'd,
** NUL-terminated *out, 0 when timeout_ms passed without one (0 polls), -1
** when the connection is gone (err says why). */
int lmql__lmtp_recv(struct lmql__lmtp_conn *c, char **out, size_t *len, int timeout_ms, struct lmql__err *err);

/* "host:port" of the server, for messages that name it. */
const char *lmql__lmtp_where(const struct lmql__lmtp_conn *c);
/* Whether the connection is known to be closed (nothing more can be sent). */
bool lmql__lmtp_closed(const struct lmql__lmtp_conn *c);

#endif
