"""The default GPU path: 4-bit NF4 with bf16 compute on CUDA, through the product's loading code.
Skipped without CUDA; run on a lent GPU machine (see benchmarks/gpu_smoke.py)."""

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
