"""Changing the embedder of an existing knowledge base re-embeds it from its record, with progress, instead
of refusing: real Chroma on disk, hashing embedders of other dimensions standing in for CLIP and SigLIP 2.
A failure part-way leaves the knowledge base as it was, usable with the old embedder."""

from __future__ import annotations

import sqlite3

import pytest

from retrieval.errors import EmbedderMismatchError
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.images import write_image


@pytest.fixture
def built(tmp_path):
    """A knowledge base made with a 64-dimension cross-modal embedder and a text embedder."""
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"note{i}.txt").write_text(f"Note {i} is about the harbour ferry and pier number {i}.")
    (docs / "timetable.md").write_text("# Timetable\n\nThe lighthouse tour leaves at noon from pier 7.")
    write_image(docs / "orange.png", (120, 90), "orange")
    data = tmp_path / "data"
    kb = KnowledgeBase.open(data, HashingEmbedder(64, "old-cross"), text_embedder=HashingEmbedder(96, "old-text"),
                            ocr=False)
    kb.ingest_paths(sorted(docs.iterdir()))
    chunks = kb.records.count()
    kb.close()
    return data, docs, chunks


def dims(data, space: str) -> set[int]:
    with sqlite3.connect(data / "records.sqlite3") as db:
        return {len(v) // 4 for (v,) in db.execute("SELECT vector FROM vectors WHERE space = ?", (space,))}


def test_a_new_cross_modal_embedder_re_embeds_with_progress(built):
    data, docs, chunks = built
    seen = []
    kb = KnowledgeBase.open(data, HashingEmbedder(128, "new-cross"), text_embedder=HashingEmbedder(96, "old-text"),
                            ocr=False, progress=lambda done, total: seen.append((done, total)))
    try:
        assert seen and seen[-1] == (chunks, chunks) and all(t == chunks for _, t in seen)
        assert kb.records.get_meta("embedder") == "new-cross|128"
        assert dims(data, "cross") == {128} and dims(data, "text") == {96}
        assert "cross.staged" not in {s for (s,) in sqlite3.connect(data / "records.sqlite3").execute(
            "SELECT DISTINCT space FROM vectors")}
        hits = kb.search("lighthouse tour pier 7", k=3)
        assert hits[0].chunk.source.endswith("timetable.md")
        from PIL import Image

        found = kb.search(None, [Image.new("RGB", (50, 50), "orange")], k=2)
        assert found[0].chunk.source.endswith("orange.png")  # the picture, embedded again from its thumbnail
        assert kb.ingest(docs / "note3.txt").status == "unchanged"
    finally:
        kb.close()
    again = []
    kb = KnowledgeBase.open(data, HashingEmbedder(128, "new-cross"), text_embedder=HashingEmbedder(96, "old-text"),
                            ocr=False, progress=lambda d, t: again.append(d))
    kb.close()
    assert again == []  # done once


def test_a_new_text_embedder_re_embeds_the_text_space(built):
    data, _, _ = built
    kb = KnowledgeBase.open(data, HashingEmbedder(64, "old-cross"), text_embedder=HashingEmbedder(48, "new-text"),
                            ocr=False)
    try:
        assert dims(data, "text") == {48} and dims(data, "cross") == {64}
        assert kb.search("lighthouse tour", k=1)[0].chunk.source.endswith("timetable.md")
    finally:
        kb.close()


class Failing(HashingEmbedder):
    def __init__(self, *args, after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.after = 0, after

    def embed_texts(self, texts):
        self.calls += 1
        if self.calls > self.after:
            raise RuntimeError("the embedder broke half-way")
        return super().embed_texts(texts)


def test_a_re_embedding_that_fails_leaves_the_knowledge_base_as_it_was(built):
    data, _, chunks = built
    with pytest.raises(RuntimeError, match="half-way"):
        KnowledgeBase.open(data, Failing(128, "new-cross", after=0), text_embedder=HashingEmbedder(96, "old-text"),
                           ocr=False)
    assert dims(data, "cross") == {64}  # the live vectors untouched (the staged ones are set aside)
    kb = KnowledgeBase.open(data, HashingEmbedder(64, "old-cross"), text_embedder=HashingEmbedder(96, "old-text"),
                            ocr=False)
    try:
        assert kb.records.get_meta("embedder") == "old-cross|64"
        assert kb.search("lighthouse tour pier 7", k=1)[0].chunk.source.endswith("timetable.md")
        assert kb.records.count() == chunks
    finally:
        kb.close()
    kb = KnowledgeBase.open(data, HashingEmbedder(128, "new-cross"), text_embedder=HashingEmbedder(96, "old-text"),
                            ocr=False)
    try:
        assert dims(data, "cross") == {128}
        assert kb.search("lighthouse tour pier 7", k=1)[0].chunk.source.endswith("timetable.md")
    finally:
        kb.close()


def test_a_reader_beside_the_writer_still_says_what_differs(built):
    data, _, _ = built
    with pytest.raises(EmbedderMismatchError, match="old-cross"):
        KnowledgeBase.open_reader(data, HashingEmbedder(128, "new-cross"), text_embedder=HashingEmbedder(96, "old-text"))
