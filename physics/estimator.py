"""The physical model of LLM inference that every gpufit figure comes from.

Pure Python + numpy/pandas, no Django: pages, the JSON API, the ``estimate`` command and the benchmark
validator all call these functions, and the benchmark workers (Python 3.12, no Django) import this file too.

One vectorised core (``_core``) computes memory, fit, decode, prefill and cost for N rows at once;
``estimate()`` calls it with one row and ``rank_gpus``/``rank_models``/``rank_builds`` with thousands, so a
ranking and a single estimate can never disagree. The formulas, defaults and their sources are in
docs/estimator.md.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from physics import gguf, speed
from physics.arch import ModelArch, kv_bytes_per_token, kv_bytes_per_token_layer, kv_element_bytes, token_layers
from physics.builds import build_problem, check_command, engine_for

GB = 1e9  # decimal gigabyte: GPUs are sold in these, and weight files are measured in them
GIB = 2**30


# The reference page's VRAM rule adds a flat 0.5 GB; we keep it as the fixed part of the runtime overhead
# (CUDA/Metal context and the framework's own buffers) so that the table stays reproducible.
OVERHEAD_BASE_GB = 0.5
# Compute buffer: one micro-batch of activations and logits in fp32. llama.cpp's default micro-batch is 512.
OVERHEAD_UBATCH = 512

# What the driver keeps on a discrete card. A display-attached consumer card also holds the desktop's frame
# buffers (a few hundred MB on a 4K desktop); datacenter cards only the CUDA/ROCm context.
DISCRETE_RESERVE_GB = {"consumer": 0.8, "laptop": 0.8, "workstation": 0.6, "datacenter": 0.4}
DISCRETE_RESERVE_DEFAULT_GB = 0.6

# Apple rule for the share of unified memory the GPU may wire by default (Metal's
# recommendedMaxWorkingSetSize): about 2/3 of RAM up to 36 GB, about 3/4 above. Measured on a 128 GiB M5 Max:
# 107.52 GiB (84 %), so the 3/4 rule is conservative for the largest machines (antirez/ds4 PR #893);
# GPUStack reads 75 % on its hosts (gpustack/gpustack issue #1375). Raising iogpu.wired_limit_mb moves it.
APPLE_SHARE_SMALL = 2 / 3
APPLE_SHARE_LARGE = 3 / 4
APPLE_SMALL_LIMIT_GB = 36.0
APPLE_OS_KEEP_GB = 4.0  # what we tell people to leave to macOS when they raise the limit
OTHER_UNIFIED_SHARE = 0.75  # Strix Halo / Jetson / DGX Spark without a stated share: same as the Apple large rule

# Interconnect: bandwidth (GB/s, one direction) and a per-collective latency. The latency is what gpt-fast's
# tensor-parallel scaling on 8x A100 NVLink implies: (measured step - bytes/bandwidth) / (2 x layers) lands at
# 20-35 us for Llama-2-7B/70B and Mixtral (see docs/estimator.md); PCIe doubles it (host-staged transfers).
PCIE_GB_S = {3: 16.0, 4: 32.0, 5: 64.0}
LATENCY_S = {"nvlink": 20e-6, "pcie": 40e-6}

# Compute fallback when a GPU has no fp16 or fp32 figure, by segment (TFLOPS); stated in the basis when used.
FALLBACK_TFLOPS = {
    "datacenter": 100.0,
    "workstation": 40.0,
    "consumer": 40.0,
    "laptop": 20.0,
    "apple-silicon": 15.0,
    "integrated-soc": 10.0,
    "embedded": 5.0,
}

# Cost: hardware amortised over 3 years at 8 hours a day, plus power at TDP and $0.15/kWh.
AMORTISATION_YEARS = 3.0
HOURS_PER_DAY = 8.0
USD_PER_KWH = 0.15

UNCALIBRATED_SPREAD = 0.20  # +-20 % when no fitted spread is known
RAM_EFFICIENCY = 0.6  # CPU offload: share of system-RAM bandwidth llama.cpp's CPU path reaches at decode


@dataclass(frozen=True)
class Quant:
    """A weight format: its effective bits per weight, and the real file size when known."""

    name: str
    bits_per_weight: float
    kind: str = "gguf"  # gguf | awq | gptq | float | torch | mxfp4 | fp8
    weight_bytes: int | None = None  # wins over params*bpw/8


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator as sold (decimal GB, GB/s, dense tensor TFLOPS)."""

    name: str
    vendor: str  # nvidia | amd | intel | apple | other
    segment: str  # consumer | laptop | workstation | datacenter | apple-silicon | integrated-soc | embedded
    memory_gb: float
    bandwidth_gb_s: float
    fp16_tflops: float | None = None
    fp32_tflops: float | None = None
    int8_tops: float | None = None
    fp8_tflops: float | None = None
    tdp_w: float | None = None
    price_usd: float | None = None
    unified_memory: bool = False
    gpu_memory_share: float | None = None
    nvlink_gb_s: float | None = None
    pcie_gen: int | None = None
    memory_type: str = ""  # "HBM3", "GDDR6X", "LPDDR5X"...; empty = guess the hardware class from the segment


@dataclass(frozen=True)
class Build:
    """A machine: one or more identical GPUs, how the model is split, and optional CPU offload."""

    gpu: GPUSpec
    count: int = 1
    split: str = "layer"  # "layer" (llama.cpp) | "tensor" (vLLM/TRT)
    interconnect_gb_s: float | None = None
    offload_ram_gb: float = 0.0
    ram_bandwidth_gb_s: float = 0.0
    gpu_memory_share: float | None = None


@dataclass(frozen=True)
class Workload:
    """What the user asks of the machine."""

    context: int = 4096  # tokens of KV cache per sequence
    prompt_tokens: int = 512
    batch: int = 1
    kv_cache: str = "fp16"  # fp16 | q8 | q4
    backend: str = "llama.cpp"


# The fitted costs of a calibration row (physics/fit.py fits the decode ones under these names).
DECODE_COST_FIELDS = (
    "step_s",
    "layer_s",
    "moe_layer_s",
    "hop_s",
    "allreduce_s",
    "allreduce_pcie_s",
    "decode_vector_inv_efficiency",
)
PREFILL_COST_FIELDS = (
    "prefill_s",
    "prefill_chunk_inv_efficiency",
    "prefill_attention_inv_efficiency",
)
COST_FIELDS = DECODE_COST_FIELDS + PREFILL_COST_FIELDS


@dataclass(frozen=True)
class CalibrationFactor:
    """Achieved share of peak for one (backend, hardware class, precision class); '*' matches anything."""

    backend: str
    hardware_class: str
    precision_class: str
    decode_efficiency: float
    prefill_efficiency: float
    source: str
    runs: int = 0
    spread: float = UNCALIBRATED_SPREAD  # measured/estimated - 1 that the low/high range allows, one GPU
    batch_class: str = "*"  # "1" (one sequence), "many" (a batch) or "*"
    # Fitted costs that do not shrink with bandwidth (physics/speed.py fixed_decode_s; 0 when not fitted), the
    # prefill's per-prompt costs, and the range for builds of several GPUs.
    step_s: float = 0.0
    layer_s: float = 0.0
    moe_layer_s: float = 0.0
    hop_s: float = 0.0
    allreduce_s: float = 0.0
    allreduce_pcie_s: float = 0.0
    prefill_s: float = 0.0
    prefill_chunk_inv_efficiency: float = 0.0  # weights re-read per prompt micro-batch, x 1 / efficiency
    prefill_attention_inv_efficiency: float = 0.0  # attention FLOPs on the KV width, x this factor
    decode_vector_inv_efficiency: float = 0.0  # a decode step's per-weight work at the FP32 rate, x this factor
    spread_several: float | None = None  # None: as `spread`


@dataclass(frozen=True)
class Estimate:
    """Everything gpufit says about one (model, quant, build, workload)."""

    fits: bool
    fits_with_offload: bool
    weights_gb: float
    kv_cache_gb: float
    overhead_gb: float
    total_gb: float
    usable_gb: float
    headroom_gb: float
    offloaded_gb: float
    max_context: int
    decode_tok_s: float
    decode_tok_s_aggregate: float
    decode_tok_s_low: float
    decode_tok_s_high: float
    prefill_tok_s: float
    ttft_s: float
    prefill_tok_s_low: float  # the prompt's range (PREFILL_RANGE_WIDTHS), as a rate ...
    prefill_tok_s_high: float
    ttft_s_low: float  # ... and as the time to the first token
    ttft_s_high: float
    decode_bound: str
    prefill_bound: str
    bytes_per_token: float
    usd_per_tok_s: float | None
    usd_per_million_tokens: float | None
    tokens_per_joule: float | None
    notes: tuple[str, ...] = ()
    basis: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """Return JSON-ready data: fit, memory breakdown, speeds, bounds, cost, notes and basis."""
        return {
            "fits": self.fits,
            "fits_with_offload": self.fits_with_offload,
            "memory": {
                "weights_gb": self.weights_gb,
                "kv_cache_gb": self.kv_cache_gb,
                "overhead_gb": self.overhead_gb,
                "total_gb": self.total_gb,
                "usable_gb": self.usable_gb,
                "headroom_gb": self.headroom_gb,
                "offloaded_gb": self.offloaded_gb,
            },
            "max_context": self.max_context,
            "decode_tok_s": self.decode_tok_s,
            "decode_tok_s_aggregate": self.decode_tok_s_aggregate,
            "decode_tok_s_low": self.decode_tok_s_low,
            "decode_tok_s_high": self.decode_tok_s_high,
            "prefill_tok_s": self.prefill_tok_s,
            "ttft_s": self.ttft_s,
            "prefill_tok_s_low": self.prefill_tok_s_low,
            "prefill_tok_s_high": self.prefill_tok_s_high,
            "ttft_s_low": self.ttft_s_low,
            "ttft_s_high": self.ttft_s_high,
            "decode_bound": self.decode_bound,
            "prefill_bound": self.prefill_bound,
            "bytes_per_token": self.bytes_per_token,
            "usd_per_tok_s": self.usd_per_tok_s,
            "usd_per_million_tokens": self.usd_per_million_tokens,
            "tokens_per_joule": self.tokens_per_joule,
            "notes": list(self.notes),
            "basis": _json_ready(self.basis),
        }


