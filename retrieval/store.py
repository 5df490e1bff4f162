"""The knowledge base: documents embedded into one Chroma collection on disk.

We embed and pass vectors ourselves (Chroma's default embedding function downloads a model), store the
embedder's name and dimension on the collection and refuse a mismatch, and derive every id from content
so that ingesting the same file twice changes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval import loaders
from retrieval.embedders import Embedder
from retrieval.errors import DocumentNotFoundError, EmbedderMismatchError, RetrievalError
from retrieval.types import Chunk, DocumentInfo, Hit, IngestReport

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
THUMBNAIL_SIZE = 384
ADD_BATCH = 256


class KnowledgeBase:
    def __init__(self, client, collection, embedder: Embedder, files_dir: Path, *,
                 chunk_size: int = 500, chunk_overlap: int = 50):
        self.client = client
        self.collection = collection
        self.embedder = embedder
        self.files_dir = files_dir
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap

    @classmethod
    def open(cls, data_dir: Path, embedder: Embedder, *, collection: str = "knowledge",
             ef_search: int = 128, **options) -> KnowledgeBase:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        data_dir = Path(data_dir)
        files_dir = data_dir / "files"
        files_dir.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(
            path=str(data_dir / "chroma"), settings=ChromaSettings(anonymized_telemetry=False)
        )
        coll = client.get_or_create_collection(
            collection,
            embedding_function=None,
            metadata={"embedder": embedder.name, "dim": embedder.dim},
            configuration={"hnsw": {"space": "cosine", "ef_search": ef_search, "ef_construction": 200}},
        )
        try:
            _check_embedder(coll, embedder, data_dir)
        except EmbedderMismatchError:
            client.close()
            raise
        return cls(client, coll, embedder, files_dir, **options)

    def close(self) -> None:
        self.client.close()

    # -- ingest ---------------------------------------------------------------------------------

    def ingest_paths(self, paths: Iterable[Path], progress: Progress | None = None,
                     sources: Sequence[str] | None = None) -> list[IngestReport]:
        """Ingest files and folders. ``sources`` names each path (uploads keep their own file name);
        without it folders are expanded and each file is known by its absolute path."""
        files = expand(paths) if sources is None else [Path(p) for p in paths]
        names = list(sources) if sources is not None else [None] * len(files)
        if len(names) != len(files):
            raise ValueError("give one source name per path")
        reports = []
        for i, (path, name) in enumerate(zip(files, names)):
            if progress:
                progress(i / max(len(files), 1), f"{name or path.name} ({i + 1}/{len(files)})")
            reports.append(self.ingest(path, source=name))
        if progress:
            progress(1.0, "done")
        return reports

    def ingest(self, path: Path, *, source: str | None = None) -> IngestReport:
        """Ingest one file. A failure is reported, never raised, so a batch goes on."""
        path = Path(path)
        source = source or str(path.resolve())
        try:
            return self._ingest(path, source)
        except RetrievalError as exc:
            return IngestReport(source=source, status="failed", error=str(exc))
        except OSError as exc:
            return IngestReport(source=source, status="failed", error=f"{path.name}: {exc.strerror or exc}")

    def _ingest(self, path: Path, source: str) -> IngestReport:
        doc_id = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
        existing = self._doc_ids_for(source)
        if doc_id in existing or self._has_doc(doc_id):
            return IngestReport(source=source, status="unchanged", doc_id=doc_id,
                                chunks=self._count(doc_id))
        parsed = loaders.parse(path, chunk_size=self.chunk_size, chunk_overlap=self.chunk_overlap)
        chunks, vectors = self._embed(parsed, doc_id, source, path)
        self._add(chunks, vectors)
        for old in existing:  # a changed file replaces its earlier version, after the new one is stored
            self.delete(old)
        status = "replaced" if existing else "added"
        return IngestReport(source=source, status=status, doc_id=doc_id, chunks=len(chunks))

    def _embed(self, parsed: loaders.Parsed, doc_id: str, source: str, path: Path):
        if parsed.kind == "image":
            thumb = self._save_thumbnail(parsed.image, doc_id)
            chunk = Chunk(_chunk_id(doc_id, 0, path.name), doc_id, source, "image", path.name,
                          "image", str(thumb))
            return [chunk], self.embedder.embed_images([parsed.image])
        chunks = [Chunk(_chunk_id(doc_id, i, p.text), doc_id, source, "text", p.text, p.locator)
                  for i, p in enumerate(parsed.passages)]
        return chunks, self.embedder.embed_texts([c.text for c in chunks])

    def _add(self, chunks: list[Chunk], vectors) -> None:
        for start in range(0, len(chunks), ADD_BATCH):
            batch = chunks[start : start + ADD_BATCH]
            self.collection.upsert(
                ids=[c.id for c in batch],
                embeddings=vectors[start : start + ADD_BATCH],
                documents=[c.text for c in batch],
                metadatas=[_metadata(c) for c in batch],
            )

    def _save_thumbnail(self, image: Image, doc_id: str) -> Path:
        thumb = image.copy()
        thumb.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE))
        target = self.files_dir / f"{doc_id}.jpg"
        thumb.save(target, "JPEG", quality=85)
        return target

    # -- query ----------------------------------------------------------------------------------

    def search(self, text: str | None = None, images: Sequence[Image] = (), *, k: int = 4) -> list[Hit]:
        """Search with the text and each image as queries; merge by best score per chunk."""
        queries = []
        if text and text.strip():
            queries.extend(self.embedder.embed_texts([text.strip()]))
        if images:
            queries.extend(self.embedder.embed_images(list(images)))
        total = self.collection.count()
        if not queries or total == 0:
            return []
        result = self.collection.query(
            query_embeddings=queries, n_results=min(k, total),
            include=["documents", "metadatas", "distances"],
        )
        best: dict[str, Hit] = {}
        for ids, docs, metas, dists in zip(result["ids"], result["documents"], result["metadatas"],
                                           result["distances"]):
            for cid, doc, meta, dist in zip(ids, docs, metas, dists):
                hit = Hit(_chunk_from(cid, doc, meta), 1.0 - float(dist))
                if cid not in best or hit.score > best[cid].score:
                    best[cid] = hit
        return sorted(best.values(), key=lambda h: h.score, reverse=True)[:k]

    def documents(self) -> list[DocumentInfo]:
        docs: dict[str, DocumentInfo] = {}
        for meta in self.collection.get(include=["metadatas"])["metadatas"]:
            info = docs.get(meta["doc_id"])
            chunks = info.chunks + 1 if info else 1
            docs[meta["doc_id"]] = DocumentInfo(meta["doc_id"], meta["source"], meta["kind"], chunks)
        return sorted(docs.values(), key=lambda d: d.source)

    def delete(self, doc_id: str) -> DocumentInfo:
        """Remove every vector and file a document produced."""
        info = next((d for d in self.documents() if d.doc_id == doc_id), None)
        if info is None:
            raise DocumentNotFoundError(f"No document with id '{doc_id}' in the knowledge base")
        self.collection.delete(where={"doc_id": doc_id})
        for file in self.files_dir.glob(f"{doc_id}.*"):
            file.unlink(missing_ok=True)
        return info

    def count(self) -> int:
        return self.collection.count()

    def _doc_ids_for(self, source: str) -> set[str]:
        got = self.collection.get(where={"source": source}, include=["metadatas"])
        return {m["doc_id"] for m in got["metadatas"]}

    def _has_doc(self, doc_id: str) -> bool:
        return bool(self.collection.get(where={"doc_id": doc_id}, limit=1)["ids"])

    def _count(self, doc_id: str) -> int:
        return len(self.collection.get(where={"doc_id": doc_id})["ids"])


def expand(paths: Iterable[Path]) -> list[Path]:
    """Files as given, and the supported files inside folders (recursively, hidden ones skipped)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*"))
                         if p.is_file() and loaders.is_supported(p)
                         and not any(part.startswith(".") for part in p.relative_to(path).parts))
        else:
            files.append(path)
    return files


