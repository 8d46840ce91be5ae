"""ONNX Runtime's own quantisation tools, and the measurements the INT8 model is judged by.

The options arrive as a plain dict of names (make_int8.py's OPTIONS) so that the same dict is
hashed into the stamp, written to the model card and turned into the ONNX Runtime enums here.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class TensorReader(CalibrationDataReader):
    """Feeds preprocessed images to the calibrator one at a time, in a fixed order."""

    def __init__(self, input_name: str, tensors: list[np.ndarray]):
        self.feeds = iter([{input_name: tensor} for tensor in tensors])

    def get_next(self) -> dict | None:
        return next(self.feeds, None)


def pre_process(fp32: Path, destination: Path, options: dict) -> None:
    """Shape inference and graph optimisation, which quantize_static expects to have run."""
    quant_pre_process(str(fp32), str(destination), **options["quant_pre_process"])


def quantise(pre: Path, destination: Path, tensors: list[np.ndarray], options: dict, cache: Path | None = None) -> None:
    """Static QDQ quantisation calibrated on `tensors`, the nodes named by options["keep_float"]
    left float. With `cache`, the activation ranges are read from (or saved to) that file."""
    static = options["quantize_static"]
    graph = onnx.load(str(pre), load_external_data=False).graph
    quantize_static(
        str(pre),
        str(destination),
        TensorReader(graph.input[0].name, tensors),
        quant_format=QuantFormat[static["quant_format"]],
        per_channel=static["per_channel"],
        activation_type=QuantType[static["activation_type"]],
        weight_type=QuantType[static["weight_type"]],
        calibrate_method=CalibrationMethod[static["calibrate_method"]],
        extra_options=static["extra_options"],
        nodes_to_exclude=[node.name for node in graph.node if node.name.startswith(tuple(options["keep_float"]))],
        calibration_cache_path=cache,
    )


def io_signature(model: Path) -> list[tuple[str, str, int]]:
    """(direction, name, element type) of every graph input and output."""
    graph = onnx.load(str(model), load_external_data=False).graph
    return [("input", v.name, v.type.tensor_type.elem_type) for v in graph.input] + [
        ("output", v.name, v.type.tensor_type.elem_type) for v in graph.output
    ]


def session(model: Path, threads: int = 2) -> ort.InferenceSession:
    """A CPU session like the server's: all graph optimisations, `threads` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def predict(model: Path, tensors: list[np.ndarray]) -> np.ndarray:
    """Probabilities [N, classes], one image per run as the reference pipeline does."""
    sess = session(model)
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: tensor})[0] for tensor in tensors])


@dataclass(frozen=True)
class Agreement:
    agree: int
    total: int
    max_abs_dp: float
    worst_image: str

    def passes(self, max_abs_dp: float) -> bool:
        return self.agree == self.total and self.max_abs_dp <= max_abs_dp


def agreement(reference: np.ndarray, candidate: np.ndarray, names: list[str]) -> Agreement:
    """How closely `candidate` follows `reference`: same top label, largest probability change."""
    dp = np.abs(candidate.astype(np.float64) - reference.astype(np.float64)).max(axis=1)
    same = int((candidate.argmax(axis=1) == reference.argmax(axis=1)).sum())
    return Agreement(same, len(names), float(dp.max()), names[int(dp.argmax())])


def benchmark(models: dict[str, Path], tensor: np.ndarray, rounds: int = 10, runs: int = 5, warmup: int = 3) -> dict[str, float]:
    """Median ms per image (batch 1) of each model, the models taking turns round by round.

    Interleaving spreads any other load on the machine evenly over the models, so their ratio
    holds even when the absolute numbers move.
    """
    sessions = {label: session(path) for label, path in models.items()}
    feeds = {label: {sess.get_inputs()[0].name: tensor} for label, sess in sessions.items()}
    for label, sess in sessions.items():
        for _ in range(warmup):
            sess.run(None, feeds[label])
    samples: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(rounds):
        for label, sess in sessions.items():
            for _ in range(runs):
                start = time.perf_counter()
                sess.run(None, feeds[label])
                samples[label].append((time.perf_counter() - start) * 1000.0)
    return {label: statistics.median(times) for label, times in samples.items()}
