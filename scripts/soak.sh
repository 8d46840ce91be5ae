#!/usr/bin/env bash
# Soak test (scripts/soak.py): the release server under a mixed good/bad load for a bounded time,
# reporting requests, answers by status and RSS over the run. Exit 0 only if good requests all got
# 200, bad ones their 4xx, and memory stayed within the bound.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'USAGE'
Usage: scripts/soak.sh [--seconds N] [--concurrency N] [--bad-share F] [--rss-growth-mb N]

  --seconds N        how long to run (default 600)
  --concurrency N    client threads (default 8)
  --bad-share F      fraction of bad requests (default 0.3)
  --rss-growth-mb N  allowed RSS growth after the warm-up (default 64)
USAGE
  exit 0
fi

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh --test-data >/dev/null
cargo build --release --locked
exec python3 scripts/soak.py "$@"
