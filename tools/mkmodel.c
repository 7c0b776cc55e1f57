/*
 * lmql-mkmodel: write a llama-architecture GGUF model with deterministic
 * pseudo-random weights, taking the tokenizer from a vocab-only GGUF file
 * (for example llama.cpp's ggml-vocab-*.gguf).  The models are meant for
 * tests and benchmarks: they load and run like real models, their greedy
 * output is varied, and the same options always give the same bytes.
 *
 *   lmql-mkmodel --vocab VOCAB.gguf --out OUT.gguf [--preset tiny|bench]
 *                [--n-embd N] [--n-layer N] [--n-head N] [--n-head-kv N]
 *                [--n-ff N] [--n-ctx N] [--type f32|f16|q8_0|q4_0]
 *                [--embd-type auto|f32|f16|q8_0|q4_0] [--seed N]
 *                [--chat-template llama3|chatml|TEXT]
 *
 * The file is written as OUT.tmp and renamed to OUT when complete.  Only
 * the GGUF header is built in memory; tensor data is generated, converted
 * and written a chunk of rows at a time.  Little-endian hosts only (GGUF
 * is little-endian and the data is written in host order).
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ggml.h"
#include "gguf.h"

#define PROG "lmql-mkmodel"

/* GGUF file types (llama_ftype values) recorded as general.file_type. */
enum { FTYPE_ALL_F32 = 0, FTYPE_MOSTLY_F16 = 1, FTYPE_MOSTLY_Q4_0 = 2, FTYPE_MOSTLY_Q8_0 = 7 };

#define EMBD_AUTO (-1)
/* With --embd-type auto, token_embd.weight stays in --type unless it would
 * be an F32 tensor above this many elements; then it is stored as F16. */
#define EMBD_AUTO_F32_MAX (4 * 1024 * 1024)
/* Standard deviation of the block weights, times sqrt(fan_in). */
#define WEIGHT_GAIN 2.0f
/* Floats generated per chunk while streaming a tensor. */
#define CHUNK_FLOATS (1 << 20)

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* ---------------------------------------------------------------------- */
/* Cleanup of the temporary output file on errors and signals.             */

static char *g_tmp_path;                     /* OUT.tmp while it may exist */
static volatile sig_atomic_t g_tmp_live;

static void remove_tmp(void)
{
    if (g_tmp_live && g_tmp_path) {
        g_tmp_live = 0;
        unlink(g_tmp_path);
    }
}

static void on_signal(int sig)
{
    /* async-signal-safe: unlink, then die of the same signal (SA_RESETHAND) */
    if (g_tmp_live && g_tmp_path)
        unlink(g_tmp_path);
    raise(sig);
}

static void install_signal_handlers(void)
{
    static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGXFSZ };
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESETHAND;
        sigemptyset(&sa.sa_mask);
        struct sigaction old;
        /* keep signals the caller chose to ignore ignored */
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
            continue;
        sigaction(sigs[i], &sa, NULL);
    }
}

static void die(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs(PROG ": error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    remove_tmp();
    exit(1);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        die("out of memory (allocating %zu bytes)", n);
    return p;
}

/* ---------------------------------------------------------------------- */
/* Deterministic pseudo-random numbers: splitmix64.                        */

static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

typedef struct { uint64_t s; } rng_t;

static uint64_t rng_next(rng_t *r)
{
    r->s += UINT64_C(0x9e3779b97f4a7c15);
    return mix64(r->s);
}

/* Stream seeded from the user seed and the tensor name (FNV-1a). */
static rng_t rng_for(uint64_t seed, const char *name)
{
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= UINT64_C(0x100000001b3);
    }
    rng_t r = { mix64(seed ^ mix64(h)) };
    return r;
}

/* n floats uniform in [-a, a): each 64-bit draw gives two 24-bit values,
 * converted exactly, so the result is the same on every IEEE-754 host. */
static void rng_fill(rng_t *r, float *dst, size_t n, float a)
{
    const float k = a / 8388608.0f; /* 2^23 */
    size_t i = 0;
    for (; i + 2 <= n; i += 2) {
        uint64_t x = rng_next(r);
        dst[i]     = (float)((int32_t)(uint32_t)(x >> 40) - 8388608) * k;
        dst[i + 1] = (float)((int32_t)(uint32_t)((x >> 8) & 0xffffff) - 8388608) * k;
    }
    if (i < n) {
        uint64_t x = rng_next(r);
        dst[i] = (float)((int32_t)(uint32_t)(x >> 40) - 8388608) * k;
    }
}

