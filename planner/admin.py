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
        "from_defaults",
        "updated_at",
    ]
    list_filter = ["backend", "hardware_class", "precision_class", "batch_class", "is_fitted"]
    search_fields = ["backend", "hardware_class", "source"]
    readonly_fields = ["updated_at"]

    def save_model(self, request, obj, form, change):
        # An editor's row is theirs from now on: the next load_catalog keeps it instead of the shipped fit.
        obj.from_defaults = False
        super().save_model(request, obj, form, change)
