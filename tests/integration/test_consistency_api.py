"""The answer's multimodal consistency through the real app: in ``/chat``'s output, under the answer in the
chat, and stored with the turn so a resumed conversation shows it (a scripted model and the toy shared-space
embedder at the edges, real Chroma and Gradio)."""

from __future__ import annotations

import pytest
from gradio_client import Client

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from benchmarks.consistency_data import _shape
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import ScriptedModel, SharedSpaceEmbedder
from tests.helpers.server import app_settings, ask_all

pytestmark = pytest.mark.integration


def test_chat_returns_the_consistency_and_a_resumed_conversation_shows_it(tmp_path):
    from ui.app import create_app, launch

    red = tmp_path / "red-circle.png"
    _shape(red, "circle", "red", "white")
    settings = app_settings(tmp_path)
    kb = KnowledgeBase.open(settings.data_dir, SharedSpaceEmbedder(), ocr=False)
    model = ScriptedModel("A red circle.")
    pipeline = AnswerPipeline(model, Knowledge.ready(kb), k=2, consistency_min=0.9)
    app = create_app(pipeline, settings)
    launch(app, settings, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{settings.ui.port}/", verbose=False)
        answer, _, _, agreement = ask_all(client, "What is this?", [red], use_knowledge=False)
        assert answer == "A red circle."
        assert agreement == {"score": 1.0, "flagged": False, "threshold": 0.9, "reason": "measured",
                             "images": [{"kind": "image", "number": 1, "score": 1.0}]}
        model.answer = "The invoice total is 42 euros."
        _, _, _, low = ask_all(client, "And this one?", [red], use_knowledge=False)
        assert low["flagged"] is True and low["score"] < 0.9
        _, _, _, none = ask_all(client, "Hello", use_knowledge=False)
        assert none["score"] is None and none["reason"] == "no images"

        conversation_id = client.predict(api_name="/conversations")[0]["id"]
        _, messages, *_ = app.assistant_ui.resume(conversation_id)
    finally:
        app.close()
        pipeline.close()
        kb.close()
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    assert "Image agreement 1.00" in answers[0] and "may not match" not in answers[0]
    assert "Image agreement" in answers[1] and "This answer may not match the image." in answers[1]
    assert "Image agreement" not in answers[2]
