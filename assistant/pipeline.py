"""The answer pipeline: question + images -> retrieve -> prompt -> streamed answer -> citations.

It yields typed events; a UI only accumulates them. Sources arrive before the first token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import prompts
from assistant.errors import InputError, KnowledgeError
from assistant.knowledge import Knowledge
from assistant.loading import LoadStatus
from assistant.models.base import VisionChatModel
from assistant.types import ChatRequest, ChatTurn
from retrieval import Hit


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


class AnswerPipeline:
    def __init__(self, model: VisionChatModel, knowledge: Knowledge | None = None, *, k: int = 4,
                 min_score: float = 0.0, language: str = "en"):
        self.model = model
        self.knowledge = knowledge
        self.k = k
        self.min_score = min_score
        self.language = language

    def answer(self, request: ChatRequest) -> Iterator[Event]:
        if not request.question.strip() and not request.images:
            raise InputError("Type a question or add an image.")
        sources, notice = self._retrieve(request)
        yield Retrieved(sources, notice)
        turns = self._turns(request, sources)
        stream = self.model.stream(turns, request.params)
        parts: list[str] = []
        try:
            for piece in stream:
                parts.append(piece)
                yield Token(piece)
        finally:
            getattr(stream, "close", lambda: None)()  # Stop: closing us closes the model's stream
        text = "".join(parts)
        yield Completed(text, cited_numbers(text, len(sources)))

    def status(self) -> list[LoadStatus]:
        parts = [self.model, self.knowledge]
        return [p.status() for p in parts if p is not None and hasattr(p, "status")]

    def _retrieve(self, request: ChatRequest) -> tuple[tuple[Source, ...], str | None]:
        if self.knowledge is None or not request.use_knowledge:
            return (), None
        try:
            hits = self.knowledge.search(request.question, request.images, k=request.k or self.k)
        except KnowledgeError as exc:
            return (), f"Knowledge base unavailable: {exc}"
        kept = [h for h in hits if h.score >= self.min_score]
        return tuple(Source(i + 1, h) for i, h in enumerate(kept)), None

    def _turns(self, request: ChatRequest, sources: tuple[Source, ...]) -> list[ChatTurn]:
        question = request.question.strip() or _describe(len(request.images))
        text = (prompts.render("grounded_answer", self.language, sources=sources, question=question)
                if sources else question)
        system = ChatTurn("system", prompts.render("system", self.language))
        return [system, *request.history, ChatTurn("user", text, tuple(request.images))]


def _describe(n_images: int) -> str:
    return "Describe this image." if n_images == 1 else "Describe these images."
