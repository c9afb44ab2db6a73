#!/usr/bin/env bash
# The DNS discovery's tests run a real DNS server: Debian's dnsmasq (/usr/sbin/dnsmasq), each test
# file starting its own on a free loopback port. This installs the binary from Debian's packages when
# it is missing; it never starts or enables the system service. Run by .ci/run before the tests, and
# by the tests themselves (so a plain `npm test` works).
set -euo pipefail

if [ -x /usr/sbin/dnsmasq ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "dnsmasq is missing; install it as root: apt-get update && apt-get install -y dnsmasq-base" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq dnsmasq-base >/dev/null
/usr/sbin/dnsmasq --version | head -n 1
