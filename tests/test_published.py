"""Published measurements beside the estimates: the public set's rows for a model and for a GPU."""

from __future__ import annotations

import pytest

from planner import published
from planner.lookup import find_gpu, find_model

pytestmark = pytest.mark.django_db

MIXTRAL = "mixtral-8x7b-instruct-v0-1"


def test_a_model_shows_the_published_figures_of_its_shapes_with_sources_and_our_estimate(curated_catalog):
    rows = published.for_model(find_model(MIXTRAL))
    assert rows, "the set holds Mixtral-8x7B runs"
    # The base model's runs stand in for the chat tune (same shapes), and say which model ran.
    assert any(p.measured_model != p.model_name for p in rows)
    assert all(p.source_url.startswith("https://") for p in rows)
    estimated = [p for p in rows if p.estimate is not None]
    assert estimated
    # Ours against theirs for the same engine, format and build: most within a factor of two either way.
    close = [p for p in estimated if 0.5 <= p.ratio <= 2.0]
    assert len(close) >= 0.8 * len(estimated)


def test_a_gpu_shows_every_model_measured_on_it(curated_catalog):
    rows = published.for_gpu(find_gpu("RTX 4090"))
    assert len({p.model_name for p in rows}) >= 3
    assert {p.gpu_slug for p in rows} == {find_gpu("RTX 4090").slug}
    assert {"decode_tok_s", "prefill_tok_s"} <= {p.metric for p in rows}


def test_a_batched_row_is_compared_with_the_batch_aggregate():
    row = published.Published(
        "H100",
        "h100",
        "m",
        "m",
        "m",
        1,
        "none",
        "vllm",
        "",
        "fp16",
        128,
        128,
        16,
        "decode_tok_s",
        1800.0,
        "https://x",
        "",
        1700.0,
    )
    assert row.ratio == pytest.approx(1700 / 1800)
    ttft = published.Published(
        "H100", "h100", "m", "m", "m", 1, "none", "vllm", "", "fp16", 0, 128, 1, "ttft_s", 0.2, "https://x", "", 0.1
    )
    # A time: the estimate of 0.1 s is twice as fast as the measured 0.2 s.
    assert ttft.ratio == pytest.approx(2.0)


def test_the_model_gpu_and_machine_pages_show_them_with_links(client, curated_catalog):
    model_page = client.get(f"/models/{MIXTRAL}/").content.decode()
    assert 'id="published"' in model_page and "Published measurements" in model_page
    assert 'href="https://github.com/' in model_page
    gpu_page = client.get("/gpus/nvidia-geforce-rtx-4090/").content.decode()
    assert 'id="published"' in gpu_page and "llama.cpp" in gpu_page
    machine = client.get("/machine/", {"gpu": "RTX 4090", "count": 1})
    assert machine.status_code == 200
    assert 'id="published"' in machine.content.decode()
