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
