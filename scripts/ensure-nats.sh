#!/usr/bin/env bash
# The NATS brokers' tests use the machine's NATS server with JetStream on 127.0.0.1:4222. This starts
# it, with the machine's own command, when nothing answers there. Run by .ci/run before the tests,
# and by the tests themselves (so a plain `npm test` works).
set -euo pipefail

answers() {
  # a NATS server greets every connection with an INFO line
  timeout 1 bash -c 'exec 3<>/dev/tcp/127.0.0.1/4222 && head -c 4 <&3' 2>/dev/null | grep -q INFO
}

if answers; then
  exit 0
fi
mkdir -p /var/lib/nats-server
start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
  -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
for _ in $(seq 1 50); do
  if answers; then
    exit 0
  fi
  sleep 0.1
done
echo "nats-server did not answer on 127.0.0.1:4222 (see /var/log/nats-server.log)" >&2
exit 1
