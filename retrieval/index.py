"""The Chroma side of the knowledge base: one collection per embedding space, derived from the durable
record and rebuilt from it whenever it is missing, unreadable, inconsistent or runaway in size.

Locally the collections live in ``chroma/`` under the data directory (a ``PersistentClient``, one process).
With a URL they live in a Chroma server (``chroma run``), which several app processes can share; its
disk is the server's, so the size guard and the crash probe apply to the local index only."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from retrieval.errors import IndexUnreachableError
from retrieval.records import Records

log = logging.getLogger(__name__)
SPACES = ("cross", "text")
ADD_BATCH = 512
CLEAN_MARKER = "index.clean"


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

    def open(self, records: Records, *, clean: bool) -> None:
        """Open, checking health and consistency with the record; rebuild when anything is wrong."""
        reason = None
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
        elif self.dir.exists():
            aside = self.dir.with_name(f"{self.dir.name}.broken")
            shutil.rmtree(aside, ignore_errors=True)
            self.dir.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        self._connect()
        for space in SPACES:
            for ids, vectors in records.vectors(space):
                self.add(space, ids, vectors)

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
        coll = self.collections[space]
        with self._calls():
            total = coll.count()
            if total == 0:
                return []
            result = coll.query(query_embeddings=[vector], n_results=min(n, total), include=["distances"])
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


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:200] if lines else type(exc).__name__
