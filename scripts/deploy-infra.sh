#!/usr/bin/env bash
# Deploys the private network of infra/main.json (docs/network.md): VNet with private subnets,
# Azure Firewall as the only way out (UDR 0.0.0.0/0), the registry behind a private endpoint, an
# internal Container Apps environment with the scorer app, and optionally a Site-to-Site VPN and
# an Azure ML workspace with a managed network. Every name comes from the environment (.env); the
# app's port, probes, env, resources and scale rules from infra/containerapp.json. A what-if
# always runs first; the deployment itself only after a yes (a prompt, or --yes).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/deploy-infra.sh [--what-if] [--yes]

  --what-if   preview only: 'az deployment group what-if' (the resource group must exist);
              changes nothing
  --yes       deploy after the what-if without asking (needed when stdin is not a terminal)
  -h, --help  show this help

Without --what-if: creates the resource group if missing, runs 'az deployment group what-if',
asks "Deploy these changes?" (or takes --yes), then 'az deployment group create' (incremental
mode: nothing outside the template is deleted) and prints the outputs: the app's internal FQDN,
the registry login server and the firewall's private IP. Deployment name: brain-tumor-infra.

Environment (.env.example; template parameter in brackets, infra/README.md):
  required  AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_LOCATION [location],
            ACR_NAME [registryName], CONTAINERAPP_NAME [containerAppName],
            CONTAINERAPP_ENV [environmentName]
  optional  (unset: the template's default) IMAGE_NAME [imageName], IMAGE_TAG [imageTag],
            CONTAINERAPP_MIN_REPLICAS [minReplicas], CONTAINERAPP_MAX_REPLICAS [maxReplicas],
            VNET_NAME, VNET_ADDRESS_PREFIX, APP_SUBNET_PREFIX, PE_SUBNET_PREFIX,
            FIREWALL_SUBNET_PREFIX, GATEWAY_SUBNET_PREFIX, FIREWALL_NAME, ACR_PULL_IDENTITY,
            LOG_ANALYTICS_WORKSPACE
  VPN       DEPLOY_VPN=true [deployVpn] needs ONPREM_ADDRESS_PREFIXES (comma-separated CIDRs),
            ONPREM_GATEWAY_IP (the on-prem device's public IP) and VPN_SHARED_KEY; optional
            VPN_GATEWAY_SKU. Export VPN_SHARED_KEY in the shell (never in .env): it reaches az
            through a mode-600 parameters file in a temporary directory, deleted on exit, not
            on a command line (which any local user can read in the process list). Without
            DEPLOY_VPN the key is not sent, even if set.
  Azure ML  DEPLOY_AML=true [deployAml]; optional AZUREML_WORKSPACE, AML_STORAGE_ACCOUNT,
            AML_KEY_VAULT, AML_APP_INSIGHTS, AML_PUBLIC_NETWORK_ACCESS (Enabled/Disabled)

The image ($ACR_NAME.azurecr.io/$IMAGE_NAME:$IMAGE_TAG) is pulled by the app through the
registry's private endpoint. Resource providers named in the template are registered by Resource
Manager during the deployment, which needs */register/action on the subscription (Contributor or
Owner there); see docs/network.md for the steps that need other rights or the Portal.
EOF
}

what_if_only=0
assume_yes=0
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --what-if) what_if_only=1 ;;
    --yes | -y) assume_yes=1 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done

# The shared key is a secret: it must come from the shell, never from a file in the checkout.
key_in_shell=${VPN_SHARED_KEY:+set}
load_env_file
if [[ -n "${VPN_SHARED_KEY:-}" && -z "$key_in_shell" ]]; then
  die "VPN_SHARED_KEY is set in ${AZURE_ENV_FILE:-.env}: remove it there and export it in the shell instead"
fi

deploy_vpn=${DEPLOY_VPN:-}
deploy_aml=${DEPLOY_AML:-}
required=(AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_LOCATION ACR_NAME CONTAINERAPP_NAME CONTAINERAPP_ENV)
[[ "$deploy_vpn" == true ]] && required+=(ONPREM_ADDRESS_PREFIXES ONPREM_GATEWAY_IP VPN_SHARED_KEY)
require_env "${required[@]}"

