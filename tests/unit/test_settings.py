import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.settings import Settings, documented_variables

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_bind_localhost_and_use_data_folder(monkeypatch):
    for key in [k for k in __import__("os").environ if k.startswith("ASSISTANT_")]:
        monkeypatch.delenv(key)
    s = Settings()
    assert s.ui.host == "127.0.0.1" and s.ui.port == 7860
    assert s.data_dir == Path("data")
    assert s.model.quantization == "auto" and s.model.double_quant is False


def test_nested_environment_variables(monkeypatch):
    monkeypatch.setenv("ASSISTANT_MODEL__CHECKPOINT", "/models/qwen")
    monkeypatch.setenv("ASSISTANT_MODEL__MAX_PIXELS", "50176")
    monkeypatch.setenv("ASSISTANT_RETRIEVAL__K", "7")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", "/srv/kb")
    s = Settings()
    assert (s.model.checkpoint, s.model.max_pixels, s.retrieval.k, s.data_dir) == (
        "/models/qwen", 50176, 7, Path("/srv/kb"))


def test_invalid_value_is_refused_with_its_name(monkeypatch):
    monkeypatch.setenv("ASSISTANT_MODEL__QUANTIZATION", "3bit")
    with pytest.raises(ValidationError, match="quantization"):
        Settings()


def test_importing_the_packages_reads_nothing_and_loads_nothing(tmp_path):
    code = ("import sys, assistant.settings, assistant.composition, assistant.pipeline, assistant.cli, "
            "retrieval.store, ui.history, ui.render; "
            "heavy = {'torch', 'transformers', 'chromadb', 'gradio'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={"PATH": "/usr/bin", "ASSISTANT_DATA_DIR": str(tmp_path / "kb"),
                              "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "[]"
    assert not (tmp_path / "kb").exists()


def test_readme_documents_every_variable():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"`(ASSISTANT_[A-Z0-9_]+)`", readme))
    expected = {name for name, _, _ in documented_variables()}
    assert expected - documented == set()
    assert documented - expected == set(), "README names variables that do not exist"
