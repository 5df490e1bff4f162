"""A person's session in Chromium: upload an image, ask, watch the answer stream, see the sources."""

import pytest

from assistant.composition import build_pipeline
from tests.helpers.browser import ask
from tests.helpers.server import app_settings, serve

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser-app")
    settings = app_settings(tmp, model={"checkpoint": str(tiny_models["qwen2_5_vl"]), "max_new_tokens": 24,
                                        "temperature": 0.0},
                            retrieval={"embedder": str(tiny_models["clip"])})
    pipeline = build_pipeline(settings)
    pipeline.model.loader.get(timeout=120)
    note = tmp / "invoice.txt"
    note.write_text("The invoice total is 42 euros, due in March.")
    pipeline.knowledge.ingest([note])
    with serve(pipeline, settings) as url:
        yield url


def test_upload_ask_stream_and_sources(page, app_url, red_png):
    page.goto(app_url)
    page.get_by_text("model: ready").wait_for(timeout=30_000)
    reply = ask(page, "What is in this picture?", [red_png])
    assert reply.inner_text().strip()
    sources = page.locator("#sources")
    assert "[1]" in sources.inner_text()
    assert "invoice.txt" in sources.inner_text()
    assert page.locator("#chatbot img").count() >= 1  # the uploaded image is shown in the chat
    # the answer's agreement with the image (the tiny random CLIP's: a number, its tooltip explaining it)
    agreement = reply.locator("small.consistency")
    assert agreement.inner_text().startswith("Image agreement ")
    assert "unrelated captions" in agreement.get_attribute("title")
