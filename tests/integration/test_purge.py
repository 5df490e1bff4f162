"""Retention: ``python -m assistant purge --older-than DAYS`` as an operator runs it (a subprocess), over a real
data folder: the local user's and two signed-in users' workspaces, a created knowledge base, the shared
library; real Chroma, the real record, real conversation stores, a tiny random CLIP loaded by the product's
own code.

Items are made old the way the code stores their age: a conversation's ``updated`` and a document's
``added_at`` (seconds since the epoch) set back in their SQLite files. Every old item carries a canary, a
word found nowhere else; after the purge every byte under the data folder is read: no old canary, no old
thumbnail's or conversation image's bytes may be left, and every kept canary must be found (a scan that
finds nothing proves nothing)."""

from __future__ import annotations

import getpass
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from assistant.audit import verify
from assistant.composition import _store_options, load_embedders
from assistant.conversations import ConversationStore, Turn
from assistant.settings import Settings
from assistant.shelf import DEFAULT, SHARED, Catalogue
from assistant.workspaces import knowledge_dir, workspace_dir
from retrieval.records import Records
from retrieval.store import KnowledgeBase
from retrieval.worker import InProcessParser
from tests.helpers.images import write_image
from tests.helpers.traces import scan

ROOT = Path(__file__).resolve().parents[2]
OLD = time.time() - 40 * 86400  # 40 days ago; the purge is asked for 30


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    from tests.helpers.tiny_models import build_clip

    return build_clip(tmp_path_factory.mktemp("clip") / "clip")


def settings_for(data: Path, clip: Path) -> Settings:
    return Settings(data_dir=data, offline=True, retrieval={"embedder": str(clip), "text_embedder": "", "ocr": False})


def cli(data: Path, clip: Path, *args, stdin: str = "", **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(data),
                   "ASSISTANT_RETRIEVAL__EMBEDDER": str(clip), "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER": "",
                   "ASSISTANT_RETRIEVAL__OCR": "false", "ASSISTANT_OFFLINE": "true", **env}
    return subprocess.run([sys.executable, "-m", "assistant", *map(str, args)], cwd=data.parent, env=environment,
                          input=stdin, capture_output=True, text=True, timeout=300)


def canary() -> str:
    return "canary" + "".join(chr(ord("a") + int(c, 16)) for c in uuid.uuid4().hex)


class Built:
    """What the data folder holds: canaries by age, the ids and bytes that must go or stay."""

    def __init__(self):
        self.old: list[str] = []
        self.new: list[str] = []
        self.old_docs: dict[str, list[str]] = {}  # workspace -> document ids
        self.old_conversations: dict[str, list[str]] = {}
        self.new_conversations: dict[str, str] = {}  # workspace -> a kept conversation's id
        self.old_bytes: list[bytes] = []  # thumbnails and conversation images that must go
        self.library_docs: list[str] = []


def add_documents(settings: Settings, embedders, user: str | None, kb: str, built: Built, folder: Path,
                  *, label: str, old: bool = True, new: bool = True) -> None:
    """An old text document and an old image (made old in the record), and a new text document."""
    embedder, text_embedder = embedders
    base = KnowledgeBase.open(knowledge_dir(settings.data_dir, user, kb), embedder, text_embedder=text_embedder,
                              parser=InProcessParser(), **_store_options(settings, user, kb))
    try:
        if new:
            word = canary()
            note = folder / f"{word}.md"
            note.write_text(f"# Kept\n\nA recent note about {word}.", encoding="utf-8")
            assert base.ingest(note, source=note.name).ok
            built.new.append(word)
        if not old:
            return
        old_ids = []
        for kind in ("txt", "png"):
            word = canary()
            path = folder / f"{word}.{kind}"
            if kind == "txt":
                path.write_text(f"An old note about {word}.", encoding="utf-8")
            else:
                write_image(path, (80, 60), f"#{uuid.uuid4().hex[:6]}")
            report = base.ingest(path, source=path.name)
            assert report.ok
            old_ids.append(report.doc_id)
            built.old.append(word)
            for cid in base.records.chunk_ids(report.doc_id):
                thumbnail = base.files_dir / f"{cid}.jpg"
                if thumbnail.exists():
                    built.old_bytes.append(thumbnail.read_bytes())
        built.old_docs.setdefault(label, []).extend(old_ids)
    finally:
        base.close()
    with sqlite3.connect(knowledge_dir(settings.data_dir, user, kb) / "records.sqlite3") as db:
        db.executemany("UPDATE documents SET added_at = ? WHERE doc_id = ?",
                       [(OLD, doc_id) for doc_id in built.old_docs.get(label, [])])
    db.close()


