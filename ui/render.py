"""Pure render helpers: events and hits -> what the panels show. No Gradio import.

Everything that came from a document or from the model is made inert here: escaped into HTML, or, for
the model's markdown, stripped of the ways markdown can load a resource or run a script.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from assistant.loading import LoadStatus
from assistant.pipeline import Source
from retrieval.types import view_of

_CODE = re.compile(r"(```.*?(?:```|$)|`[^`\n]*`)", re.S)
_CITATION = re.compile(r"\[(\d{1,3})\]")
_JS_LINK = re.compile(r"\]\(\s*(?:javascript|data|vbscript):", re.I)


def message_markdown(text: str) -> str:
    """A message the product wrote (a status, an error, a notice), made inert, its ``~`` kept literal
    (``~/.cache`` twice on a line must not strike the text between them through)."""
    return safe_markdown(text, literal_tildes=True)


def safe_markdown(text: str, n_sources: int = 0, *, literal_tildes: bool = False) -> str:
    """Markdown from the model (or any text we did not write), made inert, with each valid ``[n]``
    linked to source card n.

    Outside code, ``<`` is escaped (no HTML element can be created: no <script>, <img>, <iframe>, <style>),
    ``![`` loses its image meaning (no remote image loads), and script/data links are disarmed.
    Code spans and blocks are left alone: they render as text anyway.
    """
    parts = _CODE.split(text)
    for i in range(0, len(parts), 2):  # even parts are outside code
        prose = parts[i].replace("<", "&lt;").replace("![", "!\\[")
        prose = _JS_LINK.sub("](#", prose)
        if literal_tildes:
            prose = prose.replace("~", "\\~")
        parts[i] = _CITATION.sub(lambda m: _cite(m, n_sources), prose)
    return "".join(parts)


def _cite(match: re.Match, n_sources: int) -> str:
    n = int(match.group(1))
    if not 1 <= n <= n_sources:
        return match.group(0)
    return f'<a href="#source-{n}" class="cite" data-source="{n}">[{n}]</a>'


def snippet(text: str, limit: int = 220) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def thumbnail_url(path: str) -> str:
    """A thumbnail's URL on the owner-checked file route (relative: works behind a prefix). Only the file
    name travels; the route finds it in the requesting user's own knowledge base."""
    return "files/kb/" + quote(Path(path).name)


def chat_image_url(conversation_id: str, ref: str) -> str:
    return f"files/chat/{quote(conversation_id)}/{quote(ref)}"


def sources_html(sources: tuple[Source, ...], cited: tuple[int, ...] | None = None,
                 notice: str | None = None) -> str:
    """Source cards: thumbnail or text icon, file, location, score. Cited cards are marked and the rest
    dimmed once the answer is complete; a card opens to show the source larger."""
    if notice:
        return f'<div class="sources-empty">{html.escape(notice)}</div>'
    if not sources:
        return '<div class="sources-empty">—</div>'
    cited = cited or None  # an answer that cites nothing dims nothing
    return '<div class="sources">' + "".join(_card(s, cited) for s in sources) + "</div>"


def hits_html(hits, words: Callable[..., str] | None = None) -> str:
    """Knowledge-base search results as cards, open: thumbnail, file, location, labelled score, passage."""
    if not hits:
        return f'<div class="sources-empty">{html.escape((words or _english)("no_hits"))}</div>'
    return ('<div class="sources hits">'
            + "".join(_card(Source(i, h), None, opened=True) for i, h in enumerate(hits, 1)) + "</div>")


def _english(key: str, **values) -> str:
    from ui.i18n import say

    return say("en", key, **values)


def _card(s: Source, cited: tuple[int, ...] | None, *, opened: bool = False) -> str:
    is_cited = cited is not None and s.number in cited
    state = "" if cited is None else (" cited" if is_cited else " uncited")
    name, locator, text = html.escape(s.name), html.escape(s.locator), html.escape(s.text)
    if s.thumbnail:
        url = html.escape(thumbnail_url(s.thumbnail))
        regions = s.regions  # where the passage lies on its page: the small view centred on it, marked on the large
        focus = f' style="object-position: 50% {_middle(regions):.0%}"' if regions else ""
        thumb = f'<img class="thumb" src="{url}" alt="{name}" loading="lazy"{focus}>'
        marks = "".join(f'<i class="region" style="left:{left:.2%};top:{top:.2%};width:{right - left:.2%};'
                        f'height:{bottom - top:.2%}"></i>' for left, top, right, bottom in regions)
        view = view_of(s.thumbnail)  # the opened card shows the page as the model is shown it (a scan readable)
        big = html.escape(thumbnail_url(str(view))) if view.is_file() else url
        large = f'<span class="page-view"><img class="large" src="{big}" alt="{name}" loading="lazy">{marks}</span>'
    else:
        thumb, large = '<div class="thumb text-thumb">¶</div>', ""
    body = f'<blockquote>{text}</blockquote>' if text and (s.kind == "text" or opened) else ""
    anchor = "hit" if opened else "source"
    return (f'<details class="source{state}" id="{anchor}-{s.number}" data-source="{s.number}"'
            f'{" open" if opened else ""}>'
            f'<summary>{thumb}<span class="meta"><b>[{s.number}]</b> {name}<br>'
            f'<small>{locator} · <span title="cosine similarity to the question, 0 to 1">similarity '
            f'{s.score:.2f}</span>{" · cited" if is_cited else ""}</small>'
            f'</span></summary>{"" if opened else large}{body}</details>')


def _middle(regions) -> float:
    """The vertical middle of the passage's regions, a fraction of the page's height."""
    return (min(r[1] for r in regions) + max(r[3] for r in regions)) / 2


def question_markdown(question: str, image_urls: list[str]) -> str:
    """The user's message in the chat: their images (from the owner-checked route), then their text, made
    inert like anything else we did not write."""
    images = "".join(f'<img class="chat-image" src="{html.escape(u)}" alt="image {i}">'
                     for i, u in enumerate(image_urls, 1))
    return "\n\n".join(p for p in (images, safe_markdown(question)) if p) or "…"


def answer_markdown(answer: str, n_sources: int, annotated_urls: list[str] = (), notice: str | None = None,
                    consistency: dict | None = None, words: Callable[..., str] | None = None,
                    disclaimer: str = "") -> str:
    """The assistant's message: the answer as markdown with citation links, the images it located boxes
    on, its agreement with its images (flagged when low), a notice (an error, a stop) the model never
    sees, and last, under any answer text, the medical mode's disclaimer (display only: never stored)."""
    parts = [safe_markdown(answer, n_sources)] if answer else []
    parts += [f'<img class="chat-image located" src="{html.escape(u)}" alt="located">' for u in annotated_urls]
    if line := consistency_line(consistency, words):
        parts.append(line)
    if notice:
        parts.append(f"⚠️ {message_markdown(notice)}")
    if answer and disclaimer:
        parts.append(disclaimer_line(disclaimer))
    return "\n\n".join(parts) or "…"


def disclaimer_line(text: str) -> str:
    """The medical mode's line under an answer, set apart from the model's words."""
    return f'<small class="medical-note">{html.escape(text)}</small>'


def consistency_line(consistency: dict | None, words: Callable[..., str] | None = None) -> str:
    """A short line under an answer: "Image agreement 0.82" (each image's score in its title), and the warning
    when the score is below the threshold. Nothing when there is no score."""
    if not consistency or consistency.get("score") is None:
        return ""
    say = words or _english
    each = " · ".join(say("your_image" if i["kind"] == "image" else "cited_picture", n=i["number"])
                      + f"{say('colon')}{i['score']:.2f}" for i in consistency.get("images", []))
    title = html.escape(f"{say('agreement_title')} {each}".strip(), quote=True)
    score = say("agreement", score=f"{consistency['score']:.2f}")
    line = f'<small class="consistency" title="{title}">{html.escape(score)}</small>'
    if consistency.get("flagged"):
        line += f' <small class="consistency-flag">⚠️ {html.escape(say("may_not_match"))}</small>'
    return line


def hit_data(hit) -> dict:
    """A hit as API callers get it: the thumbnail as its URL on the owner-checked route, never a path."""
    data = hit.to_dict()
    data["thumbnail"] = thumbnail_url(data["thumbnail"]) if data.get("thumbnail") else None
    return data


@dataclass(frozen=True)
class StoredSource:
    """A source as a stored turn remembers it (no passage text: a deleted document's words are not kept in
    conversations), drawn as a card when a conversation is resumed."""

    number: int
    name: str
    locator: str
    kind: str
    score: float
    thumbnail: str | None = None
    text: str = ""
    regions: tuple = ()  # a stored turn keeps no regions: its card shows the page unmarked


def stored_sources(records: tuple[dict, ...], thumbnail: Callable[[str], Path | None]) -> tuple[StoredSource, ...]:
    """Cards for a stored turn's sources; a thumbnail only while its document is still in a knowledge base
    the user can read (``thumbnail(name)``)."""
    cards = []
    for r in records:
        thumb = f"{r.get('chunk_id')}.jpg" if r.get("chunk_id") and r.get("kind") != "text" else None
        cards.append(StoredSource(int(r["number"]), str(r.get("name", "")), str(r.get("locator", "")),
                                  str(r.get("kind", "text")), float(r.get("score", 0.0)),
                                  thumb if thumb and thumbnail(thumb) else None))
    return tuple(cards)


def sources_data(sources: tuple[Source, ...], cited: tuple[int, ...] = ()) -> list[dict]:
    """The same sources as data, for API callers."""
    return [{"number": s.number, **hit_data(s.hit), "name": s.name, "cited": s.number in cited}
            for s in sources]


SOURCES_CSS = """
#kb-report:has(.wrap:not(.hide)) { min-height: 64px; }  /* an upload's progress, shown in the report's place */
.sources { display: flex; flex-direction: column; gap: 6px; }
.sources details.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px; }
.sources details.source.cited { border-color: var(--color-accent); box-shadow: 0 0 0 1px var(--color-accent); }
.sources details.source.uncited { opacity: 0.45; }
.sources summary { display: flex; gap: 8px; align-items: center; cursor: zoom-in; list-style: none; }
.sources details[open] summary { cursor: zoom-out; }
.sources .thumb { width: 64px; height: 64px; object-fit: cover; border-radius: 4px; flex: none; }
.sources .text-thumb { display: flex; align-items: center; justify-content: center; font-size: 28px;
  background: var(--background-fill-secondary); }
.sources img.large { max-width: 100%; margin-top: 6px; border-radius: 4px; display: block; }
.sources .page-view { position: relative; display: inline-block; max-width: 100%; }
.sources .page-view i.region { position: absolute; background: rgb(253, 224, 71); mix-blend-mode: multiply;
  box-shadow: 0 0 0 2px rgb(253, 224, 71); border-radius: 2px; pointer-events: none; }
.sources blockquote { margin: 6px 0 0; font-size: 0.9em; white-space: pre-wrap; }
.sources-empty { color: var(--body-text-color-subdued); }
.hits details.source summary { cursor: default; }
.state.ready { color: #16a34a; } .state.loading { color: #d97706; } .state.failed { color: #dc2626; }
.state.idle { color: #9ca3af; }
@media (max-width: 768px) {  /* phone: the answer's sources right under the chat, before settings and examples */
  #chat-row { flex-direction: column; }
  #chat-main { display: contents; }
  #chatbot-box { order: 1; } #sources-column { order: 2; } #chat-extras { order: 3; } #conv-column { order: 4; }
}
a.cite { text-decoration: none; font-weight: 600; }
#chatbot small.consistency { color: var(--body-text-color-subdued); cursor: help; }
#chatbot small.consistency-flag { color: #b45309; font-weight: 600; }
#chatbot img.chat-image { max-width: 320px; max-height: 320px; border-radius: 6px; display: inline-block;
  margin: 2px; }
#title p { font-size: 1.5rem !important; font-weight: 700 !important; margin: 0; }
#chatbot small.medical-note { display: block; border-top: 1px solid var(--border-color-primary); padding-top: 4px;
  color: #92400e; font-weight: 600; }
.dark #chatbot small.medical-note { color: #fbbf24; }
#medical-banner { background: #fef3c7; border: 2px solid #d97706; border-radius: 8px; padding: 8px 14px; }
#medical-banner, #medical-banner * { color: #78350f !important; }
#medical-banner p { margin: 0; font-size: 1.05rem; }
"""


def status_markdown(statuses: list[LoadStatus], words: Callable[..., str] | None = None,
                    explain: Callable[[str], str] = str) -> str:
    """One line per component, its state as a coloured dot (a character every font has, not an emoji), in
    the reader's words; a failure's own message (it says what to do) as it is."""
    say = words or _english
    states = {"ready": "ready", "loading": "loading_state", "idle": "idle"}

    def line(s: LoadStatus) -> str:
        if s.state == "failed" or words is None:
            return message_markdown(explain(s.message))
        detail = s.message.split(": ", 1)[1] if s.state == "loading" and ": " in s.message else say(states[s.state])
        if s.state == "loading":
            detail = detail.replace("loading", say("loading_state"))
        return safe_markdown(f"{say(s.label)}{say('colon')}{detail}")

    return "  \n".join(f'<span class="state {s.state}">●</span> {line(s)}' for s in statuses)


def model_note(name: str, words: Callable[..., str] | None = None) -> str:
    """The model that answers, with its licence when it is a preset's, and terms of its own in full."""
    from assistant.models.presets import for_checkpoint, is_local, public_name

    say = words or _english
    known = for_checkpoint(name)
    shown = f"{public_name(name)} ({say('local folder')})" if is_local(name) else name  # never a server path
    line = f"{say('answers')}{say('colon')}`{safe_markdown(shown)}`"
    if known is None:
        return line
    line += f" · [{known.licence}]({known.licence_url})"
    return line + (f"  \n**{say('terms')}**{say('colon')}{message_markdown(known.terms)}" if known.terms else "")


KINDS = {"text": "Text", "markdown": "Markdown", "pdf": "PDF", "html": "Web page", "docx": "Word",
         "image": "Image"}


def document_rows(docs, words: Callable[..., str] | None = None) -> list[list]:
    """The documents table: name, kind, size in pages or passages, file size, date added (no ids)."""
    say = words or _english
    rows = []
    for d in docs:
        extent = (f"{d.pages} {say('pages' if d.pages != 1 else 'page')}" if d.pages
                  else f"{d.chunks} {say('passages' if d.chunks != 1 else 'passage')}")
        rows.append([Path(d.source).name, say(KINDS.get(d.kind, d.kind)), extent, file_size(d.bytes),
                     _date(d.added)])
    return rows


def document_data(d) -> dict:
    """A document as API callers get it."""
    return {"id": d.doc_id, "name": Path(d.source).name, "kind": d.kind, "chunks": d.chunks, "pages": d.pages,
            "bytes": d.bytes, "added": _date(d.added, iso=True)}


def file_size(size: int | None) -> str:
    if size is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def _date(when: float | None, *, iso: bool = False) -> str:
    import datetime

    if not when:
        return "" if not iso else None
    moment = datetime.datetime.fromtimestamp(when, tz=datetime.timezone.utc)
    return moment.isoformat(timespec="seconds") if iso else moment.strftime("%Y-%m-%d %H:%M")


def ingest_summary(reports, words: Callable[..., str] | None = None,
                   explain: Callable[[str], str] = str) -> str:
    """The ingest report: a line per file; ``explain`` puts a file's problem in the reader's language."""
    say = words or _english
    if not reports:
        return say("choose_files")
    from retrieval.errors import without_name  # an error names its file; the line names it once

    lines = [f"- **{say(r.status)}** {safe_markdown(r.source)}"
             + (f"{say('colon')}{message_markdown(explain(without_name(r.error, r.source)))}" if r.error
                else f" ({r.chunks} {say('passages' if r.chunks != 1 else 'passage')})")
             + (f"  \n  {message_markdown(r.notice)}" if getattr(r, "notice", None) else "") for r in reports]
    ok = sum(r.ok for r in reports)
    return say("files_in_kb", ok=ok, total=len(reports)) + "\n\n" + "\n".join(lines)
