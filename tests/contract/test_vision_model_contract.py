"""One contract for every ``VisionChatModel`` backend: the scripted fake and the real transformers
backend loaded from tiny random models of Qwen2.5-VL and Idefics3 (SmolVLM), in full precision and
4-bit NF4 on the CPU."""

import itertools
import threading
import time

import pytest

from assistant.models.base import VisionChatModel
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
from assistant.types import ChatTurn, GenerationParams
from tests.helpers.fakes import ScriptedModel


class VisionChatModelContract:
    @pytest.fixture
    def model(self) -> VisionChatModel:
        raise NotImplementedError

    def test_is_a_vision_chat_model(self, model):
        assert isinstance(model, VisionChatModel) and model.name

    def test_streams_text_for_a_turn_with_several_images(self, model, red_png, blue_png):
        turns = [ChatTurn("system", "Be brief."), ChatTurn("user", "Compare these.", (red_png, blue_png))]
        pieces = list(model.stream(turns, GenerationParams(max_new_tokens=12, temperature=0)))
        assert pieces and all(isinstance(p, str) for p in pieces)
        assert "".join(pieces).strip()

    def test_multi_turn_history_with_images(self, model, red_png, blue_png):
        turns = [ChatTurn("user", "What colour?", (red_png,)), ChatTurn("assistant", "Red."),
                 ChatTurn("user", "And this one?", (blue_png,))]
        assert "".join(model.stream(turns, GenerationParams(max_new_tokens=8, temperature=0)))

    def test_greedy_decoding_is_repeatable(self, model, red_png):
        turns = [ChatTurn("user", "Describe.", (red_png,))]
        params = GenerationParams(max_new_tokens=10, temperature=0)
        assert "".join(model.stream(turns, params)) == "".join(model.stream(turns, params))

    def test_closing_the_stream_stops_generation(self, model, red_png):
        turns = [ChatTurn("user", "Talk for a long time.", (red_png,))]
        stream = model.stream(turns, GenerationParams(max_new_tokens=100_000, temperature=1.0))
        first = list(itertools.islice(stream, 1))
        started = time.monotonic()
        stream.close()
        assert first
        assert time.monotonic() - started < 10  # 100k tokens would take many minutes
        assert not [t for t in threading.enumerate() if t.name == "generate"]
        # and the model still answers afterwards
        assert list(model.stream(turns, GenerationParams(max_new_tokens=4, temperature=0)))


class TestScriptedModel(VisionChatModelContract):
    @pytest.fixture
    def model(self):
        return ScriptedModel("A red square and a blue rectangle. " * 50, chunk=3)


def _load(path, **plan) -> TransformersVisionModel:
    return TransformersVisionModel.from_pretrained(
        LoadPlan.resolve(str(path), device="cpu", **plan), max_pixels=128 * 128)


@pytest.fixture(scope="module")
def qwen(tiny_models):
    return _load(tiny_models["qwen2_5_vl"])


@pytest.fixture(scope="module")
def idefics3(tiny_models):
    return _load(tiny_models["idefics3"])


def _linear4bit(model) -> list:
    import bitsandbytes as bnb

    return [m for m in model.model.modules() if isinstance(m, bnb.nn.Linear4bit)]


@pytest.fixture(scope="module", params=["packed", "plain"])
def qwen_4bit(request, tiny_models):
    """NF4 on the CPU through both of bitsandbytes' paths, whatever CPU runs the suite: ``packed`` (the
    AVX512-BF16 kernel, which repacks the weights on the first call) and ``plain`` (every other CPU). Each
    layer decides by a flag set from the CPU at construction; the fixture sets it either way."""
    from bitsandbytes.functional import has_avx512bf16

    packed = request.param == "packed"
    if packed and not has_avx512bf16():
        pytest.skip("this CPU has no AVX512-BF16, so the packed kernel cannot run here; "
                    "test_every_quantised_linear_fits_the_cpu_packing checks its shapes on every CPU")
    model = _load(tiny_models["qwen2_5_vl"], quantization="4bit")
    for layer in _linear4bit(model):
        layer.support_avx512bf16_for_cpu = packed
    model.cpu_path = request.param
    return model


class TestQwen25VL(VisionChatModelContract):
    @pytest.fixture
    def model(self, qwen):
        return qwen


class TestIdefics3(VisionChatModelContract):
    @pytest.fixture
    def model(self, idefics3):
        return idefics3


class TestQwen25VL4bitOnCPU(VisionChatModelContract):
    @pytest.fixture
    def model(self, qwen_4bit):
        return qwen_4bit

    def test_weights_are_nf4(self, model):
        linear = _linear4bit(model)
        assert linear and all(m.weight.quant_type == "nf4" for m in linear)
        state = linear[0].weight.quant_state  # packing records the original layout as ``original_*``
        assert not getattr(state, "original_nested", state.nested)  # double quantisation is off by default

    def test_answers_took_the_intended_cpu_path(self, model, red_png):
        """After an answer, the layers' weights are in the packed format exactly on the packed path."""
        assert "".join(model.stream([ChatTurn("user", "Describe.", (red_png,))],
                                    GenerationParams(max_new_tokens=4, temperature=0)))
        formats = {bool(getattr(m.weight.quant_state, "packing_format_for_cpu", False)) for m in _linear4bit(model)}
        assert formats == {model.cpu_path == "packed"}


def test_every_quantised_linear_fits_the_cpu_packing(tiny_models):
    """On any CPU: bitsandbytes' repacking for its AVX512-BF16 kernel (pure tensor reshapes, no special
    instruction) succeeds for every quantised layer of the tiny model, vision tower included."""
    import copy

    from bitsandbytes.functional import _convert_weight_packed_for_cpu

    model = _load(tiny_models["qwen2_5_vl"], quantization="4bit")
    layers = _linear4bit(model)
    assert any("visual" in name for name, m in model.model.named_modules() if m in layers)
    for layer in layers:
        state = copy.deepcopy(layer.weight.quant_state)
        packed, state = _convert_weight_packed_for_cpu(layer.weight.data.clone(), state)
        assert state.packing_format_for_cpu and packed.shape == (layer.out_features, layer.in_features // 2)
