#!/usr/bin/env bash
# The `lmql` command as users see it: outputs, JSON shapes, exit codes and
# error messages. Run from the repository root: tests/cli.sh build/bin/lmql
set -u
LMQL=${1:-build/bin/lmql}
TINY=build/models/tiny-spm.gguf
pass=0; fail=0
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

ok()   { pass=$((pass + 1)); echo "ok $1"; }
bad()  { fail=$((fail + 1)); echo "not ok $1"; shift; printf '    %s\n' "$@"; }
# run NAME EXPECTED_EXIT ARGS... : stdout in $tmp/out, stderr in $tmp/err
run() {
  local name=$1 want=$2; shift 2
  "$LMQL" "$@" >"$tmp/out" 2>"$tmp/err" </dev/null; local rc=$?
  if [ $rc -eq "$want" ]; then ok "$name (exit $rc)"; else bad "$name" "exit $rc, wanted $want" "$(head -c 600 "$tmp/err")"; fi
}
contains() { if grep -qF -- "$3" "$2"; then ok "$1"; else bad "$1" "$2 lacks: $3" "$(head -c 600 "$2")"; fi; }
# json NAME JS-EXPR : evaluate a check on the parsed stdout (variable r)
json() {
  if node -e 'const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
              if (!(eval(process.argv[2]))) { console.error(JSON.stringify(r)); process.exit(1); }' "$tmp/out" "$2" 2>"$tmp/jserr"; then
    ok "$1"
  else bad "$1" "check failed: $2" "$(head -c 600 "$tmp/jserr")"; fi
}

SEED="argmax \"Say 'this is a test':[RESPONSE]\" from \"local:llama.cpp:$TINY\" where len(TOKENS(RESPONSE)) < 10"

run "seed query --stats" 0 run -q --stats -e "$SEED"
contains "--stats prints counts on stderr" "$tmp/err" "tokens generated"
if grep -qE 'stats: [1-9][0-9]* tokens generated, [0-9]+ evaluated .* [1-9][0-9]* model calls' "$tmp/err"; then
  ok "--stats counts are positive"; else bad "--stats counts are positive" "$(cat "$tmp/err")"; fi
run "seed query --json" 0 run --json -e "$SEED"
json "seed query result shape" 'Object.keys(r).join() == "prompt,variables,distribution_variable,distribution_values"'
json "seed query prompt is text + RESPONSE" 'r.prompt == "Say '"'"'this is a test'"'"':" + r.variables.RESPONSE'
json "seed query RESPONSE non-empty" 'typeof r.variables.RESPONSE == "string" && r.variables.RESPONSE.length > 0'
json "no distribution" 'r.distribution_variable === null && r.distribution_values === null'
cp "$tmp/out" "$tmp/first"
run "seed query repeats" 0 run --json -e "$SEED"
if cmp -s "$tmp/out" "$tmp/first"; then ok "same query, same result"; else bad "same query, same result" "$(cat "$tmp/out")"; fi

printf '%s\n' 'argmax' '    "Say '"'"'this is a test'"'"':[RESPONSE]"' 'from' "    \"local:llama.cpp:$TINY\"" 'where' '    len(TOKENS(RESPONSE)) < 10' > "$tmp/seed.lmql"
run "query from a file (multi-line form)" 0 run --json "$tmp/seed.lmql"
if cmp -s "$tmp/out" "$tmp/first"; then ok "file form gives the inline result"; else bad "file form gives the inline result" "$(cat "$tmp/out")"; fi

run "plain output" 0 run -e "$SEED"
contains "plain output shows the prompt" "$tmp/out" "Say 'this is a test':"
contains "plain output shows the variable" "$tmp/out" "RESPONSE: \""

