"""The knowledge base under concurrent use, as Gradio drives it: chat with an image (OCR in a parse
worker), ingest (scanned PDFs OCR'd in a worker at the same time), replace, delete and search from several
threads for a bounded time. Nothing may fail, and afterwards record, index and files agree
(``tests/helpers/stress.py``; ``benchmarks/knowledge_stress.py`` runs the same for longer)."""

from __future__ import annotations

import threading
from pathlib import Path

from retrieval.worker import ParseWorker
from tests.helpers.documents import text_image
from tests.helpers.stress import run_stress


def test_chat_ingest_delete_and_search_at_once(tmp_path):
    stats = run_stress(tmp_path, seconds=25)
    assert stats.errors == [], stats.errors[0]
    assert stats.inconsistencies == []
    # each kind of operation really ran beside the others (the numbers are small on a busy 2-core machine)
    assert stats.chats >= 2 and stats.ingests >= 4 and stats.deletes >= 1 and stats.searches >= 2
    assert stats.scanned_pdfs >= 1


def test_one_parse_worker_shared_by_threads_gives_each_its_own_answer(tmp_path):
    """Parses and OCRs from several threads through one worker process: each reply is the asker's own."""
    worker = ParseWorker(timeout=60)  # a mixed-up exchange fails within a minute instead of hanging
    files = []
    for i in range(6):
        files.append(tmp_path / f"note{i}.txt")
        files[-1].write_text(f"note number {i} says word{i}", encoding="utf-8")
    picture = text_image("HELLO 42")
    wrong: list[str] = []

    def parse(path: Path):
        for _ in range(4):
            text = " ".join(p.text for p in worker.parse(path).passages)
            if f"word{path.stem[4:]}" not in text:
                wrong.append(f"{path.name} got {text[:60]!r}")

    def ocr():
        for _ in range(3):
            [text] = worker.ocr([picture], "query image")
            if "42" not in text:
                wrong.append(f"OCR got {text[:60]!r}")

    def recording(body, *args):
        def run():
            try:
                body(*args)
            except Exception as exc:  # noqa: BLE001  a reply that could not be used is also a wrong one
                wrong.append(f"{type(exc).__name__}: {exc}")
        return threading.Thread(target=run)

    threads = [recording(parse, f) for f in files] + [recording(ocr)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
    finally:
        worker.close()
    assert wrong == []
