/*
** The public API (include/lmql.h): runtime, programs, arguments, runs and
** results. Models are opened on first use and kept for later runs.
*/
#include <lmql.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "where.h"
#include "diag.h"
#include "interp.h"
#include "json.h"
#include "parse.h"

struct cached_model {
    char *key;                  /* id + parameters */
    struct lmql__model *model;
};

struct lmql {
    struct lmql_params params;
    struct lmql__buf errmsg;
    int err_line, err_col;
    lmql_status err_status;       /* of the last error (LMQL_OK: none) */
    struct cached_model *models;
    int n_models;
    struct lmql_stats stats;
    struct lmql_val *functions;   /* name -> builtin calling a host function */
    struct host_fn **host_fns;    /* their records, freed with L */
    int n_host_fns;
};

struct lmql_program {
    struct lmql_arena arena;
    struct lmql_ast_query *q;
    struct lmql__wheres *wheres;  /* the constraints of its holes */
    char *src;                  /* kept for error excerpts */
    size_t len;
    char *file;
};

struct lmql_args {
    struct lmql_val *dict;
    struct lmql_val *options;     /* decoder arguments, or NULL */
    char *decoder;                /* or NULL */
    char *model;                  /* model id, or NULL */
    struct lmql__kv *model_kv;    /* its parameters */
    int n_model_kv;
};

struct lmql_seq_view {
    char *prompt;
    int n_vars;
    char **names;
    char **json;
};

struct lmql_result {
    char *json;
    int n;
    struct lmql_seq_view *seqs;
};

struct lmql_params lmql_default_params(void) {
    struct lmql_params p = {0};
    p.max_steps = 1000000;
    p.max_depth = LMQL_PARSE_DEFAULT_MAX_DEPTH;
    return p;
}

struct lmql *lmql_init(const struct lmql_params *params) {
    struct lmql *L = lmql__calloc(1, sizeof *L);
    if (!L) return NULL;
    L->params = params ? *params : lmql_default_params();
    if (L->params.max_steps <= 0) L->params.max_steps = 1000000;
    if (L->params.max_depth <= 0) L->params.max_depth = LMQL_PARSE_DEFAULT_MAX_DEPTH;
    return L;
}

void lmql_free(struct lmql *L) {
    if (!L) return;
    for (int i = 0; i < L->n_models; i++) {
        free(L->models[i].key);
        lmql__model_free(L->models[i].model);
    }
    free(L->models);
    lmql__val_unref(L->functions);
    for (int i = 0; i < L->n_host_fns; i++) free(L->host_fns[i]);
    free(L->host_fns);
    lmql__buf_free(&L->errmsg);
    free(L);
}

int lmql_model_param(int i, const char **name, const char **default_value, const char **meaning) {
    if (!name || !default_value || !meaning) return -1;
    return lmql__llama_param(i, name, default_value, meaning);
}

void lmql_set_seed(struct lmql *L, uint64_t seed) {
    if (L) L->params.seed = seed;
}

static void clear_error(struct lmql *L) {
    L->errmsg.len = 0;
    if (L->errmsg.data) L->errmsg.data[0] = 0;
    L->err_line = L->err_col = 0;
    L->err_status = LMQL_OK;
}

static lmql_status set_error(struct lmql *L, lmql_status st, const char *msg) {
    clear_error(L);
    /* No room for the message: the error is running out of memory. */
    L->err_status = lmql__buf_adds(&L->errmsg, msg) ? LMQL_ERR_NOMEM : st;
    return L->err_status;
}

const char *lmql_errmsg(const struct lmql *L) {
    if (!L) return "no lmql handle";
    if (!L->errmsg.len && L->err_status == LMQL_ERR_NOMEM) return "out of memory";
    return L->errmsg.data ? L->errmsg.data : "";
}
int lmql_error_line(const struct lmql *L) { return L ? L->err_line : 0; }
lmql_status lmql_error_status(const struct lmql *L) { return L ? L->err_status : LMQL_ERR_MISUSE; }
int lmql_error_col(const struct lmql *L) { return L ? L->err_col : 0; }

