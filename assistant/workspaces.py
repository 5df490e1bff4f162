"""Workspaces: what each user owns, keyed to the signed-in identity (never to Gradio's session hash).

The web app asks ``Workspaces.of(user)`` for the user's workspace on every request, with the name the
sign-in gave; every user action therefore passes through here, the one place an audit record can be
written later. The model is shared (one copy in GPU memory); each user has knowledge bases of their own
(a ``Shelf``: the first, those they create, and the shared library beside them), opened on first use with
the shared embedders and parse workers, and closed at shutdown.

Without sign-in (local mode) there is one user, whose first knowledge base stays where it always was
(``ASSISTANT_DATA_DIR``); with sign-in each user's lives in ``ASSISTANT_DATA_DIR/users/<name>/knowledge``
and the ones they create in ``.../knowledge-bases/<id>``.
Conversations (and their images) are in the workspace's ``conversations`` folder; answers' annotated images
are drawn in its ``scratch`` folder and then kept with their conversation.

Anonymous visitors' workspaces are temporary: ``remove_idle`` deletes those unused for a while, every file.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.accounts import normalise_name
from assistant.audit import AuditLog
from assistant.conversations import ConversationStore
from assistant.errors import AssistantError
from assistant.knowledge import Knowledge
from assistant.lifecycle import close_all
from assistant.loading import LoadStatus
from assistant.pipeline import AnswerPipeline
from assistant.shelf import DEFAULT, SHARED, Shelf, base_dir

LOCAL_USER = "local"
log = logging.getLogger(__name__)


def workspace_dir(data_dir: Path, user: str | None) -> Path:
    """A user's folder; ``None``: the single local user's (the data folder itself)."""
    return Path(data_dir) if user is None else Path(data_dir) / "users" / normalise_name(user)


def knowledge_dir(data_dir: Path, user: str | None, kb: str = DEFAULT) -> Path:
    """Where one of a user's knowledge bases lives (``None``: the single local user's); the first one where
    it always was (the data folder itself for the local user), the shared library in ``shared-library``."""
    if kb == SHARED:
        return Path(data_dir) / "shared-library"
    if kb != DEFAULT:
        return base_dir(workspace_dir(data_dir, user), kb)
    return Path(data_dir) if user is None else workspace_dir(data_dir, user) / "knowledge"


@dataclass
class Workspace:
    user: str
    pipeline: AnswerPipeline  # the shared model with this user's knowledge bases
    folder: Path
    conversations: ConversationStore
    last_used: float = field(default_factory=time.monotonic)
    audit: AuditLog | None = None  # the server's audit log, when it keeps one

    def record(self, action: str, **details) -> None:
        """An action of this workspace's user into the audit log (see ``assistant.audit``): the one place
        the handlers tell what a user did."""
        if self.audit is not None:
            self.audit.record(self.user, action, **details)

    @property
    def shelf(self) -> Shelf | None:
        """This user's knowledge bases (None when the knowledge base is turned off)."""
        return self.pipeline.knowledge

    @property
    def knowledge(self) -> Knowledge | None:
        """The first knowledge base."""
        return self.shelf.first if self.shelf is not None else None

    @property
    def scratch(self) -> Path:
        """Files made for a moment (an annotated image before it joins its conversation)."""
        return self.folder / "scratch"

    def thumbnail(self, name: str) -> Path | None:
        """A thumbnail from one of the knowledge bases this user can read; None when none has it."""
        return self.shelf.thumbnail(name) if self.shelf is not None else None

    def size(self) -> int:
        """Bytes this workspace holds on disk (for the upload quota)."""
        total = 0
        for root, _, files in os.walk(self.folder):
            for f in files:
                try:
                    total += os.stat(os.path.join(root, f)).st_size
                except OSError:
                    pass  # removed meanwhile
        return total

    def close(self) -> None:
        close_all([c for c in (self.shelf, self.conversations) if c is not None])


