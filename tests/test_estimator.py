"""The physical model: hand-worked figures for Mixtral-8x7B and friends. No database, milliseconds."""

from __future__ import annotations

import dataclasses
import json

import pytest

from physics.arch import ModelArch, kv_cache_bytes
from physics.estimator import (
    CALIBRATION_FILE,
    DEFAULT_CALIBRATION,
    EXTRAPOLATED_WIDEN,
    MEASURED_MAX_GPUS,
    PREFILL_RANGE_WIDTHS,
    Build,
    CalibrationFactor,
    GPUSpec,
    Quant,
    Workload,
    decode_weight_bytes,
    distinct_experts,
    estimate,
    find_calibration,
    gpus_frame,
    hardware_class,
    hardware_classes,
    kv_bytes_per_token,
    rank_builds,
    rank_gpus,
    rank_models,
    table_vram_gb,
    usable_memory_gb,
)
from physics.presets import MIXTRAL_8X7B_ARCH as MIXTRAL_8X7B

Q4_K_M = Quant("Q4_K_M", 4.5)
Q8_0 = Quant("Q8_0", 8.5)
FP16 = Quant("FP16", 16.0, kind="float")

# H100 SXM: 80 GB HBM3, 3.35 TB/s, 989 dense fp16 TFLOPS; the card that holds Mixtral Q8_0 on its own.
H100 = GPUSpec("H100 SXM5 80 GB", "nvidia", "datacenter", 80, 3350, fp16_tflops=989.4, tdp_w=700,
               price_usd=30000, nvlink_gb_s=900, memory_type="HBM3")  # fmt: skip
# RTX 4090: 24 GB, too small for Mixtral Q4_K_M (26.8 GB) on its own; two of them hold it.
RTX4090 = GPUSpec("RTX 4090", "nvidia", "consumer", 24, 1008, fp16_tflops=330.3, tdp_w=450, price_usd=1599,
                  pcie_gen=4)  # fmt: skip
# A 32 GB Mac (M2 Max 400 GB/s): 2/3 of 32 GB = 21.3 GB for the GPU by default, too little for 26.8 GB.
MAC32 = GPUSpec("Apple M2 Max 32 GB", "apple", "apple-silicon", 32, 400, fp32_tflops=13.6, unified_memory=True)
# The same chip with 64 GB: 3/4 of 64 = 48 GB, room for Q4_K_M.
MAC64 = GPUSpec("Apple M2 Max 64 GB", "apple", "apple-silicon", 64, 400, fp32_tflops=13.6, unified_memory=True)

# DeepSeek-V3 (config.json): 61 layers, 128 heads, MLA with kv_lora_rank 512 and qk_rope_head_dim 64.
DEEPSEEK_V3 = ModelArch("DeepSeek-V3", 671_026_419_712, 37_000_000_000, 61, 7168, 128, 128, 128, 129280, 163840,
                        experts=256, experts_per_token=8, expert_params=3 * 7168 * 2048, moe_layers=58,
                        attention="mla", kv_lora_rank=512, qk_rope_head_dim=64)  # fmt: skip
# gemma-2-9b (config.json): 42 layers, 8 KV heads of 256, every other layer a 4096-token sliding window.
GEMMA2_9B = ModelArch("gemma-2-9b", 9_241_705_984, 9_241_705_984, 42, 3584, 16, 8, 256, 256000, 8192,
                      tied_embeddings=True, attention="hybrid-sliding", sliding_window=4096,
                      sliding_layers=21)  # fmt: skip


def test_it_counts_mixtral_kv_cache_exactly():
    # 2 (K and V) x 32 layers x 8 KV heads x 128 dims x 2 bytes = 131,072 B = 128 KiB per token.
    assert kv_bytes_per_token(MIXTRAL_8X7B) == 131_072
    # x 32,768 tokens = 4 GiB.
    assert kv_cache_bytes(MIXTRAL_8X7B, 32_768) == 4 * 2**30


def test_it_shrinks_kv_cache_to_8_5_bits_at_q8():
    # q8_0 stores 34 bytes per 32 values: 131,072 x 8.5 / 16 = 69,632 B per token, a little over half.
    assert kv_bytes_per_token(MIXTRAL_8X7B, "q8") == 69_632
    assert kv_cache_bytes(MIXTRAL_8X7B, 32_768, kv_cache="q8") == pytest.approx(4 * 2**30 * 8.5 / 16)


