"""Measured vs estimated: the estimator's figures for exactly what a benchmark ran, on the device it ran on.

Pure Python (no Django, no torch) so the GPU check script can use it on a host without either.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.estimator import Build, GPUSpec, ModelArch, Quant, Workload, estimate

# Weight-only formats of inference/quantize.py: int8 keeps one bf16 scale per output channel
# (negligible per weight); int4 keeps a bf16 scale and zero per group of 128 (32 bits / 128 weights).
PRECISION_BITS = {"fp32": 32.0, "bf16": 16.0, "fp16": 16.0, "int8": 8.0, "int4": 4.25}
PRECISION_KIND = {"fp32": "float", "bf16": "float", "fp16": "float", "int8": "torch", "int4": "torch"}


@dataclass(frozen=True)
class Shapes:
    """The runner's model shapes, as plain numbers (mirrors inference.mixtral.ModelConfig)."""

    name: str
    dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    n_experts: int
    top_k: int
    vocab_size: int
    max_seq_len: int


def arch_for(shapes: Shapes, layers: int) -> ModelArch:
    """Returns the estimator's architecture for the runner's Mixtral with ``layers`` blocks, counted exactly."""
    d, hd = shapes.dim, shapes.head_dim
    attention = d * shapes.n_heads * hd * 2 + d * shapes.n_kv_heads * hd * 2  # wq, wo, wk, wv
    expert = 3 * d * shapes.ffn_dim  # w1, w2, w3 of one SwiGLU expert
    per_layer_dense = attention + d * shapes.n_experts + 2 * d  # + router + two RMSNorms
    embedding = shapes.vocab_size * d
    total = embedding + layers * (per_layer_dense + shapes.n_experts * expert) + d + shapes.vocab_size * d
    active = total - layers * (shapes.n_experts - shapes.top_k) * expert
    return ModelArch(
        name=f"{shapes.name} ({layers} of {shapes.n_layers} layers)",
        total_params=total,
        active_params=active,
        layers=layers,
        hidden=d,
        heads=shapes.n_heads,
        kv_heads=shapes.n_kv_heads,
        head_dim=hd,
        vocab=shapes.vocab_size,
        context_length=shapes.max_seq_len,
        ffn=shapes.ffn_dim,
        experts=shapes.n_experts,
        experts_per_token=shapes.top_k,
        expert_params=expert,
        moe_layers=layers,
        embedding_params=embedding,
    )


def quant_for(precision: str) -> Quant:
    return Quant(name=f"torch-{precision}", bits_per_weight=PRECISION_BITS[precision], kind=PRECISION_KIND[precision])


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
    shapes: Shapes,
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
        kv_cache="fp16",
        backend="gpufit-torch",
    )
    return estimate(arch_for(shapes, layers), quant_for(precision), Build(gpu=gpu), workload, calibration)


def ratio(measured: float | None, estimated: float | None) -> float | None:
    if not measured or not estimated:
        return None
    return measured / estimated
