#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (/usr/bin/chromium) over the DevTools protocol. This
# installs it from Debian's packages when it is missing; nothing downloads a browser of its own.
# Run by .ci/run before the tests, and by the browser tests themselves (so a plain `npm test` works).
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "chromium is missing; install it as root: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
/usr/bin/chromium --version
