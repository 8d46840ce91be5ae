"""Entry script for Azure's Python inference server (azureml-inference-server-http), doing the
same work as the Rust server the standard way: JSON with a base64 image in, Pillow to decode and
resize, ONNX Runtime to infer, labelled probabilities out. Configured by the benchmark through
BENCH_* environment variables so that both models run through the same script."""

import base64
import io
import json
import os

import numpy as np
import onnxruntime
from PIL import Image

RESAMPLE = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR}


def init():
    global session, input_name, size, layout, resample, mean, std, logits, labels
    options = onnxruntime.SessionOptions()
    threads = int(os.environ.get("BENCH_ORT_THREADS", "0"))
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        os.environ["BENCH_MODEL_PATH"], options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    size = int(os.environ["BENCH_SIZE"])
    layout = os.environ["BENCH_LAYOUT"]
    resample = RESAMPLE[os.environ["BENCH_RESIZE"]]
    mean = np.array(json.loads(os.environ.get("BENCH_MEAN", "[0, 0, 0]")), dtype=np.float32)
    std = np.array(json.loads(os.environ.get("BENCH_STD", "[1, 1, 1]")), dtype=np.float32)
    logits = os.environ.get("BENCH_LOGITS") == "1"
    labels = json.loads(os.environ["BENCH_LABELS"]) if "BENCH_LABELS" in os.environ else None


def run(raw_data):
    data = json.loads(raw_data)
    image = Image.open(io.BytesIO(base64.b64decode(data["image"]))).convert("RGB").resize((size, size), resample)
    x = (np.asarray(image, dtype=np.float32) / 255.0 - mean) / std
    if layout == "NCHW":
        x = x.transpose(2, 0, 1)
    scores = session.run(None, {input_name: x[np.newaxis]})[0].reshape(-1)
    if logits:
        e = np.exp(scores - scores.max())
        scores = e / e.sum()
    top = np.argsort(-scores)[:5]
    names = labels or [str(i) for i in range(len(scores))]
    return {
        "predictions": [
            {
                "label": names[top[0]],
                "confidence": float(scores[top[0]]),
                "probabilities": {names[i]: float(scores[i]) for i in top},
            }
        ]
    }
