"""Security: CSP header, escaped catalog text, staff-only admin, throttled logins, body caps, catalog history."""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import User

from core.models import CatalogChange
from hardware.models import GPU

pytestmark = pytest.mark.django_db

XSS = "<script>alert(1)</script>"


@pytest.fixture
def evil_gpu(curated_catalog, db) -> GPU:
    # A GPU whose name is markup: every page must show it as text (next to the real catalog's models).
    return GPU.objects.create(
        name=XSS, slug="xss-gpu", vendor="other", segment="consumer", memory_gb=8, memory_bandwidth_gb_s=100
    )


@pytest.fixture
def staff(db) -> User:
    return User.objects.create_superuser(f"editor-{uuid.uuid4().hex[:6]}", "e@example.com", "pw-for-tests-only")


def test_every_response_carries_the_csp(client):
    r = client.get("/api/v1/openapi.json")
    csp = r["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-eval'" not in csp and "frame-ancestors 'none'" in csp


@pytest.mark.parametrize("url", ["/gpus/?q=script", "/gpus/xss-gpu/"])
def test_catalog_text_is_escaped(client, evil_gpu, url):
    r = client.get(url)
    assert r.status_code == 200
    body = r.content.decode()
    assert XSS not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_the_admin_is_staff_only(client):
    User.objects.create_user("plain", password="pw-for-tests-only")
    client.login(username="plain", password="pw-for-tests-only")
    r = client.get("/admin/hardware/gpu/")
    assert r.status_code == 302 and "/admin/login/" in r["Location"]


def test_failed_logins_are_throttled_per_address(client, settings):
    settings.GPUFIT_RATE_LOGIN_FAILURES = "3/60"
    from gpufit.middleware import LoginRateLimitMiddleware  # the rate is read when the middleware starts

    ip = f"10.77.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    import core.ratelimit

    start = (uuid.uuid4().int % 10**9) * 3600 + 1  # a window of its own: no boundary, no counts from other runs
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(core.ratelimit, "_now", lambda: start)
        mp.setattr(LoginRateLimitMiddleware, "__init__", _init_with(settings.GPUFIT_RATE_LOGIN_FAILURES))
        codes = [
            client.post("/admin/login/", {"username": "x", "password": "wrong"}, REMOTE_ADDR=ip).status_code
            for _ in range(5)
        ]
    assert codes == [200, 200, 200, 429, 429]


def _init_with(rate: str):
    from core.ratelimit import Rate

    def init(self, get_response):
        self.get_response = get_response
        self.rate = Rate.parse(rate)

    return init


def test_a_ten_megabyte_body_is_refused_before_it_is_read(client):
    r = client.post("/api/v1/benchmarks", "x" * (10 * 1024 * 1024), content_type="application/json")
    assert r.status_code == 413 and "larger than" in r.json()["detail"]


def test_a_nul_character_is_a_400_not_a_500(client):
    assert client.get("/api/v1/gpus", {"q": "a\x00b"}).status_code == 400


def test_admin_edits_are_recorded_and_can_be_restored(client, staff, evil_gpu):
    client.force_login(staff)
    form = {
        "name": "Test GPU",
        "slug": "xss-gpu",
        "vendor": "other",
        "segment": "consumer",
        "memory_gb": "16",
        "memory_bandwidth_gb_s": "100",
        "listing": "ranked",  # the admin form shows the default selected
        "aliases-TOTAL_FORMS": "0",
        "aliases-INITIAL_FORMS": "0",
        "aliases-MIN_NUM_FORMS": "0",
        "aliases-MAX_NUM_FORMS": "1000",
    }
    r = client.post(f"/admin/hardware/gpu/{evil_gpu.pk}/change/", form)
    assert r.status_code == 302, r.content.decode()[:2000]
    change = CatalogChange.objects.get(model_label="hardware.GPU", object_id=str(evil_gpu.pk), action="update")
    assert change.user == staff
    assert change.before["memory_gb"] == 8 and change.after["memory_gb"] == 16
    assert {"memory_gb", "name"} <= set(change.changed_fields)
    # Restore the version before the edit: the creation is not recorded here, so restore from the change's before.
    first = CatalogChange.objects.create(
        action="update",
        model_label="hardware.GPU",
        object_id=str(evil_gpu.pk),
        object_repr="x",
        before=None,
        after=change.before,
    )
    r = client.post("/admin/gpufit/catalogchange/", {"action": "restore_version", "_selected_action": [first.pk]})
    assert r.status_code == 302
    evil_gpu.refresh_from_db()
    assert (evil_gpu.memory_gb, evil_gpu.name, evil_gpu.edited_by_editor) == (8, XSS, True)
    assert CatalogChange.objects.filter(action="restore", object_id=str(evil_gpu.pk)).exists()
