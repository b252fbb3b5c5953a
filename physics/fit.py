"""Fits the estimator's efficiencies and fixed costs to the public measurement set, and scores them honestly.

    python -m physics.fit            fit, write physics/data/fitted.json, print the leave-one-source-out report
    python -m physics.fit --report   print the report for the shipped file without writing it
    python -m physics.fit --check    exit 1 when the shipped file is not what a fresh fit gives

The model (docs/estimator.md, physics/speed.py): a batch-1 decode step takes
``bytes / (bandwidth x efficiency) + step_s + layers x layer_s`` plus, on several GPUs, ``(n - 1) x hop_s`` for a
layer split or ``2 x layers x allreduce_s`` for tensor parallel; a prompt takes
``FLOPs / (TFLOPS x prefill efficiency) + prefill_s + layers x prefill_layer_s``. Every parameter is linear in
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
from physics.estimator import _hardware_class_vec, _precision_class_bpw

DATA = Path(__file__).resolve().parent / "data"
MEASUREMENTS = DATA / "measurements"
FITTED = DATA / "fitted.json"

# A group gets its own parameters with at least this many rows; fewer rows fall back to the parent's.
MIN_ROWS = 6
# Pull towards the parent, as pseudo-rows of relative error per parameter (higher: closer to the parent).
SHRINK = 2.0
# The share of leave-one-source-out decode rows the published range should hold.
RANGE_TARGET = 0.80
# Engines that run another engine's kernels are scored with it.
ENGINE_FAMILY = {"ollama": "llama.cpp"}
DECODE_PARAMS = ("inv_efficiency", "step_s", "layer_s", "hop_s", "allreduce_s")
PREFILL_PARAMS = ("inv_efficiency", "prefill_s", "prefill_layer_s")


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


def load_measurements(folder: Path = MEASUREMENTS) -> pd.DataFrame:
    """Returns every row of the measurement set with its group keys and the physics each fit needs."""
    rows = []
    for path in sorted(folder.glob("*.csv")):
        with path.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                row["file"] = path.name
                rows.append(row)
    df = pd.DataFrame(rows)
    numeric = ["gpu_memory_gb", "gpu_bandwidth_gb_s", "gpu_fp16_tensor_tflops", "gpu_count", "params_b"]
    numeric += ["active_params_b", "layers", "kv_heads", "head_dim", "bits_per_weight", "batch", "context"]
    numeric += ["prompt_tokens", "gen_tokens", "value"]
    for column in numeric:
        df[column] = pd.to_numeric(df[column], errors="coerce")
    # A row without a stated depth is read as generation after its prompt (0 when no prompt is stated either).
    df["context"] = df["context"].fillna(df["prompt_tokens"]).fillna(0)
    df["source"] = df["source_url"].map(source_group)
    df["engine_family"] = df["engine"].map(lambda e: ENGINE_FAMILY.get(e, e))
    vendor = np.array([_vendor(g, b) for g, b in zip(df["gpu"], df["backend"], strict=True)])
    unified = df["interconnect"].eq("unified") | df["gpu"].str.contains("Ryzen AI Max|DGX Spark|GB10|Jetson|Apple")
    segment = np.where(vendor == "apple", "apple-silicon", np.where(unified, "integrated-soc", ""))
    hbm = (df["gpu_bandwidth_gb_s"] >= 1200) & ~unified
    df["hardware_class"] = _hardware_class_vec(
        vendor, segment, np.where(hbm, "HBM", "GDDR"), df["gpu_bandwidth_gb_s"], unified
    )
    df["precision_class"] = [_precision_class_bpw(b) for b in df["bits_per_weight"]]
    # Weights one batch-1 step reads (active parameters) and the KV cache at the stated depth, fp16.
    weights = df["active_params_b"] * 1e9 * df["bits_per_weight"] / 8
    kv = 2 * df["layers"] * df["kv_heads"] * df["head_dim"] * 2 * df["context"] * df["batch"]
    df["bytes_step"] = weights + kv
    df["tensor"] = df["split"].isin(["tensor", "row"])
    return df


def decode_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Returns the single-sequence decode rows the decode fit uses (aggregate batched rows are scored apart)."""
    d = df[(df["metric"] == "decode_tok_s") & (df["batch"] == 1)].copy()
    d["time_s"] = 1.0 / d["value"]
    return d[np.isfinite(decode_features(d)).all(axis=1) & (d["time_s"] > 0)]


