# shellcheck shell=bash
# Pinned, project-local Python virtual environments for the offline check scripts
# (check-azure.sh, check-kubernetes.sh, check-infra.sh). Sourced, not run.

# ensure_venv VENV REQUIREMENTS CONSTRAINTS [WHEEL_LIST...]
# Creates VENV, or creates it again when the pins or the interpreter ($PYTHON, default python3)
# changed: installs REQUIREMENTS under CONSTRAINTS, and downloads the hash-pinned wheels of each
# WHEEL_LIST, without their dependencies, into VENV/wheels (read as source, never installed).
ensure_venv() {
  local venv=$1 requirements=$2 constraints=$3 python=${PYTHON:-python3} stamp list
  shift 3
  stamp=$( (cat "$requirements" "$constraints" "$@"; "$python" -c 'import sys; print(sys.version)') |
    sha256sum | cut -d' ' -f1)
  [[ -x "$venv/bin/python" && "$(cat "$venv/.installed" 2>/dev/null)" == "$stamp" ]] && return 0
  echo "== creating $venv ($requirements${*:+; wheels: $*})"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  local pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
  "${pip[@]}" install -r "$requirements" -c "$constraints"
  for list in "$@"; do
    "${pip[@]}" download --no-deps --only-binary=:all: --require-hashes -r "$list" -d "$venv/wheels"
  done
  echo "$stamp" >"$venv/.installed"
}

# The one environment of check-kubernetes.sh and check-infra.sh (the same pins: both run checkov),
# so that neither rebuilds what the other made. Relative to the repository root.
manifest_venv() {
  ensure_venv .cache/manifest-venv tests/manifest-venv/requirements.txt tests/manifest-venv/constraints.txt \
    tests/kubernetes/kserve.txt tests/infra/sdk-wheels.txt
}
