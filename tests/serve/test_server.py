#!/usr/bin/env python3
"""End-to-end checks of `lmql serve-model` (the LMTP WebSocket server), on
the real binary and the tiny test model; Python's standard library only.

    python3 tests/serve/test_server.py build/bin/lmql        (repository root)

Prints `ok NAME` / `not ok NAME` (details indented below), then one line
`serve: N passed, M failed`; exits 1 if anything failed. Every server it
starts is killed at the end, whatever happened. With an AddressSanitizer
binary (a path containing "asan") the timeouts stretch, the leak test runs
fewer cycles and skips the RSS comparison (ASan's quarantine grows memory)."""
import json
import math
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.dont_write_bytecode = True   # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wsclient import WS, WSError  # noqa: E402

LMQL = sys.argv[1] if len(sys.argv) > 1 else "build/bin/lmql"
MODEL_PATH = "build/models/tiny-spm.gguf"
MODEL = "llama.cpp:" + MODEL_PATH
ASAN = "asan" in LMQL
SLOW = 5 if ASAN else 1          # timeouts stretch under the sanitizers
N_VOCAB, BOS, EOS = 32000, 1, 2

passed = failed = 0
servers = []
tmpdir = tempfile.mkdtemp(prefix="lmql-serve-test-")


def ok(name):
    global passed
    passed += 1
    print("ok " + name, flush=True)


def bad(name, *details):
    global failed
    failed += 1
    print("not ok " + name, flush=True)
    for d in details:
        for line in str(d).splitlines() or [""]:
            print("    " + line[:600], flush=True)


def check(name, cond, *details):
    if cond:
        ok(name)
    else:
        bad(name, *details)
    return bool(cond)


def short(x, n=300):
    s = x if isinstance(x, str) else json.dumps(x) if not isinstance(x, bytes) else repr(x)
    return s if len(s) <= n else s[:n] + "..."


# ------------------------------------------------------------- servers --