def prefill_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Returns the prompt-processing rows with a tensor rate and a prompt length, timed for the whole prompt."""
    # One sequence only: a batched TTFT includes queueing behind the other prompts.
    one = df["batch"].fillna(1) == 1
    p = df[df["metric"].isin(["prefill_tok_s", "ttft_s"]) & (df["prompt_tokens"] > 0) & one].copy()
    p = p[p["gpu_fp16_tensor_tflops"] > 0]
    p["time_s"] = np.where(p["metric"] == "ttft_s", p["value"], p["prompt_tokens"] / p["value"])
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
    return np.column_stack([memory, np.ones(len(d)), layers, hops, allreduces])


def prefill_features(p: pd.DataFrame) -> np.ndarray:
    """Returns the prefill design matrix: 2 x active x P FLOPs at peak, 1, layers.

    The set does not record query heads, so the attention term (small at the pp512 most rows use) is left to the
    efficiency and the per-layer cost.
    """
    tokens = p["prompt_tokens"].to_numpy(dtype=float)
    layers = p["layers"].to_numpy(dtype=float)
    flops = 2 * p["active_params_b"].to_numpy(dtype=float) * 1e9 * tokens
    sharing = np.where(p["tensor"].to_numpy(dtype=bool), p["gpu_count"].to_numpy(dtype=float), 1.0)
    compute = speed.compute_s(flops, p["gpu_fp16_tensor_tflops"].to_numpy(dtype=float), 1.0, sharing)
    return np.column_stack([compute, np.ones(len(p)), layers])


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


def _fit_group(features: np.ndarray, times: np.ndarray, parent: np.ndarray | None) -> np.ndarray:
    """Returns non-negative parameters minimising relative error, pulled towards the parent's values."""
    a = features / times[:, None]
    b = np.ones(len(times))
    if parent is not None:
        scale = np.where(parent > 0, parent, 1.0)
        informative = np.abs(features).sum(axis=0) > 0
        weight = np.where(informative, np.sqrt(SHRINK), 1e3)  # a parameter the rows cannot see keeps its parent's
        a = np.vstack([a, np.diag(weight / scale)])
        b = np.concatenate([b, weight * np.where(parent > 0, 1.0, 0.0)])
    return nnls(a, b)


LEVELS = (
    ("engine_family",),
    ("engine_family", "hardware_class"),
    ("engine_family", "hardware_class", "precision_class"),
)


def fit_table(rows: pd.DataFrame, features: np.ndarray) -> dict[tuple[str, str, str], tuple[np.ndarray, int, int]]:
    """Returns {(engine, hardware class, precision class): (params, rows, sources)}, '*' for a wider group."""
    table: dict[tuple[str, str, str], tuple[np.ndarray, int, int]] = {}
    times = rows["time_s"].to_numpy(dtype=float)
    root = _fit_group(features, times, None)
    table[("*", "*", "*")] = (root, len(rows), rows["source"].nunique())
    for level in LEVELS:
        for key, group in rows.groupby(list(level)):
            key = key if isinstance(key, tuple) else (key,)
            full = tuple(key) + ("*",) * (3 - len(key))
            parent_key = tuple(key[:-1]) + ("*",) * (4 - len(key))
            if parent_key not in table or len(group) < MIN_ROWS:
                continue
            index = rows.index.get_indexer(group.index)
            params = _fit_group(features[index], times[index], table[parent_key][0])
            table[full] = (params, len(group), group["source"].nunique())
    return table


def lookup(table: dict, engine: str, hw: str, prec: str) -> tuple[tuple[str, str, str], np.ndarray]:
    """Returns the most specific fitted group for a row and its parameters."""
    for key in ((engine, hw, prec), (engine, hw, "*"), (engine, "*", "*"), ("*", "*", "*")):
        if key in table:
            return key, table[key][0]
    raise KeyError("no root group")


def predict(table: dict, rows: pd.DataFrame, features: np.ndarray) -> np.ndarray:
    """Returns the predicted time of each row from the table's most specific group."""
    out = np.empty(len(rows))
    for i, (engine, hw, prec) in enumerate(
        zip(rows["engine_family"], rows["hardware_class"], rows["precision_class"], strict=True)
    ):
        out[i] = features[i] @ lookup(table, engine, hw, prec)[1]
    return out


def leave_one_source_out(rows: pd.DataFrame, features: np.ndarray) -> np.ndarray:
    """Returns each row's predicted time from a fit made without any row of its source."""
    out = np.empty(len(rows))
    sources = rows["source"].to_numpy()
    for source in np.unique(sources):
        held = sources == source
        table = fit_table(rows[~held], features[~held])
        out[held] = predict(table, rows[held], features[held])
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