class Workspaces:
    """Each user's workspace, opened on first use. ``open_knowledge(user, kb)`` builds one of a user's
    knowledge bases (not yet loaded); ``library`` is the shared library (None: none); ``shared`` are the
    components every workspace uses (the model, the embedders); ``is_admin(user)`` says who may change the
    shared library."""

    def __init__(self, model, open_knowledge: Callable[..., Knowledge] | None, *, signed_in: bool,
                 data_dir: Path, shared: list | None = None, is_user: Callable[[str], bool] | None = None,
                 temporary: bool = False, library: Knowledge | None = None,
                 is_admin: Callable[[str], bool] | None = None, audit: AuditLog | None = None,
                 **pipeline_options):
        self.model = model
        self.audit = audit
        self.data_dir = Path(data_dir)
        self.temporary = temporary  # anonymous visitors: workspaces removed when idle
        self.open_knowledge = open_knowledge
        self.signed_in = signed_in  # False: one local user, whoever asks
        self.is_user = is_user  # asked on every request: a user removed meanwhile gets nothing more
        self.is_admin = is_admin or (lambda user: False)
        self.library = library
        self.shared = [model, *(shared or []), *([library] if library is not None else [])]
        self.pipeline_options = pipeline_options
        self._open: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def single(cls, pipeline: AnswerPipeline, data_dir: Path,
               open_base: Callable[[str], Knowledge] | None = None, audit: AuditLog | None = None) -> Workspaces:
        """One local user with an already built pipeline (no sign-in); its conversations in ``data_dir``;
        ``open_base(kb)`` opens the knowledge bases the user creates besides the pipeline's."""
        workspaces = cls(pipeline.model, None, signed_in=False, data_dir=data_dir, audit=audit)
        shelf = Shelf(data_dir, pipeline.knowledge, open_base, admin=lambda: True) if pipeline.knowledge else None
        workspaces._open[LOCAL_USER] = workspaces._workspace(LOCAL_USER, pipeline.with_knowledge(shelf))
        workspaces.shared = []  # the pipeline closes its own components
        return workspaces

    def _workspace(self, key: str, pipeline: AnswerPipeline) -> Workspace:
        folder = workspace_dir(self.data_dir, key if self.signed_in else None)
        workspace = Workspace(key, pipeline, folder, ConversationStore(folder / "conversations"), audit=self.audit)
        if pipeline.annotations_dir is None:
            pipeline.annotations_dir = workspace.scratch
        return workspace

    def _build(self, key: str) -> Workspace:
        shelf = None
        if self.open_knowledge is not None:
            shelf = Shelf(workspace_dir(self.data_dir, key), self.open_knowledge(key).start(),
                          lambda kb: self.open_knowledge(key, kb), shared=self.library,
                          admin=lambda: self.is_admin(key))
        return self._workspace(key, AnswerPipeline(self.model, shelf, **self.pipeline_options))

    def of(self, user: str | None) -> Workspace:
        """The workspace of the user the sign-in named (``None`` without sign-in)."""
        if not self.signed_in:
            key = LOCAL_USER
        elif not user:
            raise AssistantError("Sign in first.")
        else:
            key = normalise_name(user)  # Gradio passes the name as typed; the users file ignores case
            if self.is_user is not None and not self.is_user(key):
                raise AssistantError("This account no longer exists; sign out.")
        with self._lock:
            if self._closed:
                raise AssistantError("The app is shutting down.")
            known = self._open.get(key)
            if (self.open_knowledge is not None and known is not None and known.knowledge is not None
                    and known.knowledge.status().state == "failed"):
                del self._open[key]  # e.g. the CLI had it open a moment: try again rather than fail for good
                known.close()
            if key not in self._open:
                self._open[key] = self._build(key)
            workspace = self._open[key]
            workspace.last_used = time.monotonic()
            return workspace

    def remove(self, user: str) -> None:
        """Delete a user's workspace and every file in it (knowledge bases, conversations, images)."""
        key = normalise_name(user)
        with self._lock:
            workspace = self._open.pop(key, None)
        folder = workspace_dir(self.data_dir, key)
        if workspace is None and folder.exists():
            workspace = self._build(key)  # to remove its collections from a Chroma server too
        if workspace is not None:
            if workspace.shelf is not None:
                workspace.shelf.destroy()
            workspace.conversations.close()
        if folder.exists():
            shutil.rmtree(folder)
        log.info("workspace removed: %s", key)

    def remove_idle(self, idle_seconds: float) -> list[str]:
        """Temporary workspaces (anonymous visitors) unused for ``idle_seconds`` are deleted."""
        if not self.temporary:
            return []
        now = time.monotonic()
        with self._lock:
            idle = [k for k, w in self._open.items() if now - w.last_used > idle_seconds]
        for key in idle:
            self.remove(key)
        return idle

    @property
    def closed(self) -> bool:
        return self._closed

    def start(self) -> Workspaces:
        for component in self.shared:
            component.start()
        if not self.signed_in:
            self.of(None)  # the one local user's knowledge base loads at once, as before
        return self

    def status(self) -> list[LoadStatus]:
        """The shared parts' state (the model, the embedders), or the local pipeline's."""
        if not self.signed_in and LOCAL_USER in self._open and not self.shared:
            return self._open[LOCAL_USER].pipeline.status()
        return [c.status() for c in self.shared]

    def close(self) -> None:
        """Close every user's knowledge base, then the shared parts."""
        with self._lock:
            self._closed = True
            opened, self._open = list(self._open.values()), {}
        if not self.shared:  # single: the pipeline owns its components
            close_all([*(w.pipeline for w in opened), *(w.conversations for w in opened)])
            return
        close_all([*self.shared, *(c for w in opened for c in (w.shelf, w.conversations) if c is not None)])
