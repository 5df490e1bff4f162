"""Local backend: ``AutoModelForImageTextToText`` + ``AutoProcessor``, prompt from the processor's own
chat template, tokens streamed from a background thread. On CUDA the Qwen2-VL family answers through the
static decoder (``static_decode``: int4 weights, static cache, compiled CUDA-graph decode steps), other
families through ``generate``."""

from __future__ import annotations

import functools
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import GenerationError, InputError, ModelLoadError
from assistant.images import load_image
from assistant.lifecycle import Capabilities, Ready
from assistant.models.presets import box_convention
from assistant.types import ChatTurn, GenerationParams

if TYPE_CHECKING:
    from assistant.models.static_decode import StaticDecoder

log = logging.getLogger(__name__)
_END = object()
OOM_MESSAGE = ("The GPU ran out of memory while answering. Try fewer or smaller images, a shorter "
               "conversation, or lower ASSISTANT_MODEL__MAX_PIXELS.")


@dataclass(frozen=True)
class LoadPlan:
    """How to load a checkpoint on this machine, decided once from the settings."""

    checkpoint: str
    device: str  # "cuda" | "cpu"
    dtype: str  # "bfloat16" | "float16" | "float32"
    quantization: str  # "none" | "int4" | "4bit" (bitsandbytes NF4) | "8bit"
    double_quant: bool = False
    decoder: str = "generate"  # "static" | "generate"
    int4_group_size: int = 128

    @classmethod
    def resolve(cls, checkpoint: str, *, device: str = "auto", dtype: str = "auto",
                quantization: str = "auto", double_quant: bool = False, decoder: str = "auto",
                int4_group_size: int = 128, cuda_available: bool | None = None, bf16_supported: bool = True,
                int4_supported: bool | None = None) -> LoadPlan:
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
            bf16_supported = cuda_available and torch.cuda.is_bf16_supported()
        if int4_supported is None:
            from assistant.models import int4

            int4_supported = int4.cuda_supported() if cuda_available else True
        if device == "cuda" and not cuda_available:
            raise ModelLoadError(
                f"Cannot load '{checkpoint}' on CUDA: no CUDA GPU is visible to this process. "
                "Set ASSISTANT_MODEL__DEVICE=cpu (and ASSISTANT_MODEL__QUANTIZATION=none) to run on the CPU.")
        device = ("cuda" if cuda_available else "cpu") if device == "auto" else device
        if quantization == "auto":
            quantization = ("int4" if int4_supported else "4bit") if device == "cuda" else "none"
        if quantization == "int4":
            if device == "cuda" and not int4_supported:
                raise ModelLoadError(
                    "ASSISTANT_MODEL__QUANTIZATION=int4 needs a GPU of compute capability 8.0 or newer (A100, "
                    "A10G, L4, H100...); this one is older. Use ASSISTANT_MODEL__QUANTIZATION=4bit (bitsandbytes).")
            if dtype not in ("auto", "bfloat16"):
                raise ModelLoadError(
                    f"ASSISTANT_MODEL__QUANTIZATION=int4 computes in bfloat16, not {dtype}: set "
                    "ASSISTANT_MODEL__DTYPE=bfloat16 (or auto), or choose another ASSISTANT_MODEL__QUANTIZATION.")
            dtype = "bfloat16"
        if dtype == "auto":
            dtype = "float32" if device == "cpu" else ("bfloat16" if bf16_supported else "float16")
        if decoder == "auto":
            decoder = "static" if device == "cuda" and quantization in ("none", "int4") else "generate"
        if decoder == "static" and quantization not in ("none", "int4"):
            raise ModelLoadError(
                f"ASSISTANT_MODEL__DECODER=static works with ASSISTANT_MODEL__QUANTIZATION=int4 or none, not "
                f"{quantization} (bitsandbytes layers are decoded by generate).")
        return cls(checkpoint, device, dtype, quantization, double_quant, decoder, int4_group_size)


class _OutOfMemory(Exception):
    def __init__(self, after_tokens: bool):
        super().__init__("out of memory")
        self.after_tokens = after_tokens


ANSWER_TOKENS = 4096  # the longest answer the UI offers; the static cache holds context + this


