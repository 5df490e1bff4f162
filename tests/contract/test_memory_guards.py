"""Memory guard rails of the local backend on the tiny Qwen2.5-VL: the context bound, and out-of-memory
handling (a real OOM needs a GPU: tests/gpu; here ``generate`` raises torch's own OutOfMemoryError)."""

import pytest
import torch

from assistant.errors import GenerationError, InputError
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
from assistant.types import ChatTurn, GenerationParams

PARAMS = GenerationParams(max_new_tokens=6, temperature=0)


@pytest.fixture(params=["generate", "static"])
def model(tiny_models, request):
    plan = LoadPlan.resolve(str(tiny_models["qwen2_5_vl"]), device="cpu", decoder=request.param)
    return TransformersVisionModel.from_pretrained(plan, max_pixels=224 * 224, max_context_tokens=120,
                                                   answer_tokens=32)


def _fail_first(model, monkeypatch, failures: int) -> list[int]:
    """Make the first ``failures`` answers raise torch's OutOfMemoryError where the GPU would (generate, or
    the static decoder's prefill); returns the prompt sizes seen (image patches / prompt tokens)."""
    seen: list[int] = []
    if model.decoder is None:
        real = model.model.generate

        def generate(**kwargs):
            seen.append(int(kwargs["pixel_values"].shape[0]))
            if len(seen) <= failures:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(**kwargs)

        monkeypatch.setattr(model.model, "generate", generate)
    else:
        real = model.decoder.prefill

        def prefill(embeds, positions, input_ids):
            seen.append(int(embeds.shape[1]))
            if len(seen) <= failures:
                raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
            return real(embeds, positions, input_ids)

        monkeypatch.setattr(model.decoder, "prefill", prefill)
    return seen


def test_oldest_history_goes_first_to_fit_the_context(model, red_png):
    history = [ChatTurn("user", f"old question {i} " * 6) for i in range(6)]
    turns = [ChatTurn("system", "Be brief."), *history, ChatTurn("user", "now?", (red_png,))]
    inputs = model._fit_context(turns, model.max_pixels)
    assert inputs["input_ids"].shape[1] <= 120
    text = model.processor.decode(inputs["input_ids"][0])
    assert "Be brief." in text and "now?" in text and "old question 0" not in text
    assert "".join(model.stream(turns, PARAMS))


def test_a_question_too_long_alone_is_refused(model):
    with pytest.raises(InputError, match="ASSISTANT_MODEL__MAX_CONTEXT_TOKENS"):
        model.stream([ChatTurn("user", "word " * 400)], PARAMS)


def test_out_of_memory_retries_once_at_lower_resolution(model, red_png, monkeypatch):
    seen = _fail_first(model, monkeypatch, 1)
    big = red_png.with_name("big.png")
    from PIL import Image

    Image.new("RGB", (800, 800), "red").save(big)
    answer = "".join(model.stream([ChatTurn("user", "what?", (big,))], PARAMS))
    assert answer and len(seen) == 2 and seen[1] < seen[0]  # fewer image patches the second time


def test_out_of_memory_twice_is_told_plainly_and_the_next_request_works(model, red_png, monkeypatch):
    seen = _fail_first(model, monkeypatch, 2)
    with pytest.raises(GenerationError, match="ran out of memory.*lower image resolution"):
        list(model.stream([ChatTurn("user", "what?", (red_png,))], PARAMS))
    assert "".join(model.stream([ChatTurn("user", "again?", (red_png,))], PARAMS)) and len(seen) == 3
