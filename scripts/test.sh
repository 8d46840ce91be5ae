#!/usr/bin/env bash
# The project's test command (README.md; .ci/run calls it). Fetches what the tests need, then
# checks formatting and lints and runs every test against the real ONNX Runtime and model.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  echo "Usage: scripts/test.sh   (setup, cargo fmt --check, cargo clippy -D warnings, cargo test --release)"
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --test-data

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --release