/* A query error at a position, shown as FILE:LINE:COL with the line and a
** caret, the same way the parser shows its diagnostics. */
static lmql_status query_error(struct lmql *L, const struct lmql_program *P, struct lmql_pos pos, const char *msg,
                               int excerpt) {
    clear_error(L);
    if (pos.line <= 0) return set_error(L, LMQL_ERR_QUERY, msg);
    /* Runtime errors keep to one line; query errors show the place. */
    struct lmql_diag d = {.file = P->file, .src = P->src, .src_len = P->len, .offset = pos.offset,
                          .line = pos.line, .col = pos.col, .msg = (char *)msg};
    size_t need = lmql__diag_render(&d, excerpt, NULL, 0);
    if (lmql__buf_reserve(&L->errmsg, need + 1)) return set_error(L, LMQL_ERR_NOMEM, "out of memory");
    lmql__diag_render(&d, excerpt, L->errmsg.data, need + 1);
    L->errmsg.len = need;
    while (L->errmsg.len && L->errmsg.data[L->errmsg.len - 1] == '\n') L->errmsg.data[--L->errmsg.len] = 0;
    L->err_line = pos.line;
    L->err_col = pos.col;
    L->err_status = LMQL_ERR_QUERY;
    return LMQL_ERR_QUERY;
}

static struct lmql_program *compile(struct lmql *L, const char *filename, const char *src, size_t len);

/* Compiling during which an allocation failed is out of memory, whatever
** the path made of it (see lmql_run). */
struct lmql_program *lmql_program_compile(struct lmql *L, const char *filename, const char *src, size_t len) {
    if (!L || (!src && len)) return NULL;
    unsigned long failed0 = lmql__alloc_failures();
    struct lmql_program *P = compile(L, filename, src, len);
    if (lmql__alloc_failures() != failed0) {
        lmql_program_free(P);
        set_error(L, LMQL_ERR_NOMEM, "out of memory");
        return NULL;
    }
    return P;
}

static struct lmql_program *compile(struct lmql *L, const char *filename, const char *src, size_t len) {
    clear_error(L);
    struct lmql_program *P = lmql__calloc(1, sizeof *P);
    if (!P) { set_error(L, LMQL_ERR_NOMEM, "out of memory"); return NULL; }
    lmql__arena_init(&P->arena);
    P->src = lmql__malloc(len + 1);
    P->file = lmql__strdup(filename ? filename : "<expr>");
    if (!P->src || !P->file) goto oom;
    if (len) memcpy(P->src, src, len);
    P->src[len] = 0;
    P->len = len;

    struct lmql_diags d;
    lmql__diags_init(&d);
    struct lmql_parse_opts opts = {.max_depth = L->params.max_depth};
    P->q = lmql__parse_query(&P->arena, P->src, len, P->file, &d, &opts);
    /* A diagnostic that could not be stored would leave a wrong account. */
    if (!P->q || d.oom) { lmql__diags_free(&d); goto oom; }
    if (d.n > 0) {
        char *all = lmql__diags_render_all(&d);
        if (!all) {
            lmql__diags_free(&d);
            goto oom;
        }
        set_error(L, LMQL_ERR_QUERY, all);
        size_t n = L->errmsg.len;
        while (n && L->errmsg.data[n - 1] == '\n') L->errmsg.data[--n] = 0;
        L->errmsg.len = n;
        L->err_line = d.items[0].line;
        L->err_col = d.items[0].col;
        free(all);
        lmql__diags_free(&d);
        lmql_program_free(P);
        return NULL;
    }
    lmql__diags_free(&d);
    /* Every where clause of the program, also in code that never runs:
    ** its errors are compile errors, as they are in LMQL. */
    struct lmql__err we;
    if (lmql__wheres_compile(P->q, &P->wheres, &we)) {
        if (we.status == LMQL_ERR_NOMEM) goto oom;
        query_error(L, P, we.pos, we.msg, 1);
        lmql_program_free(P);
        return NULL;
    }
    return P;
oom:
    set_error(L, LMQL_ERR_NOMEM, "out of memory");
    lmql_program_free(P);
    return NULL;
}

void lmql_program_free(struct lmql_program *P) {
    if (!P) return;
    lmql__wheres_free(P->wheres);
    lmql__arena_free(&P->arena);
    free(P->src);
    free(P->file);
    free(P);
}

/* ---------------------------------------------------------- arguments -- */

struct lmql_args *lmql_args_init(void) {
    struct lmql_args *A = lmql__calloc(1, sizeof *A);
    if (A && !(A->dict = lmql__val_dict())) { free(A); return NULL; }
    return A;
}

