"""Exploration for the GPU serving work: how fast does Qwen2.5-VL (random weights of the real shape)
decode with plain ``generate`` against a static KV cache with a compiled forward, in bf16 and in
bitsandbytes NF4? Prints one row per variant as it finishes (so a time-out keeps what was measured) and
writes JSON. Not the product's path yet: a measurement to choose it.

    python benchmarks/gpu_decode_probe.py --shape 3b --out benchmarks/results/gpu_decode_probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gpu_smoke import build, sync  # noqa: E402


def measure(path: Path, quantization: str, compiled: bool, new_tokens: int) -> dict:
    import torch
    from PIL import Image

    from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel
    from assistant.types import ChatTurn

    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = TransformersVisionModel.from_pretrained(LoadPlan.resolve(str(path), quantization=quantization),
                                                    max_pixels=1024 * 28 * 28)
    weights_gb = torch.cuda.memory_allocated() / 1e9 if cuda else float("nan")
    image = Path(tempfile.mkdtemp()) / "photo.png"
    Image.effect_noise((1024, 1024), 64).convert("RGB").save(image)
    inputs = model._inputs([ChatTurn("user", "What is in this image?", (image,))], model.max_pixels)
    extra = {}
    if compiled:
        extra = {"cache_implementation": "static"}
        if getattr(model.model, "hf_quantizer", None) is not None:  # transformers will not compile bnb itself
            model.model.forward = torch.compile(model.model.forward, mode="reduce-overhead", dynamic=False)

    def generate(n: int) -> float:
        sync(cuda)
        t = time.perf_counter()
        with torch.inference_mode():
            model.model.generate(**inputs, max_new_tokens=n, min_new_tokens=n, do_sample=False, **extra)
        sync(cuda)
        return time.perf_counter() - t

    t = time.perf_counter()
    generate(new_tokens)  # warm-up: compilation and CUDA graphs happen here
    warmup_s = time.perf_counter() - t
    prefill_s = min(generate(1) for _ in range(3))
    full_s = min(generate(new_tokens) for _ in range(2))
    row = {"quantization": quantization, "compiled": compiled, "weights_gb": weights_gb,
           "prompt_tokens": int(inputs["input_ids"].shape[1]), "warmup_s": warmup_s,
           "ttft_ms": prefill_s * 1e3, "decode_tok_s": (new_tokens - 1) / max(full_s - prefill_s, 1e-9),
           "peak_gb": torch.cuda.max_memory_allocated() / 1e9 if cuda else float("nan")}
    del model
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=["3b", "tiny"], default="3b")
    parser.add_argument("--variants", nargs="+", default=["none:plain", "none:compiled", "4bit:plain",
                                                           "4bit:compiled"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu_decode_probe.json"))
    args = parser.parse_args()
    import torch

    rows = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        path = build(args.shape, Path(tmp))
        print("quantization compiled weights_gb prompt_tokens warmup_s ttft_ms decode_tok_s peak_gb", flush=True)
        for variant in args.variants:
            quantization, mode = variant.split(":")
            try:
                row = measure(path, quantization, mode == "compiled", args.new_tokens)
            except Exception as exc:  # noqa: BLE001  an exploration: record the failure and go on
                row = {"quantization": quantization, "compiled": mode == "compiled", "error": repr(exc)[:300]}
            rows.append(row)
            print(" ".join(f"{v:.3g}" if isinstance(v, float) else str(v) for v in row.values()), flush=True)
            args.out.write_text(json.dumps({"device": torch.cuda.get_device_name() if torch.cuda.is_available()
                                            else "cpu", "shape": args.shape, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
