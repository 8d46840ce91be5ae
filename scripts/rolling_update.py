#!/usr/bin/env python3
"""Replicas replaced under load: 3 real servers behind nginx, steady load from wrk.

Run 1, the rolling update: every replica in turn gets SIGTERM, the script waits for it to exit,
starts a new one on the same address and waits for /ready, as a Deployment's rollout does. It
reports requests answered, answered 200, failed (any non-200 or connection error) and the p99
before and during the roll. Passes with 0 failed and p99 during the roll <= 2x p99 before.

Run 2, a crash: one replica gets SIGKILL mid-load and is restarted. It reports what was lost and
how soon nginx routed around the dead replica. Passes when every failed request was already in
flight at the killed replica when it died.

nginx stands in for a Kubernetes Service: round robin, a connection refused is retried on the
next replica (`proxy_next_upstream error timeout`), and a request already sent is never resent
(nginx's rule for POST). nginx has no readiness probes, so it learns that a replica is gone only
from refused connections: the server keeps serving during its drain and closes its listener
before it exits, which is what makes the roll lossless.

Standard library only; scripts/rolling-update.sh installs nginx and wrk and builds the server.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCORER = ROOT / "target" / "release" / "scorer"
IMAGE = ROOT / "tests" / "data" / "mri" / "Te-gl_0010.jpg"
# The light model keeps the CI run quick; vgg16 is the product's own model folder.
SQUEEZENET = (ROOT / "tests/fixtures/squeezenet/model.toml", ROOT / "tests/data/squeezenet/light_squeezenet.onnx")
MODELS = ("squeezenet", "vgg16")
# Each replica's settings: one thread of each kind, so that 3 replicas share 2 cores evenly, and
# a drain and grace period as a Deployment would give them (deploy/kubernetes/deployment.yaml).
REPLICA_ENV = {
    "SCORER_HOST": "127.0.0.1",
    "SCORER_INTRA_OP_THREADS": "1",
    "SCORER_HTTP_WORKERS": "1",
    "SCORER_PREPROCESS_THREADS": "1",
    "SCORER_SHUTDOWN_DRAIN_MS": "1000",
    "SCORER_SHUTDOWN_TIMEOUT_SECS": "20",
    "SCORER_LOG_FORMAT": "json",
}
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "image/jpeg"
-- A new connection per request, as clients behind a Service's virtual IP mostly make: an nginx
-- reload then closes no idle keep-alive connection under a request wrk is about to send.
wrk.headers["Connection"] = "close"
local file = assert(io.open(os.getenv("ROLL_IMAGE"), "rb"))
wrk.body = file:read("*all")
file:close()

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\nWRK_JSON {"answered": %d, "duration_us": %d, "non_2xx": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")


def answers_200(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Replica:
    """One server process on a fixed port, replaced in place like a pod behind a Service."""

    def __init__(self, index: int, port: int, model_dir: Path, logs: Path):
        self.index, self.port, self.model_dir, self.logs = index, port, model_dir, logs
        self.process: subprocess.Popen | None = None
        self.starts = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Starts the server and returns the seconds until /ready answered 200."""
        self.starts += 1
        env = {**os.environ, **REPLICA_ENV, "SCORER_PORT": str(self.port), "SCORER_MODEL_DIR": str(self.model_dir)}
        log = open(self.logs / f"replica{self.index}-{self.starts}.log", "wb")
        started = time.monotonic()
        self.process = subprocess.Popen([str(SCORER)], env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(lambda: self.process.poll() is None and answers_200(f"http://{self.address}/ready"), 60,
                   f"replica {self.index} to become ready")
        return time.monotonic() - started

    def stop(self, sig: int) -> tuple[float, int]:
        """Sends `sig`, waits for the exit; returns (seconds to exit, exit code)."""
        sent = time.monotonic()
        self.process.send_signal(sig)
        code = self.process.wait(timeout=60)
        return time.monotonic() - sent, code


class Balancer:
    """nginx in the foreground with its own prefix folder, logging each request's timing. Its
    upstream list is the ready replicas, rewritten and reloaded (SIGHUP: new workers take new
    connections, old ones finish what they hold) whenever `Endpoints` sees the set change."""

    def __init__(self, work: Path, addresses: list[str]):
        self.port = free_port()
        self.work = work
        self.access_log = work / "access.log"
        self.reloads = 0
        self.process: subprocess.Popen | None = None
        self.configure(addresses)
        self.process = subprocess.Popen(["nginx", "-p", str(work), "-c", str(work / "nginx.conf"), "-g", "daemon off;"],
                                        stdout=subprocess.DEVNULL, stderr=open(work / "nginx.stderr", "wb"))
        wait_until(lambda: answers_200(f"{self.url}/ready"), 15, "nginx to answer")

    def configure(self, addresses: list[str]) -> None:
        upstreams = "\n".join(f"    server {address} max_fails=1 fail_timeout=2s;" for address in addresses)
        temp_paths = "\n".join(f"  {kind}_temp_path {self.work}/{kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        (self.work / "nginx.conf").write_text(f"""
worker_processes 1;
pid {self.work}/nginx.pid;
error_log {self.work}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format timing '$msec $status $request_time "$upstream_addr" "$upstream_status"';
  access_log {self.access_log} timing;
{temp_paths}
  client_max_body_size 16m;
  client_body_buffer_size 1m;
  upstream scorers {{
{upstreams}
  }}
  server {{
    listen 127.0.0.1:{self.port};
    location / {{
      proxy_pass http://scorers;
      proxy_next_upstream error timeout;
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
    }}
  }}
}}
""")
        if self.process is not None:
            self.process.send_signal(signal.SIGHUP)
            self.reloads += 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.access_log.read_text().splitlines() if self.access_log.exists() else []

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


class Endpoints(threading.Thread):
    """What Kubernetes' endpoints controller and kube-proxy do for a Service: probe each replica's
    /ready every 100 ms and route only to those answering 200. A replica that got SIGTERM answers
    503 at once and keeps serving through its drain, so it leaves the list before its listener
    closes; without this step nginx would keep connecting until the close, and a connection
    accepted by the kernel but not yet by the server is reset when the listener closes."""

    def __init__(self, replicas: list["Replica"], balancer: Balancer):
        super().__init__(daemon=True)
        self.replicas, self.balancer = replicas, balancer
        self.ready = [replica.address for replica in replicas]
        self.changes: list[tuple[float, list[str]]] = []  # (time.time(), the ready list from then on)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            ready = [r.address for r in self.replicas if answers_200(f"http://{r.address}/ready", timeout=1)]
            if ready and ready != self.ready:
                self.ready = ready
                self.balancer.configure(ready)
                self.changes.append((time.time(), ready))

    def removed_after(self, address: str, since: float) -> float | None:
        """Seconds from `since` until `address` was first left out of the list, if it was."""
        return next((at - since for at, ready in self.changes if at >= since and address not in ready), None)

    def stop(self) -> None:
        self.stopping.set()
        self.join()


@dataclass
class Load:
    answered: int
    answered_200: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    seconds: float


class LoadGenerator:
    """wrk, closed loop: each connection sends the next request as soon as the last one is answered."""

    def __init__(self, work: Path, url: str, connections: int):
        self.script = work / "score.lua"
        self.script.write_text(WRK_SCRIPT)
        self.url, self.connections = url, connections
        self.process: subprocess.Popen | None = None

    def start(self, seconds: int) -> None:
        command = ["wrk", "-t1", f"-c{self.connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(self.script), f"{self.url}/score"]
        self.process = subprocess.Popen(command, env={**os.environ, "ROLL_IMAGE": str(IMAGE)}, stdout=subprocess.PIPE, text=True)

    def stop(self) -> Load:
        """Ends the run now (wrk reports on SIGINT) and parses its report."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.result()

    def result(self) -> Load:
        output, _ = self.process.communicate(timeout=60)
        line = next((line for line in output.splitlines() if line.startswith("WRK_JSON ")), None)
        if line is None:
            raise SystemExit(f"wrk printed no report:\n{output}")
        report = json.loads(line.removeprefix("WRK_JSON "))
        errors = report["connect"] + report["read"] + report["write"] + report["timeout"]
        return Load(
            answered=report["answered"],
            answered_200=report["answered"] - report["non_2xx"],
            failed=report["non_2xx"] + errors,
            p50_ms=report["p50_us"] / 1000,
            p99_ms=report["p99_us"] / 1000,
            max_ms=report["max_us"] / 1000,
            seconds=report["duration_us"] / 1e6,
        )

    def run(self, seconds: int) -> Load:
        self.start(seconds)
        return self.result()


