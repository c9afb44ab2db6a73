#!/usr/bin/env bash
# The DNS discovery's tests run a real DNS server: the dnsmasq binary, without the system service.
exec bash "$(dirname "$0")/ensure-debian.sh" /usr/sbin/dnsmasq dnsmasq-base
