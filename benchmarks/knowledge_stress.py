"""The knowledge base under concurrent use for a bounded time: chats about an image (OCR in a parse worker),
ingest (scanned PDFs OCR'd in a worker too), replace, delete and search, each on its own thread, as Gradio
runs them. Prints what ran and what went wrong (nothing should), and writes JSON.

    python benchmarks/knowledge_stress.py [--seconds 120] [--chat-threads 2] [--writers 2] [--out benchmarks/results/knowledge_stress.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")

from tests.helpers.stress import run_stress  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--chat-threads", type=int, default=2)
    parser.add_argument("--writers", type=int, default=2, help="ingesting threads, and as many deleting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/knowledge_stress.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_stress(Path(tmp), args.seconds, chat_threads=args.chat_threads, writers=args.writers, seed=args.seed)
    rows = [("threads", stats.threads), ("seconds", round(stats.seconds)), ("chats with an image", stats.chats),
            ("documents ingested", stats.ingests), ("  scanned PDFs (OCR at ingest)", stats.scanned_pdfs),
            ("  replacing an older version", stats.replaced), ("deletes", stats.deletes),
            ("search rounds (3 queries each)", stats.searches), ("errors", len(stats.errors)),
            ("inconsistencies afterwards", len(stats.inconsistencies))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for problem in (stats.errors + stats.inconsistencies)[:10]:
        print("problem:", problem.strip().splitlines()[-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(asdict(stats), indent=2))
    return 0 if not (stats.errors or stats.inconsistencies) else 1


if __name__ == "__main__":
    raise SystemExit(main())