def parse_access_log(lines: list[str], started_at: float, stopped_at: float) -> list[dict]:
    """`$msec $status $request_time "$upstream_addr" "$upstream_status"` per line, for the requests
    that started and ended between the two times. Those cut off when wrk stops are left out: nginx
    logs them as 499, the client closing the connection, which is the load generator's doing."""
    entries = []
    for line in lines:
        fields = line.split(" ", 3)
        ended, status, took = float(fields[0]), int(fields[1]), float(fields[2])
        upstreams = fields[3].split('" "')[0].strip('"')
        if started_at <= ended - took and ended <= stopped_at:
            entries.append({"ended": ended, "started": ended - took, "status": status, "upstreams": upstreams})
    return entries


def rolling_update(replicas: list[Replica], balancer: Balancer, endpoints: Endpoints, load: LoadGenerator,
                   before_seconds: int) -> dict:
    load.run(3)  # warm-up: connections, caches, the first batches
    before = load.run(before_seconds)
    started_at = time.time()
    load.start(600)
    time.sleep(1)
    steps = []
    for replica in replicas:
        signalled_at = time.time()
        exit_seconds, code = replica.stop(signal.SIGTERM)
        ready_seconds = replica.start()
        removed = endpoints.removed_after(replica.address, signalled_at)
        steps.append({"replica": replica.index, "exit_code": code, "seconds_to_exit": round(exit_seconds, 2),
                      "ms_to_leave_the_balancer": None if removed is None else round(removed * 1000),
                      "seconds_to_ready": round(ready_seconds, 2)})
        time.sleep(1)
    stopped_at = time.time()
    during = load.stop()
    entries = parse_access_log(balancer.log_lines(), started_at, stopped_at)
    return {
        "before": asdict(before),
        "during": asdict(during),
        "steps": steps,
        "retried_on_another_replica": sum("," in entry["upstreams"] for entry in entries),
        "non_200_at_the_balancer": sum(entry["status"] != 200 for entry in entries),
    }