# The reference page's four formats, with Q8_0 at its true 8.5 bpw (34 bytes per 32 weights).
REFERENCE_QUANTS: tuple[Quant, ...] = (
    Quant("Q4_K_M", 4.5),
    Quant("Q6_K", 6.5),
    Quant("Q8_0", 8.5),
    Quant("FP16", 16.0, kind="float"),
)


# --------------------------------------------------------------------------------------------------------
# Memory


def table_vram_gb(total_params: int, bits_per_weight: float) -> float:
    """Return the reference page's VRAM figure: params x bpw / 8 + 0.5 GB, rounded to 0.1 GB."""
    return round(total_params * bits_per_weight / 8 / GB + OVERHEAD_BASE_GB, 1)


def kv_layout(model: ModelArch, workload: Workload) -> tuple[ModelArch, int]:
    """Return the model as the engine caches it, and the cells a sliding-window cache holds past its window.

    On llama.cpp (llama-kv-cache-iswa.cpp, with swa_full off as llama-server and llama-cli run it) a sliding
    layer's cache is min(context, window + n_ubatch), so that a whole micro-batch fits beside the window; and a
    model whose every layer is windowed (Mistral-7B-v0.1, Phi-3) is cached in full, because llama.cpp's llama and
    phi3 architectures do not use the window. Other engines are taken to keep the window alone.
    """
    if workload.backend != "llama.cpp" or not (model.sliding_window and model.sliding_layers):
        return model, 0
    if model.sliding_layers >= model.layers:
        return replace(model, sliding_window=0, sliding_layers=0), 0
    return model, OVERHEAD_UBATCH


def _max_context(t: _ModelTerms, free_bytes: np.ndarray) -> np.ndarray:
    """Return the largest context whose KV cache fits in free_bytes (0 where nothing is free).

    Every layer's cache grows with the context until a sliding window is full; past it only the global layers grow.
    """
    free = np.maximum(free_bytes, 0.0)
    at_window = t.window * t.full_rate
    beyond = t.window + (free - at_window) / np.maximum(t.global_rate, 1e-30)
    ctx = np.where((t.window > 0) & (free > at_window), beyond, free / t.full_rate)
    return np.minimum(np.floor(ctx), t.context_length).astype(np.int64)


def _embedding_params(model: ModelArch) -> int:
    return model.embedding_params or model.vocab * model.hidden


def distinct_experts(model: ModelArch, tokens: int | np.ndarray) -> np.ndarray:
    """Return the expected distinct experts one MoE layer touches for `tokens` tokens: E(1-(1-k/E)^T)."""
    return _experts_visited(model.experts, model.experts_per_token, tokens)


def _experts_visited(experts, top_k, tokens) -> np.ndarray:
    """Return distinct_experts for arrays of models (0 for a dense model, experts == 0)."""
    e = np.maximum(np.asarray(experts, dtype=float), 1.0)
    visited = e * (1 - (1 - np.asarray(top_k, dtype=float) / e) ** np.asarray(tokens, dtype=float))
    return np.where(np.asarray(experts) > 0, visited, 0.0)


def _params_read(model: ModelArch, tokens: int | np.ndarray) -> np.ndarray:
    """Return weights read for one step over `tokens` tokens: dense part + distinct experts (no input table)."""
    routed = model.experts * model.expert_params * model.moe_layers
    dense = model.total_params - routed
    if not model.tied_embeddings:
        # The input embedding is a lookup of one row per token, not a read of the table; a tied table is
        # read whole as the lm_head.
        dense -= _embedding_params(model)
    return dense + distinct_experts(model, tokens) * model.expert_params * model.moe_layers


def _bytes_per_param(model: ModelArch, quant: Quant) -> float:
    return weights_bytes(model, quant) / model.total_params


@lru_cache(maxsize=16384)
def gguf_mix_bytes(model: ModelArch, fmt: str) -> int | None:
    """Return the tensor bytes of the model's GGUF in a llama.cpp format, per tensor as llama-quantize types it.

    K-quant mixes keep some tensors at higher precision (Q4_K_M: the output head and part of attention V and FFN
    down at Q6_K), so a real file averages 4.8-5.3 bits per weight, not the 4.5 of the Q4_K block; physics.gguf
    lists the tensors and their types. An architecture rebuilt from a catalog row has no model_type: it is laid
    out as a generic llama, and the few parameters that layout leaves out (extra norms, biases) are counted as
    float32, as they are stored. None when the format or the architecture has no layout, or when the layout
    misses more than 0.5 % of the parameter count.
    """
    if fmt not in gguf.FORMAT_TYPES or not gguf.supported(model):
        return None
    lay = gguf.layout(model, fmt)
    missing = model.total_params - sum(t.numel for t in lay.tensors)
    if missing < 0 or missing > 0.005 * model.total_params:
        return None
    return lay.weight_bytes + 4 * missing


def _weight_source(model: ModelArch, quant: Quant) -> str:
    """Return where weights_bytes took its figure from, in words (the estimate's basis shows it)."""
    if quant.weight_bytes:
        return "file size"
    if quant.kind == "gguf" and gguf_mix_bytes(model, quant.name):
        return "llama.cpp per-tensor types (physics/gguf.py)"
    return "params x bpw / 8"


def weights_bytes(model: ModelArch, quant: Quant) -> float:
    """Return the bytes of all weights in this format.

    The real file size when the quant row has one; else, for a GGUF format of an architecture llama.cpp runs, the
    bytes of the file llama-quantize would write (gguf_mix_bytes); else params x bits per weight / 8.
    """
    if quant.weight_bytes:
        return float(quant.weight_bytes)
    mix = gguf_mix_bytes(model, quant.name) if quant.kind == "gguf" else None
    return float(mix) if mix else model.total_params * quant.bits_per_weight / 8


@lru_cache(maxsize=65536)
def _quant_figures(model: ModelArch, quant: Quant) -> tuple[float, float, float, float]:
    """Returns (bytes per parameter, weight_read_split's two parts, weights_bytes) of one format of one model,
    kept: a ranking asks for them for every (model, format) on every request."""
    return (_bytes_per_param(model, quant), *weight_read_split(model, quant), weights_bytes(model, quant))


def weight_read_split(model: ModelArch, quant: Quant) -> tuple[float, float]:
    """Return (weight bytes every step reads, bytes of one routed expert across all MoE layers).

    A step over T tokens reads the first plus distinct_experts(T) times the second. For a GGUF mix the two come
    from the file's own tensors (the head and attention are often in higher precision than the experts);
    otherwise from the parameter counts at the format's average bytes per parameter.
    """
    mix = _gguf_read_split(model, quant.name) if quant.kind == "gguf" and not quant.weight_bytes else None
    if mix:
        return mix
    bpp = _bytes_per_param(model, quant)
    routed = model.expert_params * model.moe_layers
    return float(_params_read(model, 0)) * bpp, routed * bpp


@lru_cache(maxsize=16384)
def _gguf_read_split(model: ModelArch, fmt: str) -> tuple[float, float] | None:
    if not gguf_mix_bytes(model, fmt):
        return None
    lay = gguf.layout(model, fmt)
    per_expert = sum(size / t.experts for t, size in zip(lay.tensors, lay.sizes, strict=True) if t.experts)
    missing = gguf_mix_bytes(model, fmt) - lay.weight_bytes  # float32 norms and biases a generic layout leaves out
    return lay.step_bytes(experts_touched=0) + missing, per_expert


def decode_weight_bytes(model: ModelArch, quant: Quant, batch: int = 1) -> float:
    """Return weight bytes one decode step reads: attention, router, norms, lm_head and distinct experts."""
    fixed, expert = weight_read_split(model, quant)
    return fixed + float(distinct_experts(model, batch)) * expert


def overhead_gb(model: ModelArch, workload: Workload, count: int = 1) -> float:
    """Return runtime overhead in GB: 0.5 GB of context per GPU plus one fp32 micro-batch of activations."""
    return _overhead_gb(model.vocab, model.hidden, workload, count)


def _overhead_gb(vocab, hidden, workload: Workload, count=1):
    """Return overhead_gb for arrays of models."""
    ubatch = min(max(workload.prompt_tokens, 1), OVERHEAD_UBATCH) * max(workload.batch, 1)
    buffers = ubatch * (vocab + 4 * hidden) * 4
    return OVERHEAD_BASE_GB * count + buffers / GB


def apple_default_share(memory_gb: float) -> float:
    """Return the share of unified memory macOS lets the GPU wire by default (2/3 up to 36 GB, else 3/4)."""
    return APPLE_SHARE_SMALL if memory_gb <= APPLE_SMALL_LIMIT_GB else APPLE_SHARE_LARGE


def usable_memory_gb(gpu: GPUSpec, share_override: float | None = None) -> float:
    """Return GB the model may use: VRAM less the driver/display reserve, or the GPU's share of unified RAM."""
    if gpu.unified_memory:
        share = share_override or gpu.gpu_memory_share
        if share is None:
            share = apple_default_share(gpu.memory_gb) if gpu.vendor == "apple" else OTHER_UNIFIED_SHARE
        return gpu.memory_gb * share
    return max(gpu.memory_gb - DISCRETE_RESERVE_GB.get(gpu.segment, DISCRETE_RESERVE_DEFAULT_GB), 0.0)


# --------------------------------------------------------------------------------------------------------
# Classes and calibration


def hardware_class(gpu: GPUSpec) -> str:
    """Return the calibration hardware class: nvidia-hbm, nvidia-gddr, nvidia-soc, amd-*, apple, intel, cpu."""
    return str(
        _hardware_class_vec(
            np.array([gpu.vendor]),
            np.array([gpu.segment]),
            np.array([gpu.memory_type]),
            np.array([gpu.bandwidth_gb_s], dtype=float),
            np.array([gpu.unified_memory]),
        )[0]
    )


def hardware_classes(gpus: pd.DataFrame) -> np.ndarray:
    """Return the calibration hardware class of every GPU row of a catalog frame.

    A frame that carries them as a ``hardware_class`` column (worked out once per catalog) is not reclassified.
    """
    unified = _flag_col(gpus, "unified_memory")
    return _hardware_class_vec(
        _col(gpus, "vendor", "other"),
        _col(gpus, "segment", ""),
        _col(gpus, "memory_type", ""),
        _col(gpus, "bandwidth_gb_s", np.nan),
        unified,
    )


