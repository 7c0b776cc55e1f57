"""
Running queries from Python: the query function objects (@lmql.query,
lmql.query(str), lmql.F), how a call binds its arguments, how the names a
query uses reach it from the calling Python scope, and the result objects.

A call becomes one lmql_run on the C library:
  - the function's arguments, and plain values (str, int, float, bool,
    None, lists, tuples, dicts of them) of the query's scope that the query
    names, are query arguments (lmql_args_set_json);
  - Python functions it names are host functions (lmql_register_function),
    called with JSON values and returning one;
  - other @lmql.query functions it names, and lmql.model(...) objects, are
    written into the program before the query's own code: the query calls
    them as nested queries, as LMQL does (docs/DECISIONS.md);
  - model=, decoder= and the decoder's arguments (n=, max_len=, ...) are the
    run's options (lmql_args_set_model / lmql_args_set_option).
The query code is compiled once per distinct program and kept.
"""
import ast
import asyncio
import codecs
import collections
import ctypes
import functools
import inspect
import io
import json
import keyword
import re
import textwrap
import threading
import tokenize

from . import _native as N
from .errors import LMQLError, make_error, KINDS
from .llm import LLM, get_default_model

# ------------------------------------------------------------- results --


class LMQLResult:
    """One sequence of a query's result, as LMQL shapes it."""

    def __init__(self, prompt, variables, distribution_variable=None, distribution_values=None):
        self.prompt = prompt
        self.variables = variables
        self.distribution_variable = distribution_variable
        self.distribution_values = distribution_values

    @property
    def requires_distribution_postprocessing(self):
        return self.distribution_variable is not None

    def __eq__(self, other):
        return isinstance(other, LMQLResult) and vars(self) == vars(other)

    def __repr__(self):
        return (f"LMQLResult(prompt={self.prompt!r}, variables={self.variables!r}, "
                f"distribution_variable={self.distribution_variable!r}, "
                f"distribution_values={self.distribution_values!r})")


_SEQ_KEYS = {"prompt", "variables", "distribution_variable", "distribution_values"}


def _shape(data, prompts):
    """The JSON of a result as LMQL's Python values: sequence objects become
    LMQLResult (their prompt tells them from a returned dict)."""
    def seq(d, i):
        if isinstance(d, dict) and set(d) == _SEQ_KEYS and i < len(prompts) and d["prompt"] == prompts[i]:
            return LMQLResult(d["prompt"], d["variables"], d["distribution_variable"], d["distribution_values"])
        return None
    if isinstance(data, list) and len(data) == len(prompts) and data:
        seqs = [seq(d, i) for i, d in enumerate(data)]
        if all(s is not None for s in seqs):
            return seqs
        return data
    s = seq(data, 0)
    return s if s is not None else data


# ------------------------------------------------------- query sources --

def _clean(body):
    """A query's text from a docstring or a string: without the `lmql`
    marker line, dedented."""
    lines = body.split("\n")
    if lines and lines[0].strip() == "lmql":
        lines = lines[1:]
    elif lines and lines[0].strip().startswith("lmql") and lines[0].strip()[4:5].isspace():
        lines[0] = lines[0].strip()[4:]
    text = textwrap.dedent("\n".join(lines))
    return text.strip("\n") + "\n"


def _lines_before(body):
    """How many lines of body come before what _clean keeps."""
    lines = body.split("\n")
    n = 1 if lines and lines[0].strip() == "lmql" else 0
    while n < len(lines) and not lines[n].strip():
        n += 1
    return n


