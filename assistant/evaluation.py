"""Quality on a labelled set, in four tables:

- **retrieval**: hit@1, hit@5 and MRR@10 per direction (text→text, text→image, image→image, image→text);
- **abstention**: whether a question is answerable from the documents, predicted by the relevance rule (a
  hit's cosine in a space reaching that space's threshold, ``ASSISTANT_RETRIEVAL__MIN_SCORE`` or the
  per-space ``MIN_TEXT_SCORE``/``MIN_CROSS_SCORE``): precision, recall and F1 of "answerable", and the ROC-AUC
  of the closest hit's margin over its threshold (how well it ranks answerable above unanswerable);
- **near-duplicates**: the share of the top k (``ASSISTANT_RETRIEVAL__K``) that repeats a better-ranked hit
  (word 3-shingles overlapping by 80%, or pictures within cosine 0.98);
- **answers**, when a model answers (``--answers``, or a model given to ``evaluate``): accuracy of containing
  the expected answer, and citation precision and recall against the labelled sources;
- **consistency**, when the set has answer–image pairs and there is a cross-modal embedder: the
  multimodal-consistency score (``assistant/consistency.py``) of answers that match their image and of answers
  that do not: the ROC-AUC of the score (matching above mismatching), precision, recall and F1 of the flag
  ("may not match the image": the score below ``ASSISTANT_RETRIEVAL__CONSISTENCY_MIN``) at the configured
  threshold, and the threshold with the best F1 (the one to configure for that embedder).

The set's documents are ingested into a fresh knowledge base with the configured embedders, so the figures
describe exactly what the settings would serve.

An eval file is JSON: ``{"documents": [paths...], "queries": [{"direction", "language", "text", "image",
"relevant": [file names], "answer": "expected text" (optional)}]}``, paths relative to the file; a query
with no relevant file is unanswerable. Optional ``"consistency": [{"image", "answer", "matches": true|false}]``
(paths relative to the file) are answer–image pairs for the consistency table.
"""

from __future__ import annotations

import itertools
import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import InputError, KnowledgeError
from assistant.settings import Settings
from retrieval.types import SPACES, Relevance

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


@dataclass
class Answers:
    questions: int = 0
    correct: int = 0
    cited: int = 0  # citations made
    cited_relevant: int = 0  # of them, to a labelled source
    relevant: int = 0  # labelled files among the sources shown
    relevant_cited: int = 0  # of them, cited

    def row(self) -> dict:
        return {"questions": self.questions, "accuracy": _ratio(self.correct, self.questions),
                "citation precision": _ratio(self.cited_relevant, self.cited),
                "citation recall": _ratio(self.relevant_cited, self.relevant)}


@dataclass
class Abstention:
    """Per question, its best cosine in each space (what the relevance rule compares) and whether it is
    answerable; predicted answerable when some hit passes the rule (``Relevance``)."""

    questions: list[tuple[dict[str, float], bool]] = field(default_factory=list)

    def row(self, relevance: Relevance) -> dict:
        margins = [(_margin(best, relevance), truth) for best, truth in self.questions]
        predicted = [(m >= 0, truth) for m, truth in margins]
        tp = sum(p and t for p, t in predicted)
        precision, recall = _ratio(tp, sum(p for p, _ in predicted)), _ratio(tp, sum(t for _, t in predicted))
        f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
        spaces = sorted({s for best, _ in self.questions for s in best})
        thresholds = {s: relevance.threshold(s) for s in spaces}
        single = set(thresholds.values())
        return {"questions": len(self.questions), "answerable": sum(t for _, t in self.questions),
                "threshold": single.pop() if len(single) == 1 else None, "thresholds": thresholds,
                "precision": precision, "recall": recall, "f1": f1, "roc_auc": roc_auc(margins)}


def _margin(best: dict[str, float], relevance: Relevance) -> float:
    """How far the question's closest hit is over (or under) its space's threshold; -2 without hits."""
    return max((value - relevance.threshold(space) for space, value in best.items()), default=-2.0)


def roc_auc(scored: list[tuple[float, bool]]) -> float | None:
    """The chance that an answerable question scores above an unanswerable one (ties count half)."""
    positive = [s for s, truth in scored if truth]
    negative = [s for s, truth in scored if not truth]
    if not positive or not negative:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in positive for n in negative)
    return wins / (len(positive) * len(negative))


def _ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def load(path: Path) -> dict:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        spec["documents"] = [path.parent / d for d in spec["documents"]]
        for q in spec["queries"]:
            q["image"] = path.parent / q["image"] if q.get("image") else None
            q.setdefault("text", "")
            q.setdefault("relevant", [])
        for pair in spec.setdefault("consistency", []):
            pair["image"] = path.parent / pair["image"]
            pair["matches"] = None if pair.get("matches") is None else bool(pair["matches"])
        return spec
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a readable eval file ({exc})") from exc


