"""The app with the OpenAI-compatible backend, built from settings, answering through a streaming server
on 127.0.0.1."""

import pytest
from gradio_client import Client

from assistant.composition import build_pipeline
from tests.helpers.openai_server import serve_openai
from tests.helpers.server import app_settings, ask, serve

pytestmark = pytest.mark.integration


def test_chat_through_an_openai_compatible_server(tmp_path, red_png, tiny_models):
    with serve_openai() as (url, recorder):
        settings = app_settings(tmp_path, model={"backend": "openai", "endpoint": url, "checkpoint": "served-vlm"},
                                retrieval={"embedder": str(tiny_models["clip"])})
        with serve(build_pipeline(settings), settings) as app_url:
            answer, _, _ = ask(Client(app_url, verbose=False), "What is this?", [red_png], max_new_tokens=16,
                               use_knowledge=False)
    assert answer.startswith("I see 1 image(s) in 2 messages.")
    assert recorder.requests[-1]["body"]["model"] == "served-vlm"