static lmql_status args_set(struct lmql_args *A, const char *name, struct lmql_val *v) {
    if (!A || !name || !v) { lmql__val_unref(v); return A && name ? LMQL_ERR_NOMEM : LMQL_ERR_MISUSE; }
    return lmql__dict_set(A->dict, lmql__val_cstr(name), v) ? LMQL_ERR_NOMEM : LMQL_OK;
}
lmql_status lmql_args_set_str(struct lmql_args *A, const char *name, const char *value) {
    return value ? args_set(A, name, lmql__val_cstr(value)) : LMQL_ERR_MISUSE;
}
lmql_status lmql_args_set_int(struct lmql_args *A, const char *name, int64_t value) {
    return args_set(A, name, lmql__val_int(value));
}
lmql_status lmql_args_set_float(struct lmql_args *A, const char *name, double value) {
    return args_set(A, name, lmql__val_float(value));
}
lmql_status lmql_args_set_json(struct lmql_args *A, const char *name, const char *json_text) {
    if (!A || !name || !json_text) return LMQL_ERR_MISUSE;
    struct lmql__err err = {0};
    unsigned long failed0 = lmql__alloc_failures();
    struct lmql_val *v = lmql__json_parse_doubles(json_text, strlen(json_text), &err);
    /* Out of memory, or text that is not JSON: an allocation failure tells. */
    if (!v) return lmql__alloc_failures() != failed0 ? LMQL_ERR_NOMEM : LMQL_ERR_QUERY;
    return args_set(A, name, v);
}
static void free_model_kv(struct lmql_args *A) {
    for (int i = 0; i < A->n_model_kv; i++) {
        free((char *)A->model_kv[i].key);     /* strings this file made */
        free((char *)A->model_kv[i].value);
    }
    free(A->model_kv);
    free(A->model);
    A->model_kv = NULL;
    A->model = NULL;
    A->n_model_kv = 0;
}

lmql_status lmql_args_set_model(struct lmql_args *A, const char *id, const char *const *keys,
                                const char *const *values, int n) {
    if (!A || !id || n < 0 || (n && (!keys || !values))) return LMQL_ERR_MISUSE;
    for (int i = 0; i < n; i++)
        if (!keys[i] || !values[i]) return LMQL_ERR_MISUSE;
    free_model_kv(A);
    A->model = lmql__strdup(id);
    A->model_kv = lmql__calloc((size_t)n + 1, sizeof *A->model_kv);
    if (!A->model || !A->model_kv) { free_model_kv(A); return LMQL_ERR_NOMEM; }
    for (int i = 0; i < n; i++) {
        A->model_kv[i].key = lmql__strdup(keys[i]);
        A->model_kv[i].value = lmql__strdup(values[i]);
        A->n_model_kv = i + 1;
        if (!A->model_kv[i].key || !A->model_kv[i].value) { free_model_kv(A); return LMQL_ERR_NOMEM; }
    }
    return LMQL_OK;
}

lmql_status lmql_args_set_option(struct lmql_args *A, const char *name, const char *json_text) {
    if (!A || !name || !json_text) return LMQL_ERR_MISUSE;
    struct lmql__err err = {0};
    unsigned long failed0 = lmql__alloc_failures();
    struct lmql_val *v = lmql__json_parse_doubles(json_text, strlen(json_text), &err);
    if (!v) return lmql__alloc_failures() != failed0 ? LMQL_ERR_NOMEM : LMQL_ERR_QUERY;
    if (!strcmp(name, "decoder")) {
        char *d = v->kind == LMQL_V_STR ? lmql__strdup(v->u.str.s) : NULL;
        lmql_status st = v->kind != LMQL_V_STR ? LMQL_ERR_QUERY : d ? LMQL_OK : LMQL_ERR_NOMEM;
        lmql__val_unref(v);
        if (st == LMQL_OK) { free(A->decoder); A->decoder = d; }
        return st;
    }
    if (!A->options && !(A->options = lmql__val_dict())) { lmql__val_unref(v); return LMQL_ERR_NOMEM; }
    return lmql__dict_set(A->options, lmql__val_cstr(name), v) ? LMQL_ERR_NOMEM : LMQL_OK;
}

