#!/usr/bin/env bash
# The etcd registry's tests run a real etcd: Debian's etcd-server.
exec bash "$(dirname "$0")/ensure-debian.sh" /usr/bin/etcd etcd-server
