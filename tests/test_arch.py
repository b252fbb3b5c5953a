"""Tests for physics/arch.py and the catalog data files (models.json, formats.csv, configs/).

Plain pytest, no Django and no database: these run in well under a second.
"""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import gguf  # carries ggml's (weights per block, bytes per block) table
import pytest

from physics.arch import (
    ConfigError,
    ModelArch,
    arch_from_config,
    kv_bytes_per_token,
    kv_cache_bytes,
    naive_kv_bytes_per_token,
)

DATA = Path(__file__).resolve().parent.parent / "models" / "data"
CONFIGS = DATA / "configs"
CONFIG_FILES = sorted(CONFIGS.glob("*.json"))


def load(slug: str) -> dict:
    return json.loads((CONFIGS / f"{slug}.json").read_text())


def facts(slug: str) -> ModelArch:
    return arch_from_config(load(slug))


def within(value: int | float, published: float, tolerance: float = 0.005) -> bool:
    return abs(value - published) <= tolerance * published


# --- Mixtral-8x7B: the model gpufit validates against, counted to the parameter --------------


def test_mixtral_total_is_exact():
    assert facts("mixtral-8x7b-instruct-v0-1").total_params == 46_702_792_704


def test_mixtral_active_is_exact_with_the_input_embedding_counted():
    mixtral = facts("mixtral-8x7b-instruct-v0-1")
    assert mixtral.active_params == 12_879_925_248
    # A decode step gathers one embedding row, not the 32000 x 4096 matrix.
    assert mixtral.decode_read_params == 12_879_925_248 - 32000 * 4096


def test_mixtral_shapes_match_the_reference_page_stat_cards():
    mixtral = facts("mixtral-8x7b-instruct-v0-1")
    assert (mixtral.layers, mixtral.kv_heads, mixtral.head_dim) == (32, 8, 128)
    assert (mixtral.experts, mixtral.experts_per_token, mixtral.moe_layers) == (8, 2, 32)
    assert mixtral.ffn == 14336 and mixtral.vocab == 32000 and mixtral.context_length == 32768
    assert mixtral.expert_params == 3 * 4096 * 14336
    assert mixtral.attention == "gqa" and not mixtral.tied_embeddings


def test_mixtral_kv_cache_is_128_kib_per_token_in_fp16():
    mixtral = facts("mixtral-8x7b-instruct-v0-1")
    assert kv_bytes_per_token(mixtral) == 128 * 1024
    assert kv_cache_bytes(mixtral, 32768) == 4 * 1024**3


def test_base_and_instruct_mixtral_share_their_architecture():
    assert facts("mixtral-8x7b-v0-1") == facts("mixtral-8x7b-instruct-v0-1")


# --- every shipped config --------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.stem)
def test_every_shipped_config_parses_with_total_at_least_active(path: Path):
    result = arch_from_config(json.loads(path.read_text()))
    assert result.total_params >= result.active_params >= result.decode_read_params > 0
    assert result.context_length > 0 and result.layers > 0
    assert kv_bytes_per_token(result) > 0


def test_dense_models_have_active_equal_to_total():
    for slug in ("llama-3-1-8b-instruct", "qwen2-5-7b", "phi-4", "gemma-2-9b-it"):
        result = facts(slug)
        assert not result.is_moe
        assert result.active_params == result.total_params


# --- published totals, within 0.5 % ----------------------------------------------------------


def test_llama_3_1_8b_matches_its_published_count_exactly():
    assert facts("llama-3-1-8b-instruct").total_params == 8_030_261_248


def test_mistral_7b_v0_1_matches_its_published_count_exactly():
    # v0.1 differs from the shipped v0.3 only in its 32,000-token vocabulary and 4,096-token window.
    config = load("mistral-7b-instruct-v0-3") | {"vocab_size": 32000, "sliding_window": 4096, "rope_theta": 10000.0}
    result = arch_from_config(config)
    assert result.total_params == 7_241_732_096
    assert result.attention == "hybrid-sliding" and result.sliding_layers == 32