@pytest.mark.parametrize(
    ("bpw", "expected"),
    [(4.5, 26.8), (6.5, 38.4), (16.0, 93.9), (8.5, 50.1)],  # reference rows; Q8_0 at its true 8.5 bpw
)
def test_it_reproduces_the_reference_vram_table(bpw, expected):
    # 46,702,792,704 x 4.5 / 8 = 26.27 GB + 0.5 = 26.77 -> 26.8
    assert table_vram_gb(MIXTRAL_8X7B.total_params, bpw) == expected


def test_it_reads_attention_router_lm_head_and_two_experts_per_decode_step():
    # Non-expert params 1,605,636,096 - input embedding 131,072,000 = 1,474,564,096
    # + 2 experts x 32 layers x 176,160,768 = 11,274,289,152 -> 12,748,853,248 weights, 1 byte each at 8 bpw.
    assert decode_weight_bytes(MIXTRAL_8X7B, Quant("int8", 8.0), batch=1) == pytest.approx(12_748_853_248)


def test_it_counts_distinct_experts_at_batch_8():
    # 8 x (1 - (6/8)^8) = 8 x (1 - 0.100113) = 7.199
    assert float(distinct_experts(MIXTRAL_8X7B, 8)) == pytest.approx(7.1991, abs=1e-4)
    b8 = decode_weight_bytes(MIXTRAL_8X7B, Quant("int8", 8.0), batch=8)
    assert b8 == pytest.approx(1_474_564_096 + 7.19910 * 32 * 176_160_768, rel=1e-5)


def test_it_does_not_fit_mixtral_q4_k_m_on_a_32_gb_mac_and_says_what_raising_the_limit_allows():
    assert usable_memory_gb(MAC32) == pytest.approx(32 * 2 / 3)
    # The published Q4_K_M file (TheBloke, 26.44 GB); today's quantizer writes a larger one that no share fits.
    Q4_K_M = Quant("Q4_K_M", 4.5, weight_bytes=26_441_533_376)
    est = estimate(MIXTRAL_8X7B, Q4_K_M, Build(MAC32), Workload(context=4096))
    assert not est.fits
    note = " ".join(est.notes)
    assert "21.3 of 32 GB" in note and "iogpu.wired_limit_mb" in note
    # The suggested limit really does fit it.
    want_gb = int(note.split("iogpu.wired_limit_mb to ")[1].split()[0]) / 1000
    raised = estimate(MIXTRAL_8X7B, Q4_K_M, Build(MAC32, gpu_memory_share=want_gb / 32), Workload(context=4096))
    assert raised.fits
    assert estimate(MIXTRAL_8X7B, Q4_K_M, Build(MAC64), Workload(context=4096)).fits


def test_it_adds_capacity_but_not_bandwidth_with_a_layer_split():
    wl = Workload(context=4096)
    one = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090), wl)
    two = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2, split="layer"), wl)
    assert not one.fits and two.fits
    assert two.usable_gb == pytest.approx(2 * one.usable_gb)
    # Same bytes through one card at a time, plus one hand-off: a little slower, never faster.
    assert two.decode_tok_s < one.decode_tok_s
    assert two.decode_tok_s > 0.95 * one.decode_tok_s


def test_it_adds_bandwidth_less_all_reduce_with_tensor_parallel():
    wl = Workload(context=4096)
    one = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="layer"), wl)
    tp = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), wl)
    assert one.decode_tok_s < tp.decode_tok_s < 2 * one.decode_tok_s
    # Without fitted costs the link is modelled: 2 all-reduces x 32 layers x (20 us + 4096 x 2 bytes / 900 GB/s).
    plain = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "efficiencies only"),)
    tp = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), wl, plain)
    assert tp.basis["comm_s_per_step"] == pytest.approx(64 * (20e-6 + 2 * 0.5 * 8192 / 900e9), rel=1e-6)