def _per_value(values, func) -> np.ndarray:
    """Return func(v) for every value in an object array, calling func once per distinct value (a catalog column
    repeats a few dozen values over thousands of rows); missing values (None, NaN, NA) get func(None)."""
    codes, uniques = pd.factorize(np.asarray(values, dtype=object).ravel(), use_na_sentinel=True)
    mapped = np.empty(len(uniques) + 1, dtype=object)
    mapped[:-1] = [func(v) for v in uniques]
    mapped[-1] = func(None)
    return mapped[codes]


def _text_array(values, missing: str, case) -> np.ndarray:
    """Return the values as case-folded strings in an object array, ``missing`` for None/NaN/NA."""
    return _per_value(values, lambda v: case(v) if isinstance(v, str) else missing)


_HW_CLASSES = np.array(
    ["apple", "cpu", "nvidia-soc", "nvidia-hbm", "nvidia-gddr", "amd-soc", "amd-hbm", "amd-gddr", "intel", "other"],
    dtype=str,
)
_VENDOR_CODES = {"apple": 0, "cpu": 1, "nvidia": 2, "amd": 3, "intel": 4}


def _hardware_class_vec(vendor, segment, memory_type, bandwidth, unified) -> np.ndarray:
    # Text is turned into codes and flags once per distinct value; the rules then work on numbers.
    vendor = _per_value(vendor, lambda v: _VENDOR_CODES.get(v.lower(), 5) if isinstance(v, str) else 5).astype(int)
    segment = _text_array(segment, "", str.lower)
    datacenter = _per_value(segment, lambda v: v == "datacenter").astype(bool)
    soc_segment = _per_value(segment, lambda v: v in ("integrated-soc", "embedded")).astype(bool)
    mtype = _text_array(memory_type, "", str.upper)
    has_type = _per_value(mtype, lambda m: m != "").astype(bool)
    hbm_typed = _per_value(mtype, lambda m: m is not None and "HBM" in m).astype(bool)
    # Without a memory type: datacenter parts above 1.2 TB/s are HBM (A100, H100, MI2xx/MI300); GDDR
    # datacenter cards (L4, L40S, A40) sit below that.
    hbm = np.where(has_type, hbm_typed, datacenter & (np.asarray(bandwidth, dtype=float) >= 1200))
    soc = np.asarray(unified, dtype=bool) | soc_segment
    nvidia, amd = vendor == 2, vendor == 3
    code = np.select(
        [vendor == 0, vendor == 1, nvidia & soc, nvidia & hbm, nvidia, amd & soc, amd & hbm, amd, vendor == 4],
        [0, 1, 2, 3, 4, 5, 6, 7, 8],
        default=9,
    )
    return _HW_CLASSES[code]


def precision_class(quant: Quant) -> str:
    """Return 'float' (>= 12 bpw), 'int8' (6-12 bpw: Q8_0, Q6_K, int8, fp8) or 'int4' (below 6 bpw)."""
    return _precision_class_bpw(quant.bits_per_weight)


def _precision_class_bpw(bpw: float) -> str:
    return "float" if bpw >= 12 else ("int8" if bpw >= 6 else "int4")


# Written by `python -m physics.fit` from the public measurement set in physics/data/measurements/: per engine,
# hardware class and precision class, the efficiencies, the fixed costs and the range, each group fitted only where
# at least two sources back it. tests/test_fit.py checks the file equals a fresh fit.
CALIBRATION_FILE = Path(__file__).resolve().parent / "data" / "fitted.json"


def read_default_calibration(path: Path = CALIBRATION_FILE) -> tuple[CalibrationFactor, ...]:
    """Returns the shipped default calibration rows from the file the fit command writes."""
    return _calibration_rows(json.loads(path.read_text(encoding="utf-8")))


def _calibration_rows(fitted: dict) -> tuple[CalibrationFactor, ...]:
    return tuple(CalibrationFactor(**row) for row in fitted.get("factors", ()))


_FITTED = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))  # read once, at import
DEFAULT_CALIBRATION: tuple[CalibrationFactor, ...] = _calibration_rows(_FITTED)
# The most GPUs of any measured build; estimates beyond it are extrapolated and get a wider range.
MEASURED_MAX_GPUS: int = _FITTED.get("max_gpu_count", 8)
# The prompt range's half-width, for one GPU and for several: the fit's leave-one-source-out prompt errors, 80 % of
# them inside it (one width for all engines and hardware: the set's prompt rows are too few to split further).
PREFILL_RANGE_WIDTHS: dict[str, float] = _FITTED.get(
    "prefill_range_widths", {"one": UNCALIBRATED_SPREAD, "several": UNCALIBRATED_SPREAD}
)
EXTRAPOLATED_WIDEN = 1.5


def batch_class(batch: int) -> str:
    """Return the calibration batch class: '1' for one sequence, 'many' for a batch."""
    return "1" if batch <= 1 else "many"


def _match_score(f: CalibrationFactor, backend: str, hw: str, prec: str, batch: str = "*") -> int:
    """Return how specifically a factor matches (-1: it does not): backend, then hardware, precision, batch."""
    score = 0
    keys = (
        (f.backend, backend, 8),
        (f.hardware_class, hw, 4),
        (f.precision_class, prec, 2),
        (f.batch_class, batch, 1),
    )
    for value, want, weight in keys:
        if value == want:
            score += weight
        elif value != "*":
            return -1
    return score


def range_spread(cal: CalibrationFactor, count: int | np.ndarray) -> float | np.ndarray:
    """Returns the relative half-width of the decode range for a build of `count` GPUs.

    The fit sets one width for one GPU and one for several, each holding about 80 % of the measurements it was
    not fitted to; a build of more GPUs than any measured one is wider still (EXTRAPOLATED_WIDEN).
    """
    several = cal.spread if cal.spread_several is None else cal.spread_several
    width = _range_width(cal.spread, several, np.asarray(count))
    return float(width) if width.ndim == 0 else width


def _range_width(one, several, count: np.ndarray) -> np.ndarray:
    """Returns the range half-width per build: one GPU's or several GPUs' width, widened past the measured counts."""
    return np.where(count > 1, several, one) * np.where(count > MEASURED_MAX_GPUS, EXTRAPOLATED_WIDEN, 1.0)


def _range_rule(cal: CalibrationFactor, count: int) -> str:
    rule = f"point x (1 +- {float(range_spread(cal, count)):.2f}): "
    if cal.runs:
        rule += f"holds ~80 % of the measurements left out of the fit ({cal.runs} rows in this group)"
    else:
        rule += "uncalibrated default"
    if count > MEASURED_MAX_GPUS:
        rule += f"; widened x{EXTRAPOLATED_WIDEN:g}: more GPUs than any measured build ({MEASURED_MAX_GPUS})"
    return rule


def find_calibration(
    backend: str, hw: str, prec: str, calibration: Sequence[CalibrationFactor] | None = None, batch: int = 1
) -> CalibrationFactor:
    """Return the most specific factor for (backend, hardware class, precision class, batch class).

    The caller's table (the database's Calibration rows) is searched first; the shipped DEFAULT_CALIBRATION
    only answers when no caller row matches at all, so a stored fit is never overridden by a default.
    """
    if not calibration:
        return _default_calibration(backend, hw, prec, batch_class(batch))
    return _best_match(tuple(calibration), backend, hw, prec, batch_class(batch)) or _default_calibration(
        backend, hw, prec, batch_class(batch)
    )


@lru_cache(maxsize=4096)
def _default_calibration(backend: str, hw: str, prec: str, batch: str) -> CalibrationFactor:
    """Return the shipped table's factor for a class (kept: the table is fixed for the life of the process)."""
    return _best_match(DEFAULT_CALIBRATION, backend, hw, prec, batch) or CalibrationFactor(
        "*", "*", "*", 0.6, 0.4, "default: no calibration row matched"
    )


def _best_match(
    table: Sequence[CalibrationFactor], backend: str, hw: str, prec: str, batch: str
) -> CalibrationFactor | None:
    """Return the most specific factor of ``table`` for the class (the first of equals), or None."""
    best, best_score = None, -1
    for f in table:
        s = _match_score(f, backend, hw, prec, batch)
        if s > best_score:
            best, best_score = f, s
    return best


# --------------------------------------------------------------------------------------------------------
# The vectorised core


@dataclass
class _Rows:
    """Per-row inputs of the core, all numpy arrays of one length."""

    memory_gb: np.ndarray
    usable_gb: np.ndarray  # per GPU
    bandwidth: np.ndarray  # GB/s per GPU
    tflops: np.ndarray  # per GPU
    vector_tflops: np.ndarray  # FP32 rate per GPU (0: not known)
    tdp_w: np.ndarray
    price_usd: np.ndarray
    count: np.ndarray
    tensor: np.ndarray  # bool
    ic_gb_s: np.ndarray
    ic_latency_s: np.ndarray
    bytes_per_param: np.ndarray
    weights_bytes: np.ndarray
    eff_decode: np.ndarray
    eff_prefill: np.ndarray
    spread: np.ndarray
    ram_gb: np.ndarray
    ram_gb_s: np.ndarray
    costs: dict[str, np.ndarray]  # COST_FIELDS -> per-row fitted seconds (0: not fitted)
    read_fixed: np.ndarray | None = None  # weight bytes every pass reads (weight_read_split); None: from bpp
    read_expert: np.ndarray | None = None  # bytes of one routed expert over all MoE layers
    # llama.cpp's prompt kernels on this GPU: the int8 rate its CUDA backend runs a quantized prompt's weight products
    # at (NaN: not an NVIDIA part with an int8 figure), and whether a layer split pipelines the prompt (CUDA, HIP).
    mmq_tflops: np.ndarray | None = None
    pipelined: np.ndarray | None = None


