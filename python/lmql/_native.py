"""
ctypes bindings of liblmql.so (include/lmql.h): the one place that knows
the C library's types. Everything else in the package calls these.

The library is found, first found wins, at $LMQL_LIBRARY; next to the
package in a source tree (build/lib/liblmql.so); where `make
install-python` recorded it (_libpath.py); then by the system's loader.
"""
import ctypes
import ctypes.util
import os
import threading

_HERE = os.path.dirname(os.path.abspath(__file__))
_TREE = os.path.normpath(os.path.join(_HERE, "..", ".."))

LMQL_OK = 0
LMQL_ERR_QUERY = -1
LMQL_ERR_MODEL = -2
LMQL_ERR_RUNTIME = -3
LMQL_ERR_NOMEM = -4
LMQL_ERR_MISUSE = -5

TEXT_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_char), ctypes.c_size_t, ctypes.c_int)
HOST_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.POINTER(ctypes.c_char_p),
                           ctypes.POINTER(ctypes.c_void_p))


class Params(ctypes.Structure):
    _fields_ = [
        ("default_model", ctypes.c_char_p),
        ("model_override", ctypes.c_char_p),
        ("seed", ctypes.c_uint64),
        ("max_steps", ctypes.c_int32),
        ("max_depth", ctypes.c_int32),
        ("max_len", ctypes.c_int32),
        ("on_text", TEXT_CB),
        ("user_data", ctypes.c_void_p),
    ]


class Stats(ctypes.Structure):
    _fields_ = [("n_decoded", ctypes.c_uint64), ("n_reused", ctypes.c_uint64), ("n_generated", ctypes.c_uint64),
                ("n_forward", ctypes.c_uint64), ("t_eval", ctypes.c_double), ("t_total", ctypes.c_double)]


def _candidates():
    env = os.environ.get("LMQL_LIBRARY")
    if env:
        return [env]
    out = [os.path.join(_TREE, "build", "lib", "liblmql.so")]
    try:
        from ._libpath import LIBRARY  # written by `make install-python`
        out.append(LIBRARY)
    except ImportError:
        pass
    out.append("liblmql.so")
    return out


def _load():
    errors = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            errors.append(f"{path}: no such file")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            errors.append(str(e))
    raise ImportError("lmql: cannot load liblmql.so (build it with `make`, or set LMQL_LIBRARY): " + "; ".join(errors))


lib, LIBRARY_PATH = _load()

# The random model draws over GPT-2's vocabulary, as LMQL's does; in a
# source tree that file is in build/vocab, which the library looks for
# relative to the working directory only: name it here.
# An installed package has it where `make install-python` put it.
_vocabs = [os.path.join(_TREE, "build", "vocab", "ggml-vocab-gpt-2.gguf")]
try:
    from ._libpath import VOCAB
    _vocabs.append(VOCAB)
except ImportError:
    pass
for _vocab in _vocabs:
    if not os.environ.get("LMQL_RANDOM_VOCAB") and os.path.exists(_vocab):
        os.environ["LMQL_RANDOM_VOCAB"] = _vocab

_P, _V, _I, _S = ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p


def _fn(name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


lmql_default_params = _fn("lmql_default_params", Params)
lmql_init = _fn("lmql_init", _P, ctypes.POINTER(Params))
lmql_free = _fn("lmql_free", None, _P)
lmql_errmsg = _fn("lmql_errmsg", _S, _P)
lmql_error_status = _fn("lmql_error_status", _I, _P)
lmql_error_line = _fn("lmql_error_line", _I, _P)
lmql_error_col = _fn("lmql_error_col", _I, _P)
lmql_program_compile = _fn("lmql_program_compile", _P, _P, _S, _S, ctypes.c_size_t)
lmql_program_free = _fn("lmql_program_free", None, _P)
lmql_args_init = _fn("lmql_args_init", _P)
lmql_args_set_json = _fn("lmql_args_set_json", _I, _P, _S, _S)
lmql_args_set_option = _fn("lmql_args_set_option", _I, _P, _S, _S)
lmql_args_set_model = _fn("lmql_args_set_model", _I, _P, _S, ctypes.POINTER(_S), ctypes.POINTER(_S), _I)
lmql_args_free = _fn("lmql_args_free", None, _P)
lmql_run = _fn("lmql_run", _I, _P, _P, _P, ctypes.POINTER(_P))
lmql_result_json = _fn("lmql_result_json", _S, _P)
lmql_result_count = _fn("lmql_result_count", _I, _P)
lmql_result_prompt = _fn("lmql_result_prompt", _S, _P, _I)
lmql_result_free = _fn("lmql_result_free", None, _P)
lmql_register_function = _fn("lmql_register_function", _I, _P, _S, HOST_FN, _V)
lmql_last_stats = _fn("lmql_last_stats", None, _P, ctypes.POINTER(Stats))
lmql_model_param = _fn("lmql_model_param", _I, _I, ctypes.POINTER(_S), ctypes.POINTER(_S), ctypes.POINTER(_S))

# Host functions hand back malloc'd text that the library frees.
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]


def c_string(data: bytes):
    """A malloc'd NUL-terminated copy of data, for the library to free."""
    p = _libc.malloc(len(data) + 1)
    if not p:
        raise MemoryError
    ctypes.memmove(p, data + b"\0", len(data) + 1)
    return p


def model_params():
    """(name, default, meaning) of every llama.cpp parameter lmql.model takes."""
    out, i = [], 0
    while True:
        n, d, m = _S(), _S(), _S()
        if lmql_model_param(i, ctypes.byref(n), ctypes.byref(d), ctypes.byref(m)) != 0:
            return out
        out.append((n.value.decode(), d.value.decode(), m.value.decode()))
        i += 1


class Runtime:
    """One struct lmql: models stay loaded between runs on it. The text
    callback and the host functions are registered once and dispatch to
    whatever the running query set (Run in runtime.py)."""

    def __init__(self):
        self.lock = threading.RLock()
        self.busy = False
        self.on_text = None             # the running query's writer
        self.current = None             # the running query (runtime._Run)
        self.functions = {}             # name -> the running query's callable
        self.registered = {}            # name -> HOST_FN kept alive
        self._text_cb = TEXT_CB(self._text)
        params = lmql_default_params()
        params.on_text = self._text_cb
        self.handle = lmql_init(ctypes.byref(params))
        if not self.handle:
            raise MemoryError("lmql_init failed")

    def _text(self, ud, text, n, kind):
        if self.on_text is not None:
            try:
                self.on_text(ctypes.string_at(text, n), kind == 1)
            except Exception:  # a writer's failure must not unwind through C
                pass

    def register(self, name, dispatch):
        if name in self.registered:
            return
        cb = HOST_FN(lambda ud, argc, argv, out, _n=name: dispatch(_n, argc, argv, out))
        st = lmql_register_function(self.handle, name.encode(), cb, None)
        if st != LMQL_OK:
            raise ValueError(f"cannot register host function {name!r}: {lmql_errmsg(self.handle).decode()}")
        self.registered[name] = cb

    def close(self):
        if self.handle:
            lmql_free(self.handle)
            self.handle = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
