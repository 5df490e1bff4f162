import pytest
from PIL import Image

from assistant.errors import InputError
from assistant.images import fit_pixels, load_image


@pytest.mark.parametrize("size", [(4000, 3000), (20000, 3), (640, 480), (28, 28)])
def test_fit_pixels_bounds_area_and_keeps_aspect(size):
    limit = 200_000
    width, height = fit_pixels(Image.new("RGB", size), limit).size
    if size[0] * size[1] <= limit:
        assert (width, height) == size
        return
    assert width * height <= limit
    assert width * height > 0.95 * limit  # not shrunk more than needed
    assert width / height == pytest.approx(size[0] / size[1], rel=0.05)


def test_load_image_resizes_and_converts(tmp_path):
    path = tmp_path / "big.png"
    Image.new("RGBA", (3000, 2000), (255, 0, 0, 128)).save(path)
    image = load_image(path, 100_000)
    assert image.mode == "RGB" and image.size[0] * image.size[1] <= 100_000


def test_unreadable_image_is_an_input_error(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="broken.png"):
        load_image(bad, 100_000)
