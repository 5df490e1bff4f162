"""The knowledge base over real Chroma on disk, with a hashing embedder at the edge."""

from pathlib import Path

import pytest

from retrieval.errors import DocumentNotFoundError, EmbedderMismatchError
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.images import write_image


@pytest.fixture
def docs(tmp_path):
    d = tmp_path / "docs"
    d.mkdir()
    (d / "invoice.txt").write_text("The invoice total is 42 euros, due in March.", encoding="utf-8")
    (d / "notes.md").write_text("# Pets\n\nCats and dogs are common pets.\n\n## Cars\n\nA red car.")
    write_image(d / "red.png", (120, 80), "red")
    write_image(d / "sub" / "blue.jpg", (60, 60), "blue")
    (d / ".hidden.txt").write_text("secret")
    (d / "skip.xyz").write_text("not supported")
    return d


@pytest.fixture
def kb(tmp_path):
    base = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), chunk_size=60, chunk_overlap=0)
    yield base
    base.close()


def test_folder_ingest_reopen_and_search(tmp_path, docs):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    reports = kb.ingest_paths([docs])
    assert sorted(r.source.rsplit("/", 1)[-1] for r in reports) == ["blue.jpg", "invoice.txt", "notes.md", "red.png"]
    assert all(r.status == "added" for r in reports)
    count = kb.count()
    kb.close()

    reopened = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    assert reopened.count() == count
    hits = reopened.search("invoice total euros", k=3)
    assert hits[0].chunk.source.endswith("invoice.txt") and hits[0].chunk.kind == "text"
    assert hits[0].score > hits[-1].score
    reopened.close()


def test_image_query_finds_the_similar_image(kb, docs):
    from PIL import Image

    kb.ingest_paths([docs])
    hits = kb.search(images=[Image.new("RGB", (30, 30), (250, 10, 10))], k=2)
    assert hits[0].chunk.source.endswith("red.png") and hits[0].chunk.kind == "image"
    assert hits[0].chunk.thumbnail and hits[0].chunk.thumbnail.endswith(".jpg")


def test_text_and_image_queries_are_merged_without_duplicates(kb, docs):
    from PIL import Image

    kb.ingest_paths([docs])
    hits = kb.search("invoice total", [Image.new("RGB", (8, 8), "red")], k=5)
    ids = [h.chunk.id for h in hits]
    assert len(ids) == len(set(ids))
    sources = {h.chunk.source.rsplit("/", 1)[-1] for h in hits}
    assert {"invoice.txt", "red.png"} <= sources


def test_reingest_changes_nothing(kb, docs):
    kb.ingest_paths([docs])
    before = (kb.count(), kb.documents())
    again = kb.ingest_paths([docs])
    assert {r.status for r in again} == {"unchanged"}
    assert (kb.count(), kb.documents()) == before


def test_changed_file_replaces_its_old_version(kb, docs):
    path = docs / "invoice.txt"
    kb.ingest(path)
    path.write_text("The invoice total is now 99 euros.")
    report = kb.ingest(path)
    assert report.status == "replaced"
    texts = [h.chunk.text for h in kb.search("invoice total", k=10)]
    assert any("99" in t for t in texts) and not any("42" in t for t in texts)
    assert len(kb.documents()) == 1


def test_delete_removes_every_vector_and_file(kb, docs):
    reports = {r.source.rsplit("/", 1)[-1]: r for r in kb.ingest_paths([docs])}
    red = reports["red.png"]
    thumbs = [Path(t) for (t,) in kb.records.db.execute(
        "SELECT thumbnail FROM chunks WHERE doc_id = ? AND thumbnail IS NOT NULL", (red.doc_id,))]
    assert thumbs and all(t.exists() for t in thumbs)
    before = kb.index.collections["cross"].count()
    info = kb.delete(red.doc_id)
    assert info.source.endswith("red.png")
    assert not any(h.chunk.doc_id == red.doc_id for h in kb.search("red", k=20))
    assert not any(t.exists() for t in thumbs)
    assert kb.index.collections["cross"].count() == before - red.chunks
    assert red.doc_id not in {d.doc_id for d in kb.documents()}
    with pytest.raises(DocumentNotFoundError):
        kb.delete(red.doc_id)


