"""The manifests against the server and against each other.

Static (always): probes name the server's open probe routes and its port; Service, PDB,
NetworkPolicy, HPA and topology spread all select the Deployment's pods and not KServe's; the
InferenceService carries the Deployment's settings, resources, security and shutdown numbers;
thread counts equal the CPU limit; the grace period covers preStop + drain + in-flight time.

Live (when target/release/scorer, ONNX Runtime and model/ are present, else skipped): the real
server started with exactly the manifests' environment, from a folder laid out as the image's
WORKDIR (./model) with TMPDIR as the /tmp emptyDir, answers every probe path with 200 once ready,
then on SIGTERM turns readiness to 503 while liveness still answers, and exits within the grace
period. And it refuses what the manifests guard against: an unknown SCORER_* variable, such as
the SCORER_SERVICE_HOST a Service named `scorer` would inject without enableServiceLinks: false.
"""

import os
import re
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
    REPO,
    cpu_cores,
    default_port,
    deployment_pod,
    isvc_pod,
    only_container,
    open_probe_routes,
    port_number,
    prestop_seconds,
    probes,
    resolve_env,
    scorer_env,
    the,
)

SCORER = REPO / "target" / "release" / "scorer"
RUNTIME = REPO / "runtime" / "lib"
MODEL = REPO / "model"
LISTENING = re.compile(r"listening on http://[^\s\"]+:(\d+)")
# Which probe may use which route: liveness and startup the routes that answer 200 while the
# process serves, readiness the ones that answer 503 until the model is warm and from SIGTERM on.
LIVENESS_ROUTES = {"HEALTH", "V2_LIVE"}
READINESS_ROUTES = {"READY", "V2_READY"}
EXIT_MARGIN_SECONDS = 5  # grace beyond drain + in-flight, for the process to exit before SIGKILL


def pods():
    return {"Deployment": (deployment_pod(), the("Deployment")), "InferenceService": (isvc_pod(), the("InferenceService"))}


def shutdown_seconds(container):
    env = scorer_env(container)
    drain = int(env.get("SCORER_SHUTDOWN_DRAIN_MS", "0")) / 1000
    in_flight = int(env.get("SCORER_SHUTDOWN_TIMEOUT_SECS", "25"))  # the server's default
    return prestop_seconds(container) + drain + in_flight


def matches(selector, labels):
    return all(labels.get(key) == value for key, value in selector.items())


class Probes(unittest.TestCase):
    def test_probes_use_open_probe_routes_on_the_server_port(self):
        routes = open_probe_routes()
        self.assertLessEqual(LIVENESS_ROUTES | READINESS_ROUTES, set(routes), "routes.rs no longer has these probes")
        port = default_port()
        for kind, (pod, _) in pods().items():
            container = only_container(pod)
            self.assertEqual([p["containerPort"] for p in container["ports"]], [port], kind)
            found = probes(container)
            self.assertEqual(set(found), {"startupProbe", "livenessProbe", "readinessProbe"}, kind)
            for name, probe in found.items():
                with self.subTest(workload=kind, probe=name):
                    allowed = READINESS_ROUTES if name == "readinessProbe" else LIVENESS_ROUTES
                    self.assertIn(probe["httpGet"]["path"], {routes[r] for r in allowed})
                    self.assertEqual(port_number(container, probe["httpGet"]["port"]), port)
                    self.assertLessEqual(probe["timeoutSeconds"], probe["periodSeconds"])

    def test_the_image_exposes_the_port(self):
        self.assertIn(f"EXPOSE {default_port()}", (REPO / "Dockerfile").read_text())


