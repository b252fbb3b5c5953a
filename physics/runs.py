"""Benchmark runs as records: the spec a worker runs, the result it returns, and the estimate for exactly that run.

Pure Python (no Django, no torch) so the GPU check script can use it on a host without either.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass, field, replace

from physics.arch import ModelArch
from physics.estimator import Build, GPUSpec, Quant, Workload, estimate
from physics.gguf import FORMAT_TYPES
from physics.presets import ModelConfig
from physics.vocab import Engine, KVCache, Precision, values


def arch_for(shapes: ModelConfig, layers: int) -> ModelArch:
    """Returns the estimator's architecture for the runner's model with ``layers`` blocks, counted exactly."""
    return replace(shapes.resized(layers).arch, name=f"{shapes.name} ({layers} of {shapes.n_layers} layers)")


def quant_for(precision: str) -> Quant:
    """Returns the estimator's format for a runner precision (int4: a bf16 scale and zero per group of 128)."""
    p = Precision(precision)
    return Quant(name=f"torch-{p}", bits_per_weight=p.bits, kind=p.quant_kind)


def device_spec(name: str, memory_gb: float, bandwidth_gb_s: float, is_cpu: bool) -> GPUSpec:
    """Returns a GPUSpec for a detected device that the catalog does not hold (or for the CPU)."""
    return GPUSpec(
        name=name,
        vendor="cpu" if is_cpu else "nvidia",
        segment="cpu" if is_cpu else "datacenter",
        memory_gb=memory_gb,
        bandwidth_gb_s=bandwidth_gb_s,
    )


def estimate_run(
    shapes: ModelConfig,
    layers: int,
    precision: str,
    batch: int,
    prompt_tokens: int,
    new_tokens: int,
    gpu: GPUSpec,
    calibration=None,
):
    """Returns the estimator's Estimate for one benchmark run on ``gpu`` with the gpufit-torch backend."""
    workload = Workload(
        context=prompt_tokens + new_tokens,
        prompt_tokens=prompt_tokens,
        batch=batch,
        kv_cache=KVCache.FP16,
        backend=Engine.GPUFIT_TORCH,
    )
    return estimate(arch_for(shapes, layers), quant_for(precision), Build(gpu=gpu), workload, calibration)


def ratio(measured: float | None, estimated: float | None) -> float | None:
    if not measured or not estimated:
        return None
    return measured / estimated


# Engines a worker can run (the rest of physics.vocab.Engine are estimate-only).
RUNNABLE_ENGINES: tuple[str, ...] = (Engine.GPUFIT_TORCH.value, Engine.LLAMA_CPP.value)
# GGUF formats the llama.cpp adapter can write with random weights (physics.gguf follows the quantizer's
# per-tensor choices for each mix). An operator's real file (gguf_path) may be in any format llama.cpp reads.
GGUF_FORMATS: tuple[str, ...] = tuple(FORMAT_TYPES)


@dataclass(frozen=True)
class BenchSpec:
    preset: str = "mixtral-8x7b"  # a Preset: key of physics.presets.PRESETS
    layers: int | None = None  # None: the preset's full depth; fewer are allowed and reported
    precision: str = "bf16"  # bf16 | fp16 | fp32 | int8 | int4 (int: weight-only, bf16 activations; fp32 on CPU)
    batch: int = 1
    prompt_tokens: int = 128
    new_tokens: int = 128
    repeats: int = 3
    device: str = "cpu"  # "cpu" or "cuda:N"
    compile: bool = False  # torch.compile the decode step (compile time reported apart)
    cuda_graph: bool = False  # capture the decode step in a CUDA graph (CUDA only; removes launch overhead)
    fused: bool = True  # int8/int4: use the device's fused weight-only kernels where they pass their self-test
    seed: int = 0
    group_size: int = 128  # int4 group width
    memory_limit_gb: float | None = None  # refuse (as "oom") a run whose weights + KV cache exceed this
    # --- which engine runs it (gpufit-torch reads the fields above; llama.cpp reads these too) ---------------
    engine: str = Engine.GPUFIT_TORCH.value  # one of RUNNABLE_ENGINES
    model_config: dict | None = None  # llama.cpp: a catalog model's config.json; None = the preset's config
    gguf_format: str = ""  # llama.cpp: one of GGUF_FORMATS for the generated random-weight file
    gguf_path: str = ""  # llama.cpp: an operator's real local GGUF instead of a generated file
    context_depth: int = 0  # llama.cpp: tokens already in the KV cache before pp and tg are timed (llama-bench -d)
    flash_attn: bool = True  # llama.cpp: flash attention on (llama-bench -fa 1)
    threads: int | None = None  # llama.cpp: CPU threads; None = the engine's default (physical cores)

    def validate(self) -> None:
        """Raises ValueError for a spec that cannot run."""
        if self.engine not in RUNNABLE_ENGINES:
            raise ValueError(f"engine must be one of {RUNNABLE_ENGINES}, got {self.engine!r}")
        if self.precision not in values(Precision):
            raise ValueError(f"precision must be one of {values(Precision)}, got {self.precision!r}")
        if min(self.batch, self.prompt_tokens, self.new_tokens, self.repeats) < 1:
            raise ValueError("batch, prompt_tokens, new_tokens and repeats must be at least 1")
        if self.cuda_graph and not self.device.startswith("cuda"):
            raise ValueError("cuda_graph needs a CUDA device")
        if self.context_depth < 0:
            raise ValueError(f"context_depth must be ≥ 0, got {self.context_depth}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1, got {self.threads}")
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise ValueError("model_config must be a config.json dict")
        if self.engine == Engine.LLAMA_CPP:
            self._validate_llama_cpp()
        elif self.model_config is not None or self.gguf_format or self.gguf_path:
            raise ValueError("model_config, gguf_format and gguf_path are for the llama.cpp engine")

    def _validate_llama_cpp(self) -> None:
        """Raises ValueError for what the llama.cpp adapter cannot run (one sequence, no torch options)."""
        if not (self.gguf_format or self.gguf_path):
            raise ValueError(f"llama.cpp needs gguf_format (one of {GGUF_FORMATS}) or gguf_path")
        if self.gguf_format and self.gguf_format not in GGUF_FORMATS:
            raise ValueError(f"gguf_format must be one of {GGUF_FORMATS}, got {self.gguf_format!r}")
        if self.batch != 1:
            raise ValueError("llama.cpp runs one sequence (batch 1), like llama-bench")
        if self.compile or self.cuda_graph:
            raise ValueError("compile and cuda_graph are gpufit-torch options")
        if not (self.device == "cpu" or self.device.startswith("cuda")):
            raise ValueError(f"device must be 'cpu' or 'cuda:N', got {self.device!r}")


