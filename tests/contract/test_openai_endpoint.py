"""The OpenAI-compatible endpoint backend: the VisionChatModel contract against a streaming server on
127.0.0.1, and its errors mapped to the product's own."""

import socket

import pytest

from assistant.errors import GenerationError
from assistant.models.openai_endpoint import OpenAIEndpointModel
from assistant.types import ChatTurn, GenerationParams
from tests.contract.test_vision_model_contract import VisionChatModelContract
from tests.helpers.openai_server import serve_openai


@pytest.fixture(scope="module")
def server():
    with serve_openai() as (url, recorder):
        yield url, recorder


class TestOpenAIEndpoint(VisionChatModelContract):
    @pytest.fixture
    def model(self, server):
        return OpenAIEndpointModel(server[0], "qwen2.5-vl", max_pixels=64 * 64)

    def test_images_travel_as_data_urls_in_order(self, model, server, red_png, blue_png):
        turns = [ChatTurn("system", "Be brief."), ChatTurn("user", "Compare", (red_png, blue_png))]
        text = "".join(model.stream(turns, GenerationParams(max_new_tokens=3, temperature=0.5)))
        assert text.startswith("I see 2 image(s) in 2 messages.")
        body = server[1].requests[-1]["body"]
        assert body["stream"] is True and body["max_tokens"] == 3 and body["temperature"] == 0.5
        parts = body["messages"][1]["content"]
        assert [p["type"] for p in parts] == ["image_url", "image_url", "text"]
        assert all(p["image_url"]["url"].startswith("data:image/jpeg;base64,") for p in parts[:2])

    def test_closing_disconnects_so_the_server_stops(self, model, server, red_png):
        server[1].disconnected.clear()
        stream = model.stream([ChatTurn("user", "go", (red_png,))], GenerationParams(max_new_tokens=100_000))
        next(stream)
        stream.close()
        assert server[1].disconnected.wait(10)


def test_server_errors_become_clear_messages(server):
    url, _ = server
    with pytest.raises(GenerationError, match="answered 500: CUDA out of memory"):
        list(OpenAIEndpointModel(url, "m").stream([ChatTurn("user", "boom")], GenerationParams()))
    with pytest.raises(GenerationError, match="does not serve 'missing'.*ASSISTANT_MODEL__CHECKPOINT"):
        list(OpenAIEndpointModel(url, "missing").stream([ChatTurn("user", "hi")], GenerationParams()))


def test_api_key_is_sent_and_refusal_is_explained():
    with serve_openai(api_key="s3cret") as (url, recorder):
        with pytest.raises(GenerationError, match="ASSISTANT_MODEL__API_KEY"):
            list(OpenAIEndpointModel(url, "m").stream([ChatTurn("user", "hi")], GenerationParams(max_new_tokens=2)))
        text = "".join(OpenAIEndpointModel(url, "m", api_key="s3cret").stream(
            [ChatTurn("user", "hi")], GenerationParams(max_new_tokens=2)))
        assert text.startswith("I see 0 image(s)")


def test_unreachable_server_names_the_url_and_setting():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once the socket closes
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(GenerationError, match=f"Cannot reach the model server at {url}.*ASSISTANT_MODEL__ENDPOINT"):
        list(OpenAIEndpointModel(url, "m").stream([ChatTurn("user", "hi")], GenerationParams()))
