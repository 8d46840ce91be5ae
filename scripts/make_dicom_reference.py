#!/usr/bin/env python3
"""Compute the reference the DICOM integration tests compare the server against.

For every file in tests/data/dicom/ (pydicom 3.0.2's own test files, fetched by
`scripts/setup.sh --test-data`), either the response the server must refuse it with (status and
error code, no probabilities) or, per frame, the model's four probabilities. The pipeline, per
frame, is the one the server implements:

1. Monochrome (MONOCHROME1/2): m = pydicom.pixels.apply_modality_lut(arr, ds), as float64.
2. VOI, to n in [0, 1]: the first VOI LUT of the VOI LUT Sequence if there is one
   (apply_voi_lut(m, ds, index=0), then / (2**LUT_bits - 1), LUT_bits the LUT Descriptor's third
   value); else the first Window Center/Width with the VOI LUT Function (LINEAR by default,
   LINEAR_EXACT, SIGMOID) by DICOM PS3.3 C.11.2.1.2 with ymin = 0, ymax = 1; else min-max over
   the frame (all 0 when the frame is flat).
3. MONOCHROME1: n = 1 - n.
4. g = rint(clip(n, 0, 1) * 255) as uint8 (round half to even).
5. Colour (RGB, or YBR_* which pydicom's pixel_array converts to RGB): the 8-bit samples as they
   are, no LUTs.
6. Then the JPEG reference (scripts/make_reference.py): Image.fromarray(g).convert("RGB")
   .resize((240, 240)), / 255.0, batch of one, ONNX Runtime on CPU.

Each accepted frame also records "pixels_sha256" (of the uint8 array fed to Pillow, rows x columns
or rows x columns x 3 interleaved RGB, C order) and "pixel_mean", so a test can tell a windowing
or decoding difference from a resize difference.

Decoders: JPEG Baseline is decoded with pydicom's Pillow plugin (libjpeg-turbo, the decoder of
the JPEG reference), JPEG Lossless with pylibjpeg-libjpeg (pydicom has no other pure-pip
decoder for it), the rest with pydicom's own (native, deflate, RLE). The JPEG Baseline YBR files
differ by up to a few levels between decoders (chroma upsampling), so compare those with a
tolerance. JPEG 2000 and JPEG-LS are refused by the server and never decoded here.

scripts/check-fixtures.sh (in the test command) runs it, in .cache/fixtures-venv (these versions
pinned: tests/fixtures/requirements.txt), and fails when the committed
tests/fixtures/dicom_reference.json differs from what it makes; `scripts/check-fixtures.sh
--write` rewrites it.
"""

import hashlib
import importlib.metadata
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import onnxruntime
import PIL
import pydicom
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

