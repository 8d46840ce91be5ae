"""Every resource in infra/main.json against Microsoft's own SDK models: its type and apiVersion
must be one the SDK sends a PUT with, and every key under it (properties, sku, identity, ...)
must be a serialised key of the SDK's model, walked recursively, the way Azure Resource Manager
would reject a misspelt property. ARM expressions are accepted as values; keys must exist.
A copy with a misspelt property and one with an apiVersion no SDK carries are shown to fail."""

import copy
import re
import unittest

from support import check_object, check_resource, iter_resources, models, template

VARIABLE = re.compile(r"^\[variables\('(\w+)'\)\]$")


def inline_variables(value, variables):
    """Replaces values that are exactly "[variables('x')]" by that variable, so they are walked too."""
    if isinstance(value, str) and VARIABLE.match(value) and isinstance(variables.get(VARIABLE.match(value).group(1)), (dict, list)):
        return inline_variables(variables[VARIABLE.match(value).group(1)], variables)
    if isinstance(value, dict):
        return {k: inline_variables(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [inline_variables(v, variables) for v in value]
    return value

# resource type → (wheel, folder inside it, model class the PUT takes). One API version per
# package (the TypeSpec-generated ones carry one; for the multi-API ones the folder picks it).
SDK = {
    "Microsoft.Network/virtualNetworks": ("azure-mgmt-network", "azure/mgmt/network", "VirtualNetwork"),
    "Microsoft.Network/routeTables": ("azure-mgmt-network", "azure/mgmt/network", "RouteTable"),
    "Microsoft.Network/publicIPAddresses": ("azure-mgmt-network", "azure/mgmt/network", "PublicIPAddress"),
    "Microsoft.Network/firewallPolicies": ("azure-mgmt-network", "azure/mgmt/network", "FirewallPolicy"),
    "Microsoft.Network/firewallPolicies/ruleCollectionGroups":
        ("azure-mgmt-network", "azure/mgmt/network", "FirewallPolicyRuleCollectionGroup"),
    "Microsoft.Network/azureFirewalls": ("azure-mgmt-network", "azure/mgmt/network", "AzureFirewall"),
    "Microsoft.Network/privateEndpoints": ("azure-mgmt-network", "azure/mgmt/network", "PrivateEndpoint"),
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups":
        ("azure-mgmt-network", "azure/mgmt/network", "PrivateDnsZoneGroup"),
    "Microsoft.Network/virtualNetworkGateways": ("azure-mgmt-network", "azure/mgmt/network", "VirtualNetworkGateway"),
    "Microsoft.Network/localNetworkGateways": ("azure-mgmt-network", "azure/mgmt/network", "LocalNetworkGateway"),
    "Microsoft.Network/connections":
        ("azure-mgmt-network", "azure/mgmt/network", "VirtualNetworkGatewayConnection"),
    "Microsoft.Network/privateDnsZones": ("azure-mgmt-privatedns", "azure/mgmt/privatedns", "PrivateZone"),
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks":
        ("azure-mgmt-privatedns", "azure/mgmt/privatedns", "VirtualNetworkLink"),
    "Microsoft.ContainerRegistry/registries":
        ("azure-mgmt-containerregistry", "azure/mgmt/containerregistry", "Registry"),
    "Microsoft.ManagedIdentity/userAssignedIdentities": ("azure-mgmt-msi", "azure/mgmt/msi/v2024_11_30", "Identity"),
    "Microsoft.Authorization/roleAssignments":
        ("azure-mgmt-authorization", "azure/mgmt/authorization/v2022_04_01", "RoleAssignmentCreateParameters"),
    "Microsoft.OperationalInsights/workspaces": ("azure-mgmt-loganalytics", "azure/mgmt/loganalytics", "Workspace"),
    "Microsoft.App/managedEnvironments": ("azure-mgmt-appcontainers", "azure/mgmt/appcontainers", "ManagedEnvironment"),
    "Microsoft.App/containerApps": ("azure-mgmt-appcontainers", "azure/mgmt/appcontainers", "ContainerApp"),
    "Microsoft.Storage/storageAccounts":
        ("azure-mgmt-storage", "azure/mgmt/storage", "StorageAccountCreateParameters"),
    "Microsoft.KeyVault/vaults": ("azure-mgmt-keyvault", "azure/mgmt/keyvault", "VaultCreateOrUpdateParameters"),
    "Microsoft.Insights/components":
        ("azure-mgmt-applicationinsights", "azure/mgmt/applicationinsights/v2020_02_02", "ApplicationInsightsComponent"),
    # The Azure ML workspace: azure-mgmt-machinelearningservices stops at 2020-08-01, so the
    # ARM client inside Microsoft's azure-ai-ml SDK is the current model.
    "Microsoft.MachineLearningServices/workspaces":
        ("azure-ai-ml", "azure/ai/ml/_restclient/arm_ml_service", "Workspace"),
}


def problems(resources, variables=None):
    variables = template()["variables"] if variables is None else variables
    found = []
    for resource in iter_resources(resources):
        resource = inline_variables(resource, variables)
        sdk = SDK.get(resource["type"])
        if sdk is None:
            found.append(f"{resource['type']}: no SDK model mapped in tests/infra/test_sdk_models.py")
            continue
        found.extend(check_resource(resource, sdk))
    return found


class SdkModels(unittest.TestCase):
    def test_every_resource_matches_the_sdk_models(self):
        self.assertEqual(problems(template()["resources"]), [])

    def test_the_subnets_in_variables_match_the_sdk_subnet_model(self):
        # The VNet's subnet list is an expression (GatewaySubnet is optional): check its parts.
        table = models("azure-mgmt-network", "azure/mgmt/network")
        errors = []
        for name in ("baseSubnets", "gatewaySubnets"):
            for index, subnet in enumerate(template()["variables"][name]):
                check_object(table, "Subnet", subnet, f"variables.{name}[{index}]", errors)
        self.assertEqual(errors, [])
        broken = copy.deepcopy(template()["variables"]["baseSubnets"][0])
        broken["properties"]["delegation"] = broken["properties"].pop("delegations")
        check_object(table, "Subnet", broken, "broken", errors)
        self.assertIn("broken.properties.delegation: no such property in SubnetPropertiesFormat", errors)

    def test_every_type_is_mapped_and_checked(self):
        types = {r["type"] for r in iter_resources(template()["resources"])}
        self.assertLessEqual(types, set(SDK))
        self.assertGreaterEqual(len(types), 15, "the walk must have covered the template")

    def test_a_misspelt_property_fails(self):
        resources = copy.deepcopy(template()["resources"])
        vnet = next(r for r in resources if r["type"] == "Microsoft.Network/virtualNetworks")
        vnet["properties"]["adressSpace"] = vnet["properties"].pop("addressSpace")
        app = next(r for r in resources if r["type"] == "Microsoft.App/containerApps")
        app["properties"]["configuration"]["ingress"]["targetPorts"] = 8000
        found = "\n".join(problems(resources))
        self.assertIn("adressSpace: no such property", found)
        self.assertIn("ingress.targetPorts: no such property", found)

    def test_a_nested_misspelling_in_a_polymorphic_rule_fails(self):
        resources = copy.deepcopy(template()["resources"])
        group = next(r for r in resources if r["type"].endswith("/ruleCollectionGroups"))
        group["properties"]["ruleCollections"][0]["rules"][0]["targetFqdn"] = ["example.com"]
        self.assertIn("targetFqdn: no such property", "\n".join(problems(resources)))

    def test_an_unknown_api_version_fails(self):
        resources = copy.deepcopy(template()["resources"])
        registry = next(r for r in resources if r["type"] == "Microsoft.ContainerRegistry/registries")
        registry["apiVersion"] = "2099-01-01"
        self.assertTrue(any("2099-01-01" in p and "no PUT" in p for p in problems(resources)))


if __name__ == "__main__":
    unittest.main()
