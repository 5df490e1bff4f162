"""One Settings object, built at the entry point and passed down. Environment prefix ``ASSISTANT_``,
nested sections joined by ``__`` (``ASSISTANT_MODEL__CHECKPOINT``). Reading it touches nothing else."""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistant.errors import ConfigurationError

log = logging.getLogger(__name__)

GPU_DEFAULT_CHECKPOINT = "Qwen/Qwen3-VL-4B-Instruct"  # Apache-2.0 (assistant/models/presets.py)
CPU_DEFAULT_CHECKPOINT = "HuggingFaceTB/SmolVLM-256M-Instruct"
DEFAULT_EMBEDDER = "google/siglip2-base-patch16-256"  # SigLIP 2: multilingual, Apache-2.0
DEFAULT_TEXT_EMBEDDER = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"


class ModelSettings(BaseModel):
    backend: Literal["transformers", "openai"] = Field(
        "transformers", description="`transformers`: load the model in this process. `openai`: stream from an "
        "OpenAI-compatible server (vLLM, TGI, Ollama) at `ASSISTANT_MODEL__ENDPOINT`.")
    endpoint: str = Field("http://127.0.0.1:8000/v1", description="Base URL of the OpenAI-compatible server "
                          "(the `openai` backend).")
    api_key: SecretStr | None = Field(None, description="Bearer token for that server, if it wants one.")
    preset: str | None = Field(
        None, description="A model by name, with its licence shown: `qwen3-vl-2b`, `qwen3-vl-4b`, `qwen3-vl-8b`, "
        "`qwen2.5-vl-7b`, `qwen2.5-vl-3b`, `gemma-4-e4b`, `smolvlm2-2.2b`, `smolvlm2-256m`, `smolvlm-256m`, "
        "`medgemma-4b` (opt-in, its own terms). The README's model table compares them. Not together with "
        "`ASSISTANT_MODEL__CHECKPOINT`.")
    checkpoint: str | None = Field(
        None, description=f"Hub id or local folder of the vision-language model. Default: "
        f"`{GPU_DEFAULT_CHECKPOINT}` (preset `qwen3-vl-4b`) with CUDA, `{CPU_DEFAULT_CHECKPOINT}` without.")
    boxes: Literal["auto", "pixels", "relative-1000", "none"] = Field(
        "auto", description="How the model's answers give boxes (`bbox_2d`): `pixels` of the image as it saw "
        "it (Qwen2-VL, Qwen2.5-VL), `relative-1000` (0-1000 of width and height: Qwen3-VL), `none` (not "
        "drawn). `auto`: from the model family (a served model's name, for the `openai` backend).")
    device: Literal["auto", "cuda", "cpu"] = Field("auto", description="Where the model runs.")
    quantization: Literal["auto", "none", "int4", "4bit", "8bit"] = Field(
        "auto", description="`auto`: `int4` on CUDA GPUs of compute capability 8.0+ (A100, A10G, L4, H100), "
        "`4bit` on older ones, none on the CPU. `int4`: PyTorch's int4 kernel, groups of 128, bf16 compute "
        "(the vision tower stays bf16). `4bit`/`8bit`: bitsandbytes NF4 / LLM.int8.")
    int4_group_size: Literal[128, 64, 32] = Field(
        128, description="Weights per scale and zero in `int4`. 128: what the GPU figures were measured with. "
        "64: ~6% more weight bytes, closer to NF4's error on real weights (all-MiniLM-L6-v2: linear output "
        "error 7.9% against 9.0% at 128 and 7.7% for NF4; benchmarks/results/quant_quality.txt).")
    decoder: Literal["auto", "static", "generate"] = Field(
        "auto", description="`static`: the Qwen2-VL family's own decoder (fused layers, static KV cache for "
        "context + 4096 answer tokens, compiled steps recorded as CUDA graphs while the model loads: 16-20 s "
        "on an H200 for the 3B). `generate`: transformers' `generate`. `auto`: static on CUDA with "
        "`int4`/`none` where the model family allows it, else generate.")
    double_quant: bool = Field(
        False, description="Double quantisation for `4bit`: saves ~0.4 bit/weight, measured at half "
        "the decode speed, so off by default.")
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Compute dtype. `auto`: bfloat16 on CUDA (float16 where unsupported), "
        "float32 on the CPU.")
    max_pixels: int = Field(
        1024 * 28 * 28, ge=28 * 28, description="Images are resized to at most this many pixels before "
        "the model sees them (Qwen2.5-VL: one visual token per 28x28 pixels).")
    source_images: int = Field(2, ge=0, le=8, description="Pictures among the sources (figures, page renders, "
                               "image documents) given to the model as images, each labelled with its source "
                               "number; other sources, and pictures past this, are quoted as text. 0: text only.")
    visual_tokens: int = Field(3072, ge=64, description="Visual budget of one question, in tokens of 28x28 "
                               "pixels: the user's own images take theirs first (each at most "
                               "`ASSISTANT_MODEL__MAX_PIXELS`), the source pictures share what is left.")
    max_new_tokens: int = Field(512, ge=1, le=8192, description="Default answer length bound.")
    max_context_tokens: int = Field(16384, ge=256, description="Input bound (prompt, history, images): the "
                                    "oldest turns are dropped to fit; a question that alone exceeds it is refused.")
    temperature: float = Field(0.2, ge=0.0, le=2.0, description="Default sampling temperature; 0 is greedy.")

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, value: str | None) -> str | None:
        from assistant.models.presets import PRESETS

        if value is None or not value.strip():
            return None
        if value.strip().lower() not in PRESETS:
            raise ValueError(f"not a preset; the presets are {', '.join(PRESETS)}")
        return value.strip().lower()