ROOT = Path(__file__).resolve().parent.parent
# The model and labels of the JPEG reference, so the two cannot drift apart.
from make_reference import LABELS, MODEL  # noqa: E402
FILES = ROOT / "tests" / "data" / "dicom"
MAX_FRAMES = 32

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
JPEG_LOSSLESS = {"1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70"}
# JPEG 2000 (and High-Throughput JPEG 2000) and JPEG-LS: the server's pure-Rust codecs cannot.
REFUSED_SYNTAXES = {
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92", "1.2.840.10008.1.2.4.93",
    "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203",
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
}
COLOUR = {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"}


def refusal(status: int, code: str, reason: str, **extra) -> dict:
    return {"status": status, "code": code, "reason": reason, **extra}


def check(ds) -> dict | None:
    """The server's refusals that the header decides, before any pixel is decoded."""
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        return refusal(415, "unsupported_dicom_image", "float pixel data")
    if "PixelData" not in ds or "Rows" not in ds or "Columns" not in ds:
        return refusal(400, "not_a_dicom_image", "no Pixel Data (not an image object)")
    syntax = pydicom.uid.UID(ds.file_meta.TransferSyntaxUID)
    if syntax in REFUSED_SYNTAXES:
        return refusal(415, "unsupported_transfer_syntax", f"{syntax.name} is not decoded", transfer_syntax=str(syntax))
    bits_allocated, bits_stored = int(ds.BitsAllocated), int(ds.BitsStored)
    if syntax == JPEG_EXTENDED and bits_stored > 8:
        return refusal(415, "unsupported_transfer_syntax", f"12-bit JPEG Extended (Bits Stored {bits_stored})",
                       transfer_syntax=str(syntax))
    frames = int(ds.get("NumberOfFrames") or 1)
    if frames > MAX_FRAMES:
        return refusal(413, "too_many_images", f"more than {MAX_FRAMES} frames", number_of_frames=frames)
    photometric = str(ds.PhotometricInterpretation).strip()
    samples = int(ds.get("SamplesPerPixel", 1))
    if bits_allocated in (32, 64):
        return refusal(415, "unsupported_dicom_image", f"Bits Allocated {bits_allocated}")
    if photometric == "PALETTE COLOR":
        return refusal(415, "unsupported_dicom_image", "palette colour")
    if samples == 1 and photometric in ("MONOCHROME1", "MONOCHROME2"):
        if bits_allocated in (8, 16):
            return None
        # 1-bit objects are masks (segmentations, overlays), not images to classify.
        return refusal(415, "unsupported_dicom_image", f"grey with Bits Allocated {bits_allocated}")
    if samples == 3 and photometric in COLOUR:
        if bits_allocated == 8:
            return None
        return refusal(415, "unsupported_dicom_image", f"colour with Bits Allocated {bits_allocated}")
    return refusal(415, "unsupported_dicom_image", f"photometric interpretation {photometric}")


def first(value):
    """The first value of a possibly multi-valued element."""
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        return value[0]
    return value


def window(m: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2.1 / C.11.2.1.3.1 with ymin = 0, ymax = 1."""
    if function == "LINEAR_EXACT":
        n = (m - c) / w + 0.5
        n = np.where(m <= c - w / 2, 0.0, np.where(m > c + w / 2, 1.0, n))
    elif function == "SIGMOID":
        n = 1.0 / (1.0 + np.exp(-4.0 * (m - c) / w))
    elif w < 1:  # LINEAR with a width below 1: a threshold at c - 0.5
        n = np.where(m <= c - 0.5, 0.0, 1.0)
    else:
        n = (m - (c - 0.5)) / (w - 1) + 0.5
        n = np.where(m <= c - 0.5 - (w - 1) / 2, 0.0, np.where(m > c - 0.5 + (w - 1) / 2, 1.0, n))
    return np.clip(n, 0.0, 1.0)


def grey(arr: np.ndarray, ds) -> tuple[np.ndarray, str]:
    """One monochrome frame → 8-bit grey, and which VOI step applied."""
    m = np.asarray(apply_modality_lut(arr, ds), dtype=np.float64)
    centre, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if "VOILUTSequence" in ds and len(ds.VOILUTSequence) > 0:
        lut_bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
        n = np.asarray(apply_voi_lut(m, ds, index=0), dtype=np.float64) / (2**lut_bits - 1)
        voi = "voi_lut"
    elif centre is not None and width is not None and float(first(width)) > 0:
        function = str(first(ds.get("VOILUTFunction") or "LINEAR")).strip().upper()
        n = window(m, float(first(centre)), float(first(width)), function)
        voi = "window"
    else:
        lo, hi = m.min(), m.max()
        n = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        voi = "min_max"
    if str(ds.PhotometricInterpretation).strip() == "MONOCHROME1":
        n = 1.0 - n
    return np.rint(np.clip(n, 0.0, 1.0) * 255).astype(np.uint8), voi


def decoding_plugin(syntax: str) -> str:
    if syntax == JPEG_BASELINE:
        return "pillow"
    if syntax in JPEG_LOSSLESS:
        return "pylibjpeg"
    return ""  # pydicom's own decoder


def score(session, input_name: str, image: np.ndarray) -> dict:
    img = Image.fromarray(image).convert("RGB").resize((240, 240))
    batch = np.expand_dims(np.asarray(img, dtype=np.float32) / 255.0, axis=0)
    probabilities = session.run(None, {input_name: batch})[0][0]
    return {
        "label": LABELS[int(np.argmax(probabilities))],
        "probabilities": {label: round(float(p), 6) for label, p in zip(LABELS, probabilities)},
        "pixels_sha256": hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest(),
        "pixel_mean": round(float(image.mean()), 3),
    }


def reference(path: Path, session, input_name: str) -> dict:
    try:
        ds = pydicom.dcmread(path)
    except Exception as error:  # noqa: BLE001 - any parse failure is the server's invalid_dicom
        return refusal(400, "invalid_dicom", f"pydicom cannot parse it: {type(error).__name__}")
    refused = check(ds)
    if refused:
        return refused
    syntax = pydicom.uid.UID(ds.file_meta.TransferSyntaxUID)
    photometric = str(ds.PhotometricInterpretation).strip()
    number_of_frames = int(ds.get("NumberOfFrames") or 1)
    plugin = decoding_plugin(syntax)
    try:
        if plugin:
            ds.pixel_array_options(decoding_plugin=plugin)
        pixels = ds.pixel_array
    except Exception as error:  # noqa: BLE001 - undecodable pixel data is the server's invalid_dicom
        message = str(error).split(" - ")[0]  # e.g. "The number of bytes of pixel data is less than expected"
        return refusal(400, "invalid_dicom", f"pydicom cannot decode the pixel data: {type(error).__name__}: {message}")
    colour = photometric in COLOUR
    if number_of_frames == 1:
        pixels = pixels[np.newaxis]
    frames, vois = [], set()
    for index, frame in enumerate(pixels, 1):
        if colour:
            image, voi = np.ascontiguousarray(frame, dtype=np.uint8), None
        else:
            image, voi = grey(frame, ds)
            vois.add(voi)
        frames.append({"frame": index, **score(session, input_name, image)})
    return {
        "status": 200,
        "transfer_syntax": str(syntax),
        "transfer_syntax_name": syntax.name,
        "decoder": plugin or "pydicom",
        "photometric": photometric,
        "bits_allocated": int(ds.BitsAllocated),
        "bits_stored": int(ds.BitsStored),
        "rows": int(ds.Rows),
        "columns": int(ds.Columns),
        "number_of_frames": number_of_frames,
        "voi": "/".join(sorted(vois)) if vois else None,
        "sop_instance_uid": str(ds.SOPInstanceUID) if "SOPInstanceUID" in ds else None,
        "frames": frames,
    }


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def main() -> None:
    warnings.simplefilter("ignore")  # pydicom's warnings about the odd test files
    paths = sorted(FILES.glob("*.dcm"))
    if not paths:
        sys.exit(f"no DICOM files in {FILES}; run scripts/setup.sh --test-data first")
    session = onnxruntime.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    files = {}
    for path in paths:
        files[path.name] = reference(path, session, input_name)
        result = files[path.name]
        print(f"{path.name}: {result['status']} {result.get('code', result.get('voi'))}", file=sys.stderr)
    json.dump(
        {
            "generated_by": "scripts/make_dicom_reference.py",
            "pipeline": "monochrome: apply_modality_lut; first VOI LUT / (2**bits - 1), else first window "
                        "(PS3.3 C.11.2.1.2, output [0, 1]), else min-max; MONOCHROME1 inverted; "
                        "rint(clip(n, 0, 1) * 255) uint8. colour: pydicom's 8-bit RGB as it is. Then "
                        'PIL.Image.fromarray(g).convert("RGB").resize((240, 240)); / 255.0; batch of 1',
            "max_frames": MAX_FRAMES,
            "versions": {
                "pydicom": pydicom.__version__,
                "pillow": PIL.__version__,
                "onnxruntime": onnxruntime.__version__,
                "numpy": np.__version__,
                "pylibjpeg": version("pylibjpeg"),
                "pylibjpeg-libjpeg": version("pylibjpeg-libjpeg"),
            },
            "files": files,
        },
        sys.stdout,
        indent=2,
    )
    print()


if __name__ == "__main__":
    main()
