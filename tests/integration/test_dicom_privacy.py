"""DICOM through the real app on 127.0.0.1 in medical mode: synthetic scans of one made-up patient go into
the knowledge base and into the chat; afterwards no original identifier is found in any byte of any file the
app wrote (its data folder, Gradio's upload cache) nor in what the model was given, and the pictures the
model saw carry no burned-in name. Real Chroma on disk and the real parse workers; a scripted model and a
hashing embedder at the edges."""

from __future__ import annotations

import pytest
from gradio_client import Client, handle_file

from assistant.knowledge import Knowledge
from assistant.pipeline import AnswerPipeline
from retrieval.ocr import read_text
from retrieval.store import KnowledgeBase
from tests.helpers import dicoms
from tests.helpers.fakes import HashingEmbedder, ScriptedModel
from tests.helpers.server import app_settings, ask, serve
from tests.helpers.traces import files_under, scan

pytestmark = pytest.mark.integration


class SeeingModel(ScriptedModel):
    """The scripted model, reading the text in every picture it is given while it still exists."""

    def __init__(self, answer: str):
        super().__init__(answer)
        self.seen: list[str] = []

    def stream(self, turns, params):
        from PIL import Image

        for picture in (p for t in turns for p in t.images):
            with Image.open(picture) as image:
                self.seen.append(read_text(image))
        return super().stream(turns, params)


def _variants(identifiers: list[str]) -> list[str]:
    """Each identifier as a byte scan may meet it: as written, upper and lower case."""
    return sorted({v for i in identifiers for v in (i, i.upper(), i.lower())})


def test_no_original_identifier_survives_on_disk_or_in_the_prompt(tmp_path, monkeypatch, request):
    cache = tmp_path / "gradio-cache"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(cache))
    scans = dicoms.all_of(tmp_path / "scans")
    originals = {name: path.read_bytes() for name, path in scans.items()}
    strings = _variants(dicoms.IDENTIFIERS)
    before = scan(tmp_path / "scans", strings=strings)
    assert len(before.where) >= 12  # the scans carry them: a clean scan below means something

    settings = app_settings(tmp_path, medical={"enabled": True}, retrieval={"ocr": False})
    from assistant.composition import _store_options

    from assistant.composition import clear_allocations

    assert clear_allocations()  # as configure_environment does in medical mode
    request.addfinalizer(lambda: clear_allocations(False))
    kb = KnowledgeBase.open(settings.data_dir / "knowledge", HashingEmbedder(),
                            **{**_store_options(settings), "chroma_url": None})
    model = SeeingModel("The scan shows a round structure [1].")
    with serve(AnswerPipeline(model, Knowledge.ready(kb), k=3, medical=True), settings) as url:
        client = Client(url, verbose=False)
        report, docs = client.predict([handle_file(str(p)) for p in scans.values()], api_name="/ingest")
        assert "6 of 6 files" in report, report
        assert report.count("De-identified: removed") == 6 and "blacked out" in report
        assert {d["kind"] for d in docs} == {"dicom"}
        hits = client.predict("ultrasound abdomen liver survey", None, 3, api_name="/search")
        assert any(h["source"] == "us.dcm" for h in hits), hits
        answer, _, sources = ask(client, "What does this scan show?", [scans["us"]])
        assert "round structure" in answer and sources

    for name, path in scans.items():
        assert path.read_bytes() == originals[name]  # the user's own files are theirs: untouched
    found = scan(settings.data_dir, strings=strings)
    found_cache = scan(cache, strings=strings) if cache.exists() else None
    assert found.bytes_scanned > 100_000 and found.files >= 10
    assert found.where == {}, found.where
    assert found_cache is None or found_cache.where == {}, found_cache.where
    leftovers = [p for p in files_under(cache) if p.suffix.lower() == ".dcm"] if cache.exists() else []
    assert leftovers == []  # the uploaded originals left Gradio's cache
    assert scan(settings.data_dir, strings=["De-identified: removed"]).where  # the chat turn keeps the report

    turns = model.calls[-1]
    prompt = "\n".join(t.text for t in turns)
    assert "Modality: US" in prompt or "DICOM image" in prompt  # the cleaned header reached the model
    assert [i for i in strings if i in prompt] == []
    assert len(model.seen) >= 2  # the attached scan, and a source picture or more
    seen = "\n".join(model.seen).replace(" ", "").upper()
    assert "QUIXOTE" not in seen and "DULCINEA" not in seen and "1961" not in seen, seen
