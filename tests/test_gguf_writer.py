"""The GGUF layout (physics.gguf) and the writer (bench.gguf_writer): llama-quantize's per-tensor types, real file
sizes, and bytes per step equal to the estimator's."""

from __future__ import annotations

import ctypes
import json

import gguf
import llama_cpp
import numpy as np
import pytest

from bench.engines.llamacpp import layout_of_file
from bench.gguf_writer import cache_usage, cached_gguf, clear_cache, expected_file_bytes, write_gguf
from physics import gguf as layout_rules
from physics.arch import arch_from_config
from physics.estimator import Build, GPUSpec, Quant, Workload, decode_weight_bytes, estimate, weights_bytes
from physics.presets import CONFIG_DIR

# A dense Llama of 16 blocks at shapes the K-quants divide (rows of 256): llama-quantize's "more bits" blocks are
# the first and last eighth (0, 1, 14, 15) and every third between (i - 2) % 3 == 2 → 4, 7, 10, 13.
DENSE_16 = {
    "model_type": "llama",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 4096,
}
MORE_BITS_16 = {0, 1, 4, 7, 10, 13, 14, 15}
# A device on which anything fits: only the estimate's bytes matter here.
BIG = GPUSpec("big", "nvidia", "datacenter", memory_gb=1000.0, bandwidth_gb_s=1000.0)
# A Mixtral of 2 blocks with 8 experts: the quantizer's 8-expert rules apply (attention K and V at Q8_0,
# attention output at Q5_K in Q4_K_M).
MIXTRAL_8E = {
    "model_type": "mixtral",
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_local_experts": 8,
    "num_experts_per_tok": 2,
    "vocab_size": 1024,
    "max_position_embeddings": 4096,
}


def types_by_name(config: dict, fmt: str) -> dict[str, str]:
    lay = layout_rules.layout(arch_from_config(config), fmt)
    return {t.name: ty for t, ty in zip(lay.tensors, lay.types, strict=True)}


def catalog_config(filename: str) -> dict:
    return json.loads((CONFIG_DIR / filename).read_text(encoding="utf-8"))


def test_it_types_q4_k_m_tensors_as_llama_quantize_does():
    types = types_by_name(DENSE_16, "Q4_K_M")
    for i in range(16):
        more = "Q6_K" if i in MORE_BITS_16 else "Q4_K"
        assert types[f"blk.{i}.attn_v.weight"] == more, i
        assert types[f"blk.{i}.ffn_down.weight"] == more, i
        for name in ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"):
            assert types[f"blk.{i}.{name}.weight"] == "Q4_K"
        assert types[f"blk.{i}.attn_norm.weight"] == "F32"
    assert types["output.weight"] == "Q6_K"  # the head is always lifted to Q6_K
    assert types["token_embd.weight"] == "Q4_K"  # an untied embedding keeps the base type
    assert types["output_norm.weight"] == "F32"


def test_q5_k_m_lifts_the_same_tensors_and_q8_0_keeps_everything_at_q8_0():
    q5 = types_by_name(DENSE_16, "Q5_K_M")
    assert {i for i in range(16) if q5[f"blk.{i}.ffn_down.weight"] == "Q6_K"} == MORE_BITS_16
    assert q5["blk.2.attn_q.weight"] == "Q5_K"
    q8 = types_by_name(DENSE_16, "Q8_0")
    assert {ty for name, ty in q8.items() if not name.endswith("norm.weight")} == {"Q8_0"}


def test_it_keeps_attention_at_q8_0_and_the_router_in_f32_for_eight_experts():
    types = types_by_name(MIXTRAL_8E, "Q4_K_M")
    for i in range(2):
        assert types[f"blk.{i}.attn_k.weight"] == types[f"blk.{i}.attn_v.weight"] == "Q8_0"
        assert types[f"blk.{i}.attn_output.weight"] == "Q5_K"
        assert types[f"blk.{i}.ffn_gate_inp.weight"] == "F32"
        assert types[f"blk.{i}.ffn_gate_exps.weight"] == "Q4_K"
    # 2 blocks: block 1 is in the last eighth (1 >= 7 * 2 // 8), block 0 is not ((0 - 0) % 3 != 2).
    assert types["blk.0.ffn_down_exps.weight"] == "Q4_K"
    assert types["blk.1.ffn_down_exps.weight"] == "Q6_K"


