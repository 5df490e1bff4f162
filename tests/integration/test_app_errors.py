"""A model that cannot load gives one clear message in the chat; the app is served regardless."""

import pytest
from gradio_client import Client

from assistant.composition import build_pipeline
from tests.helpers.server import app_settings, ask, serve

pytestmark = pytest.mark.integration


def test_missing_model_gives_a_clear_message(tmp_path, tiny_models):
    settings = app_settings(tmp_path, model={"checkpoint": "example-org/not-downloaded-vlm"},
                             retrieval={"embedder": str(tiny_models["clip"])})
    with serve(build_pipeline(settings), settings) as url:
        answer, _, _ = ask(Client(url, verbose=False), "hello", use_knowledge=False)
    assert answer.startswith("⚠️")
    assert "example-org/not-downloaded-vlm" in answer and "ASSISTANT_MODEL__CHECKPOINT" in answer
    assert "Traceback" not in answer and "network error" not in answer.lower()


def test_missing_embedder_leaves_chat_working(tmp_path, tiny_models):
    settings = app_settings(tmp_path, model={"checkpoint": str(tiny_models["qwen2_5_vl"])},
                             retrieval={"embedder": str(tmp_path / "no-embedder")})
    with serve(build_pipeline(settings), settings) as url:
        client = Client(url, verbose=False)
        answer, cards, _ = ask(client, "hello")
        report, _ = client.predict([], api_name="/ingest")
    assert not answer.startswith("⚠️")
    assert "Knowledge base unavailable" in cards and "ASSISTANT_RETRIEVAL__EMBEDDER" in cards
