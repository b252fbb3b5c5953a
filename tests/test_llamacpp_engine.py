"""The llama.cpp engine on the CPU: a tiny generated Mixtral runs, failures are results, and the memory check holds."""

from __future__ import annotations

import json
import math

import pytest

from bench.engines import llamacpp
from bench.engines.llamacpp import LlamaCppEngine, parse_buffers
from bench.engines.llamacpp_memory import compare_memory, markdown_table, read_csv, summary, write_csv
from bench.gguf_writer import write_gguf
from physics.arch import arch_from_config
from physics.gguf import layout
from physics.presets import CONFIG_DIR
from physics.runs import BenchSpec, format_row

# A Mixtral of 2 blocks, 4 experts (top 2), hidden 256, a 1,024-token vocabulary: a 2.4 MB file that runs in
# milliseconds per token on two cores, with the real architecture's tensors and Q4_K_M's per-tensor types.
TINY_MIXTRAL = {
    "model_type": "mixtral",
    "_name_or_path": "tiny-mixtral",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_local_experts": 4,
    "num_experts_per_tok": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 4096,
    "rope_theta": 1e6,
}


def tiny_spec(**overrides) -> BenchSpec:
    values = dict(
        engine="llama.cpp",
        model_config=TINY_MIXTRAL,
        gguf_format="Q4_K_M",
        prompt_tokens=64,
        new_tokens=8,
        repeats=2,
        threads=2,
    )
    return BenchSpec(**{**values, **overrides})


@pytest.fixture
def engine(tmp_path):
    return LlamaCppEngine(cache_dir=tmp_path / "gguf")


def test_a_tiny_generated_mixtral_runs_on_the_cpu_like_llama_bench(engine):
    steps = []
    result = engine.run(tiny_spec(), progress=lambda pct, msg: steps.append(msg))
    assert result.status == "ok", result.message
    for rate in (result.prefill_tok_s, result.decode_tok_s, result.decode_tok_s_min, result.decode_tok_s_max):
        assert math.isfinite(rate) and rate > 0
    assert result.decode_tok_s_min <= result.decode_tok_s <= result.decode_tok_s_max
    assert 0 < result.ttft_s < 60 and result.per_token_latency_ms > 0 and result.warmup_s > 0
    # Bytes per step: the layout's (head, attention, norms, router and 2 of 4 experts), over the step time.
    lay = layout(arch_from_config(TINY_MIXTRAL), "Q4_K_M")
    assert result.active_bytes_per_token == round(lay.step_bytes())
    assert result.achieved_gb_s == pytest.approx(lay.step_bytes() * result.decode_tok_s / 1e9, rel=1e-3)
    assert result.weight_bytes == lay.weight_bytes
    assert result.peak_memory_gb > 0 and "RSS" in result.peak_memory_source
    assert result.engine == "llama.cpp" and result.engine_version.startswith("llama-cpp-python 0.3.36")
    flags = result.engine_flags
    assert flags["flash_attn"] is True and flags["threads"] == 2 and flags["n_gpu_layers"] == 0
    assert flags["gguf_source"] == "generated random-weight file" and flags["system_info"].startswith("CPU")
    assert flags["llama_cpp_buffers_mib"]["CPU_Mapped model"] > 0
    assert any("repeat 2/2: tg8" in m for m in steps)


def test_a_context_depth_is_filled_before_the_timed_tokens(engine):
    result = engine.run(tiny_spec(context_depth=300, repeats=1, new_tokens=2))
    assert result.status == "ok", result.message
    assert result.engine_flags["n_ctx"] >= 300 + 64 and result.engine_flags["context_depth"] == 300
    assert result.engine_flags["depth_fill_s"] > 0
    assert "at depth 300" in result.message


def test_an_operators_gguf_is_run_as_it_is(engine, tmp_path):
    path = write_gguf(tmp_path / "mine.gguf", TINY_MIXTRAL, "Q8_0").path
    result = engine.run(tiny_spec(gguf_format="", gguf_path=str(path), repeats=1))
    assert result.status == "ok", result.message
    assert result.engine_flags["gguf_source"] == "operator's file"
    assert set(result.engine_flags["gguf_types"]) == {"Q8_0", "F32"}
    missing = engine.run(tiny_spec(gguf_format="", gguf_path=str(tmp_path / "absent.gguf")))
    assert missing.status == "error" and "not a file" in missing.message


def test_out_of_memory_is_a_result_not_a_crash(engine):
    result = engine.run(tiny_spec(memory_limit_gb=0.001))
    assert result.status == "oom"
    assert "memory_limit_gb=0.001" in result.message and result.engine == "llama.cpp"


def test_a_missing_engine_is_an_error_result_with_the_install_command(engine, monkeypatch):
    monkeypatch.setattr(llamacpp, "llama_cpp", None)
    info = engine.info()
    assert not info.available and "pip install llama-cpp-python==0.3.36" in info.reason
    result = engine.run(tiny_spec())
    assert result.status == "error"
    assert "not available on this worker" in result.message and "pip install llama-cpp-python" in result.message


