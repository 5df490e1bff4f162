"""A tamper-evident audit log: who did what, when, to which documents, with which model.

One file for the server, ``ASSISTANT_DATA_DIR/audit/audit.jsonl``, appended to and never rewritten: a JSON
line per action (sign-in, ingest, delete, search, answer, purge) with its sequence number, time (UTC),
user, action, outcome and details: the document ids ingested, deleted or retrieved, the model that
answered and its revision, and the SHA-256 of the answer. No question, answer or document text is written
unless ``ASSISTANT_AUDIT__CONTENT`` asks for it.

Each record carries the hash of the one before it (``prev``) and its own (``hash``: SHA-256 of its
canonical JSON without that field), so ``verify`` finds a record edited (its hash no longer matches), one
removed or two swapped (the chain or the sequence breaks there), and names the first bad line. What a
chain cannot show is records cut from the end: ``verify`` prints the head (count and last hash) for the
operator to note somewhere else, and a later head that does not extend it says the log was cut. Someone
who can write the file can also rebuild a whole new chain; keeping a copy of the heads off the server
(or the file on append-only storage) is what makes that visible.

Processes append under a file lock, each line written whole and flushed to disk before the action's
caller goes on.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path

GENESIS = "0" * 64  # the ``prev`` of the first record
FIELDS = ("seq", "time", "user", "action", "outcome", "documents", "sources", "model", "revision",
          "answer_sha256", "count", "question", "answer", "details")


def _digest(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False,
                                     separators=(",", ":")).encode()).hexdigest()


class AuditLog:
    """Appends records to ``path`` (see the module docstring); ``content``: questions and answers too."""

    def __init__(self, path: Path, *, content: bool = False):
        from filelock import FileLock

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.content = content
        self._lock = FileLock(str(self.path) + ".lock")
        self._thread_lock = threading.Lock()

    def record(self, user: str | None, action: str, *, outcome: str = "ok", documents: Iterable[str] = (),
               sources: Iterable[str] = (), model: str | None = None, revision: str | None = None,
               answer: str | None = None, question: str | None = None, count: int | None = None,
               details: dict | None = None) -> dict:
        """Append one record and return it. ``answer`` is kept as its hash (and as text only with
        ``content``); ``question`` only with ``content``. ``details``: what an administrator's command did
        (ids, numbers, flags; JSON-able, never content), kept only when given."""
        record = {"time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"), "user": user or "-",
                  "action": action, "outcome": outcome, "documents": sorted(set(documents)),
                  "sources": list(dict.fromkeys(sources)), "model": model, "revision": revision,
                  "answer_sha256": hashlib.sha256(answer.encode()).hexdigest() if answer is not None else None,
                  "count": count}
        if self.content:
            record.update(question=question, answer=answer)
        if details is not None:
            record["details"] = details
        with self._thread_lock, self._lock:
            seq, prev = _head(self.path)
            record = {"seq": seq + 1, **record, "prev": prev}
            record["hash"] = _digest(record)
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return record


def _head(path: Path) -> tuple[int, str]:
    """The last record's sequence number and hash (0 and the genesis hash for an empty log), read from the
    file's end."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            block = min(size, 1 << 16)
            f.seek(size - block)
            lines = [line for line in f.read().splitlines() if line.strip()]
    except FileNotFoundError:
        return 0, GENESIS
    if not lines:
        return 0, GENESIS
    last = json.loads(lines[-1])
    return int(last["seq"]), str(last["hash"])


@dataclass(frozen=True)
class Verification:
    records: int  # intact records read before the first problem (all of them when ok)
    head: str  # the last intact record's hash
    problem: str | None = None  # None: the chain is intact
    line: int | None = None  # the first bad line, counted from 1

    @property
    def ok(self) -> bool:
        return self.problem is None


def verify(path: Path) -> Verification:
    """Walk the chain from the first line; stop at the first record that is not what the chain says."""
    prev, seq = GENESIS, 0
    for number, line in enumerate(_lines(path), start=1):
        try:
            record = json.loads(line)
            stored, expected = record["hash"], _digest(record)
        except (ValueError, KeyError, TypeError):
            return Verification(seq, prev, f"line {number} is not an audit record (edited or cut)", number)
        if stored != expected:
            return Verification(seq, prev, f"line {number} (record {record.get('seq')}) was changed: its content "
                                           "does not match its hash", number)
        if record.get("prev") != prev or record.get("seq") != seq + 1:
            return Verification(seq, prev, f"line {number} (record {record.get('seq')}) does not follow record "
                                           f"{seq}: a record was removed, inserted or moved", number)
        prev, seq = stored, seq + 1
    return Verification(seq, prev)


def _lines(path: Path) -> Iterator[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.strip():
                    yield line
    except FileNotFoundError:
        return


def export_csv(path: Path, start: date | None = None, end: date | None = None) -> tuple[str, int]:
    """The records whose day (UTC) is within ``start``..``end`` (both included), as CSV (lists joined by
    spaces), and how many there are."""
    out, rows = io.StringIO(), 0
    writer = csv.writer(out)
    writer.writerow([*FIELDS, "hash"])
    for line in _lines(path):
        record = json.loads(line)
        day = datetime.fromisoformat(record["time"]).date()
        if (start and day < start) or (end and day > end):
            continue
        writer.writerow([_cell(record.get(f)) for f in (*FIELDS, "hash")])
        rows += 1
    return out.getvalue(), rows


def _cell(value) -> str:
    """A CSV cell; text a spreadsheet would take for a formula is quoted with a leading apostrophe."""
    if isinstance(value, dict):
        value = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    text = " ".join(value) if isinstance(value, list) else "" if value is None else str(value)
    return "'" + text if len(text) > 1 and text[0] in "=+-@" else text
