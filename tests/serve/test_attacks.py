#!/usr/bin/env python3
"""Attacks on `lmql serve-model`, each one a regression test: what a hostile
or careless client (or a neighbour on the machine) tried and must not get.

    python3 tests/serve/test_attacks.py build/bin/lmql        (repository root)

Access: the bind address, a long Origin, the token off the command line.
Resources: handshake and idle time-outs, slow handshakes, replies never read,
queued logit_bias, long SCOREs. Protocol: unmasked frames.
Prints `ok`/`not ok` lines and `attacks: N passed, M failed`."""
import array
import fcntl
import json
import os
import socket
import struct
import sys
import termios
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as T  # noqa: E402
from test_server import BOS, MODEL, SLOW, Server, bad, check, connect, gen, model_info_ok, ok, short  # noqa: E402
from wsclient import WS, WSError  # noqa: E402

P0 = [BOS, 450, 4996, 338]


def can_connect(host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(5 * SLOW)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def has_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def t_bind(srv, local):
    port = srv.port
    check("default host: 127.0.0.1 accepts", can_connect("127.0.0.1", port))
    # 127.0.0.2 is another address of this machine: a socket bound to [::]
    # (every interface) would take it; one bound to 127.0.0.1 must not.
    check("default host: another address of the machine (127.0.0.2) is refused", not can_connect("127.0.0.2", port))
    if has_ipv6_loopback():
        check("default host: ::1 is refused (IPv4 loopback only)", not can_connect("::1", port, socket.AF_INET6))
    log = srv.stderr_tail(4000)
    check("the log says what was bound", f"listening on 127.0.0.1:{port};" in log, short(log))
    lp = local.port
    check("--host localhost: 127.0.0.1 accepts", can_connect("127.0.0.1", lp))
    check("--host localhost: 127.0.0.2 is refused", not can_connect("127.0.0.2", lp))
    if has_ipv6_loopback():
        check("--host localhost: ::1 accepts", can_connect("::1", lp, socket.AF_INET6))
        log = local.stderr_tail(4000)
        check("--host localhost: the log names both", f"127.0.0.1:{lp} and [::1]:{lp}" in log, short(log))


def status_of(port, head):
    s = socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW)
    try:
        s.sendall(head)
        got = b""
        while b"\r\n" not in got:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got.split(b"\r\n", 1)[0].decode(errors="replace")
    finally:
        s.close()


def t_origin(srv):
    for n in (511, 512, 600, 5000):
        o = "http://evil.example/" + "a" * (n - 20)
        try:
            w = connect(srv, headers={"Origin": o})
            w.close()
            got = "accepted"
        except WSError as e:
            got = str(e)
        check(f"a foreign Origin of {n} bytes is refused (403)", "403" in got, got)
    good = "http://localhost:3000"
    try:
        w = connect(srv, headers={"Origin": good})
        check("a localhost Origin is accepted", model_info_ok(w))
        w.close()
    except WSError as e:
        bad("a localhost Origin is accepted", str(e))
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    two = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
           "Sec-WebSocket-Version: 13\r\nOrigin: http://localhost\r\nOrigin: http://evil.example\r\n\r\n").encode()
    st = status_of(srv.port, two)
    check("two Origin headers are refused", " 400 " in st + " ", st)
    huge = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 40000 + b"\r\n\r\n"
    st = status_of(srv.port, huge)
    check("a 40 KB request head is refused (431)", " 431 " in st + " ", st)


