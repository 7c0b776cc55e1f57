/*
** The llama.cpp backend: a GGUF model evaluated in this process.
**
** This is the only file that includes llama.h. llama.cpp aborts the process
** on some misuse (bad lengths, out-of-range tokens, seq ids beyond
** n_seq_max), so everything that reaches it is validated here first.
*/
#include "model.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include <ggml-backend.h>
#include <gguf.h>
#include <llama.h>

/* ---------------------------------------------------------------- init -- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static char g_libdir[PATH_MAX];
static int g_verbose;                      /* pass llama.cpp's log to stderr */
static __thread char g_last_log[512];      /* last error line, for causes */

/* llama.cpp logs a lot at INFO level; users of a query language want
** only their result. Errors are kept so that a failed load can say why. */
static void log_cb(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) {
        size_t n = strlen(text);
        while (n && (text[n - 1] == '\n' || text[n - 1] == ' ')) n--;
        if (n) snprintf(g_last_log, sizeof g_last_log, "%.*s", (int)n, text);
    }
    if (g_verbose) fputs(text, stderr);
}

/* The prebuilt release has no CPU backend linked in: the variants are
** separate libraries next to libllama, and llama.cpp by default only
** searches the executable's and the working directory. */
static void backend_init(void) {
    setenv("GGML_NO_BACKTRACE", "1", 0);   /* no gdb attach on abort */
    llama_log_set(log_cb, NULL);
    Dl_info info;
    if (dladdr((void *)&llama_backend_init, &info) && info.dli_fname) {
        snprintf(g_libdir, sizeof g_libdir, "%s", info.dli_fname);
        char *slash = strrchr(g_libdir, '/');
        if (slash) *slash = 0; else strcpy(g_libdir, ".");
        if (ggml_backend_dev_count() == 0) ggml_backend_load_all_from_path(g_libdir);
    }
    llama_backend_init();
}

/* ---------------------------------------------------------- parameters -- */

/* The Llama(...) constructor names of llama-cpp-python, so that queries
** and `serve-model --n_ctx 1024` mean what they mean there. */
enum ptype { P_INT, P_UINT, P_BOOL, P_FLOAT, P_TEMPLATE };
enum pkey {
    K_N_CTX, K_N_BATCH, K_N_UBATCH, K_N_THREADS, K_N_THREADS_BATCH, K_N_GPU_LAYERS, K_MAIN_GPU,
    K_SEED, K_USE_MMAP, K_USE_MLOCK, K_VOCAB_ONLY, K_FLASH_ATTN, K_OFFLOAD_KQV, K_ROPE_FREQ_BASE,
    K_ROPE_FREQ_SCALE, K_N_SEQ_MAX, K_VERBOSE, K_POLL, K_CUDA, K_CHAT_TEMPLATE, K_COUNT
};
/* name, type, the default as this backend applies it, what it does */
static const struct { const char *name; enum ptype type; const char *dflt, *help; } g_params[K_COUNT] = {
    [K_N_CTX] = {"n_ctx", P_UINT, "2048", "context size in tokens per sequence (0: the model's training context)"},
    [K_N_BATCH] = {"n_batch", P_UINT, "512", "tokens per llama_decode call (raised to n_seq_max)"},
    [K_N_UBATCH] = {"n_ubatch", P_UINT, "min(n_batch, 512)", "tokens per compute step"},
    [K_N_THREADS] = {"n_threads", P_INT, "the cores", "threads for generation"},
    [K_N_THREADS_BATCH] = {"n_threads_batch", P_INT, "n_threads", "threads for prompt evaluation"},
    [K_N_GPU_LAYERS] = {"n_gpu_layers", P_INT, "0", "layers to offload to the GPU (-1: all)"},
    [K_MAIN_GPU] = {"main_gpu", P_INT, "0", "the GPU for a model on one GPU"},
    [K_SEED] = {"seed", P_INT, "0", "accepted as llama-cpp-python has it; sampling follows the query's seed (serve-model: --seed)"},
    [K_USE_MMAP] = {"use_mmap", P_BOOL, "true (serve-model: false)", "map the weights instead of reading them"},
    [K_USE_MLOCK] = {"use_mlock", P_BOOL, "false", "lock the weights in memory"},
    [K_VOCAB_ONLY] = {"vocab_only", P_BOOL, "false", "load only the vocabulary (tokenizing, the random model)"},
    [K_FLASH_ATTN] = {"flash_attn", P_BOOL, "llama.cpp's choice", "flash attention on or off"},
    [K_OFFLOAD_KQV] = {"offload_kqv", P_BOOL, "true", "keep the KV cache on the GPU"},
    [K_ROPE_FREQ_BASE] = {"rope_freq_base", P_FLOAT, "0 (the model's)", "RoPE base frequency"},
    [K_ROPE_FREQ_SCALE] = {"rope_freq_scale", P_FLOAT, "0 (the model's)", "RoPE frequency scale"},
    [K_N_SEQ_MAX] = {"n_seq_max", P_UINT, "8", "sequences decoded together (sample(n), beams, server streams)"},
    [K_VERBOSE] = {"verbose", P_BOOL, "false", "llama.cpp's own log on stderr"},
    [K_POLL] = {"poll", P_UINT, "0", "how much threads spin waiting for work (0-100; 0 is best on a shared CPU)"},
    [K_CUDA] = {"cuda", P_BOOL, "false", "LMQL's --cuda: all layers on the GPU when llama.cpp has a GPU backend"},
    [K_CHAT_TEMPLATE] = {"chat_template", P_TEMPLATE, "true (the model's)",
                         "render {:role} tags with the model's chat template; false: LMQL's ((role)): text; "
                         "or a llama.cpp template name (chatml, llama3, ...)"},
};

int lmql__llama_param(int i, const char **name, const char **dflt, const char **help) {
    if (i < 0 || i >= K_COUNT) return -1;
    *name = g_params[i].name;
    *dflt = g_params[i].dflt;
    *help = g_params[i].help;
    return 0;
}

struct params {
    bool set[K_COUNT];
    double num[K_COUNT];
    const char *tmpl;   /* chat_template given by name (num is then 1) */
};

