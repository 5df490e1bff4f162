"""Windowed vision attention of Qwen2-VL / Qwen2.5-VL in one call per layer.

Without flash-attention, transformers runs the vision tower's attention once per window: a 1024x1024
image is ~100 windows, so ~100 small attention calls in each of 28 windowed layers. Here the windows of a
layer are gathered into one padded batch (keys past a window's end masked) and attended in a single
``scaled_dot_product_attention`` call; the results are scattered back. Same numbers, far fewer launches.
"""

from __future__ import annotations

import functools
import sys
import types

import torch
import torch.nn.functional as F

PATCHED_CLASSES = ("Qwen2_5_VLVisionAttention", "VisionAttention")


def batch_windows(model) -> int:
    """Patch every Qwen2-VL-family vision attention module of ``model``; returns how many. Models that
    already use flash-attention (which takes the windows as one variable-length batch) are left alone."""
    count = 0
    for module in model.modules():
        if type(module).__name__ not in PATCHED_CLASSES or not hasattr(module, "qkv"):
            continue
        if "flash" in str(getattr(module.config, "_attn_implementation", "")):
            continue
        rope = getattr(sys.modules[type(module).__module__], "apply_rotary_pos_emb_vision", None)
        if rope is None:
            continue
        module.forward = types.MethodType(functools.partial(_forward, rope=rope), module)
        count += 1
    return count


def _forward(self, hidden_states: torch.Tensor, cu_seqlens: torch.Tensor, position_embeddings=None,
             max_seqlen=None, *, rope, **kwargs) -> torch.Tensor:
    length = hidden_states.shape[0]
    q, k, v = self.qkv(hidden_states).reshape(length, 3, self.num_heads, -1).permute(1, 0, 2, 3).unbind(0)
    cos, sin = position_embeddings
    q, k = rope(q, k, cos, sin)
    return self.proj(windowed_attention(q, k, v, cu_seqlens, max_seqlen).reshape(length, -1))


def windowed_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor,
                       longest=None) -> torch.Tensor:
    """Attention within each window ``cu_seqlens[i]:cu_seqlens[i+1]`` of q, k, v [tokens, heads, dim]."""
    length, heads, dim = q.shape
    lengths = (cu_seqlens[1:] - cu_seqlens[:-1]).long()
    chunks = lengths.numel()
    if chunks == 1:
        out = F.scaled_dot_product_attention(q.transpose(0, 1)[None], k.transpose(0, 1)[None],
                                             v.transpose(0, 1)[None])
        return out[0].transpose(0, 1)
    longest = int(longest) if longest is not None else int(lengths.max())
    device = q.device
    chunk = torch.repeat_interleave(torch.arange(chunks, device=device), lengths, output_size=length)
    slot = torch.arange(length, device=device) - cu_seqlens[:-1].long()[chunk]

    def padded(x: torch.Tensor) -> torch.Tensor:
        out = x.new_zeros(chunks, longest, heads, dim)
        out[chunk, slot] = x
        return out.transpose(1, 2)

    mask = (torch.arange(longest, device=device) < lengths[:, None]).view(chunks, 1, 1, longest)
    out = F.scaled_dot_product_attention(padded(q), padded(k), padded(v), attn_mask=mask)
    return out.transpose(1, 2)[chunk, slot]
