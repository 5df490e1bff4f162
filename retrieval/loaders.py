"""Turn a file into what the knowledge base embeds: text passages with locators, and pictures (images,
figures extracted from documents, page renders). Parsing runs in a worker process (``worker.py``)."""

from __future__ import annotations

import io
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from struct import error as struct_error
from typing import TYPE_CHECKING

from retrieval.errors import (
    EMPTY,
    UNREADABLE_IMAGE,
    ImageTooLargeError,
    UnreadableFileError,
    UnsupportedFileError,
    detail,
    file_too_large,
    image_too_large,
    named,
    unsupported,
)
from retrieval.layout import Layout, from_characters
from retrieval.types import VIEW_PIXELS

if TYPE_CHECKING:
    from PIL.Image import Image

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
DOCUMENT_SUFFIXES = {".pdf": "pdf", ".html": "html", ".htm": "html", ".docx": "docx"}
DICOM_SUFFIXES = {".dcm", ".dicom"}
SUPPORTED = sorted(set(TEXT_SUFFIXES) | IMAGE_SUFFIXES | set(DOCUMENT_SUFFIXES) | DICOM_SUFFIXES)
MIN_FIGURE_SIDE = 48
THUMBNAIL_SIDE = 384
OCR_RENDER_SIDE = 1400  # a scanned PDF page is rendered this large (its longer side) to be read by OCR
log = logging.getLogger(__name__)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)


@dataclass
class Passage:
    text: str
    locator: str  # "page 3", "Results", "page 2 · Methods", ...
    page: int | None = None
    layout: Layout | None = None  # where the text of its page or image lies, for highlighting a chunk


@dataclass
class Picture:
    image: Image
    locator: str
    kind: str  # "image" | "figure" | "page"
    caption: str = ""
    page: int | None = None


@dataclass
class Parsed:
    kind: str  # the document's type: text, markdown, pdf, html, docx, image, dicom
    passages: list[Passage] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    ocr_requests: list[Picture] = field(default_factory=list)  # images whose text is still to be read
    notice: str | None = None  # what the user should be told of this file (a DICOM's de-identification)

    def apply_ocr(self, texts: list) -> None:
        """Add the text read from each OCR request (in order) as passages; a page or an image may hold none.
        Each is a text, or a (text, Layout) pair."""
        for request, read in zip(self.ocr_requests, texts, strict=True):
            text, layout = read if isinstance(read, tuple) else (read, None)
            if text.strip():
                self.passages.append(Passage(text, request.locator, request.page, layout))
        self.ocr_requests = []
        self.passages.sort(key=lambda p: (p.page or 0))


@dataclass(frozen=True)
class ParseOptions:
    ocr: bool = True
    max_pages: int = 1000
    max_bytes: int = 200_000_000
    deid_key: bytes = b""  # the installation's de-identification secret (retrieval.dicom); empty: one per file


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED


def parse(path: Path, options: ParseOptions = ParseOptions()) -> Parsed:
    """Parse one file by its extension; every failure is an ``UnreadableFileError`` naming the file."""
    suffix = path.suffix.lower()
    if not is_supported(path):
        raise UnsupportedFileError(named(path.name, unsupported(suffix, SUPPORTED)))
    size = path.stat().st_size
    if size == 0:
        raise UnreadableFileError(named(path.name, EMPTY))
    if size > options.max_bytes:
        raise UnreadableFileError(named(path.name, file_too_large(size, options.max_bytes)))
    if suffix in TEXT_SUFFIXES or suffix in (".html", ".htm"):
        _refuse_binary(path)
    if suffix in TEXT_SUFFIXES:
        return parse_text(path, TEXT_SUFFIXES[suffix])
    if suffix in IMAGE_SUFFIXES:
        return parse_image(path, options)
    if suffix in DICOM_SUFFIXES:
        return parse_dicom(path, options)
    parser = {"pdf": parse_pdf, "html": parse_html, "docx": parse_docx}[DOCUMENT_SUFFIXES[suffix]]
    return parser(path, options)


