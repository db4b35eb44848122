#!/usr/bin/env bash
# Runs every test of skiff: formatting, lints, unit, integration, system and contract
# tests. Installs what it needs first (as root on a fresh Debian machine).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT_DIR"

need_build_deps
need_test_tools

say "cargo fmt --check"
cargo fmt --all -- --check

say "cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --locked --no-fail-fast --failure-output final
else
    cargo test --locked --no-fail-fast
fi
