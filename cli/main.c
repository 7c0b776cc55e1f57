/*
** The `lmql` command: argument parsing and printing. Everything else is
** the library, used through include/lmql.h only.
*/
#include <lmql.h>

#include <errno.h>
#include <fcntl.h>
#include <fcntl.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: lmql run FILE.lmql [options] [--NAME VALUE ...]\n"
    "       lmql run -e 'QUERY' [options] [--NAME VALUE ...]\n"
    "       lmql serve-model llama.cpp:PATH [--host H] [--port P] [--PARAM VALUE ...]\n"
    "       lmql --version\n"
    "\n"
    "run options:\n"
    "  --model ID      model to use instead of the query's `from`\n"
    "                  (local:llama.cpp:PATH, llama.cpp:PATH, random, PATH.gguf)\n"
    "  --json          print the result as JSON on stdout\n"
    "  -q, --quiet     no streaming, no progress\n"
    "  --seed N        sampling seed (default 0; the same seed repeats a run)\n"
    "  --stats         after the run, print token and model-call counts on stderr\n"
    "  --NAME VALUE    bind the query's free variable NAME (numbers become numbers)\n"
    "\n"
    "serve-model options:\n"
    "  --host H              address to listen on (default 127.0.0.1; localhost is 127.0.0.1 and ::1)\n"
    "  --port P              port (default 8080; 0 picks a free one)\n"
    "  --token-file F        clients must send the token in F (Authorization: Bearer T, or ?token=T);\n"
    "                        also $LMQL_SERVER_TOKEN, or --token T (visible to local users in ps)\n"
    "  --allow-origin LIST   browser origins allowed besides localhost (comma separated, * for all)\n"
    "  --max-connections N   (default 64)   --max-streams N   per connection (default 64)\n"
    "  --max-tokens N        largest max_tokens of a request (default 4096)\n"
    "  --max-frame BYTES     largest message (default 16 MiB)\n"
    "  --idle-timeout S      close a connection idle this long with no stream (default 300; 0 never)\n"
    "  --handshake-timeout S time to finish the WebSocket handshake (default 10)\n"
    "  --max-unread BYTES    replies a connection may leave unread before its streams end (default 8 MiB)\n"
    "  --max-queued-bias N   logit_bias entries a connection may have in streams not yet running (default 1048576)\n"
    "  --max-score-tokens N  SCORE tokens a connection may have queued or running (default 65536)\n"
    "  --drain-timeout S     after SIGTERM, running streams get S s to finish (default 30); new ones are\n"
    "                        refused and GET /health says 503. A second SIGTERM or Ctrl-C stops at once\n"
    "  GET /health, GET /metrics   plain HTTP on the same port (readiness; Prometheus text; see docs/DEPLOY.md)\n"
    "  --seed N              sampling seed   -q, --quiet   no log lines\n"
    "  --cuda                all layers on the GPU when llama.cpp has a GPU backend (a warning otherwise)\n"
    "  --static, --single_thread   accepted for LMQL's command line (always so here)\n"
    "  --PARAM VALUE         a Llama(...) parameter for the model (lmql serve-model --help lists them);\n"
    "                        booleans are true/false, True/False or 1/0\n";

/* LMQL's serve-model options that mean nothing for a GGUF file: what to
** do instead. */
static const struct { const char *opt, *instead; } LMQL_ONLY[] = {
    {"--dtype", "a GGUF file carries its own weight types: choose a quantized file (Q4_0, Q8_0, F16, ...) instead"},
    {"--loader", "llama.cpp loads GGUF files itself: drop --loader"},
    {"--layout", "serve-model runs one model in one process: start one server per model or replica (and put "
                 "HAProxy in front of replicas)"},
};

static void print_serve_help(void) {
    fputs(USAGE, stdout);
    puts("\nllama.cpp parameters (--NAME VALUE; default, then what it does):");
    const char *name, *dflt, *help;
    for (int i = 0; lmql_model_param(i, &name, &dflt, &help) == 0; i++)
        printf("  --%-16s %-26s %s\n", name, dflt, help);
}

