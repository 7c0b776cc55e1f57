#!/usr/bin/env python3
"""Attacks through files and through the model server, on the real binary
and the tiny test models; Python's standard library only.

    python3 tests/serve/test_files.py build/bin/lmql        (repository root)

- Files that are not regular files (FIFO, device, directory, socket) as the
  model, the query or the random model's vocabulary: a clear error naming
  the path, at once (a FIFO used to block forever).
- Parameters llama.cpp aborts on (n_batch below n_seq_max).
- The served model file truncated or rewritten while serving (the server
  copies the weights into memory: no SIGBUS, no silent change), and renamed
  over (a client that reads the vocabulary from the file must notice).
- A hostile server (a small WebSocket server here) sending huge or bad
  vocabularies and replies: runtime errors (exit 1) that name the server,
  never a query error (exit 2), never a crash.

Prints `ok NAME` / `not ok NAME`, then `files: N passed, M failed`."""
import base64
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402  (its main() runs only as a script)
from wsclient import WS  # noqa: E402

LMQL = ts.LMQL
SLOW = ts.SLOW
TINY = "build/models/tiny-spm.gguf"
OTHER = "build/models/tiny-gpt2.gguf"      # another vocabulary
tmp = ts.tmpdir
# One tally with test_server's helpers (its ok/bad/check count there).
ok, bad, check = ts.ok, ts.bad, ts.check


SANITIZER = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: ")
reports = []   # sanitizer reports seen on any stderr, checked at the end


def run(args, timeout=60):
    """`lmql ARGS`: (exit status, stdout, stderr); a hang is exit 'timeout'."""
    try:
        r = subprocess.run([LMQL, *args], capture_output=True, text=True, timeout=timeout * SLOW,
                           stdin=subprocess.DEVNULL)
        if SANITIZER.search(r.stderr):
            reports.append(f"lmql {' '.join(args)[:200]}: {r.stderr[-800:]}")
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")


def query(model, extra=""):
    return f'argmax "Say hello:[X]" from {model} where len(TOKENS(X)) < 6{extra}'


def start_server(path, *extra):
    """`lmql serve-model llama.cpp:PATH` on a free port, ready, or None."""
    saved = ts.MODEL
    ts.MODEL = "llama.cpp:" + path
    try:
        srv = ts.Server("files-%d" % len(ts.servers), *extra)
        srv.wait_ready()
    finally:
        ts.MODEL = saved
    return srv


def generate(srv, path, prompt, n=8):
    ws = WS(srv.port, timeout=30 * SLOW)
    try:
        ws.cmd("GENERATE", {"model": "llama.cpp:" + path, "prompt": prompt, "stream_id": 1, "max_tokens": n,
                            "temperature": 0.0})
        toks = []
        while True:
            cmd, payload = ws.recv()
            for p in payload:
                if "error" in p:
                    return ["error: " + p["error"]]
                toks.append(p["token"])
                if p.get("finish_reason"):
                    return toks
    finally:
        ws.close()


def model_info(srv, path):
    ws = WS(srv.port, timeout=30 * SLOW)
    try:
        ws.cmd("MODEL_INFO", {"stream_id": 7, "model": "llama.cpp:" + path, "data": {"model": "llama.cpp:" + path}})
        return ws.recv()[1][0].get("model_info", {})
    finally:
        ws.close()


# ------------------------------------------------- not regular files --

def t_not_regular():
    fifo = os.path.join(tmp, "model.gguf")
    os.mkfifo(fifo)
    sock = os.path.join(tmp, "sock.gguf")
    s = socket.socket(socket.AF_UNIX)
    s.bind(sock)
    try:
        for path, kind in ((fifo, "FIFO"), ("/dev/zero", "device"), (tmp, "directory"), (sock, "socket")):
            rc, out, err = run(["run", "-q", "-e", query(f'"local:llama.cpp:{path}"')])
            check(f"lmql run, {kind} as the model: exit 1, 'not a regular file' naming it",
                  rc == 1 and "not a regular file" in err and path in err and "error:" not in err, f"exit {rc}", err)
            rc, out, err = run(["run", "-q", "-e", query(f'lmql.model("random", vocab="{path}")')])
            check(f"lmql run, {kind} as the random model's vocab: exit 1, 'not a regular file'",
                  rc == 1 and "not a regular file" in err and path in err, f"exit {rc}", err)
            rc, out, err = run(["run", "-q", path])
            check(f"lmql run FILE, {kind} as the query file: exit 1, 'not a regular file'",
                  rc == 1 and "not a regular file" in err and path in err, f"exit {rc}", err)
            rc, out, err = run(["serve-model", "llama.cpp:" + path, "--port", "0", "-q"])
            check(f"serve-model, {kind} as the model: exit 1, 'not a regular file'",
                  rc == 1 and "not a regular file" in err and path in err and not out, f"exit {rc}", err, out)
    finally:
        s.close()
        os.unlink(sock)
        os.unlink(fifo)


# ------------------------------------------------------- parameters --

