from ui.history import path_of


def test_path_of_every_shape():
    assert path_of("/a.png") == "/a.png"
    assert path_of({"path": "/a.png"}) == "/a.png"
    assert path_of({"type": "file", "file": {"path": "/a.png"}}) == "/a.png"
    assert path_of({"type": "text", "text": "hi"}) is None
