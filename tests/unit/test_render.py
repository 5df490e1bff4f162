from pathlib import Path

import pytest

from assistant.errors import InputError
from assistant.pipeline import Source
from retrieval import Chunk, Hit
from ui import render
from ui.app import AssistantUI


def source(n, text, kind="text", thumb=None, name="doc.md", score=0.5):
    return Source(n, Hit(Chunk(f"id{n}", "d", f"/x/{name}", kind, text, "part 1", thumb), score))


HOSTILE = '![x](http://evil.invalid/a.png) <script>alert(1)</script> <img src="http://evil.invalid/b.png"> [l](http://e)'


def test_document_text_is_inert_in_source_cards():
    cards = render.sources_html((source(1, HOSTILE, name="<i>bad.md"),))
    assert "<script>" not in cards and "<img src=\"http://evil" not in cards and "<i>bad" not in cards
    assert "&lt;script&gt;" in cards and "&lt;i&gt;bad.md" in cards


def test_model_markdown_is_inert_but_readable():
    out = render.safe_markdown("**Bold** " + HOSTILE + " [link](javascript:alert(1))")
    assert "<script" not in out and "<img" not in out and "![" not in out and "javascript:" not in out
    assert out.startswith("**Bold** !\\[x](http://evil.invalid/a.png) &lt;script>")


def test_code_is_left_alone():
    text = "Use `a < b` and\n```html\n<p>hi</p>\n```\nthen <b>"
    out = render.safe_markdown(text)
    assert "`a < b`" in out and "<p>hi</p>" in out and out.endswith("then &lt;b>")


def test_citations_link_to_their_cards_only_when_in_range():
    out = render.safe_markdown("Total is 42 [1], see [2] and [7]. `x[1]`", n_sources=2)
    assert out.count('href="#source-1"') == 1 and out.count('href="#source-2"') == 1
    assert "[7]" in out and 'href="#source-7"' not in out and "`x[1]`" in out


def test_cards_mark_cited_and_dim_the_rest_only_when_complete():
    sources = (source(1, "a"), source(2, "b", "image", "/t/2.jpg", "cat.png"))
    streaming = render.sources_html(sources)
    assert "cited" not in streaming
    done = render.sources_html(sources, cited=(2,))
    assert 'class="source uncited" id="source-1"' in done and 'class="source cited" id="source-2"' in done
    assert 'src="files/kb/2.jpg"' in done and "/t/" not in done and "<blockquote>a</blockquote>" in done  # no server path


def test_notice_replaces_the_cards():
    assert "embedder missing" in render.sources_html((source(1, "a"),), notice="embedder missing")


def test_sources_data_for_api_callers():
    [item] = render.sources_data((source(1, "a", score=0.25),), cited=(1,))
    assert item["number"] == 1 and item["name"] == "doc.md" and item["cited"] is True and item["score"] == 0.25


def test_chat_refuses_non_image_attachments():
    ui = AssistantUI.__new__(AssistantUI)
    with pytest.raises(InputError, match="report.pdf"):
        ui._message({"text": "read", "files": [{"path": "/u/report.pdf"}]})
    text, images = ui._message({"text": "look", "files": ["/u/a.PNG"]})
    assert text == "look" and images == [Path("/u/a.PNG")]


def test_the_model_line_names_the_licence_and_never_a_server_path():
    from ui.render import model_note

    assert "[Apache-2.0]" in model_note("Qwen/Qwen3-VL-4B-Instruct")
    terms = model_note("google/medgemma-4b-it")
    assert "Health AI Developer Foundations" in terms and "not intended to directly inform clinical" in terms
    local = model_note("/srv/models/tiny/qwen2_5_vl")
    assert "qwen2_5_vl (a local folder)" in local and "/srv" not in local
    assert model_note("my-org/private-vlm").endswith("`my-org/private-vlm`")  # a hub id as it is


def test_an_answer_shows_its_image_agreement_and_the_flag_when_low():
    from ui.i18n import words

    good = {"score": 0.96, "flagged": False, "threshold": 0.9, "reason": "measured",
            "images": [{"kind": "image", "number": 1, "score": 0.96}, {"kind": "source", "number": 2, "score": 1.0}]}
    low = {**good, "score": 0.41, "flagged": True}
    shown = render.answer_markdown("A red circle [2].", 2, consistency=good)
    assert "Image agreement 0.96" in shown and "your image 1: 0.96 · source [2]: 1.00" in shown
    assert "may not match" not in shown
    assert "This answer may not match the image." in render.answer_markdown("A cat.", 0, consistency=low)
    zh = render.answer_markdown("一只猫。", 0, consistency=low, words=words("zh"))
    assert "图文一致度 0.41" in zh and "此回答可能与图片不符。" in zh and "您的图片 1：0.96" in zh
    for none in (None, {**good, "score": None, "reason": "no images"}):
        assert render.answer_markdown("Hello.", 0, consistency=none) == "Hello."


def test_an_opened_card_shows_the_pictures_view_when_it_has_one(tmp_path):
    """The small picture is the 384-px thumbnail; the opened card shows the view kept beside it (a scanned
    page as the model sees it, readable), through the same owner-checked route, by file name only."""
    (tmp_path / "7.jpg").write_bytes(b"thumbnail")
    (tmp_path / "7.view.jpg").write_bytes(b"view")
    with_view = render.sources_html((source(1, "scan", "page", str(tmp_path / "7.jpg"), "scan.pdf"),))
    assert 'class="thumb" src="files/kb/7.jpg"' in with_view and 'class="large" src="files/kb/7.view.jpg"' in with_view
    without = render.sources_html((source(2, "fig", "figure", str(tmp_path / "8.jpg"), "report.pdf"),))
    assert 'class="large" src="files/kb/8.jpg"' in without and str(tmp_path) not in with_view + without
