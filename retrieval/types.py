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
    regions: tuple = ()  # where the passage lies on its thumbnail: (left, top, right, bottom) fractions


@dataclass(frozen=True)
class Hit:
    """A chunk found, its score (its best cosine similarity to the query, as shown on a card) and the
    evidence for it: its cosine in each space that found it (``cross``, ``text``; what the relevance
    thresholds compare, see ``Relevance``), its BM25 score when keywords found it, its rank after fusion."""

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
            "text": c.text, "thumbnail": c.thumbnail, "regions": [list(r) for r in c.regions],
            "score": round(self.score, 4),
            "evidence": {k: round(v, 4) if isinstance(v, float) else v for k, v in self.evidence.items()},
        }


SPACES = ("cross", "text")  # the vector spaces a hit's cosines come from


@dataclass(frozen=True)
class Relevance:
    """When a hit counts as relevant: its cosine in a space that found it reaches that space's threshold.

    The two spaces' cosines are not comparable (a sentence encoder gives related passages 0.4 and more; a
    CLIP/SigLIP text-image pair scores near 0.1 when it matches), so the larger of the two says little and
    each space has its own threshold (``python -m assistant calibrate`` proposes them); ``default`` serves a
    space without one. A hit's margin, its best cosine less its space's threshold, ranks hits across spaces:
    the closest to passing is what an abstention reports."""

    default: float = 0.0
    thresholds: dict = field(default_factory=dict)  # space -> threshold

    def threshold(self, space: str) -> float:
        return self.thresholds.get(space, self.default)

    def closest(self, hit: Hit) -> tuple[float, str | None]:
        """(margin, space) of the hit's best space; (score less the default, None) without per-space evidence."""
        margins = [(hit.evidence[s] - self.threshold(s), s) for s in SPACES if s in hit.evidence]
        return max(margins, default=(hit.score - self.default, None))

    def passes(self, hit: Hit) -> bool:
        return self.closest(hit)[0] >= 0


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
    notice: str | None = None  # what else the user should know (what de-identification removed)

    @property
    def ok(self) -> bool:
        return self.status != "failed"


PICTURES = ("image", "figure", "page")  # the chunk kinds that are pictures (have pixels)
VIEW_PIXELS = 1024 * 1024  # a picture as the model is shown it when it is a source (a thumbnail is 384 a side)


def view_of(thumbnail: str | Path) -> Path:
    """The view kept beside a picture's thumbnail (``<chunk>.jpg`` -> ``<chunk>.view.jpg``)."""
    path = Path(thumbnail)
    return path.with_name(f"{path.stem}.view.jpg")
