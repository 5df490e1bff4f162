"""The answer pipeline: question + images -> retrieve -> prompt -> streamed answer -> citations.

It yields typed events; a UI only accumulates them. Sources arrive before the first token.
"""

from __future__ import annotations

import logging
import re
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import prompts
from assistant.consistency import Consistency, measure
from assistant.errors import InputError, KnowledgeError
from assistant.grounding import DRAW_MAX_PIXELS, draw_boxes, parse_boxes
from assistant.images import load_image
from assistant.knowledge import Knowledge
from assistant.lifecycle import Component, close_all
from assistant.loading import LoadStatus
from assistant.models.base import VisionChatModel
from assistant.shelf import Shelf
from assistant.types import ChatRequest, ChatTurn
from retrieval import Hit
from retrieval.types import PICTURES, Relevance, view_of

TOKEN_PIXELS = 28 * 28  # one visual token (Qwen2.5-VL; Qwen3-VL's are 32x32, so the budget errs low)
MIN_SOURCE_PIXELS = 64 * TOKEN_PIXELS  # a source picture smaller than this is not worth sending
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    number: int
    hit: Hit

    @property
    def name(self) -> str:
        return Path(self.hit.chunk.source).name

    @property
    def locator(self) -> str:
        return self.hit.chunk.locator

    @property
    def kind(self) -> str:
        return self.hit.chunk.kind

    @property
    def text(self) -> str:
        return self.hit.chunk.text

    @property
    def score(self) -> float:
        return self.hit.score

    @property
    def thumbnail(self) -> str | None:
        return self.hit.chunk.thumbnail

    @property
    def regions(self) -> tuple:
        """Where the passage lies on its thumbnail (a PDF page, an image read by OCR); empty if unknown."""
        return self.hit.chunk.regions

    @property
    def picture(self) -> Path | None:
        """What the model may be shown of a picture source: its view (or, for a knowledge base ingested
        before views were kept, its thumbnail); None for a passage."""
        if self.kind not in PICTURES or not self.thumbnail:
            return None
        view = view_of(self.thumbnail)
        return view if view.is_file() else Path(self.thumbnail) if Path(self.thumbnail).is_file() else None


@dataclass(frozen=True)
class Retrieved:
    sources: tuple[Source, ...]
    notice: str | None = None  # why there are no sources, when that is worth saying


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Completed:
    text: str
    cited: tuple[int, ...]
    abstained: bool = False  # strict grounding found no source: the model was not asked
    annotated: tuple[Path, ...] = ()  # the user's image with the boxes the answer located
    consistency: Consistency | None = None  # agreement with the user's images and the cited pictures


Event = Retrieved | Token | Completed
_CITATION = re.compile(r"\[(\d{1,3})\]")


def cited_numbers(text: str, n_sources: int) -> tuple[int, ...]:
    """The source numbers an answer cites, in order of first mention, ignoring numbers out of range."""
    seen: dict[int, None] = {}
    for match in _CITATION.finditer(text):
        number = int(match.group(1))
        if 1 <= number <= n_sources:
            seen.setdefault(number)
    return tuple(seen)


@dataclass(frozen=True)
class _Retrieval:
    sources: tuple[Source, ...]
    best_score: float | None
    notice: str | None = None
    reason: str = "searched"  # why there may be no sources: "off", "unavailable", "searched"
    detail: str = ""
    threshold: float = 0.0  # what best_score fell short of (the threshold of its space)


