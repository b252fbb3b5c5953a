"""Measure the estimator against published benchmark figures, and fit its default efficiencies.

    python -m planner.accuracy          per-row estimate vs measured, then MAPE / median ratio / share within
                                        +-25 % per backend and overall, and a leave-one-out figure
    python -m planner.accuracy --fit    write physics/data/calibration.json, fitted from the measurements

Inputs live in planner/data/: measurements.csv (every row a published figure with its URL) and gpus.csv (the
hardware facts of those GPUs, with sources). Runs without Django.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from physics.arch import ModelArch, arch_from_config
from physics.estimator import (
    CALIBRATION_FILE,
    Build,
    CalibrationFactor,
    GPUSpec,
    Quant,
    Workload,
    estimate,
    hardware_class,
    precision_class,
    write_default_calibration,
)
from physics.presets import MIXTRAL_8X7B_ARCH, read_config

DATA = Path(__file__).resolve().parent / "data"
MIN_GROUP_RUNS = 2  # a (backend, hardware, precision) group needs this many rows before it gets its own factor
MIN_SPREAD = 0.05
DEFAULT_PREFILL_EFFICIENCY = 0.4  # used only when no prefill row exists for the backend at all

# Exact parameter counts from the models' published config.json files (meta-llama/Llama-2-*-chat-hf).
LLAMA_2_7B = arch_from_config(read_config("llama-2-7b-chat-hf.json"), name="Llama-2-7B")
LLAMA_2_13B = arch_from_config(read_config("llama-2-13b-chat-hf.json"), name="Llama-2-13B")
LLAMA_2_70B = arch_from_config(read_config("llama-2-70b-chat-hf.json"), name="Llama-2-70B")
MODELS: dict[str, ModelArch] = {m.name: m for m in (LLAMA_2_7B, LLAMA_2_13B, LLAMA_2_70B, MIXTRAL_8X7B_ARCH)}
MODELS["LLaMA-7B"] = LLAMA_2_7B  # LLaMA-1 7B has the same shapes and count


def load_gpus(path: Path = DATA / "gpus.csv") -> dict[str, GPUSpec]:
    """Return the GPUs of the measurement set by name."""
    df = pd.read_csv(path)
    out = {}
    for r in df.itertuples(index=False):
        out[r.name] = GPUSpec(
            name=r.name,
            vendor=r.vendor,
            segment=r.segment,
            memory_gb=float(r.memory_gb),
            bandwidth_gb_s=float(r.bandwidth_gb_s),
            fp16_tflops=None if pd.isna(r.fp16_tflops) else float(r.fp16_tflops),
            fp32_tflops=None if pd.isna(r.fp32_tflops) else float(r.fp32_tflops),
            unified_memory=bool(r.unified_memory),
            memory_type=str(r.memory_type),
            nvlink_gb_s=None if pd.isna(r.nvlink_gb_s) else float(r.nvlink_gb_s),
        )
    return out


def load_measurements(path: Path = DATA / "measurements.csv") -> pd.DataFrame:
    """Return the published measurements, one row per figure."""
    return pd.read_csv(path)


@dataclass(frozen=True)
class Case:
    """One measurement turned into estimator inputs."""

    model: ModelArch
    quant: Quant
    build: Build
    workload: Workload
    metric: str
    measured: float


def cases(df: pd.DataFrame, gpus: dict[str, GPUSpec]) -> list[Case]:
    """Return estimator inputs for every measurement row."""
    out = []
    for r in df.itertuples(index=False):
        kind = "float" if r.bits_per_weight >= 12 else "gguf"
        out.append(
            Case(
                model=MODELS[r.model],
                quant=Quant(r.quant, float(r.bits_per_weight), kind=kind),
                build=Build(gpus[r.gpu], count=int(r.gpu_count), split="tensor" if r.split == "tensor" else "layer"),
                workload=Workload(
                    context=int(r.context),
                    prompt_tokens=max(int(r.prompt_tokens), 1),
                    batch=int(r.batch),
                    backend=r.backend,
                ),
                metric=r.metric,
                measured=float(r.value),
            )
        )
    return out


def _ideal(case: Case) -> float:
    """Return the figure at 100 % efficiency (peak bandwidth and peak TFLOPS)."""
    unit = (CalibrationFactor("*", "*", "*", 1.0, 1.0, "ideal"),)
    est = estimate(case.model, case.quant, case.build, case.workload, unit)
    return est.decode_tok_s if case.metric == "decode_tok_s" else est.prefill_tok_s


def efficiency_table(df: pd.DataFrame, gpus: dict[str, GPUSpec]) -> pd.DataFrame:
    """Return the measurements with their group keys and achieved share of the ideal (single-GPU rows)."""
    cs = cases(df, gpus)
    out = df.copy()
    out["hardware_class"] = [hardware_class(c.build.gpu) for c in cs]
    out["precision_class"] = [precision_class(c.quant) for c in cs]
    out["ideal"] = [_ideal(c) for c in cs]
    out["achieved"] = out["value"] / out["ideal"]
    return out


def fit(table: pd.DataFrame) -> tuple[CalibrationFactor, ...]:
    """Return calibration factors: medians of achieved share per group, most specific first.

    Only single-GPU batch-1 rows are fitted; multi-GPU rows stay out of sample and test the
    communication model instead.
    """
    t = table[(table["gpu_count"] == 1) & (table["batch"] == 1)]
    dec = t[t["metric"] == "decode_tok_s"]
    pre = t[t["metric"] == "prefill_tok_s"]

    def stats(s: pd.Series) -> tuple[float, float, int]:
        med = float(s.median())
        spread = max(float((s / med).std(ddof=0)) if len(s) > 1 else 0.0, MIN_SPREAD)
        return med, spread, len(s)

    def prefill_for(backend: str, hw: str) -> tuple[float, str]:
        for sel, label in (
            ((pre["backend"] == backend) & (pre["hardware_class"] == hw), f"{backend}/{hw}"),
            (pre["backend"] == backend, f"{backend}/*"),
            (pre["backend"].notna(), "*/*"),
        ):
            s = pre[sel]["achieved"]
            if len(s):
                return float(s.median()), f"{len(s)} prefill runs ({label})"
        return DEFAULT_PREFILL_EFFICIENCY, "no prefill runs: default 0.4"

    factors: list[CalibrationFactor] = []
    groupings = (
        ["backend", "hardware_class", "precision_class"],
        ["backend", "hardware_class"],
        ["backend"],
        ["hardware_class"],
    )
    for keys in groupings:
        for key, g in dec.groupby(keys):
            key = key if isinstance(key, tuple) else (key,)
            if len(g) < MIN_GROUP_RUNS:
                continue
            k = dict(zip(keys, key, strict=True))
            backend = k.get("backend", "*")
            hw = k.get("hardware_class", "*")
            prec = k.get("precision_class", "*")
            med, spread, n = stats(g["achieved"])
            pe, pe_src = prefill_for(backend, hw) if backend != "*" else (float(pre["achieved"].median()), "all")
            factors.append(
                CalibrationFactor(
                    backend=backend,
                    hardware_class=hw,
                    precision_class=prec,
                    decode_efficiency=round(med, 4),
                    prefill_efficiency=round(pe, 4),
                    source=f"fit: {n} decode runs, {pe_src}, planner/data/measurements.csv",
                    runs=n,
                    spread=round(spread, 4),
                )
            )
    med, spread, n = stats(dec["achieved"])
    factors.append(
        CalibrationFactor(
            "*",
            "*",
            "*",
            round(med, 4),
            round(float(pre["achieved"].median()), 4),
            f"fit: all {n} decode runs, planner/data/measurements.csv",
            n,
            round(spread, 4),
        )
    )
    return tuple(factors)


@dataclass(frozen=True)
class Summary:
    """Accuracy figures for a set of rows."""

    rows: int
    mape: float
    median_ratio: float
    within_25: float


def summarise(ratio: pd.Series) -> Summary:
    """Return MAPE (%), median estimate/measured and share within +-25 % (%)."""
    err = (ratio - 1).abs()
    return Summary(len(ratio), float(err.mean() * 100), float(ratio.median()), float((err <= 0.25).mean() * 100))


def evaluate(df: pd.DataFrame, gpus: dict[str, GPUSpec], calibration: Sequence[CalibrationFactor]) -> pd.DataFrame:
    """Return the measurements with the estimate under `calibration` and the estimate/measured ratio."""
    out = df.copy()
    est = []
    for c in cases(df, gpus):
        e = estimate(c.model, c.quant, c.build, c.workload, calibration)
        est.append(e.decode_tok_s if c.metric == "decode_tok_s" else e.prefill_tok_s)
    out["estimate"] = est
    out["ratio"] = out["estimate"] / out["value"]
    return out


def leave_one_out(table: pd.DataFrame, gpus: dict[str, GPUSpec]) -> pd.Series:
    """Return estimate/measured for each single-GPU batch-1 decode row, predicted by a fit without that row."""
    sel = table[(table["gpu_count"] == 1) & (table["batch"] == 1) & (table["metric"] == "decode_tok_s")]
    ratios = {}
    for idx in sel.index:
        factors = fit(table.drop(index=idx))
        ev = evaluate(table.loc[[idx]], gpus, factors)
        ratios[idx] = float(ev["ratio"].iloc[0])
    return pd.Series(ratios)


def run(df: pd.DataFrame | None = None, gpus: dict[str, GPUSpec] | None = None) -> dict[str, object]:
    """Return the fitted factors, per-row results and summaries (overall, per backend, single/multi GPU, LOO)."""
    df = load_measurements() if df is None else df
    gpus = load_gpus() if gpus is None else gpus
    table = efficiency_table(df, gpus)
    factors = fit(table)
    ev = evaluate(table, gpus, factors)
    dec = ev[ev["metric"] == "decode_tok_s"]
    single = dec[(dec["gpu_count"] == 1) & (dec["batch"] == 1)]
    multi = dec[dec["gpu_count"] > 1]
    pre = ev[ev["metric"] == "prefill_tok_s"]
    summaries: dict[str, Summary] = {
        "decode, batch 1, single GPU": summarise(single["ratio"]),
        "decode, tensor parallel (not fitted)": summarise(multi["ratio"]) if len(multi) else Summary(0, 0, 0, 0),
        "prefill": summarise(pre["ratio"]) if len(pre) else Summary(0, 0, 0, 0),
    }
    for backend, g in single.groupby("backend"):
        summaries[f"decode, batch 1, single GPU, {backend}"] = summarise(g["ratio"])
    loo = leave_one_out(table, gpus)
    summaries["decode, batch 1, single GPU, leave-one-out"] = summarise(loo)
    return {"factors": factors, "rows": ev, "summaries": summaries, "loo": loo}


def _print_report(result: dict[str, object]) -> None:
    ev: pd.DataFrame = result["rows"]  # type: ignore[assignment]
    cols = ["gpu", "gpu_count", "model", "quant", "backend", "metric", "value", "estimate", "ratio"]
    with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_colwidth", 32):
        print(ev[cols].round({"estimate": 1, "ratio": 3}).to_string(index=False))
    print()
    print(f"{'set':55s} {'rows':>4s} {'MAPE %':>7s} {'median est/meas':>15s} {'within 25 %':>11s}")
    for name, s in result["summaries"].items():  # type: ignore[union-attr]
        print(f"{name:55s} {s.rows:4d} {s.mape:7.1f} {s.median_ratio:15.3f} {s.within_25:10.0f}%")


def main(argv: Sequence[str] | None = None) -> int:
    """Prints the accuracy report (or, with --fit, writes the fitted calibration file); returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", action="store_true", help="write the fitted default calibration file")
    args = parser.parse_args(argv)
    if args.fit:
        gpus = load_gpus()
        write_default_calibration(fit(efficiency_table(load_measurements(), gpus)))
        print(f"Wrote {CALIBRATION_FILE}.")
        return 0
    _print_report(run())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
