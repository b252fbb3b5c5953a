"""Folding measured benchmark results into the estimator's calibration, and the figures the validation page shows.

A result stores the efficiency its estimate used (in the basis). Measured / estimated is how far that
efficiency was off, so the fitted efficiency is the used one times the median ratio of the runs behind it.
Everything is per engine: a llama.cpp run refits the llama.cpp rows of its hardware, precision and batch class,
a gpufit-torch run the gpufit-torch rows, and never the other's.
"""

from __future__ import annotations

import csv
import statistics
from collections import defaultdict
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from inference.models import BenchmarkResult
from inference.results import compare_again
from physics.estimator import batch_class
from physics.runs import RUNNABLE_ENGINES
from planner.models import Calibration

Key = tuple[str, str, str, str]  # (engine, hardware class, precision class, batch class)
# A fitted efficiency outside these bounds says more about a broken run than about the hardware.
MIN_EFFICIENCY, MAX_EFFICIENCY = 0.005, 1.0


def _key(result: BenchmarkResult) -> Key:
    """Returns (engine, hardware class, precision class, batch class): runs of one key share one fitted factor."""
    basis = result.estimate_basis.get("basis", {})
    batch = basis.get("batch_class") or batch_class(int(basis.get("batch") or result.batch or 1))
    return result.engine, basis.get("hardware_class", "other"), basis.get("precision_class", "*"), batch


def _same_engine(result: BenchmarkResult) -> bool:
    """Returns whether the result's stored estimate was made for the engine that ran it; only such a ratio may
    refit that engine's rows."""
    backend = result.estimate_basis.get("basis", {}).get("backend")
    return backend in (None, result.engine)


def _clamp(value: float) -> float:
    return max(MIN_EFFICIENCY, min(MAX_EFFICIENCY, value))


def decode_efficiency_fit(result: BenchmarkResult) -> float:
    """Returns the decode efficiency that makes the result's own estimate match its measurement.

    The estimated step is memory time (bytes / (bandwidth x efficiency)) plus the time that does not shrink with
    bandwidth (communication and fitted fixed costs, the basis's comm_s_per_step, and the per-weight arithmetic,
    vector_s_per_step). Only the memory time scales
    with the efficiency: efficiency_fit = efficiency x memory time estimated / (measured step - the rest). With no
    fixed costs that is efficiency x measured / estimated. A compute-bound estimate is scaled by the ratio alone.
    """
    basis = result.estimate_basis["basis"]
    used = basis["decode_efficiency"]
    if result.estimate_basis.get("decode_bound") == "compute":
        return used * result.decode_ratio
    batch = basis.get("batch") or result.batch or 1
    step_estimated = batch / result.estimated_decode_tok_s
    step_measured = batch / result.decode_tok_s
    rest = (basis.get("comm_s_per_step") or 0.0) + (basis.get("vector_s_per_step") or 0.0)
    memory_measured = step_measured - rest
    if memory_measured <= 0:  # faster than the fixed costs alone allow: the bandwidth share is not the limit
        return MAX_EFFICIENCY
    return used * (step_estimated - rest) / memory_measured


def _folded_groups() -> dict[Key, list[BenchmarkResult]]:
    groups: dict[Key, list[BenchmarkResult]] = defaultdict(list)
    folded = BenchmarkResult.objects.filter(
        folded_into_calibration=True, status="ok", decode_ratio__isnull=False, engine__in=RUNNABLE_ENGINES
    )
    for result in folded:
        if _same_engine(result):
            groups[_key(result)].append(result)
    return groups


def _fitted_rows():
    return Calibration.objects.filter(backend__in=RUNNABLE_ENGINES, is_fitted=True)


def fit_is_current() -> bool:
    """Returns whether the fitted rows are exactly one per key of the folded results (the fit may still be older)."""
    fitted = set(_fitted_rows().values_list("backend", "hardware_class", "precision_class", "batch_class"))
    return fitted == set(_folded_groups())


