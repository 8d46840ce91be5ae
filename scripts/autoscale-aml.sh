#!/usr/bin/env bash
# Creates or updates the Azure Monitor autoscale setting of an Azure ML managed online deployment:
# scale out on CPU (the deployment's CpuUtilizationPercentage) or on request latency (the
# endpoint's RequestLatency for this deployment), scale in on CPU only, slowly and one instance at
# a time, between AML_AUTOSCALE_MIN and AML_AUTOSCALE_MAX instances. Safe to re-run: an existing
# setting gets the new limits and its rules replaced, never duplicated. docs/scaling.md explains
# the numbers.
#
# Sources: azureml-examples cli/deploy-moe-autoscale.sh and learn.microsoft.com
# how-to-autoscale-endpoints (the commands, the two metrics, --resource for the endpoint's metric);
# Azure Monitor's autoscale-understanding-settings and autoscale-best-practices (any scale-out rule
# scales out, all scale-in rules must agree to scale in; a cooldown holds every next action).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib/azure.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/azure.sh"

usage() {
  cat <<'EOF'
Usage: scripts/autoscale-aml.sh [options]

  --deployment NAME   the deployment to scale (default: blue)
  --endpoint NAME     endpoint name (default: $AML_ENDPOINT_NAME)
  -h, --help          show this help

Rules (one setting per deployment, named autoscale-<endpoint>-<deployment>, in $AZURE_RESOURCE_GROUP):
  scale out by 1  when CpuUtilizationPercentage > 40 % over 5 minutes           (then 15 min cooldown)
  scale out by 1  when RequestLatency of this deployment > AML_AUTOSCALE_LATENCY_MS
                  over 5 minutes                                                 (then 15 min cooldown)
  scale in by 1   when CpuUtilizationPercentage < 15 % over 30 minutes          (then 20 min cooldown)
A re-run updates the instance limits and replaces the rules of the setting's default profile
(rules added there by hand are removed).

Environment (.env.example):
  AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE, AML_ENDPOINT_NAME     required
  AML_AUTOSCALE_MIN (1), AML_AUTOSCALE_MAX (3), AML_AUTOSCALE_DEFAULT (the minimum),
  AML_AUTOSCALE_LATENCY_MS (1000)                                                    optional

Needs the deployment to exist (scripts/deploy-aml.sh) and the right to write
Microsoft.Insights/autoscalesettings in the resource group. A later scripts/deploy-aml.sh run
sets the deployment's instance_count from its YAML again; autoscale takes it from there.
EOF
}

# The thresholds. A Standard_DS3_v2 has 4 vCPUs on 2 physical cores, and ONNX Runtime runs one
# thread per physical core (azureml/deployment.yml): a saturated instance shows about 50-60 % CPU,
# never 100 %. 40 % means the model is busy about 80 % of the time; below 15 % (under 30 % busy)
# one instance fewer still stays under the scale-out line (15 % x 2/1 = 30 % < 40 %), which is the
# margin Azure Monitor's flapping check needs.
cpu_out=40
cpu_in=15
# Scale-out acts within about 5 minutes, but an added instance takes far longer to serve (users
# report 12-18 minutes, Azure/azureml-examples#3515): the 15-minute cooldown lets each decision
# see the previous one's instance. Scale-in waits for
# 30 quiet minutes and removes one instance at a time, 20 minutes apart. A cooldown holds every
# next action, scale-out included, so it is kept well below the 30-minute window.
out_window=5m
out_cooldown=15
in_window=30m
in_cooldown=20

deployment=blue
endpoint=
while (($#)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    --deployment) deployment=${2:?--deployment needs a value}; shift ;;
    --endpoint) endpoint=${2:?--endpoint needs a value}; shift ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ "$deployment" =~ ^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$ ]] || die "--deployment '$deployment' is not a deployment name"

load_env_file
required=(AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZUREML_WORKSPACE)
[[ -n "$endpoint" ]] || required+=(AML_ENDPOINT_NAME)
require_env "${required[@]}"