class RetrievalSettings(BaseModel):
    enabled: bool = Field(True, description="Use the knowledge base when answering.")
    embedder: str = Field(DEFAULT_EMBEDDER, description="CLIP/SigLIP/SigLIP 2-family checkpoint or folder "
                          "that embeds text and images into one space (the default: SigLIP 2, multilingual, "
                          "Apache-2.0; `google/siglip-base-patch16-256-multilingual` was the default before). "
                          "Changing it re-embeds an existing knowledge base from its record when it next opens, "
                          "its progress on the status line. Empty: no cross-modal space (images are then found "
                          "by their OCR text and captions only).")
    text_embedder: str = Field(DEFAULT_TEXT_EMBEDDER, description="Sentence encoder for passages (a "
                               "multilingual default; `all-MiniLM-L6-v2` is English-only). Changing it re-embeds "
                               "an existing knowledge base as the embedder does. Empty: none, passages are then "
                               "found by the cross-modal space and BM25 alone.")
    collection: str = Field("knowledge", min_length=3, description="Chroma collection name prefix.")
    chroma_url: str = Field("", description="URL of a Chroma server (`chroma run --path DIR --port 8000`) "
                            "holding the vector index, so that several app processes on one host share one "
                            "knowledge base: give them the same `ASSISTANT_DATA_DIR` (a local disk) and this "
                            "URL; writes take turns. Empty: a local index, one process at a time.")
    ocr: bool = Field(True, description="Read text in images and scanned PDF pages (RapidOCR, offline).")
    max_pages: int = Field(1000, ge=1, description="PDFs with more pages are refused.")
    max_store_gb: float = Field(20.0, gt=0, description="Size guard of the vector index: ingest stops, and "
                                "a larger index found on open is rebuilt from the record.")
    ef_search: int = Field(512, ge=10, description="HNSW search breadth. Measured at 100k chunks on 2 cores: 512 "
                           "gave the vector query recall@10 0.98 at 5.8 ms p95 (the whole search 24.6 ms), 256 "
                           "only 0.93 (benchmarks/results/retrieval.txt).")
    k: int = Field(4, ge=1, le=50, description="Sources given to the model per question.")
    min_score: float = Field(0.0, ge=-1.0, le=1.0, description="Relevance threshold: hits below this "
                             "cosine similarity are not used as sources. Calibrate it for your embedder "
                             "(`python -m assistant calibrate`).")
    min_text_score: float | None = Field(
        None, ge=-1.0, le=1.0, description="Relevance threshold in the text embedder's space, where it differs "
        "from MIN_SCORE: a hit is a source when its cosine in a space that found it reaches that space's threshold.")
    min_cross_score: float | None = Field(
        None, ge=-1.0, le=1.0, description="Relevance threshold in the cross-modal (image-text) space, where it "
        "differs from MIN_SCORE. CLIP/SigLIP cosines run lower than a sentence encoder's: calibrate both.")
    consistency_min: float = Field(
        0.9, ge=0.0, le=1.0, description="An answer whose multimodal-consistency score (its agreement with the "
        "user's images and the pictures it cites, 0 to 1; 0.5: no better than an unrelated caption) is below this "
        "is flagged \"may not match the image\". The default comes from a generated set scored with a toy "
        "embedder: calibrate it for yours (README, \"Does the answer match the image?\"). 0: never flagged.")
    strict: bool = Field(False, description="Strict grounding: when no source passes the threshold, answer "
                         "\"not found in your documents\" without asking the model (a toggle in the UI too).")
    chunk_size: int = Field(800, ge=50, description="Characters per text chunk (chunks follow pages, "
                            "headings, paragraphs and sentence ends, Chinese ones included).")
    chunk_overlap: int = Field(100, ge=0, description="Characters shared by neighbouring chunks.")