static void valid_names(char *out, size_t cap) {
    size_t n = 0;
    out[0] = 0;
    for (int i = 0; i < K_COUNT && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", g_params[i].name);
}

static int parse_params(const struct lmql__kv *kv, int n, struct params *p, struct lmql__err *err) {
    memset(p, 0, sizeof *p);
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < K_COUNT && strcmp(g_params[k].name, kv[i].key) != 0) k++;
        /* LMQL's docs pass tokenizer="<HF name>" with llama.cpp models because LMQL cannot read a GGUF's
        ** vocabulary; we always use the GGUF's own (never another, see the spec), so say so. */
        if (k == K_COUNT && !strcmp(kv[i].key, "tokenizer"))
            return lmql__errf(err, "tokenizer= is not supported: a llama.cpp model always uses its GGUF's own "
                              "tokenizer (leave the argument out)");
        if (k == K_COUNT) {
            char names[512];
            valid_names(names, sizeof names);
            return lmql__errf(err, "unknown llama.cpp parameter '%s' (valid: %s)", kv[i].key, names);
        }
        const char *v = kv[i].value ? kv[i].value : "";
        char *end;
        double d;
        switch (g_params[k].type) {
        case P_TEMPLATE:
            /* true/false, or the template (a name llama.cpp knows, or Jinja text) */
            p->tmpl = NULL;
            if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) d = 1;
            else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) d = 0;
            else if (!*v) return lmql__errf(err, "parameter %s must be true, false or a template name", kv[i].key);
            else { d = 1; p->tmpl = v; }
            break;
        case P_BOOL:
            if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) d = 1;
            else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0")) d = 0;
            else return lmql__errf(err, "parameter %s must be true or false, not '%s'", kv[i].key, v);
            break;
        case P_FLOAT:
            errno = 0;
            d = strtod(v, &end);
            if (!*v || *end || errno || !isfinite(d))
                return lmql__errf(err, "parameter %s must be a number, not '%s'", kv[i].key, v);
            break;
        default:
            errno = 0;
            long long ll = strtoll(v, &end, 10);
            if (!*v || *end || errno || ll < INT32_MIN || ll > INT32_MAX ||
                (g_params[k].type == P_UINT && ll < 0))
                return lmql__errf(err, "parameter %s must be a%s integer, not '%s'", kv[i].key,
                                  g_params[k].type == P_UINT ? " non-negative" : "n", v);
            d = (double)ll;
        }
        p->set[k] = true;
        p->num[k] = d;
    }
    return 0;
}

static double param_or(const struct params *p, enum pkey k, double dflt) {
    return p->set[k] ? p->num[k] : dflt;
}

/* What llama.cpp aborts on, or misbehaves with, checked before any file is
** read: a bad value is the user's to fix, with the valid range named. */
static int check_params(const struct params *p, struct lmql__err *err) {
    static const struct { enum pkey k; double lo, hi; const char *why; } range[] = {
        {K_N_SEQ_MAX, 1, 256, "llama.cpp's LLAMA_MAX_SEQ"},
        {K_N_BATCH, 1, INT32_MAX, "tokens per llama_decode"},
        {K_N_UBATCH, 1, INT32_MAX, "tokens per compute step"},
        /* ggml's thread pools hold at most GGML_MAX_N_THREADS threads. */
        {K_N_THREADS, 1, GGML_MAX_N_THREADS, "ggml's GGML_MAX_N_THREADS"},
        {K_N_THREADS_BATCH, 1, GGML_MAX_N_THREADS, "ggml's GGML_MAX_N_THREADS"},
        {K_POLL, 0, 100, "a percentage"},
        /* 0 means the model's own; negative values give NaN logits. */
        {K_ROPE_FREQ_BASE, 0, 1e30, "0 is the model's value"},
        {K_ROPE_FREQ_SCALE, 0, 1e30, "0 is the model's value"},
    };
    for (size_t i = 0; i < sizeof range / sizeof *range; i++) {
        double v = p->num[range[i].k];
        if (p->set[range[i].k] && (v < range[i].lo || v > range[i].hi))
            return lmql__errf(err, "parameter %s must be from %g to %g (%s), not %g", g_params[range[i].k].name,
                              range[i].lo, range[i].hi, range[i].why, v);
    }
    if (p->set[K_N_CTX] && p->num[K_N_CTX] != 0 && p->num[K_N_CTX] < 8)
        return lmql__errf(err, "parameter n_ctx must be at least 8 (or 0 for the model's training context), not %g",
                          p->num[K_N_CTX]);
    return 0;
}

/* -------------------------------------------------------- file checks -- */

static const char *file_kind(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISFIFO(m) ? "a FIFO (named pipe)" : S_ISSOCK(m) ? "a socket"
         : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device" : "not a plain file";
}

