"""Model presets: a name for a checkpoint with what a site needs to know before choosing it (its licence,
its size, how it answers boxes, whether the fast decoder serves it). ``ASSISTANT_MODEL__PRESET`` picks
one; ``ASSISTANT_MODEL__CHECKPOINT`` still names any other checkpoint or a local folder.

The parameter counts are the published ones (each model card's safetensors total), rounded; the README's
weight-memory figures are computed from them (``weight_gb``), not measured."""

from __future__ import annotations

import math
from dataclasses import dataclass

from assistant.errors import ConfigurationError

APACHE = "Apache-2.0"
APACHE_URL = "https://www.apache.org/licenses/LICENSE-2.0"

# Box conventions: how a family's answer gives a box (``{"bbox_2d": [x1, y1, x2, y2]}``).
PIXELS = "pixels"  # pixels of the image as the model saw it (after its own resizing): Qwen2-VL, Qwen2.5-VL
RELATIVE_1000 = "relative-1000"  # 0-1000 of the image's width and height: Qwen3-VL
NO_BOXES = "none"  # the family has no box format: boxes in an answer are not drawn
CONVENTIONS = (PIXELS, RELATIVE_1000, NO_BOXES)

# Bytes per weight: bf16; int4 in groups of 128 (a bf16 scale and zero per group); bitsandbytes NF4
# (blocks of 64 with a float32 absmax); LLM.int8.
BYTES_PER_WEIGHT = {"bf16": 2.0, "int4": 0.5 + 4 / 128, "nf4": 0.5 + 4 / 64, "int8": 1.0 + 4 / 4096}


@dataclass(frozen=True)
class Preset:
    name: str
    checkpoint: str
    family: str  # the transformers model_type
    licence: str
    licence_url: str
    params_b: float | None  # billions of parameters (published), None where not known here
    boxes: str
    static_decoder: bool  # the int4 static decoder (assistant.models.static_decode) serves it on CUDA
    for_cpu: bool = False  # small enough to answer on a CPU
    terms: str | None = None  # terms beyond the licence the user is shown (and accepts by choosing it)
    note: str = ""

    def weight_gb(self, quantisation: str) -> float | None:
        """Weight memory in GB if every weight had ``quantisation`` (int4 keeps the vision tower in bf16,
        which this does not count: a few hundred MB)."""
        return None if self.params_b is None else self.params_b * BYTES_PER_WEIGHT[quantisation]


QWEN3 = dict(family="qwen3_vl", licence=APACHE, licence_url=APACHE_URL, boxes=RELATIVE_1000, static_decoder=True)
PRESETS: dict[str, Preset] = {p.name: p for p in [
    Preset("qwen3-vl-2b", "Qwen/Qwen3-VL-2B-Instruct", params_b=2.1, **QWEN3),
    Preset("qwen3-vl-4b", "Qwen/Qwen3-VL-4B-Instruct", params_b=4.4, note="the default with a CUDA GPU",
           **QWEN3),
    Preset("qwen3-vl-8b", "Qwen/Qwen3-VL-8B-Instruct", params_b=8.8, **QWEN3),
    Preset("qwen2.5-vl-7b", "Qwen/Qwen2.5-VL-7B-Instruct", "qwen2_5_vl", APACHE, APACHE_URL, 8.3, PIXELS, True),
    Preset("qwen2.5-vl-3b", "Qwen/Qwen2.5-VL-3B-Instruct", "qwen2_5_vl", "Qwen Research License (non-commercial)",
           "https://huggingface.co/Qwen/Qwen2.5-VL-3B-Instruct/blob/main/LICENSE", 3.8, PIXELS, True,
           note="the default before; research use only"),
    Preset("gemma-4-e4b", "google/gemma-4-E4B-it", "gemma4", APACHE, APACHE_URL, 8.9, NO_BOXES, False,
           note="4B effective; 8.9 B with its per-layer embeddings (Google's table: 17.9 GB in BF16)"),
    Preset("smolvlm2-2.2b", "HuggingFaceTB/SmolVLM2-2.2B-Instruct", "smolvlm", APACHE, APACHE_URL, 2.2, NO_BOXES,
           False, for_cpu=True),
    Preset("smolvlm2-256m", "HuggingFaceTB/SmolVLM2-256M-Video-Instruct", "smolvlm", APACHE, APACHE_URL, 0.26,
           NO_BOXES, False, for_cpu=True),
    Preset("smolvlm-256m", "HuggingFaceTB/SmolVLM-256M-Instruct", "idefics3", APACHE, APACHE_URL, 0.26, NO_BOXES,
           False, for_cpu=True, note="the default without a CUDA GPU"),
    Preset("medgemma-4b", "google/medgemma-4b-it", "gemma3", "Health AI Developer Foundations terms of use",
           "https://developers.google.com/health-ai-developer-foundations/terms", 4.3, NO_BOXES, False,
           terms="MedGemma is offered under Google's Health AI Developer Foundations terms of use "
                 "(https://developers.google.com/health-ai-developer-foundations/terms). Its outputs are not "
                 "intended to directly inform clinical diagnosis, patient management decisions, treatment "
                 "recommendations or any other direct clinical practice applications; by choosing this preset "
                 "you accept those terms. Opt-in only: it is never a default.",
           note="opt-in; its own terms are shown with every answer's model line"),
]}

