"""What reaches the model through the real app: a scripted model at the edge records the turns."""

import pytest
from gradio_client import Client, handle_file  # noqa: F401

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.server import app_settings, ask, chat_args, serve

pytestmark = pytest.mark.integration


@pytest.fixture
def scripted(tmp_path):
    model = ScriptedModel("The total is 42 euros [1].")
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    pipeline = AnswerPipeline(model, Knowledge.ready(kb), k=3)
    with serve(pipeline, app_settings(tmp_path)) as url:
        yield model, Client(url, verbose=False)
    kb.close()


def test_history_with_images_reaches_the_model_in_order(scripted, red_png, blue_png):
    model, client = scripted
    ask(client, "Compare", [red_png, blue_png], max_new_tokens=64, use_knowledge=False)
    ask(client, "Now this", [red_png], max_new_tokens=64, use_knowledge=False)
    turns = model.calls[-1]
    assert [t.role for t in turns] == ["system", "user", "assistant", "user"]
    # the images the model sees are the conversation's own copies, in the order sent
    assert [p.read_bytes() for p in turns[1].images] == [red_png.read_bytes(), blue_png.read_bytes()]
    assert turns[1].text == "Compare" and turns[2].text == "The total is 42 euros [1]."
    assert [p.read_bytes() for p in turns[3].images] == [red_png.read_bytes()] and turns[3].text == "Now this"


def test_cited_source_is_marked(scripted, tmp_path):
    model, client = scripted
    note = tmp_path / "invoice.txt"
    note.write_text("The invoice total is 42 euros.")
    client.predict([handle_file(str(note))], api_name="/ingest")
    answer, cards, sources = ask(client, "invoice total?", max_new_tokens=64)
    assert answer == 'The total is 42 euros <a href="#source-1" class="cite" data-source="1">[1]</a>.'
    assert sources[0]["name"] == "invoice.txt" and sources[0]["cited"] is True
    assert 'class="source cited" id="source-1"' in cards
    assert '<source id="1" file="invoice.txt"' in model.calls[-1][-1].text


def test_app_is_served_while_the_model_loads(tmp_path):
    import threading
    import urllib.request

    from assistant.loading import Background
    from assistant.models.base import LazyModel

    gate = threading.Event()
    model = ScriptedModel("Loaded and answering.")
    lazy = LazyModel("slow", Background("model", lambda: gate.wait(60) and model)).start()
    with serve(AnswerPipeline(lazy, None), app_settings(tmp_path)) as url:
        assert urllib.request.urlopen(url, timeout=10).status == 200  # served before the model is ready
        assert lazy.status().state == "loading"
        client = Client(url, verbose=False)
        job = client.submit(*chat_args("hello", max_new_tokens=64, use_knowledge=False), api_name="/chat")
        first = next(iter(job))
        assert "still loading" in first[0]
        gate.set()
        answer, *_ = job.result(timeout=30)
    assert answer == "Loaded and answering."


def test_a_resumed_conversation_shows_its_last_source_cards(tmp_path, red_png):
    """Reopening a conversation draws the cards its last answer showed: numbered, cited marked, a figure's
    thumbnail from the owner-checked route while its document is still there, and none once it is deleted."""
    from assistant.settings import Settings
    from ui.app import AssistantUI
    from assistant.workspaces import Workspaces

    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    knowledge = Knowledge.ready(kb)
    note = tmp_path / "invoice.txt"
    note.write_text("The invoice total is 42 euros.")
    knowledge.ingest([note, red_png])
    pipeline = AnswerPipeline(ScriptedModel("The total is 42 euros [1]."), knowledge, k=2)
    settings = Settings(data_dir=tmp_path / "data")
    ui = AssistantUI(Workspaces.single(pipeline, settings.data_dir), settings)
    *_, (_, _, data, conversation_id, _) = ui.chat({"text": "invoice total, and the red picture?", "files": []},
                                                None, 0.0, 32, True, 2, False)
    assert {d["name"] for d in data} == {"invoice.txt", "red.png"}
    *_, cards, shown = ui.resume(conversation_id)
    assert 'id="source-1"' in cards and 'id="source-2"' in cards and 'class="source cited"' in cards
    figure = next(d for d in shown if d["name"] == "red.png")
    assert f'src="files/kb/{figure["chunk_id"]}.jpg"' in cards
    assert [d["cited"] for d in shown] == [d["number"] == 1 for d in shown]
    knowledge.delete(figure["doc_id"])
    *_, cards, _ = ui.resume(conversation_id)
    assert "files/kb/" not in cards and "red.png" in cards  # the card stays, its deleted thumbnail does not
    kb.close()


def test_stop_shows_the_stopped_turn_even_when_it_was_stored_first(tmp_path):
    """Stop cancels the answer, then asks for the stopped turn. When the cancelled answer was stored (and
    its live turn let go) before that request ran, the stored turn, with its notice, is still what shows."""
    from assistant.settings import Settings
    from assistant.workspaces import Workspaces
    from ui.app import AssistantUI

    settings = Settings(data_dir=tmp_path / "data", retrieval={"text_embedder": "", "ocr": False})
    pipeline = AnswerPipeline(ScriptedModel("one two three four five six seven eight", chunk=4), None)
    ui = AssistantUI(Workspaces.single(pipeline, settings.data_dir), settings)
    stream = ui.chat({"text": "count", "files": []}, None, 0.0, 64, False, 2, False)
    _, _, _, conversation_id, _ = next(u for u in stream if u[0] not in ("…",) and "one" in u[0])
    stream.close()  # what Gradio's cancel does: the turn is stored with what it had, then let go
    assert conversation_id not in ui._running
    chat, cards, data = ui.stopped(conversation_id)
    assert "Stopped before the answer was complete" in chat[-1]["content"] and "one" in chat[-1]["content"]