def docstring_code(fct, origin=None):
    """The query of a decorated function as its source spells it: escapes
    like \\n stay as the query wrote them (they are LMQL's to read). origin,
    a list, gets the file and the file's line of the query's first line."""
    try:
        lines, start = inspect.getsourcelines(fct)
        src = textwrap.dedent("".join(lines))
        node = ast.parse(src).body[0]
        doc = node.body[0].value
        seg = ast.get_source_segment(src, doc)
        m = re.match(r"(?is)([rbuf]*)('''|\"\"\"|'|\")", seg)
        body = seg[m.end():len(seg) - len(m.group(2))]
        if origin is not None:
            origin[:] = [inspect.getsourcefile(fct), start + doc.lineno - 1 + _lines_before(body)]
        return _clean(body)
    except Exception:
        if not fct.__doc__:
            raise LMQLError(f"@lmql.query function {fct.__name__} has no '''lmql docstring", kind="query")
        return _clean(fct.__doc__)


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_HOLE = re.compile(r"\[\s*(?:@[\w.]+(?:\([^)\]]*\))?\s+)*([A-Za-z_]\w*)\s*(?::[^\]]*)?\]")
_SKIP = set(keyword.kwlist) | {"lmql", "context", "print", "len", "str", "int", "float", "range"}


@functools.lru_cache(maxsize=1024)
def names_in(code, strict=False):
    """Names the code may read, in order of first use: Python's tokenizer
    finds them outside strings (not after a dot); inside strings, every
    identifier (strict: only those of {...} and of a hole's type, [X: f]).
    A superset of what it reads, which is all resolution needs. Code the
    tokenizer refuses: every identifier in it."""
    seen = {}
    try:
        prev = None
        for tok in tokenize.generate_tokens(io.StringIO(code).readline):
            if tok.type == tokenize.NAME and not (prev is not None and prev.type == tokenize.OP and prev.string == "."):
                seen.setdefault(tok.string, True)
            elif tok.type == tokenize.STRING:
                parts = [tok.string] if not strict else \
                    re.findall(r"\{([^{}]*)\}", tok.string) + re.findall(r"\[[\w@.\s]*:([^\]]*)", tok.string)
                for part in parts:
                    for w in _IDENT.findall(part):
                        seen.setdefault(w, True)
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT, tokenize.DEDENT):
                prev = tok
    except (tokenize.TokenError, SyntaxError, IndentationError):
        seen = {m.group(0): True for m in _IDENT.finditer(code)}
    return tuple(w for w in seen if w not in _SKIP)


def placeholder_names(code):
    """Names read in {...} of the prompt, holes excluded, in order: what
    positional arguments of lmql.F and lmql.run bind to."""
    holes = set(_HOLE.findall(code))
    out = []
    for m in re.finditer(r"\{([^{}]*)\}", code):
        for w in _IDENT.findall(m.group(1)):
            if w not in holes and w not in out and w not in _SKIP:
                out.append(w)
    return out


@functools.lru_cache(maxsize=1024)
def _has_from(code):
    return re.search(r"(?m)(^|\"|'|\s)from\s+(?![\w.]+\s+import\b)[\"'\w]", code) is not None


# ----------------------------------------------------------- the runs --

class _Run:
    """What one run set on its runtime: its host functions, its writer,
    the exception a host function raised."""

    def __init__(self, functions, writer):
        self.functions = functions
        self.writer = writer
        self.host_error = None


_main = None
_main_lock = threading.Lock()
# Compiled programs of the shared runtime by their text, the most recently
# used last; programs differ by the definitions written before the query
# (an object's attributes among them), so only so many are kept.
_programs = collections.OrderedDict()
_MAX_PROGRAMS = 256


def _keep_program(text, prog):
    _programs[text] = prog
    while len(_programs) > _MAX_PROGRAMS:
        _, old = _programs.popitem(last=False)
        N.lmql_program_free(old)


def _runtime():
    """The shared runtime, or a fresh one when it is busy (a host function
    that runs a query, another thread): a handle runs one query at a time."""
    global _main
    with _main_lock:
        if _main is None:
            _main = N.Runtime()
        if not _main.busy:
            _main.busy = True
            return _main, False
    rt = N.Runtime()
    rt.busy = True
    return rt, True