def test_a_tied_embedding_takes_the_heads_type_and_odd_rows_fall_back_to_32_blocks():
    tied = {**DENSE_16, "hidden_size": 288, "num_attention_heads": 4, "tie_word_embeddings": True}
    types = types_by_name(tied, "Q4_K_M")
    assert "output.weight" not in types
    assert types["token_embd.weight"] == "Q8_0"  # 288 is not a multiple of 256: the head rule gives Q8_0
    assert types["blk.2.attn_q.weight"] == "Q5_0"  # Q4_K → Q5_0 for rows of 288 (a multiple of 32)
    assert types["blk.0.attn_v.weight"] == "Q8_0"  # Q6_K → Q8_0


# Small configs of each architecture the layout knows, for llama.cpp's own quantizer to type. Each is there for a
# rule: dense counters, 8 experts, a tied embedding with rows of 288 (fallbacks), Phi-3's fused QKV, Gemma-2's
# always-tied head and extra norms, Gemma (v1) and Granite (tied heads, Granite's multipliers), 16 experts, DeepSeek-V3's latent attention with a dense first block and a shared
# expert, and an 80-block Qwen2 ("70B": attention V lifted to Q5_K).
_BASE = {**DENSE_16, "num_hidden_layers": 6}
ORACLE_CONFIGS = {
    "llama-16": (DENSE_16, ("Q4_K_M", "Q5_K_M", "Q4_K_S", "Q6_K", "Q8_0")),
    "mixtral-8e": ({**MIXTRAL_8E, "num_hidden_layers": 4}, ("Q4_K_M", "Q5_K_M", "Q6_K")),
    "qwen3-tied-288": (
        {**_BASE, "model_type": "qwen3", "hidden_size": 288, "head_dim": 64, "tie_word_embeddings": True},
        ("Q4_K_M",),
    ),
    "phi3": ({**_BASE, "model_type": "phi3"}, ("Q4_K_M",)),
    "gemma2": ({**_BASE, "model_type": "gemma2", "head_dim": 64, "sliding_window": 1024}, ("Q4_K_M",)),
    "gemma": ({**_BASE, "model_type": "gemma", "head_dim": 64}, ("Q4_K_M", "Q8_0")),
    "granite": (
        {
            **_BASE,
            "model_type": "granite",
            "tie_word_embeddings": True,
            "attention_multiplier": 0.015625,
            "embedding_multiplier": 12.0,
            "residual_multiplier": 0.22,
            "logits_scaling": 8.0,
        },
        ("Q4_K_M", "Q5_K_M"),
    ),
    "qwen3moe": (
        {
            **_BASE,
            "model_type": "qwen3_moe",
            "head_dim": 64,
            "num_experts": 16,
            "num_experts_per_tok": 4,
            "moe_intermediate_size": 256,
        },
        ("Q4_K_M",),
    ),
    "deepseek-v3": (
        {
            **_BASE,
            "model_type": "deepseek_v3",
            "first_k_dense_replace": 1,
            "n_routed_experts": 16,
            "num_experts_per_tok": 4,
            "n_shared_experts": 1,
            "moe_intermediate_size": 256,
            "q_lora_rank": 256,
            "kv_lora_rank": 256,
            "qk_rope_head_dim": 64,
            "qk_nope_head_dim": 128,
            "v_head_dim": 128,
            "topk_method": "noaux_tc",
            "scoring_func": "sigmoid",
        },
        ("Q4_K_M",),
    ),
    "qwen2-80": (
        {**_BASE, "model_type": "qwen2", "num_hidden_layers": 80, "intermediate_size": 256, "vocab_size": 256},
        ("Q4_K_M",),
    ),
}


@pytest.mark.parametrize("name", sorted(ORACLE_CONFIGS))
def test_llama_cpps_own_quantizer_gives_every_tensor_the_layouts_type(name, tmp_path):
    config, formats = ORACLE_CONFIGS[name]
    source = write_gguf(tmp_path / "f16.gguf", config, "F16").path
    for fmt in formats:
        out = tmp_path / f"{fmt}.gguf"
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{fmt}")
        params.nthread = 1
        assert llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), ctypes.byref(params)) == 0
        quantized = {t.name: t.tensor_type.name for t in gguf.GGUFReader(out).tensors}
        assert quantized == types_by_name(config, fmt), fmt


def test_the_layout_counts_every_parameter_of_every_supported_catalog_model():
    checked = 0
    for path in sorted(CONFIG_DIR.glob("*.json")):
        arch = arch_from_config(json.loads(path.read_text(encoding="utf-8")))
        if arch.model_type not in layout_rules.GGUF_ARCH:
            continue
        plan = layout_rules.tensor_plan(arch)
        assert sum(t.numel for t in plan) == arch.total_params, path.name
        checked += 1
    assert checked >= 40