/* ---------------------------------------------------------------------- */
/* Options.                                                                */

typedef struct {
    const char *vocab, *out, *preset;
    int64_t n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx;
    int type;      /* enum ggml_type */
    int embd_type; /* enum ggml_type or EMBD_AUTO */
    uint64_t seed;
    bool n_head_kv_set, embd_type_set;
    const char *chat_template;  /* tokenizer.chat_template, or NULL */
    int64_t favor;              /* --favor: the token greedy decoding always picks, or -1 */
} opts_t;

/* The Jinja chat templates of real models, for --chat-template NAME: test
** models carry the text a real GGUF does, which llama.cpp recognizes. */
static const struct { const char *name, *jinja; } TEMPLATES[] = {
    {"llama3", /* Meta-Llama-3-8B-Instruct */
     "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
     "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
     "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
     "{{ content }}{% endfor %}{% if add_generation_prompt %}"
     "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"},
    {"chatml",
     "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
     "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"},
};

static const struct { const char *name; int type; int ftype; } TYPES[] = {
    { "f32",  GGML_TYPE_F32,  FTYPE_ALL_F32 },
    { "f16",  GGML_TYPE_F16,  FTYPE_MOSTLY_F16 },
    { "q8_0", GGML_TYPE_Q8_0, FTYPE_MOSTLY_Q8_0 },
    { "q4_0", GGML_TYPE_Q4_0, FTYPE_MOSTLY_Q4_0 },
};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static const char *type_str(int type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (TYPES[i].type == type)
            return TYPES[i].name;
    return "?";
}

static int type_ftype(int type)
{
    for (size_t i = 0; i < N_TYPES; i++)
        if (TYPES[i].type == type)
            return TYPES[i].ftype;
    return FTYPE_ALL_F32;
}

static const char USAGE[] =
    "usage: " PROG " --vocab VOCAB.gguf --out OUT.gguf [options]\n"
    "\n"
    "Writes a llama-architecture GGUF model with deterministic pseudo-random\n"
    "weights and the tokenizer (all tokenizer.* keys) of VOCAB.gguf.\n"
    "\n"
    "options:\n"
    "  --vocab FILE        GGUF file to take the tokenizer from (required)\n"
    "  --out FILE          output model (required; written as FILE.tmp, then renamed)\n"
    "  --preset NAME       tiny (default): n_embd 64, n_layer 2, n_head 4, n_ff 128, f32\n"
    "                      bench: n_embd 2048, n_layer 14, n_head 16, n_ff 5632, q4_0\n"
    "  --n-embd N          embedding width (multiple of --n-head; of 32 for q4_0/q8_0)\n"
    "  --n-layer N         number of transformer blocks\n"
    "  --n-head N          attention heads\n"
    "  --n-head-kv N       key/value heads (divides --n-head; default --n-head)\n"
    "  --n-ff N            feed-forward width\n"
    "  --n-ctx N           training context length recorded in the model (default 4096)\n"
    "  --type T            weight type of the matrices: f32, f16, q8_0, q4_0\n"
    "  --embd-type T       type of token_embd.weight: auto, f32, f16, q8_0, q4_0\n"
    "                      (auto: as --type, but f16 rather than an f32 table of\n"
    "                      more than 4M values; default: --type if given, else\n"
    "                      the preset's: auto for tiny, q4_0 for bench)\n"
    "  --seed N            random seed (default 1)\n"
    "  --chat-template T   store a chat template: llama3 or chatml (the models'\n"
    "                      Jinja text), or T itself\n"
    "  --favor ID          a model that predicts token ID after any text (an\n"
    "                      untied output matrix; tests of end-of-turn tokens)\n"
    "  -h, --help          show this help\n";

static const char VALID_OPTIONS[] =
    "--vocab, --out, --preset, --n-embd, --n-layer, --n-head, --n-head-kv, "
    "--n-ff, --n-ctx, --type, --embd-type, --seed, --chat-template, --favor, --help";

