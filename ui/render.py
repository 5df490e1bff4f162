"""Pure render helpers: events and hits -> what the side panels show. No Gradio import."""

from __future__ import annotations

import re

from assistant.loading import LoadStatus
from assistant.pipeline import Source

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~-])")


def escape_markdown(text: str) -> str:
    """Document text shown as data: no markdown, links, images or HTML can come alive."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def snippet(text: str, limit: int = 220) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def sources_markdown(sources: tuple[Source, ...], cited: tuple[int, ...] | None = None,
                     notice: str | None = None) -> str:
    if notice:
        return f"**Sources**\n\n_{escape_markdown(notice)}_"
    if not sources:
        return "**Sources**\n\n_No sources used for this answer._"
    lines = ["**Sources**", ""]
    for s in sources:
        used = cited is not None and s.number in cited
        mark = " ✓ cited" if used else ""
        body = "" if s.kind == "image" else f"  \n> {escape_markdown(snippet(s.text))}"
        lines.append(f"**[{s.number}]** {escape_markdown(s.name)} · {escape_markdown(s.locator)} · "
                     f"score {s.score:.2f}{mark}{body}\n")
    return "\n".join(lines)


def gallery_items(sources: tuple[Source, ...]) -> list[tuple[str, str]]:
    return [(s.thumbnail, f"[{s.number}] {s.name}") for s in sources if s.thumbnail]


def status_markdown(statuses: list[LoadStatus]) -> str:
    icons = {"ready": "🟢", "loading": "⏳", "failed": "🔴", "idle": "⚪"}
    return "  \n".join(f"{icons[s.state]} {escape_markdown(s.message)}" for s in statuses)


def documents_table(docs) -> list[list]:
    return [[d.source, d.kind, d.chunks, d.doc_id] for d in docs]


def ingest_summary(reports) -> str:
    if not reports:
        return "No files given."
    lines = [f"- **{r.status}** {escape_markdown(r.source)}"
             + (f": {escape_markdown(r.error)}" if r.error else f" ({r.chunks} chunks)") for r in reports]
    ok = sum(r.ok for r in reports)
    return f"{ok} of {len(reports)} files in the knowledge base.\n\n" + "\n".join(lines)
