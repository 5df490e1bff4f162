"""Backend for an OpenAI-compatible chat-completions server (vLLM, TGI, Ollama, ...): the way past one
GPU. Images travel as data URLs; the answer streams as server-sent events; closing the stream closes
the connection, which such servers take as the signal to stop generating."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator, Sequence

from assistant.errors import GenerationError
from assistant.images import load_image
from assistant.lifecycle import Capabilities, Ready
from assistant.models.presets import box_convention, qwen_resized
from assistant.types import ChatTurn, GenerationParams


class OpenAIEndpointModel(Ready):
    """Ready when built: the server is asked nothing until the first question (it may start later)."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout: float = 300.0,
                 max_pixels: int = 1024 * 28 * 28, client=None, boxes: str | None = None):
        import httpx

        self.base_url = base_url.rstrip("/")
        self.name = model
        self.max_pixels = max_pixels
        # The server's model is known by name only: its family's box convention, unless the settings say.
        self.capabilities = Capabilities(boxes=boxes or box_convention(None, model))
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), headers=headers)

    def close(self) -> None:
        self.client.close()

    def image_frame(self, image) -> tuple[int, int]:
        """The frame of a pixel-convention model's boxes: the image as sent (reduced to ``max_pixels``), then
        as the server's Qwen2-VL-family processor resizes it (sides rounded to multiples of 28)."""
        return qwen_resized(*load_image(image, self.max_pixels).size)

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]:
        body = {"model": self.name, "messages": [self._message(t) for t in turns], "stream": True,
                "max_tokens": params.max_new_tokens, "temperature": params.temperature}
        return self._stream(body)  # images are encoded above, so a bad one fails before any request

    def _message(self, turn: ChatTurn) -> dict:
        parts = [{"type": "image_url", "image_url": {"url": self._data_url(p)}} for p in turn.images]
        return {"role": turn.role, "content": [*parts, {"type": "text", "text": turn.text}]}

    def _data_url(self, path) -> str:
        buffer = io.BytesIO()
        load_image(path, self.max_pixels).save(buffer, "JPEG", quality=90)
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()

    def _stream(self, body: dict) -> Iterator[str]:
        import httpx

        url = f"{self.base_url}/chat/completions"
        try:
            with self.client.stream("POST", url, json=body) as response:
                if response.status_code >= 400:
                    raise _http_error(response, self.base_url, self.name)
                for line in response.iter_lines():
                    if text := _delta(line):
                        yield text
                    elif line.strip() == "data: [DONE]":
                        return
        except httpx.TimeoutException as exc:
            raise GenerationError(f"The model server at {self.base_url} did not answer in time.") from exc
        except httpx.TransportError as exc:
            raise GenerationError(
                f"Cannot reach the model server at {self.base_url} ({type(exc).__name__}). Check that it is "
                "running, or set ASSISTANT_MODEL__ENDPOINT.") from exc


def _delta(line: str) -> str:
    if not line.startswith("data:") or line.strip() == "data: [DONE]":
        return ""
    try:
        event = json.loads(line[5:])
    except ValueError:
        return ""
    if event.get("error"):
        raise GenerationError(f"The model server reported an error: {event['error']}")
    choices = event.get("choices") or [{}]
    return (choices[0].get("delta") or {}).get("content") or ""


def _http_error(response, base_url: str, model: str) -> GenerationError:
    response.read()
    try:
        detail = response.json().get("error", {})
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text[:300]
    if response.status_code in (401, 403):
        return GenerationError(f"The model server at {base_url} refused the request ({response.status_code}): "
                               "set ASSISTANT_MODEL__API_KEY.")
    if response.status_code == 404:
        return GenerationError(f"The model server at {base_url} does not serve '{model}' ({detail}). Set "
                               "ASSISTANT_MODEL__CHECKPOINT to a model it serves.")
    return GenerationError(f"The model server at {base_url} answered {response.status_code}: {detail}")
