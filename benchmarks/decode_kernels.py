"""Kernel-level timings of the parts of one decode step, at the real shapes, for the candidates that could
replace them: the measurement that decides the next change to the static decoder
(``assistant/models/static_decode.py``). The decoder's own profile (``benchmarks/gpu.py --profile``) says
where a token's time goes; this says what each part could cost instead.

- Linears, one row (batch-1 decode), per layer shape and the LM head: PyTorch's int4 kernel at groups of
  128/64/32 (what the decoder uses) and bf16 ``F.linear``, each with the bytes it reads, the rate it reaches
  and the floor those bytes set at the card's copy bandwidth.
- Decode attention, one query against a cache bucket of which 65% is filled: the decoder's compiled
  bmm/softmax/bmm (as it is, and with Inductor's split reductions off), ``flex_attention`` (its decoding
  kernel, blocks past the filled length skipped), ``scaled_dot_product_attention`` with a mask, and SDPA over
  exactly the filled length (not recordable per bucket: a lower bound). Each candidate's output is compared
  with the decoder's eager attention in float32 (``max_err``), so a fast wrong kernel shows.

On CUDA every figure is the mean of a CUDA graph that replays the call ``--reps`` times, as the decoder runs
them; on the CPU plain calls are timed, which proves the script and the candidates' numerics, not speed.

    python benchmarks/decode_kernels.py --shapes 3b 7b --out benchmarks/results/decode_kernels.json
    python benchmarks/decode_kernels.py --shapes tiny      # the CPU proof
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assistant.models import int4  # noqa: E402
from assistant.models.static_decode import _decode_attention  # noqa: E402
from benchmarks.gpu import SHAPES, copy_bandwidth  # noqa: E402

TINY = dict(vocab_size=512, hidden_size=256, intermediate_size=512, num_attention_heads=4, num_key_value_heads=2)
FILLED = 0.65  # the share of a bucket holding tokens: a bucket is used between half and all of its length


def text_config(shape: str) -> dict:
    return TINY if shape == "tiny" else SHAPES[shape]["text"]


def linear_shapes(shape: str) -> dict[str, tuple[int, int]]:
    """(out_features, in_features) of each decode linear, q|k|v and gate|up fused as the decoder has them."""
    c = text_config(shape)
    hidden, inter, heads, kv = (c["hidden_size"], c["intermediate_size"], c["num_attention_heads"],
                                c["num_key_value_heads"])
    head_dim = hidden // heads
    return {"qkv": ((heads + 2 * kv) * head_dim, hidden), "o": (hidden, heads * head_dim),
            "gate_up": (2 * inter, hidden), "down": (hidden, inter), "lm_head": (c["vocab_size"], hidden)}


def timed(fn, device: torch.device, reps: int) -> tuple[float, str]:
    """Mean microseconds per call, and how it was timed."""
    for _ in range(3):
        fn()
    if device.type != "cuda":
        start = time.perf_counter()
        for _ in range(reps):
            fn()
        return (time.perf_counter() - start) / reps * 1e6, "eager"
    torch.cuda.synchronize()
    how = "graph"
    try:
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            for _ in range(reps):
                fn()
        run = graph.replay
    except Exception:  # noqa: BLE001  not recordable: time the launches as they are
        how, run = "eager", lambda: [fn() for _ in range(reps)]
    run()
    begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    for _ in range(5):
        begin.record()
        run()
        end.record()
        end.synchronize()
        samples.append(begin.elapsed_time(end) * 1e3 / reps)
    return sorted(samples)[len(samples) // 2], how


def _rates(read: int, us: float, bandwidth: float) -> dict:
    """Bytes read, the rate reached, and the time those bytes take at the copy bandwidth (none on a CPU)."""
    floor = read / bandwidth * 1e6 if torch.cuda.is_available() else None
    return {"mb_read": read / 1e6, "tb_s": read / us / 1e6, "floor_us": floor}


def linear_rows(shape: str, device: torch.device, bandwidth: float, reps: int) -> list[dict]:
    rows = []
    for name, (out_features, in_features) in linear_shapes(shape).items():
        weight = torch.randn(out_features, in_features, device=device, dtype=torch.bfloat16) / in_features**0.5
        x = torch.randn(1, in_features, device=device, dtype=torch.bfloat16)
        candidates = {"bf16 F.linear": (lambda w=weight: F.linear(x, w), weight.numel() * 2)}
        for group in int4.GROUP_SIZES:
            if int4.group_size_for(out_features, in_features, group) != group:
                continue
            layer = int4.Int4Linear.from_weight(weight, None, device=device, group_size=group)
            read = sum(t.numel() * t.element_size() for t in (layer.packed, layer.scales_and_zeros))
            candidates[f"int4 g{group}"] = (lambda m=layer: m(x), read)
        for candidate, (fn, read) in candidates.items():
            us, how = timed(fn, device, reps)
            rows.append({"shape": shape, "part": name, "size": f"{out_features}x{in_features}",
                         "candidate": candidate, "us": us, "timed": how, **_rates(read, us, bandwidth)})
        del weight
    return rows


def _flex(heads: int, kv_heads: int, head_dim: int, bucket: int, index: torch.Tensor, device: torch.device):
    """``flex_attention`` over the bucket: every block partial (the mask reads ``index`` when it runs), and
    the number of blocks to visit recomputed from ``index`` in place, so a graph replays it at any length."""
    from torch.nn.attention.flex_attention import BlockMask, flex_attention

    block = 128 if bucket % 128 == 0 else bucket
    blocks = bucket // block
    num_blocks = torch.ones(1, 1, 1, dtype=torch.int32, device=device)
    indices = torch.arange(blocks, dtype=torch.int32, device=device).view(1, 1, 1, blocks)

    def mask_mod(b, h, q_idx, kv_idx):
        return kv_idx <= index

    none_full = torch.zeros_like(num_blocks)  # no block is full: the mask runs on every visited one
    mask = BlockMask.from_kv_blocks(num_blocks, indices, none_full, indices.clone(), BLOCK_SIZE=(128, block),
                                    mask_mod=mask_mod, seq_lengths=(1, bucket))
    attend = torch.compile(flex_attention, fullgraph=True, dynamic=False)

    def run(q, k, v):
        num_blocks.copy_((index // block + 1).to(torch.int32).view(1, 1, 1))
        out = attend(q, k, v, block_mask=mask, scale=head_dim**-0.5, enable_gqa=kv_heads != heads)
        return out.transpose(1, 2).reshape(1, 1, heads * head_dim)

    return run


def attention_rows(shape: str, device: torch.device, bandwidth: float, reps: int, buckets: list[int]) -> list[dict]:
    c = text_config(shape)
    heads, kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
    head_dim = c["hidden_size"] // heads
    scale = head_dim**-0.5
    current = torch.compile(_decode_attention, fullgraph=True, dynamic=True)
    unsplit = torch.compile(_decode_attention, fullgraph=True, dynamic=True, options={"split_reductions": False})
    rows = []
    for bucket in buckets:
        index = torch.tensor(int(bucket * FILLED), device=device)
        filled = int(index) + 1
        q = torch.randn(1, heads, 1, head_dim, device=device, dtype=torch.bfloat16)
        k = torch.randn(1, kv_heads, bucket, head_dim, device=device, dtype=torch.bfloat16)
        v = torch.randn_like(k)
        reference = _decode_attention(q.float(), k.float(), v.float(), index, scale)
        valid = (torch.arange(bucket, device=device) <= index).view(1, 1, 1, bucket)

        def sdpa_masked():
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=valid, scale=scale, enable_gqa=True)
            return out.transpose(1, 2).reshape(1, 1, heads * head_dim)

        def sdpa_exact():
            out = F.scaled_dot_product_attention(q, k[:, :, :filled], v[:, :, :filled], scale=scale, enable_gqa=True)
            return out.transpose(1, 2).reshape(1, 1, heads * head_dim)

        candidates = {"compiled bmm+softmax (decoder)": lambda: current(q, k, v, index, scale),
                      "same, split_reductions off": lambda: unsplit(q, k, v, index, scale),
                      "sdpa + mask": sdpa_masked, "sdpa, exact length (bound)": sdpa_exact}
        try:
            flex = _flex(heads, kv_heads, head_dim, bucket, index, device)
            candidates["flex_attention decode"] = lambda: flex(q, k, v)
        except Exception as exc:  # noqa: BLE001  an older torch: say so in the table
            rows.append({"shape": shape, "part": "attention", "size": f"kv {bucket}",
                         "candidate": "flex_attention decode", "error": repr(exc)[:200]})
        read = 2 * kv_heads * filled * head_dim * 2  # the filled part of k and v, bf16
        for candidate, fn in candidates.items():
            row = {"shape": shape, "part": "attention", "size": f"kv {bucket}", "candidate": candidate}
            try:
                err = (fn().float() - reference).abs().max().item()
                us, how = timed(fn, device, reps)
                row.update(us=us, timed=how, max_err=err, **_rates(read, us, bandwidth))
            except Exception as exc:  # noqa: BLE001  one failing candidate must not lose the others
                row["error"] = repr(exc)[:200]
            rows.append(row)
    return rows


COLUMNS = ["shape", "part", "size", "candidate", "us", "timed", "mb_read", "tb_s", "floor_us", "max_err"]


def table(rows: list[dict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [row.get(c) for c in COLUMNS[:4]]
        if "error" in row:
            cells.append(f"error: {row['error']}")
        else:
            cells += [row.get(c) for c in COLUMNS[4:]]
        lines.append("| " + " | ".join("" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)
                                       for v in cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=["3b", "7b", "tiny"], default=["3b", "7b"])
    parser.add_argument("--buckets", nargs="+", type=int, default=None,
                        help="cache lengths for attention (default 2048 8192; tiny: 256 512)")
    parser.add_argument("--reps", type=int, default=50, help="calls per timing")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/decode_kernels.json"))
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and not int4.cuda_supported():
        raise SystemExit("the int4 kernel needs compute capability 8.0 or newer")
    bandwidth = copy_bandwidth()
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu"
    header = (f"device: {name}; torch {torch.__version__}; copy bandwidth {bandwidth / 1e12:.2f} TB/s; "
              f"attention buckets {FILLED:.0%} filled")
    print(header, flush=True)
    rows: list[dict] = []
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with torch.inference_mode():
        for shape in args.shapes:
            buckets = args.buckets or ([256, 512] if shape == "tiny" else [2048, 8192])
            rows += linear_rows(shape, device, bandwidth, args.reps)
            rows += attention_rows(shape, device, bandwidth, args.reps, buckets)
            args.out.write_text(json.dumps({"device": name, "torch": torch.__version__, "copy_bandwidth_Bps": bandwidth,
                                            "rows": rows}, indent=2))
    text = f"{header}\n\n{table(rows)}\n"
    print(text)
    args.out.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
