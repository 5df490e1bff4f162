"""Prompt templates as files (Jinja, StrictUndefined) and a tiny ``render()``. Imports nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("en",)


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # prompts are plain text for a model, not HTML
    )


def render(name: str, language: str = "en", **variables) -> str:
    """Render ``templates/{name}.{language}.j2``; a missing variable is an error, never blank."""
    if language not in LANGUAGES:
        raise ValueError(f"no prompts for language {language!r}; available: {', '.join(LANGUAGES)}")
    return _environment().get_template(f"{name}.{language}.j2").render(**variables).strip()
