"""Folding measured benchmark results into the estimator's calibration, and the figures the validation page shows.

A result stores the efficiency its estimate used (in the basis). Measured / estimated is how far that
efficiency was off, so the fitted efficiency is the used one times the median ratio of the runs behind it.
"""

from __future__ import annotations

import statistics
from collections import defaultdict

from django.db import transaction
from django.utils import timezone

from inference.models import BenchmarkResult
from inference.results import compare_again
from physics.estimator import batch_class
from planner.models import Calibration

BACKEND = "gpufit-torch"
# A fitted efficiency outside these bounds says more about a broken run than about the hardware.
MIN_EFFICIENCY, MAX_EFFICIENCY = 0.005, 1.0


def _key(result: BenchmarkResult) -> tuple[str, str, str]:
    """Returns (hardware class, precision class, batch class): runs of one key share one fitted factor."""
    basis = result.estimate_basis.get("basis", {})
    batch = basis.get("batch_class") or batch_class(int(basis.get("batch") or result.batch or 1))
    return basis.get("hardware_class", "other"), basis.get("precision_class", "*"), batch


def _clamp(value: float) -> float:
    return max(MIN_EFFICIENCY, min(MAX_EFFICIENCY, value))


def _folded_groups() -> dict[tuple[str, str, str], list[BenchmarkResult]]:
    groups: dict[tuple[str, str, str], list[BenchmarkResult]] = defaultdict(list)
    for result in BenchmarkResult.objects.filter(folded_into_calibration=True, status="ok", decode_ratio__isnull=False):
        groups[_key(result)].append(result)
    return groups


def fit_is_current() -> bool:
    """Returns whether the fitted rows are exactly one per key of the folded results (the fit may still be older)."""
    fitted = set(
        Calibration.objects.filter(backend=BACKEND, is_fitted=True).values_list(
            "hardware_class", "precision_class", "batch_class"
        )
    )
    return fitted == set(_folded_groups())


def fit_calibration() -> int:
    """Returns how many Calibration rows were written from the results folded into calibration."""
    groups = _folded_groups()
    written = 0
    with transaction.atomic():
        for (hw, prec, batch), rows in groups.items():
            decode = [r.decode_ratio * r.estimate_basis["basis"]["decode_efficiency"] for r in rows]
            prefill = [
                r.prefill_ratio * r.estimate_basis["basis"]["prefill_efficiency"]
                for r in rows
                if r.prefill_ratio is not None
            ]
            ratios = [r.decode_ratio for r in rows]
            spread = statistics.pstdev(ratios) / statistics.median(ratios) if len(ratios) > 1 else 0.2
            Calibration.objects.update_or_create(
                backend=BACKEND,
                hardware_class=hw,
                precision_class=prec,
                batch_class=batch,
                defaults={
                    "decode_efficiency": _clamp(statistics.median(decode)),
                    "prefill_efficiency": _clamp(statistics.median(prefill)) if prefill else 0.5,
                    "spread": max(spread, 0.05),
                    "runs": len(rows),
                    "is_fitted": True,
                    "source": f"fit: {len(rows)} gpufit-torch run(s), median measured/estimated, {timezone.now():%Y-%m-%d}",
                },
            )
            written += 1
        # A fitted row whose runs are no longer folded (unfolded by an editor, or by a changed rule) goes;
        # rows an editor wrote by hand are never touched.
        stale = Calibration.objects.filter(backend=BACKEND, is_fitted=True)
        for hw, prec, batch in groups:
            stale = stale.exclude(hardware_class=hw, precision_class=prec, batch_class=batch)
        stale.delete()
    return written


def validation_summary() -> dict:
    """Returns the validation page's context: every result's ratio, the fitted rows, and the error before and after."""

    results = list(
        BenchmarkResult.objects.select_related("job", "gpu")
        .filter(status="ok", decode_ratio__isnull=False)
        .order_by("-created_at")
    )
    fitted = list(Calibration.objects.filter(backend=BACKEND).order_by("hardware_class", "precision_class"))
    rows = []
    for r in results:
        now = compare_again(r)
        rows.append({"result": r, "ratio_before": r.decode_ratio, "ratio_now": now})

    def mape(values):
        values = [v for v in values if v]
        return 100 * statistics.mean(abs(1 - 1 / v) for v in values) if values else None

    folded = [row for row in rows if row["result"].folded_into_calibration]
    return {
        "rows": rows,
        "fitted": fitted,
        "error_before": mape([row["ratio_before"] for row in rows]),
        "error_now": mape([row["ratio_now"] for row in rows]),
        "folded_before": mape([row["ratio_before"] for row in folded]),
        "folded_now": mape([row["ratio_now"] for row in folded]),
    }
