"""The Azure scripts, run against recording stubs of az, docker, podman and curl (tests/azure/stubs):
the commands they send, in order, their create-or-update behaviour on a second run, their
checks of the environment, and that no secret the stubs hand out ever reaches their output."""

import base64
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from support import (
    AZURE_ENV,
    DEPLOYMENTS,
    GLIOMA,
    INFRA,
    REPO,
    SCRIPTS,
    SECRETS,
    StubWorld,
    clean_environ,
    command_words,
    load_yaml,
    option,
    options,
)

ACR = AZURE_ENV["ACR_NAME"]
ENDPOINT = AZURE_ENV["AML_ENDPOINT_NAME"]
APP = AZURE_ENV["CONTAINERAPP_NAME"]
ML_SCOPE = {
    "--subscription": AZURE_ENV["AZURE_SUBSCRIPTION_ID"],
    "--resource-group": AZURE_ENV["AZURE_RESOURCE_GROUP"],
    "--workspace-name": AZURE_ENV["AZUREML_WORKSPACE"],
}
SCRIPT_NAMES = [
    "acr-push.sh",
    "deploy-aml.sh",
    "deploy-containerapp.sh",
    "deploy-infra.sh",
    "autoscale-aml.sh",
    "invoke.sh",
    "logs.sh",
    "make-sample-request.sh",
    "check-azure.sh",
]
REQUIRED = {
    ("acr-push.sh",): ["AZURE_SUBSCRIPTION_ID", "ACR_NAME"],
    ("deploy-aml.sh",): [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZUREML_WORKSPACE",
        "AML_ENDPOINT_NAME",
        "ACR_NAME",
    ],
    ("deploy-containerapp.sh",): [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_LOCATION",
        "ACR_NAME",
        "CONTAINERAPP_NAME",
        "CONTAINERAPP_ENV",
    ],
    ("deploy-infra.sh",): [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_LOCATION",
        "ACR_NAME",
        "CONTAINERAPP_NAME",
        "CONTAINERAPP_ENV",
    ],
    ("deploy-infra.sh", "--what-if"): [
        "AZURE_SUBSCRIPTION_ID",
        "AZURE_RESOURCE_GROUP",
        "AZURE_LOCATION",
        "ACR_NAME",
        "CONTAINERAPP_NAME",
        "CONTAINERAPP_ENV",
    ],
    ("autoscale-aml.sh",): ["AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AML_ENDPOINT_NAME"],
    ("logs.sh", "aml"): ["AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE", "AML_ENDPOINT_NAME"],
    ("logs.sh", "containerapp"): ["AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "CONTAINERAPP_NAME"],
}


class StubTestCase(unittest.TestCase):
    def setUp(self):
        self.world = StubWorld().__enter__()
        self.addCleanup(self.world.__exit__, None, None, None)

    def run_script(self, script, *args, expect=0, **env):
        result = self.world.run(script, *args, env=self.world.env(**env))
        self.assert_no_secrets(result)
        if expect is not None:
            self.assertEqual(result.returncode, expect, f"{script} {args}:\n{result.stdout}\n{result.stderr}")
        return result

    def assert_no_secrets(self, result):
        for secret in SECRETS:
            self.assertNotIn(secret, result.stdout, "a secret reached stdout")
            self.assertNotIn(secret, result.stderr, "a secret reached stderr")
            for record in self.world.records():
                self.assertNotIn(secret, " ".join(record["argv"]), f"a secret on a command line: {record}")

    def az(self):
        return self.world.calls("az")

    def words(self):
        return [command_words(argv) for argv in self.az()]

    def calls_to(self, words):
        return [argv for argv in self.az() if command_words(argv) == words]


class HelpAndArguments(StubTestCase):
    def test_every_script_has_help(self):
        for script in SCRIPT_NAMES:
            for flag in ("--help", "-h"):
                with self.subTest(script=script, flag=flag):
                    result = self.run_script(script, flag)
                    self.assertTrue(result.stdout.startswith("Usage:"), result.stdout[:200])
        self.assertEqual(self.world.records(), [], "--help must not call anything")

    def test_every_script_is_strict_bash(self):
        for script in sorted(SCRIPTS.glob("*.sh")) + sorted((SCRIPTS / "lib").glob("*.sh")):
            if script.name not in SCRIPT_NAMES and script.parent.name != "lib":
                continue  # scripts/setup.sh, test.sh, container-test.sh belong to the server work
            with self.subTest(script=script.name):
                text = script.read_text()
                if script.parent.name == "lib":
                    self.assertIn("# shellcheck shell=bash", text)
                else:
                    self.assertTrue(text.startswith("#!/usr/bin/env bash\n"))
                    self.assertIn("\nset -euo pipefail\n", text)
                    self.assertTrue(script.stat().st_mode & 0o111, "not executable")

    def test_unknown_arguments_are_refused(self):
        for script, args in [
            ("acr-push.sh", ["--frobnicate"]),
            ("deploy-aml.sh", ["--frobnicate"]),
            ("deploy-aml.sh", ["--deployment", "purple"]),
            ("deploy-aml.sh", ["--traffic-only"]),
            ("deploy-containerapp.sh", ["--frobnicate"]),
            ("deploy-infra.sh", ["--frobnicate"]),
            ("deploy-infra.sh", ["--what-if", "now"]),
            ("autoscale-aml.sh", ["--frobnicate"]),
            ("autoscale-aml.sh", ["--deployment", "9-not-a-name"]),
            ("logs.sh", ["nowhere"]),
            ("invoke.sh", ["--as", "telepathy", str(GLIOMA)]),
        ]:
            with self.subTest(script=script, args=args):
                result = self.run_script(script, *args, expect=None)
                self.assertNotEqual(result.returncode, 0)
        self.assertEqual(self.az(), [])


class MissingEnvironment(StubTestCase):
    def test_each_missing_variable_is_named_before_azure_is_called(self):
        for command, names in REQUIRED.items():
            for name in names:
                with self.subTest(command=command, missing=name):
                    result = self.run_script(*command, expect=1, **{name: None})
                    self.assertIn("missing environment variable", result.stderr)
                    self.assertIn(name, result.stderr)
                    self.assertIn(".env.example", result.stderr)
        self.assertEqual(self.az(), [], "no Azure call may happen before the settings are complete")

    def test_all_missing_are_listed_at_once(self):
        result = self.run_script("deploy-containerapp.sh", expect=1, **{k: None for k in AZURE_ENV})
        for name in REQUIRED[("deploy-containerapp.sh",)]:
            self.assertIn(name, result.stderr)

    def test_env_file_fills_in_but_never_overrides_and_is_not_executed(self):
        scratch = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, scratch)
        marker = scratch / "executed"
        env_file = scratch / ".env"
        env_file.write_text(
            "# comment\n"
            f"export ACR_NAME=\"fromfile\"\n"
            f"AZURE_SUBSCRIPTION_ID='{AZURE_ENV['AZURE_SUBSCRIPTION_ID']}'\n"
            f"IMAGE_NAME=$(touch {marker})\n"
        )
        result = self.run_script(
            "acr-push.sh", "--acr-build", AZURE_ENV_FILE=str(env_file), AZURE_SUBSCRIPTION_ID=None, ACR_NAME="fromenv"
        )
        build = self.calls_to("acr build")[0]
        self.assertEqual(option(build, "--registry"), "fromenv", "the environment wins over the file")
        self.assertEqual(option(build, "--subscription"), AZURE_ENV["AZURE_SUBSCRIPTION_ID"], "the file fills in")
        self.assertFalse(marker.exists(), "the .env file must be read as data, not run")
        self.assertEqual(option(build, "--image"), f"$(touch {marker}):1.0", "taken literally")
        del result


