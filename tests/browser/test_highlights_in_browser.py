"""A cited PDF passage, seen in Chromium: the card's page view marks the passage's lines, on the page where
they are printed. Scripted model (a fake at the edge); real Chroma, real PDF parsing, real Gradio."""

import pytest

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.browser.conftest import ARTIFACTS
from tests.helpers.browser import ask
from tests.helpers.documents import make_pdf
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.server import app_settings, serve

pytestmark = pytest.mark.browser
FILLER = [f"Paragraph {i} is about the quarterly schedule of ward {i} and the staff who cover it." for i in range(9)]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("highlight-app")
    kb = KnowledgeBase.open(tmp / "data", HashingEmbedder(), chunk_size=300, chunk_overlap=0)
    paragraphs = FILLER[:6] + ["The warranty hotline is 555 0199, open on weekdays from nine to five."] + FILLER[6:]
    make_pdf(tmp / "handbook.pdf", ["\n\n".join(paragraphs)])
    kb.ingest_paths([tmp / "handbook.pdf"], sources=["handbook.pdf"])
    with serve(AnswerPipeline(ScriptedModel("Call 555 0199 [1]."), Knowledge.ready(kb), k=2),
               app_settings(tmp)) as url:
        yield url
    kb.close()


def test_the_cited_passage_is_marked_on_its_page(page, app_url):
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(app_url)
    ask(page, "What is the warranty hotline number?")
    card = page.locator("#source-1")
    assert "handbook.pdf" in card.inner_text() and "page 1" in card.inner_text()
    card.locator("summary").click()
    view = card.locator(".page-view img.large")
    page.wait_for_function("() => { const i = document.querySelector('#source-1 .page-view img.large');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=10_000)
    marks = card.locator(".page-view i.region")
    assert marks.count() >= 1
    page_box = view.bounding_box()
    for i in range(marks.count()):
        box = marks.nth(i).bounding_box()
        assert marks.nth(i).is_visible() and box["width"] > 20 and box["height"] > 2
        assert page_box["x"] <= box["x"] and box["x"] + box["width"] <= page_box["x"] + page_box["width"] + 1
        # the hotline paragraph is the seventh of ten short ones: in the page's upper half, below its top tenth
        middle = (box["y"] + box["height"] / 2 - page_box["y"]) / page_box["height"]
        assert 0.1 < middle < 0.5, middle
    card.scroll_into_view_if_needed()
    ARTIFACTS.mkdir(exist_ok=True)
    card.screenshot(path=str(ARTIFACTS / "cited-passage-marked.png"))
