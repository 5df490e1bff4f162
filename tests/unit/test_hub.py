"""A first run without network, known in seconds: a checkpoint that is neither a local folder nor in the
Hugging Face cache, with a hub that refuses or never answers, is refused at once with the ways on; one that
is here loads with no network wait. Nothing here reaches the internet: the "hub" is a closed port on
127.0.0.1 or a local socket that accepts connections and never answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from retrieval import hub
from retrieval.hub import CheckpointUnavailableError, origin
from tests.helpers.fake_hub import put_in_cache

ROOT = Path(__file__).resolve().parents[2]
WAYS_ON = ("make demo", "python -m assistant download", "ASSISTANT_OFFLINE=true")


def free_port() -> int:
    """A port nobody listens on (bound, read, released): connecting to it is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def blackhole():
    """A socket that completes connections (its backlog) but never reads or answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def online(monkeypatch):
    """The test session is offline (conftest); these tests need the check that runs when it is not."""
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    hub.forget_probes()
    yield
    hub.forget_probes()


def assert_ways_on(message: str, checkpoint: str, variable: str) -> None:
    assert checkpoint in message and variable in message, message
    for way in WAYS_ON:
        assert way in message, (way, message)
    assert "Traceback" not in message


def test_a_refused_hub_is_known_at_once_with_the_ways_on(tmp_path, online):
    started = time.monotonic()
    with pytest.raises(CheckpointUnavailableError) as err:
        origin("example-org/not-cached", what="model", variable="ASSISTANT_MODEL__CHECKPOINT",
               endpoint=f"http://127.0.0.1:{free_port()}", cache_dir=tmp_path / "empty-cache")
    assert time.monotonic() - started < 30  # minutes before this check; a refusal is immediate
    assert_ways_on(str(err.value), "example-org/not-cached", "ASSISTANT_MODEL__CHECKPOINT")
    assert "no connection to 127.0.0.1" in str(err.value)


def test_a_hub_that_never_answers_is_given_up_at_the_deadline(tmp_path, online, blackhole):
    started = time.monotonic()
    with pytest.raises(CheckpointUnavailableError) as err:
        origin("example-org/not-cached", what="embedding model", variable="ASSISTANT_RETRIEVAL__EMBEDDER",
               endpoint=blackhole, cache_dir=tmp_path / "empty-cache", timeout=1.0)
    elapsed = time.monotonic() - started
    assert elapsed < 30, elapsed  # bounded by the 1 s timeout (plus thread slack), not by retries
    assert "did not answer within 1 s" in str(err.value)
    assert_ways_on(str(err.value), "example-org/not-cached", "ASSISTANT_RETRIEVAL__EMBEDDER")


def test_offline_mode_refuses_without_any_probe(tmp_path, monkeypatch):
    monkeypatch.setattr(hub, "_probe", lambda *a: pytest.fail("offline: no probe"))
    with pytest.raises(CheckpointUnavailableError, match="offline mode is on") as err:
        origin("example-org/not-cached", what="model", variable="ASSISTANT_MODEL__CHECKPOINT",
               cache_dir=tmp_path)
    assert_ways_on(str(err.value), "example-org/not-cached", "ASSISTANT_MODEL__CHECKPOINT")


def test_what_is_here_is_never_probed(tmp_path, online, monkeypatch):
    monkeypatch.setattr(hub, "_probe", lambda *a: pytest.fail("a local checkpoint needs no network"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    put_in_cache(tmp_path / "cache", "example-org/cached", folder)
    assert origin(str(folder), what="model", variable="V") == "folder"
    assert origin("example-org/cached", what="model", variable="V", cache_dir=tmp_path / "cache") == "cache"


def test_one_probe_serves_the_loaders_that_start_together(tmp_path, online, monkeypatch):
    calls = []
    monkeypatch.setattr(hub, "_probe", lambda endpoint, timeout: calls.append(endpoint) or "no connection to x")
    for _ in range(3):  # the model, the embedder and the text embedder
        with pytest.raises(CheckpointUnavailableError):
            origin("example-org/not-cached", what="model", variable="V", endpoint="http://x", cache_dir=tmp_path)
    assert calls == ["http://x"]


# -- through the real entry points, in a fresh process (the hub client reads HF_HOME and HF_ENDPOINT
# when it is imported) -----------------------------------------------------------------------------


def fresh_env(tmp_path: Path, endpoint: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.startswith("ASSISTANT_")}
    (tmp_path / "hf").mkdir(exist_ok=True)
    env.update(HF_HOME=str(tmp_path / "hf"), HF_ENDPOINT=endpoint, ASSISTANT_DATA_DIR=str(tmp_path / "data"),
               PYTHONPATH=str(ROOT), HF_HUB_DISABLE_TELEMETRY="1")
    return env


def test_the_cli_says_it_in_seconds(tmp_path):
    """``python -m assistant ask`` with default settings, an empty cache and no hub: the model's message."""
    env = fresh_env(tmp_path, f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "assistant", "ask", "hello", "--no-knowledge"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - started
    assert out.returncode == 1, out.stderr
    assert_ways_on(out.stderr, "HuggingFaceTB/SmolVLM-256M-Instruct", "ASSISTANT_MODEL__CHECKPOINT")
    assert str(tmp_path) not in out.stderr.replace(str(tmp_path / "data"), "")
    assert elapsed < 60, elapsed  # importing torch included; it took 151 s before


STATUS_SCRIPT = textwrap.dedent("""
    import time
    from assistant.composition import build_workspaces, configure_environment
    from assistant.settings import Settings
    from ui.render import status_markdown

    settings = Settings()
    configure_environment(settings)
    started = time.monotonic()
    workspaces = build_workspaces(settings)
    while any(s.state == "loading" for s in workspaces.status()) and time.monotonic() - started < 200:
        time.sleep(0.1)
    print(f"settled after {time.monotonic() - started:.1f} s")
    print(status_markdown(workspaces.status()))
    workspaces.close()
""")


def test_the_app_status_line_says_it_in_seconds(tmp_path, blackhole):
    """What ``make run`` builds (default settings), with a hub that accepts and never answers: the status
    line shows each model's message, with the ways on, seconds after the start."""
    env = fresh_env(tmp_path, blackhole)
    out = subprocess.run([sys.executable, "-c", STATUS_SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    settled = float(out.stdout.split("settled after ")[1].split(" s")[0])
    assert settled < 60, out.stdout  # three models checked, each bounded by the 3 s probe, which they share
    for name in ("HuggingFaceTB/SmolVLM-256M-Instruct", "google/siglip2-base-patch16-256"):
        line = next(line for line in out.stdout.splitlines() if name in line)
        assert 'class="state failed"' in line and "did not answer within 3 s" in line
        for way in WAYS_ON:
            assert way in line


LOAD_SCRIPT = textwrap.dedent("""
    import sys, time
    from retrieval.embedders import TransformersEmbedder

    started = time.monotonic()
    for checkpoint in sys.argv[1:]:
        embedder = TransformersEmbedder.from_pretrained(checkpoint)
        print(checkpoint, embedder.dim)
    print(f"loaded in {time.monotonic() - started:.1f} s")
""")


def test_a_cached_or_local_model_loads_with_the_hub_unreachable(tmp_path, blackhole):
    """A hub id found in the cache, and a local folder, load with ``local_files_only``: no network wait
    even though the hub given would hang every request."""
    from tests.helpers.tiny_models import build_clip

    folder = build_clip(tmp_path / "clip")
    env = fresh_env(tmp_path, blackhole)
    put_in_cache(tmp_path / "hf" / "hub", "tiny-org/clip", folder)
    out = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, "tiny-org/clip", str(folder)], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tiny-org/clip" in out.stdout and str(folder) in out.stdout
    assert float(out.stdout.split("loaded in ")[1].split(" s")[0]) < 30, out.stdout


def test_download_says_at_once_that_the_hub_cannot_be_reached(tmp_path):
    port = free_port()
    out = subprocess.run([sys.executable, "-m", "assistant", "download"], cwd=tmp_path,
                         env=fresh_env(tmp_path, f"http://127.0.0.1:{port}"), capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 1
    assert f"Cannot download: no connection to 127.0.0.1:{port}" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