@pytest.mark.parametrize(
    ("slug", "published_total", "published_active"),
    [
        ("llama-2-7b-chat-hf", 6.74e9, None),  # Llama 2 paper / model card: 6.74B
        ("llama-3-1-405b-instruct", 405.85e9, None),  # model card: 405.85B
        ("qwen2-5-72b", 72.7e9, None),  # Qwen2.5 model card: 72.7B
        ("qwen2-5-7b", 7.61e9, None),  # Qwen2.5 model card: 7.61B
        ("qwen3-30b-a3b", 30.5e9, 3.3e9),  # Qwen3 model card: 30.5B total, 3.3B activated
        ("qwen3-235b-a22b", 235e9, 22e9),  # Qwen3 model card: 235B total, 22B activated
        ("mixtral-8x22b-v0-1", 141e9, 39e9),  # Mistral AI: 141B total, 39B active
        ("gemma-2-9b-it", 9.24e9, None),  # Gemma 2 report: 9.24B
        ("phi-4", 14.7e9, None),  # phi-4 model card: 14B class, 14.7B in the checkpoint
    ],
)
def test_published_totals_within_half_a_percent(slug: str, published_total: float, published_active: float | None):
    result = facts(slug)
    assert within(result.total_params, published_total), result.total_params
    if published_active is not None:
        assert within(result.active_params, published_active, tolerance=0.05), result.active_params


def test_deepseek_v3_is_671b_without_the_mtp_module_and_reads_36_6b_per_token():
    deepseek = facts("deepseek-v3")
    # DeepSeek's README: 671B main model + 11.5B unique MTP parameters; 36.6B activated (which
    # counts the 0.9B output head but not the input embedding, i.e. our decode_read_params).
    assert within(deepseek.total_params, 671e9)
    assert within(deepseek.decode_read_params, 36.6e9)
    assert within(deepseek.mtp_params, 11.5e9, tolerance=0.02)
    assert within(deepseek.active_params, 37.6e9)
    assert (deepseek.moe_layers, deepseek.experts, deepseek.experts_per_token) == (58, 256, 8)
    assert deepseek.shared_expert_params == 3 * 7168 * 2048


def test_deepseek_r1_has_the_v3_architecture():
    assert facts("deepseek-r1") == facts("deepseek-v3")


def test_kimi_k2_is_counted_on_the_deepseek_v3_layout():
    # model_type kimi_k2 with DeepseekV3 weights: layer 0 is dense (first_k_dense_replace = 1) and the
    # router carries the noaux_tc bias. Moonshot publishes "1T total, 32B activated".
    kimi = facts("kimi-k2-instruct")
    assert (kimi.moe_layers, kimi.experts, kimi.experts_per_token, kimi.attention) == (60, 384, 8, "mla")
    assert within(kimi.total_params, 1.03e12, tolerance=0.01)
    assert within(kimi.decode_read_params, 32e9, tolerance=0.01)


def test_gpt_oss_matches_openai_published_counts():
    # OpenAI model card: 20.91B total / 3.61B active and 116.83B / 5.13B; its "active" leaves out
    # the input embedding, which is our decode_read_params.
    small, large = facts("gpt-oss-20b"), facts("gpt-oss-120b")
    assert within(small.total_params, 20.91e9) and within(small.decode_read_params, 3.61e9)
    assert within(large.total_params, 116.83e9) and within(large.decode_read_params, 5.13e9)


