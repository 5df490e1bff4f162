from pathlib import Path

import pytest

from assistant.errors import InputError
from assistant.pipeline import Source
from retrieval import Chunk, Hit
from ui import render
from ui.app import AssistantUI


def source(n, text, kind="text", thumb=None, name="doc.md"):
    return Source(n, Hit(Chunk(f"id{n}", "d", f"/x/{name}", kind, text, "part 1", thumb), 0.5))


def test_document_text_is_inert_in_the_sources_panel():
    md = render.sources_markdown((source(1, "![x](http://evil/a.png) <script>alert(1)</script> [link](http://e)"),))
    assert "![x](" not in md and "<script>" not in md and "](http" not in md
    assert "\\<script\\>" in md


def test_cited_sources_are_marked():
    md = render.sources_markdown((source(1, "a"), source(2, "b")), cited=(2,))
    assert md.count("✓ cited") == 1 and md.index("✓ cited") > md.index("**[2]**")


def test_gallery_lists_only_sources_with_thumbnails():
    items = render.gallery_items((source(1, "a"), source(2, "img", "image", "/t/2.jpg", "cat.png")))
    assert items == [("/t/2.jpg", "[2] cat.png")]


def test_chat_refuses_non_image_attachments():
    ui = AssistantUI(pipeline=None, settings=None)
    with pytest.raises(InputError, match="report.pdf"):
        ui._request({"text": "read", "files": [{"path": "/u/report.pdf"}]}, [], 0.2, 64, True)
    request = ui._request({"text": "look", "files": ["/u/a.PNG"]}, [], 0.2, 64, True)
    assert request.images == (Path("/u/a.PNG"),)
