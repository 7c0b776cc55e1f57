"""
LMQL's Python interface on our C engine: `import lmql` finds this package,
which runs queries through liblmql.so (ctypes; standard library only).

    @lmql.query(model=lmql.model("random", seed=123))
    def hello(name):
        '''lmql
        "Hello {name}! [GREETING]" where len(TOKENS(GREETING)) < 8
        '''
    print(hello("Ann").variables["GREETING"])

See README.md (Python) and docs/STATUS.md for what LMQL offers here.
"""
__version__ = "0.1.0"

from .errors import LMQLError
from .llm import LLM, model, set_default_model, get_default_model
from .runtime import LMQLResult, QueryFunction as LMQLQueryFunction
from .api import query, query_from_string, F, run, run_sync, run_file, generate, generate_sync
from .scoring import ScoringResult, score, score_sync
from .output_writer import printing, silent, headless, stream
from . import decorators
from . import _native


def model_params():
    """The llama.cpp parameters lmql.model("local:llama.cpp:...", ...) takes:
    (name, default, meaning) triples."""
    return _native.model_params()


def main(query_fct, *args, **kwargs):
    """Call a query function with args and return its result, blocking
    (awaited when it is async): LMQL's lmql.main."""
    import asyncio
    r = query_fct(*args, **kwargs)
    return asyncio.run(_await(r)) if asyncio.iscoroutine(r) else r


async def _await(aw):
    return await aw