/*
** Open a model or vocabulary file for reading, refusing anything but a
** regular file: reading a FIFO blocks until a writer comes (forever, for a
** server), /dev/zero never ends, a directory or socket cannot be read. The
** path is stat'ed first (nothing with side effects is opened), then opened
** non-blocking (a FIFO swapped in after the stat cannot block the open) and
** the opened file checked again, so what was checked is what is read.
** Returns the descriptor or -1 with err filled; *st is the opened file's.
*/
int lmql__open_regular(const char *path, const char *what, struct stat *st, struct lmql__err *err) {
    if (stat(path, st) != 0) return lmql__errf(err, "cannot open %s '%s': %s", what, path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return lmql__errf(err, "%s '%s' is not a regular file (it is %s)", what, path, file_kind(st->st_mode));
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return lmql__errf(err, "cannot open %s '%s': %s", what, path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        int e = errno;
        bool reg = S_ISREG(st->st_mode);
        close(fd);
        if (reg) return lmql__errf(err, "cannot open %s '%s': %s", what, path, strerror(e));
        return lmql__errf(err, "%s '%s' is not a regular file (it is %s)", what, path, file_kind(st->st_mode));
    }
    /* Regular files never block; reads of it should not see EAGAIN either. */
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

/* llama.cpp and gguf open the file again by name. Through /proc/self/fd
** they open the very file that was checked, even if the path has been
** replaced since (by a FIFO, say); without /proc, the path itself. */
static void fd_path(int fd, const char *path, char *out, size_t cap) {
    snprintf(out, cap, "/proc/self/fd/%d", fd);
    struct stat a, b;
    if (stat(out, &a) != 0 || fstat(fd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
        snprintf(out, cap, "%s", path);
}

/* llama.cpp reports some bad files only by aborting or with a generic
** message; check what it would stumble on and name the actual problem.
** `open_path` names the opened file (fd_path); `*split` is set for the first
** part of a split model, whose other parts llama.cpp finds by its name. */
static int check_file(const char *path, int fd, const struct stat *st, const char *open_path, bool *split,
                      struct lmql__err *err) {
    unsigned char magic[4] = {0};
    ssize_t got = pread(fd, magic, 4, 0);
    if (got < 0) return lmql__errf(err, "cannot read model file '%s': %s", path, strerror(errno));
    if (got < 4) return lmql__errf(err, "'%s' is not a GGUF model: the file has only %zd bytes", path, got);
    if (!memcmp(magic, "GGUF", 4)) {
        struct gguf_init_params gp = {.no_alloc = true, .ctx = NULL};
        struct gguf_context *g = gguf_init_from_file(open_path, gp);
        if (!g) return lmql__errf(err, "'%s' is a damaged or truncated GGUF file (its header cannot be read)", path);
        /* Every tensor's data must lie inside the file. */
        uint64_t end = gguf_get_data_offset(g);
        for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
            uint64_t e = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, i) + gguf_get_tensor_size(g, i);
            if (e > end) end = e;
        }
        int64_t k = gguf_find_key(g, "split.count");
        *split = k >= 0 && gguf_get_kv_type(g, k) == GGUF_TYPE_UINT16 && gguf_get_val_u16(g, k) > 1;
        gguf_free(g);
        if ((uint64_t)st->st_size < end)
            return lmql__errf(err, "'%s' is a truncated GGUF file: %lld bytes, its tensors need %llu", path,
                              (long long)st->st_size, (unsigned long long)end);
        return 0;
    }
    /* Pre-GGUF GGML files, as the old llama.cpp docs made (.bin). The magic
    ** is a little-endian uint32, so 'ggml' reads "lmgg" on disk. */
    static const char *const old[] = {"lmgg", "fmgg", "tjgg", "algg"};
    for (size_t i = 0; i < sizeof old / sizeof *old; i++)
        if (!memcmp(magic, old[i], 4))
            return lmql__errf(err, "'%s' is a pre-GGUF GGML model (magic '%c%c%c%c'); llama.cpp now reads only "
                              "GGUF: convert it with llama.cpp's convert script (convert_llama_ggml_to_gguf.py)",
                              path, magic[3], magic[2], magic[1], magic[0]);
    char shown[64];
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        if (magic[i] >= 0x20 && magic[i] < 0x7F) n += (size_t)snprintf(shown + n, sizeof shown - n, "%c", magic[i]);
        else n += (size_t)snprintf(shown + n, sizeof shown - n, "\\x%02x", magic[i]);
    }
    return lmql__errf(err, "'%s' is not a GGUF model: it starts with '%s', a GGUF file starts with 'GGUF'", path, shown);
}

/* -------------------------------------------------------------- model -- */

struct slot {
    int32_t *toks;          /* tokens whose KV entries the slot holds */
    int32_t  n, cap;
    float   *logprobs;      /* after toks[n-1], valid when have_lp */
    bool     have_lp;
};

struct llm {
    struct lmql__model base;
    struct llama_model *model;
    struct llama_context *ctx;   /* NULL for a vocab-only model */
    const struct llama_vocab *vocab;
    struct slot *slots;
    int32_t n_batch;
    struct ggml_threadpool *tp, *tp_batch;   /* ours, attached to ctx */
    void (*tp_free)(struct ggml_threadpool *);
    bool prefix_space;           /* the tokenizer invents a leading space */
    int32_t nl_token;            /* a token that never merges, for `cont` */
    char *chat_template;         /* base.chat_template, owned */
    struct llama_batch batch;
};

static int slot_reserve(struct slot *s, int32_t n) {
    if (n <= s->cap) return 0;
    int32_t cap = s->cap ? s->cap : 64;
    while (cap < n) cap *= 2;
    int32_t *p = lmql__realloc(s->toks, (size_t)cap * sizeof *p);
    if (!p) return -1;
    s->toks = p;
    s->cap = cap;
    return 0;
}

/* Where a 4-byte UTF-8 form decodes past U+10FFFF (lead F4 90.. to F7):
** llama.cpp's BPE pre-tokenizer decodes it without a range check and then
** throws "invalid codepoint" out of llama_tokenize, which aborts a C
** program. Models and the random model can draw such bytes (GPT-2 has a
** token per byte). Returns the offset of the first one, or len. */
static size_t over_range_utf8(const unsigned char *s, size_t len) {
    for (size_t i = 0; i + 3 < len; i++) {
        if ((s[i] & 0xF8) != 0xF0 || (s[i + 1] & 0xC0) != 0x80 || (s[i + 2] & 0xC0) != 0x80 ||
            (s[i + 3] & 0xC0) != 0x80)
            continue;
        uint32_t cpt = (uint32_t)(s[i] & 7) << 18 | (uint32_t)(s[i + 1] & 0x3F) << 12;
        if (cpt > 0x10FFFF) return i;
    }
    return len;
}

/* `special`: add BOS as the vocabulary wants; `parse`: text naming a
** special token is that token (chat template text only). */
static int32_t raw_tokenize(struct llm *m, const char *text, size_t len, bool special, bool parse, int32_t *out,
                            int32_t cap) {
    size_t bad = over_range_utf8((const unsigned char *)text, len);
    if (bad == len) return llama_tokenize(m->vocab, text, (int32_t)len, out, cap, special, parse);
    /* Such a form is invalid UTF-8 as any other: make its lead byte one
    ** llama.cpp rejects (0xFF), so its bytes become what other invalid
    ** bytes become, instead of an abort. */
    char *copy = lmql__malloc(len);
    if (!copy) return INT32_MIN;
    memcpy(copy, text, len);
    for (; bad < len; bad = over_range_utf8((const unsigned char *)copy, len)) copy[bad] = (char)0xFF;
    int32_t n = llama_tokenize(m->vocab, copy, (int32_t)len, out, cap, special, parse);
    free(copy);
    return n;
}

static int32_t tokenize(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont, bool parse,
                        int32_t *out, int32_t cap, struct lmql__err *err) {
    struct llm *m = (struct llm *)base;
    if (len > (size_t)INT32_MAX / 2) {
        lmql__errf(err, "text of %zu bytes is too long to tokenize", len);
        return INT32_MIN;
    }
    bool add_bos = bos && base->vocab->add_bos && base->vocab->bos >= 0;
    if (!cont || !m->prefix_space || len == 0) {
        if (len == 0) return add_bos ? (cap >= 1 ? (out[0] = base->vocab->bos, 1) : -1) : 0;
        int32_t n = raw_tokenize(m, text, len, add_bos, parse, out, cap);
        if (n == INT32_MIN) lmql__errf(err, "the text could not be tokenized (out of memory?)");
        return n;
    }
    /* SPM tokenizers put a space before the text as if it started a
    ** document. For text that continues a prompt, tokenize "\n" + text:
    ** the newline is a byte token that never merges, and what follows it
    ** is the text's own tokenization. */
    char *tmp = lmql__malloc(len + 1);
    int32_t need = (int32_t)len + 8, n;
    int32_t *buf = lmql__malloc((size_t)need * sizeof *buf);
    if (!tmp || !buf) {
        free(tmp); free(buf);
        lmql__errf(err, "out of memory");
        return INT32_MIN;
    }
    tmp[0] = '\n';
    memcpy(tmp + 1, text, len);
    n = raw_tokenize(m, tmp, len + 1, false, parse, buf, need);
    int32_t skip = 0;
    while (skip < n && buf[skip] != m->nl_token) skip++;
    int32_t k = 0, res;
    if (n < 0 || skip >= n) {
        /* Not the expected shape (no such newline token): plain tokenize. */
        res = raw_tokenize(m, text, len, add_bos, parse, out, cap);
    } else {
        int32_t want = n - skip - 1 + (add_bos ? 1 : 0);
        if (want > cap) res = -want;
        else {
            if (add_bos) out[k++] = base->vocab->bos;
            for (int32_t i = skip + 1; i < n; i++) out[k++] = buf[i];
            res = k;
        }
    }
    free(tmp);
    free(buf);
    if (res == INT32_MIN) lmql__errf(err, "the text could not be tokenized (out of memory?)");
    return res;
}

static int32_t llm_tokenize(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                            int32_t *out, int32_t cap, struct lmql__err *err) {
    return tokenize(base, text, len, bos, cont, false, out, cap, err);
}

static int32_t llm_tokenize_special(struct lmql__model *base, const char *text, size_t len, bool bos, bool cont,
                                    int32_t *out, int32_t cap, struct lmql__err *err) {
    return tokenize(base, text, len, bos, cont, true, out, cap, err);
}

int lmql__chat_apply(const char *tmpl, const struct lmql__chat_msg *msgs, int n, struct lmql__buf *out,
                     struct lmql__err *err) {
    if (n <= 0) return 0;
    struct llama_chat_message *cm = lmql__malloc((size_t)n * sizeof *cm);
    if (!cm) return lmql__errf(err, "out of memory");
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        cm[i].role = msgs[i].role;
        cm[i].content = msgs[i].content;
        total += strlen(msgs[i].role) + strlen(msgs[i].content);
    }
    int rc = 0;
    int32_t cap = total < (size_t)INT32_MAX / 4 ? (int32_t)(2 * total + 256) : 0;
    for (int tries = 0; rc == 0; tries++) {
        if (cap <= 0 || tries == 2) { rc = lmql__errf(err, "the chat is too long to render"); break; }
        if (lmql__buf_reserve(out, (size_t)cap)) { rc = lmql__errf(err, "out of memory"); break; }
        int32_t k = llama_chat_apply_template(tmpl, cm, (size_t)n, false, out->data + out->len, cap);
        if (k < 0) {
            rc = lmql__errf(err, "llama.cpp does not know this chat template (it knows the common ones by their "
                            "Jinja text or name: chatml, llama3, mistral-v7, gemma, phi3, ...)");
        } else if (k <= cap) {
            out->len += (size_t)k;
            out->data[out->len] = 0;   /* reserve left room for it */
            break;
        } else {
            cap = k;   /* too small: again with the size it said */
        }
    }
    free(cm);
    return rc;
}