static void apply_preset(opts_t *o, const char *name)
{
    if (strcmp(name, "tiny") == 0) {
        o->n_embd = 64; o->n_layer = 2; o->n_head = 4; o->n_ff = 128;
        o->type = GGML_TYPE_F32; o->embd_type = EMBD_AUTO;
    } else if (strcmp(name, "bench") == 0) {
        o->n_embd = 2048; o->n_layer = 14; o->n_head = 16; o->n_ff = 5632;
        o->type = GGML_TYPE_Q4_0; o->embd_type = GGML_TYPE_Q4_0;
    } else {
        die("unknown preset '%s' (valid presets: tiny, bench)", name);
    }
    o->n_ctx = 4096;
    o->preset = name;
}

static int64_t parse_int(const char *opt, const char *s, int64_t lo, int64_t hi)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die("invalid value '%s' for %s (expected an integer in %" PRId64 "..%" PRId64 ")",
            s, opt, lo, hi);
    return v;
}

static uint64_t parse_u64(const char *opt, const char *s)
{
    char *end;
    errno = 0;
    if (*s < '0' || *s > '9')
        die("invalid value '%s' for %s (expected a non-negative integer)", s, opt);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end)
        die("invalid value '%s' for %s (expected a non-negative integer)", s, opt);
    return v;
}

static int parse_type(const char *opt, const char *s, bool allow_auto)
{
    if (allow_auto && strcmp(s, "auto") == 0)
        return EMBD_AUTO;
    for (size_t i = 0; i < N_TYPES; i++)
        if (strcmp(s, TYPES[i].name) == 0)
            return TYPES[i].type;
    die("invalid value '%s' for %s (expected %sf32, f16, q8_0 or q4_0)", s, opt,
        allow_auto ? "auto, " : "");
}

/* Splits argv[*i] into an option name and its value ("--x v" or "--x=v"). */
static const char *opt_value(int argc, char **argv, int *i, const char *name)
{
    const char *arg = argv[*i];
    size_t n = strlen(name);
    if (arg[n] == '=')
        return arg + n + 1;
    if (*i + 1 >= argc)
        die("option %s needs a value", name);
    return argv[++*i];
}

static bool opt_is(const char *arg, const char *name)
{
    size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static void parse_args(opts_t *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->favor = -1;
    o->seed = 1;

    /* pass 1: help and preset, so that other options override the preset */
    const char *preset = "tiny";
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        }
        if (opt_is(argv[i], "--preset"))
            preset = opt_value(argc, argv, &i, "--preset");
        else if (argv[i][0] == '-' && argv[i][1] == '-' && !strchr(argv[i], '=') && i + 1 < argc)
            i++; /* skip the value of other options */
    }
    apply_preset(o, preset);

    bool type_set = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (opt_is(a, "--preset"))           (void)opt_value(argc, argv, &i, "--preset");
        else if (opt_is(a, "--vocab"))       o->vocab = opt_value(argc, argv, &i, "--vocab");
        else if (opt_is(a, "--out"))         o->out = opt_value(argc, argv, &i, "--out");
        else if (opt_is(a, "--n-embd"))      o->n_embd = parse_int("--n-embd", opt_value(argc, argv, &i, "--n-embd"), 1, 65536);
        else if (opt_is(a, "--n-layer"))     o->n_layer = parse_int("--n-layer", opt_value(argc, argv, &i, "--n-layer"), 1, 1024);
        else if (opt_is(a, "--n-head-kv"))   { o->n_head_kv = parse_int("--n-head-kv", opt_value(argc, argv, &i, "--n-head-kv"), 1, 4096); o->n_head_kv_set = true; }
        else if (opt_is(a, "--n-head"))      o->n_head = parse_int("--n-head", opt_value(argc, argv, &i, "--n-head"), 1, 4096);
        else if (opt_is(a, "--n-ff"))        o->n_ff = parse_int("--n-ff", opt_value(argc, argv, &i, "--n-ff"), 1, 1 << 20);
        else if (opt_is(a, "--n-ctx"))       o->n_ctx = parse_int("--n-ctx", opt_value(argc, argv, &i, "--n-ctx"), 1, 1 << 24);
        else if (opt_is(a, "--type"))        { o->type = parse_type("--type", opt_value(argc, argv, &i, "--type"), false); type_set = true; }
        else if (opt_is(a, "--embd-type"))   { o->embd_type = parse_type("--embd-type", opt_value(argc, argv, &i, "--embd-type"), true); o->embd_type_set = true; }
        else if (opt_is(a, "--seed"))        o->seed = parse_u64("--seed", opt_value(argc, argv, &i, "--seed"));
        else if (opt_is(a, "--favor"))       o->favor = parse_int("--favor", opt_value(argc, argv, &i, "--favor"), 0, INT32_MAX);
        else if (opt_is(a, "--chat-template")) {
            o->chat_template = opt_value(argc, argv, &i, "--chat-template");
            for (size_t k = 0; k < sizeof TEMPLATES / sizeof *TEMPLATES; k++)
                if (!strcmp(o->chat_template, TEMPLATES[k].name)) o->chat_template = TEMPLATES[k].jinja;
        }
        else if (a[0] == '-')
            die("unknown option '%s'\nvalid options: %s", a, VALID_OPTIONS);
        else
            die("unexpected argument '%s' (options: %s)", a, VALID_OPTIONS);
    }
    if (type_set && !o->embd_type_set)
        o->embd_type = o->type;
    if (!o->n_head_kv_set)
        o->n_head_kv = o->n_head;

    if (!o->vocab)
        die("missing --vocab FILE (the GGUF file to take the tokenizer from; see --help)");
    if (!o->out)
        die("missing --out FILE (the model to write; see --help)");
    struct stat st;
    if (stat(o->out, &st) == 0 && S_ISDIR(st.st_mode))
        die("output '%s' is a directory", o->out);
    if (o->n_embd % o->n_head)
        die("--n-embd %" PRId64 " is not a multiple of --n-head %" PRId64, o->n_embd, o->n_head);
    if ((o->n_embd / o->n_head) % 2)
        die("head size %" PRId64 " (--n-embd / --n-head) must be even for rotary embeddings",
            o->n_embd / o->n_head);
    if (o->n_head_kv > o->n_head || o->n_head % o->n_head_kv)
        die("--n-head-kv %" PRId64 " must divide --n-head %" PRId64, o->n_head_kv, o->n_head);
    int types[2] = { o->type, o->embd_type };
    for (int k = 0; k < 2; k++) {
        if (types[k] == EMBD_AUTO)
            continue;
        int64_t blk = ggml_blck_size((enum ggml_type)types[k]);
        if (o->n_embd % blk || (k == 0 && o->n_ff % blk))
            die("type %s needs --n-embd%s to be multiples of %" PRId64
                " (got n_embd %" PRId64 ", n_ff %" PRId64 ")",
                type_str(types[k]), k == 0 ? " and --n-ff" : "", blk, o->n_embd, o->n_ff);
    }
}

