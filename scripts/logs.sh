#!/usr/bin/env bash
# Shows the scorer's logs from Azure: an Azure ML deployment (the server, or the storage
# initializer that downloads the model before it starts) or the Container App.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/logs.sh aml [--deployment NAME] [--lines N] [--storage-initializer]
       scripts/logs.sh containerapp [--lines N] [--follow] [--system]

  aml                    az ml online-deployment get-logs for $AML_ENDPOINT_NAME
    --deployment NAME    blue (default) or green
    --storage-initializer  the container that downloads the model before the server starts:
                         look here when a deployment fails before the server logs anything
  containerapp           az containerapp logs show for $CONTAINERAPP_NAME
    --follow             keep streaming
    --system             platform events (image pulls, probe failures, restarts) instead of
                         the server's console output
  --lines N              how many lines (default 100)
  -h, --help             show this help

The server logs one JSON object per line in Azure (SCORER_LOG_FORMAT=json): at start-up the
ONNX Runtime library, the model folder and file it found under AZUREML_MODEL_DIR, and the load
and warm-up times; then one line per request with its x-request-id.

Environment (.env.example):
  aml:          AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE, AML_ENDPOINT_NAME
  containerapp: AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, CONTAINERAPP_NAME
EOF
}

target=${1:-}
case "$target" in
  -h | --help) usage; exit 0 ;;
  aml | containerapp) shift ;;
  *) usage >&2; exit 2 ;;
esac

deployment=blue
lines=100
storage_initializer=0
follow=0
log_type=console
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --deployment) deployment=${2:?--deployment needs a value}; shift ;;
    --lines) lines=${2:?--lines needs a number}; shift ;;
    --storage-initializer) storage_initializer=1 ;;
    --follow) follow=1 ;;
    --system) log_type=system ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$lines" =~ ^[0-9]+$ ]] || die "--lines needs a number, not '$lines'"

load_env_file
require_cmd az "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli"

if [[ $target == aml ]]; then
  require_env AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZUREML_WORKSPACE AML_ENDPOINT_NAME
  container=()
  ((storage_initializer)) && container=(--container storage-initializer)
  az ml online-deployment get-logs --endpoint-name "$AML_ENDPOINT_NAME" --name "$deployment" --lines "$lines" \
    "${container[@]}" --subscription "$AZURE_SUBSCRIPTION_ID" --resource-group "$AZURE_RESOURCE_GROUP" \
    --workspace-name "$AZUREML_WORKSPACE"
else
  require_env AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP CONTAINERAPP_NAME
  stream=()
  ((follow)) && stream=(--follow)
  az containerapp logs show --name "$CONTAINERAPP_NAME" --resource-group "$AZURE_RESOURCE_GROUP" \
    --subscription "$AZURE_SUBSCRIPTION_ID" --type "$log_type" --tail "$lines" "${stream[@]}"
fi
