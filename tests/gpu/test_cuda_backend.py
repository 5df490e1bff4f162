"""The GPU paths through the product's loading code: the default (int4 + the static decoder, compiled and
recorded as CUDA graphs), bitsandbytes NF4, the int4 kernel's packing on CUDA, and recovery from real
out-of-memory. Skipped without CUDA; run on a lent GPU machine (benchmarks/gpu_check.sh)."""

import threading

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from assistant.models import int4  # noqa: E402
from assistant.models.static_decode import Sampling, StaticDecoder  # noqa: E402
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel  # noqa: E402
from assistant.types import ChatTurn, GenerationParams  # noqa: E402
from tests.contract.test_vision_model_contract import VisionChatModelContract  # noqa: E402


@pytest.fixture(scope="module")
def cuda_qwen(tiny_models):
    plan = LoadPlan.resolve(str(tiny_models["qwen2_5_vl"]))  # auto: CUDA, bf16, int4, static decoder
    return TransformersVisionModel.from_pretrained(plan, max_pixels=256 * 256, max_context_tokens=1024)


class TestQwen25VLOnCUDA(VisionChatModelContract):
    @pytest.fixture
    def model(self, cuda_qwen):
        return cuda_qwen

    def test_auto_plan_is_int4_with_compiled_graphs(self, model):
        decoder = model.decoder
        assert decoder is not None and decoder.mode == "compiled+graphs"
        assert set(decoder._graphs) == set(decoder.buckets)
        layers = model.model.model.language_model.fused_layers
        assert all(isinstance(m, int4.Int4Linear) and m.packed.is_cuda
                   for layer in layers for m in (layer.qkv, layer.o, layer.gate_up, layer.down))


class TestNF4OnCUDA(VisionChatModelContract):
    @pytest.fixture(scope="class")
    def model(self, tiny_models):
        plan = LoadPlan.resolve(str(tiny_models["qwen2_5_vl"]), quantization="4bit")
        return TransformersVisionModel.from_pretrained(plan, max_pixels=256 * 256)

    def test_bitsandbytes_nf4_bf16(self, model):
        import bitsandbytes as bnb

        linear = [m for m in model.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert linear and all(m.weight.quant_type == "nf4" and m.weight.device.type == "cuda" for m in linear)
        assert linear[0].compute_dtype == torch.bfloat16 and not linear[0].weight.quant_state.nested
        assert model.decoder is None


@pytest.mark.parametrize(("out_features", "in_features"), [(2560, 2048), (2048, 11008), (48, 96), (4608, 3584)])
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_int4_kernel_on_cuda_computes_the_dequantised_weights(out_features, in_features, rows):
    """Catches a wrong nibble order or tiling in the CUDA packing: they give wrong numbers, not errors."""
    torch.manual_seed(0)
    weight = torch.randn(out_features, in_features, device="cuda") * 0.02
    linear = int4.Int4Linear.from_weight(weight, None, device="cuda")
    codes, scales_and_zeros = int4.quantize(weight, linear.group_size)
    reference = int4.dequantize(codes, scales_and_zeros, linear.group_size)
    x = torch.randn(rows, in_features, device="cuda", dtype=torch.bfloat16)
    want = x.float() @ reference.T
    got = linear(x).float()
    assert (got - want).abs().max() < 0.02 * want.abs().max()


def test_recorded_graphs_give_generates_tokens(tiny_models, red_png, monkeypatch):
    """float32, so the comparison is exact: 40 greedy tokens crossing several cache buckets, replayed from
    CUDA graphs, equal ``generate``'s."""
    monkeypatch.setattr(StaticDecoder, "BUCKET_MIN", 16)
    path = str(tiny_models["qwen2_5_vl"])
    static = TransformersVisionModel.from_pretrained(
        LoadPlan.resolve(path, dtype="float32", quantization="none"), max_pixels=128 * 128,
        max_context_tokens=256, answer_tokens=64)
    assert static.decoder.mode == "compiled+graphs" and len(static.decoder.buckets) >= 4
    plain = TransformersVisionModel.from_pretrained(
        LoadPlan.resolve(path, dtype="float32", quantization="none", decoder="generate"), max_pixels=128 * 128)
    for turns in ([ChatTurn("user", "What is this?", (red_png,))], [ChatTurn("user", "Say a lot.")]):
        inputs = plain._inputs(turns, plain.max_pixels)
        with torch.inference_mode():
            out = plain.model.generate(**inputs, max_new_tokens=40, min_new_tokens=40, do_sample=False)
        want = out[0, inputs["input_ids"].shape[1]:].tolist()
        sampling = Sampling(repetition_penalty=plain.model.generation_config.repetition_penalty or 1.0)
        assert list(static.decoder.tokens(inputs, sampling, 40, {-1}, threading.Event())) == want


def test_real_out_of_memory_is_recovered_from_repeatedly(tiny_models, tmp_path):
    """Cap this process's share of the GPU at what it holds now plus 256 MiB, send a 4000x4000 image (its
    pixels alone need ~380 MB on the device), three times: each time memory runs out for real, and the user
    gets an answer from the lower-resolution retry or the plain out-of-memory message; a small request right
    after works."""
    from PIL import Image

    from assistant.errors import GenerationError

    model = TransformersVisionModel.from_pretrained(LoadPlan.resolve(str(tiny_models["qwen2_5_vl"])),
                                                    max_pixels=4000 * 4000, max_context_tokens=40_000,
                                                    answer_tokens=64)
    model.processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": 4000 * 4000}
    huge, small = tmp_path / "huge.png", tmp_path / "small.png"
    Image.effect_noise((4000, 4000), 64).convert("RGB").save(huge)
    Image.new("RGB", (64, 64), "red").save(small)
    freed, real_free = [], model._free_memory
    model._free_memory = lambda: (freed.append(1), real_free())
    torch.cuda.empty_cache()
    cap = torch.cuda.memory_reserved() + 256 * 2**20
    torch.cuda.set_per_process_memory_fraction(cap / torch.cuda.get_device_properties(0).total_memory)
    outcomes = []
    try:
        for _ in range(3):
            before = len(freed)
            try:
                assert "".join(model.stream([ChatTurn("user", "what?", (huge,))], GenerationParams(4, 0)))
                outcomes.append("answered at lower resolution")
            except GenerationError as exc:
                assert "ran out of memory" in str(exc)
                outcomes.append("told")
            assert len(freed) > before  # memory really ran out, and was freed
            assert "".join(model.stream([ChatTurn("user", "and this?", (small,))], GenerationParams(4, 0)))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    print("out-of-memory outcomes:", outcomes)


@pytest.mark.parametrize(("out_features", "in_features"), [(2560, 2048), (2048, 11008), (64, 96)])
def test_the_cuda_kernels_layout_unpacks_to_the_codes(out_features, in_features):
    codes = torch.randint(0, 16, (out_features, in_features), dtype=torch.int32, device="cuda")
    assert torch.equal(int4.unpack_cuda_layout(int4.pack(codes)), codes)


def test_prompt_rows_take_the_dense_path_with_the_same_result():
    torch.manual_seed(0)
    linear = int4.Int4Linear.from_weight(torch.randn(2560, 2048, device="cuda") * 0.02, None, device="cuda")
    x = torch.randn(int4.DENSE_ABOVE_ROWS + 100, 2048, device="cuda", dtype=torch.bfloat16)
    dense = linear(x).float()  # dequantised once, dense matmul
    rows = torch.cat([linear(x[i:i + 16]) for i in range(0, x.shape[0], 16)]).float()  # the int4 kernel
    assert (dense - rows).abs().max() < 0.01 * rows.abs().max()

