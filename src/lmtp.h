/*
** LMTP, the wire protocol of LMQL's model servers (see docs and the
** protocol notes): one WebSocket text frame per message, `CMD {json}`.
**
** This module reads a client command into a struct and writes the server's
** replies; it knows nothing of sockets or models, so the fuzz target and
** both ends (server and the llama.cpp:PATH client) share it.
**
** The command parser is written for this one shape instead of building a
** generic JSON tree: a logit_bias of half a 128k vocabulary arrives with
** every GENERATE of LMQL's client, and it must cost one pass, not a
** dictionary insert per entry.
*/
#ifndef LMQL_LMTP_H
#define LMQL_LMTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lmql_int.h"

enum lmql__lmtp_kind {
    LMTP_GENERATE,
    LMTP_SCORE,
    LMTP_MODEL_INFO,
    /* Extensions (an unmodified LMQL client never sends them): */
    LMTP_CANCEL,        /* {"stream_id"}: stop that stream now */
    LMTP_VOCAB,         /* {"stream_id"}: the vocabulary as hex pieces */
    LMTP_TOKENIZE,      /* {"stream_id", "text", "bos", "cont", "special"}: token ids */
    LMTP_UNKNOWN,       /* parsed for its stream_id, answered with an error */
};

struct lmql__lmtp_bias {
    int32_t tok;
    float   value;
};

struct lmql__lmtp_cmd {
    enum lmql__lmtp_kind kind;
    int64_t stream_id;
    bool    has_stream_id;
    char   *model;              /* NUL-terminated, NULL when absent */
    int32_t *prompt, *scored;
    int32_t n_prompt, n_scored;
    bool    has_prompt, has_scored;
    int64_t max_tokens;         /* default 32, as LMQL's server */
    double  temperature;        /* default 0: argmax */
    int64_t top_logprobs;       /* default 1 */
    int64_t top_k;              /* 0: all */
    double  top_p;              /* 1: all */
    struct lmql__lmtp_bias *bias;
    int32_t n_bias;
    char   *text;               /* TOKENIZE */
    size_t  text_len;
    bool    bos, cont;
    bool    special;            /* TOKENIZE chat template text: special tokens parsed (sent only when true) */
};

/* Parse one frame. Returns 0, or -1 with a message in err: a syntax error
** (then nothing else is known), or a wrong field (then stream_id is set if
** the frame has one, so the reply can name the stream). max_items caps
** the length of each array and of logit_bias. */
int lmql__lmtp_parse(const char *frame, size_t n, int32_t max_items, struct lmql__lmtp_cmd *cmd,
                     struct lmql__err *err);
void lmql__lmtp_cmd_free(struct lmql__lmtp_cmd *cmd);

/* Replies, appended to b as whole frames' text. All return 0 or -1 (out
** of memory). A stream_id < 0 is written as null. */
int lmql__lmtp_token(struct lmql__buf *b, int64_t stream_id, int32_t tok, double logprob, const char *finish,
                     const int32_t *top, const float *top_lp, int n_top);
int lmql__lmtp_error(struct lmql__buf *b, const char *cmd, int64_t stream_id, const char *msg);

/* MODEL_INFO's answer. vocab_hash lets a client check that its own copy
** of the GGUF is the one served; it goes as a hex string (JSON numbers
** are doubles). */
struct lmql__lmtp_info {
    const char *model_identifier, *constructor, *server;
    int32_t n_vocab, n_ctx, n_seq_max;
    uint64_t vocab_hash;
    const char *chat_template;  /* the one role tags are rendered with, or NULL (sent as null): none */
};
int lmql__lmtp_model_info(struct lmql__buf *b, int64_t stream_id, const struct lmql__lmtp_info *info);

/* VOCAB's answer: each piece (bytes[off[t]..off[t+1])) as hex, since
** pieces are bytes, not always UTF-8. */
struct lmql__lmtp_vocab {
    int32_t n_vocab, bos, eos;
    bool add_bos;
    const int32_t *eog;
    int32_t n_eog;
    const char *bytes;
    const uint32_t *off;
};
int lmql__lmtp_vocab(struct lmql__buf *b, int64_t stream_id, const struct lmql__lmtp_vocab *v);

/* TOKENIZE's answer (the ids) and CANCEL's (how many streams stopped). */
int lmql__lmtp_tokens(struct lmql__buf *b, int64_t stream_id, const int32_t *tok, int32_t n);
int lmql__lmtp_cancelled(struct lmql__buf *b, int64_t stream_id, int n);

/* A client's command, appended to b as a whole frame's text: the inverse
** of lmql__lmtp_parse for c->kind (any but LMTP_UNKNOWN), writing the
** fields that command takes (model when not NULL; for MODEL_INFO also
** LMQL's "data" echo of it). Returns 0 or -1 (out of memory). */
int lmql__lmtp_request(struct lmql__buf *b, const struct lmql__lmtp_cmd *c);

