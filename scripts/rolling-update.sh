#!/usr/bin/env bash
# Replicas replaced under load (scripts/rolling_update.py): 3 release servers behind nginx, steady
# load from wrk; a rolling update (SIGTERM, exit, restart, ready, one replica at a time) that must
# lose no request, then a SIGKILL that may lose only the killed replica's in-flight requests.
# The test command runs it with the light model; --model vgg16 runs the product's model.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/rolling-update.sh [--model squeezenet|vgg16] [--replicas N] [--connections N]
                                 [--before-seconds N] [--drain-ms N] [--json FILE] [--no-build]

  --model            squeezenet (default, quick) or vgg16 (the brain-tumour model)
  --replicas N       servers behind nginx (default 3)
  --connections N    wrk connections, the requests in flight (default 6)
  --before-seconds N steady load measured before the roll, the p99 baseline (default 8)
  --drain-ms N       each replica's SCORER_SHUTDOWN_DRAIN_MS (default 1000)
  --json FILE        also write the figures as JSON
  --no-build         use the existing target/release/scorer instead of cargo build --release

Installs Debian's nginx and wrk when missing (needs root or sudo), fetches the test data and
builds target/release/scorer. Exit 0 only when the roll lost no request with p99 within 2x the
baseline, and the kill lost only requests in flight at the killed replica.
USAGE
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
for tool in nginx wrk; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if ((${#missing[@]})); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "needs Debian's ${missing[*]}: apt-get install ${missing[*]}" >&2; exit 1; }
    sudo=(sudo)
  fi
  echo "== installing ${missing[*]} (Debian)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null ||
    { "${sudo[@]}" apt-get update -q >/dev/null &&
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
fi

build=1
args=()
for arg in "$@"; do
  if [[ "$arg" == --no-build ]]; then build=0; else args+=("$arg"); fi
done
scripts/setup.sh --test-data >/dev/null
# The test command passes --no-build: `cargo test --release` has just built target/release/scorer,
# and `cargo build` would build it again with other dependency features.
((build)) && cargo build --release --locked
exec python3 scripts/rolling_update.py ${args[@]+"${args[@]}"}
