"""Test configuration shared by the whole suite (make test sets DATABASE_URL and REDIS_URL when they answer)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("DEBUG", "1")

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_report_header(config):
    from django.conf import settings

    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return [f"gpufit: database={engine}, redis={os.environ.get('REDIS_URL') or 'none'}, CI={IN_CI}"]


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