static int load_vocab(struct llm *m, struct lmql__err *err) {
    struct lmql__vocab *v = m->base.vocab = lmql__vocab_new();
    if (!v) return lmql__errf(err, "out of memory");
    int32_t n = llama_vocab_n_tokens(m->vocab);
    v->n_tokens = n;
    v->off = lmql__malloc(((size_t)n + 1) * sizeof *v->off);
    v->is_eog = lmql__calloc((size_t)n, 1);
    v->is_control = lmql__calloc((size_t)n, 1);
    size_t cap = (size_t)n * 8 + 64, len = 0;
    v->bytes = lmql__malloc(cap);
    if (!v->off || !v->is_eog || !v->is_control || !v->bytes) return lmql__errf(err, "out of memory");
    char small[256], *piece = small, *big = NULL;
    for (int32_t t = 0; t < n; t++) {
        int32_t k = llama_token_to_piece(m->vocab, t, small, sizeof small, 0, false);
        piece = small;
        if (k < 0) {   /* a long piece (runs of spaces in code vocabularies): -k is its size */
            char *p = lmql__realloc(big, (size_t)-k);
            if (!p) { free(big); return lmql__errf(err, "out of memory"); }
            big = piece = p;
            k = llama_token_to_piece(m->vocab, t, piece, -k, 0, false);
            if (k < 0) k = 0;
        }
        if (len + (size_t)k > cap) {
            cap = cap * 2 + (size_t)k;
            char *p = lmql__realloc(v->bytes, cap);
            if (!p) { free(big); return lmql__errf(err, "out of memory"); }
            v->bytes = p;
        }
        v->off[t] = (uint32_t)len;
        memcpy(v->bytes + len, piece, (size_t)k);
        len += (size_t)k;
        v->is_eog[t] = llama_vocab_is_eog(m->vocab, t);
        v->is_control[t] = llama_vocab_is_control(m->vocab, t);
    }
    free(big);
    v->off[n] = (uint32_t)len;
    for (int32_t t = 0; t < n; t++) v->n_eog += v->is_eog[t];
    v->eog = lmql__malloc(((size_t)v->n_eog + 1) * sizeof *v->eog);
    if (!v->eog) return lmql__errf(err, "out of memory");
    for (int32_t t = 0, k = 0; t < n; t++)
        if (v->is_eog[t]) v->eog[k++] = t;
    v->bos = llama_vocab_bos(m->vocab);
    v->eos = llama_vocab_eos(m->vocab);
    v->add_bos = llama_vocab_get_add_bos(m->vocab);
    /* Does tokenizing "a" produce a piece with a space in front? */
    int32_t t[8];
    int32_t k = raw_tokenize(m, "a", 1, false, false, t, 8);
    uint32_t plen;
    m->prefix_space = k >= 1 && *lmql__vocab_piece(v, t[0], &plen) == ' ';
    k = raw_tokenize(m, "\n", 1, false, false, t, 8);
    m->nl_token = -1;
    for (int32_t i = 0; i < k; i++) {
        const char *p = lmql__vocab_piece(v, t[i], &plen);
        if (plen == 1 && *p == '\n') m->nl_token = t[i];
    }
    return 0;
}

