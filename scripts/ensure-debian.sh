#!/usr/bin/env bash
# Installs a Debian package when the binary the tests need from it is missing:
#   scripts/ensure-debian.sh <binary path> <package>
# It never starts or enables a system service: each test starts its own process on loopback. The
# ensure-<tool>.sh scripts name what each test needs; .ci/run calls them before the tests, and the
# tests call them too (so a plain `npm test` works).
set -euo pipefail

binary="$1"
package="$2"
if [ -x "$binary" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "$binary is missing; install it as root: apt-get update && apt-get install -y $package" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "$package" >/dev/null
"$binary" --version | head -n 1
