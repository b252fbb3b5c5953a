"""Hostile query strings against every HTML page people open: never a 5xx, markup echoed only escaped, and no
catalog or job row created, changed away or removed by a GET.

Bounded for one process on SQLite: a fixed sweep (every hostile value in every parameter of a page at once)
plus a few derandomized hypothesis examples per page that mix hostile values into otherwise valid queries.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardware.models import GPU
from inference.models import BenchmarkJob
from models.models import LanguageModel

pytestmark = pytest.mark.django_db

MARKUP = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "</textarea><svg onload=alert(1)>"]
HOSTILE = [
    "1e308",
    "-1e308",
    "-1",
    "0",
    "NaN",
    "inf",
    "-Infinity",
    "9" * 400,  # an integer no column holds
    "0x1F",
    "１２３",  # full-width digits, which Python's int() accepts
    "Ω≈ç√∫ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 😀",
    *MARKUP,
    "x" * 5000,
    "' OR 1=1 --",
    "../../../etc/passwd",
    "a\x00b",  # NUL: refused by middleware before any view
    " ",
    "",
    "[]",
]
# Every parameter some page reads, the pages' old names included, and one no page knows.
KEYS = [
    "model",
    "quant",
    "context",
    "users",
    "kv_cache",
    "budget_usd",
    "budget",
    "vendor",
    "segment",
    "price_basis",
    "sort",
    "order",
    "max_gpus",
    "split",
    "offload",
    "ram_gb",
    "ram_bandwidth_gb_s",
    "gpus",
    "gpu",
    "count",
    "split_one",
    "q",
    "min_memory_gb",
    "curated",
    "page",
    "fits_only",
    "measured_only",
    "format",
    "not-a-parameter",
]
MIXTRAL = "mixtral-8x7b-instruct-v0-1"
RTX_4090 = "nvidia-geforce-rtx-4090"
# Each page with a valid query to start from, so that hostile values also reach the code behind the form.
PAGES = {
    "/": {},
    "/models/": {"q": "mix"},
    f"/models/{MIXTRAL}/": {"quant": "Q4_K_M", "context": "4096"},
    "/gpus/": {"vendor": "nvidia"},
    f"/gpus/{RTX_4090}/": {"context": "4096", "users": "1"},
    "/recommend/": {"model": MIXTRAL, "quant": "Q4_K_M"},
    "/plan/": {"model": MIXTRAL, "quant": "Q4_K_M", "max_gpus": "2"},
    "/plan/basis/": {"model": MIXTRAL, "quant": "Q4_K_M", "gpu": RTX_4090, "count": "2", "split_one": "layer"},
    "/compare/": {"model": MIXTRAL, "gpus": f"{RTX_4090},nvidia-geforce-rtx-3090"},
    "/benchmarks/": {},
    "/benchmarks/validation/": {},
    "JOB": {},  # the job page, whose URL is known once the job exists
}


@pytest.fixture
def catalog(curated_catalog):
    """The shared module catalog (tests/conftest.py): Mixtral, the curated GPUs and the shipped runs."""


@pytest.fixture
def job_url(catalog) -> str:
    owner = User.objects.create_user("fuzz-page-owner")
    job = BenchmarkJob.objects.create(
        preset="tiny", layers=2, precision="fp32", batch=1, prompt_tokens=8, new_tokens=4, requested_by=owner
    )
    return job.get_absolute_url()


def _counts() -> tuple[int, int, int]:
    return GPU.objects.count(), LanguageModel.objects.count(), BenchmarkJob.objects.count()


def _check(client, url: str, query: dict) -> None:
    """Sends one GET and checks the answer: no 5xx, and any markup from the query shown only escaped."""
    response = client.get(url, query)
    assert response.status_code < 500, (url, query, response.status_code)
    if response.get("Content-Type", "").startswith("text/html"):
        body = response.content.decode()
        for markup in MARKUP:
            assert markup not in body, (url, query, markup)


def _url(page: str, job_url: str) -> str:
    return job_url if page == "JOB" else page


@pytest.mark.parametrize("page", list(PAGES))
def test_no_page_fails_on_any_hostile_value_in_every_parameter(client, job_url, page):
    before = _counts()
    url = _url(page, job_url)
    for value in HOSTILE:
        _check(client, url, dict.fromkeys(KEYS, value))
        # The same value in one parameter at a time would be many requests; the page's own keys get it instead.
        for key in PAGES[page]:
            _check(client, url, {**PAGES[page], key: value})
    assert _counts() == before


values = st.one_of(st.sampled_from(HOSTILE), st.lists(st.sampled_from(HOSTILE), min_size=2, max_size=3))


@pytest.mark.parametrize("page", list(PAGES))
@settings(
    max_examples=6,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(changes=st.dictionaries(st.sampled_from(KEYS), values, min_size=1, max_size=3))
def test_no_page_fails_on_hostile_values_mixed_into_a_valid_query(client, job_url, page, changes):
    before = _counts()
    _check(client, _url(page, job_url), {**PAGES[page], **changes})
    assert _counts() == before
