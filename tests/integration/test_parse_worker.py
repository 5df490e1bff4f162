"""The parse worker is a process of its own that starts from ``retrieval.worker`` alone, whatever script
the application was started with."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from retrieval.errors import UnreadableFileError
from retrieval.worker import ParseWorker

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_the_worker_does_not_run_the_entry_script_again(tmp_path):
    """``app.py`` (a Space's entry point) builds the whole app when it is imported. A worker started the
    way ``multiprocessing``'s spawn does imports the parent's main script again, so each parse worker
    built a second app (models included) before its memory ceiling was set, and OCR then failed in it for
    want of memory. A script that marks each import of itself shows whether that happens."""
    marks = tmp_path / "imported"
    note = tmp_path / "note.md"
    note.write_text("# Minutes\n\nThe committee approved the budget.")
    script = tmp_path / "entry.py"
    script.write_text(textwrap.dedent(f"""
        import os
        with open({str(marks)!r}, "a") as f:
            f.write(str(os.getpid()) + "\\n")

        from pathlib import Path
        from retrieval.worker import ParseWorker

        if __name__ == "__main__":
            worker = ParseWorker(timeout=60)
            try:
                parsed = worker.parse(Path({str(note)!r}))
                print(parsed.passages[0].text)
            finally:
                worker.close()
    """))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "committee approved the budget" in result.stdout
    assert len(marks.read_text().split()) == 1, \
        f"the entry script ran {len(marks.read_text().split())} times"


def test_out_of_memory_in_a_library_is_named_as_such():
    """onnxruntime reports running out of the worker's memory as std::bad_alloc inside a wrapped traceback."""
    from retrieval.worker import failure

    wrapped = RuntimeError("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeException: "
                           "[ONNXRuntimeError] : 6 : Status Message: std::bad_alloc")
    assert failure(wrapped, "scan.pdf", 4 * 2**30) == ("scan.pdf: reading it needed more memory than the "
                                                        "4 GiB allowed")
    assert failure(MemoryError(), "scan.pdf", 3 * 2**30).endswith("than the 3 GiB allowed")
    assert failure(ValueError("bad xref at /tmp/u/scan.pdf"), "scan.pdf", 2**30) == \
        "scan.pdf: could not be read (ValueError: bad xref at the file)"


@pytest.fixture
def note(tmp_path):
    path = tmp_path / "note.md"
    path.write_text("# Minutes\n\nThe committee approved the budget.")
    return path


def _pid(worker: ParseWorker) -> int:
    return worker._process.pid


def test_a_hung_worker_is_stopped_and_the_next_file_gets_a_new_one(note):
    worker = ParseWorker(timeout=60)
    try:
        worker.parse(note)  # started under the long time-out: a busy machine may start it slowly
        hung = _pid(worker)
        os.kill(hung, signal.SIGSTOP)  # a parser stuck in a loop, as far as the application can tell
        worker.timeout = 1
        with pytest.raises(UnreadableFileError, match="note.md: reading it took longer than 1 s and was stopped"):
            worker.parse(note)
        assert not Path(f"/proc/{hung}").exists()  # killed and reaped, not left stopped
        worker.timeout = 60
        assert "committee approved" in worker.parse(note).passages[0].text
        assert _pid(worker) != hung
    finally:
        worker.close()


def test_a_worker_that_dies_during_a_file_fails_that_file_only(note):
    worker = ParseWorker(timeout=60)
    try:
        worker.parse(note)
        dying = _pid(worker)
        conn, send = worker._conn, worker._conn.send
        os.kill(dying, signal.SIGSTOP)  # it cannot answer before it dies

        def send_then_die(job):  # the worker dies once it has the file (as a parser crash would)
            send(job)
            os.kill(dying, signal.SIGKILL)

        conn.send = send_then_die
        with pytest.raises(UnreadableFileError, match="note.md: the parser stopped on this file"):
            worker.parse(note)
        assert "committee approved" in worker.parse(note).passages[0].text
        assert _pid(worker) != dying
    finally:
        worker.close()


def test_closing_ends_the_worker_process(note):
    worker = ParseWorker()
    worker.parse(note)
    pid = _pid(worker)
    worker.close()
    assert worker._process is None and not Path(f"/proc/{pid}").exists()


class _Recording(ParseWorker):
    """The real worker, counting the images of each OCR request."""

    def __init__(self, **options):
        super().__init__(**options)
        self.ocr_sizes: list[int] = []

    def ocr(self, images, name, *, layout=False):
        self.ocr_sizes.append(len(images))
        return super().ocr(images, name, layout=layout)


def test_a_scan_is_read_a_page_a_request(tmp_path):
    """Each scanned page is its own OCR request, under the worker's time-out: one request for a whole scan
    stopped any scan longer than about 40 full pages (3 s a page on a core) at the 120 s time-out."""
    from retrieval.store import KnowledgeBase
    from tests.helpers.documents import text_image
    from tests.helpers.fakes import HashingEmbedder

    pages = [text_image(f"Ward {ward} discharge summary", size=(900, 1270)) for ward in ("north", "east", "south")]
    pages[0].save(tmp_path / "scan.pdf", save_all=True, append_images=pages[1:], resolution=100)
    parser = _Recording(timeout=60)
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), parser=parser)
    try:
        report = kb.ingest(tmp_path / "scan.pdf")
        assert report.status == "added", report.error
        assert parser.ocr_sizes == [1, 1, 1]
        for ward, page in (("north", 1), ("east", 2), ("south", 3)):
            hit = kb.search(f"{ward} ward discharge", k=1)[0]
            assert hit.chunk.locator == f"page {page}" and ward in hit.chunk.text.lower()
    finally:
        kb.close()