def test_llama_4_counts_the_shared_expert_and_the_interleaved_dense_layers():
    # Meta's model cards: Scout 17B active / 109B total, Maverick 17B active / 400B total; both totals
    # include the vision encoder, which the text decoder counted here leaves out.
    scout, maverick = facts("llama-4-scout-17b-16e-instruct"), facts("llama-4-maverick-17b-128e-instruct")
    assert (scout.moe_layers, scout.experts, scout.experts_per_token) == (48, 16, 1)
    assert scout.shared_expert_params == 3 * 5120 * 8192  # one always-on expert per MoE layer
    assert within(scout.total_params, 109e9, tolerance=0.02) and within(scout.active_params, 17e9, tolerance=0.02)
    # Maverick alternates dense (intermediate_size_mlp 16384) and MoE layers: 24 of each.
    assert (maverick.moe_layers, maverick.dense_ffn, maverick.ffn) == (24, 16384, 8192)
    assert within(maverick.total_params, 400e9, tolerance=0.01) and within(maverick.active_params, 17e9, tolerance=0.02)


def test_starcoder2_has_biases_layer_norms_and_an_ungated_mlp():
    starcoder = facts("starcoder2-7b")
    # 32 x (attention 4608² + 2·4608·512 + 4608² + biases 4608+2·512+4608, c_fc/c_proj 2·4608·18432 + 18432
    # + 4608, two LayerNorms 4·4608) + tied embedding 49152·4608 + final LayerNorm 2·4608
    assert starcoder.total_params == 7_173_923_840 and starcoder.tied_embeddings
    assert (starcoder.attention, starcoder.sliding_window, starcoder.sliding_layers) == ("hybrid-sliding", 4096, 32)


def test_cohere_has_one_norm_per_layer_and_ties_its_embedding():
    aya = facts("aya-23-8b")  # Cohere's Command R layout: parallel attention and MLP from one LayerNorm
    assert aya.tied_embeddings and aya.total_params == 8_028_033_024
    untied = arch_from_config(load("aya-23-8b") | {"tie_word_embeddings": False})
    assert untied.total_params - aya.total_params == 256000 * 4096


def test_qwen1_5_moe_counts_its_shared_expert_and_gate():
    # Qwen1.5-MoE-A2.7B model card: 14.3B parameters in total, 2.7B activated.
    qwen = facts("qwen1-5-moe-a2-7b-chat")
    assert qwen.shared_expert_params == 3 * 2048 * 5632 + 2048  # wide shared expert + its sigmoid gate
    assert within(qwen.total_params, 14.3e9) and within(qwen.active_params, 2.7e9, tolerance=0.01)


def test_glm_4_5_has_three_dense_layers_and_a_router_bias():
    # Z.ai: GLM-4.5 has 355B total and 32B active parameters; a multi-token-prediction layer ships beside it.
    glm = facts("glm-4-5")
    assert (glm.layers, glm.moe_layers, glm.experts, glm.experts_per_token) == (92, 89, 160, 8)
    assert within(glm.total_params, 355e9, tolerance=0.01) and within(glm.decode_read_params, 32e9, tolerance=0.05)
    assert glm.mtp_params > 0


def test_deepseek_v3_2_adds_the_sparse_attention_indexer_to_v3():
    v3, v32 = facts("deepseek-v3"), facts("deepseek-v3-2")
    # per layer: query up-projection 1536 x 64 heads x 128, key projection 7168 x 128, its LayerNorm
    # (weight and bias, 2 x 128), per-head weights 7168 x 64; 61 layers
    assert v32.total_params - v3.total_params == 61 * (1536 * 64 * 128 + 7168 * 128 + 256 + 7168 * 64)
    assert v32.attention == "mla" and v32.kv_lora_rank == 512


def test_glm_5_is_counted_on_the_deepseek_v3_2_layout():
    # GLM-5: 744B total, about 40B active (Z.ai's release notes).
    glm = facts("glm-5")
    assert (glm.attention, glm.moe_layers, glm.experts) == ("mla", 75, 256)
    assert within(glm.total_params, 744e9) and within(glm.decode_read_params, 40e9, tolerance=0.05)


def test_gemma_3_4b_takes_its_head_layout_from_the_class_defaults():
    gemma = facts("gemma-3-4b-it")  # its text_config names only the widths, layers and window
    assert (gemma.heads, gemma.kv_heads, gemma.head_dim, gemma.layers) == (8, 4, 256, 34)
    assert (gemma.sliding_window, gemma.sliding_layers) == (1024, 29)  # 34 - 34 // 6 global layers
    assert gemma.total_params == 3_880_263_168


