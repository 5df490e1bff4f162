"""The real app on 127.0.0.1, driven with gradio_client: tiny random Qwen2.5-VL and CLIP loaded through
the product's own composition root, real Chroma on disk."""

import pytest
from gradio_client import Client, handle_file

from assistant.composition import build_pipeline
from tests.helpers.server import serve, app_settings

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
    report, table, _ = client.predict([handle_file(str(note)), handle_file(str(red_png))], api_name="/ingest")
    assert "2 of 2 files" in report
    names = [row[0] for row in table["data"]]
    assert {"invoice.txt", "red.png"} <= set(names)

    hits = client.predict("invoice total", None, 5, api_name="/search")
    assert {h["source"] for h in hits} >= {"invoice.txt"}
    assert all({"source", "kind", "locator", "score", "text"} <= set(h) for h in hits)

    doc_id = next(row[3] for row in table["data"] if row[0] == "invoice.txt")
    report, table, _ = client.predict(doc_id, api_name="/delete")
    assert "Deleted invoice.txt" in report
    assert "invoice.txt" not in [row[0] for row in table["data"]]


def test_upload_image_ask_and_receive_streamed_answer_with_sources(client, tmp_path, red_png):
    client.predict([handle_file(str(red_png))], api_name="/ingest")
    job = client.submit({"text": "What is in this picture?", "files": [handle_file(str(red_png))]},
                        0.0, 16, True, api_name="/chat")
    updates = list(job)
    answer, sources_md, gallery = job.result()
    assert len(updates) >= 2  # sources first, then the answer
    first_answer, first_sources, _ = updates[0]
    assert first_answer == "…" and "[1]" in first_sources  # sources arrive before any token
    assert answer and answer != "…" and not answer.startswith("⚠️")
    assert "red.png" in sources_md
    assert gallery and gallery[0][1].startswith("[1] red.png")


def test_second_turn_keeps_the_conversation(client, red_png, blue_png):
    client.predict({"text": "What colour?", "files": [handle_file(str(red_png))]}, 0.0, 16, False,
                   api_name="/chat")
    answer, _, _ = client.predict({"text": "And this one?", "files": [handle_file(str(blue_png))]},
                                  0.0, 16, False, api_name="/chat")
    assert answer and not answer.startswith("⚠️")


def test_non_image_attachment_is_refused_clearly(client, tmp_path):
    from gradio_client.exceptions import AppError

    doc = tmp_path / "notes.txt"
    doc.write_text("hello")
    with pytest.raises(AppError, match="image"):
        client.predict({"text": "read this", "files": [handle_file(str(doc))]}, 0.0, 16, True, api_name="/chat")
