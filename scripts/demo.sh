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