class UISettings(BaseModel):
    host: str = Field("127.0.0.1", description="Address the web app binds; `0.0.0.0` exposes it to "
                      "the network, and needs a sign-in mode (`ASSISTANT_AUTH__MODE`) or anonymous mode.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the web app.")
    trust_network: bool = Field(False, description="Let the one local user (no sign-in) bind an address "
                                "other than loopback, because the network in front lets only them through: a "
                                "container whose port is published on the host's 127.0.0.1 only.")
    allowed_hosts: list[str] = Field(
        [], description="Host names the app answers to (a JSON list, e.g. `[\"assistant.example.org\"]`); "
        "any other Host header is refused (DNS rebinding). Always allowed: `localhost`, `127.0.0.1`, `::1` "
        "and the bound address.")
    max_upload_mb: float = Field(200.0, gt=0, description="Largest file one upload may carry; a larger one "
                                 "is refused while it arrives.")
    quota_mb: float = Field(2000.0, gt=0, description="What one user's workspace (knowledge bases, "
                            "conversations' images) may hold on disk; an upload past it is refused.")


class AuthSettings(BaseModel):
    mode: Literal["local", "password", "proxy", "huggingface", "anonymous"] = Field(
        "local", description="Who may use the app. `local`: no sign-in, one user (only on a loopback "
        "address). `password`: everyone signs in with a name and password from the users file, managed with "
        "`python -m assistant users` (add, remove, list, passwd). `proxy`: a reverse proxy doing single "
        "sign-on names the user in `ASSISTANT_AUTH__PROXY_HEADER`, honoured only from "
        "`ASSISTANT_AUTH__TRUSTED_PROXIES`. `huggingface`: Sign in with Hugging Face on a Space "
        "(`hf_oauth: true`). `anonymous`: no sign-in, every browser gets a private, temporary workspace, "
        "removed after `ASSISTANT_AUTH__IDLE_MINUTES` (a public demo).")
    proxy_header: str = Field("X-Forwarded-User", description="The header in which the trusted proxy "
                              "names the signed-in user (`proxy` mode).")
    trusted_proxies: list[str] = Field(
        [], description="Addresses or networks (JSON list, e.g. `[\"10.0.0.5\", \"10.1.0.0/16\"]`) of the "
        "proxies whose user header is believed (`proxy` mode); a request from anywhere else is refused.")
    idle_minutes: float = Field(60.0, gt=0, description="`anonymous` mode: a browser's workspace "
                                "(documents, conversations) is deleted after this long unused.")
    users_file: Path | None = Field(None, description="The users file (argon2id password hashes, 0600). "
                                    "Empty: `users.json` in `ASSISTANT_DATA_DIR`.")
    max_failures: int = Field(5, ge=1, description="Failed sign-ins allowed per user name within "
                              "`ASSISTANT_AUTH__LOCKOUT_MINUTES`; past that the name is refused, even with "
                              "the right password, until the window has passed.")
    lockout_minutes: float = Field(15.0, gt=0, description="The window for `ASSISTANT_AUTH__MAX_FAILURES`.")
    admins: list[str] = Field([], description="User names (JSON list) who may add documents to the shared "
                              "library and delete them, besides the users file's administrators (`users add "
                              "--admin`); for `proxy` and `huggingface` sign-in.")


class AuditSettings(BaseModel):
    enabled: bool = Field(False, description="Keep a tamper-evident audit log (`ASSISTANT_DATA_DIR/audit/audit.jsonl`): "
                          "who signed in, ingested, deleted, searched and was answered, when, which documents "
                          "and model; check it with `python -m assistant audit verify`.")
    content: bool = Field(False, description="Also write questions and answers into the audit log (otherwise "
                          "only the answer's SHA-256).")