@dataclass(frozen=True)
class _ModelTerms:
    """What the core reads of a model under one workload: one model's numbers, or arrays with one value per row.

    A ranking over many models spreads each model's terms over its rows (``_terms_by_row``), so one pass of the core
    covers every (model, format) row with the same formulas a single estimate uses.
    """

    layers: float | np.ndarray
    hidden: float | np.ndarray
    moe: bool | np.ndarray
    active_params: float | np.ndarray
    attention_width: float | np.ndarray  # query heads x head dim: the width the prompt's attention FLOPs scale with
    kv_gb: float | np.ndarray  # the cache as the engine holds it, at the workload's context and batch
    kv_step_bytes: float | np.ndarray  # KV bytes one decode step reads
    kv_prompt_bytes: float | np.ndarray  # one sequence's cache before its prompt (depth = context - prompt)
    overhead_gb: float | np.ndarray  # one GPU's runtime overhead
    full_rate: float | np.ndarray  # cache bytes per token of context while every layer grows (x batch)
    global_rate: float | np.ndarray  # ... once the sliding layers hold their window
    window: float | np.ndarray  # sliding window + slack; 0 without one
    context_length: float | np.ndarray
    experts_step: float | np.ndarray  # distinct experts one decode step visits per MoE layer
    experts_prompt: float | np.ndarray  # ... one whole prompt
    experts_chunk: float | np.ndarray  # ... one prompt micro-batch
    params_step: float | np.ndarray  # weights read per step, by parameter count (rows without a read split)
    params_prompt: float | np.ndarray
    params_chunk: float | np.ndarray


@lru_cache(maxsize=64)
def _model_constants(models: tuple[ModelArch, ...], llama_cpp: bool) -> dict[str, np.ndarray]:
    """Return what the terms need of each model and no workload changes, one array per fact (kept per catalog).

    ``cache_*`` describe the cache as the engine holds it (``kv_layout``: llama.cpp keeps a micro-batch past a
    sliding window, and caches a model whose every layer is windowed in full).
    """
    probe = Workload(backend="llama.cpp" if llama_cpp else "")
    rows = []
    for m in models:
        cached, slack = kv_layout(m, probe)
        cache_windowed = cached.sliding_window > 0 and cached.sliding_layers > 0
        own_windowed = m.sliding_window > 0 and m.sliding_layers > 0
        rows.append(
            (
                m.layers,
                m.hidden,
                m.is_moe,
                m.active_params,
                m.heads * m.head_dim,
                m.context_length,
                m.vocab,
                m.experts,
                m.experts_per_token,
                m.expert_params * m.moe_layers,
                float(_params_read(m, 0)),
                kv_bytes_per_token_layer(m, "fp16") / 2,  # cached elements per token and layer
                m.sliding_layers if own_windowed else 0,
                m.sliding_window if own_windowed else 0,
                cached.sliding_layers if cache_windowed else 0,
                cached.sliding_window + slack if cache_windowed else 0,
            )
        )
    names = (
        "layers hidden moe active_params attention_width context_length vocab experts top_k routed_expert "
        "dense_read kv_elements own_sliding_layers own_window cache_sliding_layers cache_window"
    ).split()
    table = np.array(rows, dtype=float).reshape(-1, len(names))
    return {name: table[:, i] for i, name in enumerate(names)}


def _model_terms(models: tuple[ModelArch, ...], wl: Workload) -> _ModelTerms:
    """Return the terms of each model under one workload, as arrays with one value per model."""
    c = _model_constants(models, wl.backend == "llama.cpp")
    b = max(int(wl.batch), 1)
    p = max(int(wl.prompt_tokens), 1)
    ctx = float(wl.context)
    if ctx < 0:
        raise ValueError(f"context must be ≥ 0, got {wl.context}")
    layers = c["layers"]
    per_sequence_layer = c["kv_elements"] * kv_element_bytes(wl.kv_cache)  # bytes per token and layer, one sequence
    per_layer = per_sequence_layer * b

    def cache_bytes(sliding: np.ndarray, window: np.ndarray) -> np.ndarray:
        return np.round(token_layers(layers, sliding, window, ctx) * per_layer)

    def experts(tokens: int) -> np.ndarray:
        return _experts_visited(c["experts"], c["top_k"], tokens)

    windowed = c["cache_sliding_layers"] > 0
    # A prompt follows the context already cached (llama-bench -d: context - prompt), one sequence's worth.
    depth = speed.prompt_depth(ctx, p)
    prompt_cache = token_layers(layers, c["cache_sliding_layers"], c["cache_window"], depth) * per_sequence_layer
    steps = {"step": experts(b), "prompt": experts(p), "chunk": experts(min(p, speed.PROMPT_CHUNK))}
    return _ModelTerms(
        layers=layers,
        hidden=c["hidden"],
        moe=c["moe"] > 0,
        active_params=c["active_params"],
        attention_width=c["attention_width"],
        kv_gb=cache_bytes(c["cache_sliding_layers"], c["cache_window"]) / GB,
        kv_step_bytes=cache_bytes(c["own_sliding_layers"], c["own_window"]),
        kv_prompt_bytes=np.round(prompt_cache),
        overhead_gb=_overhead_gb(c["vocab"], c["hidden"], wl),
        full_rate=layers * per_layer,
        global_rate=np.where(windowed, layers - c["cache_sliding_layers"], layers) * per_layer,
        window=np.where(windowed, c["cache_window"], 0.0),
        context_length=c["context_length"],
        experts_step=steps["step"],
        experts_prompt=steps["prompt"],
        experts_chunk=steps["chunk"],
        params_step=c["dense_read"] + steps["step"] * c["routed_expert"],
        params_prompt=c["dense_read"] + steps["prompt"] * c["routed_expert"],
        params_chunk=c["dense_read"] + steps["chunk"] * c["routed_expert"],
    )


def _terms_by_row(terms: _ModelTerms, index: np.ndarray) -> _ModelTerms:
    """Return the terms with row r taking model index[r]'s values."""
    return _ModelTerms(**{name: getattr(terms, name)[index] for name in _ModelTerms.__dataclass_fields__})


def _weights_read(experts: float | np.ndarray, params: float | np.ndarray, r: _Rows) -> np.ndarray:
    """Return weight bytes one pass reads: the fixed part + distinct experts x one expert (or params x bytes each)."""
    if r.read_fixed is None or r.read_expert is None:
        return params * r.bytes_per_param
    return r.read_fixed + experts * r.read_expert


def _has_costs(costs: dict[str, np.ndarray], names: Sequence[str]) -> np.ndarray:
    """Returns, per row, whether any of the named fitted costs is set (a row written by hand or by benchmark jobs
    has none)."""
    return np.logical_or.reduce([costs[name] > 0 for name in names])


