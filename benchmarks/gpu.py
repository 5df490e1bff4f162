"""The GPU benchmark: Qwen2.5-VL with random weights of the real shapes (3B, 7B), run through the product's
own loader. Runs the GPU tests first, measures the card's copy bandwidth, then per variant: time to first
token split into preprocessing, vision tower and prefill (a 1024x1024 image and a question), decode
tokens/s over N tokens, peak GPU memory; each decode rate also as a fraction of the bandwidth limit for
its weight bytes and as a ratio to plain ``generate`` with the same weights in the same run. One table,
and JSON. Random weights cost the same time and memory as real ones; the text they produce is noise.

    python benchmarks/gpu.py --shapes 3b 7b --out benchmarks/results/gpu.json
    python benchmarks/gpu.py --shapes tiny --skip-tests     # proves the script on the CPU

Variants: ``plain`` = ``generate`` with a dynamic cache; ``static`` = a static KV cache with a compiled
forward (transformers compiles bf16 itself; bitsandbytes models are compiled here explicitly).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {  # the published config.json of each checkpoint; weights random
    "3b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                  rope_theta=1_000_000.0, tie_word_embeddings=True,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                    fullatt_block_indexes=[7, 15, 23, 31])),
    "7b": dict(
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                  rope_theta=1_000_000.0, tie_word_embeddings=False,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=3584,
                    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                    fullatt_block_indexes=[7, 15, 23, 31])),
}


def build(shape: str, root: Path) -> Path:
    import torch

    from tests.helpers import tiny_models

    out = root / f"qwen2_5_vl-{shape}"
    tiny_models.build_qwen2_5_vl(out)  # tokenizer, processor, chat template (and tiny weights)
    if shape == "tiny":
        return out
    from transformers import (
        AutoProcessor,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2_5_VLProcessor,
        Qwen2VLImageProcessor,
    )

    tiny = Qwen2_5_VLConfig.from_pretrained(out)
    ids = {k: getattr(tiny, k) for k in ("image_token_id", "video_token_id", "vision_start_token_id",
                                          "vision_end_token_id", "eos_token_id", "pad_token_id")}
    text = dict(SHAPES[shape]["text"], eos_token_id=ids["eos_token_id"], pad_token_id=ids["pad_token_id"],
                bos_token_id=ids["pad_token_id"])
    config = Qwen2_5_VLConfig(text_config=text, vision_config=SHAPES[shape]["vision"], **ids)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    model.save_pretrained(out)
    tiny_processor = AutoProcessor.from_pretrained(out)
    Qwen2_5_VLProcessor(  # the real image processor's pixel bounds, not the tiny one's
        image_processor=Qwen2VLImageProcessor(), tokenizer=tiny_processor.tokenizer,
        video_processor=tiny_processor.video_processor, chat_template=tiny_processor.chat_template,
    ).save_pretrained(out)
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def copy_bandwidth(gib: float = 4.0) -> float:
    """Device-to-device copy, bytes read plus written per second (the decode ceiling's denominator)."""
    import torch

    if not torch.cuda.is_available():
        return float("nan")
    src = torch.empty(int(gib * 2**30), dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync(True)
    t = time.perf_counter()
    for _ in range(10):
        dst.copy_(src)
    sync(True)
    seconds = (time.perf_counter() - t) / 10
    del src, dst
    torch.cuda.empty_cache()
    return 2 * gib * 2**30 / seconds


def language_weight_bytes(model) -> int:
    """Bytes of the language model's weights as stored (what each decoded token must read)."""
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.model
    total = sum(p.numel() * p.element_size() for p in lm.parameters())
    head = model.lm_head.weight
    return total + (0 if head.data_ptr() == lm.embed_tokens.weight.data_ptr() else head.numel() * head.element_size())


def measure(path: Path, quantization: str, variant: str, new_tokens: int, bandwidth: float) -> dict:
    import torch
    from PIL import Image

    from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
    from assistant.types import ChatTurn

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    model = TransformersVisionModel.from_pretrained(LoadPlan.resolve(str(path), quantization=quantization),
                                                    max_pixels=1024 * 28 * 28)
    load_s = time.perf_counter() - t
    weights = language_weight_bytes(model.model)
    image = Path(tempfile.mkdtemp()) / "photo.png"
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(image)
    turns = [ChatTurn("system", "Be helpful."), ChatTurn("user", "What is in this image?", (image,))]
    t = time.perf_counter()
    inputs = model._inputs(turns, model.max_pixels)
    sync(cuda)
    preprocess_s = time.perf_counter() - t
    extra = {}
    if variant == "static":
        extra = {"cache_implementation": "static"}
        if getattr(model.model, "hf_quantizer", None) is not None and cuda:
            model.model.forward = torch.compile(model.model.forward, mode="reduce-overhead", dynamic=False)

    def timed(fn) -> float:
        sync(cuda)
        start = time.perf_counter()
        with torch.inference_mode():
            fn()
        sync(cuda)
        return time.perf_counter() - start

    def generate(n: int):
        return model.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, **extra)

    warmup_s = timed(lambda: generate(new_tokens))  # compilation happens here, at load in the product
    vision_s = min(timed(lambda: model.model.model.get_image_features(
        pixel_values=inputs["pixel_values"], image_grid_thw=inputs["image_grid_thw"])) for _ in range(3))
    first_s = min(timed(lambda: generate(1)) for _ in range(3))
    full_s = min(timed(lambda: generate(new_tokens)) for _ in range(2))
    decode = (new_tokens - 1) / max(full_s - first_s, 1e-9)
    limit = bandwidth / weights if bandwidth == bandwidth else float("nan")
    row = {"variant": f"{variant}:{quantization}", "load_s": load_s, "warmup_s": warmup_s,
           "weights_gb": weights / 1e9, "prompt_tokens": int(inputs["input_ids"].shape[1]),
           "preprocess_ms": preprocess_s * 1e3, "vision_ms": vision_s * 1e3,
           "prefill_ms": max(first_s - vision_s, 0.0) * 1e3, "ttft_ms": (preprocess_s + first_s) * 1e3,
           "decode_tok_s": decode, "of_bandwidth_limit": decode / limit if limit == limit else float("nan"),
           "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")}
    del model
    return row