def t_params():
    rc, out, err = run(["run", "--json", "-e", query(f'lmql.model("local:llama.cpp:{TINY}", n_batch=1)')])
    check("lmql run with n_batch=1 (below n_seq_max 8): no llama.cpp abort, a result", rc == 0 and '"X"' in out,
          f"exit {rc}", err[-600:])
    rc, out, err = run(["run", "-e", query(f'lmql.model("local:llama.cpp:{TINY}", n_ctx=8, n_seq_max=16)')])
    check("n_ctx below n_seq_max: exit 1 with the cause", rc == 1 and "n_seq_max" in err, f"exit {rc}", err[-600:])
    srv = start_server(TINY, "--n_batch", "1")
    if check("serve-model --n_batch 1 starts", srv.port, srv.stderr_tail()):
        toks = generate(srv, TINY, [1, 15043], 4)
        check("... and generates", len(toks) == 4 and all(isinstance(t, int) for t in toks), toks)
    srv.kill()


# --------------------------------------------- the served model file --

def t_served_file():
    path = os.path.join(tmp, "served.gguf")
    shutil.copyfile(TINY, path)
    srv = start_server(path)
    if not check("a server on a copy of the model starts", srv.port, srv.stderr_tail()):
        return
    prompt = [1, 15043, 3186, 29901]
    before = generate(srv, path, prompt)
    # Rewritten in place (same inode) by another model: what cp does.
    with open(OTHER, "rb") as f, open(path, "r+b") as g:
        g.truncate(0)
        g.write(f.read())
    check("the file rewritten in place while serving: same tokens (the weights are a private copy)",
          srv.alive() and generate(srv, path, prompt) == before, srv.stderr_tail())
    # Truncated: a mapping would SIGBUS on the next access.
    with open(path, "r+b") as g:
        g.truncate(1000)
    after = generate(srv, path, prompt) if srv.alive() else None
    check("the file truncated while serving: no SIGBUS, same tokens", srv.alive() and after == before,
          f"exit {srv.proc.returncode}", after, before, srv.stderr_tail())
    srv.kill()
    # Load time: a truncated file is an error, not a crash.
    rc, out, err = run(["run", "-e", query(f'"local:llama.cpp:{path}"')])
    check("lmql run on a truncated model: exit 1, 'truncated'", rc == 1 and "truncated" in err, f"exit {rc}", err)
    rc, out, err = run(["serve-model", "llama.cpp:" + path, "--port", "0", "-q"])
    check("serve-model on a truncated model: exit 1, 'truncated'", rc == 1 and "truncated" in err, f"exit {rc}", err)
    # mmap on request still works.
    shutil.copyfile(TINY, path)
    srv = start_server(path, "--use_mmap", "true")
    check("serve-model --use_mmap true starts and generates", srv.port and generate(srv, path, prompt) == before,
          srv.stderr_tail())
    srv.kill()
    os.unlink(path)


def t_renamed_over():
    """The client reads the vocabulary from PATH when it has the file; if
    the file is another model's by now, it must use the server's."""
    path = os.path.join(tmp, "renamed.gguf")
    shutil.copyfile(TINY, path)
    srv = start_server(path)
    if not check("a server on a copy of the model starts", srv.port, srv.stderr_tail()):
        return
    info = model_info(srv, path)
    check("MODEL_INFO carries vocab_hash (16 hex digits)",
          len(info.get("vocab_hash", "")) == 16 and int(info["vocab_hash"], 16) >= 0, info)
    model = f'lmql.model("llama.cpp:{path}", endpoint="127.0.0.1:{srv.port}")'
    rc, want, err = run(["run", "--json", "-e", query(model)], 120)
    check("a run against it", rc == 0, f"exit {rc}", err)
    other = os.path.join(tmp, "other.gguf")
    shutil.copyfile(OTHER, other)
    os.rename(other, path)           # renamed over: the server keeps the old model
    rc, got, err = run(["run", "--json", "-e", query(model)], 120)
    check("PATH renamed over by another model: the client uses the served vocabulary, same result",
          rc == 0 and got == want, f"exit {rc}", err[-600:], got, want)
    local = f'"local:llama.cpp:{path}"'
    rc, other_out, err = run(["run", "--json", "-e", query(local)], 120)
    check("(the file at PATH really is another model now)", rc == 0 and other_out != want, other_out, want)
    srv.kill()
    os.unlink(path)


