"""Faults: the database going away answers 503 with a message, and the site recovers when it is back."""

from __future__ import annotations

import pytest
from django.db import connection

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_lost_database_is_a_503_and_the_site_recovers(client, postgres):
    # SQLite's in-memory test database ignores close(), so it cannot be made to go away: the fixture requires
    # PostgreSQL (CI runs it; tests/conftest.py refuses to start CI on anything else).
    saved = dict(connection.settings_dict)
    connection.close()
    # A port nothing listens on: every new connection is refused.
    connection.settings_dict["HOST"], connection.settings_dict["PORT"] = "127.0.0.1", "1"
    try:
        api = client.get("/api/v1/gpus")
        page = client.get("/gpus/", HTTP_ACCEPT="text/html")
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    assert api.status_code == 503 and "database is not answering" in api.json()["detail"]
    assert api["Retry-After"] == "30"
    assert page.status_code == 503 and b"Temporarily unavailable" in page.content
    assert client.get("/api/v1/gpus").status_code == 200