def _dispatch(rt, name, argc, argv, out):
    run = rt.current
    fn = run.functions.get(name) if run else None
    try:
        if fn is None:
            raise NameError(f"name '{name}' is not defined")
        args = [json.loads(argv[i].decode("utf-8")) for i in range(argc)]
        res = fn(*args)
        if inspect.isawaitable(res):
            res = _await_blocking(res)
        out[0] = N.c_string(json.dumps(res, allow_nan=False).encode("utf-8"))
        return N.LMQL_OK
    except BaseException as e:   # every exception, KeyboardInterrupt too: C is below us
        if run is not None and run.host_error is None:
            run.host_error = e
        try:
            out[0] = N.c_string(f"{type(e).__name__}: {e}".encode("utf-8", "replace"))
        except MemoryError:
            pass
        return N.LMQL_ERR_RUNTIME


def _await_blocking(aw):
    """An async host function's result, from inside a (blocked) loop."""
    box = {}

    def go():
        try:
            box["v"] = asyncio.run(_as_coro(aw))
        except BaseException as e:
            box["e"] = e
    t = threading.Thread(target=go)
    t.start()
    t.join()
    if "e" in box:
        raise box["e"]
    return box["v"]


async def _as_coro(aw):
    return await aw


def _writer_fn(writer):
    """The text callback for output_writer=: an object with on_text(text,
    generated) (lmql.printing, lmql.stream(...)), or a callable taking
    (text, generated)."""
    if writer is None:
        return None
    f = getattr(writer, "on_text", None) or (writer if callable(writer) else None)
    if f is None:
        return None
    dec = {True: codecs.getincrementaldecoder("utf-8")("replace"),
           False: codecs.getincrementaldecoder("utf-8")("replace")}

    def on_text(data, generated):
        text = dec[generated].decode(data)
        if text:
            f(text, generated)
    return on_text


def _jsonable(v, depth=0):
    if depth > 64:
        return False
    if v is None or isinstance(v, (str, bool, int, float)):
        return not isinstance(v, float) or v == v and v not in (float("inf"), float("-inf"))
    if isinstance(v, (list, tuple)):
        return all(_jsonable(x, depth + 1) for x in v)
    if isinstance(v, dict):
        return all(isinstance(k, str) and _jsonable(x, depth + 1) for k, x in v.items())
    return False


def execute(code, bound, scope, options, writer=None, is_f=False, origin=None):
    """Run query code with bound arguments (name -> value), names resolved
    in scope (a function name -> value or raising KeyError), and options
    (model, decoder, n, ...). Returns the result as LMQL shapes it."""
    prelude, functions, args, skipped = [], {}, {}, {}
    handles = {}
    _gather(code, bound, scope, prelude, functions, args, skipped, set(), handles)
    model = options.pop("model", None)
    if model is None and not _has_from(code):
        model = get_default_model()
    program_text = "".join(prelude) + code
    offset = sum(p.count("\n") for p in prelude)

    rt, fresh = _runtime()
    prog = None
    try:
        prog = _programs.get(program_text) if not fresh else None
        if prog is None:
            data = program_text.encode("utf-8")
            prog = N.lmql_program_compile(rt.handle, b"<query>", data, len(data))
            if not prog:
                raise _error(rt, offset, None, origin=origin)
            if not fresh:
                _keep_program(program_text, prog)
        else:
            _programs.move_to_end(program_text)
        A = N.lmql_args_init()
        if not A:
            raise MemoryError
        try:
            for name, value in args.items():
                st = N.lmql_args_set_json(A, name.encode(), json.dumps(value, allow_nan=False).encode("utf-8"))
                if st != N.LMQL_OK:
                    raise LMQLError(f"argument {name}: cannot pass {value!r} to the query", kind=KINDS.get(st, "query"))
            if model is not None:
                N.lmql_args_set_model(A, *_model_c(model))
            for k, v in options.items():
                if not _jsonable(v):
                    raise LMQLError(f"{k}={v!r}: a decoder argument must be a JSON value", kind="query")
                if N.lmql_args_set_option(A, k.encode(), json.dumps(v).encode()) != N.LMQL_OK:
                    raise LMQLError(f"{k}={v!r}: not a valid decoder argument", kind="query")
            run = _Run(functions, writer)
            rt.current = run
            for name in functions:
                rt.register(name, lambda n, argc, argv, out, _rt=rt: _dispatch(_rt, n, argc, argv, out))
            rt.on_text = _writer_fn(writer)
            R = ctypes.c_void_p()
            try:
                st = N.lmql_run(rt.handle, prog, A, ctypes.byref(R))
                if st == N.LMQL_ERR_MODEL and run.host_error is None:
                    st = _without_model(rt, prog, A, R, st)
            finally:
                rt.on_text = None
                rt.current = None
            if st != N.LMQL_OK:
                raise _error(rt, offset, run, skipped, origin)
            try:
                # generated bytes may end inside a UTF-8 character
                text = N.lmql_result_json(R).decode("utf-8", "replace")
                prompts = [N.lmql_result_prompt(R, i).decode("utf-8", "replace") for i in range(N.lmql_result_count(R))]
            finally:
                N.lmql_result_free(R)
        finally:
            N.lmql_args_free(A)
    finally:
        if fresh:
            if prog:
                N.lmql_program_free(prog)
            rt.close()
        else:
            rt.busy = False
    data = json.loads(text)
    result = _shape(_unhandle(data, handles) if handles else data, prompts)
    if is_f:
        if isinstance(result, list) and len(result) == 1:
            result = result[0]
        if isinstance(result, LMQLResult):
            vals = result.variables
            result = next(iter(vals.values())) if len(vals) == 1 else vals
    return result


