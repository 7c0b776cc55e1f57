#!/usr/bin/env python3
"""Prints the differential table for
src/regex_match.c (tests/unit/test_regex_match.c): patterns and subjects
below, every expected answer computed here by this python3's `re`. The
build writes it to build/regex_match.jsonl before the unit tests run.

A line is one JSON object: {"p": pattern, "f": flags, "s": subject, "match",
"fullmatch": group spans or null, "all": finditer's group spans (the first
is search's)};
spans are flat [start, end, ...] per group in characters, -1 for a group
that did not take part.  {"p", "f", "err": "python"} is a pattern Python
rejects; {"p", "f", "err": "unsupported"} one Python accepts and our engine
must refuse (a feature it lacks), never answer."""
import json, random, re, sys

I, M, S, A = re.I, re.M, re.S, re.A
POOL = ["", "a", "ab", "abc", "aaa", "abab", "xaby", "ba", "a\nb\n", "hello world", "foo bar  baz",
        "Hello World 42", "x=1, y=22, z=333", "café Über naïve", "日本語のテキスト", "ǅ ǆ Ǆ", "ſ s S K k K",
        "12ab34cd", "line1\nline2\nline3", "a.b.c", "2024-01-15", "[tag] (paren)",
        "The quick brown fox", "aaaaab", "abcabcabc", "Ünïcödé ǲ", "end\n", "a\x1cb\x1fc\x85d\u3000e"]

CASES = [
    # literals, classes, dot
    ("a", 0), ("ab", 0), ("b", 0), ("xyz", 0), (".", 0), ("a.c", 0), (".", S), ("a.b", S), ("[abc]", 0),
    ("[^abc]", 0), ("[a-z]+", 0), ("[A-Z][a-z]*", 0), ("[-a]", 0), ("[a-]", 0), ("[]a]", 0), ("[^]a]", 0),
    (r"[\]]", 0), (r"[\d.]+", 0), (r"[^\W\d]+", 0), (r"[\s,]+", 0), ("[à-ÿ]+", 0), ("[一-龥]+", 0),
    (r"\d+", 0), (r"\D+", 0), (r"\w+", 0), (r"\W+", 0), (r"\s+", 0), (r"\S+", 0), (r"\w+", A), (r"\d", A),
    (r"\x41", 0), (r"\u00e9", 0), (r"\t", 0), (r"\n", 0), (r"\.", 0), (r"\101", 0), (r"\0", 0),
    # anchors and boundaries
    ("^a", 0), ("a$", 0), ("^$", 0), ("^", M), ("$", M), ("^line", M), (r"\d$", M), ("b$", 0), ("b$", M),
    (r"\Aa", 0), (r"b\Z", 0), (r"\bfoo\b", 0), (r"\b\w", 0), (r"\B\w", 0), (r"\b", 0), (r"\B", 0),
    (r"\bé", 0), (r"o\b", 0), ("^.*$", 0), ("^.*$", M), ("(?m)^\\w+", 0), ("(?s).+", 0), ("(?i)hello", 0),
    # quantifiers
    ("a*", 0), ("a+", 0), ("a?", 0), ("a*?", 0), ("a+?", 0), ("a??", 0), ("a{2}", 0), ("a{1,2}", 0),
    ("a{2,}", 0), ("a{,2}", 0), ("a{1,2}?", 0), ("x{0}", 0), ("a{", 0), ("a{x}", 0), ("a{1,x}", 0),
    ("(ab)*", 0), ("(ab)+?", 0), ("(a|b)*c", 0), (".*b", 0), (".*?b", 0), ("(a*)*", 0), ("(a*)+", 0),
    ("(a|)*", 0), ("(a?)*?", 0), ("(|a)*", 0), ("(a*|b)*", 0), ("(?:a|ab)(?:c|bcd)", 0), ("a{0,3}?b", 0),
    # groups
    ("(a)(b)?", 0), ("(a)|(b)", 0), ("(?P<first>\\w+) (?P<second>\\w+)", 0), ("(?:a(b))+", 0),
    ("((a)|b)+", 0), ("(a(b(c)))", 0), ("(\\d+)-(\\d+)-(\\d+)", 0), ("(?P<k>\\w)=(?P<v>\\d+)", 0),
    ("(x)?y", 0), ("(a)|b", 0), ("()", 0), ("(?:)", 0), ("(?#comment)a", 0), ("(a)(?:b)(c)?", 0),
    # alternation order
    ("a|ab", 0), ("ab|a", 0), ("a|b|c", 0), ("|a", 0), ("a|", 0), ("(a|ab)(c|bcd)(d*)", 0),
    # backreferences and lookarounds
    (r"(a)\1", 0), (r"(\w)\1", 0), (r"(?P<c>.)(?P=c)", 0), (r"(a)|\1b", 0), (r"(\w+) \1", I),
    (r"a(?=b)", 0), (r"a(?!b)", 0), (r"(?<=a)b", 0), (r"(?<!a)b", 0), (r"(?<=ab|ba)\w", 0),
    (r"(?=(a))a", 0), (r"\w+(?=\d)", 0), (r"(?<=\d)\w", 0), (r"(?<=^)a", 0), (r"(?!a)\w+", 0),
    # ignorecase
    ("hello", I), ("[a-z]+", I), ("[A-Z]+", I), ("s", I), ("k", I), ("ǆ", I), ("é", I), ("[^a-z]+", I),
    ("ü", I), (r"\w", I), ("K", I|A), ("[k]", I), ("ſ", I), ("i", I), ("[α-ω]+", I), ("Σ", I),
    # a few of the tool-use and parsing shapes LMQL programs use
    (r"(\w+)\((.*?)\)", 0), (r"^\s*(\d+)\s*$", 0), (r"[^\w\s]", 0), (r"\s+", 0), (r"(?P<num>-?\d+(?:\.\d+)?)", 0),
    (r"\[(.*?)\]", 0), (r"(\w+)=(\w+)", 0), (r"[.!?]", 0), (r"^(.*?):(.*)$", M), (r"(\S+)\s*$", 0),
]
SUBJECTS = {
    r"(\w+)\((.*?)\)": ["calc(1+2) and f(x)", "no call", "g()"],
    r"(?P<num>-?\d+(?:\.\d+)?)": ["-3.5 and 42 and 1.", "x"],
    r"^(.*?):(.*)$": ["key: value\nother:x\nnone", "a:b:c"],
    r"(\w+) \1": ["hello HELLO world", "the the cat", "Ab ab"],
    "(?i)hello": ["HeLLo there", "nope"],
    r"(?<=ab|ba)\w": ["abc bad", "ba"],
}
UNSUPPORTED = [("(?i:a)b", 0), ("a*+", 0), ("(?>a)", 0), ("(a)?(?(1)b|c)", 0), (r"\N{LATIN SMALL LETTER A}", 0),
               ("a b", re.X), ("a{1001}", 0)]
