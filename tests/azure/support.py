"""Shared helpers for the Azure deployment tests (run by scripts/check-azure.sh)."""

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
AZUREML = REPO / "azureml"
SCRIPTS = REPO / "scripts"
INFRA = REPO / "infra"
STUBS = Path(__file__).resolve().parent / "stubs"
SCORER = REPO / "target" / "release" / "scorer"
MRI = REPO / "tests" / "data" / "mri"
GLIOMA = MRI / "Te-gl_0010.jpg"
SAMPLE_REQUEST = AZUREML / "sample-request.json"
DEPLOYMENTS = {
    "blue": AZUREML / "deployment.yml",
    "green": AZUREML / "deployment-green.yml",
    "int8": AZUREML / "deployment-int8.yml",
}
# The model asset each deployment serves.
MODEL_OF_DEPLOYMENT = {"blue": "model.yml", "green": "model.yml", "int8": "model-int8.yml"}

# What the stubs hand out as secrets; no script may ever print them.
SECRETS = ("FAKE-KEY-1234567890", "FAKE-KEY-SECONDARY-0987654321", "FAKE-ACR-TOKEN-0987654321")

# Every Azure name the scripts take from the environment, with harmless placeholder values.
AZURE_ENV = {
    "AZURE_SUBSCRIPTION_ID": "00000000-0000-0000-0000-000000000000",
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_LOCATION": "westeurope",
    "AZUREML_WORKSPACE": "mlw-test",
    "ACR_NAME": "acrtest",
    "AML_ENDPOINT_NAME": "brain-tumor-ep-test",
    "CONTAINERAPP_NAME": "brain-tumor-app-test",
    "CONTAINERAPP_ENV": "brain-tumor-env-test",
}


def load_yaml(path):
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file)


def clean_environ():
    """The current environment without anything that would steer the server or the scripts."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SCORER_", "AZURE", "AML_", "ACR_", "CONTAINERAPP_", "IMAGE_", "SCORING_", "STUB_",
                               "VNET_", "FIREWALL_", "DEPLOY_", "VPN_", "ONPREM_", "LOG_ANALYTICS_"))
        and key not in ("CONTAINER_CLI", "RUST_LOG", "APP_SUBNET_PREFIX", "PE_SUBNET_PREFIX", "GATEWAY_SUBNET_PREFIX")
    }
    env["AZURE_ENV_FILE"] = os.devnull  # never read a developer's .env during tests
    return env


class StubWorld:
    """A PATH whose az, docker, podman and curl are the recording stubs, plus their state.

    Use as a context manager; `run(script, *args)` runs a script from scripts/ and returns the
    CompletedProcess; `calls(tool)` lists the recorded argv of every call to one tool.
    """

    def __enter__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="azure-stubs-"))
        self.bin = self.dir / "bin"
        self.bin.mkdir()
        for tool, stub in (("az", "az"), ("docker", "docker"), ("podman", "docker"), ("curl", "curl")):
            (self.bin / tool).symlink_to(STUBS / stub)
        self.log = self.dir / "calls.jsonl"
        self.log.touch()
        self.state = self.dir / "state"
        return self

    def __exit__(self, *exc):
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, **overrides):
        env = clean_environ()
        env.update(AZURE_ENV)
        env.update(
            PATH=f"{self.bin}{os.pathsep}{env.get('PATH', '')}",
            STUB_LOG=str(self.log),
            STUB_STATE=str(self.state),
            SMOKE_RETRY_SECONDS="0",
        )
        for key, value in overrides.items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def run(self, script, *args, env=None, timeout=120):
        return subprocess.run(
            [str(SCRIPTS / script), *args],
            cwd=REPO,
            env=env if env is not None else self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def records(self):
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]

    def calls(self, tool="az"):
        return [record["argv"] for record in self.records() if record["tool"] == tool]

    def clear(self):
        self.log.write_text("")


def command_words(argv):
    """`["ml", "online-endpoint", "show", "--name", ...]` -> "ml online-endpoint show"."""
    words = []
    for token in argv:
        if token.startswith("-"):
            break
        words.append(token)
    return " ".join(words)


def option(argv, name):
    """The value after the first `name` in argv, or None."""
    for index, token in enumerate(argv[:-1]):
        if token == name:
            return argv[index + 1]
    return None


def options(argv, name):
    return [argv[index + 1] for index, token in enumerate(argv[:-1]) if token == name]
