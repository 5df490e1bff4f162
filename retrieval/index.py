"""The Chroma side of the knowledge base: one collection per embedding space, derived from the durable
record and rebuilt from it whenever it is missing, unreadable, inconsistent or runaway in size.

Locally the collections live in ``chroma/`` under the data directory (a ``PersistentClient``, one process).
With a URL they live in a Chroma server (``chroma run``), which several app processes can share; its
disk is the server's, so the size guard, the crash probe and the scrub after a delete apply to the local
index only.

Chroma does not forget a deleted vector: it stays in its log (``embeddings_queue`` in ``chroma.sqlite3``)
until Chroma's own flush, then in SQLite's free pages, and the HNSW files only mark it deleted. Chroma 1.5
offers nothing that removes those bytes from an open store (``chroma vacuum`` purges the log of a closed one
and leaves the HNSW files as they are), so ``scrub`` rebuilds the local index from the record, which holds
only what is kept."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from retrieval.errors import IndexUnreachableError, RetrievalError
from retrieval.records import Records

log = logging.getLogger(__name__)
SPACES = ("cross", "text")
ADD_BATCH = 512
CLEAN_MARKER = "index.clean"
# folders beside chroma/ while it is replaced: the new index being built, the old one being removed
NEXT, OLD, BROKEN = ".next", ".old", ".broken"


def directory_size(path: Path) -> int:
    """Bytes under ``path``. Chroma creates and removes files while it works (in the probe's child
    process, at the same moment): a file listed and gone before its size is read counts as 0 bytes."""
    total = 0
    for root, _, names in os.walk(path):
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                total += os.stat(os.path.join(root, name), follow_symlinks=False).st_size
    return total


def probe(chroma_dir: Path, *, timeout: float = 120.0, max_bytes: int) -> str | None:
    """Open the index in a child process (a broken store can hang, crash or grow without bound there,
    not here). Returns None when healthy, else why not."""
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "retrieval.probe", str(chroma_dir)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    while child.poll() is None:
        if time.monotonic() - started > timeout:
            child.kill()
            return f"opening the index took longer than {timeout:.0f} s"
        if directory_size(chroma_dir) > max_bytes:
            child.kill()
            return f"the index grew past {max_bytes / 1e9:.1f} GB while opening"
        time.sleep(0.2)
    _, err = child.communicate()
    return None if child.returncode == 0 else f"the index could not be opened ({err.strip()[-300:]})"


class VectorIndex:
    def __init__(self, chroma_dir: Path, *, collection: str, ef_search: int, max_bytes: int,
                 url: str | None = None):
        self.dir = chroma_dir
        self.url = url or None
        self.name = collection
        self.ef_search = ef_search
        self.max_bytes = max_bytes
        self.client = None
        self.collections: dict = {}
        self.repairs: list[str] = []  # what opening had to fix: a rebuild's reason, vectors removed/restored
        self._gate = _Gate()  # searches beside each other, a scrub's swap alone

    def open(self, records: Records, *, clean: bool) -> None:
        """Open, checking health and consistency with the record; rebuild when anything is wrong."""
        reason = None
        for folder in [] if self.url else self._beside():  # a crash during a scrub: deleted vectors in it
            _remove_tree(folder)
        if self.url:
            self._connect()  # unreachable: IndexUnreachableError, nothing to rebuild
        elif directory_size(self.dir) > self.max_bytes:
            reason = f"the index is {directory_size(self.dir) / 1e9:.1f} GB, over the size guard"
        elif not clean and self.dir.exists():
            reason = probe(self.dir, max_bytes=self.max_bytes)
        if reason is None:
            try:
                if not self.url:
                    self._connect()
                self._reconcile(records)
                return
            except Exception as exc:  # noqa: BLE001  any failure of the derived index means: rebuild it
                if self.url:  # a shared server's collections are not rebuilt behind other processes' backs
                    raise self._unreachable(exc) from exc
                reason = f"{type(exc).__name__}: {exc}"
        log.warning("rebuilding the vector index from the record: %s", reason)
        self.repairs.append(f"rebuilt: {reason}")
        self.rebuild(records)

    def rebuild(self, records: Records) -> None:
        self.close()
        if self.url:
            self._connect()
            for name in [c.name for c in self.collections.values()]:
                self.client.delete_collection(name)
            self._connect()
            self._fill(records)
            return
        if self.dir.exists():
            aside = self.dir.with_name(f"{self.dir.name}{BROKEN}")
            _remove_tree(aside)
            self.dir.rename(aside)
            _remove_tree(aside)
        self._build(self.dir, records)
        self._connect()

    def scrub(self, records: Records) -> None:
        """Leave no byte of a deleted vector or id in ``chroma/`` (see the module's docstring): the index is
        rebuilt from the record in a folder beside it, while searches go on in the current one, then
        swapped in; searches wait for the swap only (closing one store and opening the other). The caller
        holds the knowledge base's write lock throughout. The cost is a re-index of every kept vector:
        about 1.5 s per thousand chunks on two cores (768 and 384 dimensions; 12 s for 7,000 chunks), while
        searches wait for the swap alone (10 to 250 ms seen).

        With a Chroma server nothing is rebuilt, since other processes use the same collections: the
        deleted ids are gone from the collections, but the server's own storage keeps their bytes (seen
        with chromadb 1.5.9: its ``chroma.sqlite3`` and HNSW files held nearly every deleted id and vector).
        Only the server's operator can remove them: rebuild the collections there, then run
        ``chroma vacuum --path DIR`` with the server stopped and remove the HNSW folders no collection
        uses (see ``destroy``)."""
        if self.url:
            return
        fresh = self.dir.with_name(f"{self.dir.name}{NEXT}")
        _remove_tree(fresh)
        self._build(fresh, records)
        old = self.dir.with_name(f"{self.dir.name}{OLD}")
        with self._gate.swap():
            self.close()
            self.dir.rename(old)
            fresh.rename(self.dir)  # a crash before this leaves no chroma/: open rebuilds it
            self._connect()
        _remove_tree(old)

    def _build(self, folder: Path, records: Records) -> None:
        """Build a local index in ``folder`` from the committed record, in a child process. Chroma writes a
        new collection's HNSW files with slots it never cleared (they carry whatever the memory held
        before: freed vectors and ids of deleted documents, in a process that has handled them); a fresh
        process has read nothing but what is kept."""
        done = subprocess.run([sys.executable, "-m", "retrieval.index", str(folder), str(records.path), self.name,
                               str(self.ef_search)], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
        if done.returncode != 0:
            _remove_tree(folder)
            raise RetrievalError(f"The vector index could not be rebuilt from the record in {records.path} "
                                 f"({done.stderr.strip()[-300:]}).")

    def destroy(self) -> None:
        """Remove the index for good: a server's collections (every process using them loses them), or
        the local folder and any replacement a crash left beside it. A Chroma 1.5.9 server keeps a deleted
        collection's HNSW folder (named by its segment's id) and rows in its ``chroma.sqlite3`` on its disk,
        even after ``chroma vacuum``: its operator removes them."""
        if self.url:
            if self.client is None:
                self._connect()
            with self._calls():
                for coll in self.collections.values():
                    self.client.delete_collection(coll.name)
        self.close()
        if not self.url:
            for folder in (self.dir, *self._beside()):
                _remove_tree(folder)

    def _fill(self, records: Records) -> None:
        for space in SPACES:
            for ids, vectors in records.vectors(space):
                self.add(space, ids, vectors)

    def _beside(self) -> list[Path]:
        return [self.dir.with_name(f"{self.dir.name}{suffix}") for suffix in (NEXT, OLD, BROKEN)]

    def _connect(self) -> None:
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        if self.url:
            where = urlparse(self.url)
            try:
                self.client = chromadb.HttpClient(
                    host=where.hostname or "127.0.0.1", port=where.port or (443 if where.scheme == "https" else 8000),
                    ssl=where.scheme == "https", settings=ChromaSettings(anonymized_telemetry=False))
                self.client.heartbeat()
            except Exception as exc:  # noqa: BLE001  connection refused, DNS, TLS, not a Chroma server
                raise IndexUnreachableError(
                    f"Cannot reach the Chroma server at {self.url} (ASSISTANT_RETRIEVAL__CHROMA_URL): "
                    f"{_first_line(exc)}. Start it (chroma run --path DIR --port 8000) or correct the URL.") from exc
        else:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.client = chromadb.PersistentClient(path=str(self.dir),
                                                    settings=ChromaSettings(anonymized_telemetry=False))
        config = {"hnsw": {"space": "cosine", "ef_search": self.ef_search, "ef_construction": 200,
                           "max_neighbors": 32}}
        self.collections = {
            space: self.client.get_or_create_collection(f"{self.name}-{space}", embedding_function=None,
                                                        configuration=config)
            for space in SPACES}
        for coll in self.collections.values():  # an existing collection keeps its own until told
            if (coll.configuration or {}).get("hnsw", {}).get("ef_search") != self.ef_search:
                coll.modify(configuration={"hnsw": {"ef_search": self.ef_search}})

    def _reconcile(self, records: Records) -> None:
        for space, coll in self.collections.items():
            indexed = set(coll.get(include=[])["ids"])
            recorded = records.vector_ids(space)
            extra, missing = indexed - recorded, recorded - indexed
            if extra:  # vectors added before a crash, never committed to the record
                log.info("removing %d uncommitted vectors from %s", len(extra), space)
                self.repairs.append(f"removed {len(extra)} uncommitted {space} vectors")
                for start in range(0, len(extra), ADD_BATCH):
                    coll.delete(ids=sorted(extra)[start : start + ADD_BATCH])
            if missing:
                log.info("restoring %d vectors into %s from the record", len(missing), space)
                self.repairs.append(f"restored {len(missing)} {space} vectors")
                for ids, vectors in records.vectors(space, missing):
                    self.add(space, ids, vectors)
            if recorded:
                probe_id = next(iter(recorded))
                _, vector = next(records.vectors(space, [probe_id]))
                coll.query(query_embeddings=vector, n_results=1)

    def add(self, space: str, ids: list[str], vectors) -> None:
        coll = self.collections[space]
        with self._calls():
            for start in range(0, len(ids), ADD_BATCH):
                coll.upsert(ids=ids[start : start + ADD_BATCH], embeddings=vectors[start : start + ADD_BATCH])

    def delete(self, ids: list[str]) -> None:
        with self._calls():
            for coll in self.collections.values():
                for start in range(0, len(ids), ADD_BATCH):
                    coll.delete(ids=ids[start : start + ADD_BATCH])

    def query(self, space: str, vector, n: int) -> list[tuple[str, float]]:
        with self._gate.search(), self._calls():
            # n beyond the collection's size gives what there is (counting first cost 6 ms at 100k vectors)
            try:
                result = self.collections[space].query(query_embeddings=[vector], n_results=n, include=["distances"])
            except Exception as exc:  # noqa: BLE001
                # a search racing a space's first add (its HNSW segment not yet on disk) finds nothing there
                # yet; seen once in a clean-clone CI run of tests/integration/test_knowledge_concurrency.py
                if "Nothing found on disk" in str(exc):
                    return []
                raise
        return [(cid, 1.0 - float(d)) for cid, d in zip(result["ids"][0], result["distances"][0])]

    @contextlib.contextmanager
    def _calls(self):
        """A Chroma server that fails a request is reported as unreachable, in the user's words."""
        try:
            yield
        except Exception as exc:
            if self.url:
                raise self._unreachable(exc) from exc
            raise

    def _unreachable(self, exc: BaseException) -> IndexUnreachableError:
        return IndexUnreachableError(
            f"The Chroma server at {self.url} (ASSISTANT_RETRIEVAL__CHROMA_URL) failed a request: "
            f"{_first_line(exc)}. Check that it is running; nothing was changed in the knowledge base.")

    def size(self) -> int:
        return 0 if self.url else directory_size(self.dir)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client, self.collections = None, {}


