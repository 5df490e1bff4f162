"""Retention: what nobody has touched for a while is deleted, with the same no-trace deletion the app uses.

``purge`` visits every workspace under the data folder: the local user's (the data folder itself), each
signed-in user's (``users/<name>/``) and, when asked, the shared library. In each it deletes the
conversations last changed before the cutoff (``ConversationStore.delete_older_than``: rows scrubbed, images
removed) and the documents ingested before it (``KnowledgeBase.delete``: chunks, vectors, thumbnails, the
index rebuilt without them).

Beside the running app: conversations are SQLite with its own locking, and a conversation continued while
the purge runs is kept (chosen and deleted in one transaction). A knowledge base is written under its file
lock, as the app writes it; one the app holds open (a local index is held for the app's whole run) is not
touched and is reported as skipped, to be purged when the app is stopped. A knowledge base with nothing to
purge is only read, never locked.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.accounts import NAME
from assistant.conversations import DATABASE, ConversationStore
from assistant.shelf import DEFAULT, SHARED, Catalogue
from assistant.workspaces import LOCAL_USER, knowledge_dir
from retrieval.errors import KnowledgeBaseBusyError, RetrievalError
from retrieval.records import Records

log = logging.getLogger(__name__)
DAY = 86400.0
LIBRARY = "shared library"
RECORD = "records.sqlite3"


@dataclass
class Purged:
    """What one workspace lost (in a dry run: would lose). Ids only, never titles or content."""

    workspace: str  # a user's folder name, ``local``, or ``shared library``
    conversations: list[str] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # knowledge base id -> why it was left alone

    def to_dict(self) -> dict:
        return {"conversations": self.conversations, "documents": self.documents,
                "skipped": sorted(self.skipped)}


@dataclass(frozen=True)
class Place:
    """A workspace to visit: its label, the user its knowledge bases belong to, its folder (None: the
    shared library, which has no conversations)."""

    label: str
    user: str | None
    folder: Path | None


def cutoff_for(days: float, now: float | None = None) -> float:
    return (time.time() if now is None else now) - days * DAY


def places(data_dir: Path, *, library: bool = False) -> list[Place]:
    """Every workspace under ``data_dir``; folders under ``users/`` that cannot be a user's are left out."""
    data_dir = Path(data_dir)
    found = [Place(LOCAL_USER, None, data_dir)]
    users = data_dir / "users"
    if users.is_dir():
        found += [Place(f.name, f.name, f) for f in sorted(users.iterdir())
                  if f.is_dir() and NAME.fullmatch(f.name)]
    if library:
        found.append(Place(LIBRARY, None, None))
    return found


def purge(data_dir: Path, cutoff: float, open_kb: Callable[[str | None, str], object], *,
          library: bool = False, dry_run: bool = False, results: list[Purged] | None = None) -> list[Purged]:
    """Delete (or, with ``dry_run``, list) what every workspace last touched before ``cutoff``.
    ``open_kb(user, kb)`` opens a knowledge base to write (``composition.knowledge_base_opener``). Each
    deletion is added to ``results`` as it happens, so a purge that fails half-way still says what it did."""
    results = [] if results is None else results
    for place in places(data_dir, library=library):
        purged = Purged(place.label)
        results.append(purged)
        if place.folder is not None:
            purged.conversations = _conversations(place.folder / "conversations", cutoff, dry_run)
        for kb in _bases(place):
            _documents(purged, knowledge_dir(data_dir, place.user, kb), lambda kb=kb: open_kb(place.user, kb),
                       kb, cutoff, dry_run)
    return results


def _bases(place: Place) -> list[str]:
    if place.folder is None:
        return [SHARED]
    return [DEFAULT, *(kb_id for kb_id, _ in Catalogue(place.folder).bases()[1:])]


def _conversations(folder: Path, cutoff: float, dry_run: bool) -> list[str]:
    if not (folder / DATABASE).exists():
        return []  # never opened: nothing to delete, and nothing is created
    with ConversationStore(folder) as store:
        if dry_run:
            return [c.id for c in store.older_than(cutoff)]
        return store.delete_older_than(cutoff)


def _documents(purged: Purged, folder: Path, open_kb: Callable[[], object], kb: str, cutoff: float,
               dry_run: bool) -> None:
    """The documents of one knowledge base stored before ``cutoff``: read from its record without a lock
    first; only when there are some is it opened to write."""
    old = _stored_before(folder / RECORD, cutoff)
    if dry_run or not old:
        purged.documents += old
        return
    try:
        base = open_kb()
    except KnowledgeBaseBusyError:
        purged.skipped[kb] = "open in another process (the app?): purge it while that is stopped"
        return
    except RetrievalError as exc:
        purged.skipped[kb] = str(exc)
        return
    try:
        for info in base.documents():  # again, under the lock: what the record holds now
            if info.added < cutoff:
                base.delete(info.doc_id)
                purged.documents.append(info.doc_id)
    finally:
        base.close()


def _stored_before(record: Path, cutoff: float) -> list[str]:
    if not record.exists():
        return []
    records = Records(record, readonly=True)
    try:
        return [d.doc_id for d in records.documents() if d.added < cutoff]
    finally:
        records.close()
