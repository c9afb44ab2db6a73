#!/usr/bin/env bash
# The outbox's tests use the machine's PostgreSQL on 127.0.0.1:5432 (user postgres, trust, database
# `test`). This starts it, with the machine's own command, when nothing answers there, and creates the
# database when it is missing. Run by .ci/run before the tests, and by the tests themselves.
# (The log-tailing relay's tests start a cluster of their own with wal_level=logical instead.)
set -euo pipefail

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
  for _ in $(seq 1 100); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 0.1
  done
fi
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "postgresql did not answer on 127.0.0.1:5432" >&2
  exit 1
fi
if [ "$(psql -h 127.0.0.1 -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")" != "1" ]; then
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test" || true
fi