# -- text ---------------------------------------------------------------------------------------

_MAGIC = {b"%PDF": "a PDF", b"\x89PNG": "a PNG image", b"PK\x03\x04": "a ZIP or Word file", b"GIF8": "a GIF image",
          b"\xff\xd8\xff": "a JPEG image", b"II*\x00": "a TIFF image", b"MM\x00*": "a TIFF image",
          b"RIFF": "a RIFF (WebP, WAV...) file", b"MZ": "a program"}


def _refuse_binary(path: Path) -> None:
    with path.open("rb") as f:
        head = f.read(8)
    for magic, what in _MAGIC.items():
        if head.startswith(magic):
            raise UnreadableFileError(f"{path.name}: this is {what}, not text; give it its real extension")


def parse_text(path: Path, flavour: str) -> Parsed:
    text = read_text(path)
    if not text.strip():
        raise UnreadableFileError(f"{path.name}: the file contains no text")
    passages = markdown_sections(text) if flavour == "markdown" else [Passage(text, "")]
    return Parsed(kind=flavour, passages=passages)


def read_text(path: Path) -> str:
    """Decode text in UTF-8, UTF-16 (with a byte-order mark) or, failing both, the encoding
    charset-normalizer finds (GB18030, Big5, Latin-1, ...)."""
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise UnreadableFileError(f"{path.name}: not valid UTF-16 text (byte {exc.start})") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    if b"\x00" in data[:4096]:
        raise UnreadableFileError(f"{path.name}: binary data, not text")
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
    if best is None or best.encoding is None:
        raise UnreadableFileError(f"{path.name}: not text in any encoding recognised; save it as UTF-8")
    return str(best)


def markdown_sections(text: str) -> list[Passage]:
    """One passage per heading section, located by its heading path (``Guide › Install``)."""
    passages, trail = [], []
    matches = list(_HEADING.finditer(text))
    if not matches or matches[0].start() > 0:
        head = text[: matches[0].start()] if matches else text
        if head.strip():
            passages.append(Passage(head.strip(), ""))
    for i, m in enumerate(matches):
        level, title = len(m.group(1)), m.group(2).strip()
        trail = [t for t in trail if t[0] < level] + [(level, title)]
        body = text[m.start() : matches[i + 1].start() if i + 1 < len(matches) else len(text)].strip()
        if body:
            passages.append(Passage(body, " › ".join(t for _, t in trail)))
    return passages


# -- images -------------------------------------------------------------------------------------

# Pixel limits, chosen for memory. A baseline JPEG is decoded at 1/2, 1/4 or 1/8 scale by the decoder
# itself (DCT scaling), so a 12000x12000 photo costs a few megapixels of memory: 250 megapixels allowed.
# Other formats (PNG, WebP, TIFF..., and progressive JPEGs, whose decoder holds every coefficient of the
# whole image) are decoded whole before they are reduced: 64 megapixels (about 200 MB as RGB).
REDUCED_DECODE_LIMIT = 250_000_000
WHOLE_DECODE_LIMIT = 64_000_000
MAX_IMAGE_PIXELS = REDUCED_DECODE_LIMIT  # Pillow's own guard: it refuses past twice this, before any decode
WORKING_PIXELS = 2048 * 2048  # what the knowledge base keeps of an image: above what OCR (1600 px a side),
# the embedder and thumbnails read
_ORIENTATION = {2: "FLIP_LEFT_RIGHT", 3: "ROTATE_180", 4: "FLIP_TOP_BOTTOM", 5: "TRANSPOSE", 6: "ROTATE_270",
                7: "TRANSVERSE", 8: "ROTATE_90"}
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "RGBX", "CMYK", "YCbCr", "I", "F", "La", "LAB", "HSV"}
_BOMB_SIZE = re.compile(r"\((\d+) pixels\)")


