"""Many threads on one knowledge base at once, the way Gradio runs them: chats that ask about an image
(whose text is read by OCR in a parse worker), ingest (text, and scanned PDFs OCR'd at ingest), replace,
delete and search, for a bounded time. Afterwards record, index and files must agree and every document
must be exactly where its last acknowledged operation left it.

Real components: Chroma on disk, the record in SQLite, a pool of parse worker processes, the answer
pipeline; fakes only at the edges (a hashing embedder, a scripted model)."""

from __future__ import annotations

import itertools
import queue
import random
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from retrieval.types import view_of
from tests.helpers.crash import token_of, write_document
from tests.helpers.documents import make_pdf, text_image


@dataclass
class StressStats:
    seconds: float = 0.0
    threads: int = 0
    chats: int = 0  # answers to a question with an image, retrieval included
    ingests: int = 0  # documents acknowledged (added or replaced)
    scanned_pdfs: int = 0  # of which scanned PDFs, OCR'd in a parse worker at ingest
    replaced: int = 0
    deletes: int = 0
    searches: int = 0
    errors: list[str] = field(default_factory=list)  # anything that raised or answered wrongly
    inconsistencies: list[str] = field(default_factory=list)  # found by the checks afterwards


def open_stressed(data: Path, workers: int = 2):
    """The knowledge base and pipeline under test: real parse worker processes, OCR on."""
    from assistant.knowledge import Knowledge
    from assistant.pipeline import AnswerPipeline
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool
    from tests.helpers.fakes import HashingEmbedder, ScriptedModel

    kb = KnowledgeBase.open(data, HashingEmbedder(), text_embedder=HashingEmbedder(128, "hash-text"),
                            parser=ParsePool(size=workers, timeout=300), chunk_size=200, chunk_overlap=0, ocr=True)
    return kb, AnswerPipeline(ScriptedModel("It reads invoice total [1].", chunk=8), Knowledge.ready(kb), k=3)


