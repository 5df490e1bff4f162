"""Visual grounding: boxes a model returns as JSON (Qwen2.5-VL's ``bbox_2d``) drawn on the user's image."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from assistant.images import load_image

_JSON_CANDIDATE = re.compile(r"\[[^\[\]]*(?:\[[^\[\]]*\][^\[\]]*)*\]|\{[^{}]*\}", re.S)
DRAW_MAX_PIXELS = 4_000_000
COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]


@dataclass(frozen=True)
class Box:
    label: str
    x1: float
    y1: float
    x2: float
    y2: float


def parse_boxes(text: str) -> list[Box]:
    """Every ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` in the text, in order, fenced or not."""
    boxes: list[Box] = []
    for match in _JSON_CANDIDATE.finditer(text):
        try:
            data = json.loads(match.group(0))
        except ValueError:
            continue
        for item in data if isinstance(data, list) else [data]:
            if (box := _box(item)) is not None and box not in boxes:
                boxes.append(box)
    return boxes


def _box(item) -> Box | None:
    if not isinstance(item, dict):
        return None
    coords = item.get("bbox_2d")
    if not (isinstance(coords, list) and len(coords) == 4 and all(isinstance(c, int | float) for c in coords)):
        return None
    x1, y1, x2, y2 = (float(c) for c in coords)
    if x2 <= x1 or y2 <= y1:
        return None
    return Box(str(item.get("label", "")), x1, y1, x2, y2)


def draw_boxes(image_path: Path, boxes: list[Box], frame: tuple[int, int], out: Path) -> Path:
    """Draw ``boxes``, given in a ``frame`` of (width, height) pixels, on the image; save as PNG at ``out``."""
    from PIL import ImageDraw

    image = load_image(image_path, DRAW_MAX_PIXELS)
    sx, sy = image.width / frame[0], image.height / frame[1]
    draw = ImageDraw.Draw(image)
    width = max(2, round(min(image.size) / 200))
    for i, b in enumerate(boxes):
        colour = COLOURS[i % len(COLOURS)]
        rect = [b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy]
        draw.rectangle(rect, outline=colour, width=width)
        if b.label:  # a filled tag above the box, or inside it when the box touches the top edge
            _, _, tw, th = draw.textbbox((0, 0), b.label)
            tag_h = th + 2 * width
            y = rect[1] - tag_h if rect[1] >= tag_h else rect[1]
            draw.rectangle([rect[0], y, rect[0] + tw + 2 * width, y + tag_h], fill=colour)
            draw.text((rect[0] + width, y + width), b.label, fill="white")
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out, "PNG")
    return out
