from __future__ import annotations

from django.contrib import admin

from planner.models import Calibration


@admin.register(Calibration)
class CalibrationAdmin(admin.ModelAdmin):
    list_display = [
        "backend",
        "hardware_class",
        "precision_class",
        "batch_class",
        "decode_efficiency",
        "prefill_efficiency",
        "spread",
        "runs",
        "is_fitted",
        "updated_at",
    ]
    list_filter = ["backend", "hardware_class", "precision_class", "batch_class", "is_fitted"]
    search_fields = ["backend", "hardware_class", "source"]
    readonly_fields = ["updated_at"]
