"""What a new user meets when things are not ideal, in Chromium: the app started as ``make run`` starts it on
a machine with no network (the status line says, within seconds, that the model is not here and what to
do); a 144-megapixel photo asked about in the chat (downscaled, answered) beside a file that only claims to
be huge (refused in calm words); and the same problems in a Chinese browser, in Chinese."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from assistant.images import load_image
from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.browser.conftest import ARTIFACTS
from tests.helpers.browser import BOT, ask
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.hostile import png_claiming
from tests.helpers.server import app_settings, free_port, serve

pytestmark = pytest.mark.browser
ROOT = Path(__file__).resolve().parents[2]
CHAT_PIXELS = 1024 * 28 * 28  # the default ASSISTANT_MODEL__MAX_PIXELS


def test_a_first_run_without_network_says_so_in_seconds(browser, tmp_path):
    """``python -m ui`` with default settings, an empty model cache and a hub that refuses connections."""
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.startswith("ASSISTANT_")}
    (tmp_path / "hf").mkdir()
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=f"http://127.0.0.1:{free_port()}",
               ASSISTANT_DATA_DIR=str(tmp_path / "data"), ASSISTANT_UI__PORT=str(port), PYTHONPATH=str(ROOT),
               HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False")
    started = time.monotonic()
    app = subprocess.Popen([sys.executable, "-m", "ui"], cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:  # the server is up once the page answers
            assert app.poll() is None, app.stderr.read()[-3000:]
            assert time.monotonic() - started < 180, "the app did not start serving"
            try:
                page.goto(url, timeout=5_000)
                break
            except Exception:  # noqa: BLE001  not listening yet
                time.sleep(0.5)
        status = page.locator("#status")
        status.get_by_text("make demo").first.wait_for(timeout=120_000)
        settled = time.monotonic() - started
        text = status.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "first-run-without-network.png"))
        assert "SmolVLM" in text, text  # the model it could not find, by name
        for way in ("make demo", "ASSISTANT_OFFLINE=true", "python -m assistant download"):
            assert way in text, (way, text)
        assert str(tmp_path) not in text and "Traceback" not in text
        # Importing torch and starting Gradio included, on a busy 2-core machine; it was 151 s of "…" before.
        assert settled < 90, settled
        box = page.locator("#chat-input textarea")
        box.fill("Hello?")
        box.press("Enter")
        page.locator(BOT).last.get_by_text("make demo").wait_for(timeout=30_000)  # a question says it too
        chinese = browser.new_context(locale="zh-CN").new_page()  # a Chinese reader is told in Chinese
        chinese.goto(url)
        chinese.locator("#status").get_by_text("不在本机的 Hugging Face 缓存中").first.wait_for(timeout=60_000)
        assert "make demo" in chinese.locator("#status").inner_text()
        chinese.context.close()
    finally:
        context.close()
        app.terminate()
        try:
            app.wait(30)
        except subprocess.TimeoutExpired:
            app.kill()


class DecodingModel(ScriptedModel):
    """Opens each image of the question as the real backends do (``load_image``) and says its size."""

    def stream(self, turns, params):
        images = [p for t in turns for p in t.images]
        sizes = ["{}x{}".format(*load_image(p, CHAT_PIXELS).size) for p in images]
        self.answer = f"I see an image of {', '.join(sizes)} pixels." if sizes else "No image."
        return super().stream(turns, params)


@pytest.fixture
def served(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    (tmp_path / "ferry.txt").write_text("The harbour ferry leaves hourly from pier 3.")
    kb.ingest_paths([tmp_path / "ferry.txt"])
    with serve(AnswerPipeline(DecodingModel(), Knowledge.ready(kb), k=3), app_settings(tmp_path)) as url:
        yield url


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    huge = folder / "panorama.jpg"
    Image.new("RGB", (12_000, 12_000), (90, 140, 200)).save(huge, quality=85)  # 144 megapixels
    (folder / "claims-huge.png").write_bytes(png_claiming(100_000, 100_000))  # a header, no pixels
    (folder / "empty.png").write_bytes(b"")
    (folder / "empty.txt").write_bytes(b"")
    return folder


def test_a_huge_photo_is_answered_and_a_hostile_one_refused_calmly(page, served, photos):
    page.goto(served)
    answer = ask(page, "What is in this photo?", [photos / "panorama.jpg"]).inner_text()
    width, height = map(int, answer.split("image of ")[1].split(" pixels")[0].split("x"))
    assert width == height and 800 < width and width * height <= CHAT_PIXELS, answer  # downscaled, square
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "huge-photo-answered.png"))

    refused = ask(page, "And this one?", [photos / "claims-huge.png"]).inner_text()
    assert "claims-huge.png: this image is too large to open (10,000 megapixels" in refused, refused
    for word in ("DOS", "attack", "decompression", "bomb", "/tmp", "Traceback"):
        assert word not in refused, refused
    empty = ask(page, "And this?", [photos / "empty.png"]).inner_text()
    assert "empty.png: the file is empty" in empty and "/tmp" not in empty, empty


def test_problems_are_told_in_chinese_to_a_chinese_browser(browser, served, photos):
    context = browser.new_context(locale="zh-CN", viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(served)
        refused = ask(page, "这张图片是什么？", [photos / "claims-huge.png"]).inner_text()
        assert "claims-huge.png：图片过大，无法打开（10,000 百万像素" in refused, refused
        empty = ask(page, "这张呢？", [photos / "empty.png"]).inner_text()
        assert "empty.png：文件为空" in empty, empty

        page.get_by_role("tab", name="知识库").click()
        page.locator("#kb-files input[type=file]").set_input_files([str(photos / "empty.txt")])
        page.locator("#kb-add").click()
        report = page.locator("#kb-report")
        report.get_by_text("失败").wait_for(timeout=30_000)
        text = report.inner_text()
        assert "empty.txt" in text and "文件为空" in text and "the file is empty" not in text, text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "problems-in-chinese.png"))
    finally:
        context.close()
