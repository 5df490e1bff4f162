"""Gradio chat history -> the assistant's ``ChatTurn``s, in one place.

Gradio 6 hands history over in two shapes. From the browser a message's content is a list of parts,
``{"type": "text", "text": ...}`` and ``{"type": "file", "file": {"path": ...}}``; from
``gradio_client`` it is a plain string, a ``{"path": ...}`` dict, or a list of those. Consecutive user
messages (Gradio stores each upload as its own message) become one turn, images first as the user sent
them.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from assistant.types import ChatTurn


def path_of(item) -> str | None:
    """The file path inside any of Gradio's file shapes, or None when the item is not a file."""
    if isinstance(item, str | Path):
        return str(item)
    if isinstance(item, dict):
        if isinstance(item.get("file"), dict):
            return item["file"].get("path")
        if item.get("type") == "file" and isinstance(item.get("file"), str):
            return item["file"]
        return item.get("path")
    return getattr(item, "path", None)


def _parts(content) -> Iterable[tuple[str, str]]:
    """Yield ("text", text) and ("file", path) from one message's content, whatever its shape."""
    items = content if isinstance(content, list | tuple) else [content]
    for item in items:
        if isinstance(item, str):
            yield "text", item
        elif isinstance(item, dict) and item.get("type") == "text":
            yield "text", item.get("text", "")
        elif (path := path_of(item)) is not None:
            yield "file", path


def normalise_history(history: Iterable[dict]) -> list[ChatTurn]:
    turns: list[ChatTurn] = []
    for message in history or []:
        role = message.get("role")
        if role not in ("user", "assistant"):
            continue
        texts, images = [], []
        for kind, value in _parts(message.get("content")):
            (texts if kind == "text" else images).append(value)
        text = "\n".join(t for t in texts if t)
        if turns and turns[-1].role == role:  # merge with the previous message of the same speaker
            last = turns.pop()
            text = "\n".join(t for t in (last.text, text) if t)
            images = [*last.images, *map(Path, images)]
        turns.append(ChatTurn(role, text, tuple(Path(p) for p in images)))
    return turns
