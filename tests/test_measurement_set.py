"""Checks on the public measurement set in physics/data/measurements (one CSV per source).

Plain pytest functions over the csv module: no Django, no database.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest

MEASUREMENTS_DIR = Path(__file__).resolve().parent.parent / "physics" / "data" / "measurements"

HEADER = [
    "source_url", "source_date", "licence", "engine", "engine_version", "backend", "flash_attention", "gpu",
    "gpu_memory_gb", "gpu_bandwidth_gb_s", "gpu_fp16_tensor_tflops", "gpu_count", "split", "interconnect", "model",
    "model_hf_repo", "params_b", "active_params_b", "layers", "kv_heads", "head_dim", "format", "bits_per_weight",
    "batch", "context", "prompt_tokens", "gen_tokens", "metric", "value", "notes",
]  # fmt: skip

ENGINES = {
    "llama.cpp", "vllm", "sglang", "exllamav2", "mlx", "mlc", "tensorrt-llm", "gpt-fast", "ollama", "transformers",
    "lmdeploy", "other",
}  # fmt: skip
BACKENDS = {"cuda", "metal", "rocm", "vulkan", "sycl", "cpu"}
METRICS = {"decode_tok_s", "prefill_tok_s", "ttft_s"}
SPLITS = {"none", "layer", "row", "tensor"}
INTERCONNECTS = {"none", "pcie", "nvlink", "unified"}
FLASH_ATTENTION = {"on", "off", ""}  # "": the source does not say


def _csv_files() -> list[Path]:
    return sorted(MEASUREMENTS_DIR.glob("*.csv"))


def _rows() -> list[tuple[str, int, dict[str, str]]]:
    out = []
    for path in _csv_files():
        with path.open(newline="", encoding="utf-8") as fh:
            for line_no, row in enumerate(csv.DictReader(fh), start=2):
                out.append((path.name, line_no, row))
    return out


def _num(row: dict[str, str], column: str) -> float:
    """Returns the column as a float; an empty or malformed cell fails with the column named."""
    try:
        return float(row[column])
    except ValueError:
        pytest.fail(f"{column}={row[column]!r} is not a number in row for {row['model']!r} from {row['source_url']}")


def test_the_folder_holds_measurement_files():
    assert _csv_files(), f"no CSV files in {MEASUREMENTS_DIR}"


@pytest.mark.parametrize("path", _csv_files(), ids=lambda p: p.name)
def test_each_file_has_exactly_the_shared_header(path: Path):
    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh))
    assert header == HEADER


@pytest.mark.parametrize("path", _csv_files(), ids=lambda p: p.name)
def test_each_file_is_named_as_a_lower_case_slug(path: Path):
    stem = path.stem
    assert stem == stem.lower()
    assert all(ch.isalnum() or ch == "-" for ch in stem), stem


@pytest.mark.parametrize("path", _csv_files(), ids=lambda p: p.name)
def test_each_file_has_at_least_one_row(path: Path):
    with path.open(newline="", encoding="utf-8") as fh:
        assert sum(1 for _ in csv.DictReader(fh)) >= 1


def test_every_row_has_the_same_number_of_fields_as_the_header():
    for path in _csv_files():
        with path.open(newline="", encoding="utf-8") as fh:
            for line_no, fields in enumerate(csv.reader(fh), start=1):
                assert len(fields) == len(HEADER), f"{path.name}:{line_no}"


def test_vocabulary_columns_use_the_allowed_values():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        assert row["engine"] in ENGINES, where
        assert row["backend"] in BACKENDS, where
        assert row["metric"] in METRICS, where
        assert row["split"] in SPLITS, where
        assert row["interconnect"] in INTERCONNECTS, where
        assert row["flash_attention"] in FLASH_ATTENTION, where


def test_flash_attention_agrees_with_what_the_notes_say():
    # The notes keep the source's own flags; a row whose notes give -fa 0 or -fa 1 records the same in the column.
    for name, line_no, row in _rows():
        notes = row["notes"]
        if re.search(r"-fa 1\b|\bFA on\b|flash attention on", notes, re.IGNORECASE):
            assert row["flash_attention"] == "on", f"{name}:{line_no}"
        if re.search(r"-fa 0\b|\bFA off\b|flash attention off", notes, re.IGNORECASE):
            assert row["flash_attention"] == "off", f"{name}:{line_no}"


def test_every_row_names_a_public_https_source():
    for name, line_no, row in _rows():
        assert row["source_url"].startswith("https://"), f"{name}:{line_no}"
        # A date where the source states one (YYYY-MM or YYYY-MM-DD); scoreboard rows carried over without one.
        assert row["source_date"] == "" or re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", row["source_date"]), (
            f"{name}:{line_no}"
        )
        assert row["licence"], f"{name}:{line_no}"


def test_every_row_fully_specifies_the_model():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        assert row["model"], where
        params, active = _num(row, "params_b"), _num(row, "active_params_b")
        assert 0 < active <= params, where
        assert int(row["layers"]) > 0, where
        assert int(row["kv_heads"]) > 0, where
        assert int(row["head_dim"]) > 0, where


def test_every_row_fully_specifies_the_gpu():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        assert row["gpu"], where
        assert _num(row, "gpu_memory_gb") > 0, where
        assert 0 < _num(row, "gpu_bandwidth_gb_s") < 20000, where
        if row["gpu_fp16_tensor_tflops"]:
            assert _num(row, "gpu_fp16_tensor_tflops") > 0, where


def test_split_is_none_exactly_when_one_gpu_is_used():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        count = int(row["gpu_count"])
        assert count >= 1, where
        assert (row["split"] == "none") == (count == 1), where


def test_numbers_parse_and_are_sane():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        assert 0 < _num(row, "value") < 100000, where
        assert 0 < _num(row, "bits_per_weight") <= 32, where
        assert int(row["batch"]) >= 1, where
        for column in ("context", "prompt_tokens", "gen_tokens"):
            if row[column]:
                assert int(row[column]) >= 0, where


def test_prefill_rows_state_a_prompt_and_decode_rows_state_generated_tokens():
    for name, line_no, row in _rows():
        where = f"{name}:{line_no}"
        if row["metric"] == "prefill_tok_s" and row["prompt_tokens"]:
            assert int(row["prompt_tokens"]) > 0, where
        if row["metric"] == "decode_tok_s" and row["gen_tokens"]:
            assert int(row["gen_tokens"]) > 0, where


def test_there_are_no_duplicate_rows():
    seen: dict[tuple[str, ...], str] = {}
    for name, line_no, row in _rows():
        key = tuple(row[column] for column in HEADER)
        assert key not in seen, f"{name}:{line_no} repeats {seen[key]}"
        seen[key] = f"{name}:{line_no}"


SET_ASIDE = MEASUREMENTS_DIR.parent / "set_aside.csv"
SET_ASIDE_KEY = ("file", "gpu", "model", "format", "metric")


def test_every_set_aside_entry_names_rows_of_the_set_and_says_why():
    rows = {(name, row["gpu"], row["model"], row["format"], row["metric"]) for name, _, row in _rows()}
    with SET_ASIDE.open(newline="", encoding="utf-8") as fh:
        entries = list(csv.DictReader(fh))
    assert entries
    for entry in entries:
        key = tuple(entry[c] for c in SET_ASIDE_KEY)
        assert key in rows, f"set_aside.csv names no row of the set: {key}"
        assert entry["metric"] in METRICS
        assert len(entry["reason"].split()) >= 10, f"a set-aside entry needs its reason: {key}"
