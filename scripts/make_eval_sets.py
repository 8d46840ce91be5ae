#!/usr/bin/env python3
"""Make the evaluation folders from the 17 MRI images in tests/data/mri/, ImageFolder-style (one
sub-folder per class, named by the model's labels: glioma, meningioma, notumor, pituitary):

  tests/data/mri-by-class/<class>/          all 17 originals, byte-identical copies
  tests/data/int8-gate/originals/<class>/   the 13 that never calibrate model-int8/
  tests/data/int8-gate/variants/<class>/    deterministic variants of those 13: flips, rotations,
                                            crops, brightness, contrast, JPEG re-encodes and two
                                            mixes (int8/imaging.py), named SOURCE__TRANSFORM.jpg

The images are pinned in scripts/assets.lock and every transform is seeded, so with the Pillow of
scripts/int8/requirements.txt the files are the same bytes on every machine. Quick when done:
tests/data/.eval-sets.stamp.json records the inputs and outputs; when they match, the script
prints "up to date" before importing Pillow. Runs in .cache/int8-venv (scripts/setup.sh --test-data).
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

from int8 import common

DATA = common.ROOT / "tests" / "data"
BY_CLASS = DATA / "mri-by-class"
GATE = DATA / "int8-gate"
STAMP = DATA / ".eval-sets.stamp.json"


def stamp_inputs() -> dict:
    here = Path(__file__).resolve()
    code = [here, here.parent / "int8" / "common.py", here.parent / "int8" / "imaging.py"]
    return {
        "images": {common.relative(p): common.verified_file(p, "mri") for p in common.mri_images()},
        "code": common.files_sha256(code),
        "requirements": common.files_sha256([common.REQUIREMENTS]),
        "python": platform.python_version(),
    }


def outputs() -> list[Path]:
    return sorted(p for folder in (BY_CLASS, GATE) if folder.is_dir() for p in folder.rglob("*") if p.is_file())


def build(inputs: dict) -> None:
    """Write both folders under a hidden temporary one, then rename them into place."""
    # Imported only now: Pillow and numpy take longer to load than the stamp check.
    from int8 import imaging

    with tempfile.TemporaryDirectory(dir=DATA, prefix=".eval-sets-") as tmp:
        by_class, gate = Path(tmp) / BY_CLASS.name, Path(tmp) / GATE.name
        originals = common.mri_images()
        for image in originals:
            write_into(by_class / common.class_of(image), image.name, image.read_bytes())
        variants = 0
        for image in common.held_out_images():
            write_into(gate / "originals" / common.class_of(image), image.name, image.read_bytes())
            for name, data in imaging.variants(image):
                write_into(gate / "variants" / common.class_of(image), name, data)
                variants += 1
        common.replace_dir(by_class, BY_CLASS)
        common.replace_dir(gate, GATE)
    files = outputs()
    common.write_stamp(STAMP, inputs, files, {"files": len(files), "variants": variants})
    held_out = len(originals) - len(common.CALIBRATION_IMAGES)
    print(f"  wrote {common.relative(BY_CLASS)} ({len(originals)} images), {common.relative(GATE)} ({held_out} originals, {variants} variants)")


def write_into(folder: Path, name: str, data: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    inputs = stamp_inputs()
    if common.stamp_is_current(STAMP, inputs, outputs()):
        print(f"  {common.relative(BY_CLASS)}, {common.relative(GATE)}: up to date")
    else:
        build(inputs)


if __name__ == "__main__":
    main()
