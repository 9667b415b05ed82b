#!/usr/bin/env bash
# The prepared GPU check (at most about 8 minutes on one H100 or H200): the CUDA tests, then one
# table of training throughput per variant against the DCGAN at 64 px (bf16 and fp32), the R1/R2
# step's cost and Inception features per second (benchmarks/gpu_check.py).
#   bash benchmarks/gpu_check.sh                 # on a machine with CUDA, from the project root
#   GPU_CHECK_ARGS="--device cpu --quick" bash benchmarks/gpu_check.sh   # the same on a CPU, tiny
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
export DVC_NO_ANALYTICS=1 RNNGAN_NO_PROGRESS=1
echo "== tests/test_cuda.py"
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/test_cuda.py
echo "== throughput, R1/R2, Inception"
# shellcheck disable=SC2086  # GPU_CHECK_ARGS is a list of options
timeout 300 "$PY" benchmarks/gpu_check.py ${GPU_CHECK_ARGS:-}
