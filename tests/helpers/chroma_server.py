"""A real Chroma server (``chroma run`` on 127.0.0.1, from the chromadb package beside this Python) for
the tests whose vector index lives in a server."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.server import free_port


@dataclass
class ChromaServer:
    url: str
    process: subprocess.Popen

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@contextlib.contextmanager
def chroma_server(folder: Path) -> Iterator[ChromaServer]:
    """Start a server keeping its data in ``folder``; skip the test when chromadb has no server command."""
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists():
        pytest.skip("the chroma command (chromadb's server) is not installed beside this Python")
    import chromadb

    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    with (folder / "chroma.log").open("w") as log:
        process = subprocess.Popen([str(chroma), "run", "--path", str(folder / "data"), "--host", "127.0.0.1",
                                    "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while True:
            try:
                chromadb.HttpClient(host="127.0.0.1", port=port).heartbeat()
                break
            except Exception:  # noqa: BLE001  not up yet
                if time.monotonic() > deadline or process.poll() is not None:
                    process.kill()
                    pytest.fail("the Chroma server did not start: " + (folder / "chroma.log").read_text()[-2000:])
                time.sleep(0.3)
        running = ChromaServer(f"http://127.0.0.1:{port}", process)
        try:
            yield running
        finally:
            if process.poll() is None:
                running.stop()
