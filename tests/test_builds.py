"""Builds an engine can run, the engine each build assumes, and the command that checks an estimate."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from physics.builds import build_problem, check_command, engine_for
from physics.estimator import GPUSpec, Quant, Workload, gpus_frame, rank_builds
from physics.presets import MIXTRAL_8X7B_ARCH as MIXTRAL

MIXTRAL_SLUG = "mixtral-8x7b-instruct-v0-1"
RTX3060 = GPUSpec("NVIDIA GeForce RTX 3060", "nvidia", "consumer", 12, 360, fp16_tflops=51.2, price_usd=329)
A6000 = GPUSpec("NVIDIA RTX A6000", "nvidia", "workstation", 48, 768, fp16_tflops=154.8, price_usd=4650)
Q4_K_M = Quant("Q4_K_M", 4.85, kind="gguf")
BF16 = Quant("bf16", 16, kind="torch")
AWQ = Quant("AWQ-INT4", 4.16, kind="awq")


def test_a_gguf_format_is_never_tensor_parallel():
    problem = build_problem(MIXTRAL, "gguf", "Q4_K_M", 3, "tensor")
    assert problem and "llama.cpp" in problem and "layer" in problem
    assert build_problem(MIXTRAL, "gguf", "Q4_K_M", 3, "layer") is None
    assert engine_for("gguf", "layer", 3, "vllm") == "llama.cpp"


def test_tensor_parallel_needs_a_degree_the_heads_divide():
    # Mixtral: 32 query heads, 8 KV heads.
    assert "32 query heads" in build_problem(MIXTRAL, "torch", "bf16", 3, "tensor")
    assert build_problem(MIXTRAL, "torch", "bf16", 2, "tensor") is None
    assert build_problem(MIXTRAL, "torch", "bf16", 8, "tensor") is None
    # 16 cards: 16 does not divide 8 KV heads, but is a multiple of them (each KV head kept on two cards).
    assert build_problem(MIXTRAL, "torch", "bf16", 16, "tensor") is None


def test_the_planner_lists_no_build_an_engine_cannot_run():
    gpus = gpus_frame([RTX3060])
    gguf = rank_builds(MIXTRAL, Q4_K_M, gpus, Workload(), max_gpus=4)
    assert len(gguf) and (gguf["split"][gguf["count"] > 1] == "layer").all()
    assert set(gguf["engine"]) == {"llama.cpp"}
    dense = rank_builds(MIXTRAL, BF16, gpus_frame([A6000]), Workload(), max_gpus=8)
    tensor = dense[(dense["split"] == "tensor") & (dense["count"] > 1)]
    assert len(tensor) and set(tensor["engine"]) == {"vllm"}
    assert not (tensor["count"] % 3 == 0).any()
    assert set(dense[dense["split"] == "layer"]["engine"]) == {"llama.cpp"}


def test_each_estimate_carries_the_command_that_checks_it():
    llama = check_command(
        "llama.cpp",
        model_name="Mixtral-8x7B-Instruct-v0.1",
        hf_repo="mistralai/Mixtral-8x7B-Instruct-v0.1",
        quant_name="Q4_K_M",
        quant_kind="gguf",
        count=2,
        split="layer",
        prompt_tokens=512,
        context=8192,
        batch=1,
    )
    assert llama.startswith("llama-bench -m Mixtral-8x7B-Instruct-v0.1-Q4_K_M.gguf -p 512 -n 128")
    assert "-d 7680" in llama and "-sm layer" in llama
    vllm = check_command(
        "vllm",
        model_name="Mixtral-8x7B-Instruct-v0.1",
        hf_repo="mistralai/Mixtral-8x7B-Instruct-v0.1",
        quant_name="AWQ-INT4",
        quant_kind="awq",
        count=4,
        split="tensor",
        prompt_tokens=1024,
        context=8192,
        batch=8,
    )
    assert vllm.startswith("vllm bench latency --model mistralai/Mixtral-8x7B-Instruct-v0.1 --input-len 1024")
    assert "--tensor-parallel-size 4" in vllm and "--quantization awq" in vllm and "--batch-size 8" in vllm

    def command(engine, **given):
        """The check command of a one-sequence Llama 2 7B estimate at a 512-token prompt, with `given` changed."""
        build = dict(model_name="Llama-2-7b-chat-hf", hf_repo="meta-llama/Llama-2-7b-chat-hf", prompt_tokens=512)
        build.update(quant_name="bf16", quant_kind="torch", count=1, split="layer", context=4096, batch=1)
        return check_command(engine, **(build | given))

    sglang = command(
        "sglang",
        model_name="Llama-3.1-8B-Instruct",
        hf_repo="meta-llama/Llama-3.1-8B-Instruct",
        quant_name="FP8",
        quant_kind="fp8",
        count=2,
        split="tensor",
    )
    assert sglang.startswith("python -m sglang.bench_one_batch --model-path meta-llama/Llama-3.1-8B-Instruct")
    assert "--tp-size 2" in sglang and "--quantization fp8" in sglang and "--input-len 512" in sglang
    exl2 = command("exllamav2", quant_name="GPTQ-INT4", quant_kind="gptq", count=2)
    assert exl2 == "python test_inference.py -m Llama-2-7b-chat-hf-GPTQ-INT4 -ps -s -l 4096 -gs auto"
    fast = command("gpt-fast", quant_name="torch-int4")
    assert fast == (
        "python generate.py --compile --checkpoint_path checkpoints/meta-llama/Llama-2-7b-chat-hf/model_int4.g32.pth"
        " --max_new_tokens 128 --num_samples 5"
    )
    fast_tp = command("gpt-fast", count=2, split="tensor")
    assert fast_tp.startswith("ENABLE_INTRA_NODE_COMM=1 torchrun --standalone --nproc_per_node=2 generate.py --compile")
    assert fast_tp.split("--checkpoint_path ")[1].startswith("checkpoints/meta-llama/Llama-2-7b-chat-hf/model.pth")
    assert fast_tp.split("--checkpoint_path ")[1].startswith("checkpoints/meta-llama/Llama-2-7b-chat-hf/model.pth")


@pytest.mark.django_db
def test_the_api_and_cli_refuse_an_impossible_build_with_the_reason(client, curated_catalog):
    args = {"model": MIXTRAL_SLUG, "quant": "Q4_K_M", "gpu": "RTX 4090", "gpus": 3, "split": "tensor"}
    r = client.get("/api/v1/estimate", args)
    # Values that make no sense together are a 400 with the reason, like a context longer than the model's.
    assert r.status_code == 400, r.content
    assert "llama.cpp" in r.content.decode() and "layer" in r.content.decode()
    with pytest.raises(CommandError) as refused:
        call_command(
            "estimate",
            *("--model", MIXTRAL_SLUG, "--quant", "Q4_K_M", "--gpu", "RTX 4090", "--gpus", "3", "--split", "tensor"),
        )
    assert refused.value.returncode == 2 and "llama.cpp" in str(refused.value)


@pytest.mark.django_db
def test_the_api_says_which_engine_an_estimate_is_for_and_how_to_check_it(client, curated_catalog):
    r = client.get("/api/v1/estimate", {"model": MIXTRAL_SLUG, "quant": "Q4_K_M", "gpu": "RTX 4090", "gpus": 2})
    assert r.status_code == 200, r.content
    body = r.json()
    assert body["engine"] == "llama.cpp" and body["engine_note"] == ""
    assert body["check_command"].startswith("llama-bench -m ")
    tp = client.get(
        "/api/v1/estimate",
        {"model": MIXTRAL_SLUG, "quant": "bf16", "gpu": "H100 SXM", "gpus": 2, "split": "tensor"},
    )
    assert tp.status_code == 200, tp.content
    assert tp.json()["engine"] == "vllm" and "llama.cpp does not run" in tp.json()["engine_note"]
    assert "--tensor-parallel-size 2" in tp.json()["check_command"]


@pytest.mark.django_db
def test_the_planner_page_shows_each_builds_engine_and_no_impossible_build(client, curated_catalog):
    page = client.get("/plan/", {"model": MIXTRAL_SLUG, "quant": "Q4_K_M", "max_gpus": 4, "split": "both"})
    assert page.status_code == 200
    html = page.content.decode()
    assert 'class="engine">llama.cpp<' in html
    assert "tensor · " not in html  # a GGUF format never appears as tensor parallel
    basis = client.get(
        "/plan/basis/",
        {"model": MIXTRAL_SLUG, "quant": "Q4_K_M", "gpu": "nvidia-geforce-rtx-4090", "count": 3, "split_one": "tensor"},
    )
    assert basis.status_code == 400 and "llama.cpp" in basis.content.decode()
    ok = client.get(
        "/plan/basis/",
        {"model": MIXTRAL_SLUG, "quant": "Q4_K_M", "gpu": "nvidia-geforce-rtx-4090", "count": 2, "split_one": "layer"},
    )
    assert ok.status_code == 200 and "llama-bench -m" in ok.content.decode()
