"""Turning a runner result into a BenchmarkResult row: measured figures beside the estimator's, for the same engine.

A run is compared only with an estimate made for the engine that ran it: a gpufit-torch run with the gpufit-torch
estimate of its torch precision, a llama.cpp run with the llama.cpp estimate of its GGUF format.
"""

from __future__ import annotations

import json
from functools import lru_cache

from django.db.models import Q

from inference.models import BenchmarkJob, BenchmarkResult, Device
from models.catalog import DATA_DIR
from models.models import LanguageModel, QuantFormat, QuantKind, QuantVRAM
from physics import gguf
from physics.estimator import Build, Estimate, GPUSpec, ModelArch, Quant, Workload, estimate
from physics.presets import PRESETS, ModelConfig
from physics.runs import arch_for, decode_path, device_spec, estimate_run, ratio
from physics.vocab import Engine, KVCache
from planner.calibration import calibration_factors
from planner.inputs import gpu_spec, quant_of


def shapes_for(preset: str) -> ModelConfig:
    """Returns the runner preset's model shapes."""
    return PRESETS[preset]


@lru_cache(maxsize=1)
def _shipped_configs() -> dict[str, str]:
    """Returns {catalog slug: config.json file name} for the models the catalog ships (models/data/models.json)."""
    entries = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))
    return {entry["slug"]: entry["config"] for entry in entries if entry.get("config")}


def catalog_config(model: LanguageModel | None) -> dict | None:
    """Returns the config.json the catalog ships for a model, or None (no model, or one added without a config)."""
    filename = _shipped_configs().get(model.slug) if model is not None else None
    if filename is None:
        return None
    return json.loads((DATA_DIR / "configs" / filename).read_text(encoding="utf-8"))


def run_shapes(preset: str, model_config: dict | None, name: str = "") -> ModelConfig:
    """Returns the shapes a run uses: a catalog model's config.json when the run names one, else the preset's."""
    if model_config:
        return ModelConfig(name or model_config.get("_name_or_path") or "catalog model", model_config)
    return shapes_for(preset)


def gguf_quant(fmt: str, arch: ModelArch, model: LanguageModel | None = None) -> Quant:
    """Returns the estimator's view of a GGUF format for a run of ``arch`` (at the run's depth).

    Where physics.gguf knows the architecture, the bytes of the file the llama.cpp adapter writes: every tensor
    at the type llama-quantize gives it in this format. Otherwise, with a catalog model that has a row for the
    format, the model page's figure: the published file size as bits per weight (so a run at fewer layers scales
    it), else the row's bits per weight; else the format's layout (QuantFormat). Raises ValueError for a format
    the catalog does not know.
    """
    if gguf.supported(arch) and fmt in gguf.FORMAT_TYPES:
        size = gguf.layout(arch, fmt).weight_bytes
        return Quant(name=fmt, bits_per_weight=size * 8 / arch.total_params, kind=QuantKind.GGUF, weight_bytes=size)
    row = (
        QuantVRAM.objects.select_related("quant").filter(model=model, quant__name=fmt).first()
        if model is not None
        else None
    )
    if row is not None:
        quant = quant_of(row)
        bpw = quant.weight_bytes * 8 / model.total_params if quant.weight_bytes else quant.bits_per_weight
        return Quant(name=fmt, bits_per_weight=bpw, kind=quant.kind)
    layout = QuantFormat.objects.filter(name=fmt).first()
    if layout is None:
        raise ValueError(f"the catalog has no format {fmt!r}")
    return Quant(name=fmt, bits_per_weight=layout.bits_per_weight, kind=layout.kind)


