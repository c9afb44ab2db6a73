#!/usr/bin/env bash
# The metrics tests scrape a Weft process with a real Prometheus: Debian's prometheus.
exec bash "$(dirname "$0")/ensure-debian.sh" /usr/bin/prometheus prometheus
