"""Several processes sharing one knowledge base through a real Chroma server (``chroma run`` on
127.0.0.1, started here): what one process ingests or deletes, another finds or no longer finds; writes
from two processes at once take turns and leave record and index consistent; an unreachable server is one
clear error. The other processes are real ones (``tests/helpers/replica.py``)."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from retrieval.errors import IndexUnreachableError, RetrievalError
from tests.helpers.chroma_server import chroma_server as chroma_server_at
from tests.helpers.crash import token_of, write_document
from tests.helpers.replica import open_shared
from tests.helpers.server import free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(tmp_path):
    with chroma_server_at(tmp_path / "chroma-server") as running:
        yield running


@pytest.fixture
def chroma_server(server) -> str:
    return server.url


def replica(data: Path, url: str, *args: str):
    done = subprocess.run([sys.executable, "-m", "tests.helpers.replica", str(data), url, *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_what_one_process_writes_the_other_finds(chroma_server, tmp_path):
    data, docs = tmp_path / "data", tmp_path / "docs"
    here = open_shared(data, chroma_server)  # this process stays open throughout, like a running app
    try:
        first, second = write_document(docs, 1), write_document(docs, 2)
        assert replica(data, chroma_server, "ingest", first) == [{"source": first.name, "status": "added",
                                                                  "error": None}]
        assert [h.chunk.source for h in here.search(token_of(first.name), k=2)][0] == first.name
        assert here.ingest(second, source=second.name).status == "added"
        assert replica(data, chroma_server, "search", token_of(second.name))[0] == second.name
        assert replica(data, chroma_server, "delete", first.name) == first.name
        assert first.name not in [h.chunk.source for h in here.search(token_of(first.name), k=4)]
        assert [d.source for d in here.documents()] == [second.name]
    finally:
        here.close()


def test_writes_from_two_processes_take_turns_and_stay_consistent(chroma_server, tmp_path):
    data, docs = tmp_path / "data", tmp_path / "docs"
    open_shared(data, chroma_server).close()  # create the record once
    batches = [[write_document(docs, i) for i in range(start, start + 4)] for start in (10, 20)]
    with ThreadPoolExecutor(2) as pool:  # two processes ingesting at the same time
        results = list(pool.map(lambda batch: replica(data, chroma_server, "ingest", *batch), batches))
    assert all(r["status"] == "added" for batch in results for r in batch)
    kb = open_shared(data, chroma_server)
    try:
        assert kb.index.repairs == []  # record and index agreed: nothing half-written by the race
        assert len(kb.documents()) == 8
        for path in batches[0] + batches[1]:
            assert kb.search(token_of(path.name), k=1)[0].chunk.source == path.name
        for space, collection in kb.index.collections.items():
            assert set(collection.get(include=[])["ids"]) == kb.records.vector_ids(space)
    finally:
        kb.close()


def test_an_unreachable_server_is_one_clear_error(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(IndexUnreachableError, match="ASSISTANT_RETRIEVAL__CHROMA_URL") as caught:
        open_shared(tmp_path / "data", url)
    assert isinstance(caught.value, RetrievalError) and url in str(caught.value)
    assert not (tmp_path / "data" / "chroma").exists()  # no local index was made instead


def test_a_server_that_goes_away_fails_requests_plainly_and_loses_nothing(server, tmp_path):
    data, docs = tmp_path / "data", tmp_path / "docs"
    kb = open_shared(data, server.url)
    try:
        kept = write_document(docs, 1)
        assert kb.ingest(kept, source=kept.name).ok
        server.stop()  # under the open knowledge base
        with pytest.raises(IndexUnreachableError, match="failed a request"):
            kb.search(token_of(kept.name))
        report = kb.ingest(write_document(docs, 2), source="doc00002.md")
        assert not report.ok and "ASSISTANT_RETRIEVAL__CHROMA_URL" in report.error
        assert [d.source for d in kb.documents()] == [kept.name]  # the record is as it was
    finally:
        kb.close()
