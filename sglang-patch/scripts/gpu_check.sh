#!/usr/bin/env bash
# The checks of sglang-patch that need a CUDA GPU, in one run: the gather+gemv
# MoE kernels compiled for the GPU against the fp32 reference (tests/test_gpu_moe.py
# at Qwen3-30B-A3B shapes, tests/test_moe_gather_gemv.py's cases on the GPU),
# then the MoE benchmark (scripts/bench_moe.py). Needs PyTorch and Triton with
# CUDA; nothing else from the test environments.
#
#   bash sglang-patch/scripts/gpu_check.sh [dir for bench_moe.json]   (PYTHON=… picks the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-.}
py=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv || true
"$py" -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda, 'gpu', torch.cuda.is_available())"
"$py" -m pytest -q -p no:cacheprovider tests/test_gpu_moe.py tests/test_moe_gather_gemv.py
tests=$?
"$py" scripts/bench_moe.py --json "$out/bench_moe.json"
bench=$?
echo "gpu_check: tests exit $tests, bench exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
