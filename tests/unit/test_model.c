/*
** The model layer on the real llama.cpp: tokenizers of three real
** vocabularies, token bytes, KV-cache prefix reuse, forks and rollbacks,
** every bad-file error, and the random model.
** Run from the repository root after `make testdata`.
*/
#include "harness.h"
#include "model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const VOCABS[] = {
    "build/vocab/ggml-vocab-llama-spm.gguf",
    "build/vocab/ggml-vocab-gpt-2.gguf",
    "build/vocab/ggml-vocab-llama-bpe.gguf",
};
#define TINY_SPM "build/models/tiny-spm.gguf"

static struct lmql__model *open_vocab(const char *path) {
    struct lmql__err err = {0};
    struct lmql__kv kv = {"vocab_only", "true"};
    struct lmql__model *m = lmql__llama_open(path, &kv, 1, &err);
    if (!m) th_fail(__FILE__, __LINE__, "open %s: %s", path, err.msg);
    return m;
}

static struct lmql__model *open_tiny(const char *path, const struct lmql__kv *kv, int n) {
    struct lmql__err err = {0};
    struct lmql__model *m = lmql__llama_open(path, kv, n, &err);
    if (!m) th_fail(__FILE__, __LINE__, "open %s: %s", path, err.msg);
    return m;
}

static int32_t tok(struct lmql__model *m, const char *s, bool bos, bool cont, int32_t *out, int32_t cap) {
    struct lmql__err err;
    return m->ops->tokenize(m, s, strlen(s), bos, cont, out, cap, &err);
}

/* Text that continues a prompt comes back byte for byte, whatever the
** tokenizer: spaces, digits, accents, CJK, emoji through byte fallback. */
static void test_roundtrip(void) {
    static const char *const texts[] = {
        "Hello world", " Hello world", "  two leading spaces", "12345 67.89", "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac",
        "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", "\xf0\x9f\xa6\x99 llama", "tab\there\nnew line\n\n", "a", " ",
        "Say 'this is a test':", "x = [1, 2]; {\"k\": null}",
    };
    for (size_t v = 0; v < sizeof VOCABS / sizeof *VOCABS; v++) {
        struct lmql__model *m = open_vocab(VOCABS[v]);
        if (!m) continue;
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            int32_t t[256];
            int32_t n = tok(m, texts[i], false, true, t, 256);
            CHECK(n > 0);
            char out[512];
            size_t len = lmql__vocab_detok(m->vocab, t, n, out, sizeof out - 1);
            out[len] = 0;
            CHECK_STR(out, texts[i]);
        }
        lmql__model_free(m);
    }
}

/* Facts of the llama SPM vocabulary (32000 tokens, BOS 1, EOS 2). */
static void test_spm_tokens(void) {
    struct lmql__model *m = open_vocab(VOCABS[0]);
    if (!m) return;
    CHECK_INT(m->vocab->n_tokens, 32000);
    CHECK_INT(m->vocab->bos, 1);
    CHECK_INT(m->vocab->eos, 2);
    CHECK(m->vocab->add_bos);
    CHECK(m->vocab->is_eog[2]);
    int32_t t[64];
    /* A document start gets SPM's prefix space; BOS is added on request. */
    CHECK_INT(tok(m, "Hello world", true, false, t, 64), 3);
    CHECK_INT(t[0], 1); CHECK_INT(t[1], 15043); CHECK_INT(t[2], 3186);
    CHECK_INT(tok(m, "  two leading spaces", false, false, t, 64), 4);
    CHECK_INT(t[0], 259);
    /* Digits split one per token: ▁ 1 2 3 4 5 ▁ 6 7 . 8 9 */
    CHECK_INT(tok(m, "12345 67.89", false, false, t, 64), 12);
    CHECK_INT(t[0], 29871);
    CHECK_INT(t[1], 29896);
    /* Emoji fall back to one byte token per UTF-8 byte. */
    int32_t n = tok(m, "\xf0\x9f\xa6\x99", false, true, t, 64);
    CHECK_INT(n, 4);
    CHECK_INT(t[0], 243); CHECK_INT(t[3], 156);
    uint32_t len;
    const char *p = lmql__vocab_piece(m->vocab, 243, &len);
    CHECK_INT(len, 1);
    CHECK_INT((unsigned char)p[0], 0xF0);
    p = lmql__vocab_piece(m->vocab, 15043, &len);
    CHECK(len == 6 && !memcmp(p, " Hello", 6));
    /* Control tokens have no text. */
    lmql__vocab_piece(m->vocab, 1, &len);
    CHECK_INT(len, 0);
    /* A continuation does not invent a space. */
    n = tok(m, "world", false, true, t, 64);
    CHECK(n >= 1);
    p = lmql__vocab_piece(m->vocab, t[0], &len);
    CHECK(p[0] == 'w');
    /* Too small a buffer reports the size needed. */
    CHECK_INT(tok(m, "Hello world", true, false, t, 1), -3);
    lmql__model_free(m);
}

