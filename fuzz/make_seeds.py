#!/usr/bin/env python3
"""Write the committed seed corpus of the fuzz targets, fuzz/seeds/<target>/.

Small synthetic inputs only: images drawn here (every format and mode the server decodes, plus
edge cases such as a decompression-bomb header, a truncated JPEG, a top-down BMP, extreme aspect
ratios), JSON bodies and multipart bodies carrying them, and base64 texts. Nothing from the MRI
test images: scripts/fuzz.sh adds those at run time, from tests/data/mri/, into a temporary
directory. Deterministic: running it again rewrites the same files (scripts/check-fixtures.sh, in
the test command, checks that the committed ones are what it makes). The v2_infer and dicom_decode
seeds are hand-made, not written here. Needs Pillow, e.g.

    .cache/fixtures-venv/bin/python fuzz/make_seeds.py     # or any venv with `pip install pillow`
"""

import argparse
import base64
import io
import json
import shutil
import struct
import zlib
from pathlib import Path

from PIL import Image

SEEDS = Path(__file__).resolve().parent / "seeds"


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (width, height))
    image.putdata(
        [((x * 255) // max(width - 1, 1), (y * 255) // max(height - 1, 1), (x * y) % 256) for y in range(height) for x in range(width)]
    )
    return image.convert(mode)


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written by hand, for what Pillow does not write (16-bit RGB, bomb headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows, 9)) + png_chunk(b"IEND", b"")


def images() -> dict[str, bytes]:
    small = gradient(8, 6)
    odd = gradient(17, 13)
    seeds = {
        # PNG, every mode
        "rgb.png": encode(small, "PNG"),
        "grey.png": encode(gradient(5, 7, "L"), "PNG"),
        "grey_alpha.png": encode(gradient(6, 4, "LA"), "PNG"),
        "rgba.png": encode(gradient(7, 5, "RGBA"), "PNG"),
        "palette.png": encode(gradient(9, 3, "P"), "PNG", transparency=0),
        "bilevel.png": encode(gradient(11, 9, "1"), "PNG"),
        "grey16.png": encode(gradient(6, 6, "L").convert("I;16"), "PNG"),
        "rgb16.png": raw_png(3, 2, 16, 2, b"".join(b"\x00" + bytes(range(r * 18, r * 18 + 18)) for r in range(2))),
        "one_pixel.png": encode(gradient(1, 1), "PNG"),
        "wide_3000x1.png": encode(gradient(3000, 1, "L"), "PNG"),
        "tall_1x3000.png": encode(gradient(1, 3000, "L"), "PNG"),
        "big_1000x1000.png": encode(Image.new("L", (1000, 1000), 77), "PNG"),
        # Headers declaring more than the pixel limit (a decompression bomb), or a zero size.
        "bomb_100000x100000.png": raw_png(100000, 100000, 8, 0, b"\x00" * 64),
        "just_over_2000x2001.png": raw_png(2000, 2001, 1, 0, b"\x00" * 64),
        "zero_width.png": raw_png(0, 5, 8, 0, b"\x00" * 5),
        # JPEG: baseline, progressive, grey, CMYK, subsampling, restart markers, truncated
        "baseline.jpg": encode(odd, "JPEG", quality=90),
        "progressive.jpg": encode(odd, "JPEG", quality=80, progressive=True),
        "grey.jpg": encode(gradient(16, 16, "L"), "JPEG"),
        "cmyk.jpg": encode(gradient(8, 8, "CMYK"), "JPEG"),
        "subsampling_444.jpg": encode(odd, "JPEG", subsampling=0),
        "subsampling_420.jpg": encode(odd, "JPEG", subsampling=2),
        "one_pixel.jpg": encode(gradient(1, 1), "JPEG"),
        "restart_markers.jpg": encode(gradient(32, 16), "JPEG", restart_marker_blocks=1),
        "trailing_data.jpg": encode(small, "JPEG") + b"garbage after the end-of-image marker",
        # GIF: still, transparent, animated with frames of different sizes
        "still.gif": encode(small, "GIF"),
        "transparent.gif": encode(gradient(5, 5, "P"), "GIF", transparency=3),
        "animated.gif": encode(
            gradient(6, 6, "P"), "GIF", save_all=True, append_images=[gradient(3, 2, "P")], duration=10, loop=0
        ),
        # BMP: 24-bit, 32-bit, palette, 1-bit, and bottom-up turned top-down (negative height)
        "rgb.bmp": encode(odd, "BMP"),
        "rgba.bmp": encode(gradient(3, 3, "RGBA"), "BMP"),
        "palette.bmp": encode(gradient(5, 3, "P"), "BMP"),
        "bilevel.bmp": encode(gradient(9, 2, "1"), "BMP"),
        # TIFF: uncompressed, LZW, deflate, PackBits, 16-bit grey, CMYK, several strips
        "rgb.tif": encode(small, "TIFF"),
        "lzw.tif": encode(small, "TIFF", compression="tiff_lzw"),
        "deflate.tif": encode(gradient(4, 4, "L"), "TIFF", compression="tiff_adobe_deflate"),
        "packbits.tif": encode(gradient(4, 4, "L"), "TIFF", compression="packbits"),
        "grey16.tif": encode(gradient(4, 3, "L").convert("I;16"), "TIFF"),
        "cmyk.tif": encode(gradient(3, 3, "CMYK"), "TIFF"),
        "strips.tif": encode(gradient(4, 40, "L"), "TIFF", strip_size=16),
        # WebP: lossless, lossy, with alpha
        "lossless.webp": encode(small, "WEBP", lossless=True),
        "lossy.webp": encode(odd, "WEBP", quality=50),
        "alpha.webp": encode(gradient(5, 5, "RGBA"), "WEBP", lossless=True),
        # Signatures alone, and nothing
        "empty": b"",
        "png_signature_only": b"\x89PNG\r\n\x1a\n",
        "jpeg_soi_only": b"\xff\xd8\xff",
        "gif_header_only": b"GIF89a",
        "bmp_magic_only": b"BM",
        "tiff_header_only": b"II*\x00\x08\x00\x00\x00",
        "webp_header_only": b"RIFF\x04\x00\x00\x00WEBP",
    }
    jpeg = seeds["baseline.jpg"]
    seeds["truncated_no_eoi.jpg"] = jpeg[: len(jpeg) // 2]
    seeds["eoi_only_no_scan.jpg"] = jpeg[:2] + b"\xff\xd9"
    bottom_up = bytearray(seeds["rgb.bmp"])
    (height,) = struct.unpack_from("<i", bottom_up, 22)
    struct.pack_into("<i", bottom_up, 22, -height)
    seeds["top_down.bmp"] = bytes(bottom_up)
    return seeds


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def json_bodies(imgs: dict[str, bytes]) -> dict[str, bytes]:
    png, jpeg, gif = imgs["rgb.png"], imgs["baseline.jpg"], imgs["still.gif"]
    wrapped = "\n".join(b64(jpeg)[i : i + 76] for i in range(0, len(b64(jpeg)), 76)) + "\n"
    bodies = {
        "one_png.json": {"image": b64(png)},
        "one_jpeg.json": {"image": b64(jpeg)},
        "several.json": {"images": [b64(png), b64(jpeg), b64(gif), b64(imgs["lossless.webp"]), b64(imgs["rgb.tif"])]},
        "data_url.json": {"image": "data:image/png;base64," + b64(png)},
        "url_safe_no_padding.json": {"image": base64.urlsafe_b64encode(jpeg).decode().rstrip("=")},
        "wrapped_lines.json": {"image": wrapped},
        "grey16_png.json": {"image": b64(imgs["grey16.png"])},
        "bomb.json": {"image": b64(imgs["bomb_100000x100000.png"])},
        "truncated_jpeg.json": {"image": b64(imgs["truncated_no_eoi.jpg"])},
        "not_an_image.json": {"image": b64(b"hello world")},
        "empty_list.json": {"images": []},
        "empty_string.json": {"image": ""},
        "padding_only.json": {"images": ["====", "=", "A", "AB", "ABC"]},
        "null_and_list.json": {"image": None, "images": [b64(png)]},
        "data_url_without_base64.json": {"image": "data:image/png," + b64(png)},
    }
    out = {name: json.dumps(body).encode() for name, body in bodies.items()}
    out.update(
        {
            "both.json": json.dumps({"image": b64(png), "images": [b64(png)]}).encode(),
            "neither.json": b"{}",
            "unknown_field.json": b'{"imgae": "aGk="}',
            "wrong_type.json": b'{"image": 3}',
            "nested_arrays.json": b'{"images": [[[[["aGk="]]]]]}',
            "duplicate_key.json": b'{"image": "aGk=", "image": "aGk="}',
            "unicode_escapes.json": b'{"image": "\\u0069VBORw0KGgo=", "\\u0069mages": null}',
            "whitespace.json": b' \r\n\t{ "image" :\n"aGVsbG8=" } \n',
            "bom.json": b'\xef\xbb\xbf{"image": "aGk="}',
            "lone_surrogate.json": b'{"image": "\\ud800"}',
            "not_an_object.json": b'["aGk="]',
            "eof.json": b'{"image": ',
            "trailing.json": b'{"image": "aGk="} {}',
            "big_number.json": b'{"image": 1e999999}',
            "deep.json": b'{"images": ' + b"[" * 200 + b"]" * 200 + b"}",
        }
    )
    return out


def base64_texts() -> dict[str, bytes]:
    texts = {
        "padded": "aGVsbG8=",
        "unpadded": "aGVsbG8",
        "wrapped": "aGVs\nbG8=\n",
        "crlf_wrapped": "aGVs\r\nbG8=\r\n",
        "data_url": "data:image/png;base64,aGVsbG8=",
        "data_url_no_base64": "data:image/png,aGVsbG8=",
        "data_url_empty": "data:;base64,",
        "data_no_comma": "data:image/png;base64",
        "url_safe": "-_8=",
        "standard": "+/8=",
        "mixed_alphabets": "+_8=",
        "padding_only": "====",
        "one_digit": "a",
        "padding_inside": "ab=c",
        "too_much_padding": "aGk===",
        "trailing_bits": "aGl=",
        "whitespace_only": " \t\r\n",
        "unicode_space": "aGVs\u00a0bG8=",
        "non_ascii": "aGVsbG8=\u00e9",
        "png_signature": b64(b"\x89PNG\r\n\x1a\n"),
        "empty": "",
    }
    return {name: text.encode() for name, text in texts.items()}


def multipart(boundary: str, parts: list[tuple[list[str], bytes]], *, newline: bytes = b"\r\n", close: bool = True) -> bytes:
    body = b""
    for headers, content in parts:
        body += b"--" + boundary.encode() + newline
        body += b"".join(h.encode() + newline for h in headers) + newline + content + newline
    if close:
        body += b"--" + boundary.encode() + b"--" + newline
    return body


def multipart_requests(imgs: dict[str, bytes]) -> dict[str, bytes]:
    png, jpeg = imgs["rgb.png"], imgs["baseline.jpg"]
    ct = "multipart/form-data; boundary="
    file_part = lambda name, filename, content, ctype="image/png": (  # noqa: E731
        [f'Content-Disposition: form-data; name="{name}"; filename="{filename}"', f"Content-Type: {ctype}"],
        content,
    )
    text_part = ([ 'Content-Disposition: form-data; name="note"'], b"hello")
    requests = {
        "one_file": (ct + "XyZ", multipart("XyZ", [file_part("file", "a.png", png)])),
        "two_files_and_text": (
            ct + "XyZ",
            multipart("XyZ", [text_part, file_part("a", "a.jpg", jpeg, "image/jpeg"), file_part("b", "b.png", png)]),
        ),
        "no_filename_image_type": (
            ct + "b",
            multipart("b", [(['Content-Disposition: form-data; name="x"', "Content-Type: image/png"], png)]),
        ),
        "filename_star": (
            ct + "b",
            multipart("b", [(["Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%C3%A9.png"], png)]),
        ),
        "quoted_boundary": ('multipart/form-data; boundary="a b:c"', multipart("a b:c", [file_part("f", "f.png", png)])),
        "long_boundary": (ct + "-" * 70, multipart("-" * 70, [file_part("f", "f.png", png)])),
        "boundary_in_content": (ct + "AaB", multipart("AaB", [file_part("f", "f.bin", b"--AaB-- not the end --AaB")]),),
        "preamble_epilogue": (ct + "pp", b"preamble\r\n" + multipart("pp", [file_part("f", "f.png", png)]) + b"epilogue"),
        "lf_only": (ct + "n", multipart("n", [file_part("f", "f.png", png)], newline=b"\n")),
        "unterminated": (ct + "u", multipart("u", [file_part("f", "f.png", png)], close=False)),
        "empty_part": (ct + "e", multipart("e", [file_part("f", "empty.png", b"")])),
        "no_parts": (ct + "z", b"--z--\r\n"),
        "no_disposition": (ct + "d", multipart("d", [(["Content-Type: image/png"], png)])),
        "part_headers": (
            ct + "h",
            multipart(
                "h",
                [(['Content-Disposition: form-data; name="f"; filename="f"', "Content-Length: 3", "Content-Transfer-Encoding: base64", "X-Other: 1"], b64(png).encode())],
            ),
        ),
        "nested_mixed": (
            ct + "outer",
            multipart(
                "outer",
                [(['Content-Disposition: form-data; name="files"', "Content-Type: multipart/mixed; boundary=inner"], multipart("inner", [file_part("g", "g.png", png)]))],
            ),
        ),
        "many_small_parts": (ct + "m", multipart("m", [file_part(f"f{i}", f"{i}.bin", bytes([i])) for i in range(40)])),
        "missing_boundary": ("multipart/form-data", multipart("XyZ", [file_part("f", "f.png", png)])),
        "empty_boundary": (ct, multipart("", [file_part("f", "f.png", png)])),
        "uppercase_type": ("Multipart/Form-Data; charset=utf-8; boundary=U", multipart("U", [file_part("f", "f.png", png)])),
        # Other content types take the other paths of extract_images.
        "json_body": ("application/json", json.dumps({"image": b64(png)}).encode()),
        "raw_image": ("image/png", png),
        "octet_stream": ("application/octet-stream", jpeg),
        "unsupported": ("text/plain", b"hello"),
    }
    return {name: ctype.encode() + b"\r\n" + body for name, (ctype, body) in requests.items()}


def write(out: Path, target: str, files: dict[str, bytes]) -> None:
    folder = out / target
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    print(f"{target}: {len(files)} seeds, {sum(map(len, files.values()))} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=SEEDS, help=f"where to write them (default {SEEDS})")
    out = parser.parse_args().out
    imgs = images()
    write(out, "image_decode", imgs)
    write(out, "json_body", json_bodies(imgs))
    write(out, "base64", base64_texts())
    write(out, "multipart", multipart_requests(imgs))


if __name__ == "__main__":
    main()