void lmql_args_free(struct lmql_args *A) {
    if (!A) return;
    lmql__val_unref(A->dict);
    lmql__val_unref(A->options);
    free(A->decoder);
    free_model_kv(A);
    free(A);
}

/* ------------------------------------------------------------- models -- */

/* The vocabulary of the random model when the query names none: GPT-2's,
** as LMQL's (random_model.py: 50,257 tokens, EOS 50256), so that the same
** query and seed draw the same text. $LMQL_RANDOM_VOCAB picks another. */
static const char *default_random_vocab(void) {
    const char *env = getenv("LMQL_RANDOM_VOCAB");
    if (env && *env) return env;
    static const char *const candidates[] = {"build/vocab/ggml-vocab-gpt-2.gguf",
                                             "/usr/local/share/lmql/ggml-vocab-gpt-2.gguf"};
    for (size_t i = 0; i < sizeof candidates / sizeof *candidates; i++)
        if (access(candidates[i], R_OK) == 0) return candidates[i];
    return NULL;
}

static bool has_suffix(const char *s, const char *suf) {
    size_t n = strlen(s), k = strlen(suf);
    return n >= k && !strcmp(s + n - k, suf);
}

/* LMQL's own options of lmql.model(...) for a llama.cpp model, taken out
** of the backend's parameters: inprocess= (a local: or .gguf model runs in
** this process, so only True fits it; a llama.cpp: model with
** inprocess=True loads its file here instead of asking a server, as LMQL
** does) and silent= (a model's loading prints nothing here anyway). The
** cache key keeps them: LMQL loads a model anew when they differ.
** Returns the number of parameters left in out, -1 with err. */
static int lmql_options(const char *id, const struct lmql__kv *kv, int n_kv, struct lmql__kv *out, int *inprocess,
                        struct lmql__err *err) {
    int n = 0;
    *inprocess = -1;
    for (int i = 0; i < n_kv; i++) {
        bool is_in = !strcmp(kv[i].key, "inprocess");
        if (!is_in && strcmp(kv[i].key, "silent")) { out[n++] = kv[i]; continue; }
        const char *v = kv[i].value ? kv[i].value : "";
        int b = !strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")      ? 1
              : !strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0") ? 0 : -1;
        if (b < 0) return lmql__errf(err, "%s: %s must be True or False, not '%s'", id, kv[i].key, v);
        if (is_in) *inprocess = b;
    }
    return n;
}

static struct lmql__model *get_model(void *ud, const char *id, const struct lmql__kv *kv, int n_kv,
                                     struct lmql__err *err) {
    struct lmql *L = ud;
    struct lmql__buf key = {0};
    lmql__buf_adds(&key, id);
    for (int i = 0; i < n_kv; i++) lmql__buf_addf(&key, "\x1f%s=%s", kv[i].key, kv[i].value);
    if (!key.data) { lmql__errf(err, "out of memory"); return NULL; }
    for (int i = 0; i < L->n_models; i++)
        if (!strcmp(L->models[i].key, key.data)) {
            lmql__buf_free(&key);
            lmql__random_session_seed(L->models[i].model, L->params.seed);
            return L->models[i].model;
        }

    struct lmql__model *m = NULL;
    bool local = !strncmp(id, "local:llama.cpp:", 16), remote = !strncmp(id, "llama.cpp:", 10);
    bool file = !local && !remote && (has_suffix(id, ".gguf") || has_suffix(id, ".bin"));
    struct lmql__kv *pk = NULL;
    int inprocess = -1, n_pk = 0;
    if (local || remote || file) {
        pk = lmql__malloc(((size_t)n_kv + 1) * sizeof *pk);
        n_pk = pk ? lmql_options(id, kv, n_kv, pk, &inprocess, err) : lmql__errf(err, "out of memory");
        if (n_pk < 0) { free(pk); lmql__buf_free(&key); return NULL; }
        if (inprocess == 0 && !remote) {
            free(pk);
            lmql__buf_free(&key);
            lmql__errf(err, "%s: inprocess=False, but %s runs in this process (llama.cpp:PATH uses a model server)",
                       id, local ? "a local: model" : "a model file");
            return NULL;
        }
    }
    if (local) {
        m = lmql__llama_open(id + 16, pk, n_pk, err);
    } else if (!strcmp(id, "random")) {
        m = lmql__random_open(kv, n_kv, default_random_vocab(), err);
        lmql__random_session_seed(m, L->params.seed);
    } else if (remote) {
        m = inprocess == 1 ? lmql__llama_open(id + 10, pk, n_pk, err) : lmql__lmtp_open(id, pk, n_pk, err);
    } else if (file) {
        m = lmql__llama_open(id, pk, n_pk, err);   /* a .bin: says what an old GGML file needs */
    } else {
        lmql__errf(err, "unknown model '%s' (use local:llama.cpp:PATH.gguf, llama.cpp:PATH.gguf, random, "
                   "or a path ending in .gguf)", id);
    }
    free(pk);
    if (!m) { lmql__buf_free(&key); return NULL; }
    struct cached_model *more = lmql__realloc(L->models, ((size_t)L->n_models + 1) * sizeof *more);
    if (!more) { lmql__buf_free(&key); lmql__model_free(m); lmql__errf(err, "out of memory"); return NULL; }
    L->models = more;
    L->models[L->n_models].key = key.data;
    L->models[L->n_models].model = m;
    L->n_models++;
    return m;
}