static void test_bpe_vocabs(void) {
    struct lmql__model *m = open_vocab(VOCABS[1]);
    if (m) {
        CHECK_INT(m->vocab->n_tokens, 50257);
        int32_t t[16];
        int32_t n = tok(m, " Hello", false, false, t, 16);
        CHECK_INT(n, 1);
        uint32_t len;
        const char *p = lmql__vocab_piece(m->vocab, t[0], &len);
        CHECK(len == 6 && !memcmp(p, " Hello", 6));   /* GPT-2's Ġ is a space */
        lmql__model_free(m);
    }
    m = open_vocab(VOCABS[2]);
    if (m) {
        CHECK_INT(m->vocab->n_tokens, 128256);
        int32_t t[16];
        CHECK(tok(m, "Hello", true, false, t, 16) >= 2);
        CHECK_INT(t[0], m->vocab->bos);
        lmql__model_free(m);
    }
}

static int32_t argmax(const float *x, int32_t n) {
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++) if (x[i] > x[b]) b = i;
    return b;
}

static int32_t eval1(struct lmql__model *m, int slot, const int32_t *t, int32_t n) {
    struct lmql__eval_req r = {slot, t, n, NULL, NULL};
    const float *lp;
    struct lmql__err err;
    if (m->ops->next_logprobs(m, 1, &r, &lp, &err)) {
        th_fail(__FILE__, __LINE__, "eval: %s", err.msg);
        return -1;
    }
    return argmax(lp, m->vocab->n_tokens);
}

/* A sequence that shares a prefix with the slot decodes only the suffix. */
static void test_prefix_reuse(void) {
    struct lmql__model *m = open_tiny(TINY_SPM, NULL, 0);
    if (!m) return;
    int32_t t[64];
    int32_t n = tok(m, "Say 'this is a test': and some more words here", true, false, t, 60);
    CHECK(n > 10);
    uint64_t d0 = m->stats.n_decoded;
    int32_t a = eval1(m, 0, t, n);
    CHECK_INT(m->stats.n_decoded - d0, n);
    /* Extend by the argmax: one token decoded. */
    t[n] = a;
    d0 = m->stats.n_decoded;
    eval1(m, 0, t, n + 1);
    CHECK_INT(m->stats.n_decoded - d0, 1);
    /* The same sequence again: nothing decoded. */
    d0 = m->stats.n_decoded;
    eval1(m, 0, t, n + 1);
    CHECK_INT(m->stats.n_decoded - d0, 0);
    /* Change the last three tokens: three decoded. */
    t[n - 2] = 100; t[n - 1] = 200; t[n] = 300;
    d0 = m->stats.n_decoded;
    eval1(m, 0, t, n + 1);
    CHECK_INT(m->stats.n_decoded - d0, 3);
    lmql__model_free(m);
}