class Selectors(unittest.TestCase):
    def test_every_object_selects_the_deployment_pods_and_not_kserves(self):
        deployment = the("Deployment")
        selector = deployment["spec"]["selector"]["matchLabels"]
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        self.assertTrue(matches(selector, pod_labels))
        service = the("Service")
        policy = the("NetworkPolicy")
        spread = deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]
        for name, chosen in {
            "Service": service["spec"]["selector"],
            "PodDisruptionBudget": the("PodDisruptionBudget", "brain-tumor-ml")["spec"]["selector"]["matchLabels"],
            "NetworkPolicy": policy["spec"]["podSelector"]["matchLabels"],
            "topologySpreadConstraints": spread[0]["labelSelector"]["matchLabels"],
        }.items():
            with self.subTest(selector=name):
                self.assertEqual(chosen, selector)

        isvc = the("InferenceService")
        isvc_labels = {**isvc["metadata"].get("labels", {}), **isvc["spec"]["predictor"].get("labels", {})}
        self.assertFalse(matches(service["spec"]["selector"], isvc_labels), "service.yaml would route to KServe's pods")
        # The labels KServe adds to the predictor's pods (components/predictor.go, buildObjectMeta).
        kserve_pods = {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"], "component": "predictor"}
        kserve_pdb = the("PodDisruptionBudget", f"{isvc['metadata']['name']}-predictor")
        self.assertEqual(kserve_pdb["spec"]["selector"]["matchLabels"], kserve_pods)
        self.assertEqual(isvc["spec"]["predictor"]["topologySpreadConstraints"][0]["labelSelector"]["matchLabels"], kserve_pods)

    def test_ports_agree(self):
        container = only_container(deployment_pod())
        service_port = the("Service")["spec"]["ports"][0]
        self.assertEqual(port_number(container, service_port["targetPort"]), default_port())
        policy_port = the("NetworkPolicy")["spec"]["ingress"][0]["ports"][0]["port"]
        self.assertEqual(port_number(container, policy_port), default_port())
        self.assertEqual(only_container(isvc_pod())["ports"][0]["containerPort"], default_port())

    def test_one_namespace(self):
        namespace = the("Namespace")["metadata"]["name"]
        for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "NetworkPolicy", "InferenceService"):
            with self.subTest(kind=kind):
                self.assertEqual(the(kind)["metadata"]["namespace"], namespace)

    def test_the_hpa_scales_the_deployment(self):
        target = the("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
        deployment = the("Deployment")
        self.assertEqual((target["apiVersion"], target["kind"], target["name"]), ("apps/v1", "Deployment", deployment["metadata"]["name"]))


class Availability(unittest.TestCase):
    def test_replicas_hpa_and_disruption_budget(self):
        deployment = the("Deployment")
        self.assertNotIn("replicas", deployment["spec"], "the HPA owns the count; `kubectl apply` would reset it")
        hpa = the("HorizontalPodAutoscaler")["spec"]
        self.assertGreaterEqual(hpa["minReplicas"], 2)
        self.assertGreater(hpa["maxReplicas"], hpa["minReplicas"])
        self.assertGreaterEqual(hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 300, "slower than the default")
        for name in ("brain-tumor-ml", f"{the('InferenceService')['metadata']['name']}-predictor"):
            with self.subTest(pdb=name):
                pdb = the("PodDisruptionBudget", name)["spec"]
                if "maxUnavailable" in pdb:
                    evictable, serving = pdb["maxUnavailable"], hpa["minReplicas"] - pdb["maxUnavailable"]
                else:
                    evictable, serving = hpa["minReplicas"] - pdb["minAvailable"], pdb["minAvailable"]
                self.assertGreaterEqual(evictable, 1, "a PDB that allows no eviction blocks node drains")
                self.assertGreaterEqual(serving, 2, "at least two replicas keep serving during a drain")
        self.assertEqual(deployment["spec"]["strategy"]["rollingUpdate"], {"maxSurge": 1, "maxUnavailable": 0})

    def test_the_inference_service_scales_and_rolls_like_the_deployment(self):
        predictor = the("InferenceService")["spec"]["predictor"]
        hpa = the("HorizontalPodAutoscaler")["spec"]
        self.assertEqual((predictor["minReplicas"], predictor["maxReplicas"]), (hpa["minReplicas"], hpa["maxReplicas"]))
        self.assertEqual(predictor["autoScaling"], {"metrics": hpa["metrics"], "behavior": hpa["behavior"]})
        self.assertEqual(predictor["deploymentStrategy"], the("Deployment")["spec"]["strategy"])


class Settings(unittest.TestCase):
    def test_environment_is_identical(self):
        deployment = only_container(deployment_pod())
        isvc = only_container(isvc_pod())
        self.assertEqual(
            [v for v in isvc["env"] if v["name"] != "PROTOCOL"], deployment["env"], "the same SCORER_* list, in order"
        )
        self.assertTrue(all(v["name"].startswith("SCORER_") for v in deployment["env"]))

    def test_thread_counts_equal_the_cpu_limit(self):
        for kind, (pod, _) in pods().items():
            container = only_container(pod)
            limit = cpu_cores(container["resources"]["limits"]["cpu"])
            self.assertEqual(limit, int(limit), f"{kind}: a whole number of CPUs, so no count is rounded")
            self.assertEqual(container["resources"]["requests"], container["resources"]["limits"], f"{kind}: Guaranteed QoS")
            env = resolve_env(container)
            for name in ("SCORER_INTRA_OP_THREADS", "SCORER_HTTP_WORKERS", "SCORER_PREPROCESS_THREADS"):
                with self.subTest(workload=kind, setting=name):
                    self.assertEqual(int(env[name]), int(limit))

    def test_grace_period_covers_prestop_drain_and_in_flight_time(self):
        for kind, (pod, _) in pods().items():
            with self.subTest(workload=kind):
                needed = shutdown_seconds(only_container(pod)) + EXIT_MARGIN_SECONDS
                self.assertGreaterEqual(pod["terminationGracePeriodSeconds"], needed)

    def test_pod_hardening(self):
        deployment_pod_spec = deployment_pod()
        for kind, (pod, _) in pods().items():
            container = only_container(pod)
            with self.subTest(workload=kind):
                self.assertIs(pod["automountServiceAccountToken"], False)
                self.assertIs(pod["enableServiceLinks"], False, "a Service named scorer would inject SCORER_* variables")
                self.assertEqual(pod["securityContext"]["runAsUser"], 10001)
                self.assertIs(pod["securityContext"]["runAsNonRoot"], True)
                self.assertEqual(pod["securityContext"]["seccompProfile"], {"type": "RuntimeDefault"})
                self.assertEqual(
                    container["securityContext"],
                    {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}},
                )
                # The read-only root leaves one writable path: the temp folder, where the
                # optimised-model cache lives unless it is turned off or moved.
                env = scorer_env(container)
                if env.get("SCORER_OPTIMIZED_MODEL_CACHE", "true") != "false" and "SCORER_OPTIMIZED_MODEL_CACHE_DIR" not in env:
                    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
                    volumes = {v["name"]: v for v in pod["volumes"]}
                    self.assertIn("emptyDir", volumes[mounts["/tmp"]])
                # The InferenceService carries the Deployment's pod, field for field.
                for field in ("securityContext", "volumes", "terminationGracePeriodSeconds"):
                    self.assertEqual(pod[field], deployment_pod_spec[field], field)
                deployment_container = only_container(deployment_pod_spec)
                for field in ("image", "imagePullPolicy", "resources", "securityContext", "volumeMounts"):
                    self.assertEqual(container[field], deployment_container[field], field)
                for name, probe in probes(container).items():
                    other = probes(deployment_container)[name]
                    timings = {k: v for k, v in probe.items() if k != "httpGet"}
                    self.assertEqual(timings, {k: v for k, v in other.items() if k != "httpGet"}, name)

    def test_kserve_specifics(self):
        isvc = the("InferenceService")
        # KServe's own checks and defaults (pkg/apis/serving/v1beta1/predictor_custom.go,
        # pkg/constants/constants.go; docs, custom predictor): PROTOCOL v1 or v2; one container,
        # which KServe names kserve-container; a port name with grpc or h2c in it means gRPC.
        container = only_container(isvc["spec"]["predictor"])
        self.assertEqual(container["name"], "kserve-container")
        self.assertEqual(resolve_env(container)["PROTOCOL"], "v2", "the server speaks the Open Inference Protocol")
        port_name = container["ports"][0]["name"]
        self.assertFalse("grpc" in port_name or "h2c" in port_name, "the server speaks HTTP/1.1 REST")
        self.assertIn(isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"], {"Standard", "RawDeployment"})
        model_name = re.search(r'^name = "([^"]+)"', (REPO / "model" / "model.toml").read_text(), re.M).group(1)
        self.assertEqual(isvc["metadata"]["name"], model_name, "the V2 model name is the InferenceService's")


# --- the real server --------------------------------------------------------------------------


def http_status(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def clean_environ():
    return {k: v for k, v in os.environ.items() if not k.startswith("SCORER_") and k not in ("AZUREML_MODEL_DIR", "RUST_LOG")}


def require_server(test, model=True):
    missing = [str(p) for p in (SCORER, RUNTIME, *([MODEL / "model.toml"] if model else [])) if not p.exists()]
    if missing:
        message = f"needs {', '.join(missing)} (cargo build --release; scripts/setup.sh)"
        if os.environ.get("REQUIRE_SERVER") == "1":
            test.fail(message)
        test.skipTest(message)


class Server:
    """The scorer as a child process, its log (stderr) collected line by line."""

    def __init__(self, env, cwd):
        self.process = subprocess.Popen(
            [str(SCORER)], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self.lines, self.port, self.seen = [], None, threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            if self.port is None and (match := LISTENING.search(line)):
                self.port = int(match.group(1))
                self.seen.set()
        self.seen.set()

    @property
    def log(self):
        return "\n".join(self.lines)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait_for(self, path, status, within):
        deadline = time.monotonic() + within
        while time.monotonic() < deadline and self.process.poll() is None:
            if http_status(self.url(path), timeout=1) == status:
                return time.monotonic()
            time.sleep(0.05)
        raise AssertionError(f"{path} did not answer {status} within {within} s:\n{self.log}")

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


class LiveServer(unittest.TestCase):
    def test_the_server_started_as_the_pod_starts_it(self):
        require_server(self)
        pod = deployment_pod()
        container = only_container(pod)
        found = probes(container)
        with tempfile.TemporaryDirectory() as workdir:
            (Path(workdir) / "model").symlink_to(MODEL)  # WORKDIR /opt/scorer with ./model
            tmp = Path(workdir) / "tmp"  # the /tmp emptyDir
            tmp.mkdir()
            env = clean_environ()
            env.update(scorer_env(container))
            env.update(SCORER_HOST="127.0.0.1", SCORER_PORT="0", TMPDIR=str(tmp))
            started = time.monotonic()
            server = Server(env, workdir)
            try:
                startup = found["startupProbe"]
                self.assertTrue(server.seen.wait(startup["periodSeconds"] * startup["failureThreshold"]), server.log)
                self.assertIsNotNone(server.port, f"the server did not start:\n{server.log}")
                readiness = found["readinessProbe"]
                ready = server.wait_for(readiness["httpGet"]["path"], 200, within=60)
                print(f"\n    ready {ready - started:.1f} s after start", end=" ", flush=True)
                paths = {p["httpGet"]["path"] for c in (container, only_container(isvc_pod())) for p in probes(c).values()}
                for path in sorted(paths):
                    with self.subTest(path=path):
                        self.assertEqual(http_status(server.url(path)), 200)

                # Shutdown: readiness turns 503 at once, liveness keeps answering while the
                # drain lasts, and the process is gone before the kubelet would SIGKILL it.
                server.process.send_signal(signal.SIGTERM)
                stopped = time.monotonic()
                server.wait_for(readiness["httpGet"]["path"], 503, within=2)
                drain = int(scorer_env(container)["SCORER_SHUTDOWN_DRAIN_MS"]) / 1000
                self.assertEqual(http_status(server.url(found["livenessProbe"]["httpGet"]["path"])), 200, "still serving")
                code = server.process.wait(timeout=pod["terminationGracePeriodSeconds"])
                took = time.monotonic() - stopped
                self.assertEqual(code, 0, server.log)
                self.assertGreaterEqual(took, drain - 0.5, "the drain was cut short")
                self.assertIn("shut down cleanly", server.log)
            finally:
                server.kill()
            self.assertNotIn("cannot be used", server.log, "the optimised-model cache must work in the emptyDir")
            self.assertTrue(any(tmp.iterdir()), "the cache is written to TMPDIR")

    def test_every_settings_variable_is_accepted(self):
        # Exit 2 is a refused setting; 3 a missing model, which the server checks only after the
        # settings, so exit 3 with no model folder means every variable was accepted.
        require_server(self, model=False)
        for kind, (pod, _) in pods().items():
            with self.subTest(workload=kind):
                env = {**clean_environ(), **resolve_env(only_container(pod)), "SCORER_MODEL_DIR": "/nonexistent/model"}
                result = subprocess.run([str(SCORER)], env=env, capture_output=True, text=True, timeout=30)
                self.assertEqual(result.returncode, 3, result.stderr)

    def test_an_unknown_settings_variable_is_refused(self):
        require_server(self, model=False)
        env = {**clean_environ(), **scorer_env(only_container(deployment_pod())), "SCORER_MODEL_DIR": "/nonexistent/model"}
        # A misspelling, and what a Service named `scorer` would inject (enableServiceLinks).
        for name, value in (("SCORER_INTRA_OP_THREAD", "2"), ("SCORER_SERVICE_HOST", "10.0.0.10")):
            with self.subTest(variable=name):
                result = subprocess.run([str(SCORER)], env={**env, name: value}, capture_output=True, text=True, timeout=30)
                self.assertEqual(result.returncode, 2, result.stderr)

    def test_the_default_port_is_the_container_port(self):
        require_server(self, model=False)
        help_text = subprocess.run([str(SCORER), "--help"], capture_output=True, text=True, check=True).stdout
        documented = re.search(r"--port\b.*?\[default: (\d+)\]", help_text, re.S)
        self.assertIsNotNone(documented, help_text)
        self.assertEqual(int(documented.group(1)), only_container(deployment_pod())["ports"][0]["containerPort"])


if __name__ == "__main__":
    unittest.main()
