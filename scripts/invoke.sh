#!/usr/bin/env bash
# Scores images against any scorer URL: a local run, a container, an Azure ML endpoint or a
# Container App. The key, if any, is read from an environment variable and never printed.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/invoke.sh [options] IMAGE...
       scripts/invoke.sh [options] --request-file FILE

Posts images to a scoring URL and prints the JSON answer (predictions) on stdout.

  --url URL           scoring URL (default: $SCORING_URI, else http://localhost:8000/score)
  --key-env VAR       name of the environment variable holding the key (default: SCORING_KEY);
                      when it is set, the request carries "Authorization: Bearer <key>"
  --deployment NAME   Azure ML: send to this deployment (header azureml-model-deployment),
                      whatever the traffic split says
  --as json|multipart|raw
                      how to send IMAGE(s): JSON {"images": [base64...]} (default, what Azure ML's
                      invoke sends), multipart/form-data file parts, or raw bytes (one image)
  --request-file FILE post FILE as application/json unchanged, as 'az ml online-endpoint invoke
                      --request-file' does (e.g. azureml/sample-request.json)
  --max-time SECONDS  give up after this long (default 200)
  -h, --help          show this help

Examples:
  scripts/invoke.sh tests/data/mri/Te-gl_0010.jpg
  SCORING_URI=$(az ml online-endpoint show -n "$AML_ENDPOINT_NAME" --query scoring_uri -o tsv)
  SCORING_KEY=$(az ml online-endpoint get-credentials -n "$AML_ENDPOINT_NAME" --query primaryKey -o tsv)
  export SCORING_URI SCORING_KEY; scripts/invoke.sh --request-file azureml/sample-request.json

On a non-2xx answer the status, the body and Azure ML's ms-azureml-model-error-statuscode /
-reason headers (the container's own status behind a 424) go to stderr, and the exit code is 1.
EOF
}

url=${SCORING_URI:-http://localhost:8000/score}
key_env=SCORING_KEY
deployment=
as=json
request_file=
max_time=200
images=()
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --url) url=${2:?--url needs a value}; shift ;;
    --key-env) key_env=${2:?--key-env needs a variable name}; shift ;;
    --deployment) deployment=${2:?--deployment needs a value}; shift ;;
    --as) as=${2:?--as needs json, multipart or raw}; shift ;;
    --request-file) request_file=${2:?--request-file needs a file}; shift ;;
    --max-time) max_time=${2:?--max-time needs seconds}; shift ;;
    --) shift; images+=("$@"); break ;;
    -*) echo "unknown option: $1" >&2; usage >&2; exit 2 ;;
    *) images+=("$1") ;;
  esac
  shift
done

[[ "$key_env" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "--key-env: not a variable name: $key_env"
if [[ -n "$request_file" ]]; then
  ((${#images[@]} == 0)) || die "give either --request-file or images, not both"
  [[ -f "$request_file" ]] || die "request file not found: $request_file"
else
  ((${#images[@]})) || { usage >&2; exit 2; }
  for image in "${images[@]}"; do [[ -f "$image" ]] || die "image not found: $image"; done
fi
require_cmd curl

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Headers go to curl through a file readable only by this user, so that the key is never in
# curl's command line (visible to every user in `ps`).
umask 077
headers=$work/request-headers
: >"$headers"
key=${!key_env:-}
[[ -z "$key" ]] || printf 'Authorization: Bearer %s\n' "$key" >>"$headers"
unset key
[[ -z "$deployment" ]] || printf 'azureml-model-deployment: %s\n' "$deployment" >>"$headers"

body=()
if [[ -n "$request_file" ]]; then
  printf 'Content-Type: application/json\n' >>"$headers"
  body=(--data-binary "@$request_file")
else
  case "$as" in
    json)
      {
        printf '{"images": ['
        sep=
        for image in "${images[@]}"; do
          printf '%s"' "$sep"
          base64 <"$image" | tr -d '\n\r'
          printf '"'
          sep=,
        done
        printf ']}\n'
      } >"$work/body.json"
      printf 'Content-Type: application/json\n' >>"$headers"
      body=(--data-binary "@$work/body.json")
      ;;
    multipart)
      i=0
      for image in "${images[@]}"; do
        body+=(-F "file$i=@$image")
        i=$((i + 1))
      done
      ;;
    raw)
      ((${#images[@]} == 1)) || die "--as raw sends one image per request"
      case "${images[0],,}" in
        *.jpg | *.jpeg) type=image/jpeg ;;
        *.png) type=image/png ;;
        *) type=application/octet-stream ;;
      esac
      printf 'Content-Type: %s\n' "$type" >>"$headers"
      body=(--data-binary "@${images[0]}")
      ;;
    *) die "--as must be json, multipart or raw, not '$as'" ;;
  esac
fi

status=$(curl -sS --max-time "$max_time" -X POST -H "@$headers" "${body[@]}" \
  -D "$work/response-headers" -o "$work/response" -w '%{http_code}' "$url") ||
  die "could not reach $url"

if [[ "$status" == 2* ]]; then
  cat "$work/response"
  [[ -z "$(tail -c 1 "$work/response")" ]] || echo
  exit 0
fi
{
  echo "HTTP $status from $url"
  grep -i '^ms-azureml-model-error-\|^x-request-id\|^retry-after' "$work/response-headers" | tr -d '\r' || true
  cat "$work/response"
  echo
} >&2
exit 1
