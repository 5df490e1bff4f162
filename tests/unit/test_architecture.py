"""Dependencies point one way: ui -> assistant -> {retrieval, prompts}; retrieval and prompts import
nothing from the project; the core never imports gradio."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"ui", "assistant", "retrieval", "prompts"}
ALLOWED = {"ui": {"ui", "assistant", "retrieval"}, "assistant": {"assistant", "retrieval", "prompts"},
           "retrieval": {"retrieval"}, "prompts": {"prompts"}}


def imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_import_direction(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = (imported_top_levels(path) & PACKAGES) - ALLOWED[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, offenders


@pytest.mark.parametrize("package", ["assistant", "retrieval", "prompts"])
def test_core_does_not_import_gradio(package):
    users = [p.name for p in (ROOT / package).rglob("*.py") if "gradio" in imported_top_levels(p)]
    assert not users


def test_checker_sees_a_violation(tmp_path):
    bad = tmp_path / "x.py"
    bad.write_text("from ui.app import create_app\nimport assistant.settings\n")
    assert imported_top_levels(bad) == {"ui", "assistant"}
