"""Fakes for the edges only: a scripted vision model, a hashing embedder, and a toy cross-modal embedder
with a genuine shared space (colour and shape words, and an image's colours and shape)."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator, Sequence

import numpy as np

from assistant.lifecycle import Capabilities, Ready
from assistant.types import ChatTurn, GenerationParams
from retrieval.embedders import normalise


class ScriptedModel(Ready):
    """A ``VisionChatModel`` that streams a fixed answer and records what it was asked."""

    name = "scripted"
    capabilities = Capabilities()

    def image_frame(self, image) -> None:
        return None

    def __init__(self, answer: str = "A red square [1].", *, chunk: int = 4):
        self.answer = answer
        self.chunk = chunk
        self.calls: list[list[ChatTurn]] = []
        self.closed = threading.Event()
        self.pieces_sent = 0

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]:
        self.calls.append(list(turns))
        self.closed.clear()
        return self._stream(params)

    def _stream(self, params: GenerationParams) -> Iterator[str]:
        try:
            limit = params.max_new_tokens * self.chunk
            text = self.answer[:limit]
            for i in range(0, len(text), self.chunk):
                self.pieces_sent += 1
                yield text[i : i + self.chunk]
        finally:
            self.closed.set()


_TOKENS = re.compile(r"[\u3400-\u9fff]|[^\W\u3400-\u9fff]+|[^\w\s]")


class HashingEmbedder:
    """Deterministic bag-of-words hashing for text; a colour histogram, hashed, for images.

    Shared words give similar text vectors; similar colours give similar image vectors. Images use
    the last 8 dimensions and text the others, so a text query never ranks an image by accident.
    """

    def __init__(self, dim: int = 256, name: str = "hashing-256", *, max_tokens: int | None = None):
        self.dim = dim
        self.name = name
        self.max_tokens = max_tokens  # a window in "tokens": words, and each CJK character alone

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(_TOKENS.findall(text)) for text in texts]

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()) or [""]:
                rows[i, self._bucket(word) % (self.dim - 8)] += 1.0
        return normalise(rows)

    def embed_images(self, images) -> np.ndarray:
        rows = np.zeros((len(images), self.dim), dtype=np.float32)
        for i, image in enumerate(images):
            small = np.asarray(image.convert("RGB").resize((8, 8)), dtype=np.float32) / 255.0
            rows[i, self.dim - 8 : self.dim - 5] = 0.1 + small.reshape(-1, 3).mean(axis=0)
            rows[i, self.dim - 5] = 0.1
        return normalise(rows)

    def _bucket(self, token: str) -> int:
        return int.from_bytes(hashlib.sha256(token.encode()).digest()[:4], "little") % self.dim


# name: (RGB, Chinese word)
COLOURS = {"red": ((220, 30, 30), "红"), "green": ((30, 160, 60), "绿"), "blue": ((30, 60, 220), "蓝"),
           "yellow": ((240, 220, 30), "黄"), "orange": ((245, 140, 20), "橙"), "purple": ((130, 40, 170), "紫"),
           "pink": ((245, 150, 190), "粉"), "brown": ((120, 70, 30), "棕"), "black": ((15, 15, 15), "黑"),
           "grey": ((128, 128, 128), "灰"), "white": ((250, 250, 250), "白")}
SHAPES = {"circle": ("circle", "round", "disc", "圆"), "square": ("square", "rectangle", "方"),
          "triangle": ("triangle", "三角"), "text": ("text", "words", "writing", "letters", "sign", "page", "文字")}


class SharedSpaceEmbedder:
    """A toy cross-modal embedder with a genuine shared space: colour and shape words in text (English and
    Chinese), and an image's object colour, background colour and shape (square, circle, triangle, or text:
    many thin strokes), land on the same dimensions. Everything else (other words; the image's own pixels)
    is hashed with random signs into the remaining dimensions, so unrelated text and images have small
    cosines of either sign, as a real CLIP/SigLIP gives."""

    name = "toy-shared-space"

    def __init__(self, dim: int = 64, *, noise: float = 0.6):
        self.dim = dim
        self.noise = noise  # how much of a vector is not shared: its hashed part's weight
        self.concepts = [*COLOURS, *SHAPES]
        self._private = dim - len(self.concepts)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            lowered = text.lower().replace("gray", "grey")
            words = re.findall(r"[a-z]+", lowered)
            for j, name in enumerate(self.concepts):
                spelled = (name, COLOURS[name][1]) if name in COLOURS else SHAPES[name]
                rows[i, j] = any(w in words if w.isascii() else w in lowered for w in spelled)
            tokens = _TOKENS.findall(lowered)
            for token in tokens:  # the rest of the text: a part of fixed size, however long the text
                self._hashed(rows[i], token, self.noise / max(len(tokens), 1) ** 0.5)
        return normalise(rows + 1e-6)

    def embed_images(self, images) -> np.ndarray:
        rows = np.zeros((len(images), self.dim), dtype=np.float32)
        for i, image in enumerate(images):
            pixels = np.asarray(image.convert("RGB").resize((128, 128)), dtype=np.float32)
            background = np.median(np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]), axis=0)
            distance = np.abs(pixels - background).sum(axis=2)
            mask = distance > 90
            rows[i, self._colour(background)] += 0.4 if mask.mean() > 0.01 else 1.0
            if mask.mean() > 0.01:
                core = distance >= 0.8 * distance.max()  # the object's own colour, not its blurred edges
                rows[i, self._colour(pixels[core].mean(axis=0))] += 1.0
                rows[i, self.concepts.index(self._shape(mask))] += 0.8
            self._hashed(rows[i], hashlib.sha256(pixels.astype(np.uint8).tobytes()).hexdigest(), 2 * self.noise)
        return normalise(rows)

    def _colour(self, rgb) -> int:
        names = list(COLOURS)
        return int(np.argmin([np.linalg.norm(np.asarray(COLOURS[n][0]) - rgb) for n in names]))

    @staticmethod
    def _shape(mask: np.ndarray) -> str:
        """Text is thin strokes (most of its pixels on an edge); a shape fills its bounding box by 1 (square),
        pi/4 (circle) or 1/2 (triangle)."""
        inner = mask[1:-1, 1:-1] & mask[:-2, 1:-1] & mask[2:, 1:-1] & mask[1:-1, :-2] & mask[1:-1, 2:]
        if 1 - inner.sum() / mask.sum() > 0.4:
            return "text"
        rows, cols = np.nonzero(mask)
        fill = mask.sum() / ((np.ptp(rows) + 1) * (np.ptp(cols) + 1))
        return "square" if fill > 0.92 else "circle" if fill > 0.68 else "triangle"

    def _hashed(self, row: np.ndarray, token: str, weight: float) -> None:
        digest = hashlib.sha256(token.encode()).digest()
        for k in range(3):  # a few signed buckets each, so that hashed parts rarely cancel or align
            bucket = len(self.concepts) + int.from_bytes(digest[4 * k : 4 * k + 3], "little") % self._private
            row[bucket] += weight * (1.0 if digest[4 * k + 3] & 1 else -1.0) / 3 ** 0.5
