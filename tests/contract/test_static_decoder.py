"""The static decoder and the int4 kernels on the CPU, against transformers itself: the same tiny random
Qwen2.5-VL answered by ``generate`` and by the static decoder must give the same tokens (images, 3-D
positions, history, repetition penalty included); int4 layers must compute what their dequantised
weights compute. CUDA graphs are exercised on a GPU (tests/gpu)."""

import threading

import pytest
import torch
from torch import nn

from assistant.models import int4
from assistant.models.static_decode import Sampling, StaticDecoder, sampling_for, unsupported_reason
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
from assistant.types import ChatTurn, GenerationParams
from tests.contract.test_vision_model_contract import VisionChatModelContract


def _load(path, **plan) -> TransformersVisionModel:
    return TransformersVisionModel.from_pretrained(
        LoadPlan.resolve(str(path), device="cpu", **plan), max_pixels=128 * 128, max_context_tokens=600,
        answer_tokens=64)


@pytest.fixture(scope="module")
def static_fp32(tiny_models):
    return _load(tiny_models["qwen2_5_vl"], decoder="static")


@pytest.fixture(scope="module")
def reference(tiny_models):
    return _load(tiny_models["qwen2_5_vl"])  # generate, float32


@pytest.fixture(scope="module")
def static_int4(tiny_models):
    return _load(tiny_models["qwen2_5_vl"], decoder="static", quantization="int4")


def _conversations(red_png, blue_png):
    return {
        "image": [ChatTurn("user", "What is this?", (red_png,))],
        "text only": [ChatTurn("system", "Be brief."), ChatTurn("user", "Say something long.")],
        "two images and history": [ChatTurn("user", "Colour?", (blue_png,)), ChatTurn("assistant", "Blue."),
                                   ChatTurn("user", "Compare these two.", (red_png, blue_png))],
    }


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl"])
def family_pair(request, tiny_models):
    """The static decoder and ``generate`` over the same tiny model, for each family it serves."""
    return _load(tiny_models[request.param], decoder="static"), _load(tiny_models[request.param])


def test_same_tokens_as_generate(family_pair, red_png, blue_png):
    """Greedy, 24 tokens, with a repetition penalty in the generation config (Qwen's own has 1.05).
    Qwen3-VL: q/k norms, interleaved M-RoPE and DeepStack features in the prefill."""
    static_fp32, reference = family_pair
    for model in (static_fp32, reference):
        model.model.generation_config.repetition_penalty = 1.3
    try:
        for name, turns in _conversations(red_png, blue_png).items():
            inputs = reference._inputs(turns, reference.max_pixels)
            with torch.inference_mode():
                out = reference.model.generate(**inputs, max_new_tokens=24, min_new_tokens=24, do_sample=False)
            want = out[0, inputs["input_ids"].shape[1]:].tolist()
            sampling = sampling_for(static_fp32.model.generation_config, 0.0)
            got = list(static_fp32.decoder.tokens(inputs, sampling, 24, {-1}, threading.Event()))
            assert got == want, name
    finally:
        for model in (static_fp32, reference):
            model.model.generation_config.repetition_penalty = 1.0


def test_the_prefill_computes_the_models_own_logits(family_pair, red_png, blue_png):
    """Stricter than equal greedy tokens (a tiny random model's argmax can hide a missing norm): the
    logits after the prompt, image and history included, equal the model's own forward in float32."""
    static_fp32, reference = family_pair
    turns = [ChatTurn("user", "Colour?", (blue_png,)), ChatTurn("assistant", "Blue."),
             ChatTurn("user", "Compare these two.", (red_png, blue_png))]
    inputs = reference._inputs(turns, reference.max_pixels)
    with torch.inference_mode():
        want = reference.model(**inputs).logits[0, -1].float()
        decoder = static_fp32.decoder
        embeds, positions = decoder.embed(inputs)
        decoder.prefill(embeds, positions, inputs["input_ids"])
        got = decoder._logits.clone()
    assert torch.allclose(got, want, atol=1e-4, rtol=1e-4), (got - want).abs().max()


def test_the_product_path_streams_the_same_text(family_pair, red_png):
    static_fp32, reference = family_pair
    turns = [ChatTurn("user", "Describe.", (red_png,))]
    params = GenerationParams(max_new_tokens=16, temperature=0)
    assert "".join(static_fp32.stream(turns, params)) == "".join(reference.stream(turns, params))


def test_the_language_model_weights_are_fused_and_not_kept_twice(static_fp32):
    lm = static_fp32.model.model.language_model
    assert len(lm.layers) == 0 and len(lm.fused_layers) == 2
    assert not any(p.device.type == "meta" for p in static_fp32.model.parameters())
    layer = lm.fused_layers[0]
    config = lm.config
    head_dim = config.hidden_size // config.num_attention_heads
    assert layer.qkv.out_features == (config.num_attention_heads + 2 * config.num_key_value_heads) * head_dim
    assert layer.gate_up.out_features == 2 * config.intermediate_size