def test_another_embedder_re_embeds_and_a_reader_beside_a_writer_is_refused(tmp_path, docs):
    """A writer re-embeds from the record (tests/integration/test_reembed.py); a reader, which may not
    write, says which embedder the knowledge base was built with, and leaves it untouched."""
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(64, "hash-a"))
    kb.ingest_paths([docs])
    count = kb.count()
    kb.close()
    with pytest.raises(EmbedderMismatchError, match="hash-a.*hash-b"):
        KnowledgeBase.open_reader(tmp_path / "data", HashingEmbedder(32, "hash-b"))
    again = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(32, "hash-b"))
    assert again.count() == count and again.records.get_meta("embedder") == "hash-b|32"
    again.close()


def test_bad_files_fail_one_by_one_and_the_batch_goes_on(kb, tmp_path, docs):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"")
    (bad / "binary.txt").write_bytes(b"\x00\x01\xff\xfe" * 100 + b"\x80")
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnope")
    (bad / "table.csv").write_text("a,b")
    files = sorted(bad.iterdir()) + [bad / "missing.txt", docs / "invoice.txt"]
    reports = kb.ingest_paths(files)
    failed = {r.source.rsplit("/", 1)[-1]: r.error for r in reports if r.status == "failed"}
    assert set(failed) == {"empty.txt", "binary.txt", "broken.png", "table.csv", "missing.txt"}
    assert "empty" in failed["empty.txt"] and "binary" in failed["binary.txt"]
    assert "unsupported" in failed["table.csv"] and "readable image" in failed["broken.png"]
    assert [r.status for r in reports][-1] == "added"
    assert len(kb.documents()) == 1


def test_text_is_split_into_chunks_with_locators(kb, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text("\n\n".join(f"Paragraph {i} talks about topic {i}." for i in range(20)))
    report = kb.ingest(long)
    assert report.chunks > 3
    locators = {h.chunk.locator for h in kb.search("topic", k=50)}
    assert "part 1" in locators and f"part {report.chunks}" in locators


def test_uploads_keep_their_display_name(kb, docs):
    [report] = kb.ingest_paths([docs / "invoice.txt"], sources=["Invoice March.txt"])
    assert report.source == "Invoice March.txt"
    assert kb.documents()[0].source == "Invoice March.txt"


def test_empty_knowledge_base_returns_no_hits(kb):
    assert kb.search("anything") == [] and kb.documents() == []


def test_vectors_not_yet_committed_never_take_the_place_of_committed_hits(kb, docs):
    """An ingest puts its vectors in the index a moment before its record commits; a search in that
    moment must still fill every place with committed chunks (it used to return fewer, or none)."""
    kb.ingest_paths([docs])
    query = kb.embedder.embed_texts(["invoice total euros"])
    kb.index.add("cross", [f"pending{i}" for i in range(30)], query.repeat(30, axis=0))  # best possible matches
    hits = kb.search("invoice total euros", k=3)
    assert len(hits) == 3 and hits[0].chunk.source.endswith("invoice.txt")
    assert all(not h.chunk.id.startswith("pending") for h in hits)


def test_a_document_deleted_during_a_search_gives_up_its_places_to_others(kb, docs):
    """A delete that commits after the index answered but before the chunks are read: the k places are
    filled from what is still there (they used to be left empty)."""
    kb.ingest_paths([docs])
    query, deleted = kb.index.query, []

    def then_delete(space, vector, n):
        hits = query(space, vector, n)
        if not deleted:  # the first ranking is made; now another thread's delete commits
            deleted.append(kb.delete("invoice.txt"))
        return hits

    kb.index.query = then_delete
    hits = kb.search("invoice total euros", k=3)
    assert len(hits) == 3 and not any(h.chunk.source.endswith("invoice.txt") for h in hits)


def test_every_hit_carries_its_evidence(tmp_path, docs):
    """Cosine per space that found it, BM25 when keywords did, and its rank after fusion; the score is the
    best cosine (what the threshold compares), so a hit found by keywords alone still has one."""
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), text_embedder=HashingEmbedder(96, "text-hash"))
    try:
        kb.ingest_paths([docs])
        hits = kb.search("invoice total euros", k=4)
        top = hits[0]
        assert top.chunk.source.endswith("invoice.txt")
        assert {"cross", "text", "bm25", "fused_rank"} <= set(top.evidence) and top.evidence["bm25"] > 0
        assert top.score == max(top.evidence["cross"], top.evidence["text"])
        assert [h.evidence["fused_rank"] for h in hits] == sorted(h.evidence["fused_rank"] for h in hits)
        assert top.to_dict()["evidence"]["fused_rank"] == 1
        picture = kb.search(None, [__import__("PIL.Image", fromlist=["Image"]).new("RGB", (20, 20), "red")], k=1)[0]
        assert set(picture.evidence) == {"cross", "fused_rank"}  # found by its pixels alone
    finally:
        kb.close()


