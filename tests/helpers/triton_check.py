"""Run the Triton kernels of ``assistant.models.kernels`` on the CPU through Triton's interpreter and
compare them with the reference paths; prints one line per check, exits 1 on a mismatch. Must start with
TRITON_INTERPRET=1 in the environment (the tests do that)."""

import sys

import torch

from assistant.models import int4, kernels
from assistant.models.static_decode import _decode_attention


def main() -> int:
    torch.manual_seed(0)
    failures = 0
    for out_features, in_features, group in [(48, 256, 128), (40, 512, 64), (16, 384, 128)]:
        weight = torch.randn(out_features, in_features) * 0.05
        codes, scales_and_zeros = int4.quantize(weight, group)
        reference = int4.dequantize(codes, scales_and_zeros, group)
        x = torch.randn(1, in_features, dtype=torch.bfloat16)
        want = x.float() @ reference.T
        got = kernels.int4_gemv(x, kernels.pack_rows(codes), scales_and_zeros, group).float()
        error = float((got - want).abs().max() / want.abs().max())
        ok = error < 0.02 and torch.equal(kernels.unpack_rows(kernels.pack_rows(codes)), codes)
        failures += not ok
        print(f"gemv {out_features}x{in_features} g{group}: relative error {error:.4f} {'ok' if ok else 'FAIL'}")
    # float16 here: the interpreter's tl.dot goes through numpy, which has no bfloat16 (on a GPU the kernel
    # runs in bfloat16 and is checked against the reference when the model loads, and in tests/gpu)
    for heads, kv_heads, slots, index in [(16, 2, 200, 130), (4, 2, 64, 0), (28, 4, 300, 299)]:
        q = torch.randn(1, heads, 1, 32, dtype=torch.float16)
        cache_k = torch.randn(1, kv_heads, slots + 7, 32, dtype=torch.float16)
        cache_v = torch.randn(1, kv_heads, slots + 7, 32, dtype=torch.float16)
        k, v = cache_k[:, :, :slots], cache_v[:, :, :slots]
        position = torch.tensor([index])
        want = _decode_attention(q, k, v, position, 32 ** -0.5).float()
        got = kernels.decode_attention(q, k, v, position, 32 ** -0.5).float()
        error = float((got - want).abs().max() / want.abs().max())
        ok = error < 0.02
        failures += not ok
        print(f"attention {heads}/{kv_heads} heads, slot {index} of {slots}: relative error {error:.4f} "
              f"{'ok' if ok else 'FAIL'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