class Server:
    def __init__(self, name, *extra, quiet=True, env=None, host="127.0.0.1", limit_fds=None, model=None, cwd=None):
        self.name = name
        self.host = host
        self.model = model or MODEL   # read now: test_files.py sets MODEL for the servers it starts
        self.errpath = os.path.join(tmpdir, name + ".stderr")
        self.err = open(self.errpath, "wb")
        self.argv = [os.path.abspath(LMQL), "serve-model", self.model, "--port", "0", *(["-q"] if quiet else []), "--n_ctx", "1024", *extra]
        def limit():
            if limit_fds:
                import resource
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit_fds, limit_fds))
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.err,
                                     env=env, preexec_fn=limit if limit_fds else None, cwd=cwd)
        servers.append(self)
        self.port = None
        self.line = ""

    def wait_ready(self, timeout=20 * SLOW):
        """Read the one `serving ... on ws://HOST:PORT` line."""
        end = time.time() + timeout
        buf = b""
        while b"\n" not in buf and time.time() < end:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 4096)
                if not chunk:
                    break
                buf += chunk
        self.line = buf.decode(errors="replace").strip()
        m = re.fullmatch(r"serving (\S+) on ws://(\S+):(\d+)", self.line)
        if m and m.group(1) == self.model and m.group(2) == self.host:
            self.port = int(m.group(3))
        return self.port

    def alive(self):
        return self.proc.poll() is None

    def stderr_tail(self, n=1500):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace")[-n:]
        except OSError:
            return ""

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return -1

    def cpu_ticks(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])   # utime + stime

    def stop(self, sig=signal.SIGTERM, timeout=5 * SLOW):
        """Signal it; its exit status, or None when it did not exit in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self.err.close()
        if self.proc.stdout:
            self.proc.stdout.close()


def connect(srv, timeout=10 * SLOW, **kw):
    return WS(srv.port, timeout=timeout, **kw)


def gen(ws, sid, prompt, max_tokens=8, **kw):
    req = {"model": MODEL, "prompt": prompt, "stream_id": sid, "max_tokens": max_tokens, "temperature": 0.0}
    req.update(kw)
    ws.cmd("GENERATE", req)


def read_stream(ws, sid, limit=10000):
    """The TOKEN payloads of stream sid up to and including the one with a
    finish_reason or an error; other messages are an error here."""
    out = []
    while len(out) < limit:
        cmd, payload = ws.recv()
        if cmd != "TOKEN":
            raise AssertionError(f"expected TOKEN, got {cmd} {short(payload)}")
        for p in payload:
            if p.get("stream_id") != sid:
                raise AssertionError(f"TOKEN of stream {p.get('stream_id')}, expected {sid}: {short(p)}")
            out.append(p)
            if "error" in p or p.get("finish_reason"):
                return out
    return out


def generate(srv_or_ws, prompt, max_tokens=8, sid=1, **kw):
    ws = connect(srv_or_ws) if isinstance(srv_or_ws, Server) else srv_or_ws
    try:
        gen(ws, sid, prompt, max_tokens, **kw)
        return read_stream(ws, sid)
    finally:
        if ws is not srv_or_ws:
            ws.close()


def model_info_ok(ws, sid=4242):
    """The connection still answers a valid MODEL_INFO (skipping stray TOKENs)."""
    ws.cmd("MODEL_INFO", {"stream_id": sid, "model": MODEL, "data": {"model": MODEL}})
    for _ in range(1000):
        cmd, payload = ws.recv()
        if cmd == "MSG" and payload and payload[0].get("stream_id") == sid:
            return "model_info" in payload[0] and payload[0]["model_info"].get("n_vocab") == N_VOCAB
    return False


class Contention:
    """Busy processes on every core for a while: a stream's state updated
    just after its last token is sent is then seen late (preemption), so
    such races show up every time instead of once in a while."""

    def __enter__(self):
        self.procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
                      for _ in range(min(os.cpu_count() or 2, 8))]
        time.sleep(0.2)    # Python is up and spinning
        return self

    def __exit__(self, *exc):
        for p in self.procs:
            p.kill()
            p.wait()


def run_test(fn):
    """Run one group of checks; an exception is one failed check."""
    name = fn.__name__
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        bad(f"{name}: raised {type(e).__name__}", str(e), traceback.format_exc(limit=3))


# --------------------------------------------------------------- tests --

S = {}   # the servers by role
P0 = [BOS, 14891, 22172, 3186]          # "Say hello world"


def t_cli_params():
    r = subprocess.run([LMQL, "serve-model", MODEL, "--port", "0", "-q", "--bogus_param", "3"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check("unknown --PARAM: exit 1 naming it and the valid params",
          r.returncode == 1 and "bogus_param" in r.stderr and "n_ctx" in r.stderr and not r.stdout,
          f"exit {r.returncode}", r.stderr[-400:], r.stdout[-200:])
    r = subprocess.run([LMQL, "serve-model", "llama.cpp:build/models/no-such-model.gguf", "--port", "0", "-q"],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check("missing model file: exit 1 with a message", r.returncode == 1 and "no-such-model" in r.stderr,
          f"exit {r.returncode}", r.stderr[-400:])


def lmql_run(query):
    r = subprocess.run([LMQL, "run", "--json", "-e", query], capture_output=True, text=True, timeout=120 * SLOW)
    return r.returncode, r.stdout, r.stderr


QUERIES = [
    ("seed", "argmax \"Say 'this is a test':[RESPONSE]\" from {M} where len(TOKENS(RESPONSE)) < 10"),
    ("INT + phrase list", "argmax \"Q: [N]. Then[W]\" from {M} where INT(N) and len(TOKENS(N)) < 4 "
                          "and W in [\" yes\", \" no\", \" maybe\"]"),
    ("REGEX", "argmax \"Date: [D]\" from {M} where REGEX(D, r\"[0-9]{{4}}-[0-9]{{2}}\")"),
]


def t_chat():
    """Role tags through a chat template: the client renders them with the
    template MODEL_INFO reports (null with --chat_template false); without a
    copy of the GGUF it has the server tokenize the template's text with its
    special tokens (TOKENIZE's "special")."""
    shutil.copyfile("build/models/tiny-llama3.gguf", os.path.join(tmpdir, "chat.gguf"))
    away = Server("chat", model="llama.cpp:chat.gguf", cwd=tmpdir)   # no chat.gguf where the client runs
    plain = Server("plain", "--chat_template", "false", model="llama.cpp:build/models/tiny-llama3.gguf")
    try:
        if not check("chat servers start", away.wait_ready() and plain.wait_ready(), away.stderr_tail(),
                     plain.stderr_tail()):
            return
        ws = connect(away)
        ws.cmd("MODEL_INFO", {"stream_id": 1})
        cmd, p = ws.recv()
        t = (p[0].get("model_info") or {}).get("chat_template") if cmd == "MSG" and p else None
        check("MODEL_INFO carries the GGUF's chat template", isinstance(t, str) and "<|start_header_id|>" in t,
              cmd, short(p))
        ws.cmd("TOKENIZE", {"stream_id": 2, "text": "<|eot_id|>", "special": True})
        cmd, p = ws.recv()
        ws.cmd("TOKENIZE", {"stream_id": 3, "text": "<|eot_id|>"})
        cmd2, p2 = ws.recv()
        check("TOKENIZE with special: <|eot_id|> is token 128009; without, text",
              p[0].get("tokens") == [128009] and len(p2[0].get("tokens") or []) > 1, short(p), short(p2))
        ws.close()
        ws = connect(plain)
        ws.cmd("MODEL_INFO", {"stream_id": 1})
        cmd, p = ws.recv()
        mi = p[0].get("model_info") or {} if cmd == "MSG" and p else {}
        check("MODEL_INFO with --chat_template false: chat_template null", "chat_template" in mi and
              mi["chat_template"] is None, cmd, short(p))
        ws.close()
        q = 'argmax "{{:user}}Hi{{:assistant}}[R]" from {M} where len(TOKENS(R)) < 3'
        head = "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
        rc0, out0, err0 = lmql_run(q.format(M='"local:llama.cpp:build/models/tiny-llama3.gguf"'))
        rc1, out1, err1 = lmql_run(q.format(M=f'lmql.model("llama.cpp:chat.gguf", endpoint="127.0.0.1:{away.port}")'))
        r0 = json.loads(out0) if rc0 == 0 else {}
        r1 = json.loads(out1) if rc1 == 0 else {}
        check("a served chat model renders roles as in process, tokens and all",
              r1.get("prompt", "").startswith(head) and r1 == r0, out0 + err0, out1 + err1)
        rc2, out2, err2 = lmql_run(q.format(M=f'lmql.model("llama.cpp:build/models/tiny-llama3.gguf", '
                                            f'endpoint="127.0.0.1:{plain.port}")'))
        r2 = json.loads(out2) if rc2 == 0 else {}
        check("served with --chat_template false: LMQL's ((role)): text",
              r2.get("prompt", "").startswith("((user)):Hi\n((assistant)):"), out2 + err2)
    finally:
        away.stop()
        plain.stop()


def t_queries():
    srv = S["main"]
    remote_model = f'lmql.model("{MODEL}", endpoint="127.0.0.1:{srv.port}")'
    local_model = f'"local:{MODEL}"'
    local = {}

    def run_locals():
        for name, q in QUERIES:
            local[name] = lmql_run(q.format(M=local_model))
    th = threading.Thread(target=run_locals)
    th.start()
    remote = {name: lmql_run(q.format(M=remote_model)) for name, q in QUERIES}
    th.join()
    for name, _ in QUERIES:
        rc, out, err = remote[name]
        if not check(f"query '{name}' through the server: exit 0 with JSON", rc == 0 and out.startswith("{"),
                     f"exit {rc}", err[-500:], out[-300:]):
            continue
        lrc, lout, lerr = local[name]
        check(f"query '{name}': server output equals local:", lrc == 0 and lout == out,
              f"server: {out.strip()}", f"local (exit {lrc}): {lout.strip()} {lerr[-300:]}")
        if name == "seed":
            r = json.loads(out)
            resp = r["variables"].get("RESPONSE")
            check("seed: prompt is the text + RESPONSE, RESPONSE non-empty",
                  isinstance(resp, str) and resp and r["prompt"] == "Say 'this is a test':" + resp, short(r))
            ws = connect(srv)
            ws.cmd("TOKENIZE", {"stream_id": 1, "text": resp, "bos": False, "cont": True})
            cmd, p = ws.recv()
            ws.close()
            toks = p[0].get("tokens")
            check("seed: RESPONSE is under 10 tokens (TOKENIZE)", cmd == "MSG" and toks is not None and
                  0 < len(toks) < 10, short(p))
        if name == "INT + phrase list":
            r = json.loads(out)
            v = r["variables"]
            check("INT query: N an int, W one of the phrases", isinstance(v.get("N"), int) and
                  v.get("W") in (" yes", " no", " maybe"), short(r))
        if name == "REGEX":
            r = json.loads(out)
            check("REGEX query: D matches the pattern", re.fullmatch(r"[0-9]{4}-[0-9]{2}", r["variables"].get("D", "")),
                  short(r))


def t_chunks():
    """The client asks for chunks (LMQL's chunksize, 16) and answers the next
    steps from them while the mask stays the same: the seed query is one
    request, with chunksize=1 one request per token."""
    srv = S["main"]
    q = "argmax \"Say 'this is a test':[RESPONSE]\" from {M} where len(TOKENS(RESPONSE)) < 10"
    calls = {}
    for chunk in (16, 1):
        m = f'lmql.model("{MODEL}", endpoint="127.0.0.1:{srv.port}", chunksize={chunk})'
        r = subprocess.run([LMQL, "run", "--json", "--stats", "-e", q.format(M=m)], capture_output=True, text=True,
                           timeout=120 * SLOW)
        g = re.search(r"stats: (\d+) tokens generated, .* (\d+) model calls", r.stderr)
        calls[chunk] = (int(g.group(1)), int(g.group(2))) if r.returncode == 0 and g else None
        if chunk == 16:
            first_out = r.stdout
        elif calls[16] and calls[1]:
            check("chunked and unchunked runs give the same result", r.stdout == first_out, first_out, r.stdout)
    ok16, ok1 = calls.get(16), calls.get(1)
    check("chunksize 16: the seed query's tokens come from one request", ok16 is not None and ok16[0] >= 2 and
          ok16[1] == 1, short(calls))
    check("chunksize 1: one request per generated token", ok1 is not None and ok1[1] == ok1[0], short(calls))


def t_sampling():
    """sample(n) through the server: the server draws (LMQL's way), the
    constraints still hold for every sequence."""
    srv = S["main"]
    m = f'lmql.model("{MODEL}", endpoint="127.0.0.1:{srv.port}")'
    q = (f'sample(n=3, temperature=1.5) "Q:[A] and[B]" from {m} '
         'where len(TOKENS(A)) < 5 and B in [" x", " y", " zed"]')
    rc, out, err = lmql_run(q)
    ok = rc == 0
    try:
        res = json.loads(out) if ok else None
    except ValueError:
        res, ok = None, False
    check("sample(n=3) through the server: three results", ok and isinstance(res, list) and len(res) == 3,
          f"exit {rc}", err[-300:], out[-300:])
    if ok and isinstance(res, list):
        check("sample(n=3): every B is one of the phrases",
              all(r["variables"].get("B") in (" x", " y", " zed") for r in res), short(res))
        check("sample(n=3): every prompt is 'Q:' + A + ' and' + B",
              all(r["prompt"] == "Q:" + r["variables"]["A"] + " and" + r["variables"]["B"] for r in res), short(res))


def t_flood():
    """A client that sends and never reads: the server stops reading it once
    8 MiB of replies wait (memory stays bounded), serves others meanwhile,
    and delivers everything once the client reads."""
    srv = S["main"]
    n = 1000   # VOCAB replies are ~450 KB each: ~450 MB if nothing held the client back
    f = connect(srv)
    r0 = srv.rss_kb()
    for i in range(n):
        f.cmd("VOCAB", {"stream_id": i + 1})
    time.sleep(1.5 * SLOW)
    r1 = srv.rss_kb()
    t0 = time.time()
    other = generate(srv, P0, 2, sid=1)
    dt = time.time() - t0
    check(f"flood: another client is served meanwhile ({dt * 1000:.0f} ms)",
          len(other) == 2 and other[-1].get("finish_reason") == "length" and dt < 5 * SLOW, short(other))
    if ASAN:
        ok("flood: RSS not compared under ASan (its quarantine keeps freed memory)")
    else:
        check(f"flood: the server's memory stays bounded ({r0} kB -> {r1} kB)", r1 - r0 < 64 * 1024)
    got = 0
    try:
        while got < n:
            cmd, p = f.recv()
            if cmd == "MSG" and p and "vocab" in p[0]:
                got += 1
    except Exception as e:  # noqa: BLE001
        bad("flood: reading the replies failed", repr(e))
    check(f"flood: all {n} replies arrive once the client reads", got == n, f"{got} of {n}")
    f.close()


def t_generate_frames():
    ws = connect(S["main"])
    gen(ws, 11, P0, 8, top_logprobs=3)
    toks = read_stream(ws, 11)
    ids = [t.get("token") for t in toks]
    check("GENERATE: max_tokens TOKEN replies, all of its stream",
          len(toks) == 8 and all(t.get("stream_id") == 11 and "error" not in t for t in toks), short(toks))
    check("GENERATE: finish_reason 'length' on the last only",
          [t.get("finish_reason") for t in toks] == [None] * 7 + ["length"], short([t.get("finish_reason") for t in toks]))
    probs_ok = all(isinstance(t.get("logprob"), (int, float)) and t["logprob"] <= 0 and math.isfinite(t["logprob"])
                   for t in toks)
    check("GENERATE: logprobs finite and <= 0", probs_ok, short([t.get("logprob") for t in toks]))
    tops_ok, why = True, ""
    for t in toks:
        top = t.get("top_logprobs")
        if not isinstance(top, dict) or not 1 <= len(top) <= 3 or str(t["token"]) not in top:
            tops_ok, why = False, short(t)
            break
        if abs(top[str(t["token"])] - t["logprob"]) > 1e-4 or max(top.values()) > t["logprob"] + 1e-4 or \
                any(v > 0 for v in top.values()):
            tops_ok, why = False, "argmax token is not the top entry: " + short(t)
            break
    check("GENERATE: top_logprobs <= 3 entries, holds the (argmax) token", tops_ok, why)
    check("GENERATE: token ids inside the vocabulary", all(0 <= i < N_VOCAB for i in ids), short(ids))

    gen(ws, 12, P0, 8, top_logprobs=3)
    again = read_stream(ws, 12)
    check("GENERATE at temperature 0 is deterministic", [t.get("token") for t in again] == ids and
          all(abs(a["logprob"] - b["logprob"]) < 1e-4 for a, b in zip(again, toks)),
          short(ids), short([t.get("token") for t in again]))

    gen(ws, 13, P0, 1, top_logprobs=0)
    one = read_stream(ws, 13)
    check("GENERATE top_logprobs 0: one token, a top list of at most that token",
          len(one) == 1 and one[0].get("token") == ids[0] and one[0].get("finish_reason") == "length" and
          len(one[0].get("top_logprobs") or {}) <= 1, short(one))

    allowed = [500, 1234, 20000]
    gen(ws, 14, P0, 6, logit_bias={str(i): 100 for i in allowed})
    b = read_stream(ws, 14)
    check("logit_bias +100 restricts tokens to those ids",
          len(b) == 6 and all(t.get("token") in allowed for t in b), short(b))
    check("logit_bias +100: logprobs renormalised over the allowed ids (<= 0, > -inf)",
          all(-50 < t.get("logprob", 1) <= 0 for t in b), short([t.get("logprob") for t in b]))

    gen(ws, 15, P0, 1, logit_bias={str(ids[0]): -100})
    b = read_stream(ws, 15)
    check("logit_bias -100 on the argmax token changes the first token",
          len(b) == 1 and b[0].get("token") not in (None, ids[0]), short(b), f"argmax was {ids[0]}")

    gen(ws, 16, P0, 5, logit_bias={str(EOS): 100})
    b = read_stream(ws, 16)
    check("GENERATE stops at EOS with finish_reason 'stop'",
          len(b) == 1 and b[0].get("token") == EOS and b[0].get("finish_reason") == "stop", short(b))

    gen(ws, 17, P0, 1, logit_bias={str(i): -100 for i in range(N_VOCAB)})
    b = read_stream(ws, 17)
    check("logit_bias forbidding every token: an error, not a token",
          len(b) == 1 and "error" in b[0] and "token" not in b[0], short(b))

    gen(ws, 18, P0, 4, temperature=1.0, top_k=5, top_logprobs=5)
    b = read_stream(ws, 18)
    check("GENERATE with temperature 1, top_k 5: sampled tokens among the top 5",
          len(b) == 4 and b[-1].get("finish_reason") == "length" and
          all(str(t.get("token")) in (t.get("top_logprobs") or {}) for t in b), short(b))

    # SCORE the greedy continuation: one TOKEN each, "stop" on the last, and
    # the same logprobs as GENERATE gave them.
    ws.cmd("SCORE", {"model": MODEL, "prompt": P0, "scored": ids, "stream_id": 21})
    sc = read_stream(ws, 21)
    check("SCORE: one TOKEN per scored token, in order, 'stop' on the last",
          [t.get("token") for t in sc] == ids and [t.get("finish_reason") for t in sc] == [None] * 7 + ["stop"],
          short(sc))
    check("SCORE: no top_logprobs, logprobs finite and <= 0",
          all("top_logprobs" not in t and math.isfinite(t.get("logprob", 1)) and t["logprob"] <= 0 for t in sc),
          short(sc))
    diffs = [abs(a.get("logprob", 99) - b["logprob"]) for a, b in zip(sc, toks)]
    check("SCORE logprob of each greedy token equals GENERATE's (1e-3)",
          len(diffs) == 8 and max(diffs) < 1e-3, short(diffs))
    ws.cmd("SCORE", {"model": MODEL, "prompt": P0, "scored": [7, 8, 9], "stream_id": 22})
    sc = read_stream(ws, 22)
    check("SCORE of unlikely tokens: 3 replies, logprobs below the greedy one",
          [t.get("token") for t in sc] == [7, 8, 9] and sc[0].get("logprob", 0) < toks[0]["logprob"],
          short(sc))

    ws.cmd("MODEL_INFO", {"stream_id": 31, "model": MODEL, "data": {"model": MODEL}})
    cmd, p = ws.recv()
    mi = p[0].get("model_info", {}) if cmd == "MSG" and p else {}
    check("MODEL_INFO: MSG with its stream_id and the model's facts",
          p[0].get("stream_id") == 31 and mi.get("n_vocab") == N_VOCAB and mi.get("n_ctx") == 1024 and
          mi.get("model_type") == "llama.cpp" and str(mi.get("model_identifier", "")).endswith("tiny-spm.gguf"),
          cmd, short(p))

    ws.cmd("VOCAB", {"stream_id": 32})
    cmd, p = ws.recv()
    v = p[0].get("vocab", {}) if cmd == "MSG" and p else {}
    pieces = v.get("pieces") or []
    check("VOCAB: n_vocab 32000, 32000 pieces, bos 1, eos 2, eog holds eos",
          p[0].get("stream_id") == 32 and v.get("n_vocab") == N_VOCAB and len(pieces) == N_VOCAB and
          v.get("bos") == BOS and v.get("eos") == EOS and EOS in (v.get("eog") or []),
          cmd, short({k: x for k, x in v.items() if k != "pieces"}), f"{len(pieces)} pieces")
    try:
        raw = [bytes.fromhex(x) for x in pieces]
        hex_ok = len(raw) == N_VOCAB and sum(1 for x in raw if x) > 31000
    except (ValueError, TypeError):
        raw, hex_ok = [], False
    check("VOCAB: pieces are hex strings, nearly all non-empty", hex_ok, short(pieces[:10]))

    texts = ["Say hello world", "héllo wörld 123 日本", "x\ny  z", "{\"json\": [1, 2]}", "a"]
    rt_ok, why = bool(raw), ""
    for i, text in enumerate(texts):
        for cont, bos in ((True, False), (False, True)):
            ws.cmd("TOKENIZE", {"stream_id": 40 + i, "text": text, "bos": bos, "cont": cont})
            cmd, p = ws.recv()
            t = p[0].get("tokens") if cmd == "MSG" and p and p[0].get("stream_id") == 40 + i else None
            if not t or not all(isinstance(x, int) and 0 <= x < N_VOCAB for x in t):
                rt_ok, why = False, f"{text!r}: {short(p)}"
                break
            if bos and t[0] != BOS:
                rt_ok, why = False, f"{text!r} bos: no BOS first: {t}"
                break
            body = b"".join(raw[x] for x in (t[1:] if bos else t)) if raw else b""
            want = text.encode()
            if (cont and body != want) or (not cont and not body.endswith(want)):
                rt_ok, why = False, f"{text!r} cont={cont}: {t} -> {body!r}"
                break
    check("TOKENIZE round trip through the VOCAB pieces (bos, cont)", rt_ok, why)

    # The same stream id again, right after its last token.
    reuse_err = None
    with Contention():
        for i in range(60):
            gen(ws, 50, [BOS, 100 + i], 1)
            r = read_stream(ws, 50)
            if len(r) != 1 or "error" in r[0]:
                reuse_err = f"try {i}: {short(r)}"
                break
    check("a stream id can be reused once its last token arrived", reuse_err is None, reuse_err)
    ws.close()


def t_concurrency():
    srv = S["main"]
    prompts = [[BOS, 100 + 37 * i, 200 + i, 3186] for i in range(8)]
    alone = []
    ws = connect(srv)
    for i, p in enumerate(prompts):
        alone.append([t.get("token") for t in generate(ws, p, 32, sid=i + 1)])
    ws.close()
    check("baseline: 8 prompts, 32 tokens each, when alone", all(len(a) == 32 for a in alone), short(alone))
    check("baseline: different prompts give different continuations", len({tuple(a) for a in alone}) > 1,
          short(alone))

    results = [None] * 8
    barrier = threading.Barrier(8)

    def client(i):
        try:
            w = connect(srv)
            barrier.wait(timeout=30 * SLOW)
            results[i] = generate(w, prompts[i], 32, sid=1000 + i)
            w.close()
        except Exception as e:  # noqa: BLE001
            results[i] = e
    ths = [threading.Thread(target=client, args=(i,)) for i in range(8)]
    t0 = time.time()
    for t in ths:
        t.start()
    for t in ths:
        t.join(60 * SLOW)
    dt = time.time() - t0
    full = all(isinstance(r, list) and len(r) == 32 and r[-1].get("finish_reason") == "length" for r in results)
    check(f"8 clients at once: all answered fully ({dt:.1f}s)", full,
          *[f"client {i}: {short(r if isinstance(r, list) else repr(r), 200)}" for i, r in enumerate(results)
            if not (isinstance(r, list) and len(r) == 32)])
    same = full and all([t.get("token") for t in results[i]] == alone[i] for i in range(8))
    check("8 clients at once: the same tokens as alone", same,
          *[f"client {i}: {[t.get('token') for t in results[i]]} vs {alone[i]}" for i in range(8)
            if full and [t.get("token") for t in results[i]] != alone[i]])

    # Four streams on one connection, sent back to back.
    ws = connect(srv)
    sids = [101, 102, 103, 104]
    for k, sid in enumerate(sids):
        gen(ws, sid, prompts[k], 16)
    got = {sid: [] for sid in sids}
    order = []
    done = set()
    deadline = time.time() + 60 * SLOW
    while len(done) < 4 and time.time() < deadline:
        cmd, payload = ws.recv()
        for p in payload:
            sid = p.get("stream_id")
            if cmd != "TOKEN" or sid not in got or "error" in p:
                raise AssertionError(f"unexpected {cmd} {short(p)}")
            got[sid].append(p.get("token"))
            order.append(sid)
            if p.get("finish_reason"):
                done.add(sid)
    check("4 streams on one connection: each answered fully",
          all(len(got[s]) == 16 for s in sids), short({s: len(got[s]) for s in sids}))
    check("4 streams on one connection: the same tokens as alone",
          all(got[s] == alone[k][:16] for k, s in enumerate(sids)),
          *[f"{s}: {got[s]} vs {alone[k][:16]}" for k, s in enumerate(sids) if got[s] != alone[k][:16]])
    first_done = min(max(i for i, x in enumerate(order) if x == s) for s in sids if s in order) if order else 0
    check("4 streams on one connection: replies interleaved (batched)",
          len(set(order[:first_done + 1])) > 1, short(order))
    check("connection still answers after the streams", model_info_ok(ws))
    ws.close()


def t_fairness():
    """One connection queues more streams than the server has slots (8); a
    second connection's request must not wait behind that queue: it takes
    the first slot that frees, before the first connection's queued ones."""
    srv = S["main"]
    a, b = connect(srv), connect(srv)
    first = {}                      # stream id -> arrival time of its first token
    done_a = threading.Event()
    errors = []

    def read_a():
        # Raw frames first, parsed later: a reader that parses falls behind
        # the server and its timestamps stop meaning anything.
        try:
            finished = 0
            while finished < 11:
                op, fin, data = a.recv_frame()
                t = time.time()
                sid = int(data.split(b'"stream_id": ', 1)[1].split(b",", 1)[0].split(b"}", 1)[0])
                if b'"error"' in data:
                    errors.append(data[:200])
                    finished += 1
                    continue
                first.setdefault(sid, t)
                if b'"finish_reason": "' in data:
                    finished += 1
        except Exception as e:  # noqa: BLE001
            errors.append(repr(e))
        done_a.set()
    th = threading.Thread(target=read_a)
    th.start()
    # Eight long streams that end 20 steps apart (744 tokens of KV in all: the
    # 1024 of n_ctx hold them at once), then three short ones that must queue.
    for i in range(1, 9):
        gen(a, i, [BOS, 300 + i, 400 + i], 20 * i)
    for i in range(9, 12):
        gen(a, i, [BOS, 300 + i, 400 + i], 3)
    deadline = time.time() + 30 * SLOW
    while len(first) < 8 and time.time() < deadline:
        time.sleep(0.005)
    gen(b, 1, [BOS, 777, 778], 2)
    toks = read_stream(b, 1)
    t_b = time.time()
    done_a.wait(60 * SLOW)
    th.join(5)
    check("fairness: both connections answered", not errors and len(toks) == 2 and 10 in first and 11 in first,
          short(errors), short(toks), short(sorted(first)))
    if 10 in first:
        check("fairness: the second connection is served before the first one's queued streams",
              t_b < first[10], f"B done at +{t_b - first[1]:.3f}s, A's stream 10 first token at "
              f"+{first[10] - first[1]:.3f}s")
    a.close()
    b.close()


def t_long_requests():
    """Two requests whose max_tokens would each take most of the context
    (LMQL's client sends a constraint's bound, e.g. 600) run side by side:
    KV space is reserved as streams grow, and the one that cannot grow ends
    with "length" (the client asks again) instead of waiting for the other."""
    srv = S["main"]   # n_ctx 1024
    ws = connect(srv)
    gen(ws, 1, [BOS, 501, 502], 600)
    gen(ws, 2, [BOS, 601, 602], 600)
    order, ends, counts = [], {}, {1: 0, 2: 0}
    while len(ends) < 2:
        cmd, payload = ws.recv()
        for p in payload:
            sid = p.get("stream_id")
            if cmd != "TOKEN" or sid not in counts or "error" in p:
                raise AssertionError(f"unexpected {cmd} {short(p)}")
            counts[sid] += 1
            order.append(sid)
            if p.get("finish_reason"):
                ends[sid] = p["finish_reason"]
    last_1 = max(i for i, x in enumerate(order) if x == 1)
    check("two long requests: the second streams before the first ends", order.index(2) < last_1,
          f"first token of 2 at {order.index(2)}, last of 1 at {last_1}")
    check("two long requests: both end with 'length'; one was cut short, the other then got all 600",
          ends == {1: "length", 2: "length"} and max(counts.values()) == 600 and 64 <= min(counts.values()) < 600,
          short(ends), short(counts))
    check("connection still answers after the long requests", model_info_ok(ws))
    ws.close()


def t_disconnect_cancel():
    srv = S["main"]
    ws = connect(srv)
    gen(ws, 1, [BOS, 450, 451], 500)
    first = [ws.recv(), ws.recv()]
    ws.sock.close()      # hang up mid-stream, no close frame
    check("long GENERATE streams tokens before the hang-up",
          all(c == "TOKEN" and p[0].get("finish_reason") is None for c, p in first), short(first))
    t0 = time.time()
    r = generate(srv, P0, 4, sid=2)
    dt = time.time() - t0
    check(f"after a client hung up mid-stream, a new client is answered quickly ({dt * 1000:.0f} ms)",
          len(r) == 4 and r[-1].get("finish_reason") == "length" and dt < 3 * SLOW, short(r))
    # The abandoned stream (500 tokens: seconds of work) must be gone: the
    # server is idle now.
    time.sleep(0.3)
    a = srv.cpu_ticks()
    time.sleep(0.6)
    used = srv.cpu_ticks() - a
    check(f"a hung-up client's stream stops (server CPU {used} ticks in 0.6 s)", used <= 15,
          "the server still computes after its client went away")

    ws = connect(srv)
    gen(ws, 7, [BOS, 460, 461], 500)
    pre = [ws.recv(), ws.recv()]
    ws.cmd("CANCEL", {"stream_id": 7})
    n_before = 2
    reply = None
    while reply is None:
        cmd, p = ws.recv()
        if cmd == "TOKEN" and p[0].get("stream_id") == 7 and "error" not in p[0]:
            n_before += 1
            if p[0].get("finish_reason"):
                break
        else:
            reply = (cmd, p)
    check("CANCEL of a running stream: MSG with cancelled 1",
          reply is not None and reply[0] == "MSG" and reply[1][0].get("stream_id") == 7 and
          reply[1][0].get("cancelled") == 1, short(reply), short(pre))
    check(f"CANCEL stopped the stream early ({n_before} tokens of 500)", n_before < 400)
    time.sleep(0.2)
    ws.cmd("MODEL_INFO", {"stream_id": 8})
    stray = []
    while True:
        cmd, p = ws.recv()
        if cmd == "MSG" and p[0].get("stream_id") == 8:
            break
        stray.append((cmd, p))
        if len(stray) > 600:
            break
    check("no TOKEN of a cancelled stream after the CANCEL reply", not stray,
          f"{len(stray)} message(s) after 'cancelled': 1, e.g. {short(stray[:1])}")
    ws.cmd("CANCEL", {"stream_id": 12345})
    cmd, p = ws.recv()
    check("CANCEL of an unknown stream: cancelled 0", cmd == "MSG" and p[0].get("cancelled") == 0, short(p))
    r = generate(ws, [BOS, 460, 461], 3, sid=7)
    check("a cancelled stream's id can be used again", len(r) == 3 and r[-1].get("finish_reason") == "length",
          short(r))
    ws.close()


# (name, frame text or bytes, reply command(s) accepted, stream_id, error substring)
def bad_inputs():
    g = {"model": MODEL, "stream_id": 9, "prompt": [BOS, 100], "max_tokens": 4}

    def G(**kw):
        d = dict(g)
        for k, v in kw.items():
            if v is None:
                d.pop(k)
            else:
                d[k] = v
        return "GENERATE " + json.dumps(d)
    T, M, TM = ("TOKEN",), ("MSG",), ("TOKEN", "MSG")
    deep = '{"a": ' + "[" * 1000 + "]" * 1000 + "}"
    return [
        ("prompt 'abc'", G(prompt="abc"), T, 9, "prompt"),
        ("prompt id 32000", G(prompt=[BOS, 32000]), T, 9, "vocabulary"),
        ("prompt id -1", G(prompt=[BOS, -1]), T, 9, "prompt"),
        ("prompt id 1.5", G(prompt=[BOS, 1.5]), T, 9, "prompt"),
        ("prompt id 2**40", G(prompt=[BOS, 2 ** 40]), T, 9, "prompt"),
        ("empty prompt", G(prompt=[]), T, 9, "prompt"),
        ("no prompt", G(prompt=None), T, 9, "prompt"),
        ("prompt longer than n_ctx", G(prompt=[BOS] + [100] * 1100), T, 9, "n_ctx"),
        ("max_tokens -1", G(max_tokens=-1), T, 9, "max_tokens"),
        ("max_tokens 0", G(max_tokens=0), T, 9, "max_tokens"),
        ("max_tokens 'x'", G(max_tokens="x"), T, 9, "max_tokens"),
        ("temperature 'hot'", G(temperature="hot"), T, 9, "temperature"),
        ("temperature -1", G(temperature=-1), T, 9, "temperature"),
        ("top_logprobs 'x'", G(top_logprobs="x"), T, 9, "top_logprobs"),
        ("top_p 2", G(top_p=2), T, 9, "top_p"),
        ("top_k -3", G(top_k=-3), T, 9, "top_k"),
        ("logit_bias id 32000", G(logit_bias={"32000": 100}), T, 9, "vocabulary"),
        ("logit_bias key 'abc'", G(logit_bias={"abc": 1}), T, 9, "token id"),
        ("logit_bias value 'x'", G(logit_bias={"5": "x"}), T, 9, "logit_bias"),
        ("logit_bias a list", G(logit_bias=[1, 2]), T, 9, "logit_bias"),
        ("unsupported parameter", G(foo=1), T, 9, "unsupported parameter"),
        ("another model", G(model="llama.cpp:other.gguf"), T, 9, "serves"),
        ("model a number", G(model=5), T, 9, "model"),
        ("no stream_id", G(stream_id=None), TM, None, "stream_id"),
        ("stream_id 'x'", G(stream_id="x"), TM, None, "stream_id"),
        ("stream_id -1", G(stream_id=-1), TM, None, "stream_id"),
        ("SCORE id 32000", "SCORE " + json.dumps({"model": MODEL, "stream_id": 9, "prompt": [BOS], "scored": [32000]}),
         T, 9, "vocabulary"),
        ("SCORE without scored", "SCORE " + json.dumps({"model": MODEL, "stream_id": 9, "prompt": [BOS]}),
         T, 9, "scored"),
        ("SCORE scored []", "SCORE " + json.dumps({"model": MODEL, "stream_id": 9, "prompt": [BOS], "scored": []}),
         T, 9, "scored"),
        ("MODEL_INFO of another model", "MODEL_INFO " + json.dumps({"stream_id": 9, "model": "openai/gpt-4"}),
         M, 9, "serves"),
        ("TOKENIZE without text", 'TOKENIZE {"stream_id": 9}', M, 9, "text"),
        ("TOKENIZE text 5", 'TOKENIZE {"stream_id": 9, "text": 5}', M, 9, "text"),
        ("CANCEL without stream_id", "CANCEL {}", M, None, "stream_id"),
        ("unknown command", 'FOO {"stream_id": 3}', M, 3, "Unknown command: FOO"),
        ("lower-case command", 'generate {"stream_id": 3, "prompt": [1]}', M, 3, "Unknown command"),
        ("malformed JSON", 'GENERATE {"stream_id": 3, "prompt": [1,', TM, 3, "malformed JSON"),
        ("malformed JSON, no stream_id", "GENERATE {not json}", M, None, "malformed JSON"),
        ("trailing characters", 'MODEL_INFO {"stream_id": 3} xyz', M, 3, "trailing"),
        ("NaN", 'GENERATE {"stream_id": 3, "prompt": [1], "temperature": NaN}', TM, 3, "malformed"),
        ("bad escape", 'GENERATE {"stream_id": 3, "model": "\\q"}', TM, 3, "escape"),
        ("control char in a string", 'GENERATE {"stream_id": 3, "model": "a\x01b"}', TM, 3, "control"),
        ("empty frame", "", M, None, ""),
        ("frame of only GENERATE", "GENERATE", M, None, "'{'"),
        ("frame of only spaces", "     ", M, None, ""),
        ("JSON list body", "GENERATE [1, 2]", M, None, "'{'"),
        ("1000-deep nested JSON", "GENERATE " + deep, M, None, "nesting"),
        ("1000-deep JSON in a field", 'GENERATE {"stream_id": 3, "prompt": [1], "logit_bias": ' + deep + "}",
         TM, 3, ""),
        ("binary frame", (2, b'GENERATE {"stream_id": 3, "prompt": [1]}'), M, None, "text"),
        ("NUL bytes", "GENERATE \x00\x00\x00", M, None, ""),
    ]


def t_bad_inputs():
    srv = S["main"]
    ws = connect(srv)
    for name, frame, cmds, sid, sub in bad_inputs():
        try:
            if isinstance(frame, tuple):
                ws.send_frame(frame[0], frame[1])
            else:
                ws.send(frame)
            cmd, p = ws.recv()
            e = p[0] if isinstance(p, list) and p and isinstance(p[0], dict) else {}
            good = cmd in cmds and isinstance(e.get("error"), str) and e["error"] and sub in e["error"] and \
                e.get("stream_id") == sid and "token" not in e
            still = model_info_ok(ws)
            check(f"bad input: {name} -> {cmd} error{', then the connection still answers' if still else ''}",
                  good and still, f"reply: {cmd} {short(p)}", f"wanted {'/'.join(cmds)} stream_id {sid} "
                  f"error containing {sub!r}", "" if still else "no MODEL_INFO answer afterwards")
        except (WSError, OSError, ValueError) as e:
            bad(f"bad input: {name}", f"{type(e).__name__}: {e}")
            ws = connect(srv)     # go on with a fresh connection
    # A duplicate of a running stream id.
    gen(ws, 77, [BOS, 300], 200)
    gen(ws, 77, [BOS, 300], 200)
    errs, n = [], 0
    while True:
        cmd, p = ws.recv()
        if "error" in p[0]:
            errs.append(p[0])
        else:
            n += 1
        if p[0].get("finish_reason") or n > 250:
            break
    check("GENERATE with the id of a running stream: error, the first stream goes on",
          len(errs) == 1 and "already running" in errs[0]["error"] and errs[0].get("stream_id") == 77 and n == 200,
          short(errs), f"{n} tokens")

    # 20000 logit_bias entries: a large but valid request.
    gen(ws, 78, P0, 4, logit_bias={str(i): -100 for i in range(20000)})
    r = read_stream(ws, 78)
    check("20000-entry logit_bias (-100 on ids 0..19999): answered, tokens all >= 20000",
          len(r) == 4 and all(t.get("token", 0) >= 20000 for t in r), short(r))
    gen(ws, 79, P0, 3, logit_bias={str(i): 100 for i in range(10000, 30000)})
    r = read_stream(ws, 79)
    check("20000-entry logit_bias (+100 on ids 10000..29999): tokens all in it",
          len(r) == 3 and all(10000 <= t.get("token", 0) < 30000 for t in r), short(r))
    ws.close()

    # Not UTF-8 in a text frame: RFC 6455 says fail the connection (1007);
    # an error reply would do too. Either way the server lives on.
    ws = connect(srv)
    ws.send_frame(1, b'GENERATE {"stream_id": 5, "model": "\xff\xfe\xc3(", "prompt": [1]}')
    try:
        op, fin, payload = ws.recv_frame()
        code = struct.unpack("!H", payload[:2])[0] if op == 8 and len(payload) >= 2 else None
        text = payload.decode(errors="replace")
        check("text frame with invalid UTF-8: close 1007 or an error reply",
              code == 1007 or (op == 1 and '"error"' in text), f"opcode {op} {short(payload)}")
    except (WSError, OSError) as e:
        bad("text frame with invalid UTF-8: close 1007 or an error reply", f"{type(e).__name__}: {e}")
    ws.sock.close()

    # Rude clients: garbage instead of a handshake, a plain HTTP request,
    # a frame cut off mid-header, a fragmented message, a ping.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SLOW)
    s.sendall(bytes(range(256)) * 4 + b"\r\n\r\n")
    try:
        s.recv(4096)
    except OSError:
        pass
    s.close()
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5 * SLOW)
    s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        head = s.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace")
    except OSError as e:
        head = repr(e)
    s.close()
    check("plain HTTP GET (no upgrade): an HTTP error status, not 101",
          head.startswith("HTTP/1.1 4") or head.startswith("HTTP/1.0 4"), head)
    ws = connect(srv)
    ws.sock.sendall(b"\x81\xfe")      # a text frame's first two header bytes, then gone
    ws.sock.close()
    ws = connect(srv)
    ws.sock.sendall(b"\x81\xff\x00\x00\x00\x00\x40\x00\x00\x00")   # claims 1 TiB, then gone
    ws.sock.close()
    ws = connect(srv)
    msg = ('MODEL_INFO {"stream_id": 61, "model": "%s"}' % MODEL).encode()
    ws.send_frame(1, msg[:10], fin=False)
    ws.send_frame(9, b"ping!")          # a control frame between fragments
    ws.send_frame(0, msg[10:20], fin=False)
    ws.send_frame(0, msg[20:], fin=True)
    op, fin, payload = ws.recv_frame()
    check("ping between fragments: pong with its payload", op == 10 and payload == b"ping!", op, payload)
    cmd, p = ws.recv()
    check("fragmented message: answered as one", cmd == "MSG" and p[0].get("stream_id") == 61 and
          "model_info" in p[0], short(p))
    # RFC 6455 wants the connection failed; libwebsockets answers it. Either
    # way the server must live on (checked below).
    ws.send_frame(1, b'MODEL_INFO {"stream_id": 62}', mask=False)
    try:
        cmd, p = ws.recv()
        reply = f"answered: {cmd} {short(p, 80)}"
    except (WSError, OSError) as e:
        reply = f"connection failed: {e}"
    ws.sock.close()
    check(f"unmasked client frame: server lives on ({reply})", srv.alive() and model_info_ok(connect(srv)))
    ws = connect(srv)
    check("after all the bad input the server answers a new client", model_info_ok(ws))
    r = generate(ws, P0, 8, sid=3, top_logprobs=3)
    ws2 = connect(srv)
    gen(ws2, 1, P0, 8)
    r2 = read_stream(ws2, 1)
    ws2.close()
    check("... with the same tokens as before it", len(r) == 8 and
          [t.get("token") for t in r] == [t.get("token") for t in r2], short(r))
    ws.close()
    check("server alive after the bad input", srv.alive(), srv.stderr_tail())


