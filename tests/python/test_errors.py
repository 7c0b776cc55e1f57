"""
Errors of queries as Python exceptions (never a crash of the interpreter):
syntax errors with the query's position, exceptions of host functions
with their type and the position of the call, asserts, models, arguments.
Mirrors queryargs/test_var_errors.py and the error paths of LMQL's
queryargs tests, in our words.
"""
import asyncio
import unittest

import lmql


class Boom(Exception):
    pass


def fails(x):
    raise ValueError(f"bad value {x}")


def fails_custom():
    raise Boom("custom")


def unjsonable():
    return object()


@lmql.query(model=lmql.model("random", seed=1))
def calls_failing():
    '''lmql
    "first line"
    "value: {fails(3)}"
    '''


@lmql.query(model=lmql.model("random", seed=1))
def calls_custom():
    '''lmql
    "{fails_custom()}"
    '''


@lmql.query(model=lmql.model("random", seed=1))
def returns_object():
    '''lmql
    "{unjsonable()}"
    '''


@lmql.query(model=lmql.model("random", seed=1))
def catches():
    '''lmql
    try:
        fails(1)
    except ValueError as e:
        return "caught " + str(e)
    '''


@lmql.query(model=lmql.model("random", seed=1))
def asserts():
    '''lmql
    "Hi[X]" where len(TOKENS(X)) < 2
    assert X == "never", "X was not never"
    '''


@lmql.query
async def noinput_but_specified():
    '''lmql
    argmax
        return s, CONSTANT
    from
        "random"
    '''


CONSTANT = 123


class Errors(unittest.TestCase):
    def test_syntax_error_position(self):
        q = lmql.query('"unterminated [X" where len(X) < 3', is_async=False)
        with self.assertRaises(lmql.LMQLError) as cm:
            q(model="random")
        e = cm.exception
        self.assertEqual((e.line, e.column), (1, 15))
        self.assertEqual(e.kind, "query")
        self.assertIn("unterminated placeholder", str(e))

    def test_syntax_error_in_decorated_function(self):
        with self.assertRaises(lmql.LMQLError) as cm:
            lmql.run_sync('''lmql
            argmax
                "ok"
                x = (1 +
            from "random"
            ''')
        self.assertGreater(cm.exception.line, 1)

    def test_host_function_raises(self):
        with self.assertRaises(ValueError) as cm:
            calls_failing()
        e = cm.exception
        self.assertIsInstance(e, lmql.LMQLError)
        self.assertIn("bad value 3", str(e))
        self.assertEqual(e.line, 2)   # the call's place in the query
        self.assertIsInstance(e.__cause__, ValueError)
        # and in this file
        self.assertEqual(e.filename, __file__)
        with open(__file__) as f:
            want = [i + 1 for i, text in enumerate(f) if '"value: {fails(3)}"' in text][0]
        self.assertEqual(e.python_line, want)

    def test_host_function_custom_exception(self):
        with self.assertRaises(Boom) as cm:
            calls_custom()
        self.assertIsInstance(cm.exception, lmql.LMQLError)
        self.assertIn("custom", str(cm.exception))

    def test_host_result_not_json(self):
        with self.assertRaises(TypeError) as cm:
            returns_object()
        self.assertIn("not JSON serializable", str(cm.exception))

    def test_query_catches_host_exception(self):
        self.assertEqual(catches(), "caught bad value 1")

    def test_assert_is_assertion_error(self):
        with self.assertRaises(AssertionError) as cm:
            asserts()
        self.assertIn("X was not never", str(cm.exception))
        self.assertEqual(cm.exception.line, 2)

    # queryargs/test_var_errors.py: a name the query reads that nothing defines
    def test_unresolved_variable(self):
        with self.assertRaises(TypeError) as cm:
            asyncio.run(noinput_but_specified())
        self.assertIn("Failed to resolve variable 's'", str(cm.exception))
        self.assertEqual(asyncio.run(noinput_but_specified(s="test")), ["test", 123])

    def test_unknown_model(self):
        q = lmql.query('"Hi[X]"', is_async=False)
        with self.assertRaises(lmql.LMQLError) as cm:
            q(model="no-such-model")
        self.assertEqual(cm.exception.kind, "model")
        with self.assertRaises(lmql.LMQLError):
            q(model=lmql.model("local:llama.cpp:/no/such/file.gguf"))

    def test_bad_arguments(self):
        q = lmql.query('argmax\n    return a\nfrom "random"', input_variables=["a"], is_async=False)
        with self.assertRaises(TypeError):
            q(1, 2)
        # decoder options apply to a query that names no decoder
        q = lmql.query('"Hi {a}[X]" where len(TOKENS(X)) < 2', input_variables=["a"], is_async=False)
        with self.assertRaises(lmql.LMQLError) as cm:
            q(1, model="random", n="two", decoder="sample")
        self.assertIn("decoder argument n", str(cm.exception))
        with self.assertRaises(lmql.LMQLError) as cm:
            q(1, model="random", decoder="sample", temperature=float("nan"))
        self.assertIn("temperature", str(cm.exception))
        with self.assertRaises(TypeError):
            q(1, bogus_option=1)

    def test_runtime_error_in_query(self):
        with self.assertRaises(ZeroDivisionError) as cm:
            lmql.run_sync('argmax\n    x = 1 / 0\nfrom "random"')
        self.assertEqual(cm.exception.line, 2)


if __name__ == "__main__":
    unittest.main()
