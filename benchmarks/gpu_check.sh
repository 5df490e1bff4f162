#!/usr/bin/env bash
# Every GPU check of this project in one run, for a lent GPU machine (its image has torch, transformers,
# accelerate, pytest; bitsandbytes and the pinned transformers travel as wheels in .whl/, made by
# ../shared/gpu/wheels.sh bitsandbytes==0.50.2 transformers==5.24.0).
# Writes results under ${OUT:-benchmarks/results}.
#   TESTS_S: time limit of the GPU tests; BENCH_S: of the benchmark; BUDGET_S: no new benchmark variant
#   is started after this many seconds; SHAPES: model shapes to benchmark; KERNELS_S: time limit of the
#   per-kernel candidates (benchmarks/decode_kernels.py), 0 to skip them. The defaults add up to 680 s:
#   within the device tool's 600 s a call, pass e.g. TESTS_S=150 BENCH_S=300 BUDGET_S=220 KERNELS_S=120.
set -uo pipefail
out=${OUT:-benchmarks/results}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  && export PYTHONPATH=/tmp/site:$PWD || exit 1
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 - <<'PY'
import importlib.util, torch, transformers, bitsandbytes as b
print("torch", torch.__version__, "transformers", transformers.__version__, "bitsandbytes", b.__version__,
      "triton", importlib.util.find_spec("triton") is not None, "torchvision", importlib.util.find_spec("torchvision") is not None)
PY
timeout "${TESTS_S:-200}" python3 -m pytest -q -p no:cacheprovider -o addopts= -m gpu tests/gpu 2>&1 \
  | grep -v "Loading weights\|Writing model" | tail -60 | tee "$out/gpu_tests.txt"
timeout "${BENCH_S:-330}" python3 benchmarks/gpu.py --shapes ${SHAPES:-3b 7b} --skip-tests --profile --budget-s "${BUDGET_S:-240}" \
  --out "$out/gpu.json" 2>&1 | grep -v "Loading weights\|Writing model" | tee "$out/gpu.txt"
if [ "${KERNELS_S:-150}" != 0 ]; then
  timeout "${KERNELS_S:-150}" python3 benchmarks/decode_kernels.py --shapes ${SHAPES:-3b 7b} \
    --out "$out/decode_kernels.json" 2>&1 | tee "$out/decode_kernels.txt"
fi
