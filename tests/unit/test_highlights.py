"""Citations that show where: a passage's lines on its page (PDF text from pdfium's character boxes, scanned
pages and images from the OCR's line boxes), kept with the chunk and marked on its card."""

from __future__ import annotations

import re
import sqlite3

import numpy as np
import pytest
from PIL import Image

from retrieval.layout import Layout, from_lines, squeeze
from retrieval.store import KnowledgeBase
from tests.helpers.documents import make_pdf, text_image
from tests.helpers.fakes import HashingEmbedder

PARAGRAPHS = [f"Paragraph {i} tells of topic{i} in words enough to fill a line of the page and part of the next one."
              for i in range(12)]


def ink(thumbnail: str, box) -> float:
    """The share of dark pixels inside ``box`` (fractions of the width and height) of a thumbnail."""
    image = np.asarray(Image.open(thumbnail).convert("L"))
    h, w = image.shape
    left, top, right, bottom = box
    inside = image[int(top * h) : max(int(bottom * h), int(top * h) + 1), int(left * w) : max(int(right * w), int(left * w) + 1)]
    return float((inside < 128).mean())


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    root = tmp_path_factory.mktemp("highlights")
    make_pdf(root / "report.pdf", ["\n\n".join(PARAGRAPHS), "A second page about zebras."],
             scanned="Scanned page: hotline 555 0199")
    text_image("Warranty card\nCall the hotline today", root / "card.png", size=(900, 300))
    kb = KnowledgeBase.open(root / "data", HashingEmbedder(), chunk_size=220, chunk_overlap=0)
    reports = kb.ingest_paths([root / "report.pdf", root / "card.png"], sources=["report.pdf", "card.png"])
    assert all(r.ok for r in reports), reports
    chunks = [c for batch in kb.records.all_chunks() for c in batch]
    found = kb.records.chunks([cid for cid, kind, *_ in chunks if kind == "text"])
    yield kb, list(found.values())
    kb.close()


def test_a_pdf_passage_is_marked_on_the_lines_it_covers(documents):
    kb, chunks = documents
    page_one = sorted((c for c in chunks if c.source == "report.pdf" and c.locator == "page 1"),
                      key=lambda c: int(re.search(r"Paragraph (\d+)", c.text).group(1)))
    assert len(page_one) >= 4
    tops = []
    for chunk in page_one:
        assert chunk.thumbnail and chunk.regions, chunk.text[:40]
        assert len(chunk.regions) == len([line for line in chunk.text.splitlines() if line.strip()])
        for box in chunk.regions:
            left, top, right, bottom = box
            assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
            assert ink(chunk.thumbnail, box) > 0.03  # the mark lies on printed text
            assert ink(chunk.thumbnail, (left, 0.9, right, 0.9 + bottom - top)) < 0.005  # the foot is blank
        tops.append(min(b[1] for b in chunk.regions))
    assert tops == sorted(tops) and tops[0] < 0.1 < tops[-1]  # passages down the page, in order


def test_text_read_by_ocr_is_marked_by_its_lines(documents):
    kb, chunks = documents
    [card] = [c for c in chunks if c.source == "card.png"]
    assert card.thumbnail and len(card.regions) == 2  # two lines, the image's own thumbnail
    first, second = card.regions
    assert first[1] < second[1]
    for box, y in ((first, 30 / 300), (second, 90 / 300)):  # text_image draws lines at y 30 and 90
        assert abs(box[1] - y) < 0.06 and ink(card.thumbnail, box) > 0.03
    [scan] = [c for c in chunks if c.source == "report.pdf" and c.locator == "page 3"]
    assert scan.regions and ink(scan.thumbnail, scan.regions[0]) > 0.03
    assert kb.search("hotline", k=4)[0].to_dict()["regions"]  # search results and the API carry them


