#!/usr/bin/env python3
"""Run every generator of a committed test fixture and compare what it makes now with what is
committed, so that no fixture can drift from the script that claims to make it.

JSON references are compared value by value: strings, labels, digests and versions exactly,
numbers within each generator's tolerance (ONNX Runtime's last digits can move between CPUs).
Image fixtures are compared by their decoded pixels, seeds byte for byte, and a file made but not
committed, or committed but no longer made, is drift too.

Usage: check_fixtures.py [--write]   (--write: rewrite the committed fixtures instead)
Run by scripts/check-fixtures.sh, in .cache/fixtures-venv; needs `scripts/setup.sh --test-data`.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
# Differences listed per fixture before the rest are only counted.
SHOWN = 10


@dataclass
class JsonFixture:
    """A generator that prints one JSON document."""

    script: str
    fixture: str
    # |made - committed| <= max(relative * |committed|, absolute) for every number.
    relative: float
    absolute: float


@dataclass
class FolderFixture:
    """A generator that writes a folder of files (its --out option)."""

    script: str
    fixture: str
    # "pixels": images compared decoded; "bytes": files compared byte for byte.
    compare: str
    # The sub-folders it makes, where the folder also holds others (hand-made ones).
    only: tuple[str, ...] = ()


# The tolerances allow for another CPU's ONNX Runtime kernels (the fixtures were made on one
# machine); a change to a pipeline moves probabilities by far more.
FIXTURES = [
    # Probabilities to 8 significant digits, the unlikely ones (down to 1e-10) included: relative.
    JsonFixture("scripts/make_reference.py", "tests/fixtures/reference_predictions.json", 1e-3, 1e-12),
    # Probabilities and drops rounded to 6 decimals: a rounding may flip the last one.
    JsonFixture("scripts/make_dicom_reference.py", "tests/fixtures/dicom_reference.json", 1e-3, 5e-6),
    JsonFixture("scripts/make_occlusion_reference.py", "tests/fixtures/occlusion_reference.json", 1e-3, 5e-6),
    FolderFixture("scripts/make_resize_fixtures.py", "tests/fixtures/resize", "pixels"),
    # v2_infer's and dicom_decode's seeds are hand-made.
    FolderFixture("fuzz/make_seeds.py", "fuzz/seeds", "bytes", only=("image_decode", "json_body", "base64", "multipart")),
]


def run(script: str, *args: str, stdout=None) -> None:
    """Runs a generator; its progress lines are dropped unless it fails."""
    done = subprocess.run([sys.executable, str(ROOT / script), *args], stdout=stdout, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        sys.exit(f"{script} failed (exit {done.returncode}):\n{done.stderr}")


def json_differences(made, committed, fixture: JsonFixture, path: str = "$") -> list[str]:
    if isinstance(committed, dict) and isinstance(made, dict):
        differences = [f"{path}.{key}: not made any more" for key in committed.keys() - made.keys()]
        differences += [f"{path}.{key}: made, not committed" for key in made.keys() - committed.keys()]
        for key in sorted(committed.keys() & made.keys()):
            differences += json_differences(made[key], committed[key], fixture, f"{path}.{key}")
        return differences
    if isinstance(committed, list) and isinstance(made, list):
        if len(made) != len(committed):
            return [f"{path}: {len(made)} items made, {len(committed)} committed"]
        return [d for i, (m, c) in enumerate(zip(made, committed)) for d in json_differences(m, c, fixture, f"{path}[{i}]")]
    numbers = (int, float)
    if isinstance(committed, numbers) and isinstance(made, numbers) and not isinstance(committed, bool):
        allowed = max(fixture.relative * abs(committed), fixture.absolute)
        if math.isclose(made, committed, rel_tol=0, abs_tol=allowed):
            return []
        return [f"{path}: made {made}, committed {committed}"]
    return [] if made == committed else [f"{path}: made {made!r}, committed {committed!r}"]


def folder_differences(made: Path, committed: Path, compare: str) -> list[str]:
    made_files = {p.relative_to(made) for p in made.rglob("*") if p.is_file()}
    committed_files = {p.relative_to(committed) for p in committed.rglob("*") if p.is_file()}
    differences = [f"{name}: committed, not made any more" for name in sorted(committed_files - made_files)]
    differences += [f"{name}: made, not committed" for name in sorted(made_files - committed_files)]
    for name in sorted(made_files & committed_files):
        if compare == "pixels":
            a, b = Image.open(made / name), Image.open(committed / name)
            if a.mode != b.mode or a.size != b.size or not np.array_equal(np.asarray(a), np.asarray(b)):
                differences.append(f"{name}: other pixels")
        elif (made / name).read_bytes() != (committed / name).read_bytes():
            differences.append(f"{name}: other bytes")
    return differences


def check(fixture, scratch: Path) -> list[str]:
    committed = ROOT / fixture.fixture
    if isinstance(fixture, JsonFixture):
        made = scratch / committed.name
        with made.open("w") as out:
            run(fixture.script, stdout=out)
        return json_differences(json.loads(made.read_text()), json.loads(committed.read_text()), fixture)
    made = scratch / committed.name
    run(fixture.script, "--out", str(made), stdout=subprocess.DEVNULL)
    if not fixture.only:
        return folder_differences(made, committed, fixture.compare)
    return [f"{sub}/{d}" for sub in fixture.only for d in folder_differences(made / sub, committed / sub, fixture.compare)]


def write(fixture) -> None:
    committed = ROOT / fixture.fixture
    if isinstance(fixture, JsonFixture):
        # Into a new file first: a generator that fails leaves the committed one as it was.
        made = committed.with_suffix(".new")
        with made.open("w") as out:
            run(fixture.script, stdout=out)
        made.replace(committed)
    else:
        run(fixture.script, "--out", str(committed), stdout=subprocess.DEVNULL)
    print(f"  {fixture.script} -> {fixture.fixture}: rewritten")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="rewrite the committed fixtures instead of checking")
    args = parser.parse_args()
    if args.write:
        for fixture in FIXTURES:
            write(fixture)
        return
    drifted = 0
    with tempfile.TemporaryDirectory(prefix="fixtures-") as scratch:
        for fixture in FIXTURES:
            differences = check(fixture, Path(scratch))
            if not differences:
                print(f"  {fixture.script} -> {fixture.fixture}: as committed")
                continue
            drifted += 1
            print(f"  {fixture.script} -> {fixture.fixture}: {len(differences)} difference(s)")
            for difference in differences[:SHOWN]:
                print(f"      {difference}")
            if len(differences) > SHOWN:
                print(f"      ... and {len(differences) - SHOWN} more")
    if drifted:
        sys.exit(
            f"{drifted} committed fixture(s) differ from what their generator makes. If the change is "
            "intended, run scripts/check-fixtures.sh --write and commit the result with the generator."
        )


if __name__ == "__main__":
    main()