def open_image(path: Path, at_least_pixels: int = WORKING_PIXELS) -> Image:
    """Open, orient and convert an image (first frame of animations) with a bounded decode, refusing only
    images past the limits above and broken files, in the same words for the chat and the knowledge base.

    ``at_least_pixels``: the caller scales the image down to about this many pixels, so it is decoded
    and reduced on the way to no fewer than that (a JPEG by the decoder's own DCT scaling: a 12-megapixel
    photo decodes several times faster, a 144-megapixel one in a few megabytes)."""
    path = Path(path)
    name = path.name
    try:
        if path.stat().st_size == 0:
            raise UnreadableFileError(named(name, EMPTY))
        with path.open("rb") as f:
            return _decode(f, name, at_least_pixels)
    except UnreadableFileError as exc:
        if path.suffix.lower() in IMAGE_SUFFIXES or str(exc) != named(name, UNREADABLE_IMAGE):
            raise
        raise UnsupportedFileError(named(name, unsupported(path.suffix.lower(), IMAGE_SUFFIXES))) from exc
    except FileNotFoundError as exc:
        raise UnreadableFileError(named(name, "the file is no longer there; add it again")) from exc
    except OSError as exc:
        raise UnreadableFileError(named(name, f"the file cannot be read ({detail(exc, name)})")) from exc


def open_image_bytes(data: bytes, name: str, at_least_pixels: int = WORKING_PIXELS) -> Image:
    """An image embedded in a document; ``name`` is the document's (an error names it)."""
    if not data:
        raise UnreadableFileError(named(name, "an embedded image is empty"))
    try:
        return _decode(io.BytesIO(data), name, at_least_pixels)
    except UnreadableFileError:
        raise
    except Exception as exc:  # noqa: BLE001  any decoder failure: this one figure is skipped
        raise UnreadableFileError(named(name, f"an embedded image is unreadable ({detail(exc, name)})")) from exc


def _decode(f, name: str, at_least_pixels: int) -> Image:
    from PIL import Image, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(f) as im:
            im.seek(0)
            _check_pixels(im, name)
            width, height = im.size
            if im.format == "JPEG" and width * height > at_least_pixels:
                scale = math.sqrt(at_least_pixels / (width * height))
                im.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
            orientation = _orientation(im)
            image = _reduced(im, at_least_pixels)
            if orientation in _ORIENTATION:  # applied after the reduction: it copies fewer pixels
                image = image.transpose(getattr(Image.Transpose, _ORIENTATION[orientation]))
            return image.convert("RGB")
    except Image.DecompressionBombError as exc:  # past twice the limit: refused by Pillow before reading
        claimed = _BOMB_SIZE.search(str(exc))
        pixels = int(claimed.group(1)) if claimed else 2 * MAX_IMAGE_PIXELS
        raise ImageTooLargeError(named(name, image_too_large(pixels, REDUCED_DECODE_LIMIT, "any image"))) from exc
    except UnidentifiedImageError as exc:
        raise UnreadableFileError(named(name, UNREADABLE_IMAGE)) from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct_error) as exc:
        log.info("an image decode failed: %s", type(exc).__name__)  # no file name: it can name a patient
        raise UnreadableFileError(named(name, UNREADABLE_IMAGE)) from exc


def _check_pixels(im, name: str) -> None:
    pixels = im.size[0] * im.size[1]
    if pixels > REDUCED_DECODE_LIMIT:
        raise ImageTooLargeError(named(name, image_too_large(pixels, REDUCED_DECODE_LIMIT, "any image")))
    if pixels > WHOLE_DECODE_LIMIT and not _decoded_reduced(im):
        kind, other = ("progressive JPEGs", "other") if im.format == "JPEG" else (f"{im.format or 'such'} images", "")
        kind += f", {REDUCED_DECODE_LIMIT / 1e6:,.0f} for {other + ' ' if other else ''}JPEG photos"
        raise ImageTooLargeError(named(name, image_too_large(pixels, WHOLE_DECODE_LIMIT, kind)))