def _without_model(rt, prog, A, R, st):
    """LMQL opens a query's model when the query first needs it, so a query
    that only computes (`return s` under `from "chatgpt"`) runs whatever
    its model; ours opens it as the query starts. A run whose model cannot
    be opened runs again on the random model, and its result (or its own
    error) stands only if it used no model at all; else the model's error
    stands."""
    saved = (N.lmql_errmsg(rt.handle), N.lmql_error_status(rt.handle))
    N.lmql_args_set_model(A, b"random", None, None, 0)
    st2 = N.lmql_run(rt.handle, prog, A, ctypes.byref(R))
    s = N.Stats()
    N.lmql_last_stats(rt.handle, ctypes.byref(s))
    if s.n_generated == 0 and s.n_decoded == 0 and s.n_forward == 0 and st2 != N.LMQL_ERR_MODEL:
        return st2
    if st2 == N.LMQL_OK:
        N.lmql_result_free(R)
        R.value = None
    raise make_error(saved[0].decode("utf-8", "replace"), 0, 0, KINDS.get(saved[1], "model"))


_model_cs = {}


def _model_c(model):
    """lmql_args_set_model's arguments for a model (an LLM or a name), made
    once per model."""
    key = model if isinstance(model, str) else (model.model_identifier, repr(model.kwargs))
    c = _model_cs.get(key)
    if c is None:
        m = model if isinstance(model, LLM) else LLM(str(model))
        n = len(m.kwargs)
        keys = (ctypes.c_char_p * max(1, n))(*[k.encode() for k in m.kwargs])
        vals = (ctypes.c_char_p * max(1, n))(*[_param_text(v).encode() for v in m.kwargs.values()])
        c = _model_cs[key] = (m.model_identifier.encode(), keys, vals, n)
        if len(_model_cs) > 256:
            _model_cs.pop(next(iter(_model_cs)))
    return c


def _param_text(v):
    return "True" if v is True else "False" if v is False else str(v)


_LINE = re.compile(r"^<query>:(\d+):(\d+):", re.M)


def _error(rt, offset, run, skipped=None, origin=None):
    e = _error_of(rt, offset, run, skipped)
    if origin and e.line and "<nested query>:" not in e.message:
        # where the query's line is in the Python file that holds it
        e.filename, e.python_line = origin[0], origin[1] + e.line - 1
    return e