def range_spread(measured_time: np.ndarray, predicted_time: np.ndarray) -> float:
    """Returns s such that RANGE_TARGET of rows have measured rate within predicted x (1 +- s)."""
    rate_error = np.abs(measured_time / predicted_time - 1)  # predicted rate / measured rate - 1
    return float(np.quantile(rate_error, RANGE_TARGET))


def fit_all(df: pd.DataFrame | None = None) -> dict:
    """Returns the shipped parameter file's content: decode and prefill groups, ranges, and the LOSO report."""
    df = load_measurements() if df is None else df
    d = decode_rows(df).reset_index(drop=True)
    p = prefill_rows(df).reset_index(drop=True)
    fd, fp = decode_features(d), prefill_features(p)
    decode_table, prefill_table = fit_table(d, fd), fit_table(p, fp)
    loso_d, loso_p = leave_one_source_out(d, fd), leave_one_source_out(p, fp)
    spreads = {}
    for engine, group in d.groupby("engine_family"):
        index = group.index.to_numpy()
        if len(index) >= MIN_ROWS:
            spreads[engine] = round(range_spread(d["time_s"].to_numpy()[index], loso_d[index]), 4)
    spreads["*"] = round(range_spread(d["time_s"].to_numpy(), loso_d), 4)
    report = _report(d, loso_d, p, loso_p, spreads)
    return {
        "about": "Written by `python -m physics.fit` from physics/data/measurements/; do not edit by hand.",
        "decode": _as_rows(decode_table, DECODE_PARAMS),
        "prefill": _as_rows(prefill_table, PREFILL_PARAMS),
        "range_spread": spreads,
        "report": report,
    }


def _as_rows(table: dict, names: tuple[str, ...]) -> list[dict]:
    out = []
    for (engine, hw, prec), (params, n, sources) in sorted(table.items()):
        entry = {"engine": engine, "hardware_class": hw, "precision_class": prec, "rows": n, "sources": sources}
        entry.update({name: float(f"{value:.6g}") for name, value in zip(names, params, strict=True)})
        out.append(entry)
    return out


def _report(d: pd.DataFrame, loso_d: np.ndarray, p: pd.DataFrame, loso_p: np.ndarray, spreads: dict) -> list[dict]:
    lines = []

    def add(label: str, frame: pd.DataFrame, predicted: np.ndarray, mask: np.ndarray, spread: float | None = None):
        if not mask.any():
            return
        s = score(frame["time_s"].to_numpy()[mask], predicted[mask], frame["source"].to_numpy()[mask])
        line = {"set": label, "rows": s.rows, "sources": s.sources, "mape": round(s.mape, 1)}
        line.update({"median_ape": round(s.median_ape, 1), "within_25": round(s.within_25, 1)})
        if spread is not None:
            rate_err = np.abs(frame["time_s"].to_numpy()[mask] / predicted[mask] - 1)
            line["range_coverage"] = round(float(np.mean(rate_err <= spread)) * 100, 1)
        lines.append(line)

    everything = np.ones(len(d), dtype=bool)
    add("decode, batch 1, all", d, loso_d, everything, spreads["*"])
    for engine in sorted(d["engine_family"].unique()):
        add(f"decode — {engine}", d, loso_d, (d["engine_family"] == engine).to_numpy(), spreads.get(engine))
    add("decode — one GPU", d, loso_d, (d["gpu_count"] == 1).to_numpy())
    add("decode — layer split", d, loso_d, ((d["gpu_count"] > 1) & ~d["tensor"]).to_numpy())
    add("decode — tensor parallel", d, loso_d, ((d["gpu_count"] > 1) & d["tensor"]).to_numpy())
    add("prefill, all", p, loso_p, np.ones(len(p), dtype=bool))
    for engine in sorted(p["engine_family"].unique()):
        add(f"prefill — {engine}", p, loso_p, (p["engine_family"] == engine).to_numpy())
    return lines


def render(result: dict) -> str:
    """Returns the leave-one-source-out report as a text table."""
    out = ["Leave-one-source-out error (each source predicted by a fit made without it)", ""]
    out.append(f"{'set':32} {'rows':>5} {'srcs':>5} {'MAPE':>7} {'median':>7} {'±25 %':>6} {'range':>6}")
    for line in result["report"]:
        cover = f"{line['range_coverage']:.0f} %" if "range_coverage" in line else ""
        out.append(
            f"{line['set']:32} {line['rows']:5d} {line['sources']:5d} {line['mape']:6.1f}% "
            f"{line['median_ape']:6.1f}% {line['within_25']:5.0f}% {cover:>6}"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Fits (or checks, or reports) and returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the shipped file differs from a fit")
    parser.add_argument("--report", action="store_true", help="print the shipped file's report only")
    args = parser.parse_args(argv)
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
