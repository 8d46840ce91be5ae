#!/usr/bin/env python3
"""Compute the occlusion-sensitivity maps the integration tests compare the server against.

The model input is made exactly as the JPEG reference makes it (scripts/make_reference.py):
Pillow `Image.open(f).convert("RGB").resize((240, 240))`, `/ 255.0`, 240 x 240 x 3 float32 (NHWC).
Then, with k the predicted class (argmax of the unmasked probabilities) and p0 its probability:
the image is cut into an 8 x 8 grid, cell (r, c) covering rows r*240//8 .. (r+1)*240//8 and
columns c*240//8 .. (c+1)*240//8 (end exclusive); for each cell a copy of x has that cell, in
every channel, replaced by the per-channel mean of the whole unmasked x (x.mean(axis=(0, 1)));
drops[r][c] = p0 - p_k(masked copy). Positive: hiding the cell lowers the predicted class.

scripts/check-fixtures.sh (in the test command) runs it and fails when the committed
tests/fixtures/occlusion_reference.json differs from what it makes; `scripts/check-fixtures.sh
--write` rewrites it.
"""

import json
import sys

import numpy as np
import onnxruntime
import PIL

# The model, images and labels of the JPEG reference, so the two cannot drift apart.
from make_reference import IMAGES, LABELS, MODEL, model_input  # noqa: E402

NAMES = ["Te-gl_0010.jpg", "Te-no_0022.jpg"]
SIZE = 240
GRID = 8
BATCH = 8


def occlusion(session, input_name: str, x: np.ndarray) -> dict:
    p = session.run(None, {input_name: x[np.newaxis]})[0][0]
    k = int(np.argmax(p))
    fill = x.mean(axis=(0, 1))
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    masked = np.repeat(x[np.newaxis], len(cells), axis=0)
    for i, (r, c) in enumerate(cells):
        y0, y1 = r * SIZE // GRID, (r + 1) * SIZE // GRID
        x0, x1 = c * SIZE // GRID, (c + 1) * SIZE // GRID
        masked[i, y0:y1, x0:x1, :] = fill
    pk = np.concatenate([session.run(None, {input_name: masked[i:i + BATCH]})[0][:, k]
                         for i in range(0, len(cells), BATCH)])
    drops = (float(p[k]) - pk.astype(np.float64)).reshape(GRID, GRID)
    return {
        "class": LABELS[k],
        "probability": round(float(p[k]), 6),
        "drops": [[round(float(d), 6) for d in row] for row in drops],
    }


def main() -> None:
    session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    images = {}
    for name in NAMES:
        images[name] = occlusion(session, input_name, model_input(IMAGES / name))
    json.dump(
        {
            "generated_by": "scripts/make_occlusion_reference.py",
            "grid": GRID,
            "fill": "per-channel mean of the input",
            "pipeline": 'PIL.Image.open(f).convert("RGB").resize((240, 240)); / 255.0; cell (r, c) is rows '
                        "r*240//8..(r+1)*240//8, columns likewise; drop = p0 - p_k(masked), k = argmax p0",
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
