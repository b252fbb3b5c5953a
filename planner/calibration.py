"""Calibration rows in the database <-> the estimator's plain CalibrationFactor values."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from physics.estimator import COST_FIELDS, DEFAULT_CALIBRATION, CalibrationFactor
from planner.lookup import remembered
from planner.models import Calibration

# Sources the shipped defaults were written with, before `from_defaults` marked them (such rows are replaced too).
_OLD_DEFAULT_SOURCES = ("planner/data/measurements.csv",)


def _row_for(f: CalibrationFactor) -> Calibration:
    return Calibration(
        backend=f.backend,
        hardware_class=f.hardware_class,
        precision_class=f.precision_class,
        batch_class=f.batch_class,
        decode_efficiency=f.decode_efficiency,
        prefill_efficiency=f.prefill_efficiency,
        spread=f.spread,
        spread_several=f.spread_several,
        costs={name: getattr(f, name) for name in COST_FIELDS},
        runs=f.runs,
        source=f.source[:300],
        from_defaults=True,
    )


def load_default_calibration() -> int:
    """Brings the shipped default rows into the table; returns how many rows were written (added or replaced).

    Rows still as shipped (`from_defaults`, or written by the old fit before that flag existed) are replaced by
    the current fit; rows fitted from benchmark jobs or saved by an editor are left alone, and a default row whose
    key they hold is not added.
    """
    with transaction.atomic():
        stale = Calibration.objects.filter(is_fitted=False).filter(
            Q(from_defaults=True) | Q(source__endswith=_OLD_DEFAULT_SOURCES[0])
        )
        current = {(f.backend, f.hardware_class, f.precision_class, f.batch_class): f for f in DEFAULT_CALIBRATION}
        unchanged = set()
        for row in stale:
            key = (row.backend, row.hardware_class, row.precision_class, row.batch_class)
            f = current.get(key)
            if f is not None and _same(row, _row_for(f)):
                unchanged.add(key)
        replaced = stale.exclude(pk__in=[r.pk for r in stale if _key(r) in unchanged])
        replaced.delete()
        have = set(Calibration.objects.values_list("backend", "hardware_class", "precision_class", "batch_class"))
        new = [_row_for(f) for key, f in current.items() if key not in have]
        Calibration.objects.bulk_create(new)
    return len(new)


def _key(row: Calibration) -> tuple[str, str, str, str]:
    return (row.backend, row.hardware_class, row.precision_class, row.batch_class)


_COMPARED = ("decode_efficiency", "prefill_efficiency", "spread", "spread_several", "costs", "runs", "source")


def _same(a: Calibration, b: Calibration) -> bool:
    return all(getattr(a, name) == getattr(b, name) for name in _COMPARED)


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
        if row.spread is not None:
            values["spread"] = row.spread
        values["spread_several"] = row.spread_several
        values.update({name: float(v) for name, v in (row.costs or {}).items() if name in fields})
        out.append(CalibrationFactor(**values))
    return tuple(out)
