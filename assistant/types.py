"""Chat types passed between the UI, the pipeline and model backends."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class ChatTurn:
    role: Role
    text: str = ""
    images: tuple[Path, ...] = ()


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    temperature: float = 0.2


@dataclass(frozen=True)
class ChatRequest:
    question: str
    images: tuple[Path, ...] = ()
    history: tuple[ChatTurn, ...] = ()
    params: GenerationParams = field(default_factory=GenerationParams)
    use_knowledge: bool = True
    k: int | None = None
    strict: bool | None = None  # None: the pipeline's default
