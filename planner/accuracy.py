"""Measure the whole estimator, end to end, against a small set of published benchmark figures.

    python -m planner.accuracy          per-row estimate vs measured, then MAPE / median ratio / share within
                                        +-25 % per backend and overall

The shipped calibration comes from `python -m physics.fit` over the public measurement set
(physics/data/measurements/); this script calls `estimate()` itself on full model shapes, so it checks that the
estimator applies the fitted parameters the way the fit assumed.

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
    DEFAULT_CALIBRATION,
    Build,
    CalibrationFactor,
    GPUSpec,
    Quant,
    Workload,
    estimate,
)
from physics.fit import catalog_int8_tops
from physics.presets import MIXTRAL_8X7B_ARCH, read_config

DATA = Path(__file__).resolve().parent / "data"

# Exact parameter counts from the models' published config.json files (meta-llama/Llama-2-*-chat-hf).
LLAMA_2_7B = arch_from_config(read_config("llama-2-7b-chat-hf.json"), name="Llama-2-7B")
LLAMA_2_13B = arch_from_config(read_config("llama-2-13b-chat-hf.json"), name="Llama-2-13B")
LLAMA_2_70B = arch_from_config(read_config("llama-2-70b-chat-hf.json"), name="Llama-2-70B")
MODELS: dict[str, ModelArch] = {m.name: m for m in (LLAMA_2_7B, LLAMA_2_13B, LLAMA_2_70B, MIXTRAL_8X7B_ARCH)}
MODELS["LLaMA-7B"] = LLAMA_2_7B  # LLaMA-1 7B has the same shapes and count


def load_gpus(path: Path = DATA / "gpus.csv") -> dict[str, GPUSpec]:
    """Return the GPUs of the measurement set by name (the int8 rate, which the file does not hold, from the catalog)."""
    df = pd.read_csv(path)
    int8 = catalog_int8_tops()
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
            int8_tops=int8.get(r.name),
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


def run(df: pd.DataFrame | None = None, gpus: dict[str, GPUSpec] | None = None) -> dict[str, object]:
    """Return per-row results and summaries (overall, per backend, single/multi GPU) under the shipped calibration."""
    df = load_measurements() if df is None else df
    gpus = load_gpus() if gpus is None else gpus
    ev = evaluate(df, gpus, DEFAULT_CALIBRATION)
    dec = ev[ev["metric"] == "decode_tok_s"]
    single = dec[(dec["gpu_count"] == 1) & (dec["batch"] == 1)]
    multi = dec[dec["gpu_count"] > 1]
    pre = ev[ev["metric"] == "prefill_tok_s"]
    summaries: dict[str, Summary] = {
        "decode, batch 1, single GPU": summarise(single["ratio"]),
        "decode, several GPUs": summarise(multi["ratio"]) if len(multi) else Summary(0, 0, 0, 0),
        "prefill": summarise(pre["ratio"]) if len(pre) else Summary(0, 0, 0, 0),
    }
    for backend, g in single.groupby("backend"):
        summaries[f"decode, batch 1, single GPU, {backend}"] = summarise(g["ratio"])
    return {"rows": ev, "summaries": summaries}


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
    """Prints the accuracy report; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    _print_report(run())
    print()
    print("The leave-one-source-out report over the whole measurement set: python -m physics.fit --report")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