PYERR = [("(", 0), (")", 0), ("[a", 0), ("*a", 0), ("a**", 0), (r"\1(a)", 0), ("(?P<n>a)(?P<n>b)", 0),
         (r"(a\1)", 0), ("[z-a]", 0), ("a{3,1}", 0), (r"\q", 0), ("(?<=a*)b", 0), ("(?P=x)", 0), ("x\\", 0),
         ("(?z)", 0), ("a(?i)b", 0)]

# Random patterns over the supported syntax (seeded, so the table is stable
# for one Python version): nesting, lookarounds, backreferences, lazy and
# counted repeats meet in combinations no hand-written list has.
ATOMS = [r"\1", r"(?P=n1)", "a", "b", "c", ".", r"\w", r"\d", r"\s", r"\W", "[ab]", "[^a]", "[a-c]", r"\b",
         r"\B", "^", "$", "é", "[é-ü]", "x", " "]
RANDOM_SUBJECTS = ["", "a", "ab", "abc", "aab", "ba", "a b", "abcabc", "xé ü", "a1 b2", "aaa", "cab\nab", " a ", "é"]

def gen(rnd, d=0):
    r = rnd.random()
    if d > 3 or r < 0.35:
        return rnd.choice(ATOMS)
    if r < 0.55:
        return gen(rnd, d + 1) + gen(rnd, d + 1)
    if r < 0.65:
        return gen(rnd, d + 1) + "|" + gen(rnd, d + 1)
    if r < 0.8:
        return "(" + rnd.choice(["", "?:", "?P<n%d>" % rnd.randint(0, 9)]) + gen(rnd, d + 1) + ")"
    if r < 0.83:
        return rnd.choice(["(?=", "(?!", "(?<=", "(?<!"]) + gen(rnd, d + 1) + ")"
    q = rnd.choice(["*", "+", "?", "{2}", "{1,3}", "{0,2}", "{2,}"]) + rnd.choice(["", "", "?"])
    return "(?:" + gen(rnd, d + 1) + ")" + q

def spans(m):
    if m is None:
        return None
    out = []
    for g in range(m.re.groups + 1):
        out += list(m.span(g))
    return out

out = sys.stdout
for p, f in CASES:
    rx = re.compile(p, f)
    for s in SUBJECTS.get(p, []) + POOL:
        rec = {"p": p, "f": f, "s": s, "match": spans(rx.match(s)),
               "fullmatch": spans(rx.fullmatch(s)), "all": [spans(m) for m in rx.finditer(s)]}
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
rnd = random.Random(2026)
for _ in range(400):
    p, f = gen(rnd), rnd.choice([0, 0, re.I, re.M, re.S])
    try:
        rx = re.compile(p, f)
    except re.error:
        out.write(json.dumps({"p": p, "f": f, "err": "python"}, ensure_ascii=False) + "\n")
        continue
    for s in rnd.sample(RANDOM_SUBJECTS, 4):
        rec = {"p": p, "f": f, "s": s, "match": spans(rx.match(s)), "fullmatch": spans(rx.fullmatch(s)),
               "all": [spans(m) for m in rx.finditer(s)]}
        out.write(json.dumps(rec, ensure_ascii=False) + "\n")
for p, f in UNSUPPORTED:
    re.compile(p, f)   # raises if Python rejects it: then it is no unsupported-feature case
    out.write(json.dumps({"p": p, "f": f, "err": "unsupported"}, ensure_ascii=False) + "\n")
for p, f in PYERR:
    try:
        re.compile(p, f)
        raise SystemExit(f"python accepts {p!r}")
    except re.error:
        pass
    out.write(json.dumps({"p": p, "f": f, "err": "python"}, ensure_ascii=False) + "\n")