def crash(replicas: list[Replica], balancer: Balancer, endpoints: Endpoints, load: LoadGenerator) -> dict:
    victim = replicas[1]
    started_at = time.time()
    load.start(600)
    time.sleep(3)
    killed_at = time.time()
    victim.stop(signal.SIGKILL)
    dead_at = time.time()  # reaped: from here on nothing can reach it
    time.sleep(4)
    restart_seconds = victim.start()
    time.sleep(2)
    stopped_at = time.time()
    result = load.stop()
    entries = parse_access_log(balancer.log_lines(), started_at, stopped_at)
    failures = [entry for entry in entries if entry["status"] != 200]
    # In flight at the victim: sent there before it was reaped (nginx logs whole milliseconds).
    in_flight = [f for f in failures if f["started"] <= dead_at + 0.002 and victim.address in f["upstreams"]]
    last_failure = max((f["ended"] for f in failures), default=killed_at)
    removed = endpoints.removed_after(victim.address, killed_at)
    return {
        "load": asdict(result),
        "failed_at_the_balancer": len(failures),
        "failed_in_flight_at_the_killed_replica": len(in_flight),
        "ms_from_kill_to_reaped": round((dead_at - killed_at) * 1000, 1),
        "ms_from_kill_to_last_failure": round((last_failure - killed_at) * 1000, 1),
        "ms_from_kill_to_leaving_the_balancer": None if removed is None else round(removed * 1000),
        "retried_on_another_replica": sum("," in entry["upstreams"] for entry in entries),
        "answered_200_after_the_last_failure": sum(e["status"] == 200 and e["started"] > last_failure for e in entries),
        "seconds_to_ready_after_restart": round(restart_seconds, 2),
    }


def verdict(roll: dict, crashed: dict, connections: int) -> list[str]:
    problems = []
    before, during = roll["before"], roll["during"]
    if during["failed"] or roll["non_200_at_the_balancer"]:
        problems.append(f"rolling update: {during['failed']} failed requests (wrk), "
                        f"{roll['non_200_at_the_balancer']} non-200 at nginx; target 0")
    if during["p99_ms"] > 2 * before["p99_ms"]:
        problems.append(f"rolling update: p99 {during['p99_ms']:.1f} ms > 2 x {before['p99_ms']:.1f} ms before")
    if during["answered"] < 20 * len(roll["steps"]):
        problems.append(f"rolling update: only {during['answered']} requests answered; the load was not steady")
    if any(step["exit_code"] != 0 for step in roll["steps"]):
        problems.append(f"rolling update: a replica did not exit cleanly on SIGTERM: {roll['steps']}")
    lost = crashed["failed_at_the_balancer"]
    if lost != crashed["failed_in_flight_at_the_killed_replica"]:
        problems.append(f"crash: {lost} failed, of which only {crashed['failed_in_flight_at_the_killed_replica']} "
                        "were in flight at the killed replica")
    if lost > connections:
        problems.append(f"crash: {lost} failed, more than the {connections} requests that can be in flight")
    if crashed["load"]["failed"] != lost:
        problems.append(f"crash: wrk counted {crashed['load']['failed']} failures, nginx {lost}")
    return problems


