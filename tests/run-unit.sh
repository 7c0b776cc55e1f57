#!/usr/bin/env bash
# Run the unit test programs and the CLI checks from the repository root;
# print one total line `unit: N passed, M failed` and fail if anything did.
set -u
build=$1; shift
pass=0; fail=0; broken=()
for t in "$@"; do
  out=$("$t" 2>&1); rc=$?
  echo "$out" | grep -E '^(not ok|FAIL)' | head -40
  line=$(echo "$out" | grep -E '^[a-z_-]+: [0-9]+ passed, [0-9]+ failed$' | tail -1)
  if [ -z "$line" ]; then
    echo "$out" | tail -20
    echo "$(basename "$t"): crashed or printed no summary (exit $rc)"
    fail=$((fail + 1)); broken+=("$t"); continue
  fi
  echo "$line"
  p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')
  pass=$((pass + p)); fail=$((fail + f))
  [ $rc -ne 0 ] && [ "$f" = 0 ] && { fail=$((fail + 1)); broken+=("$t"); echo "$(basename "$t"): exit $rc"; }
done
out=$(bash tests/cli.sh "$build/bin/lmql" 2>&1); rc=$?
echo "$out" | grep -E '^(not ok|FAIL)'
line=$(echo "$out" | tail -1)
echo "$line"
p=$(echo "$line" | sed -E 's/.*: ([0-9]+) passed.*/\1/'); f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed/\1/')
pass=$((pass + ${p:-0})); fail=$((fail + ${f:-1}))
label=unit; [ "$build" != build ] && label=${build#build-}
echo "$pass $fail" > "$build/test-summary"
echo "$label: $pass passed, $fail failed"
[ "$fail" = 0 ]