def t_token():
    env = dict(os.environ, LMQL_SERVER_TOKEN="env-s3cret")
    e = Server("token-env", env=env)
    path = os.path.join(T.tmpdir, "token")
    with open(path, "w") as f:
        f.write("file-s3cret\n")
    os.chmod(path, 0o600)
    fsrv = Server("token-file", "--token-file", path)
    fifo = os.path.join(T.tmpdir, "token-fifo")
    os.mkfifo(fifo)
    bad_file = Server("token-fifo", "--token-file", fifo)
    for s, tok in ((e, "env-s3cret"), (fsrv, "file-s3cret")):
        if not s.wait_ready():
            bad(f"server '{s.name}' starts", s.stderr_tail())
            continue
        try:
            connect(s).close()
            bad(f"{s.name}: a client without the token is refused")
        except WSError as ex:
            check(f"{s.name}: a client without the token is refused", "403" in str(ex), str(ex))
        try:
            w = connect(s, headers={"Authorization": "Bearer " + tok})
            check(f"{s.name}: the right token is accepted", model_info_ok(w))
            w.close()
        except WSError as ex:
            bad(f"{s.name}: the right token is accepted", str(ex))
        with open(f"/proc/{s.proc.pid}/cmdline", "rb") as f:
            cmdline = f.read()
        check(f"{s.name}: the token is not on the command line", tok.encode() not in cmdline, short(repr(cmdline)))
    rc = bad_file.proc.wait(timeout=20 * SLOW)
    check("--token-file naming a FIFO: refused at start (exit 2), no hang", rc == 2 and
          "not a regular file" in bad_file.stderr_tail(), rc, bad_file.stderr_tail())
    for s in (e, fsrv):
        s.kill()


def closed_by_server(sock, within):
    """Whether the server closes sock (EOF) within `within` seconds."""
    sock.settimeout(within)
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True


def t_timeouts(srv):
    # --handshake-timeout 1: a client that never finishes its request head.
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    check("a handshake left unfinished is closed (--handshake-timeout 1)", closed_by_server(s, 6 * SLOW))
    s.close()
    # Slow handshakes (slowloris): more than the server keeps pending.
    slow = []
    for i in range(300):
        try:
            c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
            c.sendall(b"GET / HTTP/1.1\r\n")
            slow.append(c)
        except OSError:
            break
    try:
        w = connect(srv)
        check(f"with {len(slow)} slow handshakes open, a client still connects and is answered", model_info_ok(w))
        w.close()
    except (WSError, OSError) as e:
        bad(f"with {len(slow)} slow handshakes open, a client still connects and is answered", str(e))
    for c in slow:
        c.close()
    # --idle-timeout 2: an idle connection is told why, then closed.
    w = connect(srv)
    w.sock.settimeout(10 * SLOW)
    try:
        cmd, p = w.recv()
        msg = p[0].get("error", "") if p else ""
        check("an idle connection gets a MSG naming --idle-timeout", cmd == "MSG" and "idle" in msg, cmd, short(p))
        try:
            w.recv()
            bad("... then the close")
        except WSError as e:
            check("... then the close", "closed" in str(e), str(e))
    except (WSError, OSError) as e:
        bad("an idle connection gets a MSG naming --idle-timeout", str(e))
    w.sock.close()
    # A connection with a running stream is not idle, however long it runs.
    w = connect(srv)
    gen(w, 1, P0, 1000, temperature=0.0)
    n, last = 0, None
    try:
        while True:
            cmd, p = w.recv()
            n += 1
            last = p[0]
            if "error" in last or last.get("finish_reason"):
                break
    except (WSError, OSError) as e:
        last = str(e)
    check("a stream is not cut by the idle time-out", isinstance(last, dict) and last.get("finish_reason") and n > 500,
          n, short(last))
    w.close()


def t_unmasked(srv):
    w = connect(srv)
    w.send_frame(1, b'MODEL_INFO {"stream_id": 1}', mask=False)
    try:
        op, fin, payload = w.recv_frame()
        code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        check("an unmasked client frame: close frame 1002 (RFC 6455 5.1)", op == 8 and code == 1002, op, payload)
    except (WSError, OSError) as e:
        bad("an unmasked client frame: close frame 1002 (RFC 6455 5.1)", str(e))
    w.sock.close()
    w = connect(srv)
    w.send_frame(0x41, b"x")    # RSV3 set, no extension agreed
    try:
        op, fin, payload = w.recv_frame()
        check("a frame with a reserved bit: close frame 1002", op == 8 and payload[:2] == b"\x03\xea", op, payload)
    except (WSError, OSError) as e:
        bad("a frame with a reserved bit: close frame 1002", str(e))
    w.sock.close()
    check("the server is still serving", model_info_ok(connect(srv)))