/* Rolling back and forking give the argmax a fresh evaluation gives. */
static void test_fork_rollback(void) {
    struct lmql__model *m = open_tiny(TINY_SPM, NULL, 0);
    struct lmql__model *fresh = open_tiny(TINY_SPM, NULL, 0);
    if (!m || !fresh) { lmql__model_free(m); lmql__model_free(fresh); return; }
    int32_t t[80];
    int32_t n = tok(m, "The quick brown fox jumps over", true, false, t, 40);
    /* Greedy 12 tokens in slot 0. */
    int32_t len = n;
    for (int i = 0; i < 12; i++) t[len] = eval1(m, 0, t, len), len++;
    /* Roll back to the prompt in the same slot. */
    int32_t back = eval1(m, 0, t, n);
    CHECK_INT(back, eval1(fresh, 0, t, n));
    CHECK_INT(back, t[n]);
    /* Re-generate: the same continuation. */
    for (int i = 0; i < 12; i++) CHECK_INT(eval1(m, 0, t, n + i), t[n + i]);
    /* Fork slot 0 into slot 1 and continue there only. */
    m->ops->slot_copy(m, 0, 1);
    uint64_t d0 = m->stats.n_decoded;
    int32_t f = eval1(m, 1, t, n + 12);
    CHECK_INT(m->stats.n_decoded - d0, 1);      /* only the new token */
    lmql__model_free(fresh);
    fresh = open_tiny(TINY_SPM, NULL, 0);
    CHECK_INT(f, eval1(fresh, 0, t, n + 12));
    /* Two sequences in one call give what each gives alone. */
    int32_t u[40];
    memcpy(u, t, (size_t)n * sizeof *u);
    u[n] = 500; u[n + 1] = 600;
    struct lmql__eval_req reqs[2] = {{2, t, n + 5, NULL, NULL}, {3, u, n + 2, NULL, NULL}};
    const float *lp[2];
    struct lmql__err err;
    CHECK_INT(m->ops->next_logprobs(m, 2, reqs, lp, &err), 0);
    int32_t a0 = argmax(lp[0], m->vocab->n_tokens), a1 = argmax(lp[1], m->vocab->n_tokens);
    CHECK_INT(a0, eval1(fresh, 0, t, n + 5));
    CHECK_INT(a1, eval1(fresh, 0, u, n + 2));
    /* Log-probabilities are normalised. */
    double sum = 0;
    for (int32_t i = 0; i < m->vocab->n_tokens; i++) sum += exp(lp[0][i]);
    CHECK(fabs(sum - 1.0) < 1e-3);
    lmql__model_free(fresh);
    lmql__model_free(m);
}

/* score() gives what step-by-step evaluation gives, for several requests
** in one batch. */
static void test_score(void) {
    struct lmql__model *m = open_tiny(TINY_SPM, NULL, 0);
    struct lmql__model *ref = open_tiny(TINY_SPM, NULL, 0);
    if (!m || !ref) { lmql__model_free(m); lmql__model_free(ref); return; }
    int32_t a[64], b[64];
    int32_t np = tok(m, "Q: Is the sky blue? A:", true, false, a, 64);
    memcpy(b, a, (size_t)np * sizeof *a);
    int32_t na = np + tok(m, " yes it is", false, true, a + np, 64 - np);
    int32_t nb = np + tok(m, " no", false, true, b + np, 64 - np);
    /* Slot 0 holds a longer, different continuation: scoring must roll back. */
    eval1(m, 0, b, nb);
    float sa[16], sb[16], *sc[2] = {sa, sb};
    struct lmql__eval_req reqs[2] = {{0, a, na, NULL, NULL}, {1, b, nb, NULL, NULL}};
    int32_t from[2] = {np, np};
    struct lmql__err err = {0};
    CHECK_INT(m->ops->score(m, 2, reqs, from, sc, &err), 0);
    const int32_t *seqs[2] = {a, b};
    int32_t lens[2] = {na, nb};
    for (int r = 0; r < 2; r++) {
        for (int32_t i = np; i < lens[r]; i++) {
            struct lmql__eval_req q = {0, seqs[r], i, NULL, NULL};
            const float *lp;
            CHECK_INT(ref->ops->next_logprobs(ref, 1, &q, &lp, &err), 0);
            float want = lp[seqs[r][i]];
            if (fabsf(want - sc[r][i - np]) < 1e-3f) th_passed++;
            else th_fail(__FILE__, __LINE__, "score %d/%d: %f != %f", r, i, sc[r][i - np], want);
        }
    }
    /* The slots now hold the scored sequences and their next-token logits. */
    uint64_t d0 = m->stats.n_decoded;
    eval1(m, 0, a, na);
    CHECK_INT(m->stats.n_decoded - d0, 0);
    /* Prompts longer than n_batch go through several decodes. */
    struct lmql__kv small[] = {{"n_batch", "8"}};
    struct lmql__model *chunked = open_tiny(TINY_SPM, small, 1);
    if (chunked) {
        int32_t big[128];
        int32_t nb2 = tok(chunked, "one two three four five six seven eight nine ten eleven twelve thirteen", true, false,
                          big, 128);
        CHECK(nb2 > 8);
        CHECK_INT(eval1(chunked, 0, big, nb2), eval1(ref, 0, big, nb2));
        float s1[128], s2[128], *p1[1] = {s1}, *p2[1] = {s2};
        struct lmql__eval_req rq = {1, big, nb2, NULL, NULL};
        int32_t fr[1] = {2};
        CHECK_INT(chunked->ops->score(chunked, 1, &rq, fr, p1, &err), 0);
        CHECK_INT(ref->ops->score(ref, 1, &rq, fr, p2, &err), 0);
        bool close = true;
        for (int32_t i = 0; i < nb2 - 2; i++) close &= fabsf(s1[i] - s2[i]) < 1e-3f;
        CHECK(close);
        lmql__model_free(chunked);
    }
    int32_t bad_from[1] = {0};
    CHECK_INT(m->ops->score(m, 1, reqs, bad_from, sc, &err), -1);
    lmql__model_free(ref);
    lmql__model_free(m);
}