def refused(srv, **kw):
    try:
        w = connect(srv, **kw)
    except WSError as e:
        return str(e)
    except OSError as e:
        return f"{type(e).__name__}: {e}"
    w.close()
    return None


def accepted(srv, **kw):
    try:
        w = connect(srv, **kw)
    except (WSError, OSError) as e:
        return False, str(e)
    try:
        good = model_info_ok(w)
    finally:
        w.close()
    return good, "connected but no MODEL_INFO answer"


def t_handshake():
    main, tok = S["main"], S["token"]
    why = refused(main, headers={"Origin": "http://evil.example"})
    check("Origin http://evil.example refused (no 101)", why is not None and "101" not in why, why)
    check("Origin refusal is an HTTP 403", why is not None and "403" in why, why)
    for o in ("http://localhost.evil.example", "http://127.0.0.1.evil.example", "http://evil.example/localhost",
              "null", "localhost"):
        why = refused(main, headers={"Origin": o})
        check(f"Origin {o} refused", why is not None, why)
    for o in ("http://localhost", "http://localhost:3000", "http://127.0.0.1:8080", "https://[::1]:1234/x"):
        good, why = accepted(main, headers={"Origin": o})
        check(f"Origin {o} accepted", good, why)
    good, why = accepted(main)
    check("no Origin (not a browser) accepted", good, why)

    # --token s3cret --allow-origin http://evil.example
    why = refused(tok)
    check("--token: a handshake without the token refused", why is not None, why)
    why = refused(tok, headers={"Authorization": "Bearer wrong"})
    check("--token: a wrong Bearer token refused", why is not None, why)
    why = refused(tok, headers={"Authorization": "Bearer s3cre"})
    check("--token: a prefix of the token refused", why is not None, why)
    why = refused(tok, headers={"Authorization": "Bearer s3cretX"})
    check("--token: the token plus a byte refused", why is not None, why)
    why = refused(tok, path="/?token=nope")
    check("--token: a wrong ?token= refused", why is not None, why)
    good, why = accepted(tok, headers={"Authorization": "Bearer s3cret"})
    check("--token: Authorization: Bearer TOKEN accepted", good, why)
    good, why = accepted(tok, path="/?token=s3cret")
    check("--token: ?token=TOKEN accepted", good, why)
    good, why = accepted(tok, headers={"Authorization": "Bearer s3cret", "Origin": "http://evil.example"})
    check("--allow-origin http://evil.example: that origin accepted", good, why)
    why = refused(tok, headers={"Authorization": "Bearer s3cret", "Origin": "http://other.example"})
    check("--allow-origin: another origin still refused", why is not None, why)
    good, why = accepted(tok, headers={"Authorization": "Bearer s3cret", "Origin": "http://localhost:5000"})
    check("--allow-origin: localhost still accepted", good, why)
    check("servers alive after the refused handshakes", main.alive() and tok.alive())