def test_fitted_fixed_costs_replace_the_modelled_link_latency():
    wl = Workload(context=4096)
    costs = {"step_s": 1e-3, "layer_s": 2e-5, "moe_layer_s": 1e-5, "allreduce_s": 5e-6, "hop_s": 3e-4}
    fitted = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "fitted", **costs),)
    tp = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), wl, fitted)
    # Link bandwidth still counts; its latency is inside the fitted all-reduce cost. Mixtral is MoE: 32 MoE layers.
    link = 64 * (2 * 0.5 * 8192 / 900e9)
    fixed = 1e-3 + 32 * 2e-5 + 32 * 1e-5 + 64 * 5e-6
    assert tp.basis["comm_s_per_step"] == pytest.approx(link + fixed, rel=1e-6)
    split = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=3, split="layer"), wl, fitted)
    hops = 2 * (4096 * 2 / 900e9)
    assert split.basis["comm_s_per_step"] == pytest.approx(hops + 1e-3 + 32 * 3e-5 + 2 * 3e-4, rel=1e-6)
    # Each fixed cost makes the step slower than the same efficiencies alone.
    plain = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "efficiencies only"),)
    assert tp.decode_tok_s < estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), wl, plain).decode_tok_s


def test_a_build_of_more_gpus_than_any_measured_one_gets_a_wider_range():
    wl = Workload(context=4096)
    cal = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "fitted", runs=10, spread=0.2, spread_several=0.3),)
    one = estimate(MIXTRAL_8X7B, FP16, Build(H100), wl, cal)
    assert one.decode_tok_s_high / one.decode_tok_s == pytest.approx(1.2)
    two = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), wl, cal)
    assert two.decode_tok_s_high / two.decode_tok_s == pytest.approx(1.3)
    many = MEASURED_MAX_GPUS * 2
    wide = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=many, split="tensor"), wl, cal)
    assert wide.decode_tok_s_high / wide.decode_tok_s == pytest.approx(1 + 0.3 * EXTRAPOLATED_WIDEN)
    assert "more GPUs than any measured build" in wide.basis["range_rule"]


def test_it_slows_decode_as_the_context_grows():
    short = estimate(MIXTRAL_8X7B, Q8_0, Build(H100), Workload(context=1024))
    long = estimate(MIXTRAL_8X7B, Q8_0, Build(H100), Workload(context=32768))
    # 32K of fp16 KV adds 4 GiB to each step's ~13.5 GB of weights.
    assert long.decode_tok_s < short.decode_tok_s
    assert long.bytes_per_token - short.bytes_per_token == pytest.approx(131_072 * (32768 - 1024))


def test_it_is_compute_bound_for_a_long_prompt_and_memory_bound_for_a_short_one_on_h100():
    # llama.cpp takes a prompt 512 tokens at a time, and each micro-batch of Mixtral reads all eight experts (each
    # sees some 128 tokens, too few to keep the tensor cores busy on fp16 weights): bandwidth binds a short prompt,
    # and a long one too at an F16 prompt's fitted efficiency. A dense model's long prompt is the arithmetic's.
    long = estimate(GEMMA2_9B, FP16, Build(H100, count=2, split="tensor"), Workload(prompt_tokens=8192))
    short = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), Workload(prompt_tokens=4))
    moe_long = estimate(MIXTRAL_8X7B, FP16, Build(H100, count=2, split="tensor"), Workload(prompt_tokens=8192))
    assert long.prefill_bound == "compute" and moe_long.prefill_bound == "bandwidth"
    assert short.prefill_bound == "bandwidth"
    # Four tokens already touch 8 x (1 - 0.75^4) = 5.47 of 8 experts per layer.
    assert short.basis["distinct_experts_per_layer_prefill"] == pytest.approx(5.4688, abs=1e-4)
    assert long.ttft_s == pytest.approx(8192 / long.prefill_tok_s)


def test_it_runs_slower_and_offload_bound_with_cpu_offload():
    wl = Workload(context=4096)
    offload = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, offload_ram_gb=64, ram_bandwidth_gb_s=80), wl)
    full = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2), wl)
    assert not offload.fits and offload.fits_with_offload
    assert offload.decode_bound == "offload"
    assert offload.offloaded_gb == pytest.approx(offload.total_gb - offload.usable_gb)
    assert offload.decode_tok_s < full.decode_tok_s / 2


