import re
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.errors import ConfigurationError
from assistant.settings import Settings, documented_variables, load_settings

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


def test_values_that_cannot_be_used_are_named_by_variable_and_value(monkeypatch):
    monkeypatch.setenv("ASSISTANT_MODEL__INT4_GROUP_SIZE", "100")
    monkeypatch.setenv("ASSISTANT_UI__PORT", "abc")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = str(caught.value)
    assert "ASSISTANT_MODEL__INT4_GROUP_SIZE='100': Input should be 128, 64 or 32" in message
    assert "ASSISTANT_UI__PORT='abc'" in message


def test_a_misspelt_variable_is_reported_with_the_real_name_and_platform_variables_pass(monkeypatch, caplog):
    monkeypatch.setenv("ASSISTANT_OFLINE", "true")  # silently ignored, this would let the app go online
    monkeypatch.setenv("ASSISTANT_PORT", "tcp://10.0.0.3:7860")  # what Kubernetes sets for a service "assistant"
    monkeypatch.delenv("ASSISTANT_OFFLINE", raising=False)
    with caplog.at_level("WARNING", logger="assistant.settings"):
        settings = load_settings()
    assert settings.offline is False and settings.ui.port == 7860
    assert "ASSISTANT_OFLINE is not a setting and is ignored (did you mean ASSISTANT_OFFLINE?)" in caplog.text
    assert "ASSISTANT_PORT is not a setting" in caplog.text


@pytest.mark.parametrize("command", [["-m", "ui"], ["-m", "assistant", "docs"], ["app.py"]])
def test_entry_points_refuse_a_bad_setting_with_its_message_not_a_traceback(command, tmp_path):
    out = subprocess.run([sys.executable, *command], cwd=ROOT, capture_output=True, text=True, timeout=120,
                         env={"PATH": "/usr/bin", "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path / "kb"),
                              "ASSISTANT_MODEL__DECODER": "fast"})
    assert out.returncode == 1
    assert "ASSISTANT_MODEL__DECODER='fast': Input should be 'auto', 'static' or 'generate'" in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "kb").exists()


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