/* Copy the logits of batch row `row` into the slot as log-probabilities. */
static void take_logits(struct llm *m, struct slot *s, int32_t row) {
    LMQL_ASSERT(s->logprobs != NULL && row >= 0 && row < m->n_batch);
    const float *lg = llama_get_logits_ith(m->ctx, row);
    int32_t n = m->base.vocab->n_tokens;
    memcpy(s->logprobs, lg, (size_t)n * sizeof *lg);
    lmql__log_softmax(s->logprobs, n);
    s->have_lp = true;
}

static int decode_batch(struct llm *m, struct lmql__err *err) {
    double t0 = lmql__now();
    int rc = llama_decode(m->ctx, m->batch);
    m->base.stats.t_eval += lmql__now() - t0;
    m->base.stats.n_calls++;
    if (rc == 0) return 0;
    if (rc == 1)
        return lmql__errf(err, "the context is full (n_ctx=%d shared by all sequences); raise n_ctx", m->base.n_ctx);
    if (rc == 2) return lmql__errf(err, "evaluation was aborted");
    return lmql__errf(err, "llama_decode failed (%d)%s%s", rc, g_last_log[0] ? ": " : "", g_last_log);
}

/* A batch row whose logits are wanted: the last token of a request (the
** slot's next-token distribution), or a scored position. */
struct row {
    int r;          /* request */
    int32_t i;      /* token index in the request */
};

/* log p(tok) from the logits of batch row b. */
static float token_logprob(struct llm *m, int32_t b, int32_t tok) {
    const float *lg = llama_get_logits_ith(m->ctx, b);
    int32_t n = m->base.vocab->n_tokens;
    float mx = lg[0];
    for (int32_t t = 1; t < n; t++) if (lg[t] > mx) mx = lg[t];
    double sum = 0;
    for (int32_t t = 0; t < n; t++) sum += exp((double)lg[t] - mx);
    return (float)((double)lg[tok] - mx - log(sum));
}

/* Decode the batch, then take what its rows were wanted for: a slot's
** next-token distribution, a scored token. */
static int flush_batch(struct llm *m, const struct lmql__eval_req *reqs, const int32_t *score_from, float **scores,
                       const struct row *rows, struct lmql__err *err) {
    LMQL_ASSERT(m->batch.n_tokens >= 1 && m->batch.n_tokens <= m->n_batch);
    int rc = decode_batch(m, err);
    int32_t n_rows = m->batch.n_tokens;
    m->batch.n_tokens = 0;
    for (int32_t k = 0; k < n_rows && rc == 0; k++) {
        if (rows[k].r < 0) continue;
        const struct lmql__eval_req *q = &reqs[rows[k].r];
        int32_t i = rows[k].i, from = score_from ? score_from[rows[k].r] : INT32_MAX;
        if (i >= from - 1 && i < q->n_tokens - 1) scores[rows[k].r][i + 1 - from] = token_logprob(m, k, q->tokens[i + 1]);
        if (i == q->n_tokens - 1) take_logits(m, &m->slots[q->slot], k);
    }
    return rc;
}