def t_limits():
    lim = S["limits"]   # --max-connections 2 --max-frame 4096 --max-streams 2 --max-tokens 50
    a, b = connect(lim), connect(lim)
    check("--max-connections 2: two connections answered", model_info_ok(a) and model_info_ok(b))
    time.sleep(0.1)
    b.cmd("MODEL_INFO", {"stream_id": 1})   # b is busier than a
    b.recv()
    # At the limit, the idlest connection (no stream, nothing to send) makes room.
    try:
        c = connect(lim)
        check("third connection over --max-connections 2: admitted", model_info_ok(c))
        try:
            cmd, p = a.recv()
            e = p[0] if p else {}
            closed_msg = cmd == "MSG" and e.get("stream_id") is None and "idlest" in e.get("error", "")
            try:
                a.recv()
                closed = False
            except (WSError, OSError):
                closed = True
        except (WSError, OSError) as ex:
            closed_msg, closed, cmd, p = False, False, type(ex).__name__, str(ex)
        check("... and the idlest connection gets a MSG saying why, then the close", closed_msg and closed,
              cmd, short(p))
        a.sock.close()
    except (WSError, OSError) as e:
        bad("third connection over --max-connections 2: admitted", f"{type(e).__name__}: {e}")
        c = None
    check("the other connection still answers", model_info_ok(b))
    a, b = b, c
    # --max-frame 4096
    big = "GENERATE " + json.dumps({"stream_id": 5, "prompt": [BOS] + [100] * 1200, "max_tokens": 1})
    a.send(big)
    cmd, p = a.recv()
    e = p[0] if p else {}
    check(f"a {len(big)}-byte frame over --max-frame 4096: MSG error naming the limit",
          cmd == "MSG" and "4096" in e.get("error", "") and "limit" in e.get("error", ""), cmd, short(p))
    check("... and the connection still answers", model_info_ok(a))
    frag = big.encode()
    a.send_frame(1, frag[:3000], fin=False)
    a.send_frame(0, frag[3000:], fin=True)
    cmd, p = a.recv()
    check("a fragmented message over --max-frame: MSG error", cmd == "MSG" and "4096" in p[0].get("error", ""),
          cmd, short(p))
    check("... and the connection still answers", model_info_ok(a))
    near = {"stream_id": 6, "prompt": [BOS] + [100] * 800, "max_tokens": 2}
    text = "GENERATE " + json.dumps(near)
    a.send(text)
    r = read_stream(a, 6)
    check(f"a {len(text)}-byte frame under the limit is served", len(text) < 4096 and len(r) == 2 and
          r[-1].get("finish_reason") == "length", short(r))

    # --max-tokens 50
    gen(a, 7, P0, 5000)
    r = read_stream(a, 7)
    check("max_tokens 5000 over --max-tokens 50: capped, 50 tokens ending with 'length' (LMQL's client sends "
          "constraint bounds uncapped)", len(r) == 50 and r[-1].get("finish_reason") == "length", short(r[-2:]))
    r = generate(a, P0, 50, sid=8)
    check("max_tokens 50 at the limit: 50 tokens", len(r) == 50 and r[-1].get("finish_reason") == "length",
          short(r[-1:]))

    # --max-streams 2
    gen(a, 11, [BOS, 600], 50)
    gen(a, 12, [BOS, 601], 50)
    gen(a, 13, [BOS, 602], 5)
    got = {11: 0, 12: 0}
    errs = []
    while len(errs) < 1 or got[11] < 50 or got[12] < 50:
        cmd, p = a.recv()
        q = p[0]
        if "error" in q:
            errs.append(q)
            if q.get("stream_id") != 13:
                break
        elif q.get("stream_id") in got:
            got[q["stream_id"]] += 1
        else:
            errs.append(q)
            break
    check("a third stream over --max-streams 2: error, the others finish",
          len(errs) == 1 and errs[0].get("stream_id") == 13 and "too many streams" in errs[0].get("error", "") and
          got == {11: 50, 12: 50}, short(errs), short(got))
    # At the limit, a new stream right after one finished is welcome.
    gen(a, 20, [BOS, 700], 50)   # the limit is 50 tokens here
    problem, long_done = None, False
    with Contention():
        for i in range(45):
            gen(a, 21 + i, [BOS, 701 + i], 1)
            while True:
                cmd, p = a.recv()
                q = p[0]
                if q.get("stream_id") == 21 + i:
                    break
                if "error" in q:
                    problem = short(q)
                long_done |= bool(q.get("finish_reason"))
            if "error" in q:
                problem = f"stream {21 + i}: {short(q)}"
                break
    while not long_done:          # the long stream ends
        cmd, p = a.recv()
        long_done = p[0].get("stream_id") == 20 and bool(p[0].get("finish_reason") or "error" in p[0])
    check("--max-streams counts only unfinished streams (new one right after a last token)",
          problem is None, problem)
    a.close()
    check("limits server alive", lim.alive(), lim.stderr_tail())


