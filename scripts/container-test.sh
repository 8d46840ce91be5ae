#!/usr/bin/env bash
# Local container test harness: builds the image, runs it, and checks what a deployment relies on.
#
#   1. build brain-tumor-ml:1.0 from the Dockerfile (docker when a daemon answers, else
#      podman/buildah, creating base images locally with debootstrap when no registry answers);
#   2. run it, wait for readiness, score the 17 real MRI images and azureml/sample-request.json,
#      check every label; score a DICOM file; check the HEALTHCHECK, the non-root user and a read-only model;
#   3. SIGTERM it and check a clean exit (code 0);
#   4. run it again with a model mounted the way Azure ML mounts a registered folder model
#      (AZUREML_MODEL_DIR=/var/azureml-app/azureml-models/<name>/<version>) and check it is used;
#   5. run it with the INT8 model selected (SCORER_MODEL_DIR=/opt/scorer/model-int8) and check
#      the 17 labels again, under --cpus 1, with the thread counts sized to that cgroup quota;
#   6. print the image size.
# Exit 0 only if every check holds.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/container-test.sh [--no-build] [--help]

  --no-build   test the existing image instead of building it

Environment:
  IMAGE            image to build and test (default brain-tumor-ml:1.0)
  PORT             host port for the container's 8000 (default 8000)
  CONTAINER_ENGINE docker or podman (default: docker if its daemon answers, else podman)
EOF
}

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
image=${IMAGE:-brain-tumor-ml:1.0}
port=${PORT:-8000}
name="scorer-test-$$"
work=$(mktemp -d)
failures=0

log() { printf '\n== %s\n' "$*"; }
# Starts a container; without systemd, podman logs an error about scheduling health checks,
# which this harness runs by hand, so that line is filtered out.
start() { "${engine[@]}" run -d "$@" 2> >(grep -v 'systemd connection' >&2) >/dev/null; }
pass() { printf '  ok    %s\n' "$*"; }
fail() { printf '  FAIL  %s\n' "$*"; failures=$((failures + 1)); }

cleanup() {
  "${engine[@]}" rm -f "$name" "$name-azure" "$name-int8" >/dev/null 2>&1 || true
  rm -rf "$work"
}

# --- the container engine ------------------------------------------------------------------
choose_engine() {
  local wanted=${CONTAINER_ENGINE:-}
  if [[ -z "$wanted" ]]; then
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then wanted=docker; else wanted=podman; fi
  fi
  if [[ "$wanted" == docker ]]; then
    engine=(docker)
    publish=(-p "127.0.0.1:$port:8000")
    return
  fi
  if ! command -v podman >/dev/null || ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    log "installing podman, buildah, runc and debootstrap (Debian packages)"
    if [[ $(id -u) -ne 0 ]]; then echo "root is needed to install them; install podman, buildah, runc, debootstrap" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q podman buildah runc debootstrap >/dev/null \
      || { apt-get update -q >/dev/null && apt-get install -y -q podman buildah runc debootstrap >/dev/null; }
  fi
  # Settings this sandbox needs (they are harmless elsewhere): no rlimit changes, the vfs
  # storage driver, runc, and the host network.
  cat >"$work/containers.conf" <<'CONF'
[containers]
default_ulimits = []
netns = "host"
[engine]
runtime = "runc"
CONF
  cat >"$work/storage.conf" <<'CONF'
[storage]
driver = "vfs"
runroot = "/run/containers/storage"
graphroot = "/var/lib/containers/storage"
CONF
  export CONTAINERS_CONF="$work/containers.conf" CONTAINERS_STORAGE_CONF="$work/storage.conf"
  engine=(podman)
  publish=(-e "SCORER_PORT=$port")
}

