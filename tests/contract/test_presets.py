"""Every model preset loads through the product's real code: a tiny random model of the preset's
architecture is laid into a Hugging Face cache under the preset's hub id, and a fresh process with
``ASSISTANT_MODEL__PRESET=<name>`` (offline) builds the model as the app does, answers a question about an
image, and reports its family and box convention. No weights are downloaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.models.presets import CPU_DEFAULT, GPU_DEFAULT, PRESETS, markdown_table, preset
from tests.helpers.fake_hub import put_in_cache
from tests.helpers.tiny_models import PRESET_BUILDERS

ROOT = Path(__file__).resolve().parents[2]

LOAD_EACH = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from assistant.composition import build_model, configure_environment
    from assistant.settings import Settings
    from assistant.types import ChatTurn, GenerationParams

    for name in sys.argv[2:]:
        settings = Settings(offline=True, model={"preset": name, "device": "cpu", "max_pixels": 128 * 128})
        configure_environment(settings)
        model = build_model(settings).start()
        answer = "".join(model.stream([ChatTurn("user", "What is in this picture?", (Path(sys.argv[1]),))],
                                      GenerationParams(6, 0.0)))
        loaded = model.loader.get()
        print(json.dumps({"preset": name, "name": model.name, "family": loaded.model.config.model_type,
                          "boxes": model.capabilities.boxes, "answered": isinstance(answer, str)}))
        model.close()
""")


def test_every_preset_loads_through_the_product_and_answers(tmp_path, red_png):
    import torch

    torch.manual_seed(0)
    built = {family: build(tmp_path / "built" / family) for family, build in PRESET_BUILDERS.items()
             if any(p.family == family for p in PRESETS.values())}
    assert {p.family for p in PRESETS.values()} <= set(built), "a preset's family has no tiny model"
    home = tmp_path / "hf"
    for p in PRESETS.values():
        put_in_cache(home / "hub", p.checkpoint, built[p.family])
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update(HF_HOME=str(home), PYTHONPATH=str(ROOT), ASSISTANT_DATA_DIR=str(tmp_path / "data"))
    out = subprocess.run([sys.executable, "-c", LOAD_EACH, str(red_png), *PRESETS], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-4000:]
    seen = {}
    for line in out.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            seen[record["preset"]] = record
    assert set(seen) == set(PRESETS)
    for name, record in seen.items():
        p = PRESETS[name]
        assert record["name"] == p.checkpoint and record["answered"], record
        assert record["family"] == p.family, record
        assert record["boxes"] == p.boxes, record  # the family's own convention, found from the model


def test_defaults_are_permissive_and_medgemma_is_opt_in_with_its_terms():
    assert preset(GPU_DEFAULT).licence == "Apache-2.0" and preset(GPU_DEFAULT).checkpoint == "Qwen/Qwen3-VL-4B-Instruct"
    assert preset(CPU_DEFAULT).for_cpu and preset(CPU_DEFAULT).licence == "Apache-2.0"
    medgemma = preset("medgemma-4b")
    assert medgemma.terms and "not intended to directly inform clinical" in medgemma.terms
    assert all(p.terms is None for p in PRESETS.values() if p is not medgemma)
    assert "non-commercial" in preset("qwen2.5-vl-3b").licence


def test_the_readme_model_table_is_the_presets():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme, "run python scripts/models_table.py"


@pytest.mark.parametrize(("settings", "problem"), [
    ({"preset": "qwen9-vl"}, "not a preset"),
])
def test_an_unknown_preset_is_refused_by_name(settings, problem, monkeypatch):
    from assistant.errors import ConfigurationError
    from assistant.settings import load_settings

    monkeypatch.setenv("ASSISTANT_MODEL__PRESET", settings["preset"])
    with pytest.raises(ConfigurationError, match=problem) as info:
        load_settings()
    assert "ASSISTANT_MODEL__PRESET" in str(info.value) and "qwen3-vl-4b" in str(info.value)


def test_preset_and_checkpoint_together_are_refused():
    from assistant.composition import chosen_checkpoint
    from assistant.errors import ConfigurationError
    from assistant.settings import Settings

    with pytest.raises(ConfigurationError, match="not both"):
        chosen_checkpoint(Settings(model={"preset": "qwen3-vl-2b", "checkpoint": "/models/x"}), False)
    assert chosen_checkpoint(Settings(model={"preset": "qwen3-vl-2b"}), False) == "Qwen/Qwen3-VL-2B-Instruct"
    assert chosen_checkpoint(Settings(), True) == "Qwen/Qwen3-VL-4B-Instruct"
    assert chosen_checkpoint(Settings(), False) == "HuggingFaceTB/SmolVLM-256M-Instruct"