class TransformersVisionModel(Ready):
    def __init__(self, model, processor, *, name: str, max_pixels: int, max_context_tokens: int = 16384,
                 decoder: StaticDecoder | None = None, boxes: str | None = None):
        self.model = model
        self.processor = processor
        self.name = name
        # Boxes per family (presets.box_convention): Qwen2/2.5-VL in pixels of the frame its processor
        # resized the image to, Qwen3-VL in 0-1000, other families none (not drawn).
        family = getattr(getattr(model, "config", None), "model_type", None)
        self.capabilities = Capabilities(boxes=boxes or box_convention(family or "unknown"))
        self.max_pixels = max_pixels
        self.max_context_tokens = max_context_tokens
        self.decoder = decoder
        self._lock = threading.Lock()  # one generation at a time per loaded model

    @classmethod
    def from_pretrained(cls, plan: LoadPlan, *, max_pixels: int, max_context_tokens: int = 16384,
                        answer_tokens: int = ANSWER_TOKENS, warm_up: bool | None = None, boxes: str | None = None
                        ) -> TransformersVisionModel:
        """Load the checkpoint per ``plan``; every failure becomes one ``ModelLoadError``. With the static
        decoder, compilation, graph recording and one small answer happen here (``warm_up``, default on
        CUDA), so the first user does not wait for them."""
        _check_local_folder(plan.checkpoint)
        local = _origin(plan.checkpoint) != "hub"  # found in seconds: no network wait for what is here
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            from assistant.models.vision_attention import batch_windows

            processor = AutoProcessor.from_pretrained(plan.checkpoint, local_files_only=local)
            model = AutoModelForImageTextToText.from_pretrained(plan.checkpoint, local_files_only=local,
                                                                **_load_kwargs(plan))
            batch_windows(model)
            decoder = _place(model, plan, cache_tokens=max_context_tokens + answer_tokens)
        except Exception as exc:
            raise load_error(plan, exc) from exc
        log.info("loaded %s on %s (%s, %s, %s decoder)", plan.checkpoint, plan.device, plan.dtype,
                 plan.quantization, "static" if decoder else "generate")
        loaded = cls(model.eval(), processor, name=plan.checkpoint, max_pixels=max_pixels,
                     max_context_tokens=max_context_tokens, decoder=decoder, boxes=boxes)
        if warm_up if warm_up is not None else plan.device == "cuda":
            loaded.warm_up()
        return loaded

    def warm_up(self) -> None:
        """Compile and record the decoder, then answer one tiny question with an image, so that lazy
        initialisation (kernels, cuDNN, the processor) is paid now."""
        from PIL import Image

        if self.decoder is not None:
            self.decoder.warm_up()
        picture = Image.new("RGB", (64, 64), "gray")
        messages = [{"role": "user", "content": [{"type": "image", "image": picture},
                                                 {"type": "text", "text": "Warm-up."}]}]
        inputs = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
        for _ in self._generate_stream(inputs.to(self.model.device), GenerationParams(2, 0.0)):
            pass

    def stream(self, turns: Sequence[ChatTurn], params: GenerationParams) -> Iterator[str]:
        import torch

        try:
            inputs = self._fit_context(turns, self.max_pixels)  # bad images and overlong input fail here
        except torch.OutOfMemoryError:  # the images did not even fit on the device
            self._free_memory()
            inputs = None
        return self._guarded(turns, inputs, params)

    def _guarded(self, turns: Sequence[ChatTurn], inputs, params: GenerationParams) -> Iterator[str]:
        """Out of memory before the first token: free memory and try once more with images at a quarter
        of the pixels. After that, or after tokens were shown, say so plainly; the next request works."""
        import torch

        if inputs is not None:
            try:
                yield from self._generate_stream(inputs, params)
                return
            except _OutOfMemory as oom:
                self._free_memory()
                if oom.after_tokens:
                    raise GenerationError(OOM_MESSAGE) from None
        log.warning("out of memory; retrying with images at a quarter of the pixels")
        try:
            yield from self._generate_stream(self._fit_context(turns, self.max_pixels // 4), params)
        except (_OutOfMemory, torch.OutOfMemoryError):
            self._free_memory()
            raise GenerationError(OOM_MESSAGE + " A retry at a lower image resolution ran out of memory too.") from None

    def _free_memory(self) -> None:
        import gc

        import torch

        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _fit_context(self, turns: Sequence[ChatTurn], max_pixels: int):
        """Inputs within the context bound: the oldest turns of the history go first (the system prompt
        and the question stay); a question that alone is too long is refused."""
        turns = list(turns)
        while True:
            inputs = self._inputs(turns, max_pixels)
            length = int(inputs["input_ids"].shape[1])
            if length <= self.max_context_tokens:
                return inputs
            history = [i for i, t in enumerate(turns[:-1]) if t.role != "system"]
            if not history:
                raise InputError(
                    f"The question and its images need {length} tokens, more than the {self.max_context_tokens} "
                    "allowed (ASSISTANT_MODEL__MAX_CONTEXT_TOKENS): use fewer or smaller images or a shorter text.")
            del turns[history[0]]

    def close(self) -> None:
        """Release the weights (and the GPU memory they hold) once no answer is running."""
        with self._lock:
            self.model = self.decoder = None
            self._free_memory()

    def image_frame(self, image: Path) -> tuple[int, int]:
        """The (width, height) in pixels of the image as the model saw it: the frame of the absolute box
        coordinates Qwen2.5-VL answers with. Processors that report a patch grid give it exactly."""
        picture = load_image(image, self.max_pixels)
        processor = self.processor.image_processor
        grid = processor(images=[picture], return_tensors="pt").get("image_grid_thw")
        patch = getattr(processor, "patch_size", None)
        if grid is None or not patch:
            return picture.size
        _, rows, cols = (int(v) for v in grid[0])
        return cols * patch, rows * patch

    def _inputs(self, turns: Sequence[ChatTurn], max_pixels: int):
        messages = [
            {"role": t.role, "content": [{"type": "image", "image": load_image(p, max_pixels)}
                                         for p in t.images] + [{"type": "text", "text": t.text}]}
            for t in turns
        ]
        inputs = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt")
        return inputs.to(self.model.device)

    def _generate_stream(self, inputs, params: GenerationParams) -> Iterator[str]:
        from transformers import StoppingCriteria, StoppingCriteriaList, TextStreamer

        out: queue.Queue = queue.Queue()
        stop = threading.Event()

        class _Streamer(TextStreamer):
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    out.put(text)

        if self.decoder is not None:
            work = functools.partial(self._decode, inputs, params, stop,
                                     _Streamer(self.processor.tokenizer, skip_special_tokens=True))
            yield from self._stream_from(work, out, stop)
            return

        class _StopOnEvent(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                import torch

                return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool,
                                  device=input_ids.device)

        kwargs = dict(**inputs, max_new_tokens=params.max_new_tokens,
                      streamer=_Streamer(self.processor.tokenizer, skip_prompt=True, skip_special_tokens=True),
                      stopping_criteria=StoppingCriteriaList([_StopOnEvent()]),
                      **_sampling(params), pad_token_id=self._pad_token_id())
        yield from self._stream_from(functools.partial(self.model.generate, **kwargs), out, stop)

    def _stream_from(self, work, out: queue.Queue, stop: threading.Event) -> Iterator[str]:
        worker = threading.Thread(target=self._run, args=(work, out), name="generate", daemon=True)
        with self._lock:
            worker.start()
            try:
                yield from _drain(out)
            finally:
                stop.set()  # reached on normal end, on error, and when the consumer closes the stream
                worker.join()

    def _decode(self, inputs, params: GenerationParams, stop: threading.Event, streamer) -> None:
        import torch

        from assistant.models.static_decode import sampling_for

        sampling = sampling_for(self.model.generation_config, params.temperature)
        for token in self.decoder.tokens(inputs, sampling, params.max_new_tokens, self._eos_ids(), stop):
            streamer.put(torch.tensor([token]))
        streamer.end()

    def _eos_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.processor.tokenizer.eos_token_id
        return set(eos) if isinstance(eos, (list, tuple)) else {eos} if eos is not None else set()

    def _run(self, work, out: queue.Queue) -> None:
        import torch

        try:
            with torch.inference_mode():
                work()
        except BaseException as exc:  # handed to the consumer, which raises it in its own thread
            out.put(exc)
        finally:
            out.put(_END)

    def _pad_token_id(self):
        tokenizer = self.processor.tokenizer
        return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _drain(out: queue.Queue) -> Iterator[str]:
    import torch

    sent = False
    while (item := out.get()) is not _END:
        if isinstance(item, torch.OutOfMemoryError):
            raise _OutOfMemory(after_tokens=sent)
        if isinstance(item, BaseException):
            raise item
        sent = True
        yield item


def _sampling(params: GenerationParams) -> dict:
    if params.temperature <= 0:
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
    return {"do_sample": True, "temperature": params.temperature}


def _load_kwargs(plan: LoadPlan) -> dict:
    import torch

    dtype = getattr(torch, plan.dtype)
    if plan.quantization in ("none", "int4"):
        return {"dtype": dtype}  # loaded on the CPU, then placed (and quantised) layer by layer
    from transformers import BitsAndBytesConfig

    if plan.quantization == "4bit":
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=plan.double_quant)
    else:
        quant = BitsAndBytesConfig(load_in_8bit=True)
    device_map = {"": 0} if plan.device == "cuda" else {"": "cpu"}
    return {"dtype": dtype, "quantization_config": quant, "device_map": device_map}


def _place(model, plan: LoadPlan, *, cache_tokens: int) -> StaticDecoder | None:
    """Move a model loaded on the CPU to ``plan.device``, quantising to int4 on the way if planned; build
    the static decoder where the plan and the model family allow it."""
    import torch

    from assistant.models.int4 import quantize_linears
    from assistant.models.static_decode import StaticDecoder, unsupported_reason

    if plan.quantization not in ("none", "int4"):
        return None  # bitsandbytes placed it already
    dtype = getattr(torch, plan.dtype)
    if plan.decoder == "static":
        reason = unsupported_reason(model)
        if reason is None:
            return StaticDecoder(model, device=plan.device, dtype=dtype, quantize=plan.quantization == "int4",
                                 cache_tokens=cache_tokens, group_size=plan.int4_group_size)
        log.info("answering through generate: %s", reason)
    if plan.quantization == "int4":
        quantize_linears(model.get_decoder(), device=plan.device, group_size=plan.int4_group_size)
    model.to(plan.device)
    return None


def _check_local_folder(checkpoint: str) -> None:
    looks_local = checkpoint.startswith(("/", "./", "../", "~")) or checkpoint.count("/") > 1
    if looks_local and not Path(checkpoint).expanduser().is_dir():
        raise ModelLoadError(
            f"The model folder '{checkpoint}' does not exist. Set ASSISTANT_MODEL__CHECKPOINT to a folder "
            "holding a saved model (config.json, weights, processor files) or to a Hugging Face model id.")


def _origin(checkpoint: str) -> str:
    """``folder``, ``cache`` or ``hub``; a checkpoint that is not here and cannot be downloaded now is
    refused at once (instead of minutes of retried downloads), with the ways on."""
    from retrieval.hub import CheckpointUnavailableError, origin

    try:
        return origin(checkpoint, what="model", variable="ASSISTANT_MODEL__CHECKPOINT")
    except CheckpointUnavailableError as exc:
        raise ModelLoadError(str(exc)) from None


def load_error(plan: LoadPlan, exc: BaseException) -> ModelLoadError:
    """Say what went wrong loading ``plan.checkpoint`` and which setting fixes it."""
    name, var = plan.checkpoint, "ASSISTANT_MODEL__CHECKPOINT"
    if _is_oom(exc):
        return ModelLoadError(
            f"Not enough {'GPU ' if plan.device == 'cuda' else ''}memory to load '{name}' "
            f"({plan.dtype}, quantization {plan.quantization}). Choose a smaller model with {var}"
            + (", set ASSISTANT_MODEL__QUANTIZATION=int4" if plan.quantization == "none" else "")
            + (" or lower ASSISTANT_MODEL__MAX_CONTEXT_TOKENS (the static decoder's KV cache holds that "
               "many tokens plus 4096 for the answer)." if plan.decoder == "static" else "."))
    if plan.quantization != "none" and "bitsandbytes" in str(exc).lower():
        return ModelLoadError(
            f"Cannot load '{name}' with {plan.quantization} quantization: {_first_line(exc)}. Install "
            "bitsandbytes, or set ASSISTANT_MODEL__QUANTIZATION=none.")
    if _is_not_found(exc):
        return ModelLoadError(
            f"The model '{name}' is not in the local Hugging Face cache and could not be downloaded "
            f"(offline, or no such model). On a connected machine run `python -m assistant download`, "
            f"or set {var} to a local model folder.")
    return ModelLoadError(f"Could not load the model '{name}': {_first_line(exc)}. Set {var} to a "
                          "supported image-text-to-text checkpoint.")


def _is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc).lower()


def _is_not_found(exc: BaseException) -> bool:
    from huggingface_hub import errors as hub_errors

    hub = (hub_errors.LocalEntryNotFoundError, hub_errors.RepositoryNotFoundError,
           hub_errors.OfflineModeIsEnabled, hub_errors.EntryNotFoundError)
    chain, seen = exc, 0
    while chain is not None and seen < 10:
        if isinstance(chain, hub):
            return True
        chain, seen = chain.__cause__ or chain.__context__, seen + 1
    return isinstance(exc, OSError)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
