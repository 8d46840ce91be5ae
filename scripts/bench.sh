#!/usr/bin/env bash
# The benchmark: one run that measures the server against the in-process ONNX Runtime ceiling and
# against Azure's Python inference server, on the VGG16 model, its INT8 copy and a cheap model, and prints
# the ratios (scripts/bench.py). Installs what it needs on first use:
#   oha (HTTP load generator, crates.io) into .cache/tools,
#   azureml-inference-server-http + onnxruntime + Pillow (PyPI) into .cache/bench-venv.
# Takes about 25 minutes with the default 12 s per load point. Run it on an otherwise idle machine.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  cat <<'EOF'
Usage: scripts/bench.sh [--seconds N] [--models vgg16,vgg16-int8,squeezenet]

  --seconds N   duration of each load point (default 12; env BENCH_SECONDS)
  --models      which models to run (default all three)
EOF
  exit 0
fi

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/setup.sh --test-data >/dev/null
if [[ ! -x .cache/tools/bin/oha ]]; then
  echo "installing oha 1.16.0 into .cache/tools (a few minutes)"
  cargo install oha --version 1.16.0 --locked --root .cache/tools
fi
if [[ ! -x .cache/bench-venv/bin/azmlinfsrv ]]; then
  echo "installing azureml-inference-server-http into .cache/bench-venv"
  python3 -m venv .cache/bench-venv
  .cache/bench-venv/bin/pip install -q azureml-inference-server-http==1.5.1 onnxruntime==1.31.1 pillow==13.0.0 numpy==2.4.6
fi
cargo build --release --locked
exec python3 scripts/bench.py "$@"
