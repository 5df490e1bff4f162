"""The knowledge base: documents parsed, chunked, embedded and searchable in four directions.

- The durable record (``records.py``, SQLite with WAL) holds documents, chunks, their vectors and a BM25
  index; a document is committed there only after Chroma has acknowledged its vectors.
- Chroma (``index.py``) holds two derived indexes: ``cross`` (a CLIP/SigLIP space with images, figures,
  page renders and the heads of text chunks) and ``text`` (a sentence encoder over passages). On open it
  is checked against the record and rebuilt from it when broken.
- A query (text and/or images) is run against every index that fits it, OCR reads text in query images,
  and the rankings are fused by reciprocal rank fusion. A hit's ``score`` is its best cosine similarity
  to the query, which the caller's relevance threshold compares against.

Concurrency. Inside a process, threads (Gradio's handlers: chat, ingest, delete, search) share one
``KnowledgeBase``: every write (the index and the record together) runs under one lock, the slow parts of
an ingest (parsing, OCR, embedding) outside it; reads use a SQLite connection per thread and never wait
for a write; parsing and OCR go to a pool of worker processes whose replies cannot be confused.

Between processes, one writes at a time. With a local index a file lock is held while the knowledge base
is open for writing; another process can still open it read-only (``open_reader``: the CLI's ``docs``,
``search`` and ``ask`` beside the app), reading the committed record with exact vector search. With the
index in a Chroma server (``chroma_url``) several processes (app replicas, the CLI) open the same data
directory at once: they read freely (SQLite in WAL mode, the server), and each write (ingest, delete, the
consistency check on open) takes the same lock for its duration, waiting for another's.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from retrieval import loaders
from retrieval.chunking import split_passages
from retrieval.embedders import Embedder, TextEmbedder, with_a_core_given
from retrieval.errors import (
    DocumentNotFoundError,
    EmbedderMismatchError,
    KnowledgeBaseBusyError,
    RetrievalError,
    StoreTooLargeError,
)
from retrieval.distinct import distinct
from retrieval.fusion import reciprocal_rank_fusion
from retrieval.index import CLEAN_MARKER, ExactIndex, VectorIndex
from retrieval.records import Entry, Records
from retrieval.reembed import HEAD_CHARS, Progress, changed_spaces, reembed
from retrieval.types import VIEW_PIXELS, view_of
from retrieval.types import Chunk, DocumentInfo, Hit, IngestReport
from retrieval.worker import ParsePool

if TYPE_CHECKING:
    from PIL.Image import Image

log = logging.getLogger(__name__)
Progress = Callable[[float, str], None]
STAGES = ("parse", "OCR", "embed", "store")
# a batch parses and OCRs its next files (one at a time, in one of the shared parse workers) while one is
# embedded, as long as the files read and waiting to be embedded hold less than this in text and pixels
READ_AHEAD_BYTES = 256 * 2**20


class KnowledgeBase:
    def __init__(self, data_dir: Path, records: Records, index: VectorIndex, lock, embedder: Embedder | None,
                 text_embedder: TextEmbedder | None, parser, *, chunk_size: int = 800,
                 chunk_overlap: int = 100, ocr: bool = True, max_pages: int = 1000,
                 max_store_bytes: int = 20 * 10**9, ocr_queries: bool = True, shared: bool = False,
                 write_wait: float = 600.0, readonly: bool = False, deid_key: bytes = b""):
        self.data_dir = data_dir
        self.readonly = readonly  # opened beside another process's writer: reads only
        self._write = threading.RLock()  # one writing thread at a time in this process
        self.shared = shared  # the index is a Chroma server; the lock is taken per write
        self.write_wait = write_wait
        self.files_dir = data_dir / "files"
        self.records = records
        self.index = index
        self.lock = lock
        self.embedder = embedder
        self.text_embedder = text_embedder
        self.parser = parser
        self.chunk_size = chunk_size
        self.chunk_overlap = chunk_overlap
        self.options = loaders.ParseOptions(ocr=ocr, max_pages=max_pages, deid_key=deid_key)
        self.max_store_bytes = max_store_bytes
        self.ocr_queries = ocr_queries
        # one thread for the life of the knowledge base (its SQLite reader is kept, and closed with it)
        self._ahead = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-read-ahead")
        # and one that stores a batch's files, each while the next is embedded (a store waits on the disk)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kb-writer")

    @classmethod
    def open(cls, data_dir: Path, embedder: Embedder | None, *, text_embedder: TextEmbedder | None = None,
             collection: str = "knowledge", ef_search: int = 512, parser=None,
             max_store_bytes: int = 20 * 10**9, chroma_url: str | None = None, write_wait: float = 600.0,
             progress: Progress | None = None, **options) -> KnowledgeBase:
        """Open to write. A knowledge base built with other embedders is re-embedded from its record first
        (``progress(done, total)`` is told as it goes), unless its index is a shared server's."""
        from filelock import FileLock

        data_dir = Path(data_dir)
        (data_dir / "files").mkdir(parents=True, exist_ok=True)
        # held by the knowledge base, not by a thread: opened in a loader thread, it may be closed in another
        lock = FileLock(str(data_dir / "knowledge.lock"), thread_local=False)
        shared = bool(chroma_url)
        _acquire(lock, data_dir, write_wait if shared else 0, shared)
        try:
            records = Records(data_dir / "records.sqlite3")
            changed = changed_spaces(records, embedder, text_embedder) if not shared else {}
            if changed:
                reembed(records, data_dir / "files", embedder, text_embedder, changed, progress)
                shutil.rmtree(data_dir / "chroma", ignore_errors=True)  # derived: refilled below from the record
            _check_embedders(records, embedder, text_embedder, data_dir)
            marker = data_dir / CLEAN_MARKER
            index = VectorIndex(data_dir / "chroma", collection=collection, ef_search=ef_search,
                                max_bytes=max_store_bytes, url=chroma_url)
            index.open(records, clean=shared or marker.exists())
            if not shared:
                marker.unlink(missing_ok=True)  # written back by close(): its absence means a crash
            if records.scrub_pending:  # a delete ended with the process before its traces were removed
                _scrub(index, records)
            kb = cls(data_dir, records, index, lock, embedder, text_embedder, parser or ParsePool(),
                     max_store_bytes=max_store_bytes, shared=shared, write_wait=write_wait, **options)
            kb.remove_orphan_files()
        except BaseException:
            lock.release()
            raise
        if shared:
            lock.release()  # from here on, taken per write
        return kb

    @classmethod
    def open_reader(cls, data_dir: Path, embedder: Embedder | None, *, text_embedder: TextEmbedder | None = None,
                    parser=None, **options) -> KnowledgeBase:
        """Open for reading only, beside a process that writes (the app): no lock is taken and nothing is
        written; search is exact, over the vectors in the committed record."""
        data_dir = Path(data_dir)
        if not (data_dir / "records.sqlite3").exists():
            raise DocumentNotFoundError(f"There is no knowledge base in {data_dir} yet; ingest documents first.")
        records = Records(data_dir / "records.sqlite3", readonly=True)
        try:
            _check_embedders(records, embedder, text_embedder, data_dir)
        except BaseException:
            records.close()
            raise
        return cls(data_dir, records, ExactIndex(records), None, embedder, text_embedder,
                   parser or ParsePool(size=1), readonly=True, **options)

    @classmethod
    def open_for(cls, data_dir: Path, embedder: Embedder | None, *, write: bool, **options) -> KnowledgeBase:
        """Open to write (taking the lock), or to read: beside a writer when another process has it."""
        if write:
            return cls.open(data_dir, embedder, **options)
        try:
            return cls.open(data_dir, embedder, **options)
        except KnowledgeBaseBusyError:
            log.info("the knowledge base in %s is open in another process; reading its record", data_dir)
            keep = {"text_embedder", "parser", "chunk_size", "chunk_overlap", "ocr", "max_pages"}
            return cls.open_reader(data_dir, embedder, **{k: v for k, v in options.items() if k in keep})

    @contextlib.contextmanager
    def _writing(self):
        """A write: one thread at a time here; with a shared index also under the file lock (waiting up to
        ``write_wait`` for another process's write); locally the file lock is held for the whole session."""
        if self.readonly:
            raise KnowledgeBaseBusyError(
                f"The knowledge base in {self.data_dir} is open for writing in another process (the app?), "
                "so this one may only read it. Add or delete documents there, or stop it first.")
        with self._write:
            if self.records is None:
                raise RetrievalError("The knowledge base has been closed (the app is shutting down).")
            if not self.shared:
                yield
                return
            _acquire(self.lock, self.data_dir, self.write_wait, True)
            try:
                yield
            finally:
                self.lock.release()

    def remove_orphan_files(self) -> int:
        """Thumbnails and views written for a document whose ingest never committed (a crash) are removed."""
        known = {Path(t).name for (t,) in self.records.read.execute(
            "SELECT thumbnail FROM chunks WHERE thumbnail IS NOT NULL")}
        known |= {view_of(name).name for name in known}
        orphans = [f for f in self.files_dir.iterdir() if f.is_file() and f.name not in known]
        for f in orphans:
            f.unlink(missing_ok=True)
        return len(orphans)

    def close(self) -> None:
        """Close cleanly (the next open skips the crash probe); waits for a write in progress."""
        with self._write:
            if self.records is None:
                return
            self._shut()
            if not (self.shared or self.readonly):
                (self.data_dir / CLEAN_MARKER).touch()
                self.lock.release()

    def destroy(self) -> None:
        """Remove this knowledge base for good (a user's or a named knowledge base deleted): close it, delete
        its collections when they are in a Chroma server (every process sharing them loses them), and
        remove its data directory (record, local index, thumbnails, lock). Waits for a write in progress;
        the object is closed afterwards. A Chroma server keeps the deleted collections' files on its own
        disk until its operator removes them (see ``VectorIndex.destroy``)."""
        with self._writing():
            self.index.destroy()
            self._shut()
            shutil.rmtree(self.data_dir)  # the lock file goes too; it is held until the end
        if not self.shared:
            self.lock.release()

    def _shut(self) -> None:
        # not waited for: a read in flight may need the write lock held here; after this it finds the
        # knowledge base closed, and no one waits for its result
        self._ahead.shutdown(wait=False, cancel_futures=True)
        self._writer.shutdown(wait=False, cancel_futures=True)
        self.parser.close()
        self.index.close()
        self.records.close()
        self.records = None

    @property
    def closed(self) -> bool:
        return self.records is None

    # -- ingest ---------------------------------------------------------------------------------

    def ingest_paths(self, paths: Iterable[Path], progress: Progress | None = None,
                     sources: Sequence[str] | None = None) -> list[IngestReport]:
        """Ingest files and folders. ``sources`` names each path (uploads keep their own file name);
        without it folders are expanded and each file is known by its absolute path."""
        files = expand(paths) if sources is None else [Path(p) for p in paths]
        names = list(sources) if sources is not None else [None] * len(files)
        if len(names) != len(files):
            raise ValueError("give one source name per path")
        reports: list[IngestReport] = []

        def read(i: int, note: Callable[[object], None]) -> IngestReport | _Read:  # in the read-ahead thread
            path, source = files[i], _source(files[i], names[i])
            return self._reported(path, source, lambda: self._read(path, source, _silent, pages=note))

        ahead = _ReadAhead(self._ahead, len(files), READ_AHEAD_BYTES, read)
        storing: tuple[Future, _Embedded] | None = None  # the file before, stored while this one is embedded
        pending: _Embedded | None = None  # embedded, not yet handed to the writer
        try:
            for i, path in enumerate(files):
                step = _stepper(progress, i, len(files), names[i] or path.name) or _silent
                told: list = []  # a scan's pages read, told while they are read (45 pages take a minute)

                def pages(read: tuple[int, int], step=step, told=told) -> None:
                    told.append(read)
                    step("OCR", read)

                got = ahead.take(i, pages if progress else None)
                if isinstance(got, _Read):  # its parse and OCR are done: told now, in this thread
                    if not told:
                        step("parse")
                        if got.read_by_ocr:
                            step("OCR")
                    embed = lambda got=got, step=step: self._reported(path, got.source,  # noqa: E731
                                                                       lambda: self._embedded(got, step))
                    # while the next file is parsed beside it, embedded with a core left to the parse
                    got = with_a_core_given(embed) if ahead.reading else embed()
                if isinstance(got, _Embedded):
                    pending = got
                if storing is not None:  # reports in the files' order; one store waiting at most
                    reports.append(self._collected(storing, pending))
                    storing = None
                if pending is None:
                    reports.append(got)
                    continue
                step("store")
                store = lambda done=pending: self._reported(done.path, done.source,  # noqa: E731
                                                            lambda: self._stored(done))
                try:
                    storing, pending = (self._writer.submit(contextvars.copy_context().run, store), pending), None
                except RuntimeError:  # the knowledge base closed meanwhile: it fails here as it would there
                    storing, pending = (_done(store), pending), None
            if storing is not None:
                reports.append(self._collected(storing, None))
                storing = None
        finally:  # a batch stopped (a full store, a busy one, the knowledge base closed): files not begun are
            ahead.stop()  # not read, and the pictures written for files not stored are removed
            if storing is not None:
                futures_wait([storing[0]])
                future = storing[0]
                if future.cancelled() or future.exception() is not None or future.result().status == "failed":
                    self._discard(storing[1])
            if pending is not None:
                self._discard(pending)
        if progress:
            progress(1.0, "done")
        return reports

    def ingest(self, path: Path, *, source: str | None = None,
               progress: Callable[[str], None] | None = None) -> IngestReport:
        """Ingest one file. A failure is reported, never raised, so a batch goes on."""
        path = Path(path)
        source = _source(path, source)
        stage = progress or _silent
        return self._reported(path, source, lambda: self._finish(self._read(path, source, stage), stage))

    def _reported(self, path: Path, source: str, work: Callable[[], IngestReport | _Read]) -> IngestReport | _Read:
        """``work`` done, a failure turned into a report (so a batch goes on), except a full store or a
        busy one, which stop the batch."""
        try:
            if self.readonly:
                with self._writing():
                    pass  # raises: this process may only read
            return work()
        except (StoreTooLargeError, KnowledgeBaseBusyError):
            raise
        except RetrievalError as exc:
            return IngestReport(source=source, status="failed", error=str(exc))
        except OSError as exc:
            return IngestReport(source=source, status="failed",
                                error=f"{path.name}: {exc.strerror or exc}")

    def _read(self, path: Path, source: str, stage: Callable[[str], None],
              pages: Callable[[tuple[int, int]], None] | None = None) -> IngestReport | _Read:
        """Parse and OCR, without the write lock (searches and other ingests go on); a file already stored
        as it is needs neither. ``pages`` is told (pages read, pages) as a scan's pages are read."""
        doc_id = file_digest(path)
        if (report := self._unchanged(doc_id, source)) is not None:
            return report
        self._check_size()
        stage("parse")
        parsed = self.parser.parse(path, self.options)
        read_by_ocr = bool(parsed.ocr_requests)
        if read_by_ocr:
            stage("OCR")
            parsed.apply_ocr(self._read_pages(parsed.ocr_requests, path.name, pages))
        return _Read(path, source, doc_id, parsed, read_by_ocr)

    def _read_pages(self, requests: list, name: str, told: Callable[[tuple[int, int]], None] | None) -> list:
        """The text (and layout) of each scanned page, a request a page: each page gets the worker's time-out
        (one request for a whole scan stopped any longer than about 40 full pages, OCR reading one in about
        3 s on a core) and a page at a time travels to a worker, not the whole scan at once. A parser with
        several workers reads as many pages at once as there are workers and cores; between two pages a
        chat's query image gets a worker."""
        done = iter(range(1, len(requests) + 1))
        counting = threading.Lock()

        def read(request) -> tuple:
            if self.closed:  # closed meanwhile (the app stopping, the knowledge base deleted): no more pages
                raise RetrievalError("The knowledge base has been closed (the app is shutting down).")
            text = self.parser.ocr([request.image], name, layout=True)[0]
            if told is not None and len(requests) > 1:
                with counting:
                    told((next(done), len(requests)))
            return text

        lanes = min(getattr(self.parser, "lanes", 1), len(requests), _cores())
        if lanes <= 1:
            return [read(request) for request in requests]
        with ThreadPoolExecutor(lanes, thread_name_prefix="kb-ocr") as pages:
            futures = [pages.submit(contextvars.copy_context().run, read, request) for request in requests]
            futures_wait(futures, return_when=FIRST_EXCEPTION)
            for future in futures:  # a page that failed fails the file: the pages not yet begun are not read
                future.cancel()
            return [future.result() for future in futures]

    def _finish(self, read: IngestReport | _Read, stage: Callable[[str], None]) -> IngestReport:
        """Embed without the write lock; then store under it, checking again what another thread may have
        stored meanwhile."""
        done = self._embedded(read, stage)
        if isinstance(done, IngestReport):
            return done
        stage("store")
        try:
            return self._stored(done)
        except BaseException:
            self._discard(done)
            raise

    def _embedded(self, read: IngestReport | _Read, stage: Callable[[str], None]) -> IngestReport | _Embedded:
        """A file read, its chunks embedded (without the write lock) and its pictures' files written; what
        the store needs is kept, not the pictures themselves."""
        if isinstance(read, IngestReport):
            return read
        stage("embed")
        parsed = read.parsed
        entries = self._entries(parsed, read.doc_id, read.source)
        if not entries:
            raise loaders.UnreadableFileError(f"{read.path.name}: nothing to index (no text, no images)")
        pages = max((p.page or 0 for p in [*parsed.passages, *parsed.pictures]), default=0)
        return _Embedded(read.path, read.source, read.doc_id, parsed.kind, entries,
                         pages if parsed.kind == "pdf" and pages else None, parsed.notice)

    def _stored(self, done: _Embedded) -> IngestReport:
        """A file embedded, stored under the write lock (its acknowledgement). When it is not, its pictures'
        files are the caller's to remove (``_discard``): in a batch, not before the next file, which may be
        the same document under another name, has written its own."""
        report = self._store(done.doc_id, done.source, done.kind, done.entries, size=done.path.stat().st_size,
                             pages=done.pages)
        return replace(report, notice=done.notice) if done.notice and report.status != "unchanged" else report

    def _collected(self, storing: tuple[Future, _Embedded], current: _Embedded | None) -> IngestReport:
        """A store's report, waited for (a full or busy store raised). A file not stored has its pictures'
        files removed, unless the file now embedded is the same document (they are its files too)."""
        future, done = storing
        report = future.result()
        if report.status == "failed" and (current is None or current.doc_id != done.doc_id):
            self._discard(done)
        return report

    def _discard(self, done: _Embedded) -> None:
        """The thumbnails and views written for a document that was not stored; those of a document stored
        all the same (by another name, or before) are kept. Left for the next open when closed meanwhile."""
        if self.records is None or self.records.document(done.doc_id) is not None:
            return
        for e in done.entries:
            if e.chunk.thumbnail:
                Path(e.chunk.thumbnail).unlink(missing_ok=True)
                view_of(e.chunk.thumbnail).unlink(missing_ok=True)

    def _store(self, doc_id: str, source: str, kind: str, entries: list[Entry], *, size: int | None = None,
               pages: int | None = None) -> IngestReport:
        with self._writing():
            if (report := self._unchanged(doc_id, source)) is not None:
                return report
            self._check_size()
            existing = self.records.doc_ids_for(source)
            for space in ("cross", "text"):
                with_space = [e for e in entries if space in e.vectors]
                if with_space:
                    self.index.add(space, [e.chunk.id for e in with_space],
                                   np.stack([e.vectors[space] for e in with_space]))
            self.records.add_document(doc_id, source, kind, entries, size=size, pages=pages)  # the acknowledgement
            for old in existing - {doc_id}:  # a changed file replaces its earlier version
                self.delete(old)
        return IngestReport(source=source, status="replaced" if existing else "added", doc_id=doc_id,
                            chunks=len(entries))

    def _unchanged(self, doc_id: str, source: str) -> IngestReport | None:
        if (known := self.records.document(doc_id)) is None:
            return None
        with self._writing():
            for old in self.records.doc_ids_for(source) - {doc_id}:  # an older version a crash left behind
                self.delete(old)
        return IngestReport(source=source, status="unchanged", doc_id=doc_id, chunks=known.chunks)

    def _check_size(self) -> None:
        if self.index.size() > self.max_store_bytes:
            raise StoreTooLargeError(f"The vector index is over its size guard ({self.max_store_bytes / 1e9:.1f} "
                                     "GB); nothing more is added. Raise ASSISTANT_RETRIEVAL__MAX_STORE_GB.")

    def _entries(self, parsed: loaders.Parsed, doc_id: str, source: str) -> list[Entry]:
        page_thumbs = {}
        entries: list[Entry] = []
        for i, picture in enumerate(parsed.pictures):
            chunk_id = _chunk_id(doc_id, f"picture{i}", picture.locator)
            thumb = self._save_thumbnail(picture.image, chunk_id)
            if picture.kind == "page" or parsed.kind == "image":  # its passages are shown on it
                page_thumbs[picture.page] = thumb
            text = picture.caption or picture.locator
            entries.append(Entry(Chunk(chunk_id, doc_id, source, picture.kind, text, picture.locator, thumb),
                                 {}, lexical=bool(picture.caption)))
        if entries:  # pictures: their pixels in the cross space, their captions in the text space
            images = self._embed(self.embedder, [p.image for p in parsed.pictures], images=True)
            captions = self._embed(self.text_embedder, [p.caption for p in parsed.pictures])
            entries = [Entry(e.chunk, _vectors(cross=v, text=c if p.caption else None), e.lexical)
                       for e, p, v, c in zip(entries, parsed.pictures, images, captions)]
        passages = split_passages(parsed.passages, self.chunk_size, self.chunk_overlap,
                                  max_tokens=getattr(self.text_embedder, "max_tokens", None),
                                  count_tokens=getattr(self.text_embedder, "count_tokens", None))
        texts = [Entry(Chunk(_chunk_id(doc_id, f"text{i}", p.text), doc_id, source, "text", p.text, p.locator,
                             thumb := page_thumbs.get(p.page), p.layout.regions(p.text) if thumb and p.layout else ()),
                       {}) for i, p in enumerate(passages)]
        heads = self._embed(self.embedder, [e.chunk.text[:HEAD_CHARS] for e in texts])
        dense = self._embed(self.text_embedder, [e.chunk.text for e in texts])
        return entries + [Entry(e.chunk, _vectors(cross=h, text=d)) for e, h, d in zip(texts, heads, dense)]

    @staticmethod
    def _embed(embedder, items: list, *, images: bool = False) -> list:
        """Vectors for items, or Nones when that space is not configured."""
        if embedder is None or not items:
            return [None] * len(items)
        return list(embedder.embed_images(items) if images else embedder.embed_texts(items))

    def _save_thumbnail(self, image: Image, chunk_id: str) -> str:
        """The picture's thumbnail (for the cards) and its view (what the model is shown when the picture is
        a source: at most ``VIEW_PIXELS``). Each written whole, then renamed: a concurrent reader or a crash
        never sees half a file. The view first: a thumbnail's presence says both are there."""
        target = self.files_dir / f"{chunk_id}.jpg"
        for path, picture in ((view_of(target), loaders.reduced(image, VIEW_PIXELS)),
                              (target, loaders.thumbnail(image))):
            partial = self.files_dir / f".{path.name}.{threading.get_ident()}.part"
            picture.save(partial, "JPEG", quality=85)
            os.replace(partial, path)
        return str(target)

    # -- query ----------------------------------------------------------------------------------

    def search(self, text: str | None = None, images: Sequence[Image] = (), *, k: int = 4) -> list[Hit]:
        """Search with the text and each image; fuse the rankings; best first. Each hit carries its
        evidence: its cosine per space, its BM25 score, its rank after fusion."""
        text = (text or "").strip()
        n = max(4 * k, 20)
        rankings: list[list[str]] = []
        spaces: dict[str, dict[str, float]] = {"cross": {}, "text": {}}  # the best cosine per space
        bm25: dict[str, float] = {}
        texts = [text] if text else []
        if images:
            if self.embedder is not None:
                rankings += [self._dense("cross", v, n, spaces) for v in self.embedder.embed_images(list(images))]
            if self.ocr_queries:  # text in a query image finds passages: image to text
                texts += [t for t in self.parser.ocr(list(images), "query image") if t.strip()]
        # one after the other: BM25 in a thread beside the embedding was slower on 2 cores (the embedder's
        # two threads and SQLite took turns), p95 25 ms against 20 at 100k chunks
        for query in texts:
            lexical = self.records.lexical_search(query, n)
            for cid, score in lexical:
                bm25[cid] = max(bm25.get(cid, float("-inf")), float(score))
            for space, embedder in (("cross", self.embedder), ("text", self.text_embedder)):
                if embedder is not None:
                    vector = embedder.embed_texts([query])[0]
                    rankings.append(self._dense(space, vector, n, spaces))
                    self._fill_cosines(space, vector, [cid for cid, _ in lexical], spaces)  # keyword-only hits
            rankings.append([cid for cid, _ in lexical])
        # every candidate read from the record at once, before fusing: a document deleted meanwhile
        # drops out of every ranking, and the k places are filled from what was there at that moment
        chunks = self.records.chunks({cid for ranking in rankings for cid in ranking})
        fused = reciprocal_rank_fusion([kept for r in rankings if (kept := [c for c in r if c in chunks])])
        rank = {cid: i + 1 for i, (cid, _) in enumerate(fused)}
        top = distinct([cid for cid, _ in fused], chunks, k, self._cross_vectors)  # near-duplicates once
        hits = []
        for cid in top:
            evidence = {space: found[cid] for space, found in spaces.items() if cid in found}
            if cid in bm25:
                evidence["bm25"] = bm25[cid]
            evidence["fused_rank"] = rank[cid]
            best = max((v for key, v in evidence.items() if key in spaces), default=0.0)
            hits.append(Hit(chunks[cid], best, evidence))
        return hits

    def _dense(self, space: str, vector, n: int, spaces: dict[str, dict[str, float]]) -> list[str]:
        """The ``n`` nearest committed chunks. A write in progress puts its vectors in the index a moment
        before its record commits; those are skipped (asking the index for more), never returned."""
        asked = n
        while True:
            hits = self.index.query(space, vector, asked)
            committed = self.records.committed([cid for cid, _ in hits])
            if len(committed) >= min(n, len(hits)) or len(hits) < asked:
                break
            asked *= 4
        hits = [(cid, similarity) for cid, similarity in hits if cid in committed][:n]
        found = spaces[space]
        for cid, similarity in hits:
            found[cid] = max(found.get(cid, -1.0), similarity)
        return [cid for cid, _ in hits]

    def _fill_cosines(self, space: str, vector, ids: list[str], spaces: dict[str, dict[str, float]]) -> None:
        """Give keyword-only hits a similarity too, from their stored vectors (exact): a hit has a cosine in
        every space of the question's, so no relevance threshold sees a 0 for want of one."""
        found = spaces[space]
        missing = [cid for cid in ids if cid not in found]
        for got, matrix in self.records.vectors(space, missing):
            for cid, similarity in zip(got, matrix @ np.asarray(vector, dtype=np.float32)):
                found[cid] = float(similarity)

    def _cross_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        return {cid: row for got, matrix in self.records.vectors("cross", ids) for cid, row in zip(got, matrix)}

    def documents(self) -> list[DocumentInfo]:
        return self.records.documents()

    def resolve(self, doc: str) -> DocumentInfo:
        """A document by id, by source as stored, or by file name when only one document has it."""
        if (info := self.records.document(doc)) is not None:
            return info
        matches = [d for d in self.records.documents() if doc in (d.source, Path(d.source).name)]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise DocumentNotFoundError(f"'{doc}' names {len(matches)} documents; give one of their ids: "
                                        + ", ".join(d.doc_id for d in matches))
        raise DocumentNotFoundError(f"No document with id or name '{doc}' in the knowledge base")

    def delete(self, doc: str) -> DocumentInfo:
        """Remove every vector, record and file a document produced (by id, source or file name), and
        every trace of them on disk (see ``_scrub``). Searches stop finding it at once; the scrub then
        holds the write lock for a re-index of the kept vectors (about 1.5 s per thousand chunks)."""
        with self._writing():
            info = self.resolve(doc)
            doc_id = info.doc_id
            ids = self.records.chunk_ids(doc_id)
            self.index.delete(ids)
            self.records.delete_document(doc_id)
            for cid in ids:
                (self.files_dir / f"{cid}.jpg").unlink(missing_ok=True)
                view_of(self.files_dir / f"{cid}.jpg").unlink(missing_ok=True)
            _scrub(self.index, self.records)
        return info

    def count(self) -> int:
        return self.records.count()