run "--model overrides from" 0 run --json --model random -e "$SEED"
json "random model answers under the bound" 'r.variables.RESPONSE.length > 0'
run "bare .gguf path" 0 run --json -e "argmax \"Hi[X]\" from \"$TINY\" where len(TOKENS(X)) < 3"
run "query argument binds a free variable" 0 run --json --name Bob --n 3 -e 'argmax "Hi {name}, {n + 1}:[X]" from "random" where len(TOKENS(X)) < 3'
json "argument text and number" 'r.prompt.startsWith("Hi Bob, 4:")'
run "lmql.model(...) with Llama parameters" 0 run --json -e "argmax \"A[X]\" from lmql.model(\"local:llama.cpp:$TINY\", n_ctx=1024, n_threads=1) where len(TOKENS(X)) < 4"
run "seeded random model" 0 run --json -e 'argmax "A[X]" from lmql.model("random", seed=3) where len(TOKENS(X)) < 6'
cp "$tmp/out" "$tmp/r3"
run "seeded random model again" 0 run --json -e 'argmax "A[X]" from lmql.model("random", seed=3) where len(TOKENS(X)) < 6'
if cmp -s "$tmp/out" "$tmp/r3"; then ok "random: same seed, same result"; else bad "random: same seed, same result"; fi
run "STOPS_AT ends the value at the phrase" 0 run --json -e 'argmax "A[X]" from lmql.model("random", seed=1) where STOPS_AT(X, "e") and len(TOKENS(X)) < 40'
json "STOPS_AT value" '!r.variables.X.slice(0, -1).includes("e")'
run "sample n=3 gives a list" 0 run --json -e 'sample(n=3, temperature=0.8) "A[X]" from "random" where len(TOKENS(X)) < 3'
json "three results" 'Array.isArray(r) && r.length == 3 && r.every(x => x.prompt.startsWith("A"))'
run "return value" 0 run --json -e 'argmax "A[X]" where len(TOKENS(X)) < 3
    return len(X) > 0
from "random"'
json "return prints the value" 'r === true'

