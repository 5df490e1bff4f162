"""Where a checkpoint's files come from, found out in seconds: a local folder, this machine's Hugging Face
cache, or the hub. Without this, a first run with no network and an empty cache waits minutes (every file
retried with back-off) before saying the model is missing; here it is refused at once, with the ways on."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Literal

from retrieval.errors import RetrievalError

REACH_TIMEOUT = 3.0  # seconds the hub has to answer one request
_REMEMBER = 30.0  # seconds an answer about the hub is reused (the model and two embedders load at once)
Origin = Literal["folder", "cache", "hub"]
_TRUE = {"1", "ON", "YES", "TRUE"}
_probes: dict[str, tuple[float, str | None]] = {}
_probe_lock = threading.Lock()
log = logging.getLogger(__name__)


class CheckpointUnavailableError(RetrievalError):
    """The checkpoint is neither a local folder nor in the cache, and the hub cannot be reached."""


def origin(checkpoint: str, *, what: str, variable: str, endpoint: str | None = None,
           cache_dir: str | Path | None = None, timeout: float = REACH_TIMEOUT) -> Origin:
    """``folder`` or ``cache``: load with ``local_files_only=True`` (no network wait); ``hub``: not cached,
    and the hub answered. Otherwise raises ``CheckpointUnavailableError`` naming the checkpoint, why, and
    the three ways on. ``what`` ("model", "embedding model") and ``variable`` (the setting) name it."""
    if Path(checkpoint).expanduser().is_dir():
        return "folder"
    if is_cached(checkpoint, cache_dir):
        return "cache"
    from huggingface_hub import constants

    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    if offline():
        raise CheckpointUnavailableError(unavailable(checkpoint, what, variable, "offline mode is on"))
    problem = unreachable(endpoint, timeout)
    if problem:
        raise CheckpointUnavailableError(unavailable(checkpoint, what, variable, problem))
    return "hub"


def is_cached(checkpoint: str, cache_dir: str | Path | None = None) -> bool:
    """Whether the cache holds the checkpoint's ``config.json`` (what ``python -m assistant download``
    leaves there, with everything else)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        found = try_to_load_from_cache(checkpoint, "config.json", cache_dir=cache_dir)
    except ValueError:  # not a valid repository id: the load names the problem
        return False
    return isinstance(found, str)


def offline() -> bool:
    from huggingface_hub import constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(constants.HF_HUB_OFFLINE) or any(f.strip().upper() in _TRUE for f in flags)


def unreachable(endpoint: str, timeout: float = REACH_TIMEOUT) -> str | None:
    """None when ``endpoint`` answers an HTTP request (any status) within ``timeout`` seconds; else why
    not, in words. Name resolution and a server that accepts but never answers are bounded too (the
    request runs in a thread that is abandoned at the deadline). Answers are reused for a short while."""
    with _probe_lock:  # callers at once share one probe
        seen = _probes.get(endpoint)
        if seen is not None and time.monotonic() - seen[0] < _REMEMBER:
            return seen[1]
        result = _probe(endpoint, timeout)
        _probes[endpoint] = (time.monotonic(), result)
        return result


def forget_probes() -> None:
    with _probe_lock:
        _probes.clear()


def _probe(endpoint: str, timeout: float) -> str | None:
    host = endpoint.split("://", 1)[-1]
    silent = f"{host} did not answer within {timeout:.0f} s"
    outcome: list[str | None] = []

    def ask() -> None:
        from huggingface_hub.utils import get_session

        try:  # the hub client's own session: its proxies, certificates and headers
            get_session().head(endpoint, timeout=timeout, follow_redirects=False)
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001  refused, unresolvable, proxy failure: all mean "not reachable"
            log.info("the hub at %s cannot be reached: %r", endpoint, exc)
            outcome.append(silent if "timeout" in type(exc).__name__.lower() else f"no connection to {host}")

    worker = threading.Thread(target=ask, name="hub-probe", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)  # name resolution is not covered by the request's own timeout
    return outcome[0] if outcome else silent


def unavailable(checkpoint: str, what: str, variable: str, why: str) -> str:
    return (f"The {what} '{checkpoint}' is not in the local Hugging Face cache, and it cannot be "
            f"downloaded now ({why}). Three ways on: `make demo` serves the app with tiny offline models; "
            f"`python -m assistant download` on a machine with network fills its Hugging Face cache "
            f"(~/.cache/huggingface), which you then copy to this one; or set ASSISTANT_OFFLINE=true and "
            f"{variable} to a local folder holding the model.")