GPU_DEFAULT = "qwen3-vl-4b"
CPU_DEFAULT = "smolvlm-256m"


def preset(name: str) -> Preset:
    try:
        return PRESETS[name.strip().lower()]
    except KeyError:
        raise ConfigurationError(f"ASSISTANT_MODEL__PRESET={name!r} is not a preset; the presets are "
                                 f"{', '.join(PRESETS)}.") from None


def for_checkpoint(checkpoint: str | None) -> Preset | None:
    """The preset of a hub id (so a checkpoint named by hand still shows its licence and terms)."""
    if not checkpoint:
        return None
    return next((p for p in PRESETS.values() if p.checkpoint.lower() == checkpoint.strip().lower()), None)


def box_convention(family: str | None, name: str | None = None) -> str:
    """How a model family gives boxes: from its transformers model_type, or from a served model's name."""
    family = (family or "").lower()
    if family.startswith(("qwen3_vl", "qwen3-vl")):
        return RELATIVE_1000
    if family in ("qwen2_vl", "qwen2_5_vl"):
        return PIXELS
    if family:
        return NO_BOXES
    text = (name or "").lower().replace("_", "-")
    known = for_checkpoint(name)
    if known is not None:
        return known.boxes
    if "qwen3-vl" in text or "qwen3vl" in text:
        return RELATIVE_1000
    if "qwen2.5-vl" in text or "qwen2-vl" in text or "qwen2-5-vl" in text:
        return PIXELS
    return NO_BOXES


def qwen_resized(width: int, height: int, *, factor: int = 28, min_pixels: int = 56 * 56,
                 max_pixels: int = 28 * 28 * 1280) -> tuple[int, int]:
    """The (width, height) the Qwen2-VL-family processor resizes an image to (its ``smart_resize``: each
    side to a multiple of ``factor``, the area kept within bounds); the frame of its pixel boxes."""
    h = max(factor, round(height / factor) * factor)
    w = max(factor, round(width / factor) * factor)
    if h * w > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h = max(factor, math.floor(height / beta / factor) * factor)
        w = max(factor, math.floor(width / beta / factor) * factor)
    elif h * w < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h = math.ceil(height * beta / factor) * factor
        w = math.ceil(width * beta / factor) * factor
    return w, h


BOX_WORDS = {PIXELS: "`bbox_2d` in pixels of its resized input", RELATIVE_1000: "`bbox_2d` in 0-1000",
             NO_BOXES: "none (not drawn)"}


def markdown_table() -> str:
    """The README's model table, from ``PRESETS`` (``python scripts/models_table.py`` writes it)."""
    def gb(p: Preset, q: str) -> str:
        value = p.weight_gb(q)
        return "?" if value is None else f"{value:.1f}"

    rows = ["| Preset | Checkpoint | Licence | Parameters | Weights GB: bf16 / int4 / NF4 / 8-bit | Boxes "
            "| Static decoder | Note |", "|---|---|---|---|---|---|---|---|"]
    for p in PRESETS.values():
        params = "?" if p.params_b is None else f"{p.params_b:g} B"
        weights = " / ".join(gb(p, q) for q in ("bf16", "int4", "nf4", "int8"))
        rows.append(f"| `{p.name}` | `{p.checkpoint}` | [{p.licence}]({p.licence_url}) | {params} | {weights} "
                    f"| {BOX_WORDS[p.boxes]} | {'yes' if p.static_decoder else 'no (`generate`)'} | {p.note} |")
    return "\n".join(rows)


def is_local(checkpoint: str) -> bool:
    """A folder on this machine rather than a hub id (``org/name``)."""
    return checkpoint.startswith(("/", ".", "~")) or "\\" in checkpoint or checkpoint.count("/") > 1


def public_name(checkpoint: str) -> str:
    """The model's name as users may see it (on the page, in their exports): a hub id as it is, a local
    folder by its own name only, never the server's path to it."""
    return checkpoint.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if is_local(checkpoint) else checkpoint