@dataclass(frozen=True)
class _Read:
    """A file parsed and read by OCR, to be embedded and stored."""

    path: Path
    source: str
    doc_id: str
    parsed: loaders.Parsed
    read_by_ocr: bool = False


@dataclass(frozen=True)
class _Embedded:
    """A file read and embedded, to be stored: its chunks and vectors, not its pictures' pixels."""

    path: Path
    source: str
    doc_id: str
    kind: str
    entries: list[Entry]
    pages: int | None
    notice: str | None


def _done(call: Callable[[], IngestReport]) -> Future:
    """``call``'s result (or what it raised) as a finished future."""
    future: Future = Future()
    try:
        future.set_result(call())
    except BaseException as exc:  # noqa: BLE001  raised by whoever takes the result
        future.set_exception(exc)
    return future


class _ReadAhead:
    """A batch's files read (parsed and OCRed) in order, in the knowledge base's read-ahead thread, as far
    ahead of the embedding as memory allows: the files read and waiting to be embedded hold their text and
    pictures, and the next is begun only while they hold less than ``budget`` bytes (so one is always
    begun). A batch has one file in that thread at a time: other threads' batches take turns there."""

    def __init__(self, executor: ThreadPoolExecutor, count: int, budget: int, read: Callable[[int], object]):
        self._executor, self._count, self._budget, self._read = executor, count, budget, read
        self._results: list[Future] = [Future() for _ in range(count)]
        self._held: dict[int, int] = {}  # bytes of each file read and waiting to be embedded
        self._notes: dict[int, object] = {}  # what each read last said of itself (a scan's pages read)
        self._next = 0
        self._busy = self._stopped = False
        self._lock = threading.Lock()
        self._pump()

    @property
    def reading(self) -> bool:
        with self._lock:
            return self._busy

    def take(self, i: int, waiting: Callable[[object], None] | None = None):
        """File ``i``'s read, waited for (its report, or what to embed); a failure that stops the batch is
        raised; cancelled if the knowledge base closed meanwhile. Once taken, the next file may begin.
        While it is waited for, ``waiting`` is told, in this thread, what the read last noted of itself."""
        result, told = self._results[i], None
        try:
            while waiting is not None and not futures_wait([result], timeout=0.25).done:
                with self._lock:
                    note = self._notes.get(i)
                if note is not None and note != told:
                    waiting(note)
                    told = note
            return result.result()
        finally:
            with self._lock:
                self._held.pop(i, None)
                self._notes.pop(i, None)
            self._pump()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
        for future in self._results:
            future.cancel()  # those not begun

    def _pump(self) -> None:
        with self._lock:
            if self._busy or self._stopped or self._next >= self._count or \
                    (self._held and sum(self._held.values()) >= self._budget):
                return
            i, self._next, self._busy = self._next, self._next + 1, True
        try:
            job = self._executor.submit(self._run, i)
        except RuntimeError:  # the knowledge base closed
            self._results[i].cancel()
            return
        job.add_done_callback(lambda job: job.cancelled() and self._results[i].cancel())

    def _run(self, i: int) -> None:
        result = self._results[i]
        if result.set_running_or_notify_cancel():
            try:
                got = self._read(i, lambda note: self._note(i, note))
                held = _held_bytes(got)
            except BaseException as exc:  # noqa: BLE001  handed to the batch's thread, which raises it
                result.set_exception(exc)
            else:
                with self._lock:
                    self._held[i] = held
                result.set_result(got)
        with self._lock:
            self._busy = False
        self._pump()

    def _note(self, i: int, note: object) -> None:
        with self._lock:
            self._notes[i] = note


