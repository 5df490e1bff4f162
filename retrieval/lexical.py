"""Tokens for BM25 that work for English, Chinese and the text that mixes them.

- Text is NFKC-normalised first: full-width letters and digits (ＣＴ, ２０２６) become ASCII, and
  compatibility forms (ﬁ, ①) their plain letters.
- Runs of Latin letters and digits (and other scripts written with spaces) are words, lower-cased.
- Runs of Han characters, kana and hangul (scripts written without spaces between words) become
  overlapping bigrams, a lone character a unigram, as Lucene's CJK bigram analyser does, so a query
  matches without a word segmenter.
- A script change ends a token: ``用CNN模型`` gives ``用``, ``cnn``, ``模型``, so a Latin term inside
  Chinese text is found by keyword (CNN, MRI, CT, ResNet).
- A word of letters and digits also gives its parts of two characters or more: ``ResNet50`` gives
  ``resnet50``, ``resnet`` and ``50``, so "ResNet" finds it and "ResNet50" ranks it first.

``VERSION`` names this scheme; a knowledge base indexed with another one is re-indexed from its record.
"""

from __future__ import annotations

import re
import unicodedata

VERSION = "2"
_CJK_RANGES = (
    "\u3040-\u309f"  # hiragana
    "\u30a0-\u30ff\u31f0-\u31ff"  # katakana
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # Han
    "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af"  # hangul
    "\U00020000-\U0002ebef"  # Han extensions B-F
)
# A CJK run, or a run of word characters that contains none: the alternation splits at script changes.
_TOKEN = re.compile(f"[{_CJK_RANGES}]+|(?:(?![{_CJK_RANGES}])[^\\W_])+", re.UNICODE)
_CJK = re.compile(f"[{_CJK_RANGES}]")
_PARTS = re.compile(r"\d+|[^\W\d_]+")  # the letter and digit runs of a word
STOPWORDS = frozenset("a an and are as at be by for from in is it of on or the this to was were what "
                      "which who with 的 了 是 在".split())


def tokens(text: str) -> list[str]:
    out: list[str] = []
    for run in _TOKEN.findall(unicodedata.normalize("NFKC", text).lower()):
        if _CJK.match(run):
            out.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        else:
            out.append(run)
            parts = _PARTS.findall(run)
            if len(parts) > 1:
                out.extend(p for p in parts if len(p) > 1)
    return out


def query_terms(text: str) -> list[str]:
    """The tokens of a query worth searching for: stop words left out."""
    return [t for t in tokens(text) if t not in STOPWORDS]
