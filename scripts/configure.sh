#!/usr/bin/env bash
# Choose the llama.cpp to link and check that its API is the one this project
# is written against. Writes build/config.mk.
#   LLAMA_PREFIX=/opt/llama   an installed llama.cpp (include/, lib/)
#   pkg-config llama          an installed llama.cpp found by pkg-config
#   otherwise                 the pinned release fetched by setup.sh into deps/llama
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/config.mk
mkdir -p build

if [ -n "${LLAMA_PREFIX:-}" ]; then
  src="LLAMA_PREFIX=$LLAMA_PREFIX"
  cflags="-I$LLAMA_PREFIX/include"
  libs="-L$LLAMA_PREFIX/lib -lllama -lggml -lggml-base -Wl,-rpath,$LLAMA_PREFIX/lib"
  bundled=0
elif pkg-config --exists llama 2>/dev/null; then
  src="pkg-config llama $(pkg-config --modversion llama)"
  cflags="$(pkg-config --cflags llama)"
  libdir="$(pkg-config --variable=libdir llama)"
  libs="$(pkg-config --libs llama) -lggml -lggml-base -Wl,-rpath,$libdir"
  bundled=0
else
  src="bundled release $(cat deps/llama/COMMIT 2>/dev/null || echo '?') in deps/llama"
  cflags="-Ideps/llama/include"
  libs="-Lbuild/lib -l:libllama.v0.4.0.so -l:libggml.v0.4.0.so -l:libggml-base.so -Wl,-rpath,'\$\$ORIGIN/../lib'"
  bundled=1
fi

# The API check: a program that touches every llama.cpp entry point and struct
# field the backend relies on must compile and link.
check=build/llama-api-check
cat > $check.c <<'C'
#include <llama.h>
#include <ggml-backend.h>
#include <gguf.h>
int main(void) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_context_params cp = llama_context_default_params();
    mp.vocab_only = 1; mp.progress_callback = 0; cp.kv_unified = 1; cp.n_seq_max = 2;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
    llama_memory_t mem = llama_get_memory(0);
    (void)llama_memory_seq_rm(mem, 0, 0, -1); llama_memory_seq_cp(mem, 0, 1, -1, -1);
    (void)llama_memory_seq_pos_max(mem, 0);
    (void)llama_model_load_from_file; (void)llama_init_from_model; (void)llama_model_get_vocab;
    (void)llama_vocab_n_tokens; (void)llama_tokenize; (void)llama_token_to_piece; (void)llama_detokenize;
    (void)llama_vocab_is_eog; (void)llama_vocab_get_add_bos; (void)llama_decode; (void)llama_get_logits_ith;
    (void)llama_batch_init; (void)ggml_backend_load_all_from_path; (void)gguf_init_from_file;
    (void)mp; (void)cp;
    return 0;
}
C
if [ "$bundled" = 1 ]; then
  mkdir -p build/lib
  cp -p deps/llama/lib/*.so build/lib/
fi
if ! err=$(cc -std=c11 $cflags $check.c -o $check ${libs//\$\$/\$} 2>&1); then
  echo "configure: the llama.cpp from $src does not have the API this project needs" >&2
  echo "configure: (written against llama.cpp release 80fb11a, node-llama-cpp 3.21.1); compiler said:" >&2
  echo "$err" | head -20 >&2
  echo "configure: unset LLAMA_PREFIX / remove llama.pc from PKG_CONFIG_PATH to use the bundled release" >&2
  exit 1
fi
rm -f $check $check.c
# libwebsockets (Debian's libwebsockets-dev), installed by setup.sh; a
# checkout set up before it was needed gets it here.
if ! pkg-config --exists libwebsockets; then
  scripts/setup.sh
  pkg-config --exists libwebsockets || { echo "configure: libwebsockets not found (apt-get install libwebsockets-dev)" >&2; exit 1; }
fi
ws_cflags=$(pkg-config --cflags libwebsockets)
ws_libs=$(pkg-config --libs libwebsockets)
cat > $out.tmp <<MK
# written by scripts/configure.sh: llama.cpp from $src
LLAMA_CFLAGS = $cflags
LLAMA_LIBS = $libs
LLAMA_BUNDLED = $bundled
WS_CFLAGS = $ws_cflags
WS_LIBS = $ws_libs
MK
mv $out.tmp $out
echo "configure: llama.cpp from $src" >&2
