"""The JSON API: catalog reads, estimate parity with the CLI, recommend, jobs with rights, rates and errors."""

from __future__ import annotations

import io
import json
import uuid
from unittest import mock

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.test import Client

from core.models import ApiToken
from inference.models import BenchmarkJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def catalog(curated_catalog):
    """The shared module catalog (tests/conftest.py)."""


MIXTRAL = "mixtral-8x7b-instruct-v0-1"


@pytest.fixture(autouse=True)
def steady_clock(monkeypatch):
    """Holds the rate limiter's clock at the start of a window of its own, so a test never straddles a window
    boundary nor meets counts left in Redis by an earlier run."""
    import core.ratelimit

    start = (uuid.uuid4().int % 10**9) * 3600 + 1
    monkeypatch.setattr(core.ratelimit, "_now", lambda: start)


@pytest.fixture
def operator(catalog) -> User:
    user = User.objects.create_user(f"op-{uuid.uuid4().hex[:8]}", password="x")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    return user


def bearer(user: User) -> dict[str, str]:
    _, raw = ApiToken.objects.issue(user, "test")
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}


@pytest.fixture(autouse=True)
def no_broker(db):
    # Jobs are sent on commit; these tests check rows and rights, not the Celery round trip.
    # Start from no jobs: rows another module committed (the fuzz run) would blur the counts (rolled back after).
    BenchmarkJob.objects.all().delete()
    with mock.patch("celery.current_app.send_task") as sent:
        yield sent


def test_the_gpu_list_filters_and_pages(client, catalog):
    r = client.get("/api/v1/gpus", {"vendor": "nvidia", "min_memory_gb": 24, "limit": 5})
    assert r.status_code == 200
    body = r.json()
    assert body["count"] > 5 and len(body["items"]) == 5
    assert all(g["vendor"] == "nvidia" and g["memory_gb"] >= 24 for g in body["items"])
    page2 = client.get("/api/v1/gpus", {"vendor": "nvidia", "min_memory_gb": 24, "limit": 5, "offset": 5}).json()
    assert {g["slug"] for g in page2["items"]}.isdisjoint({g["slug"] for g in body["items"]})


def test_it_filters_gpus_by_price_and_bandwidth(client, catalog):
    items = client.get("/api/v1/gpus", {"max_price_usd": 2000, "min_bandwidth_gb_s": 900, "limit": 200}).json()["items"]
    assert items
    for g in items:
        price = g["street_price_usd"] if g["street_price_usd"] is not None else g["launch_price_usd"]
        assert price <= 2000 and g["memory_bandwidth_gb_s"] >= 900


def test_a_gpu_by_slug_or_alias_and_404_with_close_matches(client, catalog):
    r = client.get("/api/v1/gpus/RTX 4090")
    assert r.status_code == 200 and r.json()["memory_gb"] == 24
    r = client.get("/api/v1/gpus/RTX 409")
    assert r.status_code == 404
    assert r.json()["suggestions"], r.json()


def test_a_model_with_its_vram_table(client, catalog):
    r = client.get(f"/api/v1/models/{MIXTRAL}", {"context": 32768})
    assert r.status_code == 200
    body = r.json()
    table = {row["quant"]: row for row in body["vram_table"]}
    # The reference page's rows: Q4_K_M 26.8 GB and FP16 93.9 GB (params x bpw / 8 + 0.5 GB).
    assert table["Q4_K_M"]["vram_gb"] == pytest.approx(26.8, abs=0.05)
    assert table["F16"]["vram_gb"] == pytest.approx(93.9, abs=0.05)
    # Mixtral fp16 KV cache: 128 KiB per token, 4 GiB at 32K.
    assert table["Q4_K_M"]["kv_cache_gb"] == pytest.approx(4 * 2**30 / 1e9, rel=0.01)
    assert client.get("/api/v1/models/mixtrall").status_code == 404


