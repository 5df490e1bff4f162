"""Optical character recognition with RapidOCR (PP-OCR detection and recognition models for Chinese and
English, shipped inside the ``rapidocr-onnxruntime`` wheel: it works offline)."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

from retrieval.layout import Layout, from_lines

if TYPE_CHECKING:
    from PIL.Image import Image

OCR_MAX_SIDE = 1600
MIN_CONFIDENCE = 0.6


@lru_cache(maxsize=2)
def _engine(threads: int):
    """RapidOCR's engine; its ONNX sessions on ``threads`` threads (0: onnxruntime's choice, one a core)."""
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR(intra_op_num_threads=threads, inter_op_num_threads=1) if threads else RapidOCR()


# A blank run between two characters parts two words when it is at least this share of the line's ink
# height and this many times the line's usual gap between letters (either rule alone gave six times the
# spaces too many). `python benchmarks/ocr_spaces.py`: 60 lines in Pillow's font and Noto Sans CJK at 12-36
# pixels: 47 of 57 read exactly against 29 for the recogniser alone, 1 space missing against 146, 13 too
# many (inside words: "EU R", "I nvoice", at thin capitals) against 0.
WORD_GAP = 0.24
LETTER_GAPS = 2.0
_CJK = re.compile(r"[\u3000-\u9fff\uac00-\ud7af\uff00-\uffef]")


def read_text(image: Image) -> str:
    """The text in an image, line by line in reading order, words kept apart; empty when there is none
    worth keeping."""
    return read_layout(image)[0]


def read_layout(image: Image, *, threads: int = 0) -> tuple[str, Layout]:
    """The text in an image (as ``read_text``) and where each of its lines is (see ``retrieval.layout``).
    ``threads``: how many the recogniser may use (0: one a core).

    The recogniser drops spaces between Latin words at some text sizes ("Warrantycard:theZephyr..."): a
    space is put back where the image has a blank gap between two characters as wide as a word space
    (``WORD_GAP`` of the line's ink height), found from the characters' positions the recogniser reports.
    Never between two CJK characters. Boxes of one row (a line the detector cut in pieces) are joined
    left to right with a space."""
    import numpy as np

    picture = image.convert("RGB")
    if max(picture.size) > OCR_MAX_SIDE:
        picture = picture.copy()
        picture.thumbnail((OCR_MAX_SIDE, OCR_MAX_SIDE))
    result, _ = _engine(threads)(np.asarray(picture)[:, :, ::-1], return_word_box=True)  # BGR like OpenCV
    gray = np.asarray(picture.convert("L"), dtype=np.int16)
    pieces = []
    for item in result or []:
        box, text, score = item[0], item[1], float(item[2])
        if score < MIN_CONFIDENCE or not text.strip():
            continue
        if len(item) > 4 and item[3] and len(item[4]) == len(item[3]):
            text = _spaced(gray, box, list(item[4]), item[3])
        xs, ys = [p[0] for p in box], [p[1] for p in box]
        pieces.append((min(ys), max(ys), min(xs), max(xs), text.strip()))
    rows = [(" ".join(p[-1] for p in row), (min(p[2] for p in row), min(p[0] for p in row),
                                            max(p[3] for p in row), max(p[1] for p in row)))
            for row in _rows(pieces)]
    text = "\n".join(line for line, _ in rows)
    if len(text.replace("\n", "").replace(" ", "")) < 3:
        return "", Layout("")
    return text, from_lines(rows, *picture.size)


def _rows(pieces: list[tuple]) -> list[list[tuple]]:
    """Pieces (top, bottom, left, right, text) grouped into rows: a piece whose vertical middle lies within a row's
    extent joins it; rows top to bottom, pieces left to right."""
    rows: list[list[tuple]] = []
    for piece in sorted(pieces):
        middle = (piece[0] + piece[1]) / 2
        row = next((r for r in rows if min(p[0] for p in r) <= middle <= max(p[1] for p in r)), None)
        if row is None:
            rows.append([piece])
        else:
            row.append(piece)
    return [sorted(r, key=lambda p: p[2]) for r in rows]


def _spaced(gray, box, chars: list[str], char_boxes: list) -> str:
    """``chars`` with a space added between two neighbours that a word-wide blank gap parts."""
    import numpy as np

    xs, ys = [int(p[0]) for p in box], [int(p[1]) for p in box]
    x0, x1 = max(min(xs), 0), min(max(xs) + 1, gray.shape[1])
    y0, y1 = max(min(ys), 0), min(max(ys) + 1, gray.shape[0])
    crop = gray[y0:y1, x0:x1]
    if crop.size == 0:
        return "".join(chars)
    dark = int(crop.min()) + int(crop.max()) < 2 * int(np.median(crop))  # dark ink on a light ground
    ink = crop < (int(crop.min()) + int(crop.max())) / 2 if dark else crop > (int(crop.min()) + int(crop.max())) / 2
    inked_rows = np.flatnonzero(ink.any(axis=1))
    if inked_rows.size == 0:
        return "".join(chars)
    height = inked_rows[-1] - inked_rows[0] + 1
    blank = ~ink.any(axis=0)
    centres = [(min(p[0] for p in b) + max(p[0] for p in b)) / 2 - x0 for b in char_boxes]
    gaps = [_longest_run(blank[int(max(centres[i - 1], 0)):int(min(centres[i], blank.size))])
            for i in range(1, len(chars))]
    between = [g for g, a, b in zip(gaps, chars, chars[1:]) if a != " " and b != " "]
    usual = max(float(np.median(between)), 1.0) if between else 1.0  # this line's gap between letters
    out = [chars[0]]
    for i in range(1, len(chars)):
        before, here, gap = chars[i - 1], chars[i], gaps[i - 1]
        if (here != " " and before != " " and not (_CJK.match(before) and _CJK.match(here))
                and gap >= WORD_GAP * height and gap >= LETTER_GAPS * usual):
            out.append(" ")
        out.append(here)
    return "".join(out)


def _longest_run(flags) -> int:
    best = run = 0
    for flag in flags:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best


BLACKOUT_MAX_SIDE = 2048  # text to black out is looked for at the size the knowledge base keeps a picture


def text_boxes(image: Image) -> list[tuple[int, int, int, int]]:
    """Where text lies in an image, as (left, top, right, bottom) pixel boxes of the image as given: the
    detector alone, with lower thresholds than for reading and wider boxes, every region it finds whatever
    the recogniser would make of it (for blacking out text, where a missed region matters more than a
    spurious one)."""
    import numpy as np

    picture = image.convert("RGB")
    scale = 1.0
    if max(picture.size) > BLACKOUT_MAX_SIDE:
        scale = max(picture.size) / BLACKOUT_MAX_SIDE
        picture = picture.copy()
        picture.thumbnail((BLACKOUT_MAX_SIDE, BLACKOUT_MAX_SIDE))
    # thresholds given per call: read_layout's call sets the engine's defaults back
    result, _ = _engine(0)(np.asarray(picture)[:, :, ::-1], use_det=True, use_cls=False, use_rec=False,
                           box_thresh=0.3, unclip_ratio=2.0)
    boxes = []
    for box in result or []:
        points = box[0] if len(box) and isinstance(box[0][0], (list, tuple)) else box
        xs, ys = [p[0] * scale for p in points], [p[1] * scale for p in points]
        boxes.append((int(min(xs)), int(min(ys)), int(max(xs)) + 1, int(max(ys)) + 1))
    return boxes
