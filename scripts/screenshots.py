"""Screenshots of the app for the README: tiny offline models, sample documents, one question.

    python scripts/screenshots.py docs/    (needs /usr/bin/chromium; `make test` installs it)
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
ASSETS_SHAPES = Path(__file__).resolve().parents[1] / "ui" / "assets" / "shapes.png"


def main(out: Path) -> None:
    from PIL import Image, ImageDraw
    from playwright.sync_api import sync_playwright

    from assistant.composition import build_pipeline
    from tests.browser.conftest import CHROMIUM, FLAGS
    from tests.helpers.browser import ask
    from tests.helpers.server import app_settings, serve
    from tests.helpers.tiny_models import build_all

    tmp = Path(tempfile.mkdtemp())
    models = build_all(tmp / "models")
    settings = app_settings(tmp, model={"checkpoint": str(models["qwen2_5_vl"]), "max_new_tokens": 40},
                            retrieval={"embedder": str(models["clip"]), "text_embedder": ""})
    pipeline = build_pipeline(settings)
    pipeline.model.loader.get()
    docs = tmp / "docs"
    docs.mkdir()
    (docs / "invoice.txt").write_text("The invoice total is 42 euros, due on the first of March.")
    (docs / "care-notes.md").write_text("# Discharge\n\nThe patient should rest for two weeks.")
    chart = Image.new("RGB", (480, 320), "white")
    ImageDraw.Draw(chart).rectangle([60, 120, 160, 300], fill="steelblue")
    ImageDraw.Draw(chart).rectangle([200, 60, 300, 300], fill="darkorange")
    chart.save(docs / "chart.png")
    photo = tmp / "photo.png"
    Image.new("RGB", (640, 480), "seagreen").save(photo)
    pipeline.knowledge.ingest([docs])
    out.mkdir(parents=True, exist_ok=True)
    with serve(pipeline, settings) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url)
        page.get_by_text("model: ready").wait_for(timeout=30_000)
        ask(page, "What does the chart show, and what is the invoice total?", [photo])
        page.locator("#sources details:has(img.thumb) summary").first.click()
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "chat.png"))
        page.get_by_role("tab", name="Knowledge base").click()
        query = page.locator("#kb-query input, #kb-query textarea").first
        query.fill("invoice total")
        query.press("Enter")
        page.locator("#kb-hits details.source").first.wait_for(timeout=30_000)
        page.wait_for_timeout(500)
        page.screenshot(path=str(out / "knowledge-base.png"), full_page=True)

        phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
        phone.goto(url)
        ask(phone, "What is the invoice total?")
        phone.locator("#sources details.source").first.wait_for(timeout=30_000)
        phone.screenshot(path=str(out / "phone.png"), full_page=True)

        chinese = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 900}).new_page()
        chinese.goto(url)
        chinese.get_by_text("模型：就绪").wait_for(timeout=30_000)
        ask(chinese, "发票总额是多少？")
        chinese.get_by_role("tab", name="知识库").click()
        chinese.wait_for_timeout(1000)
        chinese.screenshot(path=str(out / "knowledge-base-zh.png"), full_page=True)
        browser.close()
    medical(out, tmp, models)


def medical(out: Path, tmp: Path, models: dict) -> None:
    """The medical pilot mode (ASSISTANT_MEDICAL__ENABLED): its banner and the line under an answer."""
    from playwright.sync_api import sync_playwright

    from assistant.composition import build_pipeline
    from tests.browser.conftest import CHROMIUM, FLAGS
    from tests.helpers.browser import ask
    from tests.helpers.server import app_settings, serve

    settings = app_settings(tmp / "medical", medical={"enabled": True}, retrieval={"enabled": False},
                            model={"checkpoint": str(models["qwen2_5_vl"]), "max_new_tokens": 40})
    pipeline = build_pipeline(settings)
    pipeline.model.loader.get()
    with serve(pipeline, settings) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_text("model: ready").wait_for(timeout=30_000)
        ask(page, "What does this picture show?", [ASSETS_SHAPES])
        page.evaluate("window.scrollTo(0, 0)")  # the banner at the top, the answer in the chat below it
        page.wait_for_timeout(300)
        page.screenshot(path=str(out / "medical.png"))
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs"))
