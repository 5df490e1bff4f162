"""Conversations stored per user as typed turns: what was asked (with which images), which sources were
shown, which were cited, and the model's own answer text. The model's history is rebuilt from these turns,
never scraped back out of rendered chat HTML, so citation links and notices shown to the user never reach
the model.

One SQLite file per store (one store per user's workspace), with write-ahead logging; images live beside it
under ``images/<conversation id>/``, named by their SHA-256, so that deleting a conversation removes its
files with it. Deleting leaves no trace of the text: ``secure_delete`` overwrites the freed bytes and a
``wal_checkpoint(TRUNCATE)`` empties the log that still held them. Everything the store creates is
readable by its owner only (files 0600, folders 0700), whatever the process's umask.

One connection, used under one lock, serves every thread. A user's store holds one person's chats, so
reads are tiny (well under a millisecond) and rarely contend; in exchange no connection is left behind per
Gradio worker thread, a read always sees a whole append, and no reader of ours can hold a snapshot that
stops the checkpoint a delete relies on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import sqlite3
import threading
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import AssistantError, InputError
from assistant.types import ChatTurn
from retrieval.loaders import IMAGE_SUFFIXES
from retrieval.records import Transaction

if TYPE_CHECKING:
    from assistant.pipeline import Source

log = logging.getLogger(__name__)

DATABASE = "conversations.sqlite3"
IMAGES = "images"
INCOMING = ".incoming"  # images being copied; never a conversation id (ids have no '.')
DEFAULT_TITLE = "New conversation"
MAX_TITLE = 120
DERIVED_TITLE = 60  # a title made from the first question is cut to this many characters
BLOCK = 1 << 20
STALE_INCOMING = 3600.0  # seconds after which a half-copied image is a crash's leftover
SOURCE_KEYS = frozenset({"number", "name", "locator", "kind", "score", "chunk_id", "doc_id"})
EXPORT_FORMAT = "assistant.conversation"

_ID = re.compile(r"[A-Za-z0-9_-]{16}")
_REF = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,5}")
_INVISIBLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")  # controls, bidi overrides

# Each schema version and the statements that reach it from the one before; ``PRAGMA user_version`` says
# which the file has, so an older file is brought forward on open and a newer one is refused.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY, title TEXT, created REAL NOT NULL, updated REAL NOT NULL,
        activity INTEGER NOT NULL);
    CREATE INDEX conversations_activity ON conversations(activity);
    CREATE TABLE turns (
        conversation_id TEXT NOT NULL, position INTEGER NOT NULL, question TEXT NOT NULL,
        images TEXT NOT NULL, sources TEXT NOT NULL, cited TEXT NOT NULL, answer TEXT NOT NULL,
        notice TEXT, created REAL NOT NULL, model TEXT, annotated TEXT NOT NULL DEFAULT '[]',
        PRIMARY KEY (conversation_id, position));
    """,
    2: "ALTER TABLE turns ADD COLUMN consistency TEXT;",  # the answer's agreement with its images (JSON)
}
SCHEMA_VERSION = max(MIGRATIONS)


@dataclass(frozen=True)
class Turn:
    """One question and its answer. ``images`` are references returned by ``keep_image`` (names inside the
    conversation's folder, never server paths); ``sources`` are what the user was shown (see
    ``source_record``); ``answer`` is the model's text exactly as written (never HTML); ``notice`` was shown
    to the user (an error, "knowledge base unavailable") and is never given to the model."""

    question: str
    images: tuple[str, ...] = ()
    sources: tuple[dict, ...] = ()
    cited: tuple[int, ...] = ()
    answer: str = ""
    notice: str | None = None
    created: float = field(default_factory=time.time)
    model: str | None = None
    annotated: tuple[str, ...] = ()  # the last image with the boxes the answer located (image references)
    consistency: dict | None = None  # its agreement with its images, as shown (``Consistency.to_dict()``)


@dataclass(frozen=True)
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    turns: tuple[Turn, ...] = ()


@dataclass(frozen=True)
class ConversationInfo:
    """A conversation as a list shows it."""

    id: str
    title: str
    updated: float
    turns: int


def source_record(source: Source) -> dict:
    """What a turn keeps of a source shown to the user: small, JSON-able, and without the server's paths
    (the document's name only, no thumbnail)."""
    chunk = source.hit.chunk
    return {"number": source.number, "name": source.name, "locator": source.locator, "kind": source.kind,
            "score": round(float(source.score), 4), "chunk_id": chunk.id, "doc_id": chunk.doc_id}


