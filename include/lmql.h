/*
** lmql.h: LMQL, the query language for large language models, on llama.cpp.
**
** The one public header. A program compiles a query once and runs it as
** often as it likes, with different arguments each time:
**
**     struct lmql *L = lmql_init(NULL);
**     struct lmql_program *q = lmql_program_compile(L, "q.lmql", src, len);
**     if (!q) fprintf(stderr, "%s\n", lmql_errmsg(L));
**     struct lmql_result *r;
**     if (lmql_run(L, q, NULL, &r) == LMQL_OK) puts(lmql_result_json(r));
**     lmql_result_free(r); lmql_program_free(q); lmql_free(L);
**
** Ownership: arguments are borrowed. A function that keeps a pointer says
** so. Returned pointers belong to the caller (free them with the matching
** lmql_*_free) unless documented "valid until ...". lmql_*_free(NULL) is a
** no-op. Handles are not thread-safe; use one struct lmql per thread.
**
** Errors: functions return LMQL_OK (0) or a negative lmql_status, or NULL.
** The message is kept on the struct lmql: lmql_errmsg(L), valid until the
** next call on L. Query errors carry a position (lmql_error_line/col).
*/
#ifndef LMQL_H
#define LMQL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LMQL_VERSION "0.1.0"

struct lmql;          /* a runtime: options, loaded models, the last error */
struct lmql_program;  /* a compiled query */
struct lmql_args;     /* arguments for one run */
struct lmql_result;   /* what a run produced */

typedef enum lmql_status {
    LMQL_OK = 0,
    LMQL_ERR_QUERY = -1,    /* the query is wrong: syntax, unsupported construct, bad argument */
    LMQL_ERR_MODEL = -2,    /* the model cannot be loaded or reached */
    LMQL_ERR_RUNTIME = -3,  /* running failed: context overflow, script error, limits */
    LMQL_ERR_NOMEM = -4,
    LMQL_ERR_MISUSE = -5,   /* a NULL handle or similar API misuse */
} lmql_status;

/* What a stream callback is told about the text it receives. */
typedef enum lmql_text_kind {
    LMQL_TEXT_PROMPT = 0,     /* static prompt text of the query */
    LMQL_TEXT_GENERATED = 1,  /* tokens the model produced for a hole */
} lmql_text_kind;

/* Called with each piece of prompt text as the query runs. Pieces of
** generated text are raw token bytes and may split a UTF-8 character. */
typedef void (*lmql_text_cb)(void *user_data, const char *text, size_t len, lmql_text_kind kind);

struct lmql_params {
    const char  *default_model;  /* used when a query has no `from`; NULL: $LMQL_DEFAULT_MODEL */
    const char  *model_override; /* replaces the query's `from` (lmql run --model) */
    uint64_t     seed;           /* sampling seed; runs with the same seed repeat */
    int32_t      max_steps;      /* script statements per run before it is stopped */
    int32_t      max_depth;      /* nesting of parsing and calls */
    int32_t      max_len;        /* if > 0, caps every decoder's max_len (tokens, prompt included) */
    lmql_text_cb on_text;        /* streaming; NULL for none */
    void        *user_data;      /* passed to on_text */
};

/* Defaults: no default model, seed 0, max_steps 1000000, max_depth 200. */
struct lmql_params lmql_default_params(void);

/* A runtime: it keeps loaded models between runs. params may be NULL.
** Returns NULL only when out of memory. */
struct lmql *lmql_init(const struct lmql_params *params);
void lmql_free(struct lmql *L);

/* Change the sampling seed of later runs on L. */
void lmql_set_seed(struct lmql *L, uint64_t seed);

/* The llama.cpp parameters a model takes (`lmql serve-model ... --n_ctx
** 1024`, `lmql.model("local:llama.cpp:m.gguf", n_ctx=1024)`), with
** llama-cpp-python's Llama(...) names: the i-th one's name, its default
** and what it does, as static strings. Returns 0, or -1 past the last. */
int lmql_model_param(int i, const char **name, const char **default_value, const char **meaning);

