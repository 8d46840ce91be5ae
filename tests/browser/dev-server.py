#!/usr/bin/env python3
"""Development server for the demo page (src/http/ui): serves the page's files the way the scorer
does, and proxies everything else to a running scorer.

    python3 tests/browser/dev-server.py [--port 8080] [--upstream http://127.0.0.1:8000]
                                        [--fake-extras] [--fake-frames N] [--fake-delay S]
                                        [--api-key-required] [--ui-dir DIR]

- GET /ui, /ui/app.js, /ui/app.css: the files from src/http/ui, read on every request (edit and
  reload), with the Content-Security-Policy the scorer sends.
- Any other path: forwarded to --upstream with its method, headers and body; the answer comes back
  as it is.
- --fake-extras: answers what the upstream cannot yet, in the shape the scorer will: DICOM bodies
  (Content-Type application/dicom, or "DICM" at byte 128) get synthetic predictions, and
  ?explain=true gets an occlusion explanation with a generated PNG overlay (for JPEG/PNG the
  predictions still come from the upstream). --fake-frames gives DICOM answers that many frames;
  --fake-delay stands in for the slow explanation.
- --api-key-required: renders the page as the scorer does when an API key is configured.

Standard library only.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import math
import struct
import sys
import time
import urllib.parse
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

UI_DIR = Path(__file__).resolve().parents[2] / "src" / "http" / "ui"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
UI_FILES = {
    "/ui": ("index.html", "text/html; charset=utf-8"),
    "/ui/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/ui/app.css": ("app.css", "text/css; charset=utf-8"),
}
API_KEY_MARKER = 'data-api-key="none"'
LABELS = ("glioma", "meningioma", "notumor", "pituitary")
MODEL = {"name": "brain-tumor-vgg16", "version": "0.1.1"}
# Headers that belong to one connection, not to the message (RFC 9110 §7.6.1).
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


# ---- the synthetic extras ------------------------------------------------------------------------


def png(width: int, height: int, pixel) -> bytes:
    """An 8-bit RGB PNG whose pixel (x, y) is pixel(x, y) -> (r, g, b)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            rows.extend(pixel(x, y))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def heat(value: float) -> tuple[int, int, int]:
    """0..1 to a blue-yellow-red ramp."""
    v = min(1.0, max(0.0, value))
    if v < 0.5:
        t = v / 0.5
        return (int(40 + 215 * t), int(60 + 170 * t), int(160 * (1 - t)))
    t = (v - 0.5) / 0.5
    return (255, int(230 * (1 - t)), 0)


def fake_drops(rows: int = 8, columns: int = 8) -> list[list[float]]:
    """A blob of large confidence drops off-centre, as occlusion gives for a tumour."""
    cy, cx = 2.6, 4.8
    return [
        [round(0.9 * math.exp(-((r - cy) ** 2 + (c - cx) ** 2) / 3.0), 4) for c in range(columns)]
        for r in range(rows)
    ]


