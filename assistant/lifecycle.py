"""What every long-lived part of the assistant shares: one lifecycle that the composition root drives,
and, for models, capabilities declared as data (in the way simonw/llm's models declare ``can_stream``
and their attachment types) rather than guessed with ``hasattr``."""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from assistant.loading import Background, LoadStatus


@runtime_checkable
class Component(Protocol):
    """``start`` begins loading (in the background; returns at once and may be called again), ``status``
    says where it stands, ``close`` releases what it holds and waits for its threads: after it, nothing
    of the component runs."""

    def start(self) -> None: ...

    def status(self) -> LoadStatus: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Capabilities:
    """What a vision-chat model can do.

    - ``streams``: the answer arrives in pieces (else as one).
    - ``images``: turns may carry images.
    - ``boxes``: how its answers give boxes (``{"bbox_2d": [x1, y1, x2, y2]}``): ``pixels`` of the image as
      the model saw it (``image_frame(path)`` gives that frame), ``relative-1000`` (0-1000 of width and
      height), ``image`` (pixels of the image as sent), ``none`` (boxes are not drawn).
    """

    streams: bool = True
    images: bool = True
    boxes: str = "image"


class Ready:
    """The lifecycle of a component that is usable as soon as it is built (a remote endpoint, a fake)."""

    label = "model"

    def start(self) -> None:
        pass

    def status(self) -> LoadStatus:
        return LoadStatus(self.label, "ready", f"{self.label}: ready")

    def close(self) -> None:
        pass


class Loaded:
    """The lifecycle of a component that loads in the background: its ``loader`` (a ``Background``) starts,
    reports and closes it."""

    loader: Background

    def start(self):
        self.loader.start()
        return self

    def status(self) -> LoadStatus:
        return self.loader.status()

    def close(self) -> None:
        """Wait for a load in progress, then close what was loaded."""
        self.loader.close()


def close_all(components) -> None:
    """Close in reverse order of building; every one is closed even if another fails."""
    errors = []
    for component in reversed([c for c in components if c is not None]):
        try:
            component.close()
        except Exception as exc:  # noqa: BLE001  the others must still close
            errors.append(exc)
    if errors:
        raise errors[0]


def stop_on_sigterm() -> None:
    """Treat SIGTERM (``docker stop``, systemd, Kubernetes) as Ctrl-C: the main thread gets
    ``KeyboardInterrupt``, so the server stops and every component is closed cleanly, instead of the
    process dying at once and the next start treating the knowledge base as crashed."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)
