#!/usr/bin/env python3
"""Aggregate generation throughput of `lmql serve-model`: one replica
reached directly, one behind HAProxy, two behind HAProxy and the same two
reached directly, clients split between them (deploy/
gen-haproxy-cfg.sh). C concurrent clients, each on its own connection,
each asking R GENERATEs of T tokens (argmax, EOS forbidden, distinct
prompts so no prefix is shared). Writes bench/results/replicas.json.

    python3 bench/replicas.py [build/bin/lmql] [MODEL.gguf] [clients] [requests] [tokens]

Numbers depend on the machine's free cores: two replicas on one machine
share its cores (each uses all of them by default)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "serve"))
from wsclient import WS  # noqa: E402

LMQL = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build/bin/lmql")
GGUF = sys.argv[2] if len(sys.argv) > 2 else "build/models/tiny-gpt2.gguf"
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 8
REQS = int(sys.argv[4]) if len(sys.argv) > 4 else 4
TOKENS = int(sys.argv[5]) if len(sys.argv) > 5 else 64
MODEL = "llama.cpp:" + GGUF
# More serve-model options for every replica, e.g. LMQL_BENCH_SERVE_ARGS="--n_threads 1" so that two
# replicas on one machine do not each spin a thread per core.
EXTRA = os.environ.get("LMQL_BENCH_SERVE_ARGS", "").split()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_replica():
    port = free_port()
    p = subprocess.Popen([LMQL, "serve-model", MODEL, "--port", str(port), "-q", "--n_ctx", "4096",
                          "--n_seq_max", str(CLIENTS), *EXTRA], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         stdin=subprocess.DEVNULL)
    p.stdout.readline()
    return p, port


errors = []


def client(port, ci, counts):
    ws = WS(port, timeout=300)
    n = 0
    for r in range(REQS):
        # Ids below 1000 exist in every vocabulary; EOS may end a stream early (tokens are counted).
        prompt = [1] + [100 + ci * 37 + r * 5 + k for k in range(8)]
        ws.cmd("GENERATE", {"model": MODEL, "prompt": prompt, "stream_id": r + 1, "max_tokens": TOKENS,
                            "temperature": 0.0})
        done = False
        while not done:
            _, payload = ws.recv()
            for p in payload:
                if "error" in p:
                    errors.append(p["error"])
                    done = True
                    break
                n += 1
                done = done or bool(p.get("finish_reason"))
    ws.close()
    counts[ci] = n


def run(*ports):
    """Every client on its own connection; with several ports, client i
    reaches ports[i % len(ports)] directly (the replicas without a proxy)."""
    counts = [0] * CLIENTS
    th = [threading.Thread(target=client, args=(ports[i % len(ports)], i, counts)) for i in range(CLIENTS)]
    t0 = time.time()
    for t in th:
        t.start()
    for t in th:
        t.join()
    dt = time.time() - t0
    if errors:
        sys.exit("a stream failed: " + errors[0])
    return {"tokens": sum(counts), "seconds": round(dt, 3), "tokens_per_s": round(sum(counts) / dt, 1)}


def haproxy(ports):
    front = free_port()
    cfg = subprocess.run(["sh", "deploy/gen-haproxy-cfg.sh", f"127.0.0.1:{front}",
                          *[f"127.0.0.1:{p}" for p in ports]], capture_output=True, text=True, check=True).stdout
    cfg = cfg.replace("check inter 2s fall 2 rise 2", "check inter 200ms fall 1 rise 1")
    path = f"/tmp/lmql-bench-haproxy-{os.getpid()}.cfg"
    with open(path, "w") as f:
        f.write(cfg)
    hp = subprocess.Popen(["haproxy", "-db", "-f", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.5)   # health checks mark the servers up
    return hp, front


def main():
    if not shutil.which("haproxy"):
        sys.exit("haproxy is not installed (scripts/setup.sh installs it)")
    res = {"model": GGUF, "serve_args": EXTRA, "clients": CLIENTS, "requests_each": REQS, "tokens_each": TOKENS, "cores": os.cpu_count()}
    procs = []
    try:
        p1, port1 = start_replica()
        procs.append(p1)
        run(port1)   # warm-up
        res["direct_1_replica"] = run(port1)
        hp, front = haproxy([port1])
        procs.append(hp)
        res["haproxy_1_replica"] = run(front)
        hp.terminate()
        hp.wait()
        p2, port2 = start_replica()
        procs.append(p2)
        hp, front = haproxy([port1, port2])
        procs.append(hp)
        run(front)   # warm-up of the second
        res["haproxy_2_replicas"] = run(front)
        res["direct_2_replicas"] = run(port1, port2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait()
    print(json.dumps(res, indent=1))
    os.makedirs("bench/results", exist_ok=True)
    with open("bench/results/replicas.json", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
