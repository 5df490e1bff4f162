"""The path inside Gradio's file values, in one place.

Gradio 6 hands files over in several shapes: from the browser ``{"type": "file", "file": {"path": ...}}``
parts, from ``gradio_client`` ``{"path": ...}`` dicts, or plain paths. (Chat history is no longer read
from Gradio: conversations are stored as typed turns, ``assistant/conversations.py``.)
"""

from __future__ import annotations

from pathlib import Path


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
