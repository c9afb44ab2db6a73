#!/usr/bin/env bash
# Regenerates the test contracts (checked in): test/proto → test/gen (orders.v1 and orders.v2) and
# test/proto-next → test/gen/next (orders.v1 "v1.1": the same package plus a field and an enum value,
# for the API evolution tests). The test protos import google/api/annotations.proto and
# weft/v1/options.proto from the root `proto` module, which is not in their directory, so each root
# is assembled in a temporary directory.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
export PATH="$root/node_modules/.bin:$PATH"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
rm -rf "$here/gen"
for pair in proto:gen proto-next:gen/next; do
  src="${pair%%:*}"
  out="${pair##*:}"
  rm -rf "$tmp/root"
  mkdir -p "$tmp/root/google"
  cp -r "$root/proto/google/api" "$tmp/root/google/api"
  cp -r "$root/proto/weft" "$tmp/root/weft"
  cp -r "$here/$src/." "$tmp/root/"
  (cd "$root" && buf generate "$tmp/root" --template "$here/buf.gen.yaml" -o "$here/$out")
done
