"""
`python3 -m lmql run FILE.lmql`, `python3 -m lmql serve-model ...`: LMQL's
console commands, which are our C command's: this finds build/bin/lmql in
a source tree, or PREFIX/bin/lmql of an install, and runs it.
"""
import os
import shutil
import sys

from ._native import _TREE, LIBRARY_PATH


def command():
    candidates = [os.path.join(_TREE, "build", "bin", "lmql"),
                  os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(LIBRARY_PATH))), "bin", "lmql")]
    for c in candidates:
        if os.access(c, os.X_OK):
            return c
    return shutil.which("lmql")


def main():
    exe = command()
    if exe is None:
        sys.exit("lmql: the lmql command was not found (build it with `make`, or `make install`)")
    os.execv(exe, [exe] + sys.argv[1:])


if __name__ == "__main__":
    main()
