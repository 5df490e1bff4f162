"""Fast answers from the Qwen2-VL family (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): a decoder of our own over the
model's weights, instead of ``generate``. Qwen3-VL adds per-head q/k norms, interleaved M-RoPE (the
model's own rotary module computes it) and DeepStack visual features added after the first layers during
the prefill.

Plain ``generate`` spends most of a decode step in Python: per layer a dozen small modules, a growing
cache, logits processors, a stopping check. Here the language model's linears are fused (q|k|v, gate|up)
and, by default, quantised to int4 (``assistant.models.int4``); the KV cache is allocated once; one
decode step (embedding, every layer, final norm, LM head) is recorded as a CUDA graph per cache-length
bucket and replayed, so a token costs one launch from Python. The two per-layer halves around attention
are compiled with ``torch.compile`` (fusing norms, bias, rotary embedding, SiLU) once for all layers, and
decode attention is compiled once for all buckets. Everything is built and recorded at load time
(``warm_up``), not in the first user's request.

The vision tower, the merging of image features into the prompt and the 3-D (M-RoPE) positions stay the
model's own: the model's forward is run up to the point where it would call its language model, which
hands over the prompt embeddings and positions. The prompt is then prefilled by the same per-layer
functions, uncompiled (int4 layers expanded to bf16 for a dense matmul, ``int4.DENSE_ABOVE_ROWS``).
Sampling follows the checkpoint's generation config (repetition penalty, top-k, top-p) with the request's
temperature, as ``generate`` would.

Measured on an H200, random weights of the Qwen2.5-VL-3B shape (benchmarks/results/gpu_h200.md): 411
tokens/s decode (plain ``generate``: 7.7 NF4, 24 bf16 in the same run), 20% of the copy-bandwidth limit
for the bytes a token reads; half of each step is PyTorch's int4 kernel running at ~1.3 TB/s, a quarter
the attention (profile_3b_h200.txt). Time to first token 226 ms median for a 1024x1024 image.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from assistant.models.int4 import DENSE_ABOVE_ROWS, Int4Linear, group_size_for, int4_matmul

log = logging.getLogger(__name__)
SUPPORTED_TEXT_MODELS = ("qwen2_vl_text", "qwen2_5_vl_text", "qwen3_vl_text")


def unsupported_reason(model) -> str | None:
    """Why this model cannot use the static decoder (None when it can)."""
    lm = getattr(getattr(model, "model", None), "language_model", None)
    config = getattr(lm, "config", None)
    if config is None or getattr(config, "model_type", None) not in SUPPORTED_TEXT_MODELS:
        return f"the static decoder supports {', '.join(SUPPORTED_TEXT_MODELS)} language models"
    if getattr(config, "use_sliding_window", False) or any(
            t != "full_attention" for t in getattr(config, "layer_types", None) or []):
        return "sliding-window attention is not supported by the static decoder"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act} is not supported by the static decoder"
    if not hasattr(model, "lm_head"):
        return "the model has no lm_head"
    return None


# ---- the math of one decoder layer, as functions of tensors (compiled once, reused by every layer) ----

def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _linear(x: torch.Tensor, w: tuple, group: int) -> torch.Tensor:
    """``w`` = (packed, scales_and_zeros, bias) when ``group`` > 0 (int4), else (weight, None, bias)."""
    if group:
        return int4_matmul(x, w[0], w[1], group, w[2])
    return F.linear(x, w[0], w[2])


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _attention_in(x, norm, eps: float, qkv: tuple, group: int, cos, sin, k_cache, v_cache, index,
                  heads: int, kv_heads: int, head_dim: int, q_norm=None, k_norm=None):
    """Norm, q|k|v projection, per-head q and k norms (Qwen3), rotary embedding; k and v written to the
    cache at ``index``; returns q."""
    length = x.shape[1]
    h = _linear(_rms_norm(x, norm, eps), qkv, group)
    q, k, v = h.split([heads * head_dim, kv_heads * head_dim, kv_heads * head_dim], dim=-1)
    q = q.view(1, length, heads, head_dim)
    k = k.view(1, length, kv_heads, head_dim)
    if q_norm is not None:
        q, k = _rms_norm(q, q_norm, eps), _rms_norm(k, k_norm, eps)
    q, k = q.transpose(1, 2), k.transpose(1, 2)
    v = v.view(1, length, kv_heads, head_dim).transpose(1, 2)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    q = q * cos + _rotate_half(q) * sin
    k = k * cos + _rotate_half(k) * sin
    k_cache.index_copy_(2, index, k.to(k_cache.dtype))
    v_cache.index_copy_(2, index, v.to(v_cache.dtype))
    return q


def _attention_out_mlp(x, attn, o: tuple, o_group: int, norm, eps: float, gate_up: tuple, gate_up_group: int,
                       down: tuple, down_group: int):
    """Output projection and residual, norm, SiLU-gated MLP and residual."""
    x = x + _linear(attn, o, o_group)
    gate, up = _linear(_rms_norm(x, norm, eps), gate_up, gate_up_group).chunk(2, dim=-1)
    return x + _linear(F.silu(gate) * up, down, down_group)


def _decode_attention(q, k, v, index, scale: float):
    """One query token against the first ``k.shape[2]`` cache slots, of which 0..index are valid. Query
    heads are grouped under their key/value head, so grouped-query attention needs no copy of the cache."""
    heads, head_dim = q.shape[1], q.shape[-1]
    kv_heads = k.shape[1]
    qg = q.reshape(1, kv_heads, heads // kv_heads, head_dim)
    scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale
    valid = torch.arange(k.shape[2], device=k.device) <= index
    probs = scores.masked_fill(~valid, float("-inf")).softmax(-1).to(v.dtype)
    return torch.matmul(probs, v).reshape(1, 1, heads * head_dim)


def _prefill_attention(q, k, v, scale: float):
    groups = q.shape[1] // k.shape[1]
    if groups > 1:
        k, v = k.repeat_interleave(groups, dim=1), v.repeat_interleave(groups, dim=1)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale)
    return out.transpose(1, 2).reshape(1, q.shape[2], -1)


class _Layer(nn.Module):
    """One decoder layer's weights, fused: q|k|v and gate|up side by side."""

    def __init__(self, layer, *, device, quantize: bool, group_size: int, dtype):
        super().__init__()
        attn, mlp = layer.self_attn, layer.mlp
        self.qkv = _fuse([attn.q_proj, attn.k_proj, attn.v_proj], device, quantize, group_size, dtype)
        self.o = _fuse([attn.o_proj], device, quantize, group_size, dtype)
        self.gate_up = _fuse([mlp.gate_proj, mlp.up_proj], device, quantize, group_size, dtype)
        self.down = _fuse([mlp.down_proj], device, quantize, group_size, dtype)
        self.in_norm = nn.Parameter(layer.input_layernorm.weight.detach().to(device, dtype), requires_grad=False)
        self.post_norm = nn.Parameter(layer.post_attention_layernorm.weight.detach().to(device, dtype),
                                      requires_grad=False)
        self.eps = float(layer.input_layernorm.variance_epsilon)
        self.q_norm = self.k_norm = None  # Qwen3: RMS norms over each head's q and k, before the rotation
        if getattr(attn, "q_norm", None) is not None:
            if float(attn.q_norm.variance_epsilon) != self.eps:
                raise ValueError("the q/k norms' epsilon differs from the layer norms'")
            self.q_norm = nn.Parameter(attn.q_norm.weight.detach().to(device, dtype), requires_grad=False)
            self.k_norm = nn.Parameter(attn.k_norm.weight.detach().to(device, dtype), requires_grad=False)

    @staticmethod
    def args(module: nn.Module) -> tuple[tuple, int]:
        if isinstance(module, Int4Linear):
            return (module.packed, module.scales_and_zeros, module.bias), module.group_size
        return (module.weight, None, module.bias), 0