def add_conversations(folder: Path, built: Built, label: str, tmp: Path) -> None:
    """An old conversation with an image, and a new one with an image."""
    with ConversationStore(folder / "conversations") as store:
        for age in ("old", "new"):
            word = canary()
            image = write_image(tmp / f"{uuid.uuid4().hex}.png", (40, 30), f"#{uuid.uuid4().hex[:6]}")
            conversation = store.create()
            ref = store.keep_image(conversation.id, image)
            store.append(conversation.id, Turn(f"What is {word}?", images=(ref,), answer=f"It is {word}."))
            if age == "old":
                built.old.append(word)
                built.old_bytes.append(image.read_bytes())
                built.old_conversations.setdefault(label, []).append(conversation.id)
            else:
                built.new.append(word)
                built.new_conversations[label] = conversation.id
            image.unlink()
    with sqlite3.connect(folder / "conversations" / "conversations.sqlite3") as db:
        db.executemany("UPDATE conversations SET updated = ? WHERE id = ?",
                       [(OLD, i) for i in built.old_conversations[label]])
    db.close()


@pytest.fixture
def data(tmp_path, clip) -> tuple[Path, Built]:
    """The local user's workspace, alice's (with a second knowledge base) and bob's (conversations only),
    and the shared library with an old document."""
    data = tmp_path / "data"
    uploads = tmp_path / "uploads"
    uploads.mkdir()
    settings = settings_for(data, clip)
    embedders = load_embedders(settings)
    built = Built()
    add_documents(settings, embedders, None, DEFAULT, built, uploads, label="local")
    add_conversations(data, built, "local", uploads)
    alice = workspace_dir(data, "alice")
    add_documents(settings, embedders, "alice", DEFAULT, built, uploads, label="alice")
    second = Catalogue(alice).create("Second")
    add_documents(settings, embedders, "alice", second, built, uploads, label="alice", new=False)
    add_conversations(alice, built, "alice", uploads)
    add_conversations(workspace_dir(data, "bob"), built, "bob", uploads)
    library = Built()
    add_documents(settings, embedders, None, SHARED, library, uploads, label="library", new=False)
    built.library_docs = library.old_docs["library"]
    built.new += library.old  # kept: the library is left alone without --include-library
    for leftover in uploads.iterdir():
        leftover.unlink()  # from here on the data folder is the only copy
    return data, built


def documents(folder: Path) -> set[str]:
    records = Records(folder / "records.sqlite3", readonly=True)
    try:
        return {d.doc_id for d in records.documents()}
    finally:
        records.close()


def test_purge_deletes_what_is_older_everywhere_and_leaves_no_trace(data, clip, tmp_path):
    data, built = data
    dry = cli(data, clip, "purge", "--older-than", "30", "--dry-run", ASSISTANT_MEDICAL__ENABLED="1")
    assert dry.returncode == 0, dry.stderr
    assert "local: would delete 1 conversations, 2 documents" in dry.stdout
    assert "alice: would delete 1 conversations, 4 documents" in dry.stdout
    assert "bob: would delete 1 conversations, 0 documents" in dry.stdout
    assert "total: would delete 3 conversations, 6 documents" in dry.stdout
    before = scan(data, strings=built.old + built.new)
    assert before.of(built.old) == set(built.old), "a dry run deleted something"
    assert not (data / "audit" / "audit.jsonl").exists()  # a dry run changes nothing, and records nothing

    out = cli(data, clip, "purge", "--older-than", "30", ASSISTANT_MEDICAL__ENABLED="1")
    assert out.returncode == 0, out.stderr
    assert "total: deleted 3 conversations, 6 documents" in out.stdout
    assert not any(word in out.stdout + out.stderr for word in built.old + built.new)  # counts, no content

    found = scan(data, strings=built.old + built.new)
    assert not found.of(built.old), {w: found.where[w] for w in found.of(built.old)}
    assert found.of(built.new) == set(built.new), "the scan is blind: kept canaries not found"
    left = [p for p in data.rglob("*") if p.is_file() and p.read_bytes() in built.old_bytes]
    assert not left, left
    assert_the_new_stay_readable(data, clip, built)
    assert_the_purge_is_recorded(data, clip, built)


def assert_the_new_stay_readable(data: Path, clip: Path, built: Built) -> None:
    for label, folder in (("local", data), ("alice", workspace_dir(data, "alice")),
                          ("bob", workspace_dir(data, "bob"))):
        with ConversationStore(folder / "conversations") as store:
            assert [c.id for c in store.list()] == [built.new_conversations[label]]
            conversation = store.get(built.new_conversations[label])
            assert store.chat_turns(conversation)[0].images[0].is_file()
            assert not list((folder / "conversations" / "images").glob(built.old_conversations[label][0]))
    assert not documents(data) & set(built.old_docs["local"]) and len(documents(data)) == 1
    assert documents(knowledge_dir(data, None, SHARED)) == set(built.library_docs)
    searched = cli(data, clip, "--user", "alice", "search", built.new[2], "--k", "1", "--json")
    assert searched.returncode == 0, searched.stderr
    assert json.loads(searched.stdout)[0]["source"] == f"{built.new[2]}.md"