class _Gate:
    """Searches run beside each other; a swap waits for those in flight and holds new ones back until the
    new index is open."""

    def __init__(self):
        self._changed = threading.Condition()
        self._searching = 0
        self._swapping = False

    @contextlib.contextmanager
    def search(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._swapping)
            self._searching += 1
        try:
            yield
        finally:
            with self._changed:
                self._searching -= 1
                self._changed.notify_all()

    @contextlib.contextmanager
    def swap(self):
        with self._changed:
            self._changed.wait_for(lambda: not self._swapping)
            self._swapping = True
            self._changed.wait_for(lambda: self._searching == 0)
        try:
            yield
        finally:
            with self._changed:
                self._swapping = False
                self._changed.notify_all()


class ExactIndex:
    """Exact search over the vectors in the record, for a process that only reads (the CLI beside the
    app): it never opens Chroma, whose local store belongs to the process that writes."""

    url = None
    repairs: tuple[str, ...] = ()

    def __init__(self, records: Records):
        self.records = records

    def query(self, space: str, vector, n: int) -> list[tuple[str, float]]:
        import numpy as np

        query = np.asarray(vector, dtype=np.float32)
        best: list[tuple[float, str]] = []
        for ids, matrix in self.records.vectors(space):
            similarity = matrix @ query
            top = np.argsort(-similarity)[:n]
            best = sorted([*best, *((float(similarity[i]), ids[i]) for i in top)], reverse=True)[:n]
        return [(cid, score) for score, cid in best]

    def size(self) -> int:
        return 0

    def close(self) -> None:
        pass


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__


def build(chroma_dir: str, records_path: str, collection: str, ef_search: str) -> int:
    """The child process of ``VectorIndex._build``: index every vector of the committed record."""
    records = Records(Path(records_path), readonly=True)
    index = VectorIndex(Path(chroma_dir), collection=collection, ef_search=int(ef_search), max_bytes=0)
    try:
        index._connect()
        index._fill(records)
    finally:
        index.close()
        records.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(build(*sys.argv[1:]))
