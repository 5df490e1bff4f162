"""Turn a file into the pieces the knowledge base embeds: text passages or one image."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from retrieval.errors import UnreadableFileError, UnsupportedFileError

if TYPE_CHECKING:
    from PIL.Image import Image

TEXT_SUFFIXES = {".txt": "text", ".md": "markdown", ".markdown": "markdown"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
SUPPORTED = sorted(set(TEXT_SUFFIXES) | IMAGE_SUFFIXES)
MAX_IMAGE_PIXELS = 64_000_000  # beyond this PIL's own guard treats a file as a decompression bomb


@dataclass
class Passage:
    text: str
    locator: str


@dataclass
class Parsed:
    kind: str  # "text" | "image"
    passages: list[Passage] = field(default_factory=list)
    image: Image | None = None


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED


def parse(path: Path, *, chunk_size: int, chunk_overlap: int) -> Parsed:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _parse_text(path, TEXT_SUFFIXES[suffix], chunk_size, chunk_overlap)
    if suffix in IMAGE_SUFFIXES:
        return Parsed(kind="image", image=open_image(path))
    raise UnsupportedFileError(
        f"{path.name}: unsupported file type '{suffix or '(none)'}'; supported: {', '.join(SUPPORTED)}"
    )


def open_image(path: Path) -> Image:
    """Open, orient and convert an image, refusing broken files and decompression bombs."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with Image.open(path) as im:
            im.seek(0)  # first frame of animations
            return ImageOps.exif_transpose(im).convert("RGB")
    except Image.DecompressionBombError as exc:
        raise UnreadableFileError(f"{path.name}: image is too large to open safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableFileError(f"{path.name}: not a readable image ({exc})") from exc


def _parse_text(path: Path, flavour: str, chunk_size: int, chunk_overlap: int) -> Parsed:
    from langchain_text_splitters import MarkdownTextSplitter, RecursiveCharacterTextSplitter

    text = _read_text(path)
    if not text.strip():
        raise UnreadableFileError(f"{path.name}: the file contains no text")
    splitter_cls = MarkdownTextSplitter if flavour == "markdown" else RecursiveCharacterTextSplitter
    splitter = splitter_cls(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    pieces = [p.strip() for p in splitter.split_text(text) if p.strip()]
    return Parsed(kind="text", passages=[Passage(p, f"part {i + 1}") for i, p in enumerate(pieces)])


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    encoding = "utf-16" if data.startswith((b"\xff\xfe", b"\xfe\xff")) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(
            f"{path.name}: not valid {encoding.upper()} text (byte {exc.start}); "
            "save it as UTF-8 and try again"
        ) from exc