class DeployAml(StubTestCase):
    FIRST_RUN = [
        "ml model show",
        "ml model create",
        "acr repository show",
        "ml online-endpoint show",
        "ml online-endpoint create",
        "ml online-deployment show",
        "ml online-deployment create",
        "ml online-deployment show",
        "ml online-endpoint show",  # traffic so far
        "ml online-endpoint update",  # traffic blue=100
        "ml online-endpoint show",  # scoring URI
        "ml online-endpoint invoke",
        "ml online-endpoint get-credentials",
    ]

    def test_first_deployment(self):
        result = self.run_script("deploy-aml.sh")
        self.assertEqual(self.words(), self.FIRST_RUN)

        model = self.calls_to("ml model create")[0]
        self.assertEqual(option(model, "--file"), str(REPO / "azureml" / "model.yml"))
        self.assertEqual((option(model, "--name"), option(model, "--version")), ("brain-tumor-vgg16", "1"))

        endpoint = self.calls_to("ml online-endpoint create")[0]
        self.assertEqual(option(endpoint, "--file"), str(REPO / "azureml" / "endpoint.yml"))
        self.assertEqual(option(endpoint, "--name"), ENDPOINT)

        deployment = self.calls_to("ml online-deployment create")[0]
        self.assertEqual(option(deployment, "--file"), str(DEPLOYMENTS["blue"]))
        self.assertEqual(option(deployment, "--endpoint-name"), ENDPOINT)
        self.assertEqual(option(deployment, "--name"), "blue")
        self.assertEqual(
            options(deployment, "--set"),
            [f"environment.image={ACR}.azurecr.io/brain-tumor-ml:1.0", "model=azureml:brain-tumor-vgg16:1"],
        )

        self.assertEqual(option(self.calls_to("ml online-endpoint update")[0], "--traffic"), "blue=100")
        invoke = self.calls_to("ml online-endpoint invoke")[0]
        self.assertEqual(option(invoke, "--deployment-name"), "blue")
        self.assertEqual(option(invoke, "--request-file"), str(REPO / "azureml" / "sample-request.json"))

        for argv in self.az():
            if argv[0] == "ml":
                for flag, value in ML_SCOPE.items():
                    self.assertEqual(option(argv, flag), value, argv)

        self.assertIn(f"scoring URI: https://{ENDPOINT}.", result.stdout)
        self.assertIn("predictions", result.stdout)
        # The plain-HTTPS check sent the key (from a variable, through a header file) to the URI.
        (curl,) = [r for r in self.world.records() if r["tool"] == "curl"]
        self.assertEqual(curl["headers"]["authorization"], {"bearer_primary_key": True})
        self.assertEqual(curl["headers"]["azureml-model-deployment"], "blue")
        self.assertEqual(curl["argv"][-1], f"https://{ENDPOINT}.westeurope.inference.ml.azure.com/score")

    def test_second_run_updates_in_place(self):
        self.run_script("deploy-aml.sh")
        self.world.clear()
        self.run_script("deploy-aml.sh", "--skip-smoke-test")
        words = self.words()
        self.assertNotIn("ml model create", words)
        self.assertIn("ml online-endpoint update", words)
        self.assertNotIn("ml online-endpoint create", words)
        self.assertIn("ml online-deployment update", words)
        self.assertNotIn("ml online-deployment create", words)
        (update,) = self.calls_to("ml online-endpoint update")
        self.assertEqual(option(update, "--traffic"), "blue=100", "re-applying endpoint.yml keeps the split")
        self.assertNotIn("ml online-endpoint invoke", words)

    def test_rerun_keeps_a_shifted_split(self):
        self.run_script("deploy-aml.sh", "--skip-smoke-test")
        self.run_script("deploy-aml.sh", "--deployment", "green", "--skip-smoke-test")
        self.run_script("deploy-aml.sh", "--traffic-only", "--traffic", "blue=90 green=10")
        self.world.clear()
        self.run_script("deploy-aml.sh", "--skip-smoke-test")  # blue again, e.g. a new image
        self.assertEqual(
            [option(a, "--traffic") for a in self.calls_to("ml online-endpoint update")], ["blue=90 green=10"]
        )
        traffic = json.loads((self.world.state / f"traffic-{ENDPOINT}").read_text())
        self.assertEqual(traffic, {"blue": 90, "green": 10})

    def test_green_at_zero_then_traffic_shift(self):
        self.run_script("deploy-aml.sh")
        self.world.clear()
        result = self.run_script("deploy-aml.sh", "--deployment", "green", "--image-tag", "1.1")
        deployment = self.calls_to("ml online-deployment create")[0]
        self.assertEqual(option(deployment, "--file"), str(DEPLOYMENTS["green"]))
        self.assertEqual(option(deployment, "--name"), "green")
        self.assertIn(f"environment.image={ACR}.azurecr.io/brain-tumor-ml:1.1", options(deployment, "--set"))
        self.assertEqual([option(a, "--traffic") for a in self.calls_to("ml online-endpoint update")], ["blue=100"])
        self.assertIn("traffic unchanged: blue=100 green=0", result.stderr)
        self.assertEqual(option(self.calls_to("ml online-endpoint invoke")[0], "--deployment-name"), "green")

        for split in ("blue=90 green=10", "blue=0 green=100"):
            with self.subTest(traffic=split):
                self.world.clear()
                result = self.run_script("deploy-aml.sh", "--traffic-only", "--traffic", split)
                self.assertEqual(self.words(), ["ml online-endpoint update", "ml online-endpoint show"])
                self.assertEqual(option(self.az()[0], "--traffic"), split)
                shown = json.loads(result.stdout)
                self.assertEqual(shown, {k: int(v) for k, v in (p.split("=") for p in split.split())})

    def test_int8_registers_its_own_model_and_starts_at_zero(self):
        self.run_script("deploy-aml.sh", "--skip-smoke-test")
        self.world.clear()
        result = self.run_script("deploy-aml.sh", "--deployment", "int8")
        model = self.calls_to("ml model create")[0]
        self.assertEqual(option(model, "--file"), str(REPO / "azureml" / "model-int8.yml"))
        self.assertEqual((option(model, "--name"), option(model, "--version")), ("brain-tumor-vgg16-int8", "1"))
        deployment = self.calls_to("ml online-deployment create")[0]
        self.assertEqual(option(deployment, "--file"), str(DEPLOYMENTS["int8"]))
        self.assertEqual(option(deployment, "--name"), "int8")
        self.assertIn("model=azureml:brain-tumor-vgg16-int8:1", options(deployment, "--set"))
        self.assertIn("traffic unchanged: blue=100 int8=0", result.stderr)
        self.assertEqual(option(self.calls_to("ml online-endpoint invoke")[0], "--deployment-name"), "int8")

    def test_traffic_with_a_deployment(self):
        self.run_script("deploy-aml.sh", "--skip-smoke-test")
        self.world.clear()
        self.run_script("deploy-aml.sh", "--deployment", "green", "--traffic", "blue=90 green=10", "--skip-smoke-test")
        words = self.words()
        update = words.index("ml online-endpoint update", words.index("ml online-deployment create"))
        self.assertEqual(option(self.az()[update], "--traffic"), "blue=90 green=10")

    def test_extra_overrides_pass_through(self):
        self.run_script("deploy-aml.sh", "--set", "instance_count=3", "--skip-smoke-test")
        self.assertIn("instance_count=3", options(self.calls_to("ml online-deployment create")[0], "--set"))

    def test_image_missing_from_the_registry_stops_early(self):
        result = self.run_script("deploy-aml.sh", expect=1, STUB_ACR_EMPTY="1")
        self.assertIn("scripts/acr-push.sh", result.stderr)
        self.assertNotIn("ml online-endpoint create", self.words())
        self.assertNotIn("ml online-deployment create", self.words())

    def test_failed_deployment_points_at_the_logs(self):
        for knob in ({"STUB_DEPLOYMENT_FAILS": "1"}, {"STUB_DEPLOYMENT_STATE": "Failed"}):
            with self.subTest(knob=knob):
                result = self.run_script("deploy-aml.sh", expect=1, **knob)
                self.assertIn("scripts/logs.sh aml --deployment blue", result.stderr)
                self.assertNotIn("ml online-endpoint invoke", self.words())

    def test_local_docker_deployment(self):
        result = self.run_script("deploy-aml.sh", "--local", ACR_NAME=None)
        self.assertNotIn("acr repository show", self.words())
        self.assertNotIn("ml online-endpoint get-credentials", self.words())
        for words in ("ml online-endpoint create", "ml online-deployment create", "ml online-endpoint invoke"):
            self.assertIn("--local", self.calls_to(words)[0], words)
        deployment = self.calls_to("ml online-deployment create")[0]
        self.assertIn("environment.image=brain-tumor-ml:1.0", options(deployment, "--set"))
        self.assertFalse([a for a in self.calls_to("ml online-endpoint update") if option(a, "--traffic")])
        self.assertIn("scoring URI: http://localhost:", result.stdout)

    def test_grant_acr_pull_once(self):
        self.run_script("deploy-aml.sh", "--grant-acr-pull", "--skip-smoke-test")
        self.assertEqual(len(self.calls_to("role assignment create")), 1)
        create = self.calls_to("role assignment create")[0]
        self.assertEqual(option(create, "--role"), "AcrPull")
        self.assertTrue(option(create, "--scope").endswith(f"/registries/{ACR}"))
        self.world.clear()
        self.run_script("deploy-aml.sh", "--grant-acr-pull", "--skip-smoke-test")
        self.assertEqual(self.calls_to("role assignment create"), [])