def clean_title(title: str) -> str:
    """A title as stored: one line, trimmed, not empty, at most ``MAX_TITLE`` characters."""
    clean = " ".join(_INVISIBLE.sub(" ", title or "").split())
    if not clean:
        raise InputError("A conversation's title cannot be empty.")
    if len(clean) > MAX_TITLE:
        raise InputError(f"A conversation's title can have at most {MAX_TITLE} characters ({len(clean)} given).")
    return clean


def title_from(question: str) -> str | None:
    """A title made from a question: its words on one line, cut at a word near ``DERIVED_TITLE``."""
    words = " ".join(_INVISIBLE.sub(" ", question or "").split())
    if len(words) <= DERIVED_TITLE:
        return words or None
    return words[: DERIVED_TITLE - 1].rsplit(" ", 1)[0].rstrip() + "…"


class ConversationStore:
    """A user's conversations in ``folder``. Safe to share between threads."""

    def __init__(self, folder: Path):
        self.folder = _private_dir(Path(folder))
        _private_dir(self.folder / IMAGES)
        self._lock = threading.RLock()
        self._closed = False
        self.db = _connect(self.folder / DATABASE)
        try:
            self._migrate()
            self._sweep()
        except BaseException:
            self.db.close()
            raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._scrub()
            self.db.close()

    def __enter__(self) -> ConversationStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- conversations --------------------------------------------------------------------------

    def create(self, title: str | None = None) -> Conversation:
        """A new, empty conversation; without a title it takes one from its first question."""
        title = None if title is None else clean_title(title)
        conversation_id, now = secrets.token_urlsafe(12), time.time()
        with self._transaction():
            self.db.execute("INSERT INTO conversations VALUES (?, ?, ?, ?, ?)",
                            (conversation_id, title, now, now, self._next_activity()))
        return Conversation(conversation_id, title or DEFAULT_TITLE, now, now)

    def list(self) -> list[ConversationInfo]:
        """Every conversation, the most recently active first."""
        return self._infos("ORDER BY c.activity DESC")

    def _infos(self, where: str, *args) -> list[ConversationInfo]:
        with self._lock:
            rows = self.db.execute(
                "SELECT c.id, c.title, c.updated, (SELECT COUNT(*) FROM turns t WHERE t.conversation_id = c.id)"
                f" FROM conversations c {where}", args).fetchall()
        return [ConversationInfo(i, title or DEFAULT_TITLE, updated, n) for i, title, updated, n in rows]

    def get(self, conversation_id: str) -> Conversation:
        with self._lock:
            _, title, created, updated = self._row(conversation_id)
            rows = self.db.execute(
                "SELECT question, images, sources, cited, answer, notice, created, model, annotated, consistency "
                "FROM turns "
                "WHERE conversation_id = ? ORDER BY position", (conversation_id,)).fetchall()
        return Conversation(conversation_id, title or DEFAULT_TITLE, created, updated,
                            tuple(map(_turn_from_row, rows)))

    def append(self, conversation_id: str, turn: Turn) -> Conversation:
        """Add a turn at the end; the first question names a conversation that has no title yet."""
        self._check_turn(conversation_id, turn)
        with self._transaction():
            self._row(conversation_id)
            self.db.execute(
                "INSERT INTO turns SELECT ?, COALESCE(MAX(position), -1) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? "
                "FROM turns WHERE conversation_id = ?", (conversation_id, *_turn_to_row(turn), conversation_id))
            self.db.execute("UPDATE conversations SET title = COALESCE(title, ?), updated = ?, activity = ? "
                            "WHERE id = ?", (title_from(turn.question), time.time(), self._next_activity(),
                                             conversation_id))
            return self.get(conversation_id)

    def rename(self, conversation_id: str, title: str) -> ConversationInfo:
        """Give a conversation a title of the user's (its place in the list does not change)."""
        title = clean_title(title)
        with self._transaction():
            self._row(conversation_id)
            self.db.execute("UPDATE conversations SET title = ? WHERE id = ?", (title, conversation_id))
            return self._infos("WHERE c.id = ?", conversation_id)[0]

    def delete(self, conversation_id: str) -> None:
        """Remove a conversation, its turns and its images, leaving none of its text in the files."""
        with self._lock:
            with self._transaction():
                self._row(conversation_id)
                self.db.execute("DELETE FROM turns WHERE conversation_id = ?", (conversation_id,))
                self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            self._scrub()
            _remove_tree(self._images(conversation_id))

    def delete_all(self) -> int:
        """Remove every conversation (as ``delete`` does); return how many there were."""
        with self._lock:
            with self._transaction():
                count = self.db.execute("SELECT COUNT(*) FROM conversations").fetchone()[0]
                self.db.execute("DELETE FROM turns")
                self.db.execute("DELETE FROM conversations")
            self._scrub()
            for folder in self._image_folders():
                _remove_tree(folder)
        return count

    def older_than(self, cutoff: float) -> list[ConversationInfo]:
        """The conversations last changed (created, or a turn added; a rename does not count) before
        ``cutoff`` (seconds since the epoch), the least recent first."""
        return self._infos("WHERE c.updated < ? ORDER BY c.activity", cutoff)

    def delete_older_than(self, cutoff: float) -> list[str]:
        """Remove, as ``delete`` does, every conversation last changed before ``cutoff``; their ids. They are
        chosen and deleted in one transaction, so one continued meanwhile (by the app, in another process)
        is kept."""
        with self._lock:
            with self._transaction():
                ids = [row[0] for row in self.db.execute(
                    "SELECT id FROM conversations WHERE updated < ?", (cutoff,)).fetchall()]
                self.db.executemany("DELETE FROM turns WHERE conversation_id = ?", [(i,) for i in ids])
                self.db.executemany("DELETE FROM conversations WHERE id = ?", [(i,) for i in ids])
            if ids:
                self._scrub()
            for conversation_id in ids:
                _remove_tree(self._images(conversation_id))
        return ids

    # -- images ---------------------------------------------------------------------------------

    def keep_image(self, conversation_id: str, path: Path) -> str:
        """Copy an uploaded image into the conversation's folder and return its reference. It is named by
        its SHA-256 (computed while copying, a block at a time), so an image sent twice is kept once."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in IMAGE_SUFFIXES:
            raise InputError(f"Only images can be kept in a conversation ({path.name}).")
        self._row(conversation_id)  # before copying anything
        partial, digest = self._copy_hashing(path)
        try:
            with self._lock:  # a delete cannot run between the check and the rename
                self._row(conversation_id)
                folder = _private_dir(self._images(conversation_id))
                os.replace(partial, folder / f"{digest}{suffix}")
                _sync_dir(folder)
        finally:
            partial.unlink(missing_ok=True)
        return f"{digest}{suffix}"

    def image_path(self, conversation_id: str, ref: str) -> Path:
        """The file of an image reference of this conversation; anything else is refused."""
        self._row(conversation_id)
        return self._image_file(conversation_id, ref)

    def _image_file(self, conversation_id: str, ref: str) -> Path:
        if not isinstance(ref, str) or not _REF.fullmatch(ref):
            raise InputError("That is not a reference to an image of this conversation.")
        path = self._images(conversation_id) / ref
        if not path.is_file():
            raise InputError("This conversation has no such image (it may have been deleted).")
        return path

    def _copy_hashing(self, source: Path) -> tuple[Path, str]:
        """Copy ``source`` into the incoming folder; return the copy and its SHA-256."""
        try:
            reader = open(source, "rb")  # noqa: SIM115 (closed below, with the copy)
        except OSError as exc:
            raise InputError(f"The image {source.name} cannot be read ({type(exc).__name__}).") from None
        partial = _private_dir(self.folder / IMAGES / INCOMING) / f"{secrets.token_hex(8)}.part"
        digest = hashlib.sha256()
        try:
            with reader, _private_file(partial) as out:
                while block := reader.read(BLOCK):
                    digest.update(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())  # the turn that names it is committed durably too
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return partial, digest.hexdigest()

    # -- what the model is given ----------------------------------------------------------------

    def chat_turns(self, conversation: Conversation) -> list[ChatTurn]:
        """The history for the model: each answered turn as the user's question with its images and the
        model's own answer. Notices are the user's only; a turn that failed (no answer) is left out."""
        turns: list[ChatTurn] = []
        for turn in conversation.turns:
            if not turn.answer.strip():
                continue
            images = tuple(self._image_file(conversation.id, ref) for ref in turn.images)
            turns += [ChatTurn("user", turn.question, images), ChatTurn("assistant", turn.answer)]
        return turns

    # -- export ---------------------------------------------------------------------------------

    def export_json(self, conversation_id: str) -> dict:
        """The conversation as JSON-able data; image references are names inside ``images/``."""
        return _as_json(self.get(conversation_id))

    def export_markdown(self, conversation_id: str) -> str:
        return _as_markdown(self.get(conversation_id))

    def export_archive(self, conversation_id: str, out: Path) -> Path:
        """A .zip at ``out`` (or in it, when it is a folder) with ``conversation.json``, ``conversation.md``
        and ``images/``; written whole before it appears, readable by its owner only."""
        out = Path(out)
        target = out / f"conversation-{conversation_id}.zip" if out.is_dir() else out
        partial = target.with_name(f".{target.name}.{secrets.token_hex(4)}.part")
        with self._lock:  # the images cannot be deleted while they are copied
            conversation = self.get(conversation_id)
            try:
                with _private_file(partial) as raw, zipfile.ZipFile(raw, "w", zipfile.ZIP_DEFLATED) as archive:
                    _write_archive(archive, conversation, self._images(conversation_id))
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        return target

    # -- storage --------------------------------------------------------------------------------

    def _row(self, conversation_id: str) -> tuple:
        """The conversation's row; an unknown (or malformed) id is the user's error, not a bug."""
        row = None
        if isinstance(conversation_id, str) and _ID.fullmatch(conversation_id):
            with self._lock:
                row = self.db.execute("SELECT id, title, created, updated FROM conversations WHERE id = ?",
                                      (conversation_id,)).fetchone()
        if row is None:
            raise InputError("There is no such conversation (it may have been deleted).")
        return row

    def _images(self, conversation_id: str) -> Path:
        if not _ID.fullmatch(conversation_id):  # the id names a folder: never let it be a path
            raise InputError("There is no such conversation (it may have been deleted).")
        return self.folder / IMAGES / conversation_id

    def _image_folders(self) -> list[Path]:
        root = self.folder / IMAGES
        return [p for p in root.iterdir() if p.name != INCOMING] if root.is_dir() else []

    def _check_turn(self, conversation_id: str, turn: Turn) -> None:
        """Refuse what would put a server path or a stranger's image into the record."""
        for ref in (*turn.images, *turn.annotated):
            self._image_file(conversation_id, ref)
        for source in turn.sources:
            extra = set(source) - SOURCE_KEYS
            if extra:
                raise ValueError(f"A turn's source has keys {sorted(extra)}: build it with source_record()")
        if not all(isinstance(n, int) for n in turn.cited):
            raise ValueError(f"A turn's cited numbers must be integers, not {turn.cited!r}")

    def _next_activity(self) -> int:
        """Orders the list: a counter, since two changes can share a clock reading."""
        return self.db.execute("SELECT COALESCE(MAX(activity), 0) + 1 FROM conversations").fetchone()[0]

    def _transaction(self) -> Transaction:
        return Transaction(self.db, self._lock)

    def _migrate(self) -> None:
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise AssistantError(f"The conversations were saved by a newer version of the app (schema {version}; "
                                 f"this one knows up to {SCHEMA_VERSION}): upgrade the app to open them.")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            # executescript commits any open transaction first, so the script carries its own
            script = f"BEGIN IMMEDIATE;\n{MIGRATIONS[target]}\nPRAGMA user_version = {target};\nCOMMIT;"
            try:
                self.db.executescript(script)
            except BaseException:
                if self.db.in_transaction:
                    self.db.execute("ROLLBACK")
                raise

    def _scrub(self) -> None:
        """Move the log into the database and empty it: deleted rows were overwritten in the pages
        (secure_delete) but their old versions stay in the log until then."""
        busy, _, _ = self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        if busy:
            log.warning("conversations: another process is reading; deleted text stays in the write-ahead "
                        "log until the next checkpoint")

    def _sweep(self) -> None:
        """Remove what a crash during a delete or a copy left behind: image folders of conversations that
        no longer exist, and half-copied images. Folders are listed before the ids are read, so a folder
        made meanwhile (its row is committed first) is never taken for an orphan."""
        folders = self._image_folders()
        known = {r[0] for r in self.db.execute("SELECT id FROM conversations")}
        for folder in folders:
            if folder.name not in known:
                _remove_tree(folder)
        incoming = self.folder / IMAGES / INCOMING
        for partial in incoming.glob("*.part") if incoming.is_dir() else ():
            if partial.stat().st_mtime < time.time() - STALE_INCOMING:
                partial.unlink(missing_ok=True)


