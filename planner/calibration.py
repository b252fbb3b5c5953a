"""Calibration rows in the database <-> the estimator's plain CalibrationFactor values."""

from __future__ import annotations

from physics.estimator import DEFAULT_CALIBRATION, CalibrationFactor
from planner.lookup import remembered
from planner.models import Calibration


def load_default_calibration() -> int:
    """Returns how many default rows were added; existing rows (edited or fitted) are left alone."""
    have = set(Calibration.objects.values_list("backend", "hardware_class", "precision_class", "batch_class"))
    new = [
        Calibration(
            backend=f.backend,
            hardware_class=f.hardware_class,
            precision_class=f.precision_class,
            batch_class=f.batch_class,
            decode_efficiency=f.decode_efficiency,
            prefill_efficiency=f.prefill_efficiency,
            spread=getattr(f, "spread", None),
            runs=f.runs,
            source=f.source[:300],
        )
        for f in DEFAULT_CALIBRATION
        if (f.backend, f.hardware_class, f.precision_class, f.batch_class) not in have
    ]
    Calibration.objects.bulk_create(new)
    return len(new)


def calibration_factors() -> tuple[CalibrationFactor, ...]:
    """Returns the stored calibration as plain values for the estimator, re-read only when a row changed."""

    return remembered("calibration", "all", _read_calibration)


def _read_calibration() -> tuple[CalibrationFactor, ...]:
    fields = set(CalibrationFactor.__dataclass_fields__)
    out = []
    for row in Calibration.objects.all():
        values = {
            "backend": row.backend,
            "hardware_class": row.hardware_class,
            "precision_class": row.precision_class,
            "batch_class": row.batch_class,
            "decode_efficiency": row.decode_efficiency,
            "prefill_efficiency": row.prefill_efficiency,
            "source": row.source,
            "runs": row.runs,
        }
        if "spread" in fields and row.spread is not None:
            values["spread"] = row.spread
        out.append(CalibrationFactor(**values))
    return tuple(out)
