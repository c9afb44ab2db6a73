#!/usr/bin/env bash
# Regenerates the bench's REST contract (checked in): proto/bench/v1/echo.proto → src/gen. The proto
# imports google/api/annotations.proto from the root `proto` module, which is not in this directory,
# so the root is assembled in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
export PATH="$root/node_modules/.bin:$PATH"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/root/google"
cp -r "$root/proto/google/api" "$tmp/root/google/api"
cp -r "$here/proto/." "$tmp/root/"
rm -rf "$here/src/gen"
(cd "$root" && buf generate "$tmp/root" --template "$here/buf.gen.yaml" -o "$here/src/gen")
