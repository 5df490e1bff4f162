"""Relevance thresholds per space from a labelled set (``python -m assistant calibrate``)."""

from assistant.evaluation import Abstention, calibrate, calibration_table, proposed_settings
from retrieval.types import Relevance

# Cosines per space of each question's closest hits. Text finds the first three answerable questions,
# the cross-modal space the other two (questions about pictures); the unanswerable ones score higher in
# the text space (0.40-0.45) than the picture questions do (0.30), so one threshold cannot part them.
EVIDENCE = [
    [{"text": 0.62, "cross": 0.05}, True], [{"text": 0.55, "cross": 0.08}, True], [{"text": 0.71}, True],
    [{"text": 0.30, "cross": 0.24}, True], [{"text": 0.28, "cross": 0.31}, True],
    [{"text": 0.41, "cross": 0.12}, False], [{"text": 0.45, "cross": 0.10}, False], [{"text": 0.40}, False],
    [{}, False],  # nothing found at all
]


def test_a_threshold_per_space_parts_what_one_threshold_cannot():
    proposal = calibrate({"evidence": EVIDENCE})
    assert proposal["spaces"] == ["cross", "text"] and proposal["questions"] == 9 and proposal["answerable"] == 5
    best = proposal["best_f1"]
    assert best["f1"] == 1.0 and best["roc_auc"] == 1.0
    assert 0.12 < best["thresholds"]["cross"] <= 0.24 and 0.45 < best["thresholds"]["text"] <= 0.55
    assert proposal["one_threshold"]["f1"] < 1.0  # the larger of two cosines, as before
    assert proposed_settings(best) == (f"ASSISTANT_RETRIEVAL__MIN_CROSS_SCORE={best['thresholds']['cross']:.3f} "
                                       f"ASSISTANT_RETRIEVAL__MIN_TEXT_SCORE={best['thresholds']['text']:.3f}")
    table = calibration_table(proposal)
    assert "one threshold for both" in table and proposed_settings(best) in table


def test_the_rule_passes_a_question_on_either_space():
    abstention = Abstention([({s: v for s, v in best.items()}, truth) for best, truth in EVIDENCE])
    row = abstention.row(Relevance(0.0, {"text": 0.5, "cross": 0.2}))
    assert (row["precision"], row["recall"]) == (1.0, 1.0) and row["threshold"] is None
    row = abstention.row(Relevance(0.35))  # one threshold: the unanswerable text hits pass too
    assert row["threshold"] == 0.35 and row["precision"] < 1.0


def test_one_space_proposes_min_score():
    proposal = calibrate({"evidence": [[{"text": v}, v > 0.5] for v in (0.2, 0.4, 0.6, 0.8)]})
    assert proposal["spaces"] == ["text"] and "one_threshold" not in proposal
    assert proposed_settings(proposal["best_f1"]) == "ASSISTANT_RETRIEVAL__MIN_SCORE=0.600"