def assert_the_purge_is_recorded(data: Path, clip: Path, built: Built) -> None:
    log = data / "audit" / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    purge = [r for r in records if r["action"] == "purge"]
    assert len(purge) == 1 and purge[0]["user"] == f"cli:{getpass.getuser()}" and purge[0]["outcome"] == "ok"
    details = purge[0]["details"]
    assert details["days"] == 30 and details["library"] is False and purge[0]["count"] == 9
    assert set(purge[0]["documents"]) == {d for ids in built.old_docs.values() for d in ids}
    for label in ("local", "alice", "bob"):
        assert details["workspaces"][label]["conversations"] == built.old_conversations[label]
    text = log.read_text()
    assert not any(word in text for word in built.old + built.new) and "Second" not in text
    verified = cli(data, clip, "audit", "verify")
    assert verified.returncode == 0 and "intact" in verified.stdout, verified.stderr


def test_the_library_only_when_asked_and_a_knowledge_base_in_use_is_skipped(data, clip):
    """``--include-library`` purges the shared library; a knowledge base another process (the app) holds open
    is left whole and named, the rest goes on, and the exit status says the purge was partial."""
    data, built = data
    settings = settings_for(data, clip)
    embedder, text_embedder = load_embedders(settings)
    held = KnowledgeBase.open(knowledge_dir(data, "alice"), embedder, text_embedder=text_embedder,
                              parser=InProcessParser(), **_store_options(settings, "alice"))
    try:
        out = cli(data, clip, "purge", "--older-than", "30", "--include-library", ASSISTANT_AUDIT__ENABLED="true")
    finally:
        held.close()
    assert out.returncode == 1, out.stderr
    assert "alice: knowledge base default skipped: open in another process" in out.stderr
    assert "alice: deleted 1 conversations, 2 documents" in out.stdout  # its second knowledge base and chats
    assert set(built.old_docs["alice"][:2]) <= documents(knowledge_dir(data, "alice"))  # untouched
    assert documents(knowledge_dir(data, None, SHARED)) == set()
    record = json.loads((data / "audit" / "audit.jsonl").read_text().splitlines()[-1])
    assert record["action"] == "purge" and record["outcome"] == "partial"
    assert record["details"]["workspaces"]["alice"]["skipped"] == ["default"]
    assert set(built.library_docs) <= set(record["documents"]) and record["details"]["library"] is True

    again = cli(data, clip, "purge", "--older-than", "30")  # the app stopped: the rest goes now
    assert again.returncode == 0 and "alice: deleted 0 conversations, 2 documents" in again.stdout


@pytest.mark.parametrize("days, says", [("-1", "positive number of days"), ("0", "positive number of days"),
                                        ("soon", "'soon' is not a number of days"), ("nan", "positive number")])
def test_bad_days_are_refused_clearly(tmp_path, days, says):
    out = cli(tmp_path / "data", tmp_path, "purge", "--older-than", days)
    assert out.returncode == 2 and says in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "data").exists()


def test_purge_names_no_user(tmp_path):
    out = cli(tmp_path / "data", tmp_path, "--user", "alice", "purge", "--older-than", "3")
    assert out.returncode == 1 and "give it no --user or --kb" in out.stderr and "Traceback" not in out.stderr


def test_admin_commands_are_recorded_without_passwords_or_titles(tmp_path, clip):
    data = tmp_path / "data"
    password, changed = "correct horse battery", "another fine password"
    audit = {"ASSISTANT_MEDICAL__ENABLED": "1"}
    assert cli(data, clip, "users", "add", "Alice", "--admin", "--password-stdin",
               stdin=password + "\n", **audit).returncode == 0
    assert cli(data, clip, "users", "passwd", "alice", "--password-stdin", stdin=changed + "\n",
               **audit).returncode == 0
    assert cli(data, clip, "users", "add", "bob", "--password-stdin", stdin="short\n", **audit).returncode == 1
    created = cli(data, clip, "--user", "alice", "kbs", "create", "Secret project title", **audit)
    assert created.returncode == 0, created.stderr
    kb_id = created.stdout.split()[1].rstrip(":")
    assert cli(data, clip, "users", "remove", "alice", "--purge", **audit).returncode == 0
    log = data / "audit" / "audit.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(r["action"], r["outcome"], r["details"]) for r in records] == [
        ("user-add", "ok", {"name": "alice", "admin": True}),
        ("user-passwd", "ok", {"name": "alice"}),
        ("user-add", "failed", {"name": "bob", "admin": False}),
        ("kb-create", "ok", {"workspace": "alice", "kb": kb_id}),
        ("user-remove", "ok", {"name": "alice", "purge": True})]
    assert all(r["user"] == f"cli:{getpass.getuser()}" for r in records)
    text = log.read_text()
    assert password not in text and changed not in text and "short" not in text and "Secret" not in text
    assert verify(log).ok
