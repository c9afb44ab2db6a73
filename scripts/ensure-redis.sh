#!/usr/bin/env bash
# The Redis limiters' tests use the machine's Redis on 127.0.0.1:6379. This starts it, with the
# machine's own command, when nothing answers there. Run by .ci/run before the tests, and by the
# tests themselves (so a plain `npm test` works).
set -euo pipefail

if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  exit 0
fi
mkdir -p /var/lib/redis /var/log/redis
redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
  --dir /var/lib/redis --logfile /var/log/redis/ci.log
for _ in $(seq 1 50); do
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    exit 0
  fi
  sleep 0.1
done
echo "redis did not answer on 127.0.0.1:6379" >&2
exit 1
