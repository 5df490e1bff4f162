from pathlib import Path

import pytest

from assistant.errors import InputError, KnowledgeError
from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline, Completed, Retrieved, Token, cited_numbers
from assistant.types import ChatRequest, ChatTurn, GenerationParams
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel


@pytest.fixture
def knowledge(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "invoice.txt").write_text("The invoice total is 42 euros, due in March.")
    (docs / "pets.md").write_text("# Pets\n\nCats and dogs are common pets.")
    kb.ingest_paths([docs])
    yield Knowledge.ready(kb)
    kb.close()


def events(pipeline, request):
    return list(pipeline.answer(request))


def test_sources_come_before_the_first_token_and_citations_are_found(knowledge):
    model = ScriptedModel("The total is 42 euros [1]. See also [9].")
    out = events(AnswerPipeline(model, knowledge, k=2), ChatRequest("What is the invoice total?"))
    assert isinstance(out[0], Retrieved) and out[0].sources
    assert isinstance(out[1], Token)
    assert isinstance(out[-1], Completed)
    assert "".join(e.text for e in out if isinstance(e, Token)) == out[-1].text
    assert out[-1].cited == (1,)  # [9] is out of range
    assert out[0].sources[0].name == "invoice.txt"


def test_prompt_carries_numbered_sources_as_data(knowledge):
    model = ScriptedModel()
    events(AnswerPipeline(model, knowledge, k=2), ChatRequest("invoice total?"))
    system, user = model.calls[0][0], model.calls[0][-1]
    assert system.role == "system"
    assert '<source id="1" file="invoice.txt"' in user.text
    assert user.text.rstrip().endswith("Question: invoice total?")


def test_without_sources_the_question_goes_as_it_is(tmp_path, red_png):
    model = ScriptedModel()
    out = events(AnswerPipeline(model, None), ChatRequest("what colour?", (red_png,)))
    assert out[0] == Retrieved(())
    assert model.calls[0][-1] == ChatTurn("user", "what colour?", (red_png,))


def test_history_and_images_reach_the_model_in_order(red_png, blue_png):
    model = ScriptedModel()
    history = (ChatTurn("user", "first", (red_png,)), ChatTurn("assistant", "a red one"))
    events(AnswerPipeline(model, None), ChatRequest("and these?", (blue_png, red_png), history))
    turns = model.calls[0]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    assert turns[1].images == (red_png,)
    assert turns[-1].images == (blue_png, red_png)


def test_image_only_question_gets_a_default_question(red_png):
    model = ScriptedModel()
    events(AnswerPipeline(model, None), ChatRequest("", (red_png,)))
    assert model.calls[0][-1].text == "Describe this image."


def test_empty_request_is_an_input_error():
    with pytest.raises(InputError):
        events(AnswerPipeline(ScriptedModel(), None), ChatRequest("   "))


def test_min_score_filters_sources(knowledge):
    out = events(AnswerPipeline(ScriptedModel(), knowledge, min_score=1.01), ChatRequest("invoice"))
    assert out[0].sources == ()


def test_retrieval_off_per_request(knowledge):
    model = ScriptedModel()
    out = events(AnswerPipeline(model, knowledge), ChatRequest("invoice", use_knowledge=False))
    assert out[0].sources == () and "<source" not in model.calls[0][-1].text


def test_broken_knowledge_base_is_a_notice_not_a_failure():
    class Broken:
        def search(self, *a, **k):
            raise KnowledgeError("embedder folder missing")

    out = events(AnswerPipeline(ScriptedModel("ok"), Broken()), ChatRequest("hi"))
    assert out[0].notice == "Knowledge base unavailable: embedder folder missing"
    assert out[-1].text == "ok"


def test_closing_the_answer_closes_the_model_stream():
    model = ScriptedModel("x" * 400, chunk=1)
    stream = AnswerPipeline(model, None).answer(ChatRequest("go", params=GenerationParams(max_new_tokens=400)))
    for event in stream:
        if isinstance(event, Token):
            break
    stream.close()
    assert model.closed.is_set() and model.pieces_sent == 1


def test_cited_numbers_order_and_range():
    assert cited_numbers("b [2] a [1] again [2] [0] [4]", 3) == (2, 1)
    assert cited_numbers("no citations", 3) == ()
