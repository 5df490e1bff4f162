"""The app and the CLI as an operator runs them: real processes, tiny models, Chroma on disk.

- SIGTERM (``docker stop``, systemd) stops ``python -m ui`` as Ctrl-C does: exit 0, the knowledge base
  closed cleanly (its clean marker written, its lock free), so the next start is not treated as a crash.
- While the app has the knowledge base open, the CLI reads it (``docs``, ``search``, ``ask``) and a
  CLI write (``ingest``, ``delete``) is refused with a message that says why and what to do.
- ``ask --no-knowledge`` loads only the model and exits cleanly, every time (it used to abort with
  ``terminate called without an active exception`` because a loader thread was still running).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from retrieval.store import CLEAN_MARKER
from tests.helpers.server import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path, tiny_models):
    return {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
            "ASSISTANT_RETRIEVAL__EMBEDDER": str(tiny_models["clip"]), "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER": "",
            "ASSISTANT_MODEL__CHECKPOINT": str(tiny_models["qwen2_5_vl"]), "ASSISTANT_OFFLINE": "true",
            "ASSISTANT_RETRIEVAL__OCR": "false", "ASSISTANT_MODEL__MAX_NEW_TOKENS": "8",
            "ASSISTANT_MODEL__TEMPERATURE": "0", "GRADIO_ANALYTICS_ENABLED": "False"}


def cli(env, *args):
    return subprocess.run([sys.executable, "-m", "assistant", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


def lock_is_held(data: Path) -> bool:
    from filelock import FileLock, Timeout

    lock = FileLock(str(data / "knowledge.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def wait_until(condition, what: str, app: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if app.poll() is not None or time.monotonic() > deadline:
            app.kill()
            pytest.fail(f"{what}: " + log.read_text()[-3000:])
        time.sleep(0.3)


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


def example_images(port: int) -> list[str]:
    """The URLs of the images the page's config shows (the chat's examples)."""
    import json

    config = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10).read())
    found: list[str] = []

    def walk(value):
        if isinstance(value, dict):
            if str(value.get("path", "")).endswith(".png") and "/file=" in str(value.get("url", "")):
                found.append(value["url"])
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(config)
    return [url if url.startswith("http") else f"http://127.0.0.1:{port}{url}" for url in found]


def test_the_cli_reads_beside_the_app_and_sigterm_closes_the_app_cleanly(env, tmp_path):
    data = tmp_path / "data"
    note = tmp_path / "invoice.txt"
    note.write_text("The invoice total is 42 euros.", encoding="utf-8")
    assert cli(env, "ingest", note).returncode == 0  # before the app: the CLI may write

    port = free_port()
    log = tmp_path / "app.log"
    with log.open("w") as out:
        app = subprocess.Popen([sys.executable, "-m", "ui"], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                               env={**env, "ASSISTANT_UI__HOST": "127.0.0.1", "ASSISTANT_UI__PORT": str(port)})
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), "the app did not start", app, log)
        wait_until(lambda: lock_is_held(data), "the app did not open the knowledge base", app, log)
        # the chat's example images are served to the page (they were refused while the app served: the
        # files were made public only after Gradio's blocking launch returned, at shutdown)
        examples = example_images(port)
        assert examples and all(answers(url) for url in examples), examples

        listing = cli(env, "docs")
        assert listing.returncode == 0 and "1 documents" in listing.stdout and "invoice.txt" in listing.stdout
        found = cli(env, "search", "invoice total", "--k", "1")
        assert found.returncode == 0 and "invoice.txt" in found.stdout
        asked = cli(env, "ask", "What is the invoice total?")
        assert asked.returncode == 0 and asked.stdout.strip(), asked.stderr[-2000:]

        other = tmp_path / "other.txt"
        other.write_text("Something else.", encoding="utf-8")
        for args in (("ingest", other), ("delete", "invoice.txt")):
            refused = cli(env, *args)
            assert refused.returncode == 1, refused.stdout
            assert "open for writing in another process" in refused.stderr
            assert "Traceback" not in refused.stderr and str(data) not in refused.stdout

        assert not (data / CLEAN_MARKER).exists()  # while open, a kill would be a crash
        app.send_signal(signal.SIGTERM)
        assert app.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if app.poll() is None:
            app.kill()
    assert "the knowledge base was closed cleanly" in log.read_text()
    assert (data / CLEAN_MARKER).exists() and not lock_is_held(data)
    after = cli(env, "docs")  # and the record is intact
    assert after.returncode == 0 and "1 documents" in after.stdout


def test_ask_without_knowledge_exits_cleanly_every_time(env):
    for _ in range(3):
        out = cli(env, "ask", "What is this?", "--no-knowledge")
        assert out.returncode == 0, out.stderr[-2000:]
        assert "terminate called" not in out.stderr and out.stdout.strip()


def test_sigterm_stops_a_cli_ingest_with_the_knowledge_base_closed_cleanly(env, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        (folder / f"note{i:03d}.txt").write_text(f"Note {i} about topic{i}. " * 40, encoding="utf-8")
    ingest = subprocess.Popen([sys.executable, "-m", "assistant", "ingest", folder], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    data = tmp_path / "data"
    deadline = time.monotonic() + 180
    while not (data / "records.sqlite3").exists() or not lock_is_held(data):
        assert ingest.poll() is None and time.monotonic() < deadline, ingest.communicate()[1][-2000:]
        time.sleep(0.2)
    time.sleep(2)  # into the ingest
    ingest.send_signal(signal.SIGTERM)
    _, err = ingest.communicate(timeout=120)
    assert ingest.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert (data / CLEAN_MARKER).exists() and not lock_is_held(data)
    listing = cli(env, "docs")
    assert listing.returncode == 0
