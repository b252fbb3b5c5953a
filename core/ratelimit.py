"""A small fixed-window rate limiter on Django's cache (Redis in production, shared by every gunicorn worker)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured


def _now() -> float:
    """Returns the limiter's clock (a function of its own so tests can hold it still)."""
    return time.time()


@dataclass(frozen=True)
class Rate:
    """At most ``limit`` events per ``period_s`` seconds."""

    limit: int
    period_s: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """Returns the rate written as 'LIMIT/SECONDS', e.g. '30/60'."""
        try:
            limit, period = (int(part) for part in text.split("/"))
        except ValueError:
            raise ImproperlyConfigured(f"Rate {text!r} is not LIMIT/SECONDS, e.g. 30/60.") from None
        if limit < 1 or period < 1:
            raise ImproperlyConfigured(f"Rate {text!r} needs a limit and a period of at least 1.")
        return cls(limit, period)


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after_s: int


def _key(scope: str, ident: str, rate: Rate, now: float) -> tuple[str, int]:
    window = int(now // rate.period_s)
    retry = rate.period_s - int(now % rate.period_s)
    return f"rl:{scope}:{ident}:{window}", max(retry, 1)


def hit(scope: str, ident: str, rate: Rate) -> Verdict:
    """Returns whether one more event for ``ident`` fits ``rate``, counting it."""
    key, retry = _key(scope, ident, rate, _now())
    # add() is a no-op when the key exists; incr() is atomic on Redis and under locmem's lock.
    cache.add(key, 0, timeout=rate.period_s + 1)
    try:
        count = cache.incr(key)
    except ValueError:
        # The window expired between add() and incr(): start a new one.
        cache.add(key, 1, timeout=rate.period_s + 1)
        count = 1
    return Verdict(allowed=count <= rate.limit, count=count, retry_after_s=retry)


def peek(scope: str, ident: str, rate: Rate) -> Verdict:
    """Returns whether ``ident`` is still within ``rate``, without counting an event."""
    key, retry = _key(scope, ident, rate, _now())
    count = cache.get(key, 0)
    return Verdict(allowed=count < rate.limit, count=count, retry_after_s=retry)


def client_ip(request) -> str:
    """Returns the client's address: REMOTE_ADDR (set GPUFIT_TRUSTED_PROXY_HEADER when behind a proxy)."""

    header = getattr(settings, "GPUFIT_TRUSTED_PROXY_HEADER", "")
    if header:
        forwarded = request.META.get(header, "")
        if forwarded:
            # The proxy appends the address it saw last; earlier entries are the client's to forge.
            return forwarded.split(",")[-1].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64] or "unknown"
