"""The GPU benchmark: Qwen2.5-VL with random weights of the real shapes (3B, 7B), run through the product's
own loader. Runs the GPU tests first, measures the card's copy bandwidth, then per variant: time to first
token split into preprocessing, vision tower and prefill (a 1024x1024 image and a question), decode
tokens/s over N tokens, peak GPU memory; each decode rate also as a fraction of the bandwidth limit for
its weight bytes and as a ratio to plain ``generate`` with the same weights in the same run. One table,
and JSON. Random weights cost the same time and memory as real ones; the text they produce is noise.

    python benchmarks/gpu.py --shapes 3b 7b --budget-s 420 --out benchmarks/results/gpu.json
    python benchmarks/gpu.py --shapes tiny --skip-tests     # proves the script on the CPU

Variants, ``decoder:quantization``: ``generate:none`` and ``generate:4bit`` are plain ``generate`` (dynamic
cache) in bf16 and bitsandbytes NF4; ``static:int4`` is the product's default on an Ampere-or-newer GPU
(int4 weights, the static decoder: compiled per-layer steps recorded as CUDA graphs at load), ``static:none``
the same decoder in bf16. Time to first token is the median of ``--runs`` answers, through the product's
own preprocessing; its split (preprocessing, vision tower, prefill) comes from separately timed runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# the published config.json of each checkpoint; weights random. Both share one vision tower's shape.
VISION = dict(depth=32, hidden_size=1280, intermediate_size=3420, num_heads=16, patch_size=14, spatial_merge_size=2,
              temporal_patch_size=2, window_size=112, fullatt_block_indexes=[7, 15, 23, 31])
SHAPES = {
    "3b": dict(
        text=dict(vocab_size=151936, hidden_size=2048, intermediate_size=11008, num_hidden_layers=36,
                  num_attention_heads=16, num_key_value_heads=2, max_position_embeddings=128000,
                  rope_theta=1_000_000.0, tie_word_embeddings=True,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision=dict(VISION, out_hidden_size=2048)),
    "7b": dict(
        text=dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                  num_attention_heads=28, num_key_value_heads=4, max_position_embeddings=128000,
                  rope_theta=1_000_000.0, tie_word_embeddings=False,
                  rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]}),
        vision=dict(VISION, out_hidden_size=3584)),
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


def decode_weight_bytes(model) -> int:
    """Bytes every decoded token must read: the language model's layers, final norm and LM head as stored
    (packed int4, NF4 or bf16), not the embedding table (one row per token) unless the head shares it."""
    lm = model.model.language_model if hasattr(model.model, "language_model") else model.model
    embed = lm.embed_tokens.weight
    tensors = {t.data_ptr(): t for t in [*lm.parameters(), *lm.buffers()] if t.data_ptr() != embed.data_ptr()}
    head = model.lm_head.weight
    tensors[head.data_ptr()] = head
    return sum(t.numel() * t.element_size() for t in tensors.values())


def model_bytes(model) -> int:
    tensors = {t.data_ptr(): t for t in [*model.parameters(), *model.buffers()]}
    return sum(t.numel() * t.element_size() for t in tensors.values())


def _median(values: list[float]) -> float:
    return statistics.median(values)


def profile_decode(decoder, inputs, path: Path, steps: int = 16) -> None:
    """Kernel-level profile of ``steps`` decode steps (CUDA graph replays), top kernels by GPU time."""
    from torch.profiler import ProfilerActivity, profile

    from assistant.models.static_decode import Sampling

    stream = decoder.tokens(inputs, Sampling(), steps + 4, set(), threading.Event(), min_new_tokens=steps + 4)
    next(stream)  # prompt and first token outside the profile
    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            next(stream)
    from torch.autograd import DeviceType

    kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
    launches = len(kernels) / steps
    gpu_us = sum(e.time_range.elapsed_us() for e in kernels) / steps
    by_name: dict[str, list[float]] = {}
    for e in kernels:
        by_name.setdefault(e.name[:100], []).append(e.time_range.elapsed_us())
    top = sorted(by_name.items(), key=lambda item: -sum(item[1]))[:30]
    text = (f"{steps} decode steps: {launches:.0f} kernels and {gpu_us:.0f} us of kernel time per step\n"
            "us/step | kernels/step | mean us | kernel\n"
            + "\n".join(f"{sum(t) / steps:8.1f} | {len(t) / steps:6.1f} | {sum(t) / len(t):6.2f} | {name}"
                        for name, t in top))
    path.write_text(text)
    print(text[:6000], flush=True)
    for _ in stream:
        pass


def measure(path: Path, variant: str, new_tokens: int, bandwidth: float, runs: int,
            profile_to: Path | None = None) -> dict:
    """``variant`` = decoder:quantization, e.g. ``generate:4bit`` (plain generate, bitsandbytes NF4) or
    ``static:int4`` (the product's default on this GPU, checked against ``LoadPlan.resolve``'s choice)."""
    import torch
    from PIL import Image

    from assistant.models.static_decode import Sampling
    from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
    from assistant.types import ChatTurn

    decoder, quantization = variant.split(":")
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    plan = LoadPlan.resolve(str(path), quantization=quantization, decoder=decoder)
    default = plan == LoadPlan.resolve(str(path))
    t = time.perf_counter()
    model = TransformersVisionModel.from_pretrained(plan, max_pixels=1024 * 28 * 28, warm_up=False)
    sync(cuda)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    if model.decoder is not None:
        model.warm_up()  # what from_pretrained does by default on CUDA
    sync(cuda)
    warmup_s = time.perf_counter() - t
    image = Path(tempfile.mkdtemp()) / "photo.png"
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(image)
    turns = [ChatTurn("system", "Be helpful."), ChatTurn("user", "What is in this image?", (image,))]

    def clock() -> float:
        sync(cuda)
        return time.perf_counter()

    splits, ttfts = [], []
    with torch.inference_mode():
        if model.decoder is not None:
            d = model.decoder

            def answer(n: int) -> tuple[float, float]:
                """(time to first token, decode tokens/s) through the decoder's own token stream."""
                start = clock()
                stream = d.tokens(model._inputs(turns, model.max_pixels), Sampling(), n, set(), threading.Event(),
                                  min_new_tokens=n)
                next(stream)
                first = time.perf_counter()
                count = 1 + sum(1 for _ in stream)
                end = time.perf_counter()
                return first - start, (count - 1) / max(end - first, 1e-9)

            for _ in range(runs):
                t0 = clock()
                inputs = model._inputs(turns, model.max_pixels)
                t1 = clock()
                embeds, positions = d.embed(inputs)
                t2 = clock()
                d.prefill(embeds, positions, inputs["input_ids"])
                d._choose(Sampling(), set())
                t3 = clock()
                splits.append((t1 - t0, t2 - t1, t3 - t2))
                ttfts.append(answer(1)[0])
            decode = answer(new_tokens)[1]
            cache_bytes = d.cache_bytes
            if profile_to is not None and cuda:
                try:
                    profile_decode(d, model._inputs(turns, model.max_pixels), profile_to)
                except Exception as exc:  # noqa: BLE001  the profile is extra; keep the row
                    print("profile failed:", repr(exc)[:300], flush=True)
        else:
            def generate(inputs, n: int):
                return model.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False)

            inputs = model._inputs(turns, model.max_pixels)
            t = clock()
            generate(inputs, 8)  # first-call costs
            warmup_s += clock() - t
            for _ in range(runs):
                t0 = clock()
                inputs = model._inputs(turns, model.max_pixels)
                t1 = clock()
                model.model.model.get_image_features(pixel_values=inputs["pixel_values"],
                                                     image_grid_thw=inputs["image_grid_thw"])
                t2 = clock()
                generate(inputs, 1)
                t3 = clock()
                splits.append((t1 - t0, t2 - t1, max(t3 - t2 - (t2 - t1), 0.0)))  # generate runs vision again
                ttfts.append(t1 - t0 + t3 - t2)
            t = clock()
            generate(inputs, new_tokens)
            full = clock() - t
            first = _median([x - s[0] for x, s in zip(ttfts, splits)])
            decode = (new_tokens - 1) / max(full - first, 1e-9)
            cache_bytes = 0  # a dynamic cache: included in the peak only
        prompt_tokens = int(inputs["input_ids"].shape[1])
    weights = decode_weight_bytes(model.model)
    limit = bandwidth / weights if bandwidth == bandwidth else float("nan")
    peak = torch.cuda.max_memory_allocated() if cuda else float("nan")
    stored = model_bytes(model.model)
    row = {"variant": variant + (" (default)" if default else ""), "mode": getattr(model.decoder, "mode", "generate"),
           "load_s": load_s, "warmup_s": warmup_s, "weights_gb": stored / 1e9, "decode_read_gb": weights / 1e9,
           "kv_gb": cache_bytes / 1e9, "prompt_tokens": prompt_tokens,
           "preprocess_ms": _median([s[0] for s in splits]) * 1e3, "vision_ms": _median([s[1] for s in splits]) * 1e3,
           "prefill_ms": _median([s[2] for s in splits]) * 1e3, "ttft_ms": _median(ttfts) * 1e3,
           "ttft_runs_ms": [round(x * 1e3, 1) for x in ttfts],
           "decode_tok_s": decode, "limit_tok_s": limit,
           "of_bandwidth_limit": decode / limit if limit == limit else float("nan"),
           "peak_gb": peak / 1e9, "peak_over_weights_kv": peak / (stored + cache_bytes) if cuda else float("nan")}
    del model
    gc.collect()
    return row