def test_it_stores_less_kv_with_mla_than_the_naive_gqa_formula():
    # MLA: (512 + 64) x 61 layers x 2 bytes = 70,272 B; naive 2 x 61 x 128 heads x 128 x 2 = 3,997,696 B.
    assert kv_bytes_per_token(DEEPSEEK_V3) == 70_272
    naive = 2 * 61 * 128 * 128 * 2
    assert kv_bytes_per_token(DEEPSEEK_V3) < naive / 50


def test_it_caps_kv_of_sliding_layers_at_the_window_for_gemma_2():
    per_layer = 2 * 8 * 256 * 2  # 8,192 B per token per layer
    # At 8K: 21 global layers x 8192 tokens + 21 sliding layers x 4096 tokens.
    assert kv_cache_bytes(GEMMA2_9B, 8192) == per_layer * (21 * 8192 + 21 * 4096)
    assert kv_cache_bytes(GEMMA2_9B, 8192) < per_layer * 42 * 8192


def test_it_gives_the_largest_context_that_fits():
    est = estimate(MIXTRAL_8X7B, Q8_0, Build(H100), Workload(context=4096))
    free = est.usable_gb - est.weights_gb - est.overhead_gb
    assert est.max_context == min(int(free * 1e9 // 131_072), 32768)
    tiny = estimate(MIXTRAL_8X7B, FP16, Build(RTX4090), Workload())
    assert tiny.max_context == 0


def test_it_states_its_basis_and_serialises_to_json():
    est = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2), Workload())
    data = json.loads(json.dumps(est.to_dict()))
    assert {"fits", "memory", "max_context", "decode_tok_s", "decode_tok_s_low", "decode_tok_s_high",
            "prefill_tok_s", "ttft_s", "decode_bound", "basis"} <= set(data)  # fmt: skip
    assert data["basis"]["efficiency_source"].startswith("fit:")
    assert est.decode_tok_s_low < est.decode_tok_s < est.decode_tok_s_high
    assert est.usd_per_tok_s == pytest.approx(2 * 1599 / est.decode_tok_s)


def test_it_uses_different_efficiencies_for_hbm_and_gddr_under_llama_cpp():
    hbm = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), Workload())
    gddr = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2), Workload())
    assert hbm.basis["decode_efficiency"] < gddr.basis["decode_efficiency"]
    assert all(f.source for f in DEFAULT_CALIBRATION)


def test_it_ranks_gpus_with_the_same_figures_as_estimate():
    gpus = gpus_frame([H100, RTX4090, MAC32, MAC64])
    wl = Workload(context=8192, prompt_tokens=256)
    quants = [Q4_K_M, Q8_0, FP16]
    ranked = rank_gpus(MIXTRAL_8X7B, quants, gpus, wl)
    assert len(ranked) == 12
    for gpu in (H100, RTX4090, MAC32, MAC64):
        for q in quants:
            row = ranked[(ranked["name"] == gpu.name) & (ranked["quant"] == q.name)].iloc[0]
            est = estimate(MIXTRAL_8X7B, q, Build(gpu), wl)
            for col in ("total_gb", "usable_gb", "decode_tok_s", "decode_tok_s_low", "prefill_tok_s", "ttft_s"):
                assert row[col] == pytest.approx(getattr(est, col)), (gpu.name, q.name, col)
            assert bool(row["fits"]) == est.fits
            assert int(row["max_context"]) == est.max_context
            assert row["decode_bound"] == est.decode_bound
    # Fitting rows come first.
    assert ranked["fits"].iloc[0] and not ranked["fits"].iloc[-1]


def test_unified_memory_parts_have_their_own_class_apart_from_the_discrete_cards_of_their_vendor():
    strix = GPUSpec("Radeon 8060S 128 GB", "amd", "integrated-soc", 128, 256, fp16_tflops=59.4, unified_memory=True)
    xtx = GPUSpec("RX 7900 XTX", "amd", "consumer", 24, 960, fp16_tflops=122.8, memory_type="GDDR6")
    mi300x = GPUSpec("MI300X", "amd", "datacenter", 192, 5300, fp16_tflops=1307.4, memory_type="HBM3")
    spark = GPUSpec("DGX Spark", "nvidia", "embedded", 128, 273, fp16_tflops=62.5, unified_memory=True)
    expected = ["amd-soc", "amd-gddr", "amd-hbm", "nvidia-soc"]
    assert [hardware_class(g) for g in (strix, xtx, mi300x, spark)] == expected
    assert list(hardware_classes(gpus_frame([strix, xtx, mi300x, spark]))) == expected


