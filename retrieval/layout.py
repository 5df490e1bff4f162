"""Where a passage's text lies on its page or image, so a citation can show it highlighted.

A ``Layout`` is made once per PDF page (from pdfium's character boxes) or per image read by OCR (from the
recogniser's line boxes): the page's text with its white space removed, and its lines, each a range of
that text and a box. A chunk is found in it by its own text, white space removed too (the PDF's text for
the passages comes from another extractor, which lays out spaces and line ends its own way), and its
regions are the boxes of the lines it covers. Boxes are fractions of the page's or image's width and
height, (left, top, right, bottom) from the top left, so they fit its thumbnail at any size.

A chunk not found (text the two extractors read differently: ligatures, hyphenation) has no regions: its
card shows the page as before.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]  # left, top, right, bottom, as fractions of the width and height
_SPACE = re.compile(r"\s+")
ANCHOR = 24  # characters from each end of a chunk that locate it when the whole is not found


def squeeze(text: str) -> str:
    """The text as it is compared: NFKC (ligatures and full-width forms as plain letters), no white space."""
    return _SPACE.sub("", unicodedata.normalize("NFKC", text))


@dataclass(frozen=True)
class Layout:
    text: str  # squeezed
    lines: tuple[tuple[int, int, Box], ...] = field(default=())  # (start, end) in text, and the line's box

    def regions(self, passage: str) -> tuple[Box, ...]:
        """The boxes of the lines ``passage`` covers; none when it is not found."""
        wanted = squeeze(passage)
        if not wanted or not self.lines:
            return ()
        start = self.text.find(wanted)
        if start >= 0:
            end = start + len(wanted)
        else:  # its two ends, in order
            head, tail = wanted[:ANCHOR], wanted[-ANCHOR:]
            start = self.text.find(head)
            last = self.text.find(tail, start + 1) if start >= 0 else -1
            if start < 0 or last < 0 or last - start > 2 * len(wanted):
                return ()
            end = last + len(tail)
        # a line outside the page's crop box is clipped to nothing: not shown
        return tuple(box for a, b, box in self.lines if a < end and b > start and box[2] > box[0] and box[3] > box[1])


def from_characters(characters: Iterable[tuple[str, tuple[float, float, float, float]]], width: float,
                    height: float) -> Layout:
    """A PDF page's layout from its characters in reading order, each with its box in PDF points
    (left, bottom, right, top, from the bottom left). Characters whose middle lies outside the current
    line's height, or that step back to the left, start a new line."""
    text: list[str] = []
    lines: list[tuple[int, int, Box]] = []
    inline = False  # whether a line is being built: its left, bottom, right, top so far (scalars: a page
    x0 = y0 = x1 = y1 = 0.0  # has thousands of characters, and this loop is most of a text PDF's parse)
    start = 0
    for char, (left, bottom, right, top) in characters:
        piece = char if " " < char < "\x7f" else squeeze(char)  # printable ASCII is its own NFKC form
        if not piece or right <= left or top <= bottom:
            continue
        middle = (bottom + top) / 2
        if inline and (not y0 <= middle <= y1 or left < x0 - 1):
            lines.append((start, len(text), _relative([x0, y0, x1, y1], width, height)))
            inline = False
        if not inline:
            inline, start = True, len(text)
            x0, y0, x1, y1 = left, bottom, right, top
        else:
            if left < x0:
                x0 = left
            if bottom < y0:
                y0 = bottom
            if right > x1:
                x1 = right
            if top > y1:
                y1 = top
        text.extend(piece)
    if inline:
        lines.append((start, len(text), _relative([x0, y0, x1, y1], width, height)))
    return Layout("".join(text), tuple(lines))


def from_lines(lines: Sequence[tuple[str, tuple[float, float, float, float]]], width: float,
               height: float) -> Layout:
    """An image's layout from the lines OCR read, in reading order, each with its box in pixels
    (left, top, right, bottom)."""
    text, out = "", []
    for line, (left, top, right, bottom) in lines:
        piece = squeeze(line)
        if piece:
            out.append((len(text), len(text) + len(piece),
                        _clip((left / width, top / height, right / width, bottom / height))))
            text += piece
    return Layout(text, tuple(out))


def _relative(box: list[float], width: float, height: float) -> Box:
    left, bottom, right, top = box
    return _clip((left / width, 1 - top / height, right / width, 1 - bottom / height))


def _clip(box: Box) -> Box:
    return tuple(round(min(max(v, 0.0), 1.0), 4) for v in box)  # type: ignore[return-value]