def pending(sock):
    """Bytes received and not yet read on sock."""
    buf = array.array("i", [0])
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return buf[0]


def t_unread(srv):
    """--max-unread 65536: a client that asks and never reads."""
    w = connect(srv)
    w.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)   # the server's send buffer is fixed too
    r0 = srv.rss_kb()
    # ~2.5 KB a token with 100 top_logprobs: 32 MB asked for, far past what the
    # kernel's socket buffers take (~3 MB here) plus the 64 KiB budget.
    for i in range(64):
        gen(w, i + 1, [BOS, 300 + i], 200, top_logprobs=100)
    # Wait until what waits in our socket stops growing: the server has
    # filled the kernel's buffers and met its budget. On a loaded machine the
    # server can also stall for a while before that: then reading what came
    # lets it go on, and it meets the budget in a later round.
    def wait_steady():
        last, steady, until = -1, 0, time.time() + 60 * SLOW
        while steady < 3 and time.time() < until:
            time.sleep(0.5)
            n = pending(w.sock)
            steady = steady + 1 if n == last and n > 0 else 0
            last = n

    first_error, r1 = None, None
    w.sock.settimeout(30 * SLOW)
    deadline = time.time() + 240 * SLOW
    try:
        while first_error is None and time.time() < deadline:
            wait_steady()
            if r1 is None:
                r1 = srv.rss_kb()
            # The replies queued before the budget ran out, then the streams' errors.
            while first_error is None and (pending(w.sock) > 0 or w.buf):
                cmd, p = w.recv()
                first_error = next((q for q in p if "error" in q), None)
    except (WSError, OSError) as e:
        first_error = {"error": f"{type(e).__name__}: {e}"}
    first_error = first_error or {"error": "no error before the deadline"}
    r1 = r1 if r1 is not None else srv.rss_kb()
    msg = first_error.get("error", "")
    check("unread replies past --max-unread: the streams end with an error naming the limit",
          "has not read" in msg and "65536" in msg, short(first_error))
    if not T.ASAN:
        check(f"unread replies: the server's memory stays bounded ({r0} kB -> {r1} kB)", r1 - r0 < 48 * 1024)
    w.sock.close()
    check("... and the server answers the next client", model_info_ok(connect(srv)))


def t_bias(srv):
    """--max-queued-bias 1000."""
    w = connect(srv)
    gen(w, 1, P0, 2, logit_bias={str(t): -100 for t in range(3, 2003)})
    cmd, p = w.recv()
    e = p[0] if p else {}
    check("a GENERATE with 2000 logit_bias entries over --max-queued-bias 1000: error naming the budget",
          cmd == "TOKEN" and e.get("stream_id") == 1 and "logit_bias" in e.get("error", "") and "1000" in e["error"],
          cmd, short(p))
    gen(w, 2, P0, 2, logit_bias={str(t): -100 for t in range(3, 503)})
    toks = T.read_stream(w, 2)
    check("one with 500 entries is served", len(toks) == 2 and toks[-1].get("finish_reason") == "length", short(toks))
    w.close()


def t_score(srv):
    """--max-score-tokens 500; long SCOREs are scored in slices."""
    w = connect(srv)
    w.cmd("SCORE", {"stream_id": 1, "prompt": [BOS], "scored": [300 + i % 500 for i in range(600)]})
    cmd, p = w.recv()
    e = p[0] if p else {}
    check("a 600-token SCORE over --max-score-tokens 500: error naming the budget",
          cmd == "TOKEN" and "SCORE tokens" in e.get("error", "") and "500" in e["error"], cmd, short(p))
    # A SCORE, then a one-token GENERATE on the same connection: the
    # GENERATE's token comes before the SCORE is done, since a SCORE is
    # scored a slice at a time between generation steps.
    w.cmd("SCORE", {"stream_id": 2, "prompt": [BOS], "scored": [300 + i for i in range(450)]})
    gen(w, 3, P0, 1)
    order, n_score = [], 0
    try:
        while len(order) < 2:
            cmd, p = w.recv()
            for q in p:
                if "error" in q:
                    order.append(("error", q))
                elif q.get("stream_id") == 2:
                    n_score += 1
                    if q.get("finish_reason"):
                        order.append((2, n_score))
                elif q.get("stream_id") == 3:
                    order.append((3, n_score))
    except (WSError, OSError) as e:
        order.append(("error", str(e)))
    check("a 450-token SCORE does not hold up a GENERATE sent after it (scored in slices)",
          len(order) == 2 and order[0][0] == 3 and order[0][1] < 450 and order[1] == (2, 450), short(order))
    w.close()


