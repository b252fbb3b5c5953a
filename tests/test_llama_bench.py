"""bench.llama_bench (llama-bench over generated GGUFs) and manage.py compare_llama_bench on the shipped H200 sweep."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from bench.llama_bench import PLAN, Step, command, parse, row, to_measured
from bench.llama_bench import test_label as label
from physics.gguf import FILE_TYPES
from physics.presets import CONFIG_DIR

ROOT = Path(__file__).resolve().parent.parent
SWEEP = ROOT / "bench" / "data" / "llama-bench-h200-2026-12-04.jsonl"
ABOUT = ROOT / "bench" / "data" / "llama-bench-h200-2026-12-04.about.json"
SHIPPED = ROOT / "inference" / "data" / "measured-h200-llamacpp-2026-12-04.json"
H200 = "NVIDIA H200 SXM 141 GB"  # NVML on the lent card: 143,771 MiB, 700 W limit (the SXM part)


def records() -> list[dict]:
    return [json.loads(line) for line in SWEEP.read_text(encoding="utf-8").splitlines()]


def test_every_plan_step_names_a_catalog_config_and_a_gguf_format():
    for step in PLAN:
        assert (CONFIG_DIR / step.config).is_file(), step.config
        assert step.fmt in FILE_TYPES, step.fmt


def test_the_command_puts_every_layer_on_the_gpu_and_asks_for_json_lines():
    step = Step("llama-3-2-1b-instruct.json", "Q4_K_M", ("-p", "512", "-fa", "0,1"))
    cmd = command("/opt/llama-bench", Path("/tmp/m.gguf"), step, 3)
    assert cmd[:3] == ["/opt/llama-bench", "-m", "/tmp/m.gguf"]
    assert cmd[cmd.index("-ngl") + 1] == "99" and cmd[cmd.index("-o") + 1] == "jsonl"
    assert cmd[cmd.index("-r") + 1] == "3" and cmd[-4:] == ["-p", "512", "-fa", "0,1"]


def test_parse_keeps_json_records_and_skips_log_lines():
    out = 'ggml_cuda_init: found 1 CUDA devices\n{"n_prompt": 512, "n_gen": 0, "n_depth": 4096, "avg_ts": 8765.9}\n\n'
    (r,) = parse(out)
    assert label(r) == "pp512 @ d4096"
    assert label({"n_prompt": 0, "n_gen": 128, "n_depth": 0}) == "tg128"


def test_a_table_row_names_the_model_format_test_and_flash_attention():
    step = Step("qwen3-30b-a3b.json", "Q4_K_M", ())
    r = {"n_prompt": 0, "n_gen": 128, "n_depth": 0, "flash_attn": 1, "n_ubatch": 512, "avg_ts": 305.4, "stddev_ts": 3.6}
    assert row(step, r) == "| qwen3-30b-a3b | Q4_K_M | tg128 | on | 512 | 305.4 | 3.6 |"


def test_the_shipped_sweep_is_one_cuda_build_on_an_h200_with_every_test_twice():
    rs = records()
    assert {r["gpu_info"] for r in rs} == {"NVIDIA H200"} and {r["n_threads"] for r in rs} == {16}
    assert {r["backends"] for r in rs} == {"CUDA"} and {r["n_gpu_layers"] for r in rs} == {99}
    # Each test ran with flash attention off and on.
    tests = {(r["config"], r["format"], label(r), bool(r["flash_attn"])) for r in rs}
    assert len(tests) == len(rs) == 2 * len({t[:3] for t in tests})
    assert all(r["avg_ts"] > 0 and len(r["samples_ts"]) == 3 for r in rs)


@pytest.mark.django_db
def test_compare_prints_each_flash_attention_test_beside_the_estimate(curated_catalog):
    out = io.StringIO()
    call_command("compare_llama_bench", str(SWEEP), "--gpu", H200, stdout=out)
    text = out.getvalue()
    lines = [line for line in text.splitlines() if line.startswith("| llama") or line.startswith("| qwen")]
    assert len(lines) == sum(1 for r in records() if r["flash_attn"]) == 17
    # The measured figure of each row is the record's own rate (70B tg128: 44.7 tok/s).
    assert any(line.startswith("| llama-3-1-70b-instruct | Q4_K_M | tg128 | 45 |") for line in lines)
    assert "prompt: 9 tests, MAPE" in text and "decode: 8 tests, MAPE" in text


@pytest.mark.django_db
def test_compare_answers_a_missing_file_and_an_unknown_gpu_with_a_message(curated_catalog, tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("compare_llama_bench", str(tmp_path / "none.jsonl"), "--gpu", H200)
    out = io.StringIO()
    with pytest.raises(CommandError, match="Unknown GPU"):
        call_command("compare_llama_bench", str(SWEEP), "--gpu", "no such card", stdout=out)
    assert out.getvalue() == ""  # no half-printed table before the error
    other = tmp_path / "other.jsonl"
    other.write_text('{"model": "x", "tok_s": 5}\n')
    with pytest.raises(CommandError, match="record 1 .* not a bench.llama_bench record: no config, format"):
        call_command("compare_llama_bench", str(other), "--gpu", H200)


def test_shipping_pairs_each_flash_attention_prompt_with_the_generation_at_its_depth():
    doc = to_measured(records(), json.loads(ABOUT.read_text(encoding="utf-8")))
    runs = [r["result"] for r in doc["runs"]]
    # 8B Q4_K_M at depths 0, 4096 and 16384, 8B Q8_0 and F16, 1B, Qwen3 30B-A3B, 70B; pp2048 has no partner.
    assert len(runs) == 8 and doc["fold"] is False
    assert all(r["spec"]["flash_attn"] and r["spec"]["prompt_tokens"] == 512 for r in runs)
    deep = next(r for r in runs if r["spec"]["context_depth"] == 16384)
    assert deep["prefill_tok_s"] == pytest.approx(7166.9, abs=0.1) and deep["decode_tok_s"] == pytest.approx(
        215.5, abs=0.1
    )
    assert deep["ttft_s"] == pytest.approx(512 / deep["prefill_tok_s"])
    seventy = next(r for r in doc["runs"] if r["model"] == "llama-3-1-70b-instruct")["result"]
    assert seventy["model_layers"] == 80 and seventy["engine"] == "llama.cpp" and seventy["peak_memory_gb"] is None
    # The shipped file is what the sweep and its description give.
    assert json.loads(SHIPPED.read_text(encoding="utf-8")) == json.loads(json.dumps(doc))


def test_shipping_refuses_a_sweep_without_a_pair():
    lone = [r for r in records() if r["n_prompt"] == 2048]
    with pytest.raises(ValueError, match="no flash-attention pp512"):
        to_measured(lone, json.loads(ABOUT.read_text(encoding="utf-8")))


@pytest.mark.django_db
def test_the_h200_sweep_shows_on_its_gpu_page_and_refits_nothing(curated_catalog, client):
    from inference.models import BenchmarkResult
    from planner.models import Calibration

    runs = BenchmarkResult.objects.filter(engine="llama.cpp", job__target_host="h200-llamacpp-2026-12-04")
    assert runs.count() == 8 and not runs.filter(folded_into_calibration=True).exists()
    assert not Calibration.objects.filter(backend="llama.cpp", is_fitted=True).exists()
    seventy = runs.get(job__model__slug="llama-3-1-70b-instruct")
    assert seventy.layers == 80 and seventy.decode_ratio == pytest.approx(
        44.7 / seventy.estimated_decode_tok_s, rel=0.01
    )
    page = client.get(seventy.gpu.get_absolute_url()).content.decode()
    assert "after 16384 cached tokens" in page and "0c1e57098" in page


def test_a_run_records_each_test_as_it_comes_and_removes_the_files(tmp_path, monkeypatch):
    import bench.llama_bench as lb

    written = []

    def fake_gguf(cache, config, fmt, label=""):
        path = Path(cache) / f"{label}-{fmt}.gguf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"GGUF")
        written.append(path)
        return type("W", (), {"path": path, "file_bytes": 4})()

    monkeypatch.setattr(lb, "cached_gguf", fake_gguf)
    # A stand-in llama-bench: prints a log line and one record per test it was asked for, or fails on a Q8_0 file.
    fake = tmp_path / "llama-bench"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$2" in *Q8_0*) echo "CUDA error: out of memory" >&2; exit 1;; esac\n'
        'echo "ggml_cuda_init: found 1 CUDA devices"\n'
        'echo \'{"n_prompt": 512, "n_gen": 0, "n_depth": 0, "flash_attn": 1, "n_ubatch": 512, "avg_ts": 100.0}\'\n'
        'echo \'{"n_prompt": 0, "n_gen": 128, "n_depth": 0, "flash_attn": 1, "n_ubatch": 512, "avg_ts": 10.0}\'\n'
    )
    fake.chmod(0o755)
    plan = (
        Step("llama-3-2-1b-instruct.json", "Q4_K_M", ("-p", "512")),
        Step("llama-3-2-1b-instruct.json", "Q4_K_M", ("-p", "512", "-d", "4096")),  # the same file, written once
        Step("llama-3-2-1b-instruct.json", "Q8_0", ("-p", "512")),
    )
    out = tmp_path / "out.jsonl"
    failures = lb.run(str(fake), out, tmp_path / "cache", plan, repeats=1, budget_s=60)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert failures == 1 and len(rows) == 4 and len(written) == 2
    assert {r["format"] for r in rows} == {"Q4_K_M"} and rows[0]["command"][-2:] == ["-p", "512"]
    assert not any(p.exists() for p in written)  # every generated file is gone at the end
    # A spent budget starts nothing.
    assert lb.run(str(fake), tmp_path / "none.jsonl", tmp_path / "cache", plan, repeats=1, budget_s=-1) == 0
    assert not (tmp_path / "none.jsonl").exists()