def _core(t: _ModelTerms, wl: Workload, r: _Rows) -> dict[str, np.ndarray]:
    """Return every figure for every row; estimate() and the rank_* functions both read from here.

    ``t`` holds one model's terms (arrays of one value, ``_model_terms``), or many models' terms by row.
    """
    b = max(int(wl.batch), 1)
    n = r.count.astype(float)
    tensor = r.tensor & (r.count > 1)

    # Memory: capacity adds under both splits (each card holds its layers or its slice of every layer).
    weights_gb = r.weights_bytes / GB
    kv_gb = t.kv_gb + np.zeros_like(weights_gb)
    over_gb = t.overhead_gb + OVERHEAD_BASE_GB * (n - 1)
    total_gb = weights_gb + kv_gb + over_gb
    usable_gb = r.usable_gb * n
    fits = total_gb <= usable_gb
    headroom = usable_gb - total_gb
    max_ctx = _max_context(t, (usable_gb - weights_gb - over_gb) * GB)
    max_ctx = np.where(weights_gb + over_gb > usable_gb, 0, max_ctx)

    # CPU offload: what does not fit stays in system RAM; only weights move (the KV cache stays on the GPU).
    if np.any(r.ram_gb > 0):
        short_gb = np.maximum(total_gb - usable_gb, 0.0)
        can_offload = (r.ram_gb > 0) & (short_gb <= r.ram_gb) & (short_gb < weights_gb)
        offloaded_gb = np.where(~fits & can_offload, short_gb, 0.0)
        fits_offload = fits | can_offload
        frac_ram = np.where(weights_gb > 0, offloaded_gb / weights_gb, 0.0)
    else:  # no system RAM to offload to (a ranking of GPUs alone): the same figures without their arithmetic
        offloaded_gb = np.zeros(np.shape(fits))
        fits_offload = fits.copy()
        frac_ram = np.zeros(np.shape(weights_gb))

    # Decode: bytes one step reads (weights of the distinct experts + the KV cache at the stated context).
    # Named terms and how they combine: physics/speed.py (docs/estimator.md).
    w_step = _weights_read(t.experts_step, t.params_step, r)
    kv_step = t.kv_step_bytes
    bytes_step = w_step + kv_step
    sharing = np.where(tensor, n, 1.0)
    # Fitted fixed costs include the link's latency; without them the modelled latency stands in.
    fitted = _has_costs(r.costs, COST_FIELDS)
    latency = 0.0 if fitted.all() else np.where(fitted, 0.0, r.ic_latency_s)
    pcie = r.ic_latency_s > LATENCY_S["nvlink"]
    t_mem = speed.memory_s(bytes_step - w_step * frac_ram, r.bandwidth, r.eff_decode, sharing)
    t_ram = speed.offload_s(w_step * frac_ram, r.ram_gb_s, RAM_EFFICIENCY)
    t_comm = speed.comm_s(t.hidden, b, t.layers, r.count, tensor, r.ic_gb_s, latency)
    t_comm = t_comm + speed.fixed_decode_s(t.layers, t.moe, n, tensor, pcie, r.costs)
    # The per-weight arithmetic on the vector units adds to the data path, as fitted (physics/fit.py decode_features).
    t_vector = r.costs["decode_vector_inv_efficiency"] * speed.vector_s(t.active_params, r.vector_tflops, sharing)
    t_compute = speed.compute_s(2 * t.active_params * b, r.tflops, r.eff_prefill, sharing)
    t_step, bound = speed.decode_step_s(t_mem + t_vector, t_ram, t_comm, t_compute)
    decode_bound = bound.copy()
    decode_bound[offloaded_gb > 0] = "offload"
    decode = 1.0 / t_step
    spread = r.spread
    decode_low = decode * (1 - spread)
    decode_high = decode * (1 + spread)

    # Prefill for one prompt: compute (2 x active x P + causal attention 2 x L x H x d x P^2) against reading
    # the weights the prompt touches (a MoE prompt of P tokens touches E(1-(1-k/E)^P) experts per layer).
    p = max(int(wl.prompt_tokens), 1)
    flops_pre = 2.0 * t.active_params * p + 2.0 * t.layers * t.attention_width * p * p
    t_pre_comm = speed.comm_s(t.hidden, p, t.layers, r.count, tensor, r.ic_gb_s, latency)
    # Fitted prompt costs: the weights re-read once per micro-batch, and per-prompt and per-layer fixed time.
    w_chunk = _weights_read(t.experts_chunk, t.params_chunk, r)
    chunks = speed.chunked_weights_s(p, speed.memory_s(w_chunk + t.kv_prompt_bytes, r.bandwidth, 1.0, sharing))
    # llama.cpp, as fitted (physics/fit.py load_measurements): a quantized prompt's weight products at the int8 rate
    # on CUDA, and a layer split's work pipelined over its cards' micro-batches (speed.pipeline_share).
    llama = wl.backend == "llama.cpp"
    linear_tflops, share = r.tflops, None
    if llama and r.mmq_tflops is not None:
        linear_tflops = np.where((r.bytes_per_param < 1.5) & (r.mmq_tflops > 0), r.mmq_tflops, r.tflops)
    piped = None if not llama or r.pipelined is None else r.pipelined & ~tensor & (n > 1)
    if piped is not None and piped.any():
        share = np.where(piped, speed.pipeline_share(p, n), 1.0)
        chunks = chunks * share
    # What the basis says of the prompt (_prompt_rule): its products' rate, and the pipelined share (NaN: none).
    prompt_share = np.full(np.shape(n), np.nan) if share is None else np.where(piped, share, np.nan)
    t_chunks = r.costs["prefill_chunk_inv_efficiency"] * chunks
    # A row has fitted prompt costs when any of them is set: a fit may drive one of them (the re-reads) to 0.
    chunked = np.broadcast_to(_has_costs(r.costs, PREFILL_COST_FIELDS), np.shape(t_chunks))
    if chunked.all():  # every row has fitted prompt costs: the unfitted formula below would be replaced anyway
        t_pre, prefill_bound = np.zeros(np.shape(chunked)), np.empty(np.shape(chunked), dtype=object)
    else:
        t_pre_compute = speed.compute_s(flops_pre, r.tflops, r.eff_prefill, sharing)
        w_pre = _weights_read(t.experts_prompt, t.params_prompt, r)
        t_pre_mem = speed.memory_s(w_pre * (1 - frac_ram), r.bandwidth, r.eff_decode, sharing) + speed.offload_s(
            w_pre * frac_ram, r.ram_gb_s, RAM_EFFICIENCY
        )
        t_pre, prefill_bound = speed.prefill_s(t_pre_compute, t_pre_mem, t_pre_comm)
    # With fitted prompt costs every term adds, as fitted (physics/fit.py prefill_features): the weights' FLOPs at
    # the fitted efficiency, the attention counted on the query width at its own fitted factor, and the reads.
    t_linear = speed.compute_s(2.0 * t.active_params * p, linear_tflops, r.eff_prefill, sharing)
    t_attention = r.costs["prefill_attention_inv_efficiency"] * speed.compute_s(
        speed.attention_flops(t.layers, t.attention_width, p, speed.prompt_depth(wl.context, p)), r.tflops, 1.0, sharing
    )
    t_fitted_compute = t_linear + t_attention if share is None else (t_linear + t_attention) * share
    t_pre = np.where(chunked, t_fitted_compute + t_pre_comm + t_chunks, t_pre)
    prefill_bound = np.where(chunked, speed.BOUNDS[(t_fitted_compute >= t_chunks).astype(np.intp)], prefill_bound)
    t_pre = t_pre + r.costs["prefill_s"]
    # At most 0.9, so that the slow end of the first token's time stays finite.
    prompt_spread = np.minimum(_range_width(PREFILL_RANGE_WIDTHS["one"], PREFILL_RANGE_WIDTHS["several"], r.count), 0.9)

    # Cost: price per tok/s of one stream; $ per million tokens over the amortisation window at full batch;
    # tokens per joule at TDP (the board's rated power, an upper bound on what decode draws).
    price = r.price_usd * n
    watts = r.tdp_w * n
    aggregate = decode * b
    hours = AMORTISATION_YEARS * 365 * HOURS_PER_DAY
    tokens_total = aggregate * hours * 3600
    energy_usd = watts / 1000 * hours * USD_PER_KWH
    usd_per_mtok = (price + np.nan_to_num(energy_usd)) / tokens_total * 1e6
    return {
        "weights_gb": weights_gb,
        "kv_cache_gb": kv_gb,
        "overhead_gb": over_gb,
        "total_gb": total_gb,
        "usable_gb": usable_gb,
        "headroom_gb": headroom,
        "offloaded_gb": offloaded_gb,
        "fits": fits,
        "fits_with_offload": fits_offload,
        "max_context": max_ctx,
        "decode_tok_s": decode,
        "decode_tok_s_aggregate": aggregate,
        "decode_tok_s_low": decode_low,
        "decode_tok_s_high": decode_high,
        "prefill_tok_s": p / t_pre,
        "ttft_s": t_pre,
        "prefill_tok_s_low": p / t_pre * (1 - prompt_spread),
        "prefill_tok_s_high": p / t_pre * (1 + prompt_spread),
        "ttft_s_low": t_pre / (1 + prompt_spread),
        "ttft_s_high": t_pre / (1 - prompt_spread),
        "decode_bound": decode_bound,
        "prefill_bound": prefill_bound,
        "bytes_per_token": bytes_step / b,
        "weight_bytes_step": w_step,
        "kv_bytes_step": kv_step + np.zeros_like(weights_gb),
        "t_compute": t_compute,
        "t_comm": t_comm,
        "t_vector": t_vector + np.zeros_like(weights_gb),
        "usd_per_tok_s": price / decode,
        "usd_per_million_tokens": usd_per_mtok,
        "tokens_per_joule": aggregate / watts,
        # per GPU row, not broadcast: estimate() reads them, rankings leave them (RESULT_COLUMNS)
        "prompt_linear_tflops": linear_tflops,
        "prompt_share": prompt_share,
    }


def _interconnect(gpu_nvlink, gpu_pcie, override) -> tuple[np.ndarray, np.ndarray]:
    """Return (GB/s, latency s): the override, else NVLink when the GPU has it, else PCIe of its generation."""
    nvlink = np.asarray(gpu_nvlink, dtype=float)
    pcie_gen = np.nan_to_num(np.asarray(gpu_pcie, dtype=float), nan=4.0)
    pcie = np.select([pcie_gen >= 5, pcie_gen >= 4], [PCIE_GB_S[5], PCIE_GB_S[4]], PCIE_GB_S[3])
    has_nvlink = np.nan_to_num(nvlink) > 0
    bw = np.where(has_nvlink, np.nan_to_num(nvlink), pcie)
    lat = np.where(has_nvlink, LATENCY_S["nvlink"], LATENCY_S["pcie"])
    over = np.asarray(override, dtype=float)
    bw = np.where(np.isnan(over), bw, over)
    return bw, lat


def _prompt_rule(tflops: float, linear_tflops: float, share: float, count: int) -> str:
    """Return in words the rate _core ran a prompt's weight products at and the share a pipelined layer split took
    (NaN: not pipelined)."""
    if np.isfinite(linear_tflops) and linear_tflops != tflops:
        rule = f"weights' products at {linear_tflops:g} int8 TOPS (llama.cpp's CUDA int8 kernels)"
    else:
        rule = f"weights' products at {tflops:g} TFLOPS"
    if np.isfinite(share):
        batch = f"{speed.PROMPT_BATCH:,}-token batch"
        rule += f"; the layer split pipelines each {batch} over {count} cards ({share:.2f} of the sequential time)"
    return rule


def _llama_cpp_prompt(hw_levels, hw_codes, int8_tops) -> tuple[np.ndarray, np.ndarray]:
    """Return per row what llama.cpp's prompt kernels do on its GPU, as physics.fit reads the measurements: the int8
    rate its CUDA backend runs a quantized prompt's weight products at (an NVIDIA part's int8 TOPS; NaN elsewhere or
    without the figure), and whether its layer split pipelines a prompt (the CUDA and HIP backends: NVIDIA and AMD)."""
    levels = np.asarray(hw_levels, dtype=str)
    nvidia = np.char.startswith(levels, "nvidia")[hw_codes]
    amd = np.char.startswith(levels, "amd")[hw_codes]
    return np.where(nvidia, np.asarray(int8_tops, dtype=float), np.nan), nvidia | amd


