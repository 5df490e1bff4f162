"""Documents of every supported kind, written by code (never downloaded), for parser and retrieval tests."""

from __future__ import annotations

from pathlib import Path

CJK_FONTS = ["/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
             "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc"]


def font(size: int = 36):
    from PIL import ImageFont

    for path in CJK_FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size=size)


def text_image(text: str, path: Path | None = None, *, size=(900, 220), colour="white"):
    """An image with dark text on it (CJK-capable font), for OCR."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, colour)
    draw = ImageDraw.Draw(image)
    y = 30
    for line in text.splitlines():
        draw.text((30, y), line, fill="black", font=font(40))
        y += 60
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        image.save(path)
    return image


def make_pdf(path: Path, pages: list[str], *, figure: Path | None = None, scanned: str | None = None,
             chart: int | None = None) -> Path:
    """A PDF with one text page per entry, optionally a figure on the last text page, a bar chart drawn
    as vector shapes (axes, bars, ticks) on page ``chart``, and a scanned page (an image of text with no
    text layer) at the end."""
    from fpdf import FPDF

    pdf = FPDF()
    for i, text in enumerate(pages):
        pdf.add_page()
        pdf.set_font("Helvetica", size=12)
        pdf.multi_cell(0, 8, text)
        if figure is not None and i == len(pages) - 1:
            pdf.image(str(figure), x=20, y=120, w=80)
        if chart == i + 1:
            pdf.line(30, 250, 190, 250)
            pdf.line(30, 150, 30, 250)
            for bar, value in enumerate([40, 70, 55, 90, 30, 80]):
                pdf.set_fill_color(40 * bar, 90, 200)
                pdf.rect(40 + 25 * bar, 250 - value, 15, value, style="F")
                pdf.line(47 + 25 * bar, 250, 47 + 25 * bar, 253)
    if scanned is not None:
        scan = path.with_suffix(".scan.png")
        text_image(scanned, scan, size=(1200, 300))
        pdf.add_page()
        pdf.image(str(scan), x=10, y=10, w=190)
        scan.unlink()
    pdf.output(str(path))
    return path


def make_docx(path: Path, title: str, sections: dict[str, str], *, figure: Path | None = None) -> Path:
    import docx
    from docx.shared import Inches

    document = docx.Document()
    document.add_heading(title, level=1)
    for heading, body in sections.items():
        document.add_heading(heading, level=2)
        document.add_paragraph(body)
    if figure is not None:
        document.add_picture(str(figure), width=Inches(2))
    document.save(str(path))
    return path


def make_html(path: Path, title: str, sections: dict[str, str], *, image: str | None = None,
              alt: str = "") -> Path:
    body = "".join(f"<h2>{h}</h2><p>{b}</p>" for h, b in sections.items())
    img = f'<img src="{image}" alt="{alt}">' if image else ""
    path.write_text(f"<html><head><title>{title}</title><script>alert('x')</script></head><body>"
                    f"<nav>Home | About</nav><article><h1>{title}</h1>{body}{img}</article>"
                    "<footer>Copyright</footer></body></html>", encoding="utf-8")
    return path
