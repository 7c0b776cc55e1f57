#!/usr/bin/env python3
"""Operations of `lmql serve-model`: GET /health and GET /metrics next to
LMTP on the same port, and the graceful drain on SIGTERM. Real servers on
the tiny model; Python's standard library only.

    python3 tests/serve/test_ops.py build/bin/lmql        (repository root)

Prints `ok NAME` / `not ok NAME`, then `ops: N passed, M failed`."""
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402
from test_server import Server, bad, check, connect, gen, read_stream  # noqa: E402
from wsclient import WSError  # noqa: E402

BOS, EOS = ts.BOS, ts.EOS
PROMPT = [BOS, 450, 4996, 17354, 1701, 432]


def http_get(port, path, headers=None, version="1.1", timeout=10):
    """(status, headers dict, body) of one plain HTTP request."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout * ts.SLOW)
    lines = [f"GET {path} HTTP/{version}", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    hl = head.decode(errors="replace").split("\r\n")
    status = int(hl[0].split()[1]) if len(hl[0].split()) > 1 else 0
    hd = {}
    for line in hl[1:]:
        k, _, v = line.partition(":")
        hd[k.strip().lower()] = v.strip()
    return status, hd, body.decode(errors="replace")


# One sample line: name, optional {labels}, value (no timestamps here).
SAMPLE = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? '
                    r'(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text):
    """{(name, frozenset(labels)): value} and {name: type}; raises on a line
    that is not the text exposition format."""
    samples, types = {}, {}
    for n, line in enumerate(text.split("\n")):
        if not line:
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ", 3)
            if typ not in ("counter", "gauge", "histogram", "summary", "untyped"):
                raise ValueError(f"line {n + 1}: unknown type {typ}")
            types[name] = typ
            continue
        if line.startswith("#"):
            continue
        m = SAMPLE.fullmatch(line)
        if not m:
            raise ValueError(f"line {n + 1} is not a sample: {line!r}")
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        key = (m.group(1), labels)
        if key in samples:
            raise ValueError(f"line {n + 1}: {key} given twice")
        samples[key] = float(m.group(3))
        base = re.sub(r"_(bucket|sum|count|total)$", "", m.group(1))
        if m.group(1) not in types and base not in types and m.group(1).rsplit("_", 1)[0] not in types:
            raise ValueError(f"line {n + 1}: {m.group(1)} has no # TYPE")
    return samples, types


def metric(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def t_health():
    srv = Server("health")
    if not check("server starts", srv.wait_ready(), srv.stderr_tail()):
        return
    st, hd, body = http_get(srv.port, "/health")
    try:
        j = json.loads(body)
    except ValueError:
        j = {}
    check("/health: 200 and JSON with the model, vocabulary, n_ctx and slots",
          st == 200 and hd.get("content-type") == "application/json" and j.get("status") == "ready" and
          j.get("model") == ts.MODEL and j.get("n_vocab") == ts.N_VOCAB and j.get("n_ctx") == 1024 and
          j.get("slots_busy") == 0 and j.get("slots_free", 0) >= 1, st, body)
    st, _, body = http_get(srv.port, "/health", version="1.0")
    check("/health over HTTP/1.0 (HAProxy's default check)", st == 200 and '"ready"' in body, st, body)
    st, _, body = http_get(srv.port, "/health?x=1")
    check("/health with a query string", st == 200, st, body)
    st, _, body = http_get(srv.port, "/healthz")
    check("another path is still refused (400)", st == 400, st, body)
    st, _, body = http_get(srv.port, "/health", {"Origin": "http://evil.example"})
    check("/health from a browser page on another site: 403", st == 403, st, body)
    st, _, body = http_get(srv.port, "/metrics", {"Origin": "http://localhost:3000"})
    check("/metrics from a local page: 200", st == 200, st)
    # LMTP still works on the same port after plain requests.
    toks = ts.generate(srv, PROMPT, 4)
    check("LMTP on the same port after HTTP requests", len(toks) == 4 and toks[-1].get("finish_reason"), toks)

    tok = "s3cret-ops"
    srv2 = Server("health-token", "--token", tok)
    if not check("server with a token starts", srv2.wait_ready(), srv2.stderr_tail()):
        return
    st, _, body = http_get(srv2.port, "/health")
    check("/health without the token: ready or not, nothing else", st == 200 and json.loads(body) == {"status": "ready"},
          st, body)
    st, _, body = http_get(srv2.port, "/health", {"Authorization": "Bearer " + tok})
    check("/health with the token: the details", st == 200 and json.loads(body).get("n_ctx") == 1024, st, body)
    st, _, body = http_get(srv2.port, "/metrics")
    check("/metrics without the token: 401", st == 401 and "lmql_" not in body, st, body)
    st, _, body = http_get(srv2.port, "/metrics", {"Authorization": "Bearer wrong"})
    check("/metrics with a wrong token: 401", st == 401, st, body)
    st, _, body = http_get(srv2.port, "/metrics?token=" + tok)
    check("/metrics with ?token=: 200", st == 200 and "lmql_requests_total" in body, st)


def t_metrics():
    srv = Server("metrics")
    if not check("server starts", srv.wait_ready(), srv.stderr_tail()):
        return
    st, hd, body = http_get(srv.port, "/metrics")
    try:
        s0, types = parse_prometheus(body)
    except ValueError as e:
        bad("/metrics parses as Prometheus text", e, body[:2000])
        return
    check("/metrics: 200, Prometheus text content type, parses",
          st == 200 and hd.get("content-type", "").startswith("text/plain; version=0.0.4"), st, hd)
    want = {"lmql_requests_total": "counter", "lmql_tokens_generated_total": "counter",
            "lmql_tokens_evaluated_total": "counter", "lmql_prefix_cache_hit_tokens_total": "counter",
            "lmql_streams_running": "gauge", "lmql_streams_waiting": "gauge", "lmql_kv_cells_used": "gauge",
            "lmql_kv_cells_total": "gauge", "lmql_connections": "gauge",
            "lmql_request_duration_seconds": "histogram", "lmql_time_to_first_token_seconds": "histogram",
            "lmql_errors_total": "counter"}
    check("every metric family is there with its type", all(types.get(k) == v for k, v in want.items()),
          {k: types.get(k) for k in want})
    check("a fresh server: zero requests, KV total = n_ctx",
          metric(s0, "lmql_requests_total", command="GENERATE", outcome="ok") == 0 and
          metric(s0, "lmql_kv_cells_total") == 1024, body[:600])

    # Known traffic: 3 GENERATEs of 5 tokens (the same prompt: the 2nd and
    # 3rd find it cached), one of 3, one MODEL_INFO, one bad message, one
    # refused GENERATE (prompt over n_ctx), one CANCEL.
    ws = connect(srv)
    n_tokens = 0
    for sid in (1, 2, 3):
        gen(ws, sid, PROMPT, 5, logit_bias={str(EOS): -100})
        n_tokens += len(read_stream(ws, sid))
    gen(ws, 4, PROMPT + [29871], 3, logit_bias={str(EOS): -100})
    n_tokens += len(read_stream(ws, 4))
    ws.cmd("MODEL_INFO", {"stream_id": 9, "model": ts.MODEL})
    ws.recv()
    ws.send("NOPE {}")
    ws.recv()
    gen(ws, 5, [BOS] * 2000, 3)
    refused = read_stream(ws, 5)
    ws.cmd("CANCEL", {"stream_id": 77})
    ws.recv()
    # A stream's last token leaves before the engine retires it (and counts
    # it) at the end of its step: wait for the counters to settle.
    end = time.time() + 10 * ts.SLOW
    while True:
        st, _, body = http_get(srv.port, "/metrics")
        s1, _ = parse_prometheus(body)
        if metric(s1, "lmql_request_duration_seconds_count") == 4 or time.time() > end:
            break
        time.sleep(0.05)
    m = lambda *a, **k: metric(s1, *a, **k)  # noqa: E731
    check("GENERATE ok counts the 4 streams", m("lmql_requests_total", command="GENERATE", outcome="ok") == 4,
          m("lmql_requests_total", command="GENERATE", outcome="ok"))
    check("the prompt over n_ctx counts as a refused GENERATE", "error" in refused[0] and
          m("lmql_requests_total", command="GENERATE", outcome="refused") == 1, refused)
    check("MODEL_INFO, CANCEL and the bad message counted",
          m("lmql_requests_total", command="MODEL_INFO", outcome="ok") == 1 and
          m("lmql_requests_total", command="CANCEL", outcome="ok") == 1 and
          m("lmql_requests_total", command="INVALID", outcome="error") == 1 and
          m("lmql_errors_total", kind="bad_request") == 1, body[:1500])
    check("tokens generated = tokens received (18)", n_tokens == 18 and m("lmql_tokens_generated_total") == 18,
          n_tokens, m("lmql_tokens_generated_total"))
    hits = m("lmql_prefix_cache_hit_tokens_total")
    check("the repeated prompt is found in the cache", hits is not None and hits >= 2 * (len(PROMPT) - 1), hits)
    ev = m("lmql_tokens_evaluated_total")
    check("tokens evaluated: prompts past their cached prefix plus generated tokens",
          ev is not None and 18 <= ev <= 18 + 4 * len(PROMPT) + 1 and ev + hits == 18 + 3 * len(PROMPT) + len(PROMPT) + 1,
          ev, hits)
    for h in ("lmql_request_duration_seconds", "lmql_time_to_first_token_seconds"):
        buckets = sorted(((float(dict(k[1])["le"]), v) for k, v in s1.items() if k[0] == h + "_bucket"))
        cum = [v for _, v in buckets]
        check(f"{h}: 4 observations, cumulative buckets ending in +Inf",
              m(h + "_count") == 4 and buckets[-1][0] == float("inf") and cum == sorted(cum) and cum[-1] == 4 and
              m(h + "_sum") > 0, buckets, m(h + "_count"))
    check("one open connection, none running now, KV cells released",
          m("lmql_connections") == 1 and m("lmql_connections_total") == 1 and m("lmql_streams_running") == 0 and
          m("lmql_kv_cells_used") == 0, body[-1500:])
    ws.close()


def t_drain():
    srv = Server("drain", "--drain-timeout", "60", "--n_ctx", "8192", "--max-tokens", "100000")
    if not check("server starts", srv.wait_ready(), srv.stderr_tail()):
        return
    ws = connect(srv)
    # A stream long enough to be running for a few seconds on this machine.
    t0 = time.time()
    gen(ws, 9, PROMPT, 64, logit_bias={str(EOS): -100})
    read_stream(ws, 9)
    n_long = max(100, min(8000, int(64 / max(time.time() - t0, 1e-3) * 3)))
    gen(ws, 1, PROMPT, n_long, logit_bias={str(EOS): -100})
    cmd, first = ws.recv()
    srv.proc.send_signal(signal.SIGTERM)
    time.sleep(0.3 * ts.SLOW)
    st, _, body = http_get(srv.port, "/health")
    check("draining: /health says 503", st == 503 and '"draining"' in body, st, body)
    try:
        ts.connect(srv)
        refused = "connected"
    except (WSError, OSError) as e:
        refused = str(e)
    check("draining: a new connection is refused (503)", "503" in refused, refused)
    gen(ws, 2, PROMPT, 3)
    toks = [first[0]]
    other = []
    while True:
        cmd, payload = ws.recv()
        for p in payload:
            (toks if p.get("stream_id") == 1 else other).append(p)
        if toks[-1].get("finish_reason") or "error" in toks[-1]:
            break
    check("draining: a new stream gets an error saying so", other and "draining" in other[0].get("error", ""), other)
    check(f"draining: the running stream completes ({n_long} tokens)",
          len(toks) == n_long and toks[-1].get("finish_reason") == "length", len(toks), toks[-1])
    rc = srv.stop(signal.SIGCONT, timeout=15 * ts.SLOW)
    check("the server exits 0 once the stream is done", rc == 0, rc, srv.stderr_tail())

    srv = Server("drain-timeout", "--drain-timeout", "1", "--n_ctx", "8192", "--max-tokens", "100000")
    if not check("server starts", srv.wait_ready(), srv.stderr_tail()):
        return
    ws = connect(srv)
    gen(ws, 1, PROMPT, 8000, logit_bias={str(EOS): -100})
    ws.recv()
    t0 = time.time()
    srv.proc.send_signal(signal.SIGTERM)
    last = None
    try:
        while True:
            cmd, payload = ws.recv()
            last = payload[-1]
            if last.get("finish_reason") or "error" in last:
                break
    except (WSError, OSError) as e:
        last = {"error": "connection: " + str(e)}
    rc = srv.stop(signal.SIGCONT, timeout=15 * ts.SLOW)
    check("past --drain-timeout the stream ends with an error naming it",
          last and "drain-timeout" in last.get("error", ""), last)
    check("... and the server exits 0, soon after the time-out", rc == 0 and time.time() - t0 < 10 * ts.SLOW, rc,
          time.time() - t0)


def main():
    try:
        for t in (t_health, t_metrics, t_drain):
            try:
                t()
            except Exception as e:  # noqa: BLE001
                bad(f"{t.__name__}: raised {type(e).__name__}", str(e), traceback.format_exc(limit=4))
    finally:
        for s in ts.servers:
            s.kill()
        shutil.rmtree(ts.tmpdir, ignore_errors=True)
        print(f"ops: {ts.passed} passed, {ts.failed} failed", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if ts.failed or not ts.passed else 0)