def estimate_for_run(run: dict, layers: int, gpu: GPUSpec, model: LanguageModel | None = None) -> Estimate:
    """Returns the estimator's figures for one run on ``gpu``, made for the run's own engine.

    ``run`` holds a BenchSpec's keys (engine, preset, model_config, precision, gguf_format, batch, prompt_tokens,
    new_tokens, context_depth). gpufit-torch: the runner's torch precision (physics.runs.estimate_run). llama.cpp:
    the GGUF format, an fp16 KV cache (llama.cpp's default) filled to depth + prompt + new tokens.
    """
    engine = run.get("engine") or Engine.GPUFIT_TORCH
    shapes = run_shapes(run.get("preset") or "", run.get("model_config"), model.name if model else "")
    prompt, new = run["prompt_tokens"], run["new_tokens"]
    if engine == Engine.GPUFIT_TORCH:
        return estimate_run(shapes, layers, run["precision"], run["batch"], prompt, new, gpu, calibration_factors())
    workload = Workload(
        context=(run.get("context_depth") or 0) + prompt + new,
        prompt_tokens=prompt,
        batch=run["batch"],
        kv_cache=KVCache.FP16,
        backend=engine,
    )
    arch = arch_for(shapes, layers)
    quant = gguf_quant(run["gguf_format"], arch, model)
    return estimate(arch, quant, Build(gpu=gpu), workload, calibration_factors())


def job_run(job: BenchmarkJob) -> dict:
    """Returns the run a job asks for, in a BenchSpec's keys (the worker adds the device and its own settings)."""
    llama = job.engine == Engine.LLAMA_CPP
    return {
        "engine": job.engine,
        "preset": job.preset,
        "model_config": catalog_config(job.model) if llama and job.model_id else None,
        "precision": job.precision,
        "gguf_format": job.gguf_format,
        "layers": job.layers,
        "batch": job.batch,
        "prompt_tokens": job.prompt_tokens,
        "new_tokens": job.new_tokens,
        "repeats": job.repeats,
    }


def estimate_job(job: BenchmarkJob, gpu: GPUSpec) -> Estimate:
    """Returns the estimate for a job before it runs (the form's preview), for the job's engine."""
    return estimate_for_run(job_run(job), job.layers, gpu, job.model if job.model_id else None)


# The share of a CPU host's RAM a llama.cpp run may plan for: the system and the worker keep the rest.
CPU_RAM_SHARE = 0.8


@lru_cache(maxsize=1)
def _llama_cpp_slugs() -> tuple[str, ...]:
    """Returns the catalog slugs whose shipped config.json the llama.cpp adapter can write."""
    slugs = []
    for slug, filename in _shipped_configs().items():
        config = json.loads((DATA_DIR / "configs" / filename).read_text(encoding="utf-8"))
        if config.get("model_type") in gguf.GGUF_ARCH:
            slugs.append(slug)
    return tuple(slugs)


def llama_cpp_models():
    """Returns the catalog models a llama.cpp job may run: those with a shipped config of a type it writes."""
    return LanguageModel.objects.filter(slug__in=_llama_cpp_slugs()).order_by("family", "total_params", "name")


def device_spec_for(device: Device) -> GPUSpec:
    """Returns the estimator's view of a registered device: its catalog GPU, or what the worker measured.

    A CPU plans for CPU_RAM_SHARE of its RAM, as a worker's CPU run does.
    """
    if device.gpu is not None:
        return gpu_spec(device.gpu)
    is_cpu = device.index == "cpu"
    memory = device.memory_gb * (CPU_RAM_SHARE if is_cpu else 1.0)
    return device_spec(device.name, memory, device.bandwidth_gb_s or 1.0, is_cpu=is_cpu)


def max_layers_that_fit(job: BenchmarkJob, gpu: GPUSpec) -> int:
    """Returns the most layers of the job's model that fit on ``gpu`` by the job's own estimate (0: not one)."""
    run, model = job_run(job), job.model if job.model_id else None
    depth = model.layers if model else shapes_for(job.preset).n_layers
    low, high = 0, depth  # fits(low) holds; find the largest such count by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if estimate_for_run(run, middle, gpu, model).fits:
            low = middle
        else:
            high = middle - 1
    return low


def device_row(host: str, index: str) -> Device | None:
    return Device.objects.select_related("gpu").filter(host__hostname=host, index=index).first()


def _gpu_for(device: Device | None, name: str, memory_gb: float | None, is_cpu: bool):
    if device is not None and device.gpu is not None:
        return gpu_spec(device.gpu)
    memory = device.memory_gb if device else (memory_gb or 1.0)
    bandwidth = (device.bandwidth_gb_s if device else None) or 1.0
    return device_spec(name, memory, bandwidth, is_cpu=is_cpu)


