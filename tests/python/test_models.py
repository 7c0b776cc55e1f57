"""
Models, streaming, lmql.F, lmql.generate, lmql.score and the library itself: the tiny
llama.cpp models (build/models) and the random model. Mirrors test_f.py,
test_api.py (generate, score), test_decorators.py (a Python post-processing
decorator) and test_local_model_python.py, in our words.
"""
import asyncio
import ctypes
import json
import os
import subprocess
import sys
import unittest

import lmql
from lmql import _native

TINY = "local:llama.cpp:build/models/tiny-gpt2.gguf"


def shout(value):
    return value.upper() + "!"


@lmql.query(model=lmql.model(TINY, n_ctx=256))
def tiny_query(topic):
    '''lmql
    "A word about {topic}:[W]" where len(TOKENS(W)) < 4
    return W
    '''


@lmql.query(model=lmql.model("random", seed=123))
def decorated():
    '''lmql
    "Say 'this is a test':\n[@shout RESPONSE]" where len(TOKENS(RESPONSE)) < 10
    '''


class Models(unittest.TestCase):
    # test_local_model_python.py: a local llama.cpp model with llama.cpp parameters
    def test_tiny_model(self):
        a = tiny_query("cats")
        self.assertIsInstance(a, str)
        self.assertEqual(tiny_query("cats"), a)   # argmax repeats
        r = lmql.run_sync('"Hi[X]" where len(TOKENS(X)) < 3', model=TINY, decoder="sample", n=2)
        self.assertEqual(len(r), 2)

    def test_model_params(self):
        names = [n for n, _, _ in lmql.model_params()]
        self.assertIn("n_ctx", names)
        self.assertEqual(lmql.model("random", seed=3).source(), "lmql.model('random', seed=3)")

    # test_f.py::test_f_functions, test_f_positional_args, test_f_multiple_positional_args
    def test_f(self):
        a = lmql.F("Summarize this text: {text}: [SUMMARY]", "len(TOKENS(SUMMARY)) < 10",
                   model=lmql.model("random", seed=123))
        r = a(text="This is a test.")
        self.assertIsInstance(r, str)
        self.assertEqual(a("This is a test."), r)
        b = lmql.F("Summarize this text: {text1}{text2}: [SUMMARY]", "len(TOKENS(SUMMARY)) < 10",
                   model=lmql.model("random", seed=123))
        self.assertEqual(b("This is ", "a test."), r)
        two = lmql.F("{a}[X] and [Y]", "len(TOKENS(X)) < 2 and len(TOKENS(Y)) < 2", model="random")
        self.assertEqual(sorted(two(a="q")), ["X", "Y"])

    # test_f.py::test_async_f_functions
    def test_async_f(self):
        a = lmql.F("Summarize: {text}: [SUMMARY]", "len(TOKENS(SUMMARY)) < 10",
                   model=lmql.model("random", seed=123), is_async=True)
        self.assertIsInstance(asyncio.run(a(text="x")), str)

    # test_f.py::test_map_async_f_functions: lmql.algorithms.map over a query function and a template
    def test_algorithms_map(self):
        import lmql.algorithms as la
        data = ["A dog walks into a bar.", "A cat goes for a walk."]
        q = lmql.F("Summarize this text: {text}: [SUMMARY]", "len(TOKENS(SUMMARY)) < 10",
                   model=lmql.model("random", seed=123), is_async=True)
        self.assertEqual(len(asyncio.run(la.map(q, data))), 2)
        r = asyncio.run(la.map("Summarize this text: {text}: [SUMMARY]", data, where="len(TOKENS(SUMMARY)) < 10",
                               model=lmql.model("random", seed=123)))
        self.assertEqual(len(r), 2)
        self.assertTrue(all(isinstance(x, str) for x in r))

    # test_multi_tokenizer.py::test_random_gpt: tokenizer="gpt2" is the random model's own vocabulary
    def test_random_gpt_tokenizer(self):
        q = lmql.query('"Hello[WORLD]" where len(TOKENS(WORLD)) == 4\nreturn WORLD', is_async=False)
        self.assertEqual(q(model=lmql.model("random", tokenizer="gpt2", seed=1)), "saf steppingattery clutch")

    # test_api.py::test_generate_sync, test_llm_generate
    def test_generate(self):
        lmql.set_default_model(lmql.model("random", seed=123))
        try:
            r = lmql.generate_sync("Test", max_tokens=10)
            self.assertIsInstance(r, str)
            self.assertGreater(len(r), 0)
            llm = lmql.model("random", seed=123)
            self.assertIsInstance(asyncio.run(llm.generate("Test", max_tokens=10)), str)
            # the default model serves queries without `from`
            self.assertIsInstance(lmql.run_sync('"Hi[X]" where len(TOKENS(X)) < 3'), lmql.LMQLResult)
        finally:
            lmql.set_default_model(None)

    # test_api.py::test_score_sync, test_llm_score_two (shapes as list lengths: no numpy here),
    # test_llm_local (on the tiny llama.cpp model: the same value by every path)
    def test_score(self):
        lmql.set_default_model(lmql.model("random", seed=123))
        try:
            r = lmql.score_sync("Test", "Test")
            self.assertIs(type(r), lmql.ScoringResult)
            self.assertEqual([len(t) for t in r.token_scores], [1])
            self.assertEqual([len(t) for t in r.full_token_scores], [2])
            self.assertEqual(len(r.logprobs()), 1)
            r = lmql.score_sync("Hello", ["World", "Test"])
            self.assertEqual(len(r.token_scores), 2)
            self.assertIn(r.argmax(), ["World", "Test"])
            self.assertAlmostEqual(sum(r.probs()), 1.0)
        finally:
            lmql.set_default_model(None)
        m = lmql.model(TINY, n_ctx=256)
        a = m.score_sync("Hello", ["World", "Test"])
        b = asyncio.run(lmql.score("Hello", ["World", "Test"], model=m))
        self.assertEqual(a.scores(), b.scores())
        self.assertEqual(a.argmax(), max(zip(a.scores(), ["World", "Test"]))[1])
        self.assertAlmostEqual(a.scores("mean")[1], sum(a.token_scores[1]) / len(a.token_scores[1]))
        with self.assertRaises(ValueError):
            a.scores("max")

    # test_decorators.py::test_decorators: a Python function as a post-processing decorator
    def test_python_decorator(self):
        r = decorated()
        self.assertTrue(r.variables["RESPONSE"].endswith("!"))
        self.assertEqual(r.variables["RESPONSE"], r.variables["RESPONSE"].upper())

    def test_streaming(self):
        pieces = []
        r = lmql.run_sync('"Hello [X] and more" where len(TOKENS(X)) < 5', model="random",
                          output_writer=lambda text, generated: pieces.append((text, generated)))
        self.assertEqual("".join(t for t, _ in pieces), r.prompt)
        self.assertTrue(any(g for _, g in pieces) and any(not g for _, g in pieces))
        gen = "".join(t for t, g in pieces if g)
        self.assertEqual(gen, r.variables["X"])

    def test_library_exports_public_names_only(self):
        lib = _native.lib
        self.assertTrue(hasattr(lib, "lmql_run"))
        with self.assertRaises(AttributeError):
            lib.lmql__json_parse
        self.assertTrue(_native.LIBRARY_PATH.endswith("liblmql.so"))

    def test_nested_run_from_host_function(self):
        # a Python function the query calls runs a query itself: a second runtime serves it
        def inner(x):
            return lmql.run_sync('argmax\n    return v * 2\nfrom "random"', v=x)
        q = lmql.query('argmax\n    return inner(21)\nfrom "random"', is_async=False)
        q.scope = {"inner": inner}.__getitem__
        self.assertEqual(q(), 42)

    def test_no_crash_on_bad_input(self):
        for code in ["", "\x00", "[" * 300, '"' * 5, "argmax from", "'''lmql\n"]:
            try:
                lmql.run_sync(code, model="random")
            except lmql.LMQLError:
                pass
        self.assertIsInstance(ctypes.sizeof(_native.Params), int)

    # the README's program runs as shown there; `python3 -m lmql` is the C command
    def test_readme_example_and_command(self):
        env = dict(os.environ, PYTHONPATH="python")
        out = subprocess.run([sys.executable, "examples/hello_python.py"], env=env, capture_output=True,
                             text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("items: ['exodusSAY displacedincreasing',", out.stdout)
        self.assertIn("error: AttributeError at line 2", out.stdout)
        out = subprocess.run([sys.executable, "-m", "lmql", "run", "--json", "-e",
                              'argmax "Hi[X]" from "random" where len(TOKENS(X)) < 3'],
                             env=env, capture_output=True, text=True, timeout=60)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertEqual(json.loads(out.stdout)["prompt"], "Hi Astros fid")


if __name__ == "__main__":
    unittest.main()