class AcrPush(StubTestCase):
    def test_docker_login_tag_push(self):
        result = self.run_script("acr-push.sh")
        sequence = [(r["tool"], command_words(r["argv"])) for r in self.world.records()]
        self.assertEqual(
            sequence,
            [
                ("az", "acr show"),
                ("docker", "image inspect brain-tumor-ml:1.0"),
                ("az", "acr login"),
                ("docker", f"tag brain-tumor-ml:1.0 {ACR}.azurecr.io/brain-tumor-ml:1.0"),
                ("docker", f"push {ACR}.azurecr.io/brain-tumor-ml:1.0"),
                ("az", "acr repository show-tags"),
            ],
        )
        self.assertEqual(result.stdout, f"{ACR}.azurecr.io/brain-tumor-ml:1.0\n")

    def test_podman_gets_the_token_on_stdin_only(self):
        self.run_script("acr-push.sh", CONTAINER_CLI="podman")
        login = self.calls_to("acr login")[0]
        self.assertIn("--expose-token", login)
        (podman_login,) = [r for r in self.world.records() if r["tool"] == "podman" and r["argv"][0] == "login"]
        self.assertTrue(podman_login["password_received"])
        self.assertTrue(podman_login["password_is_acr_token"])
        self.assertIn("--password-stdin", podman_login["argv"])
        self.assertEqual([r["tool"] for r in self.world.records() if r["tool"] == "docker"], [])

    def test_acr_build_needs_no_docker(self):
        self.run_script("acr-push.sh", "--acr-build")
        build = self.calls_to("acr build")[0]
        self.assertEqual(option(build, "--registry"), ACR)
        self.assertEqual(option(build, "--image"), "brain-tumor-ml:1.0")
        self.assertEqual(option(build, "--file"), str(REPO / "Dockerfile"))
        self.assertEqual(build[-1], str(REPO))
        self.assertEqual([r for r in self.world.records() if r["tool"] != "az"], [])

    def test_build_first_and_custom_tag(self):
        self.run_script("acr-push.sh", "--build", IMAGE_TAG="1.1")
        docker = [command_words(a) for a in self.world.calls("docker")]
        self.assertEqual(docker[0], "build")
        self.assertIn(f"push {ACR}.azurecr.io/brain-tumor-ml:1.1", docker)

    def test_missing_local_image(self):
        result = self.run_script("acr-push.sh", expect=1, STUB_DOCKER_NO_IMAGE="1")
        self.assertIn("docker build -t brain-tumor-ml:1.0", result.stderr)
        self.assertEqual(self.world.calls("docker")[1:], [])


