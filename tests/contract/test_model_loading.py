"""Loading failures become one clear message that names the checkpoint and the variable to set."""

import pytest

from assistant.errors import InputError, ModelLoadError
from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
from assistant.types import ChatTurn, GenerationParams


def load(checkpoint, **kw):
    return TransformersVisionModel.from_pretrained(LoadPlan.resolve(checkpoint, device="cpu", **kw),
                                                   max_pixels=10_000)


def test_missing_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist.*ASSISTANT_MODEL__CHECKPOINT"):
        load(str(tmp_path / "nope"))


def test_not_in_cache_while_offline():
    with pytest.raises(ModelLoadError) as err:
        load("example-org/not-a-cached-model")
    message = str(err.value)
    assert "example-org/not-a-cached-model" in message and "ASSISTANT_MODEL__CHECKPOINT" in message
    assert "not in the local Hugging Face cache" in message and "Traceback" not in message


def test_folder_that_is_not_a_vision_model(tmp_path, tiny_models):
    with pytest.raises(ModelLoadError, match="clip.*ASSISTANT_MODEL__CHECKPOINT"):
        load(str(tiny_models["clip"]))


def test_cuda_requested_without_cuda():
    with pytest.raises(ModelLoadError, match="ASSISTANT_MODEL__DEVICE=cpu"):
        LoadPlan.resolve("Qwen/Qwen2.5-VL-3B-Instruct", device="cuda", cuda_available=False)


@pytest.mark.parametrize(
    ("cuda", "bf16", "int4", "expected"),
    [(True, True, True, ("cuda", "bfloat16", "int4", "static")),  # Ampere or newer
     (True, False, False, ("cuda", "float16", "4bit", "generate")),  # e.g. a T4: bitsandbytes NF4
     (False, False, True, ("cpu", "float32", "none", "generate"))],
)
def test_auto_plan(cuda, bf16, int4, expected):
    plan = LoadPlan.resolve("m", cuda_available=cuda, bf16_supported=bf16, int4_supported=int4)
    assert (plan.device, plan.dtype, plan.quantization, plan.decoder) == expected and plan.double_quant is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"quantization": "int4", "int4_supported": False}, "compute capability 8.0"),
     ({"quantization": "int4", "dtype": "float16"}, "ASSISTANT_MODEL__DTYPE=bfloat16"),
     ({"quantization": "4bit", "decoder": "static"}, "ASSISTANT_MODEL__DECODER=static")],
)
def test_impossible_plans_are_refused_naming_the_setting(kwargs, message):
    with pytest.raises(ModelLoadError, match=message):
        LoadPlan.resolve("m", cuda_available=True, **{"int4_supported": True, **kwargs})


def test_int4_on_the_cpu_computes_in_bfloat16():
    plan = LoadPlan.resolve("m", device="cpu", quantization="int4", cuda_available=False)
    assert (plan.dtype, plan.decoder) == ("bfloat16", "generate")


def test_unreadable_image_is_refused_before_generation(tiny_models, tmp_path):
    model = load(str(tiny_models["qwen2_5_vl"]))
    bad = tmp_path / "x.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(InputError, match="x.png"):
        model.stream([ChatTurn("user", "hi", (bad,))], GenerationParams(max_new_tokens=2))


def test_out_of_memory_while_loading_names_what_to_change():
    import torch

    from assistant.models.transformers_backend import load_error

    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB")
    static = LoadPlan.resolve("m", cuda_available=True, int4_supported=True)
    message = str(load_error(static, oom))
    assert "Not enough GPU memory" in message and "ASSISTANT_MODEL__MAX_CONTEXT_TOKENS" in message
    dense = LoadPlan.resolve("m", cuda_available=True, int4_supported=True, quantization="none", decoder="generate")
    message = str(load_error(dense, oom))
    assert "ASSISTANT_MODEL__QUANTIZATION=int4" in message and "MAX_CONTEXT_TOKENS" not in message


def test_int4_group_size_reaches_the_layers(tiny_models):
    model = load(str(tiny_models["qwen2_5_vl"]), quantization="int4", decoder="static", int4_group_size=32)
    layers = model.model.model.language_model.fused_layers
    assert {m.group_size for layer in layers for m in (layer.qkv, layer.o, layer.gate_up, layer.down)} == {32}
