"""
LMQL's Python interface on our engine (README.md, "From Python"): run from
the repository root with `PYTHONPATH=python python3 examples/hello_python.py`,
or anywhere after `make install-python`.
"""
import lmql


def word_count(text):
    # a Python helper the query calls (it runs here, in Python)
    return len(text.split())


@lmql.query(model=lmql.model("random", seed=7))
def packing_list(trip, n=3):
    '''lmql
    "Things to pack for {trip}:\n"
    items = []
    for i in range(n):
        "-[ITEM]\n" where STOPS_AT(ITEM, "\n") and len(TOKENS(ITEM)) < 5
        items.append(ITEM.strip())
    return {"items": items, "words": word_count(" ".join(items))}
    '''


@lmql.query
def greet(name):
    '''lmql
    "Hello {name}! [REPLY]" where len(TOKENS(REPLY)) < 6
    '''


summarize = lmql.F("Summarize {text} in one word: [WORD]", "len(TOKENS(WORD)) < 3",
                   model=lmql.model("random", seed=1))

result = packing_list("a hike")
print("items:", result["items"], "words:", result["words"])
print("summary:", repr(summarize(text="apples and pears")))

r = greet("Ann", model="local:llama.cpp:build/models/tiny-gpt2.gguf")
print("prompt:", repr(r.prompt))
print("variables:", r.variables)



@lmql.query(model="random")
def broken():
    '''lmql
    "Counting..."
    "{word_count(3)}"
    '''


try:
    broken()
except AttributeError as e:   # the helper's exception, with the query's position
    print("error:", type(e).__name__, "at line", e.line, "|", str(e).splitlines()[0])