def _error_of(rt, offset, run, skipped=None):
    """The exception for the error on rt: positions made the query's own
    (the nested definitions written before it moved them)."""
    msg = N.lmql_errmsg(rt.handle).decode("utf-8", "replace")
    st = N.lmql_error_status(rt.handle)
    line, col = N.lmql_error_line(rt.handle), N.lmql_error_col(rt.handle)
    if line > offset:
        line -= offset
        msg = _LINE.sub(lambda m: f"<query>:{int(m.group(1)) - offset}:{m.group(2)}:", msg)
    elif line:
        msg = msg.replace("<query>:", "<nested query>:", 1)
    m = re.search(r"name '(\w+)' is not defined", msg) or re.search(r"failed to resolve variable '(\w+)'", msg)
    if m and skipped and m.group(1) in skipped:
        msg += (f" ({m.group(1)} is a Python {type(skipped[m.group(1)]).__name__}: only JSON values, functions "
                f"and query functions cross into a query)")
    if m and (not skipped or m.group(1) not in skipped) and (run is None or run.host_error is None):
        # LMQL says so before running; the engine finds it where it is read
        return _NameError(f"Failed to resolve variable '{m.group(1)}' in LMQL query: {msg}", line, col, KINDS.get(st, "query"))
    return make_error(msg, line, col, KINDS.get(st, "query"), run.host_error if run else None)


class _NameError(LMQLError, TypeError):
    """A name the query reads that nothing defines: LMQL's TypeError."""


def _unhandle(v, handles):
    """Objects that crossed as handles (see _object_source) back as themselves."""
    if isinstance(v, dict):
        if "__lmql_handle__" in v and v["__lmql_handle__"] in handles:
            return handles[v["__lmql_handle__"]]
        return {k: _unhandle(x, handles) for k, x in v.items()}
    if isinstance(v, list):
        return [_unhandle(x, handles) for x in v]
    return v


def _object_source(name, obj, handles):
    """A Python object (self, an agent) as query code: an instance of a
    class of the same name whose methods are the object's @lmql.query
    methods, with the object's JSON attributes copied, and a handle that
    makes it the object again when a result holds it. The query sees a
    copy: what it sets on it stays in the query."""
    cls = type(obj)
    methods = []
    for klass in reversed(cls.__mro__[:-1]):
        for attr, f in vars(klass).items():
            qf = getattr(f, "__lmql_query_function__", None)
            if isinstance(qf, QueryFunction):
                methods.append(textwrap.indent(qf.as_definition(attr, method=True), "    "))
    handle = len(handles) + 1
    handles[handle] = obj
    lines = [f"class {cls.__name__}:\n", *methods, "    pass\n", f"{name} = {cls.__name__}()\n"]
    for attr, v in getattr(obj, "__dict__", {}).items():
        if attr.isidentifier() and not attr.startswith("__") and _jsonable(v):
            lines.append(f"{name}.{attr} = {v!r}\n")
    lines.append(f"{name}.__lmql_handle__ = {handle}\n")
    return "".join(lines)


_class_sources = {}
_checker = None


def _class_source(cls):
    """A Python class the query names (DecoratorLog() in query code), as
    its own source, when that source is query code too: the query then
    makes and uses instances of it itself. Else None (the name stays
    undefined in the query)."""
    if cls in _class_sources:
        return _class_sources[cls]
    global _checker
    src = None
    try:
        if cls.__module__ != "builtins" and cls.__name__.isidentifier():
            text = textwrap.dedent(inspect.getsource(cls))
            if not text.endswith("\n"):
                text += "\n"
            with _main_lock:
                if _checker is None:
                    _checker = N.Runtime()
                data = (text + 'argmax\n    pass\nfrom "random"\n').encode("utf-8")
                prog = N.lmql_program_compile(_checker.handle, b"<class>", data, len(data))
            if prog:
                N.lmql_program_free(prog)
                src = text
    except (OSError, TypeError):
        pass
    _class_sources[cls] = src
    return src


