"""GPU smoke benchmark of the default path: Qwen2.5-VL with random weights of the real shape, loaded
through the product's own loader (auto plan: 4-bit NF4, bf16 compute) and, for reference, in bf16.

Prints one table and writes JSON. Random weights cost the same time and memory as real ones; the
answers are noise. Run on a GPU machine:

    python benchmarks/gpu_smoke.py --shape 3b --out benchmarks/results/gpu_smoke.json
    python benchmarks/gpu_smoke.py --shape tiny      # proves the script on the CPU
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

SHAPES = {
    # Qwen2.5-VL-3B-Instruct's published config.json, weights random.
    "3b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                  rope_theta=1_000_000.0, tie_word_embeddings=True,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision=dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, out_hidden_size=2048,
                    patch_size=14, spatial_merge_size=2, temporal_patch_size=2, window_size=112,
                    fullatt_block_indexes=[7, 15, 23, 31]),
    ),
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
    torch.cuda.empty_cache()
    return out


def measure(path: Path, quantization: str, max_pixels: int, new_tokens: int) -> dict:
    import torch
    from PIL import Image

    from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
    from assistant.types import ChatTurn, GenerationParams

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    plan = LoadPlan.resolve(str(path), quantization=quantization)
    model = TransformersVisionModel.from_pretrained(plan, max_pixels=max_pixels)
    load_s = time.perf_counter() - started
    weights_gb = torch.cuda.memory_allocated() / 1e9 if cuda else float("nan")

    image = Path(tempfile.mkdtemp()) / "photo.png"
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(image)
    turns = [ChatTurn("system", "Be helpful."), ChatTurn("user", "What is in this image?", (image,))]

    t0 = time.perf_counter()
    inputs = model._inputs(turns, model.max_pixels)
    sync(cuda)
    prep_s = time.perf_counter() - t0

    def generate(n: int) -> float:
        sync(cuda)
        t = time.perf_counter()
        with torch.inference_mode():
            model.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        sync(cuda)
        return time.perf_counter() - t

    generate(4)  # first-call overheads (kernels, allocator) out of the figures
    prefill_s = min(generate(1) for _ in range(3))
    full_s = generate(new_tokens)
    decode_tps = (new_tokens - 1) / max(full_s - prefill_s, 1e-9)

    t = time.perf_counter()
    pieces = list(model.stream(turns, GenerationParams(max_new_tokens=32, temperature=0)))
    stream_s = time.perf_counter() - t
    row = dict(plan=f"{plan.quantization}/{plan.dtype}/{plan.device}", load_s=load_s, weights_gb=weights_gb,
               prompt_tokens=int(inputs["input_ids"].shape[1]), preprocess_ms=prep_s * 1e3,
               ttft_ms=(prep_s + prefill_s) * 1e3, decode_tok_s=decode_tps,
               peak_gb=torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan"),
               stream_pieces=len(pieces), stream_32_s=stream_s)
    del model
    return row


def sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["3b", "tiny"], default="3b")
    parser.add_argument("--quantization", nargs="+", default=["auto", "none"])
    parser.add_argument("--max-pixels", type=int, default=1024 * 28 * 28)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_smoke.json"))
    args = parser.parse_args()

    import torch

    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        path = build(args.shape, Path(tmp))
        build_s = time.perf_counter() - t
        rows = [measure(path, q, args.max_pixels, args.new_tokens) for q in args.quantization]
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"device: {device}; shape: {args.shape}; build+save {build_s:.1f} s; "
          f"image 1024x1024 bounded to {args.max_pixels} px; {args.new_tokens} new tokens")
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in r.values()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"device": device, "shape": args.shape, "torch": torch.__version__,
                                    "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
