#!/usr/bin/env bash
# The project's test command (README.md; .ci/run calls it). Fetches what the tests need, then:
#   scripts/check-fixtures.sh (every committed fixture is what its generator makes now),
#   cargo fmt --check, cargo clippy -D warnings (also on fuzz/), cargo deny, cargo test --release (unit and integration tests
#   against the real ONNX Runtime, model and MRI images; report pages opened in headless Chromium), tests/v2/run.sh
#   (tritonclient against the real server), scripts/rolling-update.sh (3 replicas behind nginx
#   replaced under wrk's load), scripts/check-azure.sh (the Azure YAML, scripts and routes,
#   offline), scripts/check-kubernetes.sh (the Kubernetes and KServe manifests, offline),
#   scripts/check-infra.sh (the ARM template of the private network, offline),
#   scripts/container-test.sh (the image, built and run).
set -euo pipefail

container=1
for arg in "$@"; do
  case "$arg" in
    --skip-container) container=0 ;;
    -h|--help)
      echo "Usage: scripts/test.sh [--skip-container]   (--skip-container: on machines with neither Docker nor root for podman)"
      exit 0 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --test-data
echo "== fixtures: each generator's output against the committed files (scripts/check-fixtures.sh)"
scripts/check-fixtures.sh

if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo fmt --check and cargo clippy on fuzz/ (its own workspace, which the two above do not see)"
cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
CARGO_TARGET_DIR=target cargo clippy --manifest-path fuzz/Cargo.toml --locked --all-targets -- -D warnings
echo "== cargo deny (licences, bans, duplicate versions, sources)"
command -v cargo-deny >/dev/null || cargo install cargo-deny --version 0.20.2 --locked
cargo deny --locked check bans licenses sources
echo "== browser for the page tests (Debian's chromium, playwright-core from npm)"
if ! command -v chromium >/dev/null; then
  if [[ $(id -u) -ne 0 ]]; then echo "the page tests need Debian's chromium: apt-get install chromium" >&2; exit 1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
    || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
fi
npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
echo "== cargo test"
cargo test --locked --release
echo "== Open Inference Protocol: Triton's own client (tests/v2)"
tests/v2/run.sh
echo "== Rolling update and crash under load: 3 replicas behind nginx (scripts/rolling-update.sh)"
scripts/rolling-update.sh --no-build --json target/rolling-update.json
echo "== Azure deployment checks"
scripts/check-azure.sh
echo "== Kubernetes and KServe manifest checks"
scripts/check-kubernetes.sh --require-server
echo "== ARM template checks (infra/)"
scripts/check-infra.sh
if ((container)); then
  echo "== container image"
  scripts/container-test.sh
fi
