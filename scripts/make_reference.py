#!/usr/bin/env python3
"""Compute the reference predictions the integration tests compare the server against.

Runs the model's own reference pipeline (detect-tumor 0.1.1's preprocess.py): Pillow
`Image.open(f).convert("RGB").resize((240, 240))`, `/ 255.0`, batch of one, ONNX Runtime on CPU.
Run once after `scripts/setup.sh --test-data`, in a throwaway venv:

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install onnxruntime==1.31.1 pillow==13.0.0 numpy
    /tmp/refvenv/bin/python scripts/make_reference.py > tests/fixtures/reference_predictions.json
"""

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
LABELS = ["glioma", "meningioma", "notumor", "pituitary"]
# The dataset's file names say the true class: Te-gl_* glioma, Te-me_* meningioma, ...
TRUE_LABEL = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}


def main() -> None:
    session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    images = {}
    for path in sorted(IMAGES.glob("*.jpg")):
        img = Image.open(path).convert("RGB").resize((240, 240))
        batch = np.expand_dims(np.asarray(img, dtype=np.float32) / 255.0, axis=0)
        probabilities = session.run(None, {input_name: batch})[0][0]
        predicted = LABELS[int(np.argmax(probabilities))]
        truth = TRUE_LABEL[path.name[3:5]]
        if predicted != truth:
            print(f"warning: reference pipeline calls {path.name} {predicted}, its true class is {truth}", file=sys.stderr)
        images[path.name] = {
            "true_label": truth,
            "label": predicted,
            "probabilities": {label: round(float(p), 6) for label, p in zip(LABELS, probabilities)},
        }
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
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
