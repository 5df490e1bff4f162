"""Tokens for BM25 that work for English and Chinese: Latin words and numbers lower-cased, and each run
of Chinese characters as overlapping bigrams (a lone character stays a unigram), so a Chinese query
matches without a word segmenter and never splits inside a Latin word."""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[^\W_]+", re.UNICODE)
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
STOPWORDS = frozenset("a an and are as at be by for from in is it of on or the this to was were what "
                      "which who with 的 了 是 在".split())


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in _TOKEN.findall(text.lower()):
        if _CJK.match(run):
            out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            out.append(run)
    return out


def query_terms(text: str) -> list[str]:
    """The tokens of a query worth searching for: stop words left out."""
    return [t for t in tokens(text) if t not in STOPWORDS]
