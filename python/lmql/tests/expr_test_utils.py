"""
run_all_tests(globals()): what LMQL's test files call from __main__, so
that they run unchanged with `import lmql` resolving to this package. Each
test* name is run (awaited when it is async or an async query function);
an AssertionError fails it, as in LMQL; other exceptions fail it too,
rather than ending the file.
"""
import asyncio
import inspect
import sys
import traceback


def run_all_tests(g):
    g = dict(g)
    failed = 0
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for k, fn in list(g.items()):
        if not k.startswith("test") or not callable(fn):
            continue
        print("Running", k, "." * max(0, 40 - len(k)), end=" ", flush=True)
        try:
            if (getattr(fn, "lmql_code", None) is not None and fn.is_async) or inspect.iscoroutinefunction(fn):
                loop.run_until_complete(fn())
            else:
                fn()
            print("OK")
        except Exception as e:
            failed += 1
            print("FAILED")
            traceback.print_exception(type(e), e, e.__traceback__)
    loop.close()
    if failed:
        print(failed, "test(s) failed.")
        sys.exit(1)
    sys.exit(0)
