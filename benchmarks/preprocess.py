"""Preprocessing, the CPU part of time to first token: opening an image, bounding it to
ASSISTANT_MODEL__MAX_PIXELS, and Qwen2.5-VL's processor (chat template, resize to the patch grid, patches).
Per input: the image decoded whole (as before) and, for JPEGs, decoded reduced by the decoder's DCT
scaling (``open_image(..., at_least_pixels=...)``, what the product does now). Median of --runs.

    python benchmarks/preprocess.py --out benchmarks/results/preprocess.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MAX_PIXELS = 1024 * 28 * 28  # the default ASSISTANT_MODEL__MAX_PIXELS


def photo(path: Path, size: tuple[int, int], noise: int) -> Path:
    """A photo-like picture: smooth gradients plus sensor-like noise (``noise`` = its amplitude)."""
    import numpy as np
    from PIL import Image

    width, height = size
    rng = np.random.default_rng(0)
    pixels = np.zeros((height, width, 3), np.float32)
    pixels[..., 0] = np.linspace(0, 255, width)[None, :]
    pixels[..., 1] = np.linspace(0, 255, height)[:, None]
    pixels[..., 2] = 128
    pixels += rng.normal(0, noise, pixels.shape)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8))
    image.save(path, quality=90) if path.suffix == ".jpg" else image.save(path)
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/preprocess.json"))
    args = parser.parse_args()
    from transformers import AutoProcessor, Qwen2VLImageProcessor

    from assistant.images import fit_pixels
    from retrieval.loaders import open_image
    from tests.helpers import tiny_models

    tmp = Path(tempfile.mkdtemp())
    processor = AutoProcessor.from_pretrained(tiny_models.build_qwen2_5_vl(tmp / "qwen"))
    processor.image_processor = Qwen2VLImageProcessor()  # the real checkpoint's pixel bounds
    inputs = {
        "1024x1024 PNG, noisy": photo(tmp / "square.png", (1024, 1024), 40),
        "1024x1024 JPEG": photo(tmp / "square.jpg", (1024, 1024), 8),
        "4032x3024 JPEG (12 MP phone photo)": photo(tmp / "phone.jpg", (4032, 3024), 8),
        "4032x3024 PNG (screenshot-sized)": photo(tmp / "phone.png", (4032, 3024), 8),
    }

    def timed(path: Path, reduced: bool) -> tuple[float, float, int]:
        loads, processing = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            image = fit_pixels(open_image(path, MAX_PIXELS if reduced else None), MAX_PIXELS)
            loaded = time.perf_counter()
            messages = [{"role": "user", "content": [{"type": "image", "image": image},
                                                     {"type": "text", "text": "What is in this image?"}]}]
            out = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                return_dict=True, return_tensors="pt")
            processing.append(time.perf_counter() - loaded)
            loads.append(loaded - start)
        return statistics.median(loads) * 1e3, statistics.median(processing) * 1e3, int(out["input_ids"].shape[1])

    rows = []
    for name, path in inputs.items():
        for reduced in (False, True):
            if reduced and path.suffix != ".jpg":
                continue
            load_ms, process_ms, tokens = timed(path, reduced)
            rows.append({"input": name, "decode": "reduced (now)" if reduced else "whole",
                         "open_and_fit_ms": load_ms, "processor_ms": process_ms,
                         "total_ms": load_ms + process_ms, "prompt_tokens": tokens})
    cpu = platform.processor() or platform.machine()
    lines = [f"CPU: {cpu}, {args.runs} runs each, median; max_pixels {MAX_PIXELS}", "",
             "| input | decode | open + fit ms | processor ms | total ms | prompt tokens |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['input']} | {r['decode']} | {r['open_and_fit_ms']:.1f} | {r['processor_ms']:.1f} | "
              f"{r['total_ms']:.1f} | {r['prompt_tokens']} |" for r in rows]
    print("\n".join(lines))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpu": cpu, "runs": args.runs, "rows": rows}, indent=2))
    args.out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
