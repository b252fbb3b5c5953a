"""Serving capacity: the most concurrent users at a context and a minimum speed, the same in physics, API, CLI, page."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from physics.capacity import serving_capacity
from physics.estimator import Build, GPUSpec, Quant, Workload, estimate
from physics.presets import MIXTRAL_8X7B_ARCH

# H100 SXM5 80 GB: 3,350 GB/s, 989 dense FP16 TFLOPS (NVIDIA's datasheet, as in the catalog).
H100 = GPUSpec("H100 SXM5 80 GB", "nvidia", "datacenter", 80, 3350, fp16_tflops=989.4, memory_type="HBM3")
Q4_K_M = Quant("Q4_K_M", 4.5)


def test_the_answer_is_the_smaller_of_the_memory_and_speed_limits():
    cap = serving_capacity(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=8192), min_tok_s=10)
    assert cap.users == min(cap.memory_users, cap.speed_users) > 0
    # One more user than memory allows does not fit; the answer itself fits and keeps the speed.
    over = estimate(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=8192, batch=cap.memory_users + 1))
    assert not over.fits
    at = estimate(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=8192, batch=cap.users))
    assert at.fits and at.decode_tok_s >= 10
    assert cap.total_tok_s == pytest.approx(cap.per_user_tok_s * cap.users)
    # A new user's first prompt has nothing cached: its TTFT is a fresh 512-token prompt's, not one after 7,680 tokens.
    fresh = estimate(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=512, prompt_tokens=512))
    deep = estimate(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=8192, prompt_tokens=512))
    assert cap.ttft_s == pytest.approx(fresh.ttft_s) and cap.ttft_s < deep.ttft_s


def test_a_higher_speed_floor_means_fewer_users_and_names_the_step_bound():
    loose = serving_capacity(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=2048), min_tok_s=5)
    strict = serving_capacity(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(H100), Workload(context=2048), min_tok_s=60)
    assert strict.users < loose.users
    assert strict.binds in {"bandwidth", "compute"}  # speed, not memory, stops it


def test_a_context_too_long_for_one_user_gives_no_users_and_says_memory():
    small = GPUSpec("24 GB card", "nvidia", "consumer", 24, 1000, fp16_tflops=165)
    cap = serving_capacity(MIXTRAL_8X7B_ARCH, Q4_K_M, Build(small), Workload(context=8192))
    assert cap.users == 0 and cap.binds == "memory"


@pytest.mark.django_db
def test_the_api_the_cli_and_the_model_page_give_the_same_figures(client, curated_catalog):
    query = {"model": "mixtral:8x7b", "quant": "Q4_K_M", "gpu": "NVIDIA H100 SXM5 80 GB", "context": 8192}
    api = client.get("/api/v1/capacity", query).json()
    out = io.StringIO()
    call_command(
        "estimate", "--model", "mixtral:8x7b", "--quant", "Q4_K_M", "--gpu", "NVIDIA H100 SXM5 80 GB",
        "--context", "8192", "--capacity", "--json", stdout=out,
    )  # fmt: skip
    cli = json.loads(out.getvalue())
    assert api["users"] == cli["users"] > 0 and api["total_tok_s"] == pytest.approx(cli["total_tok_s"])
    page = client.get(
        "/models/mixtral-8x7b-instruct-v0-1/",
        {"cap-gpu": "NVIDIA H100 SXM5 80 GB", "cap-count": 1, "cap-context": 8192, "cap-min_tok_s": 10},
    )
    assert page.context["capacity"].users == api["users"]
    assert f"{api['users']} concurrent user" in page.content.decode()
