#!/bin/sh
# GPU host check: device report, copy bandwidth, matmul rate, then the Mixtral suite (see docs/benchmarks.md).
# Needs python3 with torch, numpy, psutil, nvidia-ml-py; no Django, no network. Extra arguments pass through,
# e.g. scripts/gpu_check.sh --device cpu --layers 1 --quick
set -eu
cd "$(dirname "$0")/.."
PYTHONUNBUFFERED=1 exec python3 -m bench.gpu_check "$@"
