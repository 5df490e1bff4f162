"""The knowledge base as the assistant sees it: loaded in the background, retrieval errors translated
into ``KnowledgeError`` once, here."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path

from assistant.errors import KnowledgeError
from assistant.images import load_image
from assistant.lifecycle import Loaded
from assistant.loading import Background
from retrieval import DocumentInfo, Hit, IngestReport, RetrievalError
from retrieval.store import KnowledgeBase

Progress = Callable[[float, str], None]


@contextmanager
def translated_errors():
    try:
        yield
    except RetrievalError as exc:
        raise KnowledgeError(str(exc)) from exc


class Knowledge(Loaded):
    """Closing waits for a load in progress, then closes the knowledge base cleanly (no crash probe next
    time)."""

    def __init__(self, loader: Background[KnowledgeBase], *, max_pixels: int = 1024 * 1024):
        self.loader = loader
        self.max_pixels = max_pixels

    @classmethod
    def ready(cls, kb: KnowledgeBase) -> Knowledge:
        """Wrap an already open knowledge base (tests, the CLI)."""
        loader = Background("knowledge base", lambda: kb, close=KnowledgeBase.close)
        loader.get()
        return cls(loader)

    def _kb(self) -> KnowledgeBase:
        with translated_errors():
            return self.loader.get()

    def ingest(self, paths: Iterable[Path], progress: Progress | None = None,
               names: Sequence[str] | None = None) -> list[IngestReport]:
        """Ingest files and folders; ``names`` gives display names for uploads (one per path)."""
        kb = self._kb()
        with translated_errors():
            return kb.ingest_paths(paths, progress, sources=names)

    def search(self, text: str | None = None, images: Sequence[Path] = (), *, k: int = 4) -> list[Hit]:
        kb = self._kb()
        pictures = [load_image(p, self.max_pixels) for p in images]
        with translated_errors():
            return kb.search(text, pictures, k=k)

    def documents(self) -> list[DocumentInfo]:
        kb = self._kb()
        with translated_errors():
            return kb.documents()

    def delete(self, doc_id: str) -> DocumentInfo:
        kb = self._kb()
        with translated_errors():
            return kb.delete(doc_id)

    def destroy(self) -> None:
        """Remove the knowledge base for good: its record, index (its collections on a Chroma server) and
        files."""
        kb = self._kb()
        with translated_errors():
            kb.destroy()

    def embedder(self):
        """The cross-modal embedder (an ``Embedder``) once the knowledge base is open; None before that (never
        waits for it), or when there is none."""
        return self._kb().embedder if self.loader.ready else None

    def files_dir(self) -> Path | None:
        """The folder of its thumbnails; None when it could not be opened."""
        try:
            return self._kb().files_dir
        except KnowledgeError:
            return None

    def count(self) -> int:
        return self._kb().count()