/* A query file must be a regular file: a FIFO would block the open (and
** the read) until some writer comes, /dev/zero never ends, a directory
** cannot be read. stat first, so nothing with side effects is opened; then
** open non-blocking and check the opened file, so a FIFO swapped in after
** the stat neither blocks nor gets read. `-` is stdin, a pipe on purpose. */
static FILE *open_query(const char *path) {
    struct stat st;
    int fd = -1;
    if (stat(path, &st) != 0) goto os_error;
    if (S_ISREG(st.st_mode)) {
        if ((fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY)) < 0 || fstat(fd, &st) != 0) goto os_error;
    }
    if (!S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        fprintf(stderr, "lmql: cannot read '%s': not a regular file (it is %s)\n", path,
                S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISSOCK(st.st_mode) ? "a socket"
                : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "not a plain file");
        return NULL;
    }
    int fl = fcntl(fd, F_GETFL);   /* a regular file never blocks: plain reads from here */
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    FILE *f = fdopen(fd, "rb");
    if (f) return f;
os_error:
    fprintf(stderr, "lmql: cannot open '%s': %s\n", path, strerror(errno));
    if (fd >= 0) close(fd);
    return NULL;
}

static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") ? open_query(path) : stdin;
    if (!f) return -1;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf) break;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *p = realloc(buf, cap *= 2);
        if (!p) { free(buf); buf = NULL; }
        else buf = p;
    }
    int bad = ferror(f);
    if (f != stdin) fclose(f);
    if (!buf || bad) {
        fprintf(stderr, "lmql: cannot read '%s'%s\n", path, buf ? "" : ": out of memory");
        free(buf);
        return -1;
    }
    *out = buf;
    *len = n;
    return 0;
}

struct stream_state {
    int on;
};

static void on_text(void *ud, const char *text, size_t len, lmql_text_kind kind) {
    struct stream_state *st = ud;
    if (!st->on) return;
    if (kind == LMQL_TEXT_GENERATED) fputs("\x1b[1m", stdout);
    fwrite(text, 1, len, stdout);
    if (kind == LMQL_TEXT_GENERATED) fputs("\x1b[0m", stdout);
    fflush(stdout);
}

/* `--n 3` binds a number, `--name Bob` a string. */
static lmql_status bind_arg(struct lmql_args *A, const char *name, const char *value) {
    char *end;
    errno = 0;
    long long i = strtoll(value, &end, 10);
    if (*value && !*end && !errno) return lmql_args_set_int(A, name, i);
    double d = strtod(value, &end);
    if (*value && !*end && !errno && strspn(value, "+-0123456789.eE") == strlen(value))
        return lmql_args_set_float(A, name, d);
    return lmql_args_set_str(A, name, value);
}

