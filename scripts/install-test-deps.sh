#!/usr/bin/env bash
# Installs what the tests need beyond cargo, from Debian packages, when it
# is missing: tmux, for the end-to-end test of the terminal UI
# (tests/tui_tmux.rs), and promtool (in Debian's `prometheus` package), which
# checks and unit-tests the alert rules (tests/deploy.rs). Does nothing
# when both are there.
set -euo pipefail
missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
echo "installing ${missing[*]} (for the tests)" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq
    # --no-install-recommends: promtool needs nothing else of the server.
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
    echo "no apt-get: install ${missing[*]} by hand" >&2
    exit 1
fi
