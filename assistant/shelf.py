"""A user's knowledge bases: several, named, and the shared library beside them.

Every workspace has a first knowledge base (id ``default``: where the single knowledge base always was,
so nothing moves on upgrade), any number the user creates (``kb-<hex>``, each a knowledge base of its own
under ``knowledge-bases/<id>``), and, with sign-in, the shared library an administrator curates (id
``shared``): readable by every user, changed by administrators only.

``Catalogue`` is the list on disk (``knowledge-bases.json`` in the workspace: ids, titles, which ones the
chat searches); the app and the CLI both edit it, under a file lock. ``Shelf`` is the list at run time: it
opens each knowledge base when first used, checks who may write, and searches the chosen ones together
for the chat (the pipeline sees one knowledge source).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import AssistantError, InputError, KnowledgeError
from assistant.knowledge import Knowledge
from assistant.lifecycle import close_all
from assistant.loading import LoadStatus
from retrieval import Hit

DEFAULT = "default"
SHARED = "shared"
DEFAULT_TITLE = "My documents"
SHARED_TITLE = "Shared library"
MAX_TITLE = 80
MAX_BASES = 50
CATALOGUE = "knowledge-bases.json"
FOLDER = "knowledge-bases"


@dataclass(frozen=True)
class BaseInfo:
    id: str
    title: str
    shared: bool = False  # the administrators' library
    writable: bool = True  # this user may add and delete documents
    used: bool = True  # the chat searches it

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "shared": self.shared, "writable": self.writable,
                "used": self.used}


def base_dir(workspace: Path, kb_id: str) -> Path:
    """Where a created knowledge base lives in its workspace (the first one lives where it always was)."""
    if not kb_id.startswith("kb-") or not kb_id[3:].isalnum():
        raise InputError(f"'{kb_id}' is not a knowledge base id")
    return Path(workspace) / FOLDER / kb_id


def clean_title(title: str) -> str:
    clean = " ".join((title or "").split())
    if not clean:
        raise InputError("A knowledge base needs a name.")
    if len(clean) > MAX_TITLE:
        raise InputError(f"A knowledge base's name can have at most {MAX_TITLE} characters ({len(clean)} given).")
    return clean


class Catalogue:
    """``knowledge-bases.json``: the created knowledge bases (id, title, created), the first one's title,
    and the ids the chat searches. Written whole and renamed into place, under a lock that the CLI and the
    app share."""

    def __init__(self, workspace: Path):
        self.folder = Path(workspace)
        self.path = self.folder / CATALOGUE
        self._lock = threading.Lock()

    def bases(self) -> list[tuple[str, str]]:
        """(id, title) of the user's own knowledge bases, the first one first."""
        data = self._read()
        return [(DEFAULT, data.get("default_title") or DEFAULT_TITLE),
                *((b["id"], b["title"]) for b in data.get("bases", []))]

    def used(self) -> set[str] | None:
        """The ids the chat searches; None: not chosen yet (all of them)."""
        used = self._read().get("used")
        return None if used is None else set(used)

    def title(self, kb_id: str) -> str:
        for known, title in self.bases():
            if known == kb_id:
                return title
        raise InputError(f"There is no knowledge base '{kb_id}'.")

    def create(self, title: str) -> str:
        title = clean_title(title)
        with self._editing() as data:
            bases = data.setdefault("bases", [])
            self._unique(data, title)
            if len(bases) + 1 >= MAX_BASES:
                raise InputError(f"At most {MAX_BASES} knowledge bases: delete one first.")
            kb_id = f"kb-{secrets.token_hex(4)}"
            bases.append({"id": kb_id, "title": title, "created": time.time()})
            if data.get("used") is not None:
                data["used"].append(kb_id)  # a new one is searched until the user says otherwise
        return kb_id

    def rename(self, kb_id: str, title: str) -> str:
        title = clean_title(title)
        with self._editing() as data:
            self._unique(data, title, kb_id)
            if kb_id == DEFAULT:
                data["default_title"] = title
                return title
            self._entry(data, kb_id)["title"] = title
        return title

    def remove(self, kb_id: str) -> None:
        with self._editing() as data:
            entry = self._entry(data, kb_id)
            data["bases"].remove(entry)
            if data.get("used") is not None:
                data["used"] = [u for u in data["used"] if u != kb_id]

    def set_used(self, ids: Sequence[str]) -> None:
        with self._editing() as data:
            data["used"] = list(dict.fromkeys(ids))

    def resolve(self, name: str | None) -> str:
        """A knowledge base named by id or by title (any case); empty: the first one."""
        name = " ".join((name or "").split())
        if not name:
            return DEFAULT
        if name.lower() == SHARED or name.lower() == SHARED_TITLE.lower():
            return SHARED
        bases = self.bases()
        for kb_id, title in bases:
            if name == kb_id or name.lower() == title.lower():
                return kb_id
        names = ", ".join(f"'{t}'" for _, t in bases)
        raise InputError(f"There is no knowledge base '{name}'. Yours: {names}.")

    # -- the file -------------------------------------------------------------------------------

    def _read(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AssistantError(f"The list of knowledge bases ({CATALOGUE}) cannot be read: {exc}") from exc

    @contextlib.contextmanager
    def _editing(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.folder / f".{CATALOGUE}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the CLI edits it beside the app
            data = self._read()
            yield data
            partial = self.path.with_name(f".{CATALOGUE}.{os.getpid()}.part")
            partial.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
            os.chmod(partial, 0o600)
            os.replace(partial, self.path)

    def _unique(self, data: dict, title: str, kb_id: str | None = None) -> None:
        for known, other in [(DEFAULT, data.get("default_title") or DEFAULT_TITLE),
                             *((b["id"], b["title"]) for b in data.get("bases", []))]:
            if known != kb_id and other.lower() == title.lower():
                raise InputError(f"You already have a knowledge base called '{other}'.")
        if title.lower() in (SHARED, SHARED_TITLE.lower()):
            raise InputError(f"'{title}' is the shared library's name: choose another.")

    @staticmethod
    def _entry(data: dict, kb_id: str) -> dict:
        if kb_id == DEFAULT:
            raise InputError("The first knowledge base cannot be deleted: delete its documents, or rename it.")
        if kb_id == SHARED:
            raise InputError("The shared library is managed by an administrator.")
        for entry in data.get("bases", []):
            if entry["id"] == kb_id:
                return entry
        raise InputError(f"There is no knowledge base '{kb_id}'.")


def delete_base(catalogue: Catalogue, kb_id: str, knowledge: Callable[[], Knowledge]) -> str:
    """Remove one created knowledge base for good (``knowledge()`` opens it), then from the list; its title.
    The first one and the shared library cannot be deleted this way."""
    if kb_id in (DEFAULT, SHARED):
        Catalogue._entry({}, kb_id)  # says why not
    title = catalogue.title(kb_id)
    knowledge().destroy()
    catalogue.remove(kb_id)
    return title


class Shelf:
    """The knowledge bases one user sees, opened when first used. For the pipeline it is one knowledge
    source: ``search`` asks every chosen one and merges their rankings; ``start``, ``status`` and ``close``
    are the first one's lifecycle (the others open on demand, and close with it)."""

    def __init__(self, workspace: Path, first: Knowledge, open_base: Callable[[str], Knowledge] | None = None,
                 *, shared: Knowledge | None = None, admin: Callable[[], bool] = lambda: False):
        self.catalogue = Catalogue(workspace)
        self.first = first
        self.open_base = open_base  # None: this workspace cannot have more than its first one
        self.shared = shared
        self.admin = admin  # asked at every write to the shared library
        self._open: dict[str, Knowledge] = {DEFAULT: first}
        self._lock = threading.Lock()

    # -- which knowledge bases ------------------------------------------------------------------

    def bases(self) -> list[BaseInfo]:
        used = self.catalogue.used()
        own = [BaseInfo(kb_id, title, used=used is None or kb_id in used) for kb_id, title in self.catalogue.bases()]
        if self.shared is None:
            return own
        return [*own, BaseInfo(SHARED, SHARED_TITLE, shared=True, writable=self.admin(),
                               used=used is None or SHARED in used)]

    def create(self, title: str) -> BaseInfo:
        if self.open_base is None:
            raise InputError("This app has one knowledge base per user.")
        kb_id = self.catalogue.create(title)
        return next(b for b in self.bases() if b.id == kb_id)

    def rename(self, kb_id: str, title: str) -> BaseInfo:
        if kb_id == SHARED:
            raise InputError("The shared library keeps its name.")
        self.catalogue.title(kb_id)  # exists
        self.catalogue.rename(kb_id, title)
        return next(b for b in self.bases() if b.id == kb_id)

    def delete(self, kb_id: str) -> str:
        """Delete a created knowledge base and every byte of it (record, index, thumbnails)."""
        title = delete_base(self.catalogue, kb_id, lambda: self.knowledge(kb_id))
        with self._lock:
            closed = self._open.pop(kb_id, None)
        if closed is not None:
            closed.close()
        return title

    def choose(self, ids: Sequence[str]) -> list[BaseInfo]:
        """The knowledge bases the chat searches (none: the chat answers from the model alone)."""
        known = {b.id for b in self.bases()}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise InputError(f"There is no knowledge base '{unknown[0]}'.")
        self.catalogue.set_used(ids)
        return self.bases()

    def resolve(self, name: str | None) -> str:
        kb_id = self.catalogue.resolve(name)
        if kb_id == SHARED and self.shared is None:
            raise InputError("There is no shared library here (it exists when users sign in).")
        return kb_id

    def knowledge(self, kb_id: str, *, write: bool = False) -> Knowledge:
        """One knowledge base, opened if need be; writing the shared library needs an administrator."""
        if kb_id == SHARED:
            if self.shared is None:
                raise InputError("There is no shared library here (it exists when users sign in).")
            if write and not self.admin():
                raise AssistantError("Only an administrator can add documents to the shared library or delete "
                                     "them; you can search it and ask about it.")
            return self.shared
        with self._lock:
            if kb_id in self._open:
                return self._open[kb_id]
        self.catalogue.title(kb_id)  # one of this user's
        if self.open_base is None:
            raise InputError("This app has one knowledge base per user.")
        with self._lock:
            if kb_id not in self._open:
                self._open[kb_id] = self.open_base(kb_id).start()
            return self._open[kb_id]

    def thumbnail(self, name: str) -> Path | None:
        """A thumbnail by file name, from any knowledge base this user can read; None when none has it."""
        if not name or "/" in name or name.startswith("."):
            return None
        folders = [self.first.files_dir()]
        folders += [self.catalogue.folder / FOLDER / kb_id / "files" for kb_id, _ in self.catalogue.bases()[1:]]
        if self.shared is not None:
            folders.append(self.shared.files_dir())
        for folder in folders:
            if folder is not None and (folder / name).is_file():
                return folder / name
        return None

    # -- the pipeline's knowledge source --------------------------------------------------------

    def search(self, text: str | None = None, images: Sequence[Path] = (), *, k: int = 4) -> list[Hit]:
        """The chosen knowledge bases' hits, merged by rank (each one's fused ranking counts the same; ties by
        score), the same chunk once. A knowledge base that fails is skipped when another answers."""
        rankings, failures = [], []
        for base in self.bases():
            if not base.used:
                continue
            try:
                rankings.append(self.knowledge(base.id).search(text, images, k=k))
            except KnowledgeError as exc:
                failures.append(f"{base.title}: {exc}")
        if failures and not rankings:
            raise KnowledgeError("; ".join(failures))
        ranked = sorted(((rank, -hit.score, n, hit) for n, hits in enumerate(rankings)
                         for rank, hit in enumerate(hits)), key=lambda t: t[:3])
        seen: set[str] = set()
        merged = []
        for *_, hit in ranked:
            if hit.chunk.id not in seen:
                seen.add(hit.chunk.id)
                merged.append(hit)
        return merged[:k]

    def embedder(self):
        """The cross-modal embedder: every knowledge base of a workspace has the same (the settings')."""
        return self.first.embedder()

    def start(self) -> Shelf:
        self.first.start()
        return self

    def status(self) -> LoadStatus:
        return self.first.status()

    def close(self) -> None:
        """Close this user's knowledge bases (the shared library belongs to all, and stays open)."""
        with self._lock:
            opened, self._open = list(self._open.values()), {}
        close_all(opened)

    def destroy(self) -> None:
        """Every knowledge base of this user removed for good (the workspace is being deleted)."""
        for kb_id, _ in self.catalogue.bases()[1:]:
            knowledge = self.knowledge(kb_id)
            knowledge.destroy()
        self.first.destroy()
        self.close()