class AnswerPipeline:
    def __init__(self, model: VisionChatModel, knowledge: Knowledge | Shelf | None = None, *, k: int = 4,
                 min_score: float = 0.0, strict: bool = False, language: str = "en",
                 annotations_dir: Path | None = None, source_images: int = 2, visual_tokens: int = 3072,
                 max_pixels: int = 1024 * 28 * 28, consistency_min: float = 0.0,
                 space_scores: dict[str, float] | None = None, medical: bool = False):
        self.model = model
        self.knowledge = knowledge
        self.k = k
        self.min_score = min_score
        self.space_scores = dict(space_scores or {})  # per-space thresholds where they differ from min_score
        self.relevance = Relevance(min_score, self.space_scores)
        self.strict = strict
        self.language = language  # for questions with no words to detect a language from
        self.annotations_dir = annotations_dir
        self.source_images = source_images  # at most this many source pictures shown to the model
        self.visual_tokens = visual_tokens  # the question's visual budget, the user's images first
        self.max_pixels = max_pixels  # what the model makes of one image at most
        self.consistency_min = consistency_min  # below it an answer is flagged "may not match the image"
        self.medical = medical  # medical pilot mode: the system prompt adds the medical rules

    def with_knowledge(self, knowledge) -> AnswerPipeline:
        """The same model and options over another knowledge source (a user's shelf of knowledge bases)."""
        return AnswerPipeline(self.model, knowledge, k=self.k, min_score=self.min_score, strict=self.strict,
                              language=self.language, annotations_dir=self.annotations_dir,
                              source_images=self.source_images, visual_tokens=self.visual_tokens,
                              max_pixels=self.max_pixels, consistency_min=self.consistency_min,
                              space_scores=self.space_scores, medical=self.medical)

    def answer(self, request: ChatRequest) -> Iterator[Event]:
        if not request.question.strip() and not request.images:
            raise InputError("Type a question or add an image.")
        language = prompts.detect_language(request.question, self.language)
        found = self._retrieve(request)
        yield Retrieved(found.sources, found.notice)
        strict = self.strict if request.strict is None else request.strict
        if strict and not found.sources:
            text = prompts.render("not_found", language, best_score=found.best_score,
                                  threshold=found.threshold, reason=found.reason, detail=found.detail)
            yield Token(text)
            yield Completed(text, (), abstained=True, consistency=Consistency(None, threshold=self.consistency_min,
                                                                               reason="abstained"))
            return
        shown = self._source_pictures(request, found.sources)
        try:
            text = yield from self._generate(self._turns(request, found.sources, language, shown), request)
        finally:
            for path in shown.values():
                path.unlink(missing_ok=True)
        cited = cited_numbers(text, len(found.sources))
        yield Completed(text, cited, annotated=self._annotate(text, request),
                        consistency=self._consistency(text, request, found.sources, cited))

    def _consistency(self, text: str, request: ChatRequest, sources: tuple[Source, ...],
                     cited: tuple[int, ...]) -> Consistency:
        """The answer's agreement with the user's images and the pictures it cites, once it is complete. It
        is an aid: a failure gives no score, never an error in the chat."""
        try:
            images = [("image", i, path) for i, path in enumerate(request.images, 1)]
            images += [("source", s.number, s.picture) for s in sources if s.number in cited and s.picture]
            embedder = self.knowledge.embedder() if self.knowledge is not None else None
            return measure(embedder, text, images, threshold=self.consistency_min)
        except Exception:  # noqa: BLE001  whatever the embedder raised, the answer stands
            log.warning("the consistency score failed", exc_info=True)
            return Consistency(None, threshold=self.consistency_min, reason="failed")

    def _source_pictures(self, request: ChatRequest, sources: tuple[Source, ...]) -> dict[int, Path]:
        """Source number -> a copy of its picture sized to the visual budget, for the model to see. The
        user's images take their share first (each at most ``max_pixels``); then the picture sources in
        number order, at most ``source_images`` of them, each at most what is left. The copies live in
        the workspace's scratch folder until the answer ends."""
        if not self.source_images or not sources:
            return {}
        from PIL import Image

        left = self.visual_tokens * TOKEN_PIXELS
        for image in request.images:
            try:
                with Image.open(image) as im:
                    left -= min(im.size[0] * im.size[1], self.max_pixels)
            except OSError:
                left -= self.max_pixels
        shown: dict[int, Path] = {}
        folder = self.annotations_dir or Path(tempfile.gettempdir()) / "assistant-annotations"
        for source in sources:
            if len(shown) >= self.source_images or left < MIN_SOURCE_PIXELS:
                break
            if (picture := source.picture) is None:
                continue
            try:
                image = load_image(picture, min(self.max_pixels, left))
            except InputError:
                continue  # its file went with a deletion meanwhile: it stays quoted text
            folder.mkdir(parents=True, exist_ok=True)
            out = folder / f"source-{uuid.uuid4().hex}.png"
            image.save(out, "PNG")
            shown[source.number] = out
            left -= image.size[0] * image.size[1]
        return shown

    def _generate(self, turns: list[ChatTurn], request: ChatRequest) -> Iterator[Event]:
        stream = self.model.stream(turns, request.params)
        parts: list[str] = []
        try:
            for piece in stream:
                parts.append(piece)
                yield Token(piece)
        finally:
            getattr(stream, "close", lambda: None)()  # Stop: closing us closes the model's stream
        return "".join(parts)

    def _annotate(self, text: str, request: ChatRequest) -> tuple[Path, ...]:
        """Boxes in the answer, drawn on the image the question was about (the last one sent)."""
        convention = self.model.capabilities.boxes
        boxes = parse_boxes(text) if request.images and convention != "none" else []
        if not boxes:
            return ()
        image = request.images[-1]
        frame = {"pixels": lambda: self.model.image_frame(image), "relative-1000": lambda: (1000, 1000)}.get(
            convention, lambda: None)()
        frame = frame or load_image(image, DRAW_MAX_PIXELS).size
        out_dir = self.annotations_dir or Path(tempfile.gettempdir()) / "assistant-annotations"
        out = out_dir / f"{uuid.uuid4().hex}.png"
        return (draw_boxes(image, boxes, frame, out),)

    @property
    def components(self) -> list[Component]:
        return [c for c in (self.model, self.knowledge) if c is not None]

    def start(self) -> AnswerPipeline:
        """Begin loading every component in the background."""
        for component in self.components:
            component.start()
        return self

    def status(self) -> list[LoadStatus]:
        return [c.status() for c in self.components]

    def close(self) -> None:
        """Close every component: loader threads are joined, the knowledge base is closed cleanly."""
        close_all(self.components)

    def _retrieve(self, request: ChatRequest) -> _Retrieval:
        if self.knowledge is None or not request.use_knowledge:
            return _Retrieval((), None, reason="off")
        try:
            hits = self.knowledge.search(request.question, request.images, k=request.k or self.k)
        except KnowledgeError as exc:
            return _Retrieval((), None, f"Knowledge base unavailable: {exc}", reason="unavailable", detail=str(exc))
        kept = [h for h in hits if self.relevance.passes(h)]
        if not hits:
            return _Retrieval((), None, threshold=self.min_score)
        margin, space = max((self.relevance.closest(h) for h in hits), key=lambda m: m[0])  # closest to passing
        threshold = self.relevance.threshold(space) if space else self.min_score
        sources = tuple(Source(i + 1, h) for i, h in enumerate(kept))
        return _Retrieval(sources, margin + threshold, threshold=threshold)

    def _turns(self, request: ChatRequest, sources: tuple[Source, ...], language: str,
               shown: dict[int, Path] | None = None) -> list[ChatTurn]:
        """The conversation for the model. Source pictures shown as images follow the user's own images;
        each source tag says which attached image is its picture (counted from 1, the user's first)."""
        shown = shown or {}
        question = request.question.strip() or prompts.render(
            "default_question", language, n_images=len(request.images))
        if sources:
            attached = {number: len(request.images) + i + 1 for i, number in enumerate(shown)}
            system = prompts.render("system_grounded", language)
            text = prompts.render("grounded_answer", language, sources=sources, question=question,
                                  attached=attached, own_images=len(request.images))
        else:
            system, text = prompts.render("system", language), question
        if self.medical:  # the same prompts, with the medical rules after them (grounded or not)
            system += "\n" + prompts.render("medical", language)
        images = (*request.images, *shown.values())
        return [ChatTurn("system", system), *request.history, ChatTurn("user", text, images)]