# Environment variable -> template parameter (infra/README.md) and how the value is checked.
parameter_map=(
  "AZURE_LOCATION location string"
  "VNET_NAME vnetName string"
  "VNET_ADDRESS_PREFIX vnetAddressPrefix cidr"
  "APP_SUBNET_PREFIX appSubnetPrefix cidr"
  "PE_SUBNET_PREFIX privateEndpointSubnetPrefix cidr"
  "FIREWALL_SUBNET_PREFIX firewallSubnetPrefix cidr"
  "GATEWAY_SUBNET_PREFIX gatewaySubnetPrefix cidr"
  "FIREWALL_NAME firewallName string"
  "ACR_NAME registryName string"
  "ACR_PULL_IDENTITY identityName string"
  "LOG_ANALYTICS_WORKSPACE logAnalyticsName string"
  "CONTAINERAPP_ENV environmentName string"
  "CONTAINERAPP_NAME containerAppName string"
  "IMAGE_NAME imageName string"
  "IMAGE_TAG imageTag string"
  "CONTAINERAPP_MIN_REPLICAS minReplicas int"
  "CONTAINERAPP_MAX_REPLICAS maxReplicas int"
  "DEPLOY_VPN deployVpn bool"
  "VPN_GATEWAY_SKU vpnGatewaySku string"
  "ONPREM_ADDRESS_PREFIXES onPremAddressPrefixes cidr-list"
  "ONPREM_GATEWAY_IP onPremGatewayIp ipv4"
  "DEPLOY_AML deployAml bool"
  "AZUREML_WORKSPACE amlWorkspaceName string"
  "AML_STORAGE_ACCOUNT amlStorageAccountName string"
  "AML_KEY_VAULT amlKeyVaultName string"
  "AML_APP_INSIGHTS amlAppInsightsName string"
  "AML_PUBLIC_NETWORK_ACCESS amlPublicNetworkAccess access"
)
octet='(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])'
ipv4="$octet(\\.$octet){3}"
cidr="$ipv4/(3[0-2]|[12]?[0-9])"
template=$repo_root/infra/main.json
app_settings=$repo_root/infra/containerapp.json
parameters=(--parameters "appSettings=@$app_settings")
problems=()
for entry in "${parameter_map[@]}"; do
  read -r var param kind <<<"$entry"
  value=${!var:-}
  [[ -n "$value" ]] || continue
  case "$kind" in
    int) [[ "$value" =~ ^(0|[1-9][0-9]*)$ ]] || problems+=("$var=$value is not a whole number") ;;
    bool) [[ "$value" == true || "$value" == false ]] || problems+=("$var=$value: use true or false") ;;
    cidr) [[ "$value" =~ ^$cidr$ ]] || problems+=("$var=$value is not an IPv4 prefix like 10.40.0.0/16") ;;
    ipv4) [[ "$value" =~ ^$ipv4$ ]] || problems+=("$var=$value is not an IPv4 address") ;;
    access) [[ "$value" == Enabled || "$value" == Disabled ]] || problems+=("$var=$value: use Enabled or Disabled") ;;
    cidr-list)
      value=${value// /}
      if [[ "$value" =~ ^$cidr(,$cidr)*$ ]]; then
        value="[\"${value//,/\",\"}\"]" # 10.1.0.0/16,10.2.0.0/16 -> ["10.1.0.0/16","10.2.0.0/16"]
      else
        problems+=("$var=$value is not a comma-separated list of IPv4 prefixes")
      fi
      ;;
  esac
  parameters+=(--parameters "$param=$value")
done
if [[ -n "${CONTAINERAPP_MIN_REPLICAS:-}${CONTAINERAPP_MAX_REPLICAS:-}" ]]; then
  min=${CONTAINERAPP_MIN_REPLICAS:-1} max=${CONTAINERAPP_MAX_REPLICAS:-3}
  if [[ "$min$max" =~ ^[0-9]+$ ]] && ! ((max >= 1 && min <= max)); then
    problems+=("need 1 <= CONTAINERAPP_MAX_REPLICAS and CONTAINERAPP_MIN_REPLICAS <= CONTAINERAPP_MAX_REPLICAS")
  fi
fi
if ((${#problems[@]})); then
  printf 'error: %s\n' "${problems[@]}" >&2
  exit 1
fi
[[ -f "$template" ]] || die "${template#"$repo_root"/} not found"
[[ -f "$app_settings" ]] || die "${app_settings#"$repo_root"/} not found"
require_cmd az "install the Azure CLI: https://learn.microsoft.com/cli/azure/install-azure-cli"
require_cmd python3 "it writes the VPN key's parameters file and formats the outputs"

scratch=$(mktemp -d "${TMPDIR:-/tmp}/deploy-infra.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
trap 'exit 130' INT # so that the EXIT trap removes the key file on Ctrl-C too
trap 'exit 143' TERM
if [[ "$deploy_vpn" == true ]]; then
  # vpnSharedKey (the template's default is an empty string, for deployments without the VPN).
  # Written by python3 from its environment (no command line carries the key) into a file readable
  # by the owner only; az reads '@file' in its own process.
  secret_file=$scratch/vpn.parameters.json
  (
    umask 077
    python3 - "$secret_file" <<'PY'
import json
import os
import sys

with open(sys.argv[1], "w", encoding="utf-8") as file:
    json.dump({"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",
               "contentVersion": "1.0.0.0",
               "parameters": {"vpnSharedKey": {"value": os.environ["VPN_SHARED_KEY"]}}}, file)
PY
  )
  parameters+=(--parameters "@$secret_file")
fi

sub=(--subscription "$AZURE_SUBSCRIPTION_ID")
rg=(--resource-group "$AZURE_RESOURCE_GROUP")
deployment=(--name brain-tumor-infra "${rg[@]}" --template-file "$template" "${parameters[@]}" "${sub[@]}")

if resource_exists az group show --name "$AZURE_RESOURCE_GROUP" "${sub[@]}"; then
  log "resource group $AZURE_RESOURCE_GROUP exists"
elif ((what_if_only)); then
  die "resource group $AZURE_RESOURCE_GROUP not found: a what-if needs it (az group create -n $AZURE_RESOURCE_GROUP -l $AZURE_LOCATION), or run without --what-if, which creates it"
else
  log "creating resource group $AZURE_RESOURCE_GROUP in $AZURE_LOCATION"
  az group create --name "$AZURE_RESOURCE_GROUP" --location "$AZURE_LOCATION" "${sub[@]}" >/dev/null
fi

log "what-if: infra/main.json in $AZURE_RESOURCE_GROUP (vpn: ${deploy_vpn:-false}, azure ml: ${deploy_aml:-false})"
az deployment group what-if "${deployment[@]}"
if ((what_if_only)); then
  exit 0
fi

if ((!assume_yes)); then
  [[ -t 0 ]] || die "stdin is not a terminal: review the what-if above, then re-run with --yes to deploy"
  read -r -p "Deploy these changes to $AZURE_RESOURCE_GROUP? [y/N] " reply
  [[ "$reply" =~ ^[Yy]([Ee][Ss])?$ ]] || die "not deployed"
fi

log "deploying (the firewall and, with DEPLOY_VPN, the VPN gateway take a while: 10-45 minutes)"
az deployment group create "${deployment[@]}" --mode Incremental --output none

outputs=$(az deployment group show --name brain-tumor-infra "${rg[@]}" "${sub[@]}" --query properties.outputs -o json)
python3 -c '
import json
import sys

outputs = {name.lower(): item.get("value") for name, item in (json.loads(sys.argv[1]) or {}).items()}
for label, name in (("container app FQDN (internal: resolves inside the VNet)", "containerAppFqdn"),
                    ("registry login server", "registryLoginServer"),
                    ("firewall private IP (next hop of the default route)", "firewallPrivateIp"),
                    ("AcrPull identity", "identityResourceId"),
                    ("Azure ML workspace", "amlWorkspaceId")):
    value = outputs.get(name.lower())
    if value:
        print(f"{label}: {value}")
' "$outputs"
# The internal environment's apps live under its default domain, which nothing inside the VNet
# resolves until a private zone of that name, with a wildcard record to the environment's static
# IP, is linked to it. ARM cannot name a resource after another's runtime property (the domain) in
# one template, so this step is the CLI's; it is idempotent like the rest.
output() {
  python3 -c 'import json, sys; print({k.lower(): v.get("value") for k, v in json.loads(sys.argv[1]).items()}.get(sys.argv[2].lower()) or "")' \
    "$outputs" "$1"
}
domain=$(output environmentDefaultDomain)
static_ip=$(output environmentStaticIp)
vnet=$(output vnetName)
[[ -n "$domain" && -n "$static_ip" && -n "$vnet" ]] || die "the deployment's outputs lack the environment's domain, static IP or VNet"
dns=(--resource-group "$AZURE_RESOURCE_GROUP" "${sub[@]}")
if resource_exists az network private-dns zone show --name "$domain" "${dns[@]}"; then
  log "private DNS zone $domain exists"
else
  log "private DNS zone $domain: *.$domain -> $static_ip inside $vnet"
  az network private-dns zone create --name "$domain" "${dns[@]}" --output none
fi
resource_exists az network private-dns link vnet show --zone-name "$domain" --name "$vnet" "${dns[@]}" ||
  az network private-dns link vnet create --zone-name "$domain" --name "$vnet" --virtual-network "$vnet" \
    --registration-enabled false "${dns[@]}" --output none
records=$(az network private-dns record-set a show --zone-name "$domain" --name '*' "${dns[@]}" \
  --query 'aRecords[].ipv4Address' -o tsv 2>/dev/null || true)
grep -qxF "$static_ip" <<<"$records" ||
  az network private-dns record-set a add-record --zone-name "$domain" --record-set-name '*' \
    --ipv4-address "$static_ip" "${dns[@]}" --output none
log "next: check egress and DNS from inside the environment (docs/network.md, \"Verify\")"
