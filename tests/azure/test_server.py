"""The deployment YAML against the real server: the routes and port it names are the ones the
binary serves, the settings it passes are ones the binary accepts, and a server started the way
Azure ML starts it (those settings, the model mounted below AZUREML_MODEL_DIR) answers probes and
scores real MRI images and azureml/sample-request.json."""

import json
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
from pathlib import Path

from support import (
    DEPLOYMENTS,
    GLIOMA,
    MRI,
    REPO,
    SAMPLE_REQUEST,
    SCORER,
    SCRIPTS,
    SECRETS,
    clean_environ,
    load_yaml,
)

LISTENING = re.compile(r"listening on http://[^\s\"]+:(\d+)")
CANNOT_LISTEN = re.compile(r"could not listen on [^\s\"]+:(\d+)")
KEY = SECRETS[0]


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, headers, body bytes); HTTP errors are answers, not exceptions."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


class Scorer:
    """target/release/scorer as a child process; stderr (the log) is collected line by line."""

    def __init__(self, args, env, cwd):
        self.process = subprocess.Popen(
            [str(SCORER), *args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines = []
        self.port = None
        self.bind_failed_port = None
        self._seen = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if self.port is None and (match := LISTENING.search(line)):
                self.port = int(match.group(1))
                self._seen.set()
            if self.bind_failed_port is None and (match := CANNOT_LISTEN.search(line)):
                self.bind_failed_port = int(match.group(1))
                self._seen.set()
        self._seen.set()

    @property
    def log(self):
        return "\n".join(self.lines)

    def wait_listening(self, timeout=60):
        if not self._seen.wait(timeout) or self.port is None:
            raise AssertionError(f"the server did not start listening:\n{self.log}")
        return self.port

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_ready(self, path, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if http("GET", self.url(path), timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"{path} did not answer 200 within {timeout} s:\n{self.log}")

    def stop(self, timeout=40):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(5)
        if not self._reader.is_alive():
            self.process.stderr.close()
        return self.process.returncode


def deployment_env(spec):
    return {key: str(value) for key, value in spec["environment_variables"].items()}


def azure_model_mount(root):
    """Lays out model/ the way Azure ML mounts the registered folder model; returns AZUREML_MODEL_DIR."""
    model_dir = Path(root) / "azureml-models" / "brain-tumor-vgg16" / "1"
    folder = model_dir / "model"
    folder.mkdir(parents=True)
    for file in (REPO / "model").iterdir():
        (folder / file.name).symlink_to(file)
    return model_dir


def require_binary(test):
    if not SCORER.is_file():
        test.fail(f"{SCORER} is missing: scripts/check-azure.sh builds it (cargo build --release)")


class DefaultPort(unittest.TestCase):
    """The deployments' port is the server's default port (which the image EXPOSEs).

    The default is read from what the binary does, not from a document: the server is started
    with no port setting at all (no --port, no SCORER_PORT, no config file) and reports the port
    it binds, "listening on http://127.0.0.1:PORT", or, if that port is taken on this machine,
    "could not listen on 127.0.0.1:PORT". Either line names the compiled-in default. The --help
    text's "[default: N]" is checked against it too, so the documentation cannot drift.
    """

    def test_deployment_port_is_the_server_default(self):
        require_binary(self)
        env = clean_environ()
        server = Scorer(["--host", "127.0.0.1", "--model-dir", str(REPO / "model")], env, cwd=REPO)
        try:
            server._seen.wait(60)
        finally:
            server.stop()
        actual = server.port or server.bind_failed_port
        self.assertIsNotNone(actual, f"no listening line in the log:\n{server.log}")

        help_text = subprocess.run([str(SCORER), "--help"], capture_output=True, text=True, check=True).stdout
        documented = re.search(r"--port\b.*?\[default: (\d+)\]", help_text)
        self.assertIsNotNone(documented, help_text)
        self.assertEqual(int(documented.group(1)), actual, "--help documents another default port")

        for name, path in DEPLOYMENTS.items():
            routes = load_yaml(path)["environment"]["inference_config"]
            for route in ("liveness_route", "readiness_route", "scoring_route"):
                with self.subTest(deployment=name, route=route):
                    self.assertEqual(routes[route]["port"], actual)

        dockerfile = REPO / "Dockerfile"
        self.assertTrue(dockerfile.is_file(), "Dockerfile missing: the EXPOSE check cannot run")
        self.assertIn(f"EXPOSE {actual}", dockerfile.read_text(), "the image must EXPOSE the port (--local)")


class SettingsAccepted(unittest.TestCase):
    """The server refuses unknown SCORER_* variables (exit 2) before it looks for a model (exit 3
    here, as no model folder exists). So exit 3 means every setting passed is accepted."""

    def start_with(self, env_vars):
        env = clean_environ()
        env.update(env_vars)
        return subprocess.run(
            [str(SCORER), "--model-dir", "/nonexistent/model"], env=env, capture_output=True, text=True, timeout=30
        )

    def test_deployment_settings(self):
        require_binary(self)
        for name, path in DEPLOYMENTS.items():
            with self.subTest(deployment=name):
                result = self.start_with(deployment_env(load_yaml(path)))
                self.assertEqual(result.returncode, 3, result.stderr)
                self.assertNotIn("invalid setting", result.stderr)

    def test_container_app_settings(self):
        require_binary(self)
        env = clean_environ()
        env["ACR_NAME"] = "acrtest"
        printed = subprocess.run(
            [str(SCRIPTS / "deploy-containerapp.sh"), "--print-yaml"], env=env, capture_output=True, text=True
        )
        self.assertEqual(printed.returncode, 0, printed.stderr)
        container = load_yaml_text(printed.stdout)["properties"]["template"]["containers"][0]
        result = self.start_with({item["name"]: item["value"] for item in container["env"]})
        self.assertEqual(result.returncode, 3, result.stderr)

    def test_the_check_itself_sees_a_misspelt_setting(self):
        require_binary(self)
        result = self.start_with({"SCORER_MAX_BACTH_SIZE": "8"})
        self.assertEqual(result.returncode, 2, result.stderr)


def load_yaml_text(text):
    import yaml

    return yaml.safe_load(text)


class AsDeployed(unittest.TestCase):
    """One server started as Azure ML starts the blue deployment: its environment_variables, the
    model below AZUREML_MODEL_DIR, a working directory without ./model. Requests go to the routes
    read from deployment.yml."""

    @classmethod
    def setUpClass(cls):
        if not SCORER.is_file():
            raise RuntimeError(f"{SCORER} is missing: scripts/check-azure.sh builds it")
        cls.spec = load_yaml(DEPLOYMENTS["blue"])
        cls.routes = {k: v["path"] for k, v in cls.spec["environment"]["inference_config"].items()}
        cls.scratch = tempfile.mkdtemp(prefix="azure-deployed-")
        cls.model_dir = azure_model_mount(cls.scratch)
        env = clean_environ()
        env.update(deployment_env(cls.spec))
        env["AZUREML_MODEL_DIR"] = str(cls.model_dir)
        cls.server = Scorer(["--host", "127.0.0.1", "--port", "0"], env, cwd=cls.scratch)
        try:
            cls.server.wait_listening()
            cls.server.wait_ready(cls.routes["readiness_route"])
        except BaseException:
            cls.server.stop()
            shutil.rmtree(cls.scratch, ignore_errors=True)
            raise

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        shutil.rmtree(cls.scratch, ignore_errors=True)

    def score(self, body, content_type, **headers):
        status, _, answer = http(
            "POST",
            self.server.url(self.routes["scoring_route"]),
            body,
            {"Content-Type": content_type, **headers},
            timeout=60,
        )
        return status, answer

    def test_liveness_and_readiness_routes(self):
        for route in ("liveness_route", "readiness_route"):
            with self.subTest(route=route):
                self.assertEqual(http("GET", self.server.url(self.routes[route]))[0], 200)

    def test_model_found_below_azureml_model_dir(self):
        expected = f"{self.model_dir}/model/Tumor_classification_vgg16.onnx"
        self.assertIn(expected, self.server.log)

    def test_logs_are_json_lines(self):
        for line in filter(None, self.server.lines):
            with self.subTest(line=line[:80]):
                self.assertIn("message", json.loads(line))

    def test_scores_a_real_mri_of_each_class(self):
        expected = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}
        for prefix, label in expected.items():
            image = sorted(MRI.glob(f"Te-{prefix}_*.jpg"))[0]
            with self.subTest(image=image.name):
                status, answer = self.score(image.read_bytes(), "image/jpeg")
                self.assertEqual(status, 200, answer)
                prediction = json.loads(answer)["predictions"][0]
                self.assertEqual(prediction["label"], label)
                self.assertEqual(set(prediction["probabilities"]), set(expected.values()))

    def test_sample_request_as_az_invoke_sends_it(self):
        # `az ml online-endpoint invoke --request-file` parses the file and posts it re-serialised.
        body = json.dumps(json.loads(SAMPLE_REQUEST.read_text())).encode()
        status, answer = self.score(body, "application/json", Authorization=f"Bearer {KEY}")
        self.assertEqual(status, 200, answer)
        answer = json.loads(answer)
        self.assertEqual(answer["predictions"][0]["label"], "glioma")
        self.assertEqual(answer["model"]["name"], "brain-tumor-vgg16")

    def invoke(self, *args):
        env = clean_environ()
        env["SCORING_KEY"] = KEY
        result = subprocess.run(
            [str(SCRIPTS / "invoke.sh"), "--url", self.server.url(self.routes["scoring_route"]), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        self.assertNotIn(KEY, result.stdout + result.stderr, "invoke.sh printed the key")
        return result

    def test_invoke_script_every_form(self):
        other = sorted(MRI.glob("Te-pi_*.jpg"))[0]
        cases = {
            "json": (["--as", "json", str(GLIOMA), str(other)], ["glioma", "pituitary"]),
            "multipart": (["--as", "multipart", str(GLIOMA), str(other)], ["glioma", "pituitary"]),
            "raw": (["--as", "raw", str(GLIOMA)], ["glioma"]),
            "request-file": (["--request-file", str(SAMPLE_REQUEST)], ["glioma"]),
        }
        for name, (args, labels) in cases.items():
            with self.subTest(form=name):
                result = self.invoke(*args)
                self.assertEqual(result.returncode, 0, result.stderr)
                self.assertEqual([p["label"] for p in json.loads(result.stdout)["predictions"]], labels)

    def test_invoke_script_reports_errors(self):
        not_an_image = Path(self.scratch) / "notes.jpg"
        not_an_image.write_text("not an image")
        result = self.invoke("--as", "raw", str(not_an_image))
        self.assertEqual(result.returncode, 1)
        self.assertIn("HTTP 400", result.stderr)
        self.assertIn("unsupported_image_format", result.stderr)


class ShutdownAsDeployed(unittest.TestCase):
    """On SIGTERM (scale-in, update) the deployed settings make readiness 503 while liveness stays
    200 for the drain, so the platform stops routing before the listener closes; then exit 0."""

    def test_sigterm_drains(self):
        require_binary(self)
        spec = load_yaml(DEPLOYMENTS["blue"])
        routes = {k: v["path"] for k, v in spec["environment"]["inference_config"].items()}
        settings = deployment_env(spec)
        env = clean_environ()
        env.update(settings)
        server = Scorer(["--host", "127.0.0.1", "--port", "0", "--model-dir", str(REPO / "model")], env, cwd=REPO)
        try:
            server.wait_listening()
            server.wait_ready(routes["readiness_route"])
            started = time.monotonic()
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            self.assertEqual(http("GET", server.url(routes["readiness_route"]))[0], 503)
            self.assertEqual(http("GET", server.url(routes["liveness_route"]))[0], 200)
            server.process.wait(int(settings["SCORER_SHUTDOWN_TIMEOUT_SECS"]) + 15)
            self.assertGreaterEqual(time.monotonic() - started, int(settings["SCORER_SHUTDOWN_DRAIN_MS"]) / 1000 - 0.5)
            self.assertEqual(server.process.returncode, 0, server.log)
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