def test_int4_decoder_layers_are_int4_and_answers_stay_close(static_int4, reference, red_png):
    """Prefill logits of the int4 model against the full-precision one: same scale, highly correlated (a
    random tiny model has no margin for exact token equality after quantisation)."""
    lm = static_int4.model.model.language_model
    assert all(isinstance(m, int4.Int4Linear) for layer in lm.fused_layers
               for m in (layer.qkv, layer.o, layer.gate_up, layer.down))
    inputs = reference._inputs([ChatTurn("user", "What is this?", (red_png,))], reference.max_pixels)
    with torch.inference_mode():
        want = reference.model(**inputs).logits[0, -1].float()
        decoder = static_int4.decoder
        embeds, positions = decoder.embed(inputs)
        decoder.prefill(embeds, positions, inputs["input_ids"])
        got = decoder._logits.clone()
    assert torch.corrcoef(torch.stack([want, got]))[0, 1] > 0.98
    assert (got - want).abs().max() < 0.25 * want.abs().max()


def test_compiled_steps_give_the_same_tokens(tiny_models, red_png):
    """``torch.compile`` (fullgraph: any graph break fails) of the per-layer functions, as on a GPU."""
    model = _load(tiny_models["qwen2_5_vl"], decoder="static", quantization="int4")
    inputs = model._inputs([ChatTurn("user", "What is this?", (red_png,))], model.max_pixels)
    sampling = Sampling()
    eager = list(model.decoder.tokens(inputs, sampling, 12, {-1}, threading.Event()))
    model.decoder.use_compile = True
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    assert model.decoder.warm_up() == "compiled"
    # one graph per function for every layer and bucket: no recompiling per layer (36 would exceed the limit)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] == 3
    assert list(model.decoder.tokens(inputs, sampling, 12, {-1}, threading.Event())) == eager


def test_sampling_follows_the_generation_config(static_fp32, red_png):
    decoder = static_fp32.decoder
    inputs = static_fp32._inputs([ChatTurn("user", "Hi.", (red_png,))], static_fp32.max_pixels)
    greedy = list(decoder.tokens(inputs, Sampling(), 10, {-1}, threading.Event()))
    top1 = list(decoder.tokens(inputs, Sampling(temperature=1.5, top_k=1), 10, {-1}, threading.Event()))
    assert top1 == greedy  # top-k 1 leaves one candidate
    nucleus = list(decoder.tokens(inputs, Sampling(temperature=1.0, top_p=1e-6), 10, {-1}, threading.Event()))
    assert nucleus == greedy  # the smallest nucleus is the most likely token
    torch.manual_seed(0)
    hot = [tuple(decoder.tokens(inputs, Sampling(temperature=2.0), 10, {-1}, threading.Event())) for _ in range(3)]
    assert len(set(hot)) > 1  # real sampling varies
    qwen_like = sampling_for(type("C", (), {"top_k": 1, "top_p": 0.001, "repetition_penalty": 1.05})(), 0.2)
    assert qwen_like == Sampling(temperature=0.2, top_k=1, top_p=0.001, repetition_penalty=1.05)


def test_eos_stop_event_and_cache_end(static_fp32, red_png):
    decoder = static_fp32.decoder
    inputs = static_fp32._inputs([ChatTurn("user", "Hi.", (red_png,))], static_fp32.max_pixels)
    tokens = list(decoder.tokens(inputs, Sampling(), 20, {-1}, threading.Event()))
    end = next(i for i in range(1, 20) if tokens[i] not in tokens[:i])  # first token not seen before
    eos = {tokens[end]}
    assert list(decoder.tokens(inputs, Sampling(), 20, eos, threading.Event())) == tokens[:end + 1]
    suppressed = list(decoder.tokens(inputs, Sampling(), 20, eos, threading.Event(), min_new_tokens=20))
    assert len(suppressed) == 20 and tokens[end] not in suppressed[:19]
    stop = threading.Event()
    stream = decoder.tokens(inputs, Sampling(), 1000, set(), stop)
    next(stream), next(stream)
    stop.set()
    assert len(list(stream)) <= 1
    room = decoder.cache_tokens - int(inputs["input_ids"].shape[1])
    assert len(list(decoder.tokens(inputs, Sampling(), 10_000, set(), threading.Event()))) == room


def test_other_families_are_not_taken(tiny_models):
    model = _load(tiny_models["idefics3"], decoder="static")  # falls back to generate, says why in the log
    assert model.decoder is None
    assert "qwen2" in unsupported_reason(model.model)


class TestQwen25VLStaticInt4OnCPU(VisionChatModelContract):
    @pytest.fixture
    def model(self, static_int4):
        return static_int4


