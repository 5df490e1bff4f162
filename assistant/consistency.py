"""Multimodal consistency: does an answer agree with the images it is about?

The images an answer is about are the user's images in the question and the pictures among the sources it
cites (figures, page renders, image documents). Agreement is measured in the knowledge base's cross-modal
space (``Embedder``: CLIP/SigLIP family, text and images in one normalised space).

Raw cosines there cannot be compared across models, nor read as a probability: a SigLIP text–image cosine
of a good caption is often 0.1–0.2, a CLIP one 0.3. So the score is relative to a fixed bank of unrelated
captions (``BANK``: generic English and Chinese captions, "a photo of a cat", "一张风景照片", ...):

- an image's score is the share of bank captions whose cosine to the image is below the answer's (ties
  count half): 1.0 when the answer fits the image better than every unrelated caption, about 0.5 when it
  fits no better than an unrelated caption, near 0 when it fits worse;
- the answer's score is the minimum over its images (the worst-matching image is what a warning is
  about); each image's score is kept.

Before embedding, citation marks (``[2]``) and box markup (``bbox_2d`` JSON, keeping its labels;
``<box>``/``<ref>`` tags) are removed. A long answer is embedded in pieces (the text encoders read 64–77
tokens) whose mean is used. There is no score (``None``, with the reason) without a cross-modal embedder,
without images, or for an abstention or an empty answer. Below ``ASSISTANT_RETRIEVAL__CONSISTENCY_MIN`` the
answer is flagged: "this answer may not match the image".
"""

from __future__ import annotations

import json
import re
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import InputError
from assistant.grounding import _JSON_CANDIDATE  # where boxes are found is where they are removed
from assistant.images import load_image

BANK = (
    "a photo of a cat", "a photo of a dog", "a landscape with mountains and a lake", "a city street at night",
    "a plate of food on a table", "a person riding a bicycle", "a page of printed text",
    "a chart with bars and lines", "a car parked by the road", "a bird on a branch",
    "a group of people in a meeting", "a screenshot of a website",
    "一张风景照片", "一只猫的照片", "一页印刷的文字", "城市街道的夜景", "桌上的一盘食物", "一个人在骑自行车",
    "一张数据图表", "停在路边的汽车", "树枝上的小鸟", "会议室里的一群人", "一张网页截图", "海边的沙滩和海浪",
)
IMAGE_PIXELS = 512 * 512  # the encoders see 224-384 pixels a side: a larger decode is wasted
PIECE_CHARS = 200  # about what a 64-token text window holds
MAX_PIECES = 8

_CITATION = re.compile(r"\[\d{1,3}\]")
_TAGS = re.compile(r"<box>.*?</box>|<\|box_start\|>.*?<\|box_end\|>|</?ref>|<\|object_ref_(?:start|end)\|>"
                   r"|```(?:json)?", re.S)
_SENTENCE = re.compile(r"(?<=[.!?。！？；;])\s*")


@dataclass(frozen=True)
class ImageScore:
    """One image's agreement: ``kind`` "image" (the user's, ``number`` counted from 1) or "source" (the
    cited source ``number``)."""

    kind: str
    number: int
    score: float


@dataclass(frozen=True)
class Consistency:
    """An answer's agreement with its images (``score`` None: not measured, ``reason`` says why)."""

    score: float | None
    images: tuple[ImageScore, ...] = ()
    threshold: float = 0.0
    reason: str = "measured"  # or: abstained, empty answer, no images, no cross-modal embedder, failed

    @property
    def flagged(self) -> bool:
        """Low enough to warn that the answer may not match the image."""
        return self.score is not None and self.score < self.threshold

    def to_dict(self) -> dict:
        return {"score": None if self.score is None else round(self.score, 4), "flagged": self.flagged,
                "threshold": self.threshold, "reason": self.reason,
                "images": [{"kind": i.kind, "number": i.number, "score": round(i.score, 4)} for i in self.images]}


def answer_text(text: str) -> str:
    """The answer as prose: citation marks and box markup removed (a box's label kept)."""
    text = _JSON_CANDIDATE.sub(_box_labels, text)
    text = _CITATION.sub(" ", _TAGS.sub(" ", text))
    return " ".join(text.split())


def _box_labels(match: re.Match) -> str:
    try:
        data = json.loads(match.group(0))
    except ValueError:
        return match.group(0)
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(i, dict) and "bbox_2d" in i for i in items):
        return match.group(0)
    return " " + ", ".join(str(i.get("label", "")) for i in items if i.get("label")) + " "


def image_score(answer: np.ndarray, image: np.ndarray, bank: np.ndarray) -> float:
    """The share of bank captions the answer beats on this image (ties half)."""
    mine, theirs = float(answer @ image), bank @ image
    ties = np.isclose(theirs, mine, rtol=0.0, atol=1e-6)
    return float((((theirs < mine) & ~ties).sum() + 0.5 * ties.sum()) / len(theirs))


def measure(embedder, text: str, images: Sequence[tuple[str, int, Path]], *, threshold: float = 0.0) -> Consistency:
    """The answer ``text``'s agreement with ``images`` ((kind, number, path) each) in ``embedder``'s space (an
    abstention is not measured: the pipeline says so without asking)."""
    prose = answer_text(text)
    reason = ("empty answer" if not prose else "no images" if not images
              else "no cross-modal embedder" if embedder is None else None)
    if reason is None:
        pictures = _open(images)
        reason = None if pictures else "no images"
    if reason is not None:
        return Consistency(None, threshold=threshold, reason=reason)
    vectors = embedder.embed_images([picture for *_, picture in pictures])
    answer = _text_vector(embedder, prose)
    bank = bank_vectors(embedder)
    scores = tuple(ImageScore(kind, number, image_score(answer, v, bank))
                   for (kind, number, _), v in zip(pictures, vectors))
    return Consistency(min(s.score for s in scores), scores, threshold)


def _open(images: Sequence[tuple[str, int, Path]]) -> list[tuple]:
    """The images that can be read (one deleted meanwhile is left out), bounded in pixels."""
    opened = []
    for kind, number, path in images:
        try:
            opened.append((kind, number, load_image(path, IMAGE_PIXELS)))
        except InputError:
            continue
    return opened


def _text_vector(embedder, prose: str) -> np.ndarray:
    pieces = _pieces(prose)
    mean = embedder.embed_texts(pieces).mean(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def _pieces(prose: str) -> list[str]:
    """Sentences packed into pieces a text encoder reads whole (a sentence longer than that is cut)."""
    pieces: list[str] = []
    for sentence in filter(None, _SENTENCE.split(prose)):
        for start in range(0, len(sentence), PIECE_CHARS):
            part = sentence[start : start + PIECE_CHARS]
            if pieces and len(pieces[-1]) + len(part) < PIECE_CHARS:
                pieces[-1] += " " + part
            else:
                pieces.append(part)
    return pieces[:MAX_PIECES]


_BANKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_BANKS_LOCK = threading.Lock()


def bank_vectors(embedder) -> np.ndarray:
    """The bank's captions in ``embedder``'s space, embedded once per embedder."""
    with _BANKS_LOCK:
        vectors = _BANKS.get(embedder)
    if vectors is None:
        vectors = embedder.embed_texts(list(BANK))
        with _BANKS_LOCK:
            _BANKS[embedder] = vectors
    return vectors
