#!/usr/bin/env bash
# Install what the build needs and fetch the pinned llama.cpp release.
# Idempotent: when everything is present it does no network work.
#
#   deps/llama/lib      llama.cpp + ggml shared libraries (CPU variants included)
#   deps/llama/include  the headers of the same release
#   deps/llama/vocab    llama.cpp's vocab-only test GGUFs
set -euo pipefail
cd "$(dirname "$0")/.."

NLC_VERSION=3.21.1
DEST=deps/llama
STAMP=$DEST/.complete-$NLC_VERSION

# Debian packages: compiler and build tools, git (to read headers out of the
# release bundle) and npm (to fetch the release packages).
need_pkgs=()
command -v cc >/dev/null 2>&1 || need_pkgs+=(gcc libc6-dev)
command -v make >/dev/null 2>&1 || need_pkgs+=(make)
command -v g++ >/dev/null 2>&1 || need_pkgs+=(g++)   # checks that lmql.h compiles as C++
command -v git >/dev/null 2>&1 || need_pkgs+=(git)
command -v pkg-config >/dev/null 2>&1 || need_pkgs+=(pkg-config)
command -v clang >/dev/null 2>&1 || need_pkgs+=(clang)
# libwebsockets: the WebSocket transport of serve-model and of the
# llama.cpp:PATH client (LMTP).
[ -f /usr/include/libwebsockets.h ] || need_pkgs+=(libwebsockets-dev)
command -v python3 >/dev/null 2>&1 || need_pkgs+=(python3)   # the server tests' WebSocket client
# the replicas test puts HAProxy in front of two servers (deploy/haproxy.cfg)
command -v haproxy >/dev/null 2>&1 || need_pkgs+=(haproxy)
# the typed-output property test's independent validator
python3 -c 'import jsonschema' >/dev/null 2>&1 || need_pkgs+=(python3-jsonschema)
# libstdc++ and libgcc_s come with gcc; llama.cpp's libraries need them at run time.
# npm fetches the release (its libraries, and the vocab files the tests use
# even when an installed llama.cpp is linked instead).
if [ ! -f "$STAMP" ]; then
  command -v npm >/dev/null 2>&1 || need_pkgs+=(npm)
fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "setup: missing Debian packages: ${need_pkgs[*]} (run as root or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${need_pkgs[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" ca-certificates >&2
fi

[ -f "$STAMP" ] && exit 0

echo "setup: fetching llama.cpp (node-llama-cpp $NLC_VERSION prebuilt, CPU)" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
( cd "$tmp" && npm pack --silent "@node-llama-cpp/linux-x64@$NLC_VERSION" "node-llama-cpp@$NLC_VERSION" >/dev/null )
mkdir -p "$tmp/bin" "$tmp/src"
tar xzf "$tmp/node-llama-cpp-linux-x64-$NLC_VERSION.tgz" -C "$tmp/bin"
tar xzf "$tmp/node-llama-cpp-$NLC_VERSION.tgz" -C "$tmp/src" package/llama/gitRelease.bundle
git clone -q --bare "$tmp/src/package/llama/gitRelease.bundle" "$tmp/bundle.git"

rm -rf "$DEST"
mkdir -p "$DEST/lib" "$DEST/include" "$DEST/vocab"
cp "$tmp"/bin/package/bins/linux-x64/lib*.so "$DEST/lib/"
rm -f "$DEST/lib/libllama-common.so"
for h in include/llama.h ggml/include/ggml.h ggml/include/ggml-cpu.h ggml/include/ggml-backend.h \
         ggml/include/ggml-alloc.h ggml/include/ggml-opt.h ggml/include/gguf.h; do
  git --git-dir="$tmp/bundle.git" show "HEAD:$h" > "$DEST/include/$(basename "$h")"
done
for v in llama-spm gpt-2 llama-bpe; do
  git --git-dir="$tmp/bundle.git" show "HEAD:models/ggml-vocab-$v.gguf" > "$DEST/vocab/ggml-vocab-$v.gguf"
done
git --git-dir="$tmp/bundle.git" rev-parse --short HEAD > "$DEST/COMMIT"
touch "$STAMP"
echo "setup: llama.cpp $(cat "$DEST/COMMIT") in $DEST" >&2
