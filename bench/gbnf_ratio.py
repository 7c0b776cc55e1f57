#!/usr/bin/env python3
"""The GBNF ratio: llama.cpp's grammar sampler against our masks on MaskBench schemas.

    python3 bench/gbnf_ratio.py [--schemas 60] [--steps 20] [--timeout 120] [--free-ws]
                                [--dir DIR] [--vocab GGUF] [--bin PATH] [--out FILE]

For a sample of the MaskBench schemas (N spread evenly over the sorted list),
each schema's grammar, as our JSON Schema compiler builds it, is exported as
GBNF (lmql__grammar_gbnf) and given to llama.cpp's grammar sampler; then the
first STEPS tokens of the schema's first valid instance go through both
engines (lmql-maskbench --grammar-sampler): ours computes the full mask,
checks the token and advances; llama.cpp applies the sampler to a candidate
array of the whole vocabulary and accepts the token (MaskBench's way of
timing llama.cpp). Both masks are compared at every step.

Prints "GBNF ratio: ..." (TBM p50 of each, over the same steps of the schemas
both ran) with the coverage: schemas we could not compile, grammars llama.cpp
refused, schemas where an engine refused an instance token or the masks
differed. Writes bench/results/gbnf_ratio.json. The llama.cpp sampler takes
~13 ms a step on the 128k vocabulary (and much more on some grammars), so the
sample is small; a schema over --timeout (llama.cpp cannot be interrupted)
restarts the engine and counts as a llama.cpp timeout.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from maskbench import ROOT, Engine, default_dir, get_p, machine, run_schema, tokenize_all  # noqa: E402


def write_results(fh, out):
    """The summary indented, then one line per schema (small and diffable)."""
    head = json.dumps({k: v for k, v in out.items() if k != "schemas_detail"}, indent=1, ensure_ascii=False)
    fh.write(head[:-2] + ',\n "schemas_detail": [\n')
    fh.write(",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in out["schemas_detail"]))
    fh.write("\n ]\n}\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--schemas", type=int, default=60, help="schemas, spread evenly over the sorted file list")
    ap.add_argument("--steps", type=int, default=20, help="tokens of each schema's first valid instance")
    ap.add_argument("--timeout", type=float, default=120, help="seconds per schema")
    ap.add_argument("--free-ws", action="store_true", help="grammars with any JSON whitespace between tokens")
    ap.add_argument("--mem-limit", type=float, default=8, help="address-space limit of the engine in GiB (0: none, "
                    "as a sanitizer build needs)")
    ap.add_argument("--dir", default=None)
    ap.add_argument("--vocab", default="build/vocab/ggml-vocab-llama-bpe.gguf")
    ap.add_argument("--bin", default="build/bin/lmql-maskbench")
    ap.add_argument("--out", default="bench/results/gbnf_ratio.json")
    ap.add_argument("--roundtrip", action="store_true", help="instead: every schema's export compiled back by our GBNF "
                    "parser, every instance checked to get the same verdict (lmql-maskbench --gbnf-check)")
    ap.add_argument("--missing-ok", action="store_true", help="exit 0 with a note when the data directory is missing")
    args = ap.parse_args()

    ddir = args.dir or default_dir()
    binary = args.bin if os.path.isabs(args.bin) else os.path.join(ROOT, args.bin)
    vocab = args.vocab if os.path.isabs(args.vocab) else os.path.join(ROOT, args.vocab)
    if not os.path.isdir(ddir):
        print(f"gbnf_ratio: no data directory {ddir} (set MASKBENCH_DIR)", file=sys.stderr)
        sys.exit(0 if args.missing_ok else 1)
    files = sorted(f for f in os.listdir(ddir) if f.endswith(".json"))
    if args.roundtrip:
        return roundtrip(args, ddir, files, binary, vocab)
    # Schemas with a valid instance, then N of them spread evenly.
    picked = []
    for f in files:
        with open(os.path.join(ddir, f), encoding="utf-8") as fh:
            d = json.load(fh)
        valid = [t for t in d.get("tests", []) if t.get("valid")]
        if valid:
            picked.append((f, d["schema"], json.dumps(valid[0]["data"], indent=None, ensure_ascii=False)))
    if args.schemas < len(picked):
        step = len(picked) / args.schemas
        picked = [picked[int(i * step)] for i in range(args.schemas)]
    tokens = tokenize_all(binary, vocab, [p[2] for p in picked])

    argv = [binary, "--vocab", vocab, "--grammar-sampler", str(args.steps)] + (["--free-ws"] if args.free_ws else [])
    eng = Engine(argv, args.mem_limit)
    ours, llama = [], []
    counts = {"schemas": len(picked), "compared": 0, "compile error": 0, "export error": 0, "llama refused": 0,
              "llama timeout": 0, "engine crash": 0, "both refused a token": 0, "only ours refused a token": 0,
              "only llama refused a token": 0, "masks differ": 0}
    records = []
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gbnf-ratio-") as tmp:
        sp, tp = os.path.join(tmp, "schema.json"), os.path.join(tmp, "tokens.txt")
        for k, (f, schema, _) in enumerate(picked):
            with open(sp, "w", encoding="utf-8") as fh:
                json.dump(schema, fh, ensure_ascii=False)
            with open(tp, "w") as fh:
                fh.write(tokens[k] + "\n")
            status, head, _, rc = run_schema(eng, f"{sp}\t{tp}", args.timeout)
            rec = {"id": f}
            records.append(rec)
            if status != "ok":
                key = "llama timeout" if status == "timeout" else "engine crash"
                counts[key] += 1
                rec["status"] = key if rc is None else f"{key} ({rc})"
                continue
            if "compile_error" in head or "error" in head:
                counts["compile error"] += 1
                rec["status"] = "compile error"
                continue
            if "gbnf_error" in head:
                counts["export error"] += 1
                rec.update(status="export error", error=head["gbnf_error"])
                continue
            rec.update({k2: head[k2] for k2 in ("gbnf_bytes", "gbnf_us", "llama_init_us")})
            if head["llama"] != "ok":
                counts["llama refused"] += 1
                rec.update(status="llama refused", error=head.get("llama_error", "").strip()[:300])
                continue
            rec.update({k2: head[k2] for k2 in ("steps", "ours_rejected_at", "llama_rejected_at", "diff_steps",
                                                "diff_tokens", "diffs")})
            rec["ours_us_sum"] = round(sum(head["ours_us"]), 1)
            rec["llama_us_sum"] = round(sum(head["llama_us"]), 1)
            # Both refusing the same token is no disagreement: the exported
            # grammar is ours, refusing a valid instance as ours does.
            problems = []
            o_rej, l_rej = head["ours_rejected_at"], head["llama_rejected_at"]
            if o_rej >= 0 and o_rej == l_rej:
                problems.append("both refused a token")
            elif o_rej >= 0:
                problems.append("only ours refused a token")
            elif l_rej >= 0:
                problems.append("only llama refused a token")
            if head["diff_steps"]:
                problems.append("masks differ")
            for p in problems:
                counts[p] += 1
            rec["status"] = ", ".join(problems) or "agree"
            counts["compared"] += 1
            ours.extend(head["ours_us"])
            llama.extend(head["llama_us"])
            if (k + 1) % 10 == 0:
                print(f"gbnf_ratio: {k + 1}/{len(picked)} schemas, {time.monotonic() - t_start:.0f} s", file=sys.stderr)
    eng.close()
    wall = time.monotonic() - t_start

    ours.sort()
    llama.sort()
    o50, l50 = get_p(ours, 50), get_p(llama, 50)
    ratio = l50 / o50 if o50 and l50 else None
    # The tails differ (our cold masks, llama.cpp's grammars with many stacks):
    # the ratio of the total times is shown too.
    ratio_total = sum(llama) / sum(ours) if ours and sum(ours) else None
    agree = sum(r.get("status") in ("agree", "both refused a token") for r in records)
    mach = machine()
    out = {"machine": mach,
           "options": {"dir": ddir, "schemas": len(picked), "steps": args.steps, "timeout_s": args.timeout,
                       "free_ws": args.free_ws, "vocab": os.path.relpath(vocab, ROOT), "wall_s": round(wall, 1)},
           "tokens": len(ours), "ours_us": {f"p{p:g}": get_p(ours, p) for p in (25, 50, 75, 90, 99, 100)},
           "llama_us": {f"p{p:g}": get_p(llama, p) for p in (25, 50, 75, 90, 99, 100)},
           "ratio_p50": ratio, "ratio_total": ratio_total, "counts": counts, "agree": agree, "schemas_detail": records}
    outp = args.out if os.path.isabs(args.out) else os.path.join(ROOT, args.out)
    os.makedirs(os.path.dirname(outp), exist_ok=True)
    with open(outp, "w") as fh:
        write_results(fh, out)

    print(f"machine: {mach['nproc']} cores, {mach['cpu']}, {mach['date']}; {wall:.0f} s")
    print(f"ours: TBM p50 {o50:.1f} us, p90 {get_p(ours, 90):.1f}, p99 {get_p(ours, 99):.1f}; "
          f"llama.cpp: p50 {l50:.1f} us, p90 {get_p(llama, 90):.1f}, p99 {get_p(llama, 99):.1f}" if ours else
          "no schema ran on both engines")
    print(f"GBNF ratio: llama.cpp grammar sampler TBM p50 {l50 or 0:,.0f} us vs ours {o50 or 0:,.1f} us "
          f"on {counts['compared']} schemas, {len(ours)} tokens: {ratio or 0:,.0f}x "
          f"(total time: {ratio_total or 0:,.0f}x)")
    print("coverage: " + ", ".join(f"{k} {v}" for k, v in counts.items()) + f"; both engines agree on {agree}")
    for r in records:
        if r.get("status") not in ("agree", "compile error", "both refused a token"):
            print(f"  {r['id']}: {r['status']}" + (f": {r['error']}" if r.get("error") else "") +
                  (f" (first refused token at {r['llama_rejected_at']})" if r.get("llama_rejected_at", -1) >= 0 else "") +
                  (f" (mask diffs [step, token, ours]: {r['diffs'][:3]})" if r.get("diffs") else ""))
    print(f"full results: {os.path.relpath(outp, ROOT)}")


def roundtrip(args, ddir, files, binary, vocab):
    """Every schema (--schemas N of them spread evenly when N < all): the
    export compiled back by gbnf.c must give every instance the original's verdict."""
    if args.schemas < len(files):
        step = len(files) / args.schemas
        files = [files[int(i * step)] for i in range(args.schemas)]
    schemas, texts = [], []
    for f in files:
        with open(os.path.join(ddir, f), encoding="utf-8") as fh:
            d = json.load(fh)
        tests = d.get("tests", [])
        schemas.append((f, d["schema"], len(texts), len(tests)))
        texts.extend(json.dumps(t["data"], indent=None, ensure_ascii=False) for t in tests)
    tokens = tokenize_all(binary, vocab, texts)
    eng = Engine([binary, "--vocab", vocab, "--gbnf-check"] + (["--free-ws"] if args.free_ws else []), args.mem_limit)
    counts = {"schemas": len(schemas), "checked": 0, "compile error": 0, "export error": 0, "reparse error": 0,
              "timeout or crash": 0, "instances": 0, "same verdict": 0, "different verdict": 0}
    bad = []
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gbnf-roundtrip-") as tmp:
        sp, tp = os.path.join(tmp, "schema.json"), os.path.join(tmp, "tokens.txt")
        for f, schema, first, n in schemas:
            with open(sp, "w", encoding="utf-8") as fh:
                json.dump(schema, fh, ensure_ascii=False)
            with open(tp, "w") as fh:
                fh.write("".join(tokens[first + i] + "\n" for i in range(n)))
            status, head, _, _ = run_schema(eng, f"{sp}\t{tp}", args.timeout)
            if status != "ok":
                counts["timeout or crash"] += 1
                bad.append((f, status))
            elif "compile_error" in head or "error" in head:
                counts["compile error"] += 1
            elif "gbnf_error" in head or "reparse_error" in head:
                key = "export error" if "gbnf_error" in head else "reparse error"
                counts[key] += 1
                bad.append((f, key + ": " + (head.get("gbnf_error") or head.get("reparse_error"))[:200]))
            else:
                counts["checked"] += 1
                counts["instances"] += head["instances"]
                counts["different verdict"] += len(head["differ"])
                counts["same verdict"] += head["instances"] - len(head["differ"])
                if head["differ"]:
                    bad.append((f, f"instances {head['differ']} differ"))
    eng.close()
    print(f"GBNF round trip: {counts['checked']} schemas exported and compiled back, {counts['instances']} instances, "
          f"{counts['different verdict']} with a different verdict; {time.monotonic() - t0:.0f} s")
    print("counts: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    for f, why in bad:
        print(f"  {f}: {why}")
    return 1 if counts["different verdict"] or counts["export error"] else 0


if __name__ == "__main__":
    sys.exit(main())
