#!/usr/bin/env bash
# The server's memory for one configuration: starts the release server on a model folder with the
# given settings, prints its peak resident memory (VmHWM) once ready, then after 8 s of oha at
# concurrency 64 with a real MRI JPEG, with the resident split into anonymous and file-backed
# pages. One fresh process per call, so the peak is that configuration's alone.
#
#   scripts/memory-probe.sh model                                  # fp32, default settings
#   scripts/memory-probe.sh model-int8 SCORER_MAX_BATCH_SIZE=1
#   scripts/memory-probe.sh model SCORER_OPTIMIZED_MODEL_CACHE=false MALLOC_ARENA_MAX=2
#
# Needs target/release/scorer and oha (scripts/bench.sh installs it into .cache/tools).
set -euo pipefail

if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
model_dir=$1
shift
oha=${OHA:-.cache/tools/bin/oha}
[[ -x "$oha" ]] || { echo "oha not found at $oha: run scripts/bench.sh once, or set OHA" >&2; exit 1; }
[[ -x target/release/scorer ]] || cargo build --release --locked

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
env "$@" target/release/scorer --host 127.0.0.1 --port "$port" --model-dir "$model_dir" >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

status_mb() { awk -v key="$1:" '$1 == key { printf "%.0f", $2 / 1024 }' "/proc/$pid/status"; }

deadline=$((SECONDS + 120))
until curl -fsS -o /dev/null "http://127.0.0.1:$port/ready" 2>/dev/null; do
  if ((SECONDS > deadline)) || ! kill -0 "$pid" 2>/dev/null; then cat "$log" >&2; exit 1; fi
  sleep 0.05
done
ready_peak=$(status_mb VmHWM)
answers=$("$oha" --no-tui --output-format json -z 8s -c 64 -m POST -T image/jpeg \
  -D tests/data/mri/Te-gl_0010.jpg "http://127.0.0.1:$port/score" |
  python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["statusCodeDistribution"])')
echo "$model_dir ${*:-(defaults)}: peak at ready ${ready_peak} MB; under load peak $(status_mb VmHWM) MB," \
  "resident $(status_mb VmRSS) MB (anonymous $(status_mb RssAnon), file $(status_mb RssFile)); answers $answers"