def _held_bytes(got) -> int:
    """About what a file read holds in memory until it is embedded: its text and its pictures' pixels."""
    if not isinstance(got, _Read):
        return 0
    return (sum(len(p.text) for p in got.parsed.passages)
            + sum(p.image.width * p.image.height * len(p.image.getbands()) for p in got.parsed.pictures))


def _source(path: Path, name: str | None) -> str:
    """What a file is known by: the name it was given (an upload's), else its absolute path."""
    return name or str(path.resolve())


def _cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _silent(*stage) -> None:
    """No one to tell the stages to."""


def _acquire(lock, data_dir: Path, wait: float, shared: bool) -> None:
    """Take the knowledge base's file lock. When another process has it and waiting is allowed, say so
    (a CLI ingest would otherwise look hung), then wait."""
    from filelock import Timeout

    try:
        lock.acquire(timeout=0)
        return
    except Timeout:
        pass
    if wait > 0:
        log.warning("Another process is writing to the knowledge base in %s; waiting up to %.0f s for its "
                    "turn to end.", data_dir, wait)
        try:
            lock.acquire(timeout=wait)
            return
        except Timeout:
            pass
    if shared:
        raise KnowledgeBaseBusyError(
            f"Another process has been writing to the knowledge base in {data_dir} for over {wait:.0f} s "
            "(an ingest in another replica?); try again when it is done.") from None
    raise KnowledgeBaseBusyError(
        f"The knowledge base in {data_dir} is open for writing in another process (the app or another "
        "command); reading commands (docs, search, ask) work beside it. To add or delete documents, use "
        "the app, stop it first, or share the knowledge base through a Chroma server "
        "(ASSISTANT_RETRIEVAL__CHROMA_URL).") from None