def fake_overlay(drops: list[list[float]], size: int = 240) -> str:
    """The overlay: a grey 'scan' disc with the drops blended over it, as base64 PNG."""
    rows, columns = len(drops), len(drops[0])
    peak = max(max(row) for row in drops) or 1.0

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        dx, dy = (x - size / 2) / (size / 2), (y - size / 2) / (size / 2)
        grey = int(150 * max(0.0, 1 - (dx * dx + dy * dy) ** 2)) if dx * dx + dy * dy < 1 else 0
        weight = drops[min(rows - 1, y * rows // size)][min(columns - 1, x * columns // size)] / peak
        r, g, b = heat(weight)
        a = 0.55 * weight
        return (int(grey * (1 - a) + r * a), int(grey * (1 - a) + g * a), int(grey * (1 - a) + b * a))

    return base64.b64encode(png(size, size, pixel)).decode("ascii")


def fake_prediction(index: int) -> dict:
    """Synthetic probabilities, highest first, different per frame."""
    raw = [0.2, 0.1, 0.05, 0.05]
    raw[index % len(LABELS)] += 3.0
    total = sum(raw)
    probabilities = dict(sorted(((label, round(v / total, 6)) for label, v in zip(LABELS, raw)), key=lambda kv: -kv[1]))
    label = next(iter(probabilities))
    return {"label": label, "confidence": probabilities[label], "probabilities": probabilities}


def explanation_for(prediction: dict, overlay: str, drops: list[list[float]]) -> dict:
    return {
        "method": "occlusion",
        "class": prediction["label"],
        "grid": {"rows": len(drops), "columns": len(drops[0])},
        "drops": drops,
        "overlay_png": overlay,
    }


def is_dicom(content_type: str, body: bytes) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/dicom" or body[128:132] == b"DICM"


# ---- the server ----------------------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "scorer-ui-dev"
    protocol_version = "HTTP/1.1"
    options: argparse.Namespace  # set in main()
    overlay_cache: dict[str, object] = {}

    # Every method goes through the same path.
    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.handle_any()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def handle_any(self) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if path in UI_FILES and self.command in ("GET", "HEAD"):
            self.serve_ui(*UI_FILES[path])
            return
        body = self.read_body()
        if self.options.fake_extras and path == "/score" and self.command == "POST":
            if self.fake_score(body):
                return
        self.proxy(body)

    def read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status: int, value: object) -> None:
        self.send(status, json.dumps(value).encode(), "application/json")

    def serve_ui(self, name: str, content_type: str) -> None:
        data = (self.options.ui_dir / name).read_bytes()
        if name == "index.html" and self.options.api_key_required:
            data = data.replace(API_KEY_MARKER.encode(), b'data-api-key="required"')
        self.send(
            200,
            data,
            content_type,
            {"Content-Security-Policy": CSP, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
        )

    def fake_score(self, body: bytes) -> bool:
        """Answers DICOM and explain requests synthetically; False leaves the request to the proxy."""
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        explain = query.get("explain", ["false"])[-1].lower() == "true"
        dicom = is_dicom(self.headers.get("Content-Type", ""), body)
        if not explain and not dicom:
            return False
        if dicom:
            if len(body) == 0:
                self.send_json(400, {"message": "empty DICOM body", "code": "invalid_dicom"})
                return True
            frames = self.options.fake_frames
            predictions = [fake_prediction(i) for i in range(frames)]
            for i, prediction in enumerate(predictions):
                prediction["dicom"] = {"sop_instance_uid": "1.2.826.0.1.3680043.2.1125.1.99", "frame": i + 1, "frames": frames}
        else:
            status, headers, upstream_body = self.forward(body, path=urllib.parse.urlsplit(self.path).path)
            if status != 200:
                self.relay(status, headers, upstream_body)
                return True
            predictions = json.loads(upstream_body)["predictions"]
        if explain:
            time.sleep(self.options.fake_delay)
            drops = fake_drops()
            overlay = self.overlay_cache.setdefault("overlay", fake_overlay(drops))
            for prediction in predictions:
                prediction["explanation"] = explanation_for(prediction, overlay, drops)
        self.send_json(200, {"predictions": predictions, "model": MODEL})
        return True

    def forward(self, body: bytes, path: str | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
        upstream = urllib.parse.urlsplit(self.options.upstream)
        connection_class = http.client.HTTPSConnection if upstream.scheme == "https" else http.client.HTTPConnection
        connection = connection_class(upstream.hostname, upstream.port, timeout=self.options.timeout)
        headers = {name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP}
        headers["Host"] = upstream.netloc
        target = path if path is not None else self.path
        try:
            connection.request(self.command, target, body=body if body or self.command != "GET" else None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            return response.status, response.getheaders(), data
        finally:
            connection.close()

    def relay(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def proxy(self, body: bytes) -> None:
        try:
            status, headers, data = self.forward(body)
        except OSError as error:
            self.send_json(
                int(HTTPStatus.BAD_GATEWAY),
                {"message": f"dev-server: upstream {self.options.upstream} unreachable ({error})", "code": "bad_gateway"},
            )
            return
        self.relay(status, headers, data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
        if not self.options.quiet:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    parser.add_argument("--upstream", default="http://127.0.0.1:8000", help="the scorer to proxy to")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the upstream")
    parser.add_argument("--fake-extras", action="store_true", help="answer DICOM and ?explain=true synthetically")
    parser.add_argument("--fake-frames", type=int, default=1, help="frames in a fake DICOM answer (default 1)")
    parser.add_argument("--fake-delay", type=float, default=2.0, help="seconds a fake explanation takes (default 2)")
    parser.add_argument("--api-key-required", action="store_true", help='serve the page with data-api-key="required"')
    parser.add_argument("--ui-dir", type=Path, default=UI_DIR, help="where the page's files are (default src/http/ui)")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    options = parser.parse_args()
    if options.fake_frames < 1:
        parser.error("--fake-frames must be at least 1")
    Handler.options = options
    server = ThreadingHTTPServer((options.host, options.port), Handler)
    server.daemon_threads = True
    print(f"demo page on http://{options.host}:{server.server_port}/ui, proxying to {options.upstream}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