def test_a_frame_that_carries_its_hardware_classes_ranks_the_same():
    gpus = gpus_frame([H100, RTX4090, MAC32, MAC64])
    assert list(hardware_classes(gpus)) == [hardware_class(g) for g in (H100, RTX4090, MAC32, MAC64)]
    assert list(hardware_classes(gpus)) == ["nvidia-hbm", "nvidia-gddr", "apple", "apple"]
    wl = Workload(context=4096)
    plain = rank_gpus(MIXTRAL_8X7B, [Q4_K_M], gpus, wl)
    classified = rank_gpus(MIXTRAL_8X7B, [Q4_K_M], gpus.assign(hardware_class=hardware_classes(gpus)), wl)
    for col in ("name", "hardware_class", "decode_tok_s", "prefill_tok_s", "fits"):
        assert list(classified[col]) == list(plain[col]), col


def test_a_batch_specific_calibration_row_wins_for_its_batch_class():
    rows = [
        CalibrationFactor("gpufit-torch", "nvidia-hbm", "float", 0.30, 0.5, "fit: b1", batch_class="1"),
        CalibrationFactor("gpufit-torch", "nvidia-hbm", "float", 0.45, 0.5, "fit: b8", batch_class="many"),
        CalibrationFactor("gpufit-torch", "nvidia-hbm", "*", 0.20, 0.5, "hand-made, any batch"),
    ]
    assert find_calibration("gpufit-torch", "nvidia-hbm", "float", rows, batch=1).decode_efficiency == 0.30
    assert find_calibration("gpufit-torch", "nvidia-hbm", "float", rows, batch=8).decode_efficiency == 0.45
    assert find_calibration("gpufit-torch", "nvidia-hbm", "int8", rows, batch=8).decode_efficiency == 0.20
    one = estimate(MIXTRAL_8X7B, FP16, Build(H100), Workload(context=4096, batch=1, backend="gpufit-torch"), rows)
    eight = estimate(MIXTRAL_8X7B, FP16, Build(H100), Workload(context=4096, batch=8, backend="gpufit-torch"), rows)
    assert one.basis["batch_class"] == "1" and one.basis["decode_efficiency"] == 0.30
    assert eight.basis["batch_class"] == "many" and eight.basis["decode_efficiency"] == 0.45
    # The vectorised ranking picks the same rows as estimate().
    ranked = rank_gpus(
        MIXTRAL_8X7B, [FP16], gpus_frame([H100]), Workload(context=4096, batch=8, backend="gpufit-torch"), rows
    )
    assert ranked["decode_tok_s"].iloc[0] == pytest.approx(eight.decode_tok_s)


def test_it_ranks_models_on_one_gpu():
    ranked = rank_models([MIXTRAL_8X7B, GEMMA2_9B], [[Q4_K_M, FP16], [Q8_0]], H100, Workload())
    assert set(zip(ranked["model"], ranked["quant"], strict=True)) == {
        ("Mixtral-8x7B", "Q4_K_M"), ("Mixtral-8x7B", "FP16"), ("gemma-2-9b", "Q8_0")}  # fmt: skip
    fp16 = ranked[ranked["quant"] == "FP16"].iloc[0]
    assert not fp16["fits"]
    # Each row carries exactly what estimate() says for that model and format on the GPU.
    for model, quant in ((MIXTRAL_8X7B, Q4_K_M), (GEMMA2_9B, Q8_0)):
        row = ranked[(ranked["model"] == model.name) & (ranked["quant"] == quant.name)].iloc[0]
        single = estimate(model, quant, Build(H100), Workload())
        assert row["decode_tok_s"] == pytest.approx(single.decode_tok_s)
        assert row["total_gb"] == pytest.approx(single.total_gb)
        assert row["max_context"] == single.max_context


