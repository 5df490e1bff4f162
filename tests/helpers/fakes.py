"""Fakes for the edges only: a scripted vision model and a hashing embedder."""

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
