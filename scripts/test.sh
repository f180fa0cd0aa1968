#!/usr/bin/env bash
# Runs the whole test suite: unit tests, integration tests (CLI, fixtures,
# properties, the classifier table) and the benchmarks in test mode.
# Everything the tests need is built by cargo; nothing else is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
cargo test --locked --doc
