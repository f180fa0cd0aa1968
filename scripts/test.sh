#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests (CLI, fixtures,
# properties, the classifier table, the audit log, the engine with real
# processes, the TUI in tmux, the native backends against real servers) and
# the benchmarks in test mode. Cargo builds everything;
# scripts/install-test-deps.sh installs tmux if it is missing, and
# scripts/test-env.sh starts the EC2, Docker and Kubernetes test servers
# (installing them the first time) while the tests build, and stops them at
# the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
env_dir="${OPSGATE_TEST_ENV:-$HOME/.cache/opsgate/test-env}"
mkdir -p "$env_dir"
trap './scripts/test-env.sh down "$env_dir"' EXIT
./scripts/test-env.sh up "$env_dir" >"$env_dir/up.out" 2>"$env_dir/up.log" &
servers=$!
cargo test --locked --all-targets --no-run
if ! wait "$servers"; then
    cat "$env_dir/up.log" >&2
    exit 1
fi
cat "$env_dir/up.log" >&2
# shellcheck disable=SC1091
source "$env_dir/env"
cargo test --locked --all-targets
cargo test --locked --doc
