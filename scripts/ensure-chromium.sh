#!/usr/bin/env bash
# The browser tests drive Debian's Chromium over the DevTools protocol; nothing downloads a browser of its own.
exec bash "$(dirname "$0")/ensure-debian.sh" /usr/bin/chromium chromium
