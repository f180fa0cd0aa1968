#!/usr/bin/env bash
# Measures clean and incremental build times, peak memory and sizes, the way
# docs/performance.md reports them. Works on a throw-away clone and target
# dir under a temporary directory, so the working tree and the warm cache are
# untouched. Takes a few minutes on 2 cores.
#
#   ./scripts/measure-build.sh            # this project's dev profile
#   ./scripts/measure-build.sh --default  # also cargo's default dev profile
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

measure() { # label dir target-dir command...
  local label=$1 dir=$2 target=$3
  shift 3
  (cd "$dir" && /usr/bin/time -f "$label: wall %es, peak RSS %M kB" \
    env CARGO_TARGET_DIR="$target" "$@" >"$work/$label.log" 2>&1) || { cat "$work/$label.log"; exit 1; }
  tail -n 1 "$work/$label.log"
}

git clone -q "$repo" "$work/src"
measure clean-build "$work/src" "$work/t1" cargo build
echo "target dir: $(du -sh "$work/t1" | cut -f1), binary: $(stat -c %s "$work/t1/debug/opsgate") bytes"
touch "$work/src/src/core/classify/classifier.rs"
measure incremental-lib "$work/src" "$work/t1" cargo build
touch "$work/src/src/main.rs"
measure incremental-main "$work/src" "$work/t1" cargo build
measure test-build "$work/src" "$work/t1" cargo test --no-run
echo "target dir after the test build: $(du -sh "$work/t1" | cut -f1)"
touch "$work/src/src/core/classify/classifier.rs"
measure incremental-test-build "$work/src" "$work/t1" cargo test --no-run

if [[ "${1:-}" == "--default" ]]; then
  git clone -q "$repo" "$work/plain"
  # Drop the profile sections: cargo's default dev profile.
  sed -i '/^# Debug info for our own code/,$d' "$work/plain/Cargo.toml"
  measure default-profile-clean-build "$work/plain" "$work/t2" cargo build
  echo "target dir: $(du -sh "$work/t2" | cut -f1), binary: $(stat -c %s "$work/t2/debug/opsgate") bytes"
  touch "$work/plain/src/main.rs"
  measure default-profile-incremental-main "$work/plain" "$work/t2" cargo build
fi
