"""Checks specific to the curated NVIDIA GeForce/TITAN rows (plain csv reading only).

The generic checks every curated file must pass are in tests/test_curated_gpus.py.
"""

from __future__ import annotations

import csv
import re
from datetime import date
from pathlib import Path

import pytest

CSV_PATH = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus" / "nvidia_consumer.csv"

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
def rows() -> list[dict[str, str]]:
    with CSV_PATH.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def by_name(rows) -> dict[str, dict[str, str]]:
    return {r["name"]: r for r in rows}


def test_it_covers_the_required_models(rows, by_name):
    assert len(rows) >= 55
    missing = [n for n in REQUIRED if n not in by_name]
    assert not missing, missing


def test_rows_are_complete_nvidia_parts(rows):
    # Stricter than the catalog-wide rules: every GeForce/TITAN row is an NVIDIA part with a release
    # date and both memory figures, and each price here cites an https source of its own.
    for r in rows:
        assert r["vendor"] == "nvidia", r["name"]
        date.fromisoformat(r["release_date"])
        assert number(r["memory_bus_bits"]) is not None, r["name"]
        assert number(r["memory_data_rate_gbps"]) is not None, r["name"]
        if r["launch_price_usd"]:
            assert r["price_source_url"].startswith("https://"), r["name"]
        if r["street_price_usd"]:
            assert r["street_price_source_url"].startswith("https://"), r["name"]


def test_discrete_cards_have_no_unified_memory(rows):
    for r in rows:
        assert r["unified_memory"] == "false", r["name"]
        assert r["gpu_memory_share"] == "", r["name"]


def test_desktop_short_names_stay_off_laptop_rows(by_name):
    laptop_aliases = {
        normalise(a) for r in by_name.values() if r["segment"] == "laptop" for a in r["aliases"].split(";") if a.strip()
    }
    for short in ("RTX 4090", "RTX 5090", "RTX 3080", "NVIDIA GeForce RTX 4090", "GeForce RTX 5070"):
        assert normalise(short) not in laptop_aliases, short


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
