"""The real app on 127.0.0.1, driven with gradio_client: tiny random Qwen2.5-VL and CLIP loaded through
the product's own composition root, real Chroma on disk."""

import pytest
from gradio_client import Client, handle_file

from assistant.composition import build_pipeline
from tests.helpers.server import app_settings, ask, chat_args, serve

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def app_url(tiny_models, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("app")
    settings = app_settings(tmp, model={"checkpoint": str(tiny_models["qwen2_5_vl"]), "max_new_tokens": 24},
                            retrieval={"embedder": str(tiny_models["clip"])})
    pipeline = build_pipeline(settings)
    pipeline.model.loader.get(timeout=120)
    pipeline.knowledge.loader.get(timeout=120)
    with serve(pipeline, settings) as url:
        yield url


@pytest.fixture
def client(app_url):
    return Client(app_url, verbose=False)


def test_named_endpoints(client):
    endpoints = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert {"/chat", "/ingest", "/search", "/documents", "/delete"} <= endpoints


def test_ingest_list_search_delete(client, tmp_path, red_png):
    note = tmp_path / "invoice.txt"
    note.write_text("The invoice total is 42 euros.")
    report, docs = client.predict([handle_file(str(note)), handle_file(str(red_png))], api_name="/ingest")
    assert "2 of 2 files" in report
    names = [d["name"] for d in docs]
    assert {"invoice.txt", "red.png"} <= set(names)
    note_doc = next(d for d in docs if d["name"] == "invoice.txt")
    assert note_doc["bytes"] == note.stat().st_size and note_doc["kind"] == "text" and note_doc["added"]

    hits = client.predict("invoice total", None, 5, api_name="/search")
    assert {h["source"] for h in hits} >= {"invoice.txt"}
    assert all({"source", "kind", "locator", "score", "text"} <= set(h) for h in hits)

    report, docs = client.predict(note_doc["id"], api_name="/delete")
    assert "Deleted invoice.txt" in report
    assert "invoice.txt" not in [d["name"] for d in docs]
    # a fresh client, which never listed the documents, deletes by file name
    report, docs = Client(client.src, verbose=False).predict("red.png", api_name="/delete")
    assert "Deleted red.png" in report and docs == []


def test_upload_image_ask_and_receive_streamed_answer_with_sources(client, red_png):
    client.predict([handle_file(str(red_png))], api_name="/ingest")
    job = client.submit(*chat_args("What is in this picture?", [red_png]), api_name="/chat")
    updates = list(job)
    answer, cards, sources, _ = job.result()
    assert len(updates) >= 2  # sources first, then the answer
    first_answer, first_cards, first_sources, _ = updates[0]
    assert first_answer == "…" and first_sources  # sources arrive before any token
    assert answer and answer != "…" and not answer.startswith("⚠️")
    image_source = next(s for s in sources if s["name"] == "red.png")
    assert image_source["kind"] == "image" and image_source["thumbnail"].endswith(".jpg")
    assert 'id="source-1"' in cards and 'src="files/kb/' in cards and "gradio_api/file=" not in cards


def test_second_turn_keeps_the_conversation(client, red_png, blue_png):
    ask(client, "What colour?", [red_png], use_knowledge=False)
    answer, _, _ = ask(client, "And this one?", [blue_png], use_knowledge=False)
    assert answer and not answer.startswith("⚠️")


def test_non_image_attachment_is_refused_clearly(client, tmp_path):
    from gradio_client.exceptions import AppError

    doc = tmp_path / "notes.txt"
    doc.write_text("hello")
    with pytest.raises(AppError, match="image"):
        ask(client, "read this", [doc])


def test_the_app_answers_through_the_static_int4_decoder(tiny_models, tmp_path, red_png):
    """The GPU default's path (int4 weights, the static decoder), chosen by the settings, through the
    composition root and the UI, on the CPU. Its tokens are checked against ``generate`` in the contract
    tests; here the whole app streams an answer through it."""
    settings = app_settings(tmp_path, model={"checkpoint": str(tiny_models["qwen2_5_vl"]), "max_new_tokens": 12,
                                             "device": "cpu", "quantization": "int4", "decoder": "static"},
                            retrieval={"enabled": False, "embedder": ""})
    pipeline = build_pipeline(settings)
    model = pipeline.model.loader.get(timeout=120)
    assert model.decoder is not None and model.decoder.quantized
    with serve(pipeline, settings) as url:
        answer, _, _ = ask(Client(url, verbose=False), "What is in this picture?", [red_png], use_knowledge=False)
    assert answer and answer != "…" and not answer.startswith("⚠️")
