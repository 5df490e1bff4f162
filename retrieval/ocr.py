"""Optical character recognition with RapidOCR (PP-OCR detection and recognition models for Chinese and
English, shipped inside the ``rapidocr-onnxruntime`` wheel: it works offline)."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

OCR_MAX_SIDE = 1600
MIN_CONFIDENCE = 0.6


@lru_cache(maxsize=1)
def _engine():
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


def read_text(image: Image) -> str:
    """The text in an image, line by line in reading order; empty when there is none worth keeping."""
    import numpy as np

    picture = image.convert("RGB")
    if max(picture.size) > OCR_MAX_SIDE:
        picture = picture.copy()
        picture.thumbnail((OCR_MAX_SIDE, OCR_MAX_SIDE))
    result, _ = _engine()(np.asarray(picture)[:, :, ::-1])  # RapidOCR takes BGR like OpenCV
    lines = [(box, text) for box, text, score in (result or []) if float(score) >= MIN_CONFIDENCE]
    lines.sort(key=lambda item: (round(item[0][0][1] / 10), item[0][0][0]))  # rows, then left to right
    text = "\n".join(t.strip() for _, t in lines if t.strip())
    return text if len(text.replace("\n", "")) >= 3 else ""
