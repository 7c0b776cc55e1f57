#!/usr/bin/env python3
"""MaskBench for our grammar engine: drives build/bin/lmql-maskbench.

    python3 bench/maskbench.py [--dir DIR] [--limit N] [--timeout S] [--threads N]
                               [--free-ws] [--reuse] [--vocab GGUF] [--bin PATH] [--out FILE]

MaskBench (guidance-ai/jsonschemabench, folder maskbench) measures how long a
grammar engine takes to compute token masks for JSON Schemas, with no model:
for every test instance of every schema, the instance's text is tokenized and
the engine computes the full mask before each token, then takes the token.
This script follows its runner (maskbench/runner.py) and its report
(scripts/maskbench_results.py):

* instance text: json.dumps(data, indent=None, ensure_ascii=False), tokenized
  with the Llama 3 tokenizer without special tokens (here: the llama-bpe
  vocabulary's own tokenizer, through lmql-maskbench --tokenize);
* TBM: every step's time (mask + check + advance), over every schema that
  compiled, the step that refused a token included; TTFM: the compile time of
  every schema that compiled, plus the time limit for each one that timed out;
  percentiles: sorted values, index int(n * p / 100) clamped to the last;
* a schema passes when it compiled and no instance failed; otherwise the LAST
  failing instance names its failure (as the runner overwrites it): a valid
  instance refused (or an engine error) is a validation error, an invalid one
  allowed to its last token an invalidation error (MaskBench does not ask
  whether the matcher accepts at the end; the "strict" column also requires
  an accepting end state of valid instances, and counts an invalid instance
  only when it ends accepting);
* the time limit covers a schema's whole job (compile and all instances), as
  MaskBench's alarm covers its whole file; a schema over it counts as a
  timeout and the engine process is restarted.

Schemas come from MASKBENCH_DIR, default ../shared/data/maskbench from the
repository root (or from the main worktree's root when this is a linked git
worktree). The table goes to stdout, the full results to
bench/results/maskbench.json. Python standard library only.
"""
import argparse
import datetime
import json
import os
import re
import resource
import selectors
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PERCENTILES = [25, 50, 75, 90, 95, 99, 99.9, 100]


def default_dir():
    env = os.environ.get("MASKBENCH_DIR")
    if env:
        return env
    cands = [os.path.join(ROOT, "..", "shared", "data", "maskbench")]
    try:
        common = subprocess.run(["git", "-C", ROOT, "rev-parse", "--path-format=absolute", "--git-common-dir"],
                                capture_output=True, text=True, check=True).stdout.strip()
        cands.append(os.path.join(os.path.dirname(common), "..", "shared", "data", "maskbench"))
    except (OSError, subprocess.CalledProcessError):
        pass
    for c in cands:
        if os.path.isdir(c):
            return os.path.normpath(c)
    return os.path.normpath(cands[0])


def get_p(arr, p):
    """MaskBench's percentile: arr sorted, index int(n * p / 100), clamped."""
    if not arr:
        return None
    idx = int(len(arr) * p / 100)
    return arr[min(idx, len(arr) - 1)]


def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


class EngineDied(Exception):
    pass