def test_a_passage_is_found_whatever_its_white_space():
    layout = from_lines([("First line of text", (0, 0, 100, 10)), ("second line here", (0, 20, 80, 30)),
                         ("third line", (0, 40, 50, 50))], 100, 100)
    assert layout.text == squeeze("First line of text second line here third line")
    assert layout.regions("text\n second   line") == ((0.0, 0.0, 1.0, 0.1), (0.0, 0.2, 0.8, 0.3))
    assert layout.regions("third line") == ((0.0, 0.4, 0.5, 0.5),)
    assert layout.regions("not on this page") == ()
    assert Layout("").regions("anything") == ()
    # read differently in its middle (another extractor), found by its two ends
    long = Layout("a" * 30 + "b" * 40 + "c" * 30, ((0, 30, (0, 0, 1, 0.1)), (30, 70, (0, 0.2, 1, 0.3)),
                                                  (70, 100, (0, 0.4, 1, 0.5))))
    assert long.regions("a" * 30 + "x" * 40 + "c" * 30) == tuple(box for *_, box in long.lines)
    assert long.regions("c" * 24 + "zzz" + "a" * 24) == ()  # ends out of order


def test_a_record_from_before_regions_opens_and_keeps_its_chunks(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    (tmp_path / "a.md").write_text("Some words about invoices.")
    kb.ingest_paths([tmp_path / "a.md"])
    kb.close()
    db = sqlite3.connect(tmp_path / "data" / "records.sqlite3")
    with db:
        db.execute("ALTER TABLE chunks DROP COLUMN regions")
    db.close()
    reader = KnowledgeBase.open_reader(tmp_path / "data", HashingEmbedder())  # beside an older writer
    try:
        [hit] = reader.search("invoices", k=1)
        assert hit.chunk.regions == () and "invoices" in hit.chunk.text
    finally:
        reader.close()
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder())
    try:
        [hit] = kb.search("invoices", k=1)
        assert hit.chunk.regions == () and "invoices" in hit.chunk.text
    finally:
        kb.close()


def test_a_cropped_page_is_marked_in_its_crop_and_a_rotated_one_not_at_all(tmp_path):
    from pypdf import PdfReader, PdfWriter

    make_pdf(tmp_path / "plain.pdf", ["\n\n".join(PARAGRAPHS), "\n\n".join(PARAGRAPHS)])
    writer = PdfWriter()
    for page in PdfReader(tmp_path / "plain.pdf").pages:
        writer.add_page(page)
    first, second = writer.pages
    width, height = float(first.mediabox.width), float(first.mediabox.height)
    first.cropbox.lower_left = (30, height / 2)  # the top half, its origin not at (0, 0)
    first.cropbox.upper_right = (width - 30, height)
    second.rotate(90)
    with open(tmp_path / "edited.pdf", "wb") as f:
        writer.write(f)
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), chunk_size=220, chunk_overlap=0)
    try:
        [report] = kb.ingest_paths([tmp_path / "edited.pdf"], sources=["edited.pdf"])
        assert report.ok
        chunks = kb.records.chunks(kb.records.chunk_ids(report.doc_id)).values()
        cropped = [c for c in chunks if c.kind == "text" and c.locator == "page 1" and c.regions]
        assert cropped and all(ink(c.thumbnail, box) > 0.03 for c in cropped for box in c.regions)
        assert not [c for c in chunks if c.kind == "text" and c.locator == "page 2" and c.regions]
    finally:
        kb.close()


def test_ingests_do_not_pile_up_database_connections(tmp_path):
    kb = KnowledgeBase.open(tmp_path / "data", HashingEmbedder(), ocr=False)
    try:
        for i in range(6):  # a batch each, as uploads in the app are
            (tmp_path / f"n{i}.md").write_text(f"Note {i} about item{i}.")
            (tmp_path / f"m{i}.md").write_text(f"More about thing{i}.")
            kb.ingest_paths([tmp_path / f"n{i}.md", tmp_path / f"m{i}.md"])
        assert len(kb.records._readers) <= 3  # this thread's and the read-ahead thread's, not one per batch
    finally:
        kb.close()
