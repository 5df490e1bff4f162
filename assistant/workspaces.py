"""Workspaces: what each user owns, keyed to the signed-in identity (never to Gradio's session hash).

The web app asks ``Workspaces.of(user)`` for the user's workspace on every request, with the name the
sign-in gave; every user action therefore passes through here, the one place an audit record can be
written later. The model is shared (one copy in GPU memory); each user has a knowledge base of their own,
opened on first use with the shared embedders and parse workers, and closed at shutdown.

Without sign-in (local mode) there is one user, whose knowledge base stays where it always was
(``ASSISTANT_DATA_DIR``); with sign-in each user's lives in ``ASSISTANT_DATA_DIR/users/<name>/knowledge``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from assistant.accounts import normalise_name
from assistant.errors import AssistantError
from assistant.knowledge import Knowledge
from assistant.lifecycle import close_all
from assistant.loading import LoadStatus
from assistant.pipeline import AnswerPipeline

LOCAL_USER = "local"


def knowledge_dir(data_dir: Path, user: str | None) -> Path:
    """Where a user's knowledge base lives; ``None``: the single local user's (the data folder itself)."""
    return Path(data_dir) if user is None else Path(data_dir) / "users" / normalise_name(user) / "knowledge"


@dataclass(frozen=True)
class Workspace:
    user: str
    pipeline: AnswerPipeline  # the shared model with this user's knowledge base

    @property
    def knowledge(self) -> Knowledge | None:
        return self.pipeline.knowledge


class Workspaces:
    """Each user's workspace, opened on first use. ``open_knowledge(user)`` builds a user's knowledge base
    (not yet loaded); ``shared`` are the components every workspace uses (the model, the embedders)."""

    def __init__(self, model, open_knowledge: Callable[[str], Knowledge] | None, *, signed_in: bool,
                 shared: list | None = None, is_user: Callable[[str], bool] | None = None,
                 **pipeline_options):
        self.model = model
        self.open_knowledge = open_knowledge
        self.signed_in = signed_in  # False: one local user, whoever asks
        self.is_user = is_user  # asked on every request: a user removed meanwhile gets nothing more
        self.shared = [model, *(shared or [])]
        self.pipeline_options = pipeline_options
        self._open: dict[str, Workspace] = {}
        self._lock = threading.Lock()
        self._closed = False

    @classmethod
    def single(cls, pipeline: AnswerPipeline) -> Workspaces:
        """One local user with an already built pipeline (no sign-in)."""
        workspaces = cls(pipeline.model, None, signed_in=False)
        workspaces._open[LOCAL_USER] = Workspace(LOCAL_USER, pipeline)
        workspaces.shared = []  # the pipeline closes its own components
        return workspaces

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
                known.knowledge.close()
            if key not in self._open:
                knowledge = self.open_knowledge(key).start() if self.open_knowledge else None
                self._open[key] = Workspace(key, AnswerPipeline(self.model, knowledge, **self.pipeline_options))
            return self._open[key]

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
            close_all([w.pipeline for w in opened])
            return
        close_all([*self.shared, *(w.knowledge for w in opened)])