/* ----------------------------------------------------- host functions -- */

struct host_fn {
    lmql_host_fn fn;
    void *user_data;
    char name[64];
};

/* A host's message that names a Python exception class first
** ("ValueError: bad value", as the Python package writes them). */
static bool python_exception(const char *m) {
    size_t n = strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.");
    if (n == 0 || m[n] != ':' || m[n + 1] != ' ' || !(m[0] >= 'A' && m[0] <= 'Z')) return false;
    return (n >= 5 && !strncmp(m + n - 5, "Error", 5)) || (n >= 9 && !strncmp(m + n - 9, "Exception", 9));
}

/* Calls from queries arrive here: values to JSON, the host's JSON back. */
static struct lmql_val *call_host(void *ud, int argc, struct lmql_val **argv, const char **names, struct lmql__err *err) {
    struct host_fn *h = ud;
    for (int i = 0; i < argc; i++)
        if (names[i]) { lmql__errf(err, "%s() takes positional arguments only", h->name); return NULL; }
    struct lmql__buf *bufs = lmql__calloc((size_t)argc + 1, sizeof *bufs);
    const char **json = lmql__calloc((size_t)argc + 1, sizeof *json);
    struct lmql_val *out = NULL;
    if (!bufs || !json) { lmql__errf(err, "out of memory"); goto done; }
    for (int i = 0; i < argc; i++) {
        if (lmql__val_json_into(&bufs[i], argv[i])) {   /* a cycle, too deep, or out of memory */
            const char *why = lmql__val_error();
            lmql__errf(err, "%s(): argument %d cannot be passed as JSON: %s", h->name, i + 1, why ? why : "out of memory");
            goto done;
        }
        json[i] = bufs[i].data;
    }
    char *res = NULL;
    lmql_status st = h->fn(h->user_data, argc, json, &res);
    if (st != LMQL_OK && res && python_exception(res))   /* "ValueError: ...": query code can catch it */
        lmql__errf(err, "%s", res);
    else if (st != LMQL_OK)
        lmql__errf(err, "%s(): %s", h->name, res ? res : "the host function failed");
    else if (!res) out = &lmql__none;
    else out = lmql__json_parse(res, strlen(res), err);
    if (st == LMQL_OK && !out) {
        char why[sizeof err->msg];
        snprintf(why, sizeof why, "%s", err->msg);
        lmql__errf(err, "%s() returned bad JSON: %s", h->name, why);
    }
    free(res);
done:
    for (int i = 0; bufs && i < argc; i++) lmql__buf_free(&bufs[i]);
    free(bufs);
    free(json);
    return out;
}