def test_it_plans_builds_that_fit_cheapest_first():
    builds = rank_builds(MIXTRAL_8X7B, FP16, gpus_frame([RTX4090, H100]), Workload(), max_gpus=8)
    assert builds["fits"].all()
    # FP16 Mixtral (94.4 GB with overhead) needs 5 RTX 4090s (23.2 GB usable each) or 2 H100s.
    cheapest_4090 = builds[builds["name"] == "RTX 4090"]["count"].min()
    assert cheapest_4090 == 5
    assert builds[builds["name"].str.startswith("H100")]["count"].min() == 2
    assert builds["total_price_usd"].is_monotonic_increasing


def test_a_steps_per_weight_arithmetic_follows_the_fp32_rate():
    wl = Workload(context=4096)
    cal = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "fitted", decode_vector_inv_efficiency=2.0),)
    plain = (CalibrationFactor("*", "*", "*", 0.6, 0.4, "efficiencies only"),)
    slow_alu = dataclasses.replace(H100, fp32_tflops=10.0)
    with_term = estimate(MIXTRAL_8X7B, FP16, Build(slow_alu), wl, cal)
    # 2 x active parameters / 10 TFLOPS joins the data path; without the fitted factor there is none.
    active = MIXTRAL_8X7B.active_params
    assert with_term.basis["vector_s_per_step"] == pytest.approx(2.0 * active / 10e12, rel=1e-9)
    base = estimate(MIXTRAL_8X7B, FP16, Build(slow_alu), wl, plain)
    assert base.basis["vector_s_per_step"] == 0.0 and with_term.decode_tok_s < base.decode_tok_s
    # A faster FP32 rate costs less; a GPU without one pays nothing (the term needs the rate).
    fast_alu = estimate(MIXTRAL_8X7B, FP16, Build(dataclasses.replace(H100, fp32_tflops=60.0)), wl, cal)
    assert with_term.decode_tok_s < fast_alu.decode_tok_s
    unknown = estimate(MIXTRAL_8X7B, FP16, Build(dataclasses.replace(H100, fp32_tflops=None)), wl, cal)
    assert unknown.basis["vector_s_per_step"] == 0.0


def test_a_fitted_re_read_factor_of_zero_keeps_the_fitted_prompt_formula():
    # The fit may drive one prompt cost to 0 (several shipped groups have no micro-batch re-reads); the row still has
    # fitted prompt costs, and its prompt must be the fitted sum, not the older max(compute, memory) rule.
    fitted = dict(prefill_s=0.01, prefill_attention_inv_efficiency=8.0)
    none = CalibrationFactor("*", "*", "*", 0.8, 0.5, "test", prefill_chunk_inv_efficiency=0.0, **fitted)
    tiny = dataclasses.replace(none, prefill_chunk_inv_efficiency=1e-12)
    workload = Workload(context=8192, prompt_tokens=8192)
    a = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), workload, calibration=[none])
    b = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), workload, calibration=[tiny])
    assert a.ttft_s == pytest.approx(b.ttft_s, rel=1e-9)
    # The fitted sum at 8K tokens: the attention at 8x its FLOPs is a large part of it, so the two rules differ.
    unfitted = dataclasses.replace(none, prefill_s=0.0, prefill_attention_inv_efficiency=0.0)
    c = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), workload, calibration=[unfitted])
    assert a.ttft_s > c.ttft_s * 1.2


def test_llama_cpp_runs_a_quantized_prompt_at_the_int8_rate_on_nvidia_and_pipelines_a_layer_split():
    workload = Workload(context=4096, prompt_tokens=4096, backend="llama.cpp")
    with_int8 = dataclasses.replace(RTX4090, int8_tops=660.6)
    # A quantized prompt's weight products run as int8 kernels: faster with the int8 figure than without it.
    assert (
        estimate(MIXTRAL_8X7B, Q4_K_M, Build(with_int8, count=2), workload).prefill_tok_s
        > estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2), workload).prefill_tok_s * 1.2
    )
    # An F16 prompt stays on the fp16 rate, and another engine on the same card never takes the int8 rate.
    small = ModelArch("small", 1_000_000_000, 1_000_000_000, 16, 2048, 16, 8, 128, 32000, 8192)
    for quant, backend in ((FP16, "llama.cpp"), (Q4_K_M, "vllm")):
        wl = dataclasses.replace(workload, backend=backend)
        a = estimate(small, quant, Build(with_int8), wl)
        b = estimate(small, quant, Build(RTX4090), wl)
        assert a.prefill_tok_s == pytest.approx(b.prefill_tok_s, rel=1e-9)
    # Pipelining over a layer split: four cards take a 4,096-token prompt in less time than one, one micro-batch not.
    one = estimate(small, Q4_K_M, Build(with_int8), workload)
    four = estimate(small, Q4_K_M, Build(with_int8, count=4), workload)
    assert four.ttft_s < one.ttft_s * 0.8
    # The basis says which rate and whether the prompt was pipelined.
    assert four.basis["prompt_rule"].startswith("weights' products at 660.6 int8 TOPS")
    assert "pipelines each 2,048-token batch over 4 cards (0.44 of the sequential time)" in four.basis["prompt_rule"]
    assert one.basis["prompt_rule"] == "weights' products at 660.6 int8 TOPS (llama.cpp's CUDA int8 kernels)"
    short = dataclasses.replace(workload, context=512, prompt_tokens=512)
    one_short = estimate(small, Q4_K_M, Build(with_int8), short)
    four_short = estimate(small, Q4_K_M, Build(with_int8, count=4), short)
    assert four_short.ttft_s >= one_short.ttft_s * 0.99


