"""Private knowledge bases with sign-in: three users of one real app (tiny Qwen2.5-VL and CLIP through the
product's composition root, real Chroma on disk), each a real ``gradio_client`` signed in as themselves.
Each adds a document holding a canary word of their own; no user's documents list, search, chat sources
or delete reaches another's."""

from __future__ import annotations

import secrets

import pytest
from gradio_client import Client, handle_file

from assistant.accounts import UsersFile
from assistant.composition import build_workspaces
from tests.helpers.server import app_settings, ask, serve

pytestmark = pytest.mark.integration
USERS = {"alice": "alices long password", "bob": "bobs long password", "carol": "carols long password"}


@pytest.fixture(scope="module")
def app(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workspaces")
    settings = app_settings(tmp, auth={"mode": "password"},
                            model={"checkpoint": str(tiny_models["qwen2_5_vl"]), "max_new_tokens": 8},
                            retrieval={"embedder": str(tiny_models["clip"])})
    users = UsersFile(settings.users_file)
    for name, password in USERS.items():
        users.add(name, password, admin=name == "carol")  # carol curates the shared library
    workspaces = build_workspaces(settings)
    workspaces.model.loader.get(timeout=120)
    with serve(workspaces, settings) as url:
        yield url, settings


@pytest.fixture(scope="module")
def stocked(app, tmp_path_factory):
    """Every user signed in, with one document of their own holding their canary."""
    url, settings = app
    folder = tmp_path_factory.mktemp("docs")
    clients, canaries = {}, {}
    for name, password in USERS.items():
        clients[name] = Client(url, auth=(name, password), verbose=False)
        canaries[name] = f"canary{secrets.token_hex(4)}"
        note = folder / f"{name}-notes.txt"
        note.write_text(f"The private notes of {name} mention {canaries[name]} twice: {canaries[name]}.")
        report, _ = clients[name].predict([handle_file(str(note))], api_name="/ingest")
        assert "1 of 1 files" in report
    return clients, canaries, settings


def test_each_user_lists_only_their_own_documents(stocked):
    clients, _, _ = stocked
    for name, client in clients.items():
        assert [d["name"] for d in client.predict(api_name="/documents")] == [f"{name}-notes.txt"]


def test_search_and_chat_never_return_another_users_text(stocked):
    clients, canaries, _ = stocked
    for name, client in clients.items():
        for owner, canary in canaries.items():
            hits = client.predict(canary, None, 10, api_name="/search")
            text = " ".join(h["text"] for h in hits)
            assert (canary in text) == (owner == name), (name, owner)
            _, _, sources = ask(client, f"What do the notes say about {canary}?", k=10)
            shown = " ".join(str(s) for s in sources)
            assert all(other not in shown for who, other in canaries.items() if who != name)


def test_a_user_cannot_delete_another_users_document(stocked):
    clients, canaries, _ = stocked
    alices_doc = clients["alice"].predict(api_name="/documents")[0]["id"]
    for doc in (alices_doc, "alice-notes.txt"):  # by id, by name: bob's workspace has no such document
        report, _ = clients["bob"].predict(doc, api_name="/delete")
        assert "No document" in report
    assert [d["id"] for d in clients["alice"].predict(api_name="/documents")] == [alices_doc]


def test_each_knowledge_base_lives_in_its_owners_folder(stocked):
    _, canaries, settings = stocked
    for name, canary in canaries.items():
        records = settings.data_dir / "users" / name / "knowledge" / "records.sqlite3"
        assert records.exists()
    assert not (settings.data_dir / "records.sqlite3").exists()  # nothing in the shared local place


def test_a_removed_users_open_session_gets_nothing_more(app, tmp_path):
    url, settings = app
    users = UsersFile(settings.users_file)
    users.add("dave", "daves long password")
    client = Client(url, auth=("dave", "daves long password"), verbose=False)
    note = tmp_path / "dave.txt"
    note.write_text("Dave's own note.")
    assert "1 of 1 files" in client.predict([handle_file(str(note))], api_name="/ingest")[0]
    users.remove("dave")
    with pytest.raises(Exception, match="no longer exists"):  # noqa: B017  gradio_client's error type
        client.predict("Dave's own note", None, 4, api_name="/search")
    assert client.predict(api_name="/documents") == []  # the list is empty for him now


def test_named_knowledge_bases_and_the_shared_library_through_the_api(stocked, tmp_path):
    """alice keeps a second knowledge base of her own; bob can neither see, read, fill nor delete it by its id;
    carol (an administrator) fills the shared library, which everyone searches and nobody else changes."""
    clients, _, _ = stocked
    alice, bob, carol = clients["alice"], clients["bob"], clients["carol"]
    bases = alice.predict("Project X", api_name="/create_knowledge_base")
    project = next(b["id"] for b in bases if b["title"] == "Project X")
    secret = f"projectx{secrets.token_hex(4)}"
    note = tmp_path / "plan.txt"
    note.write_text(f"The launch code word is {secret}.")
    report, docs = alice.predict([handle_file(str(note))], "Project X", api_name="/ingest")
    assert "1 of 1 files" in report and [d["name"] for d in docs] == ["plan.txt"]
    assert [d["name"] for d in alice.predict(project, api_name="/documents")] == ["plan.txt"]
    assert [d["name"] for d in alice.predict(api_name="/documents")] == ["alice-notes.txt"]
    _, _, sources = ask(alice, f"What is {secret}?", k=10)
    assert any(s["name"] == "plan.txt" for s in sources)  # the chat searches the new one too

    assert [b["id"] for b in bob.predict(api_name="/knowledge_bases")] == ["default", "shared"]
    assert bob.predict(project, api_name="/documents") == []
    report, _ = bob.predict([handle_file(str(note))], project, api_name="/ingest")
    assert "no knowledge base" in report
    with pytest.raises(Exception, match="no knowledge base"):  # noqa: B017  gradio_client's error type
        bob.predict(project, api_name="/delete_knowledge_base")
    with pytest.raises(Exception, match="no knowledge base"):  # noqa: B017
        bob.predict(secret, None, 4, project, api_name="/search")
    assert secret not in str(bob.predict(secret, None, 10, api_name="/search"))

    guide = tmp_path / "guide.txt"
    guide.write_text("Shared guideline: badges are renewed every March.")
    report, _ = bob.predict([handle_file(str(guide))], "shared", api_name="/ingest")
    assert "Only an administrator" in report
    report, _ = carol.predict([handle_file(str(guide))], "shared", api_name="/ingest")
    assert "1 of 1 files" in report
    for client in (alice, bob):
        hits = client.predict("badges renewed March", None, 3, api_name="/search")  # their first one: not there
        assert all("guide.txt" != h["source"] for h in hits)
        _, _, sources = ask(client, "When are badges renewed?", k=10)
        assert any(s["name"] == "guide.txt" for s in sources)
    doc = bob.predict("shared", api_name="/documents")[0]["id"]
    report, _ = bob.predict(doc, "shared", api_name="/delete")
    assert "Only an administrator" in report

    # alice stops searching the shared library; then deletes Project X with every file
    bases = alice.predict(["default", project], api_name="/use_knowledge_bases")
    assert [b["id"] for b in bases if b["used"]] == ["default", project]
    _, _, sources = ask(alice, "When are badges renewed?", k=10)
    assert all(s["name"] != "guide.txt" for s in sources)
    bases = alice.predict(project, api_name="/delete_knowledge_base")
    assert [b["id"] for b in bases] == ["default", "shared"]
    _, _, sources = ask(alice, f"What is {secret}?", k=10)
    assert all(s["name"] != "plan.txt" for s in sources)
