#!/usr/bin/env bash
# Triton's own client, tritonclient[http], against the real release server on the default model:
# the Open Inference Protocol front end as KServe and Triton users call it. Part of the test
# command (scripts/test.sh); needs target/release/scorer, the model and the MRI images
# (scripts/setup.sh --test-data). The client lives in .cache/v2-venv, pinned by requirements.txt.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
venv=.cache/v2-venv
stamp=$(sha256sum tests/v2/requirements.txt | cut -d' ' -f1)
if [[ ! -x "$venv/bin/python" || "$(cat "$venv/.stamp" 2>/dev/null)" != "$stamp" ]]; then
  echo "creating $venv (tritonclient[http], onnxruntime; pinned in tests/v2/requirements.txt)"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r tests/v2/requirements.txt
  echo "$stamp" >"$venv/.stamp"
fi
[[ -x target/release/scorer ]] || cargo build --release --locked
# onnxruntime's own telemetry stays off in the reference runs too.
ORT_DISABLE_TELEMETRY=1 exec "$venv/bin/python" -m unittest discover -s tests/v2 -p 'test_*.py' -v
