from pathlib import Path

from assistant.types import ChatTurn
from ui.history import normalise_history, path_of

BROWSER = [
    {"role": "user", "content": [{"type": "file", "file": {"path": "/c/a.png", "mime_type": "image/png"}}]},
    {"role": "user", "content": [{"type": "file", "file": {"path": "/c/b.png"}}]},
    {"role": "user", "content": [{"type": "text", "text": "compare them"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "A is red, B is blue."}]},
    {"role": "user", "content": [{"type": "text", "text": "and the third?"}]},
    {"role": "user", "content": [{"type": "file", "file": {"path": "/c/c.png"}}]},
]
CLIENT = [
    {"role": "user", "content": [{"path": "/c/a.png"}, {"path": "/c/b.png"}, "compare them"]},
    {"role": "assistant", "content": "A is red, B is blue."},
    {"role": "user", "content": "and the third?"},
    {"role": "user", "content": {"path": "/c/c.png"}},
]
EXPECTED = [
    ChatTurn("user", "compare them", (Path("/c/a.png"), Path("/c/b.png"))),
    ChatTurn("assistant", "A is red, B is blue."),
    ChatTurn("user", "and the third?", (Path("/c/c.png"),)),
]


def test_browser_shape():
    assert normalise_history(BROWSER) == EXPECTED


def test_gradio_client_shape():
    assert normalise_history(CLIENT) == EXPECTED


def test_empty_and_unknown_roles():
    assert normalise_history([]) == []
    assert normalise_history(None) == []
    assert normalise_history([{"role": "system", "content": "x"}]) == []


def test_path_of_every_shape():
    assert path_of("/a.png") == "/a.png"
    assert path_of({"path": "/a.png"}) == "/a.png"
    assert path_of({"type": "file", "file": {"path": "/a.png"}}) == "/a.png"
    assert path_of({"type": "text", "text": "hi"}) is None
