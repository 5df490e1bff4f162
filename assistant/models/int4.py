"""4-bit weight-only quantisation with PyTorch's own int4 kernels (``aten._weight_int4pack_mm``: the
"tinygemm" kernel on CUDA, an AVX kernel on the CPU). Weights are quantised per group of input columns,
asymmetric, 16 levels: ``w = (q - 8) * scale + zero`` with bf16 scale and zero per group. Activations stay
bf16. On a GPU this reads ~0.53 byte per weight and, unlike bitsandbytes' NF4 path, the kernel is an
ordinary ATen op that ``torch.compile`` and CUDA graphs take as it is.

Needs bf16: CUDA compute capability 8.0 or newer (A100, L4, A10G, H100, H200...), or the CPU.
"""

from __future__ import annotations

import torch
from torch import nn

GROUP_SIZES = (128, 64, 32)
# The int4 kernel is built for a few rows: each 16 rows re-read and re-expand the weights. Above this many
# rows (a prompt) the layer is expanded once to bf16 and multiplied densely (measured on an H200: a
# 1062-token prefill of the 3B shape took 216 ms through the kernel; benchmarks/results/gpu_h200.json).
DENSE_ABOVE_ROWS = 32


def cuda_supported(device: int | None = None) -> bool:
    """The CUDA int4 kernel uses bf16 tensor-core instructions: Ampere (8.0) or newer."""
    return torch.cuda.is_available() and torch.cuda.get_device_capability(device)[0] >= 8


def group_size_for(out_features: int, in_features: int, preferred: int = 128) -> int | None:
    """The largest group size not above ``preferred`` that the kernels accept for this shape, or None when
    the layer cannot be packed (it then stays in bf16)."""
    if out_features % 16:
        return None
    for group in GROUP_SIZES:
        if group <= preferred and in_features % group == 0:
            return group
    return None


def _inner_k_tiles(in_features: int) -> int:
    return 8 if in_features % 128 == 0 else 4 if in_features % 64 == 0 else 2


def quantize(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``weight`` [out, in] -> (codes int32 [out, in] in 0..15, scales_and_zeros bf16 [in/group, out, 2])."""
    out_features, in_features = weight.shape
    groups = weight.float().reshape(out_features, in_features // group_size, group_size)
    high, low = groups.amax(-1, keepdim=True), groups.amin(-1, keepdim=True)
    scale = (high - low).clamp(min=1e-6) / 15
    zero = low + scale * 8
    codes = ((groups - low) / scale).round().clamp(0, 15).to(torch.int32).reshape(out_features, in_features)
    scales_and_zeros = torch.cat([scale, zero], -1).reshape(out_features, -1, 2).transpose(0, 1)
    return codes, scales_and_zeros.contiguous().to(torch.bfloat16)


def dequantize(codes: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int) -> torch.Tensor:
    """The weights the kernel multiplies by (reference for tests)."""
    out_features, in_features = codes.shape
    scale = scales_and_zeros[..., 0].transpose(0, 1).float().unsqueeze(-1)
    zero = scales_and_zeros[..., 1].transpose(0, 1).float().unsqueeze(-1)
    groups = codes.reshape(out_features, in_features // group_size, group_size).float()
    return ((groups - 8) * scale + zero).reshape(out_features, in_features)


def pack(codes: torch.Tensor) -> torch.Tensor:
    """Codes in the layout of this device's kernel (CUDA: uint8 [out, in/2], even column in the high
    nibble, then tiled; CPU: int32 codes, packed by the op itself)."""
    if codes.is_cuda:
        nibbles = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.uint8)
        return torch.ops.aten._convert_weight_to_int4pack(nibbles, _inner_k_tiles(codes.shape[1]))
    return torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 1)


def int4_matmul(x: torch.Tensor, packed: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int,
                bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W.T (+ bias)`` for ``x`` [..., in] in bf16."""
    flat = x.reshape(-1, x.shape[-1])
    if flat.is_cuda and flat.shape[0] > DENSE_ABOVE_ROWS:  # a prompt: expand the weights once, dense matmul
        y = torch.nn.functional.linear(flat, _dense(packed, scales_and_zeros, group_size, x.dtype))
    elif flat.is_cuda:
        y = torch.ops.aten._weight_int4pack_mm(flat, packed, group_size, scales_and_zeros)
    else:
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, packed, group_size, scales_and_zeros)
    y = y.reshape(*x.shape[:-1], y.shape[-1])
    return y if bias is None else y + bias


