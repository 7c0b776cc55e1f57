"""
lmql.algorithms: map and reduce over query functions (LMQL's
`import lmql.algorithms as la; await la.map(q, items)`). A query given as a
string is an lmql.F template (where= its constraints). No result cache.
"""
import inspect

from .api import F


async def apply(q, *args, **kwargs):
    """Call q (a query function, a template string, or a Python function)
    with args, awaiting what it returns."""
    if isinstance(q, str):
        q = F(q, constraints=kwargs.pop("where", None), is_async=True, **kwargs)
        kwargs = {}
    r = q(*args, **kwargs)
    return await r if inspect.isawaitable(r) else r


async def map(q, items, chunksize=None, progress=False, parameter=None, **kwargs):
    """[q(x) for x in items], each awaited; queries run one after another
    (each one's sequences are decoded together by the engine)."""
    return [await apply(q, x, **kwargs) for x in items]


async def reduce(f, items, initial=None):
    items = list(items)
    acc = items.pop(0) if initial is None else initial
    for item in items:
        acc = await apply(f, acc, item)
    return acc
