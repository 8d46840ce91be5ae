#!/usr/bin/env bash
# Deploys the scorer image to Azure Container Apps: external HTTPS ingress to port 8000, startup,
# liveness and readiness probes on the server's routes, image pull from ACR through the app's
# system-assigned managed identity (no registry password), HTTP-concurrency autoscaling and a
# termination grace period that covers the server's drain. Safe to re-run: create-or-update.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/deploy-containerapp.sh [options]

  --image-tag TAG      image tag in the registry (default: $IMAGE_TAG, else 1.0)
  --min-replicas N     default: $CONTAINERAPP_MIN_REPLICAS, else 1 (0 allows scale to zero, at the
                       price of a cold start: image pull + model load on the first request)
  --max-replicas N     default: $CONTAINERAPP_MAX_REPLICAS, else 3
  --print-yaml         print the generated app YAML and exit (contacts no Azure service)
  --skip-smoke-test    do not score azureml/sample-request.json afterwards
  -h, --help           show this help

Steps: resource providers; the Container Apps environment (created if missing); the app
(created if missing, with a public placeholder image); its system-assigned identity; AcrPull for
that identity on the registry (if not granted yet); 'az containerapp registry set --identity
system'; then 'az containerapp update --yaml' with the full template (image, probes, scale,
ingress), since probes can only be set through YAML, ARM or Bicep. Finally it prints the scoring
URL and posts azureml/sample-request.json to it with scripts/invoke.sh.

Environment (.env.example):
  AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP (must exist), AZURE_LOCATION, ACR_NAME,
  CONTAINERAPP_NAME, CONTAINERAPP_ENV                                              required
  IMAGE_NAME (brain-tumor-ml), IMAGE_TAG (1.0), CONTAINERAPP_MIN_REPLICAS (1),
  CONTAINERAPP_MAX_REPLICAS (3)                                                    optional

Container Apps puts no authentication in front of external ingress: anyone with the URL can
score. Restrict it (ingress IP restrictions, built-in authentication, or API Management) before
real data goes through it.
EOF
}

image_tag=
min_replicas=
max_replicas=
print_yaml=0
smoke=1
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --image-tag) image_tag=${2:?--image-tag needs a value}; shift ;;
    --min-replicas) min_replicas=${2:?--min-replicas needs a number}; shift ;;
    --max-replicas) max_replicas=${2:?--max-replicas needs a number}; shift ;;
    --print-yaml) print_yaml=1 ;;
    --skip-smoke-test) smoke=0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

load_env_file
if ((print_yaml)); then
  require_env ACR_NAME
else
  require_env AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_LOCATION ACR_NAME CONTAINERAPP_NAME CONTAINERAPP_ENV
fi
require_cmd python3 "it renders the app's YAML from infra/containerapp.json"
image_tag=${image_tag:-${IMAGE_TAG:-1.0}}
min_replicas=${min_replicas:-${CONTAINERAPP_MIN_REPLICAS:-1}}
max_replicas=${max_replicas:-${CONTAINERAPP_MAX_REPLICAS:-3}}
[[ "$min_replicas" =~ ^[0-9]+$ && "$max_replicas" =~ ^[0-9]+$ ]] || die "replica counts must be numbers"
((max_replicas >= 1 && min_replicas <= max_replicas)) || die "need 1 <= max replicas and min <= max"
registry=$ACR_NAME.azurecr.io
image=$registry/${IMAGE_NAME:-brain-tumor-ml}:$image_tag