def test_exaone_4_keeps_three_sliding_layers_per_global_one():
    exaone = facts("exaone-4-0-32b")  # LG: 32.0B parameters
    assert (exaone.sliding_window, exaone.sliding_layers, exaone.layers) == (4096, 48, 64)
    assert within(exaone.total_params, 32.0e9)


def test_phi_moe_counts_layer_norm_biases_and_the_head_bias():
    # Microsoft: Phi-mini-MoE has 7.6B total and 2.4B activated parameters.
    phi = facts("phi-mini-moe-instruct")
    assert within(phi.total_params, 7.6e9, tolerance=0.01) and within(phi.active_params, 2.4e9, tolerance=0.02)
    without_head_bias = arch_from_config(load("phi-mini-moe-instruct") | {"lm_head_bias": False})
    assert phi.total_params - without_head_bias.total_params == 32064


# --- attention kinds and the KV cache --------------------------------------------------------


def test_mla_cache_is_far_smaller_than_the_naive_formula():
    deepseek = facts("deepseek-v3")
    assert deepseek.attention == "mla"
    assert (deepseek.kv_lora_rank, deepseek.qk_rope_head_dim) == (512, 64)
    assert kv_bytes_per_token(deepseek) == 61 * (512 + 64) * 2
    assert kv_bytes_per_token(deepseek) < naive_kv_bytes_per_token(deepseek) / 50


@pytest.mark.parametrize(
    ("slug", "window", "sliding_layers"),
    [
        ("gemma-2-9b-it", 4096, 21),  # alternating local / global
        ("gemma-3-27b-it", 1024, 52),  # five local to one global over 62 layers
        ("gpt-oss-20b", 128, 12),  # alternating 128-token windows
    ],
)
def test_sliding_window_models_cache_less_than_the_naive_formula(slug: str, window: int, sliding_layers: int):
    result = facts(slug)
    assert result.attention == "hybrid-sliding"
    assert (result.sliding_window, result.sliding_layers) == (window, sliding_layers)
    # Averaged over the model's whole context, the windows save memory...
    assert kv_bytes_per_token(result, context=result.context_length) < naive_kv_bytes_per_token(result)
    # ...a token still lands in every layer while it is inside the window,
    assert kv_bytes_per_token(result) == naive_kv_bytes_per_token(result)
    # Inside the window nothing is saved yet.
    assert kv_bytes_per_token(result, context=window) == naive_kv_bytes_per_token(result)


def test_kv_quantization_scales_the_cache():
    llama = facts("llama-3-1-8b-instruct")
    # q8_0 stores 34 bytes per 32 values: 8.5 bits against fp16's 16.
    assert kv_bytes_per_token(llama, "q8") == kv_bytes_per_token(llama) * 8.5 / 16


def test_qwen2_sliding_window_left_switched_off_is_ignored():
    qwen = facts("qwen2-5-7b")  # sliding_window 131072 with use_sliding_window false
    assert qwen.attention == "gqa" and qwen.sliding_window == 0


def test_head_dim_key_wins_over_hidden_over_heads():
    nemo = facts("mistral-nemo-instruct-2407")
    assert nemo.hidden // nemo.heads == 160
    assert nemo.head_dim == 128


def test_qwen2_counts_qkv_biases():
    config = load("qwen2-5-7b")
    with_bias = arch_from_config(config).total_params
    without_bias = arch_from_config(config | {"model_type": "llama"}).total_params
    assert with_bias - without_bias == 28 * (3584 + 2 * 4 * 128)


def test_nested_text_config_is_read_with_its_class_defaults():
    gemma = facts("gemma-3-27b-it")
    assert (gemma.model_type, gemma.layers, gemma.hidden) == ("gemma3_text", 62, 5376)
    assert gemma.vocab == 262208 and gemma.tied_embeddings  # filled from Gemma3TextConfig defaults
    assert gemma.context_length == 131072