def run_gpu_tests() -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                          "-m", "gpu", "tests/gpu"], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=["3b", "7b", "tiny"], default=["3b", "7b"])
    parser.add_argument("--variants", nargs="+", default=["plain:none", "plain:4bit", "static:none", "static:4bit"])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args()
    import torch

    tests = "skipped" if args.skip_tests else run_gpu_tests()
    bandwidth = copy_bandwidth()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"device: {device}; GPU tests: {tests}; copy bandwidth {bandwidth / 1e12:.2f} TB/s", flush=True)
    rows = []
    cols = ["shape", "variant", "load_s", "warmup_s", "weights_gb", "prompt_tokens", "preprocess_ms", "vision_ms",
            "prefill_ms", "ttft_ms", "decode_tok_s", "of_bandwidth_limit", "x_plain", "peak_gb"]
    print(" | ".join(cols), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for shape in args.shapes:
        with tempfile.TemporaryDirectory() as tmp:
            path = build(shape, Path(tmp))
            plain: dict[str, float] = {}
            for variant in args.variants:
                kind, quantization = variant.split(":")
                try:
                    row = {"shape": shape, **measure(path, quantization, kind, args.new_tokens, bandwidth)}
                except Exception as exc:  # noqa: BLE001  one failed variant must not lose the others
                    row = {"shape": shape, "variant": variant, "error": repr(exc)[:300]}
                if kind == "plain" and "decode_tok_s" in row:
                    plain[quantization] = row["decode_tok_s"]
                if "decode_tok_s" in row and quantization in plain:
                    row["x_plain"] = row["decode_tok_s"] / plain[quantization]
                rows.append(row)
                print(" | ".join(_fmt(row.get(c, "")) for c in cols) if "error" not in row else row, flush=True)
                args.out.write_text(json.dumps({"device": device, "gpu_tests": tests, "copy_bandwidth_Bps": bandwidth,
                                                "torch": torch.__version__, "rows": rows}, indent=2))
    return 0


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
