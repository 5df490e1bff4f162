"""Value types shared by loaders, the knowledge base and its callers."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Kind = Literal["text", "image"]


@dataclass(frozen=True)
class Chunk:
    """One embedded unit: a passage of text or a whole image."""

    id: str
    doc_id: str
    source: str
    kind: Kind
    text: str
    locator: str
    thumbnail: str | None = None


@dataclass(frozen=True)
class Hit:
    """A chunk found, its score (its best cosine similarity to the query: what the relevance threshold
    compares) and the evidence for it: its cosine in each space that found it (``cross``, ``text``), its
    BM25 score when keywords found it, and its rank after fusion."""

    chunk: Chunk
    score: float
    evidence: dict = field(default_factory=dict, compare=False)

    @property
    def source(self) -> str:
        return self.chunk.source

    def to_dict(self) -> dict:
        c = self.chunk
        return {
            "id": c.id, "doc_id": c.doc_id, "source": c.source, "kind": c.kind, "locator": c.locator,
            "text": c.text, "thumbnail": c.thumbnail, "score": round(self.score, 4),
            "evidence": {k: round(v, 4) if isinstance(v, float) else v for k, v in self.evidence.items()},
        }


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    source: str
    kind: Kind
    chunks: int
    added: float = 0.0  # when it was stored (seconds since the epoch)
    bytes: int | None = None  # the file's size; None for documents stored before sizes were kept
    pages: int | None = None  # a PDF's pages (None for other kinds)


IngestStatus = Literal["added", "unchanged", "replaced", "failed"]


@dataclass(frozen=True)
class IngestReport:
    source: str
    status: IngestStatus
    doc_id: str | None = None
    chunks: int = 0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status != "failed"


PICTURES = ("image", "figure", "page")  # the chunk kinds that are pictures (have pixels)
VIEW_PIXELS = 1024 * 1024  # a picture as the model is shown it when it is a source (a thumbnail is 384 a side)


def view_of(thumbnail: str | Path) -> Path:
    """The view kept beside a picture's thumbnail (``<chunk>.jpg`` -> ``<chunk>.view.jpg``)."""
    path = Path(thumbnail)
    return path.with_name(f"{path.stem}.view.jpg")
