#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests (CLI, fixtures,
# properties, the classifier table, the audit log, the engine with real
# processes, the TUI in tmux) and the benchmarks in test mode. Cargo builds
# everything; scripts/install-test-deps.sh installs tmux if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo test --locked --all-targets
cargo test --locked --doc
