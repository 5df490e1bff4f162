"""Big photos are opened with a bounded decode and downscaled, in the chat and in the knowledge base; only
images past the product's limits (or files claiming such dimensions) are refused, in calm words."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import InputError
from assistant.images import load_image
from retrieval.loaders import WORKING_PIXELS, ParseOptions, open_image, parse
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.hostile import png_bomb, png_claiming

ROOT = Path(__file__).resolve().parents[2]
CHAT_PIXELS = 1024 * 28 * 28  # the default ASSISTANT_MODEL__MAX_PIXELS
SIDE = 12_000


@pytest.fixture(scope="module")
def huge_photo(tmp_path_factory) -> Path:
    """A real 12000x12000 (144-megapixel) baseline JPEG: one colour, so it encodes in about a second."""
    path = tmp_path_factory.mktemp("photos") / "panorama.jpg"
    Image.new("RGB", (SIDE, SIDE), (90, 140, 200)).save(path, quality=85)
    return path


def calm(message: str, name: str, tmp: Path) -> None:
    assert message.startswith(f"{name}: this image is too large to open (") and "megapixels; the limit is" in message
    for word in ("DOS", "attack", "decompression", "bomb", str(tmp)):
        assert word not in message, message


def test_a_huge_photo_is_accepted_and_downscaled_in_the_chat(huge_photo):
    image = load_image(huge_photo, CHAT_PIXELS)
    assert image.mode == "RGB" and image.size[0] * image.size[1] <= CHAT_PIXELS
    assert image.size[0] == image.size[1] and image.size[0] > 800  # shrunk to fit, not more
    assert image.getpixel((10, 10)) == pytest.approx((90, 140, 200), abs=3)


def test_a_huge_photo_is_accepted_and_downscaled_in_the_knowledge_base(huge_photo, tmp_path):
    parsed = parse(huge_photo, ParseOptions(ocr=False))
    picture = parsed.pictures[0].image
    assert picture.size[0] * picture.size[1] <= WORKING_PIXELS
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)  # the real parse workers
    try:
        report = kb.ingest(huge_photo)
        assert report.status == "added", report.error
    finally:
        kb.close()


MEASURE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from assistant.images import load_image
    from retrieval.loaders import parse, ParseOptions

    def status(field):  # kB
        line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
        return int(line.split()[1])
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    before = status("VmRSS")
    started = time.monotonic()
    image = load_image(Path(sys.argv[1]), int(sys.argv[2])) if sys.argv[3] == "chat" else \\
        parse(Path(sys.argv[1]), ParseOptions(ocr=False)).pictures[0].image
    grown = (status("VmHWM") - before) / 1024
    print(f"{sys.argv[3]}: {image.size}, peak +{grown:.1f} MB, {time.monotonic() - started:.2f} s")
""")


@pytest.mark.parametrize("path_kind", ["chat", "ingest"])
def test_decoding_a_huge_photo_keeps_memory_bounded(huge_photo, path_kind):
    """The whole image would be 432 MB as RGB; decoded at 1/8 scale by the JPEG decoder it is a few MB.
    Measured in a fresh process: its peak resident size during the decode above its size before."""
    out = subprocess.run([sys.executable, "-c", MEASURE, str(huge_photo), str(CHAT_PIXELS), path_kind],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    print(out.stdout)
    grown = float(out.stdout.split("peak +")[1].split(" MB")[0])
    assert grown < 150, out.stdout


def test_a_file_claiming_enormous_dimensions_is_refused_calmly(tmp_path):
    path = tmp_path / "claims.png"
    path.write_bytes(png_claiming(100_000, 100_000))
    with pytest.raises(InputError) as err:
        load_image(path, CHAT_PIXELS)
    calm(str(err.value), "claims.png", tmp_path)
    assert "(10,000 megapixels; the limit is 250" in str(err.value)


def test_a_png_zip_bomb_past_the_whole_decode_limit_is_refused_calmly(tmp_path):
    """72 megapixels of zeros in a few kB: PNG is decoded whole, so the lower limit applies, and the
    message says where the higher one is."""
    path = tmp_path / "zeros.png"
    path.write_bytes(png_bomb(8_500))
    with pytest.raises(InputError) as err:
        load_image(path, CHAT_PIXELS)
    calm(str(err.value), "zeros.png", tmp_path)
    assert "the limit is 64 for PNG images, 250 for JPEG photos" in str(err.value)


def test_small_progressive_and_palette_images_still_open(tmp_path):
    """Progressive JPEGs are decoded whole (their decoder holds every coefficient); palette and 1-bit
    images are converted before a whole-factor reduction (which needs L/RGB-like modes)."""
    progressive = tmp_path / "progressive.jpg"
    Image.new("RGB", (3000, 2000), "red").save(progressive, progressive=True)
    palette = tmp_path / "palette.png"
    Image.new("P", (3000, 3000), 3).save(palette)
    bits = tmp_path / "bits.png"
    Image.new("1", (4000, 3000), 1).save(bits)
    for path in (progressive, palette, bits):
        image = load_image(path, 100_000)
        assert image.mode == "RGB" and image.size[0] * image.size[1] <= 100_000
        opened = open_image(path, at_least_pixels=100_000)  # reduced on the way, never below the request
        assert 100_000 <= opened.size[0] * opened.size[1] < path_pixels(path)


def path_pixels(path: Path) -> int:
    with Image.open(path) as im:
        return im.size[0] * im.size[1]


def test_an_embedded_image_is_bounded_too():
    from retrieval.loaders import open_image_bytes

    buf = io.BytesIO()
    Image.new("RGB", (4000, 4000), "green").save(buf, "JPEG")
    image = open_image_bytes(buf.getvalue(), "report.pdf", at_least_pixels=250_000)
    assert 250_000 <= image.size[0] * image.size[1] < 4 * 250_000 * 4
