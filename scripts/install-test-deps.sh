#!/usr/bin/env bash
# Installs what the tests need beyond cargo: tmux, for the end-to-end test
# of the terminal UI (tests/tui_tmux.rs). Does nothing when it is there.
set -euo pipefail
if command -v tmux >/dev/null 2>&1; then
    exit 0
fi
echo "installing tmux (for tests/tui_tmux.rs)" >&2
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
fi
if command -v apt-get >/dev/null 2>&1; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq tmux
else
    echo "no apt-get: install tmux by hand" >&2
    exit 1
fi