lmql_status lmql_register_function(struct lmql *L, const char *name, lmql_host_fn fn, void *user_data) {
    if (!L || !name || !fn || !*name || strlen(name) >= sizeof((struct host_fn *)0)->name) return LMQL_ERR_MISUSE;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (p > name && *p >= '0' && *p <= '9')))
            return set_error(L, LMQL_ERR_MISUSE, "a host function name must be an identifier");
    if (!L->functions && !(L->functions = lmql__val_dict())) return LMQL_ERR_NOMEM;
    struct host_fn **more = lmql__realloc(L->host_fns, ((size_t)L->n_host_fns + 1) * sizeof *more);
    if (!more) return LMQL_ERR_NOMEM;
    L->host_fns = more;
    struct host_fn *h = lmql__calloc(1, sizeof *h);
    if (!h) return LMQL_ERR_NOMEM;
    L->host_fns[L->n_host_fns++] = h;
    h->fn = fn;
    h->user_data = user_data;
    snprintf(h->name, sizeof h->name, "%s", name);
    struct lmql_val *f = lmql__val_builtin(h->name, call_host, h, NULL);
    if (!f) return LMQL_ERR_NOMEM;
    return lmql__dict_set(L->functions, lmql__val_cstr(name), f) ? LMQL_ERR_NOMEM : LMQL_OK;
}

/* ------------------------------------------------------------ results -- */

static int seq_object_json(struct lmql__buf *b, const struct lmql__seq_result *s, const struct lmql__run_out *o) {
    int rc = lmql__buf_adds(b, "{\"prompt\": ");
    rc = rc || lmql__buf_json_str(b, s->prompt.data ? s->prompt.data : "", s->prompt.len);
    rc = rc || lmql__buf_adds(b, ", \"variables\": ") || lmql__val_json_into(b, s->vars);
    rc = rc || lmql__buf_adds(b, ", \"distribution_variable\": ");
    rc = rc || (s->dist_var ? lmql__buf_json_str(b, s->dist_var, strlen(s->dist_var)) : lmql__buf_adds(b, "null"));
    rc = rc || lmql__buf_adds(b, ", \"distribution_values\": ");
    rc = rc || (s->dist_values ? lmql__val_json_into(b, s->dist_values) : lmql__buf_adds(b, "null"));
    rc = rc || lmql__buf_adds(b, "}");
    return rc;
}

static struct lmql_result *make_result(const struct lmql__run_out *o) {
    struct lmql_result *R = lmql__calloc(1, sizeof *R);
    if (!R) return NULL;
    struct lmql__buf b = {0};
    int rc = 0;
    if (o->many) rc = lmql__buf_adds(&b, "[");
    for (int i = 0; i < o->n_seqs && rc == 0; i++) {
        if (i) rc = lmql__buf_adds(&b, ", ");
        if (o->has_return)
            rc = rc || lmql__val_json_into(&b, o->seqs[i].ret ? o->seqs[i].ret : &lmql__none);
        else
            rc = rc || seq_object_json(&b, &o->seqs[i], o);
    }
    if (o->many) rc = rc || lmql__buf_adds(&b, "]");
    R->json = b.data;
    R->seqs = lmql__calloc(o->n_seqs > 0 ? (size_t)o->n_seqs : 1, sizeof *R->seqs);
    if (rc || !R->json || !R->seqs) { lmql_result_free(R); return NULL; }
    R->n = o->n_seqs;
    for (int i = 0; i < o->n_seqs; i++) {
        const struct lmql__seq_result *s = &o->seqs[i];
        struct lmql_seq_view *v = &R->seqs[i];
        v->prompt = lmql__strdup(s->prompt.data ? s->prompt.data : "");
        v->n_vars = (int)s->vars->u.dict.len;
        v->names = lmql__calloc((size_t)v->n_vars + 1, sizeof *v->names);
        v->json = lmql__calloc((size_t)v->n_vars + 1, sizeof *v->json);
        if (!v->prompt || !v->names || !v->json) { lmql_result_free(R); return NULL; }
        for (int k = 0; k < v->n_vars; k++) {
            struct lmql__buf j = {0};
            v->names[k] = lmql__strdup(s->vars->u.dict.keys[k]->u.str.s);
            lmql__val_json_into(&j, s->vars->u.dict.vals[k]);
            v->json[k] = j.data;
            if (!v->names[k] || !v->json[k]) { lmql_result_free(R); return NULL; }
        }
    }
    return R;
}