/*
** Evaluate requests: roll each slot back to what it shares with its
** tokens and decode the rest, all requests packed into batches of up to
** n_batch tokens. With score_from, also the log-probability of every
** token from score_from[r] on given its predecessors, into scores[r].
*/
static int evaluate(struct llm *m, int n_req, const struct lmql__eval_req *reqs, const int32_t *score_from,
                    float **scores, struct lmql__err *err) {
    struct lmql__model *base = &m->base;
    if (!m->ctx) return lmql__errf(err, "the model was opened with vocab_only and cannot be evaluated");
    if (n_req <= 0) return n_req == 0 ? 0 : lmql__errf(err, "negative request count");
    llama_memory_t mem = llama_get_memory(m->ctx);
    int32_t nv = base->vocab->n_tokens;

    /* Validate everything before llama.cpp sees it. */
    for (int r = 0; r < n_req; r++) {
        const struct lmql__eval_req *q = &reqs[r];
        if (q->slot < 0 || q->slot >= base->n_slots)
            return lmql__errf(err, "sequence slot %d out of range (n_seq_max=%d)", q->slot, base->n_slots);
        for (int o = 0; o < r; o++)
            if (reqs[o].slot == q->slot) return lmql__errf(err, "sequence slot %d requested twice", q->slot);
        if (q->n_tokens <= 0) return lmql__errf(err, "cannot evaluate an empty token sequence");
        if (q->n_tokens > base->n_ctx)
            return lmql__errf(err, "the prompt is %d tokens, longer than the context (n_ctx=%d); raise n_ctx",
                              q->n_tokens, base->n_ctx);
        if (score_from && (score_from[r] < 1 || score_from[r] > q->n_tokens))
            return lmql__errf(err, "scored tokens need a prefix of at least one token");
        for (int32_t i = 0; i < q->n_tokens; i++)
            if (q->tokens[i] < 0 || q->tokens[i] >= nv)
                return lmql__errf(err, "token id %d out of range (vocabulary of %d)", q->tokens[i], nv);
    }

    int32_t *start = lmql__malloc((size_t)n_req * sizeof *start);
    struct row *rows = lmql__malloc((size_t)m->n_batch * sizeof *rows);
    if (!start || !rows) { free(start); free(rows); return lmql__errf(err, "out of memory"); }
    for (int r = 0; r < n_req; r++) {
        const struct lmql__eval_req *q = &reqs[r];
        struct slot *s = &m->slots[q->slot];
        int32_t c = 0;
        while (c < s->n && c < q->n_tokens && s->toks[c] == q->tokens[c]) c++;
        if (!score_from && c == q->n_tokens && c == s->n && s->have_lp) { start[r] = -1; continue; }
        if (c == q->n_tokens) c--;                      /* the last token's logits are needed again */
        if (score_from && c > score_from[r] - 1) c = score_from[r] - 1;   /* and those of scored positions */
        if (c < s->n && !llama_memory_seq_rm(mem, q->slot, c, -1)) {
            llama_memory_seq_rm(mem, q->slot, -1, -1);
            c = 0;
        }
        if (slot_reserve(s, q->n_tokens)) { free(start); free(rows); return lmql__errf(err, "out of memory"); }
        /* At least the last token is evaluated again: its logits are needed. */
        LMQL_ASSERT(c >= 0 && c < q->n_tokens && c <= s->n);
        s->n = c;
        s->have_lp = false;
        start[r] = c;
        base->stats.n_reused += (uint64_t)c;
    }

    int rc = 0;
    m->batch.n_tokens = 0;
    for (int r = 0; r < n_req && rc == 0; r++) {
        if (start[r] < 0) continue;
        const struct lmql__eval_req *q = &reqs[r];
        struct slot *s = &m->slots[q->slot];
        for (int32_t i = start[r]; i < q->n_tokens && rc == 0; i++) {
            int32_t b = m->batch.n_tokens;
            LMQL_ASSERT(b < m->n_batch && s->n < s->cap);   /* a full batch was flushed; the slot was reserved */
            bool want = i == q->n_tokens - 1 || (score_from && i >= score_from[r] - 1);
            m->batch.token[b] = q->tokens[i];
            m->batch.pos[b] = i;
            m->batch.n_seq_id[b] = 1;
            m->batch.seq_id[b][0] = q->slot;
            m->batch.logits[b] = want;
            if (want) rows[b] = (struct row){r, i};
            else rows[b].r = -1;
            m->batch.n_tokens++;
            s->toks[s->n++] = q->tokens[i];
            base->stats.n_decoded++;
            if (m->batch.n_tokens == m->n_batch) rc = flush_batch(m, reqs, score_from, scores, rows, err);
        }
    }
    if (rc == 0 && m->batch.n_tokens > 0) rc = flush_batch(m, reqs, score_from, scores, rows, err);
    m->batch.n_tokens = 0;
    if (rc != 0) {
        /* The KV cache no longer matches what the slots say: drop them. */
        for (int r = 0; r < n_req; r++) {
            m->slots[reqs[r].slot].n = 0;
            m->slots[reqs[r].slot].have_lp = false;
            llama_memory_seq_rm(mem, reqs[r].slot, -1, -1);
        }
    }
    free(rows);
    free(start);
    return rc;
}

static int llm_next_logprobs(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs,
                             const float **out, struct lmql__err *err) {
    struct llm *m = (struct llm *)base;
    int rc = evaluate(m, n_req, reqs, NULL, NULL, err);
    for (int r = 0; rc == 0 && r < n_req; r++) out[r] = m->slots[reqs[r].slot].logprobs;
    return rc;
}

static int llm_score(struct lmql__model *base, int n_req, const struct lmql__eval_req *reqs, const int32_t *score_from,
                     float **scores, struct lmql__err *err) {
    return evaluate((struct llm *)base, n_req, reqs, score_from, scores, err);
}

static void llm_slot_copy(struct lmql__model *base, int src, int dst) {
    struct llm *m = (struct llm *)base;
    if (src == dst || src < 0 || dst < 0 || src >= base->n_slots || dst >= base->n_slots || !m->ctx) return;
    struct slot *s = &m->slots[src], *d = &m->slots[dst];
    llama_memory_t mem = llama_get_memory(m->ctx);
    llama_memory_seq_rm(mem, dst, -1, -1);
    d->n = 0;
    d->have_lp = false;
    if (slot_reserve(d, s->n)) return;
    llama_memory_seq_cp(mem, src, dst, -1, -1);
    if (s->n > 0) memcpy(d->toks, s->toks, (size_t)s->n * sizeof *s->toks);
    d->n = s->n;
    if (s->have_lp) {
        memcpy(d->logprobs, s->logprobs, (size_t)base->vocab->n_tokens * sizeof *s->logprobs);
        d->have_lp = true;
    }
}

static void llm_slot_drop(struct lmql__model *base, int slot) {
    struct llm *m = (struct llm *)base;
    if (slot < 0 || slot >= base->n_slots || !m->ctx) return;
    llama_memory_seq_rm(llama_get_memory(m->ctx), slot, -1, -1);
    m->slots[slot].n = 0;
    m->slots[slot].have_lp = false;
}

static void llm_free(struct lmql__model *base) {
    struct llm *m = (struct llm *)base;
    if (m->ctx) {
        llama_batch_free(m->batch);
        llama_free(m->ctx);
    }
    if (m->tp_free) {
        if (m->tp_batch && m->tp_batch != m->tp) m->tp_free(m->tp_batch);
        if (m->tp) m->tp_free(m->tp);
    }
    if (m->model) llama_model_free(m->model);
    for (int i = 0; m->slots && i < base->n_slots; i++) {
        free(m->slots[i].toks);
        free(m->slots[i].logprobs);
    }
    free(m->slots);
    lmql__vocab_unref(base->vocab);
    free(base->id);
    free(m->chat_template);
    free(m);
}

