"""The composition root: everything is built from one ``Settings`` here, and nowhere at import time."""

from __future__ import annotations

import os
import threading

from assistant import loading
from assistant.accounts import UsersFile, normalise_name
from assistant.errors import ConfigurationError
from assistant.knowledge import Knowledge, translated_errors
from assistant.lifecycle import Ready
from assistant.loading import Background
from assistant.models import presets
from assistant.models.base import LazyModel
from assistant.pipeline import AnswerPipeline
from assistant.settings import CPU_DEFAULT_CHECKPOINT, GPU_DEFAULT_CHECKPOINT, Settings
from assistant.shelf import DEFAULT, SHARED
from assistant.workspaces import Workspaces, knowledge_dir

# transformers resolves its classes lazily, and two loader threads resolving them at once can fail
# ("cannot import name 'AutoModelForImageTextToText'"): the first import happens under this lock.
_IMPORT_LOCK = threading.Lock()
OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def configure_environment(settings: Settings) -> None:
    """Process-wide switches, set by an entry point before transformers or gradio are imported. Files the
    process creates are its user's alone (0600, folders 0700): the record, Chroma's files, thumbnails,
    conversations, uploads in Gradio's cache, whichever library writes them. In medical mode the process may
    connect only to loopback and ``ASSISTANT_MEDICAL__ALLOWED_HOSTS`` from here on."""
    os.umask(0o077)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    if settings.offline:
        os.environ.update(OFFLINE_ENV)
    if settings.medical.enabled:
        clear_allocations()  # no upload's original in the unfilled slots of Chroma's HNSW files
    if settings.medical.enabled:  # nothing leaves the host (assistant/egress.py)
        from assistant import egress

        egress.install(settings.medical.allowed_hosts)


def clear_allocations(on: bool = True) -> bool:
    """glibc's M_PERTURB: every block malloc hands out is filled with one byte first. Chroma writes its HNSW files
    with slots it never filled, holding whatever the process's memory held before (an uploaded DICOM's
    original header was found there once in four runs). False where the C library is not glibc."""
    import ctypes
    import ctypes.util

    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").mallopt(-6, 0xA5 if on else 0))
    except (OSError, AttributeError):
        return False


def default_checkpoint(cuda_available: bool) -> str:
    return GPU_DEFAULT_CHECKPOINT if cuda_available else CPU_DEFAULT_CHECKPOINT


def chosen_checkpoint(settings: Settings, cuda_available: bool | None = None) -> str:
    """The model to load: ``ASSISTANT_MODEL__CHECKPOINT``, else the preset's, else the default for this
    machine (a CUDA GPU or not; asked only when needed)."""
    s = settings.model
    if s.checkpoint and s.preset:
        raise ConfigurationError("Set ASSISTANT_MODEL__PRESET or ASSISTANT_MODEL__CHECKPOINT, not both "
                                 f"(they are {s.preset!r} and {s.checkpoint!r}).")
    if s.checkpoint:
        return s.checkpoint
    if s.preset:
        return presets.preset(s.preset).checkpoint
    return default_checkpoint(_cuda_available() if cuda_available is None else cuda_available)


def build_model(settings: Settings):
    s = settings.model
    boxes = None if s.boxes == "auto" else s.boxes
    if s.backend == "openai":
        from assistant.models.openai_endpoint import OpenAIEndpointModel

        key = s.api_key.get_secret_value() if s.api_key else None
        return OpenAIEndpointModel(s.endpoint, chosen_checkpoint(settings, cuda_available=True), api_key=key,
                                   max_pixels=s.max_pixels, boxes=boxes)
    from assistant.models.transformers_backend import LoadPlan, TransformersVisionModel

    chosen_checkpoint(settings, cuda_available=False)  # a conflict is refused now, not in the loader thread

    def load():
        _import_transformers()
        plan = LoadPlan.resolve(chosen_checkpoint(settings), device=s.device, dtype=s.dtype,
                                quantization=s.quantization, double_quant=s.double_quant,
                                decoder=s.decoder, int4_group_size=s.int4_group_size)
        return TransformersVisionModel.from_pretrained(plan, max_pixels=s.max_pixels,
                                                       max_context_tokens=s.max_context_tokens, boxes=boxes)

    name = s.checkpoint or (presets.preset(s.preset).checkpoint if s.preset else "default model")
    return LazyModel(name, Background("model", load, close=lambda m: m.close()))


