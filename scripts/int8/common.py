"""Paths, the fixed split of the 17 MRI images, sha256 stamps and atomic writes.

Standard library only: the scripts compute their stamps with this module and exit when they are
up to date before importing anything heavy, so a second `scripts/setup.sh` stays quick.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK_FILE = ROOT / "scripts" / "assets.lock"
REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"
MRI_DIR = ROOT / "tests" / "data" / "mri"

# The dataset's file names say the true class: Te-gl_* glioma, Te-me_* meningioma, ...
CLASS_OF_PREFIX = {"gl": "glioma", "me": "meningioma", "no": "notumor", "pi": "pituitary"}

# The calibration set: one image per class, fixed so that the INT8 model is reproducible. The
# other 13 images never reach the quantiser: they are the held-out set every check measures on.
CALIBRATION_IMAGES = ("Te-gl_0010.jpg", "Te-me_0016.jpg", "Te-no_0021.jpg", "Te-pi_0014.jpg")


def class_of(image: Path) -> str:
    """The true class of a dataset image, from its name (Te-gl_0010.jpg is a glioma)."""
    return CLASS_OF_PREFIX[image.name[3:5]]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def relative(path: Path) -> str:
    return path.resolve().relative_to(ROOT).as_posix()


def locked_sha256(group: str) -> dict[str, str]:
    """Destination -> sha256 for one group of scripts/assets.lock (the pins setup.sh fetches)."""
    pins = {}
    for line in LOCK_FILE.read_text().splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0] == group:
            pins[fields[4]] = fields[5]
    return pins


def verified_file(path: Path, group: str) -> str:
    """The sha256 of `path`, after checking it is the file scripts/assets.lock pins.

    Reproducibility rests on the inputs being the pinned ones: a missing or changed file stops
    the run here rather than producing a different model or evaluation set.
    """
    expected = locked_sha256(group).get(relative(path))
    if expected is None:
        sys.exit(f"{relative(path)} is not pinned in group {group!r} of {relative(LOCK_FILE)}")
    if not path.is_file():
        sys.exit(f"{relative(path)} is missing: run scripts/setup.sh")
    actual = sha256_file(path)
    if actual != expected:
        sys.exit(f"{relative(path)} has sha256 {actual}, but {relative(LOCK_FILE)} pins {expected}: run scripts/setup.sh")
    return actual


def mri_images() -> list[Path]:
    """The 17 MRI images pinned in the lock's `mri` group, each checked against its sha256."""
    images = [ROOT / destination for destination in sorted(locked_sha256("mri"))]
    for image in images:
        verified_file(image, "mri")
    return images


def calibration_images() -> list[Path]:
    return [MRI_DIR / name for name in CALIBRATION_IMAGES]


def held_out_images() -> list[Path]:
    return [image for image in mri_images() if image.name not in CALIBRATION_IMAGES]


def files_sha256(paths: list[Path]) -> dict[str, str]:
    return {relative(path): sha256_file(path) for path in sorted(paths)}


def stamp_is_current(stamp: Path, inputs: dict, outputs: list[Path]) -> bool:
    """True when `stamp` records exactly these inputs and every output still has its sha256.

    Hashing the outputs too means a deleted, edited or extra output file triggers a rebuild.
    """
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return recorded.get("inputs") == inputs and recorded.get("outputs") == files_sha256(outputs)


def write_stamp(stamp: Path, inputs: dict, outputs: list[Path], results: dict) -> None:
    record = {"inputs": inputs, "outputs": files_sha256(outputs), "results": results}
    atomic_write(stamp, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())


def atomic_write(path: Path, data: bytes) -> None:
    """Write through a hidden temporary file in the same folder, then rename over `path`.

    A reader (or the server's model discovery, which skips hidden files) never sees half a file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(data)
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, path)


def replace_dir(built: Path, destination: Path) -> None:
    """Put a fully built folder in place of `destination` with renames, then drop the old one."""
    old = destination.with_name(f".{destination.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if destination.exists():
        destination.rename(old)
    built.rename(destination)
    shutil.rmtree(old, ignore_errors=True)


def remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
