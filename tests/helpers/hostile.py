"""A corpus of hostile and broken files, generated (never downloaded): decompression bombs, truncated and
bit-flipped images and PDFs, extreme shapes, encrypted and 5,000-page PDFs, a zip bomb named .pdf,
invalid text encodings, empty files, wrong extensions, HTML with scripts.

    python -m tests.helpers.hostile DIR     # writes the corpus and prints how many files
"""

from __future__ import annotations

import io
import random
import struct
import sys
import zipfile
import zlib
from pathlib import Path

# Files that are odd but valid: they must ingest (in bounded time), not fail.
VALID = {"strip-1x20000.png", "strip-20000x1.png", "script.html", "script-only-text.html", "dicom-ct.dcm"}
# Files that must fail. The rest (a truncated tail, a flipped bit in pixel data) may still decode, and
# then ingesting what decodes is right; otherwise they fail like these.
MUST_FAIL_PREFIXES = ("bomb-", "encrypted", "pages-5000", "zipbomb", "empty", "invalid-", "binary",
                      "text-named", "png-named", "pdf-named", "not-a-zip", "unsupported", "no-extension",
                      "whitespace", "only-script", "truncated-8.", "truncated-5.", "truncated-20.",
                      "dicom-broken-")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int) -> bytes:
    """A 1-bit PNG of side x side zero pixels: a few hundred KB on disk, gigapixels decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(side)) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", body) + _png_chunk(b"IEND", b"")


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming width x height, with no pixel data: a few dozen bytes."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IEND", b"")


def gif_bomb() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("P", (1, 1)).save(buf, "GIF")
    data = bytearray(buf.getvalue())
    data[6:10] = struct.pack("<HH", 65535, 65535)  # logical screen
    at = data.index(b"\x2c")  # image descriptor
    data[at + 5 : at + 9] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def tiff_bomb() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, "TIFF")
    data = bytearray(buf.getvalue())
    offset = struct.unpack("<I", data[4:8])[0]
    count = struct.unpack("<H", data[offset : offset + 2])[0]
    for i in range(count):
        entry = offset + 2 + 12 * i
        tag, kind = struct.unpack("<HH", data[entry : entry + 4])
        if tag in (256, 257):  # ImageWidth, ImageLength
            fmt = "<H" if kind == 3 else "<I"
            data[entry + 8 : entry + 8 + struct.calcsize(fmt)] = struct.pack(fmt, 60000)
    return bytes(data)


def valid_images() -> dict[str, bytes]:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (120, 90), "white")
    ImageDraw.Draw(image).rectangle([10, 10, 80, 60], fill="red")
    out = {}
    for fmt, ext in [("PNG", "png"), ("JPEG", "jpg"), ("WEBP", "webp"), ("BMP", "bmp"), ("GIF", "gif"),
                     ("TIFF", "tiff")]:
        buf = io.BytesIO()
        image.save(buf, fmt)
        out[ext] = buf.getvalue()
    return out


def valid_pdf() -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def damaged(data: bytes, ext: str, cuts, flips: int, rng: random.Random) -> dict[str, bytes]:
    """Truncations of a valid file at each cut, and four copies with ``flips`` random bits flipped."""
    out = {f"truncated-{cut}.{ext}": data[:cut] for cut in cuts}
    for n in range(4):
        flipped = bytearray(data)
        for _ in range(flips):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out[f"bitflip-{n}.{ext}"] = bytes(flipped)
    return out


def dicom_cases(folder: Path, rng: random.Random) -> dict[str, bytes]:
    """A valid CT; it truncated and bit-flipped; a DICOM without pixels, one claiming a compression nothing
    here decodes, one claiming 60000x60000 pixels, one whose pixel data is shorter than its header says, and
    a file that is no DICOM at all."""
    import pydicom

    from tests.helpers import dicoms

    scratch = folder / ".dicom-scratch"
    scratch.mkdir(exist_ok=True)
    ct = dicoms.ct(scratch / "ct.dcm").read_bytes()
    cases = {"dicom-ct.dcm": ct}
    cases.update({f"dicom-{k}": v for k, v in damaged(ct, "dcm", (8, 300, len(ct) // 2, len(ct) - 10), 12, rng).items()})
    cases["dicom-broken-no-pixels.dcm"] = dicoms.without_pixels(scratch / "a.dcm").read_bytes()
    cases["dicom-broken-jpeg-ls.dcm"] = dicoms.unsupported_compression(scratch / "b.dcm").read_bytes()
    cases["dicom-broken-not-dicom.dcm"] = dicoms.not_dicom(scratch / "c.dcm").read_bytes()
    huge = pydicom.dcmread(io.BytesIO(ct))
    huge.Rows = huge.Columns = 60000
    buffer = io.BytesIO()
    huge.save_as(buffer)
    cases["dicom-broken-bomb.dcm"] = buffer.getvalue()
    short = pydicom.dcmread(io.BytesIO(ct))
    short.PixelData = short.PixelData[: len(short.PixelData) // 4]
    buffer = io.BytesIO()
    short.save_as(buffer)
    cases["dicom-broken-short-pixels.dcm"] = buffer.getvalue()
    cases["empty.dcm"] = b""
    for path in scratch.iterdir():
        path.unlink()
    scratch.rmdir()
    return cases


def write_corpus(folder: Path, seed: int = 0) -> list[Path]:
    from PIL import Image
    from pypdf import PdfWriter

    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {
        "bomb-png-50000.png": png_bomb(50_000), "bomb-png-20000.png": png_bomb(20_000),
        "bomb-gif.gif": gif_bomb(), "bomb-tiff.tiff": tiff_bomb(), "bomb-tiff.tif": tiff_bomb(),
    }
    for ext, data in valid_images().items():
        files.update(damaged(data, ext, (8, 30, len(data) // 3, len(data) // 2, len(data) - 10), 12, rng))
        files[f"empty.{ext}"] = b""
        files[f"text-named.{ext}"] = b"this is plain text, not an image\n" * 5
    for size, name in [((1, 20_000), "strip-1x20000.png"), ((20_000, 1), "strip-20000x1.png")]:
        buf = io.BytesIO()
        Image.new("RGB", size, "gray").save(buf, "PNG")
        files[name] = buf.getvalue()

    pdf = valid_pdf()
    files.update(damaged(pdf, "pdf", (5, 20, len(pdf) // 2, len(pdf) - 30), 20, rng))
    writer = PdfWriter(clone_from=io.BytesIO(pdf))
    writer.encrypt("secret")
    buf = io.BytesIO()
    writer.write(buf)
    files["encrypted.pdf"] = buf.getvalue()
    big = PdfWriter()
    for _ in range(5000):
        big.add_blank_page(100, 100)
    buf = io.BytesIO()
    big.write(buf)
    files["pages-5000.pdf"] = buf.getvalue()
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("zeros.bin", b"\x00" * 200_000_000)
    files["zipbomb.pdf"] = zbuf.getvalue()
    files["zipbomb.docx"] = zbuf.getvalue()
    files["png-named.pdf"] = valid_images()["png"]
    files["pdf-named.docx"] = pdf
    files["empty.pdf"] = b""
    files["empty.docx"] = b""
    files["not-a-zip.docx"] = b"PK\x03\x04 broken zip"

    files["invalid-utf8.txt"] = b"\x00\xff\xfe\xfd" + bytes(rng.randrange(256) for _ in range(500))
    files["invalid-utf16.txt"] = b"\xff\xfe" + b"\x00\xd8" + b"a\x00"  # a lone high surrogate
    files["binary.md"] = bytes(rng.randrange(256) for _ in range(2000)) + b"\x00"
    files["empty.txt"] = b""
    files["empty.md"] = b""
    files["whitespace.txt"] = b"   \n\n\t  \n"
    files["pdf-named.txt"] = pdf
    files["empty.html"] = b""
    files["script.html"] = (b"<html><body><script>while(true){}</script><p>Real text survives.</p>"
                            b"<img src='http://example.invalid/x.png' onerror='alert(1)'></body></html>")
    files["script-only-text.html"] = b"<html><body><script>alert('only script')</script>Plain words.</body></html>"
    files["only-script.html"] = b"<html><head><script>alert(1)</script><style>p{}</style></head><body></body></html>"
    files["binary.html"] = bytes(rng.randrange(256) for _ in range(3000)) + b"\x00"
    files.update(dicom_cases(folder, rng))
    files["unsupported.exe"] = b"MZ" + b"\x00" * 100
    files["no-extension"] = b"hello"

    paths = []
    for name, data in files.items():
        path = folder / name
        path.write_bytes(data)
        paths.append(path)
    return paths


if __name__ == "__main__":
    print(len(write_corpus(Path(sys.argv[1]))), "files")
