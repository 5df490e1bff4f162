"""Prompt templates as files (Jinja, StrictUndefined) and a tiny ``render()``. Imports nothing.

Templates live in ``templates/{name}.{language}.j2``; every name exists in every language.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

TEMPLATE_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("en", "zh")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")
_SOURCE_TAG = re.compile(r"<(/?)(source)", re.I)


def as_data(text: str) -> str:
    """Quoted document text: it cannot open or close a ``<source>`` block and so pass for our words."""
    return _SOURCE_TAG.sub(r"‹\1\2", str(text))


def as_attribute(text: str) -> str:
    """A value inside ``attr="..."``: no quote or angle bracket can end it."""
    return as_data(text).replace('"', "'").replace("<", "‹").replace(">", "›").replace("\n", " ")


@lru_cache(maxsize=1)
def _environment():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # prompts are plain text for a model, not HTML
    )
    env.filters.update(data=as_data, attr=as_attribute)
    return env


def render(name: str, language: str = "en", **variables) -> str:
    """Render ``templates/{name}.{language}.j2``; a missing variable is an error, never blank."""
    if language not in LANGUAGES:
        raise ValueError(f"no prompts for language {language!r}; available: {', '.join(LANGUAGES)}")
    return _environment().get_template(f"{name}.{language}.j2").render(**variables).strip()


def detect_language(text: str, default: str = "en") -> str:
    """``zh`` when Chinese makes up at least a third of the words (each Chinese character counted as a
    word, every four Latin letters as one), else ``en``.

    Counting characters (Chinese has no spaces) keeps a Chinese question with an English term in it
    Chinese, and an English question quoting one Chinese word English.
    """
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if cjk == 0 and latin == 0:
        return default
    return "zh" if cjk * 3 >= (cjk + latin / 4) else "en"
