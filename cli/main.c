/*
** The `lmql` command: argument parsing and printing. Everything else is
** the library, used through include/lmql.h only.
*/
#include <lmql.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    "  --NAME VALUE    bind the query's free variable NAME (numbers become numbers)\n";

static int read_file(const char *path, char **out, size_t *len) {
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f) {
        fprintf(stderr, "lmql: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
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
    int json = 0, quiet = 0;
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
            !strcmp(a, "--model") || !strcmp(a, "--seed")) {
            if (!strcmp(a, "--json")) { json = 1; continue; }
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
        rc = 2;
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
    rc = 0;
done:
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
    lmql_args_free(A);
    free(src);
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
    if (!strcmp(argv[1], "serve-model")) {
        fprintf(stderr, "lmql serve-model: the LMTP server is not part of this build yet\n");
        return 1;
    }
    fprintf(stderr, "lmql: unknown command '%s'\n%s", argv[1], USAGE);
    return 2;
}
