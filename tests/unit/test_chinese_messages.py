"""The product's own error messages reach a Chinese reader in Chinese: each message here is raised by the
real code (a loader, the knowledge-base catalogue, the conversation store, the pipeline), not typed in the
test, so a reworded English message that the table no longer matches fails here."""

from __future__ import annotations

import re

import pytest

from assistant.conversations import ConversationStore
from assistant.errors import AssistantError
from assistant.images import load_image
from assistant.pipeline import AnswerPipeline
from assistant.shelf import MAX_TITLE, Catalogue
from assistant.types import ChatRequest, GenerationParams
from retrieval.errors import RetrievalError
from retrieval.loaders import ParseOptions, parse
from tests.helpers.fakes import ScriptedModel
from tests.helpers.hostile import png_claiming
from ui.i18n import explain
from ui.render import ingest_summary, message_markdown

CJK = re.compile(r"[\u3400-\u9fff]")


def raised(action) -> str:
    with pytest.raises((AssistantError, RetrievalError)) as info:
        action()
    return str(info.value)


def file_messages(tmp_path) -> dict[str, str]:
    """File name -> the message the knowledge base's loaders or the chat's decoder gives for it."""
    files = {"empty.txt": b"", "notes.xyz": b"hello", "blob.txt": b"\x00\x01\x02\xff" * 200,
             "claims-huge.png": png_claiming(100_000, 100_000), "broken.png": b"\x89PNG\r\n\x1a\nbroken",
             "empty.png": b""}
    messages = {}
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        if name.endswith(".png"):
            messages[name] = raised(lambda p=path: load_image(p, 1024 * 28 * 28))
        else:
            messages[name] = raised(lambda p=path: parse(p, ParseOptions(ocr=False)))
    return messages


def other_messages(tmp_path) -> list[str]:
    catalogue = Catalogue(tmp_path / "alice")
    catalogue.create("Project X")
    conversations = ConversationStore(tmp_path / "alice" / "conversations")
    conversation = conversations.create()
    pipeline = AnswerPipeline(ScriptedModel())
    return [
        raised(lambda: catalogue.create("  ")),
        raised(lambda: catalogue.create("x" * (MAX_TITLE + 1))),
        raised(lambda: catalogue.create("project x")),
        raised(lambda: catalogue.rename("kb-00000000", "Other")),
        raised(lambda: catalogue.remove("default")),
        raised(lambda: catalogue.create("Shared library")),
        raised(lambda: conversations.rename(conversation.id, " ")),
        raised(lambda: conversations.get("0" * 32)),
        raised(lambda: list(pipeline.answer(ChatRequest("", params=GenerationParams(8, 0.0))))),
    ]


def test_file_problems_in_chinese_keep_the_file_name(tmp_path):
    messages = file_messages(tmp_path)
    for name, message in messages.items():
        assert message.startswith(f"{name}: "), message
        chinese = explain("zh", message)
        assert chinese.startswith(f"{name}：") and CJK.search(chinese), (message, chinese)
        assert not re.search(r"\b(the|file|image|not|is)\b", chinese.split("：", 1)[1]), chinese
        assert explain("en", message) == message
    assert explain("zh", messages["claims-huge.png"]).startswith(
        "claims-huge.png：图片过大，无法打开（10,000 百万像素，上限为 250 百万像素")
    assert explain("zh", messages["empty.png"]) == "empty.png：文件为空"  # one wording, chat and knowledge base
    assert explain("zh", messages["empty.txt"]) == "empty.txt：文件为空"


def test_messages_of_the_catalogue_conversations_and_pipeline_in_chinese(tmp_path):
    for message in other_messages(tmp_path):
        chinese = explain("zh", message)
        assert chinese != message and CJK.search(chinese), message
        assert not re.search(r"\b(the|a|is|can|has|There)\b", chinese), (message, chinese)


def test_a_message_with_no_translation_stays_as_raised():
    assert explain("zh", "CUDA out of memory.") == "CUDA out of memory."


def test_the_ingest_report_in_chinese(tmp_path):
    from retrieval.types import IngestReport

    message = file_messages(tmp_path)["empty.txt"]
    report = IngestReport(source="empty.txt", status="failed", error=message)
    words = {"failed": "失败", "colon": "：", "files_in_kb": "{total} 个文件中有 {ok} 个已在知识库中。"}
    text = ingest_summary([report], lambda key, **v: words[key].format(**v), lambda m: explain("zh", m))
    assert "**失败** empty.txt：文件为空" in text


def test_a_message_keeps_its_tildes_literal():
    text = message_markdown("in its cache (~/.cache/huggingface); or copy (~/.cache) here: `cp ~/a b`")
    assert "(\\~/.cache/huggingface)" in text and "(\\~/.cache)" in text and "`cp ~/a b`" in text


def test_a_first_run_without_network_is_told_in_chinese():
    from retrieval.hub import unavailable

    for what, word in (("model", "模型"), ("embedding model", "嵌入模型"), ("text embedding model", "文本嵌入模型")):
        message = unavailable("org/some-model", what, "ASSISTANT_MODEL__CHECKPOINT", "no connection to hub:443")
        chinese = explain("zh", message)
        assert chinese.startswith(f"{word}“org/some-model”不在本机的 Hugging Face 缓存中"), chinese
        for way in ("`make demo`", "`python -m assistant download`", "ASSISTANT_OFFLINE=true",
                    "ASSISTANT_MODEL__CHECKPOINT", "no connection to hub:443"):
            assert way in chinese, (way, chinese)


def test_the_image_agreement_line_in_chinese_has_no_english_words():
    from ui.i18n import words
    from ui.render import consistency_line

    agreement = {"score": 0.41, "flagged": True, "threshold": 0.9, "reason": "measured",
                 "images": [{"kind": "image", "number": 1, "score": 0.41},
                            {"kind": "source", "number": 2, "score": 1.0}]}
    line = consistency_line(agreement, words("zh"))
    text = " ".join([re.sub(r"<[^>]+>", " ", line), *re.findall(r'title="([^"]*)"', line)])  # shown, and tooltip
    assert CJK.search(text) and "图文一致度" in text and "此回答可能与图片不符" in text
    assert not re.findall(r"[A-Za-z]{2,}", text), text