/* ---------------------------------------------------------------------- */
/* Tokenizer metadata.                                                     */

static void copy_kv(struct gguf_context *dst, const struct gguf_context *src, int64_t id)
{
    const char *key = gguf_get_key(src, id);
    enum gguf_type t = gguf_get_kv_type(src, id);
    switch (t) {
    case GGUF_TYPE_UINT8:   gguf_set_val_u8(dst, key, gguf_get_val_u8(src, id)); break;
    case GGUF_TYPE_INT8:    gguf_set_val_i8(dst, key, gguf_get_val_i8(src, id)); break;
    case GGUF_TYPE_UINT16:  gguf_set_val_u16(dst, key, gguf_get_val_u16(src, id)); break;
    case GGUF_TYPE_INT16:   gguf_set_val_i16(dst, key, gguf_get_val_i16(src, id)); break;
    case GGUF_TYPE_UINT32:  gguf_set_val_u32(dst, key, gguf_get_val_u32(src, id)); break;
    case GGUF_TYPE_INT32:   gguf_set_val_i32(dst, key, gguf_get_val_i32(src, id)); break;
    case GGUF_TYPE_FLOAT32: gguf_set_val_f32(dst, key, gguf_get_val_f32(src, id)); break;
    case GGUF_TYPE_BOOL:    gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id)); break;
    case GGUF_TYPE_STRING:  gguf_set_val_str(dst, key, gguf_get_val_str(src, id)); break;
    case GGUF_TYPE_UINT64:  gguf_set_val_u64(dst, key, gguf_get_val_u64(src, id)); break;
    case GGUF_TYPE_INT64:   gguf_set_val_i64(dst, key, gguf_get_val_i64(src, id)); break;
    case GGUF_TYPE_FLOAT64: gguf_set_val_f64(dst, key, gguf_get_val_f64(src, id)); break;
    case GGUF_TYPE_ARRAY: {
        enum gguf_type at = gguf_get_arr_type(src, id);
        size_t n = gguf_get_arr_n(src, id);
        if (at == GGUF_TYPE_STRING) {
            const char **v = xmalloc(n * sizeof *v);
            for (size_t i = 0; i < n; i++)
                v[i] = gguf_get_arr_str(src, id, i);
            gguf_set_arr_str(dst, key, v, n);
            free(v);
        } else if (at == GGUF_TYPE_ARRAY) {
            fprintf(stderr, PROG ": warning: skipping nested array '%s'\n", key);
        } else {
            gguf_set_arr_data(dst, key, at, gguf_get_arr_data(src, id), n);
        }
        break;
    }
    default:
        fprintf(stderr, PROG ": warning: skipping '%s' of unknown type %d\n", key, (int)t);
        break;
    }
}

