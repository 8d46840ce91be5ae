#!/usr/bin/env python3
"""Make the Pillow resize fixtures in tests/fixtures/resize/.

Synthetic, deterministic source images (gradients, hard edges, seeded noise) and what Pillow's
`Image.resize` makes of them with each filter. The preprocessing unit tests check that the
server's resize reproduces Pillow exactly, independently of any JPEG decoder.
scripts/check-fixtures.sh (in the test command) runs it and fails when the committed images differ
from what it makes; `scripts/check-fixtures.sh --write` rewrites them.
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "resize"
TARGET = (64, 48)
# "tall" shrinks the height by more than twice as many pixels as the width: Pillow 13 runs its
# vertical pass first there. "same-width" and "same-height" need one pass only.
SOURCES = {
    "shrink": (200, 150),
    "enlarge": (40, 30),
    "mixed": (100, 20),
    "tall": (60, 200),
    "same-width": (64, 150),
    "same-height": (200, 48),
}
FILTERS = {
    "nearest": Image.NEAREST,
    "box": Image.BOX,
    "bilinear": Image.BILINEAR,
    "hamming": Image.HAMMING,
    "bicubic": Image.BICUBIC,
    "lanczos": Image.LANCZOS,
}


def pattern(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(20261126)
    y, x = np.mgrid[0:height, 0:width]
    red = (x * 255 // max(width - 1, 1)).astype(np.uint8)
    green = np.where((x // 7 + y // 5) % 2 == 0, 230, 20).astype(np.uint8)
    blue = rng.integers(0, 256, size=(height, width), dtype=np.uint8)
    return Image.fromarray(np.stack([red, green, blue], axis=-1), "RGB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT, help=f"where to write them (default {OUT})")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, size in SOURCES.items():
        source = pattern(*size)
        source.save(out / f"{name}.png")
        for filter_name, resample in FILTERS.items():
            source.resize(TARGET, resample=resample).save(out / f"{name}-{filter_name}.png")
    print(f"wrote {len(SOURCES) * (len(FILTERS) + 1)} images to {out}")


if __name__ == "__main__":
    main()