def fit_calibration() -> int:
    """Returns how many Calibration rows were written from the results folded into calibration."""
    groups = _folded_groups()
    written = 0
    with transaction.atomic():
        for (engine, hw, prec, batch), rows in groups.items():
            decode = [decode_efficiency_fit(r) for r in rows]
            prefill = [
                r.prefill_ratio * r.estimate_basis["basis"]["prefill_efficiency"]
                for r in rows
                if r.prefill_ratio is not None
            ]
            ratios = [r.decode_ratio for r in rows]
            spread = statistics.pstdev(ratios) / statistics.median(ratios) if len(ratios) > 1 else 0.2
            Calibration.objects.update_or_create(
                backend=engine,
                hardware_class=hw,
                precision_class=prec,
                batch_class=batch,
                defaults={
                    "decode_efficiency": _clamp(statistics.median(decode)),
                    "prefill_efficiency": _clamp(statistics.median(prefill)) if prefill else 0.5,
                    "spread": max(spread, 0.05),
                    # The fixed costs the runs' estimates used stay; the fit moves the bandwidth share only.
                    "costs": rows[0].estimate_basis["basis"].get("fixed_costs_s") or {},
                    "runs": len(rows),
                    "is_fitted": True,
                    "source": f"fit: {len(rows)} {engine} run(s), median measured/estimated, {timezone.now():%Y-%m-%d}",
                },
            )
            written += 1
        # A fitted row whose runs are no longer folded (unfolded by an editor, or by a changed rule) goes;
        # rows an editor wrote by hand are never touched.
        stale = _fitted_rows()
        for engine, hw, prec, batch in groups:
            stale = stale.exclude(backend=engine, hardware_class=hw, precision_class=prec, batch_class=batch)
        stale.delete()
    return written


def mape(ratios) -> float | None:
    """Returns the mean absolute percentage error of estimates given measured / estimated ratios (None: no ratio)."""
    values = [v for v in ratios if v]
    return 100 * statistics.mean(abs(1 - 1 / v) for v in values) if values else None


def _errors(rows: list[dict]) -> dict:
    """Returns the error figures of a list of validation rows: all of them, and the ones folded into calibration."""
    folded = [row for row in rows if row["result"].folded_into_calibration]
    return {
        "error_before": mape([row["ratio_before"] for row in rows]),
        "error_now": mape([row["ratio_now"] for row in rows]),
        "folded_before": mape([row["ratio_before"] for row in folded]),
        "folded_now": mape([row["ratio_now"] for row in folded]),
    }


def validation_summary() -> dict:
    """Returns the validation page's context: every result's ratio against its own engine's estimate, grouped by
    engine with that engine's fitted rows and errors, and the error over all runs before and after."""

    results = list(
        BenchmarkResult.objects.select_related("job", "job__model", "gpu")
        .filter(status="ok", decode_ratio__isnull=False)
        .order_by("-created_at")
    )
    calibration = list(_fitted_rows().order_by("hardware_class", "precision_class", "batch_class"))
    rows = [{"result": r, "ratio_before": r.decode_ratio, "ratio_now": compare_again(r)} for r in results]
    engines = []
    for engine in RUNNABLE_ENGINES:
        mine = [row for row in rows if row["result"].engine == engine]
        fitted = [c for c in calibration if c.backend == engine]
        if mine or fitted:
            engines.append({"engine": engine, "rows": mine, "fitted": fitted, **_errors(mine)})
    return {"rows": rows, "engines": engines, **_errors(rows), **llamacpp_memory()}


# Written by `manage.py llamacpp_memory` (bench/engines/llamacpp_memory.py): the estimator's memory terms against
# what llama.cpp's allocator reports, per catalog model and context. Read here as a plain file, so the web process
# never imports the benchmark package.
LLAMACPP_MEMORY_CSV = Path(__file__).resolve().parent / "data" / "llamacpp-memory.csv"


def llamacpp_memory() -> dict:
    """Returns the memory check's rows and, over the rows llama.cpp sized, the largest and median absolute errors."""
    if not LLAMACPP_MEMORY_CSV.exists():
        return {"memory_rows": [], "memory_summary": None}
    with LLAMACPP_MEMORY_CSV.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    sized = [r for r in rows if r.get("status") == "ok"]
    summary = {"rows": len(sized), "models": len({r["model"] for r in sized})}
    for term in ("weights", "kv", "compute", "total"):
        errors = sorted(abs(float(r[f"err_{term}_pct"])) for r in sized if r.get(f"err_{term}_pct"))
        summary[term] = {"max": errors[-1], "median": statistics.median(errors)} if errors else None
    return {"memory_rows": rows, "memory_summary": summary}