class DeployContainerApp(StubTestCase):
    FIRST_RUN = [
        "group show",
        "acr show",
        "acr repository show",
        "provider register",
        "provider register",
        "containerapp env show",
        "containerapp env create",
        "containerapp show",
        "containerapp create",
        "containerapp identity assign",
        "containerapp identity show",
        "role assignment list",
        "role assignment create",
        "containerapp registry set",
        "containerapp update",
        "containerapp show",
    ]

    def sent_yaml(self):
        return load_yaml(self.world.state / f"containerapp-{APP}.yaml")

    @staticmethod
    def settings():
        return json.loads((INFRA / "containerapp.json").read_text())

    def test_first_deployment(self):
        result = self.run_script("deploy-containerapp.sh")
        self.assertEqual(self.words(), self.FIRST_RUN)
        create = self.calls_to("containerapp create")[0]
        self.assertEqual(option(create, "--environment"), AZURE_ENV["CONTAINERAPP_ENV"])
        role = self.calls_to("role assignment create")[0]
        self.assertEqual(option(role, "--role"), "AcrPull")
        self.assertEqual(option(role, "--assignee-principal-type"), "ServicePrincipal")
        registry = self.calls_to("containerapp registry set")[0]
        self.assertEqual((option(registry, "--server"), option(registry, "--identity")), (f"{ACR}.azurecr.io", "system"))
        self.assertIsNotNone(option(self.calls_to("containerapp update")[0], "--yaml"))

        fqdn = f"{APP}.happyfield-1234.westeurope.azurecontainerapps.io"
        self.assertIn(f"scoring URI: https://{fqdn}/score", result.stdout)
        (curl,) = [r for r in self.world.records() if r["tool"] == "curl"]
        self.assertEqual(curl["argv"][-1], f"https://{fqdn}/score")
        self.assertEqual(curl["headers"], {"content-type": "application/json"})
        self.assertIn(str(REPO / "azureml" / "sample-request.json"), " ".join(curl["argv"]))

    def test_the_yaml_matches_the_server_and_the_azure_ml_deployment(self):
        self.run_script("deploy-containerapp.sh", "--skip-smoke-test", "--min-replicas", "0", "--max-replicas", "5")
        spec = self.sent_yaml()["properties"]
        settings = self.settings()
        deployment = load_yaml(DEPLOYMENTS["blue"])
        routes = deployment["environment"]["inference_config"]
        port = routes["scoring_route"]["port"]

        ingress = spec["configuration"]["ingress"]
        self.assertEqual((ingress["external"], ingress["targetPort"]), (True, port))
        self.assertEqual(spec["configuration"]["registries"], [{"server": f"{ACR}.azurecr.io", "identity": "system"}])

        template = spec["template"]
        (container,) = template["containers"]
        self.assertEqual(container["image"], f"{ACR}.azurecr.io/brain-tumor-ml:1.0")
        # Everything fixed comes from infra/containerapp.json, unchanged (infra/main.json deploys it too).
        self.assertEqual(ingress["targetPort"], settings["targetPort"])
        self.assertEqual(template["terminationGracePeriodSeconds"], settings["terminationGracePeriodSeconds"])
        for key in ("resources", "env", "probes"):
            self.assertEqual(container[key], settings[key], key)
        self.assertEqual(template["scale"]["rules"], settings["scaleRules"])
        probes = {probe["type"]: probe for probe in container["probes"]}
        self.assertEqual(set(probes), {"Startup", "Liveness", "Readiness"})
        self.assertEqual(probes["Readiness"]["httpGet"], {"path": routes["readiness_route"]["path"], "port": port})
        self.assertEqual(probes["Liveness"]["httpGet"], {"path": routes["liveness_route"]["path"], "port": port})
        self.assertEqual(probes["Startup"]["httpGet"], {"path": routes["liveness_route"]["path"], "port": port})
        for probe in probes.values():
            self.assertLessEqual(probe["failureThreshold"], 10, "Container Apps allows 1-10")

        env = {item["name"]: item["value"] for item in container["env"]}
        for name, value in deployment["environment_variables"].items():
            if name not in ("SCORER_INTRA_OP_THREADS", "SCORER_SHUTDOWN_TIMEOUT_SECS"):
                self.assertEqual(env[name], value, f"{name} differs from the Azure ML deployment")
        self.assertEqual(env["SCORER_INTRA_OP_THREADS"], str(int(container["resources"]["cpu"])))
        grace = template["terminationGracePeriodSeconds"]
        self.assertGreater(grace, int(env["SCORER_SHUTDOWN_DRAIN_MS"]) / 1000 + int(env["SCORER_SHUTDOWN_TIMEOUT_SECS"]))

        scale = template["scale"]
        self.assertEqual((scale["minReplicas"], scale["maxReplicas"]), (0, 5))
        (rule,) = scale["rules"]
        self.assertEqual(
            int(rule["http"]["metadata"]["concurrentRequests"]),
            deployment["request_settings"]["max_concurrent_requests_per_instance"],
        )

    def test_second_run_creates_nothing(self):
        self.run_script("deploy-containerapp.sh", "--skip-smoke-test")
        self.world.clear()
        self.run_script("deploy-containerapp.sh", "--skip-smoke-test")
        words = self.words()
        for created in ("containerapp env create", "containerapp create", "role assignment create"):
            self.assertNotIn(created, words)
        self.assertIn("containerapp update", words)

    def test_print_yaml_calls_nothing(self):
        result = self.run_script("deploy-containerapp.sh", "--print-yaml", AZURE_SUBSCRIPTION_ID=None)
        self.assertEqual(self.world.records(), [])
        self.assertIn(f"targetPort: {self.settings()['targetPort']}", result.stdout)
        printed = load_yaml_text(result.stdout)["properties"]["template"]["containers"][0]
        self.assertEqual(printed["probes"], self.settings()["probes"])

    def test_the_script_keeps_no_copy_of_the_settings(self):
        text = (SCRIPTS / "deploy-containerapp.sh").read_text()
        for literal in ("SCORER_", "failureThreshold", "concurrentRequests", "memory:", "terminationGracePeriodSeconds:"):
            self.assertNotIn(literal, text, "infra/containerapp.json is the one source of the app's settings")

    def test_smoke_test_failure_is_reported(self):
        result = self.run_script("deploy-containerapp.sh", expect=1, STUB_CURL_STATUS="503")
        self.assertIn("scripts/logs.sh containerapp --system", result.stderr)


def load_yaml_text(text):
    import yaml

    return yaml.safe_load(text)


INFRA_README = INFRA / "README.md"
MAIN_TEMPLATE = INFRA / "main.json"
# A value for every variable that infra/README.md maps to a template parameter, and what the
# template parameter must then receive (None: checked separately, the shared key).
VPN_KEY = "FAKE-VPN-SHARED-KEY-5566778899"
INFRA_VALUES = {
    "AZURE_LOCATION": ("northeurope", "northeurope"),
    "VNET_NAME": ("vnet-t", "vnet-t"),
    "VNET_ADDRESS_PREFIX": ("10.50.0.0/16", "10.50.0.0/16"),
    "APP_SUBNET_PREFIX": ("10.50.0.0/27", "10.50.0.0/27"),
    "PE_SUBNET_PREFIX": ("10.50.1.0/27", "10.50.1.0/27"),
    "FIREWALL_SUBNET_PREFIX": ("10.50.2.0/26", "10.50.2.0/26"),
    "GATEWAY_SUBNET_PREFIX": ("10.50.3.0/27", "10.50.3.0/27"),
    "FIREWALL_NAME": ("afw-t", "afw-t"),
    "ACR_NAME": (ACR, ACR),
    "ACR_PULL_IDENTITY": ("id-t", "id-t"),
    "LOG_ANALYTICS_WORKSPACE": ("log-t", "log-t"),
    "CONTAINERAPP_ENV": ("env-t", "env-t"),
    "CONTAINERAPP_NAME": ("app-t", "app-t"),
    "IMAGE_NAME": ("scorer-t", "scorer-t"),
    "IMAGE_TAG": ("1.2", "1.2"),
    "CONTAINERAPP_MIN_REPLICAS": ("2", 2),
    "CONTAINERAPP_MAX_REPLICAS": ("5", 5),
    "DEPLOY_VPN": ("true", True),
    "VPN_GATEWAY_SKU": ("VpnGw2AZ", "VpnGw2AZ"),
    "ONPREM_ADDRESS_PREFIXES": ("192.168.10.0/24, 172.16.0.0/12", ["192.168.10.0/24", "172.16.0.0/12"]),
    "ONPREM_GATEWAY_IP": ("198.51.100.7", "198.51.100.7"),
    "VPN_SHARED_KEY": (VPN_KEY, None),
    "DEPLOY_AML": ("true", True),
    "AZUREML_WORKSPACE": ("mlw-t", "mlw-t"),
    "AML_STORAGE_ACCOUNT": ("sttest123", "sttest123"),
    "AML_KEY_VAULT": ("kv-test-123", "kv-test-123"),
    "AML_APP_INSIGHTS": ("appi-t", "appi-t"),
    "AML_PUBLIC_NETWORK_ACCESS": ("Enabled", "Enabled"),
}