class Int4Linear(nn.Module):
    """A drop-in for ``nn.Linear`` holding packed 4-bit weights (buffers, so ``.to()`` and state size see
    them) and an optional bf16 bias."""

    def __init__(self, packed: torch.Tensor, scales_and_zeros: torch.Tensor, bias: torch.Tensor | None,
                 in_features: int, out_features: int, group_size: int):
        super().__init__()
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.register_buffer("packed", packed)
        self.register_buffer("scales_and_zeros", scales_and_zeros)
        self.register_buffer("bias", bias)

    @classmethod
    def from_weight(cls, weight: torch.Tensor, bias: torch.Tensor | None, *, device: torch.device | str,
                    group_size: int = 128) -> Int4Linear:
        """Quantise a dense weight [out, in] on ``device`` (the dense copy there is freed on return)."""
        out_features, in_features = weight.shape
        group = group_size_for(out_features, in_features, group_size)
        if group is None:
            raise ValueError(f"a {out_features}x{in_features} weight cannot be packed as int4")
        codes, scales_and_zeros = quantize(weight.to(device), group)
        packed = pack(codes)
        del codes
        bias = None if bias is None else bias.detach().to(device=device, dtype=torch.bfloat16)
        return cls(packed, scales_and_zeros, bias, in_features, out_features, group)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return int4_matmul(x.to(torch.bfloat16), self.packed, self.scales_and_zeros, self.group_size,
                           self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, group_size={self.group_size}"


def quantize_linears(root: nn.Module, *, device, group_size: int = 128) -> int:
    """Replace every ``nn.Linear`` under ``root`` whose shape the kernels accept by an ``Int4Linear`` on
    ``device``, one at a time so only one dense weight is there at once; the others move to ``device`` as
    they are. Returns how many were quantised."""
    count = 0
    for name, module in list(root.named_modules()):
        for child_name, child in list(module.named_children()):
            if type(child) is nn.Linear and group_size_for(child.out_features, child.in_features, group_size):
                setattr(module, child_name, Int4Linear.from_weight(
                    child.weight.detach(), child.bias, device=device, group_size=group_size))
                child.to("meta")  # drop the dense copy now
                count += 1
    root.to(device)
    return count


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """The 8 four-bit fields of each int32, lowest first: [..., 8]."""
    shifts = torch.arange(0, 32, 4, device=packed.device, dtype=torch.int32)
    return (packed.unsqueeze(-1) >> shifts) & 0xF


def unpack_cuda_layout(packed: torch.Tensor) -> torch.Tensor:
    """Codes [out, in] back from the CUDA kernel's layout (``_convert_weight_to_int4pack``: int32
    [out/8, in/(tiles*16), 32, tiles/2]). In that layout lane ``t`` of an 8-row n-tile holds row ``t // 4``;
    its int32 number ``i2`` holds, from the lowest nibble up, the high then the low nibbles of the bytes at
    ``t % 4 + (0, 4, 8, 12)`` of k-tile pair ``i2``: a fixed permutation, undone here by a reshape."""
    n_tiles, k_outer, _, half_tiles = packed.shape
    fields = _nibbles(packed).view(n_tiles, k_outer, 8, 4, half_tiles, 2, 2, 2)  # row%8, t%4, i2, hl, ib, ia
    codes = fields.permute(0, 2, 1, 4, 6, 7, 3, 5)  # rows; k: outer, i2, ib, ia, t%4, hl
    return codes.reshape(n_tiles * 8, k_outer * half_tiles * 32)


def pack_cuda_layout_reference(codes: torch.Tensor, inner_k_tiles: int) -> torch.Tensor:
    """The CUDA kernel's packing, written out in Python from its source (for tests of the unpacking on
    machines without CUDA; on CUDA the kernel itself is compared)."""
    out_features, in_features = codes.shape
    nibbles = (codes[:, ::2] << 4 | codes[:, 1::2]).to(torch.int64)  # bytes [n, k/2], even column high
    k_outer = in_features // (inner_k_tiles * 16)
    out = torch.zeros(out_features // 8, k_outer, 32, inner_k_tiles // 2, dtype=torch.int64)
    for t in range(32):
        rows = torch.arange(out_features // 8) * 8 + t // 4
        for i2 in range(inner_k_tiles // 2):
            base = (torch.arange(k_outer) * inner_k_tiles + 2 * i2) * 8
            v = [nibbles[rows][:, base + t % 4 + offset] for offset in (0, 4, 8, 12)]
            out[:, :, t, i2] = ((v[3] & 0xF) << 28 | (v[2] & 0xF) << 24 | (v[1] & 0xF) << 20 | (v[0] & 0xF) << 16
                                | (v[3] & 0xF0) << 8 | (v[2] & 0xF0) << 4 | (v[1] & 0xF0) | (v[0] & 0xF0) >> 4)
    return ((out + 2**31) % 2**32 - 2**31).to(torch.int32)


def dequantize_packed(packed: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int,
                      dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """Dense weights [out, in] from the CUDA layout, for many-row inputs (prompt prefill), where a
    dense matmul beats the int4 kernel, which is built for a few rows."""
    codes = unpack_cuda_layout(packed)
    out_features, in_features = codes.shape
    scale = scales_and_zeros[..., 0].t().float().unsqueeze(-1)
    zero = scales_and_zeros[..., 1].t().float().unsqueeze(-1)
    groups = codes.view(out_features, in_features // group_size, group_size).float()
    return ((groups - 8) * scale + zero).view(out_features, in_features).to(dtype)


_compiled_dequantize = None


def _dense(packed, scales_and_zeros, group_size: int, dtype) -> torch.Tensor:
    """``dequantize_packed``, compiled into one kernel per weight shape when ``torch.compile`` works here."""
    global _compiled_dequantize
    if _compiled_dequantize is None:
        try:
            _compiled_dequantize = torch.compile(dequantize_packed, fullgraph=True)
        except Exception:  # noqa: BLE001  no compiler: the eager version is correct, only slower
            _compiled_dequantize = dequantize_packed
    try:
        return _compiled_dequantize(packed, scales_and_zeros, group_size, dtype)
    except torch.OutOfMemoryError:
        raise
    except Exception:  # noqa: BLE001
        _compiled_dequantize = dequantize_packed
        return dequantize_packed(packed, scales_and_zeros, group_size, dtype)
