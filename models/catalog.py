"""Loading the LLM catalog from ``models/data/``: formats, models (facts derived from their configs), VRAM rows."""

from __future__ import annotations

import csv
import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.db import transaction

from hardware.catalog import CatalogError
from models.models import (
    BenchmarkScore,
    LanguageModel,
    LanguageModelAlias,
    QuantFormat,
    QuantVRAM,
    normalise_alias,
)
from physics.arch import ConfigError, arch_from_config

DATA_DIR = Path(__file__).resolve().parent / "data"


@dataclass
class ModelLoadReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    kept: int = 0
    formats_changed: int = 0
    vram_changed: int = 0
    scores_changed: int = 0
    aliases_added: int = 0
    aliases_retired: int = 0
    alias_conflicts: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        return (
            self.created
            + self.updated
            + self.formats_changed
            + self.vram_changed
            + self.scores_changed
            + self.aliases_added
            + self.aliases_retired
        )


def model_fields(facts, meta: dict) -> dict:
    """Returns LanguageModel field values from derived architecture facts and the catalog entry."""
    release = meta.get("release_date")
    return {
        **LanguageModel.arch_values(facts),
        "name": meta["name"],
        "family": meta.get("family", ""),
        "vendor": meta.get("vendor", ""),
        "hf_repo": meta.get("hf_repo", ""),
        "release_date": dt.date.fromisoformat(release) if release else None,
        "license": meta.get("license", ""),
        "downloads": meta.get("downloads"),
        "tags": ", ".join(meta.get("tags", [])),
        "ollama_tag": meta.get("ollama_tag") or "",
        "instruction_format": meta.get("instruction_format") or "",
        "description": meta.get("description", ""),
        "source_url": meta.get("source_url", ""),
    }


def read_formats() -> list[dict]:
    path = DATA_DIR / "formats.csv"
    rows = []
    with path.open(encoding="utf-8") as fh:
        for order, row in enumerate(csv.DictReader(fh)):
            try:
                bpw = float(row["bits_per_weight"])
            except (KeyError, ValueError):
                raise CatalogError(
                    f"formats.csv row {order + 2}: bits_per_weight {row.get('bits_per_weight')!r} is not a number."
                ) from None
            rows.append(
                {
                    "name": row["name"].strip(),
                    "kind": row["kind"].strip(),
                    "bits_per_weight": bpw,
                    "description": (row.get("description") or "").strip(),
                    "source_url": (row.get("source_url") or "").strip(),
                    "sort_order": order,
                }
            )
    return rows