def test_a_prompt_after_cached_context_pays_for_the_depth_its_check_command_measures():
    # The check command runs llama-bench -d (context - prompt); the prompt's attention and re-reads cover that depth.
    fresh = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), Workload(context=512, prompt_tokens=512))
    deep = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), Workload(context=32768 + 512, prompt_tokens=512))
    assert "-d 32768" in deep.basis["check_command"] and "-d" not in fresh.basis["check_command"]
    # At least the attention over the depth at the tensor peak: 4 x layers x q_dim x P x D FLOPs (Mixtral: 32 layers,
    # 32 query heads of 128), which alone is 8.6 TFLOP here.
    depth_flops = 4 * 32 * 32 * 128 * 512 * 32768
    assert deep.ttft_s - fresh.ttft_s > depth_flops / (H100.fp16_tflops * 1e12)
    assert deep.ttft_s > fresh.ttft_s * 1.3
    # A prompt that is the whole context has no depth: the same time whatever the context field says beyond it.
    whole = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), Workload(context=4096, prompt_tokens=4096))
    shorter = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), Workload(context=2048, prompt_tokens=4096))
    assert whole.ttft_s == pytest.approx(shorter.ttft_s, rel=1e-9)


def test_a_prompt_estimate_carries_the_fitted_range_as_a_rate_and_as_a_time_to_first_token():
    work = Workload(context=4096, prompt_tokens=2048)
    one = estimate(MIXTRAL_8X7B, Q4_K_M, Build(H100), work)
    w = PREFILL_RANGE_WIDTHS["one"]
    assert 0.1 < w < 0.9
    assert one.prefill_tok_s_low == pytest.approx(one.prefill_tok_s * (1 - w))
    assert one.prefill_tok_s_high == pytest.approx(one.prefill_tok_s * (1 + w))
    assert one.ttft_s_low < one.ttft_s < one.ttft_s_high
    assert one.ttft_s_high == pytest.approx(one.ttft_s / (1 - w))
    # Several GPUs take their own width; more GPUs than any measured build are wider still, never past 0.9.
    two = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=2), work)
    assert two.prefill_tok_s_high / two.prefill_tok_s - 1 == pytest.approx(PREFILL_RANGE_WIDTHS["several"])
    many = estimate(MIXTRAL_8X7B, Q4_K_M, Build(RTX4090, count=MEASURED_MAX_GPUS + 2), work)
    widened = min(PREFILL_RANGE_WIDTHS["several"] * EXTRAPOLATED_WIDEN, 0.9)
    assert many.prefill_tok_s_high / many.prefill_tok_s - 1 == pytest.approx(widened)
    assert {"prefill_tok_s_low", "prefill_tok_s_high", "ttft_s_low", "ttft_s_high"} <= one.to_dict().keys()


def test_the_shipped_prompt_range_holds_about_four_in_five_left_out_prompts():
    shipped = json.loads(CALIBRATION_FILE.read_text())
    line = next(line for line in shipped["report"] if line["set"] == "prefill, all")
    assert 70 <= line["range_coverage"] <= 90
    assert shipped["prefill_range_widths"] == PREFILL_RANGE_WIDTHS
