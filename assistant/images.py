"""Images on their way to a model: opened safely, oriented, and bounded in pixels."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import InputError
from retrieval.errors import RetrievalError
from retrieval.loaders import open_image

if TYPE_CHECKING:
    from PIL.Image import Image


def load_image(path: Path, max_pixels: int) -> Image:
    try:
        image = open_image(Path(path), at_least_pixels=max_pixels)
    except RetrievalError as exc:
        raise InputError(str(exc)) from exc
    return fit_pixels(image, max_pixels)


def fit_pixels(image: Image, max_pixels: int) -> Image:
    """Scale down (never up), keeping the aspect ratio, so that width * height <= max_pixels."""
    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    from PIL import Image as PILImage

    return image.resize(size, PILImage.Resampling.BICUBIC)
