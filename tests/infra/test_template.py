"""infra/main.json and main.parameters.json on their own: valid JSON, references that resolve,
no secret defaults, optional modules off by default, the Container App's settings taken from
the appSettings parameter (infra/containerapp.json) and the firewall allowing only the FQDNs
below, each group with the Microsoft page that lists it."""

import json
import re
import unittest

from support import APP_SETTINGS, PARAMETERS, TEMPLATE, iter_resources, load_json, template

CONTAINER_APPS_FIREWALL = "https://learn.microsoft.com/azure/container-apps/use-azure-firewall#application-rules"
LOG_ANALYTICS_FIREWALL = "https://learn.microsoft.com/azure/azure-monitor/agents/log-analytics-agent#firewall-requirements"
MONITOR_AGENT_FIREWALL = ("https://learn.microsoft.com/azure/azure-monitor/agents/"
                          "azure-monitor-agent-network-configuration#azure-firewall-endpoints")

# The only FQDNs the firewall may allow, by rule, with where Microsoft lists them.
ALLOWED_FQDNS = {
    # "All scenarios": MCR, and the AKS binaries under the environment.
    "container-apps-platform": ({"mcr.microsoft.com", "*.data.mcr.microsoft.com", "packages.aks.azure.com",
                                 "acs-mirror.azureedge.net"}, CONTAINER_APPS_FIREWALL),
    # "Managed Identity" row, plus login.microsoft.com from the "Azure Container Registry" row (the
    # registry itself is behind its private endpoint, so its FQDNs and *.blob.core.windows.net are
    # not opened).
    "managed-identity": ({"*.identity.azure.net", "login.microsoftonline.com", "*.login.microsoftonline.com",
                          "*.login.microsoft.com", "login.microsoft.com"}, CONTAINER_APPS_FIREWALL),
    # Log Analytics ingestion (agent resources) and the Azure Monitor control endpoint.
    "log-analytics": ({"*.ods.opinsights.azure.com", "*.oms.opinsights.azure.com"}, LOG_ANALYTICS_FIREWALL,
                      {"global.handler.control.monitor.azure.com"}, MONITOR_AGENT_FIREWALL),
}

REFERENCE = re.compile(r"\b(parameters|variables)\('([^']+)'\)")
SETTINGS = re.compile(r"^\[parameters\('appSettings'\)\.(\w+)\]$")


def strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def the(kind):
    found = [r for r in iter_resources(template()["resources"]) if r["type"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


class Template(unittest.TestCase):
    def test_valid_json_with_the_deployment_schema(self):
        for path in (TEMPLATE, PARAMETERS):
            with self.subTest(path=path.name):
                document = json.loads(path.read_text(encoding="utf-8"))
                self.assertEqual(document["contentVersion"], "1.0.0.0")
        self.assertIn("deploymentTemplate.json", template()["$schema"])

    def test_every_reference_names_a_declared_one(self):
        doc = template()
        declared = {"parameters": set(doc["parameters"]), "variables": set(doc["variables"])}
        used = {"parameters": set(), "variables": set()}
        for text in strings({k: doc[k] for k in ("variables", "resources", "outputs")}):
            for kind, name in REFERENCE.findall(text):
                used[kind].add(name)
                self.assertIn(name, declared[kind], f"{kind}('{name}') is not declared")
        self.assertEqual(declared["parameters"] - used["parameters"], set(), "unused parameters")
        self.assertEqual(declared["variables"] - used["variables"], set(), "unused variables")

    def test_the_parameters_file_declares_only_known_parameters_and_no_secret(self):
        declared = template()["parameters"]
        values = load_json(PARAMETERS)["parameters"]
        for name in values:
            self.assertIn(name, declared)
        self.assertNotIn("vpnSharedKey", values)
        self.assertNotIn("appSettings", values, "passed from infra/containerapp.json, not copied")

    def test_no_secure_parameter_has_a_secret_default(self):
        # An empty default (so that deployments without the VPN may omit the key) is the only one
        # allowed, as in Microsoft's arm-ttk "secure parameters can't have hardcoded default".
        secure = {n: p for n, p in template()["parameters"].items() if p["type"].lower() in ("securestring", "secureobject")}
        self.assertEqual(set(secure), {"vpnSharedKey"})
        for name, parameter in secure.items():
            self.assertIn(parameter.get("defaultValue", ""), ("", {}), name)
        for name, parameter in template()["parameters"].items():
            if any(word in name.lower() for word in ("key", "password", "secret", "token")) and "Name" not in name:
                self.assertIn(parameter["type"].lower(), ("securestring", "secureobject"), name)

    def test_optional_modules_are_off_by_default(self):
        parameters = template()["parameters"]
        conditions = {r.get("condition") for r in template()["resources"] if "condition" in r}
        self.assertEqual(conditions, {"[parameters('deployVpn')]", "[parameters('deployAml')]"})
        for name in ("deployVpn", "deployAml"):
            self.assertEqual(parameters[name]["type"], "bool")
            self.assertIs(parameters[name]["defaultValue"], False)
            self.assertIs(load_json(PARAMETERS)["parameters"][name]["value"], False)
        vpn = {r["type"] for r in template()["resources"] if r.get("condition") == "[parameters('deployVpn')]"}
        self.assertLessEqual({"Microsoft.Network/virtualNetworkGateways", "Microsoft.Network/localNetworkGateways",
                              "Microsoft.Network/connections"}, vpn)
        aml = {r["type"] for r in template()["resources"] if r.get("condition") == "[parameters('deployAml')]"}
        self.assertLessEqual({"Microsoft.MachineLearningServices/workspaces", "Microsoft.Storage/storageAccounts",
                              "Microsoft.KeyVault/vaults", "Microsoft.Insights/components"}, aml)

    def test_the_container_app_takes_its_settings_from_app_settings(self):
        app = the("Microsoft.App/containerApps")["properties"]
        container = app["template"]["containers"][0]
        wired = {
            "targetPort": app["configuration"]["ingress"]["targetPort"],
            "terminationGracePeriodSeconds": app["template"]["terminationGracePeriodSeconds"],
            "env": container["env"],
            "resources": container["resources"],
            "probes": container["probes"],
            "scaleRules": app["template"]["scale"]["rules"],
        }
        for key, value in wired.items():
            with self.subTest(setting=key):
                match = SETTINGS.match(value) if isinstance(value, str) else None
                self.assertIsNotNone(match, f"{key} must be [parameters('appSettings').{key}], not a copy")
                self.assertEqual(match.group(1), key)
        settings = load_json(APP_SETTINGS)
        self.assertLessEqual(set(wired), set(settings), "every key read exists in infra/containerapp.json")
        # No value of containerapp.json is copied into the template.
        text = TEMPLATE.read_text(encoding="utf-8")
        for probe in settings["probes"]:
            self.assertNotIn(f'"{probe["httpGet"]["path"]}"', text)
        for var in settings["env"]:
            self.assertNotIn(var["name"], text)
        self.assertEqual(app["template"]["scale"]["minReplicas"], "[parameters('minReplicas')]")
        self.assertEqual(app["template"]["scale"]["maxReplicas"], "[parameters('maxReplicas')]")
        self.assertEqual(app["configuration"]["registries"][0]["identity"],
                         "[resourceId('Microsoft.ManagedIdentity/userAssignedIdentities', parameters('identityName'))]")
        self.assertIn("parameters('imageName')", template()["variables"]["image"])
        self.assertIn("parameters('imageTag')", template()["variables"]["image"])

    def test_the_firewall_allows_only_the_documented_fqdns(self):
        group = the("Microsoft.Network/firewallPolicies/ruleCollectionGroups")
        collections = group["properties"]["ruleCollections"]
        rules = {}
        for collection in collections:
            self.assertEqual(collection["action"]["type"], "Allow")
            for rule in collection["rules"]:
                self.assertEqual(rule["ruleType"], "ApplicationRule")
                self.assertEqual(rule["protocols"], [{"protocolType": "Https", "port": 443}])
                self.assertEqual(rule["sourceAddresses"], ["[parameters('appSubnetPrefix')]"])
                rules[rule["name"]] = rule
        self.assertEqual(set(rules), set(ALLOWED_FQDNS))
        for name, entry in ALLOWED_FQDNS.items():
            with self.subTest(rule=name):
                allowed = set().union(*entry[0::2])
                self.assertEqual(set(rules[name]["targetFqdns"]), allowed)
                for fqdn in rules[name]["targetFqdns"]:
                    self.assertNotEqual(fqdn.strip(), "*")
                    self.assertFalse(fqdn.startswith("[") , "FQDNs are literal")
                self.assertIn("learn.microsoft.com", rules[name]["description"], "each rule cites its source")
                for source in entry[1::2]:
                    self.assertTrue(source.startswith("https://learn.microsoft.com/"))
        # No network rules, no other rule collection group.
        self.assertEqual(len([r for r in template()["resources"] if r["type"].endswith("/ruleCollectionGroups")]), 1)

    def test_egress_goes_through_the_firewall(self):
        route = the("Microsoft.Network/routeTables")["properties"]["routes"][0]["properties"]
        self.assertEqual(route["addressPrefix"], "0.0.0.0/0")
        self.assertEqual(route["nextHopType"], "VirtualAppliance")
        self.assertEqual(template()["variables"]["firewallPrivateIp"], "[cidrHost(parameters('firewallSubnetPrefix'), 3)]")
        app_subnet = template()["variables"]["baseSubnets"][0]["properties"]
        self.assertIn("routeTable", app_subnet)
        self.assertEqual(app_subnet["delegations"][0]["properties"]["serviceName"], "Microsoft.App/environments")
        names = {s["name"] for s in template()["variables"]["baseSubnets"] + template()["variables"]["gatewaySubnets"]}
        self.assertLessEqual({"AzureFirewallSubnet", "GatewaySubnet"}, names)
        env = the("Microsoft.App/managedEnvironments")["properties"]
        self.assertIs(env["vnetConfiguration"]["internal"], True)
        self.assertEqual(env["workloadProfiles"][0]["workloadProfileType"], "Consumption")
        self.assertEqual(the("Microsoft.Network/azureFirewalls")["properties"]["sku"]["tier"], "Standard")

    def test_the_registry_is_private(self):
        registry = the("Microsoft.ContainerRegistry/registries")
        self.assertEqual(registry["sku"]["name"], "Premium")
        self.assertEqual(registry["properties"]["publicNetworkAccess"], "Disabled")
        self.assertIs(registry["properties"]["adminUserEnabled"], False)
        endpoint = the("Microsoft.Network/privateEndpoints")["properties"]
        self.assertEqual(endpoint["privateLinkServiceConnections"][0]["properties"]["groupIds"], ["registry"])
        self.assertEqual(template()["variables"]["acrDnsZone"], "privatelink.azurecr.io")
        role = the("Microsoft.Authorization/roleAssignments")
        self.assertIn("7f951dda-4ed3-4680-a7ca-43fe172d538d", template()["variables"]["acrPullRoleId"])
        self.assertEqual(role["properties"]["roleDefinitionId"], "[variables('acrPullRoleId')]")

    def test_the_outputs(self):
        self.assertLessEqual({"containerAppFqdn", "registryLoginServer", "firewallPrivateIp", "identityResourceId"},
                             set(template()["outputs"]))


if __name__ == "__main__":
    unittest.main()