class TestIdefics3Int4OnCPU(VisionChatModelContract):
    """int4 for a family without the static decoder: its decoder's linears are replaced, generate runs."""

    @pytest.fixture(scope="class")
    def model(self, tiny_models):
        return _load(tiny_models["idefics3"], quantization="int4")

    def test_decoder_linears_are_int4_vision_stays_dense(self, model):
        decoder = model.model.get_decoder()
        assert any(isinstance(m, int4.Int4Linear) for m in decoder.modules())
        assert not any(isinstance(m, int4.Int4Linear) for n, m in model.model.named_modules() if "vision" in n)


@pytest.mark.parametrize(("out_features", "in_features", "group"), [(48, 96, 32), (256, 128, 128), (32, 192, 64)])
def test_int4_linear_computes_its_dequantised_weights(out_features, in_features, group):
    torch.manual_seed(0)
    linear = nn.Linear(in_features, out_features, bias=True)
    packed = int4.Int4Linear.from_weight(linear.weight.detach(), linear.bias, device="cpu", group_size=128)
    assert packed.group_size == group
    codes, scales_and_zeros = int4.quantize(linear.weight.detach(), group)
    weights = int4.dequantize(codes, scales_and_zeros, group)
    groups = linear.weight.detach().reshape(out_features, -1, group)
    step = (groups.amax(-1) - groups.amin(-1)) / 15
    error = (weights - linear.weight.detach()).abs().reshape(out_features, -1, group).amax(-1)
    bf16 = 2**-8 * groups.abs().amax(-1)  # scale and zero are stored in bf16
    assert (error <= step * 0.5 + bf16).all()  # the nearest of 16 levels
    x = torch.randn(5, in_features)
    want = x.to(torch.bfloat16).float() @ weights.T + linear.bias.detach().to(torch.bfloat16).float()
    got = packed(x).float()
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_shapes_the_kernels_refuse_stay_dense():
    assert int4.group_size_for(100, 64) is None  # out not a multiple of 16
    assert int4.group_size_for(64, 48) is None  # in not a multiple of 32
    with pytest.raises(ValueError, match="cannot be packed"):
        int4.Int4Linear.from_weight(torch.zeros(100, 64), None, device="cpu")
    root = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 100))
    assert int4.quantize_linears(root, device="cpu") == 1
    assert isinstance(root[0], int4.Int4Linear) and type(root[1]) is nn.Linear


def test_only_the_qwen2_vl_family_is_supported(static_fp32):
    assert unsupported_reason(static_fp32.model) is None
    assert unsupported_reason(nn.Linear(2, 2)) is not None
    with pytest.raises(ValueError):
        StaticDecoder(nn.Linear(2, 2), device="cpu", dtype=torch.float32, quantize=False, cache_tokens=8)


@pytest.mark.parametrize(("out_features", "in_features", "tiles"), [(16, 256, 8), (24, 128, 4), (8, 64, 2)])
def test_the_cuda_layout_unpacks_to_the_codes(out_features, in_features, tiles):
    """The dense prefill path reads the CUDA kernel's layout back; checked here against that kernel's
    packing as written in its source, and on a GPU against the kernel itself (tests/gpu)."""
    codes = torch.randint(0, 16, (out_features, in_features), dtype=torch.int32)
    packed = int4.pack_cuda_layout_reference(codes, tiles)
    assert packed.shape == (out_features // 8, in_features // (tiles * 16), 32, tiles // 2)
    assert torch.equal(int4.unpack_cuda_layout(packed), codes)
    _, scales_and_zeros = int4.quantize(torch.randn(out_features, in_features), 32)
    assert torch.equal(int4.dequantize_packed(packed, scales_and_zeros, 32, torch.float32),
                       int4.dequantize(codes, scales_and_zeros, 32))


def test_windowed_vision_attention_in_one_call_matches_transformers(tiny_models):
    """Two images: windowed layers and a full-attention layer over two images both go through the
    padded single call."""
    from PIL import Image
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from assistant.models.vision_attention import batch_windows

    path = tiny_models["qwen2_5_vl"]
    model = AutoModelForImageTextToText.from_pretrained(path, dtype=torch.float32).eval()
    config = model.config.vision_config
    assert config.fullatt_block_indexes and len(config.fullatt_block_indexes) < config.depth
    images = [Image.effect_noise((300, 200), 64).convert("RGB"), Image.effect_noise((120, 260), 64).convert("RGB")]
    pixels = AutoProcessor.from_pretrained(path).image_processor(images=images, return_tensors="pt")
    with torch.no_grad():
        want = model.model.visual(pixels["pixel_values"], grid_thw=pixels["image_grid_thw"]).pooler_output
        assert batch_windows(model) == config.depth
        got = model.model.visual(pixels["pixel_values"], grid_thw=pixels["image_grid_thw"]).pooler_output
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)

