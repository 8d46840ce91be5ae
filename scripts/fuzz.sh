#!/usr/bin/env bash
# Fuzzes request decoding with cargo-fuzz (libFuzzer + AddressSanitizer): each target in fuzz/
# runs for a bounded time, one after the other, and the script exits non-zero if any of them
# crashed (a panic, a violated property, a sanitizer report, a timeout or an out-of-memory), with
# the input saved under fuzz/artifacts/<target>/. See fuzz/README.md.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/fuzz.sh [--seconds N] [--target NAME]... [--help]

  --seconds N     how long each target runs (default 60)
  --target NAME   run only this target (repeatable); targets: json_body base64 multipart
                  image_decode v2_infer dicom_decode
  --help          this text

Installs cargo-fuzz into .cache/tools if missing, builds the targets with the nightly toolchain,
then runs each one on its committed seeds (fuzz/seeds/<target>/), the corpus it grew before
(.cache/fuzz/corpus/<target>/, where new inputs go) and, when tests/data/mri/ is there
(scripts/setup.sh --test-data), seeds made from the 17 MRI images in a temporary directory
(and, for dicom_decode, the real DICOM files under 40 KB from tests/data/dicom/ beside its
hand-made seeds).
Prints the executions per target and whether it crashed; crash inputs go to
fuzz/artifacts/<target>/, full logs to .cache/fuzz/logs/<target>.log.
EOF
}

all_targets=(json_body base64 multipart image_decode v2_infer dicom_decode)
seconds=60
targets=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds)
      [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "--seconds needs a positive whole number" >&2; exit 2; }
      seconds=$2; shift 2 ;;
    --seconds=*)
      seconds=${1#--seconds=}
      [[ "$seconds" =~ ^[1-9][0-9]*$ ]] || { echo "--seconds needs a positive whole number" >&2; exit 2; }
      shift ;;
    --target)
      [[ $# -ge 2 ]] || { echo "--target needs a name" >&2; exit 2; }
      targets+=("$2"); shift 2 ;;
    --target=*) targets+=("${1#--target=}"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $target "* ]] || { echo "unknown target: $target (${all_targets[*]})" >&2; exit 2; }
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# Inputs longer than this are not tried: room for the largest MRI image (68 KB), as base64 in
# JSON, and staying under the 256 KiB above which extract_images needs actix's runtime.
max_len() {
  case "$1" in
    json_body) echo 196608 ;;
    base64) echo 16384 ;;
    multipart | image_decode | v2_infer | dicom_decode) echo 131072 ;;
  esac
}
# No single allocation may exceed this: decoding is bounded by the 4-megapixel limit the targets
# use (at most 96 MB for the decoder), and bodies of at most 192 KiB need far less.
malloc_limit_mb() {
  case "$1" in
    json_body | image_decode | dicom_decode) echo 256 ;;
    base64 | multipart | v2_infer) echo 64 ;;
  esac
}

if ! rustup toolchain list | grep -q '^nightly'; then
  echo "cargo-fuzz needs the nightly toolchain: rustup toolchain install nightly --profile minimal" >&2
  exit 1
fi
export PATH="$root/.cache/tools/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz into .cache/tools"
  cargo install cargo-fuzz --version 0.13.2 --locked --root "$root/.cache/tools"
fi