static void write_file(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(data, 1, n, f); fclose(f); }
}

static void expect_open_error(const char *path, const struct lmql__kv *kv, int n, const char *needle) {
    struct lmql__err err = {0};
    struct lmql__model *m = lmql__llama_open(path, kv, n, &err);
    CHECK(m == NULL);
    CHECK_CONTAINS(err.msg, needle);
    lmql__model_free(m);
}

/* Every bad file gets a cause, never an abort. */
static void test_bad_files(void) {
    expect_open_error("build/tests/no-such-model.gguf", NULL, 0, "cannot open model file");
    write_file("build/tests/not-a-model.gguf", "hello, world\n", 13);
    expect_open_error("build/tests/not-a-model.gguf", NULL, 0, "starts with 'hell'");
    write_file("build/tests/old.bin", "lmgg\x01\x00\x00\x00rest", 12);
    expect_open_error("build/tests/old.bin", NULL, 0, "pre-GGUF GGML model");
    expect_open_error("build/tests/old.bin", NULL, 0, "convert");
    write_file("build/tests/short.gguf", "GG", 2);
    expect_open_error("build/tests/short.gguf", NULL, 0, "only 2 bytes");
    expect_open_error("build/tests", NULL, 0, "is a directory");
    /* Truncated: the header survives, the tensor data does not. */
    FILE *f = fopen(TINY_SPM, "rb");
    if (f) {
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        fseek(f, 0, SEEK_SET);
        char *buf = malloc((size_t)size);
        if (buf && fread(buf, 1, (size_t)size, f) == (size_t)size) {
            write_file("build/tests/truncated.gguf", buf, (size_t)size * 3 / 4);
            expect_open_error("build/tests/truncated.gguf", NULL, 0, "truncated GGUF");
            write_file("build/tests/cut-header.gguf", buf, 100);
            expect_open_error("build/tests/cut-header.gguf", NULL, 0, "GGUF");
        }
        free(buf);
        fclose(f);
    }
    /* Parameters: unknown names and bad values name what is valid. */
    struct lmql__kv bad = {"n_ctxx", "10"};
    expect_open_error(TINY_SPM, &bad, 1, "unknown llama.cpp parameter 'n_ctxx'");
    expect_open_error(TINY_SPM, &bad, 1, "n_threads_batch");
    struct lmql__kv tok = {"tokenizer", "gpt2"};
    expect_open_error(TINY_SPM, &tok, 1, "a llama.cpp model always uses its GGUF's own tokenizer");
    struct lmql__kv badv = {"n_ctx", "many"};
    expect_open_error(TINY_SPM, &badv, 1, "n_ctx must be a non-negative integer");
    struct lmql__kv badb = {"use_mmap", "perhaps"};
    expect_open_error(TINY_SPM, &badb, 1, "true or false");
}