def read_models() -> list[tuple[dict, object]]:
    """Returns (catalog entry, derived facts) for every model; raises CatalogError naming a bad entry."""
    entries = json.loads((DATA_DIR / "models.json").read_text(encoding="utf-8"))
    out = []
    for entry in entries:
        config_path = DATA_DIR / "configs" / entry["config"]
        try:
            facts = arch_from_config(json.loads(config_path.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, ConfigError) as exc:
            raise CatalogError(f"model {entry.get('slug')}: {exc}") from exc
        for bench in entry.get("benchmarks", []):
            if not str(bench.get("source_url", "")).startswith("https://"):
                raise CatalogError(
                    f"model {entry.get('slug')}: the {bench.get('name')!r} score has no public source URL (https://…)."
                )
        out.append((entry, facts))
    return out


def check_aliases(entries: list[dict]) -> dict[str, str]:
    """Returns {normalised alias: slug} for the catalog's aliases; raises CatalogError when one names two models.

    An alias may not repeat another model's slug, name or Hugging Face repo id either: the resolver
    matches those first, so such an alias could never reach its model.
    """
    owners: dict[str, str] = {}
    own_names: dict[str, str] = {}
    for entry in entries:
        for value in (entry["slug"], entry["name"], entry.get("hf_repo") or ""):
            if value:
                own_names.setdefault(normalise_alias(value), entry["slug"])
    for entry in entries:
        for alias in entry.get("aliases", []):
            key = normalise_alias(alias)
            if not key:
                raise CatalogError(f"model {entry['slug']}: an empty alias.")
            if owners.get(key, entry["slug"]) != entry["slug"]:
                raise CatalogError(f"alias {alias!r} is given to both {owners[key]!r} and {entry['slug']!r}.")
            if own_names.get(key, entry["slug"]) != entry["slug"]:
                raise CatalogError(
                    f"model {entry['slug']}: alias {alias!r} is the slug, name or repo of {own_names[key]!r}."
                )
            owners[key] = entry["slug"]
    return owners


def load_models() -> ModelLoadReport:
    """Returns what changed after loading formats, models, VRAM rows and scores; rows an editor changed stay."""
    report = ModelLoadReport()
    formats = read_formats()
    models = read_models()
    check_aliases([entry for entry, _facts in models])
    with transaction.atomic():
        quants: dict[str, QuantFormat] = {}
        for fmt in formats:
            obj = QuantFormat.objects.filter(name=fmt["name"]).first()
            if obj is None:
                obj = QuantFormat.objects.create(**fmt)
                report.formats_changed += 1
            elif any(getattr(obj, k) != v for k, v in fmt.items()):
                for k, v in fmt.items():
                    setattr(obj, k, v)
                obj.save()
                report.formats_changed += 1
            quants[obj.name] = obj

        for entry, facts in models:
            values = model_fields(facts, entry)
            obj = LanguageModel.objects.filter(slug=entry["slug"]).first()
            if obj is None:
                obj = LanguageModel.objects.create(slug=entry["slug"], **values)
                report.created += 1
            elif obj.edited_by_editor:
                report.kept += 1
            elif any(getattr(obj, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(obj, k, v)
                obj.save()
                report.updated += 1
            else:
                report.unchanged += 1
            report.vram_changed += _load_vram(obj, entry, quants)
            report.scores_changed += _load_scores(obj, entry)
            _load_aliases(obj, entry, report)
    return report


def _load_aliases(model: LanguageModel, entry: dict, report: ModelLoadReport) -> None:
    """Adds the entry's aliases that no row holds yet; an alias an editor moved or added stays where it is.

    ``retired_aliases`` are names the catalog once gave this model and withdrew (a tag Ollama re-pointed to other
    weights): a row still holding one for this model is deleted; one an editor moved to another model stays.
    """
    retired = [normalise_alias(alias) for alias in entry.get("retired_aliases", [])]
    if retired:
        deleted, _ = LanguageModelAlias.objects.filter(model=model, normalised__in=retired).delete()
        report.aliases_retired += deleted
    wanted = {normalise_alias(alias): alias for alias in entry.get("aliases", [])}
    held = dict(LanguageModelAlias.objects.filter(normalised__in=wanted).values_list("normalised", "model_id"))
    for key, alias in wanted.items():
        if key not in held:
            LanguageModelAlias.objects.create(model=model, name=alias)
            report.aliases_added += 1
        elif held[key] != model.id:
            report.alias_conflicts.append(f"{alias} (kept on its current model, wanted by {model.slug})")


def _load_vram(model: LanguageModel, entry: dict, quants: dict[str, QuantFormat]) -> int:
    published = {q["format"]: q for q in entry.get("quants", [])}
    unknown = set(published) - set(quants)
    if unknown:
        raise CatalogError(
            f"model {entry['slug']}: unknown format(s) {', '.join(sorted(unknown))} (not in formats.csv)."
        )
    existing = {row.quant_id: row for row in model.vram_rows.all()}
    changed = 0
    for name, quant in quants.items():
        pub = published.get(name, {})
        bpw = pub.get("bits_per_weight_published")
        file_bytes = pub.get("file_bytes") or (round(pub["file_gb"] * 1e9) if pub.get("file_gb") else None)
        if file_bytes:
            source = "published file size" if pub.get("file_bytes") else "published file size (rounded GB)"
            source_url = pub.get("file_source_url", "")
        else:
            # No published file: size from the format's layout over the model's exact parameter count.
            file_bytes = round(model.total_params * (bpw or quant.bits_per_weight) / 8)
            source, source_url = "computed: parameters × bits per weight / 8", ""
        values = {
            "bits_per_weight": bpw,
            "file_bytes": int(file_bytes),
            "vram_gb": pub.get("vram_gb"),
            "quality_pct": pub.get("quality_pct"),
            "source": "; ".join(
                part
                for part in (
                    source,
                    pub.get("vram_source") and f"VRAM: {pub['vram_source']}",
                    pub.get("quality_source") and f"quality: {pub['quality_source']}",
                )
                if part
            )[:200],
            "source_url": source_url,
            "note": pub.get("note", ""),
        }
        row = existing.get(quant.id)
        if row is None:
            QuantVRAM.objects.create(model=model, quant=quant, **values)
            changed += 1
        elif not row.edited_by_editor and any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.save()
            changed += 1
    return changed


def _load_scores(model: LanguageModel, entry: dict) -> int:
    """Adds or updates the entry's quality scores; a score the catalog withdrew (``retired_benchmarks``) is deleted
    where it still stands without a source URL, as shipped (an editor's row carries one and stays)."""
    retired = entry.get("retired_benchmarks", [])
    changed, _ = model.benchmarks.filter(name__in=retired, source_url="").delete() if retired else (0, None)
    existing = {s.name: s for s in model.benchmarks.all()}
    for bench in entry.get("benchmarks", []):
        values = {
            "score": float(bench["score"]),
            "out_of": float(bench.get("out_of", 100.0)),
            "source": bench.get("source", "")[:200],
            "source_url": bench["source_url"],
        }
        row = existing.get(bench["name"])
        if row is None:
            BenchmarkScore.objects.create(model=model, name=bench["name"], **values)
            changed += 1
        elif any(getattr(row, k) != v for k, v in values.items()):
            for k, v in values.items():
                setattr(row, k, v)
            row.save()
            changed += 1
    return changed
