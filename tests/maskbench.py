#!/usr/bin/env python3
"""lmql-maskbench's protocol and bench/maskbench.py on one tiny schema.

    python3 tests/maskbench.py BUILD_DIR

Run from the repository root by tests/run-unit.sh once the grammar engine and
the JSON Schema compiler exist. Prints `ok ...` / `not ok ...` lines and
`maskbench: N passed, M failed`.
"""
import json
import os
import subprocess
import sys
import tempfile

BUILD = sys.argv[1] if len(sys.argv) > 1 else "build"
BIN = os.path.join(BUILD, "bin", "lmql-maskbench")
VOCAB = "build/vocab/ggml-vocab-llama-bpe.gguf"
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok " + name)
    else:
        failed += 1
        print("not ok " + name)
        if detail:
            print("    " + str(detail)[:800])


def run(args, stdin, timeout=120):
    r = subprocess.run([BIN, "--vocab", VOCAB] + args, input=stdin.encode(), capture_output=True, timeout=timeout)
    return r.returncode, r.stdout.decode(), r.stderr.decode()


SCHEMA = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
TEXTS = [
    json.dumps({"name": "Ann", "age": 31}),           # valid: allowed to its end, accepting
    json.dumps({"name": "Ann", "age": "x"}),          # invalid: refused at the string
    '{"name": "Ann", "age": 31',                      # cut short: allowed throughout, not accepting
    json.dumps({"name": 5, "age": 1}),                # invalid: refused at the number
]

