"""Model pages: the reference figures, the GPU list, htmx partials, bad inputs and a bounded query count."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from models.models import LanguageModel


@pytest.fixture
def catalog(full_catalog):
    """The shared module catalog (tests/conftest.py)."""


MIXTRAL = "/models/mixtral-8x7b-instruct-v0-1/"


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("catalog")]


def test_mixtral_page_shows_the_reference_quant_table(client):
    html = client.get(MIXTRAL).content.decode()
    for figure in ("26.8 GB", "38.4 GB", "93.9 GB"):
        assert figure in html
    # Q8_0 is 8.5 bpw, not the reference's 8: the stored note says so and the row shows the corrected size.
    assert "Q8_0 stores 34 bytes per 32 weights" in html or "34 bytes per 32 weights" in html
    q8 = html.split('data-format="Q8_0"')[1].split("</tr>")[0]
    assert "50.1 GB" in q8 and "47.2" not in q8
    # The four reference rows come first.
    rows = [line for line in html.splitlines() if 'data-format="' in line]
    assert [r.split('data-format="')[1].split('"')[0] for r in rows[:4]] == ["Q4_K_M", "Q6_K", "Q8_0", "fp16"]


def test_mixtral_page_shows_stat_cards_benchmarks_and_commands(client):
    html = client.get(MIXTRAL).content.decode()
    for text in (
        "MT-Bench",
        "8.3 / 10",
        'href="https://build.nvidia.com/mistralai/mixtral-8x7b-instruct/modelcard"',
        "ollama run mixtral:8x7b",
        "[INST] Instruction [/INST]",
        "vllm serve",
        "MistralTokenizer.v1()",
        "Find the best GPU for",
        "Build hardware for",
        "780,000",
    ):
        assert text in html, text
    assert "reference/mixtral-8x7b-page.txt" not in html and "IFEval" not in html
    # The tokenization example shows the real ids mistral-common gives (BOS, then "[INST]").
    assert "[1, 733, 16289, 28793" in html


def test_mixtral_gpu_list_is_sorted_by_memory_and_first_card_holds_the_model(client):
    response = client.get(MIXTRAL)
    fits = response.context["ranking"].fits
    assert fits, "some GPU must hold Mixtral at Q4_K_M"
    memories = [row["memory_gb"] for row in fits]
    assert memories == sorted(memories)
    assert memories[0] >= 28  # 26.8 GB of weights + KV cache + overhead does not fit a 24 GB card
    assert all(row["fits"] for row in fits)
    # Pairs and offload builds are cards that cannot hold it alone: two 16 GB cards can, and a 24 GB
    # RTX 3090 can with ~4 GB of weights left in system RAM.
    ranking = response.context["ranking"]
    assert ranking.two_cards and all(r["count"] == 2 and r["memory_gb"] < 28 for r in ranking.two_cards)
    offload = {r["name"]: r for r in ranking.offload}
    assert 0 < offload["NVIDIA GeForce RTX 3090"]["offloaded_gb"] < 6
    assert offload["NVIDIA GeForce RTX 3090"]["decode_bound"] == "offload"


def test_changing_the_format_over_htmx_returns_the_partial(client):
    full = client.get(MIXTRAL + "?quant=Q8_0")
    partial = client.get(MIXTRAL + "?quant=Q8_0", headers={"HX-Request": "true"})
    assert partial.status_code == 200
    assert b"<html" not in partial.content and b"<html" in full.content
    first_q8 = partial.context["ranking"].fits[0]["memory_gb"]
    first_q4 = client.get(MIXTRAL, headers={"HX-Request": "true"}).context["ranking"].fits[0]["memory_gb"]
    assert first_q8 > first_q4  # Q8_0 needs ~50 GB, so the smallest card that holds it is bigger


def test_the_context_control_adds_the_kv_cache(client):
    short = client.get(MIXTRAL + "?context=2048").context["memory"][0]
    full = client.get(MIXTRAL + "?context=32768").context["memory"][0]
    # Mixtral's fp16 KV cache is 128 KiB per token: 32,768 tokens = 4 GiB.
    assert full.kv_cache_gb == pytest.approx(32768 * 131072 / 1e9)
    assert full.total_gb - short.total_gb == pytest.approx((32768 - 2048) * 131072 / 1e9)
    assert full.vram_gb == short.vram_gb == 26.8


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("context=65536", "context", "reads at most 32,768 tokens"),
        ("budget_usd=-100", "budget_usd", "cannot be negative"),
        ("quant=Q9_Z", "quant", "has no Q9_Z row"),
        ("users=0", "users", "greater than or equal to 1"),
    ],
)
def test_bad_inputs_give_a_field_message_not_a_500(client, query, field, message):
    page = client.get(f"{MIXTRAL}?{query}")
    assert page.status_code == 200
    assert message in page.content.decode()
    partial = client.get(f"{MIXTRAL}?{query}", headers={"HX-Request": "true"})
    assert partial.status_code == 400
    assert f'data-field="{field}"' in partial.content.decode()


def test_filters_narrow_the_list(client):
    nvidia = client.get(MIXTRAL + "?vendor=nvidia").context["ranking"].fits
    assert nvidia and {row["vendor"] for row in nvidia} == {"nvidia"}
    cheap = client.get(MIXTRAL + "?budget_usd=3000").context["ranking"]
    assert cheap.fits and all(row["price_usd"] is not None and row["price_usd"] <= 3000 for row in cheap.fits)
    measured = client.get(MIXTRAL + "?measured_only=on").context["ranking"]
    measured_ids = {r.gpu_id for r in measured.measured}
    assert {row["id"] for row in measured.fits} <= measured_ids
    assert all(row["measured"] for row in measured.fits)


def test_best_format_picks_the_highest_precision_that_fits(client):
    frame = client.get(MIXTRAL + "?quant=best").context["ranking"].frame
    assert frame["id"].is_unique  # one row per GPU
    big = frame[frame["memory_gb"] >= 140]  # H200 and up hold fp16 (93.9 GB) with room to spare
    small = frame[frame["memory_gb"] <= 32]  # 32 GB cards hold only a 4-bit format
    assert len(big) and (big["bits_per_weight"] == 16).all()
    assert len(small) and (small["bits_per_weight"] < 5).all()


@pytest.mark.parametrize("slug", ["llama-3-1-8b-instruct", "deepseek-v3"])
def test_dense_and_mla_model_pages_render(client, slug):
    page = client.get(f"/models/{slug}/")
    assert page.status_code == 200
    assert "GPUs that can run this model" in page.content.decode()


def test_every_model_page_renders(client):
    slugs = list(LanguageModel.objects.values_list("slug", flat=True))
    assert len(slugs) == len(json.loads((settings.BASE_DIR / "models" / "data" / "models.json").read_text()))
    for slug in slugs:
        response = client.get(f"/models/{slug}/", headers={"HX-Request": "true"})
        assert response.status_code == 200, slug


def test_model_page_query_count_is_bounded(client, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        assert client.get(MIXTRAL).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get("/models/").status_code == 200