def readme_mapping():
    """{template parameter: environment variable or None (a file)} from infra/README.md's table."""
    mapping = {}
    for line in INFRA_README.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and re.fullmatch(r"`\w+`", cells[0]):
            env = re.fullmatch(r"`([A-Z][A-Z0-9_]*)`", cells[1])
            mapping[cells[0].strip("`")] = env.group(1) if env else None
    return mapping


def template_parameters():
    return json.loads(MAIN_TEMPLATE.read_text())["parameters"]


class DeployInfra(StubTestCase):
    """scripts/deploy-infra.sh: what-if, then create, of infra/main.json with names from the environment."""

    WHAT_IF = ["group show", "deployment group what-if"]
    DNS_FIRST_RUN = [
        "network private-dns zone show", "network private-dns zone create",
        "network private-dns link vnet show", "network private-dns link vnet create",
        "network private-dns record-set a show", "network private-dns record-set a add-record",
    ]
    DNS_RERUN = ["network private-dns zone show", "network private-dns link vnet show",
                 "network private-dns record-set a show"]
    FULL_RUN = ["group show", "deployment group what-if", "deployment group create", "deployment group show",
                *DNS_FIRST_RUN]

    def setUp(self):
        self.assertTrue(MAIN_TEMPLATE.is_file(), "infra/main.json is missing")
        super().setUp()

    def arm(self, action, name="brain-tumor-infra"):
        path = self.world.state / f"arm-{action}-{AZURE_ENV['AZURE_RESOURCE_GROUP']}-{name}.json"
        return json.loads(path.read_text())

    def all_values(self):
        return {var: value for var, (value, _) in INFRA_VALUES.items()}

    @staticmethod
    def secure(value):
        """What the stub keeps of a securestring parameter: its digest."""
        return {"sha256": hashlib.sha256(value.encode()).hexdigest()}

    def test_what_if_only_changes_nothing(self):
        result = self.run_script("deploy-infra.sh", "--what-if")
        self.assertEqual(self.words(), self.WHAT_IF)
        (what_if,) = self.calls_to("deployment group what-if")
        self.assertEqual(option(what_if, "--template-file"), str(MAIN_TEMPLATE))
        self.assertEqual(option(what_if, "--resource-group"), AZURE_ENV["AZURE_RESOURCE_GROUP"])
        self.assertIn("Resource changes:", result.stdout)
        self.assertFalse((self.world.state / f"deployment-{AZURE_ENV['AZURE_RESOURCE_GROUP']}-brain-tumor-infra").exists())

    def test_full_run_previews_deploys_and_prints_the_outputs(self):
        result = self.run_script("deploy-infra.sh", "--yes")
        self.assertEqual(self.words(), self.FULL_RUN)
        what_if, create = self.calls_to("deployment group what-if")[0], self.calls_to("deployment group create")[0]
        self.assertEqual(options(what_if, "--parameters"), options(create, "--parameters"),
                         "the deployment is the one previewed")
        self.assertEqual(option(create, "--mode"), "Incremental", "nothing outside the template is deleted")
        self.assertEqual(self.arm("what-if")["parameters"], self.arm("create")["parameters"])
        for argv in self.az():
            self.assertEqual(option(argv, "--subscription"), AZURE_ENV["AZURE_SUBSCRIPTION_ID"], argv)
        self.assertIn(f"container app FQDN (internal: resolves inside the VNet): "
                      f"{APP}.internal.",
                      result.stdout)
        self.assertIn(f"registry login server: {ACR}.azurecr.io", result.stdout)
        self.assertIn("firewall private IP (next hop of the default route): 10.40.2.4", result.stdout)
        self.assertNotIn("Azure ML workspace", result.stdout, "an empty output is not printed")

    def test_the_environments_domain_resolves_inside_the_vnet(self):
        self.run_script("deploy-infra.sh", "--yes")
        outputs = json.loads((self.world.state / f"deployment-{AZURE_ENV['AZURE_RESOURCE_GROUP']}-brain-tumor-infra")
                             .read_text())["properties"]["outputs"]
        domain, static_ip = outputs["environmentDefaultDomain"]["value"], outputs["environmentStaticIp"]["value"]
        (zone,) = self.calls_to("network private-dns zone create")
        self.assertEqual(option(zone, "--name"), domain)
        (link,) = self.calls_to("network private-dns link vnet create")
        self.assertEqual((option(link, "--zone-name"), option(link, "--virtual-network"),
                          option(link, "--registration-enabled")), (domain, outputs["vnetName"]["value"], "false"))
        (record,) = self.calls_to("network private-dns record-set a add-record")
        self.assertEqual((option(record, "--zone-name"), option(record, "--record-set-name"),
                          option(record, "--ipv4-address")), (domain, "*", static_ip))
        self.world.clear()
        self.run_script("deploy-infra.sh", "--yes")
        self.assertEqual(self.words()[-len(self.DNS_RERUN):], self.DNS_RERUN, "a re-run adds no zone, link or record")

    def test_no_terminal_and_no_yes_stops_after_the_what_if(self):
        result = self.run_script("deploy-infra.sh", expect=1)
        self.assertEqual(self.words(), self.WHAT_IF)
        self.assertIn("--yes", result.stderr)

    def test_missing_resource_group(self):
        result = self.run_script("deploy-infra.sh", "--what-if", expect=1, STUB_GROUP_MISSING="1")
        self.assertEqual(self.words(), ["group show"], "a what-if creates nothing, not even the group")
        self.assertIn(f"az group create -n {AZURE_ENV['AZURE_RESOURCE_GROUP']}", result.stderr)
        self.world.clear()
        self.run_script("deploy-infra.sh", "--yes", STUB_GROUP_MISSING="1")
        self.assertEqual(self.words(), ["group show", "group create", *self.FULL_RUN[1:]])
        (group,) = self.calls_to("group create")
        self.assertEqual((option(group, "--name"), option(group, "--location")),
                         (AZURE_ENV["AZURE_RESOURCE_GROUP"], AZURE_ENV["AZURE_LOCATION"]))

    def test_minimal_environment_leaves_the_rest_to_the_template_defaults(self):
        self.run_script("deploy-infra.sh", "--what-if", AZUREML_WORKSPACE=None)
        passed = self.arm("what-if")["parameters"]
        self.assertEqual(set(passed), {"appSettings", "location", "registryName", "containerAppName", "environmentName"})
        self.assertEqual(passed["appSettings"], json.loads((INFRA / "containerapp.json").read_text()))
        (what_if,) = self.calls_to("deployment group what-if")
        self.assertIn(f"appSettings=@{INFRA / 'containerapp.json'}", options(what_if, "--parameters"))
        for name, parameter in template_parameters().items():
            with self.subTest(parameter=name):
                self.assertTrue("defaultValue" in parameter or name in passed,
                                "a parameter without a default that the script does not pass")

    def test_every_variable_reaches_its_template_parameter(self):
        mapping = readme_mapping()
        self.assertLessEqual({v for v in mapping.values() if v}, set(INFRA_VALUES), "add the new variable here")
        self.run_script("deploy-infra.sh", "--yes", **self.all_values())
        passed = self.arm("create")["parameters"]
        for parameter, var in mapping.items():
            with self.subTest(parameter=parameter, variable=var):
                if var is None:
                    self.assertEqual(passed[parameter], json.loads((INFRA / "containerapp.json").read_text()))
                elif var == "VPN_SHARED_KEY":
                    self.assertEqual(template_parameters()[parameter]["type"].lower(), "securestring")
                    self.assertEqual(passed[parameter], self.secure(VPN_KEY))
                else:
                    self.assertEqual(passed[parameter], INFRA_VALUES[var][1])

    def test_the_vpn_key_is_never_printed_nor_on_a_command_line(self):
        result = self.run_script("deploy-infra.sh", "--yes", **self.all_values())
        for text in (result.stdout, result.stderr, *(" ".join(argv) for argv in self.az())):
            self.assertNotIn(VPN_KEY, text)
        files = self.arm("create")["files"]
        (secret_file,) = [path for path in files if not path.startswith(str(INFRA))]
        self.assertEqual(files[secret_file], 0o600, "readable by the owner only")
        self.assertFalse(Path(secret_file).is_relative_to(REPO), "never a file in the checkout")
        self.assertFalse(Path(secret_file).exists(), "deleted when the script ends")

    def test_a_key_in_the_shell_without_deploy_vpn_is_not_sent(self):
        self.run_script("deploy-infra.sh", "--what-if", VPN_SHARED_KEY=VPN_KEY)
        record = self.arm("what-if")
        self.assertNotIn("vpnSharedKey", record["parameters"])
        self.assertEqual(list(record["files"]), [str(INFRA / "containerapp.json")], "no key file either")

    def test_the_vpn_needs_its_settings_named_at_once(self):
        result = self.run_script("deploy-infra.sh", "--what-if", expect=1, DEPLOY_VPN="true")
        for name in ("ONPREM_ADDRESS_PREFIXES", "ONPREM_GATEWAY_IP", "VPN_SHARED_KEY"):
            self.assertIn(name, result.stderr)
        self.assertEqual(self.az(), [])

    def test_the_vpn_key_in_an_env_file_is_refused(self):
        scratch = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, scratch)
        env_file = scratch / ".env"
        env_file.write_text(f"VPN_SHARED_KEY={VPN_KEY}\n")
        result = self.run_script("deploy-infra.sh", "--what-if", expect=1, AZURE_ENV_FILE=str(env_file),
                                 DEPLOY_VPN="true", ONPREM_ADDRESS_PREFIXES="192.168.0.0/16",
                                 ONPREM_GATEWAY_IP="198.51.100.7")
        self.assertIn("export it in the shell", result.stderr)
        self.assertNotIn(VPN_KEY, result.stderr + result.stdout)
        self.assertEqual(self.az(), [])

    def test_bad_values_are_refused_before_azure_is_called(self):
        bad = {"CONTAINERAPP_MIN_REPLICAS": "two", "DEPLOY_AML": "yes", "VNET_ADDRESS_PREFIX": "10.40.0.0",
               "ONPREM_ADDRESS_PREFIXES": "192.168.0.0/16;10.0.0.0/8", "ONPREM_GATEWAY_IP": "300.1.1.1",
               "AML_PUBLIC_NETWORK_ACCESS": "open"}
        result = self.run_script("deploy-infra.sh", "--what-if", expect=1, **bad)
        for name in bad:
            self.assertIn(name, result.stderr)
        result = self.run_script("deploy-infra.sh", "--what-if", expect=1, CONTAINERAPP_MIN_REPLICAS="4",
                                 CONTAINERAPP_MAX_REPLICAS="3")
        self.assertIn("CONTAINERAPP_MIN_REPLICAS <= CONTAINERAPP_MAX_REPLICAS", result.stderr)
        self.assertEqual(self.az(), [])