def _gather(code, bound, scope, prelude, functions, args, skipped, seen, handles):
    """Sort the names code mentions into arguments, host functions and
    definitions written before it (nested queries, models)."""
    get = getattr(scope, "get", None)
    for name in names_in(code):
        if name in bound:
            v = bound[name]
        elif scope is _empty_scope:
            continue
        elif get is not None:   # without an exception per name the scope lacks
            v = get(name, _MISSING)
            if v is _MISSING:
                continue
        else:
            try:
                v = scope(name)
            except KeyError:
                continue
        if name in args or name in functions or name in seen:
            continue
        qf = getattr(v, "__lmql_query_function__", None)
        if isinstance(v, QueryFunction):
            qf = v
        if qf is not None:
            seen.add(name)
            _gather(qf.code, {}, qf.scope, prelude, functions, args, skipped, seen, handles)
            prelude.append(qf.as_definition(name))
        elif isinstance(v, LLM):
            seen.add(name)
            prelude.append(f"{name} = {v.source()}\n")
        elif inspect.isclass(v):
            src = _class_source(v)
            if src is not None:
                seen.add(name)
                prelude.append(src)
        elif inspect.ismodule(v):
            continue
        elif callable(v):
            functions[name] = v
        elif _jsonable(v):
            args[name] = v
        else:
            if hasattr(v, "__dict__") and type(v).__name__.isidentifier() and not inspect.isroutine(v):
                seen.add(name)
                for attr in vars(type(v)):
                    qf = getattr(getattr(type(v), attr), "__lmql_query_function__", None)
                    if isinstance(qf, QueryFunction):   # the names its methods read, from their scope
                        _gather(qf.code, {}, qf.scope, prelude, functions, args, skipped, seen, handles)
                prelude.append(_object_source(name, v, handles))
            else:
                skipped[name] = v


# ----------------------------------------------------- query functions --

# Keyword arguments of a call that are options of the run, not the query's.
RUN_OPTIONS = {"model", "decoder", "n", "num_beams", "max_len", "max_length", "temperature", "top_k", "top_p",
               "chunksize", "step_budget", "k", "budget", "kappa", "beta", "gamma", "max_heap_size",
               "top_k_continuations", "cache", "verbose", "chunk_timeout", "openai_nonstop",
               "repetition_penalty", "frequency_penalty", "presence_penalty"}
# Options LMQL accepts that do not change what our engine does.
IGNORED = {"output_writer", "is_f_function", "return_prompt_string", "certificate", "seed"}


def _in_loop():
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False