/* The last error on L ("" if none), valid until the next call on L. For
** query errors the text is `FILE:LINE:COL: error: message`, then the
** source line and a caret. */
const char *lmql_errmsg(const struct lmql *L);
/* The status of the last error on L (LMQL_OK when there is none): tells a
** query error from running out of memory when lmql_program_compile fails. */
lmql_status lmql_error_status(const struct lmql *L);
/* 1-based position of the last query error, or 0 when it has none. */
int lmql_error_line(const struct lmql *L);
int lmql_error_col(const struct lmql *L);

/* Compile a query. filename is used in messages ("<expr>" for inline
** text). Returns NULL on error (message on L). */
struct lmql_program *lmql_program_compile(struct lmql *L, const char *filename, const char *src, size_t len);
void lmql_program_free(struct lmql_program *P);

/* Query arguments: bind free variables of a query by name. */
struct lmql_args *lmql_args_init(void);
lmql_status lmql_args_set_str(struct lmql_args *A, const char *name, const char *value);
lmql_status lmql_args_set_int(struct lmql_args *A, const char *name, int64_t value);
lmql_status lmql_args_set_float(struct lmql_args *A, const char *name, double value);
/* A JSON value of any shape (object: dict, array: list, string, number,
** true/false/null: True/False/None), numbers read as Python's json.loads
** reads them. Returns LMQL_ERR_QUERY when json_text is not one JSON value. */
lmql_status lmql_args_set_json(struct lmql_args *A, const char *name, const char *json_text);
/* Options of the run, as LMQL's q(..., model=..., decoder=..., n=2) gives
** them. A model (its id and llama.cpp or random-model parameters, n pairs
** of strings) replaces the query's `from`. An option is a JSON value:
** "decoder" names a decoder ("sample", "beam", ...), other names are its
** arguments (n, temperature, max_len, ...); they apply when the query
** names no decoder, and an unknown one fails the run. Both apply to the
** query run, not to query functions it calls. */
lmql_status lmql_args_set_model(struct lmql_args *A, const char *id, const char *const *keys,
                                const char *const *values, int n);
lmql_status lmql_args_set_option(struct lmql_args *A, const char *name, const char *json_text);
void lmql_args_free(struct lmql_args *A);

/* Run a compiled query. args may be NULL. On LMQL_OK *out holds the
** result; otherwise *out is NULL and the message is on L:
**   LMQL_ERR_QUERY    the query is wrong (with a position)
**   LMQL_ERR_MODEL    the model could not be loaded
**   LMQL_ERR_RUNTIME  running failed (context overflow, script error)
**   LMQL_ERR_NOMEM    out of memory */
lmql_status lmql_run(struct lmql *L, struct lmql_program *P, const struct lmql_args *args,
                     struct lmql_result **out);

/* The result as JSON text (see INTERFACE.md: an object per sequence, an
** array for several, or the query's `return` value). Valid until the
** result is freed. */
const char *lmql_result_json(const struct lmql_result *R);
/* Number of sequences, and the final prompt of sequence i (valid until
** the result is freed; NULL when i is out of range). */
int lmql_result_count(const struct lmql_result *R);
const char *lmql_result_prompt(const struct lmql_result *R, int i);
/* The variables of sequence i in the order they were first set: their
** count, the k-th name, and the k-th value as JSON text. Valid until the
** result is freed; NULL when i or k is out of range. */
int lmql_result_variable_count(const struct lmql_result *R, int i);
const char *lmql_result_variable_name(const struct lmql_result *R, int i, int k);
const char *lmql_result_variable_json(const struct lmql_result *R, int i, int k);
void lmql_result_free(struct lmql_result *R);

/* A function of the host program that queries can call by name. It gets
** its positional arguments as JSON texts and sets *result_json to a
** malloc'd JSON text for its value (NULL means None). On failure it returns
** an error status and may set *result_json to a malloc'd message; the
** query then fails with LMQL_ERR_RUNTIME and that message. */
typedef lmql_status (*lmql_host_fn)(void *user_data, int argc, const char *const *argv_json, char **result_json);

