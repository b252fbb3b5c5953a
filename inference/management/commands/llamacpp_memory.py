"""python manage.py llamacpp_memory — the estimator's memory terms against llama.cpp's allocator, per catalog model."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from bench.engines.llamacpp import llama_cpp
from bench.engines.llamacpp_memory import CONTEXTS, compare_memory, markdown_table, summary, write_csv
from models.catalog import DATA_DIR, read_models
from models.models import LanguageModel
from physics.arch import arch_from_config
from physics.gguf import FORMAT_TYPES, supported

DEFAULT_CSV = Path(settings.BASE_DIR) / "inference" / "data" / "llamacpp-memory.csv"
DEFAULT_DOC = Path(settings.BASE_DIR) / "docs" / "llamacpp-memory.md"
_TABLE = re.compile(r"(<!-- memory-table:start -->\n).*?(<!-- memory-table:end -->)", re.S)


class Command(BaseCommand):
    help = (
        "Loads a sparse GGUF of every catalog model llama.cpp supports (no disk, no weights read) and writes the "
        "table of the estimator's weights, KV cache and overhead against the buffers llama.cpp allocates."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", default="Q4_K_M", choices=sorted(FORMAT_TYPES))
        parser.add_argument("--contexts", type=int, nargs="+", default=list(CONTEXTS))
        parser.add_argument("--models", nargs="*", default=None, help="catalog slugs (default: every model)")
        parser.add_argument("--csv", default=str(DEFAULT_CSV), help="where the CSV table goes")
        parser.add_argument(
            "--docs", default=str(DEFAULT_DOC), help="markdown page whose table is replaced ('' to leave it)"
        )
        parser.add_argument("--cache", default="", help="keep the sparse files here (default: a temporary folder)")

    def handle(self, *args, **o):
        if llama_cpp is None:
            raise CommandError("llama-cpp-python is not installed: pip install llama-cpp-python==0.3.36")
        configs = self._configs(o["models"])
        rows, skipped = [], []
        with tempfile.TemporaryDirectory(prefix="gpufit-gguf-") as tmp:
            cache = o["cache"] or tmp
            for slug, config in configs:
                if not supported(arch_from_config(config)):
                    skipped.append(f"{slug} ({config.get('model_type')})")
                    continue
                self.stderr.write(f"{slug}: {o['format']} at {', '.join(map(str, o['contexts']))} tokens")
                rows += compare_memory(slug, config, o["format"], o["contexts"], cache_dir=cache)
        if not rows:
            raise CommandError("no catalog model has a GGUF layout; nothing was compared")
        write_csv(rows, o["csv"])
        stats = summary(rows)
        if o["docs"]:
            self._update_doc(Path(o["docs"]), rows, stats, skipped)
        self.stdout.write(
            f"{stats['models']['count']} models, {stats['total']['rows']} rows written to {o['csv']}; |error| "
            + ", ".join(
                f"{term} max {stats[term]['max_abs_pct']:.1f} % median {stats[term]['median_abs_pct']:.1f} %"
                for term in ("weights", "kv", "compute", "total")
            )
        )
        if skipped:
            self.stdout.write(f"no GGUF layout (not compared): {', '.join(skipped)}")

    def _configs(self, slugs: list[str] | None) -> list[tuple[str, dict]]:
        """Returns (slug, config.json dict) for the catalog's models, read from the files load_catalog reads."""
        files = {entry["slug"]: entry["config"] for entry, _facts in read_models()}
        try:
            in_db = list(LanguageModel.objects.order_by("slug").values_list("slug", flat=True))
        except DatabaseError:  # a database not migrated yet: the catalog files alone
            in_db = []
        wanted = in_db or sorted(files)  # an empty database: the catalog files themselves
        if slugs:
            unknown = sorted(set(slugs) - set(files))
            if unknown:
                raise CommandError(f"unknown model slug(s): {', '.join(unknown)}")
            wanted = [s for s in wanted if s in slugs] or slugs
        return [
            (slug, json.loads((DATA_DIR / "configs" / files[slug]).read_text(encoding="utf-8")))
            for slug in wanted
            if slug in files
        ]

    def _update_doc(self, path: Path, rows, stats, skipped: list[str]) -> None:
        """Replaces the table between the page's markers with this run's rows and summary."""
        if not path.exists():
            raise CommandError(f"{path} does not exist (pass --docs '' to skip the page)")
        lines = [
            f"{stats['models']['count']} models, {stats['total']['rows']} rows. |error| of the estimate against "
            "llama.cpp, max / median: "
            + "; ".join(
                f"{term} {stats[term]['max_abs_pct']:.1f} % / {stats[term]['median_abs_pct']:.1f} %"
                for term in ("weights", "kv", "compute", "total")
            )
            + ".",
            "",
            markdown_table(rows),
        ]
        if skipped:
            lines.append(f"Not compared (no GGUF layout in physics/gguf.py): {', '.join(skipped)}.\n")
        text = path.read_text(encoding="utf-8")
        if not _TABLE.search(text):
            raise CommandError(f"{path} has no <!-- memory-table:start --> / <!-- memory-table:end --> markers")
        path.write_text(_TABLE.sub(lambda m: m[1] + "\n".join(lines) + m[2], text), encoding="utf-8")
