"""The fit over the public measurement set (physics/fit.py): honest leave-one-source-out, shipped file current."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from physics import fit
from physics.estimator import find_calibration


def test_the_shipped_parameters_equal_a_fresh_fit(capsys):
    assert fit.main(["--check"]) == 0, capsys.readouterr().out


def test_nnls_finds_the_non_negative_solution():
    # b = 2 x col0 + 0.5 x col1 exactly; an unconstrained fit of col2 would go negative, NNLS keeps it at 0.
    a = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, -1.0], [1.0, 1.0, 0.0], [2.0, 0.0, 1.0]])
    x_true = np.array([2.0, 0.5, 0.0])
    x = fit.nnls(a, a @ x_true)
    assert x == pytest.approx(x_true, abs=1e-9)
    assert (fit.nnls(a, np.array([-1.0, -1.0, -1.0, -1.0])) >= 0).all()


def test_rows_of_one_person_are_one_source():
    a = "https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference/blob/abc/llama3-70b-q4.ipynb"
    b = "https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference/blob/abc/llama3-8b-f16.ipynb"
    assert fit.source_group(a) == fit.source_group(b)
    assert fit.source_group("https://github.com/ggml-org/llama.cpp/discussions/4167") != fit.source_group(
        "https://github.com/ggml-org/llama.cpp/discussions/15013"
    )


def _rows(source: str, bandwidth: float, seconds_per_gb: float, n: int) -> pd.DataFrame:
    # Synthetic single-GPU rows: time = bytes / bandwidth x (seconds_per_gb x bandwidth) + 1 ms.
    sizes = np.linspace(2e9, 20e9, n)
    return pd.DataFrame(
        {
            "source": source,
            "engine_family": "llama.cpp",
            "hardware_class": "nvidia-gddr",
            "precision_class": "int4",
            "bytes_step": sizes,
            "gpu_bandwidth_gb_s": bandwidth,
            "gpu_count": 1,
            "tensor": False,
            "interconnect": "none",
            "params_b": 7.0,
            "active_params_b": 7.0,
            "layers": 32,
            "gpu_vector_tflops": 0.0,  # no FP32 rate: no vector term
            "time_s": sizes / 1e9 * seconds_per_gb + 1e-3,
        }
    )


def test_a_source_never_predicts_itself():
    # Two sources agree (efficiency 0.5 of 1,000 GB/s); a third is twice as slow. Left out, the slow source is
    # predicted from the other two, so its error stays large instead of being fitted away.
    rows = pd.concat(
        [_rows("a", 1000, 0.002, 10), _rows("b", 1000, 0.002, 10), _rows("slow", 1000, 0.004, 10)],
        ignore_index=True,
    )
    features = fit.decode_features(rows)
    predicted = fit.leave_one_source_out(rows, features)
    slow = rows["source"].eq("slow").to_numpy()
    error = np.abs(rows["time_s"].to_numpy() / predicted - 1)
    assert error[slow].min() > 0.4
    assert error[~slow].max() < 0.6
    in_sample = fit.predict(fit.fit_table(rows, features), rows, features)
    assert np.abs(rows["time_s"].to_numpy()[slow] / in_sample[slow] - 1).mean() < error[slow].mean()


@pytest.fixture(scope="module")
def fresh_fit() -> dict:
    """One fit over the whole set (leave-one-source-out included), shared by the tests that read its report."""
    return fit.fit_all()


def test_the_report_covers_engines_gpu_counts_and_prefill(fresh_fit):
    result = fresh_fit
    sets = {line["set"] for line in result["report"]}
    assert {"decode, batch 1, all", "decode — llama.cpp", "decode — tensor parallel", "prefill, all"} <= sets
    whole = next(line for line in result["report"] if line["set"] == "decode, batch 1, all")
    assert whole["rows"] >= 600 and whole["sources"] >= 15
    # The published range is calibrated to hold 80 % of leave-one-source-out rows.
    assert 70 <= whole["range_coverage"] <= 90


def test_the_headline_scores_the_builds_the_planner_makes_and_reports_llama_cpp_row_splits_apart(fresh_fit):
    df = fit.load_measurements()
    d = fit.decode_rows(df).reset_index(drop=True)
    refused = ~fit.planned(d)
    # llama.cpp's -sm row / -sm tensor over several cards: the planner refuses that build (a GGUF runs as a layer
    # split); every other row, vLLM's tensor parallel included, is a build it makes.
    assert refused.any()
    assert (d.loc[refused, "engine_family"] == "llama.cpp").all()
    assert d.loc[refused, "split"].isin(["row", "tensor"]).all()
    assert (d.loc[refused, "gpu_count"] > 1).all()
    vllm_tp = (d["engine_family"] == "vllm").to_numpy() & d["tensor"].to_numpy() & (d["gpu_count"] > 1).to_numpy()
    assert vllm_tp.any() and not refused[vllm_tp].any()
    report = {line["set"]: line for line in fresh_fit["report"]}
    assert report["decode, batch 1, all"]["rows"] == int((~refused).sum())
    assert report[fit.UNPLANNED_DECODE]["rows"] == int(refused.sum())
    p = fit.prefill_rows(df)
    assert report["prefill, all"]["rows"] + report[fit.UNPLANNED_PREFILL]["rows"] == len(p)


def test_the_source_breakdown_adds_up_to_the_whole_error():
    df = fit.load_measurements()
    keep = (
        df["source_url"]
        .map(fit.source_group)
        .isin(["pytorch-labs/gpt-fast", "turboderp/exllamav2", "turboderp/exllama", "mlc-ai/llm-perf-bench"])
    )
    text = fit.source_breakdown(df[keep], top=10)
    decode = text.split("\n\n")[0].splitlines()
    whole = float(decode[0].split("MAPE ")[1].split(" %")[0])
    points = [float(line.split()[-2]) for line in decode[2:]]
    assert len(points) == 4 and abs(sum(points) - whole) < 0.05
    # The rows of each source are the rows it has in the set.
    rows = {line.split()[0]: int(line.split()[1]) for line in decode[2:]}
    assert rows["pytorch-labs/gpt-fast"] == int((fit.decode_rows(df[keep])["source"] == "pytorch-labs/gpt-fast").sum())


def test_known_link_seconds_are_taken_as_given_not_fitted():
    rng = np.random.default_rng(3)
    features = rng.uniform(0.1, 1.0, size=(40, 2))
    truth = np.array([2.0, 0.5])
    offsets = rng.uniform(0.0, 3.0, size=40)
    times = features @ truth + offsets
    params = fit._fit_group(features, times, None, offsets=offsets)
    assert np.allclose(params, truth, rtol=1e-6)
    # Without the offsets the same rows need other parameters: the offset is what moved them.
    assert not np.allclose(fit._fit_group(features, times, None), truth, rtol=0.05)


def test_prompt_link_time_follows_the_split_and_the_engine():
    df = fit.load_measurements()
    p = fit.prefill_rows(df).reset_index(drop=True)
    seconds = fit.prefill_offsets(p)
    one = (p["gpu_count"] == 1).to_numpy()
    assert (seconds[one] == 0).all()
    # llama.cpp's -sm row on 4x RTX 4090 gathers every product's output in fp32: Llama-3-70B at pp512 moves
    # 80 layers x 512 tokens x (70.6e9 / 80 / 8192) x 4 bytes x 3/4 over PCIe 4 (32 GB/s), about 0.41 s.
    row = (p["split"] == "row").to_numpy() & (p["model"] == "Meta-Llama-3-70B").to_numpy()
    row &= (p["prompt_tokens"] == 512).to_numpy() & (p["context"] == 0).to_numpy()
    assert row.sum() == 1
    expected = 80 * 512 * (p.loc[row, "active_params_b"].iloc[0] * 1e9 / 80 / 8192) * 4 * 0.75 / 32e9
    assert seconds[row][0] == pytest.approx(expected, rel=1e-9)
    # A layer split of the same prompt hands one activation per card boundary on: far less.
    layer = (p["split"] == "layer").to_numpy() & (p["gpu_count"] == 4).to_numpy()
    layer &= (p["model"] == "Meta-Llama-3-70B").to_numpy() & (p["prompt_tokens"] == 512).to_numpy()
    assert layer.any() and (0 < seconds[layer]).all() and (seconds[layer] < seconds[row][0] / 100).all()


def test_the_readme_and_the_method_doc_quote_the_shipped_report():
    import json
    from pathlib import Path

    root = Path(fit.__file__).resolve().parent.parent
    shipped = json.loads(fit.FITTED.read_text())
    lines = {line["set"]: line for line in shipped["report"]}
    readme = (root / "README.md").read_text()
    assert f"**{lines['decode, batch 1, all']['mape']} % MAPE**" in readme
    assert f"**{lines['prefill, all']['mape']} %**" in readme
    # docs/estimator.md carries the whole table as `python -m physics.fit --report` prints it.
    doc = (root / "docs" / "estimator.md").read_text()
    assert all(row.rstrip() in doc for row in fit.render(shipped).splitlines() if row.strip())


def test_a_bounded_fit_holds_a_parameter_at_its_bound_and_solves_the_rest_again():
    # y = 2 a + 3 b exactly; with b at most 1 the best is b = 1 and a taking up what it can, not a clipped b alone.
    rng = np.random.default_rng(0)
    a = rng.random((40, 2)) + 0.1
    b = a @ np.array([2.0, 3.0])
    free = fit._bounded_nnls(a, b, None)
    assert free == pytest.approx([2.0, 3.0], rel=1e-9)
    held = fit._bounded_nnls(a, b, np.array([np.inf, 1.0]))
    assert held[1] == 1.0
    assert held[0] == pytest.approx(fit.nnls(a[:, :1], b - a[:, 1] * 1.0)[0], rel=1e-9) and held[0] > 2.0


def test_the_shipped_prompt_costs_stay_within_their_physical_bounds():
    shipped = json.loads(fit.FITTED.read_text())["factors"]
    names = dict(zip(fit.PREFILL_PARAMS[1:], fit.PREFILL_UPPER[1:], strict=True))
    for row in shipped:
        for name, bound in names.items():
            assert row[name] <= bound * (1 + 1e-6), (row["backend"], row["hardware_class"], name, row[name])


def test_quantized_cuda_prompts_of_current_llama_cpp_are_read_at_the_int8_rate_and_older_builds_at_fp16():
    df = fit.load_measurements()
    llama_cuda = (df["engine_family"] == "llama.cpp") & (df["backend"] == "cuda") & (df["gpu_int8_tops"] > 0)
    dated = fit.source_dates(df["source_date"])
    quantized = df["precision_class"].isin(["int4", "int8"])
    old = llama_cuda & quantized & (dated < fit.INT8_MMQ_SINCE)
    new = llama_cuda & quantized & (dated >= fit.INT8_MMQ_SINCE)
    assert old.sum() > 100 and new.sum() > 10  # xiongjiedai's May-2024 build; the MMQ pull requests and later
    assert (df.loc[old, "linear_tflops"] == df.loc[old, "prompt_tflops"]).all()
    assert (df.loc[new, "linear_tflops"] == df.loc[new, "gpu_int8_tops"]).all()
    floats = llama_cuda & ~quantized
    assert (df.loc[floats, "linear_tflops"] == df.loc[floats, "prompt_tflops"]).all()
    # A month alone reads as its first day; no date reads as none.
    parsed = fit.source_dates(pd.Series(["2024-07", "2024-06-08", ""]))
    assert list(parsed[:2]) == [pd.Timestamp("2024-07-01"), pd.Timestamp("2024-06-08")] and pd.isna(parsed[2])
    # Only llama.cpp's CUDA and HIP layer splits pipeline a prompt.
    piped = df[df["pipelined"]]
    assert set(piped["backend"]) <= {"cuda", "rocm"} and (piped["gpu_count"] > 1).all()
    assert (piped["split"] == "layer").all() and len(piped) > 100


def test_a_moe_prompt_micro_batch_reads_the_experts_it_visits_as_the_estimator_counts_them():
    df = fit.load_measurements()
    p = fit.prefill_rows(df)
    params = fit.chunk_params(p)
    dense = (p["active_params_b"] >= p["params_b"] * 0.95).to_numpy()
    assert (params[dense] == p["active_params_b"].to_numpy()[dense] * 1e9).all()
    # gpt-oss-120b (128 experts, 4 per token): a 512-token micro-batch visits nearly all of them, close to the total.
    big = (p["model"] == "gpt-oss-120b").to_numpy() & (p["prompt_tokens"] >= 512).to_numpy()
    assert big.any()
    total = p["params_b"].to_numpy()[big] * 1e9
    assert ((params[big] > 0.95 * total) & (params[big] <= total * 1.0001)).all()
    # Mixtral (8 experts, 2 per token) at 512 tokens: all eight, the whole model.
    mixtral = p["model"].str.startswith("Mixtral").to_numpy() & (p["prompt_tokens"] >= 512).to_numpy()
    if mixtral.any():
        assert params[mixtral] == pytest.approx(p["params_b"].to_numpy()[mixtral] * 1e9, rel=1e-6)
    # Every MoE model of the set has its experts on file (the load refuses one without).
    moe = df[df["active_params_b"] < df["params_b"] * 0.95]
    assert set(moe["model"]) <= set(fit.model_experts())


def test_a_prompt_row_runs_after_the_depth_it_states_and_fresh_without_one():
    df = fit.load_measurements()
    p = fit.prefill_rows(df)
    stated = p["source"].eq("ggml-org/llama.cpp#19378") & p["notes"].str.contains("@d32768")
    assert stated.any() and (p.loc[stated, "prompt_depth"] == 32768).all()
    # The ExLlama README states prompts (1,920 tokens and others) and no depth: fresh prompts, not after as many cached.
    fresh = p["file"].eq("exllama-v1-readme.csv")
    assert fresh.any() and (p.loc[fresh, "prompt_depth"] == 0).all()
    assert (p.loc[fresh, "context"] == p.loc[fresh, "prompt_tokens"]).all()  # decode after it still counts the prompt


def test_a_sliding_window_layer_holds_at_most_its_window_in_the_kv_the_fit_counts():
    df = fit.load_measurements()
    oss = df[(df["model"] == "gpt-oss-20b") & (df["context"] >= 32768)]
    assert len(oss)
    row = oss.iloc[[0]]
    # 24 layers, 12 of them with a 128-token window: (12 x context + 12 x 128) layer-tokens of 8 KV heads x 64 x 2 x 2.
    ctx = float(row["context"].iloc[0])
    assert fit.kv_bytes(row, [ctx])[0] == pytest.approx((12 * ctx + 12 * 128) * 8 * 64 * 2 * 2)
    llama = df[df["model"] == "Meta-Llama-3-8B"].iloc[[0]]
    assert fit.kv_bytes(llama, [4096])[0] == pytest.approx(32 * 4096 * 8 * 128 * 2 * 2)


def test_set_aside_rows_are_loaded_with_their_reason_and_neither_fitted_nor_shown():
    from planner.published import measurement_rows

    df = fit.load_measurements()
    aside = df[df["set_aside"] != ""]
    assert len(aside) >= 4 and (aside["metric"] == "prefill_tok_s").all()
    # The same card's other rows stay: its Q4_K_M prompts and its F16 decode.
    same_card = df[(df["gpu"] == aside["gpu"].iloc[0]) & (df["file"] == aside["file"].iloc[0])]
    assert (same_card["set_aside"] == "").sum() > 0
    for rows in (fit.prefill_rows(df), fit.decode_rows(df)):
        assert not set(rows.index) & set(aside.index)
    assert fit.prefill_rows(df)["file"].eq(aside["file"].iloc[0]).any()
    key = ("file", "gpu", "model", "format", "metric", "prompt_tokens")
    shown = {tuple(r[k] for k in key) for r in measurement_rows()}
    for _, r in aside.iterrows():
        assert tuple(r[k] for k in key) not in shown


def test_a_prompt_without_flash_attention_pays_its_score_matrix_as_known_physics():
    df = fit.load_measurements()
    p = fit.prefill_rows(df).reset_index(drop=True)
    seconds = fit.score_matrix_s(p)
    flash = (p["flash_attention"] == "on").to_numpy()
    assert flash.any() and (seconds[flash] == 0).all()
    # xiongjiedai's RTX 4090 (1,008 GB/s), Llama-3-8B (32 layers, 32 query heads) at pp8192 without flash attention:
    # 32 x 32 x 8192 x 4096 scores of SCORE_BYTES each, about 0.68 s of its 2.0 s measured.
    row = (p["gpu"] == "NVIDIA GeForce RTX 4090").to_numpy() & (p["model"] == "Meta-Llama-3-8B").to_numpy()
    row &= (p["prompt_tokens"] == 8192).to_numpy() & (p["gpu_count"] == 1).to_numpy() & (p["format"] == "Q4_K_M")
    assert row.sum() == 1 and p.loc[row, "flash_attention"].iloc[0] == "off"
    expected = 32 * 32 * 8192 * 4096 * fit.SCORE_BYTES / 1008e9
    assert seconds[row][0] == pytest.approx(expected, rel=1e-9) and expected < p.loc[row, "time_s"].iloc[0]
    # The fit takes it as known beside the link: prefill_known adds both.
    known = fit.prefill_known(p)
    assert known == pytest.approx(fit.prefill_offsets(p) + seconds, rel=1e-12)
    # The estimator's figures assume flash attention, as its check command turns it on.
    assert "prefill_scores_inv_efficiency" not in fit.PREFILL_PARAMS


def test_a_hardware_bound_parameter_the_engines_rows_there_lack_comes_from_that_hardware():
    # Two features: x0 every row has; x1 (say, flash-attention work) only engine "b" on hardware "h" and engine "a"
    # on hardware "g" have, at a cost of 1 and 9 per unit. Engine "a" on "h" has no x1 rows: with x1 hardware-bound
    # its group takes h's value (about 1, from "b" there), not the 9 its own rows on "g" set.
    groups = [("a", "h", 0.0, 0.0), ("b", "h", 1.0, 1.0), ("a", "g", 1.0, 9.0)]
    frames, columns = [], []
    for engine, hw, has_x1, cost in groups:
        for source in ("s1", "s2"):
            x0 = np.linspace(1.0, 2.0, 8)
            x1 = np.linspace(0.5, 1.5, 8) * has_x1
            frames.append(
                pd.DataFrame(
                    {
                        "engine_family": engine,
                        "hardware_class": hw,
                        "precision_class": "int4",
                        "source": f"{engine}{hw}{source}",
                        "time_s": x0 + cost * x1,
                    }
                )
            )
            columns.append(np.column_stack([x0, x1]))
    rows, features = pd.concat(frames, ignore_index=True), np.vstack(columns)
    bound = fit.fit_table(rows, features, hardware_bound=np.array([False, True]))
    hardware = bound[("*", "h", "*")][0][1]
    assert hardware < 2.0 and bound[("a", "h", "*")][0][1] == pytest.approx(hardware, rel=1e-3)
    plain = fit.fit_table(rows, features)
    assert plain[("a", "h", "*")][0][1] > 3.0


def test_a_prompt_precision_an_nvidia_class_lacks_comes_from_another_nvidia_class_not_from_other_precisions():
    table = {
        ("*", "*", "*"): (np.array([1.0]), 100, 9),
        ("e", "*", "*"): (np.array([2.0]), 90, 8),
        ("e", "nvidia-hbm", "*"): (np.array([3.0]), 20, 2),
        ("e", "nvidia-gddr", "float"): (np.array([4.0]), 12, 3),
        ("e", "amd-gddr", "float"): (np.array([5.0]), 12, 3),
    }
    assert fit.lookup(table, "e", "nvidia-hbm", "float", siblings=True)[0] == ("e", "nvidia-gddr", "float")
    assert fit.lookup(table, "e", "nvidia-hbm", "float")[0] == ("e", "nvidia-hbm", "*")
    # AMD's HBM (CDNA) and GDDR (RDNA) parts run kernels of their own: no borrowing there.
    assert fit.lookup(table, "e", "amd-hbm", "float", siblings=True)[0] == ("e", "*", "*")
    # The shipped calibration carries the row the estimator needs for it: F16 prompts on an H100 as on GDDR cards.
    shipped = {
        (r["backend"], r["hardware_class"], r["precision_class"]): r
        for r in json.loads(fit.FITTED.read_text())["factors"]
    }
    row = shipped[("llama.cpp", "nvidia-hbm", "float")]
    gddr, hbm = shipped[("llama.cpp", "nvidia-gddr", "float")], shipped[("llama.cpp", "nvidia-hbm", "*")]
    assert (
        row["prefill_efficiency"] == gddr["prefill_efficiency"]
        and "prefill group llama.cpp/nvidia-gddr/float" in row["source"]
    )
    assert row["decode_efficiency"] == hbm["decode_efficiency"]


def test_an_engine_without_rows_of_its_own_is_estimated_from_the_other_engines_not_from_llama_cpp():
    # llama.cpp (slow, cost 3 a unit) holds most rows on hardware "h"; two other engines (cost 1) a few. A third
    # engine with no rows takes the other engines' group there, not the all-engine group llama.cpp sets.
    frames, columns = [], []
    for engine, cost, sources, n in (("llama.cpp", 3.0, 4, 20), ("v", 1.0, 1, 8), ("t", 1.0, 1, 8)):
        for source in range(sources):
            x = np.linspace(1.0, 2.0, n)
            frames.append(
                pd.DataFrame(
                    {
                        "engine_family": engine,
                        "hardware_class": "h",
                        "precision_class": "float",
                        "source": f"{engine}{source}",
                        "time_s": cost * x,
                    }
                )
            )
            columns.append(x[:, None])
    rows, features = pd.concat(frames, ignore_index=True), np.vstack(columns)
    table = fit.fit_table(rows, features)
    key, params = fit.lookup(table, "sglang", "h", "float")
    assert key == (fit.OTHER_ENGINES, "h", "*") and params[0] == pytest.approx(1.0, rel=0.05)
    assert table[("*", "h", "*")][0][0] > 2.0
    # llama.cpp itself never falls back to the other engines' group.
    without_its_groups = {k: v for k, v in table.items() if k[0] != "llama.cpp"}
    assert fit.lookup(without_its_groups, "llama.cpp", "h", "float")[0] == ("*", "h", "*")
    # The shipped calibration names such an engine itself, so that the estimator (which knows no such group) finds
    # the same parameters as the fit: SGLang on HBM NVIDIA parts from the other engines' rows there.
    shipped = {
        (r["backend"], r["hardware_class"], r["precision_class"]): r
        for r in json.loads(fit.FITTED.read_text())["factors"]
    }
    row = shipped[("sglang", "nvidia-hbm", "*")]
    assert f"({fit.OTHER_ENGINES}/nvidia-hbm/*)" in row["source"]
    assert not any(backend == fit.OTHER_ENGINES for backend, _, _ in shipped)
    assert find_calibration("sglang", "nvidia-hbm", "float").decode_efficiency == row["decode_efficiency"]


def test_a_vulkan_prompt_is_fitted_in_a_class_of_its_own_and_never_lent_to_a_native_class():
    df = fit.load_measurements()
    p = fit.prefill_rows(df)
    vulkan = (p["backend"] == "vulkan").to_numpy()
    assert vulkan.any() and p.loc[vulkan, "hardware_class"].str.endswith(fit.VULKAN).all()
    assert not p.loc[~vulkan, "hardware_class"].str.endswith(fit.VULKAN).any()
    # Decode keeps one class per hardware, whatever the backend.
    d = fit.decode_rows(df)
    assert not d["hardware_class"].str.endswith(fit.VULKAN).any()
    # A CUDA prompt's missing precision borrows from another CUDA class, not from NVIDIA's Vulkan prompts.
    table = {
        ("*", "*", "*"): (np.array([1.0]), 100, 9),
        ("e", "*", "*"): (np.array([2.0]), 90, 8),
        ("e", "nvidia-hbm", "*"): (np.array([3.0]), 20, 2),
        ("e", "nvidia-gddr" + fit.VULKAN, "float"): (np.array([4.0]), 40, 3),
    }
    assert fit.lookup(table, "e", "nvidia-hbm", "float", siblings=True)[0] == ("e", "nvidia-hbm", "*")
    table[("e", "nvidia-gddr", "float")] = (np.array([5.0]), 12, 3)
    assert fit.lookup(table, "e", "nvidia-hbm", "float", siblings=True)[0] == ("e", "nvidia-gddr", "float")