static const struct lmql__model_ops llm_ops = {
    .free = llm_free,
    .tokenize = llm_tokenize,
    .next_logprobs = llm_next_logprobs,
    .score = llm_score,
    .slot_copy = llm_slot_copy,
    .slot_drop = llm_slot_drop,
    .choose = NULL,
    .tokenize_special = llm_tokenize_special,
};

/* llama.cpp's default threadpool busy-waits between graph nodes. With as
** many threads as cores, any other busy process on the machine takes a
** core from a spinning thread and generation slows down twenty-fold or
** more. Our own pools, with polling off by default (`poll`), sleep
** instead. The pool functions live in the CPU backend variant, reached
** through the backend registry. */
static void attach_threadpools(struct llm *m, int n_threads, int n_threads_batch, int poll) {
    ggml_backend_reg_t cpu = ggml_backend_reg_by_name("CPU");
    if (!cpu) return;
    struct ggml_threadpool *(*tp_new)(struct ggml_threadpool_params *) =
        (struct ggml_threadpool *(*)(struct ggml_threadpool_params *))ggml_backend_reg_get_proc_address(cpu, "ggml_threadpool_new");
    void (*tp_free)(struct ggml_threadpool *) =
        (void (*)(struct ggml_threadpool *))ggml_backend_reg_get_proc_address(cpu, "ggml_threadpool_free");
    if (!tp_new || !tp_free) return;
    struct ggml_threadpool_params tpp = ggml_threadpool_params_default(n_threads);
    tpp.poll = (uint32_t)poll;
    m->tp = tp_new(&tpp);
    if (!m->tp) return;
    m->tp_free = tp_free;
    m->tp_batch = m->tp;
    if (n_threads_batch != n_threads) {
        tpp = ggml_threadpool_params_default(n_threads_batch);
        tpp.poll = (uint32_t)poll;
        m->tp_batch = tp_new(&tpp);
        if (!m->tp_batch) m->tp_batch = m->tp;
    }
    llama_attach_threadpool(m->ctx, m->tp, m->tp_batch);
}

/* The template role tags are rendered with: chat_template=NAME, else the
** GGUF's own (checked only when a role tag needs it, so that a model whose
** template llama.cpp does not know still runs queries without roles), none
** with chat_template=False. */
static int chat_template(struct llm *m, const struct params *p, struct lmql__err *err) {
    if (p->set[K_CHAT_TEMPLATE] && !p->num[K_CHAT_TEMPLATE]) return 0;
    const char *t = p->tmpl ? p->tmpl : llama_model_chat_template(m->model, NULL);
    if (!t || !*t) return 0;
    if (p->tmpl) {
        struct llama_chat_message probe = {"user", "x"};
        char buf[256];
        if (llama_chat_apply_template(t, &probe, 1, false, buf, sizeof buf) < 0)
            return lmql__errf(err, "chat_template '%s' is not a template llama.cpp knows (names: chatml, llama3, "
                              "llama2, mistral-v7, phi3, gemma, zephyr, ...; or true, false)", t);
    }
    m->chat_template = lmql__strdup(t);
    if (!m->chat_template) return lmql__errf(err, "out of memory");
    m->base.chat_template = m->chat_template;
    return 0;
}

/* Loading progress on a terminal; silence elsewhere (logs, pipes, CI). */
static bool progress_cb(float p, void *ud) {
    int *last = ud;
    int pct = (int)(p * 100);
    if (pct != *last) {
        *last = pct;
        fprintf(stderr, "\rloading model: %3d%%%s", pct, pct >= 100 ? "\r                    \r" : "");
    }
    return true;
}

struct lmql__model *lmql__llama_open(const char *path, const struct lmql__kv *kv, int n_kv, struct lmql__err *err) {
    struct params p;
    if (parse_params(kv, n_kv, &p, err)) return NULL;
    if (check_params(&p, err)) return NULL;
    /* First, so that gguf's complaints about a bad file go to our log. */
    g_verbose = param_or(&p, K_VERBOSE, 0) != 0;
    pthread_once(&g_once, backend_init);
    struct stat st;
    int fd = lmql__open_regular(path, "model file", &st, err);
    if (fd < 0) return NULL;
    char open_path[PATH_MAX + 32];
    bool split = false;
    fd_path(fd, path, open_path, sizeof open_path);
    if (check_file(path, fd, &st, open_path, &split, err)) { close(fd); return NULL; }
    if (split) snprintf(open_path, sizeof open_path, "%s", path);   /* the other parts are found by name */
    struct llm *m = NULL;

    bool vocab_only = param_or(&p, K_VOCAB_ONLY, 0) != 0;
    if (!vocab_only && ggml_backend_dev_count() == 0) {
        lmql__errf(err, "no llama.cpp compute backend could be loaded (looked for libggml-cpu-*.so in %s)",
                   g_libdir[0] ? g_libdir : "?");
        goto fail;
    }
    m = lmql__calloc(1, sizeof *m);
    if (!m) { lmql__errf(err, "out of memory"); goto fail; }
    m->base.ops = &llm_ops;
    m->base.id = lmql__strdup(path);

    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = vocab_only;
    mp.n_gpu_layers = (int32_t)param_or(&p, K_N_GPU_LAYERS, 0);
    if (param_or(&p, K_CUDA, 0) != 0 && !vocab_only) {
        /* LMQL's --cuda puts the model on the GPU; here that is every layer,
        ** unless n_gpu_layers says how many. Without a GPU backend the model
        ** runs on the CPU, which the user should know. */
        if (!llama_supports_gpu_offload())
            fprintf(stderr, "warning: --cuda: this llama.cpp has no GPU backend; the model runs on the CPU\n");
        else if (!p.set[K_N_GPU_LAYERS])
            mp.n_gpu_layers = -1;
    }
    mp.main_gpu = (int32_t)param_or(&p, K_MAIN_GPU, 0);
    bool mmap = param_or(&p, K_USE_MMAP, 1) != 0, mlock = param_or(&p, K_USE_MLOCK, 0) != 0;
    mp.load_mode = mmap ? (mlock ? LLAMA_LOAD_MODE_MMAP_MLOCK : LLAMA_LOAD_MODE_MMAP)
                        : (mlock ? LLAMA_LOAD_MODE_MLOCK : LLAMA_LOAD_MODE_NONE);
    int last = -1;
    if (isatty(2) && !vocab_only) {
        mp.progress_callback = progress_cb;
        mp.progress_callback_user_data = &last;
    }
    g_last_log[0] = 0;
    m->model = llama_model_load_from_file(open_path, mp);
    if (!m->model) {
        lmql__errf(err, "llama.cpp could not load '%s'%s%s", path, g_last_log[0] ? ": " : "", g_last_log);
        goto fail;
    }
    m->vocab = llama_model_get_vocab(m->model);
    if (load_vocab(m, err)) goto fail;
    if (chat_template(m, &p, err)) goto fail;

