/*
** Allocation failures: every query below runs once to learn its result and
** how many allocations our code makes, then again with the 1st, 2nd, ...
** Nth allocation failing (all of the first ones, then spread over the
** rest). Each run must give the same result or fail with LMQL_ERR_NOMEM:
** never a crash, never a different result reported as success.
**
** Only our own allocations fail: the binary is linked with
** -Wl,--wrap=malloc (and calloc, realloc, strdup), which redirects the
** calls in our objects and leaves llama.cpp's and libc's own alone.
*/
#include "harness.h"

#include <lmql.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gbnf.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t k);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t k);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

static atomic_long g_count;      /* allocations so far */
static atomic_long g_fail_at;    /* the one that fails (1-based); 0: none */

static bool fail_now(void) {
    long k = atomic_fetch_add(&g_count, 1) + 1;
    return k == atomic_load(&g_fail_at);
}
void *__wrap_malloc(size_t n) { return fail_now() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t k) { return fail_now() ? NULL : __real_calloc(n, k); }
void *__wrap_realloc(void *p, size_t n) { return fail_now() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return fail_now() ? NULL : __real_strdup(s); }

static bool g_compile_only;      /* compile, do not run */
static const char *g_gbnf_text;  /* not NULL: src is a GBNF grammar, to compile and match this text with */

/* A GBNF grammar compiled, and g_gbnf_text matched: its sizes and the
** answer, or the error, in out. */
static lmql_status gbnf_once(const char *src, char *out, size_t cap) {
    struct lmql__err e = {0};
    struct lmql_grammar *g = lmql__gbnf_compile(src, strlen(src), NULL, &e);
    if (!g) {
        snprintf(out, cap, "%d:%d %s", e.pos.line, e.pos.col, e.msg);
        return e.status;
    }
    int acc = lmql__grammar_accepts(g, g_gbnf_text, strlen(g_gbnf_text));
    snprintf(out, cap, acc < 0 ? "out of memory" : "%d nonterminals, %d terminals, accepts %d",
             lmql__grammar_n_nonterminals(g), lmql__grammar_n_terminals(g), acc);
    lmql__grammar_free(g);
    return acc < 0 ? LMQL_ERR_NOMEM : LMQL_OK;
}

/* One run: the status, and the result's JSON (or the error) in out. */
static lmql_status run_once(const char *src, char *out, size_t cap) {
    if (g_gbnf_text) return gbnf_once(src, out, cap);
    struct lmql *L = lmql_init(NULL);
    if (!L) { snprintf(out, cap, "out of memory"); return LMQL_ERR_NOMEM; }
    struct lmql_program *P = lmql_program_compile(L, "<alloc>", src, strlen(src));
    struct lmql_result *R = NULL;
    lmql_status st = !P ? lmql_error_status(L) : g_compile_only ? LMQL_OK : lmql_run(L, P, NULL, &R);
    if (st == LMQL_OK && g_compile_only) {
        snprintf(out, cap, "compiled");
        lmql_program_free(P);
        lmql_free(L);
        return st;
    }
    if (st == LMQL_OK) snprintf(out, cap, "%s", lmql_result_json(R) ? lmql_result_json(R) : "(null)");
    else snprintf(out, cap, "%s", lmql_errmsg(L) ? lmql_errmsg(L) : "(no message)");
    lmql_result_free(R);
    lmql_program_free(P);
    lmql_free(L);
    return st;
}