static int cmd_run(int argc, char **argv) {
    const char *file = NULL, *inline_src = NULL, *model = NULL;
    int json = 0, quiet = 0, stats = 0;
    unsigned long long seed = 0;
    struct lmql_args *A = lmql_args_init();
    int rc = 1;
    char *src = NULL;
    size_t len = 0;
    struct lmql *L = NULL;
    struct lmql_program *P = NULL;
    struct lmql_result *R = NULL;
    if (!A) { fprintf(stderr, "lmql: out of memory\n"); return 1; }

    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        char key[256];
        const char *val = NULL;
        if (!strcmp(a, "-e") || !strcmp(a, "--json") || !strcmp(a, "-q") || !strcmp(a, "--quiet") ||
            !strcmp(a, "--model") || !strcmp(a, "--seed") || !strcmp(a, "--stats")) {
            if (!strcmp(a, "--json")) { json = 1; continue; }
            if (!strcmp(a, "--stats")) { stats = 1; continue; }
            if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { quiet = 1; continue; }
            if (i + 1 >= argc) { fprintf(stderr, "lmql run: %s needs a value\n", a); goto done; }
            val = argv[++i];
            if (!strcmp(a, "-e")) inline_src = val;
            else if (!strcmp(a, "--model")) model = val;
            else {
                char *end;
                errno = 0;
                seed = strtoull(val, &end, 10);
                if (!*val || *end || errno || *val == '-') {
                    fprintf(stderr, "lmql run: --seed needs a non-negative integer, not '%s'\n", val);
                    rc = 2;
                    goto done;
                }
            }
            continue;
        }
        if (a[0] == '-' && a[1] == '-' && a[2]) {
            const char *eq = strchr(a + 2, '=');
            size_t kl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
            if (kl >= sizeof key) { fprintf(stderr, "lmql run: argument name too long\n"); goto done; }
            memcpy(key, a + 2, kl);
            key[kl] = 0;
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else { fprintf(stderr, "lmql run: --%s needs a value\n", key); goto done; }
            if (!strcmp(key, "model")) model = val;
            else if (bind_arg(A, key, val) != LMQL_OK) { fprintf(stderr, "lmql run: bad argument --%s\n", key); goto done; }
            continue;
        }
        if (a[0] == '-' && a[1] && strcmp(a, "-")) {
            fprintf(stderr, "lmql run: unknown option '%s'\n%s", a, USAGE);
            rc = 2;
            goto done;
        }
        if (file || inline_src) { fprintf(stderr, "lmql run: more than one query given\n"); rc = 2; goto done; }
        file = a;
    }
    if (!file && !inline_src) { fprintf(stderr, "lmql run: no query (give FILE or -e 'QUERY')\n%s", USAGE); rc = 2; goto done; }
    if (file && inline_src) { fprintf(stderr, "lmql run: give either FILE or -e, not both\n"); rc = 2; goto done; }
    if (inline_src) {
        src = strdup(inline_src);
        len = strlen(inline_src);
        if (!src) goto done;
    } else if (read_file(file, &src, &len)) {
        goto done;
    }

    struct stream_state st = {.on = !json && !quiet && isatty(1)};
    struct lmql_params params = lmql_default_params();
    params.model_override = model;
    params.seed = seed;
    params.on_text = on_text;
    params.user_data = &st;
    L = lmql_init(&params);
    if (!L) { fprintf(stderr, "lmql: out of memory\n"); goto done; }
    P = lmql_program_compile(L, inline_src ? "<expr>" : file, src, len);
    if (!P) {
        fprintf(stderr, "%s\n", lmql_errmsg(L));
        rc = lmql_error_status(L) == LMQL_ERR_QUERY ? 2 : 1;   /* out of memory is not the query's fault */
        goto done;
    }
    lmql_status s = lmql_run(L, P, A, &R);
    if (st.on) fputs("\n", stdout);
    if (s != LMQL_OK) {
        fprintf(stderr, "%s\n", lmql_errmsg(L));
        rc = s == LMQL_ERR_QUERY ? 2 : 1;
        goto done;
    }
    if (json) {
        printf("%s\n", lmql_result_json(R));
    } else {
        int n = lmql_result_count(R);
        for (int i = 0; i < n; i++) {
            if (n > 1) printf("--- sequence %d ---\n", i);
            if (!st.on) printf("%s\n", lmql_result_prompt(R, i));
            if (!st.on || n > 1) puts("");
            for (int k = 0; k < lmql_result_variable_count(R, i); k++)
                printf("%s: %s\n", lmql_result_variable_name(R, i, k), lmql_result_variable_json(R, i, k));
        }
        if (n == 0) printf("%s\n", lmql_result_json(R));
    }
    if (stats) {
        struct lmql_stats t;
        lmql_last_stats(L, &t);
        fprintf(stderr, "stats: %llu tokens generated, %llu evaluated (%llu more reused from the KV cache), "
                "%llu model calls (forward passes, or requests to a served model), %.3f s in them, %.3f s in all\n",
                (unsigned long long)t.n_generated, (unsigned long long)t.n_decoded, (unsigned long long)t.n_reused,
                (unsigned long long)t.n_forward, t.t_eval, t.t_total);
    }
    rc = 0;