def run_gpu_tests() -> str:
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                          "-m", "gpu", "tests/gpu"], capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else out.stderr[-300:]


COLUMNS = ["shape", "variant", "mode", "load_s", "warmup_s", "weights_gb", "kv_gb", "prompt_tokens", "preprocess_ms",
           "vision_ms", "prefill_ms", "ttft_ms", "decode_tok_s", "limit_tok_s", "of_bandwidth_limit", "x_plain_4bit",
           "x_plain_bf16", "peak_gb", "peak_over_weights_kv"]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['shape']} | {row['variant']} | error: {row['error']} |")
        else:
            lines.append("| " + " | ".join(_fmt(row.get(c, "")) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=["3b", "7b", "tiny"], default=["3b", "7b"])
    parser.add_argument("--variants", nargs="+",
                        default=["static:int4", "generate:4bit", "generate:none", "static:none"])
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5, help="time-to-first-token runs (median reported)")
    parser.add_argument("--budget-s", type=float, default=float("inf"),
                        help="start no new variant after this many seconds (partial results are kept)")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--profile", action="store_true", help="kernel profile of the default's decode steps")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    args = parser.parse_args()
    import torch

    began = time.monotonic()
    tests = "run separately (gpu_check.sh runs them first)" if args.skip_tests else run_gpu_tests()
    bandwidth = copy_bandwidth()
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or "cpu"
    print(f"device: {device}; torch {torch.__version__}; GPU tests: {tests}; copy bandwidth "
          f"{bandwidth / 1e12:.2f} TB/s", flush=True)
    rows: list[dict] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for shape in args.shapes:
        with tempfile.TemporaryDirectory() as tmp:
            path = None
            for variant in args.variants:
                if time.monotonic() - began > args.budget_s:
                    rows.append({"shape": shape, "variant": variant, "error": "not run: time budget spent"})
                    continue
                try:
                    path = path or build(shape, Path(tmp))
                    profile_to = (args.out.parent / f"profile_{shape}.txt"
                                  if args.profile and variant == args.variants[0] else None)
                    row = {"shape": shape, **measure(path, variant, args.new_tokens, bandwidth, args.runs, profile_to)}
                except Exception as exc:  # noqa: BLE001  one failed variant must not lose the others
                    row = {"shape": shape, "variant": variant, "error": repr(exc)[:300]}
                rows.append(row)
                _ratios(rows)
                print({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
                args.out.write_text(json.dumps({"device": device, "gpu_tests": tests, "copy_bandwidth_Bps": bandwidth,
                                                "torch": torch.__version__, "rows": rows}, indent=2))
    print(table(rows))
    args.out.with_suffix(".md").write_text(
        f"device: {device}; torch {torch.__version__}; GPU tests: {tests}; copy bandwidth "
        f"{bandwidth / 1e12:.2f} TB/s\n\n{table(rows)}\n")
    return 0


def _ratios(rows: list[dict]) -> None:
    """Each decode rate as a multiple of plain ``generate`` on the same shape in the same run."""
    for row in rows:
        for key, base in (("x_plain_4bit", "generate:4bit"), ("x_plain_bf16", "generate:none")):
            plain = [r for r in rows if r["shape"] == row["shape"] and r["variant"].split(" ")[0] == base
                     and "decode_tok_s" in r]
            if plain and "decode_tok_s" in row:
                row[key] = row["decode_tok_s"] / plain[0]["decode_tok_s"]


def _fmt(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else "" if isinstance(value, (list, dict)) else str(value)


if __name__ == "__main__":
    raise SystemExit(main())