def test_the_estimate_matches_the_cli_json(client, catalog):
    args = {"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "context": 8192, "gpus": 2}
    r = client.get("/api/v1/estimate", args)
    assert r.status_code == 200, r.content
    out = io.StringIO()
    call_command(
        "estimate",
        "--model",
        MIXTRAL,
        "--quant",
        "Q4_K_M",
        "--gpu",
        "RTX 4090",
        "--context",
        "8192",
        "--gpus",
        "2",
        "--json",
        stdout=out,
    )
    assert r.json() == json.loads(out.getvalue())
    body = r.json()
    assert body["prefill_tok_s_low"] < body["prefill_tok_s"] < body["prefill_tok_s_high"]
    assert body["ttft_s_low"] < body["ttft_s"] < body["ttft_s_high"]


def test_a_bare_ollama_name_says_how_it_was_read(client, catalog):
    args = {"model": "mixtral", "quant": "Q4_K_M", "gpu": "RTX 4090", "gpus": 2}
    body = client.get("/api/v1/estimate", args).json()
    assert body["model"] == "Mixtral-8x7B-Instruct-v0.1"
    assert (
        body["notes"][0].startswith("'mixtral' read as Ollama's mixtral:latest") and "Mixtral-8x22B" in body["notes"][0]
    )
    out = io.StringIO()
    call_command("estimate", "--model", "mixtral", "--quant", "Q4_K_M", "--gpu", "RTX 4090", "--gpus", "2", stdout=out)
    assert "read as Ollama's mixtral:latest" in out.getvalue()
    # The model's own name reads as itself: no such note.
    named = client.get("/api/v1/estimate", {**args, "model": "mixtral:8x7b"}).json()
    assert not any("read as Ollama" in n for n in named["notes"])


def test_the_estimate_takes_a_custom_model_and_hardware(client, catalog):
    args = {
        "params_b": 7,
        "layers": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "bits_per_weight": 4.5,
        "memory_gb": 16,
        "bandwidth_gb_s": 500,
    }
    body = client.get("/api/v1/estimate", args).json()
    assert body["model"] == "custom model" and body["gpu"] == "custom hardware" and body["fits"] is True


@pytest.mark.parametrize(
    "args, field",
    [
        ({"params_b": 7, "memory_gb": 16, "bandwidth_gb_s": 500, "bits_per_weight": 4}, "__all__"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "context": 0}, "context"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "context": 10**9}, "context"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "context": 40000}, "__all__"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "offload_ram_gb": 10}, "__all__"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "memory_gb": -1, "bandwidth_gb_s": 100}, "memory_gb"),
        ({"model": MIXTRAL, "quant": "Q4_K_M", "gpu": "RTX 4090", "backend": "nope"}, "backend"),
    ],
)
def test_it_answers_400_with_field_messages(client, catalog, args, field):
    r = client.get("/api/v1/estimate", args)
    assert r.status_code == 400, r.content
    assert field in r.json()["errors"], r.json()


def test_it_answers_422_for_a_value_of_the_wrong_type(client, catalog):
    r = client.get("/api/v1/estimate", {"model": MIXTRAL, "context": "lots"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == "context"


def test_unknown_names_are_404_with_close_matches(client, catalog):
    r = client.get("/api/v1/estimate", {"model": "mixtral-8x7", "quant": "Q4_K_M", "gpu": "RTX 4090"})
    assert r.status_code == 404
    assert any("Mixtral" in s for s in r.json()["suggestions"])


def test_recommend_ranks_fitting_gpus_within_budget(client, catalog):
    r = client.get("/api/v1/recommend", {"model": MIXTRAL, "quant": "Q4_K_M", "budget_usd": 5000, "limit": 10})
    assert r.status_code == 200, r.content
    items = r.json()["items"]
    assert items
    assert all(i["fits"] and i["price_usd"] <= 5000 and i["quant"] == "Q4_K_M" for i in items)
    speeds = [i["decode_tok_s"] for i in items]
    assert speeds == sorted(speeds, reverse=True)


def test_recommend_builds_are_cheapest_first(client, catalog):
    r = client.get(
        "/api/v1/recommend", {"model": MIXTRAL, "quant": "F16", "mode": "builds", "max_gpus": 4, "limit": 10}
    )
    items = r.json()["items"]
    assert items and all(i["fits"] for i in items)
    assert any(i["count"] > 1 for i in items)
    prices = [i["total_price_usd"] for i in items if i["total_price_usd"] is not None]
    assert prices == sorted(prices)


def test_recommend_is_rate_limited(client, catalog, settings):
    settings.GPUFIT_RATE_RECOMMEND = "3/60"
    ip = f"10.9.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    codes = [
        client.get("/api/v1/recommend", {"model": MIXTRAL, "limit": 1}, REMOTE_ADDR=ip).status_code for _ in range(5)
    ]
    assert codes == [200, 200, 200, 429, 429]
    r = client.get("/api/v1/recommend", {"model": MIXTRAL}, REMOTE_ADDR=ip)
    assert int(r["Retry-After"]) >= 1


def test_triggering_a_job_needs_authentication(client, catalog):
    r = client.post("/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json")
    assert r.status_code == 401
    assert not BenchmarkJob.objects.exists()


def test_triggering_a_job_needs_the_operator_permission(client, catalog):
    user = User.objects.create_user("visitor", password="x")
    r = client.post("/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", **bearer(user))
    assert r.status_code == 403


def test_an_operator_triggers_a_job_with_a_token(client, operator, no_broker, django_capture_on_commit_callbacks):
    payload = {"preset": "tiny", "precision": "fp32", "layers": 2, "batch": 2, "prompt_tokens": 16, "new_tokens": 8}
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/v1/benchmarks", payload, content_type="application/json", **bearer(operator))
    assert r.status_code == 201, r.content
    job = BenchmarkJob.objects.get(pk=r.json()["id"])
    assert (job.status, job.requested_by, job.layers, job.queue) == ("queued", operator, 2, "gpu.any")
    assert no_broker.call_args.kwargs["args"] == [job.pk]


def test_a_job_may_ask_for_a_compiled_decode_step(client, operator, no_broker, django_capture_on_commit_callbacks):
    payload = {"preset": "tiny", "precision": "int8", "layers": 2, "compile_decode": True}
    with django_capture_on_commit_callbacks(execute=True):
        r = client.post("/api/v1/benchmarks", payload, content_type="application/json", **bearer(operator))
    assert r.status_code == 201, r.content
    assert r.json()["compile_decode"] is True
    assert BenchmarkJob.objects.get(pk=r.json()["id"]).compile_decode
    r = client.post(
        "/api/v1/benchmarks",
        {**payload, "compile_decode": "maybe"},
        content_type="application/json",
        **bearer(operator),
    )
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][-1] == "compile_decode"