class InfraMapping(unittest.TestCase):
    """infra/README.md's table ties each template parameter of infra/main.json to a variable of
    .env.example, and scripts/deploy-infra.sh follows it."""

    def setUp(self):
        if not MAIN_TEMPLATE.is_file():
            self.skipTest("infra/main.json is not there yet")
        self.mapping = readme_mapping()

    def test_the_table_lists_exactly_the_template_parameters(self):
        self.assertEqual(set(self.mapping), set(template_parameters()))
        self.assertEqual([p for p, v in self.mapping.items() if v is None], ["appSettings"])

    def test_every_variable_is_in_env_example(self):
        text = (REPO / ".env.example").read_text()
        for var in filter(None, self.mapping.values()):
            with self.subTest(variable=var):
                self.assertRegex(text, rf"(?m)^(# )?{var}=", "document it in .env.example")
        self.assertRegex(text, r"(?m)^# VPN_SHARED_KEY=", "the key stays commented out")

    def test_the_script_maps_each_variable_to_its_parameter(self):
        script = (SCRIPTS / "deploy-infra.sh").read_text()
        pairs = set(re.findall(r'^  "([A-Z][A-Z0-9_]*) (\w+) [\w-]+"$', script, re.M))
        expected = {(v, p) for p, v in self.mapping.items() if v and v != "VPN_SHARED_KEY"}
        self.assertEqual(pairs, expected)
        self.assertIn('"vpnSharedKey": {"value": os.environ["VPN_SHARED_KEY"]}', script)