def _tflops_vec(fp16, fp32, segment, int8=None, with_source: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Return (TFLOPS, source) per row: the prompt tensor rate, else fp32, else a segment default.

    The tensor rate is speed.prompt_tflops: the fp16 figure, or half the int8 TOPS where that is higher (the
    dense fp16-accumulate rate, twice the FP32-accumulate figure on GeForce parts).
    """
    fp16 = np.asarray(fp16, dtype=float)
    if int8 is not None:
        fp16 = np.where(np.nan_to_num(fp16) > 0, speed.prompt_tflops(fp16, int8), fp16)
    fp32 = np.asarray(fp32, dtype=float)
    fallback = _per_value(segment, lambda v: FALLBACK_TFLOPS.get(v if isinstance(v, str) else "", 40.0)).astype(float)
    ok16 = np.nan_to_num(fp16) > 0
    ok32 = np.nan_to_num(fp32) > 0
    tf = np.where(ok16, fp16, np.where(ok32, fp32, fallback))
    if not with_source:
        return tf, None
    src = np.where(ok16, "fp16", np.where(ok32, "fp32 (no fp16 figure)", "segment default (no figure)"))
    return tf, src


# --------------------------------------------------------------------------------------------------------
# Single estimate


def estimate(
    model: ModelArch,
    quant: Quant,
    build: Build,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None = None,
    hf_repo: str = "",
) -> Estimate:
    """Return the estimate for one model, format, build and workload, with notes and the full basis.

    `hf_repo` only goes into the basis's check command (a serving engine loads the model by its repo id).
    """
    gpu = build.gpu
    usable = usable_memory_gb(gpu, build.gpu_memory_share)
    hw = hardware_class(gpu)
    prec = precision_class(quant)
    cal = find_calibration(workload.backend, hw, prec, calibration, workload.batch)
    tf, tf_src = _tflops_vec(
        [gpu.fp16_tflops], [gpu.fp32_tflops], [gpu.segment], [gpu.int8_tops if gpu.int8_tops else np.nan]
    )
    mmq, pipelined = _llama_cpp_prompt([hw], [0], [gpu.int8_tops if gpu.int8_tops else np.nan])
    ic_bw, ic_lat = _interconnect(
        [gpu.nvlink_gb_s if gpu.nvlink_gb_s else np.nan],
        [gpu.pcie_gen if gpu.pcie_gen else np.nan],
        [build.interconnect_gb_s if build.interconnect_gb_s else np.nan],
    )
    rows = _Rows(
        memory_gb=np.array([gpu.memory_gb]),
        usable_gb=np.array([usable]),
        bandwidth=np.array([gpu.bandwidth_gb_s], dtype=float),
        tflops=tf,
        vector_tflops=np.array([gpu.fp32_tflops if gpu.fp32_tflops else 0.0], dtype=float),
        tdp_w=np.array([gpu.tdp_w if gpu.tdp_w else np.nan]),
        price_usd=np.array([gpu.price_usd if gpu.price_usd else np.nan]),
        count=np.array([max(build.count, 1)]),
        tensor=np.array([build.split == "tensor"]),
        ic_gb_s=ic_bw,
        ic_latency_s=ic_lat,
        bytes_per_param=np.array([_bytes_per_param(model, quant)]),
        read_fixed=np.array([weight_read_split(model, quant)[0]]),
        read_expert=np.array([weight_read_split(model, quant)[1]]),
        weights_bytes=np.array([weights_bytes(model, quant)]),
        eff_decode=np.array([cal.decode_efficiency]),
        eff_prefill=np.array([cal.prefill_efficiency]),
        spread=np.array([range_spread(cal, max(build.count, 1))]),
        ram_gb=np.array([build.offload_ram_gb]),
        ram_gb_s=np.array([build.ram_bandwidth_gb_s]),
        costs={name: np.array([getattr(cal, name)]) for name in COST_FIELDS},
        mmq_tflops=mmq,
        pipelined=pipelined,
    )
    c = {k: v[0] for k, v in _core(_model_terms((model,), workload), workload, rows).items()}

    def opt(x: float) -> float | None:
        return None if not np.isfinite(x) else float(x)

    notes = _notes(model, quant, build, workload, c, usable)
    basis: dict[str, object] = {
        "model": model.name,
        "quant": quant.name,
        "bits_per_weight": quant.bits_per_weight,
        "weight_bytes_source": _weight_source(model, quant),
        "gpu": gpu.name,
        "gpu_count": build.count,
        "split": build.split,
        "hardware_class": hw,
        "precision_class": prec,
        "batch_class": batch_class(workload.batch),
        "backend": workload.backend,
        "bandwidth_gb_s": gpu.bandwidth_gb_s,
        "tflops": float(tf[0]),
        "tflops_source": str(tf_src[0]),
        "prompt_rule": _prompt_rule(
            float(tf[0]), float(c["prompt_linear_tflops"]), float(c["prompt_share"]), max(build.count, 1)
        ),
        "decode_efficiency": cal.decode_efficiency,
        "prefill_efficiency": cal.prefill_efficiency,
        "efficiency_source": cal.source,
        "efficiency_key": f"{cal.backend}/{cal.hardware_class}/{cal.precision_class}/batch {cal.batch_class}",
        "range_rule": _range_rule(cal, max(build.count, 1)),
        "engine": workload.backend,
        "check_command": check_command(
            workload.backend,
            model_name=model.name,
            hf_repo=hf_repo,
            quant_name=quant.name,
            quant_kind=quant.kind,
            count=build.count,
            split=build.split,
            prompt_tokens=workload.prompt_tokens,
            context=workload.context,
            batch=workload.batch,
        ),
        "fixed_costs_s": {name: getattr(cal, name) for name in COST_FIELDS},
        "usable_memory_rule": _usable_rule(gpu, build.gpu_memory_share),
        "overhead_rule": f"{OVERHEAD_BASE_GB} GB per GPU + one fp32 micro-batch of min(prompt, {OVERHEAD_UBATCH}) x "
        "(vocab + 4 x hidden) per sequence",
        "kv_cache": workload.kv_cache,
        "kv_bytes_per_token": kv_bytes_per_token(model, workload.kv_cache),
        "kv_context_rule": "KV read per step at the stated context (the cache full to `context`), not an average",
        "context": workload.context,
        "batch": workload.batch,
        "prompt_tokens": workload.prompt_tokens,
        "distinct_experts_per_layer_decode": float(distinct_experts(model, max(workload.batch, 1))),
        "distinct_experts_per_layer_prefill": float(distinct_experts(model, max(workload.prompt_tokens, 1))),
        "weight_bytes_per_step": float(c["weight_bytes_step"]),
        "kv_bytes_per_step": float(c["kv_bytes_step"]),
        "bytes_per_token_rule": "(weights read per step + KV cache read per step) / batch",
        "input_embedding_read": "whole table (tied lm_head)" if model.tied_embeddings else "one row per token",
        "interconnect_gb_s": float(ic_bw[0]),
        "interconnect_latency_s": float(ic_lat[0]),
        "comm_s_per_step": float(c["t_comm"]),
        "compute_s_per_step": float(c["t_compute"]),
        "vector_s_per_step": float(c["t_vector"]),
        "offload_ram_gb": build.offload_ram_gb,
        "ram_bandwidth_gb_s": build.ram_bandwidth_gb_s,
        "ram_efficiency": RAM_EFFICIENCY,
        "cost_rule": f"price amortised over {AMORTISATION_YEARS:g} years at {HOURS_PER_DAY:g} h/day + power at TDP "
        f"and ${USD_PER_KWH}/kWh, at the aggregate decode rate",
        "price_usd": gpu.price_usd,
        "tdp_w": gpu.tdp_w,
    }
    return Estimate(
        fits=bool(c["fits"]),
        fits_with_offload=bool(c["fits_with_offload"]),
        weights_gb=float(c["weights_gb"]),
        kv_cache_gb=float(c["kv_cache_gb"]),
        overhead_gb=float(c["overhead_gb"]),
        total_gb=float(c["total_gb"]),
        usable_gb=float(c["usable_gb"]),
        headroom_gb=float(c["headroom_gb"]),
        offloaded_gb=float(c["offloaded_gb"]),
        max_context=int(c["max_context"]),
        decode_tok_s=float(c["decode_tok_s"]),
        decode_tok_s_aggregate=float(c["decode_tok_s_aggregate"]),
        decode_tok_s_low=float(c["decode_tok_s_low"]),
        decode_tok_s_high=float(c["decode_tok_s_high"]),
        prefill_tok_s=float(c["prefill_tok_s"]),
        ttft_s=float(c["ttft_s"]),
        prefill_tok_s_low=float(c["prefill_tok_s_low"]),
        prefill_tok_s_high=float(c["prefill_tok_s_high"]),
        ttft_s_low=float(c["ttft_s_low"]),
        ttft_s_high=float(c["ttft_s_high"]),
        decode_bound=str(c["decode_bound"]),
        prefill_bound=str(c["prefill_bound"]),
        bytes_per_token=float(c["bytes_per_token"]),
        usd_per_tok_s=opt(c["usd_per_tok_s"]),
        usd_per_million_tokens=opt(c["usd_per_million_tokens"]),
        tokens_per_joule=opt(c["tokens_per_joule"]),
        notes=tuple(notes),
        basis=basis,
    )


def _usable_rule(gpu: GPUSpec, override: float | None) -> str:
    if gpu.unified_memory:
        if override or gpu.gpu_memory_share:
            return f"unified: {gpu.memory_gb:g} GB x stated share {override or gpu.gpu_memory_share:.3f}"
        if gpu.vendor == "apple":
            return (
                f"unified (macOS default): {gpu.memory_gb:g} GB x {apple_default_share(gpu.memory_gb):.3f} "
                f"(2/3 up to {APPLE_SMALL_LIMIT_GB:g} GB, 3/4 above)"
            )
        return f"unified: {gpu.memory_gb:g} GB x {OTHER_UNIFIED_SHARE} (no stated share)"
    reserve = DISCRETE_RESERVE_GB.get(gpu.segment, DISCRETE_RESERVE_DEFAULT_GB)
    return f"discrete: {gpu.memory_gb:g} GB less {reserve} GB driver/display reserve ({gpu.segment})"


def _notes(
    model: ModelArch, quant: Quant, build: Build, wl: Workload, c: dict[str, object], usable: float
) -> list[str]:
    """Return plain-English warnings about fit, limits and bottlenecks."""
    gpu = build.gpu
    notes: list[str] = []
    total = float(c["total_gb"])
    if gpu.unified_memory and gpu.vendor == "apple" and not c["fits"] and not build.gpu_memory_share:
        room = gpu.memory_gb - APPLE_OS_KEEP_GB
        if total <= room:
            want = math.ceil(total + 0.5)
            notes.append(
                f"macOS lets the GPU use {usable:.1f} of {gpu.memory_gb:g} GB by default; raising "
                f"iogpu.wired_limit_mb to {want * 1000} ({want} GB) would fit this model "
                f"({total:.1f} GB needed), leaving {gpu.memory_gb - want:g} GB to macOS."
            )
        else:
            notes.append(
                f"macOS lets the GPU use {usable:.1f} of {gpu.memory_gb:g} GB by default; this needs "
                f"{total:.1f} GB, more than can be given to the GPU while keeping {APPLE_OS_KEEP_GB:g} GB for macOS."
            )
    elif not c["fits"]:
        if c["fits_with_offload"]:
            notes.append(
                f"Does not fit in {float(c['usable_gb']):.1f} GB of GPU memory; {float(c['offloaded_gb']):.1f} GB "
                f"of weights run from system RAM at {build.ram_bandwidth_gb_s:g} GB/s, which dominates decode time."
            )
        else:
            notes.append(
                f"Does not fit: needs {total:.1f} GB, {float(c['usable_gb']):.1f} GB usable; speeds shown are what "
                "it would reach if it did."
            )
    if c["fits"] and int(c["max_context"]) < model.context_length:
        notes.append(
            f"Longest context that fits at batch {wl.batch} with a {wl.kv_cache} KV cache: "
            f"{int(c['max_context']):,} of {model.context_length:,} tokens."
        )
    if quant.name.upper() in {"Q8_0"} and abs(quant.bits_per_weight - 8.0) < 1e-9:
        notes.append("Q8_0 stores 34 bytes per 32 weights: 8.5 bits per weight, not 8.")
    if build.count > 1 and build.split == "layer":
        notes.append(
            "Layer split adds memory, not speed: at batch 1 the cards run one after another, so decode runs at "
            "one card's bandwidth."
        )
    if c["decode_bound"] == "compute":
        notes.append("Decode is compute-bound at this batch: more bandwidth would not help, more TFLOPS would.")
    if gpu.fp16_tflops is None:
        notes.append("No fp16 tensor figure for this GPU: prefill speed uses a fallback (see basis).")
    return notes


# --------------------------------------------------------------------------------------------------------
# Vectorised rankings

RESULT_COLUMNS = (
    "weights_gb",
    "kv_cache_gb",
    "overhead_gb",
    "total_gb",
    "usable_gb",
    "headroom_gb",
    "offloaded_gb",
    "fits",
    "fits_with_offload",
    "max_context",
    "decode_tok_s",
    "decode_tok_s_aggregate",
    "decode_tok_s_low",
    "decode_tok_s_high",
    "prefill_tok_s",
    "ttft_s",
    "prefill_tok_s_low",
    "prefill_tok_s_high",
    "ttft_s_low",
    "ttft_s_high",
    "decode_bound",
    "prefill_bound",
    "bytes_per_token",
    "usd_per_tok_s",
    "usd_per_million_tokens",
    "tokens_per_joule",
)


def _col(df: pd.DataFrame, name: str, default: object) -> np.ndarray:
    if name in df.columns:
        s = df[name]
        if isinstance(default, float):
            if s.dtype.kind in "fiu":
                return s.to_numpy(dtype=float)
            return pd.to_numeric(s, errors="coerce").to_numpy(dtype=float)
        return s.to_numpy()
    return np.full(len(df), default, dtype=object if isinstance(default, str) else None)


def _flag_col(df: pd.DataFrame, name: str) -> np.ndarray:
    """Return a yes/no column as booleans, missing values (and a missing column) as False."""
    if name not in df.columns:
        return np.zeros(len(df), dtype=bool)
    values = df[name].to_numpy()
    if values.dtype == bool:
        return values
    return _per_value(values, lambda v: bool(v) if v is not None else False).astype(bool)


def _usable_vec(df: pd.DataFrame, share_override: np.ndarray) -> np.ndarray:
    """Return usable GB per GPU row with the same rules as usable_memory_gb()."""
    mem = _col(df, "memory_gb", np.nan)
    vendor = _text_array(_col(df, "vendor", "other"), "other", str.lower)
    segment = _col(df, "segment", "")
    unified = _flag_col(df, "unified_memory")
    share = _col(df, "gpu_memory_share", np.nan)
    share = np.where(np.nan_to_num(share_override) > 0, share_override, share)
    apple_share = np.where(mem <= APPLE_SMALL_LIMIT_GB, APPLE_SHARE_SMALL, APPLE_SHARE_LARGE)
    default_share = np.where(vendor == "apple", apple_share, OTHER_UNIFIED_SHARE)
    share = np.where(np.nan_to_num(share) > 0, share, default_share)
    reserve = _per_value(segment, lambda v: DISCRETE_RESERVE_GB.get(v, DISCRETE_RESERVE_DEFAULT_GB)).astype(float)
    return np.where(unified, mem * share, np.maximum(mem - reserve, 0.0))


@dataclass
class GPUPrep:
    """Per-GPU-row facts of a ranking, worked out once and shared by every model and format."""

    gpus: pd.DataFrame
    hw: np.ndarray
    hw_levels: np.ndarray
    hw_codes: np.ndarray
    tflops: np.ndarray
    mmq_tflops: np.ndarray
    pipelined: np.ndarray
    vector: np.ndarray
    ic_bw: np.ndarray
    ic_lat: np.ndarray
    bandwidth: np.ndarray
    count: np.ndarray
    split: np.ndarray
    usable: np.ndarray
    memory: np.ndarray
    tdp: np.ndarray
    price: np.ndarray
    ram_gb: np.ndarray
    ram_gb_s: np.ndarray

    @cached_property
    def columns(self) -> dict[str, np.ndarray]:
        """Return the GPU frame's columns as arrays (kept: a page's rankings read them on every request)."""
        return {c: self.gpus[c].to_numpy() for c in self.gpus.columns}

    @cached_property
    def frame_columns(self) -> dict:
        """Return the GPU frame's columns as pandas arrays (text stays text) for answers built as frames."""
        return {c: self.gpus[c].array for c in self.gpus.columns}

    @cached_property
    def text_columns(self) -> dict:
        """Return the hardware class and split as pandas string arrays, for answers built as frames."""
        return {"hw": pd.array(self.hw.astype(object), dtype="str"), "split": pd.array(self.split, dtype="str")}

    @cached_property
    def tensor(self) -> np.ndarray:
        return self.split == "tensor"