done:
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
    lmql_args_free(A);
    free(src);
    return rc;
}

static struct lmql_server *g_server;

static volatile sig_atomic_t g_terms;

/* SIGTERM drains (running streams finish, /health says 503); a second
** SIGTERM, or SIGINT, stops at once. */
static void on_signal(int sig) {
    if (sig == SIGTERM && !g_terms++) lmql_server_drain(g_server);
    else lmql_server_stop(g_server);
}

static int ll_opt(const char *name, const char *v, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < lo || n > hi) {
        fprintf(stderr, "lmql serve-model: %s wants a number from %lld to %lld, not '%s'\n", name, lo, hi, v);
        return -1;
    }
    *out = n;
    return 0;
}

static int int_opt(const char *name, const char *v, long lo, long hi, int *out) {
    long long n;
    if (ll_opt(name, v, lo, hi, &n)) return -1;
    *out = (int)n;
    return 0;
}

/* The server's token from a file (its first line), so that it is not on
** the command line, where every local user can read it. */
static char *read_token_file(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "lmql serve-model: --token-file '%s': %s\n", path,
                fd < 0 ? strerror(errno) : "not a regular file");
        if (fd >= 0) close(fd);
        return NULL;
    }
    char buf[4097];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0) { fprintf(stderr, "lmql serve-model: cannot read '%s': %s\n", path, strerror(errno)); return NULL; }
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    if (!buf[0]) { fprintf(stderr, "lmql serve-model: --token-file '%s' holds no token on its first line\n", path); return NULL; }
    char *t = strdup(buf);
    if (!t) fprintf(stderr, "lmql serve-model: out of memory\n");
    return t;
}

