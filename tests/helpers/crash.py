"""Kill ingest processes with SIGKILL at random moments and check what survives.

``python -m tests.helpers.crash child DATA DOCS`` writes new documents into DOCS and ingests each into
the knowledge base in DATA, without end, printing ``READY`` once open and ``ACK <doc_id> <name>`` after each
document is acknowledged. ``run_kills`` drives it: start, kill at a random moment, reopen (which
recovers), check, repeat.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_document(folder: Path, i: int) -> Path:
    """A document of about 40 chunks whose unique word is ``token{i}x``."""
    folder.mkdir(parents=True, exist_ok=True)
    body = "\n\n".join(f"Document {i} paragraph {j} mentions token{i}x and some shared words about "
                       f"invoices, patients and reports." for j in range(40))
    path = folder / f"doc{i:05d}.md"
    partial = path.with_suffix(".tmp")  # written whole, then renamed: a kill never leaves half a document
    partial.write_text(f"# Doc {i}\n\n{body}", encoding="utf-8")
    os.replace(partial, path)
    return path


def token_of(name: str) -> str:
    return f"token{int(name[3:8])}x"


def open_kb(data: Path, *, ocr: bool = False, **options):
    from retrieval.store import KnowledgeBase
    from retrieval.worker import InProcessParser
    from tests.helpers.fakes import HashingEmbedder

    return KnowledgeBase.open(data, HashingEmbedder(), text_embedder=HashingEmbedder(128, "hash-text"),
                              parser=InProcessParser(), chunk_size=120, chunk_overlap=0, ocr=ocr, **options)


def child(data: Path, docs: Path) -> None:
    kb = open_kb(data)
    print("READY", flush=True)
    i = len(list(docs.glob("doc*.md")))
    while True:  # until killed
        path = write_document(docs, i)
        report = kb.ingest(path, source=path.name)
        if report.ok:
            print(f"ACK {report.doc_id} {path.name}", flush=True)
        i += 1


@dataclass
class KillStats:
    kills: int = 0
    unusable: int = 0
    lost: int = 0  # acknowledged documents missing after recovery
    duplicates: int = 0  # extra chunks after re-ingesting everything
    rebuilds: int = 0  # stores whose index was rebuilt from the record on reopen
    reconciled: int = 0  # stores whose index had uncommitted or missing vectors fixed on reopen
    problems: list[str] = field(default_factory=list)


def run_kills(root: Path, kills: int, *, per_store: int = 2, seed: int = 0) -> KillStats:
    rng = random.Random(seed)
    stats = KillStats()
    store = 0
    while stats.kills < kills:
        data, docs = root / f"store{store}", root / f"docs{store}"
        acked: dict[str, str] = {}
        for _ in range(min(per_store, kills - stats.kills)):
            acked.update(_kill_once(data, docs, rng))
            stats.kills += 1
            _verify(data, acked, stats, f"store {store} kill {stats.kills}")
        _verify_reingest(data, docs, stats, f"store {store}")
        store += 1
    return stats


def _kill_once(data: Path, docs: Path, rng: random.Random) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.crash", "child", str(data), str(docs)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)
    lines = []
    line = proc.stdout.readline()
    lines.append(line)
    if line.startswith("READY"):
        time.sleep(rng.uniform(0.0, 1.5))  # somewhere inside an ingest: parse, embed, Chroma, SQLite
    proc.send_signal(signal.SIGKILL)
    out, _ = proc.communicate()
    lines += out.splitlines()
    return {parts[2]: parts[1] for parts in (l.split() for l in lines) if parts and parts[0] == "ACK"}


def _verify(data: Path, acked: dict[str, str], stats: KillStats, where: str) -> None:
    try:
        kb = open_kb(data)
    except Exception as exc:  # noqa: BLE001  counted: a store we could not recover
        stats.unusable += 1
        stats.problems.append(f"{where}: unusable: {exc!r}")
        return
    repairs = kb.index.repairs
    stats.rebuilds += any(r.startswith("rebuilt") for r in repairs)
    stats.reconciled += bool(repairs) and not any(r.startswith("rebuilt") for r in repairs)
    try:
        known = {d.source: d.doc_id for d in kb.documents()}
        for name, doc_id in acked.items():
            if known.get(name) != doc_id:
                stats.lost += 1
                stats.problems.append(f"{where}: acknowledged {name} missing from the record")
                continue
            lexical = {cid for cid, _ in kb.records.lexical_search(token_of(name), 5)}
            chunk_ids = sorted(kb.records.chunk_ids(doc_id))
            indexed = [set(c.get(ids=chunk_ids, include=[])["ids"]) for c in kb.index.collections.values()]
            if not lexical & set(chunk_ids) or any(ids != set(chunk_ids) for ids in indexed):
                stats.lost += 1
                stats.problems.append(f"{where}: acknowledged {name} not retrievable")
    finally:
        kb.close()


def _verify_reingest(data: Path, docs: Path, stats: KillStats, where: str) -> None:
    try:
        kb = open_kb(data)
    except Exception as exc:  # noqa: BLE001
        stats.unusable += 1
        stats.problems.append(f"{where}: unusable before re-ingest: {exc!r}")
        return
    try:
        files = sorted(docs.glob("doc*.md"))
        failures = [r.error for r in kb.ingest_paths(files, sources=[p.name for p in files]) if not r.ok]
        expected = sum(d.chunks for d in kb.documents())
        chunks, cross = kb.count(), kb.index.collections["cross"].count()
        extra = max(chunks - expected, 0) + max(cross - expected, 0)
        if extra or len(kb.documents()) != len(files):
            stats.duplicates += extra or 1
            stats.problems.append(f"{where}: {chunks} chunks and {cross} vectors for {expected} expected; "
                                  f"{len(kb.documents())} documents for {len(files)} files; failures: {failures[:3]}")
    finally:
        kb.close()


if __name__ == "__main__":
    if sys.argv[1] == "child":
        child(Path(sys.argv[2]), Path(sys.argv[3]))
