"""Medical pilot mode in Chromium: the banner at the top of the page, the line under every answer (also in a
resumed conversation), the medical model's terms in the model line, in English and in Chinese; and the same
page without medical mode shows neither the banner nor the line."""

from __future__ import annotations

from assistant.pipeline import AnswerPipeline
from tests.browser.conftest import ARTIFACTS
from tests.helpers.browser import BOT, ask
from tests.helpers.fakes import ScriptedModel
from tests.helpers.server import app_settings, serve
from ui.i18n import SERVER, TRANSLATIONS

ANSWER = "The image shows a round shadow; its cause cannot be judged from one picture."
BANNER = {lang: TRANSLATIONS[lang]["medical_banner"].split("**")[1] for lang in ("en", "zh")}  # the bold words
NOTE = {lang: SERVER[lang]["medical_note"] for lang in ("en", "zh")}


class MedGemma(ScriptedModel):
    name = "google/medgemma-4b-it"  # a preset with terms of its own


def _serve(tmp_path, medical: bool):
    settings = app_settings(tmp_path / ("medical" if medical else "plain"), medical={"enabled": medical},
                            retrieval={"enabled": False})
    return serve(AnswerPipeline(MedGemma(ANSWER), None, medical=medical), settings)


def _open(browser, url: str, locale: str):
    page = browser.new_context(locale=locale, viewport={"width": 1400, "height": 900}).new_page()
    page.goto(url)
    page.locator("#status").get_by_text("Health AI Developer Foundations").first.wait_for(timeout=30_000)
    return page


def test_medical_mode_shows_its_banner_and_a_line_under_every_answer(browser, tmp_path):
    with _serve(tmp_path, medical=True) as url:
        for locale, lang, question in (("en-US", "en", "What does this show?"), ("zh-CN", "zh", "这显示了什么？")):
            page = _open(browser, url, locale)
            banner = page.locator("#medical-banner")
            banner.get_by_text(BANNER[lang]).wait_for(timeout=10_000)
            assert banner.is_visible() and banner.bounding_box()["y"] < 150  # at the top, above the status
            assert ("Terms of this model" if lang == "en" else "此模型的使用条款") in page.locator("#status").inner_text()
            for n in (1, 2):
                answer = ask(page, f"{question} {n}")
                assert ANSWER in answer.inner_text()
                note = answer.locator("small.medical-note")
                assert note.inner_text().strip() == NOTE[lang]
            assert page.locator(BOT).locator("small.medical-note").count() == 2  # one under each answer
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"medical-{lang}.png"))
            page.reload()  # a resumed conversation: the line is drawn again, the stored answer never had it
            page.locator("#conv-list input").click()
            page.get_by_role("option").first.click()
            page.locator(BOT).locator("small.medical-note").nth(1).wait_for(timeout=30_000)
            assert page.locator(BOT).locator("small.medical-note").all_inner_texts() == [NOTE[lang]] * 2
            page.context.close()


def test_without_medical_mode_there_is_no_banner_and_no_line(browser, tmp_path):
    with _serve(tmp_path, medical=False) as url:
        for locale, lang in (("en-US", "en"), ("zh-CN", "zh")):
            page = _open(browser, url, locale)  # the medical model's terms are shown in every mode
            page.locator("#chat-input textarea").wait_for(timeout=10_000)
            answer = ask(page, "What does this show?")
            assert ANSWER in answer.inner_text()
            assert not page.locator("#medical-banner").count() and not page.get_by_text(BANNER[lang]).count()
            assert not page.locator("small.medical-note").count() and NOTE[lang] not in page.content()
            page.context.close()