/* --------------------------------------------------------------------
** The server's replies, read by a client (lmtp_reply.c): `CMD [payload,
** ...]`. Everything is checked, since a server may be broken or hostile:
** ids inside the vocabulary, pieces valid hex and bounded, texts that will
** be printed cleaned of control characters. Error texts (err) start with
** a verb ("sent ...") so the caller can put the server's name before them.
*/
struct lmql_val;

/* Limits on a vocabulary sent by a server (VOCAB): real ones have at most a
** few 100k tokens of a few bytes (the longest pieces, runs of spaces or
** dashes, ~100 bytes). Beyond these the server is broken or hostile, and
** the tries and masks built over the vocabulary would cost without bound. */
#define LMQL__LMTP_MAX_VOCAB (1 << 21)  /* tokens */
#define LMQL__LMTP_MAX_PIECE 4096       /* bytes of one piece */
#define LMQL__LMTP_MAX_TOP   16         /* top_logprobs entries read per token */

struct lmql__lmtp_reply {
    bool token;                 /* a TOKEN frame; anything else (MSG) is a message */
    size_t n;                   /* payloads */
    struct lmql_val *list;      /* the parsed payloads (private) */
};

/* Split and parse one frame. Returns 0, or -1 when it is not `CMD [...]`
** (err then shows the start of the frame, cleaned). */
int lmql__lmtp_read_reply(const char *frame, size_t n, struct lmql__lmtp_reply *r, struct lmql__err *err);
void lmql__lmtp_reply_free(struct lmql__lmtp_reply *r);

/* Payload i's stream id, or -1 when it has none usable (absent, not a
** number, negative or beyond 9e15). */
int64_t lmql__lmtp_read_stream(const struct lmql__lmtp_reply *r, size_t i);
/* Payload i's error, cleaned into buf, or NULL when it reports none. A
** non-string error reads as "the server reported an error". */
const char *lmql__lmtp_read_error(const struct lmql__lmtp_reply *r, size_t i, char *buf, size_t cap);

/* One TOKEN payload. */
struct lmql__lmtp_token_reply {
    int64_t stream_id;          /* -1: none usable (then nothing else is read) */
    bool    has_error;
    char    error[512];         /* cleaned */
    bool    has_token;          /* token is a number inside the vocabulary */
    int32_t token;
    double  logprob;            /* -INFINITY when absent */
    bool    finished;           /* finish_reason is a string */
    int     n_top;              /* top_logprobs entries other than token, in range */
    int32_t top[LMQL__LMTP_MAX_TOP];
    float   top_lp[LMQL__LMTP_MAX_TOP];
};
/* Read payload i of a TOKEN frame; at most max_top (<= LMQL__LMTP_MAX_TOP)
** top entries are kept. */
void lmql__lmtp_read_token(const struct lmql__lmtp_reply *r, size_t i, int32_t n_vocab, int max_top,
                           struct lmql__lmtp_token_reply *t);

/* MODEL_INFO's answer as far as a client checks it. */
struct lmql__lmtp_info_reply {
    bool has_hash;              /* vocab_hash is a string */
    bool hash_ok;               /* ... of 16 lowercase hex digits, read into vocab_hash */
    uint64_t vocab_hash;
    bool has_n_vocab;           /* n_vocab is a number */
    double n_vocab;
    bool has_template;          /* chat_template is there: a string or null */
    const char *chat_template;  /* the string (inside the reply), or NULL for null */
    size_t chat_template_len;
};
void lmql__lmtp_read_info(const struct lmql__lmtp_reply *r, size_t i, struct lmql__lmtp_info_reply *info);

/* TOKENIZE's answer: the ids into out. Returns their count, -(count) when
** cap is too small (every id is checked all the same), or INT32_MIN with
** err filled. */
int32_t lmql__lmtp_read_tokens(const struct lmql__lmtp_reply *r, size_t i, int32_t n_vocab, int32_t *out,
                               int32_t cap, struct lmql__err *err);

/* VOCAB's answer, owned by the caller (lmql__lmtp_vocab_reply_free):
** bytes/off as in struct lmql__lmtp_vocab, eog without repeats, bos/eos -1
** when absent or out of range. */
struct lmql__lmtp_vocab_reply {
    int32_t n_vocab, bos, eos;
    bool add_bos;
    int32_t *eog;
    int32_t n_eog;
    char *bytes;
    uint32_t *off;
};
/* Returns 0; 1 when payload i carries no vocabulary (a server without
** VOCAB); -1 with err filled when it is malformed, over the limits or
** memory runs out. i may be out of range (no payload: 1). */
int lmql__lmtp_read_vocab(const struct lmql__lmtp_reply *r, size_t i, struct lmql__lmtp_vocab_reply *v,
                          struct lmql__err *err);
void lmql__lmtp_vocab_reply_free(struct lmql__lmtp_vocab_reply *v);

/* Text from a server made safe to print (control characters become '?')
** and at most cap - 1 bytes, into buf. */
const char *lmql__lmtp_clean(const char *s, char *buf, size_t cap);

#endif
