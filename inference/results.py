"""Turning a runner result into a BenchmarkResult row: measured figures beside the estimator's."""

from __future__ import annotations

from inference.models import BenchmarkResult, Device
from models.models import LanguageModel
from physics.estimator import ModelArch
from physics.presets import PRESETS, ModelConfig
from physics.runs import arch_for, decode_path, device_spec, estimate_run, ratio
from planner.calibration import calibration_factors
from planner.inputs import gpu_spec


def shapes_for(preset: str) -> ModelConfig:
    """Returns the runner preset's model shapes."""
    return PRESETS[preset]


def device_row(host: str, index: str) -> Device | None:
    return Device.objects.select_related("gpu").filter(host__hostname=host, index=index).first()


def _gpu_for(device: Device | None, name: str, memory_gb: float | None, is_cpu: bool):
    if device is not None and device.gpu is not None:
        return gpu_spec(device.gpu)
    memory = device.memory_gb if device else (memory_gb or 1.0)
    bandwidth = (device.bandwidth_gb_s if device else None) or 1.0
    return device_spec(name, memory, bandwidth, is_cpu=is_cpu)


def _estimate(spec: dict, layers: int, gpu):
    return estimate_run(
        shapes_for(spec["preset"]),
        layers,
        spec["precision"],
        spec["batch"],
        spec["prompt_tokens"],
        spec["new_tokens"],
        gpu,
        calibration_factors(),
    )


def compare_with_estimate(result, host: str | None = None) -> dict:
    """Returns BenchmarkResult field values: the measurement, the estimate on the same device, their ratios."""
    spec = result.spec
    layers = result.model_layers or spec.get("layers") or 1
    device = device_row(host or result.host, spec["device"])
    name = result.device_name or spec["device"]
    est = _estimate(spec, layers, _gpu_for(device, name, result.peak_memory_gb, spec["device"] == "cpu"))
    return {
        "status": result.status,
        "device_name": name,
        "gpu": device.gpu if device else None,
        "precision": spec["precision"],
        "decode_path": decode_path(spec),
        "layers": layers,
        "total_layers": result.full_layers or layers,
        "batch": spec["batch"],
        "prompt_tokens": spec["prompt_tokens"],
        "new_tokens": spec["new_tokens"],
        "prefill_tok_s": result.prefill_tok_s,
        "ttft_s": result.ttft_s,
        "decode_tok_s": result.decode_tok_s,
        "decode_tok_s_full_depth": result.full_depth_decode_tok_s,
        "peak_memory_gb": result.peak_memory_gb,
        "achieved_bandwidth_gb_s": result.achieved_gb_s,
        # The runner counts every sequence of the batch; so does the estimate's aggregate rate.
        "estimated_decode_tok_s": est.decode_tok_s_aggregate,
        "estimated_prefill_tok_s": est.prefill_tok_s,
        "estimated_memory_gb": est.total_gb,
        "decode_ratio": ratio(result.decode_tok_s, est.decode_tok_s_aggregate) if result.status == "ok" else None,
        # The estimator's prefill is one prompt's; a batched prefill is compared only at batch 1.
        "prefill_ratio": ratio(result.prefill_tok_s, est.prefill_tok_s)
        if result.status == "ok" and spec["batch"] == 1
        else None,
        "raw": result.to_dict(),
        "estimate_basis": est.to_dict(),
    }


def compare_again(row) -> float | None:
    """Returns measured / estimated for a stored result under today's calibration (for before/after figures)."""
    spec = row.raw.get("spec", {})
    host = (row.job.worker or "").split("@", 1)[-1]
    device = device_row(host, spec.get("device", "cpu"))
    gpu = _gpu_for(device, row.device_name, row.peak_memory_gb, spec.get("device", "cpu") == "cpu")
    return ratio(row.decode_tok_s, _estimate(spec, row.layers, gpu).decode_tok_s_aggregate)


def _preset_archs() -> dict[str, ModelArch]:
    """Returns the estimator's architecture of every runner preset at its full depth."""
    return {name: arch_for(config, config.n_layers) for name, config in PRESETS.items()}


def measured_results(model: LanguageModel):
    """Returns the ok benchmark results on catalog GPUs for runner presets with this model's architecture."""
    presets = [
        name
        for name, arch in _preset_archs().items()
        if arch.total_params == model.total_params and arch.layers == model.layers
    ]
    return (
        BenchmarkResult.objects.filter(status="ok", gpu__isnull=False, job__preset__in=presets)
        .select_related("gpu", "job")
        .defer("raw", "estimate_basis", "gpu__notes")  # the runner's JSON is for the job page, not the lists
        .order_by("-decode_tok_s")
    )
