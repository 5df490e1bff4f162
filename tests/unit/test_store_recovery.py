"""The record is the truth: a broken, missing, inconsistent or runaway vector index is repaired from it;
a second writer is refused; the size guard holds."""

import shutil
import sqlite3

import pytest

from retrieval.errors import KnowledgeBaseBusyError, StoreTooLargeError
from retrieval.store import KnowledgeBase
from retrieval.worker import InProcessParser
from tests.helpers.fakes import HashingEmbedder


def open_kb(data, **options):
    return KnowledgeBase.open(data, HashingEmbedder(), text_embedder=HashingEmbedder(128, "hash-text"),
                              parser=InProcessParser(), ocr=False, **options)


@pytest.fixture
def filled(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(5):
        (docs / f"d{i}.md").write_text(f"# D{i}\n\nUnique word zeta{i}q and shared words.")
    kb = open_kb(tmp_path / "data")
    kb.ingest_paths([docs])
    count = kb.count()
    kb.close()
    return tmp_path / "data", count


def assert_all_found(kb, count):
    assert kb.count() == count
    for i in range(5):
        assert kb.search(f"zeta{i}q", k=1)[0].chunk.source.endswith(f"d{i}.md")
    for coll in kb.index.collections.values():
        assert coll.count() == count


def test_second_writer_is_refused_clearly(filled):
    data, _ = filled
    kb = open_kb(data)
    try:
        with pytest.raises(KnowledgeBaseBusyError, match="open for writing in another process"):
            open_kb(data)
    finally:
        kb.close()
    open_kb(data).close()  # free again once closed


def test_deleted_index_is_rebuilt_from_the_record(filled):
    data, count = filled
    shutil.rmtree(data / "chroma")
    kb = open_kb(data)
    try:
        assert_all_found(kb, count)
    finally:
        kb.close()


def test_garbled_index_is_rebuilt(filled):
    data, count = filled
    for path in (data / "chroma").rglob("*"):
        if path.is_file():
            path.write_bytes(b"\x00garbage" * 64)
    (data / "index.clean").unlink(missing_ok=True)  # as after a crash
    kb = open_kb(data)
    try:
        assert any(r.startswith("rebuilt") for r in kb.index.repairs)
        assert_all_found(kb, count)
    finally:
        kb.close()


def test_vectors_missing_from_the_index_are_restored_and_strays_removed(filled):
    data, count = filled
    kb = open_kb(data)
    cross = kb.index.collections["cross"]
    victim = cross.get(limit=1)["ids"][0]
    cross.delete(ids=[victim])
    cross.upsert(ids=["stray"], embeddings=[[0.1] * 256])
    kb.close()
    kb = open_kb(data)
    try:
        assert kb.index.repairs == ["removed 1 uncommitted cross vectors", "restored 1 cross vectors"]
        assert_all_found(kb, count)
    finally:
        kb.close()


def test_runaway_index_is_rebuilt_and_ingest_stops_at_the_guard(filled, tmp_path):
    data, count = filled
    (data / "chroma" / "runaway.bin").write_bytes(b"\x00" * 3_000_000)
    kb = open_kb(data, max_store_bytes=2_000_000)
    try:
        assert kb.index.repairs and "size guard" in kb.index.repairs[0]
        assert not (data / "chroma" / "runaway.bin").exists()
        assert_all_found(kb, count)
    finally:
        kb.close()
    tiny = open_kb(data, max_store_bytes=1)
    try:
        extra = tmp_path / "more.md"
        extra.write_text("more")
        with pytest.raises(StoreTooLargeError, match="size guard"):
            tiny.ingest(extra)
    finally:
        tiny.close()


def test_record_survives_and_is_the_truth(filled):
    data, count = filled
    db = sqlite3.connect(data / "records.sqlite3")
    assert db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0] == count
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.close()


def test_orphan_thumbnails_are_removed_on_open(filled):
    data, _ = filled
    (data / "files" / "0123orphan.jpg").write_bytes(b"x")
    kb = open_kb(data)
    try:
        assert not (data / "files" / "0123orphan.jpg").exists()
    finally:
        kb.close()


def test_a_replaced_version_left_by_a_crash_goes_on_the_next_ingest(tmp_path, monkeypatch):
    note = tmp_path / "note.md"
    note.write_text("version one")
    kb = open_kb(tmp_path / "data")
    try:
        kb.ingest(note, source="note.md")
        old = kb.documents()[0].doc_id
        note.write_text("version two")
        with monkeypatch.context() as m:  # the crash: the new version committed, the old one not deleted
            m.setattr(kb, "delete", lambda doc: None)
            kb.ingest(note, source="note.md")
        assert len(kb.documents()) == 2
        assert kb.ingest(note, source="note.md").status == "unchanged"
        assert [d.doc_id != old for d in kb.documents()] == [True]
    finally:
        kb.close()


def test_a_file_removed_while_the_index_is_measured_is_no_error(filled, monkeypatch):
    """The crash probe measures the index while Chroma, opening it in a child process, creates and
    removes ``chroma.sqlite3-journal``. A file listed and removed before its size was read made the
    whole reopen fail with FileNotFoundError (CI, on a busy machine). The window, opened every time:
    the listing is taken, the file removed, then the sizes are read."""
    import os

    from retrieval import index

    data, count = filled
    # Chroma's journal came and went; a stand-in of another name, since SQLite itself would read a
    # file named like its journal (the probe's child opens the database meanwhile)
    journal = data / "chroma" / "vanishing-journal"
    real_walk = os.walk

    def walk_then_remove(top, *args, **kwargs):
        journal.write_bytes(b"a file that is gone before its size is read")
        listing = list(real_walk(top, *args, **kwargs))
        journal.unlink()
        yield from listing

    monkeypatch.setattr(index.os, "walk", walk_then_remove)
    assert index.directory_size(data / "chroma") > 0
    assert index.probe(data / "chroma", max_bytes=10**9) is None
    (data / "index.clean").unlink()  # as after a crash: reopening measures the index while probing it
    kb = open_kb(data)
    try:
        assert not any(r.startswith("rebuilt") for r in kb.index.repairs)
        assert_all_found(kb, count)
    finally:
        kb.close()