def model_folder(work: Path, model: str) -> Path:
    if model == "vgg16":
        return ROOT / "model"
    toml, onnx = SQUEEZENET
    if not onnx.exists():
        raise SystemExit(f"{onnx} is missing: run scripts/setup.sh --test-data")
    folder = work / "model"
    folder.mkdir()
    shutil.copy(toml, folder / "model.toml")
    (folder / onnx.name).symlink_to(onnx)
    return folder


def print_report(roll: dict, crashed: dict, model: str) -> None:
    before, during = roll["before"], roll["during"]
    print(f"rolling update ({model}: {len(roll['steps'])} replicas replaced one by one under load, "
          f"{roll['nginx_reloads']} nginx reloads in all):")
    print(f"  before: {before['answered']} answered in {before['seconds']:.1f} s; p50 {before['p50_ms']:.1f} ms, "
          f"p99 {before['p99_ms']:.1f} ms")
    print(f"  during: {during['answered']} answered, {during['answered_200']} with 200, {during['failed']} failed, "
          f"in {during['seconds']:.1f} s; p50 {during['p50_ms']:.1f} ms, p99 {during['p99_ms']:.1f} ms "
          f"({during['p99_ms'] / max(before['p99_ms'], 1e-9):.2f}x before)")
    for step in roll["steps"]:
        print(f"  replica {step['replica']}: out of the balancer {step['ms_to_leave_the_balancer']} ms after SIGTERM, "
              f"exited {step['exit_code']} after {step['seconds_to_exit']} s, replacement ready in "
              f"{step['seconds_to_ready']} s")
    print(f"  {roll['retried_on_another_replica']} requests met a refused connection and were retried on another replica")
    load = crashed["load"]
    print("crash (one replica SIGKILLed mid-load, restarted 4 s later):")
    print(f"  {load['answered']} answered, {load['failed']} failed; of the failures "
          f"{crashed['failed_in_flight_at_the_killed_replica']} were in flight at the killed replica")
    print(f"  out of the balancer {crashed['ms_from_kill_to_leaving_the_balancer']} ms after the kill; last failure "
          f"{crashed['ms_from_kill_to_last_failure']} ms after it, then {crashed['answered_200_after_the_last_failure']} "
          f"answered 200; {crashed['retried_on_another_replica']} requests retried on another replica; "
          f"restart ready in {crashed['seconds_to_ready_after_restart']} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=MODELS, default="squeezenet", help="default: squeezenet")
    parser.add_argument("--replicas", type=int, default=3)
    parser.add_argument("--connections", type=int, default=6, help="wrk connections (default 6)")
    parser.add_argument("--before-seconds", type=int, default=8, help="steady load measured before the roll")
    parser.add_argument("--drain-ms", type=int, default=1000,
                        help="each replica's SCORER_SHUTDOWN_DRAIN_MS (default 1000; 0 shows what the drain is for)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    REPLICA_ENV["SCORER_SHUTDOWN_DRAIN_MS"] = str(args.drain_ms)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is missing: scripts/rolling-update.sh installs it")
    if not SCORER.exists():
        raise SystemExit(f"{SCORER} is missing: cargo build --release")

    work = Path(tempfile.mkdtemp(prefix="rolling-update-"))
    work.chmod(0o755)  # nginx's worker may run as another user than its master
    replicas: list[Replica] = []
    balancer = None
    try:
        folder = model_folder(work, args.model)
        replicas = [Replica(index, free_port(), folder, work) for index in range(args.replicas)]
        for replica in replicas:
            replica.start()
        balancer = Balancer(work, [replica.address for replica in replicas])
        endpoints = Endpoints(replicas, balancer)
        endpoints.start()
        load = LoadGenerator(work, balancer.url, args.connections)
        roll = rolling_update(replicas, balancer, endpoints, load, args.before_seconds)
        crashed = crash(replicas, balancer, endpoints, load)
        endpoints.stop()
        roll["nginx_reloads"] = balancer.reloads
        print_report(roll, crashed, args.model)
        if args.json:
            args.json.write_text(json.dumps({"model": args.model, "rolling_update": roll, "crash": crashed}, indent=2))
        problems = verdict(roll, crashed, args.connections)
        for problem in problems:
            print(f"FAILED: {problem}", file=sys.stderr)
        if problems:
            print(f"logs kept in {work}", file=sys.stderr)
            return 1
        shutil.rmtree(work, ignore_errors=True)
        return 0
    finally:
        if balancer is not None:
            balancer.close()
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.process.kill()
                replica.process.wait()


if __name__ == "__main__":
    sys.exit(main())
