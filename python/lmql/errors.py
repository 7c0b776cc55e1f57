"""
lmql.LMQLError and the exceptions a query raises as Python exceptions.

Every error of a query (syntax, constraints, running, the model, the
arguments) is an LMQLError with the message of the C library, its
position in the query (line and column, 1-based; 0 when it has none) and
its kind. An error that is a Python exception in the query (an assert, a
ValueError a host function raised) is also an instance of that exception
type, so `except AssertionError` and `except lmql.LMQLError` both catch it.
"""
import builtins
import re

KINDS = {-1: "query", -2: "model", -3: "runtime", -4: "memory", -5: "misuse"}


class LMQLError(Exception):
    def __init__(self, message, line=0, column=0, kind="query"):
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column
        self.kind = kind
        self.filename = None    # for a decorated function's query: its Python file
        self.python_line = 0    # and the line there


# Messages of runtime errors that name no class, as Python words them.
_KNOWN = [("division by zero", ZeroDivisionError), ("division or modulo by zero", ZeroDivisionError),
          ("index out of range", IndexError), ("object has no attribute", AttributeError)]

_combined = {}


def _with_type(base):
    """A class that is both LMQLError and base (built once per base)."""
    if base in _combined:
        return _combined[base]
    try:
        cls = type(base.__name__, (LMQLError, base), {"__module__": "lmql"})
    except TypeError:   # a base whose layout does not mix with Exception's
        cls = None
    _combined[base] = cls
    return cls


def make_error(message, line=0, column=0, kind="query", host_error=None):
    """The exception for a failed query: the host function's exception type
    when one raised, the Python exception the query named at the start of
    its message (`AssertionError: ...`), else a plain LMQLError."""
    base = None
    if host_error is not None:
        base = type(host_error)
    else:
        m = re.search(r"(?:^|error: )([A-Z][A-Za-z]*(?:Error|Exception|Exit|Interrupt)):", message)
        named = getattr(builtins, m.group(1), None) if m else None
        for text, cls in _KNOWN:
            if named is None and text in message:
                named = cls
        if isinstance(named, type) and issubclass(named, Exception):
            base = named
    cls = _with_type(base) if base is not None and base is not LMQLError else None
    if cls is None:
        cls = base if base is not None and issubclass(base, LMQLError) else LMQLError
    err = cls.__new__(cls)
    LMQLError.__init__(err, message, line, column, kind)
    if host_error is not None:
        err.__cause__ = host_error
    return err