/* Opens the vocab file, copies its tokenizer.* keys into dst and returns
 * the vocabulary size. */
static int64_t copy_tokenizer(struct gguf_context *dst, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        die("cannot open vocab file '%s': %s", path, strerror(errno));
    char magic[4] = { 0 };
    size_t got = fread(magic, 1, 4, f);
    fclose(f);
    if (got != 4 || memcmp(magic, "GGUF", 4) != 0)
        die("vocab file '%s' is not a GGUF file (bad magic)", path);

    struct gguf_init_params ip = { .no_alloc = true, .ctx = NULL };
    struct gguf_context *src = gguf_init_from_file(path, ip);
    if (!src)
        die("cannot read vocab file '%s': not a valid GGUF file", path);

    int64_t tok = gguf_find_key(src, "tokenizer.ggml.tokens");
    if (tok < 0 || gguf_get_kv_type(src, tok) != GGUF_TYPE_ARRAY ||
        gguf_get_arr_type(src, tok) != GGUF_TYPE_STRING || gguf_get_arr_n(src, tok) == 0) {
        gguf_free(src);
        die("vocab file '%s' has no tokenizer (missing tokenizer.ggml.tokens)", path);
    }
    if (gguf_find_key(src, "tokenizer.ggml.model") < 0) {
        gguf_free(src);
        die("vocab file '%s' has no tokenizer.ggml.model", path);
    }
    int64_t n_vocab = (int64_t)gguf_get_arr_n(src, tok);
    if (n_vocab > INT32_MAX) {
        gguf_free(src);
        die("vocab file '%s': vocabulary too large (%" PRId64 " tokens)", path, n_vocab);
    }

    int64_t n_kv = gguf_get_n_kv(src);
    for (int64_t i = 0; i < n_kv; i++)
        if (strncmp(gguf_get_key(src, i), "tokenizer.", 10) == 0)
            copy_kv(dst, src, i);
    gguf_free(src);
    return n_vocab;
}

/* ---------------------------------------------------------------------- */
/* Tensor plan.                                                            */

typedef struct {
    char name[64];
    int type;          /* enum ggml_type */
    int64_t ne0, ne1;  /* ne1 == 1 for vectors */
    bool ones;         /* norm weight: all 1.0 */
} tinfo_t;

