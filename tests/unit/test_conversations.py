"""Conversations stored as typed turns: real SQLite on disk, real image files, no mocks."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
import threading
import zipfile
from pathlib import Path

import pytest

from assistant.conversations import (
    DATABASE, DEFAULT_TITLE, MAX_TITLE, SCHEMA_VERSION, ConversationStore, Turn, source_record,
)
from assistant.errors import AssistantError, InputError
from assistant.pipeline import Source
from assistant.types import ChatTurn
from retrieval.types import Chunk, Hit
from tests.helpers.images import write_image


@pytest.fixture
def store(tmp_path):
    with ConversationStore(tmp_path / "conversations") as opened:
        yield opened


def a_source(number: int, name: str = "report.pdf", locator: str = "page 3") -> dict:
    chunk = Chunk(f"chunk{number}", "doc1", f"/srv/private/uploads/{name}", "text", "passage", locator,
                  thumbnail="/srv/private/thumbs/t.png")
    return source_record(Source(number, Hit(chunk, 0.812345)))


def every_byte(folder: Path) -> bytes:
    """Every file under ``folder`` (the database, its -wal and -shm, the images), concatenated."""
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


# -- turns --------------------------------------------------------------------------------------


def test_turns_round_trip_with_sources_cited_and_images(tmp_path, red_png, blue_png):
    folder = tmp_path / "conversations"
    store = ConversationStore(folder)
    conversation = store.create()
    refs = (store.keep_image(conversation.id, red_png), store.keep_image(conversation.id, blue_png))
    first = Turn("What is in these images?", refs, (a_source(1), a_source(2, "scan.png", "image")), (2,),
                 "A red square and a blue one [2].", None, 1000.5, "tiny-vlm")
    second = Turn("And now?", answer="", notice="Knowledge base unavailable: locked", created=1001.0)
    store.append(conversation.id, first)
    returned = store.append(conversation.id, second)
    store.close()

    with ConversationStore(folder) as reopened:
        stored = reopened.get(conversation.id)
    assert stored.turns == (first, second) == returned.turns
    assert stored.turns[0].sources[0] == {"number": 1, "name": "report.pdf", "locator": "page 3", "kind": "text",
                                          "score": 0.8123, "chunk_id": "chunk1", "doc_id": "doc1"}


def test_a_source_keeps_no_server_path_and_other_keys_are_refused(store):
    assert "/srv" not in json.dumps(a_source(1))
    conversation = store.create()
    leaky = {**a_source(1), "thumbnail": "/srv/private/thumbs/t.png"}
    with pytest.raises(ValueError, match="source_record"):
        store.append(conversation.id, Turn("q", sources=(leaky,), answer="a"))
    assert store.get(conversation.id).turns == ()


def test_image_references_are_names_in_the_conversation_folder(store, tmp_path, red_png):
    conversation = store.create()
    copy = write_image(tmp_path / "elsewhere" / "SAME.PNG", (200, 120), "red")  # same bytes, another name
    ref = store.keep_image(conversation.id, red_png)
    assert ref == hashlib.sha256(red_png.read_bytes()).hexdigest() + ".png"
    assert store.keep_image(conversation.id, copy) == ref  # kept once
    folder = tmp_path / "conversations" / "images" / conversation.id
    assert [p.name for p in folder.iterdir()] == [ref]
    assert store.image_path(conversation.id, ref) == folder / ref
    assert (folder / ref).read_bytes() == red_png.read_bytes()


def test_a_large_image_is_copied_and_hashed_whole(store, tmp_path):
    big = tmp_path / "big.bmp"
    big.write_bytes(os.urandom(3 * (1 << 20) + 12345))  # several copy blocks and a partial one
    conversation = store.create()
    ref = store.keep_image(conversation.id, big)
    assert ref == hashlib.sha256(big.read_bytes()).hexdigest() + ".bmp"
    assert store.image_path(conversation.id, ref).read_bytes() == big.read_bytes()
    assert list((tmp_path / "conversations" / "images" / ".incoming").iterdir()) == []


def test_only_readable_images_are_kept(store, tmp_path):
    conversation = store.create()
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(InputError, match="Only images"):
        store.keep_image(conversation.id, notes)
    with pytest.raises(InputError, match="missing.png cannot be read") as caught:
        store.keep_image(conversation.id, tmp_path / "missing.png")
    assert str(tmp_path) not in str(caught.value)


# -- titles and the list ------------------------------------------------------------------------


def test_list_is_newest_first_with_titles_and_turn_counts(store):
    named = store.create("  Trip   photos ")
    untitled = store.create()
    later = store.create()
    store.append(untitled.id, Turn("What bird is this?\nIt was on the roof", answer="A magpie."))
    listed = store.list()
    assert [c.id for c in listed] == [untitled.id, later.id, named.id]  # activity, not creation
    assert [(c.title, c.turns) for c in listed] == [
        ("What bird is this? It was on the roof", 1), (DEFAULT_TITLE, 0), ("Trip photos", 0)]
    store.append(named.id, Turn("Where was this taken?", answer="Lisbon."))
    assert store.list()[0].id == named.id and store.get(named.id).title == "Trip photos"  # a given title stays


def test_the_title_comes_from_the_first_question_with_words(store):
    conversation = store.create()
    store.append(conversation.id, Turn("", answer="An image of a cat."))  # image only: no words
    assert store.get(conversation.id).title == DEFAULT_TITLE
    long_question = "Please describe " + "very " * 30 + "carefully"
    store.append(conversation.id, Turn(long_question, answer="Sure."))
    title = store.get(conversation.id).title
    assert title.endswith("…") and len(title) <= 60 and title.startswith("Please describe very")
    store.append(conversation.id, Turn("A third question", answer="ok"))
    assert store.get(conversation.id).title == title


def test_rename_trims_and_refuses_empty_or_too_long_titles(store):
    conversation = store.create()
    info = store.rename(conversation.id, "  Chest\tX-ray \n review \u202e ")
    assert info.title == store.get(conversation.id).title == "Chest X-ray review"
    for bad in ("", "   \n\t", "\u202e"):
        with pytest.raises(InputError, match="cannot be empty"):
            store.rename(conversation.id, bad)
    with pytest.raises(InputError, match=f"at most {MAX_TITLE}"):
        store.rename(conversation.id, "x" * (MAX_TITLE + 1))
    store.rename(conversation.id, "x" * MAX_TITLE)
    with pytest.raises(InputError, match="cannot be empty"):
        store.create("   ")


# -- unknown ids and escaping references --------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["AAAAAAAAAAAAAAAA", "../../etc/passwd", "", "images", None, "a/b" * 6])
def test_an_unknown_conversation_is_a_clear_error_naming_no_path(store, tmp_path, red_png, bad_id):
    calls = [
        lambda: store.get(bad_id), lambda: store.append(bad_id, Turn("q", answer="a")),
        lambda: store.rename(bad_id, "title"), lambda: store.delete(bad_id),
        lambda: store.keep_image(bad_id, red_png), lambda: store.image_path(bad_id, "a" * 64 + ".png"),
        lambda: store.export_markdown(bad_id), lambda: store.export_json(bad_id),
        lambda: store.export_archive(bad_id, tmp_path / "out.zip"),
    ]
    for call in calls:
        with pytest.raises(InputError, match="no such conversation") as caught:
            call()
        assert str(tmp_path) not in str(caught.value) and "sqlite" not in str(caught.value)
    assert not (tmp_path / "out.zip").exists()
    assert list((tmp_path / "conversations" / "images").iterdir()) == []  # nothing was copied


def test_image_references_cannot_escape_the_conversation(store, tmp_path, red_png, blue_png):
    mine, theirs = store.create(), store.create()
    their_ref = store.keep_image(theirs.id, blue_png)
    my_ref = store.keep_image(mine.id, red_png)
    (tmp_path / "conversations" / "secret.png").write_bytes(b"not yours")
    escapes = ["../x", f"../{theirs.id}/{their_ref}", str(red_png), "/etc/passwd", their_ref, my_ref + "\n",
               my_ref.upper(), "../../" + DATABASE, f"{'0' * 64}.png", "", "secret.png"]
    for ref in escapes:
        with pytest.raises(InputError, match="image") as caught:
            store.image_path(mine.id, ref)
        assert str(tmp_path) not in str(caught.value)
        with pytest.raises(InputError):
            store.append(mine.id, Turn("q", (ref,), answer="a"))
    assert store.image_path(mine.id, my_ref).read_bytes() == red_png.read_bytes()
    assert store.get(mine.id).turns == ()


# -- what the model is given --------------------------------------------------------------------


def test_the_model_gets_questions_images_and_answers_exactly_and_no_notices(store, tmp_path, red_png):
    conversation = store.create()
    ref = store.keep_image(conversation.id, red_png)
    answer = 'It is red [1]. <a href="#source-1">not a link</a> & **bold**'
    store.append(conversation.id, Turn("What colour?", (ref,), (a_source(1),), (1,), answer,
                                       "Knowledge base unavailable: busy"))
    store.append(conversation.id, Turn("Why did this fail?", answer="", notice="Out of memory"))
    store.append(conversation.id, Turn("And the shape?", answer="A rectangle."))
    turns = store.chat_turns(store.get(conversation.id))
    image = tmp_path / "conversations" / "images" / conversation.id / ref
    assert turns == [ChatTurn("user", "What colour?", (image,)), ChatTurn("assistant", answer),
                     ChatTurn("user", "And the shape?"), ChatTurn("assistant", "A rectangle.")]
    assert not any("unavailable" in t.text or "memory" in t.text or "⚠" in t.text for t in turns)


# -- deleting leaves no trace -------------------------------------------------------------------


def test_deleting_leaves_no_copy_of_the_text_in_any_file(tmp_path, red_png, blue_png):
    folder = tmp_path / "conversations"
    gone_canary, kept_canary = "CANARY-GONE-7f3a9c", "CANARY-KEPT-51d2e8"
    gone_wide, kept_wide = "消失的金丝雀", "保留的金丝雀"  # UTF-8 text too
    store = ConversationStore(folder)
    gone, kept = store.create(), store.create()
    for conversation, canary, wide, image in ((gone, gone_canary, gone_wide, red_png),
                                               (kept, kept_canary, kept_wide, blue_png)):
        ref = store.keep_image(conversation.id, image)
        long_answer = f"{canary} {wide} " + "filler " * 2000 + canary  # spills into overflow pages
        for n in range(3):
            store.append(conversation.id, Turn(f"{canary} question {n}", (ref,), (a_source(1, f"{canary}.pdf"),),
                                               (1,), long_answer, f"notice {canary}"))
    assert (folder / f"{DATABASE}-wal").exists()
    assert every_byte(folder).count(gone_canary.encode()) > 0  # the scan can see it before the delete

    store.delete(gone.id)
    data = every_byte(folder)  # scanned while the store is open: -wal and -shm are there
    assert data.count(gone_canary.encode()) == 0 and data.count(gone_wide.encode()) == 0
    assert data.count(kept_canary.encode()) > 0 and data.count(kept_wide.encode()) > 0
    assert not (folder / "images" / gone.id).exists() and (folder / "images" / kept.id).is_dir()
    assert red_png.read_bytes() not in every_byte(folder)
    with pytest.raises(InputError):
        store.get(gone.id)
    assert store.get(kept.id).turns[2].answer.endswith(kept_canary)
    store.close()
    assert every_byte(folder).count(gone_canary.encode()) == 0


def test_delete_all_removes_every_conversation_and_image(tmp_path, red_png):
    folder = tmp_path / "conversations"
    with ConversationStore(folder) as store:
        for n in range(3):
            conversation = store.create(f"CANARY-ALL-{n}")
            ref = store.keep_image(conversation.id, red_png)
            store.append(conversation.id, Turn(f"CANARY-ALL question {n}", (ref,), answer="CANARY-ALL answer"))
        assert store.delete_all() == 3
        assert store.list() == [] and b"CANARY-ALL" not in every_byte(folder)
        assert [p.name for p in (folder / "images").iterdir()] == [".incoming"]
        assert store.create().id  # still usable


def test_images_left_by_a_crash_during_a_delete_are_swept_on_open(tmp_path, red_png):
    folder = tmp_path / "conversations"
    with ConversationStore(folder) as store:
        kept = store.create()
        ref = store.keep_image(kept.id, red_png)
    orphan = folder / "images" / "OrphanOrphan1234"  # its row was deleted, the crash came before its files
    orphan.mkdir()
    (orphan / ref).write_bytes(red_png.read_bytes())
    with ConversationStore(folder) as store:
        assert not orphan.exists() and store.image_path(kept.id, ref).is_file()


# -- export -------------------------------------------------------------------------------------


def test_exports_carry_the_turns_sources_and_image_bytes(store, tmp_path, red_png):
    conversation = store.create("Colours")
    ref = store.keep_image(conversation.id, red_png)
    store.append(conversation.id, Turn("What colour is it?", (ref,), (a_source(1), a_source(2, "b.md", "§2")),
                                       (1,), "Red [1].", "Knowledge base unavailable", model="tiny-vlm"))
    markdown = store.export_markdown(conversation.id)
    for expected in ("# Colours", "What colour is it?", "Red [1].", f"![image 1](images/{ref})",
                     "- [1] report.pdf, page 3 (cited)", "- [2] b.md, §2", "Knowledge base unavailable"):
        assert expected in markdown
    assert "- [2] b.md, §2 (cited)" not in markdown and str(tmp_path) not in markdown

    data = store.export_json(conversation.id)
    assert json.loads(json.dumps(data)) == data
    assert data["title"] == "Colours" and data["turns"][0]["images"] == [ref]
    assert data["turns"][0]["cited"] == [1] and data["turns"][0]["sources"][1]["name"] == "b.md"

    archive = store.export_archive(conversation.id, tmp_path)
    assert archive.parent == tmp_path and archive.suffix == ".zip"
    with zipfile.ZipFile(archive) as z:
        assert sorted(z.namelist()) == ["conversation.json", "conversation.md", f"images/{ref}"]
        assert json.loads(z.read("conversation.json")) == data
        assert z.read("conversation.md").decode() == markdown
        assert z.read(f"images/{ref}") == red_png.read_bytes()
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    named = store.export_archive(conversation.id, tmp_path / "mine.zip")
    assert named == tmp_path / "mine.zip" and zipfile.is_zipfile(named)
    assert not list(tmp_path.glob(".*.part"))


# -- threads, modes, schema ---------------------------------------------------------------------


def test_concurrent_appends_lose_no_turn(store, red_png):
    shared = store.create()
    own = [store.create() for _ in range(4)]
    per_thread, start, errors = 25, threading.Barrier(9), []

    def writer(name: str, conversation_id: str, image: bool) -> None:
        try:
            start.wait()
            for n in range(per_thread):
                refs = (store.keep_image(conversation_id, red_png),) if image and n % 5 == 0 else ()
                store.append(conversation_id, Turn(f"{name}-{n}", refs, answer=f"answer {name}-{n}"))
        except BaseException as exc:  # noqa: BLE001 (reported below, with the thread's name)
            errors.append((name, exc))

    def reader() -> None:
        start.wait()
        for _ in range(50):
            for info in store.list():
                assert len(store.get(info.id).turns) >= info.turns

    threads = [threading.Thread(target=writer, args=(f"own{i}", c.id, i % 2 == 0)) for i, c in enumerate(own)]
    threads += [threading.Thread(target=writer, args=(f"shared{i}", shared.id, True)) for i in range(4)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    for i, conversation in enumerate(own):
        assert [t.question for t in store.get(conversation.id).turns] == [f"own{i}-{n}" for n in range(per_thread)]
    shared_questions = [t.question for t in store.get(shared.id).turns]
    assert sorted(shared_questions) == sorted(f"shared{i}-{n}" for i in range(4) for n in range(per_thread))
    for i in range(4):  # each writer's turns in its own order
        assert [q for q in shared_questions if q.startswith(f"shared{i}-")] == [f"shared{i}-{n}" for n in range(25)]


def test_files_are_0600_and_folders_0700_whatever_the_umask(tmp_path, red_png):
    previous = os.umask(0)
    try:
        folder = tmp_path / "conversations"
        with ConversationStore(folder) as store:
            conversation = store.create()
            ref = store.keep_image(conversation.id, red_png)
            store.append(conversation.id, Turn("q", (ref,), answer="a"))
            made = sorted(folder.rglob("*"))
            assert {p.name for p in made} >= {DATABASE, f"{DATABASE}-wal", f"{DATABASE}-shm", ref, ".incoming"}
            modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in [folder, *made]}
    finally:
        os.umask(previous)
    assert modes == {name: 0o700 if (folder / name).is_dir() else 0o600 for name in modes}, modes


def test_the_schema_is_versioned_and_a_newer_one_is_refused(tmp_path):
    folder = tmp_path / "conversations"
    ConversationStore(folder).close()
    with sqlite3.connect(folder / DATABASE) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(AssistantError, match="newer version of the app") as caught:
        ConversationStore(folder)
    assert str(tmp_path) not in str(caught.value)


def test_a_folder_and_database_made_by_someone_else_are_made_private(tmp_path):
    folder = tmp_path / "conversations"
    (folder / "images").mkdir(parents=True, mode=0o755)
    os.chmod(folder, 0o755)
    os.chmod(folder / "images", 0o755)
    sqlite3.connect(folder / DATABASE).close()
    os.chmod(folder / DATABASE, 0o644)
    with ConversationStore(folder) as store:
        store.create()
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]}
    assert modes == {"conversations": 0o700, "images": 0o700, DATABASE: 0o600, f"{DATABASE}-wal": 0o600,
                     f"{DATABASE}-shm": 0o600}, modes


def test_a_turn_keeps_its_consistency_and_a_schema_1_file_is_brought_forward(tmp_path):
    """The answer's agreement with its images is stored with the turn (a resumed conversation shows it, the
    exports carry it); conversations saved before it was kept open with none."""
    from assistant.conversations import MIGRATIONS

    folder = tmp_path / "conversations"
    folder.mkdir(mode=0o700)
    with sqlite3.connect(folder / DATABASE) as db:  # a file as the first schema wrote it, with one turn
        db.executescript(MIGRATIONS[1] + "PRAGMA user_version = 1;")
        db.execute("INSERT INTO conversations VALUES ('AAAAAAAAAAAAAAAA', 'Old', 1.0, 1.0, 1)")
        db.execute("INSERT INTO turns VALUES ('AAAAAAAAAAAAAAAA', 0, 'q', '[]', '[]', '[]', 'a', NULL, 1.0, NULL, "
                   "'[]')")
    agreement = {"score": 0.42, "flagged": True, "threshold": 0.9, "reason": "measured",
                 "images": [{"kind": "image", "number": 1, "score": 0.42}]}
    with ConversationStore(folder) as store:
        assert store.get("AAAAAAAAAAAAAAAA").turns[0].consistency is None
        store.append("AAAAAAAAAAAAAAAA", Turn("Is it red?", answer="A blue square.", consistency=agreement))
    with ConversationStore(folder) as store:
        turns = store.get("AAAAAAAAAAAAAAAA").turns
        assert turns[1].consistency == agreement
        assert store.export_json("AAAAAAAAAAAAAAAA")["turns"][1]["consistency"] == agreement
        assert "_Image agreement 0.42 (this answer may not match the image)_" in store.export_markdown(
            "AAAAAAAAAAAAAAAA")
