"""Shared helpers for the Kubernetes manifest tests (run by scripts/check-kubernetes.sh)."""

import ast
import math
import os
import re
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"
HERE = Path(__file__).resolve().parent

# Strict schema validation runs against both ends of the range the manifests claim: Kubernetes
# 1.32, KServe's minimum (https://kserve.github.io/website/docs/admin-guide/kubernetes-deployment,
# "Installation Requirements"), and 1.37, the newest schema kubernetes-validate 1.37.0 ships.
KUBERNETES_VERSIONS = ("1.32.0", "1.37.0")

# Kinds that are not built into Kubernetes, and the one file kustomization.yaml leaves out.
CUSTOM_KINDS = {"InferenceService"}
KSERVE_FILE = "inferenceservice.yaml"


def load_docs(path):
    with open(path, encoding="utf-8") as file:
        return [doc for doc in yaml.safe_load_all(file) if doc is not None]


def kustomization():
    return load_docs(DEPLOY / "kustomization.yaml")[0]


def builtin_docs():
    """(file name, document) for every built-in-kind document: the kustomization's files and the
    PodDisruptionBudget that sits beside the InferenceService."""
    names = [*kustomization()["resources"], KSERVE_FILE]
    return [(name, doc) for name in names for doc in load_docs(DEPLOY / name) if doc["kind"] not in CUSTOM_KINDS]


def the(kind, name=None, file=None):
    """The one document of `kind` (and `name`) in deploy/kubernetes."""
    files = [file] if file else sorted(p.name for p in DEPLOY.glob("*.yaml"))
    found = [
        doc
        for f in files
        for doc in load_docs(DEPLOY / f)
        if doc.get("kind") == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def deployment_pod():
    return the("Deployment")["spec"]["template"]["spec"]


def isvc_pod():
    return the("InferenceService")["spec"]["predictor"]


def only_container(pod):
    assert len(pod["containers"]) == 1, "one container per pod"
    return pod["containers"][0]


def cpu_cores(quantity):
    """A CPU quantity ("2", "500m", 1.5) in cores."""
    text = str(quantity)
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def resolve_env(container):
    """The container's environment as the kubelet sets it: literal values, and resourceFieldRef
    values (limits.cpu / requests.cpu, which the kubelet rounds up to whole divisors)."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"]["resourceFieldRef"]
        assert ref.get("containerName") in (None, container["name"]), var
        kind, resource = ref["resource"].split(".")
        assert resource == "cpu", f"{var['name']}: only CPU references are resolved here"
        amount = cpu_cores(container["resources"][kind]["cpu"])
        env[var["name"]] = str(math.ceil(amount / cpu_cores(ref.get("divisor", "1"))))
    return env


def scorer_env(container):
    return {key: value for key, value in resolve_env(container).items() if key.startswith("SCORER_")}


def port_number(container, port):
    """A probe's or Service's port (a number or the name of a container port) as a number."""
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container.get("ports", []) if p.get("name") == port]
    assert numbers, f"no container port named {port!r}"
    return numbers[0]


def probes(container):
    return {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container}


def prestop_seconds(container):
    """How long a preStop hook may hold SIGTERM back: a sleep action or `sleep N`; 0 without one."""
    hook = container.get("lifecycle", {}).get("preStop")
    if not hook:
        return 0
    if "sleep" in hook:
        return int(hook["sleep"]["seconds"])
    command = " ".join(hook.get("exec", {}).get("command", []))
    match = re.search(r"\bsleep\s+(\d+)", command)
    assert match, f"cannot tell how long this preStop hook takes: {hook}"
    return int(match.group(1))


def open_probe_routes():
    """The server's probe routes, read from its route table: `probe("/path")` constants are GET
    routes answered without an API key (src/http/routes.rs)."""
    text = (REPO / "src" / "http" / "routes.rs").read_text(encoding="utf-8")
    return dict(re.findall(r'pub const (\w+): Route = probe\("([^"]+)"\);', text))


def default_port():
    """The port in the server's built-in defaults (src/settings.rs)."""
    text = (REPO / "src" / "settings.rs").read_text(encoding="utf-8")
    return int(re.search(r"\bport: (\d+),", text).group(1))


# --- KServe's model classes, read from the downloaded wheel without importing kserve ----------


def kserve_wheel():
    """The kserve wheel pinned in kserve.txt, as scripts/check-kubernetes.sh downloaded it."""
    pin = re.search(r"^kserve==(\S+)", (HERE / "kserve.txt").read_text(), re.M).group(1)
    folder = Path(os.environ.get("KSERVE_WHEEL_DIR", REPO / ".cache" / "manifest-venv" / "wheels"))
    wheel = folder / f"kserve-{pin}-py3-none-any.whl"
    assert wheel.is_file(), f"{wheel} is missing: scripts/check-kubernetes.sh downloads it"
    return wheel


def kserve_models(wheel):
    """{class name: (openapi_types, attribute_map)} for every class in kserve/models/."""
    models = {}
    with zipfile.ZipFile(wheel) as archive:
        for name in archive.namelist():
            if not (name.startswith("kserve/models/") and name.endswith(".py")):
                continue
            for node in ast.parse(archive.read(name)).body:
                if not isinstance(node, ast.ClassDef):
                    continue
                maps = {
                    statement.targets[0].id: ast.literal_eval(statement.value)
                    for statement in node.body
                    if isinstance(statement, ast.Assign)
                    and isinstance(statement.targets[0], ast.Name)
                    and statement.targets[0].id in ("openapi_types", "attribute_map")
                }
                if len(maps) == 2:
                    models[node.name] = (maps["openapi_types"], maps["attribute_map"])
    return models
