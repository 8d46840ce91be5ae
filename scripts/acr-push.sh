#!/usr/bin/env bash
# Puts the scorer image into Azure Container Registry, where Azure ML and Container Apps pull it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/acr-push.sh [--acr-build] [--build] [--help]

Pushes $IMAGE_NAME:$IMAGE_TAG (default brain-tumor-ml:1.0) to $ACR_NAME.azurecr.io.

  (default)    log in to the registry, tag the local image, push it. Needs Docker (or
               CONTAINER_CLI=podman) and the image built locally:  docker build -t brain-tumor-ml:1.0 .
  --build      build the local image from ./Dockerfile first
  --acr-build  build in Azure instead, from this directory, with 'az acr build' (uploads the
               build context; no local Docker needed). The Dockerfile's RUN --mount needs
               BuildKit; if the ACR build refuses it, build locally (--build) instead
  -h, --help   show this help

Environment (.env.example):
  AZURE_SUBSCRIPTION_ID, ACR_NAME               required
  IMAGE_NAME (brain-tumor-ml), IMAGE_TAG (1.0)  optional
  CONTAINER_CLI (docker)                        docker or podman; anything but docker logs in
                                                with an ACR access token (az acr login --expose-token)
EOF
}

mode=push
build=0
for arg in "$@"; do
  case "$arg" in
    -h | --help) usage; exit 0 ;;
    --acr-build) mode=acr-build ;;
    --build) build=1 ;;
    *) echo "unknown argument: $arg" >&2; usage >&2; exit 2 ;;
  esac
done

load_env_file
require_env AZURE_SUBSCRIPTION_ID ACR_NAME
require_cmd az "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli"
image=${IMAGE_NAME:-brain-tumor-ml}:${IMAGE_TAG:-1.0}
sub=(--subscription "$AZURE_SUBSCRIPTION_ID")

log "registry $ACR_NAME"
server=$(az acr show --name "$ACR_NAME" "${sub[@]}" --query loginServer -o tsv) ||
  die "registry '$ACR_NAME' not found in subscription $AZURE_SUBSCRIPTION_ID (create it: az acr create -n $ACR_NAME -g <resource group> --sku Basic)"
target=$server/$image

if [[ $mode == acr-build ]]; then
  log "building $target in Azure (az acr build; the context is this repository, filtered by .dockerignore)"
  az acr build --registry "$ACR_NAME" "${sub[@]}" --image "$image" --file "$repo_root/Dockerfile" "$repo_root" >&2
else
  cli=${CONTAINER_CLI:-docker}
  require_cmd "$cli" "install Docker, set CONTAINER_CLI=podman, or use --acr-build"
  if ((build)); then
    log "building $image from ./Dockerfile"
    "$cli" build -t "$image" -f "$repo_root/Dockerfile" "$repo_root" >&2
  fi
  "$cli" image inspect "$image" >/dev/null 2>&1 ||
    die "local image $image not found: build it (docker build -t $image .), or pass --build or --acr-build"

  log "logging in to $server"
  if [[ "$(basename "$cli")" == docker ]]; then
    az acr login --name "$ACR_NAME" "${sub[@]}" >&2
  else
    # No Docker daemon for az to talk to: fetch a short-lived token into a variable and hand it
    # to the client on stdin, so it appears neither in output nor in any process's arguments.
    token=$(az acr login --name "$ACR_NAME" "${sub[@]}" --expose-token --query accessToken -o tsv)
    printf '%s' "$token" | "$cli" login "$server" --username 00000000-0000-0000-0000-000000000000 --password-stdin >&2
    unset token
  fi

  log "pushing $target"
  "$cli" tag "$image" "$target" >&2
  "$cli" push "$target" >&2
fi

tags=$(az acr repository show-tags --name "$ACR_NAME" "${sub[@]}" --repository "${image%%:*}" -o tsv)
grep -qx -- "${image##*:}" <<<"$tags" || die "$target is not in the registry after the push"
log "done: $target"
echo "$target"