/* `lmql serve-model llama.cpp:PATH [options] [--PARAM VALUE ...]`: the
** server's own options, everything else goes to the model. */
static int cmd_serve(int argc, char **argv) {
    struct lmql_server_params p;
    lmql_server_default_params(&p);
    const char **keys = calloc((size_t)argc + 1, sizeof *keys), **vals = calloc((size_t)argc + 1, sizeof *vals);
    const char *token_file = NULL;
    char *file_token = NULL;
    int rc = 2;
    if (!keys || !vals) goto done;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) { p.quiet = 1; continue; }
        if (!strcmp(a, "--static") || !strcmp(a, "--single_thread")) continue;   /* LMQL's; always so here */
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            print_serve_help();
            rc = 0;
            goto done;
        }
        if (!strcmp(a, "--cuda") && (i + 1 >= argc || !strncmp(argv[i + 1], "--", 2))) {
            /* LMQL's flag; --cuda true/false is the parameter with a value */
            keys[p.n_params] = "cuda";
            vals[p.n_params++] = "true";
            continue;
        }
        bool lmql_only = false;
        for (size_t j = 0; j < sizeof LMQL_ONLY / sizeof *LMQL_ONLY; j++)
            if (!strcmp(a, LMQL_ONLY[j].opt) || (!strncmp(a, LMQL_ONLY[j].opt, strlen(LMQL_ONLY[j].opt)) &&
                                                 a[strlen(LMQL_ONLY[j].opt)] == '=')) {
                fprintf(stderr, "lmql serve-model: %s is an option of LMQL's transformers backend; %s\n",
                        LMQL_ONLY[j].opt, LMQL_ONLY[j].instead);
                lmql_only = true;
            }
        if (lmql_only) goto done;
        if (a[0] != '-' || a[1] != '-') {
            if (p.model) { fprintf(stderr, "lmql serve-model: one model per server ('%s' and '%s')\n", p.model, a); goto done; }
            p.model = a;
            continue;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) { fprintf(stderr, "lmql serve-model: %s needs a value\n", a); goto done; }
        i++;
        const char *k = a + 2;
        int n;
        if (!strcmp(k, "host")) p.host = v;
        else if (!strcmp(k, "port")) { if (int_opt(a, v, 0, 65535, &p.port)) goto done; }
        else if (!strcmp(k, "token")) p.token = v;
        else if (!strcmp(k, "token-file")) token_file = v;
        else if (!strcmp(k, "idle-timeout")) { if (int_opt(a, v, 0, 1 << 30, &p.idle_timeout)) goto done; }
        else if (!strcmp(k, "drain-timeout")) { if (int_opt(a, v, 0, 1 << 30, &p.drain_timeout)) goto done; }
        else if (!strcmp(k, "handshake-timeout")) { if (int_opt(a, v, 1, 3600, &p.handshake_timeout)) goto done; }
        else if (!strcmp(k, "max-unread")) { if (ll_opt(a, v, 65536, 1LL << 40, &p.max_unread)) goto done; }
        else if (!strcmp(k, "max-queued-bias")) { if (ll_opt(a, v, 0, 1LL << 40, &p.max_queued_bias)) goto done; }
        else if (!strcmp(k, "max-score-tokens")) { if (ll_opt(a, v, 1, 1LL << 40, &p.max_score_tokens)) goto done; }
        else if (!strcmp(k, "allow-origin")) p.allow_origin = v;
        else if (!strcmp(k, "max-connections")) { if (int_opt(a, v, 1, 100000, &p.max_connections)) goto done; }
        else if (!strcmp(k, "max-streams")) { if (int_opt(a, v, 1, 100000, &p.max_streams)) goto done; }
        else if (!strcmp(k, "max-tokens")) { if (int_opt(a, v, 1, 1 << 24, &p.max_tokens)) goto done; }
        else if (!strcmp(k, "max-frame")) { if (int_opt(a, v, 1024, 1 << 30, &p.max_frame)) goto done; }
        else if (!strcmp(k, "seed")) { if (int_opt(a, v, 0, 2147483647, &n)) goto done; p.seed = (uint64_t)n; }
        else {
            keys[p.n_params] = k;
            vals[p.n_params++] = v;
        }
    }
    if (!p.model) {
        fprintf(stderr, "lmql serve-model: which model? e.g. lmql serve-model llama.cpp:model.gguf --n_ctx 1024\n");
        goto done;
    }
    if (p.token && token_file) {
        fprintf(stderr, "lmql serve-model: --token and --token-file both given; use one\n");
        goto done;
    }
    if (token_file) {
        if (!(file_token = read_token_file(token_file))) goto done;
        p.token = file_token;
    } else if (!p.token && getenv("LMQL_SERVER_TOKEN") && *getenv("LMQL_SERVER_TOKEN")) {
        p.token = getenv("LMQL_SERVER_TOKEN");
    } else if (p.token && !p.quiet) {
        fprintf(stderr, "lmql serve-model: note: --token is visible to every local user (ps); "
                "--token-file F or $LMQL_SERVER_TOKEN keep it private\n");
    }
    p.param_keys = keys;
    p.param_values = vals;
    char err[1024];
    g_server = lmql_server_open(&p, err, sizeof err);
    if (!g_server) {
        fprintf(stderr, "lmql serve-model: %s\n", err);
        rc = 1;
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* The address clients use: an IPv6 one goes in brackets. */
    bool v6 = strchr(p.host, ':') != NULL;
    printf("serving %s on ws://%s%s%s:%d\n", p.model, v6 ? "[" : "", p.host, v6 ? "]" : "", lmql_server_port(g_server));
    fflush(stdout);
    rc = 0;
    if (lmql_server_run(g_server) != LMQL_OK) {
        fprintf(stderr, "lmql serve-model: the event loop failed; stopping\n");
        rc = 1;
    }
    lmql_server_free(g_server);
    g_server = NULL;
done:
    free(keys);
    free(vals);
    free(file_token);
    return rc;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        fputs(USAGE, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("lmql %s\n", LMQL_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(argv[1], "serve-model")) return cmd_serve(argc - 2, argv + 2);
    fprintf(stderr, "lmql: unknown command '%s'\n%s", argv[1], USAGE);
    return 2;
}
