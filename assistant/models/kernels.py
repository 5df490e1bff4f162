"""Two Triton kernels for the decode step, where a token reads every weight once and little else:

* ``int4_gemv``: one row of activations times an int4 weight stored row-major (two codes per byte, low
  nibble first) with the same per-group scale and zero as ``assistant.models.int4``.
* ``decode_attention``: one query token, its query heads grouped under their key/value head, against the
  first ``index + 1`` slots of the KV cache, split into 64-slot tiles (flash-decoding) and combined.

They are registered as ``torch.library`` custom ops, so ``torch.compile`` and CUDA graphs take them as
they are. The static decoder uses them only after checking them, at load time, against the reference
path on the real shapes, and only where they are faster there (``StaticDecoder.warm_up``).
"""

from __future__ import annotations

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton: the reference paths are used
    triton = None

TILE = 64  # cache slots per attention program


def available() -> bool:
    return triton is not None


if triton is not None:

    @triton.jit
    def _gemv_kernel(x_ptr, w_ptr, sz_ptr, y_ptr, N, K, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
                     GROUPS_PER_STEP: tl.constexpr):
        # y[n] = sum_k x[k] * ((q[n, k] - 8) * s[n, k // GROUP] + z[n, k // GROUP])
        #      = sum_g s[n, g] * sum_{k in g} (q - 8) x  +  z[n, g] * sum_{k in g} x
        pid = tl.program_id(0)
        rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
        row_ok = rows < N
        half: tl.constexpr = GROUP // 2
        pairs = tl.arange(0, GROUPS_PER_STEP * half)  # byte index within the step
        acc = tl.zeros((BLOCK_N,), dtype=tl.float32)
        for start in range(0, K, GROUP * GROUPS_PER_STEP):
            byte_cols = start // 2 + pairs
            col_ok = byte_cols < K // 2
            packed = tl.load(w_ptr + rows[:, None] * (K // 2) + byte_cols[None, :],
                             mask=row_ok[:, None] & col_ok[None, :], other=0x88).to(tl.int32)
            low = (packed & 0xF).to(tl.float32) - 8.0
            high = (packed >> 4).to(tl.float32) - 8.0
            x_even = tl.load(x_ptr + 2 * byte_cols, mask=col_ok, other=0.0).to(tl.float32)
            x_odd = tl.load(x_ptr + 2 * byte_cols + 1, mask=col_ok, other=0.0).to(tl.float32)
            partial = low * x_even[None, :] + high * x_odd[None, :]  # [BLOCK_N, GROUPS_PER_STEP * half]
            per_group = tl.sum(tl.reshape(partial, (BLOCK_N, GROUPS_PER_STEP, half)), axis=2)
            x_sums = tl.sum(tl.reshape(x_even + x_odd, (GROUPS_PER_STEP, half)), axis=1)
            groups = start // GROUP + tl.arange(0, GROUPS_PER_STEP)
            group_ok = groups < K // GROUP
            where = groups[None, :] * (2 * N) + rows[:, None] * 2  # scales_and_zeros [K/G, N, 2]
            ok = row_ok[:, None] & group_ok[None, :]
            scale = tl.load(sz_ptr + where, mask=ok, other=0.0).to(tl.float32)
            zero = tl.load(sz_ptr + where + 1, mask=ok, other=0.0).to(tl.float32)
            acc += tl.sum(scale * per_group + zero * x_sums[None, :], axis=1)
        tl.store(y_ptr + rows, acc.to(y_ptr.dtype.element_ty), mask=row_ok)

    @triton.jit
    def _attention_tiles(q_ptr, k_ptr, v_ptr, index_ptr, m_ptr, l_ptr, acc_ptr, stride_kh, stride_kt,
                         stride_vh, stride_vt, scale, SPLITS, GROUPS: tl.constexpr, BLOCK_G: tl.constexpr,
                         DIM: tl.constexpr, TILE_T: tl.constexpr):
        head = tl.program_id(0)
        split = tl.program_id(1)
        valid = tl.load(index_ptr) + 1
        start = split * TILE_T
        if start < valid:
            g = tl.arange(0, BLOCK_G)
            d = tl.arange(0, DIM)
            t = start + tl.arange(0, TILE_T)
            t_ok = t < valid
            q = tl.load(q_ptr + (head * GROUPS + g)[:, None] * DIM + d[None, :], mask=(g < GROUPS)[:, None],
                        other=0.0)
            k = tl.load(k_ptr + head * stride_kh + t[:, None] * stride_kt + d[None, :], mask=t_ok[:, None],
                        other=0.0)
            scores = tl.dot(q, tl.trans(k)) * scale  # [BLOCK_G, TILE_T], fp32
            scores = tl.where(t_ok[None, :], scores, float("-inf"))
            m = tl.max(scores, axis=1)
            p = tl.exp(scores - m[:, None])
            v = tl.load(v_ptr + head * stride_vh + t[:, None] * stride_vt + d[None, :], mask=t_ok[:, None],
                        other=0.0)
            acc = tl.dot(p.to(v.dtype), v)  # [BLOCK_G, DIM]
            at = (head * SPLITS + split) * BLOCK_G + g
            tl.store(m_ptr + at, m)
            tl.store(l_ptr + at, tl.sum(p, axis=1))
            tl.store(acc_ptr + at[:, None] * DIM + d[None, :], acc)

    @triton.jit
    def _attention_combine(index_ptr, m_ptr, l_ptr, acc_ptr, out_ptr, SPLITS, GROUPS: tl.constexpr,
                           BLOCK_G: tl.constexpr, DIM: tl.constexpr, TILE_T: tl.constexpr,
                           CHUNK: tl.constexpr):
        head = tl.program_id(0)
        used = (tl.load(index_ptr) + 1 + TILE_T - 1) // TILE_T
        g = tl.arange(0, BLOCK_G)
        d = tl.arange(0, DIM)
        best = tl.full((BLOCK_G,), float("-inf"), dtype=tl.float32)
        for first in range(0, SPLITS, CHUNK):
            s = first + tl.arange(0, CHUNK)
            at = (head * SPLITS + s)[:, None] * BLOCK_G + g[None, :]
            m = tl.load(m_ptr + at, mask=(s < used)[:, None], other=float("-inf"))
            best = tl.maximum(best, tl.max(m, axis=0))
        total = tl.zeros((BLOCK_G,), dtype=tl.float32)
        out = tl.zeros((BLOCK_G, DIM), dtype=tl.float32)
        for first in range(0, SPLITS, CHUNK):
            s = first + tl.arange(0, CHUNK)
            ok = (s < used)[:, None]
            at = (head * SPLITS + s)[:, None] * BLOCK_G + g[None, :]
            m = tl.load(m_ptr + at, mask=ok, other=float("-inf"))
            weight = tl.where(ok, tl.exp(m - best[None, :]), 0.0)  # [CHUNK, BLOCK_G]
            total += tl.sum(weight * tl.load(l_ptr + at, mask=ok, other=0.0), axis=0)
            part = tl.load(acc_ptr + at[:, :, None] * DIM + d[None, None, :], mask=ok[:, :, None], other=0.0)
            out += tl.sum(weight[:, :, None] * part, axis=0)
        out = out / total[:, None]
        tl.store(out_ptr + (head * GROUPS + g)[:, None] * DIM + d[None, :], out.to(out_ptr.dtype.element_ty),
                 mask=(g < GROUPS)[:, None])


def _next_power_of_2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@torch.library.custom_op("assistant::int4_gemv", mutates_args=())
def int4_gemv(x: torch.Tensor, packed: torch.Tensor, scales_and_zeros: torch.Tensor, group_size: int
              ) -> torch.Tensor:
    """``x`` [1, K] times the row-major int4 weight ``packed`` [N, K/2] -> [1, N]."""
    n, k = packed.shape[0], packed.shape[1] * 2
    y = torch.empty(1, n, device=x.device, dtype=x.dtype)
    block_n = 16 if n >= 8192 else 8
    groups = 4  # groups per loop step: a power of two dividing the number of groups
    while (k // group_size) % groups:
        groups //= 2
    _gemv_kernel[(triton.cdiv(n, block_n),)](x, packed, scales_and_zeros, y, n, k, GROUP=group_size,
                                              BLOCK_N=block_n, GROUPS_PER_STEP=groups, num_warps=4)
    return y


@int4_gemv.register_fake
def _(x, packed, scales_and_zeros, group_size):
    return x.new_empty(1, packed.shape[0])


@torch.library.custom_op("assistant::decode_attention", mutates_args=())
def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, index: torch.Tensor, scale: float
                     ) -> torch.Tensor:
    """q [1, H, 1, D] against k, v [1, KV, T, D] (slots 0..index valid, T a multiple of TILE) -> [1, 1, H*D]."""
    heads, dim = q.shape[1], q.shape[-1]
    kv_heads, slots = k.shape[1], k.shape[2]
    groups = heads // kv_heads
    block_g = max(16, _next_power_of_2(groups))
    splits = triton.cdiv(slots, TILE)
    m = torch.empty(kv_heads, splits, block_g, device=q.device, dtype=torch.float32)
    l = torch.empty_like(m)
    acc = torch.empty(kv_heads, splits, block_g, dim, device=q.device, dtype=torch.float32)
    qc = q.reshape(heads, dim).contiguous()
    _attention_tiles[(kv_heads, splits)](qc, k, v, index, m, l, acc, k.stride(1), k.stride(2), v.stride(1),
                                         v.stride(2), scale, splits, GROUPS=groups, BLOCK_G=block_g, DIM=dim,
                                         TILE_T=TILE, num_warps=4)
    out = torch.empty(heads, dim, device=q.device, dtype=q.dtype)
    _attention_combine[(kv_heads,)](index, m, l, acc, out, splits, GROUPS=groups, BLOCK_G=block_g, DIM=dim,
                                    TILE_T=TILE, CHUNK=4, num_warps=4)
    return out.view(1, 1, heads * dim)


@decode_attention.register_fake
def _(q, k, v, index, scale):
    return q.new_empty(1, 1, q.shape[1] * q.shape[-1])


def pack_rows(codes: torch.Tensor) -> torch.Tensor:
    """Codes [N, K] (0..15) -> uint8 [N, K/2], the even column in the low nibble."""
    return (codes[:, ::2] | codes[:, 1::2] << 4).to(torch.uint8)


def unpack_rows(packed: torch.Tensor) -> torch.Tensor:
    return torch.stack([packed & 0xF, packed >> 4], dim=-1).reshape(packed.shape[0], -1).to(torch.int32)