class QueryFunction:
    """A compiled-on-first-call LMQL query: @lmql.query functions,
    lmql.query(str) and lmql.F objects."""

    __lmql_query_function__ = True

    def __init__(self, code, signature, scope, is_async, extra_args, name=None, is_f=False, fct=None):
        self.code = code
        self.lmql_code = code
        self.signature = signature
        self.scope = scope
        self.is_async = is_async
        self.extra_args = dict(extra_args or {})
        self.name = name
        self.is_f = is_f
        self.fct = fct
        self.output_writer = self.extra_args.pop("output_writer", None)
        self.origin = None   # (Python file, its line of the query's line 1) of a decorated function
        ps = list(signature.parameters.values())
        self._simple = None
        if ps and all(p.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD for p in ps):
            self._simple = ([p.name for p in ps], {p.name: p.default for p in ps if p.default is not p.empty})
        self.__lmql_query_function__ = self

    @property
    def output_variables(self):
        """The holes of the query's prompts, in order: [WHO] -> ["WHO"]."""
        out = []
        for m in re.finditer(r"('''|\"\"\"|'|\")(.*?)\1", self.code, re.S):
            for v in _HOLE.findall(m.group(2)):
                if v not in out:
                    out.append(v)
        return out

    @property
    def args(self):
        return list(self.signature.parameters) if self.signature.parameters else placeholder_names(self.code)

    def make_kwargs(self, *args, **kwargs):
        """Split a call into the query's arguments and the run's options."""
        params = self.signature.parameters
        query_kwargs = {k: v for k, v in kwargs.items() if k in params}
        runtime = {k: v for k, v in kwargs.items() if k not in params}
        if not params and args:
            names = placeholder_names(self.code)
            if len(names) != len(args):
                raise TypeError(f"query takes {len(names)} positional arguments ({', '.join(names)}) "
                                f"but {len(args)} were given")
            bound = dict(zip(names, args))
        elif self._simple is not None and len(args) <= len(self._simple[0]):
            # the usual signature (plain parameters): bound without inspect's general binder
            names, defaults = self._simple
            bound = dict(zip(names, args))
            for k, v in query_kwargs.items():
                if k in bound:
                    raise TypeError(f"Call to @lmql.query function {self.name or ''}: multiple values for argument {k!r}")
                bound[k] = v
            for k in names:
                if k not in bound:
                    if k not in defaults:
                        raise TypeError(f"Call to @lmql.query function {self.name or ''} is missing a required "
                                        f"argument: {k!r}. Expecting {self.signature}, but got positional arguments "
                                        f"{args} and keyword arguments {kwargs}.")
                    bound[k] = defaults[k]
        else:
            try:
                ba = self.signature.bind(*args, **query_kwargs)
            except TypeError as e:
                raise TypeError(f"Call to @lmql.query function {self.name or ''}: {e}. "
                                f"Expecting {self.signature}, but got positional arguments {args} and "
                                f"keyword arguments {kwargs}.") from None
            ba.apply_defaults()
            bound = dict(ba.arguments)
        mentioned = set(names_in(self.code, strict=True))
        options = {}
        for k, v in {**self.extra_args, **runtime}.items():
            # a name the query reads is its argument (q(n=1) for argmax(n=n)), as in LMQL
            if k in RUN_OPTIONS and (k in ("model", "decoder") or k not in mentioned):
                options[k] = v
            elif k in IGNORED:
                continue
            elif k in mentioned or not params:
                bound[k] = v
            else:
                raise TypeError(f"unexpected keyword argument {k!r} for query {self.name or ''}")
        return bound, options

    def _run(self, *args, **kwargs):
        writer = kwargs.pop("output_writer", None) or self.output_writer
        bound, options = self.make_kwargs(*args, **kwargs)
        return execute(self.code, bound, self.scope, options, writer, self.is_f, self.origin)

    def __call__(self, *args, **kwargs):
        if self.is_async:
            return self.__acall__(*args, **kwargs)
        if _in_loop():
            # as LMQL: a RuntimeError (nothing here needs the loop, but a program written for LMQL expects it)
            raise make_error("LMQL queries cannot be called synchronously from within an async context: await "
                             "an async query function (async def, lmql.run, is_async=True) instead",
                             kind="misuse", host_error=RuntimeError())
        return self._run(*args, **kwargs)

    async def __acall__(self, *args, **kwargs):
        return self._run(*args, **kwargs)

    def as_definition(self, name, method=False):
        """This query written as a query function definition named name, for
        a program that calls it (model= and decoder= go with it)."""
        params = ", ".join(p for p in self.signature.parameters if method or p != "self")
        deco_args = []
        for k, v in self.extra_args.items():
            if k == "model":
                deco_args.append(f"model={v.source() if isinstance(v, LLM) else repr(v)}")
            elif k in RUN_OPTIONS and _jsonable(v):
                deco_args.append(f"{k}={v!r}")
        deco = "@lmql.query" + (f"({', '.join(deco_args)})" if deco_args else "")
        q = '"""' if '"""' not in self.code else "'''"
        body = textwrap.indent(self.code, "    ")
        return f"{deco}\ndef {name}({params}):\n    {q}lmql\n{body}    {q}\n"

    def __repr__(self):
        return f"<lmql query function {self.name or '<string>'}>"


class _Scope:
    """Names of a decorated function's scope: the frame it was defined in,
    then its module (read at call time, as LMQL reads them)."""

    def __init__(self, fct, frame_locals):
        self.globals = getattr(fct, "__globals__", {}) if fct else {}
        self.locals = frame_locals if frame_locals is not self.globals else {}

    def __call__(self, name):
        v = self.get(name, _MISSING)
        if v is _MISSING:
            raise KeyError(name)
        return v

    def get(self, name, default=None):
        if name in self.locals:
            return self.locals[name]
        return self.globals.get(name, default)


_MISSING = object()


def _empty_scope(name):
    raise KeyError(name)
