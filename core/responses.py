"""Answers built below the views: the 503 for a database that stopped answering, shared by middleware and API."""

from __future__ import annotations

import logging

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse

log = logging.getLogger(__name__)

DATABASE_DOWN_MESSAGE = "The database is not answering right now. Please try again in a minute."


def wants_json(request: HttpRequest) -> bool:
    return request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", "")


def database_unavailable_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Returns the 503 answer for a request that found the database down, after dropping broken connections."""
    log.error("database unavailable while serving %s: %s", request.path, exception)
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # a connection that cannot even close is gone already
            log.debug("closing a broken connection failed", exc_info=True)
    if wants_json(request):
        response: HttpResponse = JsonResponse({"detail": DATABASE_DOWN_MESSAGE}, status=503)
    else:
        response = HttpResponse(
            "<!doctype html><title>gpufit is unavailable</title><h1>Temporarily unavailable</h1>"
            f"<p>{DATABASE_DOWN_MESSAGE}</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = "30"
    return response
