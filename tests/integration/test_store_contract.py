"""The knowledge base's contract, the same tests against each place its vector index can live, in the
spirit of langchain-chroma's standard tests: Chroma on local disk, a real Chroma server (``chroma run``),
and the read-only view a second process gets beside a running app (exact search over the record).

What every backend must do: add, re-add unchanged, replace changed, delete; search in each direction
(a question finds a passage, a question finds a figure by the words in it, an image finds similar
images, an image with words finds passages); reopen after a clean close without repairs, and after an
unclean one (a process that ends without closing) with nothing acknowledged lost and record and index
in agreement."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from retrieval.errors import KnowledgeBaseBusyError
from retrieval.store import CLEAN_MARKER, KnowledgeBase
from retrieval.types import view_of
from tests.helpers.chroma_server import chroma_server
from tests.helpers.crash import open_kb
from tests.helpers.documents import text_image
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.images import write_image

ROOT = Path(__file__).resolve().parents[2]
TEXT_OPTIONS = {"text_embedder": HashingEmbedder(128, "hash-text")}


class Backend:
    """Opens the knowledge base in ``data`` with its index in one place; ``abandon`` ingests in another
    process that exits without closing."""

    def __init__(self, name: str, data: Path, url: str = ""):
        self.name, self.data, self.url = name, data, url

    def open(self) -> KnowledgeBase:
        return open_kb(self.data, chroma_url=self.url or None, ocr=True)

    def abandon(self, *paths: Path) -> list[str]:
        done = subprocess.run([sys.executable, "-m", "tests.helpers.replica", str(self.data), self.url,
                               "abandon", *map(str, paths)], capture_output=True, text=True, cwd=ROOT,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(params=["local", "server"])
def backend(request, tmp_path):
    if request.param == "local":
        yield Backend("local", tmp_path / "data")
        return
    with chroma_server(tmp_path / "chroma-server") as server:
        yield Backend("server", tmp_path / "data", server.url)


@pytest.fixture
def kb(backend):
    base = backend.open()
    yield base
    base.close()


@pytest.fixture
def docs(tmp_path) -> Path:
    d = tmp_path / "docs"
    d.mkdir()
    (d / "invoice.txt").write_text("The invoice total is 42 euros, due in March.", encoding="utf-8")
    (d / "pets.md").write_text("# Pets\n\nCats and dogs are common pets.\n\n## Cars\n\nA red car.")
    write_image(d / "red.png", (120, 80), "red")
    text_image("QUARTERLY REVENUE CHART", d / "chart.png")
    return d


def ingest_all(kb: KnowledgeBase, docs: Path) -> dict[str, str]:
    return {Path(r.source).name: r.status for r in kb.ingest_paths(sorted(docs.iterdir()),
                                                                  sources=[p.name for p in sorted(docs.iterdir())])}


def consistent(kb: KnowledgeBase) -> None:
    """Record, index and files agree: every vector in the record is in the index and nothing else is;
    every thumbnail on disk belongs to a chunk in the record."""
    for space, collection in kb.index.collections.items():
        assert set(collection.get(include=[])["ids"]) == kb.records.vector_ids(space), space
    thumbnails = {Path(t).name for (t,) in kb.records.read.execute(
        "SELECT thumbnail FROM chunks WHERE thumbnail IS NOT NULL")}
    views = {view_of(t).name for t in thumbnails}  # each picture's view for the model, beside its thumbnail
    assert {f.name for f in kb.files_dir.iterdir()} == thumbnails | views


def names(hits) -> list[str]:
    return [Path(h.chunk.source).name for h in hits]


def test_add(kb, docs):
    assert ingest_all(kb, docs) == dict.fromkeys(["chart.png", "invoice.txt", "pets.md", "red.png"], "added")
    assert sorted(d.source for d in kb.documents()) == ["chart.png", "invoice.txt", "pets.md", "red.png"]
    assert kb.count() == sum(d.chunks for d in kb.documents())
    consistent(kb)


def test_re_adding_unchanged_files_changes_nothing(kb, docs):
    ingest_all(kb, docs)
    before = ({d.doc_id for d in kb.documents()}, kb.count())
    assert set(ingest_all(kb, docs).values()) == {"unchanged"}
    assert ({d.doc_id for d in kb.documents()}, kb.count()) == before
    consistent(kb)


def test_a_changed_file_replaces_its_old_version(kb, docs):
    ingest_all(kb, docs)
    (docs / "invoice.txt").write_text("The receipt shows 17 dollars, paid in June.", encoding="utf-8")
    assert ingest_all(kb, docs)["invoice.txt"] == "replaced"
    assert [d.source for d in kb.documents()].count("invoice.txt") == 1
    assert "euros" not in " ".join(h.chunk.text for h in kb.search("invoice euros March", k=8))
    assert names(kb.search("receipt dollars June", k=1)) == ["invoice.txt"]
    consistent(kb)


def test_delete_leaves_no_vector_record_or_file(kb, docs):
    ingest_all(kb, docs)
    assert kb.delete("red.png").source == "red.png"
    assert kb.delete("invoice.txt").source == "invoice.txt"
    assert sorted(d.source for d in kb.documents()) == ["chart.png", "pets.md"]
    assert "invoice.txt" not in names(kb.search("invoice total euros", k=8))
    assert "red.png" not in names(kb.search(images=[Image.new("RGB", (20, 20), (250, 0, 0))], k=8))
    consistent(kb)


def check_every_direction(kb: KnowledgeBase) -> None:
    assert names(kb.search("invoice total euros", k=1)) == ["invoice.txt"]  # question -> passage
    assert names(kb.search("quarterly revenue", k=1)) == ["chart.png"]  # question -> figure, by its words
    hits = kb.search(images=[Image.new("RGB", (30, 30), (250, 10, 10))], k=1)  # image -> similar image
    assert names(hits) == ["red.png"] and hits[0].chunk.kind == "image"
    photo = text_image("invoice total")  # image -> passage, by the words in it
    assert "invoice.txt" in names(kb.search(images=[photo], k=2))


def test_search_in_each_direction(kb, docs):
    ingest_all(kb, docs)
    check_every_direction(kb)


def test_reopen_after_a_clean_close(backend, docs):
    kb = backend.open()
    ingest_all(kb, docs)
    listing, ranked = kb.documents(), names(kb.search("cats dogs pets", k=4))
    kb.close()
    if backend.name == "local":
        assert (backend.data / CLEAN_MARKER).exists()
    kb = backend.open()
    try:
        assert kb.index.repairs == []  # nothing to probe or fix after a clean close
        assert kb.documents() == listing and names(kb.search("cats dogs pets", k=4)) == ranked
        check_every_direction(kb)
        consistent(kb)
    finally:
        kb.close()


def test_reopen_after_an_unclean_close(backend, docs):
    kb = backend.open()  # create the record (and, for the server, the collections) first
    kb.close()
    assert backend.abandon(*sorted(docs.iterdir())) == ["added"] * 4
    assert not (backend.data / CLEAN_MARKER).exists()
    kb = backend.open()
    try:
        assert sorted(d.source for d in kb.documents()) == ["chart.png", "invoice.txt", "pets.md", "red.png"]
        check_every_direction(kb)
        consistent(kb)
        assert set(ingest_all(kb, docs).values()) == {"unchanged"}  # and nothing is ingested twice
    finally:
        kb.close()


def test_a_reader_beside_the_writer_sees_what_the_writer_sees(tmp_path, docs):
    """The CLI beside a running app: no lock, nothing written, exact search over the committed record."""
    writer = open_kb(tmp_path / "data", ocr=True)
    try:
        ingest_all(writer, docs)
        reader = KnowledgeBase.open_for(tmp_path / "data", HashingEmbedder(), write=False, **TEXT_OPTIONS)
        try:
            assert reader.readonly and reader.documents() == writer.documents()
            queries = [("invoice total euros", None), ("quarterly revenue", None), ("cats dogs", None),
                       (None, Image.new("RGB", (30, 30), (250, 10, 10))), (None, text_image("invoice total"))]
            for text, image in queries:
                images = [image] if image is not None else []
                mine, theirs = reader.search(text, images, k=3), writer.search(text, images, k=3)
                # the best hit is the same, with the same similarity (exact here, HNSW there); below it,
                # ties (hashed vectors share no dimension: similarity 0) may come in another order
                assert names(mine)[0] == names(theirs)[0] and mine[0].score == pytest.approx(theirs[0].score)
            check_every_direction(reader)
            with pytest.raises(KnowledgeBaseBusyError, match="open for writing in another process"):
                reader.ingest(docs / "invoice.txt")
            with pytest.raises(KnowledgeBaseBusyError):
                reader.delete("invoice.txt")
            writer.delete("pets.md")  # the writer goes on; the reader sees the committed change
            assert "pets.md" not in [d.source for d in reader.documents()]
        finally:
            reader.close()
        consistent(writer)
    finally:
        writer.close()
    assert (tmp_path / "data" / CLEAN_MARKER).exists()  # the reader's close did not disturb the writer's