static void add_tensor(tinfo_t *t, size_t *n, const char *name, int type,
                       int64_t ne0, int64_t ne1, bool ones)
{
    tinfo_t *x = &t[(*n)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->type = type;
    x->ne0 = ne0;
    x->ne1 = ne1;
    x->ones = ones;
}

static size_t plan_tensors(tinfo_t *t, const opts_t *o, int64_t n_vocab, int embd_type)
{
    size_t n = 0;
    const int64_t E = o->n_embd, F = o->n_ff;
    const int64_t kv = E / o->n_head * o->n_head_kv;
    char name[64];
    add_tensor(t, &n, "token_embd.weight", embd_type, E, n_vocab, false);
    for (int64_t l = 0; l < o->n_layer; l++) {
        static const struct { const char *suffix; int kind; } B[] = {
            { "attn_norm", 0 }, { "attn_q", 1 }, { "attn_k", 2 }, { "attn_v", 2 },
            { "attn_output", 1 }, { "ffn_norm", 0 }, { "ffn_gate", 3 }, { "ffn_up", 3 },
            { "ffn_down", 4 },
        };
        for (size_t b = 0; b < sizeof B / sizeof B[0]; b++) {
            snprintf(name, sizeof name, "blk.%" PRId64 ".%s.weight", l, B[b].suffix);
            switch (B[b].kind) {
            case 0: add_tensor(t, &n, name, GGML_TYPE_F32, E, 1, true); break;
            case 1: add_tensor(t, &n, name, o->type, E, E, false); break;
            case 2: add_tensor(t, &n, name, o->type, E, kv, false); break;
            case 3: add_tensor(t, &n, name, o->type, E, F, false); break;
            default: add_tensor(t, &n, name, o->type, F, E, false); break;
            }
        }
    }
    add_tensor(t, &n, "output_norm.weight", GGML_TYPE_F32, E, 1, true);
    if (o->favor >= 0) {
        if (o->favor >= n_vocab)
            die("--favor %" PRId64 " is not a token of the vocabulary (%" PRId64 " tokens)", o->favor, n_vocab);
        add_tensor(t, &n, "output.weight", embd_type, E, n_vocab, false);
    }
    return n;
}

/* ---------------------------------------------------------------------- */
/* Output.                                                                 */

typedef struct {
    FILE *f;
    const char *path;        /* file being written (for errors) */
    const char *label;       /* name shown in progress */
    uint64_t pos;            /* bytes written so far */
    uint64_t total;          /* expected file size */
    bool progress;
    int last_pct;
    double t0;
} out_t;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void out_write(out_t *w, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, w->f) != n)
        die("cannot write '%s': %s", w->path, strerror(errno));
    w->pos += n;
    if (w->progress && w->total) {
        int pct = (int)(w->pos * 100 / w->total);
        if (pct != w->last_pct) {
            w->last_pct = pct;
            fprintf(stderr, "\r" PROG ": writing %s: %3d%% (%.1fs)", w->label, pct, now_s() - w->t0);
        }
    }
}

static void out_pad_to(out_t *w, uint64_t off)
{
    static const char zeros[256];
    if (w->pos > off)
        die("internal error: data for '%s' overruns its offset (%" PRIu64 " > %" PRIu64 ")",
            w->path, w->pos, off);
    while (w->pos < off) {
        uint64_t k = off - w->pos;
        out_write(w, zeros, k < sizeof zeros ? (size_t)k : sizeof zeros);
    }
}

/* Generates and writes one tensor's data, a chunk of rows at a time. */
static void write_tensor(out_t *w, const tinfo_t *t, uint64_t seed, int64_t favor, float *fbuf, void *qbuf)
{
    const enum ggml_type type = (enum ggml_type)t->type;
    const size_t row_bytes = ggml_row_size(type, t->ne0);
    int64_t rows_per_chunk = CHUNK_FLOATS / t->ne0;
    if (rows_per_chunk < 1)
        rows_per_chunk = 1;
    rng_t r = rng_for(seed, t->name);
    /* Uniform in [-a, a) has standard deviation a/sqrt(3).  The embedding
     * table gets std 1/sqrt(n_embd), so with tied output the logits have
     * std ~1.  The block matrices get std WEIGHT_GAIN/sqrt(fan_in): with
     * gain 1 the residual stream stays close to the input embedding and
     * greedy decoding soon repeats one token; gain 2 makes attention
     * sharper (position dependent through RoPE) and the blocks dominate,
     * which keeps greedy output varied. */
    const bool embd = strcmp(t->name, "token_embd.weight") == 0, out = strcmp(t->name, "output.weight") == 0;
    const float gain = embd || out ? 1.0f : WEIGHT_GAIN;
    const float a = gain * sqrtf(3.0f / (float)t->ne0);

    for (int64_t row = 0; row < t->ne1; row += rows_per_chunk) {
        int64_t nr = t->ne1 - row < rows_per_chunk ? t->ne1 - row : rows_per_chunk;
        size_t nf = (size_t)(nr * t->ne0);
        if (t->ones) {
            for (size_t i = 0; i < nf; i++)
                fbuf[i] = 1.0f;
        } else {
            rng_fill(&r, fbuf, nf, a);
        }
        /* --favor: every embedding carries a large component 0, which
         * the blocks' small outputs leave the largest part of the final
         * hidden state; only the favored token's output row reads it. */
        for (int64_t k = 0; favor >= 0 && (embd || out) && k < nr; k++) {
            if (embd)
                fbuf[k * t->ne0] = 100.0f;
            else
                fbuf[k * t->ne0] = row + k == favor ? 10.0f : 0.0f;
        }
        switch (type) {
        case GGML_TYPE_F32:
            out_write(w, fbuf, nf * sizeof(float));
            break;
        case GGML_TYPE_F16:
            ggml_fp32_to_fp16_row(fbuf, qbuf, (int64_t)nf);
            out_write(w, qbuf, nf * sizeof(ggml_fp16_t));
            break;
        default: {
            size_t got = ggml_quantize_chunk(type, fbuf, qbuf, 0, nr, t->ne0, NULL);
            if (got != (size_t)nr * row_bytes)
                die("internal error: quantizing '%s' gave %zu bytes, expected %zu",
                    t->name, got, (size_t)nr * row_bytes);
            out_write(w, qbuf, got);
            break;
        }
        }
    }
}

