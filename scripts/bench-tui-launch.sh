#!/usr/bin/env bash
# Time from launching the real `opsgate tui` binary (release build) in a
# tmux pane to its first frame on screen, polled every 2 ms with
# capture-pane. Prints the median and max of N runs (default 20).
# Usage: scripts/bench-tui-launch.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/opsgate/target}"
cargo build --release --quiet
bin="$CARGO_TARGET_DIR/release/opsgate"
log="$(mktemp -d)/audit.jsonl"
times=()
for i in $(seq "$n"); do
    session="opsgate-launch-$$-$i"
    start=$(date +%s%N)
    tmux new-session -d -s "$session" -x 160 -y 48 "$bin --audit-log $log tui --as bench plans/demo-local.yaml; sleep 5"
    until tmux capture-pane -p -t "$session" 2>/dev/null | grep -q "opsgate · bench"; do
        sleep 0.002
    done
    end=$(date +%s%N)
    tmux kill-session -t "$session"
    times+=($(( (end - start) / 1000000 )))
done
sorted=($(printf '%s\n' "${times[@]}" | sort -n))
echo "launch to first frame, real binary in tmux, $n runs: median ${sorted[$((n / 2))]} ms, max ${sorted[$((n - 1))]} ms (target <= 150 ms)"
