"""
The per-call cost of a query run from Python (python/lmql: compile once,
run many) against the same runs through the C API directly (lmql_run on a
compiled program, with its arguments made and its result read per run, as
a C program does, called through ctypes with nothing around it), on the
same runtime and so the same loaded model. Target:
within 1.1x. Prints both, their ratio, and writes
bench/results/python_overhead.json. Usage: python3 bench/python_overhead.py [RUNS]
"""
import ctypes
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
os.chdir(ROOT)
import lmql                      # noqa: E402
from lmql import _native as N    # noqa: E402
from lmql import runtime         # noqa: E402

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
CODE = '"Hello {name}, a word:[X]" where len(TOKENS(X)) < 4\n'
MODELS = ["random", "local:llama.cpp:build/models/tiny-gpt2.gguf"]


def c_api(model):
    """What a C program does per run (compiled once): its arguments, the
    run, the result's JSON read, the frees."""
    lmql.run_sync('argmax\n    return 1\nfrom "random"')   # the package's runtime exists
    rt = runtime._main
    data = CODE.encode()
    prog = N.lmql_program_compile(rt.handle, b"<bench>", data, len(data))
    R = ctypes.c_void_p()
    mid = model.encode()

    def once():
        A = N.lmql_args_init()
        N.lmql_args_set_json(A, b"name", b'"Ann"')
        N.lmql_args_set_model(A, mid, None, None, 0)
        assert N.lmql_run(rt.handle, prog, A, ctypes.byref(R)) == 0
        N.lmql_result_json(R)
        N.lmql_result_free(R)
        N.lmql_args_free(A)
    return once


def python(model):
    q = lmql.query(CODE, input_variables=["name"], is_async=False)
    return lambda: q("Ann", model=model)


def measure(a, b):
    """Best per-run time of each, in alternating rounds (the machine's load
    changes under a long run: both see the same)."""
    for _ in range(5):
        a(), b()
    ta, tb = [], []
    for _ in range(5):
        for fn, ts in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            for _ in range(RUNS):
                fn()
            ts.append((time.perf_counter() - t0) / RUNS)
    return min(ta), min(tb)


out = {"runs": RUNS, "query": CODE.strip(), "results": []}
for m in MODELS:
    c, p = measure(c_api(m), python(m))
    row = {"model": m, "c_api_us": round(c * 1e6, 1), "python_us": round(p * 1e6, 1), "ratio": round(p / c, 3)}
    out["results"].append(row)
    print(f"{m}: C API {row['c_api_us']} us/run, Python {row['python_us']} us/run, ratio {row['ratio']}"
          f" (target <= 1.1)")
os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
with open(os.path.join(ROOT, "bench", "results", "python_overhead.json"), "w") as f:
    json.dump(out, f, indent=1)
