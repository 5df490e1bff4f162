"""N concurrent chat sessions against the real app (tiny random Qwen2.5-VL on the CPU, one generation at
a time per model: the rest wait in Gradio's queue, which shows each browser its position). Reports
throughput and time to first token (p50/p95) per N.

    python benchmarks/concurrency.py [--clients 1 2 4 8] [--out benchmarks/results/concurrency.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")


def one_session(url: str, image: Path, tokens: int, out: list, barrier: threading.Barrier) -> None:
    from gradio_client import Client

    from tests.helpers.server import chat_args

    client = Client(url, verbose=False)
    barrier.wait()
    started = time.perf_counter()
    job = client.submit(*chat_args("Describe this.", [image], max_new_tokens=tokens, use_knowledge=False),
                        api_name="/chat")
    first = None
    for answer, _, _ in job:
        if first is None and answer not in ("…", "") and not answer.startswith("⏳"):
            first = time.perf_counter() - started
    job.result()
    out.append((first if first is not None else time.perf_counter() - started, time.perf_counter() - started))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/concurrency.json"))
    args = parser.parse_args()
    from PIL import Image

    from assistant.composition import build_pipeline
    from tests.helpers.server import app_settings, serve
    from tests.helpers.tiny_models import build_all

    tmp = Path(tempfile.mkdtemp())
    models = build_all(tmp / "models")
    settings = app_settings(tmp, model={"checkpoint": str(models["qwen2_5_vl"])},
                            retrieval={"embedder": str(models["clip"])})
    pipeline = build_pipeline(settings)
    pipeline.model.loader.get()
    image = tmp / "photo.png"
    Image.effect_noise((640, 480), 64).convert("RGB").save(image)
    rows = []
    with serve(pipeline, settings) as url:
        for n in args.clients:
            results: list = []
            barrier = threading.Barrier(n)
            threads = [threading.Thread(target=one_session, args=(url, image, args.tokens, results, barrier))
                       for _ in range(n)]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            ttft = sorted(r[0] for r in results)
            rows.append({"clients": n, "requests_per_s": n / wall, "ttft_p50_s": statistics.median(ttft),
                         "ttft_p95_s": ttft[min(len(ttft) - 1, int(round(0.95 * (len(ttft) - 1))))],
                         "total_s": wall})
    print(f"{'clients':>7} {'req/s':>6} {'TTFT p50':>9} {'TTFT p95':>9} {'wall':>6}")
    for r in rows:
        print(f"{r['clients']:>7} {r['requests_per_s']:>6.2f} {r['ttft_p50_s']:>8.2f}s {r['ttft_p95_s']:>8.2f}s "
              f"{r['total_s']:>5.1f}s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
