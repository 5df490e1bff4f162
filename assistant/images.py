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


def is_dicom(path: Path) -> bool:
    from retrieval.loaders import DICOM_SUFFIXES

    return Path(path).suffix.lower() in DICOM_SUFFIXES


def dicom_picture(path: Path, parser, key: bytes, folder: Path) -> tuple[Path, str]:
    """A DICOM file attached in the chat as what the conversation keeps instead: the de-identified picture
    (``retrieval.dicom``, in the parse worker ``parser``: hostile files cost a worker, not the app), written
    as a PNG in ``folder``; and the report of what was removed. The caller removes the PNG once kept."""
    import secrets

    from retrieval.loaders import ParseOptions

    path = Path(path)
    try:
        parsed = parser.parse(path, ParseOptions(ocr=False, deid_key=key))
    except RetrievalError as exc:
        raise InputError(str(exc)) from exc
    folder.mkdir(parents=True, exist_ok=True)
    picture = folder / f"dicom-{secrets.token_hex(8)}.png"
    parsed.pictures[0].image.save(picture, "PNG")
    return picture, parsed.notice or ""