class AutoscaleAml(StubTestCase):
    """scripts/autoscale-aml.sh: Azure Monitor autoscale on a managed deployment's resource id."""

    NAME = f"autoscale-{ENDPOINT}-blue"
    FIRST_RUN = [
        "ml online-deployment show",  # its resource id: what autoscale scales
        "ml online-endpoint show",  # its resource id: where RequestLatency comes from
        "monitor autoscale show",
        "monitor autoscale create",
        "monitor autoscale rule create",
        "monitor autoscale rule create",
        "monitor autoscale rule create",
    ]
    RULE = re.compile(r"^(\w+) ([<>]) (\d+) avg (\d+)m(?: where deployment == ([\w-]+))?$")

    def deploy(self, *args):
        self.run_script("deploy-aml.sh", "--skip-smoke-test", *args)
        self.world.clear()

    def setting(self, name=NAME):
        return json.loads((self.world.state / f"autoscale-{AZURE_ENV['AZURE_RESOURCE_GROUP']}-{name}").read_text())

    def rules(self, name=NAME):
        """{(metric, direction): (operator, threshold, window minutes, deployment filter, cooldown, resource)}"""
        found = {}
        for rule in self.setting(name)["profiles"][0]["rules"]:
            metric, operator, threshold, window, where = self.RULE.match(rule["condition"]).groups()
            direction, _, change = rule["scale"].partition(" ")
            self.assertEqual(change, "1", "one instance at a time")
            self.assertNotIn((metric, direction), found, "one rule per metric and direction")
            found[metric, direction] = (operator, int(threshold), int(window), where, int(rule["cooldown"]),
                                        rule["metricResourceUri"])
        return found

    def test_first_run_creates_the_setting_and_three_rules(self):
        self.deploy()
        result = self.run_script("autoscale-aml.sh")
        self.assertEqual(self.words(), self.FIRST_RUN)
        self.assertEqual([option(argv, "--query") for argv in self.az()[:2]], ["id", "id"])
        (create,) = self.calls_to("monitor autoscale create")
        self.assertEqual(option(create, "--name"), self.NAME)
        self.assertTrue(option(create, "--resource").endswith(f"/onlineEndpoints/{ENDPOINT}/deployments/blue"))
        self.assertEqual((option(create, "--min-count"), option(create, "--max-count"), option(create, "--count")),
                         ("1", "3", "1"))
        for argv in self.az():
            self.assertEqual(option(argv, "--subscription"), AZURE_ENV["AZURE_SUBSCRIPTION_ID"], argv)
            self.assertEqual(option(argv, "--resource-group"), AZURE_ENV["AZURE_RESOURCE_GROUP"], argv)
        self.assertIn(self.NAME, result.stdout)

        deployment_id = self.setting()["targetResourceUri"]
        endpoint_id = deployment_id.rsplit("/deployments/", 1)[0]
        self.assertTrue(endpoint_id.endswith(f"/workspaces/{AZURE_ENV['AZUREML_WORKSPACE']}/onlineEndpoints/{ENDPOINT}"))
        rules = self.rules()
        self.assertEqual(set(rules), {("CpuUtilizationPercentage", "out"), ("RequestLatency", "out"),
                                      ("CpuUtilizationPercentage", "in")},
                         "no latency scale-in: without traffic it has no values, and all scale-in rules must agree")
        cpu_out, latency_out, cpu_in = (rules["CpuUtilizationPercentage", "out"], rules["RequestLatency", "out"],
                                        rules["CpuUtilizationPercentage", "in"])
        self.assertEqual(cpu_out, (">", 40, 5, None, 15, deployment_id))
        self.assertEqual(latency_out, (">", 1000, 5, "blue", 15, endpoint_id), "the endpoint's metric, blue's share")
        self.assertEqual(cpu_in, ("<", 15, 30, None, 20, deployment_id))
        # A saturated DS3_v2 shows ~50 % CPU (2 ONNX Runtime threads on 4 vCPUs): the scale-out line
        # must sit below that, and one instance fewer after a scale-in must stay under it (no flapping).
        self.assertLess(cpu_out[1], 50)
        self.assertLess(cpu_in[1] * 2, cpu_out[1])
        self.assertGreater(cpu_in[2], cpu_out[2], "scale in over a longer window")
        self.assertGreater(cpu_in[4], cpu_out[4], "and with a longer cooldown")
        self.assertLess(cpu_in[4], cpu_in[2], "a cooldown holds scale-out too: keep it below the window")

    def test_second_run_updates_and_replaces_the_rules(self):
        self.deploy()
        self.run_script("autoscale-aml.sh")
        self.world.clear()
        self.run_script("autoscale-aml.sh", AML_AUTOSCALE_MAX="5")
        words = self.words()
        self.assertNotIn("monitor autoscale create", words)
        self.assertEqual(words[3:6], ["monitor autoscale update", "monitor autoscale rule delete",
                                      "monitor autoscale rule create"])
        (delete,) = self.calls_to("monitor autoscale rule delete")
        self.assertEqual(option(delete, "--index"), "*", "every rule of the default profile, then the three anew")
        self.assertEqual(len(self.setting()["profiles"][0]["rules"]), 3, "no duplicates")
        self.assertEqual(len(self.rules()), 3)
        self.assertEqual(self.setting()["profiles"][0]["capacity"], {"minimum": "1", "maximum": "5", "default": "1"})

    def test_limits_latency_deployment_and_endpoint_from_the_environment_and_options(self):
        self.deploy("--deployment", "green")
        env = {"AML_AUTOSCALE_MIN": "2", "AML_AUTOSCALE_MAX": "6", "AML_AUTOSCALE_DEFAULT": "3",
               "AML_AUTOSCALE_LATENCY_MS": "2500", "AML_ENDPOINT_NAME": None}
        self.run_script("autoscale-aml.sh", "--deployment", "green", "--endpoint", ENDPOINT, **env)
        (create,) = self.calls_to("monitor autoscale create")
        self.assertEqual(option(create, "--name"), f"autoscale-{ENDPOINT}-green")
        self.assertTrue(option(create, "--resource").endswith("/deployments/green"))
        self.assertEqual((option(create, "--min-count"), option(create, "--max-count"), option(create, "--count")),
                         ("2", "6", "3"))
        latency = self.rules(f"autoscale-{ENDPOINT}-green")["RequestLatency", "out"]
        self.assertEqual(latency[1:4], (2500, 5, "green"))

    def test_bad_limits_are_refused_before_azure_is_called(self):
        for env in ({"AML_AUTOSCALE_MIN": "0"}, {"AML_AUTOSCALE_MIN": "3", "AML_AUTOSCALE_MAX": "3"},
                    {"AML_AUTOSCALE_MAX": "three"}, {"AML_AUTOSCALE_MAX": "08"}, {"AML_AUTOSCALE_DEFAULT": "9"},
                    {"AML_AUTOSCALE_LATENCY_MS": "0"}):
            with self.subTest(env=env):
                result = self.run_script("autoscale-aml.sh", expect=1, **env)
                self.assertIn("AML_AUTOSCALE", result.stderr)
        self.assertEqual(self.az(), [])

    def test_all_missing_variables_are_named_at_once(self):
        result = self.run_script("autoscale-aml.sh", expect=1, **{k: None for k in AZURE_ENV})
        self.assertIn(" ".join(REQUIRED[("autoscale-aml.sh",)]), result.stderr)
        self.assertEqual(self.az(), [])

    def test_missing_deployment_points_at_deploy_aml(self):
        result = self.run_script("autoscale-aml.sh", expect=1)
        self.assertIn("scripts/deploy-aml.sh --deployment blue", result.stderr)
        self.assertEqual(self.words(), ["ml online-deployment show"])