# Makes `debian:bookworm-slim` locally when no registry can be reached (debootstrap, ~30 s).
ensure_debian_base() {
  local base=docker.io/library/debian:bookworm-slim
  podman image exists "$base" && return
  timeout 60 podman pull -q "$base" >/dev/null 2>&1 && return
  log "no registry reachable: building $base with debootstrap"
  local rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
  # Slim it as the official -slim images are: no docs, man pages or locales, now or later.
  cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CONF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
CONF
  printf '%s\n' 'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$rootfs/etc/apt/apt.conf.d/docker-clean"
  find "$rootfs/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$rootfs"/usr/share/{groff,info,linda,lintian,locale,man}/* "$rootfs"/var/cache/apt/*.bin \
    "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log
  tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
  rm -rf "$rootfs"
}

# The build stage's Rust image. With a registry, the official one; without, a local stand-in
# that runs the host's own toolchain, mounted at the paths the official image uses.
rust_build_args=()
ensure_rust_image() {
  local official=docker.io/library/rust:1.95-slim-bookworm
  if podman image exists "$official" || timeout 60 podman pull -q "$official" >/dev/null 2>&1; then
    return
  fi
  local local_image=localhost/scorer-rust-host:bookworm
  if ! podman image exists "$local_image"; then
    log "no registry reachable: building $local_image (gcc; the toolchain comes from the host)"
    cat >"$work/Containerfile.rust" <<'CONF'
FROM docker.io/library/debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:$PATH
CONF
    buildah bud -q --isolation chroot -f "$work/Containerfile.rust" -t "$local_image" "$work" >/dev/null
  fi
  local rustup_home=${RUSTUP_HOME:-$HOME/.rustup} cargo_home=${CARGO_HOME:-$HOME/.cargo}
  # CARGO_HOME is mounted writable: cargo keeps its registry cache there (the host's own).
  rust_build_args=(--build-arg "RUST_IMAGE=$local_image"
    -v "$rustup_home:/usr/local/rustup:ro" -v "$cargo_home:/usr/local/cargo")
}

build_image() {
  local labels=(--build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)")
  local secret=()
  if [[ -s /etc/ssl/certs/ca-certificates.crt ]]; then
    # shellcheck disable=SC2054 # the commas belong to the --secret value
    secret=(--secret id=extra_ca,src=/etc/ssl/certs/ca-certificates.crt)
  fi
  log "building $image with ${engine[0]}"
  local started=$SECONDS
  if [[ "${engine[0]}" == docker ]]; then
    DOCKER_BUILDKIT=1 docker build "${secret[@]}" "${labels[@]}" -t "$image" .
  else
    ensure_debian_base
    ensure_rust_image
    buildah bud --isolation chroot --format docker --layers "${secret[@]}" "${labels[@]}" \
      "${rust_build_args[@]}" -t "$image" .
  fi
  echo "built in $((SECONDS - started)) s"
}

# --- checks --------------------------------------------------------------------------------
url() { echo "http://127.0.0.1:$port$1"; }

wait_ready() {
  local container=$1 deadline=$((SECONDS + 180))
  until curl -fsS -o /dev/null "$(url /ready)" 2>/dev/null; do
    if ((SECONDS > deadline)) || [[ "$("${engine[@]}" inspect -f '{{.State.Running}}' "$container" 2>/dev/null)" != true ]]; then
      "${engine[@]}" logs "$container" 2>&1 | tail -n 30
      return 1
    fi
    sleep 0.5
  done
}

label_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["predictions"][0]["label"])'; }
model_name_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["model"]["name"])'; }

expected_label() {
  case "$(basename "$1")" in
    Te-gl_*) echo glioma ;; Te-me_*) echo meningioma ;; Te-no_*) echo notumor ;; Te-pi_*) echo pituitary ;;
  esac
}

# Scores the 17 real MRI images; every label must be right and every answer from model $1.
score_mri_images() {
  local model=$1 image_file answer label served right=0 total=0
  for image_file in tests/data/mri/*.jpg; do
    total=$((total + 1))
    answer=$(curl -fsS -F "file=@$image_file" "$(url /score)") || answer='{}'
    label=$(label_of <<<"$answer" 2>/dev/null) || label="(request failed)"
    served=$(model_name_of <<<"$answer" 2>/dev/null) || served="(none)"
    if [[ "$label" == "$(expected_label "$image_file")" && "$served" == "$model" ]]; then right=$((right + 1)); else
      fail "$(basename "$image_file"): got $label from $served, expected $(expected_label "$image_file") from $model"; fi
  done
  if ((right == total && total == 17)); then pass "all $total real MRI images classified right by $model"
  else fail "$right of $total MRI images classified right by $model (17 expected)"; fi
}

score_sample_request() {
  local label
  label=$(curl -fsS -H 'Content-Type: application/json' --data-binary @azureml/sample-request.json "$(url /score)" \
    | label_of) || label="(request failed)"
  if [[ "$label" == glioma ]]; then pass "azureml/sample-request.json scored: $label"
  else fail "azureml/sample-request.json: got $label, expected glioma"; fi
}

check_user_and_permissions() {
  local uid
  uid=$("${engine[@]}" exec "$name" id -u)
  if [[ "$uid" != 0 ]]; then pass "runs as non-root user $uid"; else fail "runs as root"; fi
  # Each write must fail with "Permission denied" inside a shell that did run: a failed exec or a
  # missing shell must not pass for a read-only model.
  local attempt
  # shellcheck disable=SC2016 # $f is the container shell's
  attempt=$("${engine[@]}" exec "$name" sh -c \
    'for f in /opt/scorer/model/x /opt/scorer/bin/x; do touch "$f" 2>&1 && echo "wrote $f"; done; echo tried' 2>&1) || true
  if [[ "$attempt" == *tried* && "$attempt" != *wrote* ]] && (($(grep -c 'Permission denied' <<<"$attempt") == 2)); then
    pass "the server's user cannot write the model or the binary (Permission denied, twice)"
  else
    fail "writing the model and the binary as the server's user: ${attempt:-no output}"
  fi
}

check_healthcheck() {
  if "${engine[@]}" exec "$name" scorer healthcheck; then pass "HEALTHCHECK command (scorer healthcheck) succeeds"
  else fail "scorer healthcheck failed in the running container"; fi
  local configured
  configured=$("${engine[@]}" image inspect -f '{{json .Config.Healthcheck}}' "$image" 2>/dev/null || true)
  if [[ "$configured" == *healthcheck* ]]; then pass "image declares HEALTHCHECK $configured"
  else fail "image has no HEALTHCHECK (got: $configured)"; fi
}

check_sigterm() {
  local code
  "${engine[@]}" kill --signal TERM "$name" >/dev/null
  code=$(timeout 60 "${engine[@]}" wait "$name" | tail -n 1)
  if [[ "$code" == 0 ]]; then pass "SIGTERM: clean exit (code 0)"; else fail "SIGTERM: exit code $code"; fi
  if "${engine[@]}" logs "$name" 2>&1 | grep -q "shut down cleanly"; then pass "logged a clean shutdown"
  else fail "no clean-shutdown log line"; fi
}

run_with_azure_mount() {
  # A copy of the model, renamed, in Azure's layout: proof that the mounted model is served.
  local registered="$work/azureml-models/brain-tumor-vgg16/1/model"
  mkdir -p "$registered"
  cp model/Tumor_classification_vgg16.onnx model/README.md "$registered/"
  sed '0,/^name = .*/s//name = "brain-tumor-vgg16-mounted"/' model/model.toml >"$registered/model.toml"
  chmod -R a+rX "$work/azureml-models"
  local mount_dir=/var/azureml-app/azureml-models/brain-tumor-vgg16/1
  start --name "$name-azure" "${publish[@]}" \
    -v "$work/azureml-models/brain-tumor-vgg16/1:$mount_dir:ro" -e "AZUREML_MODEL_DIR=$mount_dir" "$image"
  if ! wait_ready "$name-azure"; then fail "not ready with the Azure-mounted model"; return; fi
  local served
  served=$(curl -fsS -F "file=@tests/data/mri/Te-me_0016.jpg" "$(url /score)" | model_name_of) || served="(request failed)"
  if [[ "$served" == brain-tumor-vgg16-mounted ]]; then pass "serves the model mounted at \$AZUREML_MODEL_DIR/model"
  else fail "served model $served, not the mounted one"; fi
  "${engine[@]}" kill --signal TERM "$name-azure" >/dev/null
  timeout 60 "${engine[@]}" wait "$name-azure" >/dev/null || true
}