def _decoded_reduced(im) -> bool:
    """A baseline JPEG: decoded at a reduced scale without ever holding the whole image (a progressive
    one is drafted too, but its decoder keeps every coefficient of the whole image)."""
    return im.format == "JPEG" and not im.info.get("progressive") and not im.info.get("progression")


def _reduced(im, at_least_pixels: int) -> Image:
    """Decode (at the draft scale, if one was set), then reduce by a whole factor while that keeps at least
    ``at_least_pixels``: a box filter, fast, and what follows copies fewer pixels."""
    im.load()
    factor = math.isqrt(max(1, (im.size[0] * im.size[1]) // max(at_least_pixels, 1)))
    if factor < 2:
        return im
    return (im if im.mode in _REDUCIBLE_MODES else im.convert("RGBA" if _has_alpha(im) else "RGB")).reduce(factor)


def _orientation(im) -> int | None:
    try:
        return im.getexif().get(0x0112)
    except Exception:  # noqa: BLE001  a damaged EXIF block costs the orientation, not the image
        return None


def _has_alpha(im) -> bool:
    return im.mode in ("PA", "LA", "RGBA") or "transparency" in im.info


def fit(image: Image, max_pixels: int) -> Image:
    """Scale down (never up), keeping the aspect ratio, so that width * height <= max_pixels."""
    width, height = image.size
    if width * height <= max_pixels:
        return image
    from PIL import Image as PILImage

    scale = math.sqrt(max_pixels / (width * height))
    size = (max(1, math.floor(width * scale)), max(1, math.floor(height * scale)))
    return image.resize(size, PILImage.Resampling.BICUBIC)


def parse_image(path: Path, options: ParseOptions) -> Parsed:
    image = fit(open_image(path), WORKING_PIXELS)
    parsed = Parsed(kind="image", pictures=[Picture(image, "image", "image", caption=path.stem)])
    if options.ocr:
        parsed.ocr_requests.append(Picture(image, "text in image", "image"))
    return parsed


def parse_dicom(path: Path, options: ParseOptions) -> Parsed:
    """A DICOM file, de-identified (``retrieval.dicom``) before anything of it leaves this function: its
    picture (one frame of a series) with burned-in text blacked out, and its cleaned header as text. The
    picture's text is not read: what text it had is blacked out."""
    from retrieval import dicom

    scan = dicom.read(path, options.deid_key or dicom.new_key(), max_pixels=WHOLE_DECODE_LIMIT)
    image = fit(scan.image, WORKING_PIXELS)
    caption = " ".join(v for k, v in scan.header.items() if k in ("Modality", "BodyPartExamined",
                                                                   "StudyDescription", "SeriesDescription"))
    return Parsed(kind="dicom", passages=[Passage(scan.text(), "header")],
                  pictures=[Picture(image, scan.locator, "image", caption=caption)], notice=scan.report.summary())


def reduced(image: Image, max_pixels: int) -> Image:
    """The image at most ``max_pixels``, its shape kept (itself when it is that small already)."""
    from PIL import Image as PILImage

    width, height = image.size
    if width * height <= max_pixels:
        return image
    scale = math.sqrt(max_pixels / (width * height))
    return image.resize((max(1, int(width * scale)), max(1, int(height * scale))), PILImage.Resampling.LANCZOS)


def thumbnail(image: Image, side: int = THUMBNAIL_SIDE) -> Image:
    small = image.copy()
    small.thumbnail((side, side))
    return small


# -- PDF ----------------------------------------------------------------------------------------


def parse_pdf(path: Path, options: ParseOptions) -> Parsed:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFileError(f"{path.name}: the PDF is encrypted; remove the password and try again")
        pages = len(reader.pages)
    except UnreadableFileError:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError, OSError, RecursionError) as exc:
        raise UnreadableFileError(f"{path.name}: not a readable PDF ({detail(exc, path.name)})") from exc
    if pages > options.max_pages:
        raise UnreadableFileError(f"{path.name}: {pages} pages is over the limit of {options.max_pages} "
                                  "(ASSISTANT_RETRIEVAL__MAX_PAGES)")
    parsed = Parsed(kind="pdf")
    texts = [_page_text(page) for page in reader.pages]
    scanned = [options.ocr and not text.strip() for text in texts]
    renders, layouts = _render_pages(path, scanned)
    for number, (page, text) in enumerate(zip(reader.pages, texts), start=1):
        render = renders.get(number)
        if render is not None:
            parsed.pictures.append(Picture(render, f"page {number}", "page", page=number))
            if scanned[number - 1]:  # a scanned page: its text is read by OCR
                parsed.ocr_requests.append(Picture(render, f"page {number}", "page", page=number))
        if text.strip():
            parsed.passages.append(Passage(text, f"page {number}", page=number, layout=layouts.get(number)))
        if not (scanned[number - 1] and render is not None):  # a scan's image is its page, not a figure of it
            parsed.pictures.extend(_pdf_figures(page, number, path.name))
    if not parsed.passages and not parsed.pictures:
        raise UnreadableFileError(f"{path.name}: the PDF has no text and no pages that render")
    return parsed


def _page_text(page) -> str:
    try:
        return page.extract_text() or ""
    except Exception:  # noqa: BLE001  a broken content stream: the page render and OCR still count
        return ""


def _render_pages(path: Path, scanned: list[bool]) -> tuple[dict, dict]:
    """Each page as an image and its layout (where its characters are, for highlighting a passage); pages
    that fail to render are left out, layouts that fail too.

    A page is rendered as large as it is needed: a scanned one (``scanned[i]``) large enough to be read by
    OCR (``OCR_RENDER_SIDE``), one with drawings (a vector chart, a ruled table) at the size the model is
    shown a source picture (``VIEW_PIXELS``), so both can be read when they are sources; a page of text only
    at its thumbnail's size (its text reaches the model as text; pdfium smooths the small render as well as
    a reduction of a larger one would, in a sixth of the time)."""
    import pypdfium2 as pdfium

    renders, layouts = {}, {}
    try:
        pdf = pdfium.PdfDocument(str(path))
    except Exception:  # noqa: BLE001  pypdf read it; pdfium may not: no renders then
        return renders, layouts
    try:
        for i in range(min(len(scanned), len(pdf))):
            page = pdf[i]
            width, height = (max(side, 1) for side in page.get_size())
            if scanned[i]:
                scale = OCR_RENDER_SIDE / max(width, height)
            elif _drawn(page):
                scale = math.sqrt(VIEW_PIXELS / (width * height))
            else:
                scale = THUMBNAIL_SIDE / max(width, height)
            render = page.render(scale=scale).to_pil().convert("RGB")
            renders[i + 1] = _gray_if_gray(render) if scanned[i] else render
            layouts[i + 1] = _page_layout(page)
    except Exception:  # noqa: BLE001
        pass
    finally:
        pdf.close()
    return renders, layouts


COLOUR_SPREAD = 40  # a pixel whose channels differ by more than this is coloured (a scanner's noise stays under)
COLOUR_SHARE = 0.0005  # a page is coloured from this share of coloured pixels (a small stamp, a highlight)


def _gray_if_gray(image: Image) -> Image:
    """A scanned page's render, in one channel when it has no colour: a third of the memory in the worker,
    in the reply and in the app until it is stored (a 300-page scan in RGB went over the worker's 4 GiB),
    and the same text for OCR and the same picture for the model."""
    from PIL import ImageChops

    red, green, blue = image.split()
    spread = ImageChops.lighter(ImageChops.lighter(ImageChops.difference(red, green),
                                                   ImageChops.difference(green, blue)),
                                ImageChops.difference(red, blue))  # max - min of the three channels
    if sum(spread.histogram()[COLOUR_SPREAD + 1:]) > COLOUR_SHARE * image.width * image.height:
        return image
    return image.convert("L")


DRAWN_PATHS = 12  # a page with at least this many drawn shapes (bars, axes, table rules) is a picture too
DRAWN_OBJECTS = 10_000  # at most this many of a page's objects are looked at for them


def _drawn(page) -> bool:
    """Whether the page draws shapes (a chart, a diagram, a ruled table) as well as its text, counting
    those inside included graphics (form XObjects, as a LaTeX figure from a PDF file is) too."""
    import pypdfium2.raw as pdfium_c

    paths, budget = 0, DRAWN_OBJECTS  # a page of hostile size or depth stops being looked at

    def children(count: int, get) -> list:
        nonlocal budget
        take = max(0, min(count, budget))
        budget -= take
        return [get(j) for j in range(take)]

    pending = children(pdfium_c.FPDFPage_CountObjects(page.raw), lambda j: pdfium_c.FPDFPage_GetObject(page.raw, j))
    while pending:
        item = pending.pop()
        kind = pdfium_c.FPDFPageObj_GetType(item)
        if kind == pdfium_c.FPDF_PAGEOBJ_PATH:
            paths += 1
            if paths >= DRAWN_PATHS:
                return True
        elif kind == pdfium_c.FPDF_PAGEOBJ_FORM:
            pending += children(pdfium_c.FPDFFormObj_CountObjects(item),
                                lambda j, form=item: pdfium_c.FPDFFormObj_GetObject(form, j))
    return False


def _page_layout(page) -> Layout | None:
    """Where the page's characters are, in fractions of its render; None for a rotated page (its boxes are
    not in the render's frame) or one whose text cannot be read."""
    try:
        if page.get_rotation() % 360:
            return None
        left, bottom, right, top = page.get_bbox()  # what the render shows: the crop box, its origin anywhere
        textpage = page.get_textpage()
        try:
            return from_characters(_characters(textpage.raw, left, bottom), right - left, top - bottom)
        finally:
            textpage.close()
    except Exception:  # noqa: BLE001  no layout: the page's passages are shown without highlights
        return None


def _characters(textpage, left: float, bottom: float):
    """Each character of a pdfium text page and its box (left, bottom, right, top) from the crop box's
    corner: the raw calls into four reused doubles (a page has thousands of characters; pypdfium2's
    ``get_charbox`` makes four new ones and checks each call, a third of the parse)."""
    import ctypes

    import pypdfium2.raw as pdfium_c

    x0, x1, y0, y1 = ctypes.c_double(), ctypes.c_double(), ctypes.c_double(), ctypes.c_double()
    box, unicode = pdfium_c.FPDFText_GetCharBox, pdfium_c.FPDFText_GetUnicode
    refs = ctypes.byref(x0), ctypes.byref(x1), ctypes.byref(y0), ctypes.byref(y1)  # left, right, bottom, top
    for i in range(pdfium_c.FPDFText_CountChars(textpage)):
        if box(textpage, i, *refs):
            yield chr(unicode(textpage, i)), (x0.value - left, y0.value - bottom, x1.value - left, y1.value - bottom)


def _pdf_figures(page, number: int, name: str) -> list[Picture]:
    figures = []
    try:
        images = list(page.images)
    except Exception:  # noqa: BLE001  unreadable image streams: the page render still shows them
        return figures
    for i, item in enumerate(images, start=1):
        try:
            image = open_image_bytes(item.data, name)
        except UnreadableFileError:
            continue
        if min(image.size) >= MIN_FIGURE_SIDE:
            figures.append(Picture(image, f"page {number} · figure {i}", "figure", page=number))
    return figures


# -- HTML ---------------------------------------------------------------------------------------


_BLOCKS = ("h1", "h2", "h3", "h4", "h5", "h6", "p", "li", "pre", "blockquote", "td", "th", "figcaption",
           "dt", "dd")
_BOILERPLATE = ["nav", "footer", "header", "aside", "noscript", "form", "button", "svg"]


def parse_html(path: Path, options: ParseOptions) -> Parsed:
    """The page's main text (``<article>`` or ``<main>`` when there is one) with its headings, scripts,
    styles and navigation removed; the images it references, by alt text, and local ones as figures."""
    import lxml.html
    from lxml_html_clean import Cleaner

    raw = read_text(path)
    try:
        tree = lxml.html.fromstring(raw.encode("utf-8"))
    except (ValueError, lxml.etree.ParserError) as exc:
        raise UnreadableFileError(f"{path.name}: not readable HTML ({detail(exc, path.name)})") from exc
    images = [((img.get("alt") or "").strip(), (img.get("src") or "").strip()) for img in tree.iter("img")]
    cleaner = Cleaner(scripts=True, javascript=True, style=True, comments=True, forms=True, embedded=True,
                      frames=True, meta=True, page_structure=False, kill_tags=_BOILERPLATE)
    tree = cleaner.clean_html(tree)
    root = (tree.xpath("//article") or tree.xpath("//main") or [tree])[0]
    lines = []
    for element in root.iter(*_BLOCKS):
        if any(child.tag in _BLOCKS for child in element.iterdescendants()):
            continue  # its inner blocks are read on their own
        text = " ".join(element.text_content().split())
        if text:
            level = int(element.tag[1]) if element.tag in _BLOCKS[:6] else 0
            lines.append(("#" * level + " " if level else "") + text)
    text = "\n\n".join(lines) or " ".join(root.text_content().split())  # text outside any block
    parsed = Parsed(kind="html", passages=markdown_sections(text) if text.strip() else [])
    for i, (alt, src) in enumerate(images, start=1):
        local = (path.parent / src).resolve() if src and "://" not in src and not src.startswith("data:") else None
        if local is not None and local.is_file() and local.suffix.lower() in IMAGE_SUFFIXES:
            try:
                parsed.pictures.append(Picture(open_image(local), f"image {i}", "figure", caption=alt))
                continue
            except UnreadableFileError:
                pass
        if alt:  # a remote or missing image is never fetched; its alt text still describes it
            parsed.passages.append(Passage(f"Image: {alt}", f"image {i}"))
    if not parsed.passages and not parsed.pictures:
        raise UnreadableFileError(f"{path.name}: no readable text in the page")
    return parsed


# -- DOCX ---------------------------------------------------------------------------------------


def parse_docx(path: Path, options: ParseOptions) -> Parsed:
    import zipfile

    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(str(path))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise UnreadableFileError(f"{path.name}: not a readable Word document ({detail(exc, path.name)})") from exc
    lines = []
    for paragraph in document.paragraphs:
        style = (paragraph.style.name or "") if paragraph.style is not None else ""
        level = int(style.split()[-1]) if style.startswith("Heading") and style.split()[-1].isdigit() else 0
        lines.append(("#" * level + " " if level else "") + paragraph.text)
    for table in document.tables:
        lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in table.rows)
    text = "\n\n".join(line for line in lines if line.strip())
    parsed = Parsed(kind="docx", passages=markdown_sections(text) if text.strip() else [])
    images = [p for p in document.part.related_parts.values() if p.content_type.startswith("image/")]
    for i, part in enumerate(images, start=1):
        try:
            image = open_image_bytes(part.blob, path.name)
        except UnreadableFileError:
            continue
        if min(image.size) >= MIN_FIGURE_SIDE:
            parsed.pictures.append(Picture(image, f"figure {i}", "figure"))
    if not parsed.passages and not parsed.pictures:
        raise UnreadableFileError(f"{path.name}: the document has no text and no images")
    return parsed
