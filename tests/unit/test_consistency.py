"""The multimodal-consistency score: an answer's agreement with its images, relative to a bank of unrelated
captions, in a real shared space (the toy ``SharedSpaceEmbedder`` at the edge), and the pipeline that
computes it once an answer is complete, with the real knowledge base."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.consistency import BANK, Consistency, answer_text, image_score, measure
from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline, Completed, Token
from assistant.types import ChatRequest
from benchmarks.consistency_data import _shape
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import ScriptedModel, SharedSpaceEmbedder


@pytest.fixture
def red_circle(tmp_path):
    path = tmp_path / "red-circle.png"
    _shape(path, "circle", "red", "white")
    return path


@pytest.fixture
def blue_square(tmp_path):
    path = tmp_path / "blue-square.png"
    _shape(path, "square", "blue", "white")
    return path


def test_a_matching_answer_scores_above_a_mismatching_one(red_circle):
    embedder = SharedSpaceEmbedder()
    image = [("image", 1, red_circle)]
    right = measure(embedder, "The picture shows a red circle on a white background.", image)
    chinese = measure(embedder, "图中是一个红色的圆形。", image)
    other = measure(embedder, "A blue square.", image)
    unrelated = measure(embedder, "The invoice total is 42 euros.", image)
    assert right.score == chinese.score == 1.0  # better than every unrelated caption
    assert other.score < 0.9 and unrelated.score < 0.9  # below the default threshold: flagged
    assert [(i.kind, i.number, i.score) for i in right.images] == [("image", 1, 1.0)]


def test_the_answer_scores_its_worst_image_and_keeps_each(red_circle, blue_square):
    result = measure(SharedSpaceEmbedder(), "A red circle [1].", [("image", 1, red_circle),
                                                                  ("source", 1, blue_square)])
    by_image = {(i.kind, i.number): i.score for i in result.images}
    assert by_image[("image", 1)] == 1.0 and by_image[("source", 1)] < 0.75
    assert result.score == by_image[("source", 1)]
    assert result.to_dict()["flagged"] is False  # threshold 0: never flagged
    flagged = Consistency(result.score, result.images, threshold=0.9)
    assert flagged.flagged and flagged.to_dict()["flagged"] is True
    assert flagged.to_dict()["images"] == [{"kind": "image", "number": 1, "score": 1.0},
                                           {"kind": "source", "number": 1, "score": round(result.score, 4)}]


def test_citations_and_box_markup_are_stripped_before_embedding(red_circle):
    marked = ('It is a red circle [1][2]. ```json\n[{"bbox_2d": [60, 30, 180, 150], "label": "red circle"}]\n```'
              ' <ref>circle</ref><box>[[60, 30, 180, 150]]</box>')
    assert answer_text(marked) == "It is a red circle . red circle circle"
    assert answer_text("See [3] and [see above].") == "See and [see above]."

    class Recording(SharedSpaceEmbedder):
        texts: list[str] = []

        def embed_texts(self, texts):
            self.texts.extend(texts)
            return super().embed_texts(texts)

    embedder = Recording()
    measure(embedder, marked, [("image", 1, red_circle)])
    assert "It is a red circle . red circle circle" in embedder.texts
    assert not any("[" in t or "bbox" in t or "<" in t for t in embedder.texts)


def test_no_score_without_embedder_images_or_words(red_circle, tmp_path):
    embedder = SharedSpaceEmbedder()
    assert measure(None, "A red circle.", [("image", 1, red_circle)]) == Consistency(
        None, reason="no cross-modal embedder")
    assert measure(embedder, "A red circle.", []).reason == "no images"
    assert measure(embedder, "A red circle.", [("image", 1, tmp_path / "deleted.png")]).reason == "no images"
    assert measure(embedder, " [1] [2] ", [("image", 1, red_circle)]) == Consistency(None, reason="empty answer")


def test_an_image_score_is_the_share_of_bank_captions_beaten_ties_half():
    bank = np.eye(4, dtype=np.float32)  # four captions whose cosines to the image are 0.4, 0.3, 0.2, 0.1
    image = np.array([0.4, 0.3, 0.2, 0.1], dtype=np.float32)
    assert image_score(np.array([0, 0, 0, 2.5]), image, bank) == 0.5  # cosine 0.25: beats two of four
    assert image_score(np.array([0, 1, 0, 0]), image, bank) == 0.625  # ties the 0.3 caption: half of it
    assert image_score(np.array([1, 1, 0, 0]), image, bank) == 1.0
    assert len(BANK) == 24 and any("\u4e00" <= ch <= "\u9fff" for ch in BANK[-1])


def test_the_bank_is_embedded_once_per_embedder(red_circle):
    class Counting(SharedSpaceEmbedder):
        calls = 0

        def embed_texts(self, texts):
            Counting.calls += len(texts)
            return super().embed_texts(texts)

    embedder = Counting()
    for _ in range(3):
        measure(embedder, "A red circle.", [("image", 1, red_circle)])
    assert Counting.calls == len(BANK) + 3


# -- the pipeline -------------------------------------------------------------------------------------


@pytest.fixture
def knowledge(tmp_path, blue_square):
    kb = KnowledgeBase.open(tmp_path / "data", SharedSpaceEmbedder(), ocr=False)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "blue-square.png").write_bytes(blue_square.read_bytes())
    (docs / "notes.txt").write_text("The invoice total is 42 euros.")
    kb.ingest_paths([docs])
    yield Knowledge.ready(kb)
    kb.close()


def completed(pipeline, request) -> Completed:
    return next(e for e in pipeline.answer(request) if isinstance(e, Completed))


def test_completed_carries_the_score_of_the_users_image(knowledge, red_circle):
    pipeline = AnswerPipeline(ScriptedModel("A red circle."), knowledge, k=2, consistency_min=0.9)
    done = completed(pipeline, ChatRequest("What is this?", (red_circle,), use_knowledge=False))
    assert done.consistency.score == 1.0 and not done.consistency.flagged
    assert [(i.kind, i.number) for i in done.consistency.images] == [("image", 1)]


def test_a_low_score_is_flagged_and_cited_pictures_count(knowledge, red_circle):
    pipeline = AnswerPipeline(ScriptedModel("The invoice total is 42 euros."), knowledge, consistency_min=0.9)
    done = completed(pipeline, ChatRequest("What is this?", (red_circle,), use_knowledge=False))
    assert done.consistency.score < 0.9 and done.consistency.flagged
    assert done.consistency.to_dict()["flagged"] is True

    cites = AnswerPipeline(ScriptedModel("A blue square [1]."), knowledge, k=1, consistency_min=0.9)
    done = completed(cites, ChatRequest("the blue square picture"))
    assert done.cited == (1,)
    assert [(i.kind, i.number, i.score) for i in done.consistency.images] == [("source", 1, 1.0)]


def test_no_score_for_an_abstention_or_without_a_knowledge_base(knowledge, red_circle):
    strict = AnswerPipeline(ScriptedModel(), knowledge, min_score=1.01, strict=True)
    assert completed(strict, ChatRequest("A red circle?", (red_circle,))).consistency.reason == "abstained"
    alone = AnswerPipeline(ScriptedModel("A red circle."), None)
    assert completed(alone, ChatRequest("What?", (red_circle,))).consistency.reason == "no cross-modal embedder"


def test_a_failing_embedder_gives_no_score_and_the_answer_stands(tmp_path, red_circle):
    class Failing(SharedSpaceEmbedder):
        def embed_images(self, images):
            raise RuntimeError("CUDA out of memory")

    kb = KnowledgeBase.open(tmp_path / "failing", Failing(), ocr=False)
    try:
        pipeline = AnswerPipeline(ScriptedModel("A red circle."), Knowledge.ready(kb))
        events = list(pipeline.answer(ChatRequest("What?", (red_circle,), use_knowledge=False)))
    finally:
        kb.close()
    assert "".join(e.text for e in events if isinstance(e, Token)) == "A red circle."
    assert events[-1].consistency == Consistency(None, reason="failed")