def evaluate(path: Path, settings: Settings, model=None) -> dict:
    """The four tables (answers only with ``model``, a ``VisionChatModel``), plus the ingest failures."""
    from assistant.composition import open_knowledge_base, space_scores
    from assistant.knowledge import Knowledge
    from assistant.pipeline import AnswerPipeline, Completed, Retrieved
    from assistant.types import ChatRequest, GenerationParams
    from retrieval import RetrievalError
    from retrieval.distinct import TEXT_OVERLAP, overlap, shingles
    from retrieval.types import PICTURES
    from retrieval.loaders import open_image

    spec = load(path)
    r = settings.retrieval
    with tempfile.TemporaryDirectory() as tmp:
        try:
            kb = open_knowledge_base(settings.model_copy(update={"data_dir": Path(tmp)}))
        except RetrievalError as exc:
            raise KnowledgeError(str(exc)) from exc
        try:
            failed = [rep.error for rep in kb.ingest_paths(spec["documents"]) if not rep.ok]
            scores: dict[str, Score] = defaultdict(Score)
            abstention, answers = Abstention(), Answers()
            top_k = repeated = 0
            pipeline = AnswerPipeline(model, Knowledge.ready(kb), k=r.k, min_score=r.min_score,
                                      space_scores=space_scores(r),
                                      annotations_dir=Path(tmp) / "scratch") if model is not None else None
            for q in spec["queries"]:
                images = [open_image(q["image"])] if q["image"] else []
                hits = kb.search(q["text"], images, k=max(DEPTH, r.k))
                answerable = bool(q["relevant"])
                best: dict[str, float] = {}
                for hit in hits[: r.k]:  # what the pipeline would judge
                    for space in SPACES:
                        if space in hit.evidence:
                            best[space] = max(best.get(space, -1.0), hit.evidence[space])
                abstention.questions.append((best, answerable))
                if answerable:
                    names = [Path(h.chunk.source).name for h in hits[:DEPTH]]
                    rank = next((i + 1 for i, name in enumerate(names) if name in q["relevant"]), None)
                    scores[q["direction"]].add(rank)
                    scores[f"{q['direction']} ({q.get('language', '-')})"].add(rank)
                seen: list[frozenset] = []
                for hit in hits[: r.k]:
                    top_k += 1
                    if hit.chunk.kind in PICTURES:
                        continue
                    marks = shingles(hit.chunk.text)
                    repeated += any(overlap(marks, other) >= TEXT_OVERLAP for other in seen)
                    seen.append(marks)
                if pipeline is not None and answerable and q.get("answer"):
                    request = ChatRequest(q["text"], (q["image"],) if q["image"] else (),
                                          params=GenerationParams(256, 0.0), strict=False)
                    sources, done = (), None
                    for event in pipeline.answer(request):
                        if isinstance(event, Retrieved):
                            sources = event.sources
                        elif isinstance(event, Completed):
                            done = event
                    _score_answer(answers, q, sources, done)
            agreement = consistency_result(spec["consistency"], kb.embedder, r.consistency_min)
        finally:
            kb.close()
    result = {"scores": {k: v.row() for k, v in sorted(scores.items())},
              "abstention": abstention.row(Relevance(r.min_score, space_scores(r))),
              "evidence": [[{s: round(v, 4) for s, v in best.items()}, answerable]
                           for best, answerable in abstention.questions],
              "near_duplicates": {"top_k": r.k, "hits": top_k, "repeated": repeated,
                                  "rate": _ratio(repeated, top_k)},
              "ingest_failures": failed}
    if pipeline is not None:
        result["answers"] = answers.row()
    if agreement is not None:
        result["consistency"] = agreement
    return result


def consistency_result(pairs: list[dict], embedder, threshold: float) -> dict | None:
    """The consistency table of answer–image pairs; None without pairs, a reason without an embedder. The flag
    is the positive: a mismatching answer flagged is a true positive."""
    from assistant.consistency import measure

    if not pairs:
        return None
    if embedder is None:
        return {"pairs": len(pairs), "reason": "no cross-modal embedder (ASSISTANT_RETRIEVAL__EMBEDDER)"}
    measured = [(measure(embedder, p["answer"], [("image", 1, p["image"])]).score, p) for p in pairs]
    measured = [(s, p) for s, p in measured if s is not None]  # an empty answer, an unreadable image: no score
    scored = [(s, p["matches"]) for s, p in measured if p["matches"] is not None]
    values = sorted({s for s, _ in scored})
    candidates = [0.0, *((a + b) / 2 for a, b in zip(values, values[1:])), 1.0]
    rows = [_flag_row(scored, t) for t in candidates]
    best = max(rows, key=lambda row: (row["f1"], -row["threshold"]))
    quiet = [row for row in rows if row["matches_flagged"] <= 0.05]  # a warning on right answers is costly
    kinds: dict[str, list[float]] = defaultdict(list)
    for s, p in measured:
        kinds[p.get("kind") or ("match" if p["matches"] else "mismatch")].append(s)
    by_kind = {k: {"pairs": len(v), "mean": sum(v) / len(v), "flagged": _ratio(sum(s < threshold for s in v), len(v))}
               for k, v in kinds.items()}
    return {**_flag_row(scored, threshold), "roc_auc": roc_auc(scored), "best_f1": best, "by_kind": by_kind,
            "matches_95": max(quiet, key=lambda row: row["threshold"]) if quiet else None,
            "scored": [[round(s, 4), m] for s, m in scored]}