def one_cycle(srv, i):
    ws = connect(srv, timeout=10 * SLOW)
    try:
        gen(ws, 1, [BOS, 100 + i % 97, 200 + i % 13], 2)
        r = read_stream(ws, 1)
    finally:
        if i % 2:
            ws.close()
        else:
            ws.sock.close()   # half of them hang up without a close frame
    if len(r) != 2 or r[-1].get("finish_reason") != "length":
        raise AssertionError(f"cycle {i}: {short(r)}")


def t_cycles():
    srv = S["main"]
    warm, total = (100, 200) if ASAN else (100, 1000)
    errors = []
    t0 = time.time()
    for i in range(warm):
        try:
            one_cycle(srv, i)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")
    time.sleep(0.2)
    rss0 = srv.rss_kb()
    for i in range(warm, total):
        try:
            one_cycle(srv, i)
        except Exception as e:  # noqa: BLE001
            errors.append(f"{type(e).__name__}: {e}")
            if len(errors) > 20:
                break
    time.sleep(0.2)
    rss1 = srv.rss_kb()
    dt = time.time() - t0
    check(f"{total} connect/GENERATE/disconnect cycles all answered ({dt:.1f}s)", not errors,
          f"{len(errors)} failed", *errors[:5])
    if ASAN:
        check(f"RSS after {total} cycles: comparison skipped under ASan (quarantine grows memory); "
              f"server alive ({rss0} kB -> {rss1} kB)", srv.alive() and rss1 > 0)
    else:
        check(f"RSS after {total} cycles within 5% + 2 MB of after {warm} ({rss0} kB -> {rss1} kB)",
              0 < rss1 <= rss0 * 1.05 + 2048, f"grew {rss1 - rss0} kB")


