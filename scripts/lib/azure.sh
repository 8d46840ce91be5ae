# shellcheck shell=bash
# Helpers shared by the Azure scripts (acr-push.sh, deploy-aml.sh, deploy-containerapp.sh,
# logs.sh, invoke.sh). Sourced, not run. Bash; the scripts set `set -euo pipefail` themselves.
#
# Settings come from the environment. An optional file of KEY=VALUE lines (default: .env at the
# repository root, see .env.example; another with AZURE_ENV_FILE=path) fills in the variables
# that the environment leaves unset. It is read as data, never executed.

# shellcheck disable=SC2034  # `repo_root` is used by the scripts that source this file.
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# load_env_file: sets variables from $AZURE_ENV_FILE (default $repo_root/.env) that are not
# already set in the environment. Lines: KEY=VALUE, optional `export `, '#' comments, optional
# single or double quotes around VALUE.
load_env_file() {
  local file=${AZURE_ENV_FILE:-$repo_root/.env} line key value
  [[ -f "$file" ]] || return 0
  while IFS= read -r line || [[ -n "$line" ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z "$line" || "$line" == \#* ]] && continue
    line=${line#export }
    [[ "$line" == *=* ]] || continue
    key=${line%%=*}
    value=${line#*=}
    [[ "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then
      value=${BASH_REMATCH[1]}
    fi
    if [[ -z "${!key+set}" ]]; then
      printf -v "$key" '%s' "$value"
      export "${key?}"
    fi
  done <"$file"
}

# require_env VAR...: fails naming every variable that is unset or empty.
require_env() {
  local name missing=()
  for name in "$@"; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    die "missing environment variable(s): ${missing[*]} (see .env.example; copy it to .env or export them)"
  fi
}

# require_cmd CMD [HINT]: fails when CMD is not on PATH.
require_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH${2:+: $2}"
}

# resource_exists CMD...: runs an Azure CLI `show` quietly; true when it succeeds.
resource_exists() {
  "$@" >/dev/null 2>&1
}

# sample_request: prints the path of azureml/sample-request.json, generating it first if needed.
sample_request() {
  local file=$repo_root/azureml/sample-request.json
  if [[ ! -s "$file" ]]; then
    "$repo_root/scripts/make-sample-request.sh" >&2
  fi
  printf '%s\n' "$file"
}