echo "== building ${targets[*]} (nightly, release with debug assertions, AddressSanitizer)"
if [[ ${#targets[@]} -eq ${#all_targets[@]} ]]; then
  cargo +nightly fuzz build
else
  for target in "${targets[@]}"; do cargo +nightly fuzz build "$target"; done
fi

# Seeds made from the MRI images, at run time only: the images carry no licence, so neither they
# nor anything derived from them is committed.
mri_dir="$root/tests/data/mri"
extra=$(mktemp -d)
trap 'rm -rf "$extra"' EXIT
mri=()
if compgen -G "$mri_dir/*.jpg" >/dev/null; then
  mri=("$mri_dir"/*.jpg)
else
  echo "note: no MRI images in tests/data/mri (scripts/setup.sh --test-data fetches them); synthetic seeds only"
fi
for target in "${targets[@]}"; do
  mkdir -p "$extra/$target"
  for i in "${!mri[@]}"; do
    image=${mri[$i]}
    case "$target" in
      image_decode) cp "$image" "$extra/$target/mri$i.jpg" ;;
      json_body) printf '{"image": "%s"}' "$(base64 -w0 "$image")" >"$extra/$target/mri$i.json" ;;
      multipart)
        {
          printf 'multipart/form-data; boundary=mri%s\r\n' "$i"
          printf -- '--mri%s\r\nContent-Disposition: form-data; name="file"; filename="scan.jpg"\r\n' "$i"
          printf 'Content-Type: image/jpeg\r\n\r\n'
          cat "$image"
          printf '\r\n--mri%s--\r\n' "$i"
        } >"$extra/$target/mri$i"
        ;;
    esac
  done
done
# The real DICOM files scripts/setup.sh --test-data fetches from pydicom's wheel, also at run time.
if [[ " ${targets[*]} " == *" dicom_decode "* ]]; then
  if compgen -G "$root/tests/data/dicom/*.dcm" >/dev/null; then
    find "$root/tests/data/dicom" -name '*.dcm' -size -40k -exec cp {} "$extra/dicom_decode/" \;
  else
    echo "note: no DICOM files in tests/data/dicom (scripts/setup.sh --test-data fetches them); hand-made seeds only"
  fi
fi
if [[ ${#mri[@]} -ge 3 && " ${targets[*]} " == *" json_body "* ]]; then
  printf '{"images": ["%s", "%s", "data:image/jpeg;base64,%s"]}' \
    "$(base64 -w0 "${mri[0]}")" "$(base64 -w0 "${mri[1]}")" "$(base64 -w0 "${mri[2]}")" >"$extra/json_body/mri-several.json"
fi

mkdir -p .cache/fuzz/logs
failed=()
summary=()
for target in "${targets[@]}"; do
  corpus=".cache/fuzz/corpus/$target"
  artifacts="fuzz/artifacts/$target"
  log=".cache/fuzz/logs/$target.log"
  mkdir -p "$corpus" "$artifacts"
  dict=()
  [[ -f "fuzz/dicts/$target.dict" ]] && dict=("-dict=fuzz/dicts/$target.dict")
  echo "== fuzzing $target for ${seconds}s (log: $log)"
  # The first corpus directory receives new inputs; the others are only read.
  status=0
  cargo +nightly fuzz run "$target" "$corpus" "fuzz/seeds/$target" "$extra/$target" -- \
    -max_total_time="$seconds" -max_len="$(max_len "$target")" -timeout=10 \
    -rss_limit_mb=2048 -malloc_limit_mb="$(malloc_limit_mb "$target")" \
    -artifact_prefix="$artifacts/" -print_final_stats=1 "${dict[@]}" >"$log" 2>&1 || status=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  [[ -n "$runs" ]] || runs=$(sed -n 's/^Done \([0-9]*\) runs in.*/\1/p' "$log" | tail -1)
  [[ -n "$runs" ]] || runs="?"
  corpus_size=$(find "$corpus" -type f | wc -l)
  crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
  if [[ $status -ne 0 || -n "$crash" ]]; then
    failed+=("$target")
    result="CRASH (exit $status${crash:+, input $crash})"
    echo "-- $target failed; the end of its log:"
    grep -v -E '^#[0-9]+\s+(NEW|REDUCE|pulse)' "$log" | tail -40
  else
    result="no crash"
  fi
  summary+=("$(printf '%-13s %12s executions  %6s corpus files  %s' "$target" "$runs" "$corpus_size" "$result")")
done

echo "== summary (${seconds}s per target)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
  echo "crashed: ${failed[*]}. Minimise with: cargo +nightly fuzz tmin <target> fuzz/artifacts/<target>/<file>," \
    "then save it under fuzz/regressions/<target>/ (tests/fuzz_regressions.rs runs it)." >&2
  exit 1
fi