/* run_once in a child process, so that a crash is one failure reported
** and not the end of the test: the status, and the text in out. */
static lmql_status run_child(const char *src, long fail_at, char *out, size_t cap, int *signal_out) {
    int fd[2];
    *signal_out = 0;
    if (pipe(fd)) { snprintf(out, cap, "pipe failed"); return LMQL_ERR_MISUSE; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        static char buf[8192];
        atomic_store(&g_count, 0);
        atomic_store(&g_fail_at, fail_at);
        lmql_status st = run_once(src, buf, sizeof buf);
        atomic_store(&g_fail_at, 0);
        int32_t s32 = st;
        ssize_t w = write(fd[1], &s32, sizeof s32);
        w += write(fd[1], buf, strlen(buf));
        _exit(w > 0 ? 0 : 1);
    }
    close(fd[1]);
    int32_t s32 = 0;
    size_t n = 0;
    ssize_t r = read(fd[0], &s32, sizeof s32);
    bool have = r == (ssize_t)sizeof s32;
    while (have && n + 1 < cap && (r = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(fd[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    if (WIFSIGNALED(ws)) *signal_out = WTERMSIG(ws);
    if (!have) snprintf(out, cap, "the run died (signal %d)", *signal_out);
    return have ? (lmql_status)s32 : LMQL_ERR_MISUSE;
}

/* The allocations to fail: all of the first ones, then as many again spread
** over the rest (fewer under the sanitizers, where each run is slower). */
#if defined(__SANITIZE_ADDRESS__)
#define FIRST 60
#else
#define FIRST 150
#endif
static long next_n(long n, long total) {
    if (n < FIRST) return n + 1;
    return n + (total - FIRST) / FIRST + 1;
}

static void fail_each(const char *name, const char *src, lmql_status want) {
    char expect[8192], got[8192];
    atomic_store(&g_fail_at, 0);
    atomic_store(&g_count, 0);
    lmql_status st0 = run_once(src, expect, sizeof expect);
    long total = atomic_load(&g_count);
    if (st0 != want) {
        th_fail(__FILE__, __LINE__, "%s: the run without failures gives status %d (%s), expected %d", name, st0, expect,
                want);
        return;
    }
    int bad = 0, nomem = 0, same = 0;
    for (long n = 1; n <= total && bad < 40; n = next_n(n, total)) {
        int sig;
        lmql_status st = run_child(src, n, got, sizeof got, &sig);
        if (!sig && st == st0 && !strcmp(got, expect)) {
            same++;
        } else if (st == LMQL_ERR_NOMEM && strstr(got, "out of memory")) {
            nomem++;
        } else {
            bad++;
            th_fail(__FILE__, __LINE__, "%s: allocation %ld of %ld failing gave status %d '%.300s' (expected %d '%.300s' "
                    "or out of memory)", name, n, total, st, got, st0, expect);
        }
    }
    if (!bad) th_passed++;
    printf("# %s: %ld allocations; failing each of %d of them: %d same result, %d out of memory\n", name, total,
           same + nomem, same, nomem);
}

/* Compiling (lexer, parser, where checks, error messages) under failures. */
static void test_compile(void) {
    g_compile_only = true;
    fail_each("compile: a script with a loop, a hole and a return value",
              "argmax\n    items = []\n    for i in range(3):\n        \"Item {i}:[X]\\n\"\n        items.append(X)\n"
              "    return {\"items\": items, \"n\": len(items)}\nfrom lmql.model(\"random\", seed=1)\n"
              "where len(TOKENS(X)) < 3 and STOPS_AT(X, \"\\n\")",
              LMQL_OK);
    fail_each("compile: a query function, a distribution and a nested query",
              "@lmql.query\ndef q(a):\n    '''lmql\n    \"{a}:[Y]\" where len(Y) < 5\n    return Y\n    '''\n"
              "argmax \"A [Z: q('x')] and [C]\" from \"random\" distribution C in [\" yes\", \" no\"]",
              LMQL_OK);
    fail_each("compile: a constraint LMQL rejects", "argmax \"[X]\" from \"random\" where len(TOKENS(X)) <= 3",
              LMQL_ERR_QUERY);
    fail_each("compile: a syntax error", "argmax \"[X]\" from \"random\" where (len(X) < 3", LMQL_ERR_QUERY);
    g_compile_only = false;
}

/* GBNF grammars compiled (parser, checks, regex terminals, rules) and
** matched under failures. */
static void test_gbnf(void) {
    g_gbnf_text = "{\"a\": [1, -2.5e3, \"x\\n\"], \"b\": {}}";
    fail_each("gbnf: a JSON grammar",
              "root   ::= object\n"
              "value  ::= object | array | string | number | (\"true\" | \"false\" | \"null\") ws\n"
              "object ::= \"{\" ws ( string \":\" ws value (\",\" ws string \":\" ws value)* )? \"}\" ws\n"
              "array  ::= \"[\" ws ( value (\",\" ws value)* )? \"]\" ws\n"
              "string ::= \"\\\"\" ( [^\"\\\\\\x7F\\x00-\\x1F] | \"\\\\\" ([\"\\\\/bfnrt] | \"u\" [0-9a-fA-F]{4}) )* "
              "\"\\\"\" ws\n"
              "number ::= \"-\"? ([0-9] | [1-9] [0-9]{0,15}) (\".\" [0-9]+)? ([eE] [-+]? [0-9]+)? ws\n"
              "ws     ::= | \" \" | \"\\n\" [ \\t]{0,20}\n",
              LMQL_OK);
    g_gbnf_text = "(x),- x,";
    fail_each("gbnf: left recursion", "root ::= a\na ::= b \"x\"\nb ::= [ ]* a | \"y\"\n", LMQL_ERR_QUERY);
    fail_each("gbnf: repetitions of a recursive rule",
              "root ::= (item \",\"){2,4} item?\nitem ::= \"(\" item \")\" | \"x\" | \"-\" ws item\nws ::= [ \\t] ws | \"\"\n",
              LMQL_OK);
    g_gbnf_text = NULL;
}

/* Whole runs: a script on the random model, a distribution on a llama.cpp
** model, two sampled sequences in threads, role tags through a chat template. */
static void test_runs(void) {
    fail_each("random model, a script with a loop and a return value",
              "argmax\n    items = []\n    for i in range(3):\n        \"Item {i}:[X]\\n\"\n        items.append(X)\n"
              "    return {\"items\": items, \"n\": len(items)}\nfrom lmql.model(\"random\", seed=1)\n"
              "where len(TOKENS(X)) < 3",
              LMQL_OK);
    fail_each("tiny llama.cpp model, a distribution",
              "argmax \"Ripe?[R]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" distribution R in [\" yes\", \" no\"]",
              LMQL_OK);
    fail_each("sample(n=2)", "sample(n=2) \"A[X]\" from lmql.model(\"random\", seed=3) where len(TOKENS(X)) < 3",
              LMQL_OK);
    fail_each("role tags through a chat template (random model over tiny-llama3's vocabulary)",
              "argmax\n    \"{:system} S\\n{:user} Hi [X]\\n\"\n    \"{:assistant}[A]\"\n"
              "from lmql.model(\"random\", seed=2, vocab=\"build/models/tiny-llama3.gguf\")\n"
              "where len(TOKENS(X)) < 2 and len(TOKENS(A)) < 2",
              LMQL_OK);
    fail_each("classes: a dataclass with defaults and a factory, inheritance, methods, a cycle",
              "from dataclasses import dataclass, field, asdict\nfrom typing import List\n"
              "@dataclass\nclass P:\n    name: str\n    tags: List[str] = field(default_factory=list)\n"
              "    n: int = 2\n    def f(self, k):\n        return self.n * k\n"
              "@dataclass(eq=False)\nclass Q(P):\n    z: float = 0.5\n"
              "class C:\n    def __init__(self, v):\n        self.v = v\n        self.me = self\n"
              "argmax\n    p = P(\"a\", [\"x\"])\n    q = Q(\"b\", n=3)\n    c = C(p)\n    p.tags.append(\"y\")\n"
              "    \"{p} {q!r} {p == P('a', ['x', 'y'])} {q.f(2)} {asdict(q)} {isinstance(q, P)} {type(c) is C}\"\n"
              "    return [p, q, c.v]\nfrom \"random\"",
              LMQL_OK);
}

/* ------------------------------------------------------------ server -- */

/* A WebSocket client on plain sockets and the stack: it allocates nothing
** through our code, so only the server's allocations are counted. */
static int ws_connect(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {10, 0};   /* a reply that never comes is a failure, not a wait */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) { if (fd >= 0) close(fd); return -1; }
    const char *hs = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    if (write(fd, hs, strlen(hs)) != (ssize_t)strlen(hs)) { close(fd); return -1; }
    char head[1024];
    size_t n = 0;
    while (n < sizeof head - 1) {   /* byte by byte: the frames after the head stay in the socket */
        if (read(fd, head + n, 1) != 1) { close(fd); return -1; }
        n++;
        if (n >= 4 && !memcmp(head + n - 4, "\r\n\r\n", 4)) break;
    }
    head[n] = 0;
    if (!strstr(head, " 101 ")) { close(fd); return -1; }
    return fd;
}

static int ws_send(int fd, const char *text) {
    unsigned char f[4096];
    size_t n = strlen(text), h = 0;
    if (n + 8 > sizeof f) return -1;
    f[h++] = 0x81;
    if (n < 126) f[h++] = (unsigned char)(0x80 | n);
    else { f[h++] = 0x80 | 126; f[h++] = (unsigned char)(n >> 8); f[h++] = (unsigned char)n; }
    const unsigned char mask[4] = {1, 2, 3, 4};
    memcpy(f + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) f[h + i] = (unsigned char)text[i] ^ mask[i & 3];
    return write(fd, f, h + n) == (ssize_t)(h + n) ? 0 : -1;
}

/* 0, -1 when the connection closed, -2 when nothing came for the timeout. */
static int read_full(int fd, void *p, size_t n) {
    for (size_t got = 0; got < n;) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return -2;
        if (r <= 0) return -1;
        got += (size_t)r;
    }
    return 0;
}

/* The next message's text; -1 for a close frame, a closed connection or an
** oversized message, -2 when nothing came for the timeout. */
static int ws_recv(int fd, char *out, size_t cap) {
    unsigned char h[10];
    int rc = read_full(fd, h, 2);
    if (rc) return rc;
    uint64_t n = h[1] & 0x7F;
    if (n == 126) { if (read_full(fd, h + 2, 2)) return -1; n = (uint64_t)h[2] << 8 | h[3]; }
    else if (n == 127) { if (read_full(fd, h + 2, 8)) return -1; n = 0; for (int i = 0; i < 8; i++) n = n << 8 | h[2 + i]; }
    if ((h[0] & 0x0F) == 8 || n >= cap) return -1;
    if (read_full(fd, out, (size_t)n)) return -1;
    out[n] = 0;
    return 0;
}

/* A GENERATE (or with score, a SCORE) on fd as stream sid: the token ids,
** as text, into toks; 0 when the stream finished, 1 when the server answered
** with an error, -1 when the connection closed, -2 when the server stopped
** answering (a hang). */
static int request(int fd, int sid, bool score, char *toks, size_t cap) {
    char req[256], msg[1 << 16];
    if (score)
        snprintf(req, sizeof req, "SCORE {\"stream_id\": %d, \"prompt\": [1, 450], \"scored\": [4996, 338, 263, 1243]}",
                 sid);
    else
        snprintf(req, sizeof req, "GENERATE {\"stream_id\": %d, \"prompt\": [1, 450, 4996], \"max_tokens\": 6, "
                 "\"temperature\": 0}", sid);
    toks[0] = 0;
    if (ws_send(fd, req)) return -1;
    for (;;) {
        int rc = ws_recv(fd, msg, sizeof msg);
        if (rc) return rc;
        if (strstr(msg, "\"error\"")) return 1;
        const char *t = strstr(msg, "\"token\": ");
        if (t && strlen(toks) + 16 < cap) {
            strncat(toks, t + 9, strspn(t + 9, "0123456789"));
            strcat(toks, " ");
        }
        if (strstr(msg, "\"finish_reason\": \"")) return 0;
    }
}

static void *serve_thread(void *S) {
    lmql_server_run(S);
    return NULL;
}

/* One child: a server, a request (GENERATE or SCORE) with allocation fail_at
** failing (0: none), then the same request with none, which must be
** answered in full. Writes "outcome first-tokens|second-tokens count" to wfd. */
static void server_child(long fail_at, bool score, int wfd) {
    struct lmql_server_params p;
    lmql_server_default_params(&p);
    const char *keys[] = {"n_ctx"}, *vals[] = {"512"};
    p.model = "llama.cpp:build/models/tiny-spm.gguf";
    p.port = 0;
    p.quiet = 1;
    p.param_keys = keys;
    p.param_values = vals;
    p.n_params = 1;
    char err[256], out[2048], t1[512], t2[512];
    struct lmql_server *S = lmql_server_open(&p, err, sizeof err);
    pthread_t th;
    if (!S || pthread_create(&th, NULL, serve_thread, S)) _exit(3);
    int fd = ws_connect(lmql_server_port(S));
    if (fd < 0) _exit(3);
    atomic_store(&g_count, 0);
    atomic_store(&g_fail_at, fail_at);
    int r1 = request(fd, 1, score, t1, sizeof t1);
    atomic_store(&g_fail_at, 0);
    long used = atomic_load(&g_count);
    if (r1 < 0) {   /* the connection went (or hangs): a new one must be served */
        close(fd);
        fd = ws_connect(lmql_server_port(S));
    }
    int r2 = fd < 0 ? -1 : request(fd, 2, score, t2, sizeof t2);
    int len = snprintf(out, sizeof out, "%d %d %s|%s %ld", r1, r2, t1, t2, used);
    ssize_t w = write(wfd, out, (size_t)len);
    (void)w;
    _exit(0);   /* the server's threads go with the process */
}

static int server_run(long fail_at, bool score, char *out, size_t cap) {
    int fd[2];
    if (pipe(fd)) return -1;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        server_child(fail_at, score, fd[1]);
    }
    close(fd[1]);
    size_t n = 0;
    ssize_t r;
    while (n + 1 < cap && (r = read(fd[0], out + n, cap - 1 - n)) > 0) n += (size_t)r;
    out[n] = 0;
    close(fd[0]);
    int ws = 0;
    waitpid(pid, &ws, 0);
    return WIFSIGNALED(ws) ? -WTERMSIG(ws) : WEXITSTATUS(ws);
}

/* A server handling GENERATE or SCORE with each of its allocations failing
** in turn: the request is answered in full or with an error (or its
** connection closes), and the next request is answered in full. */
static void server_fails(bool score) {
    const char *what = score ? "SCORE" : "GENERATE";
    char base[2048], got[2048];
    if (server_run(0, score, base, sizeof base) || strncmp(base, "0 0 ", 4)) {
        th_fail(__FILE__, __LINE__, "server %s: the run without failures gave '%s'", what, base);
        return;
    }
    long total = atol(strrchr(base, ' ') + 1);
    char expect[1024];
    snprintf(expect, sizeof expect, "%.*s", (int)(strrchr(base, ' ') - base - 4), base + 4);   /* "t1|t2" */
    const char *bar = strchr(expect, '|');
    int bad = 0, same = 0, refused = 0;
    for (long n = 1; n <= total && bad < 10; n = next_n(n, total)) {
        int rc = server_run(n, score, got, sizeof got);
        int r1 = -9, r2 = -9;
        char toks[1024] = "";
        if (rc == 0) sscanf(got, "%d %d %1023[^\n]", &r1, &r2, toks);
        char *cut = strrchr(toks, ' ');
        if (cut) *cut = 0;   /* drop the count */
        const char *second = strchr(toks, '|');
        bool ok = rc == 0 && r1 != -2 && r2 == 0 && second && !strcmp(second + 1, bar + 1) &&
                  (r1 != 0 || !strncmp(toks, expect, (size_t)(bar - expect) + 1));
        if (ok && r1 == 0) same++;
        else if (ok) refused++;
        else {
            bad++;
            th_fail(__FILE__, __LINE__, "server %s: allocation %ld of %ld failing: exit %d, '%s' (expected '%s')", what, n,
                    total, rc, got, base);
        }
    }
    if (!bad) th_passed++;
    printf("# server %s: %ld allocations; failing each of %d of them: %d same tokens, %d error or closed, "
           "then served\n", what, total, same + refused, same, refused);
}

static void test_server(void) {
    server_fails(false);
    server_fails(true);
}

int main(void) {
    /* LMQL_ALLOC_ONE="QUERY N": run QUERY once with allocation N failing, in
    ** this process (for a debugger or the sanitizers), and print what came. */
    const char *one = getenv("LMQL_ALLOC_ONE");
    if (one) {
        char out[8192];
        long n = atol(one);
        const char *src = strchr(one, ' ');
        atomic_store(&g_fail_at, n);
        lmql_status st = run_once(src ? src + 1 : "", out, sizeof out);
        printf("status %d: %s\n", st, out);
        return 0;
    }
    RUN(test_compile);
    RUN(test_gbnf);
    RUN(test_runs);
    RUN(test_server);
    return th_report("alloc");
}
