"""manage.py estimate: the CLI shares planner.queries.EstimateQuery with the API; messages and exit codes stay."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(curated_catalog):
    """The shared module catalog (tests/conftest.py)."""


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("estimate", *args, stdout=out)
    return out.getvalue()


def test_it_prints_a_catalog_estimate(catalog):
    text = run("--model", "mixtral-8x7b-instruct-v0-1", "--quant", "Q4_K_M", "--gpu", "RTX 4090")
    assert "Mixtral-8x7B-Instruct-v0.1 @ Q4_K_M on 1× NVIDIA GeForce RTX 4090" in text
    assert "does NOT fit" in text  # 26.4 GB of weights on a 24 GB card


def test_json_output_for_a_custom_model(catalog):
    data = json.loads(
        run(
            "--params-b",
            "7",
            "--layers",
            "32",
            "--kv-heads",
            "8",
            "--head-dim",
            "128",
            "--bits-per-weight",
            "4",
            "--memory-gb",
            "24",
            "--bandwidth-gb-s",
            "1000",
            "--json",
        )
    )
    assert (data["model"], data["quant"], data["gpu"], data["gpus"]) == (
        "custom model",
        "4.0 bpw",
        "custom hardware",
        1,
    )
    assert data["fits"] is True


def test_an_unknown_model_exits_2_with_close_matches(catalog):
    with pytest.raises(CommandError) as err:
        run("--model", "mixtrall", "--quant", "Q4_K_M", "--gpu", "RTX 4090")
    assert err.value.returncode == 2
    assert "Unknown model 'mixtrall'. Did you mean:" in str(err.value) and "Mixtral-8x7B" in str(err.value)


def test_an_unknown_gpu_exits_2(catalog):
    with pytest.raises(CommandError) as err:
        run("--model", "mixtral-8x7b-instruct-v0-1", "--quant", "Q4_K_M", "--gpu", "RTX 40900")
    assert err.value.returncode == 2 and "Unknown GPU 'RTX 40900'" in str(err.value)


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["--params-b", "7", "--bits-per-weight", "4", "--gpu", "RTX 4090"],
            "Give --model, or a custom model with --layers, --kv-heads, --head-dim.",
        ),
        (
            ["--model", "mixtral-8x7b-instruct-v0-1", "--gpu", "RTX 4090"],
            "Give --quant NAME and/or --bits-per-weight X.",
        ),
        (
            ["--model", "mixtral-8x7b-instruct-v0-1", "--quant", "Q4_K_M"],
            "Give --gpu NAME, or custom hardware with --bandwidth-gb-s and --memory-gb.",
        ),
        (
            ["--model", "mixtral-8x7b-instruct-v0-1", "--quant", "Q4_K_M", "--gpu", "RTX 4090", "--context", "40000"],
            "--context 40000 is longer than Mixtral-8x7B-Instruct-v0.1's 32768-token context.",
        ),
        (
            [
                "--model",
                "mixtral-8x7b-instruct-v0-1",
                "--quant",
                "Q4_K_M",
                "--gpu",
                "RTX 4090",
                "--offload-ram-gb",
                "8",
            ],
            "--offload-ram-gb and --ram-bandwidth-gb-s go together.",
        ),
        (
            [
                "--params-b",
                "7",
                "--active-params-b",
                "8",
                "--layers",
                "32",
                "--kv-heads",
                "8",
                "--head-dim",
                "128",
                "--bits-per-weight",
                "4",
                "--gpu",
                "RTX 4090",
            ],
            "--active-params-b cannot exceed --params-b.",
        ),
    ],
)
def test_it_keeps_its_messages_and_exit_code(catalog, args, message):
    with pytest.raises(CommandError) as err:
        run(*args)
    assert err.value.returncode == 2
    assert str(err.value) == message
