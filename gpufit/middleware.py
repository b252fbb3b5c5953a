"""Request hardening: security headers, body size, login throttling and a 503 when the database is down."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import resolve_url
from django.urls import reverse

from core.ratelimit import LOGIN_FAILURES, client_ip, login_failure_rate, peek
from core.responses import (
    CACHE_DOWN,
    DATABASE_DOWN_MESSAGE,
    cache_unavailable_response,
    database_unavailable_response,
    wants_json,
)

log = logging.getLogger(__name__)


class SecurityHeadersMiddleware:
    """Adds the Content-Security-Policy and Permissions-Policy headers to every response."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.csp = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        self.permissions = getattr(settings, "PERMISSIONS_POLICY", "")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if self.csp and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = self.csp
        if self.permissions and "Permissions-Policy" not in response:
            response["Permissions-Policy"] = self.permissions
        return response


class BodySizeMiddleware:
    """Answers 413 to a request whose declared body is larger than the site accepts, before reading it.

    Uploads (multipart) may be as large as the admin CSV import allows; every other body is small.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        multipart = request.META.get("CONTENT_TYPE", "").startswith("multipart/form-data")
        limit = settings.GPUFIT_MAX_UPLOAD_BYTES if multipart else settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length > limit:
            message = f"Request body of {length} bytes is larger than the {limit} bytes this site accepts."
            if wants_json(request):
                return JsonResponse({"detail": message}, status=413)
            return HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class NullCharacterMiddleware:
    """Answers 400 to a path or query string holding a NUL character.

    PostgreSQL text cannot hold NUL, so such a value would fail deep inside a query; Django's forms
    refuse it field by field, and this refuses it once for every view, the API included.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path or "%00" in query.lower() or "\x00" in query:
            message = "Request contains a NUL character."
            if wants_json(request):
                return JsonResponse({"detail": message}, status=400)
            return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)


class LoginRateLimitMiddleware:
    """Answers 429 to a login POST from an address with too many failed logins in the last period.

    Failures are counted where Django reports them, by ``core.signals`` on ``user_login_failed``; this only
    refuses the next attempt before the login view checks a password. It guards every login page: the admin's
    and the operators' (``LOGIN_URL``).
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path not in self._login_paths():
            return self.get_response(request)
        try:
            verdict = peek(LOGIN_FAILURES, client_ip(request), login_failure_rate())
        except CACHE_DOWN as exc:
            # The failure counts live in the cache: without them a login cannot be judged, so it waits.
            return cache_unavailable_response(request, exc)
        if not verdict.allowed:
            response = HttpResponse(
                f"Too many failed logins from your address. Try again in {verdict.retry_after_s} seconds.",
                status=429,
                content_type="text/plain; charset=utf-8",
            )
            response["Retry-After"] = str(verdict.retry_after_s)
            return response
        return self.get_response(request)

    @staticmethod
    def _login_paths() -> set[str]:
        """Returns the paths of the login pages (resolved per request: URLconfs load after middleware)."""
        return {reverse("admin:login"), resolve_url(settings.LOGIN_URL)}


class DatabaseUnavailableMiddleware:
    """Turns a lost database (or cache) connection into a 503 with a message instead of a 500.

    The broken database connection is closed so that the next request opens a fresh one, and redis-py
    reconnects on its next command: the site recovers by itself when the service is back.
    """

    MESSAGE = DATABASE_DOWN_MESSAGE

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, OperationalError | InterfaceError):
            return database_unavailable_response(request, exception)
        if isinstance(exception, CACHE_DOWN):
            return cache_unavailable_response(request, exception)
        return None
