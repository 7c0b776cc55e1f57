"""
lmql.model(...): a model and its parameters, as a value Python code passes
to queries (model=) and query code reads (`from MODEL`).

"random" (with seed=) is LMQL's random model; "local:llama.cpp:PATH.gguf"
a llama.cpp model in this process with llama-cpp-python's Llama(...)
parameters (n_ctx=, n_threads=, ...: lmql.model_params() lists them);
"llama.cpp:PATH.gguf" one served by `lmql serve-model`.
"""


class LLM:
    def __init__(self, model_identifier, **kwargs):
        if not isinstance(model_identifier, str):
            raise TypeError("lmql.model: the model's name must be a string")
        self.model_identifier = model_identifier
        # LMQL's random model takes a Hugging Face tokenizer's name; ours draws over GPT-2's
        # vocabulary by default (vocab= names another GGUF): "gpt2" is that default.
        if model_identifier == "random" and kwargs.get("tokenizer") in ("gpt2", "openai-community/gpt2"):
            kwargs = {k: v for k, v in kwargs.items() if k != "tokenizer"}
        self.kwargs = kwargs

    @classmethod
    def from_descriptor(cls, model):
        if model is None:
            model = get_default_model()
            if model is None:
                raise ValueError("no model given and no default model set (lmql.set_default_model)")
        return model if isinstance(model, LLM) else cls(str(model))

    def source(self):
        """The model as query code writes it: lmql.model("random", seed=1)."""
        args = [repr(self.model_identifier)] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        return f"lmql.model({', '.join(args)})"

    def __repr__(self):
        return self.source()

    def __eq__(self, other):
        return isinstance(other, LLM) and (self.model_identifier, self.kwargs) == (other.model_identifier, other.kwargs)

    def __hash__(self):
        return hash((self.model_identifier, tuple(sorted(self.kwargs.items(), key=str))))

    async def generate(self, prompt, max_tokens=None, **kwargs):
        from .api import generate
        return await generate(prompt, max_tokens, model=self, **kwargs)

    def generate_sync(self, prompt, max_tokens=None, **kwargs):
        from .api import generate_sync
        return generate_sync(prompt, max_tokens, model=self, **kwargs)

    async def score(self, prompt, values, **kwargs):
        from .scoring import score_sync
        return score_sync(prompt, values, model=self, **kwargs)

    def score_sync(self, prompt, values, **kwargs):
        from .scoring import score_sync
        return score_sync(prompt, values, model=self, **kwargs)


def model(model_identifier, **kwargs):
    """A model with its parameters, e.g. lmql.model("random", seed=123)."""
    return LLM(model_identifier, **kwargs)


_default = None


def set_default_model(m):
    """The model of queries that name none (no `from`) and get no model=."""
    global _default
    _default = m


def get_default_model():
    return _default
