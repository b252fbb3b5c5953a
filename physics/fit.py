"""Fits the estimator's efficiencies and fixed costs to the public measurement set, and scores them honestly.

    python -m physics.fit            fit, write physics/data/fitted.json, print the leave-one-source-out report
    python -m physics.fit --report   print the report for the shipped file without writing it
    python -m physics.fit --check    exit 1 when the shipped file is not what a fresh fit gives
    python -m physics.fit --sources  print where the leave-one-source-out error comes from, source by source

The model (docs/estimator.md, physics/speed.py): a batch-1 decode step takes
``bytes / (bandwidth x efficiency) + step_s + layers x layer_s + active params / FP32 rate x vector factor`` plus,
on several GPUs, ``(n - 1) x hop_s`` for a layer split or ``2 x layers x allreduce_s`` for tensor parallel; a prompt
takes
``FLOPs / (TFLOPS x prefill efficiency) + prefill_s`` plus the weights' re-reads and the attention. Every parameter is linear in
the time, so each group is a small non-negative least-squares fit on relative error. Groups nest: all rows, then
engine, then engine x hardware class, then engine x hardware class x precision class; each level is pulled
towards its parent, so a group with few rows stays close to what the wider data says.

The headline accuracy is leave-one-source-out: the rows of one source (one repository, thread or page, whoever
measured them) are predicted by a fit made without them.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from physics import speed
from physics.arch import token_layers
from physics.builds import LAYER_ONLY_ENGINES
from physics.estimator import (
    DECODE_COST_FIELDS,
    PREFILL_COST_FIELDS,
    _experts_visited,
    _hardware_class_vec,
    _interconnect,
    _precision_class_bpw,
)

DATA = Path(__file__).resolve().parent / "data"
MEASUREMENTS = DATA / "measurements"
FITTED = DATA / "fitted.json"
# Query heads and hidden size per model of the set (the measurement files record KV heads only), each with its basis.
MODEL_HEADS = DATA / "model_heads.csv"
# Experts and experts per token of each mixture-of-experts model of the set, each with its config.json basis.
MODEL_EXPERTS = DATA / "model_experts.csv"
# Sliding-window layers and their window of each model of the set that has both kinds of layer (from the configs).
MODEL_WINDOWS = DATA / "model_windows.csv"
# Rows a source published that do not measure the GPU's rate (its own other rows contradict them), each with why:
# they stay in the set's files and are neither fitted, scored nor shown.
SET_ASIDE = DATA / "set_aside.csv"
SET_ASIDE_KEY = ("file", "gpu", "model", "format", "metric")
# The GPU catalog: the int8 rate that, halved, gives the dense fp16-accumulate tensor rate (speed.prompt_tflops).
GPU_CATALOG = DATA.parent.parent / "hardware" / "data" / "gpus"

# A group gets its own parameters with at least this many rows; fewer rows fall back to the parent's.
MIN_ROWS = 6
# ... and rows from at least this many sources, so one page's quirks never become a group's parameters.
MIN_SOURCES = 2
# Pull towards the parent, as pseudo-rows of relative error per parameter (higher: closer to the parent).
SHRINK = 2.0
# The share of leave-one-source-out decode rows the published range should hold.
RANGE_TARGET = 0.80
# Engines that run another engine's kernels are scored with it.
ENGINE_FAMILY = {"ollama": "llama.cpp"}
# The group of every engine but llama.cpp: an engine with too few rows of its own is estimated from the other
# engines' rows (compiled or fused kernels, CUDA graphs), on its hardware class and then on all hardware, before the
# all-engine groups, of whose rows llama.cpp holds three in four.
OTHER_ENGINES = "not-llama.cpp"
# Engines the estimator may be asked for besides llama.cpp (physics.vocab.Engine, and those the set measures): each
# gets its own calibration rows where the fit estimates it from OTHER_ENGINES (planner.published shows estimates for
# these and llama.cpp).
ESTIMATED_OTHER_ENGINES = ("exllamav2", "gpt-fast", "lmdeploy", "mlc", "mlx", "sglang", "tensorrt-llm", "vllm")
# The bandwidth (decode) or tensor-rate (prefill) share, then the estimator's costs under their own names.
DECODE_PARAMS = ("inv_efficiency", *DECODE_COST_FIELDS)
PREFILL_PARAMS = ("inv_efficiency", *PREFILL_COST_FIELDS)
# A prompt without flash attention writes its fp32 score matrix and reads it back, bytes per score (llama.cpp's
# CUDA path: the K x Q product written, 4; the softmax reading it and writing its own, 8; the fp16 copy the product
# with V takes, 4 + 2; that product reading it, 2). The fit takes that traffic at the bandwidth as known physics
# (prefill_known); the estimator has none, as it assumes flash attention, which its check command turns on.
SCORE_BYTES = 20
# Rounds of reweighting in each group's fit (the error measure converges in two or three).
IRLS_ROUNDS = 4
# Physical floors: decode reads memory no faster than the datasheet bandwidth (efficiency <= 1); a quantized prompt
# may run int8 tensor kernels, twice the fp16 tensor rate the set records (prefill efficiency <= 2), while its
# attention (fp16) runs no faster than that rate (attention factor >= 1).
DECODE_LOWER = np.array([1.0] + [0.0] * (len(DECODE_PARAMS) - 1))
PREFILL_LOWER = np.array(
    [{"inv_efficiency": 0.5, "prefill_attention_inv_efficiency": 1.0}.get(n, 0.0) for n in PREFILL_PARAMS]
)
# ... and its costs stay physically plausible, set before any fit and never tuned to its score: a prompt's fixed time
# (graph, launches, the first token's sampling) at most 50 ms, and the weights re-read per micro-batch at no less
# than half the datasheet bandwidth. Without them a group with few sources put 0.9 s on every Intel prompt. A prompt
# has no fixed cost per layer (until 2026-12-04 it had one, at most 2 ms): a layer's per-prompt work is counted in
# its micro-batches' re-reads, and without that parameter the leave-one-source-out prompt error is lower
# (34.8 -> 34.2 %).
PREFILL_UPPER = np.array([np.inf, 0.05, 2.0, np.inf])
# The prompt parameters set by the hardware's own kernels (a backend's flash attention): where an engine's rows on a
# hardware class barely inform one, it comes from that class's rows of every engine (fit_table).
PREFILL_HARDWARE_BOUND = np.array([name == "prefill_attention_inv_efficiency" for name in PREFILL_PARAMS])
# How each kind of row is fitted (fit_table and leave_one_source_out take these); a prompt is also looked up with
# NVIDIA precision siblings (lookup).
DECODE_FIT = {"lower": DECODE_LOWER}
PREFILL_FIT = {"lower": PREFILL_LOWER, "upper": PREFILL_UPPER, "hardware_bound": PREFILL_HARDWARE_BOUND}
# Parts with HBM stacks (the set records no memory type; the catalog's memory_type decides in the estimator).
# A fast GDDR7 card such as the RTX 5090 (1,792 GB/s) is not one of them.
HBM_PARTS = r"\b(?:[ABH]100|[AH]800|H200|H20|B200|GB200|V100|P100|Instinct|Data Center GPU Max|Gaudi)\b"
# llama.cpp's CUDA backend runs a quantized prompt's matrix products as int8 tensor-core kernels (MMQ) from June
# 2024 (pull requests 7676 and 7860), at the int8 rate; before that it unpacked the weights to fp16 for cuBLAS. A row
# of a build from before this date is read at the fp16 rate; an undated row is read as a current build.
INT8_MMQ_SINCE = pd.Timestamp("2024-06-08")
# The suffix of a Vulkan prompt's class (prefill_rows): "amd-gddr" + VULKAN for a Radeon under llama.cpp's Vulkan build.
VULKAN = "+vulkan"
# Backends whose layer split pipelines a prompt's micro-batches over the cards (speed.pipeline_share).
PIPELINED_BACKENDS = ("cuda", "rocm")
# A range class needs this many leave-one-source-out rows for its own width.
MIN_RANGE_ROWS = 20
# Efficiencies are written as 1 / inverse; an inverse the fit drove to 0 is read as this (efficiency 1,000).
MIN_INVERSE = 1e-3


def source_group(url: str) -> str:
    """Returns who measured a row: a GitHub repository's thread or files, else the page's site and path."""
    m = re.match(r"https://github\.com/([^/]+/[^/#?]+)(?:/(issues|pull|discussions)/(\d+))?", url)
    if m:
        return m.group(1).lower() + (f"#{m.group(3)}" if m.group(3) else "")
    m = re.match(r"https://([^/]+)(/[^#?]*)?", url)
    return (m.group(1) + (m.group(2) or "")).lower() if m else url


def _vendor(gpu: str, backend: str) -> str:
    name = gpu.lower()
    if "apple" in name or backend == "metal":
        return "apple"
    if any(k in name for k in ("amd", "radeon", "instinct", "ryzen")):
        return "amd"
    if "intel" in name or backend == "sycl":
        return "intel"
    return "nvidia"


def _per_model(path: Path, *columns: str) -> dict[str, tuple[int, ...]]:
    """Returns {model name as the set writes it: the columns' whole numbers} from one of the per-model files."""
    with path.open(encoding="utf-8") as fh:
        return {row["model"]: tuple(int(row[c]) for c in columns) for row in csv.DictReader(fh)}


def _add_per_model(df: pd.DataFrame, table: dict[str, tuple[int, ...]], *columns: str) -> None:
    """Adds the table's figures to every row by model (0 for a model the table does not list)."""
    for i, column in enumerate(columns):
        df[column] = df["model"].map(lambda m, i=i: table[m][i] if m in table else 0).astype(float)


def set_aside(path: Path = SET_ASIDE) -> dict[tuple[str, ...], str]:
    """Returns {(file, gpu, model, format, metric): why its rows are set aside}."""
    with path.open(encoding="utf-8") as fh:
        return {tuple(row[c] for c in SET_ASIDE_KEY): row["reason"] for row in csv.DictReader(fh)}


def model_windows(path: Path = MODEL_WINDOWS) -> dict[str, tuple[int, ...]]:
    """Returns {model name as the set writes it: (sliding-window layers, window)} for its hybrid-attention models."""
    return _per_model(path, "sliding_layers", "sliding_window")


def kv_bytes(d: pd.DataFrame, tokens) -> np.ndarray:
    """Returns one sequence's fp16 KV cache over ``tokens`` of context: K and V per layer and token, each layer
    holding the context or, for a sliding-window layer, at most its window (arch.token_layers)."""
    per_token_layer = 2 * d["kv_heads"].to_numpy(dtype=float) * d["head_dim"].to_numpy(dtype=float) * 2
    layers = token_layers(
        d["layers"].to_numpy(dtype=float),
        d["sliding_layers"].to_numpy(dtype=float),
        d["sliding_window"].to_numpy(dtype=float),
        np.asarray(tokens, dtype=float),
    )
    return per_token_layer * layers


def model_experts(path: Path = MODEL_EXPERTS) -> dict[str, tuple[int, ...]]:
    """Returns {model name as the set writes it: (experts, experts per token)} for its mixture-of-experts models."""
    return _per_model(path, "experts", "experts_per_token")


def chunk_params(p: pd.DataFrame) -> np.ndarray:
    """Returns the parameters one prompt micro-batch reads, as the estimator counts them (`params_chunk`): a dense
    model's all; a MoE's shared part plus the experts min(P, 512) tokens visit, E (1 - (1 - k/E)^u) per layer, each
    expert (over all layers) (total - active) / (E - k) parameters. A 512-token micro-batch of gpt-oss-120b visits
    nearly all 128 experts: about 22 times its 5.1B active parameters."""
    total = p["params_b"].to_numpy(dtype=float) * 1e9
    active = p["active_params_b"].to_numpy(dtype=float) * 1e9
    e, k = p["experts"].to_numpy(dtype=float), p["experts_per_token"].to_numpy(dtype=float)
    moe = e > k
    expert = np.where(moe, (total - active) / np.where(moe, e - k, 1.0), 0.0)
    tokens = np.minimum(p["prompt_tokens"].to_numpy(dtype=float), speed.PROMPT_CHUNK)
    visited = _experts_visited(np.where(moe, e, 0.0), k, tokens)
    return np.where(moe, active - k * expert + visited * expert, active)


def catalog_int8_tops(folder: Path = GPU_CATALOG) -> dict[str, float]:
    """Returns {GPU name or alias: dense int8 TOPS} from the catalog rows that state one."""
    return catalog_figure("int8_tops", folder)


def catalog_figure(column: str, folder: Path = GPU_CATALOG) -> dict[str, float]:
    """Returns {GPU name or alias: the column's value} from the curated catalog rows that state one."""
    out: dict[str, float] = {}
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                try:
                    value = float(row.get(column) or "nan")
                except ValueError:
                    continue
                if not value > 0:
                    continue
                for name in [row["name"], *(a.strip() for a in (row.get("aliases") or "").split(";"))]:
                    if name:
                        out.setdefault(name, value)
    return out


def load_measurements(folder: Path = MEASUREMENTS) -> pd.DataFrame:
    """Returns every row of the measurement set with its group keys and the physics each fit needs."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                row["file"] = path.name
                rows.append(row)
    df = pd.DataFrame(rows)
    reasons = set_aside()
    df["set_aside"] = [reasons.get(key, "") for key in zip(*(df[c] for c in SET_ASIDE_KEY), strict=True)]
    numeric = ["gpu_memory_gb", "gpu_bandwidth_gb_s", "gpu_fp16_tensor_tflops", "gpu_count", "params_b"]
    numeric += ["active_params_b", "layers", "kv_heads", "head_dim", "bits_per_weight", "batch", "context"]
    numeric += ["prompt_tokens", "gen_tokens", "value"]
    for column in numeric:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    # A prompt runs after the cache its row states (llama-bench -d; none stated: a fresh prompt). A decode row without
    # a stated depth is read as generation after its prompt (0 when no prompt is stated either).
    df["prompt_depth"] = df["context"].fillna(0)
    df["context"] = df["context"].fillna(df["prompt_tokens"]).fillna(0)
    df["source"] = df["source_url"].map(source_group)
    df["engine_family"] = df["engine"].map(lambda e: ENGINE_FAMILY.get(e, e))
    vendor = np.array([_vendor(g, b) for g, b in zip(df["gpu"], df["backend"], strict=True)])
    unified = df["interconnect"].eq("unified") | df["gpu"].str.contains("Ryzen AI Max|DGX Spark|GB10|Jetson|Apple")
    segment = np.where(vendor == "apple", "apple-silicon", np.where(unified, "integrated-soc", ""))
    hbm = df["gpu"].str.contains(HBM_PARTS, regex=True) & ~unified
    df["hardware_class"] = _hardware_class_vec(
        vendor, segment, np.where(hbm, "HBM", "GDDR"), df["gpu_bandwidth_gb_s"], unified
    )
    df["precision_class"] = [_precision_class_bpw(b) for b in df["bits_per_weight"]]
    # Weights one batch-1 step reads (active parameters) and the KV cache, fp16; a sliding-window layer holds at most
    # its window (arch.token_layers, as the estimator reads the cache). A decode rate is the mean over the N tokens
    # generated after the stated depth, so its mean step reads the cache at depth + N / 2 (llama-bench tg512 from an
    # empty cache: 256 tokens); the estimator's rate at a context is its step at that context.
    _add_per_model(df, model_windows(), "sliding_layers", "sliding_window")
    weights = df["active_params_b"] * 1e9 * df["bits_per_weight"] / 8
    generating = np.where(df["metric"] == "decode_tok_s", df["gen_tokens"].fillna(0) / 2, 0.0)
    df["bytes_step"] = weights + kv_bytes(df, df["context"] + generating) * df["batch"]
    df["tensor"] = df["split"].isin(["tensor", "row"])
    heads = _per_model(MODEL_HEADS, "heads", "hidden")
    missing = sorted(set(df["model"]) - set(heads))
    if missing:
        raise ValueError(f"{MODEL_HEADS.name} lacks the query heads of {missing}")
    _add_per_model(df, heads, "heads", "hidden")
    experts = model_experts()
    moe = df["active_params_b"] < df["params_b"] * 0.95
    missing = sorted(set(df.loc[moe, "model"]) - set(experts))
    if missing:
        raise ValueError(f"{MODEL_EXPERTS.name} lacks the experts of {missing}")
    _add_per_model(df, experts, "experts", "experts_per_token")
    int8 = catalog_int8_tops()
    df["gpu_int8_tops"] = df["gpu"].map(lambda g: int8.get(g, np.nan)).astype(float)
    df["link_gb_s"] = link_gb_s(df)
    df["gpu_vector_tflops"] = vector_tflops(df)
    df["prompt_tflops"] = speed.prompt_tflops(df["gpu_fp16_tensor_tflops"], df["gpu_int8_tops"])
    llama = (df["engine_family"] == "llama.cpp").to_numpy()
    dated = source_dates(df["source_date"])
    current = (dated >= INT8_MMQ_SINCE).to_numpy() | dated.isna().to_numpy()
    quantized = df["precision_class"].isin(["int4", "int8"]).to_numpy()
    int8_mmq = llama & (df["backend"] == "cuda").to_numpy() & quantized & (df["gpu_int8_tops"] > 0).to_numpy() & current
    # The rate a prompt's weight products run at (the attention stays at the fp16 rate).
    df["linear_tflops"] = np.where(int8_mmq, df["gpu_int8_tops"], df["prompt_tflops"])
    # Flash attention as the row states it; unstated, llama.cpp's is read as off (llama-bench's `-fa 0` default for
    # most of the set's builds) and every other engine's as on (they run fused attention kernels).
    df["flash_attention"] = df["flash_attention"].where(df["flash_attention"] != "", np.where(llama, "off", "on"))
    layer_split = (df["split"] == "layer") & (df["gpu_count"] > 1)
    df["pipelined"] = llama & layer_split.to_numpy() & df["backend"].isin(PIPELINED_BACKENDS).to_numpy()
    return df


def source_dates(dates: pd.Series) -> pd.Series:
    """Returns each row's source date as a timestamp (a month alone reads as its first day; none: NaT)."""
    text = dates.fillna("").astype(str)
    return pd.to_datetime(text.where(text.str.len() != 7, text + "-01"), format="%Y-%m-%d", errors="coerce")


def link_gb_s(df: pd.DataFrame) -> np.ndarray:
    """Returns each row's card-to-card link as the estimator reads it (estimator._interconnect): the GPU's NVLink
    figure from the catalog on an NVLink build, else PCIe of its generation (4 when the catalog states none)."""
    nvlink, pcie_gen = catalog_figure("nvlink_gb_s"), catalog_figure("pcie_gen")
    figure = df["gpu"].map(lambda g: nvlink.get(g, np.nan)).astype(float).to_numpy()
    gen = df["gpu"].map(lambda g: pcie_gen.get(g, np.nan)).astype(float).to_numpy()
    on_nvlink = np.where((df["interconnect"] == "nvlink").to_numpy(), figure, np.nan)
    return _interconnect(on_nvlink, gen, np.full(len(df), np.nan))[0]


def vector_tflops(df: pd.DataFrame) -> np.ndarray:
    """Returns each row's FP32 rate as the estimator reads it: the catalog's figure for the GPU; for an Apple chip
    the catalog does not list by that name, the row's own rate (Apple states one rate for FP32 and FP16); else 0
    (no vector term for that row)."""
    fp32 = catalog_figure("fp32_tflops")
    rate = df["gpu"].map(lambda g: fp32.get(g, np.nan)).astype(float).to_numpy()
    apple = df["gpu"].str.contains("Apple").to_numpy()
    own = df["gpu_fp16_tensor_tflops"].to_numpy(dtype=float)
    return np.nan_to_num(np.where(np.isnan(rate) & apple, own, rate))


def decode_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Returns the single-sequence decode rows the decode fit uses (aggregate batched rows are scored apart)."""
    d = df[(df["metric"] == "decode_tok_s") & (df["batch"] == 1) & (df["set_aside"] == "")].copy()
    d["time_s"] = 1.0 / d["value"]
    return d[np.isfinite(decode_features(d)).all(axis=1) & (d["time_s"] > 0)]


def prefill_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Returns the prompt-processing rows with a tensor rate and a prompt length, timed for the whole prompt."""
    # One sequence only: a batched TTFT includes queueing behind the other prompts.
    one = (df["batch"].fillna(1) == 1) & (df["set_aside"] == "")
    p = df[df["metric"].isin(["prefill_tok_s", "ttft_s"]) & (df["prompt_tokens"] > 0) & one].copy()
    p = p[p["gpu_fp16_tensor_tflops"] > 0]
    p["time_s"] = np.where(p["metric"] == "ttft_s", p["value"], p["prompt_tokens"] / p["value"])
    # A prompt runs its backend's matrix kernels, and Vulkan's shaders are neither CUDA's, ROCm's, SYCL's nor Metal's:
    # a Vulkan prompt is fitted in a class of its own beside its hardware class (VULKAN). The estimator looks a GPU's
    # prompt up in its hardware class, so it estimates the vendor's own backend. Decode, bound by the bandwidth, keeps
    # one class per hardware.
    vulkan = (p["backend"] == "vulkan").to_numpy()
    p["hardware_class"] = np.where(vulkan, p["hardware_class"] + VULKAN, p["hardware_class"])
    return p[np.isfinite(prefill_features(p)).all(axis=1) & (p["time_s"] > 0)]


def decode_features(d: pd.DataFrame) -> np.ndarray:
    """Returns the decode design matrix: seconds per unit of each DECODE_PARAMS entry, one row per measurement."""
    n = d["gpu_count"].to_numpy(dtype=float)
    tensor = d["tensor"].to_numpy(dtype=bool)
    sharing = np.where(tensor, n, 1.0)
    memory = speed.memory_s(d["bytes_step"], d["gpu_bandwidth_gb_s"], 1.0, sharing)
    layers = d["layers"].to_numpy(dtype=float)
    hops = np.where(~tensor, n - 1, 0.0)
    allreduces = np.where(tensor & (n > 1), 2 * layers, 0.0)
    pcie = d["interconnect"].to_numpy() == "pcie"
    moe = d["active_params_b"].to_numpy(dtype=float) < d["params_b"].to_numpy(dtype=float) * 0.95
    vector = speed.vector_s(d["active_params_b"].to_numpy(dtype=float) * 1e9, d["gpu_vector_tflops"], sharing)
    return np.column_stack(
        [
            memory,
            np.ones(len(d)),
            layers,
            np.where(moe, layers, 0.0),
            hops,
            np.where(pcie, 0.0, allreduces),
            np.where(pcie, allreduces * speed.allreduce_steps(n), 0.0),
            vector,
        ]
    )


def prefill_features(p: pd.DataFrame) -> np.ndarray:
    """Returns the prefill design matrix, one row per measurement, in PREFILL_PARAMS order.

    Columns: the weights' FLOPs (2 x active x P) at the tensor peak; 1; the reads of the weights a
    micro-batch touches (chunk_params: a MoE's visited experts) and of the KV cache already there once per prompt
    micro-batch, at the bandwidth; and, with flash attention, the attention FLOPs over the cache depth D and the
    prompt itself, 4 x layers x heads x head_dim x P x (D + P / 2), at the tensor peak (without it, the score
    matrix's traffic is known physics: prefill_known).
    The tensor peak is speed.prompt_tflops (the dense fp16-accumulate rate), and for the weights' products of a
    quantized prompt on llama.cpp's CUDA backend the int8 rate (`linear_tflops`); query heads come from
    physics/data/model_heads.csv. On a pipelined layer split (CUDA, HIP) the work that scales with the prompt takes
    speed.pipeline_share of its sequential time.
    """
    tokens = p["prompt_tokens"].to_numpy(dtype=float)
    layers = p["layers"].to_numpy(dtype=float)
    depth = p["prompt_depth"].to_numpy(dtype=float)
    flops = 2 * p["active_params_b"].to_numpy(dtype=float) * 1e9 * tokens
    sharing = np.where(p["tensor"].to_numpy(dtype=bool), p["gpu_count"].to_numpy(dtype=float), 1.0)
    peak = p["prompt_tflops"].to_numpy(dtype=float)
    compute = speed.compute_s(flops, p["linear_tflops"].to_numpy(dtype=float), 1.0, sharing)
    weights = chunk_params(p) * p["bits_per_weight"].to_numpy(dtype=float) / 8
    kv = kv_bytes(p, depth)
    chunks = speed.chunked_weights_s(tokens, speed.memory_s(weights + kv, p["gpu_bandwidth_gb_s"], 1.0, sharing))
    q_dim = p["heads"].to_numpy(dtype=float) * p["head_dim"].to_numpy(dtype=float)
    attention = speed.compute_s(speed.attention_flops(layers, q_dim, tokens, depth), peak, 1.0, sharing)
    flash = (p["flash_attention"] == "on").to_numpy()
    share = _pipeline_share(p)
    return np.column_stack([compute * share, np.ones(len(p)), chunks * share, np.where(flash, attention, 0.0) * share])


def _pipeline_share(p: pd.DataFrame) -> np.ndarray:
    """Returns the share of its sequential time a prompt's work takes: speed.pipeline_share on a pipelined split."""
    tokens = p["prompt_tokens"].to_numpy(dtype=float)
    return np.where(p["pipelined"].to_numpy(dtype=bool), speed.pipeline_share(tokens, p["gpu_count"]), 1.0)


def score_matrix_s(p: pd.DataFrame) -> np.ndarray:
    """Returns the seconds a prompt without flash attention spends writing and reading back its fp32 score matrix:
    layers x query heads x P x (D + P / 2) scores of SCORE_BYTES each at the bandwidth (0 with flash attention)."""
    tokens = p["prompt_tokens"].to_numpy(dtype=float)
    scores = p["layers"].to_numpy(dtype=float) * p["heads"].to_numpy(dtype=float) * tokens
    scores = scores * (p["prompt_depth"].to_numpy(dtype=float) + tokens / 2)
    sharing = np.where(p["tensor"].to_numpy(dtype=bool), p["gpu_count"].to_numpy(dtype=float), 1.0)
    seconds = speed.memory_s(scores * SCORE_BYTES, p["gpu_bandwidth_gb_s"], 1.0, sharing) * _pipeline_share(p)
    return np.where((p["flash_attention"] == "on").to_numpy(), 0.0, seconds)


def prefill_offsets(p: pd.DataFrame) -> np.ndarray:
    """Returns the seconds each prompt spends on the link, which the fit takes as known (no parameter).

    The estimator adds the same term with nothing fitted (speed.comm_s: a layer split's hand-offs, tensor parallel's
    all-reduces; the fitted fixed costs stand for the latency, so none is added here either). llama.cpp's
    `-sm row` / `-sm tensor` rows move far more: every matrix product's output, gathered in fp32
    (speed.row_split_gather_s). The activation is the model's hidden size wide (model_heads.csv, from each config),
    as the estimator counts it; Qwen3, Gemma 3 and gpt-oss differ from query heads x head dim there.
    """
    tokens = p["prompt_tokens"].to_numpy(dtype=float)
    layers = p["layers"].to_numpy(dtype=float)
    count = p["gpu_count"].to_numpy(dtype=float)
    width = p["hidden"].to_numpy(dtype=float)
    tensor = p["tensor"].to_numpy(dtype=bool)
    link = p["link_gb_s"].to_numpy(dtype=float)
    generic = speed.comm_s(width, tokens, layers, count, tensor, link, 0.0)
    out_width = p["active_params_b"].to_numpy(dtype=float) * 1e9 / layers / width
    gathered = speed.row_split_gather_s(layers, tokens, out_width, count, link)
    llama_split = tensor & (p["engine_family"] == "llama.cpp").to_numpy()
    return np.where(llama_split, gathered, generic)


def prefill_known(p: pd.DataFrame) -> np.ndarray:
    """Returns the seconds of each prompt the fit takes as known physics: the link (prefill_offsets) and, without
    flash attention, the score matrix's traffic (score_matrix_s)."""
    return prefill_offsets(p) + score_matrix_s(p)


def planned(rows: pd.DataFrame) -> np.ndarray:
    """Returns which rows measured a build the planner makes (physics.builds): every row but a layer-only engine's
    (llama.cpp's) row and tensor split over several cards (`-sm row`, `-sm tensor`). The planner refuses those builds
    (a GGUF format runs as a layer split), so no page or API answer shows an estimate for them and the headline error,
    the per-engine lines and the calibrated ranges leave them out. They are still fitted, with their link time as
    known physics (prefill_offsets), and the report gives their own error on a line of its own."""
    several = rows["gpu_count"].to_numpy(dtype=float) > 1
    layer_only = rows["engine_family"].isin(LAYER_ONLY_ENGINES).to_numpy()
    return ~(layer_only & rows["tensor"].to_numpy(dtype=bool) & several)


def nnls(a: np.ndarray, b: np.ndarray, iterations: int = 200) -> np.ndarray:
    """Returns x >= 0 minimising |a x - b| (Lawson and Hanson's active-set method; a has a handful of columns)."""
    m, k = a.shape
    x = np.zeros(k)
    passive = np.zeros(k, dtype=bool)
    for _ in range(iterations):
        w = a.T @ (b - a @ x)
        if passive.all() or (w[~passive] <= 1e-12 * max(1.0, np.abs(w).max())).all():
            break
        j = np.argmax(np.where(passive, -np.inf, w))
        passive[j] = True
        while True:
            z = np.zeros(k)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            blocked = passive & (z <= 0)
            alpha = np.min(x[blocked] / (x[blocked] - z[blocked]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
    return x


def _fit_group(
    features: np.ndarray,
    times: np.ndarray,
    parent: np.ndarray | None,
    lower: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    upper: np.ndarray | None = None,
) -> np.ndarray:
    """Returns non-negative parameters minimising relative error, pulled towards the parent's values.

    The error of a row is (measured - predicted) / predicted time, which is the rate's relative error,
    predicted rate / measured rate - 1: the measure the report gives (MAPE), so the fit minimises what it is scored
    on. An estimate twice too fast costs 100 %, one twice too slow 50 %, as in the report. It is solved as a few
    rounds of weighted non-negative least squares (IRLS), starting from the error relative to the measurement. Each
    parameter stays at or above `lower` (0 by default) and at or below `upper` (none by default): a parameter the
    solution puts above its bound is held at the bound and the rest solved again. `offsets`: seconds of each row
    taken as known (predicted = features x parameters + offset).
    """
    lower = np.zeros(features.shape[1]) if lower is None else lower
    offsets = np.zeros(len(times)) if offsets is None else offsets
    scale_rows = times.copy()
    x = lower.copy()
    for _ in range(IRLS_ROUNDS):
        a = features / scale_rows[:, None]
        b = (times - offsets) / scale_rows
        if parent is not None:
            scale = np.where(parent > 0, parent, 1.0)
            informative = np.abs(features).sum(axis=0) > 0
            weight = np.where(informative, np.sqrt(SHRINK), 1e3)  # a parameter no row sees keeps its parent's
            a = np.vstack([a, np.diag(weight / scale)])
            b = np.concatenate([b, weight * np.where(parent > 0, 1.0, 0.0)])
        x = lower + _bounded_nnls(a, b - a @ lower, None if upper is None else upper - lower)
        predicted = np.maximum(features @ x + offsets, 1e-9)
        scale_rows = predicted
    return x


def _bounded_nnls(a: np.ndarray, b: np.ndarray, upper: np.ndarray | None) -> np.ndarray:
    """Returns nnls(a, b) with each parameter at most `upper`: one over it is held there and the others solved again."""
    held = np.zeros(a.shape[1], dtype=bool)
    while True:
        x = np.zeros(a.shape[1])
        x[held] = upper[held] if upper is not None else 0.0
        x[~held] = nnls(a[:, ~held], b - a[:, held] @ x[held])
        over = ~held & (x > upper) if upper is not None else np.zeros_like(held)
        if not over.any():
            return x
        held |= over


LEVELS = (
    ("engine_family",),
    ("engine_family", "hardware_class"),
    ("engine_family", "hardware_class", "precision_class"),
)


def fit_table(
    rows: pd.DataFrame,
    features: np.ndarray,
    lower: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    hardware_bound: np.ndarray | None = None,
) -> dict[tuple[str, str, str], tuple[np.ndarray, int, int]]:
    """Returns {(engine, hardware class, precision class): (params, rows, sources)}, '*' for a wider group.

    Besides the engine's own groups, every hardware class gets one over all engines ('*', class, '*'): an engine the
    set barely measures (one source) is estimated from the same hardware's other engines before all rows. Within an
    engine, a `hardware_bound` parameter that fewer than MIN_ROWS of a hardware class's rows inform (a feature they
    all lack, such as flash-attention prompts where the engine's rows on that hardware ran without it) is pulled
    towards that hardware class's value over all engines, where enough rows inform it there, rather than the
    engine's over all hardware.
    """
    table: dict[tuple[str, str, str], tuple[np.ndarray, int, int]] = {}
    informed: dict[tuple[str, str, str], np.ndarray] = {}
    times = rows["time_s"].to_numpy(dtype=float)
    offsets = np.zeros(len(rows)) if offsets is None else offsets

    def add(key: tuple[str, str, str], group: pd.DataFrame, parent: tuple[str, str, str] | None) -> None:
        """Fits one group, pulled towards its parent's parameters, when it has enough rows and sources."""
        if parent is not None and (
            parent not in table or len(group) < MIN_ROWS or group["source"].nunique() < MIN_SOURCES
        ):
            return
        index = rows.index.get_indexer(group.index)
        seen = (features[index] != 0).sum(axis=0) >= MIN_ROWS
        prior = None if parent is None else table[parent][0].copy()
        hardware = ("*", key[1], "*")
        if prior is not None and hardware_bound is not None and "*" not in key[:2] and hardware in table:
            take = hardware_bound & ~seen & informed[hardware]
            prior[take] = table[hardware][0][take]
        params = _fit_group(features[index], times[index], prior, lower, offsets[index], upper)
        table[key] = (params, len(group), group["source"].nunique())
        informed[key] = seen

    add(("*", "*", "*"), rows, None)
    for hw, group in rows.groupby("hardware_class"):
        add(("*", hw, "*"), group, ("*", "*", "*"))
    others = rows[rows["engine_family"] != "llama.cpp"]
    add((OTHER_ENGINES, "*", "*"), others, ("*", "*", "*"))
    for hw, group in others.groupby("hardware_class"):
        add((OTHER_ENGINES, hw, "*"), group, ("*", hw, "*"))
    for level in LEVELS:
        for key, group in rows.groupby(list(level)):
            key = key if isinstance(key, tuple) else (key,)
            add(tuple(key) + ("*",) * (3 - len(key)), group, tuple(key[:-1]) + ("*",) * (4 - len(key)))
    return table


def lookup(
    table: dict, engine: str, hw: str, prec: str, siblings: bool = False
) -> tuple[tuple[str, str, str], np.ndarray]:
    """Returns the most specific fitted group for a row and its parameters: the engine's own (hardware and precision
    class, hardware class, all its rows), then, for an engine other than llama.cpp, the other engines' on the
    hardware class and over all hardware (OTHER_ENGINES: a kind of engine, which outranks hardware as an engine
    does), then the hardware class's over all engines, then all rows. The estimator's find_calibration ranks them
    the same way (engine outranks hardware); _factors writes the rows an engine takes from OTHER_ENGINES under the
    engine's own name.

    With `siblings` (prompts), a precision class the engine has no group for on this hardware class is taken from
    the engine's group for it on another class of the same vendor (NVIDIA's GDDR and HBM parts run the same cuBLAS
    and int8 kernels) before the engine's other precisions on this class: an F16 prompt on an H100 runs as an F16
    prompt on an RTX 4090 does, not as a Q4_K_M one on the H100."""
    near = [(engine, other, prec) for other in _vendor_siblings(table, engine, hw, prec)] if siblings else []
    others = [] if engine == "llama.cpp" else [(OTHER_ENGINES, hw, "*"), (OTHER_ENGINES, "*", "*")]
    own = ((engine, hw, prec), *near, (engine, hw, "*"), (engine, "*", "*"))
    for key in (*own, *others, ("*", hw, "*"), ("*", "*", "*")):
        if key in table:
            return key, table[key][0]
    raise KeyError("no root group")


def gpu_class(hw: str) -> bool:
    """Returns whether a hardware class is one a GPU's estimate looks up ('*' included), not a Vulkan prompt class the
    fit alone keeps."""
    return not hw.endswith(VULKAN)


def _vendor_siblings(table: dict, engine: str, hw: str, prec: str) -> list[str]:
    """Returns, for an NVIDIA hardware class, the engine's other NVIDIA classes that have a group for the precision
    class, the one with most rows first (AMD's HBM and GDDR parts are CDNA and RDNA, with kernels of their own; a
    Vulkan prompt class runs other kernels than CUDA's and is no sibling)."""
    if not hw.startswith("nvidia-") or not gpu_class(hw):
        return []
    found = [
        k
        for k in table
        if k[0] == engine and k[2] == prec and k[1].startswith("nvidia-") and gpu_class(k[1]) and k[1] != hw
    ]
    return [k[1] for k in sorted(found, key=lambda k: (-table[k][1], k[1]))]


def depth(key: tuple[str, str, str]) -> int:
    """Returns how specific a group is: 0 for all rows, 3 for engine x hardware class x precision class."""
    return sum(part != "*" for part in key)


def predict(
    table: dict,
    rows: pd.DataFrame,
    features: np.ndarray,
    depths: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    siblings: bool = False,
) -> np.ndarray:
    """Returns the predicted time of each row from the table's most specific group (its depth into `depths`)."""
    out = np.zeros(len(rows)) if offsets is None else offsets.astype(float).copy()
    for i, (engine, hw, prec) in enumerate(
        zip(rows["engine_family"], rows["hardware_class"], rows["precision_class"], strict=True)
    ):
        key, params = lookup(table, engine, hw, prec, siblings)
        out[i] += features[i] @ params
        if depths is not None:
            depths[i] = depth(key)
    return out


def leave_one_source_out(
    rows: pd.DataFrame,
    features: np.ndarray,
    depths: np.ndarray | None = None,
    lower: np.ndarray | None = None,
    offsets: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    hardware_bound: np.ndarray | None = None,
    siblings: bool = False,
) -> np.ndarray:
    """Returns each row's predicted time from a fit made without any row of its source.

    `depths`, when given, receives the depth of the group each row was predicted from.
    """
    out = np.empty(len(rows))
    sources = rows["source"].to_numpy()
    for source in np.unique(sources):
        held = sources == source
        known = None if offsets is None else offsets[~held]
        table = fit_table(rows[~held], features[~held], lower, known, upper, hardware_bound)
        part = np.empty(held.sum(), dtype=int)
        known_held = None if offsets is None else offsets[held]
        out[held] = predict(table, rows[held], features[held], part, known_held, siblings)
        if depths is not None:
            depths[held] = part
    return out


@dataclass(frozen=True)
class Score:
    rows: int
    sources: int
    mape: float  # mean absolute error of the rate, percent
    median_ape: float
    within_25: float  # share of rows within +-25 %


def score(measured_time: np.ndarray, predicted_time: np.ndarray, sources: np.ndarray) -> Score:
    """Returns the error of predicted rates (1 / time) against measured rates."""
    ape = np.abs(measured_time / predicted_time - 1) * 100
    return Score(
        len(ape),
        len(set(sources)),
        float(np.mean(ape)),
        float(np.median(ape)),
        float(np.mean(ape <= 25) * 100),
    )


def rate_error(measured_time: np.ndarray, predicted_time: np.ndarray) -> np.ndarray:
    """Returns |measured rate / predicted rate - 1|: the half-width a range around the estimate needs to hold it."""
    return np.abs(predicted_time / measured_time - 1)


def range_widths(error: np.ndarray, depths: np.ndarray, several: np.ndarray) -> dict[str, float]:
    """Returns the range half-width per (group depth, one or several GPUs), each holding RANGE_TARGET of its rows.

    A class with fewer than MIN_RANGE_ROWS rows takes the width of all rows with the same GPU count class; a less
    specific group is never narrower than a more specific one.
    """
    widths: dict[str, float] = {}
    for gpus, mask in (("one", ~several), ("several", several)):
        pooled = (
            float(np.quantile(error[mask], RANGE_TARGET)) if mask.any() else float(np.quantile(error, RANGE_TARGET))
        )
        narrower = 0.0
        for d in (3, 2, 1, 0):
            rows = mask & (depths == d)
            width = float(np.quantile(error[rows], RANGE_TARGET)) if rows.sum() >= MIN_RANGE_ROWS else pooled
            narrower = max(narrower, width)
            widths[f"{d}/{gpus}"] = round(narrower, 4)
    return widths


def prefill_range_widths(error: np.ndarray, several: np.ndarray) -> dict[str, float]:
    """Returns the prompt range's half-width for one GPU and for several, each holding RANGE_TARGET of its
    leave-one-source-out rows (all rows' width for a class of fewer than MIN_RANGE_ROWS)."""
    pooled = float(np.quantile(error, RANGE_TARGET))
    return {
        gpus: round(float(np.quantile(error[mask], RANGE_TARGET)) if mask.sum() >= MIN_RANGE_ROWS else pooled, 4)
        for gpus, mask in (("one", ~several), ("several", several))
    }


def row_widths(widths: dict[str, float], depths: np.ndarray, several: np.ndarray) -> np.ndarray:
    """Returns each row's range half-width from its group depth and GPU count class."""
    return np.array(
        [widths[f"{d}/{'several' if s else 'one'}"] for d, s in zip(depths, several, strict=True)], dtype=float
    )


def fit_all(df: pd.DataFrame | None = None) -> dict:
    """Returns the shipped parameter file's content: calibration rows, the fitted groups and the LOSO report."""
    df = load_measurements() if df is None else df
    d = decode_rows(df).reset_index(drop=True)
    p = prefill_rows(df).reset_index(drop=True)
    fd, fp, op = decode_features(d), prefill_features(p), prefill_known(p)
    decode_table, prefill_table = fit_table(d, fd, **DECODE_FIT), fit_table(p, fp, offsets=op, **PREFILL_FIT)
    depths = np.empty(len(d), dtype=int)
    loso_d = leave_one_source_out(d, fd, depths, **DECODE_FIT)
    loso_p = leave_one_source_out(p, fp, offsets=op, siblings=True, **PREFILL_FIT)
    several = (d["gpu_count"] > 1).to_numpy()
    plan_d, plan_p = planned(d), planned(p)
    decode_error = rate_error(d["time_s"].to_numpy(), loso_d)
    widths = range_widths(decode_error[plan_d], depths[plan_d], several[plan_d])
    covered = decode_error <= row_widths(widths, depths, several)
    prompt_error, prompt_several = rate_error(p["time_s"].to_numpy(), loso_p), (p["gpu_count"] > 1).to_numpy()
    prompt_widths = prefill_range_widths(prompt_error[plan_p], prompt_several[plan_p])
    prompt_covered = prompt_error <= np.where(prompt_several, prompt_widths["several"], prompt_widths["one"])
    report = _report(d, loso_d, p, loso_p, covered, prompt_covered, plan_d, plan_p)
    return {
        "about": "Written by `python -m physics.fit` from physics/data/measurements/; do not edit by hand.",
        "max_gpu_count": int(d["gpu_count"].max()),
        "range_widths": widths,
        "prefill_range_widths": prompt_widths,
        "factors": _factors(decode_table, prefill_table, widths),
        "decode": _as_rows(decode_table, DECODE_PARAMS),
        "prefill": _as_rows(prefill_table, PREFILL_PARAMS),
        "report": report,
    }


def _factors(decode_table: dict, prefill_table: dict, widths: dict[str, float]) -> list[dict]:
    """Returns the estimator's calibration rows (physics.estimator.CalibrationFactor fields): one per decode group, and
    one per engine x hardware x precision that only the prompt fit tells apart (its decode from the decode group the
    same lookup finds), so that the estimator finds each prompt's group as the fit does."""
    out = []
    engine_hardware = {(engine, hw) for engine, hw, _ in decode_table if "*" not in (engine, hw)}
    precisions = {(engine, prec) for engine, _, prec in prefill_table if prec != "*"}
    prompt_keys = {
        (engine, hw, prec)
        for engine, hw in engine_hardware
        for other, prec in precisions
        if other == engine and lookup(prefill_table, engine, hw, prec, siblings=True)[0][2] == prec
    }
    shared = {key for key in decode_table if key[0] == OTHER_ENGINES}
    for key in sorted(set(decode_table) - shared | prompt_keys | _other_engine_keys(decode_table, prefill_table)):
        engine, hw, prec = key
        dec_key, params = lookup(decode_table, engine, hw, prec)
        n, sources = decode_table[dec_key][1:]
        dec = dict(zip(DECODE_PARAMS, params, strict=True))
        pre_key, pre_params = lookup(prefill_table, engine, hw, prec, siblings=True)
        pre = dict(zip(PREFILL_PARAMS, pre_params, strict=True))
        level = depth(dec_key)
        row = {
            "backend": engine,
            "hardware_class": hw,
            "precision_class": prec,
            "decode_efficiency": _rounded(1 / max(dec["inv_efficiency"], MIN_INVERSE)),
            "prefill_efficiency": _rounded(1 / max(pre["inv_efficiency"], MIN_INVERSE)),
            "source": f"fit: {n} decode rows from {sources} sources ({'/'.join(dec_key)}), prefill group "
            f"{'/'.join(pre_key)}; physics/data/measurements/",
            "runs": n,
            "spread": widths[f"{level}/one"],
            "spread_several": widths[f"{level}/several"],
            "batch_class": "*",
        }
        row.update({name: _rounded(dec[name]) for name in DECODE_PARAMS[1:]})
        row.update({name: _rounded(pre[name]) for name in PREFILL_COST_FIELDS})
        out.append(row)
    return out


def _other_engine_keys(decode_table: dict, prefill_table: dict) -> set[tuple[str, str, str]]:
    """Returns the (engine, hardware class or '*', '*') rows an engine needs wherever lookup estimates it from the
    other engines' rows, so that the estimator, which knows no OTHER_ENGINES, finds what lookup finds. (The other
    engines' group over all hardware comes before any all-engine group, so where it exists lookup never reaches the
    hardware class's all-engine group for such an engine. A Vulkan prompt class is the fit's alone: no GPU has it.)"""
    hardware = {hw for table in (decode_table, prefill_table) for _, hw, _ in table if gpu_class(hw)}
    return {
        (engine, hw, "*")
        for engine in ESTIMATED_OTHER_ENGINES
        for table in (decode_table, prefill_table)
        for hw in hardware
        if lookup(table, engine, hw, "*")[0][0] == OTHER_ENGINES
    }


def _rounded(value: float) -> float:
    return float(f"{value:.6g}")


def _as_rows(table: dict, names: tuple[str, ...]) -> list[dict]:
    out = []
    for (engine, hw, prec), (params, n, sources) in sorted(table.items()):
        entry = {"engine": engine, "hardware_class": hw, "precision_class": prec, "rows": n, "sources": sources}
        entry.update({name: _rounded(value) for name, value in zip(names, params, strict=True)})
        out.append(entry)
    return out


# The report's lines for the rows of builds the planner refuses (planned), outside every line above them.
UNPLANNED_DECODE = "decode — llama.cpp -sm row/tensor"
UNPLANNED_PREFILL = "prefill — llama.cpp -sm row/tensor"


def _report(
    d: pd.DataFrame,
    loso_d: np.ndarray,
    p: pd.DataFrame,
    loso_p: np.ndarray,
    covered: np.ndarray,
    prompt_covered: np.ndarray,
    plan_d: np.ndarray,
    plan_p: np.ndarray,
) -> list[dict]:
    lines = []

    def add(label: str, frame: pd.DataFrame, predicted: np.ndarray, mask: np.ndarray, cover: np.ndarray | None = None):
        if not mask.any():
            return
        s = score(frame["time_s"].to_numpy()[mask], predicted[mask], frame["source"].to_numpy()[mask])
        line = {"set": label, "rows": s.rows, "sources": s.sources, "mape": round(s.mape, 1)}
        line.update({"median_ape": round(s.median_ape, 1), "within_25": round(s.within_25, 1)})
        if cover is not None:
            line["range_coverage"] = round(float(np.mean(cover[mask])) * 100, 1)
        lines.append(line)

    add("decode, batch 1, all", d, loso_d, plan_d, covered)
    for engine in sorted(d["engine_family"].unique()):
        add(f"decode — {engine}", d, loso_d, plan_d & (d["engine_family"] == engine).to_numpy(), covered)
    add("decode — one GPU", d, loso_d, plan_d & (d["gpu_count"] == 1).to_numpy(), covered)
    add("decode — layer split", d, loso_d, plan_d & ((d["gpu_count"] > 1) & ~d["tensor"]).to_numpy(), covered)
    add("decode — tensor parallel", d, loso_d, plan_d & ((d["gpu_count"] > 1) & d["tensor"]).to_numpy(), covered)
    add("prefill, all", p, loso_p, plan_p, prompt_covered)
    for engine in sorted(p["engine_family"].unique()):
        add(f"prefill — {engine}", p, loso_p, plan_p & (p["engine_family"] == engine).to_numpy(), prompt_covered)
    add(UNPLANNED_DECODE, d, loso_d, ~plan_d)
    add(UNPLANNED_PREFILL, p, loso_p, ~plan_p)
    return lines


def source_breakdown(df: pd.DataFrame | None = None, top: int = 12) -> str:
    """Returns, for decode and prefill, the sources that carry most of the leave-one-source-out error of the headline
    (the planned builds' rows).

    Per source: rows, its MAPE, the points it adds to the whole set's MAPE (its share of the summed error), and the
    median of measured time / predicted time (above 1: the estimate is too fast for that source's rows).
    """
    df = load_measurements() if df is None else df
    out = []
    for label, rows, features, offsets, options, siblings in (
        ("decode", decode_rows(df), decode_features, None, DECODE_FIT, False),
        ("prefill", prefill_rows(df), prefill_features, prefill_known, PREFILL_FIT, True),
    ):
        rows = rows.reset_index(drop=True)
        if rows.empty:
            continue
        known = None if offsets is None else offsets(rows)
        predicted = leave_one_source_out(rows, features(rows), offsets=known, siblings=siblings, **options)
        ratio = rows["time_s"].to_numpy() / predicted
        frame = pd.DataFrame({"source": rows["source"], "ape": np.abs(ratio - 1) * 100, "ratio": ratio})
        frame = frame[planned(rows)]
        table = frame.groupby("source").agg(rows=("ape", "size"), mape=("ape", "mean"), ratio=("ratio", "median"))
        table["points"] = frame.groupby("source")["ape"].sum() / len(frame)
        table = table.sort_values("points", ascending=False)
        out.append(f"{label}: {len(frame)} rows, MAPE {frame['ape'].mean():.1f} %; the {top} sources adding most")
        out.append(f"  {'source':48} {'rows':>5} {'MAPE':>7} {'points':>7} {'meas/est':>9}")
        for source, line in table.head(top).iterrows():
            out.append(
                f"  {source[:48]:48} {int(line['rows']):5d} {line['mape']:6.1f}% {line['points']:7.2f} {line['ratio']:9.2f}"
            )
        out.append("")
    return "\n".join(out)


def render(result: dict) -> str:
    """Returns the leave-one-source-out report as a text table."""
    out = ["Leave-one-source-out error (each source predicted by a fit made without it)", ""]
    out.append(f"{'set':32} {'rows':>5} {'srcs':>5} {'MAPE':>7} {'median':>7} {'±25 %':>6} {'range':>6}")
    for line in result["report"]:
        cover = f"{line['range_coverage']:.0f} %" if "range_coverage" in line else ""
        out.append(
            f"{line['set']:32} {int(line['rows']):5d} {line['sources']:5d} {line['mape']:6.1f}% "
            f"{line['median_ape']:6.1f}% {line['within_25']:5.0f}% {cover:>6}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Fits (or checks, or reports) and returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the shipped file differs from a fit")
    parser.add_argument("--report", action="store_true", help="print the shipped file's report only")
    parser.add_argument("--sources", action="store_true", help="print the error each source adds (no file written)")
    args = parser.parse_args(argv)
    if args.sources:
        print(source_breakdown())
        return 0
    if args.report:
        print(render(json.loads(FITTED.read_text())))
        return 0
    result = fit_all()
    text = json.dumps(result, indent=1) + "\n"
    if args.check:
        same = FITTED.exists() and FITTED.read_text() == text
        print("physics/data/fitted.json is current." if same else "physics/data/fitted.json differs from a fit.")
        return 0 if same else 1
    FITTED.write_text(text)
    print(render(result))
    print(f"\nWrote {FITTED.relative_to(Path.cwd()) if FITTED.is_relative_to(Path.cwd()) else FITTED}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
