"""Which engine runs a build, whether it can run it at all, and the command that checks an estimate on a machine.

A GGUF format (a K-quant, Q8_0, F16 GGUF…) is llama.cpp's, and llama.cpp spreads a model over several cards by
layers. Tensor parallel is the serving engines' way (vLLM by default here): it cuts every attention layer by heads,
so the degree must divide the query heads, and either divide the KV heads or be a multiple of them (vLLM then
keeps a copy of each KV head on several cards). A build that breaks a rule is refused with the rule in words.
"""

from __future__ import annotations

import shlex

from physics.arch import ModelArch
from physics.speed import prompt_depth
from physics.vocab import Engine, Split

# Weight formats by the engine family that serves them.
GGUF_KINDS = frozenset({"gguf"})
SERVING_KINDS = frozenset({"awq", "gptq", "fp8"})  # checkpoints llama.cpp does not load
# Engines that split a model by layers (pipeline) only; the rest also run tensor parallel.
LAYER_ONLY_ENGINES = frozenset({Engine.LLAMA_CPP.value})
TENSOR_PARALLEL_DEFAULT = Engine.VLLM.value
# Engines whose check command is a llama-bench run; the serving engines' is a `vllm bench latency` run.
BENCH_DEFAULT_PROMPT = 512
BENCH_DEFAULT_GENERATED = 128


def engine_for(quant_kind: str, split: str, count: int, requested: str) -> str:
    """Returns the engine a build assumes: the requested one where it can run the build, else the one that can."""
    if quant_kind in GGUF_KINDS:
        return Engine.LLAMA_CPP.value
    tensor = count > 1 and split == Split.TENSOR
    if requested in LAYER_ONLY_ENGINES and (tensor or quant_kind in SERVING_KINDS):
        return TENSOR_PARALLEL_DEFAULT
    return requested


def build_problem(model: ModelArch, quant_kind: str, quant_name: str, count: int, split: str) -> str | None:
    """Returns why no engine runs this build as asked, in words; None when it can run."""
    if count <= 1 or split != Split.TENSOR:
        return None
    if quant_kind in GGUF_KINDS:
        return (
            f"{quant_name} is a GGUF format: llama.cpp runs it, and llama.cpp splits a model over {count} GPUs by "
            "layers, not by tensor parallel. Choose the layer split, or a format that vLLM serves (bf16, FP8, "
            "AWQ, GPTQ)."
        )
    if model.heads % count:
        return (
            f"Tensor parallel over {count} GPUs needs the attention heads to divide evenly: {model.name} has "
            f"{model.heads} query heads. Use a degree that divides {model.heads}, or the layer split."
        )
    if model.attention != "mla" and model.kv_heads % count and count % model.kv_heads:
        return (
            f"Tensor parallel over {count} GPUs needs the {model.kv_heads} KV heads of {model.name} to divide "
            f"evenly across the cards, or the degree to be a multiple of them. Use another degree, or the layer split."
        )
    return None


def check_command(
    engine: str,
    *,
    model_name: str,
    hf_repo: str,
    quant_name: str,
    quant_kind: str,
    count: int,
    split: str,
    prompt_tokens: int,
    context: int,
    batch: int,
) -> str:
    """Returns the command line that measures this estimate's figures with its engine on the user's own machine.

    llama.cpp: llama-bench times the prompt (pp) and generation (tg) apart at the stated depth, as the estimate
    does. SGLang: its own one-batch latency run, `python -m sglang.bench_one_batch`. ExLlamaV2: its repository's
    `test_inference.py` prompt (-ps) and generation (-s) speed tests. gpt-fast: its `generate.py` with the compiled
    model, which prints the decode rate (torchrun over the cards for tensor parallel). vLLM and the other serving
    engines: `vllm bench latency` at the same prompt, output and batch. The model file, directory or repo is the
    user's to fill in where we only know the model's name.
    """
    prompt = max(int(prompt_tokens), 1)
    if engine == Engine.LLAMA_CPP:
        depth = int(prompt_depth(context, prompt))
        gguf = f"{_file_stem(model_name)}-{quant_name}.gguf"
        parts = ["llama-bench", "-m", gguf, "-p", str(prompt), "-n", str(BENCH_DEFAULT_GENERATED), "-ngl", "99"]
        parts += ["-fa", "1"]
        if depth:
            parts += ["-d", str(depth)]
        if count > 1:
            parts += ["-sm", "layer"]
        return shlex.join(parts)
    repo = hf_repo or model_name
    if engine == Engine.SGLANG:
        parts = [
            "python",
            "-m",
            "sglang.bench_one_batch",
            "--model-path",
            repo,
            "--batch-size",
            str(max(int(batch), 1)),
        ]
        parts += ["--input-len", str(prompt), "--output-len", str(BENCH_DEFAULT_GENERATED)]
        if count > 1:
            parts += ["--tp-size" if split == Split.TENSOR else "--pp-size", str(count)]
        if quant_kind in {"awq", "gptq", "fp8"}:
            parts += ["--quantization", quant_kind]
        return shlex.join(parts)
    if engine == Engine.EXLLAMAV2:
        parts = ["python", "test_inference.py", "-m", f"{_file_stem(model_name)}-{quant_name}", "-ps", "-s"]
        parts += ["-l", str(max(int(context), prompt + BENCH_DEFAULT_GENERATED))]
        if count > 1:
            parts += ["-tp"] if split == Split.TENSOR else ["-gs", "auto"]
        return shlex.join(parts)
    if engine == Engine.GPT_FAST:
        checkpoint = f"checkpoints/{repo}/{GPT_FAST_CHECKPOINTS.get(quant_name, 'model.pth')}"
        launch = ["python"]
        if count > 1:
            launch = ["ENABLE_INTRA_NODE_COMM=1", "torchrun", "--standalone", f"--nproc_per_node={count}"]
        parts = [*launch, "generate.py", "--compile", "--checkpoint_path", checkpoint]
        return shlex.join([*parts, "--max_new_tokens", str(BENCH_DEFAULT_GENERATED), "--num_samples", "5"])
    parts = ["vllm", "bench", "latency", "--model", repo, "--input-len", str(prompt)]
    parts += ["--output-len", str(BENCH_DEFAULT_GENERATED), "--batch-size", str(max(int(batch), 1))]
    if count > 1:
        flag = "--tensor-parallel-size" if split == Split.TENSOR else "--pipeline-parallel-size"
        parts += [flag, str(count)]
    if quant_kind in {"awq", "gptq", "fp8"}:
        parts += ["--quantization", quant_kind]
    parts += ["--max-model-len", str(max(int(context), prompt + BENCH_DEFAULT_GENERATED))]
    return shlex.join(parts)


# The checkpoint gpt-fast's quantize.py writes for each of its weight-only formats (model.pth: bf16 as converted).
GPT_FAST_CHECKPOINTS = {"torch-int8": "model_int8.pth", "torch-int4": "model_int4.g32.pth"}


def _file_stem(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-._" else "-" for ch in name).strip("-") or "model"
