"""Whole-page caching for the catalog pages: a page is a pure function of its URL and the catalog.

Anonymous GET requests are served from the cache while the catalog fingerprint (planner.lookup) is
unchanged; any edit, import, calibration fit or new benchmark result changes the fingerprint and so the
key. Logged-in visitors (their pages show the admin link and messages) always get a fresh render.
"""

from __future__ import annotations

import hashlib
import logging
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.http import HttpResponse

from core.responses import CACHE_DOWN
from planner.lookup import catalog_fingerprint

log = logging.getLogger(__name__)


def _key(request) -> str:
    raw = "|".join(
        [
            repr(catalog_fingerprint()),
            request.get_full_path(),
            request.headers.get("HX-Request", ""),
            request.headers.get("HX-Target", ""),
        ]
    )
    return "page:" + hashlib.sha1(raw.encode()).hexdigest()


def catalog_page(view):
    """Returns the view wrapped so that anonymous GETs of an unchanged catalog come from the cache."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        ttl = settings.GPUFIT_PAGE_CACHE_S
        if not ttl or request.method != "GET" or request.user.is_authenticated or "messages" in request.COOKIES:
            return view(request, *args, **kwargs)
        key = _key(request)
        try:
            hit = cache.get(key)
        except CACHE_DOWN as exc:
            # Redis down or restarting: the page is rendered as if it were not cached, never refused.
            log.warning("page cache unavailable, rendering %s uncached: %s", request.path, exc)
            return view(request, *args, **kwargs)
        if hit is not None:
            response = HttpResponse(hit[0], content_type=hit[1])
            response["X-Page-Cache"] = "hit"
            return response
        response = view(request, *args, **kwargs)
        if response.status_code == 200 and not response.streaming and not response.has_header("Content-Disposition"):
            try:
                cache.set(key, (response.content, response["Content-Type"]), ttl)
            except CACHE_DOWN as exc:
                log.warning("page cache unavailable, %s not stored: %s", request.path, exc)
        return response

    return wrapper
