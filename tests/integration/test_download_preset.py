"""``python -m assistant download --preset NAME`` for an air-gapped site: the sizes are shown before anything
is fetched, a preset with terms of its own shows them, and the cache it fills lets a machine with no hub at
all run the preset (ASSISTANT_OFFLINE=true). The hub is a local fake serving tiny random models."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.models.presets import preset
from tests.helpers.fake_hub import serve_hub
from tests.helpers.tiny_models import build_gemma3, build_qwen3_vl, build_siglip

ROOT = Path(__file__).resolve().parents[2]
EMBEDDER = "org/tiny-siglip"


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def repos(tmp_path_factory):
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("hub-repos")
    return {preset("qwen3-vl-2b").checkpoint: build_qwen3_vl(root / "qwen3"),
            preset("medgemma-4b").checkpoint: build_gemma3(root / "gemma3"),
            EMBEDDER: build_siglip(root / "siglip")}


def run(args, home: Path, data: Path, **extra) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") and not k.startswith("ASSISTANT_")}
    env.update(HF_HOME=str(home), PYTHONPATH=str(ROOT), ASSISTANT_DATA_DIR=str(data),
               ASSISTANT_RETRIEVAL__EMBEDDER=EMBEDDER, ASSISTANT_RETRIEVAL__TEXT_EMBEDDER="",
               ASSISTANT_RETRIEVAL__OCR="false", **extra)
    return subprocess.run([sys.executable, "-m", "assistant", *args], env=env, capture_output=True, text=True,
                          timeout=300, cwd=data.parent)


def test_download_a_preset_shows_sizes_first_then_runs_without_a_hub(repos, tmp_path, red_png):
    home, data = tmp_path / "hf", tmp_path / "data"
    checkpoint = preset("qwen3-vl-2b").checkpoint
    with serve_hub(repos) as (url, seen):
        out = run(["download", "--preset", "qwen3-vl-2b"], home, data, HF_ENDPOINT=url)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    model_line = next(i for i, line in enumerate(lines) if line.startswith(f"{checkpoint} (Apache-2.0): "))
    total = next(i for i, line in enumerate(lines) if line.startswith("total: "))
    fetched = next(i for i, line in enumerate(lines) if line.startswith(f"{checkpoint}: /"))
    assert model_line < total < fetched  # sizes first, then the download
    expected = (size_of(repos[checkpoint]) + size_of(repos[EMBEDDER])) / 1e6
    assert lines[total] == f"total: {expected:.1f} MB", (lines[total], expected)
    assert not any(preset("medgemma-4b").checkpoint in p for p in seen)  # only what the preset needs

    # The machine of the site: no hub at all, offline mode, the cache copied over.
    answer = run(["ask", "What is in the picture?", "--image", str(red_png), "--no-knowledge"], home, data,
                 ASSISTANT_OFFLINE="true", ASSISTANT_MODEL__PRESET="qwen3-vl-2b", ASSISTANT_MODEL__DEVICE="cpu",
                 ASSISTANT_MODEL__MAX_NEW_TOKENS="4", HF_ENDPOINT="http://127.0.0.1:9")
    assert answer.returncode == 0, answer.stderr[-3000:]


def test_a_preset_with_its_own_terms_shows_them_before_downloading(repos, tmp_path):
    with serve_hub(repos) as (url, _):
        out = run(["download", "--preset", "medgemma-4b"], tmp_path / "hf", tmp_path / "data", HF_ENDPOINT=url)
    assert out.returncode == 0, out.stderr[-3000:]
    terms = out.stdout.index("Health AI Developer Foundations terms of use")
    assert terms < out.stdout.index(f"{preset('medgemma-4b').checkpoint}: /")


def test_an_unknown_preset_or_model_is_named(repos, tmp_path):
    with serve_hub(repos) as (url, _):
        out = run(["download", "--preset", "qwen9"], tmp_path / "hf", tmp_path / "data", HF_ENDPOINT=url)
        assert out.returncode != 0 and "qwen9" in out.stderr and "qwen3-vl-4b" in out.stderr
        assert "Traceback" not in out.stderr
        missing = run(["download"], tmp_path / "hf", tmp_path / "data", HF_ENDPOINT=url,
                      ASSISTANT_MODEL__CHECKPOINT="org/no-such-model")
    assert missing.returncode != 0 and "org/no-such-model" in missing.stderr and "Traceback" not in missing.stderr