run "syntax error" 2 run -e 'argmax "Hi [X" from "random"'
contains "syntax error has a position" "$tmp/err" "<expr>:1:"
run "syntax error in a file" 2 run "$tmp/seed.lmql" -e 'x'
printf 'argmax\n    "Q: [A]"\nfrom "random"\nwhere len(TOKENS(A)) <= 3\n' > "$tmp/le.lmql"
run "<= in where is rejected" 2 run "$tmp/le.lmql"
contains "<= error names the file and line" "$tmp/err" "le.lmql:4:"
contains "<= error says why" "$tmp/err" "not supported"
# Every where clause is checked when the query is compiled, before any model
# is loaded: in a branch that never runs, in a query function, with a `from`
# that names no file (the error must be the where clause's, not the model's).
printf 'argmax\n    if False:\n        "Q: [A]" where len(TOKENS(A)) <= 3\n    "R: [B]"\nfrom "local:llama.cpp:/nonexistent/model.gguf"\n' > "$tmp/dead.lmql"
run "where in a branch that never runs is rejected" 2 run "$tmp/dead.lmql"
contains "dead-branch where error has its line:col" "$tmp/err" "dead.lmql:3:24:"
contains "dead-branch where error says why" "$tmp/err" "not supported"
printf '@lmql.query\ndef q():\n    \x27\x27\x27lmql\n    "[Y]" where INT(Y, 2)\n    \x27\x27\x27\nargmax\n    "R: [B]"\nfrom "local:llama.cpp:/nonexistent/model.gguf"\n' > "$tmp/qfn.lmql"
run "where of an unused query function is rejected" 2 run "$tmp/qfn.lmql"
contains "query-function where error has its position" "$tmp/err" "qfn.lmql:4:"
contains "query-function where error says why" "$tmp/err" "INT() takes one variable"
# Errors found only by compiling a clause for a hole come before the model
# too: a comparison on the hole that is no constraint, the type regex of a
# hole, and both in branches that never run.
printf 'argmax\n    if False:\n        "Q: [A]"\n    "R: [B]"\nfrom "local:llama.cpp:/nonexistent/model.gguf"\nwhere len(A + "x") < 3 or len(TOKENS(B)) < 2\n' > "$tmp/deadcmp.lmql"
run "an unsupported comparison on a hole that never runs is rejected" 2 run "$tmp/deadcmp.lmql"
contains "unsupported comparison has its line:col" "$tmp/err" "deadcmp.lmql:6:7:"
contains "unsupported comparison names the hole" "$tmp/err" "on A is not supported"
printf 'argmax\n    if False:\n        "Q: [A: r\x27(ab\x27]"\n    "R: [B]"\nfrom "local:llama.cpp:/nonexistent/model.gguf"\n' > "$tmp/deadre.lmql"
run "a bad type regex on a hole that never runs is rejected" 2 run "$tmp/deadre.lmql"
contains "bad type regex has its line" "$tmp/err" "deadre.lmql:3:"
contains "bad type regex says why" "$tmp/err" "bad regex"
run "a value that is no string for X == ... is an error" 2 run -e 'argmax "a[X]" from "random" where X == 1'
contains "X == 1 says what is wrong" "$tmp/err" "needs a string, not int"
run "chained comparison is rejected" 2 run -e 'argmax "Q: [A]" from "random" where 1 < len(TOKENS(A)) < 3'
contains "chained comparison message" "$tmp/err" "more than one operator"
run "unknown decoder argument" 2 run -e 'argmax(foo=1) "Q: [A]" from "random"'
contains "unknown decoder argument message" "$tmp/err" "Unknown decoder argument: foo"
run "missing model file" 1 run -e 'argmax "Q: [A]" from "local:llama.cpp:/nonexistent/m.gguf"'
contains "missing model cause" "$tmp/err" "cannot open model file"
printf 'lmgg\001\000\000\000' > "$tmp/old.bin"
run "pre-GGUF .bin model" 1 run -e "argmax \"Q: [A]\" from \"local:llama.cpp:$tmp/old.bin\""
contains "pre-GGUF says convert" "$tmp/err" "convert"
run "unknown llama.cpp parameter" 1 run -e "argmax \"Q: [A]\" from lmql.model(\"local:llama.cpp:$TINY\", n_ctxx=5)"
contains "unknown parameter lists the valid ones" "$tmp/err" "n_ctx, n_batch"
LMQL_DEFAULT_MODEL= run "no model anywhere" 1 run -e '"Q: [A]" where len(TOKENS(A)) < 2'
contains "no-model message says how" "$tmp/err" "LMQL_DEFAULT_MODEL"
LMQL_DEFAULT_MODEL=random run "LMQL_DEFAULT_MODEL is used" 0 run --json -e '"Q: [A]" where len(TOKENS(A)) < 2'
run "context overflow" 1 run -e "argmax \"{'word ' * 400}[A]\" from lmql.model(\"local:llama.cpp:$TINY\", n_ctx=256) where len(TOKENS(A)) < 2"
contains "context overflow cause" "$tmp/err" "n_ctx"
run "script error" 1 run -e 'argmax "Q: {1 // 0}[A]" from "random"'
contains "script error cause" "$tmp/err" "division"
run "no query" 2 run
run "unknown command" 2 frobnicate
run "--version" 0 --version

# serve-model as LMQL's users call it
run "serve-model --help" 0 serve-model --help
contains "--help lists the llama.cpp parameters with defaults" "$tmp/out" "--n_ctx            2048"
contains "--help lists --cuda" "$tmp/out" "--cuda"
for opt in dtype loader layout; do
  run "serve-model --$opt is LMQL's transformers option" 2 serve-model "llama.cpp:$TINY" "--$opt" x
  contains "--$opt says what to do instead" "$tmp/err" "transformers backend;"
done
run "a Python-style boolean parameter" 0 run --json -e "argmax \"A[X]\" from lmql.model(\"local:llama.cpp:$TINY\", verbose=False, use_mmap=\"True\", cuda=True) where len(TOKENS(X)) < 3"
contains "cuda on a CPU-only llama.cpp warns and runs on the CPU" "$tmp/err" "no GPU backend"

echo "cli: $pass passed, $fail failed"