/* Files that are not regular files: a FIFO would block the open and the
** read forever (no writer), /dev/zero never ends. Each is refused by name,
** at once, whatever reads it (model, vocabulary of the random model). */
static void test_not_regular_files(void) {
    const char *fifo = "build/tests/fifo.gguf";
    alarm(60);   /* a regression blocks in open() forever: die, and fail, instead */
    unlink(fifo);
    CHECK_INT(mkfifo(fifo, 0600), 0);
    expect_open_error(fifo, NULL, 0, "'build/tests/fifo.gguf' is not a regular file (it is a FIFO");
    struct lmql__kv vo = {"vocab_only", "true"};
    expect_open_error(fifo, &vo, 1, "not a regular file");
    expect_open_error("/dev/zero", NULL, 0, "'/dev/zero' is not a regular file (it is a character device)");
    expect_open_error("build/tests", NULL, 0, "not a regular file (it is a directory)");
    struct lmql__err err = {0};
    struct lmql__kv rv = {"vocab", "build/tests/fifo.gguf"};
    CHECK(lmql__random_open(&rv, 1, NULL, &err) == NULL);
    CHECK_CONTAINS(err.msg, "vocabulary file 'build/tests/fifo.gguf' is not a regular file");
    unlink(fifo);
    alarm(0);
}

/* Parameter combinations llama.cpp aborts the process on (GGML_ASSERT) are
** refused with the valid range, or adjusted where the value only tunes
** speed: n_batch below n_seq_max is raised to it. */
static void test_param_combos(void) {
    /* n_batch=1 with 8 sequences: all 8 slots in one call must work. */
    struct lmql__kv kv[] = {{"n_batch", "1"}, {"n_threads", "1"}, {"n_ctx", "256"}};
    struct lmql__model *m = open_tiny(TINY_SPM, kv, 3);
    if (m) {
        CHECK_INT(m->n_slots, 8);
        int32_t t[8][3];
        struct lmql__eval_req r[8];
        const float *lp[8];
        for (int i = 0; i < 8; i++) {
            t[i][0] = 1, t[i][1] = 100 + i, t[i][2] = 200;
            r[i] = (struct lmql__eval_req){i, t[i], 3, NULL, NULL};
        }
        struct lmql__err err = {0};
        CHECK_INT(m->ops->next_logprobs(m, 8, r, lp, &err), 0);
        lmql__model_free(m);
    }
    /* The same with n_batch capped by a small n_ctx, and n_ubatch=1. */
    struct lmql__kv kv2[] = {{"n_ctx", "8"}, {"n_ubatch", "1"}, {"n_threads", "1"}};
    m = open_tiny(TINY_SPM, kv2, 3);
    if (m) {
        int32_t t[3] = {1, 100, 200};
        CHECK(eval1(m, 7, t, 3) >= 0);
        lmql__model_free(m);
    }
    struct lmql__kv small_ctx[] = {{"n_ctx", "8"}, {"n_seq_max", "16"}};
    expect_open_error(TINY_SPM, small_ctx, 2, "n_ctx (8) must be at least n_seq_max (16)");
    struct lmql__kv seq0 = {"n_seq_max", "0"}, seq_big = {"n_seq_max", "257"}, b0 = {"n_batch", "0"},
                    ub0 = {"n_ubatch", "0"}, thr = {"n_threads", "513"}, thr0 = {"n_threads_batch", "0"},
                    poll = {"poll", "101"}, rope = {"rope_freq_base", "-1"}, scale = {"rope_freq_scale", "-2"},
                    ctx = {"n_ctx", "3"};
    expect_open_error(TINY_SPM, &seq0, 1, "n_seq_max must be from 1 to 256");
    expect_open_error(TINY_SPM, &seq_big, 1, "n_seq_max must be from 1 to 256");
    expect_open_error(TINY_SPM, &b0, 1, "n_batch must be from 1");
    expect_open_error(TINY_SPM, &ub0, 1, "n_ubatch must be from 1");
    expect_open_error(TINY_SPM, &thr, 1, "n_threads must be from 1 to 512");
    expect_open_error(TINY_SPM, &thr0, 1, "n_threads_batch must be from 1 to 512");
    expect_open_error(TINY_SPM, &poll, 1, "poll must be from 0 to 100");
    expect_open_error(TINY_SPM, &rope, 1, "rope_freq_base must be from 0");
    expect_open_error(TINY_SPM, &scale, 1, "rope_freq_scale must be from 0");
    expect_open_error(TINY_SPM, &ctx, 1, "n_ctx must be at least 8");
    /* A KV cache far beyond the machine's memory: refused at once (llama.cpp
    ** spent minutes on it before failing or being killed). */
    struct lmql__kv huge = {"n_ctx", "2000000000"};
    alarm(60);
    expect_open_error(TINY_SPM, &huge, 1, "GiB of KV cache, more than this machine's memory");
    alarm(0);
}

