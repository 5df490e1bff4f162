"""Several named knowledge bases per user and the shared library, on real Chroma on disk: created, renamed,
chosen for the chat, searched together, deleted with every file; the shared library read by all and
changed by administrators only."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import AssistantError, InputError
from assistant.settings import Settings
from assistant.shelf import DEFAULT, SHARED, Catalogue
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import scripted_workspaces


@pytest.fixture
def workspaces(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", auth={"mode": "password"},
                        retrieval={"text_embedder": "", "ocr": False})
    spaces = scripted_workspaces(settings, ScriptedModel(), admins={"root"})
    yield spaces
    spaces.close()


def _write(folder, name, text):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_user_creates_renames_chooses_and_deletes_knowledge_bases(workspaces, tmp_path):
    shelf = workspaces.of("alice").shelf
    assert [(b.id, b.title, b.used) for b in shelf.bases()] == [
        (DEFAULT, "My documents", True), (SHARED, "Shared library", True)]
    assert not shelf.bases()[1].writable  # alice is no administrator

    papers = shelf.create("Papers")
    assert papers.id.startswith("kb-") and papers.used
    with pytest.raises(InputError, match="already have"):
        shelf.create("papers")
    with pytest.raises(InputError, match="shared library"):
        shelf.create("Shared library")
    shelf.rename(papers.id, "Research papers")
    assert shelf.resolve("research PAPERS") == papers.id and shelf.resolve("") == DEFAULT

    docs = tmp_path / "docs"
    shelf.knowledge(DEFAULT, write=True).ingest([_write(docs, "kettle.txt", "The kettle hotline is 0800 555 0199.")])
    shelf.knowledge(papers.id, write=True).ingest(
        [_write(docs, "lens.txt", "The telescope lens grinding tolerance is 0.02 millimetres.")])
    assert [Path(d.source).name for d in shelf.knowledge(papers.id).documents()] == ["lens.txt"]
    assert [Path(d.source).name for d in shelf.knowledge(DEFAULT).documents()] == ["kettle.txt"]

    # the chat searches the chosen ones together
    found = {Path(h.chunk.source).name for h in shelf.search("kettle hotline telescope lens tolerance", k=4)}
    assert found == {"kettle.txt", "lens.txt"}
    shelf.choose([papers.id])
    assert {Path(h.chunk.source).name for h in shelf.search("kettle hotline telescope lens tolerance", k=4)} == {"lens.txt"}
    assert [b.id for b in shelf.bases() if b.used] == [papers.id]
    shelf.choose([])
    assert shelf.search("kettle hotline", k=4) == []

    # the pipeline answers from the chosen ones
    shelf.choose([DEFAULT, papers.id])
    from assistant.pipeline import Retrieved
    from assistant.types import ChatRequest

    events = list(workspaces.of("alice").pipeline.answer(ChatRequest("telescope lens tolerance")))
    assert [s.name for s in next(e for e in events if isinstance(e, Retrieved)).sources][0] == "lens.txt"

    # deleting one removes its folder and every file; the first one cannot go
    folder = workspaces.data_dir / "users" / "alice" / "knowledge-bases" / papers.id
    assert folder.is_dir()
    assert shelf.delete(papers.id) == "Research papers"
    assert not folder.exists() and [b.id for b in shelf.bases()] == [DEFAULT, SHARED]
    with pytest.raises(InputError, match="cannot be deleted"):
        shelf.delete(DEFAULT)
    with pytest.raises(InputError, match="no knowledge base"):
        shelf.knowledge(papers.id)


def test_the_shared_library_is_read_by_all_and_changed_by_administrators_only(workspaces, tmp_path):
    root, alice, bob = (workspaces.of(n).shelf for n in ("root", "alice", "bob"))
    guideline = _write(tmp_path / "docs", "guideline.txt", "Hand hygiene: rub hands with alcohol for 30 seconds.")
    with pytest.raises(AssistantError, match="Only an administrator"):
        alice.knowledge(SHARED, write=True)
    root.knowledge(SHARED, write=True).ingest([guideline])
    for shelf in (alice, bob):
        assert [Path(h.chunk.source).name for h in shelf.search("hand hygiene alcohol", k=2)] == ["guideline.txt"]
    with pytest.raises(InputError, match="managed by an administrator"):
        alice.delete(SHARED)
    with pytest.raises(InputError, match="keeps its name"):
        root.rename(SHARED, "Mine")
    # a user's own knowledge bases stay theirs: bob's new one is not alice's
    theirs = bob.create("Bob's notes")
    with pytest.raises(InputError):
        alice.knowledge(theirs.id)
    assert [b.id for b in alice.bases()] == [DEFAULT, SHARED]
    # thumbnails are found through the shelf: the shared library's for everyone, bob's own only for bob
    assert alice.thumbnail("../users/bob/knowledge/files/x.jpg") is None


def test_removing_a_user_removes_every_knowledge_base_of_theirs(workspaces, tmp_path):
    shelf = workspaces.of("carol").shelf
    extra = shelf.create("Extra")
    shelf.knowledge(extra.id, write=True).ingest([_write(tmp_path / "d", "a.txt", "carol canary zq81x")])
    shelf.knowledge(DEFAULT, write=True).ingest([_write(tmp_path / "d", "b.txt", "carol canary kk42y")])
    root = workspaces.of("root").shelf
    root.knowledge(SHARED, write=True).ingest([_write(tmp_path / "d", "c.txt", "shared words stay")])
    workspaces.remove("carol")
    assert not (workspaces.data_dir / "users" / "carol").exists()
    leftovers = [p for p in workspaces.data_dir.rglob("*") if p.is_file()
                 and (b"zq81x" in p.read_bytes() or b"kk42y" in p.read_bytes())]
    assert leftovers == []
    assert [Path(h.chunk.source).name for h in root.search("shared words", k=1)] == ["c.txt"]
