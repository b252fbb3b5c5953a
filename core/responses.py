"""Answers built below the views: the 503 for a database or cache that stopped answering, shared by middleware and API."""

from __future__ import annotations

import logging

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# What the cache client raises when Redis is down or restarting (BusyLoadingError is a ConnectionError).
CACHE_DOWN = (RedisConnectionError, RedisTimeoutError)

DATABASE_DOWN_MESSAGE = "The database is not answering right now. Please try again in a minute."
CACHE_DOWN_MESSAGE = "The site's cache is not answering right now. Please try again in a few seconds."


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
    return unavailable_response(request, DATABASE_DOWN_MESSAGE, retry_after_s=30)


def cache_unavailable_response(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Returns the 503 answer for a request that found the cache (Redis: pages, rate limits) down.

    redis-py reconnects by itself on the next command, so there is nothing to drop here.
    """
    log.error("cache unavailable while serving %s: %s", request.path, exception)
    return unavailable_response(request, CACHE_DOWN_MESSAGE, retry_after_s=10)


def unavailable_response(request: HttpRequest, message: str, retry_after_s: int) -> HttpResponse:
    """Returns a 503 with ``message``: JSON for the API and JSON clients, a small page for browsers."""
    if wants_json(request):
        response: HttpResponse = JsonResponse({"detail": message}, status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>gpufit is unavailable</title><h1>Temporarily unavailable</h1><p>{message}</p>",
            status=503,
            content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(retry_after_s)
    return response
