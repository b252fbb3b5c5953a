"""A sliding-window rate limiter on Django's cache (Redis in production, shared by every gunicorn worker).

A fixed window ("5 per clock minute") lets twice the limit through around a window boundary: five events at
0:59 and five more at 1:01. Here the period is cut into short buckets, each an atomic cache counter, and an
event is judged by the sum of every bucket that overlaps the last ``period_s`` seconds. That sum holds every
event of the true window (and a few seconds older ones), so no placement of events across bucket edges gets
more than ``limit`` through in any span of ``period_s`` seconds; at worst a client waits one bucket longer.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

# Buckets per period: finer buckets cost one more cache key each to read, coarser ones make a client wait longer.
BUCKETS_PER_PERIOD = 10


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

    @property
    def bucket_s(self) -> float:
        """Returns the width of one counting bucket in seconds."""
        return self.period_s / BUCKETS_PER_PERIOD


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    count: int
    retry_after_s: int


def _bucket_keys(scope: str, ident: str, rate: Rate, now: float) -> list[tuple[str, int]]:
    """Returns (cache key, bucket index) for every bucket overlapping [now - period, now], oldest first."""
    newest = math.floor(now / rate.bucket_s)
    oldest = math.floor((now - rate.period_s) / rate.bucket_s)
    return [(f"rl:{scope}:{ident}:{rate.period_s}:{i}", i) for i in range(oldest, newest + 1)]


def _verdict(rate: Rate, buckets: list[tuple[int, int]], now: float, allowed: bool) -> Verdict:
    """Returns the verdict for the window's (bucket index, count) pairs, oldest first.

    Retry-After is the time until enough of the oldest events leave the window to make room for one more.
    """
    total = sum(count for _, count in buckets)
    retry = 1.0
    if total >= rate.limit:
        remaining = total
        for index, count in buckets:
            remaining -= count
            if remaining < rate.limit:
                # The bucket stops counting once its end is a whole period in the past.
                retry = (index + 1) * rate.bucket_s + rate.period_s - now
                break
    return Verdict(allowed=allowed, count=total, retry_after_s=max(math.ceil(retry), 1))


def hit(scope: str, ident: str, rate: Rate) -> Verdict:
    """Returns whether one more event for ``ident`` fits ``rate``; an event that fits is counted."""
    now = _now()
    keys = _bucket_keys(scope, ident, rate, now)
    newest_key = keys[-1][0]
    timeout = math.ceil(rate.period_s + 2 * rate.bucket_s) + 1
    # add() is a no-op when the key exists; incr() is atomic on Redis and under locmem's lock. Counting first and
    # judging the sum after means two concurrent events can both be refused, never both let through.
    cache.add(newest_key, 0, timeout=timeout)
    try:
        cache.incr(newest_key)
    except ValueError:
        # The key expired between add() and incr(): start it again.
        cache.add(newest_key, 1, timeout=timeout)
    counts = cache.get_many([key for key, _ in keys])
    buckets = [(index, int(counts.get(key, 0))) for key, index in keys]
    total = sum(count for _, count in buckets)
    if total <= rate.limit:
        return _verdict(rate, buckets, now, allowed=True)
    # A refused event is taken back out, so a client that keeps knocking is not locked out for longer than the
    # Retry-After it was given.
    with contextlib.suppress(ValueError):  # the bucket expired meanwhile: nothing left to take back
        cache.decr(newest_key)
    buckets[-1] = (buckets[-1][0], buckets[-1][1] - 1)
    return _verdict(rate, buckets, now, allowed=False)


def peek(scope: str, ident: str, rate: Rate) -> Verdict:
    """Returns whether ``ident`` may have one more event within ``rate``, without counting one."""
    now = _now()
    keys = _bucket_keys(scope, ident, rate, now)
    counts = cache.get_many([key for key, _ in keys])
    buckets = [(index, int(counts.get(key, 0))) for key, index in keys]
    total = sum(count for _, count in buckets)
    return _verdict(rate, buckets, now, allowed=total < rate.limit)


# Failed logins (admin and operator login pages alike) are counted per client address under this scope.
LOGIN_FAILURES = "login"


def login_failure_rate() -> Rate:
    """Returns the failed-login rate from settings (read per call, so a changed setting applies at once)."""
    return Rate.parse(settings.GPUFIT_RATE_LOGIN_FAILURES)


def client_ip(request) -> str:
    """Returns the client's address: REMOTE_ADDR (set GPUFIT_TRUSTED_PROXY_HEADER when behind a proxy)."""

    header = getattr(settings, "GPUFIT_TRUSTED_PROXY_HEADER", "")
    if header:
        forwarded = request.META.get(header, "")
        if forwarded:
            # The proxy appends the address it saw last; earlier entries are the client's to forge.
            return forwarded.split(",")[-1].strip()[:64]
    return request.META.get("REMOTE_ADDR", "")[:64] or "unknown"
