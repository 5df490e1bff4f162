"""Split passages into bounded chunks that follow structure.

Passages already follow pages and headings; inside one, paragraphs first, then lines, then sentence ends
(Chinese 。！？； and Western . ! ? ;), then clause marks and spaces. Every chunk is bounded twice:

- in characters (``chunk_size``), with a last resort for text that has no separator at all (a base64
  blob, a minified line, a long run of Chinese without punctuation): it is cut between characters;
- in tokens of the text embedder (``max_tokens``, its window), when one is given: a chunk that the
  embedder would truncate is split again, so what search finds is what the embedder saw.

A huge passage (a 60 MB file on one line) is first cut into windows at line ends or spaces, so the
splitter never holds more than one window's pieces in memory.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence

from retrieval.loaders import Passage

SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", "、", " "]
WINDOW_CHUNKS = 64  # a pre-cut window holds about this many chunks
_ANY_SEPARATOR = re.compile("|".join(re.escape(s) for s in SEPARATORS))
TokenCounter = Callable[[Sequence[str]], Sequence[int]]


def split_passages(passages: list[Passage], chunk_size: int, chunk_overlap: int, *,
                   max_tokens: int | None = None, count_tokens: TokenCounter | None = None) -> list[Passage]:
    chunks: list[Passage] = []
    for passage in passages:
        pieces = [p.strip() for p in _split(passage.text, chunk_size, chunk_overlap)]
        if max_tokens and count_tokens:
            pieces = _within_tokens([p for p in pieces if p], max_tokens, count_tokens, chunk_overlap)
        for piece in pieces:
            if piece:  # unstructured text is located by its part number
                chunks.append(Passage(piece, passage.locator or f"part {len(chunks) + 1}", passage.page,
                                      passage.layout))
    return chunks


def _split(text: str, size: int, overlap: int) -> Iterator[str]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(separators=[*SEPARATORS, ""], keep_separator="end",
                                              chunk_size=size, chunk_overlap=min(overlap, size // 2))
    for window in _windows(text, size * WINDOW_CHUNKS):
        if len(window) > size and not _ANY_SEPARATOR.search(window):
            yield from _hard_cut(window, size)  # no separator anywhere: langchain would split per character
        else:
            yield from splitter.split_text(window)


def _windows(text: str, limit: int) -> Iterator[str]:
    """Consecutive parts of at most ``limit`` characters, each ending at a line end or space if it can."""
    start = 0
    while len(text) - start > limit:
        end = start + limit
        cut = max(text.rfind("\n", start + limit // 2, end), text.rfind(" ", start + limit // 2, end))
        end = cut + 1 if cut > 0 else end
        yield text[start:end]
        start = end
    yield text[start:]


def _hard_cut(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _within_tokens(pieces: list[str], max_tokens: int, count_tokens: TokenCounter, overlap: int) -> list[str]:
    """Pieces split again, smaller each round, until each fits the embedder's window."""
    out: list[str] = []
    for piece, n in zip(pieces, count_tokens(pieces)):
        if n <= max_tokens or len(piece) <= 1:
            out.append(piece)
            continue
        size = max(min(int(len(piece) * max_tokens / n * 0.9), len(piece) - 1), 1)  # under proportional
        smaller = [p.strip() for p in _split(piece, size, min(overlap, size // 4))]
        out.extend(_within_tokens([p for p in smaller if p], max_tokens, count_tokens, overlap))
    return out