def _scrub(index: VectorIndex, records: Records) -> None:
    """Remove the bytes deleted documents leave on disk: the record's file is rewritten from its live rows
    and its log emptied, then the local vector index is rebuilt from it. The record's pending mark is
    cleared last, so a crash in between is scrubbed again on the next open."""
    records.scrub()
    index.scrub(records)
    records.scrubbed()


def file_digest(path: Path) -> str:
    """A document's id: the hash of its bytes, read in blocks (a large upload is never held whole)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:32]


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


def _stepper(progress: Progress | None, index: int, total: int, name: str) -> Callable[[str], None] | None:
    if progress is None:
        return None

    def step(stage: str, pages: tuple[int, int] | None = None) -> None:
        """A stage begun; of OCR, also (pages read, pages) while a scan's pages are read."""
        part = STAGES.index(stage) + (pages[0] / pages[1] if pages else 0.0)
        detail = f", page {pages[0]} of {pages[1]}" if pages else ""
        progress((index + part / len(STAGES)) / max(total, 1), f"{name} ({index + 1}/{total}): {stage}{detail}")

    return step


def _vectors(**spaces) -> dict:
    return {space: vector for space, vector in spaces.items() if vector is not None}


def _check_embedders(records: Records, embedder: Embedder | None, text_embedder: TextEmbedder | None,
                     data_dir: Path) -> None:
    if embedder is None and text_embedder is None:
        raise EmbedderMismatchError("Configure at least one embedder (ASSISTANT_RETRIEVAL__EMBEDDER or "
                                    "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER).")
    wanted = {"embedder": f"{embedder.name}|{embedder.dim}" if embedder else "none",
              "text_embedder": f"{text_embedder.name}|{text_embedder.dim}" if text_embedder else "none"}
    for key, value in wanted.items():
        stored = records.get_meta(key)
        if stored is None:
            if not records.readonly:
                records.set_meta(key, value)
        elif stored != value:
            name, _, dim = stored.partition("|")
            raise EmbedderMismatchError(
                f"The knowledge base in {data_dir} was built with the {key.replace('_', ' ')} '{name}'"
                f"{f' (dimension {dim})' if dim else ''}, but '{value.partition('|')[0]}' is configured. "
                f"Set ASSISTANT_RETRIEVAL__{key.upper()} back to the first, or point ASSISTANT_DATA_DIR "
                "at a new folder and ingest again.")


def _chunk_id(doc_id: str, slot: str, content: str) -> str:
    return hashlib.sha256(f"{doc_id}\0{slot}\0{content}".encode()).hexdigest()[:32]