def test_context_reports_the_rope_scaling_it_came_from():
    llama = facts("llama-3-1-8b-instruct")
    assert (llama.context_length, llama.original_context, llama.rope_scaling_type) == (131072, 8192, "llama3")
    deepseek = facts("deepseek-v3")
    assert (deepseek.context_length, deepseek.original_context) == (163840, 4096)
    stretched = arch_from_config(
        load("qwen3-8b")
        | {"rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}}
    )
    assert stretched.context_length == 131072 and "yarn" in stretched.context_note


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, [], "mixtral", 42])
def test_it_rejects_a_config_that_is_not_a_dict(bad):
    with pytest.raises(ConfigError, match="must be a dict"):
        arch_from_config(bad)


def test_it_rejects_an_empty_config():
    with pytest.raises(ConfigError, match="num_hidden_layers"):
        arch_from_config({})


def test_it_names_the_missing_key_of_an_unknown_model_type():
    with pytest.raises(ConfigError, match="'hidden_size'"):
        arch_from_config({"model_type": "brand_new", "num_hidden_layers": 4})


def test_it_accepts_an_unknown_model_type_that_has_the_shape_keys():
    config = load("llama-3-1-8b-instruct") | {"model_type": "some_llama_fork"}
    assert arch_from_config(config).total_params == 8_030_261_248


@pytest.mark.parametrize("key", ["num_hidden_layers", "hidden_size", "num_key_value_heads", "vocab_size"])
def test_it_rejects_negative_numbers(key: str):
    config = copy.deepcopy(load("mixtral-8x7b-instruct-v0-1"))
    config[key] = -8
    with pytest.raises(ConfigError, match=key):
        arch_from_config(config)


def test_it_rejects_more_active_experts_than_experts():
    with pytest.raises(ConfigError, match="num_experts_per_tok"):
        arch_from_config(load("mixtral-8x7b-instruct-v0-1") | {"num_experts_per_tok": 9})


def test_it_rejects_a_moe_config_without_top_k():
    config = load("mixtral-8x7b-instruct-v0-1")
    del config["num_experts_per_tok"]
    with pytest.raises(ConfigError, match="num_experts_per_tok"):
        arch_from_config(config)


# --- models.json and formats.csv ----------------------------------------------------------------

MODELS = json.loads((DATA / "models.json").read_text())
FORMATS = {row["name"]: row for row in csv.DictReader((DATA / "formats.csv").open())}


def test_catalog_has_at_least_98_models_with_unique_slugs():
    slugs = [model["slug"] for model in MODELS]
    assert len(slugs) >= 98
    assert len(slugs) == len(set(slugs))


def test_every_model_has_its_config_file_and_a_source_url():
    for model in MODELS:
        assert (CONFIGS / model["config"]).is_file(), model["slug"]
        assert model["source_url"] == f"https://huggingface.co/{model['hf_repo']}", model["slug"]
        assert model["name"] and model["vendor"] and model["license"] and model["description"]


def test_every_quant_format_is_in_formats_csv():
    for model in MODELS:
        for quant in model["quants"]:
            assert quant["format"] in FORMATS, (model["slug"], quant["format"])


def test_every_figure_carries_its_source():
    for model in MODELS:
        for quant in model["quants"]:
            if "file_bytes" in quant or "file_gb" in quant:
                assert quant["file_source_url"].startswith("https://"), model["slug"]
            if "quality_pct" in quant:
                assert quant["quality_source"], model["slug"]
            if "vram_gb" in quant:
                assert quant["vram_source"], model["slug"]
        for score in model["benchmarks"]:
            assert score["source"] and score["source_url"].startswith("https://"), model["slug"]
        if "downloads" in model:
            assert model["downloads_source"], model["slug"]


