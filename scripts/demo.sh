#!/usr/bin/env bash
# Run the examples (make demo).
set -euo pipefail
cd "$(dirname "$0")/.."
LMQL=build/bin/lmql
show() { printf '\n\033[1m$ %s\033[0m\n' "$*"; "$@"; }
show $LMQL run --json -e "argmax \"Say 'this is a test':[RESPONSE]\" from \"local:llama.cpp:build/models/tiny-spm.gguf\" where len(TOKENS(RESPONSE)) < 10"
show $LMQL run examples/seed.lmql
show $LMQL run --json examples/list.lmql
show $LMQL run examples/branch.lmql --topic "tiny models"
show $LMQL run --json examples/constraints.lmql
show $LMQL run examples/json.lmql
show $LMQL run --json examples/dataclass.lmql

# The model server and a query through it. The seed uses port 8080; when
# something else holds it, the server takes a free port and the query names it.
port=8080
if (exec 3<>/dev/tcp/127.0.0.1/8080) 2>/dev/null; then port=0; fi
out=$(mktemp)
$LMQL serve-model llama.cpp:build/models/tiny-spm.gguf --n_ctx 1024 --port $port >"$out" &
srv=$!
trap 'kill $srv 2>/dev/null || true; rm -f "$out"' EXIT
for _ in $(seq 100); do grep -q serving "$out" && break; sleep 0.1; done
printf '\n\033[1m$ %s\033[0m\n%s\n' "lmql serve-model llama.cpp:build/models/tiny-spm.gguf --n_ctx 1024 &" "$(cat "$out")"
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$out")
if [ "$port" = 8080 ]; then
  show $LMQL run -e "argmax \"Say 'this is a test':[RESPONSE]\" from \"llama.cpp:build/models/tiny-spm.gguf\" where len(TOKENS(RESPONSE)) < 10"
else
  show $LMQL run -e "argmax \"Say 'this is a test':[RESPONSE]\" from lmql.model(\"llama.cpp:build/models/tiny-spm.gguf\", endpoint=\"127.0.0.1:$port\") where len(TOKENS(RESPONSE)) < 10"
fi
kill -TERM $srv
wait $srv   # its exit status (0 after SIGTERM) is the demo's
