"""
@lmql.query functions, lmql.query(str), lmql.run/run_sync and their
arguments and results, on the random model. Each test names the LMQL test
(eth-sri/lmql src/lmql/tests/...) it mirrors; the expected texts are the
random model's draws, the same as LMQL's where LMQL's test states them.
"""
import asyncio
import unittest

import lmql

RANDOM = lmql.model("random", seed=123)
CONSTANT = 1


def helper_upper(s):
    return s.upper()


@lmql.query(model=lmql.model("random", seed=123))
def cot_fct():
    '''lmql
    @lmql.query
    def chain_of_thought():
        """lmql
        "A: Let's think step by step. [ANSWER]" where len(TOKENS(ANSWER)) < 4
        return ANSWER.strip()
        """

    "Q: It is August 12th, 2020. What date was it 100 days ago? [ANSWER: chain_of_thought]"
    return ANSWER
    '''


@lmql.query
def dateformat():
    '''lmql
    "(respond in DD/MM/YYYY) [ANSWER]" where len(TOKENS(ANSWER)) == 4
    return ANSWER.strip()
    '''


@lmql.query(model=lmql.model("random", seed=123))
def multi_nested():
    '''lmql
    "Q: When was Obama born? [ANSWER: dateformat]\n"
    assert ANSWER == "amongst nor governingpowder", f"first: {[ANSWER]}"
    "Q: When was Bruno Mars born? [ANSWER: dateformat]\n"
    assert ANSWER == "latitude sexualityesqueexamination", f"second: {[ANSWER]}"
    "Q: When was Dua Lipa born? [ANSWER: dateformat]\n"
    assert ANSWER == "ilitation tackled oriented Helmet", f"third: {[ANSWER]}"
    "Out of these, who was born last?[LAST]" where len(TOKENS(LAST)) == 2
    return LAST
    '''


@lmql.query
def one_of(choices: list):
    '''lmql
    "Among {choices}, what do you consider \
    most likely? [ANSWER]" where ANSWER in choices
    return ANSWER
    '''


@lmql.query(model=lmql.model("random", seed=123))
def capital():
    '''lmql
    "Q: What is the capital of France? \
    [ANSWER: one_of(['Berlin', 'Paris', 'London'])]"
    return ANSWER
    '''


@lmql.query(model=lmql.model("random", seed=123))
def uses_helper(word):
    '''lmql
    "Shout {helper_upper(word)}: [X]" where len(TOKENS(X)) < 3
    return helper_upper(X), CONSTANT
    '''


@lmql.query(model=lmql.model("random", seed=123))
def greet(name, greeting="Hello"):
    '''lmql
    "{greeting} {name}! [REPLY]" where len(TOKENS(REPLY)) < 5
    '''


@lmql.query(model=lmql.model("random", seed=123))
async def async_greet(name):
    '''lmql
    "Hi {name}! [REPLY]" where len(TOKENS(REPLY)) < 5
    return REPLY
    '''


@lmql.query
async def positional_and_default(s: str, a: int = 12):
    '''lmql
    argmax
        return s, a
    from
        "random"
    '''


@lmql.query(model=lmql.model("random", seed=123))
async def multi_kw_multiplicity(s: str = 'default', a: int = 12):
    '''lmql
    sample(n=2)
    "Hi [COMPLETION]" where len(TOKENS(COMPLETION)) == 2
    return s, a
    '''


@lmql.query(model=lmql.model("random", seed=123))
def data_args(items, table):
    '''lmql
    "{len(items)} {items[1]} {table['k'][0]}[X]" where len(TOKENS(X)) < 2
    return [items, table]
    '''


