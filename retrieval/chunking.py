"""Split passages into chunks that follow structure: passages already follow pages and headings; inside
one, paragraphs first, then lines, then sentence ends (Chinese 。！？； and Western . ! ? ;), then
clause marks and spaces. There is no character-level fallback, so a chunk never ends inside a word run."""

from __future__ import annotations

from retrieval.loaders import Passage

SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", "、", " "]


def split_passages(passages: list[Passage], chunk_size: int, chunk_overlap: int) -> list[Passage]:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    splitter = RecursiveCharacterTextSplitter(separators=SEPARATORS, keep_separator="end",
                                              chunk_size=chunk_size, chunk_overlap=min(chunk_overlap, chunk_size // 2))
    chunks = []
    for passage in passages:
        for piece in splitter.split_text(passage.text):
            if piece.strip():  # unstructured text is located by its part number
                chunks.append(Passage(piece.strip(), passage.locator or f"part {len(chunks) + 1}", passage.page))
    return chunks
