"""The benchmark runner on the CPU: results, out-of-memory as a result, byte accounting, the CLI, the GPU check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from bench import prompts, runner
from bench.mixtral import MIXTRAL_8X7B, TINY, build_meta
from bench.runner import BenchSpec, active_bytes, run_benchmark, weight_bytes

pytestmark = pytest.mark.torch

SMALL = BenchSpec(preset="tiny", precision="fp32", batch=2, prompt_tokens=12, new_tokens=3, repeats=2)


def test_it_returns_an_ok_result_with_decode_and_prefill_apart():
    calls: list[tuple[float, str]] = []
    r = run_benchmark(SMALL, progress=lambda pct, msg: calls.append((pct, msg)))
    assert r.status == "ok", r.message
    assert r.prefill_tok_s > 0 and r.decode_tok_s > 0 and r.ttft_s > 0
    assert r.decode_tok_s_min <= r.decode_tok_s_max
    assert r.model_layers == r.full_layers == TINY.n_layers
    assert r.full_depth_decode_tok_s == r.decode_tok_s  # all layers ran: nothing extrapolated
    # 2 sequences x 3 new tokens x top-2, summed over 2 repeats, in every layer.
    assert all(sum(h) == 2 * 3 * 2 * 2 for h in r.expert_histogram)
    assert 2 <= r.experts_touched_per_layer <= 4
    assert "RSS" in r.peak_memory_source
    assert calls[0][0] == 0.0 and calls[-1] == (100.0, "done")
    assert json.loads(json.dumps(r.to_dict()))["status"] == "ok"


def test_out_of_memory_is_a_result_not_a_crash():
    spec = BenchSpec(
        preset="mixtral-8x7b", layers=2, precision="bf16", prompt_tokens=8, new_tokens=2, memory_limit_gb=1.0
    )
    r = run_benchmark(spec)
    assert r.status == "oom"
    assert "exceed memory_limit_gb=1.0" in r.message and r.decode_tok_s is None


def test_an_allocation_failure_inside_the_run_is_reported_as_oom(monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(runner, "build_model", fail)
    r = run_benchmark(SMALL)
    assert r.status == "oom" and "Tried to allocate" in r.message


def test_other_failures_are_errors(monkeypatch):
    monkeypatch.setattr(runner, "build_model", lambda spec, device: 1 / 0)
    r = run_benchmark(SMALL)
    assert r.status == "error" and "ZeroDivisionError" in r.message


def test_fewer_layers_are_reported_and_extrapolated():
    r = run_benchmark(BenchSpec(preset="tiny", layers=1, precision="fp32", prompt_tokens=8, new_tokens=2, repeats=1))
    assert r.status == "ok" and r.model_layers == 1 and r.full_layers == 2
    assert r.full_depth_decode_tok_s < r.decode_tok_s
    assert r.full_depth_weight_bytes > r.weight_bytes
    assert "1 of 2 layers ran" in r.extrapolation


def test_quantized_run_reads_fewer_bytes():
    base = run_benchmark(SMALL)
    q = run_benchmark(BenchSpec(preset="tiny", precision="int8", batch=2, prompt_tokens=12, new_tokens=3, repeats=1))
    assert q.status == "ok"
    assert q.weight_bytes < base.weight_bytes


def test_active_bytes_count_two_of_eight_experts_at_mixtral_shapes():
    model = build_meta(MIXTRAL_8X7B).to(dtype=torch.bfloat16)
    total = weight_bytes(model)
    assert total == 2 * sum(p.numel() for p in model.parameters())  # 93.4 GB of bf16
    active = active_bytes(model, batch=1, experts_touched=[2.0] * 32)
    # Published: about 12.9 B active parameters per token, counting the whole 131 M embedding matrix; a decode
    # step reads one row of it, so the bytes read are 12.75 B parameters.
    assert 12.70e9 * 2 < active < 12.80e9 * 2


def test_spec_validation_rejects_bad_values():
    with pytest.raises(ValueError):
        BenchSpec(precision="int3").validate()
    with pytest.raises(ValueError):
        BenchSpec(cuda_graph=True, device="cpu").validate()


def test_cli_prints_json(capsys):
    code = runner.main(
        [
            "--preset",
            "tiny",
            "--precision",
            "fp32",
            "--prompt-tokens",
            "8",
            "--new-tokens",
            "2",
            "--repeats",
            "1",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "ok" and out["spec"]["prompt_tokens"] == 8


def test_prompts_have_exact_length_and_start_with_bos():
    p = prompts.prompt(300)
    assert len(p) == 300 and p[0] == prompts.BOS_ID and p.count(prompts.BOS_ID) == 1
    rows = prompts.prompt_batch(3, 50)
    assert len({tuple(r) for r in rows}) == 3


def test_shipped_prompt_ids_equal_a_fresh_mistral_common_tokenization():
    fresh = prompts.fresh_token_ids()
    assert fresh is not None, "mistral-common[sentencepiece] is a dev dependency"
    assert prompts.shipped_token_ids() == fresh
    assert fresh[0][:4] == [1, 733, 16289, 28793]  # <s> [INST]


@pytest.mark.django_db
def test_gpu_check_quick_run_writes_each_result_and_ships_them(tmp_path, capsys):
    from bench import gpu_check
    from inference.measured import load_measured
    from inference.models import BenchmarkResult

    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--device", "cpu", "--layers", "1", "--quick", "--out", str(out)]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines[0]["kind"] == "device" and lines[0]["copy_gb_s"] > 0
    assert [rec["result"]["status"] for rec in lines[1:]] == ["ok"] * 6
    kernels = [rec["result"]["kernels"] for rec in lines[1:]]
    assert kernels[1] == "int8: aten._weight_int8pack_mm" and "turned off" in kernels[4]
    assert kernels[5].startswith("prefill: int8: aten._weight_int8pack_mm; decode step compiled into")
    printed = capsys.readouterr().out
    assert "decode" in printed and "int8 b1 p16 L2 unfused" in printed

    # Shipping writes the runs where load_catalog finds them; loading shows them as measured results, once.
    assert gpu_check.main(["--ship", str(out), "--command", "gpu_check --quick", "--dest", str(tmp_path)]) == 0
    shipped = Path(capsys.readouterr().out.split("wrote ", 1)[1].strip())
    doc = json.loads(shipped.read_text())
    assert shipped.name == f"measured-{doc['host'].removesuffix('-lent')}-{lines[0]['date']}.json"
    assert [r["result"]["kernels"] for r in doc["runs"]] == kernels and doc["device"]["torch_device"] == "cpu"
    assert load_measured([shipped]) == 6 and load_measured([shipped]) == 0
    results = BenchmarkResult.objects.filter(job__task_id__startswith=f"measured:{shipped.name}:")
    assert results.count() == 6 and {r.precision for r in results} == {"fp32", "int8", "int4"}


def test_quantized_runs_say_which_kernels_ran():
    spec = dict(preset="tiny", batch=1, prompt_tokens=8, new_tokens=2, repeats=1, group_size=32)
    fused = run_benchmark(BenchSpec(precision="int4", **spec))
    assert fused.status == "ok", fused.message
    assert fused.kernels == "int4: aten._weight_int4pack_mm_for_cpu; int8: aten._weight_int8pack_mm"
    plain = run_benchmark(BenchSpec(precision="int8", fused=False, **spec))
    assert plain.status == "ok" and plain.kernels == "int8: dequantize + matmul (fused kernels turned off)"
    assert run_benchmark(BenchSpec(precision="fp32", **spec)).kernels == ""
