"""The ``VisionChatModel`` protocol and a lazily loaded wrapper around any backend."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from assistant.loading import Background, LoadStatus
from assistant.types import ChatTurn, GenerationParams


@runtime_checkable
class VisionChatModel(Protocol):
    """Streams an answer to a conversation whose turns may carry images.

    Closing the returned iterator stops generation (the Stop button). Optional capability: a backend
    whose model answers with boxes defines ``image_frame(path) -> (width, height)``, the pixel frame its
    box coordinates refer to.
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

    def image_frame(self, image: Path) -> tuple[int, int] | None:
        """The loaded backend's grounding frame, when it has that capability."""
        frame_of = getattr(self.loader.get(), "image_frame", None)
        return frame_of(image) if frame_of else None