class MedicalSettings(BaseModel):
    enabled: bool = Field(False, description="Medical pilot mode (README, \"Medical pilot\"): turns on the audit log, "
                          "non-diagnostic disclaimers, no content in operational logs, offline model loading and "
                          "the outbound restriction, and says so in the page header. DICOM files are de-identified "
                          "in every mode.")
    allowed_hosts: list[str] = Field(
        [], description="Medical mode: the only hosts besides loopback the app may connect to (JSON list, e.g. "
        "`[\"vllm.internal\"]`): the `openai` backend's endpoint and a Chroma server must be among them.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANT_", env_nested_delimiter="__",
                                      extra="forbid")

    data_dir: Path = Field(Path("data"), description="Where the knowledge base lives (Chroma, "
                           "thumbnails).")
    offline: bool = Field(False, description="Never contact a model hub: load only from the cache or "
                          "local folders.")
    model: ModelSettings = ModelSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    ui: UISettings = UISettings()
    auth: AuthSettings = AuthSettings()
    audit: AuditSettings = AuditSettings()
    medical: MedicalSettings = MedicalSettings()

    @model_validator(mode="after")
    def _medical_mode(self) -> Settings:
        """Medical mode is one switch: what it needs on is on, whatever else was set."""
        if self.medical.enabled:
            self.audit.enabled = True
            self.offline = True
            self._nothing_leaves_the_host()
        return self

    def _nothing_leaves_the_host(self) -> None:
        """Medical mode connects only to loopback and ``MEDICAL__ALLOWED_HOSTS``: a model server or Chroma server
        elsewhere is refused now, with what to do, rather than by the outbound guard at the first question."""
        from assistant.egress import outside

        servers = [("ASSISTANT_RETRIEVAL__CHROMA_URL", self.retrieval.chroma_url)] if self.retrieval.chroma_url else []
        if self.model.backend == "openai":
            servers.insert(0, ("ASSISTANT_MODEL__ENDPOINT", self.model.endpoint))
        for variable, url in servers:
            host = outside(url, self.medical.allowed_hosts)
            if host is not None:  # a ConfigurationError passes through pydantic unchanged, to the entry point
                raise ConfigurationError(
                    f"{variable}={url!r}: medical mode (ASSISTANT_MEDICAL__ENABLED) lets the app connect only to "
                    f"this machine and the hosts in ASSISTANT_MEDICAL__ALLOWED_HOSTS, and "
                    f"{repr(host) if host else 'this URL names no host'}{' is neither' if host else ''}. Point it "
                    "at a server on this machine, or, if that server may receive patient data, add its host to "
                    f"ASSISTANT_MEDICAL__ALLOWED_HOSTS (a JSON list, e.g. '[\"{host or 'vllm.internal'}\"]').")

    @property
    def audit_file(self) -> Path:
        return Path(self.data_dir) / "audit" / "audit.jsonl"

    @property
    def users_file(self) -> Path:
        return self.auth.users_file or Path(self.data_dir) / "users.json"


def load_settings() -> Settings:
    """The entry points' Settings. A value that cannot be used is a ``ConfigurationError`` naming its variable
    and the value; an ``ASSISTANT_*`` variable that is no setting (a misspelt name is otherwise silently
    ignored) is logged with the nearest real name. Unknown names are not refused: platforms add variables
    of their own under an app's name (Kubernetes: ``ASSISTANT_PORT``, ``ASSISTANT_SERVICE_HOST``)."""
    known = [name for name, _, _ in documented_variables()]
    for name in sorted(k for k in os.environ if k.upper().startswith("ASSISTANT_") and k.upper() not in known):
        near = difflib.get_close_matches(name.upper(), known, n=1)
        log.warning("%s is not a setting and is ignored%s", name, f" (did you mean {near[0]}?)" if near else "")
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"{_variable(e['loc'])}={e['input']!r}: {e['msg']}" for e in exc.errors()]
        raise ConfigurationError("A setting cannot be used (the variables are listed in the README under "
                                 "Configuration):\n  " + "\n  ".join(problems)) from None


def settings_or_exit() -> Settings:
    """``load_settings`` for a process's entry point: a setting that cannot be used ends the process with
    its message (exit status 1), not a traceback."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        raise SystemExit(f"error: {exc}") from None


def _variable(loc: tuple) -> str:
    return "ASSISTANT_" + "__".join(str(part).upper() for part in loc)


def documented_variables() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting: the README's configuration table."""
    rows = []
    for name, field in Settings.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            for sub, subfield in annotation.model_fields.items():
                rows.append((f"ASSISTANT_{name.upper()}__{sub.upper()}", _default(subfield),
                             subfield.description or ""))
        else:
            rows.append((f"ASSISTANT_{name.upper()}", _default(field), field.description or ""))
    return rows


def _default(field) -> str:
    if field.default is None:
        return "(see description)"
    return "(empty)" if field.default == "" else f"`{field.default}`"