def prepare_gpus(gpus: pd.DataFrame) -> GPUPrep:
    """Return the per-GPU arrays the ranking needs; a caller ranking one frame many times may keep them."""

    def gcol(name: str, default: object) -> np.ndarray:
        return _col(gpus, name, default)

    segment_g = gcol("segment", "")
    bandwidth_g = gcol("bandwidth_gb_s", np.nan)
    hw_g = gpus["hardware_class"].to_numpy(dtype=object) if "hardware_class" in gpus.columns else hardware_classes(gpus)
    hw_codes, hw_levels = pd.factorize(hw_g.astype(str), sort=True)
    hw_levels = np.asarray(hw_levels, dtype=str)
    int8_g = gcol("int8_tops", np.nan)
    mmq, pipelined = _llama_cpp_prompt(hw_levels, hw_codes, int8_g)
    ic_bw_g, ic_lat_g = _interconnect(
        gcol("nvlink_gb_s", np.nan), gcol("pcie_gen", np.nan), gcol("interconnect_gb_s", np.nan)
    )
    return GPUPrep(
        gpus=gpus,
        hw=hw_g,
        hw_levels=hw_levels,
        hw_codes=hw_codes,
        tflops=_tflops_vec(
            gcol("fp16_tflops", np.nan),
            gcol("fp32_tflops", np.nan),
            segment_g,
            int8_g,
            with_source=False,
        )[0],
        mmq_tflops=mmq,
        pipelined=pipelined,
        vector=np.nan_to_num(np.asarray(gcol("fp32_tflops", np.nan), dtype=float)),
        ic_bw=ic_bw_g,
        ic_lat=ic_lat_g,
        bandwidth=bandwidth_g,
        count=np.maximum(np.nan_to_num(gcol("count", np.nan), nan=1.0).astype(np.int64), 1),
        split=_per_value(gcol("split", "layer"), lambda v: v if isinstance(v, str) else "layer"),
        usable=_usable_vec(gpus, _col(gpus, "build_gpu_memory_share", np.nan)),
        memory=gcol("memory_gb", np.nan),
        tdp=gcol("tdp_w", np.nan),
        price=gcol("price_usd", np.nan),
        ram_gb=np.nan_to_num(gcol("offload_ram_gb", np.nan)),
        ram_gb_s=np.nan_to_num(gcol("ram_bandwidth_gb_s", np.nan)),
    )


@dataclass
class _Ranked:
    """One ranking before it is ordered: per result row the GPU row ``gi`` and the (model, format) pair ``ki``, the
    pairs' own columns (one value per pair) and the core's figures (one value per row)."""

    gi: np.ndarray
    ki: np.ndarray
    pairs: dict[str, np.ndarray]  # model, quant, bits_per_weight
    figures: dict[str, np.ndarray]  # RESULT_COLUMNS

    @property
    def fits(self) -> np.ndarray:
        return self.figures["fits"]

    def order(self) -> np.ndarray:
        """Return the row order: fitting rows first, fastest first; then the rest as they came (GPU row by GPU row
        of each format), which keeps the gather of the many rows that do not fit a sequential copy."""
        fits = self.figures["fits"]
        fitting = np.flatnonzero(fits)
        speed = -np.nan_to_num(self.figures["decode_tok_s"][fitting], nan=-1.0)
        return np.concatenate([fitting[np.argsort(speed, kind="stable")], np.flatnonzero(~fits)])


# The columns an answer adds to the GPU frame's own, in this order (a GPU frame's count and split are replaced).
_PAIR_COLUMNS = ("model", "quant", "bits_per_weight")
_GPU_DERIVED = ("hardware_class", "count", "split")
_ADDED_COLUMNS = frozenset((*_PAIR_COLUMNS, *_GPU_DERIVED, *RESULT_COLUMNS))