/* A prompt longer than n_ctx is an error, and the model stays usable.
** llama.cpp rounds n_ctx up to a multiple of 256. */
static void test_context_overflow(void) {
    struct lmql__kv kv[] = {{"n_ctx", "16"}, {"n_threads", "1"}};
    struct lmql__model *m = open_tiny(TINY_SPM, kv, 2);
    if (!m) return;
    CHECK_INT(m->n_ctx, 256);
    static int32_t t[1024];
    char text[4096] = "";
    for (int i = 0; i < 100; i++) strcat(text, "one two three ");
    int32_t n = tok(m, text, true, false, t, 1024);
    CHECK(n > 256);
    struct lmql__eval_req r = {0, t, n, NULL, NULL};
    const float *lp;
    struct lmql__err err = {0};
    CHECK_INT(m->ops->next_logprobs(m, 1, &r, &lp, &err), -1);
    CHECK_CONTAINS(err.msg, "longer than the context (n_ctx=256)");
/* Bad token ids and slots are refused before llama.cpp sees them. */
    int32_t badt[2] = {1, 999999};
    struct lmql__eval_req rb = {0, badt, 2, NULL, NULL};
    CHECK_INT(m->ops->next_logprobs(m, 1, &rb, &lp, &err), -1);
    CHECK_CONTAINS(err.msg, "out of range");
    struct lmql__eval_req rs = {99, t, 4, NULL, NULL};
    CHECK_INT(m->ops->next_logprobs(m, 1, &rs, &lp, &err), -1);
    CHECK_CONTAINS(err.msg, "slot 99");
    CHECK(eval1(m, 0, t, 8) >= 0);
    lmql__model_free(m);
}

