"""Property-based fuzzing of /api/v1/ from its own OpenAPI schema: never a 5xx, and every answer fits the schema.

Bounded for CI on two cores: max_examples per operation, no shrinking deadline, in-process WSGI calls.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.contrib.auth.models import Permission, User
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from core.models import ApiToken
from gpufit.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@pytest.fixture
def catalog(curated_catalog):
    """The shared module catalog (tests/conftest.py)."""


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def operator_token(catalog, db) -> str:
    user, _ = User.objects.get_or_create(username="fuzz-operator")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    return ApiToken.objects.issue(user, "fuzz")[1]


@pytest.fixture(autouse=True)
def keep_the_test_connection():
    # The WSGI handler closes connections after each request; inside the test's transaction that would
    # close it under the test. Django's own test client disconnects the same handlers.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def fuzz_rates(settings):
    # High enough that most generated cases reach the handlers; 429 stays a documented answer either way.
    settings.GPUFIT_RATE_RECOMMEND = "100000/60"
    settings.GPUFIT_RATE_JOBS = "100000/60"


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@pytest.mark.django_db
def test_api_never_fails_and_matches_its_schema(case, operator_token):
    case.call_and_validate(headers={"Authorization": f"Bearer {operator_token}"}, checks=CHECKS)