def load_embedders(settings: Settings):
    """The cross-modal and the text embedder the settings name (either may be None)."""
    from retrieval.embedders import TransformersEmbedder, TransformersTextEmbedder

    r = settings.retrieval
    _import_transformers()
    embedder = TransformersEmbedder.from_pretrained(r.embedder) if r.embedder else None
    text_embedder = TransformersTextEmbedder.from_pretrained(r.text_embedder) if r.text_embedder else None
    return embedder, text_embedder


def _store_options(settings: Settings, user: str | None = None, kb: str = DEFAULT) -> dict:
    """Each knowledge base has collections of its own (a Chroma server holds every user's vectors). User names
    are lower case, so the upper-case marks cannot meet a user's name: ``knowledge-alice``,
    ``knowledge-alice-KB-1f2e3d4c``, ``knowledge-SHARED``."""
    r = settings.retrieval
    collection = r.collection
    if kb == SHARED:
        collection += "-SHARED"
    else:
        collection += f"-{normalise_name(user)}" if user else ""
        collection += f"-KB-{kb.removeprefix('kb-')}" if kb != DEFAULT else ""
    return dict(collection=collection, ef_search=r.ef_search, max_store_bytes=int(r.max_store_gb * 1e9),
                chunk_size=r.chunk_size, chunk_overlap=r.chunk_overlap, ocr=r.ocr, max_pages=r.max_pages,
                chroma_url=r.chroma_url or None, progress=_reembedding, deid_key=deid_key(settings))


def deid_key(settings: Settings) -> bytes:
    """The installation's secret for DICOM pseudonyms, date shifts and UIDs (``ASSISTANT_DATA_DIR/deid.key``):
    one for every workspace, so one patient is one pseudonym across them."""
    from retrieval.dicom import installation_key

    return installation_key(settings.data_dir)


def _reembedding(done: int, total: int) -> None:
    """A knowledge base re-embedded for a new embedder: its status line says how far it is."""
    loading.report(f"re-embedding for the new embedder, {done} of {total} passages")


def open_knowledge_base(settings: Settings, *, write: bool = True, user: str | None = None, kb: str = DEFAULT):
    """Load the embedders and open a knowledge base (raises ``RetrievalError``): the local one, or a
    user's; ``kb``: which of theirs (``shared``: the shared library). Without ``write`` it is opened beside
    the process that writes it, if one has it open (the CLI's reads beside the app)."""
    from retrieval.store import KnowledgeBase

    embedder, text_embedder = load_embedders(settings)
    return KnowledgeBase.open_for(knowledge_dir(settings.data_dir, user, kb), embedder, write=write,
                                  text_embedder=text_embedder, **_store_options(settings, user, kb))


def build_knowledge(settings: Settings, *, write: bool = True, user: str | None = None,
                    kb: str = DEFAULT) -> Knowledge:
    from retrieval.store import KnowledgeBase

    def load():
        with translated_errors():
            return open_knowledge_base(settings, write=write, user=user, kb=kb)

    loader = Background("knowledge base", load, close=KnowledgeBase.close)
    return Knowledge(loader, max_pixels=settings.model.max_pixels)


def build_pipeline(settings: Settings, *, start: bool = True, knowledge: bool = True,
                   write: bool = True, user: str | None = None, kb: str = DEFAULT) -> AnswerPipeline:
    """The whole assistant, or as much of it as a command needs (``knowledge=False``: no knowledge base;
    ``write=False``: read it only; ``user``: that user's, not the local one). With ``start`` every
    component begins loading in the background; ``close()`` on the pipeline ends them all."""
    model = build_model(settings)
    base = build_knowledge(settings, write=write, user=user, kb=kb) if knowledge and settings.retrieval.enabled else None
    pipeline = AnswerPipeline(model, base, **_answer_options(settings))
    return pipeline.start() if start else pipeline


def _answer_options(settings: Settings) -> dict:
    r, m = settings.retrieval, settings.model
    return dict(k=r.k, min_score=r.min_score, strict=r.strict, source_images=m.source_images,
                visual_tokens=m.visual_tokens, max_pixels=m.max_pixels, consistency_min=r.consistency_min,
                space_scores=space_scores(r), medical=settings.medical.enabled)


def space_scores(r) -> dict[str, float]:
    """The relevance thresholds set per space (``RetrievalSettings``); a space without one uses MIN_SCORE."""
    return {space: value for space, value in (("text", r.min_text_score), ("cross", r.min_cross_score))
            if value is not None}