# -- files ------------------------------------------------------------------------------------------


def _connect(path: Path) -> sqlite3.Connection:
    """The store's connection. The file is made 0600 before SQLite opens it: SQLite gives the -wal and
    -shm files the database file's mode."""
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    os.chmod(path, 0o600)
    db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False, timeout=30)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")  # an acknowledged turn survives power loss
    db.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten, not left in free pages
    db.execute("PRAGMA temp_store=MEMORY")  # no temporary files holding conversation text
    return db


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)  # mkdir's mode passes through the umask, and the folder may predate us
    return path


def _private_file(path: Path):
    """A new file open for binary writing, 0600 whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass  # already gone (a sweep in another process, or never made)


# -- rows and exports --------------------------------------------------------------------------------


def _turn_to_row(turn: Turn) -> tuple:
    def as_json(value) -> str:
        return json.dumps(value, ensure_ascii=False)  # UTF-8 like the other columns

    return (turn.question, as_json(list(turn.images)), as_json([dict(s) for s in turn.sources]),
            as_json(list(turn.cited)), turn.answer, turn.notice, float(turn.created), turn.model,
            as_json(list(turn.annotated)), as_json(turn.consistency) if turn.consistency else None)


def _turn_from_row(row: tuple) -> Turn:
    question, images, sources, cited, answer, notice, created, model, annotated, consistency = row
    return Turn(question, tuple(json.loads(images)), tuple(json.loads(sources)), tuple(json.loads(cited)),
                answer, notice, created, model, tuple(json.loads(annotated)),
                json.loads(consistency) if consistency else None)


def _turn_json(turn: Turn) -> dict:
    return {"question": turn.question, "images": list(turn.images), "sources": [dict(s) for s in turn.sources],
            "cited": list(turn.cited), "answer": turn.answer, "notice": turn.notice, "created": turn.created,
            "model": turn.model, "annotated": list(turn.annotated), "consistency": turn.consistency}


def _as_json(conversation: Conversation) -> dict:
    return {"format": EXPORT_FORMAT, "version": SCHEMA_VERSION, "id": conversation.id,
            "title": conversation.title, "created": conversation.created, "updated": conversation.updated,
            "images_folder": IMAGES, "turns": [_turn_json(t) for t in conversation.turns]}


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _as_markdown(conversation: Conversation) -> str:
    n = len(conversation.turns)
    lines = [f"# {conversation.title}", "", f"_{_when(conversation.created)}, {n} turn{'s' * (n != 1)}_", ""]
    for number, turn in enumerate(conversation.turns, 1):
        lines += _turn_markdown(number, turn)
    return "\n".join(lines).rstrip() + "\n"


def _turn_markdown(number: int, turn: Turn) -> list[str]:
    lines = [f"## {number}. Question", "", turn.question or "_(no text)_", ""]
    lines += [f"![image {i}]({IMAGES}/{ref})" for i, ref in enumerate(turn.images, 1)]
    lines += [""] if turn.images else []
    lines += ["### Answer", "", turn.answer or "_(no answer)_", ""]
    lines += [f"![located {i}]({IMAGES}/{ref})" for i, ref in enumerate(turn.annotated, 1)]
    lines += [""] if turn.annotated else []
    if (agreement := turn.consistency or {}).get("score") is not None:
        flag = " (this answer may not match the image)" if agreement.get("flagged") else ""
        lines += [f"_Image agreement {agreement['score']:.2f}{flag}_", ""]
    if turn.notice:
        lines += [f"> ⚠️ {' '.join(turn.notice.split())}", ""]
    if turn.sources:
        lines += ["### Sources", ""]
        lines += [f"- [{s.get('number')}] {s.get('name')}, {s.get('locator')}"
                  + (" (cited)" if s.get("number") in turn.cited else "") for s in turn.sources]
        lines += [""]
    return lines


def _write_archive(archive: zipfile.ZipFile, conversation: Conversation, images: Path) -> None:
    archive.writestr("conversation.json", json.dumps(_as_json(conversation), ensure_ascii=False, indent=1))
    archive.writestr("conversation.md", _as_markdown(conversation))
    for ref in dict.fromkeys(ref for turn in conversation.turns for ref in (*turn.images, *turn.annotated)):
        # images are compressed already; zipfile streams the file in blocks
        archive.write(images / ref, f"{IMAGES}/{ref}", compress_type=zipfile.ZIP_STORED)