@dataclass(frozen=True)
class BenchResult:
    spec: dict
    status: str  # "ok" | "oom" | "error"
    message: str = ""
    model_layers: int | None = None  # layers actually run
    full_layers: int | None = None  # the preset's depth, for the extrapolated figures
    prefill_tok_s: float | None = None  # batch x prompt tokens / median prefill time
    ttft_s: float | None = None  # median time from prompt in to first token out (prefill + sampling)
    decode_tok_s: float | None = None  # batch x new tokens / median decode time
    decode_tok_s_min: float | None = None
    decode_tok_s_max: float | None = None
    per_token_latency_ms: float | None = None  # median decode step time
    per_token_latency_p90_ms: float | None = None
    peak_memory_gb: float | None = None
    peak_memory_source: str = ""
    weight_bytes: int | None = None  # every weight tensor of the model as run (codes + scales when quantized)
    active_bytes_per_token: int | None = (
        None  # weights read per decode step (attention, router, norms, touched experts, lm_head, B embedding rows)
    )
    kv_bytes_per_token: int | None = None  # KV cache read per decode step (the static cache is read whole, masked)
    experts_touched_per_layer: float | None = None  # mean distinct experts per layer per decode step
    achieved_gb_s: float | None = None  # active_bytes_per_token / median step time
    expert_histogram: list[list[int]] = field(default_factory=list)  # [layer][expert] assignments in measured decode
    expert_share_max: float | None = None  # largest share one expert took in any layer
    routing_collapsed: bool | None = None  # expert_share_max > 0.6
    full_depth_weight_bytes: int | None = None
    full_depth_decode_tok_s: float | None = None  # extrapolated; equal to decode_tok_s when all layers ran
    full_depth_prefill_tok_s: float | None = None
    full_depth_ttft_s: float | None = None
    extrapolation: str = ""
    materialise_s: float | None = None
    warmup_s: float | None = None
    compile_s: float | None = None
    kernels: str = ""  # what ran the quantized matmuls (fused kernel, or dequantize + matmul and why)
    device_name: str = ""
    torch_version: str = ""
    cuda_version: str | None = None
    driver_version: str | None = None
    host: str = field(default_factory=platform.node)
    engine: str = Engine.GPUFIT_TORCH.value  # what ran it
    engine_version: str = ""  # gpufit-torch: torch's version; llama.cpp: llama-cpp-python's and ggml's build
    engine_flags: dict = field(default_factory=dict)  # settings that change the figures (flash attention, threads…)

    def to_dict(self) -> dict:
        """Returns the result as a JSON-ready dict."""
        return asdict(self)


def decode_path(spec: dict) -> str:
    """Returns how a spec's decode step runs, in words: "eager", "CUDA graph", "compiled + CUDA graph"…

    Quantized runs with the fused kernels turned off add "unfused".
    """
    parts = [name for key, name in (("compile", "compiled"), ("cuda_graph", "CUDA graph")) if spec.get(key)]
    path = " + ".join(parts) or "eager"
    if spec.get("precision") in (Precision.INT8, Precision.INT4) and spec.get("fused") is False:
        path += ", unfused"
    return path


def format_row(r: BenchResult) -> str:
    """Returns a one-line human summary of a result."""
    s = r.spec
    if s.get("engine", Engine.GPUFIT_TORCH) == Engine.LLAMA_CPP:
        fmt = s.get("gguf_format") or "local GGUF"
        head = (
            f"llama.cpp L{r.model_layers} {fmt} d{s.get('context_depth', 0)} p{s['prompt_tokens']} n{s['new_tokens']}"
        )
    else:
        head = f"{s['preset']} L{r.model_layers or s['layers']} {s['precision']} b{s['batch']} p{s['prompt_tokens']} n{s['new_tokens']}"
    if r.status != "ok":
        return f"{head}: {r.status.upper()} {r.message[:200]}"
    experts = "" if r.experts_touched_per_layer is None else f", experts/layer {r.experts_touched_per_layer:.2f}"
    return (
        f"{head}: prefill {r.prefill_tok_s:.1f} tok/s, TTFT {r.ttft_s * 1e3:.1f} ms, decode {r.decode_tok_s:.2f} tok/s "
        f"[{r.decode_tok_s_min:.2f}-{r.decode_tok_s_max:.2f}], {r.per_token_latency_ms:.1f} ms/token, "
        f"peak {r.peak_memory_gb:.2f} GB, {r.achieved_gb_s:.1f} GB/s on {r.active_bytes_per_token / 1e9:.2f} GB active"
        + experts
        + (f"; {r.kernels}" if r.kernels else "")
    )