def t_fds():
    """Out of file descriptors: the server neither spins on its listener nor
    locks new clients out; the idlest connection makes room."""
    srv = Server("attacks-fds", limit_fds=64)
    if not check("a server limited to 64 descriptors starts", srv.wait_ready(), srv.stderr_tail()):
        return
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    head = (f"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode()
    held = []
    for _ in range(90):   # past the descriptors: the rest wait in the kernel's backlog
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(head)
        held.append(s)
    time.sleep(1.0 * SLOW)
    t0 = srv.cpu_ticks()
    time.sleep(2.0)
    used = srv.cpu_ticks() - t0
    check(f"out of descriptors: the server does not spin ({used} of 200 ticks in 2 s)", used < 100)
    try:
        w = connect(srv, timeout=30 * SLOW)
        check("out of descriptors: a new client still gets in and is answered", model_info_ok(w))
        w.close()
    except (WSError, OSError) as e:
        bad("out of descriptors: a new client still gets in and is answered", str(e))
    for s in held:
        s.close()
    check("... and the server is alive", srv.alive(), srv.stderr_tail())
    srv.kill()


def main():
    started = time.time()
    try:
        main_srv = Server("attacks", quiet=False)
        local = Server("attacks-localhost", "--host", "localhost", quiet=False, host="localhost")
        lim = Server("attacks-limits", "--handshake-timeout", "1", "--idle-timeout", "2",
                     "--max-queued-bias", "1000", "--max-score-tokens", "500")
        unread = Server("attacks-unread", "--max-unread", "65536")
        for s in (main_srv, local, lim, unread):
            if not check(f"server '{s.name}' starts", s.wait_ready(), s.line, s.stderr_tail()):
                return
        for name, fn in (("bind", lambda: t_bind(main_srv, local)), ("origin", lambda: t_origin(main_srv)),
                         ("token", t_token), ("unmasked", lambda: t_unmasked(main_srv)),
                         ("timeouts", lambda: t_timeouts(lim)), ("unread", lambda: t_unread(unread)),
                         ("bias", lambda: t_bias(lim)), ("score", lambda: t_score(lim)), ("fds", t_fds)):
            t0 = time.time()
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                import traceback
                bad(f"{name}: raised {type(e).__name__}", traceback.format_exc())
            if os.environ.get("LMQL_SERVE_TEST_TIMES"):
                print(f"# {name}: {time.time() - t0:.1f}s", flush=True)
            for s in (main_srv, local, lim, unread):
                if not s.alive():
                    bad(f"server '{s.name}' died during {name}", s.stderr_tail())
                    return
        reports = [s.name for s in T.servers if "Sanitizer" in s.stderr_tail(1 << 20) or
                   "runtime error:" in s.stderr_tail(1 << 20)]
        check("no sanitizer reports on the servers' stderr", not reports, reports)
    finally:
        for s in T.servers:
            s.kill()
        for f in os.listdir(T.tmpdir):
            os.unlink(os.path.join(T.tmpdir, f))
        os.rmdir(T.tmpdir)
        if os.environ.get("LMQL_SERVE_TEST_TIMES"):
            print(f"# total {time.time() - started:.1f}s", flush=True)
        print(f"attacks: {T.passed} passed, {T.failed} failed", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if T.failed or not T.passed else 0)
