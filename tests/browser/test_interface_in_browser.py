"""The interface as a new user meets it, in Chromium: the Knowledge base tab (search results as cards, Enter
searches, documents in words with size and date, a filter, delete per document after a question, the upload
box emptied, one progress bar), the chat (Stop visible while an answer streams, the loading notice kept
until the first token, Clear clears the sources, an empty question does nothing) and a phone-width layout
with the sources right under the answer. Screenshots land in test-artifacts/."""

from __future__ import annotations

import threading
import time

import pytest

from assistant.knowledge import Knowledge
from assistant.loading import Background
from assistant.models.base import LazyModel
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.browser.conftest import ARTIFACTS
from tests.helpers.browser import BOT, ask
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.server import app_settings, serve


class SlowModel(ScriptedModel):
    """Streams a long answer slowly, so there is time to see (and press) Stop."""

    def _stream(self, params):
        try:
            for i in range(400):
                if self.closed.is_set():
                    return
                time.sleep(0.05)
                self.pieces_sent += 1
                yield f"word{i} "
        finally:
            self.closed.set()


@pytest.fixture
def served(tmp_path):
    """The app with a knowledge base on real Chroma and a model whose answers the test chooses."""
    def run(model, *, docs=()):
        kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
        knowledge = Knowledge.ready(kb)
        if docs:
            knowledge.ingest(docs)
        return serve(AnswerPipeline(model, knowledge, k=3), app_settings(tmp_path))
    return run


def _files(tmp_path, names):
    paths = []
    for name in names:
        path = tmp_path / "upload" / name
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"{name} is about the harbour ferry timetable and its {name.split('.')[0]} notes.")
        paths.append(path)
    return paths


def test_knowledge_tab_cards_filter_and_delete_with_a_question(page, served, tmp_path):
    with served(ScriptedModel()) as url:
        page.goto(url)
        page.get_by_role("tab", name="Knowledge base").click()
        files = _files(tmp_path, ["alpha.txt", "beta.md", "gamma.txt"])
        page.locator("#kb-files input[type=file]").set_input_files([str(f) for f in files])
        page.locator("#kb-add").click()
        bars = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "3 of 3 files" not in page.locator("#kb-report").inner_text():
            bars = max(bars, page.evaluate(  # the components showing a progress bar
                "() => new Set([...document.querySelectorAll('.progress-bar, [role=progressbar]')]"
                ".map(e => (e.closest('[id]') || {}).id)).size"))
            page.wait_for_timeout(50)
        assert "3 of 3 files" in page.locator("#kb-report").inner_text()
        assert bars <= 1  # one progress bar, by the report, not a second one over the table
        page.wait_for_function("() => !document.querySelector('#kb-files').innerText.includes('alpha.txt')",
                               timeout=10_000)  # the upload box is empty again
        table = page.locator("#kb-table")
        head = table.locator("thead").inner_text()
        for word in ("Document", "Kind", "Pages or passages", "Size", "Added"):
            assert word in head
        body = table.inner_text()
        assert "alpha.txt" in body and "Markdown" in body and " B" in body and "passages" in body

        page.locator("#kb-filter input, #kb-filter textarea").first.fill("bet")
        page.wait_for_function("() => !document.querySelector('#kb-table').innerText.includes('alpha.txt')",
                               timeout=10_000)
        assert "beta.md" in table.inner_text()
        page.locator("#kb-filter input, #kb-filter textarea").first.fill("")
        page.wait_for_function("() => document.querySelector('#kb-table').innerText.includes('alpha.txt')",
                               timeout=10_000)

        query = page.locator("#kb-query input, #kb-query textarea").first
        query.fill("harbour ferry gamma")
        query.press("Enter")  # Enter searches
        hits = page.locator("#kb-hits details.source")
        hits.first.wait_for(timeout=20_000)
        first = hits.first.inner_text()
        assert "gamma.txt" in first and "similarity" in first and "harbour ferry timetable" in first
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "knowledge-tab.png"), full_page=True)

        table.get_by_text("alpha.txt").last.click()
        question = page.locator("#kb-delete-question")
        question.get_by_text("Delete alpha.txt").wait_for(timeout=10_000)
        page.locator("#kb-delete-cancel").click()  # nothing is deleted without the answer
        page.wait_for_timeout(500)
        assert "alpha.txt" in table.inner_text()
        table.get_by_text("alpha.txt").last.click()
        question.get_by_text("Delete alpha.txt").wait_for(timeout=10_000)
        page.locator("#kb-delete-confirm").click()
        page.locator("#kb-report").get_by_text("Deleted alpha.txt").wait_for(timeout=30_000)
        page.wait_for_function("() => !document.querySelector('#kb-table').innerText.includes('alpha.txt')",
                               timeout=10_000)
        assert "beta.md" in table.inner_text() and "gamma.txt" in table.inner_text()


