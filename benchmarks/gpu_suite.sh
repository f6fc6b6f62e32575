#!/usr/bin/env bash
# Every GPU measurement of the fast-inference work in one run, most important first, each bounded in time.
#
#   bash benchmarks/gpu_suite.sh [OUT_DIR]          # default OUT_DIR: gpu_results
#
# Needs a CUDA GPU and metricdepth installed with its test and benchmark extras (pip install -e ".[dev]").
# On an H100/H200 expect 10-20 minutes (torch.compile of the full model takes minutes per mode); the
# steps' own time limits add up to 50 minutes at worst. The first four steps hold the headline figures.
# Every step's full output goes to OUT_DIR/NAME.txt and its last lines to OUT_DIR/summary.txt; copy the
# figures into the README's table with the device name, precision and date printed here.
set -u
out=${1:-gpu_results}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
summary="$out/summary.txt"
{ date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; } | tee "$summary"

step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name: $*" | tee -a "$summary"
  timeout "$limit" "$@" >"$out/$name.txt" 2>&1
  echo "   (exit $?)" >>"$summary"
  tail -n 8 "$out/$name.txt" | tee -a "$summary"
}

step latency_bf16 240 python benchmarks/forward_latency.py --device cuda --precision bf16 --runs 30 --warmup 5
step latency_fp16 240 python benchmarks/forward_latency.py --device cuda --precision fp16 --runs 30 --warmup 5
step vs_transformers_bf16 300 python benchmarks/vs_transformers.py --device cuda --precision bf16 --runs 20 --warmup 5
step throughput_bf16 300 python benchmarks/folder_throughput.py --device cuda --precision bf16 --count 200 \
  --batch-size 8 --workers 12 --writers 6
step tolerance 300 python -m pytest -q -s -p no:cacheprovider tests/test_gpu.py
step latency_bf16_compiled 420 python benchmarks/forward_latency.py --device cuda --precision bf16 --compile \
  --runs 30 --warmup 5
step vs_transformers_fp16 300 python benchmarks/vs_transformers.py --device cuda --precision fp16 --runs 20 --warmup 5
step latency_bf16_batch4 240 python benchmarks/forward_latency.py --device cuda --precision bf16 --batch 4 \
  --runs 20 --warmup 3
step throughput_bf16_compiled 420 python benchmarks/folder_throughput.py --device cuda --precision bf16 --compile \
  --count 200 --batch-size 8 --workers 12 --writers 6
step latency_fp32 240 python benchmarks/forward_latency.py --device cuda --precision fp32 --runs 10 --warmup 3
