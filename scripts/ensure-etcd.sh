#!/usr/bin/env bash
# The etcd registry's tests run a real etcd: Debian's etcd-server (/usr/bin/etcd). This installs it
# from Debian's packages when it is missing. Run by .ci/run before the tests, and by the tests
# themselves (so a plain `npm test` works).
set -euo pipefail

if [ -x /usr/bin/etcd ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "etcd is missing; install it as root: apt-get update && apt-get install -y etcd-server" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq etcd-server >/dev/null
/usr/bin/etcd --version
