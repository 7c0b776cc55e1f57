"""
The Python package's tests (python/lmql) on the random model and the tiny
models: every tests/python/test_*.py, run with unittest against the
library in BUILD/lib (argument 1, default build). Prints the summary line
`python: N passed, M failed` that tests/run-unit.sh adds up.
"""
import os
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
build = sys.argv[1] if len(sys.argv) > 1 else "build"
os.environ["LMQL_LIBRARY"] = os.path.join(ROOT, build, "lib", "liblmql.so")
os.chdir(ROOT)   # the tiny models' paths are relative to the repository
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

suite = unittest.defaultTestLoader.discover(os.path.dirname(os.path.abspath(__file__)), pattern="test_*.py")
result = unittest.TextTestRunner(verbosity=1, stream=sys.stdout).run(suite)
failed = len(result.failures) + len(result.errors)
for what, items in (("FAIL", result.failures), ("FAIL", result.errors)):
    for test, tb in items:
        print(f"{what} {test.id()}")
        print("\n".join("    " + line for line in tb.splitlines()[-12:]))
print(f"python: {result.testsRun - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
