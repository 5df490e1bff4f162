"""Trust features as a person meets them in Chromium. The model is scripted (a fake at the edge) so each
test controls the answer; the knowledge base is real Chroma with a hashing embedder."""

import time

import pytest

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.helpers.browser import ask
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.images import write_image
from tests.helpers.server import app_settings, serve

pytestmark = pytest.mark.browser


class SlowEmbedder(HashingEmbedder):
    """Slow enough for the progress bar to be seen."""

    def embed_texts(self, texts):
        time.sleep(0.8)
        return super().embed_texts(texts)


@pytest.fixture(scope="module")
def model():
    return ScriptedModel()


@pytest.fixture(scope="module")
def app_url(model, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trust-app")
    kb = KnowledgeBase.open(tmp / "data", SlowEmbedder())
    (tmp / "invoice.txt").write_text("The invoice total is 42 euros, due in March.")
    write_image(tmp / "chart.png", (120, 90), "orange")
    kb.ingest_paths([tmp / "invoice.txt", tmp / "chart.png"])
    pipeline = AnswerPipeline(model, Knowledge.ready(kb), k=3, min_score=0.3)
    with serve(pipeline, app_settings(tmp)) as url:
        yield url
    kb.close()


def open_settings(page):
    page.locator("#chat-settings .label-wrap").first.click()


def test_citation_links_to_its_source_card_and_cards_show_thumbnails(page, app_url, model, tmp_path):
    model.answer = "The total is 42 euros [1]."
    orange = write_image(tmp_path / "orange.png", (60, 60), "orange")  # finds chart.png by image
    page.goto(app_url)
    reply = ask(page, "What is the invoice total?", [orange])
    link = reply.locator("a.cite").first
    assert link.get_attribute("href") == "#source-1"
    cards = page.locator("#sources").inner_text()
    assert "invoice.txt" in cards and "chart.png" in cards
    assert page.locator("#source-1").get_attribute("class") == "source cited"
    assert page.locator("#source-2").get_attribute("class") == "source uncited"
    link.click()
    assert page.evaluate("location.hash") == "#source-1"
    thumb = page.locator("#sources img.thumb").first
    thumb.wait_for()
    page.wait_for_function("() => { const i = document.querySelector('#sources img.thumb');"
                           " return i && i.complete && i.naturalWidth > 0; }", timeout=10_000)
    page.locator("#sources details:has(img.thumb) summary").first.click()  # shows it larger: its view, loaded
    large = page.locator("#sources details[open] img.large")  # when the card opens (lazily, a picture apart)
    large.wait_for(state="visible", timeout=10_000)
    assert large.get_attribute("src").endswith(".view.jpg")
    assert page.evaluate("document.querySelector('#sources details[open] img.large').naturalWidth") > 0


def test_strict_mode_says_not_found(page, app_url, model):
    model.answer = "A confident guess."
    page.goto(app_url)
    open_settings(page)
    page.locator("#strict input[type=checkbox]").check()
    reply = ask(page, "Which mountains border Peru?")
    assert "Not found in your documents" in reply.inner_text()
    assert "A confident guess" not in reply.inner_text()


def test_hostile_markdown_renders_inert(page, app_url, model):
    model.answer = ('![x](http://evil.invalid/a.png) <img src="http://evil.invalid/b.png">'
                    '<script>window.__pwned = 1</script> <iframe src="http://evil.invalid/"></iframe> done')
    outside = []

    def guard(route):
        if route.request.url.startswith(app_url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    page.route("**/*", guard)
    page.goto(app_url)
    reply = ask(page, "Say something.")
    page.wait_for_timeout(1000)
    assert outside == []
    assert page.evaluate("window.__pwned") is None
    assert reply.locator("img, iframe, script").count() == 0
    assert "<script>" in reply.inner_text()  # shown as text


def test_located_objects_are_drawn_on_the_image(page, app_url, model, tmp_path):
    model.answer = '```json\n[{"bbox_2d": [10, 10, 60, 60], "label": "square"}]\n```'
    photo = write_image(tmp_path / "photo.png", (200, 150), "white")
    page.goto(app_url)
    ask(page, "Locate the square.", [photo])
    located = page.locator("#chatbot .message.bot img, #chatbot [data-testid='bot'] img")
    located.last.wait_for(timeout=10_000)
    assert located.count() >= 1


def test_upload_documents_with_progress_list_and_delete(page, app_url, tmp_path):
    for name in ("alpha.txt", "beta.md"):
        (tmp_path / name).write_text(f"{name} holds a few words about {name}.")
    page.goto(app_url)
    page.get_by_role("tab", name="Knowledge base").click()
    page.locator("#kb-files input[type=file]").set_input_files([str(tmp_path / "alpha.txt"),
                                                                str(tmp_path / "beta.md")])
    page.locator("#kb-add").click()
    page.locator("#kb-report [role=progressbar]").wait_for(timeout=10_000)
    page.get_by_text("2 of 2 files in the knowledge base").wait_for(timeout=30_000)
    table = page.locator("#kb-table")
    assert "alpha.txt" in table.inner_text() and "beta.md" in table.inner_text()

    table.get_by_text("alpha.txt").last.click()  # a row asks before its document is deleted
    page.locator("#kb-delete-confirm").click()
    page.get_by_text("Deleted alpha.txt").wait_for(timeout=10_000)
    page.wait_for_function("() => !document.querySelector('#kb-table').innerText.includes('alpha.txt')",
                           timeout=10_000)
    assert "alpha.txt" not in table.inner_text() and "beta.md" in table.inner_text()


def test_language_follows_the_browser(browser, app_url):
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(app_url)
    page.get_by_role("tab", name="知识库").wait_for(timeout=10_000)
    assert page.get_by_role("tab", name="对话").is_visible()
    context.close()


def test_language_switch_in_settings(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Knowledge base").wait_for()
    page.locator("footer").get_by_text("Settings").click()
    page.get_by_role("combobox", name="Language").click()
    page.get_by_role("option", name="简体中文").click()
    # The selected tab's label and the chat's settings follow at once (Gradio 6.31 leaves the label of
    # the tab not shown in the old language until the page reloads).
    page.get_by_role("tab", name="对话").wait_for(timeout=10_000)
    assert "设置" in page.locator("#chat-settings").inner_text()
    assert not page.get_by_role("tab", name="Chat", exact=True).count()