def t_shutdown():
    main = S["main"]
    # SIGTERM while a client is connected and a stream runs.
    ws = connect(main)
    gen(ws, 1, [BOS, 800], 500)
    ws.recv()
    t0 = time.time()
    rc = main.stop(signal.SIGTERM, timeout=5 * SLOW)
    dt = time.time() - t0
    check(f"main server: SIGTERM mid-stream -> exit 0 ({dt:.2f}s)", rc == 0,
          f"exit status {rc} (None: still running after {5 * SLOW}s)", main.stderr_tail())
    try:
        ws.sock.settimeout(2)
        for _ in range(600):
            ws.recv()
        gone = False
    except (WSError, OSError):
        gone = True
    check("... and the client's connection ends", gone)
    ws.sock.close()
    rc = S["token"].stop(signal.SIGINT)
    check("token server: SIGINT -> exit 0", rc == 0, f"exit status {rc}", S["token"].stderr_tail())
    rc = S["limits"].stop(signal.SIGTERM)
    check("limits server: SIGTERM -> exit 0", rc == 0, f"exit status {rc}", S["limits"].stderr_tail())
    reports = [s.name for s in servers if re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: ",
                                                    s.stderr_tail(1 << 20))]
    check("no sanitizer or runtime-error reports on the servers' stderr", not reports,
          *[f"{n}: {next(s for s in servers if s.name == n).stderr_tail(800)}" for n in reports])


