"""The knowledge base's durable record: documents, chunks, their vectors and a lexical index, in SQLite
with write-ahead logging. Chroma is an index derived from this record and can always be rebuilt from it.

A document is committed here only after Chroma has acknowledged its vectors, in one transaction, so a
crash leaves either the whole document or none of it.

Deleting leaves no trace of a document in the files, once ``scrub`` has run (``KnowledgeBase.delete`` runs
it): SQLite otherwise keeps deleted text in three places. Freed cells and pages keep their bytes
(``secure_delete`` zeroes them as they are freed); the BM25 index keeps a deleted chunk's tokens in its
older segments and only records the deletion in a newer one (SQLite 3.40 has no FTS5 ``secure-delete``
option; ``optimize`` merges every segment into one without them, and the old segments' pages are freed,
so zeroed); and the write-ahead log keeps the pages as they were before the delete until a checkpoint,
and its file keeps their bytes until it is truncated (``wal_checkpoint(TRUNCATE)``). Even with
``secure_delete``, an index page rebalanced after deletes can keep a stale copy of a deleted key (a chunk
or document id) in its unused middle (seen about once in three runs of the test that reads every byte):
``VACUUM`` rewrites the file from the live rows. A delete marks the record ``scrub_pending`` in its own
transaction, and the mark is cleared only once every store is scrubbed: a crash in between is scrubbed
again on the next open.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from retrieval.lexical import VERSION as LEXICAL_VERSION
from retrieval.lexical import query_terms, tokens
from retrieval.types import Chunk, DocumentInfo

log = logging.getLogger(__name__)
SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, kind TEXT NOT NULL, chunks INTEGER NOT NULL,
    added_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS documents_source ON documents(source);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY, doc_id TEXT NOT NULL, kind TEXT NOT NULL, text TEXT NOT NULL,
    locator TEXT NOT NULL, thumbnail TEXT);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS vectors (
    chunk_id TEXT NOT NULL, space TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (chunk_id, space));
CREATE VIRTUAL TABLE IF NOT EXISTS lexical USING fts5(chunk_id UNINDEXED, tokens);
DROP TABLE IF EXISTS lexical_vocab;
CREATE TABLE IF NOT EXISTS lexical_df (term TEXT PRIMARY KEY, chunks INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
DOCUMENT_COLUMNS = "doc_id, source, kind, chunks, added_at, bytes, pages"  # DocumentInfo's fields in order
STAGED = ".staged"  # suffix of a space's vectors being rebuilt for a new embedder (retrieval/reembed.py)
LEXICAL_DF = "lexical_df"  # meta key: the table of chunks per token is filled (it came after the BM25 index)
SCRUB_PENDING = "scrub_pending"  # meta key: a delete whose traces have not all been removed yet
BUSY_TIMEOUT = 30.0  # seconds a connection waits for a lock before giving up
CHECKPOINT_WAIT = 1.0  # seconds one checkpoint waits for readers to leave the log
CHECKPOINT_TRIES = 3


@dataclass(frozen=True)
class Entry:
    """One chunk with its vectors per space (``cross``, ``text``) and whether it is lexically indexed."""

    chunk: Chunk
    vectors: dict[str, np.ndarray]
    lexical: bool = True


class Records:
    """One writer connection, used under ``write_lock``, and one reader connection per thread (WAL lets
    readers run beside the writer and each other). ``readonly`` opens no writer at all: another process
    (the app) may own the writes, and this one (the CLI) only reads what has been committed.

    Readers are in autocommit mode and every read finishes its statement (or closes its cursor) before
    returning: a reader that kept a snapshot open would stop the checkpoint that empties the log."""

    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        self.write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self.reindexed = 0  # chunks re-tokenized on open because the BM25 scheme changed
        self._has_regions: bool | None = None  # whether chunks has its regions column (see _regions)
        self.db = None if readonly else self._connect(write=True)
        if self.db is not None:
            self.db.executescript(SCHEMA)
            self._add_columns()
            self._reindex_lexical_if_stale()
            self.checkpoint()  # a log a crash left behind may hold deleted text

    def _add_columns(self) -> None:
        """A record from before documents had a size and a page count gains the columns (empty for them)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(documents)")}
        for column in ("bytes", "pages"):
            if column not in have:
                self.db.execute(f"ALTER TABLE documents ADD COLUMN {column} INTEGER")
        if "regions" not in {row[1] for row in self.db.execute("PRAGMA table_info(chunks)")}:
            self.db.execute("ALTER TABLE chunks ADD COLUMN regions TEXT")  # where a passage lies on its page

    def _connect(self, *, write: bool) -> sqlite3.Connection:
        target = str(self.path) if write else f"{self.path.resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(target, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT,
                             uri=not write)
        if write:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # an acknowledged document survives power loss
            db.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten, not left in free pages
        else:
            db.execute("PRAGMA query_only=ON")
        return db

    @property
    def _regions(self) -> str:
        """The regions column, or NULL for a record an older writer has not given one yet (read beside it)."""
        if self._has_regions is None:
            self._has_regions = any(r[1] == "regions" for r in self.read.execute("PRAGMA table_info(chunks)"))
        return "c.regions" if self._has_regions else "NULL"

    @property
    def read(self) -> sqlite3.Connection:
        """This thread's reader connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect(write=False)
            with self._readers_lock:
                self._readers.append(db)
        return db

    def close(self) -> None:
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for db in readers:
            db.close()
        if self.db is not None:
            with self.write_lock:
                self.db.close()

    def _reindex_lexical_if_stale(self) -> None:
        """Rebuild the BM25 index from the chunks when it was made by another tokenizer version, and the
        count of chunks per token when it is missing (a record from before it was kept)."""
        if self.get_meta("lexical_version") != LEXICAL_VERSION:
            with self._transaction():
                rows = self.db.execute("SELECT l.chunk_id, c.text FROM lexical l JOIN chunks c ON c.id = l.chunk_id"
                                       ).fetchall()
                self.db.execute("DELETE FROM lexical")
                self.db.executemany("INSERT INTO lexical VALUES (?, ?)",
                                    ((cid, " ".join(tokens(text))) for cid, text in rows))
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('lexical_version', ?)", (LEXICAL_VERSION,))
                self.db.execute("DELETE FROM meta WHERE key = ?", (LEXICAL_DF,))
            self.reindexed = len(rows)
        if self.get_meta(LEXICAL_DF) is None:
            with self._transaction():
                self.db.execute("DELETE FROM lexical_df")
                self._count_terms((r[0] for r in self.db.execute("SELECT tokens FROM lexical")), +1)
                self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (LEXICAL_DF,))

    def _count_terms(self, token_strings: Iterable[str], sign: int) -> None:
        """Add (``sign`` +1) or take away (-1) chunks from the count of chunks per token; a token no chunk
        has any more leaves the table (a deleted document's words are not kept). Inside a transaction."""
        counts = Counter(t for text in token_strings for t in set(text.split()))
        if sign > 0:
            self.db.executemany("INSERT INTO lexical_df VALUES (?, ?) ON CONFLICT(term) DO UPDATE "
                                "SET chunks = chunks + excluded.chunks", counts.items())
        else:
            self.db.executemany("UPDATE lexical_df SET chunks = chunks - ? WHERE term = ?",
                                [(n, t) for t, n in counts.items()])
            self.db.executemany("DELETE FROM lexical_df WHERE term = ? AND chunks <= 0", [(t,) for t in counts])

    # -- meta -----------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = (self.db or self.read).execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.write_lock:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    # -- writes ---------------------------------------------------------------------------------

    def add_document(self, doc_id: str, source: str, kind: str, entries: list[Entry], *,
                     size: int | None = None, pages: int | None = None) -> None:
        with self._transaction():
            self.db.execute("INSERT OR REPLACE INTO documents (doc_id, source, kind, chunks, added_at, bytes, pages) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", (doc_id, source, kind, len(entries), time.time(), size, pages))
            indexed = []
            for e in entries:
                c = e.chunk
                self.db.execute("INSERT OR REPLACE INTO chunks (id, doc_id, kind, text, locator, thumbnail, regions) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)", (c.id, doc_id, c.kind, c.text, c.locator, c.thumbnail,
                                                                 json.dumps(c.regions) if c.regions else None))
                for space, vector in e.vectors.items():
                    self.db.execute("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                    (c.id, space, np.asarray(vector, dtype=np.float32).tobytes()))
                if e.lexical and c.text.strip():
                    indexed.append(" ".join(tokens(c.text)))
                    self.db.execute("INSERT INTO lexical VALUES (?, ?)", (c.id, indexed[-1]))
            self._count_terms(indexed, +1)

    def stage_vectors(self, space: str, ids: Sequence[str], vectors) -> None:
        """Vectors for ``space`` written beside the live ones (as ``space + STAGED``), one batch at a time,
        until ``swap_staged`` makes them live; a crash in between leaves the live ones as they were."""
        with self._transaction():
            self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                                [(i, space + STAGED, np.asarray(v, dtype=np.float32).tobytes())
                                 for i, v in zip(ids, vectors)])

    def drop_staged(self) -> None:
        with self._transaction():
            self.db.execute("DELETE FROM vectors WHERE space LIKE ?", (f"%{STAGED}",))

    def swap_staged(self, spaces: Sequence[str], meta: dict[str, str]) -> None:
        """In one transaction: each space's staged vectors replace its live ones (a space staged with
        nothing ends empty), and ``meta`` (which embedders made them) is written."""
        with self._transaction():
            for space in spaces:
                self.db.execute("DELETE FROM vectors WHERE space = ?", (space,))
                self.db.execute("UPDATE vectors SET space = ? WHERE space = ?", (space, space + STAGED))
            self.db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))

    def all_chunks(self, batch: int = 256) -> Iterator[list[tuple[str, str, str, str | None]]]:
        """Every chunk as (id, kind, text, thumbnail), in batches, by id."""
        last = ""
        while rows := self.read.execute("SELECT id, kind, text, thumbnail FROM chunks WHERE id > ? ORDER BY id "
                                        "LIMIT ?", (last, batch)).fetchall():
            yield [tuple(r) for r in rows]
            last = rows[-1][0]

    def chunk_ids(self, doc_id: str) -> list[str]:
        return [r[0] for r in self.read.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]

    def delete_document(self, doc_id: str) -> list[str]:
        """Remove a document and everything it produced; return its chunk ids. Its bytes stay in the file
        until ``scrub`` (the mark set here says so, should the process end before)."""
        ids = self.chunk_ids(doc_id)
        with self._transaction():
            indexed = []
            for chunk_id in ids:
                self.db.execute("DELETE FROM vectors WHERE chunk_id = ?", (chunk_id,))
                indexed += [r[0] for r in self.db.execute("SELECT tokens FROM lexical WHERE chunk_id = ?", (chunk_id,))]
                self.db.execute("DELETE FROM lexical WHERE chunk_id = ?", (chunk_id,))
            self._count_terms(indexed, -1)
            self.db.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
            self.db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?, '1')", (SCRUB_PENDING,))
        return ids

    @property
    def scrub_pending(self) -> bool:
        """A delete happened whose traces have not been scrubbed (the process ended in between)."""
        return self.get_meta(SCRUB_PENDING) is not None

    def scrub(self) -> bool:
        """Remove what deleted rows left in the files (see the module's docstring). Costs a rewrite of the
        BM25 index and of the file (``VACUUM``: about a second per 100 MB, the file's size again in the
        log and in the temporary folder meanwhile). Returns False when a reader kept the log from being
        emptied: the next scrub or open retries, and SQLite empties it when the last connection closes.
        The pending mark stays until ``scrubbed``: the vector index is rebuilt from this file afterwards."""
        with self.write_lock:
            self.db.execute("INSERT INTO lexical(lexical) VALUES ('optimize')")
            self.db.execute("VACUUM")
            return self.checkpoint()

    def scrubbed(self) -> None:
        """Every store is rid of the deleted documents: clear the pending mark."""
        with self.write_lock:
            self.db.execute("DELETE FROM meta WHERE key = ?", (SCRUB_PENDING,))
            self.checkpoint()

    def checkpoint(self) -> bool:
        """Copy the log into the file and truncate it to nothing. A reader in the middle of a read holds
        the log's pages, so this waits for it a little (reads take milliseconds), retrying a few times
        rather than holding the write lock for the connection's whole ``BUSY_TIMEOUT``."""
        with self.write_lock:
            self.db.execute(f"PRAGMA busy_timeout = {int(CHECKPOINT_WAIT * 1000)}")
            try:
                for attempt in range(CHECKPOINT_TRIES):
                    busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    if not busy:
                        return True
                    time.sleep(0.05 * (attempt + 1))
            finally:
                self.db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
        log.warning("a reader kept the write-ahead log of %s busy; deleted text stays in it until the next "
                    "checkpoint", self.path)
        return False

    def _transaction(self):
        return Transaction(self.db, self.write_lock)

    # -- reads ----------------------------------------------------------------------------------

    def document(self, doc_id: str) -> DocumentInfo | None:
        row = self.read.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return DocumentInfo(*row) if row else None

    def documents(self) -> list[DocumentInfo]:
        rows = self.read.execute(f"SELECT {DOCUMENT_COLUMNS} FROM documents ORDER BY source")
        return [DocumentInfo(*r) for r in rows]

    def doc_ids_for(self, source: str) -> set[str]:
        return {r[0] for r in self.read.execute("SELECT doc_id FROM documents WHERE source = ?", (source,))}

    def chunks(self, ids: Iterable[str]) -> dict[str, Chunk]:
        """The committed chunks among ``ids``, read in one snapshot (a read transaction): a document being
        deleted or replaced meanwhile is seen whole or not at all."""
        ids = list(ids)
        out: dict[str, Chunk] = {}
        db = self.read
        db.execute("BEGIN")
        try:
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ",".join("?" * len(part))
                rows = db.execute(
                    f"SELECT c.id, c.doc_id, d.source, c.kind, c.text, c.locator, c.thumbnail, {self._regions} FROM "
                    f"chunks c JOIN documents d ON d.doc_id = c.doc_id WHERE c.id IN ({marks})", part)
                out.update({r[0]: Chunk(*r[:7], _regions(r[7])) for r in rows})
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return out

    def committed(self, ids: Sequence[str]) -> set[str]:
        """Those of ``ids`` whose chunks are in the record."""
        out: set[str] = set()
        for start in range(0, len(ids), 500):
            part = list(ids[start : start + 500])
            out.update(r[0] for r in self.read.execute(
                f"SELECT id FROM chunks WHERE id IN ({','.join('?' * len(part))})", part))
        return out

    def count(self) -> int:
        return self.read.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]

    def vector_ids(self, space: str) -> set[str]:
        return {r[0] for r in self.read.execute("SELECT chunk_id FROM vectors WHERE space = ?", (space,))}

    def vectors(self, space: str, ids: Iterable[str] | None = None,
                batch: int = 2048) -> Iterator[tuple[list[str], np.ndarray]]:
        """(ids, matrix) batches of one space's vectors, all of them or those of ``ids``."""
        cursor = self.read.cursor()
        try:  # closed however the caller stops: an unfinished statement would keep its snapshot open
            if ids is None:
                rows = iter(cursor.execute("SELECT chunk_id, vector FROM vectors WHERE space = ?", (space,)))
            else:
                wanted = list(ids)
                rows = (r for start in range(0, len(wanted), 500) for r in cursor.execute(
                    f"SELECT chunk_id, vector FROM vectors WHERE space = ? AND chunk_id IN "
                    f"({','.join('?' * len(wanted[start:start + 500]))})", (space, *wanted[start:start + 500])))
            while chunk := [r for _, r in zip(range(batch), rows)]:
                yield [r[0] for r in chunk], np.stack([np.frombuffer(r[1], dtype=np.float32) for r in chunk])
        finally:
            cursor.close()

    def lexical_search(self, text: str, k: int, max_share: float = 0.2,
                       max_rows: int = 10_000) -> list[tuple[str, float]]:
        """BM25 over the tokens (Latin words, Chinese bigrams); higher is better. FTS5 scores every chunk a
        term matches, so the terms are taken rarest first while the chunks they match add up to at most
        ``max_rows`` (about 6 ms); tokens found in more than ``max_share`` of the chunks say little and
        are left out unless all are (then the rarest two are kept)."""
        terms = list(dict.fromkeys(query_terms(text)))
        if not terms:
            return []
        marks = ",".join("?" * len(terms))
        try:
            df = dict(self.read.execute(f"SELECT term, chunks FROM lexical_df WHERE term IN ({marks})", terms))
        except sqlite3.OperationalError:  # read beside a writer of an older version, before it kept the table
            df = dict.fromkeys(terms, 0)
        ranked = sorted((t for t in terms if t in df), key=df.get)  # a token no chunk has cannot match
        if not ranked:
            return []
        limit = max(self.count() * max_share, 1)
        rare, rows = [], 0
        for term in [t for t in ranked if df[t] <= limit] or ranked[:2]:
            if rare and rows + df[term] > max_rows:
                break
            rare.append(term)
            rows += df[term]
        query = " OR ".join('"' + t.replace('"', "") + '"' for t in rare)
        found = self.read.execute("SELECT chunk_id, bm25(lexical) FROM lexical WHERE lexical MATCH ? "
                               "ORDER BY bm25(lexical) LIMIT ?", (query, k))
        return [(r[0], -float(r[1])) for r in found]


def _regions(stored: str | None) -> tuple:
    return tuple(tuple(box) for box in json.loads(stored)) if stored else ()


class Transaction:
    """``BEGIN IMMEDIATE`` on a writer connection, under a lock (one writer thread at a time); committed on
    success, rolled back on any error. The knowledge base's record and the conversation store use it."""

    def __init__(self, db: sqlite3.Connection, lock: threading.RLock):
        self.db = db
        self.lock = lock

    def __enter__(self):
        self.lock.acquire()
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    def __exit__(self, exc_type, exc, tb):
        try:
            self.db.execute("COMMIT" if exc_type is None else "ROLLBACK")
        finally:
            self.lock.release()
        return False
