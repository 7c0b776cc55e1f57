/*
** Plain HTTP next to LMTP on the server's port, for load balancers and
** monitoring: GET /health (is this replica ready to take work) and
** GET /metrics (Prometheus text exposition format, version 0.0.4).
**
** Both are answered on the transport thread from counters it and the
** engine keep anyway, so a probe costs no model time. The same access rules
** as a WebSocket apply: a browser Origin must be allowed; with --token set,
** /metrics needs the token and /health without it says only ready or not
** (a load balancer's check needs no secret, and learns nothing else).
*/
#include <stdio.h>
#include <string.h>

#include "serve_int.h"

static void respond(struct conn *c, int status, const char *reason, const char *type, const char *body, size_t n) {
    char head[320];
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\nCache-Control: no-store\r\n"
                      "Connection: close\r\n\r\n", status, reason, type, n);
    lmql__buf_add(&c->tx, head, (size_t)hn);
    lmql__buf_add(&c->tx, body, n);
    c->closing = true;
}

/* The path of the request target, without its query. */
static bool path_is(const struct lmql__ws_request *rq, const char *path) {
    size_t n = strlen(path), end = 0;
    while (end < rq->target_len && rq->target[end] != '?') end++;
    return end == n && !memcmp(rq->target, path, n);
}

static void health(struct conn *c, bool authorized) {
    struct lmql_server *S = c->srv;
    struct lmql__engine_stats st;
    lmql__engine_stats(S->eng, &st);
    const char *state = S->draining ? "draining" : "ready";
    bool ok = !S->draining;
    struct lmql__buf b = {0};
    lmql__buf_addf(&b, "{\"status\": \"%s\"", state);
    if (authorized) {
        lmql__buf_adds(&b, ", \"model\": ");
        lmql__buf_json_str(&b, S->model_id, strlen(S->model_id));
        lmql__buf_addf(&b, ", \"n_vocab\": %d, \"n_ctx\": %d, \"slots_busy\": %d, \"slots_free\": %d, "
                       "\"streams_running\": %d, \"streams_waiting\": %d, \"connections\": %d",
                       S->m->vocab->n_tokens, S->m->n_ctx, st.slots_busy, st.slots_total - st.slots_busy, st.running,
                       st.waiting, lmql__serve_open_conns(S));
    }
    lmql__buf_adds(&b, "}\n");
    if (b.data) respond(c, ok ? 200 : 503, ok ? "OK" : "Service Unavailable", "application/json", b.data, b.len);
    lmql__buf_free(&b);
}

static void counter(struct lmql__buf *b, const char *name, const char *help) {
    lmql__buf_addf(b, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
}

static void gauge(struct lmql__buf *b, const char *name, const char *help, double v) {
    lmql__buf_addf(b, "# HELP %s %s\n# TYPE %s gauge\n%s %.17g\n", name, help, name, name, v);
}

static void histogram(struct lmql__buf *b, const char *name, const char *help, const struct lmql__engine_hist *h) {
    lmql__buf_addf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < LMQL_ENGINE_NBUCKETS; i++) {
        cum += h->n[i];
        lmql__buf_addf(b, "%s_bucket{le=\"%g\"} %llu\n", name, lmql__engine_buckets[i], (unsigned long long)cum);
    }
    lmql__buf_addf(b, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                   (unsigned long long)h->count, name, h->sum, name, (unsigned long long)h->count);
}

