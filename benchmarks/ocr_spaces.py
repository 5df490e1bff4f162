"""Word spaces in OCR text: lines rendered in Pillow's own font and Noto Sans CJK at several sizes, read by
RapidOCR alone (its own spaces) and by ``retrieval.ocr.read_text`` (spaces put back from the image's
gaps). Counts, per character pair of each line: spaces missing, spaces too many, and lines read exactly.
Lines whose characters the recogniser got wrong are counted apart (their spaces cannot be compared).

    python benchmarks/ocr_spaces.py --out benchmarks/results/ocr_spaces.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LINES = ["Warranty card: the Zephyr X2 kettle.", "Service hotline: call 0800 555 0199 any day.",
         "Invoice total 42 EUR", "ALL CAPS WORDS LIKE WAVY AVATAR TALLY", "Take two tablets with water after meals",
         "Blood pressure 120/80 mmHg, pulse 72"]
SIZES = [12, 16, 20, 24, 36]


def render(line: str, typeface, size: int):
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size * (len(line) // 2 + 8), size * 3), "white")
    ImageDraw.Draw(image).text((12, size), line, fill="black", font=typeface)
    return image


def rapidocr_alone(image) -> str:
    import numpy as np

    from retrieval.ocr import _engine

    result, _ = _engine()(np.asarray(image.convert("RGB"))[:, :, ::-1])
    boxes = sorted(result or [], key=lambda r: r[0][0][0])
    return " ".join(r[1].strip() for r in boxes)


def compare(got: str, want: str) -> tuple[int, int, bool] | None:
    """(missing, extra, exact), or None when the characters themselves differ."""
    if got.replace(" ", "") != want.replace(" ", ""):
        return None

    def boundaries(text: str) -> set[int]:
        out, k = set(), 0
        for ch in text:
            if ch == " ":
                out.add(k)
            else:
                k += 1
        return out

    a, b = boundaries(got), boundaries(want)
    return len(b - a), len(a - b), a == b


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from PIL import ImageFont

    from retrieval.ocr import read_text
    from tests.helpers.documents import font as cjk_font

    fonts = {"pillow": lambda s: ImageFont.load_default(size=s), "noto-cjk": cjk_font}
    totals = {m: {"pairs": 0, "missing": 0, "extra": 0, "exact": 0, "lines": 0, "misread": 0}
              for m in ("rapidocr", "read_text")}
    for name, make in fonts.items():
        for size in SIZES:
            for line in LINES:
                image = render(line, make(size), size)
                for method, read in (("rapidocr", rapidocr_alone), ("read_text", read_text)):
                    t = totals[method]
                    t["lines"] += 1
                    result = compare(read(image).replace("\n", " "), line)
                    if result is None:
                        t["misread"] += 1
                        continue
                    t["pairs"] += len(line.replace(" ", "")) - 1
                    t["missing"] += result[0]
                    t["extra"] += result[1]
                    t["exact"] += result[2]
    print(f"{len(fonts)} fonts x {len(SIZES)} sizes x {len(LINES)} lines")
    print("| method | lines | read exactly | spaces missing | spaces too many | misread (skipped) |")
    print("|---|---|---|---|---|---|")
    for method, t in totals.items():
        print(f"| {method} | {t['lines']} | {t['exact']} | {t['missing']} | {t['extra']} | {t['misread']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"sizes": SIZES, "fonts": list(fonts), "lines": LINES, "totals": totals},
                                       indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