@pytest.mark.parametrize(
    "change, field",
    [
        ({"precision": "fp64"}, "precision"),
        ({"batch": 65}, "batch"),
        ({"prompt_tokens": 32769}, "prompt_tokens"),
        ({"new_tokens": 0}, "new_tokens"),
        ({"layers": 33}, "layers"),
    ],
)
def test_job_fields_are_validated(client, operator, change, field):
    r = client.post(
        "/api/v1/benchmarks", {"precision": "fp32", **change}, content_type="application/json", **bearer(operator)
    )
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"][-1] == field
    assert not BenchmarkJob.objects.exists()


def test_more_layers_than_the_preset_has_is_a_400(client, operator):
    payload = {"preset": "tiny", "precision": "fp32", "layers": 3}
    r = client.post("/api/v1/benchmarks", payload, content_type="application/json", **bearer(operator))
    assert r.status_code == 400 and "layers" in r.json()["errors"]


def test_an_unknown_target_host_is_a_400(client, operator):
    payload = {"precision": "bf16", "target_host": "nowhere", "target_device": "cuda:0"}
    r = client.post("/api/v1/benchmarks", payload, content_type="application/json", **bearer(operator))
    assert r.status_code == 400 and "target_host" in r.json()["errors"]


def test_job_triggers_are_rate_limited_per_user(client, operator, settings):
    settings.GPUFIT_RATE_JOBS = "2/60"
    headers = bearer(operator)
    codes = [
        client.post("/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", **headers).status_code
        for _ in range(4)
    ]
    assert codes == [201, 201, 429, 429]
    assert BenchmarkJob.objects.count() == 2


def test_session_writes_need_a_csrf_token(operator):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    r = browser.post("/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json")
    assert r.status_code == 403
    browser.get("/admin/login/")  # sets the csrftoken cookie
    token = browser.cookies["csrftoken"].value
    r = browser.post(
        "/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", HTTP_X_CSRFTOKEN=token
    )
    assert r.status_code == 201, r.content


def test_only_the_requester_or_staff_may_see_the_private_part_or_cancel_a_job(client, operator, catalog):
    other = User.objects.create_user("other-op", password="x")
    other.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    job_id = client.post(
        "/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", **bearer(operator)
    ).json()["id"]
    # The job itself is public (docs/security.md); who asked and the worker's message are not.
    seen = client.get(f"/api/v1/benchmarks/jobs/{job_id}", **bearer(other)).json()
    assert seen["status"] == "queued" and seen["requested_by"] is None and seen["message"] is None
    with mock.patch("gpufit.celery.app.control.revoke"):
        assert client.post(f"/api/v1/benchmarks/jobs/{job_id}/cancel", **bearer(other)).status_code == 403
        assert BenchmarkJob.objects.get(pk=job_id).status == "queued"
        r = client.post(f"/api/v1/benchmarks/jobs/{job_id}/cancel", **bearer(operator))
    assert r.status_code == 200 and r.json() == {"id": job_id, "cancelled": True, "status": "cancelled"}
    assert client.get(f"/api/v1/benchmarks/jobs/{job_id}", **bearer(operator)).json()["status"] == "cancelled"


def test_a_revoked_token_is_refused(client, operator):
    token, raw = ApiToken.objects.issue(operator)
    token.revoked = True
    token.save()
    r = client.post(
        "/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {raw}"
    )
    assert r.status_code == 401


def test_tokens_are_stored_hashed(operator):
    token, raw = ApiToken.objects.issue(operator)
    assert raw not in token.key_hash and len(token.key_hash) == 64
    assert ApiToken.objects.authenticate(raw).last_used_at is not None


def test_results_are_listed(client, catalog):
    r = client.get("/api/v1/benchmarks/results", {"status": "ok"})
    assert r.status_code == 200 and r.json()["count"] == len(r.json()["items"])


def test_the_schema_and_the_docs_page_use_our_static_files(client, catalog):
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/estimate" in schema["paths"] and "/api/v1/benchmarks" in schema["paths"]
    page = client.get("/api/v1/docs").content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower() and "https://" not in page


def test_each_price_comes_with_its_own_source_and_date(client, catalog):
    g = client.get("/api/v1/gpus/RTX 4090").json()
    assert g["launch_price_usd"] == 1599 and g["launch_price_source_url"].startswith("https://")
    assert g["street_price_usd"] is not None and g["street_price_date"]
    assert g["street_price_source_url"].startswith("https://")
    assert g["street_price_source_url"] != g["launch_price_source_url"]
    h100 = client.get("/api/v1/gpus/NVIDIA H100 80GB HBM3").json()
    assert h100["cloud_price_usd_hr"] > 0 and h100["cloud_price_source_url"].startswith("https://")
