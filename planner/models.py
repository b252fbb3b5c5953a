"""Calibration: efficiency factors the estimator applies, per backend × hardware class × precision × batch."""

from __future__ import annotations

from django.db import models
from django.db.models import Q

from core.constraints import Check


class Calibration(models.Model):
    backend = models.CharField("backend", max_length=32, help_text="llama.cpp, vllm, gpufit-torch… or * for any.")
    hardware_class = models.CharField(
        "hardware class",
        max_length=32,
        help_text="nvidia-hbm, nvidia-gddr, amd-hbm, amd-gddr, apple, intel, cpu… or *.",
    )
    precision_class = models.CharField("precision class", max_length=16, help_text="float, int8, int4 or *.")
    batch_class = models.CharField(
        "batch class",
        max_length=8,
        default="*",
        choices=[("*", "any batch"), ("1", "one sequence"), ("many", "a batch of sequences")],
        help_text="1 for single-sequence decode, many for batched decode, * for both.",
    )
    decode_efficiency = models.FloatField(
        "decode efficiency", help_text="Achieved share of memory bandwidth at decode (0–1)."
    )
    prefill_efficiency = models.FloatField(
        "prefill efficiency",
        help_text="Achieved share of the fp16 tensor TFLOPS at prefill (0–2: quantized prompts may run int8 kernels, "
        "twice the fp16 rate).",
    )
    spread = models.FloatField(
        "spread",
        null=True,
        blank=True,
        help_text="Relative spread of the fit (e.g. 0.15 = ±15 %) used for the estimate's range.",
    )
    spread_several = models.FloatField(
        "spread, several GPUs",
        null=True,
        blank=True,
        help_text="The range's half-width for builds of several GPUs; empty: as for one GPU.",
    )
    costs = models.JSONField(
        "fixed costs",
        default=dict,
        blank=True,
        help_text="Fitted seconds that do not shrink with bandwidth: step_s, layer_s, moe_layer_s, hop_s, "
        "allreduce_s (per all-reduce over NVLink), allreduce_pcie_s (per ring step of an all-reduce over PCIe: "
        "x n - 1), prefill_s, and the prompt's "
        "prefill_chunk_inv_efficiency and prefill_attention_inv_efficiency factors (docs/estimator.md).",
    )
    from_defaults = models.BooleanField(
        "shipped default",
        default=False,
        help_text="Loaded from the shipped fit (physics/data/fitted.json); load_catalog replaces such rows when "
        "the fit changes. Saving the row in the admin clears this, so an editor's change is kept.",
    )
    runs = models.PositiveIntegerField(
        "runs", default=0, help_text="How many measured runs the factor was fitted from."
    )
    source = models.CharField(
        "source", max_length=300, help_text="'default: …' with its reason, or 'fit: N runs, date'."
    )
    is_fitted = models.BooleanField("fitted from benchmarks", default=False)
    # Indexed: the catalog fingerprint (planner.lookup) reads MAX(updated_at) on every page request.
    updated_at = models.DateTimeField("updated", auto_now=True, db_index=True)

    class Meta:
        verbose_name = "calibration factor"
        ordering = ["backend", "hardware_class", "precision_class", "batch_class"]
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "hardware_class", "precision_class", "batch_class"], name="calibration_unique_key"
            ),
            Check(
                condition=Q(decode_efficiency__gt=0) & Q(decode_efficiency__lte=1), name="calibration_decode_in_range"
            ),
            Check(
                condition=Q(prefill_efficiency__gt=0) & Q(prefill_efficiency__lte=2),
                name="calibration_prefill_in_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend} / {self.hardware_class} / {self.precision_class} / batch {self.batch_class}"
