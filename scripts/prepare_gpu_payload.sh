#!/bin/sh
# Prepares what a GPU host without network needs for scripts/gpu_llamacpp.sh, in .gpu/ (git-ignored):
#   .gpu/llama.cpp.tar.gz  the llama.cpp that llama-cpp-python 0.3.36 vendors, without its models, docs, tests and the
#                          backends a CUDA build does not compile (the sdist is 76 MB; this is about 6 MB)
#   .gpu/py/llama_cpp      llama-cpp-python's Python package (for LLAMACPP_PY=.gpu/py)
#   .gpu/whl/*.whl         gguf and diskcache wheels (numpy, pyyaml, requests and tqdm are on such hosts)
# On the host: pip install --no-index --no-deps --target /tmp/site .gpu/whl/*.whl; export PYTHONPATH=/tmp/site:$PWD;
# tar xzf .gpu/llama.cpp.tar.gz -C /tmp/src; LLAMACPP_PY=.gpu/py scripts/gpu_llamacpp.sh /tmp/src/llama.cpp
set -eu
cd "$(dirname "$0")/.."
grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d "$work"
tar xzf "$work"/llama_cpp_python-0.3.36.tar.gz -C "$work"
src="$work/llama_cpp_python-0.3.36"
rm -rf .gpu && mkdir -p .gpu/py .gpu/whl
cp -r "$src/llama_cpp" .gpu/py/ && rm -rf .gpu/py/llama_cpp/server
cd "$src/vendor"
rm -rf llama.cpp/models llama.cpp/docs llama.cpp/tools/ui llama.cpp/benches llama.cpp/tests llama.cpp/.github \
    llama.cpp/app llama.cpp/examples/*
for backend in et metal hexagon sycl vulkan opencl cann musa zdnn webgpu openvino zendnn virtgpu; do
    rm -rf "llama.cpp/ggml/src/ggml-$backend"
done
cd - >/dev/null
tar czf .gpu/llama.cpp.tar.gz -C "$src/vendor" llama.cpp
python3 -m pip download -q --no-deps --only-binary=:all: gguf==0.19.0 diskcache -d .gpu/whl
du -sh .gpu
