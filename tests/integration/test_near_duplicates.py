"""Near-duplicates do not fill the top k (real Chroma, hashing embedder): a section repeated across
documents, the same picture ingested twice and a repeated Chinese paragraph each come back once, as the
best-ranked copy, and the freed places go to the next distinct hits."""

from __future__ import annotations

import pytest
from PIL import Image

from retrieval.distinct import TEXT_OVERLAP, overlap, shingles
from retrieval.store import KnowledgeBase
from tests.helpers.fakes import HashingEmbedder
from tests.helpers.images import write_image

BOILERPLATE = ("Safety notice: unplug the kettle before cleaning, never immerse the base in water, and keep "
               "the cord away from hot surfaces and from children.")


@pytest.fixture
def kb(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False, chunk_size=200, chunk_overlap=0)
    yield kb
    kb.close()


def test_a_section_repeated_in_three_documents_comes_back_once(kb, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, own in (("zephyr.md", "The Zephyr kettle boils a litre in three minutes."),
                      ("aurora.md", "The Aurora kettle keeps water warm for an hour."),
                      ("breeze.md", "The Breeze kettle has a filter against limescale.")):
        (docs / name).write_text(f"# {name}\n\n{own}\n\n# Safety\n\n{BOILERPLATE}\n")
    (docs / "cleaning.txt").write_text("Cleaning the kettle: descale it with vinegar and water every month.")
    kb.ingest_paths(sorted(docs.iterdir()))
    hits = kb.search("safety unplug the kettle before cleaning, keep the cord away", k=4)
    texts = [h.chunk.text for h in hits]
    assert sum(BOILERPLATE in t for t in texts) == 1, texts
    assert len(hits) == 4 and len({h.chunk.id for h in hits}) == 4  # the freed places were filled


def test_a_reworded_copy_still_counts_and_a_related_passage_does_not():
    one = shingles(BOILERPLATE)
    assert overlap(one, shingles(BOILERPLATE.replace("children", "small children"))) >= TEXT_OVERLAP
    assert overlap(one, shingles("Unplug the kettle before you descale it; keep it away from children.")) < 0.3


def test_the_same_picture_twice_comes_back_once(kb, tmp_path):
    write_image(tmp_path / "chart.png", (320, 240), "orange")
    Image.open(tmp_path / "chart.png").save(tmp_path / "chart-copy.jpg", quality=90)  # other bytes, same picture
    write_image(tmp_path / "other.png", (320, 240), "steelblue")
    reports = kb.ingest_paths([tmp_path / "chart.png", tmp_path / "chart-copy.jpg", tmp_path / "other.png"])
    assert [r.status for r in reports] == ["added"] * 3
    hits = kb.search(None, [Image.new("RGB", (100, 100), "orange")], k=3)
    names = [h.chunk.source for h in hits]
    assert sum(n.endswith(("chart.png", "chart-copy.jpg")) for n in names) == 1, names
    assert any(n.endswith("other.png") for n in names)


def test_a_repeated_chinese_paragraph_comes_back_once(kb, tmp_path):
    paragraph = "保修说明：本产品自购买之日起保修两年，人为损坏不在保修范围之内，请妥善保管购买凭证。"
    for i, lead in enumerate(("电水壶使用手册。", "咖啡机使用手册。", "烤面包机使用手册。")):
        (tmp_path / f"手册{i}.txt").write_text(f"{lead}\n\n{paragraph}")
    kb.ingest_paths(sorted(tmp_path.glob("手册*.txt")))
    hits = kb.search("保修两年 购买凭证", k=3)
    assert sum("保修两年" in h.chunk.text for h in hits) == 1, [h.chunk.text for h in hits]