endpoint=${endpoint:-$AML_ENDPOINT_NAME}
min=${AML_AUTOSCALE_MIN:-1}
max=${AML_AUTOSCALE_MAX:-3}
default=${AML_AUTOSCALE_DEFAULT:-$min}
latency_ms=${AML_AUTOSCALE_LATENCY_MS:-1000}
for value in "$min" "$max" "$default" "$latency_ms"; do
  [[ "$value" =~ ^[1-9][0-9]*$ ]] ||
    die "AML_AUTOSCALE_MIN, _MAX, _DEFAULT and _LATENCY_MS must be whole numbers above 0, not '$value'"
done
# A managed deployment keeps at least one instance; min = max would leave autoscale nothing to do.
((1 <= min && min < max)) || die "need 1 <= AML_AUTOSCALE_MIN ($min) < AML_AUTOSCALE_MAX ($max)"
((min <= default && default <= max)) || die "AML_AUTOSCALE_DEFAULT ($default) must lie between $min and $max"
require_cmd az "install the Azure CLI and its ml extension: az extension add -n ml"

ml=(--subscription "$AZURE_SUBSCRIPTION_ID" --resource-group "$AZURE_RESOURCE_GROUP" --workspace-name "$AZUREML_WORKSPACE")
rg=(--resource-group "$AZURE_RESOURCE_GROUP" --subscription "$AZURE_SUBSCRIPTION_ID")
name=autoscale-$endpoint-$deployment

# The Azure Resource Manager ids: the deployment is scaled, the endpoint emits RequestLatency.
deployment_id=$(az ml online-deployment show --name "$deployment" --endpoint-name "$endpoint" "${ml[@]}" \
  --query id -o tsv) || die "deployment $deployment not found on endpoint $endpoint: deploy it first (scripts/deploy-aml.sh --deployment $deployment)"
endpoint_id=$(az ml online-endpoint show --name "$endpoint" "${ml[@]}" --query id -o tsv) ||
  die "endpoint $endpoint not found"
[[ -n "$deployment_id" && -n "$endpoint_id" ]] || die "no resource id for $endpoint/$deployment"

limits=(--min-count "$min" --max-count "$max" --count "$default")
if resource_exists az monitor autoscale show --name "$name" "${rg[@]}"; then
  log "autoscale setting $name: update to $min-$max instances (default $default), rules replaced"
  az monitor autoscale update --name "$name" "${limits[@]}" "${rg[@]}" >/dev/null
  az monitor autoscale rule delete --autoscale-name "$name" --index '*' "${rg[@]}" >/dev/null
else
  log "autoscale setting $name: create for $endpoint/$deployment, $min-$max instances (default $default)"
  az monitor autoscale create --name "$name" --resource "$deployment_id" "${limits[@]}" "${rg[@]}" >/dev/null
fi

# rule in|out COOLDOWN CONDITION [--resource ID]: a rule of the setting's default profile that
# scales by one instance.
rule() {
  az monitor autoscale rule create --autoscale-name "$name" --scale "$1" 1 --cooldown "$2" \
    --condition "$3" "${@:4}" "${rg[@]}" >/dev/null
}
rule out "$out_cooldown" "CpuUtilizationPercentage > $cpu_out avg $out_window"
# RequestLatency belongs to the endpoint (--resource); its `deployment` dimension keeps the other
# deployments' traffic (green, int8) out of this one's decision.
rule out "$out_cooldown" "RequestLatency > $latency_ms avg $out_window where deployment == $deployment" \
  --resource "$endpoint_id"
# Scale-in on CPU alone: all scale-in rules must agree, RequestLatency (an average over requests)
# has nothing to report without traffic, and autoscale never scales in on a metric it cannot read:
# a latency scale-in rule would keep the deployment at its peak size through every quiet night.
rule in "$in_cooldown" "CpuUtilizationPercentage < $cpu_in avg $in_window"

log "autoscale setting $name: 3 rules; CPU > $cpu_out % or latency > $latency_ms ms: +1; CPU < $cpu_in % for $in_window: -1"
echo "autoscale setting: $name ($min-$max instances of $endpoint/$deployment)"
