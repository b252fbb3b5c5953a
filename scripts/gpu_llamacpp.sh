#!/bin/sh
# Builds llama.cpp for the visible NVIDIA GPU and runs bench.llama_bench's plan with it (docs/benchmarks.md).
# Usage: scripts/gpu_llamacpp.sh LLAMA_CPP_SOURCE_DIR [bench.llama_bench arguments]
# Needs nvcc, cmake and python3 with numpy and gguf; no Django, no network. LLAMACPP_BUILD names the build folder;
# LLAMACPP_COMMIT records the source's commit in llama-bench's build_commit (a source without .git reports
# "unknown"); GPU_BUDGET_S (default 420) is the time from the start after which no new step starts, the build included.
set -eu
src=$1
shift
cd "$(dirname "$0")/.."
build=${LLAMACPP_BUILD:-/tmp/llamacpp-build}
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
gen=""
command -v ninja >/dev/null && gen="-G Ninja"
# The ceiling llama.cpp's int8 prompt kernels face: the mma.sync rate (bench/cuda/mma_sync_rate.cu), printed first.
nvcc -O3 -arch="sm_$arch" -o "${TMPDIR:-/tmp}/mma_sync_rate" bench/cuda/mma_sync_rate.cu && "${TMPDIR:-/tmp}/mma_sync_rate" >&2 || true
t0=$(date +%s)
# shellcheck disable=SC2086
cmake -S "$src" -B "$build" $gen -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch" \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF ${LLAMACPP_COMMIT:+-DLLAMA_BUILD_COMMIT=$LLAMACPP_COMMIT} >/dev/null
cmake --build "$build" --target llama-bench -j "$(nproc)" >/dev/null
spent=$(( $(date +%s) - t0 ))
echo "built llama-bench for sm_$arch in $spent s" >&2
PYTHONUNBUFFERED=1 python3 -m bench.llama_bench --llama-bench "$build/bin/llama-bench" \
    --budget-s $(( ${GPU_BUDGET_S:-420} - spent )) "$@" || true
# The worker's own path over the same build, when LLAMACPP_PY names llama-cpp-python's source folder (the one holding
# its llama_cpp package): one Llama 3.1 8B Q4_K_M run, with Python's stack printed should llama.cpp crash.
if [ -n "${LLAMACPP_PY:-}" ]; then
    LLAMA_CPP_LIB_PATH="$build/bin" PYTHONPATH="$LLAMACPP_PY:${PYTHONPATH:-}" PYTHONUNBUFFERED=1 \
        python3 -X faulthandler -m bench.engines.llamacpp --config models/data/configs/llama-3-1-8b-instruct.json \
        --format Q4_K_M --device cuda:0 --repeats 3 --cache "${TMPDIR:-/tmp}/gpufit-gguf"
fi