class Agent:
    def __init__(self, a):
        self.a = a
        self.memory = ["x"]

    @lmql.query
    def chain_of_thought(self):
        '''lmql
        "A. Let's think step by step ({self.a}):[REASONING]" where len(TOKENS(REASONING)) == 3
        return REASONING.strip()
        '''

    @lmql.query(model=lmql.model("random", seed=124))
    def question(self):
        '''lmql
        "Q: Why is the sky blue? [ANSWER: self.chain_of_thought]"
        return ANSWER, self, self.memory
        '''

    @lmql.query
    async def interact(self, s: str, a=12):
        '''lmql
        argmax
            return s, a, self, CONSTANT
        from
            "chatgpt"
        '''


class Log:
    def __init__(self):
        self.post_input = None


@lmql.query(model=lmql.model("random", seed=123))
def inner_decorator():
    '''lmql
    log = Log()

    def f(s):
        log.post_input = s
        return 12

    "Say 'this is a test':\n[@f RESPONSE]" where len(TOKENS(RESPONSE)) < 10
    assert RESPONSE == 12, "program value {}".format(RESPONSE)
    assert context.prompt == "Say 'this is a test':\n12", "prompt {}".format([context.prompt])
    return log.post_input
    '''


class Queries(unittest.TestCase):
    # test_nested_queries.py::test_cot_fct: a query function defined in the query
    def test_nested_in_query(self):
        self.assertEqual(cot_fct(), "Trails.................. partic")

    # test_nested_queries.py::test_multi_nested: a Python-level @lmql.query function as a hole's type
    def test_nested_python_query(self):
        self.assertEqual(multi_nested(), "503iton")

    # test_nested_queries.py::test_one_of: a nested query function with arguments
    def test_nested_with_args(self):
        self.assertEqual(capital(), "Paris")

    # test_nested_queries.py::test_nested_queries, queryargs/test_args.py: an object (self) crosses as a
    # handle: its JSON attributes and @lmql.query methods are the query's, and it comes back as itself
    def test_object_handles(self):
        agent = Agent(12)
        answer, me, memory = agent.question()
        self.assertIs(me, agent)
        self.assertEqual(memory, ["x"])
        self.assertIsInstance(answer, str)
        s, a, ag, captured = asyncio.run(agent.interact("Hi there", a=8))
        self.assertEqual((s, a, captured), ("Hi there", 8, 1))
        self.assertIs(ag, agent)

    # test_decorators.py::test_inner_decorator: a Python class the query instantiates (its source is query code)
    def test_class_in_query(self):
        self.assertEqual(inner_decorator(), "AMEtemplate Municip derailed confidently 425licensed during blazing")

    # the Python helper a query calls is a host function; CONSTANT comes from the module
    def test_python_helper_and_capture(self):
        x, c = uses_helper("hi")
        self.assertEqual(c, 1)
        self.assertTrue(x.isupper() or x.strip() == "")

    # results as LMQL shapes them: LMQLResult with prompt and variables
    def test_result_object(self):
        r = greet("Ann")
        self.assertIsInstance(r, lmql.LMQLResult)
        self.assertTrue(r.prompt.startswith("Hello Ann! "))
        self.assertEqual(list(r.variables), ["REPLY"])
        self.assertEqual(r.prompt, "Hello Ann! " + r.variables["REPLY"])
        self.assertIsNone(r.distribution_variable)
        self.assertEqual(greet("Bo", greeting="Hey").prompt[:8], "Hey Bo! ")
        self.assertEqual(greet(name="Ann"), r)   # same seed, same draw

    # queryargs/test_args.py::test_query_args: positional, defaults, several sequences
    def test_query_args(self):
        async def go():
            s, a = await positional_and_default("Hi there")
            self.assertEqual((s, a), ("Hi there", 12))
            s, a = await positional_and_default("Hi there", a=8)
            self.assertEqual(a, 8)
            results = await multi_kw_multiplicity(s="x", a=3)
            self.assertEqual(len(results), 2)
            for s, a in results:
                self.assertEqual((s, a), ("x", 3))
        asyncio.run(go())

    # an async query function is awaited; a sync one is called
    def test_async_function(self):
        self.assertTrue(async_greet.is_async)
        r = asyncio.run(async_greet("Ann"))
        self.assertIsInstance(r, str)

    # plain values of any JSON shape cross as arguments
    def test_json_arguments(self):
        items, table = data_args(["a", "b"], {"k": [7, None]})
        self.assertEqual(items, ["a", "b"])
        self.assertEqual(table, {"k": [7, None]})

    # queryargs/test_args_query_str.py: lmql.query(str) with input_variables
    def test_query_from_string(self):
        multipos = lmql.query('''lmql
        argmax
            return s, a
        from
            "random"
        ''', input_variables=['s', 'a'])
        self.assertEqual(asyncio.run(multipos("x", 8)), ["x", 8])
        self.assertEqual(asyncio.run(multipos("x", a=8)), ["x", 8])
        sync = lmql.query('argmax\n    return s\nfrom "random"', is_async=False)
        self.assertEqual(sync(s="y"), "y")

    # queryargs/test_args_run.py, queryargs/test_sync.py: lmql.run and lmql.run_sync
    def test_run_and_run_sync(self):
        q = '''lmql
        argmax
            return s
        from
            "random"
        '''
        self.assertEqual(lmql.run_sync(q, s="hi there"), "hi there")
        self.assertEqual(asyncio.run(lmql.run(q, s="hi there")), "hi there")

        async def inside():
            with self.assertRaises(RuntimeError) as cm:
                lmql.run_sync(q, s="x")
            self.assertIsInstance(cm.exception, lmql.LMQLError)
            self.assertIn("cannot be called synchronously from within an async context", str(cm.exception))
        asyncio.run(inside())

    # test_f.py::test_run_pos_args: positional arguments of lmql.run_sync bind in order
    def test_run_positional(self):
        source = '''lmql
        "Summarize this text: {t1}{t2}: [SUMMARY]" where len(TOKENS(SUMMARY)) < 4
        return SUMMARY
        '''
        r1 = lmql.run_sync(source, "This is ", "a test.", model=lmql.model("random", seed=123))
        r2 = lmql.run_sync(source, t1="This is ", t2="a test.", model=lmql.model("random", seed=123))
        self.assertEqual(r1, r2)

    # test_scoping.py::test_decode_clause_scoping: a keyword the query reads is its argument
    def test_decoder_argument_from_call(self):
        r = lmql.run_sync('''lmql
        sample(n=n)
            "Q: Hi {n}. A: [WHO]" where len(TOKENS(WHO)) < 4
        from
            lmql.model("random", seed=123)
        ''', n=2)
        self.assertEqual(len(r), 2)

    # model= and decoder= at call time (the query names neither)
    def test_call_options(self):
        q = lmql.query('"Hi[X]" where len(TOKENS(X)) < 3', is_async=False)
        r = q(model=RANDOM, decoder="sample", n=3)
        self.assertEqual(len(r), 3)
        self.assertTrue(all(isinstance(x, lmql.LMQLResult) for x in r))
        self.assertIsInstance(q(model="random"), lmql.LMQLResult)

    # queryargs/test_args.py, test_sync.py: a query that never needs its model (`from "chatgpt"`) runs,
    # as in LMQL, which opens a model at its first use; one that needs it fails with the model's error
    def test_model_needed_only_when_used(self):
        q = 'argmax\n    return s\nfrom\n    "chatgpt"\n'
        self.assertEqual(lmql.run_sync(q, s="hi"), "hi")
        with self.assertRaises(lmql.LMQLError) as cm:
            lmql.run_sync('argmax\n    "Hi[X]"\nfrom\n    "chatgpt"\n')
        self.assertIn("unknown model 'chatgpt'", str(cm.exception))
        self.assertEqual(cm.exception.kind, "model")
        with self.assertRaises(TypeError) as cm:
            lmql.run_sync(q)
        self.assertIn("Failed to resolve variable 's'", str(cm.exception))


if __name__ == "__main__":
    unittest.main()
