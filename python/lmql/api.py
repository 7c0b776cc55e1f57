"""
lmql.query, lmql.F, lmql.run, lmql.run_sync, lmql.generate: LMQL's Python
entry points over runtime.QueryFunction.
"""
import functools
import inspect
import sys

from .llm import LLM, get_default_model
from .runtime import QueryFunction, _Scope, _empty_scope, _clean, docstring_code, execute


def _signature(names):
    return inspect.Signature([inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])


def query_from_string(s, input_variables=None, is_async=True, output_writer=None, **extra_args):
    """A query function of query code (LMQL's `'''lmql` marker optional);
    its arguments are input_variables, or any keyword the call gives. Like
    LMQL's, it does not see the caller's Python names."""
    if output_writer is not None:
        extra_args["output_writer"] = output_writer
    return QueryFunction(_clean(s), _signature(input_variables or []), _empty_scope, is_async, extra_args)


def query(__fct__=None, input_variables=None, is_async=True, calling_frame=None, **extra_args):
    """@lmql.query on a function whose docstring is an LMQL query, with or
    without arguments (@lmql.query(model=..., decoder=...)); or
    lmql.query(code) for a query function of a string."""
    if __fct__ is None:
        frame_locals = sys._getframe(1).f_locals

        def wrapper(fct):
            return _decorate(fct, frame_locals, extra_args)
        return wrapper
    if isinstance(__fct__, QueryFunction):
        return __fct__
    if isinstance(__fct__, str):
        return query_from_string(__fct__, input_variables, is_async=is_async, **extra_args)
    if input_variables is not None:
        raise TypeError("input_variables must be None when using @lmql.query as a decorator")
    return _decorate(__fct__, sys._getframe(1).f_locals, extra_args)


def _decorate(fct, frame_locals, extra_args):
    if getattr(fct, "__lmql_query_function__", None) is not None:
        return fct
    origin = []
    code = docstring_code(fct, origin)
    # As in LMQL: an `async def` query is awaited, a `def` one is called.
    qf = QueryFunction(code, inspect.signature(fct), _Scope(fct, frame_locals), inspect.iscoroutinefunction(fct),
                       extra_args, name=fct.__name__, fct=fct)
    qf.origin = tuple(origin) or None

    @functools.wraps(fct)
    def lmql_query_wrapper(*args, **kwargs):
        return qf(*args, **kwargs)
    lmql_query_wrapper.__lmql_query_function__ = qf
    lmql_query_wrapper.lmql_code = code
    lmql_query_wrapper.is_async = qf.is_async
    lmql_query_wrapper.output_variables = qf.output_variables
    return lmql_query_wrapper


def F(s, constraints=None, **kwargs):
    """A query function of one prompt template and an optional where
    clause: lmql.F("Summarize {text}: [SUMMARY]", "len(TOKENS(SUMMARY)) < 10").
    Its result is the value of its variable (a dict for several)."""
    s = s.replace('"', '\\"')
    is_async = kwargs.pop("is_async", False)
    code = f'"{s}"' + (f" where {constraints}" if constraints is not None else "") + "\n"
    q = QueryFunction(code, _signature([]), _empty_scope, is_async, kwargs, name="F", is_f=True)
    return q


async def run(code, *args, **kwargs):
    """Compile and run query code; awaitable (lmql.run_sync otherwise)."""
    q = query_from_string(code)
    return await q(*args, **kwargs)


def run_sync(code, *args, **kwargs):
    """Compile and run query code, synchronously."""
    q = query_from_string(code, is_async=False)
    return q(*args, **kwargs)


async def run_file(filepath, *args, **kwargs):
    with open(filepath, encoding="utf-8") as f:
        code = f.read()
    return await query_from_string(code)(*args, **kwargs)


_GENERATE = """argmax
    return lmql.generate_sync(__prompt, max_tokens=__max_tokens, model=__model{more})
from __model
"""


def generate_sync(prompt, max_tokens=None, model=None, **kwargs):
    """Text the model continues prompt with (up to max_tokens tokens)."""
    m = LLM.from_descriptor(model)
    more = "".join(f", {k}=__kw_{k}" for k in kwargs)
    code = "__model = " + m.source() + "\n" + _GENERATE.format(more=more)
    bound = {"__prompt": prompt, "__max_tokens": max_tokens, **{f"__kw_{k}": v for k, v in kwargs.items()}}
    return execute(code, bound, _empty_scope, {}, None, False)


async def generate(prompt, max_tokens=None, model=None, **kwargs):
    return generate_sync(prompt, max_tokens, model, **kwargs)
