"""Text read from an image keeps its words apart (the real RapidOCR models, offline). The recogniser alone
returned "Warrantycard:theZephyrX2kettle." for Pillow's own font at 16 and 24 pixels, so keyword search of
images failed; spaces are put back from the blank gaps in the image, never between CJK characters."""

from __future__ import annotations

import pytest
from PIL import Image, ImageDraw, ImageFont

from retrieval.ocr import read_text
from tests.helpers.documents import font as cjk_font

LINES = ["Warranty card: the Zephyr X2 kettle.", "Service hotline: call 0800 555 0199 any day."]


def card(lines, typeface, size: int, width: int | None = None) -> Image.Image:
    image = Image.new("RGB", (width or size * 30, size * (2 * len(lines) + 1)), "white")
    draw = ImageDraw.Draw(image)
    for i, line in enumerate(lines):
        draw.text((12, size * (1 + 2 * i)), line, fill="black", font=typeface)
    return image


@pytest.mark.parametrize("size", [16, 24, 36])
def test_english_lines_keep_their_spaces(size):
    typeface = ImageFont.load_default(size=size)  # Pillow's own font: present on every machine
    assert read_text(card(LINES, typeface, size)).splitlines() == LINES


@pytest.mark.parametrize("size", [18, 30])
def test_english_in_a_cjk_font_keeps_its_spaces(size):
    assert read_text(card(LINES, cjk_font(size), size)).splitlines() == LINES


def test_chinese_gets_no_spaces_and_mixed_lines_keep_theirs():
    lines = ["保修卡：请拨打热线电话", "型号 Zephyr X2 电水壶，保修两年"]
    text = read_text(card(lines, cjk_font(32), 32, width=700))
    assert text.splitlines() == lines


def test_pieces_of_one_row_are_one_line_left_to_right():
    image = Image.new("RGB", (900, 140), "white")
    draw = ImageDraw.Draw(image)
    typeface = ImageFont.load_default(size=28)
    draw.text((600, 46), "42 EUR", fill="black", font=typeface)  # a little lower, far to the right
    draw.text((20, 40), "Invoice total", fill="black", font=typeface)
    assert read_text(image) == "Invoice total 42 EUR"


def test_light_text_on_a_dark_ground():
    image = Image.new("RGB", (900, 110), (20, 30, 60))
    ImageDraw.Draw(image).text((20, 35), "Call the hotline today", fill="white", font=ImageFont.load_default(size=24))
    assert read_text(image) == "Call the hotline today"


def test_keyword_search_finds_the_card_first(tmp_path):
    from retrieval.store import KnowledgeBase
    from tests.helpers.fakes import HashingEmbedder

    docs = tmp_path / "docs"
    docs.mkdir()
    card(LINES, ImageFont.load_default(size=16), 16).save(docs / "warranty-card.png")
    (docs / "manual.txt").write_text("The kettle manual: fill with water, press the switch, wait for the click.")
    (docs / "notes.md").write_text("# Notes\n\nService of the car is due in March; call the garage.")
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=True)
    try:
        assert all(r.ok for r in kb.ingest_paths(sorted(docs.iterdir())))
        hits = kb.search("hotline", k=3)
        assert hits[0].chunk.source.endswith("warranty-card.png"), [h.chunk.source for h in hits]
    finally:
        kb.close()