def _flag_row(scored: list[tuple[float, bool]], threshold: float) -> dict:
    flagged = [(s < threshold, not matches) for s, matches in scored]
    tp = sum(f and wrong for f, wrong in flagged)
    precision, recall = _ratio(tp, sum(f for f, _ in flagged)), _ratio(tp, sum(w for _, w in flagged))
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    matching = [s for s, m in scored if m]
    return {"pairs": len(scored), "mismatching": sum(not m for _, m in scored), "threshold": round(threshold, 4),
            "precision": precision, "recall": recall, "f1": f1,
            "matches_flagged": _ratio(sum(s < threshold for s in matching), len(matching))}


def _score_answer(answers: Answers, query: dict, sources, done) -> None:
    answers.questions += 1
    text = done.text if done is not None else ""
    answers.correct += query["answer"].casefold() in text.casefold()
    relevant = set(query["relevant"])
    by_number = {s.number: Path(s.hit.chunk.source).name for s in sources}
    cited = set(done.cited) if done is not None else set()
    answers.cited += len(cited)
    answers.cited_relevant += sum(by_number[n] in relevant for n in cited)
    shown = {name for name in by_number.values() if name in relevant}
    answers.relevant += len(shown)
    answers.relevant_cited += len({by_number[n] for n in cited} & shown)


def table(result: dict) -> str:
    lines = ["retrieval", f"{'direction':<24} {'queries':>7} {'hit@1':>6} {'hit@5':>6} {'mrr@10':>7}"]
    for name, row in result["scores"].items():
        lines.append(f"{name:<24} {row['queries']:>7} {row['hit@1']:>6.2f} {row['hit@5']:>6.2f} {row['mrr@10']:>7.3f}")
    a = result["abstention"]
    auc = "-" if a["roc_auc"] is None else f"{a['roc_auc']:.3f}"
    shown = ", ".join(f"{space} {value:.2f}" for space, value in a.get("thresholds", {}).items()) or (
        f"{a['threshold']:.2f}" if a.get("threshold") is not None else "-")
    lines += ["", "abstention (answerable when a hit's cosine reaches its space's threshold)",
              f"{'questions':>9} {'answerable':>10} {'thresholds':>20} {'precision':>9} {'recall':>6} {'f1':>5} "
              f"{'roc_auc':>7}",
              f"{a['questions']:>9} {a['answerable']:>10} {shown:>20} {a['precision']:>9.2f} "
              f"{a['recall']:>6.2f} {a['f1']:>5.2f} {auc:>7}"]
    d = result["near_duplicates"]
    lines += ["", f"near-duplicates in the top {d['top_k']}: {d['repeated']} of {d['hits']} hits ({d['rate']:.1%})"]
    if "answers" in result:
        s = result["answers"]
        lines += ["", "answers", f"{'questions':>9} {'accuracy':>8} {'citation precision':>18} {'citation recall':>15}",
                  f"{s['questions']:>9} {s['accuracy']:>8.2f} {s['citation precision']:>18.2f} {s['citation recall']:>15.2f}"]
    if "consistency" in result:
        lines += ["", *consistency_lines(result["consistency"])]
    lines += [f"ingest failure: {e}" for e in result["ingest_failures"]]
    return "\n".join(lines)


def consistency_lines(c: dict) -> list[str]:
    lines = ["consistency (flagged \"may not match the image\" when the score < the threshold; positive: a mismatch)"]
    if "reason" in c:
        return [*lines, f"{c['pairs']} answer–image pairs, not scored: {c['reason']}"]
    auc = "-" if c["roc_auc"] is None else f"{c['roc_auc']:.3f}"
    lines.append(f"{c['pairs']} answer–image pairs, {c['mismatching']} not matching their image; ROC-AUC of the "
                 f"score {auc}")
    lines.append(f"{'threshold':<34} {'':>6} {'precision':>9} {'recall':>6} {'f1':>5} {'right answers flagged':>21}")
    for name, row in (("configured", c), ("best F1", c["best_f1"]), ("flags <= 5% of right answers", c["matches_95"])):
        if row is not None:
            lines.append(f"{name:<34} {row['threshold']:>6.3f} {row['precision']:>9.2f} {row['recall']:>6.2f} "
                         f"{row['f1']:>5.2f} {row['matches_flagged']:>21.0%}")
    lines += [f"{'answers':<34} {'pairs':>6} {'mean score':>10} {'flagged':>8}"]
    lines += [f"{kind:<34} {k['pairs']:>6} {k['mean']:>10.2f} {k['flagged']:>8.0%}" for kind, k in c["by_kind"].items()]
    return lines