lmql_status lmql_run(struct lmql *L, struct lmql_program *P, const struct lmql_args *args, struct lmql_result **out) {
    if (!out) return LMQL_ERR_MISUSE;
    *out = NULL;
    if (!L || !P) return L ? set_error(L, LMQL_ERR_MISUSE, "no program") : LMQL_ERR_MISUSE;
    clear_error(L);
    struct lmql__host host = {.get_model = get_model, .ud = L, .params = &L->params, .functions = L->functions};
    if (args && args->model) {
        struct lmql__err me = {0};
        host.model = get_model(L, args->model, args->model_kv, args->n_model_kv, &me);
        if (!host.model) return set_error(L, LMQL_ERR_MODEL, me.msg);
    }
    if (args) {
        host.decoder = args->decoder;
        host.decoder_kwargs = args->options;
    }
    struct lmql__run_out o;
    struct lmql__err e;
    double t0 = lmql__now();
    struct lmql__model_stats before[64];
    int n_before = L->n_models < 64 ? L->n_models : 64;
    for (int i = 0; i < n_before; i++) before[i] = L->models[i].model->stats;

    unsigned long failed0 = lmql__alloc_failures();
    int rc = lmql__interp_run(&host, P->q, args ? args->dict : NULL, &o, &e);

    memset(&L->stats, 0, sizeof L->stats);
    for (int i = 0; i < L->n_models; i++) {
        const struct lmql__model_stats *s = &L->models[i].model->stats;
        struct lmql__model_stats z = {0};
        const struct lmql__model_stats *b = i < n_before ? &before[i] : &z;
        L->stats.n_decoded += s->n_decoded - b->n_decoded;
        L->stats.n_reused += s->n_reused - b->n_reused;
        L->stats.t_eval += s->t_eval - b->t_eval;
        L->stats.n_forward += s->n_calls - b->n_calls;
    }
    L->stats.n_generated = o.n_generated;
    L->stats.t_total = lmql__now() - t0;

    lmql_status st = LMQL_OK;
    if (rc) {
        st = e.status ? e.status : LMQL_ERR_RUNTIME;
        if (st == LMQL_ERR_QUERY || (st == LMQL_ERR_RUNTIME && e.pos.line > 0)) {
            lmql_status shown = query_error(L, P, e.pos, e.msg, st == LMQL_ERR_QUERY);
            if (shown == LMQL_ERR_NOMEM) st = shown;
        } else {
            set_error(L, st, e.msg);
        }
    } else if (!(*out = make_result(&o))) {
        st = set_error(L, LMQL_ERR_NOMEM, "out of memory");
    }
    lmql__run_out_free(&o);
    L->err_status = st;
    /* An allocation failed during the run: whatever the path made of it (an
    ** error of another kind, a result without a part), the run is out of memory. */
    if (lmql__alloc_failures() != failed0) {
        lmql_result_free(*out);
        *out = NULL;
        st = set_error(L, LMQL_ERR_NOMEM, "out of memory");
    }
    return st;
}

const char *lmql_result_json(const struct lmql_result *R) { return R ? R->json : NULL; }
int lmql_result_count(const struct lmql_result *R) { return R ? R->n : 0; }
const char *lmql_result_prompt(const struct lmql_result *R, int i) {
    return R && i >= 0 && i < R->n ? R->seqs[i].prompt : NULL;
}
int lmql_result_variable_count(const struct lmql_result *R, int i) {
    return R && i >= 0 && i < R->n ? R->seqs[i].n_vars : 0;
}
const char *lmql_result_variable_name(const struct lmql_result *R, int i, int k) {
    return R && i >= 0 && i < R->n && k >= 0 && k < R->seqs[i].n_vars ? R->seqs[i].names[k] : NULL;
}
const char *lmql_result_variable_json(const struct lmql_result *R, int i, int k) {
    return R && i >= 0 && i < R->n && k >= 0 && k < R->seqs[i].n_vars ? R->seqs[i].json[k] : NULL;
}

void lmql_result_free(struct lmql_result *R) {
    if (!R) return;
    for (int i = 0; R->seqs && i < R->n; i++) {
        for (int k = 0; k < R->seqs[i].n_vars; k++) {
            if (R->seqs[i].names) free(R->seqs[i].names[k]);
            if (R->seqs[i].json) free(R->seqs[i].json[k]);
        }
        free(R->seqs[i].names);
        free(R->seqs[i].json);
        free(R->seqs[i].prompt);
    }
    free(R->seqs);
    free(R->json);
    free(R);
}

void lmql_last_stats(const struct lmql *L, struct lmql_stats *out) {
    if (!out) return;
    if (L) *out = L->stats;
    else memset(out, 0, sizeof *out);
}
