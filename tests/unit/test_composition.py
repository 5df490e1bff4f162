import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
from assistant.composition import build_pipeline
from assistant.settings import Settings
p = build_pipeline(Settings())
p.model.loader.get(timeout=120); p.knowledge.loader.get(timeout=120)
print([s.state for s in p.status()])
"""


def test_model_and_knowledge_base_load_together_in_a_fresh_process(tmp_path, tiny_models):
    # Both loaders import transformers from their own threads at once; unguarded, that failed about
    # half the time with "cannot import name ...". Three fresh processes make a regression visible.
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ASSISTANT_DATA_DIR": str(tmp_path / "data"),
           "ASSISTANT_MODEL__CHECKPOINT": str(tiny_models["qwen2_5_vl"]),
           "ASSISTANT_RETRIEVAL__EMBEDDER": str(tiny_models["clip"]), "ASSISTANT_RETRIEVAL__TEXT_EMBEDDER": ""}
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True,
                             timeout=180)
        assert out.returncode == 0, out.stderr[-2000:]
        assert out.stdout.strip().splitlines()[-1] == "['ready', 'ready']"