/* The random model: uniform scores, and LMQL's seeded draws over a real
** vocabulary. The expected tokens are what LMQL's random_model.py draws
** (computed with numpy 1.24 from its generate(): RandomState(sum of the
** ids with BOS + seed), choice over the biased distribution): for the
** ids, an unconstrained draw, 10 allowed tokens (LMQL's client biases them
** by +100) and all but 300 allowed (-100 on those). */
static void test_random_model(void) {
    struct lmql__err err = {0};
    struct lmql__kv kv[] = {{"seed", "7"}};
    struct lmql__model *a = lmql__random_open(kv, 1, VOCABS[1], &err);
    struct lmql__model *b = lmql__random_open(kv, 1, VOCABS[1], &err);
    CHECK(a && b);
    if (!a || !b) { lmql__model_free(a); lmql__model_free(b); return; }
    const int32_t V = 50257;
    CHECK_INT(a->vocab->n_tokens, V);
    CHECK_INT(a->vocab->bos, 50256);
    int32_t t1[2] = {464, 3290}, t2[1] = {50256}, t3[6] = {50256, 1, 2, 3, 4, 5};
    const struct { const int32_t *t; int32_t n; int32_t all, few, most; } cases[] = {
        {t1, 2, 28205, 1005, 28336},   /* BOS is added to the sum when the ids lack it */
        {t2, 1, 21677, 1004, 21547},
        {t3, 6, 7893, 1001, 7846},
    };
    uint8_t *all = malloc((size_t)V), *few = calloc((size_t)V, 1), *most = malloc((size_t)V);
    memset(all, 1, (size_t)V);
    for (int i = 1000; i < 1010; i++) few[i] = 1;
    for (int32_t i = 0; i < V; i++) most[i] = !(i >= 28000 && i < 28300);
    const float *lp;
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        struct lmql__eval_req r = {0, cases[k].t, cases[k].n, NULL, NULL};
        CHECK_INT(a->ops->next_logprobs(a, 1, &r, &lp, &err), 0);
        CHECK(fabsf(lp[0] - lp[V - 1]) == 0.0f);
        CHECK(fabsf(lp[5] + logf((float)V)) < 1e-4f);
        CHECK_INT(a->ops->choose(a, lp, all), cases[k].all);
        CHECK_INT(a->ops->choose(a, lp, few), cases[k].few);
        CHECK_INT(a->ops->choose(a, lp, most), cases[k].most);
        /* a draw depends on the ids, the seed and the mask only */
        CHECK_INT(b->ops->next_logprobs(b, 1, &r, &lp, &err), 0);
        CHECK_INT(b->ops->choose(b, lp, few), cases[k].few);
    }
    /* one allowed token is taken without a draw; none is no choice */
    memset(few, 0, (size_t)V);
    few[42] = 1;
    CHECK_INT(a->ops->choose(a, lp, few), 42);
    few[42] = 0;
    CHECK_INT(a->ops->choose(a, lp, few), -1);
    free(all);
    free(few);
    free(most);
    lmql__model_free(a);
    lmql__model_free(b);
    /* the seed is numpy's: 0 .. 2**32-1 (the largest here, with BOS 464 3290 summing to 54,010) */
    static const struct { const char *seed; int32_t want; } seeds[] = {{"0", 3928}, {"4294913285", 4906}};
    for (int k = 0; k < 2; k++) {
        struct lmql__kv kvs[] = {{"seed", seeds[k].seed}};
        struct lmql__model *m = lmql__random_open(kvs, 1, VOCABS[1], &err);
        CHECK(m != NULL);
        if (!m) continue;
        uint8_t *mask = malloc((size_t)V);
        memset(mask, 1, (size_t)V);
        struct lmql__eval_req r = {0, t1, 2, NULL, NULL};
        CHECK_INT(m->ops->next_logprobs(m, 1, &r, &lp, &err), 0);
        CHECK_INT(m->ops->choose(m, lp, mask), seeds[k].want);
        free(mask);
        lmql__model_free(m);
    }
    /* without seed= the session's seed applies (seed 0 until one is set);
    ** an explicit seed= stays */
    {
        struct lmql__kv s123[] = {{"seed", "123"}};
        struct lmql__model *d = lmql__random_open(NULL, 0, VOCABS[1], &err);
        struct lmql__model *e = lmql__random_open(s123, 1, VOCABS[1], &err);
        CHECK(d && e);
        if (d && e) {
            uint8_t *mask = malloc((size_t)V);
            memset(mask, 1, (size_t)V);
            struct lmql__eval_req r = {0, t1, 2, NULL, NULL};
            CHECK_INT(d->ops->next_logprobs(d, 1, &r, &lp, &err), 0);
            CHECK_INT(d->ops->choose(d, lp, mask), 3928);
            lmql__random_session_seed(d, 4294913285u);
            CHECK_INT(d->ops->choose(d, lp, mask), 4906);
            CHECK_INT(e->ops->next_logprobs(e, 1, &r, &lp, &err), 0);
            int32_t x = e->ops->choose(e, lp, mask);
            lmql__random_session_seed(e, 0);
            CHECK_INT(e->ops->choose(e, lp, mask), x);
            free(mask);
        }
        lmql__model_free(d);
        lmql__model_free(e);
    }
    struct lmql__kv neg[] = {{"seed", "-1"}}, big[] = {{"seed", "4294967296"}};
    CHECK(lmql__random_open(neg, 1, VOCABS[1], &err) == NULL);
    CHECK_CONTAINS(err.msg, "between 0 and 2**32 - 1");
    CHECK(lmql__random_open(big, 1, VOCABS[1], &err) == NULL);
    struct lmql__kv bad[] = {{"sed", "1"}};
    CHECK(lmql__random_open(bad, 1, VOCABS[1], &err) == NULL);
    CHECK_CONTAINS(err.msg, "valid: seed, vocab, chat_template");
}