with tempfile.TemporaryDirectory(prefix="maskbench-test-") as tmp:
    # --tokenize: one line of ids per JSON string line.
    rc, out, err = run(["--tokenize"], "".join(json.dumps(t) + "\n" for t in TEXTS))
    lines = out.split("\n")
    check("--tokenize exits 0", rc == 0, err[-500:])
    check("--tokenize answers one line per text", len(lines) == len(TEXTS) + 1 and lines[-1] == "", out)
    toks = [[int(x) for x in l.split()] for l in lines[:-1]]
    check("--tokenize gives ids", all(toks) and all(all(t >= 0 for t in l) for l in toks), out)
    rc, out2, _ = run(["--tokenize"], json.dumps(TEXTS[0]) + "\n")
    check("--tokenize: same text, same ids", out2.split("\n")[0] == lines[0], out2)
    rc, _, err = run(["--tokenize"], "not json\n")
    check("--tokenize refuses a line that is not a JSON string", rc != 0 and "JSON" in err, err)

    sp = os.path.join(tmp, "schema.json")
    tp = os.path.join(tmp, "tokens.txt")
    bad = os.path.join(tmp, "bad.json")
    with open(sp, "w") as f:
        json.dump(SCHEMA, f)
    with open(tp, "w") as f:
        f.write(out)
    with open(bad, "w") as f:
        f.write('{"type": ')
    jobs = f"{sp}\t{tp}\n{bad}\t{tp}\n{tmp}/missing.json\t{tp}\nno tab here\n"
    for args in ([], ["--threads", "2"], ["--reuse"]):
        name = " ".join(args) or "default"
        rc, out, err = run(args, jobs)
        check(f"[{name}] exits 0 at the end of stdin", rc == 0, err[-500:])
        try:
            msgs = [json.loads(l) for l in out.split("\n") if l]
        except ValueError as e:
            check(f"[{name}] answers JSON lines", False, f"{e}: {out[:500]}")
            continue
        dones = [i for i, m in enumerate(msgs) if m == {"done": True}]
        check(f"[{name}] one done line per job", len(dones) == 4, out[:800])
        if len(dones) != 4:
            continue
        job = msgs[:dones[0]]
        head = job[0]
        check(f"[{name}] compile line first", all(isinstance(head.get(k), (int, float)) and head[k] >= 0 for k in
                                                 ("compile_us", "grammar_us", "first_mask_us")), head)
        tests = job[1:]
        check(f"[{name}] one line per instance, in order", [t.get("test") for t in tests] == list(range(len(TEXTS))), tests)
        if len(tests) != len(TEXTS):
            continue
        for i, t in enumerate(tests):
            k = t["rejected_at"]
            n = len(toks[i]) if k == -1 else k + 1
            check(f"[{name}] test {i}: us and cpu_us have one entry per step",
                  len(t["us"]) == n and len(t["cpu_us"]) == n and all(x >= 0 for x in t["us"] + t["cpu_us"]), t)
            check(f"[{name}] test {i}: no engine error", "error" not in t, t)
        check(f"[{name}] valid instance allowed to its end and accepting",
              tests[0]["rejected_at"] == -1 and tests[0].get("accepting") is True, tests[0])
        check(f"[{name}] string for an integer refused", 0 <= tests[1]["rejected_at"] < len(toks[1]), tests[1])
        check(f"[{name}] cut-short text allowed but not accepting",
              tests[2]["rejected_at"] == -1 and tests[2].get("accepting") is False, tests[2])
        check(f"[{name}] number for a string refused", 0 <= tests[3]["rejected_at"] < len(toks[3]), tests[3])
        check(f"[{name}] accepting only when allowed to the end", all(("accepting" in t) == (t["rejected_at"] == -1)
                                                                      for t in tests), tests)
        j2 = msgs[dones[0] + 1:dones[1]]
        check(f"[{name}] bad schema: compile_error", len(j2) == 1 and isinstance(j2[0].get("compile_error"), str)
              and j2[0]["compile_error"], j2)
        j3 = msgs[dones[1] + 1:dones[2]]
        check(f"[{name}] missing file: error naming it", len(j3) == 1 and "missing.json" in j3[0].get("error", ""), j3)
        j4 = msgs[dones[2] + 1:dones[3]]
        check(f"[{name}] malformed job line: error", len(j4) == 1 and "error" in j4[0], j4)

    # The driver on a directory of two schemas: one passing, one that does not compile.
    data = os.path.join(tmp, "data")
    os.mkdir(data)
    with open(os.path.join(data, "a_pass.json"), "w") as f:
        json.dump({"schema": SCHEMA, "tests": [{"valid": True, "data": {"name": "Ann", "age": 31}},
                                               {"valid": False, "data": {"name": "Ann", "age": "x"}}]}, f)
    with open(os.path.join(data, "b_error.json"), "w") as f:
        json.dump({"schema": {"type": "no-such-type"}, "tests": [{"valid": True, "data": 1}]}, f)
    res = os.path.join(tmp, "out.json")
    r = subprocess.run([sys.executable, "bench/maskbench.py", "--dir", data, "--bin", BIN, "--out", res,
                        "--mem-limit", "0"],   # no address-space limit: AddressSanitizer reserves terabytes
                       capture_output=True, text=True, timeout=300)
    check("driver exits 0", r.returncode == 0, r.stderr[-800:])
    check("driver prints the table", "| TBM p50 (us) |" in r.stdout and "| passing | 1 |" in r.stdout
          and "| compile error | 1 |" in r.stdout, r.stdout[-1500:])
    try:
        with open(res) as f:
            d = json.load(f)
        check("driver results: machine", d["machine"]["nproc"] >= 1 and d["machine"]["cpu"] and d["machine"]["date"], d.get("machine"))
        check("driver results: counts", d["counts"]["passing"] == 1 and d["counts"]["compile error"] == 1
              and d["counts"]["validation error"] == 0 and d["counts"]["invalidation error"] == 0, d["counts"])
        st = {s["id"]: s for s in d["schemas"]}
        check("driver results: per schema", st["a_pass.json"]["status"] == "passing"
              and st["b_error.json"]["status"] == "compile error" and st["a_pass.json"]["tokens"] > 0, d["schemas"])
        check("driver results: TBM and TTFM", d["entries"]["TBM p50"] is not None and d["entries"]["TTFM p50"] is not None,
              d["entries"])
    except (OSError, ValueError, KeyError) as e:
        check("driver results readable", False, e)

    # --gbnf: the schema's grammar as GBNF text (no vocabulary needed).
    sp = os.path.join(tmp, "gbnf_schema.json")
    with open(sp, "w") as f:
        json.dump(SCHEMA, f)
    r = subprocess.run([BIN, "--gbnf", sp], capture_output=True, text=True, timeout=60)
    check("--gbnf prints a grammar", r.returncode == 0 and r.stdout.startswith("root ::= ")
          and '"{\\"name\\": ' in r.stdout, r.stdout[:400] + r.stderr[-400:])
    r = subprocess.run([BIN, "--gbnf", os.path.join(tmp, "missing.json")], capture_output=True, text=True, timeout=60)
    check("--gbnf on a missing file fails", r.returncode != 0 and "missing.json" in r.stderr, r.stderr)

    # The GBNF ratio driver: llama.cpp's sampler and ours agree on the passing schema.
    res = os.path.join(tmp, "gbnf.json")
    r = subprocess.run([sys.executable, "bench/gbnf_ratio.py", "--dir", data, "--bin", BIN, "--out", res,
                        "--steps", "8", "--mem-limit", "0"], capture_output=True, text=True, timeout=300)
    check("gbnf_ratio exits 0", r.returncode == 0, r.stderr[-800:])
    check("gbnf_ratio prints the ratio line", "GBNF ratio: llama.cpp grammar sampler TBM p50" in r.stdout, r.stdout[-800:])
    try:
        with open(res) as f:
            d = json.load(f)
        st = {s["id"]: s for s in d["schemas_detail"]}
        check("gbnf_ratio: both engines agree on the schema", st["a_pass.json"]["status"] == "agree"
              and st["a_pass.json"]["steps"] == 8 and st["a_pass.json"]["diff_tokens"] == 0, st)
        check("gbnf_ratio: the bad schema is a compile error", st["b_error.json"]["status"] == "compile error", st)
    except (OSError, ValueError, KeyError) as e:
        check("gbnf_ratio results readable", False, e)

print(f"maskbench: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
