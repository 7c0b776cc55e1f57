#!/usr/bin/env python3
"""Two `lmql serve-model` replicas behind HAProxy (deploy/gen-haproxy-cfg.sh),
and the client's endpoint lists: queries through the proxy give the results
of `local:`; a replica killed mid-run fails its in-flight query with a clear
error and the next queries go to the other. Needs Debian's haproxy
(scripts/setup.sh installs it); without it the HAProxy part is skipped.

    python3 tests/serve/test_replicas.py build/bin/lmql        (repository root)

Prints `ok NAME` / `not ok NAME`, then `replicas: N passed, M failed`."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_server as ts  # noqa: E402
from test_ops import http_get, parse_prometheus, metric  # noqa: E402
from test_server import Server, bad, check  # noqa: E402

LMQL = os.path.abspath(ts.LMQL)
TINY = "build/models/tiny-gpt2.gguf"
MODEL = "llama.cpp:" + TINY
PROMPTS = ["Say hello:", "Count to three:", "The capital of France is", "Once upon a time"]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def lmql_run(model, prompt, n=6, timeout=120):
    q = f'argmax "{prompt}[X]" from {model} where len(TOKENS(X)) < {n}'
    try:
        r = subprocess.run([LMQL, "run", "-q", "--json", "-e", q], capture_output=True, text=True,
                           timeout=timeout * ts.SLOW, stdin=subprocess.DEVNULL)
        return r.returncode, r.stdout, r.stderr
    except subprocess.TimeoutExpired:
        return "timeout", "", ""


def replica(name):
    saved = ts.MODEL
    ts.MODEL = MODEL
    try:
        s = Server(name, "--n_seq_max", "4")
    finally:
        ts.MODEL = saved
    return s if s.wait_ready() else None


def tokens_generated(port):
    st, _, body = http_get(port, "/metrics")
    if st != 200:
        return -1
    # The client may cancel a stream once it has what it needs: count tokens.
    return metric(parse_prometheus(body)[0], "lmql_tokens_generated_total")


def t_haproxy():
    if not shutil.which("haproxy"):
        print("# haproxy is not installed (scripts/setup.sh installs it): HAProxy checks skipped", flush=True)
        return
    r1, r2 = replica("replica1"), replica("replica2")
    if not check("two replicas start", r1 and r2):
        return
    front = free_port()
    cfg = subprocess.run(["sh", "deploy/gen-haproxy-cfg.sh", f"127.0.0.1:{front}", f"127.0.0.1:{r1.port}",
                          f"127.0.0.1:{r2.port}"], capture_output=True, text=True)
    # Faster health checks than deployed, so the test need not wait long.
    text = cfg.stdout.replace("check inter 2s fall 2 rise 2", "check inter 200ms fall 1 rise 1")
    path = os.path.join(ts.tmpdir, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(text)
    v = subprocess.run(["haproxy", "-c", "-f", path], capture_output=True, text=True)
    if not check("the generated configuration is valid (haproxy -c)", cfg.returncode == 0 and v.returncode == 0,
                 cfg.stderr, v.stdout, v.stderr):
        return
    hp = subprocess.Popen(["haproxy", "-db", "-f", path], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=open(os.path.join(ts.tmpdir, "haproxy.stderr"), "wb"))
    try:
        end = time.time() + 20 * ts.SLOW
        st = 0
        while time.time() < end:
            try:
                st, _, _ = http_get(front, "/health", timeout=2)
            except OSError:
                st = 0
            if st == 200:
                break
            time.sleep(0.2)
        if not check("HAProxy forwards /health (200)", st == 200, st,
                     open(os.path.join(ts.tmpdir, "haproxy.stderr"), errors="replace").read()[-1500:]):
            return
        time.sleep(0.5)   # both replicas seen up
        via = f'lmql.model("{MODEL}", endpoint="127.0.0.1:{front}")'
        results = {}

        def one(i, p):
            results[i] = (lmql_run(via, p), lmql_run(f'"local:{MODEL}"', p))

        th = [threading.Thread(target=one, args=(i, p)) for i, p in enumerate(PROMPTS)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        same = all(a[0] == 0 and b[0] == 0 and json.loads(a[1]) == json.loads(b[1]) for a, b in results.values())
        check("4 queries through HAProxy: the argmax results of local:", same,
              *[f"{a[0]} {a[1][-300:]} {a[2][-300:]} | local {b[0]} {b[1][-300:]}" for a, b in results.values()])
        n1, n2 = tokens_generated(r1.port), tokens_generated(r2.port)
        check("leastconn spread the concurrent queries over both replicas", n1 > 0 and n2 > 0, n1, n2)

        # A replica killed mid-run: start a long query, find the replica
        # running it, kill it.
        long_q = (f'argmax "Tell a long story:[X]" from {via} where len(TOKENS(X)) < 4000')
        p = subprocess.Popen([LMQL, "run", "-q", "-e", long_q], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        victim = None
        end = time.time() + 30 * ts.SLOW
        while victim is None and time.time() < end and p.poll() is None:
            for r in (r1, r2):
                st, _, body = http_get(r.port, "/metrics")
                if (metric(parse_prometheus(body)[0], "lmql_streams_running") or 0) > 0:
                    victim = r
            time.sleep(0.05)
        if not check("the long query runs on one replica", victim is not None, p.poll()):
            p.kill()
            return
        victim.proc.send_signal(signal.SIGKILL)
        try:
            out, err = p.communicate(timeout=60 * ts.SLOW)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        check("the in-flight query fails with a clear error", p.returncode == 1 and "lost the connection" in err,
              p.returncode, err[-600:])
        rc, out, err = lmql_run(via, PROMPTS[0])
        rl, outl, _ = lmql_run(f'"local:{MODEL}"', PROMPTS[0])
        check("the next query succeeds through the other replica", rc == 0 and json.loads(out) == json.loads(outl),
              rc, err[-600:])
    finally:
        hp.terminate()
        try:
            hp.wait(timeout=10)
        except subprocess.TimeoutExpired:
            hp.kill()


def t_endpoint_list():
    dead1, dead2 = free_port(), free_port()
    r = replica("list-replica")
    if not check("a replica starts", r):
        return
    local = lmql_run(f'"local:{MODEL}"', PROMPTS[1])
    rc, out, err = lmql_run(f'lmql.model("{MODEL}", endpoint=["127.0.0.1:{dead1}", "127.0.0.1:{r.port}"])', PROMPTS[1])
    check("endpoint=[dead, live]: the first that answers serves, same result as local:",
          rc == 0 and local[0] == 0 and json.loads(out) == json.loads(local[1]), rc, err[-600:])
    rc, out, err = lmql_run(f"lmql.model(\"{MODEL}\", endpoint=['127.0.0.1:{r.port}'])", PROMPTS[1])
    check("a one-element list (single quotes) works", rc == 0 and json.loads(out) == json.loads(local[1]), rc,
          err[-600:])
    rc, out, err = lmql_run(f'lmql.model("{MODEL}", endpoint=["127.0.0.1:{dead1}", "127.0.0.1:{dead2}"])', PROMPTS[1])
    check("endpoint=[dead, dead]: an error naming both", rc == 1 and "none of the 2 model servers answered" in err and
          str(dead1) in err and str(dead2) in err, rc, err[-600:])
    rc, out, err = lmql_run(f'lmql.model("{MODEL}", endpoint=["127.0.0.1:{dead1}", 7])', PROMPTS[1])
    check("a bad list: a clear error", rc == 1 and "bad endpoint list" in err, rc, err[-600:])
    # A request in flight when its server dies fails; the list does not hide it.
    long_q = (f'argmax "Tell a long story:[X]" from lmql.model("{MODEL}", endpoint=["127.0.0.1:{r.port}", '
              f'"127.0.0.1:{dead1}"]) where len(TOKENS(X)) < 4000')
    p = subprocess.Popen([LMQL, "run", "-q", "-e", long_q], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    end = time.time() + 30 * ts.SLOW
    running = False
    while not running and time.time() < end and p.poll() is None:
        st, _, body = http_get(r.port, "/metrics")
        running = (metric(parse_prometheus(body)[0], "lmql_streams_running") or 0) > 0
        time.sleep(0.05)
    r.proc.send_signal(signal.SIGKILL)
    try:
        out, err = p.communicate(timeout=60 * ts.SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    check("a request in flight when its server dies fails with a clear error",
          running and p.returncode == 1 and "lost the connection" in err, running, p.returncode, err[-600:])


def main():
    try:
        for t in (t_endpoint_list, t_haproxy):
            try:
                t()
            except Exception as e:  # noqa: BLE001
                bad(f"{t.__name__}: raised {type(e).__name__}", str(e), traceback.format_exc(limit=4))
    finally:
        for s in ts.servers:
            s.kill()
        shutil.rmtree(ts.tmpdir, ignore_errors=True)
        print(f"replicas: {ts.passed} passed, {ts.failed} failed", flush=True)


if __name__ == "__main__":
    main()
    sys.exit(1 if ts.failed else 0)