# The app's template: the fixed part (port, probes, env, resources, termination grace, scale
# rules) comes from infra/containerapp.json, the one source that infra/main.json deploys too;
# this script adds the registry, the image, the replica range and the ingress settings. The numbers
# in that file, and why: port, routes and server settings match azureml/deployment.yml; the
# container gets 2 vCPUs / 4 GiB (a consumption-plan size) and sees the host's cores, so ONNX
# Runtime and the HTTP workers are sized to the CPU limit explicitly.
# - Startup probe: /health answers as soon as the server listens (about 0.1 s; model loading
#   follows in the background): 10 x 3 s is ample.
# - Readiness: /ready is 200 once the model is loaded and warmed up (under 1 s), 503 from SIGTERM
#   on, which takes the replica out of the load balancer during the 5 s drain.
# - Liveness: /health; 3 misses 10 s apart restart the replica.
# - Scale: one more replica per 16 concurrent requests, the same per-instance concurrency as the
#   Azure ML deployment (16 requests x 8 images = the queue of 128 images).
# - terminationGracePeriodSeconds 35 > drain 5 s + in-flight 25 s.
# JSON is YAML, so python3 writes the document (block style, strings JSON-quoted) without PyYAML.
app_settings=$repo_root/infra/containerapp.json
app_yaml() {
  python3 - "$app_settings" "$registry" "$image" "$min_replicas" "$max_replicas" <<'PY'
import json
import sys

path, registry, image, min_replicas, max_replicas = sys.argv[1:]
try:
    with open(path, encoding="utf-8") as file:
        settings = json.load(file)
except (OSError, ValueError) as error:
    sys.exit(f"error: {path}: {error}")
needed = ("targetPort", "terminationGracePeriodSeconds", "resources", "env", "probes", "scaleRules")
missing = [key for key in needed if key not in settings]
if missing:
    sys.exit(f"error: {path} lacks {', '.join(missing)}")

document = {"properties": {
    "configuration": {
        "activeRevisionsMode": "Single",
        "ingress": {"external": True, "targetPort": settings["targetPort"], "transport": "auto",
                    "allowInsecure": False},
        "registries": [{"server": registry, "identity": "system"}],
    },
    "template": {
        "terminationGracePeriodSeconds": settings["terminationGracePeriodSeconds"],
        "containers": [{"name": "scorer", "image": image, "resources": settings["resources"],
                        "env": settings["env"], "probes": settings["probes"]}],
        "scale": {"minReplicas": int(min_replicas), "maxReplicas": int(max_replicas),
                  "rules": settings["scaleRules"]},
    },
}}


def scalar(value):
    return json.dumps(value)  # true/false, numbers, and strings in double quotes: all valid YAML


def emit(value, indent):
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                print(f"{pad}{key}:")
                emit(item, indent + 2)
            else:
                print(f"{pad}{key}: {scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict) and item:
                first, *rest = item.items()
                key, sub = first
                if isinstance(sub, (dict, list)) and sub:
                    print(f"{pad}- {key}:")
                    emit(sub, indent + 4)
                else:
                    print(f"{pad}- {key}: {scalar(sub)}")
                emit(dict(rest), indent + 2)
            else:
                print(f"{pad}- {scalar(item)}")


emit(document, 0)
PY
}

if ((print_yaml)); then
  app_yaml
  exit 0
fi

require_cmd az "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli"
sub=(--subscription "$AZURE_SUBSCRIPTION_ID")
rg=(--resource-group "$AZURE_RESOURCE_GROUP")

resource_exists az group show --name "$AZURE_RESOURCE_GROUP" "${sub[@]}" ||
  die "resource group $AZURE_RESOURCE_GROUP not found (create it: az group create -n $AZURE_RESOURCE_GROUP -l $AZURE_LOCATION)"
acr_id=$(az acr show --name "$ACR_NAME" "${sub[@]}" --query id -o tsv) || die "registry $ACR_NAME not found"
az acr repository show --name "$ACR_NAME" --image "${image#"$registry"/}" "${sub[@]}" >/dev/null 2>&1 ||
  die "$image not found: push it first (scripts/acr-push.sh)"

log "resource providers Microsoft.App and Microsoft.OperationalInsights"
az provider register --namespace Microsoft.App --wait "${sub[@]}"
az provider register --namespace Microsoft.OperationalInsights --wait "${sub[@]}"

if resource_exists az containerapp env show --name "$CONTAINERAPP_ENV" "${rg[@]}" "${sub[@]}"; then
  log "environment $CONTAINERAPP_ENV exists"
else
  log "creating environment $CONTAINERAPP_ENV in $AZURE_LOCATION"
  az containerapp env create --name "$CONTAINERAPP_ENV" "${rg[@]}" --location "$AZURE_LOCATION" "${sub[@]}" >/dev/null
fi

# The app is created with a public placeholder image first: its identity must exist (and be
# allowed to pull) before a revision can pull from the private registry.
if resource_exists az containerapp show --name "$CONTAINERAPP_NAME" "${rg[@]}" "${sub[@]}"; then
  log "app $CONTAINERAPP_NAME exists"
else
  log "creating app $CONTAINERAPP_NAME (placeholder image until the registry identity is set up)"
  az containerapp create --name "$CONTAINERAPP_NAME" "${rg[@]}" --environment "$CONTAINERAPP_ENV" \
    --image mcr.microsoft.com/k8se/quickstart:latest --min-replicas 0 --max-replicas 1 "${sub[@]}" >/dev/null
fi

log "system-assigned identity with AcrPull on $ACR_NAME"
az containerapp identity assign --name "$CONTAINERAPP_NAME" "${rg[@]}" --system-assigned "${sub[@]}" >/dev/null
principal=$(az containerapp identity show --name "$CONTAINERAPP_NAME" "${rg[@]}" "${sub[@]}" --query principalId -o tsv)
[[ -n "$principal" ]] || die "the app has no system-assigned identity"
granted=$(az role assignment list --assignee "$principal" --role AcrPull --scope "$acr_id" "${sub[@]}" \
  --query "length(@)" -o tsv)
if [[ "${granted:-0}" == 0 ]]; then
  az role assignment create --assignee-object-id "$principal" --assignee-principal-type ServicePrincipal \
    --role AcrPull --scope "$acr_id" "${sub[@]}" >/dev/null
  log "AcrPull granted (it can take a minute to apply; a first pull failure is retried)"
fi
az containerapp registry set --name "$CONTAINERAPP_NAME" "${rg[@]}" --server "$registry" --identity system \
  "${sub[@]}" >/dev/null

spec=$(mktemp "${TMPDIR:-/tmp}/containerapp.XXXXXX")
trap 'rm -f "$spec"' EXIT
app_yaml >"$spec"
log "updating $CONTAINERAPP_NAME: $image, probes, ingress :8000, scale $min_replicas-$max_replicas"
az containerapp update --name "$CONTAINERAPP_NAME" "${rg[@]}" --yaml "$spec" "${sub[@]}" >/dev/null

fqdn=$(az containerapp show --name "$CONTAINERAPP_NAME" "${rg[@]}" "${sub[@]}" \
  --query properties.configuration.ingress.fqdn -o tsv)
[[ -n "$fqdn" ]] || die "the app has no ingress FQDN"
uri=https://$fqdn/score
echo "scoring URI: $uri"
echo "demo page: https://$fqdn/ui"

if ((smoke)); then
  request=$(sample_request)
  log "smoke test: POST ${request#"$repo_root"/} to $uri"
  # Readiness gates traffic; a just-created revision may still be pulling the image.
  for attempt in 1 2 3 4 5 6; do
    if "$repo_root/scripts/invoke.sh" --url "$uri" --request-file "$request"; then
      log "smoke test passed"
      exit 0
    fi
    ((attempt < 6)) && { log "not answering yet; retrying in 20 s"; sleep "${SMOKE_RETRY_SECONDS:-20}"; }
  done
  die "the smoke test failed; see: scripts/logs.sh containerapp --system"
fi
