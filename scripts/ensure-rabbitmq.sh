#!/usr/bin/env bash
# The RabbitMQ broker's tests use the machine's RabbitMQ on 127.0.0.1:5672 (guest/guest). This starts
# it, with the machine's own command, when nothing answers there. Run by .ci/run before the tests,
# and by the tests themselves (so a plain `npm test` works).
set -euo pipefail

answers() {
  rabbitmq-diagnostics -q check_port_connectivity >/dev/null 2>&1
}
if answers; then
  exit 0
fi
rabbitmq-server -detached
for _ in $(seq 1 120); do
  if answers; then
    exit 0
  fi
  sleep 0.5
done
echo "rabbitmq did not answer on 127.0.0.1:5672 (started with rabbitmq-server -detached)" >&2
exit 1
