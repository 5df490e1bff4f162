"""Crash safety of the knowledge base: SIGKILL an ingesting process at random moments, reopen (which
recovers), and count unusable stores, lost acknowledged documents and duplicates after re-ingest.

    python benchmarks/crash_safety.py --kills 200 [--out benchmarks/results/crash_safety.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.crash import run_kills  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--per-store", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/crash_safety.json"))
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        stats = run_kills(Path(tmp), args.kills, per_store=args.per_store, seed=args.seed)
    seconds = time.perf_counter() - started
    rows = [("SIGKILLs during ingest", stats.kills), ("stores unusable after recovery", stats.unusable),
            ("acknowledged documents lost", stats.lost), ("duplicate chunks after re-ingest", stats.duplicates),
            ("reopens that rebuilt the index", stats.rebuilds),
            ("reopens that fixed stray or missing vectors", stats.reconciled), ("seconds", round(seconds))]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for problem in stats.problems[:20]:
        print("problem:", problem)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**asdict(stats), "seconds": seconds}, indent=2))
    return 0 if (stats.unusable, stats.lost, stats.duplicates) == (0, 0, 0) else 1


if __name__ == "__main__":
    raise SystemExit(main())
