"""One wording per problem, in the chat and in the knowledge base: each problem file goes through both
paths, and the messages name the file once, show no folder, and say the same thing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from assistant.errors import InputError
from assistant.images import load_image
from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from assistant.types import ChatRequest
from retrieval.errors import EMPTY, UNREADABLE_IMAGE, detail, without_name
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.hostile import png_claiming
from ui.render import ingest_summary


def _png(size=(64, 48)) -> bytes:
    buf = io.BytesIO()
    Image.effect_noise(size, 60).convert("RGB").save(buf, "PNG")
    return buf.getvalue()


PROBLEMS = {  # file name: (its bytes, the problem the user reads, the same in the chat and the knowledge base)
    "empty.txt": (b"", EMPTY),
    "empty.png": (b"", EMPTY),
    "truncated.png": (_png()[:400], UNREADABLE_IMAGE),
    "words.jpg": (b"this is plain text, not a picture\n" * 20, UNREADABLE_IMAGE),
    "table.xyz": (b"a,b\n1,2\n", "unsupported file type '.xyz'; supported: "),
    "claims.png": (None, "this image is too large to open (10,000 megapixels; the limit is 250 for any image)"),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Deep, like Gradio's upload cache (``/tmp/gradio/<hash>/name``): no message may show it."""
    folder = tmp_path_factory.mktemp("uploads") / "gradio" / ("0123abcd" * 8)
    folder.mkdir(parents=True)
    for name, (data, _) in PROBLEMS.items():
        (folder / name).write_bytes(png_claiming(100_000, 100_000) if data is None else data)
    return folder


@pytest.fixture(scope="module")
def knowledge(tmp_path_factory):
    base = KnowledgeBase.open(tmp_path_factory.mktemp("kb") / "data", HashingEmbedder(), ocr=False)  # real workers
    yield Knowledge.ready(base)
    base.close()


@pytest.fixture(scope="module")
def ingested(folder, knowledge) -> dict:
    paths = [folder / name for name in PROBLEMS]
    reports = knowledge.ingest(paths, names=[p.name for p in paths])  # as the app names uploads
    return {r.source: r for r in reports}


def assert_clean(message: str, name: str, folder: Path) -> None:
    assert message.count(name) == 1, message  # named once
    assert str(folder.parent.parent) not in message and "gradio/" not in message, message  # no folder
    assert "Traceback" not in message and "DOS" not in message


def chat_message(path: Path) -> str:
    with pytest.raises(InputError) as err:
        load_image(path, 1024 * 28 * 28)
    return str(err.value)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_one_wording_in_the_chat_and_the_knowledge_base(name, folder, ingested):
    expected = PROBLEMS[name][1]
    chat = chat_message(folder / name)
    report = ingested[name]
    assert report.status == "failed"
    for message in (chat, report.error):
        assert_clean(message, name, folder)
        assert message.startswith(f"{name}: {expected}"), message
    if not name.endswith(".xyz"):  # the one difference: which types each place takes
        assert chat == report.error


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_the_pipeline_gives_the_chat_wording(name, folder, knowledge):
    """A question with the image: the knowledge base search opens it first, and the error reaches the chat
    as an ``InputError`` in the same words."""
    pipeline = AnswerPipeline(ScriptedModel(), knowledge)
    with pytest.raises(InputError) as err:
        list(pipeline.answer(ChatRequest("What is this?", (folder / name,))))
    assert str(err.value) == chat_message(folder / name)


def test_the_ingest_report_names_each_file_once(folder, ingested):
    summary = ingest_summary(list(ingested.values()))
    for name in PROBLEMS:
        line = next(line for line in summary.splitlines() if name in line)
        assert line.count(name) == 1, line
    assert str(folder) not in summary


def test_the_cli_names_each_file_once(folder, ingested):
    for name, report in ingested.items():
        assert without_name(report.error, str(folder / name)).startswith(PROBLEMS[name][1])


def test_exception_details_lose_their_folders():
    exc = OSError(f"cannot identify image file '/tmp/gradio/{'ab' * 20}/scan.png' (see /var/log/x.log)")
    assert detail(exc, "scan.png") == "cannot identify image file 'the file' (see x.log)"


def test_a_traceback_inside_an_exception_is_given_by_its_error():
    """rapidocr wraps onnxruntime's traceback in its ONNXRuntimeError: the user saw "Traceback (most recent
    call last):" as the reason a file could not be read."""
    exc = RuntimeError('Traceback (most recent call last):\n  File "/srv/app/.venv/lib/engine.py", line 196, in '
                       '__call__\n    return self.session.run()\nRuntimeException: [ONNXRuntimeError] : 6 : '
                       'RUNTIME_EXCEPTION : could not run node Conv_12\n')
    text = detail(exc, "scan.png")
    assert text == "RuntimeException: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : could not run node Conv_12"
    assert "Traceback" not in text and "/srv" not in text