def _rank_arrays(
    models: Sequence[ModelArch],
    quants_per_model: Sequence[Sequence[Quant]],
    prep: GPUPrep,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None,
) -> _Ranked:
    """Return every figure of models over their formats on every GPU row, before ordering.

    Rows run model by model, format by format, every GPU row each: one pass of the core for all of them. The core
    works on a (pair, GPU row) grid: a GPU's own figures are computed once per GPU row, a format's once per pair.
    """
    g = len(prep.gpus)
    pairs = [(i, m, qq) for i, (m, qs) in enumerate(zip(models, quants_per_model, strict=True)) for qq in qs]
    gi = np.tile(np.arange(g), len(pairs))  # pair-major: rows [pair 0: all gpus, pair 1: all gpus, ...]
    ki = np.repeat(np.arange(len(pairs)), g)

    bpw = np.array([qq.bits_per_weight for _, _, qq in pairs], dtype=float)
    figures = np.array([_quant_figures(m, qq) for _, m, qq in pairs], dtype=float).reshape(-1, 4)
    prec_levels, prec_codes = np.unique(
        np.array([_precision_class_bpw(x) for x in bpw], dtype=object).astype(str), return_inverse=True
    )
    # Efficiency: one lookup per (hardware class, precision class) pair present, then one gather for all fields.
    fields = ("decode_efficiency", "prefill_efficiency", "spread", "spread_several", *COST_FIELDS)
    eff_tab = np.empty((len(fields), len(prep.hw_levels), len(prec_levels)))
    for a, h in enumerate(prep.hw_levels):
        for b_, prec in enumerate(prec_levels):
            f = find_calibration(workload.backend, str(h), str(prec), calibration, workload.batch)
            values = [getattr(f, name) for name in fields]
            values[3] = f.spread if f.spread_several is None else f.spread_several
            eff_tab[:, a, b_] = values
    cell = (prep.hw_codes * len(prec_levels))[None, :] + prec_codes[:, None]  # (pair, GPU row)
    per_row = {name: table.take(cell) for name, table in zip(fields, eff_tab.reshape(len(fields), -1), strict=True)}
    count = prep.count[None, :]
    rows = _Rows(
        memory_gb=prep.memory[None, :],
        usable_gb=prep.usable[None, :],
        bandwidth=prep.bandwidth[None, :],
        tflops=prep.tflops[None, :],
        mmq_tflops=prep.mmq_tflops[None, :],
        pipelined=prep.pipelined[None, :],
        vector_tflops=prep.vector[None, :],
        tdp_w=prep.tdp[None, :],
        price_usd=prep.price[None, :],
        count=count,
        tensor=prep.tensor[None, :],
        ic_gb_s=prep.ic_bw[None, :],
        ic_latency_s=prep.ic_lat[None, :],
        bytes_per_param=figures[:, 0:1],
        weights_bytes=figures[:, 3:4],
        read_fixed=figures[:, 1:2],
        read_expert=figures[:, 2:3],
        eff_decode=per_row["decode_efficiency"],
        eff_prefill=per_row["prefill_efficiency"],
        spread=_range_width(per_row["spread"], per_row["spread_several"], count),
        ram_gb=prep.ram_gb[None, :],
        ram_gb_s=prep.ram_gb_s[None, :],
        costs={name: per_row[name] for name in COST_FIELDS},
    )
    pair_model = np.array([i for i, _, _ in pairs], dtype=np.int64)
    terms = _model_terms(tuple(models), workload)
    t = terms if len(models) == 1 else _terms_by_row(terms, pair_model[:, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _core(t, workload, rows)
    return _Ranked(
        gi=gi,
        ki=ki,
        pairs={
            "model": np.array([m.name for m in models], dtype=object)[pair_model],
            "quant": np.array([qq.name for _, _, qq in pairs], dtype=object),
            "bits_per_weight": bpw,
        },
        figures={k: np.broadcast_to(out[k], (len(pairs), g)).ravel() for k in RESULT_COLUMNS},
    )


def _columns(prep: GPUPrep, ranked: _Ranked, order: np.ndarray, model: bool = True) -> dict[str, np.ndarray]:
    """Return the answer as columns in ``order``: the GPU frame's own columns, the (model, format) columns, the
    GPU's class, count and split, then every figure. ``model`` False leaves the model column out."""
    rows, pairs = ranked.gi[order], ranked.ki[order]
    data = {c: values[rows] for c, values in prep.columns.items() if c not in _ADDED_COLUMNS}
    data.update({c: values[pairs] for c, values in ranked.pairs.items() if model or c != "model"})
    data.update(hardware_class=prep.hw[rows], count=prep.count[rows], split=prep.split[rows])
    data.update({k: v[order] for k, v in ranked.figures.items()})
    return data


def _frame(prep: GPUPrep, ranked: _Ranked, order: np.ndarray, model: bool = True) -> pd.DataFrame:
    """Return the answer as a frame; text columns are taken from pandas string arrays built once per GPU frame and
    per ranking (converting a long object column to text is most of a frame's cost otherwise)."""
    rows, pairs = ranked.gi[order], ranked.ki[order]
    data = {c: values.take(rows) for c, values in prep.frame_columns.items() if c not in _ADDED_COLUMNS}
    for c, values in ranked.pairs.items():
        if model or c != "model":
            data[c] = (pd.array(values, dtype="str") if values.dtype == object else values).take(pairs)
    data.update(hardware_class=prep.text_columns["hw"].take(rows), count=prep.count[rows])
    data["split"] = prep.text_columns["split"].take(rows)
    for k, v in ranked.figures.items():
        # Text figures (what binds a step) become string arrays here: pandas would otherwise infer each cell's type.
        data[k] = pd.array(v[order], dtype="str") if v.dtype == object else v[order]
    return pd.DataFrame(data, copy=False)


def _rank_frame(
    model: ModelArch,
    quants: Sequence[Quant],
    gpus: pd.DataFrame,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None,
    sort: bool = True,
    prep: GPUPrep | None = None,
) -> pd.DataFrame:
    """Return one row per (GPU row, quant) with every figure: fitting rows first, fastest first, then the rest in
    input order (format by format, GPU row by GPU row).

    GPU rows may carry count/split/offload columns (the build planner's expansion).
    """
    prep = prep if prep is not None else prepare_gpus(gpus)
    ranked = _rank_arrays([model], [quants], prep, workload, calibration)
    return _frame(prep, ranked, ranked.order() if sort else np.arange(len(ranked.gi)), model=False)


def rank_gpus(
    model: ModelArch,
    quants: Sequence[Quant],
    gpus: pd.DataFrame,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None = None,
    prep: GPUPrep | None = None,
) -> pd.DataFrame:
    """Return one row per (GPU, quant), computed in one numpy pass: fitting rows first, fastest first, then the rows
    that do not fit in input order.

    ``prep`` is ``prepare_gpus(gpus)`` when the caller keeps it between rankings of the same frame.
    """
    return _rank_frame(model, quants, gpus, workload, calibration, prep=prep)


def rank_gpu_columns(
    model: ModelArch,
    quants: Sequence[Quant],
    workload: Workload,
    prep: GPUPrep,
    calibration: Sequence[CalibrationFactor] | None = None,
) -> dict[str, np.ndarray]:
    """Return rank_gpus's answer as columns (name -> array, same rows, same order), without building a frame.

    For callers that read a few columns of a large ranking: a page that shows some dozen rows of thousands.
    """
    ranked = _rank_arrays([model], [quants], prep, workload, calibration)
    return _columns(prep, ranked, ranked.order(), model=False)


def rank_models(
    models: Sequence[ModelArch],
    quants_per_model: Sequence[Sequence[Quant]],
    gpu: GPUSpec,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None = None,
    count: int = 1,
    split: str = "layer",
    offload_ram_gb: float = 0.0,
    ram_bandwidth_gb_s: float = 0.0,
) -> pd.DataFrame:
    """Return one row per (model, format) on one GPU build: fitting rows first, fastest first, then the rest in
    input order (model by model, format by format).

    With ``offload_ram_gb`` (and its bandwidth), a format that does not fit may keep weights in system RAM.
    """
    row = {k: v for k, v in asdict(gpu).items()}
    row.update(
        {"count": count, "split": split, "offload_ram_gb": offload_ram_gb, "ram_bandwidth_gb_s": ram_bandwidth_gb_s}
    )
    prep = prepare_gpus(pd.DataFrame([row]))
    if not any(quants_per_model):
        return pd.DataFrame(columns=["model", "quant", *RESULT_COLUMNS])
    ranked = _rank_arrays(models, quants_per_model, prep, workload, calibration)
    df = _frame(prep, ranked, ranked.order())
    return df[["model", *[c for c in df.columns if c != "model"]]]


def rank_builds(
    model: ModelArch,
    quant: Quant,
    gpus: pd.DataFrame,
    workload: Workload,
    calibration: Sequence[CalibrationFactor] | None = None,
    max_gpus: int = 8,
    splits: Sequence[str] = ("layer", "tensor"),
    offload_ram_gb: float = 0.0,
    ram_bandwidth_gb_s: float = 0.0,
    include_offload: bool = False,
) -> pd.DataFrame:
    """Return the builds that fit (GPU x count 1..max_gpus x split), cheapest first, with price, TDP and speed."""
    g = len(gpus)
    counts = np.arange(1, max_gpus + 1)
    # Every (gpu, count, split) combination an engine can run; count 1 only once (the split does not matter
    # for one card). Each combination is estimated for the engine that runs it (physics/builds.py).
    combos = [(c, s) for c in counts for s in splits if c > 1 or s == splits[0]]
    combos = [(c, s) for c, s in combos if build_problem(model, quant.kind, quant.name, int(c), s) is None]
    frames = []
    for engine in sorted({engine_for(quant.kind, s, int(c), workload.backend) for c, s in combos}):
        mine = [(c, s) for c, s in combos if engine_for(quant.kind, s, int(c), workload.backend) == engine]
        cc = np.array([c for c, _ in mine])
        ss = np.array([s for _, s in mine], dtype=object)
        gi = np.tile(np.arange(g), len(mine))
        expanded = gpus.iloc[gi].reset_index(drop=True)
        expanded["count"] = np.repeat(cc, g)
        expanded["split"] = np.repeat(ss, g)
        expanded["offload_ram_gb"] = offload_ram_gb if include_offload else 0.0
        expanded["ram_bandwidth_gb_s"] = ram_bandwidth_gb_s if include_offload else 0.0
        part = _rank_frame(model, [quant], expanded, replace(workload, backend=engine), calibration)
        part["engine"] = engine
        frames.append(part)
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    ok = df["fits_with_offload"] if include_offload else df["fits"]
    df = df[ok.to_numpy()].copy()
    df["total_price_usd"] = pd.to_numeric(df.get("price_usd"), errors="coerce") * df["count"]
    df["total_tdp_w"] = pd.to_numeric(df.get("tdp_w"), errors="coerce") * df["count"]
    df = df.sort_values(["total_price_usd", "decode_tok_s"], ascending=[True, False], na_position="last")
    return df.reset_index(drop=True)


def gpus_frame(gpus: Sequence[GPUSpec]) -> pd.DataFrame:
    """Return a rank_gpus input DataFrame from GPUSpec objects (slug = lower-case name with dashes)."""
    rows = []
    for gpu in gpus:
        row = asdict(gpu)
        row["slug"] = gpu.name.lower().replace(" ", "-")
        rows.append(row)
    return pd.DataFrame(rows)


def _json_ready(value: object) -> object:
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
