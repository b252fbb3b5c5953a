"""python manage.py import_model — adds a model from a local Hugging Face config.json (and a GGUF file's header)."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils.text import slugify

from models.catalog import model_fields
from models.models import LanguageModel, QuantFormat, QuantVRAM
from physics.arch import ConfigError, arch_from_config

MAX_CONFIG_BYTES = 1024 * 1024


def read_gguf(path: Path) -> dict:
    """Returns {"format", "file_bytes", "weights", "tensor_bytes"} read from a GGUF file's header and tensor table."""
    import gguf

    try:
        reader = gguf.GGUFReader(str(path), "r")
    except Exception as exc:  # the gguf package raises ValueError, struct errors or OSError on a bad file
        raise CommandError(f"{path}: not a readable GGUF file ({exc.__class__.__name__}: {exc}).") from None
    weights = sum(int(t.n_elements) for t in reader.tensors)
    tensor_bytes = sum(int(t.n_bytes) for t in reader.tensors)
    if not weights:
        raise CommandError(f"{path}: the GGUF file holds no tensors.")
    field = reader.get_field("general.file_type")
    file_type = None
    if field is not None:
        code = int(field.parts[field.data[0]][0])
        try:
            file_type = gguf.LlamaFileType(code).name.removeprefix("MOSTLY_").replace("ALL_", "")
        except ValueError:
            file_type = None
    return {"format": file_type, "file_bytes": path.stat().st_size, "weights": weights, "tensor_bytes": tensor_bytes}


class Command(BaseCommand):
    help = (
        "Adds (or updates) a model from a local Hugging Face config.json; with --gguf, also records that file's "
        "format, exact size and bits per weight in the VRAM table. A bad file writes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("--config", required=True, help="path to the model's config.json")
        parser.add_argument("--gguf", help="path to a GGUF file of the same model")
        parser.add_argument("--name", help="display name (default: the config folder's name)")
        parser.add_argument("--slug", help="URL name (default: from the name)")
        parser.add_argument("--hf-repo", default="", help="Hugging Face repo id, for the record")
        parser.add_argument(
            "--format", help="catalog format of the GGUF file when its header does not say (e.g. Q4_K_M)"
        )

    def handle(self, *args, **o):
        path = Path(o["config"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file.")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise CommandError(f"{path}: {path.stat().st_size} bytes is too large for a config.json.")
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CommandError(f"{path}: not valid JSON ({exc}).") from None
        try:
            facts = arch_from_config(config)
        except ConfigError as exc:
            raise CommandError(f"{path}: {exc}") from None
        gguf_info = read_gguf(Path(o["gguf"])) if o["gguf"] else None
        quant = None
        if gguf_info is not None:
            fmt_name = o["format"] or gguf_info["format"]
            quant = QuantFormat.objects.filter(name__iexact=fmt_name or "").first()
            if quant is None:
                known = ", ".join(QuantFormat.objects.values_list("name", flat=True))
                raise CommandError(f"GGUF format {fmt_name!r} is not in the catalog; pass --format (one of: {known}).")

        name = o["name"] or config.get("_name_or_path") or path.parent.name
        slug = o["slug"] or slugify(name.replace(".", "-"))
        meta = {"name": name, "hf_repo": o["hf_repo"], "description": f"Imported from {path.name}."}
        with transaction.atomic():
            model, created = LanguageModel.objects.update_or_create(slug=slug, defaults=model_fields(facts, meta))
            if quant is not None:
                bpw = 8 * gguf_info["tensor_bytes"] / gguf_info["weights"]
                QuantVRAM.objects.update_or_create(
                    model=model,
                    quant=quant,
                    defaults={
                        "file_bytes": gguf_info["file_bytes"],
                        "bits_per_weight": round(bpw, 4),
                        "source": f"GGUF file {Path(o['gguf']).name}: {gguf_info['weights']:,} weights in {gguf_info['tensor_bytes']:,} bytes",
                    },
                )
        verb = "Added" if created else "Updated"
        self.stdout.write(
            self.style.SUCCESS(
                f"{verb} {model.name} ({slug}): {facts.total_params:,} parameters ({facts.active_params:,} active), "
                f"{facts.layers} layers, {facts.kv_heads} KV heads × {facts.head_dim}, context {facts.context_length:,}."
            )
        )
        if quant is not None:
            self.stdout.write(f"  {quant.name}: {gguf_info['file_bytes']:,} bytes, {bpw:.3f} bits per weight")