def run_stress(root: Path, seconds: float, *, chat_threads: int = 2, writers: int = 2, seed: int = 0) -> StressStats:
    """``chat_threads`` chats, ``writers`` ingesting threads and as many deleting ones, one searching."""
    from assistant.pipeline import Completed, Retrieved
    from assistant.types import ChatRequest
    from PIL import Image

    rng = random.Random(seed)
    docs, data = root / "docs", root / "data"
    photo = root / "photo.png"
    text_image("invoice total\nmarch report", photo)
    kb, pipeline = open_stressed(data)
    knowledge = pipeline.knowledge
    stats = StressStats(threads=chat_threads + 2 * writers + 1)
    stop = threading.Event()
    deletable: queue.SimpleQueue[str] = queue.SimpleQueue()  # acknowledged documents the deleter may take
    kept: dict[str, int] = {}  # name -> revision: documents only the ingester touches (never deleted)
    deleted: list[str] = []
    guard = threading.Lock()  # for the counters and the lists above, never held around a knowledge call

    def fail(what: str) -> None:
        with guard:
            stats.errors.append(what)
        stop.set()

    def worker(body, *args):
        def run():
            try:
                while not stop.is_set():
                    body(*args)
            except Exception:  # noqa: BLE001  any exception is the failure this harness looks for
                fail(traceback.format_exc(limit=8))
        return threading.Thread(target=run, daemon=True)

    def chat():
        events = list(pipeline.answer(ChatRequest("What does this say?", (photo,))))
        first, last = events[0], events[-1]
        if not isinstance(first, Retrieved) or first.notice or not isinstance(last, Completed):
            fail(f"chat answered wrongly: {first!r} ... {last!r}")
            return
        with guard:
            stats.chats += 1

    counter = itertools.count()  # next() on it is atomic: every document gets its own number

    def ingest(mine: set[str]):  # ``mine``: the kept documents only this thread revises
        i = next(counter)
        revisable = sorted(mine)
        keep = i % 6 in (0, 2, 3, 5)  # 1 and 4: new documents the deleter may take
        if i % 6 == 3:  # a scanned PDF: its page is OCR'd in a worker while chats OCR their images
            path = make_pdf(docs / f"scan{i:05d}.pdf", [f"Scan {i} cover page."], scanned=f"SCANNED REPORT {i}")
        elif i % 6 == 5 and revisable:  # a new revision of a kept document replaces the old one
            path = docs / rng.choice(revisable)
            path.write_text(path.read_text(encoding="utf-8") + f"\n\nRevision {kept[path.name] + 1}.",
                            encoding="utf-8")
        else:
            path = write_document(docs, i)
        [report] = knowledge.ingest([path], names=[path.name])
        if not report.ok:
            fail(f"ingest of {path.name}: {report.status} {report.error}")
            return
        with guard:
            stats.ingests += 1
            stats.scanned_pdfs += path.suffix == ".pdf"
            stats.replaced += report.status == "replaced"
            if keep:
                kept[path.name] = kept.get(path.name, 0) + (report.status == "replaced")
        if keep and path.suffix == ".md":
            mine.add(path.name)
        if not keep:
            deletable.put(path.name)

    def delete():
        try:
            name = deletable.get_nowait()
        except queue.Empty:
            stop.wait(0.1)  # nothing to delete yet; wakes at once when the run ends
            return
        if knowledge.delete(name).source != name:
            fail(f"delete {name} removed another document")
        with guard:
            deleted.append(name)
            stats.deletes += 1

    def search():
        with guard:
            names = sorted(kept)
        if names and (name := rng.choice(names)).startswith("doc"):
            # its unique word finds it by keyword, and only it; every place of the answer is filled
            # (dense ranks come from a hashing embedder whose collisions may put another document first)
            hits = [Path(h.chunk.source).name for h in knowledge.search(token_of(name), k=4)]
            keyword = {Path(c.source).name for c in kb.records.chunks(
                cid for cid, _ in kb.records.lexical_search(token_of(name), 8)).values()}
            if len(hits) != 4 or name not in hits or keyword != {name}:
                fail(f"search for {token_of(name)} (in {name}): keyword hits {sorted(keyword)}, hits {hits}")
                return
        knowledge.search(images=[], text="report patients invoices", k=4)
        red = root / "red.png"
        if not red.exists():
            Image.new("RGB", (40, 40), (250, 0, 0)).save(red)
        knowledge.search(images=[red], k=2)
        with guard:
            stats.searches += 1

    threads = ([worker(chat) for _ in range(chat_threads)] + [worker(ingest, set()) for _ in range(writers)]
               + [worker(delete) for _ in range(writers)] + [worker(search)])
    started = time.perf_counter()
    stuck: list[threading.Thread] = []
    try:
        for t in threads:
            t.start()
        stop.wait(seconds)
        stop.set()
        deadline = time.monotonic() + 120  # each thread finishes its current operation, then stops
        for t in threads:
            t.join(max(deadline - time.monotonic(), 0.1))
        stuck = [t for t in threads if t.is_alive()]
        if stuck:  # a failure to report, not a hang: say where each stuck thread is
            frames = sys._current_frames()
            stats.errors += [f"{t.name} did not stop within 120 s:\n"
                             + "".join(traceback.format_stack(frames[t.ident])) for t in stuck if t.ident in frames]
            stats.seconds = time.perf_counter() - started
            return stats
        stats.seconds = time.perf_counter() - started
        stats.inconsistencies += check(kb, kept, deleted)
    finally:
        if not stuck:  # a stuck thread may hold the write lock that closing waits for
            kb.close()
    reopened, _ = open_stressed(data, workers=1)
    try:
        if reopened.index.repairs:
            stats.inconsistencies.append(f"reopening after a clean close repaired: {reopened.index.repairs}")
    finally:
        reopened.close()
    return stats


def check(kb, kept: dict[str, int], deleted: list[str]) -> list[str]:
    """Record, index and files agree; kept documents are there in their last revision; deleted ones are
    gone from the record, the index and the lexical index."""
    problems = []
    for space, collection in kb.index.collections.items():
        in_index, in_record = set(collection.get(include=[])["ids"]), kb.records.vector_ids(space)
        if in_index != in_record:
            problems.append(f"{space}: {len(in_index - in_record)} vectors only in the index, "
                            f"{len(in_record - in_index)} only in the record")
    thumbnails = {Path(t).name for (t,) in kb.records.read.execute(
        "SELECT thumbnail FROM chunks WHERE thumbnail IS NOT NULL")}
    thumbnails |= {view_of(t).name for t in thumbnails}  # each picture's view for the model, beside it
    if (stray := {f.name for f in kb.files_dir.iterdir()} - thumbnails):
        problems.append(f"{len(stray)} files with no chunk")
    sources = [d.source for d in kb.documents()]
    if len(sources) != len(set(sources)):
        problems.append("a document is stored twice")
    present = set(sources)
    for name, revision in kept.items():
        if name not in present:
            problems.append(f"{name} was acknowledged and is missing")
        elif revision:
            [doc_id] = kb.records.doc_ids_for(name)
            text = "".join(t for (t,) in kb.records.read.execute("SELECT text FROM chunks WHERE doc_id = ?",
                                                                  (doc_id,)))
            if f"Revision {revision}." not in text or f"Revision {revision + 1}." in text:
                problems.append(f"{name}: revision {revision} is not the stored one")
    for name in deleted:
        if name in present:
            problems.append(f"{name} was deleted and is still listed")
        elif any(Path(h.chunk.source).name == name for h in kb.search(token_of(name), k=8)):
            problems.append(f"{name} was deleted and is still found")
    return problems
