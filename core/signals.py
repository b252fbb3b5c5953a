"""Signal receivers of the base layer: failed logins feed the login limiter (core.ratelimit)."""

from __future__ import annotations

from django.contrib.auth.signals import user_login_failed
from django.dispatch import receiver

from core.ratelimit import LOGIN_FAILURES, client_ip, hit, login_failure_rate


@receiver(user_login_failed, dispatch_uid="gpufit-count-failed-login")
def count_failed_login(request=None, **kwargs) -> None:
    """Counts one failed login against the caller's address; returns nothing.

    Django sends the signal from ``authenticate()`` whenever credentials are refused, whatever page or form asked,
    so every login form is counted the same way and a page's response code does not matter.
    """
    if request is None:
        return  # a command or a script authenticating without a request has no address to hold back
    hit(LOGIN_FAILURES, client_ip(request), login_failure_rate())