def _fuse(linears: list[nn.Linear], device, quantize: bool, group_size: int, dtype) -> nn.Module:
    """One module computing several linears of the same input (q, k, v; gate, up), outputs side by side.
    Quantisation groups run along rows, so int4 of the fused weight is the separate ones, concatenated."""
    weight = torch.cat([m.weight.detach() for m in linears])
    bias = None
    if any(m.bias is not None for m in linears):
        bias = torch.cat([m.bias.detach() if m.bias is not None else torch.zeros(m.out_features, dtype=weight.dtype)
                          for m in linears])
    if quantize and group_size_for(weight.shape[0], weight.shape[1], group_size):
        module = Int4Linear.from_weight(weight, bias, device=device, group_size=group_size)
    else:
        module = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
        module.weight = nn.Parameter(weight.to(device, dtype), requires_grad=False)
        if bias is not None:
            module.bias = nn.Parameter(bias.to(device, dtype), requires_grad=False)
    for m in linears:
        m.to("meta")  # the unfused copy is no longer needed
    return module


@dataclass
class Sampling:
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0


class _HandOver(Exception):
    """Raised inside the model's forward once it reaches its language model."""


class StaticDecoder:
    """Owns the fused (optionally int4) language model, the static KV cache and the recorded decode steps.
    One request at a time (the caller holds the model's lock)."""

    BUCKET_MIN = 512

    def __init__(self, model, *, device: str, dtype: torch.dtype, quantize: bool, cache_tokens: int,
                 group_size: int = 128, compile: bool | None = None, graphs: bool | None = None):
        reason = unsupported_reason(model)
        if reason:
            raise ValueError(reason)
        self.model, self.device, self.dtype = model, torch.device(device), dtype
        cuda = self.device.type == "cuda"
        self.use_compile = cuda if compile is None else compile
        self.use_graphs = cuda if graphs is None else graphs
        lm = model.model.language_model
        config = lm.config
        self.heads, self.kv_heads = config.num_attention_heads, config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.scale = self.head_dim ** -0.5
        layers = nn.ModuleList(_Layer(layer, device=device, quantize=quantize, group_size=group_size, dtype=dtype)
                               for layer in lm.layers)
        lm.layers = nn.ModuleList()  # the originals were moved into the fused layers
        lm.fused_layers = layers
        model.to(device)
        self.layers = layers
        self.lm, self.config = lm, config
        self.quantized = quantize and any(isinstance(m, Int4Linear) for m in layers.modules())
        self.cache_tokens = int(cache_tokens)
        # +1: the step run past the answer's end; +1 more so every bucket is a strided view of the cache
        # (a view that is the whole tensor is contiguous, and would compile a second attention kernel)
        shape = (1, self.kv_heads, self.cache_tokens + 2, self.head_dim)
        self.k_cache = [torch.zeros(shape, device=device, dtype=dtype) for _ in layers]
        self.v_cache = [torch.zeros(shape, device=device, dtype=dtype) for _ in layers]
        vocab = model.lm_head.out_features
        self._token = torch.zeros(1, dtype=torch.long, device=device)  # input of the next step
        self._index = torch.zeros(1, dtype=torch.long, device=device)  # its cache slot
        self._delta = torch.zeros(1, dtype=torch.long, device=device)  # rotary position minus cache slot
        self._logits = torch.zeros(vocab, dtype=torch.float32, device=device)
        self._seen = torch.zeros(vocab, dtype=torch.bool, device=device)  # for the repetition penalty
        self._layer_args = [(_Layer.args(m.qkv), _Layer.args(m.o), _Layer.args(m.gate_up), _Layer.args(m.down))
                            for m in layers]
        self._in, self._out, self._attend = _attention_in, _attention_out_mlp, _decode_attention
        self._graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.buckets = _buckets(self.cache_tokens + 1, self.BUCKET_MIN)
        self.mode = "eager"
        self._suppress: dict[tuple, torch.Tensor] = {}
        self._deepstack: tuple | None = None  # the prompt's DeepStack features, from embed to prefill
        self._lock = threading.Lock()

    # ---- prompt ----

    def embed(self, inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the model's own forward (vision tower, image features merged into the prompt, 3-D
        positions) up to its language model; return the prompt embeddings [1, L, H] and positions [3, 1, L]."""
        handed: dict = {}

        def hand_over(*args, inputs_embeds=None, position_ids=None, visual_pos_masks=None,
                      deepstack_visual_embeds=None, **kwargs):
            handed.update(embeds=inputs_embeds, positions=position_ids, mask=visual_pos_masks,
                          deepstack=deepstack_visual_embeds)
            raise _HandOver

        self.lm.forward = hand_over
        try:
            self.model.model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
        except _HandOver:
            pass
        finally:
            del self.lm.forward
        embeds, positions = handed["embeds"], handed["positions"]
        length = embeds.shape[1]
        if positions is None:
            positions = torch.arange(length, device=embeds.device).view(1, 1, -1).expand(3, 1, -1)
        elif positions.ndim == 2:
            positions = positions[None].expand(3, -1, -1)
        elif positions.shape[0] == 4:  # text positions prepended for packed sequences
            positions = positions[1:]
        # Qwen3-VL's DeepStack: features of inner vision layers, added to the image tokens' hidden states
        # after the first text layers (prefill only: answer tokens are text)
        self._deepstack = None
        if handed.get("deepstack") is not None and handed.get("mask") is not None:
            self._deepstack = (handed["mask"][0].to(self.device),
                               [d.to(self.device, self.dtype) for d in handed["deepstack"]])
        return embeds.to(self.dtype), positions

    def prefill(self, embeds: torch.Tensor, positions: torch.Tensor, input_ids: torch.Tensor) -> None:
        """Fill the cache with the prompt; the logits of its last token land in ``self._logits``."""
        length = embeds.shape[1]
        if length > self.cache_tokens:
            raise ValueError(f"prompt of {length} tokens exceeds the cache of {self.cache_tokens}")
        cos, sin = self.lm.rotary_emb(embeds, positions)
        index = torch.arange(length, device=self.device)
        deepstack, self._deepstack = self._deepstack, None
        x = embeds
        for i, layer in enumerate(self.layers):
            (qkv, gq), (o, go), (gu, ggu), (down, gd) = self._layer_args[i]
            q = _attention_in(x, layer.in_norm, layer.eps, qkv, gq, cos, sin, self.k_cache[i], self.v_cache[i],
                              index, self.heads, self.kv_heads, self.head_dim, layer.q_norm, layer.k_norm)
            attn = _prefill_attention(q, self.k_cache[i][:, :, :length], self.v_cache[i][:, :, :length], self.scale)
            x = _attention_out_mlp(x, attn, o, go, layer.post_norm, layer.eps, gu, ggu, down, gd)
            if deepstack is not None and i < len(deepstack[1]):
                mask, features = deepstack
                x[0, mask] = x[0, mask] + features[i]
        self._logits.copy_(self._head(x[:, -1:]).view(-1))
        self._index.fill_(length)
        self._delta.copy_((positions.max() + 1 - length).view(1))
        self._seen.zero_()
        self._seen[input_ids.view(-1)] = True

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.lm_head(_rms_norm(x, self.lm.norm.weight, self.lm.norm.variance_epsilon)).float()

    # ---- one decode step ----

    def _step(self, bucket: int) -> None:
        """Token ``self._token`` at slot ``self._index``: logits to ``self._logits``, slot advanced. Only
        device tensors, no host sync: recordable as a CUDA graph."""
        x = self.lm.embed_tokens(self._token).view(1, 1, -1)
        position = (self._index + self._delta).view(1, 1, 1).expand(3, 1, 1)
        cos, sin = self.lm.rotary_emb(x, position)
        for i, layer in enumerate(self.layers):
            (qkv, gq), (o, go), (gu, ggu), (down, gd) = self._layer_args[i]
            q = self._in(x, layer.in_norm, layer.eps, qkv, gq, cos, sin, self.k_cache[i], self.v_cache[i],
                         self._index, self.heads, self.kv_heads, self.head_dim, layer.q_norm, layer.k_norm)
            attn = self._attend(q, self.k_cache[i][:, :, :bucket], self.v_cache[i][:, :, :bucket], self._index,
                                self.scale)
            x = self._out(x, attn, o, go, layer.post_norm, layer.eps, gu, ggu, down, gd)
        self._logits.copy_(self._head(x).view(-1))
        self._index.add_(1)

    def _run_step(self, slot: int) -> None:
        bucket = next(b for b in self.buckets if b > slot)
        graph = self._graphs.get(bucket)
        if graph is not None:
            graph.replay()
        else:
            self._step(bucket)

    # ---- build and record at load time ----

    def warm_up(self) -> str:
        """Compile the layer functions, run a prompt through the dense prefill path and record one decode
        graph per bucket; returns the mode reached. Any failure falls back one level (graphs of
        uncompiled steps, then plain eager) with a warning."""
        with torch.inference_mode():
            if self.use_compile:
                try:
                    self._in = torch.compile(_attention_in, fullgraph=True, dynamic=False)
                    self._out = torch.compile(_attention_out_mlp, fullgraph=True, dynamic=False)
                    self._attend = torch.compile(_decode_attention, fullgraph=True, dynamic=True)
                    self._exercise()
                    self.mode = "compiled"
                except Exception as exc:  # noqa: BLE001  fall back, and say so
                    log.warning("torch.compile of the decoder failed (%s); decoding uncompiled", exc)
                    self._in, self._out, self._attend = _attention_in, _attention_out_mlp, _decode_attention
            self._warm_prefill()
            if self.use_graphs and self.device.type == "cuda":
                try:
                    self._record()
                    self.mode = f"{self.mode}+graphs" if self.mode == "compiled" else "graphs"
                except Exception as exc:  # noqa: BLE001
                    log.warning("recording the decode step as CUDA graphs failed (%s); decoding without", exc)
                    self._graphs.clear()
            self._index.zero_()
        log.info("static decoder ready: %s, %d layers, cache %d tokens, buckets %s", self.mode, len(self.layers),
                 self.cache_tokens, self.buckets)
        return self.mode

    def _warm_prefill(self) -> None:
        """A prompt long enough for the dense prefill path, so its kernels exist before the first user."""
        length = min(2 * DENSE_ABOVE_ROWS, self.cache_tokens)
        embeds = torch.zeros(1, length, self.config.hidden_size, device=self.device, dtype=self.dtype)
        positions = torch.arange(length, device=self.device).view(1, 1, -1).expand(3, 1, -1)
        self.prefill(embeds, positions, torch.zeros(1, length, dtype=torch.long, device=self.device))

    def _exercise(self) -> None:
        for bucket in self.buckets:  # one decode step per bucket: compiles (once) and checks every shape
            self._index.zero_()
            self._step(bucket)

    def _record(self) -> None:
        pool = torch.cuda.graph_pool_handle()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for bucket in self.buckets:
                self._index.zero_()
                self._step(bucket)
        torch.cuda.current_stream().wait_stream(side)
        for bucket in reversed(self.buckets):  # largest first, so the shared pool is sized once
            self._index.zero_()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=pool):
                self._step(bucket)
            self._graphs[bucket] = graph
        torch.cuda.synchronize()

    # ---- a whole answer ----

    def tokens(self, inputs, sampling: Sampling, max_new_tokens: int, eos: set[int], stop: threading.Event,
               min_new_tokens: int = 0) -> Iterator[int]:
        """Token ids of the answer to ``inputs`` (the processor's output on this device)."""
        with self._lock, torch.inference_mode():
            embeds, positions = self.embed(inputs)
            length = embeds.shape[1]
            self.prefill(embeds, positions, inputs["input_ids"])
            budget = min(max_new_tokens, self.cache_tokens - length)
            if budget < max_new_tokens:
                log.warning("answer cut at %d tokens: the cache holds %d", budget, self.cache_tokens)
            host = torch.zeros(1, dtype=torch.long, pin_memory=self.device.type == "cuda")
            ready = torch.cuda.Event() if self.device.type == "cuda" else None
            self._choose(sampling, suppress=eos if min_new_tokens > 0 else set())
            for n in range(budget):
                host.copy_(self._token, non_blocking=ready is not None)
                if ready is not None:
                    ready.record()
                last = n + 1 >= budget or stop.is_set()
                if not last:  # the next step runs on the GPU while this token goes to the user
                    self._run_step(length + n)
                    self._choose(sampling, suppress=eos if n + 1 < min_new_tokens else set())
                if ready is not None:
                    ready.synchronize()
                token = int(host.item())
                yield token
                if last or stop.is_set() or (token in eos and n + 1 >= min_new_tokens):
                    return

    def _choose(self, sampling: Sampling, suppress: set[int]) -> None:
        """Next token from ``self._logits`` into ``self._token``, as ``generate`` would choose it."""
        logits = self._logits
        if sampling.repetition_penalty != 1.0:
            penalty = sampling.repetition_penalty
            logits = torch.where(self._seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)
        if suppress:
            key = tuple(sorted(suppress))
            if key not in self._suppress:  # made once: a list index would copy from the host every step
                self._suppress[key] = torch.tensor(key, device=self.device)
            logits = logits.index_fill(0, self._suppress[key], float("-inf"))
        if sampling.temperature <= 0:
            token = logits.argmax().view(1)
        else:
            logits = logits / sampling.temperature
            if 0 < sampling.top_k < logits.numel():
                values, indices = logits.topk(sampling.top_k)
            else:
                values, indices = logits.sort(descending=True)
            if sampling.top_p < 1.0:
                probs = values.softmax(-1)
                drop = probs.cumsum(-1) - probs >= sampling.top_p  # mass above reaches top_p; first kept
                values = values.masked_fill(drop, float("-inf"))
            token = indices[torch.multinomial(values.softmax(-1), 1)]
        self._token.copy_(token)
        self._seen[self._token] = True

    @property
    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k_cache + self.v_cache)


def _buckets(limit: int, smallest: int) -> list[int]:
    sizes, size = [], smallest
    while size < limit:
        sizes.append(size)
        size *= 2
    return sizes + [limit]


def sampling_for(generation_config, temperature: float) -> Sampling:
    """The request's temperature with the checkpoint's own top-k, top-p and repetition penalty."""
    top_k = getattr(generation_config, "top_k", None)
    top_p = getattr(generation_config, "top_p", None)
    penalty = getattr(generation_config, "repetition_penalty", None)
    return Sampling(temperature=max(temperature, 0.0), top_k=int(top_k) if top_k else 0,
                    top_p=float(top_p) if top_p is not None and not math.isnan(top_p) else 1.0,
                    repetition_penalty=float(penalty) if penalty else 1.0)
