"""Rewrite the model table in README.md from assistant/models/presets.py (one source of truth).

    python scripts/models_table.py
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.models.presets import PRESETS, markdown_table  # noqa: E402

readme = ROOT / "README.md"
text = readme.read_text(encoding="utf-8")
new = re.sub(r"\| Preset \| Checkpoint \|.*\n(?:\|.*\|\n)+", markdown_table() + "\n", text)
if new == text and markdown_table() not in text:
    raise SystemExit("README.md has no model table to replace (a line starting '| Preset | Checkpoint |')")
readme.write_text(new, encoding="utf-8")
print(f"{len(PRESETS)} presets")
