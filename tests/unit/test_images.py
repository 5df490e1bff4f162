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


def _photo(path, size=(4032, 3024), orientation=None):
    import numpy as np

    width, height = size
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[..., 0] = np.linspace(0, 255, width)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height)[:, None]
    pixels[: height // 4, : width // 4, 2] = 255  # a blue block top left: shows the orientation
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(path, quality=92, exif=exif)
    return path


def test_a_large_jpeg_is_decoded_reduced_to_the_same_picture(tmp_path):
    """A phone photo is decoded at a fraction of its size (JPEG DCT scaling) before the final resize:
    the same size and, within JPEG noise, the same pixels as decoding it whole."""
    import numpy as np

    from retrieval.loaders import open_image

    path = _photo(tmp_path / "phone.jpg")
    limit = 1024 * 28 * 28
    fast = load_image(path, limit)
    whole = fit_pixels(open_image(path), limit)
    assert fast.size == whole.size and fast.size[0] * fast.size[1] <= limit
    assert np.abs(np.asarray(fast, float) - np.asarray(whole, float)).mean() < 2.0


def test_a_reduced_jpeg_keeps_its_exif_orientation(tmp_path):
    path = _photo(tmp_path / "rotated.jpg", orientation=6)  # stored landscape, shown portrait
    image = load_image(path, 200_000)
    width, height = image.size
    assert height > width  # turned as the camera said
    top_right = image.getpixel((width - 5, 5))  # the blue block ends up top right after a 90° turn
    assert top_right[2] > 200