def _check_embedder(collection, embedder: Embedder, data_dir: Path) -> None:
    meta = collection.metadata or {}
    if meta.get("embedder") != embedder.name or meta.get("dim") != embedder.dim:
        raise EmbedderMismatchError(
            f"The knowledge base in {data_dir} was built with the embedder '{meta.get('embedder')}' "
            f"(dimension {meta.get('dim')}), but '{embedder.name}' (dimension {embedder.dim}) is "
            "configured. Set ASSISTANT_RETRIEVAL__EMBEDDER back to the first, or point "
            "ASSISTANT_DATA_DIR at a new folder and ingest again."
        )


def _chunk_id(doc_id: str, index: int, content: str) -> str:
    return hashlib.sha256(f"{doc_id}\0{index}\0{content}".encode()).hexdigest()[:32]


def _metadata(chunk: Chunk) -> dict:
    return {"doc_id": chunk.doc_id, "source": chunk.source, "kind": chunk.kind,
            "locator": chunk.locator, "thumbnail": chunk.thumbnail or ""}


def _chunk_from(chunk_id: str, document: str | None, meta: dict) -> Chunk:
    return Chunk(chunk_id, meta["doc_id"], meta["source"], meta["kind"], document or "",
                 meta["locator"], meta.get("thumbnail") or None)
