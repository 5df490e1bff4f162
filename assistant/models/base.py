"""The ``VisionChatModel`` protocol and a lazily loaded wrapper around any backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from assistant.errors import AssistantError
from assistant.lifecycle import Capabilities, Component, Loaded
from assistant.loading import Background
from assistant.types import ChatTurn, GenerationParams


@runtime_checkable
class VisionChatModel(Component, Protocol):
    """Streams an answer to a conversation whose turns may carry images.

    Closing the returned iterator stops generation (the Stop button). ``capabilities`` declares what the
    model can do; with ``boxes="pixels"``, ``image_frame(path) -> (width, height)`` is the pixel frame its
    box coordinates refer to. A model is a ``Component``: ``start``, ``status``, ``close``.
    """

    name: str
    capabilities: Capabilities

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]: ...

    def image_frame(self, image: Path) -> tuple[int, int] | None: ...


class LazyModel(Loaded):
    """A ``VisionChatModel`` whose backend loads in the background; ``stream`` waits for it."""

    def __init__(self, name: str, loader: Background[VisionChatModel]):
        self._name = name
        self.loader = loader

    @property
    def name(self) -> str:
        """The checkpoint it loaded, once it has (the default depends on the machine); before that, the
        name it was given."""
        if self.loader.ready:
            try:
                return getattr(self.loader.get(0), "name", self._name)
            except (AssistantError, TimeoutError):  # closed meanwhile
                pass
        return self._name

    @property
    def capabilities(self) -> Capabilities:
        """The loaded backend's (waits for it)."""
        return self.loader.get().capabilities

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]:
        return self.loader.get().stream(turns, params)

    def image_frame(self, image: Path) -> tuple[int, int] | None:
        return self.loader.get().image_frame(image)
