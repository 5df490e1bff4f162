"""One generation at a time per model: a second user waits in the queue and sees their position."""

import time

import pytest

from assistant.pipeline import AnswerPipeline
from tests.helpers.browser import wait_for_answer
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, serve

pytestmark = pytest.mark.browser


class SlowModel(ScriptedModel):
    def _stream(self, params):
        for i in range(30):
            time.sleep(0.1)
            yield f"w{i} "


def test_second_user_sees_queue_position(browser, tmp_path):
    with serve(AnswerPipeline(SlowModel(), None), app_settings(tmp_path)) as url:
        first, second = browser.new_page(), browser.new_page()
        for page in (first, second):
            page.goto(url)
        first.locator("#chat-input textarea").fill("first")
        first.locator("#chat-input textarea").press("Enter")
        first.get_by_text("w0").wait_for(timeout=10_000)  # the first is generating
        second.locator("#chat-input textarea").fill("second")
        second.locator("#chat-input textarea").press("Enter")
        second.locator("#chatbot").get_by_text("queue: 1/1").wait_for(timeout=10_000)
        assert wait_for_answer(second).inner_text().strip().endswith("w29")
