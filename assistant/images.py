"""Images on their way to a model: opened safely (a bounded decode), oriented, and bounded in pixels."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import InputError
from retrieval.errors import RetrievalError
from retrieval.loaders import fit, open_image

if TYPE_CHECKING:
    from PIL.Image import Image


def load_image(path: Path, max_pixels: int) -> Image:
    """The image at about ``max_pixels``, decoded no larger than needed. Problems are ``InputError``s in
    the knowledge base's words (``"<file name>: <problem>"``)."""
    try:
        image = open_image(Path(path), at_least_pixels=max_pixels)
    except RetrievalError as exc:
        raise InputError(str(exc)) from exc
    return fit_pixels(image, max_pixels)


def fit_pixels(image: Image, max_pixels: int) -> Image:
    """Scale down (never up), keeping the aspect ratio, so that width * height <= max_pixels."""
    return fit(image, max_pixels)
