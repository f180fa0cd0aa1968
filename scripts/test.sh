#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests (CLI, fixtures,
# properties, the classifier table, the audit log, the engine with real
# processes, the TUI in tmux, the native backends against real servers) and
# the benchmarks in test mode. Cargo builds everything;
# scripts/install-test-deps.sh installs tmux if it is missing, and
# scripts/test-env.sh starts the EC2, Docker and Kubernetes test servers
# (installing them the first time) and stops them at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
env_dir="${OPSGATE_TEST_ENV:-$HOME/.cache/opsgate/test-env}"
trap './scripts/test-env.sh down "$env_dir"' EXIT
env_file=$(./scripts/test-env.sh up "$env_dir")
# shellcheck disable=SC1090
source "$env_file"
cargo test --locked --all-targets
cargo test --locked --doc
