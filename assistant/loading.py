"""Load something slow (a model, an embedder) in a background thread and report its state, so the app
is served at once and shows what it is waiting for."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from assistant.errors import AssistantError

T = TypeVar("T")
State = Literal["idle", "loading", "ready", "failed", "closed"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadStatus:
    label: str
    state: State
    message: str


_running = threading.local()  # the Background whose factory runs in this thread


def report(detail: str) -> None:
    """Say what a load is doing (re-embedding 120 of 500 chunks...), from inside its factory; its status
    line shows it. Elsewhere it does nothing."""
    loader = getattr(_running, "loader", None)
    if loader is not None:
        loader._detail = detail
    else:
        log.info("%s", detail)


class Background(Generic[T]):
    def __init__(self, label: str, factory: Callable[[], T], *, close: Callable[[T], None] | None = None):
        self.label = label
        self._factory = factory
        self._close = close  # releases a loaded value
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._state: State = "idle"
        self._value: T | None = None
        self._error: AssistantError | None = None
        self._started_at = 0.0
        self._detail: str | None = None  # what the load is doing, when it says (``report``)
        self._thread: threading.Thread | None = None

    def start(self) -> Background[T]:
        with self._lock:
            if self._state != "idle":
                return self
            self._state, self._started_at = "loading", time.monotonic()
            self._thread = threading.Thread(target=self._run, name=f"load-{self.label}", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float | None = None) -> None:
        """Wait for a load in progress (a thread left loading at interpreter exit can abort the process),
        then close what it loaded, if it has ``close``. Nothing is started by closing."""
        with self._lock:
            thread, self._state = self._thread, "closed" if self._state == "idle" else self._state
        if thread is not None:
            thread.join(timeout)
        value, self._value = self._value, None
        if self._state == "ready":
            self._state = "closed"
        if value is not None and self._close is not None:
            self._close(value)

    def get(self, timeout: float | None = None) -> T:
        """The loaded value; waits for it. Raises the load's ``AssistantError`` if it failed."""
        if self._state == "closed":
            raise AssistantError(f"The {self.label} has been closed (the app is shutting down).")
        self.start()
        if not self._done.wait(timeout):
            raise TimeoutError(f"{self.label} is still loading")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    @property
    def ready(self) -> bool:
        return self._state == "ready"

    def status(self) -> LoadStatus:
        if self._state == "loading":
            elapsed = time.monotonic() - self._started_at
            doing = f"loading, {self._detail}" if self._detail else "loading"
            return LoadStatus(self.label, "loading", f"{self.label}: {doing} ({elapsed:.0f} s)")
        if self._state == "failed":
            return LoadStatus(self.label, "failed", str(self._error))
        return LoadStatus(self.label, self._state, f"{self.label}: {self._state}")

    def _run(self) -> None:
        _running.loader = self
        try:
            value = self._factory()
        except AssistantError as exc:
            self._error, self._state = exc, "failed"
            log.error("%s failed to load: %s", self.label, exc)
        except BaseException as exc:  # an unexpected failure must still end "loading" and be seen
            self._error, self._state = AssistantError(f"{self.label} failed to load: {exc!r}"), "failed"
            log.exception("%s failed to load", self.label)
        else:
            self._value, self._state = value, "ready"
        finally:
            _running.loader = None
            self._done.set()
