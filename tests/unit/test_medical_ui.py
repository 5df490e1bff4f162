"""Medical pilot mode, as the reader sees it: the page's banner, the line under every answer (display only:
the stored answer stays the model's), the medical rules in the system prompt, and a medical model's terms."""

from __future__ import annotations

import re

import pytest

import prompts
from assistant.composition import _answer_options
from assistant.conversations import ConversationStore, Turn
from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from assistant.settings import Settings
from assistant.types import ChatRequest
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from ui import render
from ui.i18n import SERVER, TRANSLATIONS, say, words



@pytest.mark.parametrize("key", ["medical_banner"])
def test_the_banner_is_in_both_languages(key):
    en, zh = TRANSLATIONS["en"][key], TRANSLATIONS["zh"][key]
    assert "not a diagnosis" in en and "clinician" in en and "audit log" in en
    assert "不是诊断" in zh and "临床医生" in zh and "审计日志" in zh


def test_the_line_under_answers_is_in_both_languages():
    assert "Not a diagnosis" in SERVER["en"]["medical_note"]
    assert "不是诊断" in SERVER["zh"]["medical_note"] and not re.search("[A-Za-z]", SERVER["zh"]["medical_note"])


def test_the_disclaimer_comes_last_under_an_answer_and_is_escaped():
    shown = render.answer_markdown("It is a red square [1].", 1, notice="stopped", disclaimer="Not <b>a</b> diagnosis.")
    assert shown.endswith('<small class="medical-note">Not &lt;b&gt;a&lt;/b&gt; diagnosis.</small>')
    assert shown.index("red square") < shown.index("stopped") < shown.index("medical-note")


def test_no_disclaimer_without_an_answer_or_outside_medical_mode():
    assert "medical-note" not in render.answer_markdown("", 0, notice="The model failed.", disclaimer="Not a diagnosis.")
    assert "medical-note" not in render.answer_markdown("An answer.", 0)


@pytest.fixture
def store(tmp_path):
    store = ConversationStore(tmp_path / "conversations")
    yield store
    store.close()


@pytest.mark.parametrize(("lang", "medical"), [("en", True), ("zh", True), ("en", False), ("zh", False)])
def test_a_resumed_conversation_shows_the_line_under_each_answer_in_medical_mode(store, lang, medical):
    from ui.app import _messages

    conversation = store.create()
    for answer in ("First answer.", "Second answer."):
        conversation = store.append(conversation.id, Turn("q", answer=answer))
    shown = [m["content"] for m in _messages(conversation, lang, medical) if m["role"] == "assistant"]
    assert len(shown) == 2
    assert all((say(lang, "medical_note") in text) == medical for text in shown)


def test_the_stored_answer_and_the_api_answer(store):
    """The stored turn (and so its exports) is the model's answer; the chat and the API show the line too."""
    from ui.app import Live

    live = Live(store.create(), "what is this?", (), loading=False, lang="zh", medical=True)
    live.answer, live.done = "这是一个红色方块。", True
    live.store(store, "scripted")
    assert store.get(live.conversation_id).turns[-1].answer == "这是一个红色方块。"
    assert "medical_note" not in store.export_markdown(live.conversation_id)
    assert say("zh", "medical_note") not in store.export_markdown(live.conversation_id)
    assert say("zh", "medical_note") in live.messages()[-1]["content"]
    assert live.answer_markdown().startswith("这是一个红色方块。") and say("zh", "medical_note") in live.answer_markdown()
    plain = Live(store.create(), "q", (), loading=False)
    plain.answer = "Plain [1]."
    assert plain.answer_markdown() == "Plain [1]."


@pytest.fixture
def knowledge(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "report.txt").write_text("The chest X-ray report notes a small nodule in the left lung.")
    kb.ingest_paths([tmp_path / "docs"])
    yield Knowledge.ready(kb)
    kb.close()


@pytest.mark.parametrize(("question", "rules"), [("What does the report say?", prompts.render("medical", "en")),
                                                 ("报告里说了什么？", prompts.render("medical", "zh"))])
def test_medical_mode_adds_its_rules_to_the_system_prompt_grounded_or_not(knowledge, question, rules):
    for base in (knowledge, None):
        model = ScriptedModel("ok")
        list(AnswerPipeline(model, base, medical=True).with_knowledge(base).answer(ChatRequest(question)))
        system = model.calls[0][0].text
        assert system.endswith(rules)
        assert ("<source" in model.calls[0][-1].text) == (base is not None)
        plain = ScriptedModel("ok")
        list(AnswerPipeline(plain, base).answer(ChatRequest(question)))
        assert rules not in plain.calls[0][0].text


def test_the_medical_rules_say_what_matters():
    en, zh = prompts.render("medical", "en"), prompts.render("medical", "zh")
    for phrase in ("not a diagnosis", "uncertain", "clinician", "citing", "identify a patient"):
        assert phrase in en
    for phrase in ("不是诊断", "不确定", "临床医生", "编号", "识别患者"):
        assert phrase in zh


def test_the_setting_reaches_the_pipeline():
    assert _answer_options(Settings(medical={"enabled": True}))["medical"] is True
    assert _answer_options(Settings())["medical"] is False


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_a_medical_model_shows_its_terms_in_the_model_line(lang):
    note = render.model_note("google/medgemma-4b-it", words(lang))
    assert say(lang, "terms") in note and "Health AI Developer Foundations" in note
    assert "not intended to directly inform clinical diagnosis" in note
    assert say(lang, "terms") not in render.model_note("Qwen/Qwen3-VL-4B-Instruct", words(lang))


@pytest.mark.parametrize("medical", [True, False])
def test_the_page_has_the_banner_only_in_medical_mode(tmp_path, medical):
    from ui.app import create_app

    settings = Settings(data_dir=tmp_path / "data", medical={"enabled": medical}, retrieval={"enabled": False})
    app = create_app(AnswerPipeline(ScriptedModel(), None), settings)
    try:
        ids = {getattr(block, "elem_id", None) for block in app.blocks.values()}
        assert ("medical-banner" in ids) == medical
    finally:
        app.assistant_ui.workspaces.close()
