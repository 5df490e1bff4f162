"""BM25 tokens for mixed-script text (``retrieval/lexical.py``) and the re-index of an existing knowledge
base when the scheme changes."""

from __future__ import annotations

import sqlite3

import pytest

from retrieval import lexical
from retrieval.lexical import query_terms, tokens
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder


@pytest.mark.parametrize(("text", "expected"), [
    ("用CNN模型提取特征", ["用", "cnn", "模型", "型提", "提取", "取特", "特征"]),  # was one token: cnn模型提取特征
    ("做MRI检查", ["做", "mri", "检查"]),
    ("PET-CT检查", ["pet", "ct", "检查"]),
    ("ＣＴ检查２０２６年", ["ct", "检查", "2026", "年"]),  # full-width forms, NFKC
    ("ﬁle ①", ["file", "1"]),  # compatibility ligature and circled digit
    ("東京タワー", ["東京", "京タ", "タワ", "ワー"]),  # Han and katakana: bigrams
    ("서울대학교 병원", ["서울", "울대", "대학", "학교", "병원"]),  # hangul: bigrams per run
    ("Café naïve Ελληνικά", ["café", "naïve", "ελληνικά"]),  # other scripts stay words
    ("ResNet50的输入", ["resnet50", "resnet", "50", "的输", "输入"]),  # a word with digits: also its parts
    ("H2O", ["h2o"]),  # parts of one character are not kept
])
def test_tokens(text, expected):
    assert tokens(text) == expected


def test_query_terms_leave_out_stop_words():
    assert query_terms("What is the CNN for?") == ["cnn"]


def docs_kb(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    folder = tmp_path / "docs"
    folder.mkdir()
    texts = {"cnn.md": "本项目用CNN模型提取特征，再用全连接层完成分类。",
             "bert.md": "我们使用BERT模型对病历文本进行编码。",
             "ct.md": "增强ＣＴ检查前需要确认肾功能。",
             "plain.md": "模型训练需要大量标注数据。"}
    for name, text in texts.items():
        (folder / name).write_text(text, encoding="utf-8")
    kb.ingest_paths(sorted(folder.iterdir()), sources=sorted(texts))
    return kb


def keyword_hits(kb, query: str) -> list[str]:
    found = kb.records.chunks(cid for cid, _ in kb.records.lexical_search(query, 4))
    return sorted({c.source for c in found.values()})


def test_latin_terms_inside_chinese_are_found_by_keyword(tmp_path):
    kb = docs_kb(tmp_path)
    try:
        assert keyword_hits(kb, "CNN") == ["cnn.md"]
        assert keyword_hits(kb, "bert") == ["bert.md"]
        assert keyword_hits(kb, "CT") == ["ct.md"]  # stored full-width, asked half-width
        assert keyword_hits(kb, "ＣＮＮ") == ["cnn.md"]  # and the other way round
    finally:
        kb.close()


def test_a_knowledge_base_indexed_by_an_older_scheme_is_reindexed_on_open(tmp_path):
    kb = docs_kb(tmp_path)
    chunks = kb.count()
    kb.close()
    # make it look like a knowledge base from before: old tokens (a Latin word glued to the Chinese
    # after it) and the old scheme's version
    db = sqlite3.connect(tmp_path / "data" / "records.sqlite3")
    with db:
        db.execute("UPDATE lexical SET tokens = 'cnn模型提取特征' WHERE tokens LIKE '%cnn%'")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'lexical_version'")
    db.close()
    reader = KnowledgeBase.open_reader(tmp_path / "data", HashingEmbedder())
    try:  # a reader beside the app cannot re-index; it searches what is there
        assert reader.records.reindexed == 0
    finally:
        reader.close()
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    try:
        assert kb.records.reindexed == chunks
        assert kb.records.get_meta("lexical_version") == lexical.VERSION
        assert keyword_hits(kb, "CNN") == ["cnn.md"]
    finally:
        kb.close()
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    try:
        assert kb.records.reindexed == 0  # once only
    finally:
        kb.close()


def token_counts(db_path) -> tuple[dict[str, int], dict[str, int]]:
    """The kept count of chunks per token, and the same counted from the BM25 index's own rows."""
    db = sqlite3.connect(db_path)
    try:
        kept = dict(db.execute("SELECT term, chunks FROM lexical_df"))
        counted: dict[str, int] = {}
        for (text,) in db.execute("SELECT tokens FROM lexical"):
            for term in set(text.split()):
                counted[term] = counted.get(term, 0) + 1
        return kept, counted
    finally:
        db.close()


def test_chunks_per_token_follow_ingests_and_deletes_and_are_rebuilt_when_missing(tmp_path):
    kb = docs_kb(tmp_path)
    path = tmp_path / "data" / "records.sqlite3"
    try:
        kept, counted = token_counts(path)
        assert kept == counted and kept["模型"] == 3  # in cnn.md, bert.md and plain.md
        kb.delete("bert.md")
        kept, counted = token_counts(path)
        assert kept == counted and kept["模型"] == 2
        assert "bert" not in kept  # a deleted document's own words leave the table
    finally:
        kb.close()
    db = sqlite3.connect(path)  # a record from before the table was kept
    with db:
        db.execute("DELETE FROM lexical_df")
        db.execute("DELETE FROM meta WHERE key = 'lexical_df'")
    db.close()
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    try:
        kept, counted = token_counts(path)
        assert kept == counted and kept["模型"] == 2
        assert keyword_hits(kb, "CNN") == ["cnn.md"]
    finally:
        kb.close()


def test_keyword_search_takes_the_rarest_terms_within_its_row_budget(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):  # "report" in every document, "zebra" in one, "walrus" in two
        extra = " zebra" if i == 3 else " walrus" if i in (5, 6) else ""
        (folder / f"d{i}.md").write_text(f"Monthly report number {i}{extra}.")
    kb.ingest_paths([folder / f"d{i}.md" for i in range(12)], sources=[f"d{i}.md" for i in range(12)])
    try:
        def sources(query, **limits):
            found = kb.records.lexical_search(query, 20, **limits)
            chunks = kb.records.chunks(cid for cid, _ in found)
            return [chunks[cid].source for cid, _ in found]

        assert sorted(sources("report zebra walrus", max_share=1.0)) == sorted(f"d{i}.md" for i in range(12))
        # three rows allowed: the rarest term (1 chunk), then the next (2 chunks); "report" (12) is left out
        assert sorted(sources("report zebra walrus", max_share=1.0, max_rows=3)) == ["d3.md", "d5.md", "d6.md"]
        # the rarest term is always searched, even past the budget
        assert sources("zebra", max_rows=0) == ["d3.md"]
        # "report" is in every chunk: over the share, it is searched only when nothing rarer is asked
        assert sorted(sources("report walrus")) == ["d5.md", "d6.md"]
        assert len(sources("report")) == 12
    finally:
        kb.close()