run_with_int8_selected() {
  # Also under a CPU limit of 1 (a cgroup quota, as a Kubernetes limit sets): ONNX Runtime's pool
  # and the workers must be sized to it, not to the host's cores.
  start --name "$name-int8" "${publish[@]}" --cpus 1 -e SCORER_MODEL_DIR=/opt/scorer/model-int8 "$image"
  if ! wait_ready "$name-int8"; then fail "not ready with SCORER_MODEL_DIR=/opt/scorer/model-int8"; return; fi
  score_mri_images brain-tumor-vgg16-int8
  local sizing
  sizing=$("${engine[@]}" logs "$name-int8" 2>&1 | grep -o 'CPUs: .*' | head -n 1 || true)
  if [[ "$sizing" == "CPUs: 1 (cgroup quota"*"intra-op threads per session: 1;"*"HTTP workers: 1;"* ]]; then
    pass "--cpus 1: sized to the cgroup quota ($sizing)"
  else fail "--cpus 1: not sized to the quota: ${sizing:-no CPUs line in the log}"; fi
  "${engine[@]}" kill --signal TERM "$name-int8" >/dev/null
  timeout 60 "${engine[@]}" wait "$name-int8" >/dev/null || true
}

print_size() {
  local bytes
  bytes=$("${engine[@]}" image inspect -f '{{.Size}}' "$image")
  printf '\n== image %s: %d MB (%d bytes)\n' "$image" $((bytes / 1000000)) "$bytes"
  # Debian slim, ONNX Runtime (29 MB), the fp32 model (65 MB) and its INT8 copy (21 MB).
  if ((bytes < 225000000)); then pass "image under 225 MB"
  else fail "image is $((bytes / 1000000)) MB, over the 225 MB aim"; fi
}