def test_what_the_adapter_cannot_run_comes_back_as_an_error(engine):
    gpt_oss = json.loads((CONFIG_DIR / "gpt-oss-20b.json").read_text(encoding="utf-8"))
    unsupported = engine.run(tiny_spec(model_config=gpt_oss))
    assert unsupported.status == "error" and "no GGUF layout for model_type 'gpt_oss'" in unsupported.message
    invalid = engine.run(tiny_spec(gguf_format=""))
    assert invalid.status == "error" and "needs gguf_format" in invalid.message
    batch = engine.run(tiny_spec(batch=2))
    assert batch.status == "error" and "batch 1" in batch.message


def test_it_reads_buffer_sizes_from_llama_cpps_log():
    lines = [
        "load_tensors:   CPU_Mapped model buffer size =  4685.30 MiB",
        "llama_context:  CPU  output buffer size =     0.49 MiB",
        "llama_kv_cache:        CPU KV buffer size =   512.00 MiB",
        "llama_kv_cache:        CPU KV buffer size =    96.00 MiB",
        "llama_context:        CPU compute buffer size =   258.50 MiB",
    ]
    b = parse_buffers(lines)
    assert b.model == round(4685.30 * 2**20) and b.kv == 608 * 2**20 and b.compute == round(258.5 * 2**20)
    assert b.total == b.model + b.kv + b.compute + b.output
    # Simulated allocation: empty KV buffers, the cache's size line instead.
    sim = parse_buffers(
        ["llama_kv_cache:        CPU KV buffer size =     0.00 MiB", "llama_kv_cache: size =  128.00 MiB (…)"]
    )
    assert sim.kv == 128 * 2**20


# Three small catalog models that exercise the three cache layouts: plain GQA (Llama 3.2 1B), sliding-window
# layers beside global ones (Gemma-2 2B, window 4096 + one micro-batch on llama.cpp), per-head query/key norms and
# a tied embedding (Qwen3 0.6B).
MEMORY_MODELS = {
    "llama-3-2-1b-instruct": "llama-3-2-1b-instruct.json",
    "gemma-2-2b-it": "gemma-2-2b-it.json",
    "qwen3-0-6b": "qwen3-0-6b.json",
}


@pytest.fixture(scope="module")
def memory_rows(tmp_path_factory):
    cache = tmp_path_factory.mktemp("sparse")
    rows = []
    for slug, filename in MEMORY_MODELS.items():
        config = json.loads((CONFIG_DIR / filename).read_text(encoding="utf-8"))
        rows += compare_memory(slug, config, "Q4_K_M", (4096, 32768), cache_dir=cache)
    return rows


def test_the_estimator_matches_llama_cpps_allocator_for_three_catalog_models(memory_rows):
    assert {r.model for r in memory_rows} == set(MEMORY_MODELS)
    assert {(r.model, r.context) for r in memory_rows} >= {("llama-3-2-1b-instruct", 32768), ("gemma-2-2b-it", 8192)}
    for r in memory_rows:
        assert r.status == "ok", r.message
        assert abs(r.error_pct("weights")) <= 3, r
        assert abs(r.error_pct("kv")) <= 3, r
        assert abs(r.error_pct("total")) <= 10, r
    stats = summary(memory_rows)
    assert stats["models"]["count"] == 3 and stats["total"]["rows"] == len(memory_rows)


def test_a_simulated_load_sizes_buffers_as_a_memory_mapped_one_does(tmp_path):
    config = json.loads((CONFIG_DIR / "qwen3-0-6b.json").read_text(encoding="utf-8"))
    simulated = compare_memory("qwen3-0-6b", config, "Q4_K_M", (4096,), cache_dir=tmp_path, simulate=True)[0]
    mapped = compare_memory("qwen3-0-6b", config, "Q4_K_M", (4096,), cache_dir=tmp_path, simulate=False)[0]
    assert simulated.cpp_kv_gb == mapped.cpp_kv_gb and simulated.cpp_compute_gb == mapped.cpp_compute_gb
    assert simulated.cpp_weights_gb == pytest.approx(mapped.cpp_weights_gb, abs=1e-4)  # mapping range vs tensors


def test_the_table_round_trips_through_csv_and_renders_as_markdown(memory_rows, tmp_path):
    write_csv(memory_rows, tmp_path / "t.csv")
    back = read_csv(tmp_path / "t.csv")
    assert [(r["model"], r["context"]) for r in back] == [(r.model, r.context) for r in memory_rows]
    assert back[0]["err_total_pct"] == pytest.approx(memory_rows[0].error_pct("total"), abs=0.01)
    table = markdown_table(memory_rows)
    assert table.count("\n") == len(memory_rows) + 2 and "| gemma-2-2b-it | Q4_K_M | 8,192 |" in table


def test_a_result_reads_as_one_line(engine):
    result = engine.run(tiny_spec(repeats=1))
    line = format_row(result)
    assert line.startswith("llama.cpp L2 Q4_K_M d0 p64 n8: prefill") and "experts/layer 2.00" in line
