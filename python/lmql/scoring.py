"""
lmql.score / score_sync and LLM.score: LMQL's Generations API for scoring,
run as query code (the engine's lmql.score, src/generations.c), with the
ScoringResult LMQL returns. Scores are lists (LMQL's are numpy arrays; this
package uses the standard library only).
"""
import math

from .llm import LLM
from .runtime import _empty_scope, execute

_SCORE = """argmax
    __r = lmql.score_sync(__prompt, __values, model=__model)
    return [__r.continuations, __r.token_scores, __r.full_token_scores]
from __model
"""


class ScoringResult:
    """The model's scores of continuations of one prompt (LMQL's
    lmql.ScoringResult): per continuation the token log-probabilities of
    the value (token_scores) and of the whole sequence (full_token_scores)."""

    def __init__(self, prompt, continuations, token_scores, full_token_scores, model_identifier):
        self.prompt = prompt
        self.continuations = continuations
        self.token_scores = token_scores
        self.full_token_scores = full_token_scores
        self.num_value_tokens = [len(t) for t in token_scores]
        self.model_identifier = model_identifier

    def scores(self, agg="sum", **kwargs):
        """Per continuation: "sum" of its token log-probabilities, their
        "mean", or "normalized" (the sum over the sequence's length ** alpha)."""
        if agg == "sum":
            return [sum(t) for t in self.token_scores]
        if agg == "mean":
            return [sum(t) / len(t) if t else float("nan") for t in self.token_scores]
        if agg.startswith("normalized"):
            alpha = kwargs.get("alpha", 0.7)
            return [sum(t) / (len(f) ** alpha) for t, f in zip(self.token_scores, self.full_token_scores)]
        raise ValueError("invalid aggregation: {}".format(agg))

    def logprobs(self, agg="sum"):
        """The scores normalized over the continuations (log-softmax)."""
        s = self.scores(agg)
        m = max(s)
        z = math.log(sum(math.exp(x - m) for x in s))
        return [x - m - z for x in s]

    def probs(self, agg="sum"):
        return [math.exp(x) for x in self.logprobs(agg)]

    def argmax(self, agg="sum"):
        """The continuation with the highest score (the first of equal ones)."""
        s = self.scores(agg)
        return self.continuations[max(range(len(s)), key=lambda i: (s[i], -i))]

    def __str__(self):
        return "lmql.ScoringResult(model='{}')\n".format(self.model_identifier) + \
            "\n".join(f"-{str([c])[1:-1]}: {score}" for c, score in zip(self.continuations, self.scores()))

    __repr__ = __str__


def score_sync(prompt, values, model=None, **kwargs):
    """Scores of values (a string or a list of them) as continuations of prompt."""
    if kwargs:
        raise TypeError("score() got an unexpected keyword argument '{}'".format(next(iter(kwargs))))
    m = LLM.from_descriptor(model)
    code = "__model = " + m.source() + "\n" + _SCORE
    values = [values] if isinstance(values, str) else list(values)
    cont, tokens, full = execute(code, {"__prompt": prompt, "__values": values}, _empty_scope, {}, None, False)
    return ScoringResult(prompt, cont, tokens, full, m.model_identifier)


async def score(prompt, values, model=None, **kwargs):
    return score_sync(prompt, values, model, **kwargs)