# --- main ------------------------------------------------------------------------------------
choose_engine
# A real DICOM file (pydicom's MR_small.dcm) through the image: the label and frame the
# pydicom + Pillow reference gives (tests/fixtures/dicom_reference.json).
score_dicom_file() {
  local answer label frame expected
  answer=$(curl -fsS -H 'Content-Type: application/dicom' --data-binary @tests/data/dicom/MR_small.dcm "$(url /score)") \
    || answer='{}'
  label=$(label_of <<<"$answer" 2>/dev/null) || label="(request failed)"
  frame=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["predictions"][0]["dicom"]["frame"])' <<<"$answer" 2>/dev/null) \
    || frame="(none)"
  expected=$(python3 -c 'import json; print(json.load(open("tests/fixtures/dicom_reference.json"))["files"]["MR_small.dcm"]["frames"][0]["label"])')
  if [[ "$label" == "$expected" && "$frame" == 1 ]]; then pass "DICOM MR_small.dcm scored: $label, frame $frame"
  else fail "DICOM MR_small.dcm: got $label (frame $frame), expected $expected (frame 1)"; fi
}

trap cleanup EXIT
scripts/setup.sh --test-data >/dev/null
scripts/make-sample-request.sh >/dev/null
((build)) && build_image

log "run: default model"
"${engine[@]}" rm -f "$name" >/dev/null 2>&1 || true
start --name "$name" "${publish[@]}" "$image"
if wait_ready "$name"; then
  pass "ready on port $port"
  score_mri_images brain-tumor-vgg16
  score_sample_request
  score_dicom_file
  check_user_and_permissions
  check_healthcheck
  check_sigterm
else
  fail "the container never became ready"
fi
"${engine[@]}" rm -f "$name" >/dev/null 2>&1 || true

log "run: model mounted as Azure ML mounts a registered folder model"
run_with_azure_mount

log "run: the INT8 model selected (SCORER_MODEL_DIR=/opt/scorer/model-int8), under --cpus 1"
run_with_int8_selected

print_size
if ((failures > 0)); then
  printf '\n%d check(s) failed\n' "$failures"
  exit 1
fi
printf '\nall container checks passed\n'