def calibrate(result: dict) -> dict:
    """Relevance thresholds from a labelled set: one per space the set's hits came from (the text embedder's,
    the cross-modal one), searched together over the cosines seen, since a question counts as answerable
    when either space passes. Three aims: the best F1 of "answerable" (for the relevance filter); keeping
    95% of the answerable questions, as precisely as possible (it drops sources least often); 95% precise,
    keeping as many as possible (for strict mode: it abstains on most unanswerable questions). With two
    spaces, the best F1 of one threshold for both is shown beside them."""
    questions = [({s: float(v) for s, v in best.items()}, bool(answerable)) for best, answerable in result["evidence"]]
    spaces = sorted({s for best, _ in questions for s in best})
    if not questions or not spaces:
        raise InputError("The set has no questions to calibrate on.")
    seen = [_candidates({best[s] for best, _ in questions if s in best}) for s in spaces]
    abstention = Abstention(questions)
    rows = [abstention.row(Relevance(1.0, dict(zip(spaces, combo)))) for combo in itertools.product(*seen)]
    total = lambda row: sum(row["thresholds"].values())  # noqa: E731
    best = max(rows, key=lambda row: (row["f1"], -total(row)))
    keeps = [row for row in rows if row["recall"] >= 0.95]
    precise = [row for row in rows if row["precision"] >= 0.95]
    proposal = {"questions": len(questions), "answerable": sum(t for _, t in questions), "spaces": spaces,
                "roc_auc": best["roc_auc"], "best_f1": best,
                "recall_95": max(keeps, key=lambda row: (row["precision"], total(row))) if keeps else None,
                "precision_95": max(precise, key=lambda row: (row["recall"], -total(row))) if precise else None}
    if len(spaces) > 1:
        values = sorted({v for best_, _ in questions for v in best_.values()})
        proposal["one_threshold"] = max((abstention.row(Relevance(t)) for t in values),
                                        key=lambda row: (row["f1"], -row["threshold"]))
    return proposal


def _candidates(values: set[float], most: int = 100) -> list[float]:
    """The cosines seen, or ``most`` of their quantiles for a large set (the search over two spaces is
    their product)."""
    ordered = sorted(values)
    if len(ordered) <= most:
        return ordered
    return sorted({ordered[round(i * (len(ordered) - 1) / (most - 1))] for i in range(most)})


def proposed_settings(row: dict) -> str:
    """The settings a calibration row stands for: MIN_SCORE for one space, a threshold per space for two."""
    thresholds = row["thresholds"]
    if len(thresholds) == 1:
        return f"ASSISTANT_RETRIEVAL__MIN_SCORE={next(iter(thresholds.values())):.3f}"
    return " ".join(f"ASSISTANT_RETRIEVAL__MIN_{space.upper()}_SCORE={value:.3f}" for space, value in thresholds.items())


def calibration_table(proposal: dict) -> str:
    auc = "-" if proposal["roc_auc"] is None else f"{proposal['roc_auc']:.3f}"
    spaces = proposal["spaces"]
    heads = " ".join(f"{space:>9}" for space in spaces)
    lines = [f"{proposal['questions']} questions, {proposal['answerable']} answerable; ROC-AUC of the relevance "
             f"score {auc}", f"{'aim (thresholds per space)':<34} {heads} {'precision':>9} {'recall':>6} {'f1':>5}"]
    aims = [("best_f1", "best F1 (the relevance filter)"), ("recall_95", "keeps 95% of the answerable"),
            ("precision_95", "95% precise (strict mode)")]
    if "one_threshold" in proposal:
        aims.append(("one_threshold", "best F1, one threshold for both"))
    for key, aim in aims:
        row = proposal[key]
        if row is None:
            lines.append(f"{aim:<34} {'-':>9}  (no threshold reaches it on this set)")
            continue
        values = " ".join(f"{row['thresholds'][space]:>9.3f}" for space in spaces)
        lines.append(f"{aim:<34} {values} {row['precision']:>9.2f} {row['recall']:>6.2f} {row['f1']:>5.2f}")
    lines.append(f"proposed: {proposed_settings(proposal['best_f1'])}")
    return "\n".join(lines)
