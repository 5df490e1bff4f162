"""Write a generated set of answer–image pairs for the consistency table of ``assistant eval``: shapes of
named colours, solid colours and rendered text (English and Chinese), each with an answer that matches it and
answers that do not (about another object, or about something unrelated), in English and Chinese, some with
citation marks and box markup; and, shown apart, answers about a shape with one attribute wrong.

    python benchmarks/consistency_data.py DIR && python -m assistant eval DIR/eval.json
    python benchmarks/consistency_data.py DIR --toy    # scored with the toy shared-space embedder

``--toy`` scores it with ``tests/helpers/fakes.py``'s ``SharedSpaceEmbedder`` (no real CLIP/SigLIP exists
offline): the table, and its JSON in DIR/consistency-toy.json. With a real embedder, ``assistant eval``
gives the threshold to configure.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.documents import text_image  # noqa: E402
from tests.helpers.fakes import COLOURS  # noqa: E402

SHAPE_COLOURS = ("red", "green", "blue", "yellow", "orange", "purple")
SOLID = ("pink", "brown", "grey", "blue")
ZH_SHAPES = {"circle": "圆形", "square": "正方形", "triangle": "三角形"}
TEXTS = {"exit": ("EMERGENCY EXIT\nKeep this door clear", "The sign says EMERGENCY EXIT: keep this door clear."),
         "dose": ("Amoxicillin 500 mg\nTake twice daily", "The label reads: Amoxicillin 500 mg, take twice daily."),
         "bp": ("Blood pressure 120/80\nPulse 72", "The page shows text: blood pressure 120/80, pulse 72."),
         "wifi": ("Guest WiFi\nPassword: harbour42", "The sign gives the guest WiFi password in writing."),
         "surgery-zh": ("今日手术安排\n三号手术室 上午九点", "图片上的文字写着：今日手术安排，三号手术室，上午九点。"),
         "visit-zh": ("探视时间\n下午两点到晚上八点", "这是一张文字告示：探视时间为下午两点到晚上八点。")}
UNRELATED = ("The invoice total is 42 euros [2].", "Patients must fast for four hours before the scan [1].",
             "A dog running on a sandy beach.", "发票总额为四千二百元人民币 [1]。", "这是一张城市夜景的照片。",
             "The chart shows revenue growing every quarter.")


def write(root: Path) -> Path:
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = random.Random(12)
    pairs = []
    for i, (shape, colour) in enumerate((s, c) for s in ZH_SHAPES for c in SHAPE_COLOURS):
        name = f"images/{colour}-{shape}.png"
        _shape(root / name, shape, colour, "white" if i % 4 else "black")
        other_colour = rng.choice([c for c in SHAPE_COLOURS if c != colour])
        other_shape = rng.choice([s for s in ZH_SHAPES if s != shape])
        half = (other_colour, shape) if i % 2 else (colour, other_shape)
        pairs += [_pair(name, _describe(colour, shape, i), True, "match"),
                  _pair(name, _describe(other_colour, other_shape, i + 1), False, "another object"),
                  _pair(name, rng.choice(UNRELATED), False, "unrelated"),
                  _pair(name, _describe(*half, i + 2), None, "one attribute wrong")]
    for colour in SOLID:
        name = f"images/solid-{colour}.png"
        _solid(root / name, colour)
        other = rng.choice([c for c in SHAPE_COLOURS if c != colour])
        pairs += [_pair(name, f"The whole picture is plain {colour}, nothing else.", True, "match"),
                  _pair(name, f"A plain {other} picture.", False, "another object")]
    for key, (text, answer) in TEXTS.items():
        name = f"images/text-{key}.png"
        text_image(text, root / name)
        pairs += [_pair(name, answer, True, "match"),
                  _pair(name, _describe(rng.choice(SHAPE_COLOURS), "circle", 0), False, "another object"),
                  _pair(name, rng.choice(UNRELATED), False, "unrelated")]
    out = root / "eval.json"
    out.write_text(json.dumps({"documents": [], "queries": [], "consistency": pairs}, ensure_ascii=False,
                              indent=1), encoding="utf-8")
    return out


def _describe(colour: str, shape: str, i: int) -> str:
    """An answer about a shape, in one of four forms: English with a citation, Chinese, a box, a short one."""
    zh = f"{COLOURS[colour][1]}色的{ZH_SHAPES[shape]}"
    return [f"The image shows a {colour} {shape} on a plain background [1].", f"图中是一个{zh}。",
            f'Found it: [{{"bbox_2d": [40, 30, 160, 130], "label": "{colour} {shape}"}}]',
            f"A {colour} {shape}."][i % 4]


def _pair(image: str, answer: str, matches: bool | None, kind: str) -> dict:
    """``matches`` None: shown in the table by kind, left out of the flag's figures (an answer with one
    attribute wrong is neither a match nor about something else)."""
    return {"image": image, "answer": answer, "matches": matches, "kind": kind}


def _shape(path: Path, shape: str, colour: str, background: str) -> None:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (240, 180), background)
    draw, fill, box = ImageDraw.Draw(image), COLOURS[colour][0], (60, 30, 180, 150)
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(60, 150), (180, 150), (120, 30)], fill=fill)
    image.save(path)


def _solid(path: Path, colour: str) -> None:
    from PIL import Image

    Image.new("RGB", (200, 150), COLOURS[colour][0]).save(path)


def toy(spec: Path) -> dict:
    """The consistency table of the set with the toy shared-space embedder."""
    from assistant.evaluation import consistency_result, load
    from assistant.settings import Settings
    from tests.helpers.fakes import SharedSpaceEmbedder

    threshold = Settings().retrieval.consistency_min
    return consistency_result(load(spec)["consistency"], SharedSpaceEmbedder(), threshold)


if __name__ == "__main__":
    spec = write(Path(next((a for a in sys.argv[1:] if not a.startswith("--")), "consistency-data")))
    if "--toy" in sys.argv:
        from assistant.evaluation import consistency_lines

        result = toy(spec)
        (spec.parent / "consistency-toy.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
        print("\n".join(consistency_lines(result)))
    else:
        print(spec)
