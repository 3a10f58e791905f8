#!/usr/bin/env sh
# Builds the patched SGLang image for the pinned release in sglang-patch/SGLANG_VERSION.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
version=$(cat "$here/SGLANG_VERSION")
exec docker build --build-arg "SGLANG_VERSION=$version" -t "microturn/sglang-patch:$version" "$here" "$@"
