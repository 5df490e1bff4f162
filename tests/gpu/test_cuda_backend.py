"""The default GPU path: 4-bit NF4 with bf16 compute on CUDA, through the product's loading code.
Skipped without CUDA; run on a lent GPU machine (benchmarks/gpu_check.sh)."""

import pytest

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel  # noqa: E402
from tests.contract.test_vision_model_contract import VisionChatModelContract  # noqa: E402


@pytest.fixture(scope="module")
def cuda_qwen(tiny_models):
    plan = LoadPlan.resolve(str(tiny_models["qwen2_5_vl"]))  # auto: CUDA, bf16, 4-bit
    return TransformersVisionModel.from_pretrained(plan, max_pixels=256 * 256)


class TestQwen25VLOnCUDA(VisionChatModelContract):
    @pytest.fixture
    def model(self, cuda_qwen):
        return cuda_qwen

    def test_auto_plan_is_nf4_bf16_on_cuda(self, model):
        import bitsandbytes as bnb

        linear = [m for m in model.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
        assert linear and all(m.weight.quant_type == "nf4" for m in linear)
        assert all(m.weight.device.type == "cuda" for m in linear)
        assert linear[0].compute_dtype == torch.bfloat16
        assert not linear[0].weight.quant_state.nested


def test_real_out_of_memory_is_recovered_from_repeatedly(tiny_models, tmp_path):
    """Cap this process's share of the GPU, send an image whose vision attention cannot fit, three times;
    each time the user gets an answer (lower-resolution retry) or the plain out-of-memory message, and a
    small request right after works. Written for a GPU session; not yet run on one."""
    from PIL import Image

    from assistant.errors import GenerationError
    from assistant.types import ChatTurn, GenerationParams

    model = TransformersVisionModel.from_pretrained(LoadPlan.resolve(str(tiny_models["qwen2_5_vl"])),
                                                    max_pixels=4000 * 4000, max_context_tokens=200_000)
    model.processor.image_processor.max_pixels = 4000 * 4000
    model.processor.image_processor.size = {"shortest_edge": 56 * 56, "longest_edge": 4000 * 4000}
    huge, small = tmp_path / "huge.png", tmp_path / "small.png"
    Image.effect_noise((4000, 4000), 64).convert("RGB").save(huge)
    Image.new("RGB", (64, 64), "red").save(small)
    torch.cuda.set_per_process_memory_fraction(2 * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    try:
        for _ in range(3):
            try:
                assert "".join(model.stream([ChatTurn("user", "what?", (huge,))], GenerationParams(4, 0)))
            except GenerationError as exc:
                assert "ran out of memory" in str(exc)
            assert "".join(model.stream([ChatTurn("user", "and this?", (small,))], GenerationParams(4, 0)))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