    int n_slots = (int)param_or(&p, K_N_SEQ_MAX, 8);
    m->base.n_slots = n_slots;
    if (!vocab_only) {
        struct llama_context_params cp = llama_context_default_params();
        int32_t train = llama_model_n_ctx_train(m->model);
        uint32_t n_ctx = (uint32_t)param_or(&p, K_N_CTX, 2048);
        if (n_ctx == 0) n_ctx = (uint32_t)(train > 0 ? train : 2048);
        if (n_ctx < 8) { lmql__errf(err, "n_ctx must be at least 8 (the model's training context is %u)", n_ctx); goto fail; }
        /* Every batch may hold the last token of each sequence, and llama.cpp
        ** asserts (aborts) unless its n_batch output rows cover n_seq_max. */
        if (n_ctx < (uint32_t)n_slots) {
            lmql__errf(err, "n_ctx (%u) must be at least n_seq_max (%d): each sequence needs room in the context",
                       n_ctx, n_slots);
            goto fail;
        }
        /* llama.cpp allocates the whole KV cache (and per-cell bookkeeping)
        ** up front: an n_ctx far beyond the memory takes minutes to fail, or
        ** gets the process killed. F16 K and V per layer and token; an upper
        ** bound for models with fewer attention layers. Only for a cache in
        ** this machine's memory: offloaded layers keep theirs on the GPU. */
        int32_t n_head = llama_model_n_head(m->model), n_kv_head = llama_model_n_head_kv(m->model);
        double kv_bytes = (double)n_ctx * llama_model_n_layer(m->model) * 2.0 * 2.0 *
                          (n_head > 0 ? (double)llama_model_n_embd(m->model) / n_head * n_kv_head : 0);
        struct sysinfo si;
        if (mp.n_gpu_layers == 0 && sysinfo(&si) == 0 && kv_bytes > ((double)si.totalram + (double)si.totalswap) * si.mem_unit) {
            lmql__errf(err, "n_ctx=%u needs about %.1f GiB of KV cache, more than this machine's memory (%.1f GiB); "
                       "lower n_ctx", n_ctx, kv_bytes / (1 << 30),
                       ((double)si.totalram + (double)si.totalswap) * si.mem_unit / (1 << 30));
            goto fail;
        }
        cp.n_ctx = n_ctx;
        cp.n_batch = (uint32_t)param_or(&p, K_N_BATCH, 512);
        cp.n_ubatch = (uint32_t)param_or(&p, K_N_UBATCH, cp.n_batch < 512 ? cp.n_batch : 512);
        if (cp.n_batch > cp.n_ctx) cp.n_batch = cp.n_ctx;   /* llama.cpp caps it silently */
        /* Raised, not refused: n_batch only bounds how many tokens go into
        ** one llama_decode (n_ubatch bounds the compute buffers), and below
        ** n_seq_max llama.cpp aborts the process when it reserves its
        ** output rows (GGML_ASSERT n_outputs_max). */
        if (cp.n_batch < (uint32_t)n_slots) cp.n_batch = (uint32_t)n_slots;
        if (cp.n_ubatch > cp.n_batch) cp.n_ubatch = cp.n_batch;
        int cores = lmql__ncores();
        cp.n_threads = (int32_t)param_or(&p, K_N_THREADS, cores > GGML_MAX_N_THREADS ? GGML_MAX_N_THREADS : cores);
        cp.n_threads_batch = (int32_t)param_or(&p, K_N_THREADS_BATCH, cp.n_threads);
        cp.n_seq_max = (uint32_t)n_slots;
        cp.kv_unified = true;   /* forks share their prefix's cells */
        if (p.set[K_FLASH_ATTN])
            cp.flash_attn_type = p.num[K_FLASH_ATTN] ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
        cp.offload_kqv = param_or(&p, K_OFFLOAD_KQV, 1) != 0;
        cp.rope_freq_base = (float)param_or(&p, K_ROPE_FREQ_BASE, 0);
        cp.rope_freq_scale = (float)param_or(&p, K_ROPE_FREQ_SCALE, 0);
        m->ctx = llama_init_from_model(m->model, cp);
        if (!m->ctx) {
            lmql__errf(err, "llama.cpp could not create a context for '%s'%s%s", path, g_last_log[0] ? ": " : "",
                       g_last_log);
            goto fail;
        }
        int poll = (int)param_or(&p, K_POLL, 0);
        attach_threadpools(m, cp.n_threads, cp.n_threads_batch, poll);
        m->base.n_ctx = (int32_t)llama_n_ctx(m->ctx);
        m->n_batch = (int32_t)llama_n_batch(m->ctx);
        /* Each sequence's last token fits one batch; the context holds every sequence. */
        LMQL_ASSERT(m->n_batch >= n_slots && m->base.n_ctx >= n_slots);
        m->batch = llama_batch_init(m->n_batch, 0, 1);
    }
    m->slots = lmql__calloc((size_t)n_slots, sizeof *m->slots);
    if (!m->slots) { lmql__errf(err, "out of memory"); goto fail; }
    for (int i = 0; i < n_slots && m->ctx; i++) {
        m->slots[i].logprobs = lmql__malloc((size_t)m->base.vocab->n_tokens * sizeof(float));
        if (!m->slots[i].logprobs) { lmql__errf(err, "out of memory"); goto fail; }
    }
    close(fd);   /* llama.cpp has read (or mapped) what it needs */
    return &m->base;
fail:
    if (m) llm_free(&m->base);
    close(fd);
    return NULL;
}
