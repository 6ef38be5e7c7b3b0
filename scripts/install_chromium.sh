#!/usr/bin/env bash
# Chromium for the browser tests, from Debian/Ubuntu packages. Never downloads a browser build
# of its own. Without apt (macOS, no root) it says so loudly; the browser tests then skip with
# that reason, they never pass silently.
set -uo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "installing chromium from apt for the browser tests"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
        && exit 0
fi
echo "########################################################################"
echo "# WARNING: Chromium could not be installed (needs apt and root)."
echo "# Browser end-to-end tests will be SKIPPED. Install chromium yourself"
echo "# (e.g. 'sudo apt-get install chromium') and set SEARCHLIGHT_CHROMIUM."
echo "########################################################################"
exit 0