def main():
    t_start = time.time()
    try:
        S["main"] = Server("main")
        S["token"] = Server("token", "--token", "s3cret", "--allow-origin", "http://evil.example")
        S["limits"] = Server("limits", "--max-connections", "2", "--max-frame", "4096", "--max-streams", "2",
                             "--max-tokens", "50")
        started = True
        for s in S.values():
            port = s.wait_ready()
            started &= check(f"server '{s.name}' starts and prints 'serving {MODEL} on ws://127.0.0.1:PORT'",
                             port, f"stdout: {s.line!r}", s.stderr_tail())
        if not started:
            return
        for t in (t_cli_params, t_chat, t_queries, t_chunks, t_sampling, t_flood, t_generate_frames, t_concurrency, t_fairness, t_long_requests, t_disconnect_cancel, t_bad_inputs,
                  t_handshake, t_limits, t_cycles):
            t0 = time.time()
            run_test(t)
            if os.environ.get("LMQL_SERVE_TEST_TIMES"):
                print(f"# {t.__name__}: {time.time() - t0:.1f}s", flush=True)
            for s in S.values():
                if not s.alive():
                    bad(f"server '{s.name}' died during {t.__name__} (exit {s.proc.returncode})", s.stderr_tail())
                    return
        run_test(t_shutdown)
    finally:
        for s in servers:
            s.kill()
        for f in os.listdir(tmpdir):
            os.unlink(os.path.join(tmpdir, f))
        os.rmdir(tmpdir)
        if os.environ.get("LMQL_SERVE_TEST_TIMES"):
            print(f"# total {time.time() - t_start:.1f}s", flush=True)
        print(f"serve: {passed} passed, {failed} failed", flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
    sys.exit(1 if failed or not passed else 0)
