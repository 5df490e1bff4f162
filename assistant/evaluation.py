"""Retrieval quality on a labelled set: hit@1, hit@5 and MRR@10 per direction (text→text, text→image,
image→image, image→text). The set's documents are ingested into a fresh knowledge base with the
configured embedders, so the figures describe exactly what the settings would serve.

An eval file is JSON: ``{"documents": [paths...], "queries": [{"direction", "language", "text",
"image", "relevant": [file names]}]}``, paths relative to the file.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import InputError, KnowledgeError
from assistant.settings import Settings

DEPTH = 10


@dataclass
class Score:
    queries: int = 0
    hit1: int = 0
    hit5: int = 0
    reciprocal: float = 0.0

    def add(self, rank: int | None) -> None:
        self.queries += 1
        if rank is not None:
            self.hit1 += rank == 1
            self.hit5 += rank <= 5
            self.reciprocal += 1.0 / rank

    def row(self) -> dict:
        n = max(self.queries, 1)
        return {"queries": self.queries, "hit@1": self.hit1 / n, "hit@5": self.hit5 / n, "mrr@10": self.reciprocal / n}


def load(path: Path) -> dict:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        spec["documents"] = [path.parent / d for d in spec["documents"]]
        for q in spec["queries"]:
            q["image"] = path.parent / q["image"] if q.get("image") else None
            q.setdefault("text", "")
        return spec
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable eval file ({exc})") from exc


def evaluate(path: Path, settings: Settings) -> dict[str, dict]:
    """Scores per direction and per direction+language, plus the ingest reports' failures."""
    from assistant.composition import open_knowledge_base
    from retrieval import RetrievalError
    from retrieval.loaders import open_image

    spec = load(path)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kb = open_knowledge_base(settings.model_copy(update={"data_dir": Path(tmp)}))
        except RetrievalError as exc:
            raise KnowledgeError(str(exc)) from exc
        try:
            failed = [r.error for r in kb.ingest_paths(spec["documents"]) if not r.ok]
            scores: dict[str, Score] = defaultdict(Score)
            for q in spec["queries"]:
                images = [open_image(q["image"])] if q["image"] else []
                hits = kb.search(q["text"], images, k=DEPTH)
                names = [Path(h.chunk.source).name for h in hits]
                rank = next((i + 1 for i, name in enumerate(names) if name in q["relevant"]), None)
                scores[q["direction"]].add(rank)
                scores[f"{q['direction']} ({q.get('language', '-')})"].add(rank)
        finally:
            kb.close()
    return {"scores": {k: v.row() for k, v in sorted(scores.items())}, "ingest_failures": failed}


def table(result: dict) -> str:
    lines = [f"{'direction':<24} {'queries':>7} {'hit@1':>6} {'hit@5':>6} {'mrr@10':>7}"]
    for name, row in result["scores"].items():
        lines.append(f"{name:<24} {row['queries']:>7} {row['hit@1']:>6.2f} {row['hit@5']:>6.2f} {row['mrr@10']:>7.3f}")
    lines += [f"ingest failure: {e}" for e in result["ingest_failures"]]
    return "\n".join(lines)
