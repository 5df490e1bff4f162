"""Over a hundred hostile and broken files through the real parse worker: each gets a clear error of
its own (or, when odd but valid, ingests), in bounded time, and nothing stored before is harmed."""

import time

import pytest

from retrieval.store import KnowledgeBase
from retrieval.worker import ParseWorker
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.hostile import MUST_FAIL_PREFIXES, VALID, write_corpus

pytestmark = pytest.mark.integration


def test_hostile_corpus(tmp_path):
    files = write_corpus(tmp_path / "hostile")
    assert len(files) >= 100
    good = tmp_path / "good.md"
    good.write_text("# Minutes\n\nThe committee approved the budget of 42 million.")
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(),
                            parser=ParseWorker(timeout=60, memory_bytes=3 * 2**30), ocr=False)
    try:
        assert kb.ingest(good).status == "added"
        before = (kb.count(), kb.documents())
        started = time.monotonic()
        reports = kb.ingest_paths(files)
        elapsed = time.monotonic() - started
        by_name = {r.source.rsplit("/", 1)[-1]: r for r in reports}
        assert len(by_name) == len(files)
        for name, report in by_name.items():
            if name in VALID:
                assert report.status == "added", (name, report.error)
            if name.startswith(MUST_FAIL_PREFIXES):
                assert report.status == "failed", name
            if report.status == "failed":
                assert report.error and name in report.error and "Traceback" not in report.error, report.error
        failed = sum(r.status == "failed" for r in reports)
        assert failed >= 60, failed
        assert elapsed < 240, f"{elapsed:.0f} s for {len(files)} files"
        # what was stored before is intact and still found
        assert kb.records.document(before[1][0].doc_id) is not None
        assert kb.search("committee budget", k=1)[0].chunk.source.endswith("good.md")
    finally:
        kb.close()
    reopened = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    try:
        assert len(reopened.documents()) == 1 + len(files) - failed and not reopened.index.repairs
    finally:
        reopened.close()