class Logs(StubTestCase):
    def test_aml_server_and_storage_initializer(self):
        self.run_script("logs.sh", "aml")
        self.run_script("logs.sh", "aml", "--deployment", "green", "--storage-initializer", "--lines", "50")
        server, init = self.calls_to("ml online-deployment get-logs")
        self.assertEqual((option(server, "--endpoint-name"), option(server, "--name")), (ENDPOINT, "blue"))
        self.assertIsNone(option(server, "--container"))
        self.assertEqual(option(init, "--container"), "storage-initializer")
        self.assertEqual((option(init, "--name"), option(init, "--lines")), ("green", "50"))

    def test_containerapp(self):
        self.run_script("logs.sh", "containerapp", "--follow", "--system")
        (call,) = self.calls_to("containerapp logs show")
        self.assertEqual((option(call, "--name"), option(call, "--type")), (APP, "system"))
        self.assertIn("--follow", call)


class InvokeOffline(StubTestCase):
    """invoke.sh against the curl stub; its runs against the real server are in test_server.py."""

    def test_non_2xx_shows_the_azure_error_headers(self):
        result = self.run_script(
            "invoke.sh", "--request-file", str(REPO / "azureml" / "sample-request.json"), expect=1,
            SCORING_URI="https://example.invalid/score", SCORING_KEY=SECRETS[0], STUB_CURL_STATUS="504",
        )
        self.assertIn("HTTP 424", result.stderr)
        self.assertIn("ms-azureml-model-error-statuscode: 504", result.stderr)
        (curl,) = [r for r in self.world.records() if r["tool"] == "curl"]
        self.assertEqual(curl["argv"][-1], "https://example.invalid/score")
        self.assertEqual(curl["headers"]["authorization"], {"bearer_primary_key": True})

    def test_other_key_variable(self):
        self.run_script(
            "invoke.sh", "--key-env", "MY_KEY", str(GLIOMA), SCORING_URI="https://example.invalid/score",
            MY_KEY=SECRETS[0],
        )
        (curl,) = [r for r in self.world.records() if r["tool"] == "curl"]
        self.assertEqual(curl["headers"]["authorization"], {"bearer_primary_key": True})

    def test_missing_image(self):
        result = self.run_script("invoke.sh", "/nonexistent.jpg", expect=1)
        self.assertIn("image not found", result.stderr)


class SampleRequest(unittest.TestCase):
    def test_generator_writes_the_image_as_base64_json(self):
        scratch = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, scratch)
        output = scratch / "request.json"
        result = subprocess.run(
            [str(SCRIPTS / "make-sample-request.sh"), str(GLIOMA), str(output)],
            capture_output=True, text=True, env=clean_environ(),
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, "")
        request = json.loads(output.read_text())
        self.assertEqual(list(request), ["image"])
        self.assertEqual(base64.b64decode(request["image"], validate=True), GLIOMA.read_bytes())

    def test_generated_file_is_git_ignored_and_images_are_not_committed(self):
        for path in ("azureml/sample-request.json", ".env", "tests/data/mri/Te-gl_0010.jpg"):
            with self.subTest(path=path):
                ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO)
                self.assertEqual(ignored.returncode, 0, f"{path} is not git-ignored")
        tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
        self.assertNotIn("azureml/sample-request.json", tracked)
        self.assertNotIn(".env", tracked)

    def test_missing_image_without_fetch(self):
        result = subprocess.run(
            [str(SCRIPTS / "make-sample-request.sh"), "--no-fetch", "/nonexistent.jpg", "/dev/null"],
            capture_output=True, text=True, env=clean_environ(),
        )
        self.assertEqual(result.returncode, 1)
        self.assertIn("image not found", result.stderr)


class EnvExample(unittest.TestCase):
    def setUp(self):
        self.text = (REPO / ".env.example").read_text()
        self.values = {}
        for line in self.text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                key, _, value = line.partition("=")
                self.values[key.strip()] = value.strip()

    def test_documents_every_variable_the_scripts_read(self):
        names = {name for names in REQUIRED.values() for name in names}
        names |= {"IMAGE_NAME", "IMAGE_TAG", "AML_MODEL_NAME", "AML_MODEL_VERSION", "CONTAINERAPP_MIN_REPLICAS",
                  "CONTAINERAPP_MAX_REPLICAS", "AML_AUTOSCALE_MIN", "AML_AUTOSCALE_MAX", "AML_AUTOSCALE_LATENCY_MS"}
        self.assertLessEqual(names, set(self.values), "undocumented variables")

    def test_placeholders_only(self):
        self.assertEqual(self.values["AZURE_SUBSCRIPTION_ID"], "00000000-0000-0000-0000-000000000000")
        for key, value in self.values.items():
            with self.subTest(key=key):
                self.assertFalse(any(word in key for word in ("KEY", "PASSWORD", "SECRET", "TOKEN")), key)
                self.assertLess(len(value), 64)


class NoSecretsCommitted(unittest.TestCase):
    """The deployment files hold placeholders only: no real subscription or tenant ids, keys,
    connection strings or passwords."""

    GUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
    SECRETISH = re.compile(r"AccountKey=|SharedAccessSignature|password\s*[=:]\s*\S|BEGIN [A-Z ]*PRIVATE KEY", re.I)

    def test_deployment_files(self):
        files = [REPO / ".env.example", *sorted((REPO / "azureml").glob("*.yml")),
                 *sorted((REPO / "azureml" / "kubernetes").glob("*.yml")), REPO / "README.md",
                 *sorted((REPO / "docs").glob("*.md"))]
        files += [SCRIPTS / name for name in SCRIPT_NAMES] + [SCRIPTS / "lib" / "azure.sh"]
        for path in files:
            text = path.read_text()
            with self.subTest(file=str(path.relative_to(REPO))):
                ids = {g for g in self.GUID.findall(text) if g != "00000000-0000-0000-0000-000000000000"}
                self.assertEqual(ids, set(), "only the all-zero placeholder id may appear")
                self.assertIsNone(self.SECRETISH.search(text))


class DocumentationLinks(unittest.TestCase):
    def test_every_relative_link_names_a_file_that_exists(self):
        broken = []
        for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
            for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
                if not target.startswith(("http://", "https://")) and not (page.parent / target).exists():
                    broken.append(f"{page.relative_to(REPO)}: {target}")
        self.assertEqual(broken, [])


class Shellcheck(unittest.TestCase):
    def test_zero_findings(self):
        shellcheck = Path(sys.executable).parent / "shellcheck"
        files = sorted(str(p.relative_to(REPO)) for p in SCRIPTS.glob("*.sh"))
        files += sorted(str(p.relative_to(REPO)) for p in (SCRIPTS / "lib").glob("*.sh"))
        files += sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("*/*.sh"))
        files.append(".ci/run")
        result = subprocess.run([str(shellcheck), "-x", *files], cwd=REPO, capture_output=True, text=True)
        self.assertEqual(result.returncode, 0, f"shellcheck on {len(files)} files:\n{result.stdout}{result.stderr}")


if __name__ == "__main__":
    unittest.main()