static void metrics(struct conn *c) {
    struct lmql_server *S = c->srv;
    struct lmql__engine_stats st;
    lmql__engine_stats(S->eng, &st);
    static const char *const names[LMTP_UNKNOWN + 2] = {"GENERATE", "SCORE", "MODEL_INFO", "CANCEL",
                                                        "VOCAB", "TOKENIZE", "UNKNOWN", "INVALID"};
    struct lmql__buf b = {0};
    counter(&b, "lmql_requests_total", "LMTP requests by command and outcome (GENERATE and SCORE: how their streams ended)");
    for (int k = 0; k <= LMTP_UNKNOWN + 1; k++) {
        const char *n = names[k];
        if (k <= LMTP_SCORE) {
            static const char *const outcome[3] = {"ok", "error", "cancelled"};
            for (int o = 0; o < 3; o++)
                lmql__buf_addf(&b, "lmql_requests_total{command=\"%s\",outcome=\"%s\"} %llu\n", n, outcome[o],
                               (unsigned long long)st.done[k][o]);
            lmql__buf_addf(&b, "lmql_requests_total{command=\"%s\",outcome=\"refused\"} %llu\n", n,
                           (unsigned long long)S->cmd_err[k]);
        } else if (k != LMTP_UNKNOWN) {   /* an unknown command does not parse: INVALID */
            if (k != LMTP_UNKNOWN + 1)
                lmql__buf_addf(&b, "lmql_requests_total{command=\"%s\",outcome=\"ok\"} %llu\n", n,
                               (unsigned long long)S->cmd_ok[k]);
            lmql__buf_addf(&b, "lmql_requests_total{command=\"%s\",outcome=\"error\"} %llu\n", n,
                           (unsigned long long)S->cmd_err[k]);
        }
    }
    counter(&b, "lmql_tokens_generated_total", "tokens sampled and sent to clients");
    lmql__buf_addf(&b, "lmql_tokens_generated_total %llu\n", (unsigned long long)st.tokens_generated);
    counter(&b, "lmql_tokens_evaluated_total", "tokens run through the model (prompts past their cached prefix, scored and generated tokens)");
    lmql__buf_addf(&b, "lmql_tokens_evaluated_total %llu\n", (unsigned long long)st.tokens_evaluated);
    counter(&b, "lmql_prefix_cache_hit_tokens_total", "prompt tokens found in a sequence slot's cache and not evaluated again");
    lmql__buf_addf(&b, "lmql_prefix_cache_hit_tokens_total %llu\n", (unsigned long long)st.prefix_hit_tokens);
    gauge(&b, "lmql_streams_running", "streams holding a sequence slot", st.running);
    gauge(&b, "lmql_streams_waiting", "streams queued for a slot or KV space", st.waiting);
    gauge(&b, "lmql_slots_busy", "sequence slots in use", st.slots_busy);
    gauge(&b, "lmql_slots_total", "sequence slots (n_seq_max)", st.slots_total);
    gauge(&b, "lmql_kv_cells_used", "KV cells reserved by running streams", (double)st.kv_used);
    gauge(&b, "lmql_kv_cells_total", "KV cells in all (n_ctx)", (double)st.kv_total);
    gauge(&b, "lmql_connections", "open WebSocket connections", lmql__serve_open_conns(S));
    counter(&b, "lmql_connections_total", "WebSocket connections accepted (handshake done)");
    lmql__buf_addf(&b, "lmql_connections_total %llu\n", (unsigned long long)S->conns_total);
    gauge(&b, "lmql_draining", "1 while the server drains after SIGTERM", S->draining);
    histogram(&b, "lmql_request_duration_seconds", "GENERATE and SCORE streams: queued to last reply", &st.latency);
    histogram(&b, "lmql_time_to_first_token_seconds", "GENERATE streams: queued to first token sent", &st.ttft);
    counter(&b, "lmql_errors_total", "errors by kind");
    const struct { const char *kind; uint64_t n; } errs[] = {
        {"context_full", st.errors_context},      {"evaluation", st.errors_eval},
        {"slow_reader", st.errors_slow_reader},   {"stream_other", st.errors_other},
        {"bad_request", S->cmd_err[LMTP_UNKNOWN + 1]},
        {"handshake_refused", S->refused_handshakes}, {"protocol", S->protocol_errors},
        {"draining", S->refused_draining},
    };
    for (size_t i = 0; i < sizeof errs / sizeof *errs; i++)
        lmql__buf_addf(&b, "lmql_errors_total{kind=\"%s\"} %llu\n", errs[i].kind, (unsigned long long)errs[i].n);
    if (b.data) respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    lmql__buf_free(&b);
}

bool lmql__serve_http(struct conn *c, const struct lmql__ws_request *rq) {
    struct lmql_server *S = c->srv;
    bool is_health = path_is(rq, "/health"), is_metrics = path_is(rq, "/metrics");
    if (!is_health && !is_metrics) return false;
    S->http_requests++;
    /* A browser page elsewhere gets nothing, as for a WebSocket; the token
    ** decides how much is said. */
    if (!lmql__serve_origin_ok(S, rq)) {
        const char *msg = "origin not allowed (see --allow-origin)\n";
        respond(c, 403, "Forbidden", "text/plain", msg, strlen(msg));
        return true;
    }
    bool authorized = lmql__serve_token_ok(S, rq);
    if (is_health) {
        health(c, authorized);
    } else if (!authorized) {
        const char *msg = "a valid token is required\n";
        respond(c, 401, "Unauthorized", "text/plain", msg, strlen(msg));
    } else {
        metrics(c);
    }
    return true;
}