/* tiny-llama3 carries Llama 3's chat template (the Makefile's rule): it is
** read from the GGUF, renders as llama.cpp's Llama 3 template, its text's
** special tokens are single tokens, and <|eot_id|> ends generation as EOS
** does. chat_template=False or a name override it; a bad name is refused. */
#define TINY_LLAMA3 "build/models/tiny-llama3.gguf"
static void test_chat_template(void) {
    struct lmql__kv kv[] = {{"vocab_only", "true"}, {"chat_template", "true"}};
    struct lmql__model *m = open_tiny(TINY_LLAMA3, kv, 2);
    if (!m) return;
    CHECK(m->chat_template && strstr(m->chat_template, "<|start_header_id|>"));
    CHECK(m->ops->tokenize_special != NULL);
    struct lmql__chat_msg msgs[] = {{"system", "S"}, {"user", "U"}};
    struct lmql__buf b = {0};
    struct lmql__err err = {0};
    CHECK_INT(lmql__chat_apply(m->chat_template, msgs, 2, &b, &err), 0);
    CHECK_STR(b.data, "<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\nU<|eot_id|>");
    lmql__buf_free(&b);
    int32_t t[16];
    CHECK_INT(m->ops->tokenize_special(m, "<|eot_id|>", 10, false, true, t, 16, &err), 1);
    CHECK_INT(t[0], 128009);
    CHECK(m->vocab->is_eog[128009]);
    CHECK(!m->vocab->is_eog[128006]);   /* <|start_header_id|> */
    CHECK(tok(m, "<|eot_id|>", false, true, t, 16) > 1);   /* the user's text is text */
    lmql__model_free(m);
    kv[1].value = "False";
    m = open_tiny(TINY_LLAMA3, kv, 2);
    CHECK(m && !m->chat_template);
    lmql__model_free(m);
    kv[1].value = "chatml";
    m = open_tiny(TINY_LLAMA3, kv, 2);
    CHECK(m && m->chat_template && !strcmp(m->chat_template, "chatml"));
    lmql__model_free(m);
    kv[1].value = "no-such-template";
    CHECK(lmql__llama_open(TINY_LLAMA3, kv, 2, &err) == NULL);
    CHECK_CONTAINS(err.msg, "not a template llama.cpp knows");
    CHECK(lmql__chat_apply("{{ unknown jinja }}", msgs, 1, &b, &err) == -1);
    CHECK_CONTAINS(err.msg, "does not know this chat template");
    lmql__buf_free(&b);
    /* The SPM vocabulary has none. */
    m = open_vocab(VOCABS[0]);
    CHECK(m && !m->chat_template);
    lmql__model_free(m);
}

/* Bytes that decode past U+10FFFF (a model or the random model can draw
** them one byte token at a time) tokenize like other invalid UTF-8: they
** used to abort the program from inside llama.cpp's BPE pre-tokenizer. */
static void test_over_range_utf8(void) {
    static const char *const texts[] = {"a\xf5\x80\x80\x80" "b", "\xf4\x90\x80\x80", "x\xf7\xbf\xbf\xbf\xf4\x90\x80\x80"};
    for (int v = 0; v < 3; v++) {
        struct lmql__err err = {0};
        struct lmql__kv kv = {"vocab_only", "true"};
        struct lmql__model *m = lmql__llama_open(VOCABS[v], &kv, 1, &err);
        CHECK(m != NULL);
        if (!m) continue;
        for (int k = 0; k < 3; k++) {
            int32_t t[64];
            CHECK(m->ops->tokenize(m, texts[k], strlen(texts[k]), false, false, t, 64, &err) > 0);
            CHECK(m->ops->tokenize(m, texts[k], strlen(texts[k]), false, true, t, 64, &err) > 0);
        }
        lmql__model_free(m);
    }
}

int main(void) {
    RUN(test_roundtrip);
    RUN(test_over_range_utf8);
    RUN(test_spm_tokens);
    RUN(test_bpe_vocabs);
    RUN(test_prefix_reuse);
    RUN(test_fork_rollback);
    RUN(test_score);
    RUN(test_bad_files);
    RUN(test_not_regular_files);
    RUN(test_param_combos);
    RUN(test_context_overflow);
    RUN(test_random_model);
    RUN(test_chat_template);
    return th_report("model");
}
