"""Boxes in an answer are drawn where the model meant them, per family: Qwen2.5-VL answers in pixels of the
image as its processor resized it, Qwen3-VL in 0-1000 of the width and height, other families not at all.
Through the endpoint backend the frame is the image as sent, as the server's processor resizes it: a large
photo's box lands on the right place (it was drawn at the scale of the reduced image before)."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

from assistant.lifecycle import Capabilities
from assistant.models.openai_endpoint import OpenAIEndpointModel
from assistant.models.presets import NO_BOXES, PIXELS, RELATIVE_1000, box_convention
from assistant.pipeline import AnswerPipeline
from assistant.types import ChatRequest, GenerationParams
from tests.helpers.fakes import ScriptedModel
from tests.helpers.openai_server import serve_openai

WHITE = (255, 255, 255)


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (4000, 3000), WHITE).save(path, quality=95)
    return path


def drawn(done) -> Image.Image:
    [annotated] = done.annotated
    return Image.open(annotated).convert("RGB")


def ask(model, photo, tmp_path):
    pipeline = AnswerPipeline(model, None, annotations_dir=tmp_path / "ann")
    return list(pipeline.answer(ChatRequest("Where is it?", (photo,), params=GenerationParams(64, 0.0))))[-1]


def left_half_outlined(image: Image.Image) -> bool:
    """A box over the left half: its right edge at the middle, nothing drawn at three quarters."""
    w, h = image.size
    middle = [image.getpixel((x, h // 2)) for x in range(w // 2 - 6, w // 2 + 6)]
    return any(p != WHITE for p in middle) and image.getpixel((3 * w // 4, h // 2)) == WHITE


def test_the_convention_of_each_family():
    assert box_convention("qwen3_vl") == box_convention("qwen3_vl_moe") == RELATIVE_1000
    assert box_convention("qwen2_5_vl") == box_convention("qwen2_vl") == PIXELS
    assert box_convention("idefics3") == box_convention("gemma4") == box_convention("smolvlm") == NO_BOXES
    assert box_convention(None, "Qwen/Qwen3-VL-8B-Instruct") == RELATIVE_1000
    assert box_convention(None, "Qwen/Qwen2.5-VL-72B-Instruct-AWQ") == PIXELS
    assert box_convention(None, "llava-hf/llava-1.5-7b-hf") == NO_BOXES


def test_relative_boxes_are_drawn_in_thousandths(photo, tmp_path):
    class Qwen3Like(ScriptedModel):
        capabilities = Capabilities(boxes=RELATIVE_1000)

    done = ask(Qwen3Like('[{"bbox_2d": [0, 0, 500, 1000], "label": "left"}]'), photo, tmp_path)
    assert left_half_outlined(drawn(done))


def test_a_family_without_boxes_draws_none(photo, tmp_path):
    class NoBoxes(ScriptedModel):
        capabilities = Capabilities(boxes=NO_BOXES)

    assert ask(NoBoxes('[{"bbox_2d": [0, 0, 500, 1000]}]'), photo, tmp_path).annotated == ()


def test_the_endpoint_draws_pixel_boxes_in_the_frame_the_server_saw(photo, tmp_path):
    with serve_openai() as (url, recorder):
        model = OpenAIEndpointModel(url, "Qwen/Qwen2.5-VL-7B-Instruct")
        assert model.capabilities.boxes == PIXELS
        recorder.answer = "Nothing."
        ask(model, photo, tmp_path)  # what the server receives: the photo reduced to max_pixels
        url_data = recorder.requests[-1]["body"]["messages"][-1]["content"][0]["image_url"]["url"]
        sent = Image.open(io.BytesIO(base64.b64decode(url_data.split(",", 1)[1])))
        height, width = smart_resize(sent.height, sent.width, factor=28, min_pixels=56 * 56,
                                     max_pixels=28 * 28 * 1280)  # the Qwen2-VL processor on the server
        assert (width, height) != photo_size(photo) and model.image_frame(photo) == (width, height)
        recorder.answer = f'[{{"bbox_2d": [0, 0, {width // 2}, {height}], "label": "left"}}]'
        image = drawn(ask(model, photo, tmp_path))
    assert left_half_outlined(image)


def test_the_endpoint_draws_qwen3_boxes_in_thousandths_and_a_setting_overrides(photo, tmp_path):
    with serve_openai() as (url, recorder):
        recorder.answer = '[{"bbox_2d": [0, 0, 500, 1000], "label": "left"}]'
        assert left_half_outlined(drawn(ask(OpenAIEndpointModel(url, "Qwen/Qwen3-VL-8B-Instruct"), photo, tmp_path)))
        assert ask(OpenAIEndpointModel(url, "my-finetune"), photo, tmp_path).annotated == ()
        custom = OpenAIEndpointModel(url, "my-finetune", boxes=RELATIVE_1000)
        assert left_half_outlined(drawn(ask(custom, photo, tmp_path)))


def photo_size(path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size