def run_decode_path(spec: dict, engine_flags: dict | None = None) -> str:
    """Returns how a run's decode step ran, in words: torch's path, or llama.cpp's backend and attention."""
    if (spec.get("engine") or Engine.GPUFIT_TORCH) == Engine.GPUFIT_TORCH:
        return decode_path(spec)
    flags = engine_flags or {}
    backend = flags.get("backend") or ("CUDA" if str(spec.get("device", "")).startswith("cuda") else "CPU")
    attention = "flash attention" if flags.get("flash_attn", spec.get("flash_attn")) else "no flash attention"
    return f"{backend}, {attention}"[:40]


def _engine_version(result, engine: str) -> str:
    """Returns the version that ran a result; runs recorded before engines existed carry torch's version only."""
    version = getattr(result, "engine_version", "") or (result.torch_version if engine == Engine.GPUFIT_TORCH else "")
    return (version or "")[:120]


def compare_with_estimate(result, host: str | None = None, model: LanguageModel | None = None) -> dict:
    """Returns BenchmarkResult field values: the measurement, the same engine's estimate on the same device, their
    ratios. ``model`` is the catalog model a llama.cpp run was made for (its VRAM row gives the format's size)."""
    spec = result.spec
    engine = getattr(result, "engine", "") or spec.get("engine") or Engine.GPUFIT_TORCH
    spec = {**spec, "engine": engine}
    layers = result.model_layers or spec.get("layers") or 1
    device = device_row(host or result.host, spec["device"])
    name = result.device_name or spec["device"]
    gpu = _gpu_for(device, name, result.peak_memory_gb, spec["device"] == "cpu")
    est = estimate_for_run(spec, layers, gpu, model)
    flags = getattr(result, "engine_flags", None) or {}
    return {
        "status": result.status,
        "device_name": name,
        "gpu": device.gpu if device else None,
        # The weights as run: the GGUF format for llama.cpp, the torch precision for gpufit-torch.
        "precision": spec.get("gguf_format", "") if engine == Engine.LLAMA_CPP else spec["precision"],
        "engine": engine,
        "engine_version": _engine_version(result, engine),
        "engine_flags": flags,
        "decode_path": run_decode_path(spec, flags),
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
    """Returns measured / estimated for a stored result under today's calibration (for before/after figures), with
    the estimate made for the engine that ran it."""
    spec = {**row.raw.get("spec", {}), "engine": row.engine}
    host = (row.job.worker or "").split("@", 1)[-1]
    device = device_row(host, spec.get("device", "cpu"))
    gpu = _gpu_for(device, row.device_name, row.peak_memory_gb, spec.get("device", "cpu") == "cpu")
    model = row.job.model if row.job.model_id else None
    return ratio(row.decode_tok_s, estimate_for_run(spec, row.layers, gpu, model).decode_tok_s_aggregate)


def _preset_archs() -> dict[str, ModelArch]:
    """Returns the estimator's architecture of every runner preset at its full depth."""
    return {name: arch_for(config, config.n_layers) for name, config in PRESETS.items()}


def measured_results(model: LanguageModel, engine: str):
    """Returns the ok benchmark results on catalog GPUs that measured ``model`` with ``engine``: the only ones a page
    may mark "measured" beside that engine's estimates.

    A run measured the model when it names the catalog model, or ran a runner preset of the same architecture.
    A gpufit-torch run never marks a llama.cpp estimate, nor the reverse.
    """
    presets = [
        name
        for name, arch in _preset_archs().items()
        if arch.total_params == model.total_params and arch.layers == model.layers
    ]
    return (
        BenchmarkResult.objects.filter(status="ok", gpu__isnull=False, engine=engine)
        .filter(Q(job__model=model) | Q(job__model__isnull=True, job__preset__in=presets))
        .select_related("gpu", "job", "job__model")
        .defer("raw", "estimate_basis", "gpu__notes")  # the runner's JSON is for the job page, not the lists
        .order_by("-decode_tok_s")
    )
