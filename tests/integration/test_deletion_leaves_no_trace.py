"""Deleting from the knowledge base leaves no trace on disk, while it stays open (as the app keeps it).

Each document carries its own canary, a word found nowhere else, in every chunk and in its name. After half
of them are deleted, every byte of every file under the test's folder (the record with its write-ahead log,
Chroma's SQLite and HNSW files, thumbnails, temporary files) is read: no deleted canary, id or vector may
be found, and every kept one must be (a scan that finds nothing proves nothing). Chroma's HNSW files store
vectors normalised, so their slots are compared by cosine, and before the delete the same comparison must
find the vectors about to be deleted there. Two of the leaks guarded against show in some runs only (about
one in three here): a stale copy of a deleted id in a rebalanced SQLite page (without ``VACUUM``), and freed
memory in the HNSW files of an index rebuilt in this process (hence the rebuild in a child process).

Real Chroma on disk and the real record; a hashing embedder at the edge."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from retrieval.errors import RetrievalError
from retrieval.records import Records
from retrieval.store import KnowledgeBase
from retrieval.worker import InProcessParser
from tests.helpers.chroma_server import chroma_server
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.images import write_image
from tests.helpers.traces import hnsw_matches, names_under, scan

PARAGRAPHS = 130  # chunks per text document: 8 of them pass Chroma's 1000-operation flush to HNSW files


def open_kb(data: Path, **options) -> KnowledgeBase:
    """Wide hashing embedders: two chunks rarely share a vector (see ``unlike``)."""
    return KnowledgeBase.open(data, HashingEmbedder(512, "hash-512"),
                              text_embedder=HashingEmbedder(384, "hash-384"), parser=InProcessParser(),
                              chunk_size=120, chunk_overlap=0, ocr=False, **options)


def canary() -> str:
    """A word of 32 random letters: no FTS5 prefix compression hides its tail, and no other text has it."""
    return "canary" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex)


def needle(word: str) -> str:
    """The tail of a canary: FTS5 stores a term after the prefix it shares with the term before it."""
    return word[-20:]


def write_documents(folder: Path) -> dict[str, Path]:
    """Eight text documents and two images (a red and a blue one), each named after its canary, which is
    in every paragraph of a text."""
    folder.mkdir()
    docs = {}
    for i in range(8):
        word = canary()
        body = "\n\n".join(f"Note {i}.{j} about {word} and invoices, patients and reports."
                           for j in range(PARAGRAPHS))
        docs[word] = folder / f"{word}.{'md' if i % 2 else 'txt'}"
        docs[word].write_text(f"# Document {i}\n\n{body}", encoding="utf-8")
    for colour in ("red", "blue"):
        word = canary()
        docs[word] = write_image(folder / f"{word}.png", (160, 120), colour)
    return docs


class Snapshot:
    """Ids and vectors of some documents, read from the record before they are deleted."""

    def __init__(self, kb: KnowledgeBase, sources: list[str]):
        self.ids: set[str] = set()
        self.vectors: dict[str, np.ndarray] = {}
        self.thumbnails: list[bytes] = []
        for source in sources:
            info = kb.resolve(source)
            chunk_ids = kb.records.chunk_ids(info.doc_id)
            self.ids |= {info.doc_id, *chunk_ids}
            for space in ("cross", "text"):
                for got, matrix in kb.records.vectors(space, chunk_ids):
                    self.vectors.update({f"{space}:{cid}": row.copy() for cid, row in zip(got, matrix)})
            thumbnails = [kb.files_dir / f"{cid}{kind}.jpg" for cid in chunk_ids for kind in ("", ".view")]
            self.thumbnails += [p.read_bytes() for p in thumbnails if p.exists()]


def unlike(vectors: dict[str, np.ndarray], others: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Those of ``vectors`` that none of ``others`` resembles: the hashing embedder's buckets collide, so a
    deleted chunk can have the very vector of a kept one, which is rightly still there."""
    out = {}
    for name, vector in vectors.items():
        same_dim = [o for o in others.values() if len(o) == len(vector)]
        if not same_dim or (np.stack(same_dim) @ vector).max() < 0.9999 * np.linalg.norm(vector):
            out[name] = vector
    return out


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """Temporary files of this process and its children (SQLite, the index build) land in the scan."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    for name in ("TMPDIR", "SQLITE_TMPDIR"):
        monkeypatch.setenv(name, str(folder))
    return folder


def test_deleted_documents_leave_no_byte_behind_while_the_knowledge_base_stays_open(tmp_path, temp_dir):
    docs = write_documents(tmp_path / "uploads")
    kb = open_kb(tmp_path / "data")
    try:
        reports = kb.ingest_paths(list(docs.values()), sources=[p.name for p in docs.values()])
        assert all(r.ok for r in reports), [r.error for r in reports if not r.ok]
        for path in docs.values():  # the uploads go; from here on the knowledge base is the only copy
            path.unlink()
        words = list(docs)
        deleted = words[0:8:2] + [words[8]]  # four text documents and the red image
        kept = [w for w in words if w not in deleted]
        gone = Snapshot(kb, [docs[w].name for w in deleted])
        stay = Snapshot(kb, [docs[w].name for w in kept])
        assert gone.thumbnails and stay.thumbnails
        shared = len(gone.vectors)
        gone.vectors = unlike(gone.vectors, stay.vectors)
        shared -= len(gone.vectors)
        before = hnsw_matches(tmp_path / "data" / "chroma", gone.vectors)
        assert before.of(gone.vectors), "no vector to be deleted is in the HNSW files: that scan sees nothing"

        for word in deleted:
            kb.delete(docs[word].name)

        found = scan(tmp_path, strings=[needle(w) for w in words], ids=gone.ids | stay.ids,
                     vectors={**gone.vectors, **stay.vectors})
        hnsw = hnsw_matches(tmp_path / "data" / "chroma", gone.vectors)
        report = (f"scanned {found.bytes_scanned} bytes in {found.files} files; deleted canaries found: "
                  f"{len(found.of([needle(w) for w in deleted]))}/{len(deleted)}, kept: "
                  f"{len(found.of([needle(w) for w in kept]))}/{len(kept)}; deleted ids found: "
                  f"{len(found.of(gone.ids))}/{len(gone.ids)}; deleted vectors found: "
                  f"{len(found.of(gone.vectors))}/{len(gone.vectors)} as given ({shared} left out: a kept chunk "
                  f"has the same vector), {len(hnsw.of(gone.vectors))} in HNSW slots "
                  f"({len(before.of(gone.vectors))} before the delete)")
        print(report)
        leaks = {item: sorted(found.where[item])
                 for item in found.of([needle(w) for w in deleted]) | found.of(gone.ids) | found.of(gone.vectors)}
        assert not leaks, f"{report}\n{leaks}"
        assert not hnsw.of(gone.vectors), report
        assert_the_scan_sees_what_is_kept(found, kept, stay)
        assert_no_file_is_left(tmp_path, deleted, gone, stay)
        assert_search_finds_only_the_kept(kb, docs, kept, deleted, gone)
    finally:
        kb.close()


def assert_the_scan_sees_what_is_kept(found, kept: list[str], stay: Snapshot) -> None:
    """A scan that finds nothing proves nothing: every kept canary (in the record), id (in Chroma's files
    too) and vector must be found."""
    assert found.of([needle(w) for w in kept]) == {needle(w) for w in kept}, "the string scan is blind"
    assert all(any("records.sqlite3" in f for f in found.where[needle(w)]) for w in kept)
    assert stay.ids <= found.of(stay.ids), "kept ids not found: the id scan is blind"
    indexed = {key.split(":", 1)[1] for key in stay.vectors}
    assert all(any("/chroma/" in f for f in found.where[i]) for i in indexed), "no kept id in Chroma's files"
    assert set(stay.vectors) <= found.of(stay.vectors), "kept vectors not found: the vector scan is blind"


def assert_no_file_is_left(root: Path, deleted: list[str], gone: Snapshot, stay: Snapshot) -> None:
    """No name carries a deleted canary or id, no thumbnail or view (the picture shown to the model) of a
    deleted image remains, the log is empty."""
    names = names_under(root)
    assert not [w for w in deleted if w in names] and not [i for i in gone.ids if i in names]
    assert not [p for p in root.rglob("*") if p.is_file() and p.read_bytes() in gone.thumbnails]
    assert len(list((root / "data" / "files").iterdir())) == len(stay.thumbnails)
    assert (root / "data" / "records.sqlite3-wal").stat().st_size == 0


def assert_search_finds_only_the_kept(kb, docs, kept: list[str], deleted: list[str], gone: Snapshot) -> None:
    assert all(kb.records.document(i) is None for i in gone.ids)
    for word in kept:
        hits = kb.search(word, k=3)
        assert hits and hits[0].chunk.source == docs[word].name
    for word in deleted:
        assert not any(h.chunk.doc_id in gone.ids for h in kb.search(word, k=10))


def test_a_delete_interrupted_before_its_scrub_is_scrubbed_on_the_next_open(tmp_path, temp_dir, monkeypatch):
    """The process ends after the record committed the delete and before the traces were removed: the
    mark left in the record makes the next open finish the job."""
    from retrieval import store

    words = [canary(), canary()]
    notes = {}
    for word in words:
        notes[word] = tmp_path / f"{word}.md"
        notes[word].write_text("\n\n".join(f"Line {j} says {word}." for j in range(20)), encoding="utf-8")
    kb = open_kb(tmp_path / "data")
    try:
        for word in words:
            assert kb.ingest(notes[word], source=notes[word].name).ok
            notes[word].unlink()
        gone = Snapshot(kb, [notes[words[0]].name])
        with monkeypatch.context() as patched:
            patched.setattr(store, "_scrub", lambda index, records: None)
            kb.delete(notes[words[0]].name)
        assert kb.records.scrub_pending
        assert gone.ids & scan(tmp_path / "data" / "chroma", ids=gone.ids).of(gone.ids), "nothing to scrub"
    finally:
        kb.close()
    kb = open_kb(tmp_path / "data")
    try:
        assert not kb.records.scrub_pending
        found = scan(tmp_path, strings=[needle(w) for w in words], ids=gone.ids, vectors=gone.vectors)
        assert found.of([needle(words[1])]) and not found.of([needle(words[0])])
        assert not found.of(gone.ids) and not found.of(gone.vectors)
    finally:
        kb.close()


def test_a_reader_holding_a_snapshot_delays_the_checkpoint_briefly_not_for_ever(tmp_path):
    records = Records(tmp_path / "records.sqlite3")
    try:
        records.set_meta("note", "x" * 5000)
        stuck = sqlite3.connect(tmp_path / "records.sqlite3")
        stuck.execute("BEGIN")
        stuck.execute("SELECT * FROM meta").fetchall()  # a snapshot held open
        assert records.checkpoint() is False  # gave up after a few seconds, and said so
        stuck.rollback()
        assert records.checkpoint() is True
        assert (tmp_path / "records.sqlite3-wal").stat().st_size == 0
        stuck.close()
    finally:
        records.close()


def test_destroy_removes_the_whole_knowledge_base(tmp_path, red_png):
    note = tmp_path / "note.md"
    note.write_text("A note about invoices.", encoding="utf-8")
    kb = open_kb(tmp_path / "data")
    kb.ingest_paths([note, red_png], sources=["note.md", "red.png"])
    searching = threading.Thread(target=lambda: kb.search("invoices"))  # a reader thread's connection too
    searching.start()
    searching.join()
    kb.destroy()
    assert not (tmp_path / "data").exists()
    assert kb.closed
    with pytest.raises(RetrievalError):
        kb.delete("note.md")
    again = open_kb(tmp_path / "data")  # the lock went with it: the folder can be used afresh
    try:
        assert again.count() == 0
    finally:
        again.close()


def test_destroy_deletes_the_collections_on_a_chroma_server(tmp_path):
    import chromadb

    note = tmp_path / "note.md"
    note.write_text("A note about invoices.", encoding="utf-8")
    with chroma_server(tmp_path / "server") as server:
        kb = open_kb(tmp_path / "data", chroma_url=server.url, collection="alice")
        other = open_kb(tmp_path / "other", chroma_url=server.url, collection="bob")
        try:
            kb.ingest(note, source="note.md")
            kb.destroy()
            client = chromadb.HttpClient(host="127.0.0.1", port=int(server.url.rsplit(":", 1)[1]))
            names = {getattr(c, "name", c) for c in client.list_collections()}
            assert names == {"bob-cross", "bob-text"}  # another knowledge base's collections stay
            assert not (tmp_path / "data").exists()
        finally:
            kb.close()  # nothing to do once destroyed
            other.close()