class _Timeline:
    """A parser and a text embedder that note, in one list, when each file's parse began and each
    embedding ended; the embedder can wait for a parse, to show how far ahead the batch reads."""

    def __init__(self, wait_for: str | None = None):
        import threading

        from retrieval.worker import InProcessParser

        self.events: list[tuple[str, str]] = []
        self.inner, self.hashing = InProcessParser(), HashingEmbedder()
        self.wait_for, self.seen = wait_for, threading.Event()
        self.name, self.dim = self.hashing.name, self.hashing.dim

    def parse(self, path, options):
        self.events.append(("parse", path.name))
        if path.name == self.wait_for:
            self.seen.set()
        return self.inner.parse(path, options)

    def ocr(self, images, name, *, layout=False):
        return self.inner.ocr(images, name, layout=layout)

    def embed_texts(self, texts):
        if self.wait_for:
            self.seen.wait(5)  # the first file's embedding waits (at most 5 s) for the parse named
        vectors = self.hashing.embed_texts(texts)
        self.events.append(("embedded", texts[0].split()[0]))
        return vectors

    def close(self):
        pass


def _notes(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        (folder / f"n{i}.md").write_text(f"note{i} " + "words " * 20)
    return folder


def test_a_batch_reads_files_ahead_of_the_embedding_while_memory_allows(tmp_path):
    timeline = _Timeline(wait_for="n5.md")  # the first embedding goes on only once the last file is begun
    kb = KnowledgeBase.open(tmp_path / "data", None, text_embedder=timeline, parser=timeline)
    try:
        reports = kb.ingest_paths([_notes(tmp_path / "docs", 6)])
    finally:
        kb.close()
    assert [r.status for r in reports] == ["added"] * 6 and [r.source[-5:] for r in reports] == \
        [f"n{i}.md" for i in range(6)]  # reported in the batch's order
    first_embedded = timeline.events.index(("embedded", "note0"))
    assert timeline.events.index(("parse", "n5.md")) < first_embedded  # all six read while the first waited


def test_read_ahead_stops_at_its_memory_budget(tmp_path, monkeypatch):
    import retrieval.store as store

    monkeypatch.setattr(store, "READ_AHEAD_BYTES", 1)  # one file waiting to be embedded at most
    timeline = _Timeline()
    kb = KnowledgeBase.open(tmp_path / "data", None, text_embedder=timeline, parser=timeline)
    try:
        reports = kb.ingest_paths([_notes(tmp_path / "docs", 6)])
    finally:
        kb.close()
    assert [r.status for r in reports] == ["added"] * 6
    events = timeline.events
    for i in range(4):  # file i+2 is begun only once file i+1 is taken up, after file i is embedded
        assert events.index(("embedded", f"note{i}")) < events.index(("parse", f"n{i + 2}.md")), events


def test_a_file_is_stored_while_the_next_is_embedded(tmp_path, monkeypatch):
    """A store waits on the disk (its commit is the acknowledgement): the batch embeds the next file
    meanwhile, and still reports in the files' order."""
    import time

    timeline = _Timeline()
    store = KnowledgeBase._store

    def slow_first_store(self, doc_id, source, *args, **kwargs):
        if source.endswith("n0.md"):  # waits (at most 5 s) for the next file's embedding
            deadline = time.monotonic() + 5
            while ("embedded", "note1") not in timeline.events and time.monotonic() < deadline:
                time.sleep(0.01)
        report = store(self, doc_id, source, *args, **kwargs)
        timeline.events.append(("stored", Path(source).name))
        return report

    monkeypatch.setattr(KnowledgeBase, "_store", slow_first_store)
    kb = KnowledgeBase.open(tmp_path / "data", None, text_embedder=timeline, parser=timeline)
    try:
        reports = kb.ingest_paths([_notes(tmp_path / "docs", 3)])
        assert kb.count() == 3
    finally:
        kb.close()
    assert [(r.status, Path(r.source).name) for r in reports] == [("added", f"n{i}.md") for i in range(3)]
    events = timeline.events
    assert events.index(("embedded", "note1")) < events.index(("stored", "n0.md")), events


def test_a_full_store_found_by_the_writer_stops_the_batch_and_leaves_no_pictures(tmp_path, monkeypatch):
    """The writer finds the store full while the next file is embedded (its pictures written): the batch
    stops with the error, and no picture file of a document not stored is left behind."""
    from retrieval.errors import StoreTooLargeError

    docs = tmp_path / "docs"
    for i, colour in enumerate(["red", "green", "blue", "yellow"]):
        write_image(docs / f"n{i}.png", (80, 60), colour)
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    store = KnowledgeBase._store

    def full_after_one(self, doc_id, source, *args, **kwargs):
        if not source.endswith("n0.png"):
            raise StoreTooLargeError("The vector index is over its size guard")
        return store(self, doc_id, source, *args, **kwargs)

    monkeypatch.setattr(KnowledgeBase, "_store", full_after_one)
    try:
        with pytest.raises(StoreTooLargeError):
            kb.ingest_paths([docs])
        [stored] = kb.documents()
        assert Path(stored.source).name == "n0.png"  # stored before it filled up
        kept = {Path(c.thumbnail).name for c in kb.records.chunks(kb.records.chunk_ids(stored.doc_id)).values()}
        assert kept and {p.name for p in kb.files_dir.iterdir()} == kept | {f"{Path(n).stem}.view.jpg"
                                                                             for n in kept}
    finally:
        kb.close()


def test_a_failed_store_keeps_the_pictures_of_the_same_document_under_another_name(tmp_path, monkeypatch):
    """Two copies of one file in a batch are one document (same pictures): the first failing to be stored
    while the second is embedded must not take the second's pictures with it."""
    docs = tmp_path / "docs"
    write_image(docs / "a.png", (80, 60), "red")
    write_image(docs / "b.png", (80, 60), "red")
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    store = KnowledgeBase._store

    def first_fails(self, doc_id, source, *args, **kwargs):
        if source.endswith("a.png"):
            raise OSError(5, "Input/output error")
        return store(self, doc_id, source, *args, **kwargs)

    monkeypatch.setattr(KnowledgeBase, "_store", first_fails)
    try:
        reports = kb.ingest_paths([docs])
        assert [r.status for r in reports] == ["failed", "added"]
        [chunk] = kb.records.chunks(kb.records.chunk_ids(reports[1].doc_id)).values()
        assert Path(chunk.thumbnail).is_file()
    finally:
        kb.close()


def test_a_knowledge_base_opened_in_one_thread_and_closed_in_another_opens_again(tmp_path):
    """The app opens a knowledge base in a loader thread and closes it from another (a workspace closed):
    its lock is released, so it opens again in this process."""
    import threading

    opened = {}
    loader = threading.Thread(target=lambda: opened.setdefault(
        "kb", KnowledgeBase.open(tmp_path / "data", None, text_embedder=HashingEmbedder())))
    loader.start()
    loader.join()
    opened["kb"].close()
    KnowledgeBase.open(tmp_path / "data", None, text_embedder=HashingEmbedder()).close()


def test_a_core_given_to_the_parse_is_taken_from_that_call_alone():
    import contextvars
    from concurrent.futures import ThreadPoolExecutor

    import torch

    from retrieval.embedders import with_a_core_given

    cores = torch.get_num_threads()
    if cores < 2:
        pytest.skip("one core: none to give")
    assert with_a_core_given(torch.get_num_threads) == cores - 1
    assert torch.get_num_threads() == cores  # the caller keeps its threads
    assert ThreadPoolExecutor(1).submit(torch.get_num_threads).result() == cores  # and a thread begun later
    name = contextvars.ContextVar("name")
    name.set("alice")
    assert with_a_core_given(name.get) == "alice"  # run in the caller's context (Gradio's progress is one)
    with pytest.raises(ValueError, match="invalid literal"):
        with_a_core_given(lambda: int("x"))