def test_a_pool_reads_a_scans_pages_side_by_side(tmp_path):
    """With two workers (the app's pool) and two cores, two pages are read at once."""
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool
    from tests.helpers.documents import text_image
    from tests.helpers.fakes import HashingEmbedder

    class Counting(ParsePool):
        """Counts the workers reading at once (not the threads waiting for one)."""

        def __init__(self):
            super().__init__(size=2, timeout=60)
            self.in_flight, self.most, self._count = 0, 0, threading.Lock()
            for worker in self.workers:
                worker.ocr = self._counted(worker.ocr)

        def _counted(self, ocr):
            def counted(images, name, *, layout=False):
                with self._count:
                    self.in_flight += 1
                    self.most = max(self.most, self.in_flight)
                try:
                    return ocr(images, name, layout=layout)
                finally:
                    with self._count:
                        self.in_flight -= 1
            return counted

    pages = [text_image(f"Invoice {n} total {n * 7} EUR", size=(900, 1270)) for n in range(1, 5)]
    pages[0].save(tmp_path / "scan.pdf", save_all=True, append_images=pages[1:], resolution=100)
    pool = Counting()
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), parser=pool)
    try:
        assert kb.ingest(tmp_path / "scan.pdf").status == "added"
        assert pool.most == min(2, len(os.sched_getaffinity(0)))
        assert [h.chunk.locator for h in kb.search("invoice 3 total 21 EUR", k=1)] == ["page 3"]
    finally:
        kb.close()


def test_a_batch_tells_a_scans_pages_as_they_are_read(tmp_path):
    """The progress of a batch says which page of a scan is being read, and never goes back."""
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool
    from tests.helpers.documents import text_image
    from tests.helpers.fakes import HashingEmbedder

    pages = [text_image(f"Clinic letter {n}", size=(900, 1270)) for n in range(1, 6)]
    pages[0].save(tmp_path / "scan.pdf", save_all=True, append_images=pages[1:], resolution=100)
    (tmp_path / "note.md").write_text("# Note\n\nA line of text.")
    told: list[tuple[float, str]] = []
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), parser=ParsePool(size=2, timeout=60))
    try:
        reports = kb.ingest_paths([tmp_path / "scan.pdf", tmp_path / "note.md"],
                                  progress=lambda fraction, text: told.append((fraction, text)))
        assert [r.status for r in reports] == ["added", "added"]
    finally:
        kb.close()
    texts = [text for _, text in told]
    assert any(text.startswith("scan.pdf (1/2): OCR, page ") and text.endswith(" of 5") for text in texts), texts
    assert "scan.pdf (1/2): store" in texts and "note.md (2/2): parse" in texts and texts[-1] == "done"
    fractions = [fraction for fraction, _ in told]
    assert fractions == sorted(fractions), told