# ---------------------------------------------------- hostile server --

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Hostile:
    """Just enough of a WebSocket server and of LMTP to answer lmql's
    client: answer(cmd, payload) returns the reply text or None."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(60 * SLOW)
        self.port = self.sock.getsockname()[1]
        self.seen = []
        self.th = threading.Thread(target=self.serve, daemon=True)
        self.th.start()

    def serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        conn.settimeout(60 * SLOW)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                head += conn.recv(4096)
            key = next(ln.split(b":", 1)[1].strip() for ln in head.split(b"\r\n")
                       if ln.lower().startswith(b"sec-websocket-key:"))
            acc = base64.b64encode(hashlib.sha1(key + GUID).digest())
            conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            buf = b""

            def read(n):
                nonlocal buf
                while len(buf) < n:
                    c = conn.recv(1 << 16)
                    if not c:
                        raise EOFError
                    buf += c
                out, buf = buf[:n], buf[n:]
                return out
            while True:
                b0, b1 = read(2)
                n = b1 & 0x7F
                if n == 126:
                    n = struct.unpack("!H", read(2))[0]
                elif n == 127:
                    n = struct.unpack("!Q", read(8))[0]
                mask = read(4) if b1 & 0x80 else b"\0\0\0\0"
                data = read(n)
                data = (int.from_bytes(data, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
                if b0 & 0x0F == 8:
                    break
                if b0 & 0x0F != 1:
                    continue
                cmd, _, body = data.decode().partition(" ")
                self.seen.append(cmd)
                reply = self.answer(cmd, json.loads(body))
                if reply is None:
                    continue
                out = reply.encode()
                n = len(out)
                hdr = (struct.pack("!BB", 0x81, n) if n < 126 else struct.pack("!BBH", 0x81, 126, n) if n < 65536
                       else struct.pack("!BBQ", 0x81, 127, n))
                conn.sendall(hdr + out)
        except (EOFError, OSError):
            pass
        finally:
            conn.close()

    def close(self):
        self.sock.close()
        self.th.join(10)


def vocab_answer(pieces, tokenize=None, info=None):
    def answer(cmd, p):
        sid = p.get("stream_id")
        if cmd == "MODEL_INFO":
            return "MSG " + json.dumps([{"stream_id": sid, "model_info": info or {"model_type": "hostile"}}])
        if cmd == "VOCAB":
            return "MSG " + json.dumps([{"stream_id": sid, "vocab": {"n_vocab": len(pieces), "bos": 1, "eos": 2,
                                                                     "add_bos": True, "eog": [2], "pieces": pieces}}])
        if cmd == "TOKENIZE" and tokenize:
            return "MSG " + json.dumps([{"stream_id": sid, "tokens": tokenize(p)}])
        if cmd == "CANCEL":
            return None
        return "MSG " + json.dumps([{"stream_id": sid, "error": "\x1b]0;owned\x07\x1b[2Jno " + cmd}])
    return answer


def hostile_run(answer, name, expect):
    h = Hostile(answer)
    try:
        model = f'lmql.model("llama.cpp:/no/such/dir/m.gguf", endpoint="127.0.0.1:{h.port}")'
        rc, out, err = run(["run", "-q", "-e", query(model)], 120)
    finally:
        h.close()
    where = f"model server at 127.0.0.1:{h.port}"
    check(f"hostile server, {name}: exit 1 (runtime, not a query error) naming the server and the cause",
          rc == 1 and where in err and expect in err and "out of memory" not in err and "\x1b" not in err,
          f"exit {rc}", repr(err[-600:]), f"commands seen: {h.seen}")


def t_hostile():
    small = ["%02x" % (0x41 + i % 26) for i in range(100)]
    huge = list(small)
    huge[5] = "62" * (16 << 20)                     # a 16 MiB piece (the audit's case)
    hostile_run(vocab_answer(huge), "a 16 MiB vocabulary piece", "more than 16 MiB")
    long_piece = list(small)
    long_piece[7] = "63" * 65536
    hostile_run(vocab_answer(long_piece), "a 64 KiB vocabulary piece", "vocabulary piece of 65536 bytes")
    hostile_run(vocab_answer(["zz"] * 10), "a vocabulary that is not hex", "bad vocabulary")
    hostile_run(vocab_answer(small, tokenize=lambda p: [5, 99999]), "TOKENIZE ids outside the vocabulary",
                "outside its vocabulary")
    hostile_run(vocab_answer(small, tokenize=lambda p: [5, 6]), "an error with terminal escapes", "no GENERATE")
    hostile_run(lambda cmd, p: "MSG {not json", "malformed replies", "malformed message")
    # A local copy whose fingerprint differs from the server's: the server's
    # vocabulary is asked for (VOCAB), not the file's used.
    h = Hostile(vocab_answer(long_piece, info={"vocab_hash": "0123456789abcdef", "n_vocab": 100}))
    try:
        model = f'lmql.model("llama.cpp:{TINY}", endpoint="127.0.0.1:{h.port}")'
        rc, out, err = run(["run", "-q", "-e", query(model)], 120)
    finally:
        h.close()
    check("a local file whose vocab_hash differs from the server's: the server's vocabulary is asked for",
          rc == 1 and "VOCAB" in h.seen and "vocabulary piece of 65536 bytes" in err, f"exit {rc}", err[-600:],
          h.seen)


def main():
    try:
        for t in (t_not_regular, t_params, t_served_file, t_renamed_over, t_hostile):
            try:
                t()
            except Exception as e:  # noqa: BLE001
                bad(f"{t.__name__}: raised {type(e).__name__}", str(e), traceback.format_exc(limit=4))
        for s in ts.servers:
            if SANITIZER.search(s.stderr_tail(1 << 20)):
                reports.append(f"server {s.name}: {s.stderr_tail(800)}")
        check("no sanitizer or runtime-error reports on any stderr", not reports, *reports)
    finally:
        for s in ts.servers:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
        print(f"files: {ts.passed} passed, {ts.failed} failed", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if ts.failed or not ts.passed else 0)
