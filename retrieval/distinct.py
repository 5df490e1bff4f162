"""Near-duplicates do not fill the top k: a section repeated in several documents (a boilerplate
paragraph, two versions of one report) or the same picture ingested twice is shown once, as its
best-ranked copy, and the places it would have taken go to the next distinct hits.

Two passages are near-duplicates when their word 3-shingles (the BM25 tokens: words, and Chinese bigrams)
overlap by ``TEXT_OVERLAP`` (Jaccard) or more; two pictures when their cross-modal vectors' cosine is
``PICTURE_COSINE`` or more. A passage and a picture are never duplicates of each other."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from retrieval.lexical import tokens
from retrieval.types import PICTURES, Chunk

TEXT_OVERLAP = 0.8
PICTURE_COSINE = 0.98


def shingles(text: str, size: int = 3) -> frozenset:
    words = tokens(text)
    if len(words) < size:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i : i + size]) for i in range(len(words) - size + 1))


def overlap(a: frozenset, b: frozenset) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def distinct(ranked: Sequence[str], chunks: dict[str, Chunk], k: int,
             vectors: Callable[[list[str]], dict[str, np.ndarray]]) -> list[str]:
    """The first ``k`` of ``ranked`` with each near-duplicate of a hit before it left out. ``vectors``
    gives the pictures' cross-modal vectors (read once, for the pictures among the candidates)."""
    pictures = [cid for cid in ranked if chunks[cid].kind in PICTURES]
    picture_vectors = vectors(pictures) if pictures else {}
    kept: list[str] = []
    kept_text: list[frozenset] = []
    kept_pictures: list[np.ndarray] = []
    for cid in ranked:
        if len(kept) == k:
            break
        chunk = chunks[cid]
        if chunk.kind in PICTURES:
            vector = picture_vectors.get(cid)
            if vector is not None:
                if any(float(vector @ other) >= PICTURE_COSINE for other in kept_pictures):
                    continue
                kept_pictures.append(vector)
        else:
            marks = shingles(chunk.text)
            if any(overlap(marks, other) >= TEXT_OVERLAP for other in kept_text):
                continue
            kept_text.append(marks)
        kept.append(cid)
    return kept
