#!/usr/bin/env python3
"""Make the known-weights test model, tests/data/tiny/, at test-data time.

The default model's answers saturate (its top class is usually above 0.99) and the SqueezeNet
test model has placeholder weights, so neither would notice a server that wrote NHWC into an
NCHW tensor, swapped red and blue, ignored the mean and std or skipped its own softmax. This model
notices: every one of those changes its answers. tests/fixtures/tiny/model.toml describes it;
this script reads that spec, so the two cannot disagree.

    x       [N, 3, 32, 32]   the image as the spec says: bilinear resize, /255, (x - mean) / std
    conv    1x1, 3 -> 4 channels, then ReLU     (mixes the channels with unequal weights)
    pool    8x8 average, stride 8 -> [N, 4, 4, 4]   (keeps where things are, coarsely)
    dense   64 -> 5, logits out                  (the server applies the softmax)

It writes, into tests/data/tiny/:
- tiny.onnx, the model;
- fails_at_run_time.onnx, the same model plus a lookup whose index is 0 for the warm-up's all-zero
  sample and out of range for any image with a pixel above the mean: it loads, warms up and turns
  ready, then ONNX Runtime fails on real images (the server's 500 path);
- expected.json: for each image of make_reference.TENSOR_IMAGES (the 17 MRI images and the two
  colour images), the logits and probabilities numpy computes from Pillow's preprocessing,
  checked against ONNX Runtime on the same input.

Run by `scripts/setup.sh --test-data` in .cache/int8-venv (onnx, onnxruntime, numpy, Pillow).
Deterministic: the weights come from a fixed seed.
"""

import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from make_reference import ROOT, TENSOR_IMAGES

SPEC = ROOT / "tests" / "fixtures" / "tiny" / "model.toml"
OUT = ROOT / "tests" / "data" / "tiny"
HIDDEN = 4
POOL = 8
SEED = 20261203


def weights(classes: int, cells: int) -> dict:
    rng = np.random.default_rng(SEED)
    return {
        "conv_w": rng.normal(0.0, 1.0, size=(HIDDEN, 3)).astype(np.float32),
        "conv_b": rng.normal(0.0, 0.1, size=HIDDEN).astype(np.float32),
        "dense_w": rng.normal(0.0, 0.15, size=(classes, HIDDEN * cells)).astype(np.float32),
        "dense_b": rng.normal(0.0, 0.1, size=classes).astype(np.float32),
    }


def preprocess(path: Path, spec: dict) -> np.ndarray:
    """Pillow and numpy, as the spec says: [3, H, W] float32."""
    source = spec["input"]
    filters = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}
    image = Image.open(path).convert("RGB").resize((source["width"], source["height"]), filters[source["resize"]])
    low, high = source["pixel_range"]
    x = low + (high - low) * np.asarray(image, dtype=np.float32) / 255.0
    x = (x - np.array(source["mean"], dtype=np.float32)) / np.array(source["std"], dtype=np.float32)
    return x.transpose(2, 0, 1)


def forward(x: np.ndarray, w: dict) -> np.ndarray:
    """The model in numpy: [3, H, W] -> logits."""
    hidden = np.maximum(np.einsum("oc,chw->ohw", w["conv_w"], x) + w["conv_b"][:, None, None], 0.0)
    _, height, width = hidden.shape
    pooled = hidden.reshape(HIDDEN, height // POOL, POOL, width // POOL, POOL).mean(axis=(2, 4))
    return w["dense_w"] @ pooled.reshape(-1) + w["dense_b"]


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max())
    return e / e.sum()


def graph(spec: dict, w: dict, fails_at_run_time: bool) -> onnx.ModelProto:
    height, width = spec["input"]["height"], spec["input"]["width"]
    classes = len(spec["labels"])
    initializers = [
        numpy_helper.from_array(w["conv_w"].reshape(HIDDEN, 3, 1, 1), "conv_w"),
        numpy_helper.from_array(w["conv_b"], "conv_b"),
        numpy_helper.from_array(w["dense_w"], "dense_w"),
        numpy_helper.from_array(w["dense_b"], "dense_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixels", "conv_w", "conv_b"], ["conv"]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("AveragePool", ["relu"], ["pool"], kernel_shape=[POOL, POOL], strides=[POOL, POOL]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "dense_w", "dense_b"], ["dense"], transB=1),
    ]
    if fails_at_run_time:
        # index = 7 * (max(x) > 0): 0 for the all-zero warm-up sample, 7 for any image with a
        # pixel above the mean, beyond the one-element table: ONNX Runtime's Gather refuses it.
        initializers += [
            numpy_helper.from_array(np.zeros(1, dtype=np.float32), "table"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
            numpy_helper.from_array(np.array(7, dtype=np.int64), "seven"),
        ]
        nodes += [
            helper.make_node("ReduceMax", ["pixels"], ["brightest"], keepdims=0),
            helper.make_node("Greater", ["brightest", "zero"], ["bright"]),
            helper.make_node("Cast", ["bright"], ["bright_index"], to=TensorProto.INT64),
            helper.make_node("Mul", ["bright_index", "seven"], ["index"]),
            helper.make_node("Gather", ["table", "index"], ["looked_up"]),
            helper.make_node("Add", ["dense", "looked_up"], ["logits"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["dense"], ["logits"]))
    model = helper.make_model(
        helper.make_graph(
            nodes,
            "tiny_known_weights",
            [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 3, height, width])],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
            initializers,
        ),
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="scripts/make_tiny_model.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def main() -> None:
    spec = tomllib.loads(SPEC.read_text())
    height, width = spec["input"]["height"], spec["input"]["width"]
    w = weights(len(spec["labels"]), (height // POOL) * (width // POOL))
    OUT.mkdir(parents=True, exist_ok=True)
    onnx.save(graph(spec, w, fails_at_run_time=False), OUT / "tiny.onnx")
    onnx.save(graph(spec, w, fails_at_run_time=True), OUT / "fails_at_run_time.onnx")

    session = onnxruntime.InferenceSession(str(OUT / "tiny.onnx"), providers=["CPUExecutionProvider"])
    expected = {}
    for path in TENSOR_IMAGES:
        x = preprocess(path, spec)
        logits = forward(x, w)
        from_onnx = session.run(None, {"pixels": x[np.newaxis]})[0][0]
        if not np.allclose(logits, from_onnx, rtol=1e-4, atol=1e-4):
            sys.exit(f"{path.name}: numpy {logits} but ONNX Runtime {from_onnx}: the graph is not the model")
        expected[path.name] = {
            "file": str(path.relative_to(ROOT)),
            "logits": [float(v) for v in logits],
            "probabilities": dict(zip(spec["labels"], (float(p) for p in softmax(logits.astype(np.float64))))),
        }
    (OUT / "expected.json").write_text(
        json.dumps({"generated_by": "scripts/make_tiny_model.py", "images": expected}, indent=2) + "\n"
    )
    print(f"  wrote tiny.onnx, fails_at_run_time.onnx and the answers for {len(expected)} images to {OUT}")


if __name__ == "__main__":
    main()
