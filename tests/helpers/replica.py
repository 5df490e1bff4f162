"""A second app process for the shared-knowledge-base tests: opens the knowledge base in DATA with its
index in the Chroma server at URL (the same fakes as the test), does one thing, prints JSON.

    python -m tests.helpers.replica DATA URL ingest FILE...
    python -m tests.helpers.replica DATA URL search QUERY
    python -m tests.helpers.replica DATA URL delete NAME
    python -m tests.helpers.replica DATA URL abandon FILE...   ingest, then exit without closing (a crash)

An empty URL keeps the index on local disk.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def open_shared(data: Path, url: str):
    """The crash tests' knowledge base (same fakes), with its index in the Chroma server at ``url``."""
    from tests.helpers.crash import open_kb

    return open_kb(data, chroma_url=url or None, ocr=True)


def main(argv: list[str]) -> int:
    data, url, command, *args = argv
    kb = open_shared(Path(data), url)
    if command == "abandon":  # no close(): the process ends as a crash would leave it
        reports = [kb.ingest(Path(a), source=Path(a).name) for a in args]
        print(json.dumps([r.status for r in reports]), flush=True)
        os._exit(0)
    try:
        if command == "ingest":
            out = [{"source": r.source, "status": r.status, "error": r.error}
                   for r in (kb.ingest(Path(a), source=Path(a).name) for a in args)]
        elif command == "search":
            out = [hit.chunk.source for hit in kb.search(args[0], k=4)]
        elif command == "delete":
            out = kb.delete(args[0]).source
        else:
            raise SystemExit(f"unknown command {command}")
    finally:
        kb.close()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