/* Make fn callable as `name(...)` in every query run on L, also in
** programs compiled earlier. Registering a name again replaces it.
** Returns LMQL_OK, LMQL_ERR_MISUSE for a bad name, LMQL_ERR_NOMEM. */
lmql_status lmql_register_function(struct lmql *L, const char *name, lmql_host_fn fn, void *user_data);

/* Counters of the last run, for benchmarks and progress reports. */
struct lmql_stats {
    uint64_t n_decoded;   /* tokens evaluated by the model */
    uint64_t n_reused;    /* tokens served from the KV cache */
    uint64_t n_generated; /* tokens generated for holes */
    uint64_t n_forward;   /* forward passes (llama_decode calls) */
    double   t_eval;      /* seconds in the model's forward passes */
    double   t_total;     /* seconds the run took */
};
void lmql_last_stats(const struct lmql *L, struct lmql_stats *out);

/* ------------------------------------------------------------------------
** The LMTP model server (`lmql serve-model`): one model, loaded once, served
** over WebSocket to LMQL clients (ours and LMQL's own), every running
** stream of every connection decoded together in one batch per step.
*/
struct lmql_server;

struct lmql_server_params {
    const char *model;              /* "llama.cpp:PATH" (a relative PATH is resolved now) */
    const char *const *param_keys;  /* Llama(...) parameters: n_ctx, n_seq_max, ... */
    const char *const *param_values;
    int          n_params;
    const char  *host;              /* default "127.0.0.1"; "localhost" is 127.0.0.1 and ::1; a name, each of its addresses */
    int          port;              /* default 8080; 0 picks a free port (see lmql_server_port) */
    const char  *token;             /* required from clients when set (header or ?token=) */
    const char  *allow_origin;      /* extra allowed browser origins, comma separated; "*" all */
    int          max_connections;   /* default 64 */
    int          max_streams;       /* per connection, queued or running; default 64 */
    int          max_frame;         /* bytes per message; default 16 MiB */
    int          max_tokens;        /* largest max_tokens of a GENERATE; default 4096 */
    uint64_t     seed;              /* sampling seed */
    int          quiet;             /* no log lines on stderr */
    int          idle_timeout;      /* seconds without a frame or a stream before a connection closes; default 300, 0 never */
    int          handshake_timeout; /* seconds a client has to finish its WebSocket handshake; default 10 */
    long long    max_unread;        /* bytes of replies a connection may leave unread; default 8 MiB */
    long long    max_queued_bias;   /* logit_bias entries of a connection's streams not yet running; default 1048576 */
    long long    max_score_tokens;  /* SCORE tokens a connection may have queued or running; default 65536 */
    int          drain_timeout;     /* seconds running streams get to finish after lmql_server_drain; default 30 */
};
void lmql_server_default_params(struct lmql_server_params *p);

/* Load the model and bind the socket. NULL on failure, with the cause in
** err (err_cap bytes). */
struct lmql_server *lmql_server_open(const struct lmql_server_params *p, char *err, size_t err_cap);
/* The port it listens on. */
int lmql_server_port(const struct lmql_server *S);
/* Every address it listens on, e.g. "127.0.0.1:8080 and [::1]:8080". */
const char *lmql_server_address(const struct lmql_server *S);
/* Serve until lmql_server_stop; returns LMQL_OK or an error status. */
lmql_status lmql_server_run(struct lmql_server *S);
/* Ask lmql_server_run to return: safe from a signal handler and from
** another thread. */
void lmql_server_stop(struct lmql_server *S);
/* Drain (SIGTERM): refuse new connections and streams, let running streams
** finish (up to drain_timeout seconds, then they end with an error), then
** make lmql_server_run return. Safe from a signal handler. */
void lmql_server_drain(struct lmql_server *S);
/* Close every connection and free the model. */
void lmql_server_free(struct lmql_server *S);

#ifdef __cplusplus
}
#endif
#endif
