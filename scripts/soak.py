#!/usr/bin/env python3
"""Soak test: a mixed load of good and bad requests against the release server for a bounded
time, then a report of requests, answers by status, and resident memory over the run.

Good requests are real MRI images (raw, JSON/base64, multipart); bad ones are truncated and
corrupt images, random bytes, broken JSON, bad base64, a decompression-bomb header, wrong content
types and over-long request ids. Passes (exit 0) only if no good request got anything but 200,
every bad one got its 4xx, the server never stopped, and RSS after the warm-up grew by less than
the bound. Standard library only; started by scripts/soak.sh.
"""

from __future__ import annotations

import argparse
import base64
import collections
import http.client
import json
import os
import random
import signal
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCORER = ROOT / "target" / "release" / "scorer"
IMAGES = sorted((ROOT / "tests" / "data" / "mri").glob("*.jpg"))


def png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def requests() -> list[tuple[str, str, bytes, dict, int]]:
    """(name, content type, body, extra headers, expected status)."""
    rng = random.Random(7)
    jpeg = IMAGES[0].read_bytes()
    good = []
    for path in IMAGES:
        data = path.read_bytes()
        good.append(("raw", "image/jpeg", data, {}, 200))
        good.append(("json", "application/json", json.dumps({"image": base64.b64encode(data).decode()}).encode(), {}, 200))
    boundary = "soakboundary"
    multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\n"
                 f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
    good.append(("multipart", f"multipart/form-data; boundary={boundary}", multipart, {}, 200))
    bad = [
        ("truncated", "image/jpeg", jpeg[: len(jpeg) // 2], {}, 400),
        ("corrupt", "image/jpeg", jpeg[:600] + bytes(rng.randrange(256) for _ in range(4000)), {}, 400),
        ("random", "application/octet-stream", bytes(rng.randrange(256) for _ in range(8192)), {}, 400),
        ("empty", "image/png", b"", {}, 400),
        ("bad-json", "application/json", b'{"image": ', {}, 400),
        ("bad-base64", "application/json", b'{"image": "%%%not base64%%%"}', {}, 400),
        ("wrong-type", "application/json", b'{"images": "not a list"}', {}, 400),
        ("bomb", "image/png", png_header(60000, 60000), {}, 413),
        ("text", "text/plain", b"hello", {}, 415),
        ("long-id", "image/jpeg", jpeg, {"x-request-id": "x" * 101}, 431),
    ]
    return good, bad


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=600, help="how long to run (default 600)")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads (default 8)")
    parser.add_argument("--bad-share", type=float, default=0.3, help="fraction of bad requests (default 0.3)")
    parser.add_argument("--rss-growth-mb", type=float, default=64, help="allowed RSS growth after warm-up (default 64)")
    args = parser.parse_args()
    if len(IMAGES) != 17:
        sys.exit("run scripts/setup.sh --test-data first")

    port = 18000 + os.getpid() % 1000
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCORER_")}
    server = subprocess.Popen([str(SCORER), "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", "/ready")
                if connection.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.time() > deadline or server.poll() is not None:
                sys.exit("the server did not become ready")
            time.sleep(0.1)

        good, bad = requests()
        counts: collections.Counter = collections.Counter()
        failures: list[str] = []
        lock = threading.Lock()
        stop = time.time() + args.seconds
        samples: list[tuple[float, float]] = []

        def client(seed: int) -> None:
            rng = random.Random(seed)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            while time.time() < stop:
                is_bad = rng.random() < args.bad_share
                name, content_type, body, headers, expected = rng.choice(bad if is_bad else good)
                try:
                    connection.request("POST", "/score", body=body, headers={"Content-Type": content_type, **headers})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    if response.getheader("connection", "").lower() == "close":
                        connection.close()
                        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                except (OSError, http.client.HTTPException) as error:
                    status = f"connection error: {type(error).__name__}"
                    connection.close()
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                with lock:
                    counts[("bad" if is_bad else "good", status)] += 1
                    if status != expected and len(failures) < 20:
                        failures.append(f"{name}: expected {expected}, got {status}")

        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(args.concurrency)]
        started = time.time()
        for thread in threads:
            thread.start()
        while any(thread.is_alive() for thread in threads):
            samples.append((time.time() - started, rss_mb(server.pid)))
            time.sleep(5)
        if server.poll() is not None:
            failures.append(f"the server exited with {server.returncode}")
        samples.append((time.time() - started, rss_mb(server.pid)))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)

    warm = next((rss for t, rss in samples if t >= min(60, args.seconds / 5)), samples[0][1])
    peak = max(rss for _, rss in samples)
    end = samples[-1][1]
    total = sum(counts.values())
    good_5xx = sum(n for (kind, status), n in counts.items() if kind == "good" and str(status)[0] != "2")
    print(f"Soak: {args.seconds} s, {args.concurrency} clients, {args.bad_share:.0%} bad requests, "
          f"{total} requests ({total / args.seconds:.1f}/s)")
    for (kind, status), n in sorted(counts.items(), key=lambda item: (item[0][0], str(item[0][1]))):
        print(f"  {kind:4} {status}: {n}")
    print(f"  good requests not answered 200: {good_5xx}")
    print(f"  RSS: {samples[0][1]:.0f} MB at start, {warm:.0f} MB after warm-up, peak {peak:.0f} MB, "
          f"{end:.0f} MB at the end (bound: warm-up + {args.rss_growth_mb:.0f} MB)")
    if end - warm > args.rss_growth_mb:
        failures.append(f"RSS grew by {end - warm:.0f} MB after warm-up")
    for failure in failures:
        print(f"  FAIL {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