def test_mixtral_instruct_carries_the_reference_page_figures():
    mixtral = next(model for model in MODELS if model["slug"] == "mixtral-8x7b-instruct-v0-1")
    assert mixtral["ollama_tag"] == "mixtral:8x7b" and mixtral["downloads"] == 780_000
    # The reference page's eleven quality scores name no public source, so they are withdrawn; MT-Bench has one.
    assert [(b["name"], b["score"]) for b in mixtral["benchmarks"]] == [("MT-Bench", 8.3)]
    assert "IFEval" in mixtral["retired_benchmarks"] and len(mixtral["retired_benchmarks"]) == 11
    quants = {quant["format"]: quant for quant in mixtral["quants"]}
    assert [quants[f]["vram_gb"] for f in ("Q4_K_M", "Q6_K", "fp16")] == [26.8, 38.4, 93.9]
    assert quants["Q4_K_M"]["file_bytes"] == 26_441_533_376
    # Q8_0 is 8.5 bpw: the published file matches 46.7B weights at 34 bytes per 32, not 8 bpw.
    q8 = quants["Q8_0"]
    total = facts("mixtral-8x7b-instruct-v0-1").total_params
    assert within(q8["file_bytes"], total * float(FORMATS["Q8_0"]["bits_per_weight"]) / 8, tolerance=0.001)
    assert "8.5" in q8["note"] and "vram_gb" not in q8


def test_gguf_bits_per_weight_follow_the_ggml_block_layouts():
    sizes = gguf.constants.GGML_QUANT_SIZES
    types = gguf.constants.GGMLQuantizationType
    layout = {"Q2_K": "Q2_K", "Q3_K_M": "Q3_K", "Q4_0": "Q4_0", "Q4_K_M": "Q4_K", "Q5_0": "Q5_0",
              "Q5_K_M": "Q5_K", "Q6_K": "Q6_K", "Q8_0": "Q8_0", "F16": "F16", "BF16": "BF16"}  # fmt: skip
    for name, ggml_type in layout.items():
        block_weights, block_bytes = sizes[types[ggml_type]]
        assert float(FORMATS[name]["bits_per_weight"]) == 8 * block_bytes / block_weights, name


def test_formats_csv_rows_are_complete():
    for name, row in FORMATS.items():
        assert row["kind"] and row["description"] and row["source_url"].startswith("https://"), name
        assert 2 <= float(row["bits_per_weight"]) <= 16, name
    assert float(FORMATS["MXFP4"]["bits_per_weight"]) == 4 + 8 / 32
    assert float(FORMATS["torch-int4"]["bits_per_weight"]) == 4 + 32 / 128


# --- cross-check against transformers' own modules --------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize(
    "slug",
    [
        "mixtral-8x7b-instruct-v0-1",
        "qwen2-5-7b",
        "qwen3-30b-a3b",
        "gemma-2-9b-it",
        "gemma-3-27b-it",
        "phi-4",
        "gpt-oss-20b",
        "deepseek-v3",
        "deepseek-v3-2",
        "llama-4-maverick-17b-128e-instruct",
        "starcoder2-7b",
        "aya-23-8b",
        "qwen1-5-moe-a2-7b-chat",
        "glm-4-5",
        "exaone-4-0-32b",
        "phi-mini-moe-instruct",
        "gemma-3-4b-it",
    ],
)
def test_counts_equal_the_parameters_transformers_builds(slug: str):
    # Built on the meta device: shapes only, no memory, so even 671B is instant.
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = load(slug)
    if "text_config" in config:  # count the text decoder, as arch_from_config does
        config = config["text_config"]
    hf_config = AutoConfig.for_model(**{k: v for k, v in config.items() if k != "architectures"})
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    built = sum(parameter.numel() for parameter in model.parameters())
    result = facts(slug)
    if slug in ("deepseek-v3", "deepseek-v3-2", "glm-4-5"):
        # transformers keeps the router's score-correction bias as a buffer; the checkpoint stores
        # it (model.layers.N.mlp.gate.e_score_correction_bias), so we count it as a weight.
        built += result.moe_layers * result.experts
    assert built == result.total_params
