"""
lmql.decorators: LMQL's variable decorators as Python names. Query code
spells them itself (`@lmql.decorators.streaming` in a query is the
engine's); in Python they mark a function the way LMQL's do, and a
post-processing decorator ([@fn VAR]) that the query names is called
with the value as a host function.
"""


def pre(fn):
    fn.__lmql_decorator__ = "pre"
    return fn


def streaming(fn):
    fn.__lmql_decorator__ = "streaming"
    return fn


def post(fn):
    fn.__lmql_decorator__ = "post"
    return fn