def test_it_reproduces_published_file_sizes():
    # bartowski/Mixtral-8x22B-v0.1-GGUF (models.json): Q4_K_M 85.58 GB, Q5_K_M 99.96 GB, rounded to 10 MB; within 0.02 %.
    big = catalog_config("mixtral-8x22b-v0-1.json")
    assert expected_file_bytes(big, "Q4_K_M") == pytest.approx(85.58e9, rel=2e-4)
    assert expected_file_bytes(big, "Q5_K_M") == pytest.approx(99.96e9, rel=2e-4)
    # TheBloke's Mixtral-8x7B-Instruct Q8_0: 49,626,320,288 bytes; ours differ only in the synthetic vocabulary.
    small = catalog_config("mixtral-8x7b-instruct-v0-1.json")
    assert expected_file_bytes(small, "Q8_0") == pytest.approx(49_626_320_288, rel=1e-5)


def test_the_estimator_takes_gguf_weights_from_the_layout():
    arch = arch_from_config(catalog_config("mixtral-8x22b-v0-1.json"))
    q4 = Quant("Q4_K_M", 4.5)
    assert weights_bytes(arch, q4) == layout_rules.layout(arch, "Q4_K_M").weight_bytes
    # A published file size still wins.
    assert weights_bytes(arch, Quant("Q4_K_M", 4.5, weight_bytes=85_000_000_000)) == 85e9
    # Formats without a layout keep parameters x bits / 8.
    assert weights_bytes(arch, Quant("AWQ-INT4", 4.15625, kind="awq")) == arch.total_params * 4.15625 / 8


def test_a_generated_file_reads_per_step_exactly_what_the_estimator_assumes(tmp_path):
    arch = arch_from_config(MIXTRAL_8E)
    written = write_gguf(tmp_path / "m.gguf", MIXTRAL_8E, "Q4_K_M", sparse=True)
    on_disk, top_k = layout_of_file(written.path)  # read back from the file itself
    assert top_k == 2
    quant = Quant("Q4_K_M", 4.5)
    assert on_disk.weight_bytes == weights_bytes(arch, quant)
    assert on_disk.step_bytes() == pytest.approx(decode_weight_bytes(arch, quant, batch=1), rel=1e-12)
    # The full estimate uses the same figure for its decode step.
    est = estimate(arch, quant, Build(gpu=BIG), Workload(context=4096, batch=1))
    assert est.basis["weight_bytes_per_step"] == pytest.approx(on_disk.step_bytes(), rel=1e-12)


def test_random_weights_decode_to_small_finite_values(tmp_path):
    written = write_gguf(tmp_path / "r.gguf", MIXTRAL_8E, "Q4_K_M", seed=1)
    reader = gguf.GGUFReader(written.path)
    seen = set()
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        assert np.isfinite(values).all(), t.name
        if t.name.endswith("norm.weight"):
            assert (values == 1.0).all(), t.name  # RMSNorm weights of one
        else:
            assert np.abs(values).max() < 0.5, t.name
        seen.add(t.tensor_type.name)
    assert {"Q4_K", "Q5_K", "Q6_K", "Q8_0", "F32"} <= seen
    assert written.path.stat().st_size == written.file_bytes == expected_file_bytes(MIXTRAL_8E, "Q4_K_M")


def test_the_cache_reuses_a_whole_file_rewrites_a_cut_one_and_clears(tmp_path):
    first = cached_gguf(tmp_path, MIXTRAL_8E, "Q4_K_M", sparse=True, label="mixtral-8e")
    assert first.path.name.startswith("mixtral-8e-Q4_K_M-sparse-")
    mtime = first.path.stat().st_mtime_ns
    assert cached_gguf(tmp_path, MIXTRAL_8E, "Q4_K_M", sparse=True, label="mixtral-8e").path.stat().st_mtime_ns == mtime
    with first.path.open("r+b") as fh:  # a write cut short
        fh.truncate(1000)
    again = cached_gguf(tmp_path, MIXTRAL_8E, "Q4_K_M", sparse=True, label="mixtral-8e")
    assert again.path.stat().st_size == first.file_bytes
    other = cached_gguf(tmp_path, MIXTRAL_8E, "Q8_0", sparse=True, label="mixtral-8e")
    assert other.path != first.path
    assert cache_usage(tmp_path)[0] == 2
    assert clear_cache(tmp_path)[0] == 2
    assert cache_usage(tmp_path) == (0, 0)


def test_it_refuses_unknown_formats_and_architectures():
    with pytest.raises(ValueError, match="unknown GGUF format"):
        layout_rules.layout(arch_from_config(DENSE_16), "Q3_K_XL")
    with pytest.raises(layout_rules.UnsupportedModel, match="gpt_oss"):
        layout_rules.layout(arch_from_config(catalog_config("gpt-oss-20b.json")), "Q4_K_M")
