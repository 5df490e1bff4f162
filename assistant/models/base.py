"""The ``VisionChatModel`` protocol and a lazily loaded wrapper around any backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol, runtime_checkable

from assistant.loading import Background, LoadStatus
from assistant.types import ChatTurn, GenerationParams


@runtime_checkable
class VisionChatModel(Protocol):
    """Streams an answer to a conversation whose turns may carry images.

    Closing the returned iterator stops generation (the Stop button).
    """

    name: str

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]: ...


class LazyModel:
    """A ``VisionChatModel`` whose backend loads in the background; ``stream`` waits for it."""

    def __init__(self, name: str, loader: Background[VisionChatModel]):
        self.name = name
        self.loader = loader

    def start(self) -> LazyModel:
        self.loader.start()
        return self

    def status(self) -> LoadStatus:
        return self.loader.status()

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]:
        return self.loader.get().stream(turns, params)