class Engine:
    """One lmql-maskbench process; restarted after a timeout or a crash."""

    def __init__(self, argv, mem_limit_gb):
        self.argv = argv
        self.mem_limit = int(mem_limit_gb * (1 << 30)) if mem_limit_gb > 0 else 0
        self.proc = None
        self.buf = b""

    def _limit(self):
        if self.mem_limit:
            resource.setrlimit(resource.RLIMIT_AS, (self.mem_limit, self.mem_limit))

    def start(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, preexec_fn=self._limit, cwd=ROOT)
        self.buf = b""
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)

    def kill(self):
        if self.proc:
            try:
                self.proc.kill()
            except OSError:
                pass
            self.proc.wait()
            self.sel.close()
            self.proc = None

    def close(self):
        if self.proc:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
            self.kill()

    def send(self, line):
        if not self.proc:
            self.start()
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise EngineDied(self._died())

    def _died(self):
        rc = self.proc.wait()
        self.sel.close()
        self.proc = None
        return rc

    def readline(self, deadline):
        """The next JSON line, None on timeout; EngineDied(returncode) on EOF."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            if not self.sel.select(left):
                return None
            chunk = os.read(self.proc.stdout.fileno(), 1 << 20)
            if not chunk:
                raise EngineDied(self._died())
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)


def tokenize_all(binary, vocab, texts):
    """Token ids of each text, through lmql-maskbench --tokenize."""
    data = "".join(json.dumps(t) + "\n" for t in texts).encode()
    r = subprocess.run([binary, "--vocab", vocab, "--tokenize"], input=data, capture_output=True, cwd=ROOT)
    if r.returncode != 0:
        sys.exit("maskbench: tokenizing failed: " + r.stderr.decode(errors="replace")[-2000:])
    lines = r.stdout.decode().split("\n")
    if len(lines) != len(texts) + 1:
        sys.exit("maskbench: the tokenizer answered %d lines for %d texts" % (len(lines) - 1, len(texts)))
    return lines[:-1]


def run_schema(eng, job, timeout):
    """Send one job; return (status, compile line, test lines, exit code)."""
    deadline = time.monotonic() + timeout
    try:
        eng.send(job)
        head = eng.readline(deadline)
        if head is None:
            eng.kill()
            return "timeout", None, [], None
        tests = []
        while True:
            msg = eng.readline(deadline)
            if msg is None:
                eng.kill()
                return "timeout", head, tests, None
            if msg.get("done"):
                return "ok", head, tests, None
            tests.append(msg)
    except EngineDied as e:
        return "crash", None, [], e.args[0]


def classify(tests, results, strict):
    """MaskBench's verdict on one compiled schema: None (passing), 'validation'
    or 'invalidation' (the last failing instance decides, as in its runner)."""
    verdict = None
    for t, r in zip(tests, results):
        if r is None or "error" in r:
            verdict = "validation"          # the runner's "EXN" case
            continue
        accepted = r["rejected_at"] == -1
        if strict:
            accepted = accepted and r.get("accepting", False)
        if accepted and not t["valid"]:
            verdict = "invalidation"
        elif not accepted and t["valid"]:
            verdict = "validation"
    return verdict


def fmt_us(x, digits=0):
    if x is None:
        return "-"
    return f"{x:,.{digits}f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=None, help="MaskBench data directory (default: $MASKBENCH_DIR or ../shared/data/maskbench)")
    ap.add_argument("--limit", type=int, default=0, help="only N schemas, spread evenly over the sorted file list")
    ap.add_argument("--timeout", type=float, default=60, help="seconds per schema (compile and instances)")
    ap.add_argument("--threads", type=int, default=1, help="lmql-maskbench --threads")
    ap.add_argument("--free-ws", action="store_true", help="grammars with any JSON whitespace between tokens")
    ap.add_argument("--reuse", action="store_true", help="one matcher per schema (warm caches across instances)")
    ap.add_argument("--mem-limit", type=float, default=8, help="address-space limit of the engine in GiB (0: none; MaskBench: 40); "
                    "a sanitizer build needs 0")
    ap.add_argument("--vocab", default="build/vocab/ggml-vocab-llama-bpe.gguf")
    ap.add_argument("--bin", default="build/bin/lmql-maskbench")
    ap.add_argument("--out", default="bench/results/maskbench.json")
    ap.add_argument("--missing-ok", action="store_true", help="exit 0 with a note when the data directory is missing")
    args = ap.parse_args()

    ddir = args.dir or default_dir()
    binary = os.path.join(ROOT, args.bin) if not os.path.isabs(args.bin) else args.bin
    vocab = os.path.join(ROOT, args.vocab) if not os.path.isabs(args.vocab) else args.vocab
    if not os.path.isdir(ddir):
        print(f"maskbench: no data directory {ddir} (set MASKBENCH_DIR)", file=sys.stderr)
        sys.exit(0 if args.missing_ok else 1)
    for p in (binary, vocab):
        if not os.path.exists(p):
            sys.exit(f"maskbench: {p} is missing (make all testdata)")
    files = sorted(f for f in os.listdir(ddir) if f.endswith(".json"))
    if args.limit and args.limit < len(files):
        step = len(files) / args.limit
        files = [files[int(i * step)] for i in range(args.limit)]
    if not files:
        sys.exit(f"maskbench: no *.json in {ddir}")

    # Read the schemas and tokenize every instance in one pass.
    schemas = []
    texts = []
    for f in files:
        with open(os.path.join(ddir, f), encoding="utf-8") as fh:
            d = json.load(fh)
        tests = d.get("tests", [])
        schemas.append((f, d["schema"], tests, len(texts)))
        for t in tests:
            texts.append(json.dumps(t["data"], indent=None, ensure_ascii=False))
    t0 = time.monotonic()
    tokens = tokenize_all(binary, vocab, texts)
    print(f"maskbench: {len(files)} schemas, {len(texts)} instances tokenized in {time.monotonic() - t0:.1f} s; "
          f"timeout {args.timeout:g} s", file=sys.stderr)

    argv = [binary, "--vocab", vocab, "--threads", str(args.threads)]
    if args.free_ws:
        argv.append("--free-ws")
    if args.reuse:
        argv.append("--reuse")
    eng = Engine(argv, args.mem_limit)

    tbm, tbm_cpu, ttfm, ttfm_first = [], [], [], []
    counts = {"schemas": 0, "passing": 0, "compile error": 0, "segmentation fault": 0, "out of memory": 0,
              "crash": 0, "timeout": 0, "validation error": 0, "invalidation error": 0}
    strict = {"passing": 0, "validation error": 0, "invalidation error": 0}
    inst = {"valid accepted": 0, "valid refused": 0, "valid allowed, not accepting": 0, "invalid refused": 0,
            "invalid allowed, accepting": 0, "invalid allowed, not accepting": 0, "engine error": 0}
    compile_reasons = {}
    records = []
    n_tokens = 0
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="maskbench-") as tmp:
        for k, (f, schema, tests, first) in enumerate(schemas):
            sp = os.path.join(tmp, "schema.json")
            tp = os.path.join(tmp, "tokens.txt")
            with open(sp, "w", encoding="utf-8") as fh:
                json.dump(schema, fh, ensure_ascii=False)
            with open(tp, "w") as fh:
                fh.write("".join(tokens[first + i] + "\n" for i in range(len(tests))))
            status, head, results, rc = run_schema(eng, f"{sp}\t{tp}", args.timeout)
            counts["schemas"] += 1
            rec = {"id": f, "tests": len(tests)}
            records.append(rec)
            if status == "timeout":
                counts["timeout"] += 1
                ttfm.append(args.timeout * 1e6)
                ttfm_first.append(args.timeout * 1e6)
                rec["status"] = "timeout"
                continue
            if status == "crash":
                kind = {-signal.SIGSEGV: "segmentation fault", -signal.SIGABRT: "out of memory"}.get(rc, "crash")
                counts[kind] += 1
                rec["status"] = kind
                rec["exit"] = rc
                continue
            if "compile_error" in head or "error" in head:
                why = head.get("compile_error") or head.get("error")
                counts["compile error"] += 1
                rec["status"] = "compile error"
                rec["error"] = why[:300]
                # Group by what is wrong, without where: "JSON schema at #/a/b: oneOf: ..." -> "oneOf".
                m = re.match(r".*?#\S*: (.*)", why or "")
                key = re.split(r": | \(", m.group(1) if m else (why or "?"))[0][:80]
                compile_reasons[key] = compile_reasons.get(key, 0) + 1
                continue
            # MaskBench's TTFM is its engines' compile call: schema to grammar
            # and matcher (grammar_us); with our first mask too: compile_us.
            ttfm.append(head["grammar_us"])
            ttfm_first.append(head["compile_us"])
            rec.update({k2: head[k2] for k2 in ("compile_us", "grammar_us", "first_mask_us", "nonterminals", "terminals")})
            by_test = [None] * len(tests)
            for r in results:
                if 0 <= r.get("test", -1) < len(tests):
                    by_test[r["test"]] = r
            steps = 0
            mx = 0.0
            total = 0.0
            summary = []
            for t, r in zip(tests, by_test):
                if r is None:
                    inst["engine error"] += 1
                    summary.append([t["valid"], None, None])
                    continue
                tbm.extend(r["us"])
                tbm_cpu.extend(r["cpu_us"])
                steps += len(r["us"])
                total += sum(r["us"])
                if r["us"]:
                    mx = max(mx, max(r["us"]))
                acc = r.get("accepting")
                summary.append([t["valid"], r["rejected_at"], acc] + ([r["error"]] if "error" in r else []))
                if "error" in r:
                    inst["engine error"] += 1
                elif t["valid"]:
                    inst["valid accepted" if r["rejected_at"] == -1 and acc else
                         "valid refused" if r["rejected_at"] != -1 else "valid allowed, not accepting"] += 1
                else:
                    inst["invalid refused" if r["rejected_at"] != -1 else
                         "invalid allowed, accepting" if acc else "invalid allowed, not accepting"] += 1
            n_tokens += steps
            rec.update({"tokens": steps, "masks_us": round(total, 3), "max_mask_us": round(mx, 3), "results": summary})
            v = classify(tests, by_test, False)
            rec["status"] = v + " error" if v else "passing"
            counts[v + " error" if v else "passing"] += 1
            vs = classify(tests, by_test, True)
            strict[vs + " error" if vs else "passing"] += 1
            rec["strict"] = vs + " error" if vs else "passing"
            if (k + 1) % 100 == 0:
                print(f"maskbench: {k + 1}/{len(schemas)} schemas, {time.monotonic() - t_start:.0f} s", file=sys.stderr)
    eng.close()
    wall = time.monotonic() - t_start

    tbm.sort()
    tbm_cpu.sort()
    ttfm.sort()
    ttfm_first.sort()
    entries = {}
    entries["TBM avg"] = sum(tbm) / len(tbm) if tbm else None
    for p in PERCENTILES:
        entries[f"TBM p{p:g}"] = get_p(tbm, p)
    entries["TTFM avg"] = sum(ttfm) / len(ttfm) if ttfm else None
    for p in PERCENTILES:
        entries[f"TTFM p{p:g}"] = get_p(ttfm, p)
    extra = {
        "TBM (CPU time) p50": get_p(tbm_cpu, 50), "TBM (CPU time) p99": get_p(tbm_cpu, 99),
        "TTFM + first mask p50": get_p(ttfm_first, 50), "TTFM + first mask p99": get_p(ttfm_first, 99),
    }
    mach = machine()
    out = {
        "machine": mach,
        "options": {"dir": ddir, "schemas": len(files), "limit": args.limit, "timeout_s": args.timeout,
                    "threads": args.threads, "free_ws": args.free_ws, "reuse": args.reuse,
                    "vocab": os.path.relpath(vocab, ROOT), "wall_s": round(wall, 1)},
        "entries": entries, "extra": extra, "tokens": n_tokens, "counts": counts, "strict": strict,
        "instances": inst, "compile_errors": dict(sorted(compile_reasons.items(), key=lambda x: -x[1])),
        "schemas": records,
    }
    outp = os.path.join(ROOT, args.out) if not os.path.isabs(args.out) else args.out
    os.makedirs(os.path.dirname(outp), exist_ok=True)
    with open(outp, "w") as fh:
        # One line per schema keeps the file small and diffable.
        head = json.dumps({k: v for k, v in out.items() if k != "schemas"}, indent=1, ensure_ascii=False)
        fh.write(head[:-2] + ',\n "schemas": [\n')
        fh.write(",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in records))
        fh.write("\n ]\n}\n")

    print(f"MaskBench: {len(files)} schemas from {ddir}, vocab {os.path.basename(vocab)}, "
          f"{'free whitespace' if args.free_ws else 'json.dumps separators'}, "
          f"{'one matcher per schema' if args.reuse else 'a fresh matcher per instance'}, "
          f"{args.threads} thread(s), timeout {args.timeout:g} s; {wall:.0f} s")
    print(f"machine: {mach['nproc']} cores, {mach['cpu']}, {mach['date']}")
    print()
    print("| metric | LMQL-C |")
    print("|:--|--:|")
    for k, v in entries.items():
        print(f"| {k} (us) | {fmt_us(v, 1 if k.startswith('TBM') else 0)} |")
    for k, v in extra.items():
        print(f"| {k} (us) | {fmt_us(v, 1 if k.startswith('TBM') else 0)} |")
    print(f"| tokens | {n_tokens:,} |")
    for k, v in counts.items():
        print(f"| {k} | {v:,} |")
    for k, v in strict.items():
        print(f"| strict: {k} | {v:,} |")
    print()
    print("instances: " + ", ".join(f"{k} {v}" for k, v in inst.items()))
    if compile_reasons:
        top = sorted(compile_reasons.items(), key=lambda x: -x[1])[:10]
        print("compile errors by message: " + "; ".join(f"{n}x {k}" for k, n in top))
    print(f"full results: {os.path.relpath(outp, ROOT)}")


if __name__ == "__main__":
    main()
