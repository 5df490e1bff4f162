"""Rewrite the configuration table in README.md from the Settings schema (one source of truth).

    python scripts/settings_table.py
"""

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.settings import documented_variables  # noqa: E402

rows = ["| Variable | Default | Meaning |", "| --- | --- | --- |"]
rows += [f"| `{name}` | {default} | {text} |" for name, default, text in documented_variables()]
readme = ROOT / "README.md"
text = readme.read_text(encoding="utf-8")
new = re.sub(r"\| Variable \| Default \| Meaning \|\n(?:\|.*\|\n)+", "\n".join(rows) + "\n", text)
readme.write_text(new, encoding="utf-8")
print(f"{len(rows) - 2} variables")