def test_a_query_waits_for_one_page_of_a_scan_not_for_the_scan():
    """The pool serves waiting requests in order: a thread reading a scan page after page hands its worker
    back and asks again at once, and took it again before a chat's request that had waited (it wakes later),
    so the chat waited for the whole scan."""
    from retrieval.worker import ParsePool

    pool = ParsePool(size=1)  # the requests below never start a process: only the order is looked at
    served: list[str] = []
    reading = threading.Event()

    def page(n: int) -> None:
        reading.set()
        if n == 1:  # the chat's request is waiting before the first page ends
            deadline = time.monotonic() + 30
            while not pool._queue and time.monotonic() < deadline:
                time.sleep(0.01)
        served.append(f"page {n}")

    def scan() -> None:
        for n in range(1, 13):
            pool._with_worker(lambda worker, n=n: page(n))

    reader = threading.Thread(target=scan)
    reader.start()
    reading.wait()
    pool._with_worker(lambda worker: served.append("query"))
    reader.join()
    assert served.index("query") == 1, served
    assert [s for s in served if s != "query"] == [f"page {n}" for n in range(1, 13)]


def test_a_closed_pool_starts_no_worker_for_what_was_queued():
    """Closing the app's pool while a scan's pages wait for it: the waiting requests fail at once, and no
    worker is started again for them (each could hold 4 GiB, and the app would wait for the whole scan)."""
    from retrieval.errors import RetrievalError
    from retrieval.worker import ParsePool

    pool = ParsePool(size=1)
    busy, release = threading.Event(), threading.Event()
    failures: list[str] = []

    def hold() -> None:
        pool._with_worker(lambda worker: (busy.set(), release.wait(30)))

    def queued() -> None:
        try:
            pool._with_worker(lambda worker: failures.append("served after close"))
        except RetrievalError as exc:
            failures.append(str(exc))

    holder, waiter = threading.Thread(target=hold), threading.Thread(target=queued)
    holder.start()
    busy.wait(30)
    waiter.start()
    deadline = time.monotonic() + 30
    while not pool._queue and time.monotonic() < deadline:
        time.sleep(0.01)
    pool.close()
    waiter.join(30)
    release.set()
    holder.join(30)
    assert failures == ["The parser has been closed (the app is shutting down)."]
    assert all(worker._process is None for worker in pool.workers)


def test_a_knowledge_base_closed_during_a_scan_reads_no_more_pages(tmp_path):
    from retrieval.store import KnowledgeBase
    from tests.helpers.documents import text_image
    from tests.helpers.fakes import HashingEmbedder

    pages = [text_image(f"Ward {n} summary", size=(900, 1270)) for n in range(1, 5)]
    pages[0].save(tmp_path / "scan.pdf", save_all=True, append_images=pages[1:], resolution=100)
    holder: dict = {}

    class ClosingAfterOnePage(_Recording):
        def ocr(self, images, name, *, layout=False):
            read = super().ocr(images, name, layout=layout)
            closing = threading.Thread(target=holder["kb"].close)  # as the app would, from another thread
            closing.start()
            closing.join(30)
            return read

    parser = ClosingAfterOnePage(timeout=60)
    kb = holder["kb"] = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), parser=parser)
    report = kb.ingest(tmp_path / "scan.pdf")
    assert report.status == "failed" and "closed" in report.error, report
    assert parser.ocr_sizes == [1] and parser._process is None