static void human_bytes(char *buf, size_t n, uint64_t b)
{
    if (b >= (uint64_t)1 << 30)
        snprintf(buf, n, "%.2f GiB", (double)b / (1 << 30));
    else if (b >= (uint64_t)1 << 20)
        snprintf(buf, n, "%.1f MiB", (double)b / (1 << 20));
    else
        snprintf(buf, n, "%.1f KiB", (double)b / 1024);
}

static const char *base_name(const char *p)
{
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

int main(int argc, char **argv)
{
    const double t0 = now_s();
    opts_t o;
    parse_args(&o, argc, argv);

    struct gguf_context *g = gguf_init_empty();
    if (!g)
        die("out of memory (gguf_init_empty)");

    /* metadata: architecture and hyperparameters first, then the tokenizer */
    const int64_t head_dim = o.n_embd / o.n_head;
    char gname[256];
    snprintf(gname, sizeof gname, "lmql-mkmodel %s %s seed %" PRIu64,
             o.preset ? o.preset : "custom", base_name(o.vocab), o.seed);
    gguf_set_val_str(g, "general.architecture", "llama");
    gguf_set_val_str(g, "general.name", gname);
    gguf_set_val_u32(g, "general.file_type", (uint32_t)type_ftype(o.type));
    gguf_set_val_u32(g, "llama.context_length", (uint32_t)o.n_ctx);
    gguf_set_val_u32(g, "llama.embedding_length", (uint32_t)o.n_embd);
    gguf_set_val_u32(g, "llama.block_count", (uint32_t)o.n_layer);
    gguf_set_val_u32(g, "llama.feed_forward_length", (uint32_t)o.n_ff);
    gguf_set_val_u32(g, "llama.attention.head_count", (uint32_t)o.n_head);
    gguf_set_val_u32(g, "llama.attention.head_count_kv", (uint32_t)o.n_head_kv);
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_set_val_u32(g, "llama.rope.dimension_count", (uint32_t)head_dim);
    gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);

    const int64_t n_vocab = copy_tokenizer(g, o.vocab);
    if (o.chat_template)
        gguf_set_val_str(g, "tokenizer.chat_template", o.chat_template);
    gguf_set_val_u32(g, "llama.vocab_size", (uint32_t)n_vocab);

    int embd_type = o.embd_type;
    if (embd_type == EMBD_AUTO)
        embd_type = (o.type == GGML_TYPE_F32 && n_vocab * o.n_embd > EMBD_AUTO_F32_MAX)
                        ? GGML_TYPE_F16 : o.type;

    /* tensor infos, via a ggml context that holds no data */
    const size_t max_tensors = 3 + 9 * (size_t)o.n_layer;   /* token_embd, output_norm, output */
    tinfo_t *ti = xmalloc(max_tensors * sizeof *ti);
    const size_t n_tensors = plan_tensors(ti, &o, n_vocab, embd_type);

    struct ggml_init_params gp = {
        .mem_size = (n_tensors + 1) * ggml_tensor_overhead(),
        .mem_buffer = NULL,
        .no_alloc = true,
    };
    struct ggml_context *gctx = ggml_init(gp);
    if (!gctx)
        die("out of memory (ggml_init)");
    uint64_t n_params = 0;
    int64_t max_ne0 = 1;
    for (size_t i = 0; i < n_tensors; i++) {
        struct ggml_tensor *t = ti[i].ne1 == 1 && ti[i].ones
            ? ggml_new_tensor_1d(gctx, (enum ggml_type)ti[i].type, ti[i].ne0)
            : ggml_new_tensor_2d(gctx, (enum ggml_type)ti[i].type, ti[i].ne0, ti[i].ne1);
        ggml_set_name(t, ti[i].name);
        gguf_add_tensor(g, t);
        n_params += (uint64_t)ti[i].ne0 * (uint64_t)ti[i].ne1;
        if (ti[i].ne0 > max_ne0)
            max_ne0 = ti[i].ne0;
    }

    /* header */
    /* The serialized header already ends padded to the alignment; the data
     * section starts there (gguf_get_data_offset is only set for contexts
     * read from a file). */
    const size_t meta_size = gguf_get_meta_size(g);
    const size_t align = gguf_get_alignment(g);
    const uint64_t data_off = ((uint64_t)meta_size + align - 1) / align * align;
    uint64_t total = data_off;
    for (size_t i = 0; i < n_tensors; i++) {
        uint64_t end = data_off + gguf_get_tensor_offset(g, (int64_t)i) + gguf_get_tensor_size(g, (int64_t)i);
        end = (end + align - 1) / align * align;
        if (end > total)
            total = end;
    }
    void *meta = xmalloc(meta_size);
    gguf_get_meta_data(g, meta);

    /* output file */
    size_t plen = strlen(o.out);
    g_tmp_path = xmalloc(plen + 5);
    memcpy(g_tmp_path, o.out, plen);
    memcpy(g_tmp_path + plen, ".tmp", 5);
    install_signal_handlers();
    out_t w = { .path = g_tmp_path, .label = o.out, .total = total, .last_pct = -1, .t0 = t0 };
    w.f = fopen(g_tmp_path, "wb");
    if (!w.f)
        die("cannot create '%s': %s", g_tmp_path, strerror(errno));
    g_tmp_live = 1;
    setvbuf(w.f, NULL, _IOFBF, 1 << 20);
    w.progress = isatty(STDERR_FILENO) && total > (64u << 20);

    out_write(&w, meta, meta_size);
    free(meta);

    size_t chunk = (size_t)CHUNK_FLOATS > (size_t)max_ne0 ? (size_t)CHUNK_FLOATS : (size_t)max_ne0;
    float *fbuf = xmalloc(chunk * sizeof(float));
    void *qbuf = xmalloc(chunk * sizeof(float)); /* any supported type is <= 4 bytes/elem */
    for (size_t i = 0; i < n_tensors; i++) {
        out_pad_to(&w, data_off + gguf_get_tensor_offset(g, (int64_t)i));
        uint64_t start = w.pos;
        write_tensor(&w, &ti[i], o.seed, o.favor, fbuf, qbuf);
        if (w.pos - start != gguf_get_tensor_size(g, (int64_t)i))
            die("internal error: wrote %" PRIu64 " bytes for '%s', expected %zu",
                w.pos - start, ti[i].name, gguf_get_tensor_size(g, (int64_t)i));
    }
    out_pad_to(&w, total);
    free(fbuf);
    free(qbuf);

    if (fflush(w.f) != 0)
        die("cannot write '%s': %s", g_tmp_path, strerror(errno));
    if (fsync(fileno(w.f)) != 0 && errno != EINVAL && errno != EROFS)
        die("cannot sync '%s': %s", g_tmp_path, strerror(errno));
    if (fclose(w.f) != 0)
        die("cannot write '%s': %s", g_tmp_path, strerror(errno));
    if (rename(g_tmp_path, o.out) != 0)
        die("cannot rename '%s' to '%s': %s", g_tmp_path, o.out, strerror(errno));
    g_tmp_live = 0;
    if (w.progress)
        fputs("\r\033[K", stderr);

    char hb[32];
    human_bytes(hb, sizeof hb, w.pos);
    fprintf(stderr,
            PROG ": wrote %s: llama, %.2fM params (vocab %" PRId64 ", n_embd %" PRId64
            ", n_layer %" PRId64 ", n_head %" PRId64 "/%" PRId64 ", n_ff %" PRId64
            ", n_ctx %" PRId64 "), %s (token_embd %s), %" PRIu64 " bytes (%s), %.2f s\n",
            o.out, (double)n_params / 1e6, n_vocab, o.n_embd, o.n_layer, o.n_head,
            o.n_head_kv, o.n_ff, o.n_ctx, type_str(o.type), type_str(embd_type),
            w.pos, hb, now_s() - t0);

    ggml_quantize_free();
    ggml_free(gctx);
    gguf_free(g);
    free(ti);
    free(g_tmp_path);
    g_tmp_path = NULL;
    return 0;
}
