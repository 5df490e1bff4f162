"""Each supported format parsed for real, from files the tests write."""

import pytest

from retrieval.chunking import split_passages
from retrieval.errors import UnreadableFileError
from retrieval.loaders import Passage, parse
from retrieval.ocr import read_text
from tests.helpers.documents import make_docx, make_html, make_pdf, text_image
from tests.helpers.images import write_image


def test_pdf_text_pages_figure_and_scanned_page(tmp_path):
    figure = write_image(tmp_path / "fig.png", (200, 150), "green")
    pdf = make_pdf(tmp_path / "report.pdf", ["Introduction to the survey.", "Results: revenue grew 12 percent."],
                   figure=figure, scanned="Scanned invoice total 42 EUR")
    parsed = parse(pdf)
    assert parsed.kind == "pdf"
    assert [(p.locator, p.page) for p in parsed.passages] == [("page 1", 1), ("page 2", 2)]
    assert "revenue grew 12 percent" in parsed.passages[1].text
    assert [p.locator for p in parsed.pictures if p.kind == "page"] == ["page 1", "page 2", "page 3"]
    assert any(p.kind == "figure" and p.page == 2 for p in parsed.pictures)
    assert [r.locator for r in parsed.ocr_requests] == ["page 3"]  # no text layer: OCR reads it
    # the scan's image is the page, shown by its render: not a second picture ("page 3 · figure 1") with
    # the same content, found twice by an image search and held twice in memory
    assert [p.kind for p in parsed.pictures if p.page == 3] == ["page"]
    parsed.apply_ocr([read_text(r.image) for r in parsed.ocr_requests])
    scanned = parsed.passages[-1]
    assert scanned.page == 3 and "42" in scanned.text and "invoice" in scanned.text.lower()


def test_a_pdf_page_is_rendered_as_large_as_it_must_be_read(tmp_path):
    """A page of text only is a thumbnail (its text reaches the model as text); a page with a drawn chart
    is rendered at the size the model is shown a source picture, a scanned one large enough for OCR: both
    can be read when they are sources."""
    from retrieval.loaders import OCR_RENDER_SIDE, THUMBNAIL_SIDE
    from retrieval.types import VIEW_PIXELS

    pdf = make_pdf(tmp_path / "report.pdf", ["Plain text page.", "Revenue by quarter, drawn below."], chart=2,
                   scanned="Scanned appendix")
    pages = {p.page: p.image for p in parse(pdf).pictures if p.kind == "page"}
    assert max(pages[1].size) == THUMBNAIL_SIDE
    assert 0.9 * VIEW_PIXELS <= pages[2].width * pages[2].height <= 1.01 * VIEW_PIXELS
    assert max(pages[3].size) == OCR_RENDER_SIDE


def test_html_main_text_headings_and_images(tmp_path):
    write_image(tmp_path / "chart.png", (120, 90), "blue")
    page = make_html(tmp_path / "page.html", "Quarterly report",
                     {"Summary": "Sales rose in the third quarter.", "Outlook": "We expect growth."},
                     image="chart.png", alt="Bar chart of quarterly sales")
    remote = make_html(tmp_path / "remote.html", "Remote", {"Body": "Text here."},
                       image="http://example.invalid/x.png", alt="A remote diagram")
    parsed = parse(page)
    text = " ".join(p.text for p in parsed.passages)
    assert "Sales rose" in text and "alert" not in text and "Copyright" not in text
    assert any("Outlook" in p.locator for p in parsed.passages)
    [figure] = parsed.pictures
    assert figure.kind == "figure" and figure.caption == "Bar chart of quarterly sales"
    assert any(p.text == "Image: A remote diagram" for p in parse(remote).passages)  # never fetched


def test_docx_sections_and_figure(tmp_path):
    figure = write_image(tmp_path / "fig.png", (160, 120), "orange")
    doc = make_docx(tmp_path / "notes.docx", "Discharge notes",
                    {"Medication": "Take one tablet daily.", "Follow-up": "Return in two weeks."}, figure=figure)
    parsed = parse(doc)
    assert [p.locator for p in parsed.passages] == ["Discharge notes", "Discharge notes › Medication",
                                                    "Discharge notes › Follow-up"]
    assert parsed.pictures and parsed.pictures[0].kind == "figure"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-16", "gb18030", "gbk"])
def test_chinese_text_in_common_encodings(tmp_path, encoding):
    text = "发票总额为四十二欧元。付款期限是三月一日！请按时付款。" * 3
    path = tmp_path / f"note-{encoding}.txt"
    path.write_bytes(text.encode(encoding))
    assert parse(path).passages[0].text == text


def test_chinese_is_split_at_sentence_ends_never_inside_a_run():
    text = "第一句话讲发票。第二句话讲付款期限！第三句话讲联系方式？第四句话讲别的；" * 4
    chunks = split_passages([Passage(text, "")], chunk_size=40, chunk_overlap=0)
    assert len(chunks) > 2
    assert all(c.text[-1] in "。！？；" for c in chunks)


def test_image_text_is_read_by_ocr(tmp_path):
    image = text_image("Blood pressure 120/80\n血压正常", tmp_path / "scan.png")
    text = read_text(image)
    assert "120/80" in text and "血压" in text


def test_image_first_frame_and_request_for_ocr(tmp_path):
    from PIL import Image

    gif = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (64, 64), c) for c in ("red", "blue")]
    frames[0].save(gif, save_all=True, append_images=frames[1:])
    parsed = parse(gif)
    assert parsed.pictures[0].image.getpixel((5, 5))[0] > 200 and parsed.ocr_requests


def test_encrypted_pdf_is_refused_clearly(tmp_path):
    from pypdf import PdfWriter

    plain = make_pdf(tmp_path / "plain.pdf", ["secret"])
    writer = PdfWriter(clone_from=str(plain))
    writer.encrypt("pw")
    locked = tmp_path / "locked.pdf"
    writer.write(str(locked))
    with pytest.raises(UnreadableFileError, match="encrypted"):
        parse(locked)


def test_a_gray_scan_is_kept_in_one_channel_and_a_coloured_one_in_colour(tmp_path):
    """A scanned page without colour is held in one channel (a third of the memory: a 300-page scan in RGB
    went over the parse worker's 4 GiB); a page with a coloured stamp keeps its colour; OCR reads both."""
    from PIL import ImageDraw

    gray = text_image("Discharge letter ward 4", size=(900, 1270))
    stamped = text_image("Invoice paid 42 EUR", size=(900, 1270))
    ImageDraw.Draw(stamped).rectangle((600, 900, 760, 980), fill=(200, 30, 30))  # a red stamp
    gray.save(tmp_path / "scan.pdf", save_all=True, append_images=[stamped], resolution=100)
    parsed = parse(tmp_path / "scan.pdf")
    modes = {p.page: p.image.mode for p in parsed.pictures if p.kind == "page"}
    assert modes == {1: "L", 2: "RGB"}
    texts = [read_text(r.image) for r in parsed.ocr_requests]
    assert "ward 4" in texts[0].lower() and "42 eur" in texts[1].lower()