def build_audit(settings: Settings):
    """The server's audit log, when the settings keep one (``ASSISTANT_AUDIT__ENABLED``); else None."""
    if not settings.audit.enabled:
        return None
    from assistant.audit import AuditLog

    return AuditLog(settings.audit_file, content=settings.audit.content)


def knowledge_base_opener(settings: Settings):
    """``open(user, kb) -> KnowledgeBase``, opened to write (taking its lock as the app does), for a command
    that visits many knowledge bases one after another (``purge``): the embedders are loaded once, at the
    first open. Raises ``RetrievalError``; ``KnowledgeBaseBusyError`` when another process (the app) has it."""
    from retrieval.store import KnowledgeBase

    loaded: list = []

    def open_one(user: str | None, kb: str = DEFAULT):
        if not loaded:
            loaded.append(load_embedders(settings))
        embedder, text_embedder = loaded[0]
        return KnowledgeBase.open(knowledge_dir(settings.data_dir, user, kb), embedder,
                                  text_embedder=text_embedder, **_store_options(settings, user, kb))

    return open_one


def build_workspaces(settings: Settings) -> Workspaces:
    """The app's workspaces: one local user without sign-in (the pipeline ``build_pipeline`` makes), or,
    with sign-in, a knowledge base per user sharing the model, the embedders and the parse workers."""
    audit = build_audit(settings)
    if settings.auth.mode == "local":
        return Workspaces.single(build_pipeline(settings), settings.data_dir,
                                 lambda kb: build_knowledge(settings, kb=kb), audit=audit)
    from retrieval.store import KnowledgeBase
    from retrieval.worker import ParsePool

    model = build_model(settings)
    options = {**_answer_options(settings), "data_dir": settings.data_dir,
               "temporary": settings.auth.mode == "anonymous", "is_admin": admins(settings), "audit": audit}
    if settings.auth.mode == "password":  # a user removed with the CLI gets nothing more at once
        options["is_user"] = UsersFile(settings.users_file).exists
    if not settings.retrieval.enabled:
        return Workspaces(model, None, signed_in=True, **options).start()

    def load_shared():
        with translated_errors():
            return load_embedders(settings)

    embedders = Background("embedders", load_shared)
    workers = SharedParser(ParsePool())

    def open_knowledge(user: str | None, kb: str = DEFAULT) -> Knowledge:
        def load():
            embedder, text_embedder = embedders.get()
            with translated_errors():
                return KnowledgeBase.open_for(knowledge_dir(settings.data_dir, user, kb), embedder, write=True,
                                              text_embedder=text_embedder, parser=workers.borrowed(),
                                              **_store_options(settings, user, kb))

        label = "shared library" if kb == SHARED else "knowledge base"
        return Knowledge(Background(label, load, close=KnowledgeBase.close), max_pixels=settings.model.max_pixels)

    library = open_knowledge(None, SHARED)  # read by every user, written by administrators
    return Workspaces(model, open_knowledge, signed_in=True, shared=[embedders, workers], library=library,
                      **options).start()


def admins(settings: Settings):
    """Who may change the shared library: the users file's administrators (``users add --admin``), or the
    names in ``ASSISTANT_AUTH__ADMINS`` (sign-in through a proxy or Hugging Face). Anonymous visitors never."""
    named = {n.strip().lower() for n in settings.auth.admins}
    if settings.auth.mode == "anonymous":
        return lambda user: False
    if settings.auth.mode == "password":
        users = UsersFile(settings.users_file)
        return lambda user: user in named or users.is_admin(user)
    return lambda user: user in named


class SharedParser(Ready):
    """One pool of parse workers for every user's knowledge base; each borrows it (its ``close`` leaves
    the pool running) and the pool closes with the workspaces."""

    label = "parse workers"

    def __init__(self, pool):
        self.pool = pool

    def borrowed(self):
        pool = self.pool

        class Borrowed:
            parse, ocr, lanes = pool.parse, pool.ocr, pool.lanes

            def close(self) -> None:
                pass

        return Borrowed()

    def close(self) -> None:
        self.pool.close()


def _import_transformers() -> None:
    with _IMPORT_LOCK:
        from transformers import AutoModel, AutoModelForImageTextToText, AutoProcessor  # noqa: F401


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