def test_stop_is_visible_while_streaming_and_stops(page, served):
    model = SlowModel()
    with served(model) as url:
        page.goto(url)
        box = page.locator("#chat-input textarea")
        stop = page.locator("#chat-input button.stop-button")
        send = page.locator("#chat-input button.submit-button")
        send.wait_for(state="visible", timeout=20_000)
        assert stop.count() == 0 or not stop.is_visible()  # idle: Send, no Stop
        assert page.locator(".multimodal-textbox").count() == 1  # no stray input box beside the chat's
        assert page.locator("button.stop-button").count() == page.locator("#chat-input button.stop-button").count()
        box.fill("Tell me a long story.")
        box.press("Enter")
        stop.wait_for(state="visible", timeout=20_000)
        assert send.count() == 0 or not send.is_visible()  # while it streams Stop takes Send's place
        page.locator(BOT).last.get_by_text("word3").wait_for(timeout=20_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "stop-while-streaming.png"))
        stop.click()
        assert model.closed.wait(30)  # the model's stream was closed: generation really stopped
        sent = model.pieces_sent
        page.wait_for_timeout(1000)
        assert model.pieces_sent == sent and sent < 400
        page.locator(BOT).last.get_by_text("Stopped").wait_for(timeout=30_000)
        send.wait_for(state="visible", timeout=20_000)  # idle again: Send is back, Stop gone
        stop.wait_for(state="hidden", timeout=20_000)


def test_empty_question_does_nothing_and_clear_clears_the_sources(page, served, tmp_path):
    docs = _files(tmp_path, ["ferry.txt"])
    with served(ScriptedModel("The ferry leaves hourly [1]."), docs=docs) as url:
        page.goto(url)
        box = page.locator("#chat-input textarea")
        box.wait_for(timeout=20_000)
        box.press("Enter")
        page.wait_for_timeout(1500)
        assert page.locator(BOT).count() == 0  # no bubble for an empty question
        ask(page, "When does the harbour ferry leave?")
        cards = page.locator("#sources details.source")
        cards.first.wait_for(timeout=10_000)
        assert page.locator("#chat-input textarea").get_attribute("placeholder")  # the hint stays
        page.locator("#chatbot button[aria-label='Clear']").first.click()
        page.wait_for_function("() => document.querySelectorAll('#sources details.source').length === 0",
                               timeout=10_000)
        assert page.locator(BOT).count() == 0


def test_the_loading_notice_stays_until_the_first_token(page, served, tmp_path):
    docs = _files(tmp_path, ["ferry.txt"])
    gate = threading.Event()
    model = ScriptedModel("Hourly [1].")
    lazy = LazyModel("slow", Background("model", lambda: gate.wait(120) and model)).start()
    with served(lazy, docs=docs) as url:
        page.goto(url)
        box = page.locator("#chat-input textarea")
        box.fill("When does the harbour ferry leave?")
        box.press("Enter")
        page.locator("#sources details.source").first.wait_for(timeout=20_000)  # sources have arrived
        page.wait_for_timeout(1500)
        assert "still loading" in page.locator(BOT).last.inner_text()  # not replaced by "…"
        gate.set()
        page.locator(BOT).last.get_by_text("Hourly").wait_for(timeout=30_000)
        assert "still loading" not in page.locator(BOT).last.inner_text()
        page.locator("#chat-input button.submit-button").wait_for(state="visible", timeout=20_000)
        assert not page.locator("#chat-input button.stop-button").is_visible()  # answered: Send is back
    gate.set()


def test_at_phone_width_the_sources_are_right_under_the_answer(browser, served, tmp_path):
    docs = _files(tmp_path, ["ferry.txt"])
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    with served(ScriptedModel("The ferry leaves hourly [1]."), docs=docs) as url:
        page.goto(url)
        ask(page, "When does the harbour ferry leave?")
        page.locator("#sources details.source").first.wait_for(timeout=10_000)

        def top(selector):
            return page.locator(selector).first.bounding_box()["y"]

        assert top("#chat-input") < top("#sources-accordion") < top("#chat-settings")
        assert top("#sources-accordion") < top("#conv-list")
        page.locator("#sources-accordion").get_by_text("Sources").first.click()  # collapsible
        page.wait_for_function("() => !document.querySelector('#sources details.source')"
                               " || document.querySelector('#sources').offsetParent === null", timeout=10_000)
        page.locator("#sources-accordion").get_by_text("Sources").first.click()
        page.locator("#sources details.source").first.wait_for(timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "phone-width.png"), full_page=True)
    context.close()
