#!/usr/bin/env bash
# Run the unit test programs, the CLI checks and the server tests from the
# repository root; print one total line `unit: N passed, M failed` and fail
# if anything did.
set -u
build=$1; shift
pass=0; fail=0

# tally NAME RC OUTPUT: add a suite's `name: N passed, M failed` line to the
# totals; a suite without that line, or failing with 0 failures, counts as one failure.
tally() {
  local name=$1 rc=$2 out=$3 line p f
  # failures with their indented details
  echo "$out" | awk '/^(not ok|FAIL)/ {p = 1; print; next} /^    / {if (p) print; next} {p = 0}' | head -60
  line=$(echo "$out" | grep -E '^[a-z0-9_-]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "$out" | tail -20
    echo "$name: crashed or printed no summary (exit $rc)"
    fail=$((fail + 1)); return
  fi
  echo "$line"
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')
  pass=$((pass + p)); fail=$((fail + f))
  if [ "$rc" -ne 0 ] && [ "$f" = 0 ]; then fail=$((fail + 1)); echo "$name: exit $rc"; fi
}

for t in "$@"; do
  out=$("$t" 2>&1); tally "$(basename "$t")" $? "$out"
done
out=$(bash tests/cli.sh "$build/bin/lmql" 2>&1); tally cli.sh $? "$out"
# The LMTP server end to end, and attacks on the server, the client and the
# CLI (each file starts its own servers on free ports).
for t in tests/serve/test_*.py; do
  out=$(python3 "$t" "$build/bin/lmql" 2>&1); tally "$(basename "$t")" $? "$out"
done
# Typed output against an independent JSON Schema validator.
for t in tests/typed/test_*.py; do
  out=$(python3 "$t" "$build/bin/lmql" 2>&1); tally "$(basename "$t")" $? "$out"
done
# The Python package (python/lmql) over liblmql.so, on the random and tiny
# models. Not with a sanitizer build's library: Python would have to load
# the sanitizer's runtime before it.
if ! ldd "$build/lib/liblmql.so" 2>/dev/null | grep -q 'libasan\|libubsan'; then
  out=$(python3 tests/python/run.py "$build" 2>&1); tally python $? "$out"
fi
# lmql-maskbench's protocol and the MaskBench driver.
out=$(python3 tests/maskbench.py "$build" 2>&1); tally maskbench.py $? "$out"
label=unit; [ "$build" != build ] && label=${build#build-}
echo "$pass $fail" > "$build/test-summary"
echo "$label: $pass passed, $fail failed"
[ "$fail" = 0 ]
