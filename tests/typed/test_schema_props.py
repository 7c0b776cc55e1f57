#!/usr/bin/env python3
"""Property test of typed output: for a few hundred JSON Schemas, every value
the random model draws through `[X: json(SCHEMA)]` (10 seeds each, thousands
of runs; LMQL_SCHEMA_PROPS_SEEDS changes it) is valid under the schema,
as an independent validator (python3-jsonschema) judges it. The schemas are
generated here (seeded), with bounded strings and arrays so that uniform draws
end; together they use every keyword the compiler supports. Run from the
repository root: test_schema_props.py BUILD/bin/lmql"""
import json
import os
import random
import subprocess
import sys

import jsonschema

LMQL = sys.argv[1] if len(sys.argv) > 1 else "build/bin/lmql"
N_SCHEMAS = 240
BATCH = 12
SEEDS = int(os.environ.get("LMQL_SCHEMA_PROPS_SEEDS", "10"))
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print("not ok", what)


def leaf(r):
    k = r.randrange(9)
    if k == 0:
        s = {"type": "string", "maxLength": r.randint(0, 8)}
        if r.random() < 0.5:
            s["minLength"] = r.randint(0, s["maxLength"])
        return s
    if k == 1:
        lo = r.randint(-50, 50)
        s = {"type": "integer", "minimum": lo, "maximum": lo + r.randint(0, 1000)}
        if r.random() < 0.3:
            s["exclusiveMaximum"] = s.pop("maximum")
        return s
    if k == 2:
        return {"type": "boolean"}
    if k == 3:
        return {"type": "null"}
    if k == 4:
        return {"enum": r.sample(["red", "green", 3, None, True, "x y", {"a": 1}, [1, 2]], r.randint(1, 4))}
    if k == 5:
        return {"const": r.choice(["on", 0, False, [1, "a"], {"k": "v"}])}
    if k == 6:
        return {"type": "string", "pattern": r.choice(["^[a-z]{2,5}$", "^[0-9]{3}-[0-9]{2}$", "^(yes|no)$"])}
    if k == 7:
        return {"type": "string", "format": r.choice(["date", "time", "uuid"])}
    return {"type": "number", "minimum": 0, "maximum": 10} if r.random() < 0.5 else {"type": ["integer", "null"], "minimum": 0, "maximum": 5}


def schema(r, depth):
    if depth >= 3 or r.random() < 0.35:
        return leaf(r)
    k = r.randrange(4)
    if k == 0:
        props = {f"p{i}": schema(r, depth + 1) for i in range(r.randint(0, 4))}
        s = {"type": "object", "properties": props, "additionalProperties": False}
        names = list(props)
        if names:
            s["required"] = r.sample(names, r.randint(0, len(names)))
        return s
    if k == 1:
        lo = r.randint(0, 2)
        return {"type": "array", "items": schema(r, depth + 1), "minItems": lo, "maxItems": lo + r.randint(0, 2)}
    if k == 2:
        return {"anyOf": [schema(r, depth + 1), schema(r, depth + 1)]}
    return {"type": "array", "prefixItems": [schema(r, depth + 1), leaf(r)], "items": False, "minItems": 2}


def main():
    r = random.Random(20261201)
    schemas = [schema(r, 0) for _ in range(N_SCHEMAS)]
    # A recursive one through $defs, with a bounded depth of what the random model may build
    schemas[0] = {"$defs": {"node": {"type": "object", "properties": {"v": {"type": "integer", "minimum": 0, "maximum": 9},
                                                                      "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}, "maxItems": 2}},
                                     "required": ["v", "kids"], "additionalProperties": False}},
                  "$ref": "#/$defs/node"}
    n_values = 0
    for seed in range(SEEDS):
        for b in range(0, N_SCHEMAS, BATCH):
            batch = schemas[b:b + BATCH]
            names = [f"s{i}" for i in range(len(batch))]
            query = ("argmax\n    out = []\n    for s in [" + ", ".join(names) + "]:\n"
                     "        \"[X: json(s)]\\n\"\n        out.append(X)\n    return out\n"
                     f"from lmql.model(\"random\", seed={1000 * seed + b + 1})\n")
            args = [LMQL, "run", "--json", "-e", query]
            for n, s in zip(names, batch):
                args += ["--" + n, json.dumps(s)]
            # SPM's vocabulary, not the random model's default GPT-2: its digits
            # are single tokens, so unbounded numbers end within max_len
            # (GPT-2's ~1,000 number tokens draw numbers thousands of digits long)
            env = dict(os.environ, LMQL_RANDOM_VOCAB="build/vocab/ggml-vocab-llama-spm.gguf")
            p = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env)
            if p.returncode != 0:
                check(False, f"seed {seed}, batch {b}: exit {p.returncode}: {p.stderr.strip()[:300]}")
                continue
            values = json.loads(p.stdout)
            check(isinstance(values, list) and len(values) == len(batch), f"batch {b}: one value per schema")
            for i, (s, v) in enumerate(zip(batch, values)):
                try:
                    v2020 = jsonschema.Draft202012Validator
                    v2020(s, format_checker=v2020.FORMAT_CHECKER).validate(v)
                    ok = True
                except jsonschema.ValidationError as e:
                    ok = False
                    print(f"seed {seed}, schema {b + i}: {json.dumps(s)}\nvalue: {json.dumps(v)}\nwhy: {e.message}")
                check(ok, f"seed {seed}, schema {b + i}: the drawn value validates")
                n_values += 1
    check(n_values == N_SCHEMAS * SEEDS, f"{n_values} of {N_SCHEMAS * SEEDS} runs gave a value")
    print(f"typed-props: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


main()
