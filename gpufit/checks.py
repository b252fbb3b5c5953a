"""System checks with stable ids: misconfiguration shows up in `manage.py check` with a hint, not at 3 a.m.

gpufit.E001  the Redis broker (REDIS_URL / CELERY_BROKER_URL) does not answer
gpufit.E002  the Redis visibility timeout is not longer than the hard task time limit
gpufit.W003  an NVIDIA driver is present but pynvml (nvidia-ml-py) is not importable
gpufit.W004  the soft task time limit is not shorter than the hard one
gpufit.E005  a GPUFIT_RATE_* setting is not LIMIT/SECONDS
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import redis
from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from core.ratelimit import Rate

# Where a Linux NVIDIA driver shows itself; checked without importing torch or NVML.
NVIDIA_DRIVER_PATHS = ("/proc/driver/nvidia/version", "/dev/nvidiactl")


def _redis_broker() -> str:
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return url if url.startswith(("redis://", "rediss://", "unix://")) else ""


@register("gpufit")
def check_broker_reachable(app_configs=None, **kwargs) -> list[Error]:
    """Returns gpufit.E001 when a Redis broker is configured and does not answer a PING within a second."""
    url = _redis_broker()
    if not url:
        return []

    client = None
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        client.ping()
    except (redis.RedisError, OSError, ValueError) as exc:
        return [
            Error(
                f"The Celery broker at {_redacted(url)} does not answer: {exc}",
                hint="Start Redis, or fix REDIS_URL / CELERY_BROKER_URL. Jobs cannot be queued until it answers.",
                id="gpufit.E001",
            )
        ]
    finally:
        if client is not None:
            client.close()
    return []


@register("gpufit")
def check_visibility_timeout(app_configs=None, **kwargs) -> list[Error | Warning]:
    """Returns gpufit.E002 when Redis would redeliver a task that is still running, and W004 for the soft limit."""
    issues: list[Error | Warning] = []
    hard = settings.CELERY_TASK_TIME_LIMIT
    soft = settings.CELERY_TASK_SOFT_TIME_LIMIT
    if _redis_broker():
        visibility = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("visibility_timeout", 3600)
        if visibility <= hard:
            issues.append(
                Error(
                    f"CELERY_VISIBILITY_TIMEOUT ({visibility} s) is not longer than CELERY_TASK_TIME_LIMIT ({hard} s).",
                    hint="Redis hands an unacknowledged task to another worker after the visibility timeout; "
                    "with acks_late a long benchmark would run twice. Set CELERY_VISIBILITY_TIMEOUT above the hard limit.",
                    id="gpufit.E002",
                )
            )
    if soft >= hard:
        issues.append(
            Warning(
                f"CELERY_TASK_SOFT_TIME_LIMIT ({soft} s) is not shorter than CELERY_TASK_TIME_LIMIT ({hard} s).",
                hint="The soft limit lets a benchmark stop cleanly and record why; set it below the hard limit.",
                id="gpufit.W004",
            )
        )
    return issues


@register("gpufit")
def check_pynvml_on_gpu_host(app_configs=None, **kwargs) -> list[Warning]:
    """Returns gpufit.W003 when this host has an NVIDIA driver but pynvml cannot be imported."""
    if not any(Path(p).exists() for p in NVIDIA_DRIVER_PATHS):
        return []
    if importlib.util.find_spec("pynvml") is not None:
        return []
    return [
        Warning(
            "This host has an NVIDIA driver but pynvml is not installed.",
            hint="pip install nvidia-ml-py (pinned in requirements.txt); without it the worker reports GPUs "
            "without their NVML names, memory and bandwidth.",
            id="gpufit.W003",
        )
    ]


@register("gpufit")
def check_rates(app_configs=None, **kwargs) -> list[Error]:
    """Returns gpufit.E005 for each rate-limit setting that does not parse."""
    errors = []
    for name in ("GPUFIT_RATE_JOBS", "GPUFIT_RATE_RECOMMEND", "GPUFIT_RATE_LOGIN_FAILURES"):
        try:
            Rate.parse(getattr(settings, name))
        except ImproperlyConfigured as exc:
            errors.append(Error(f"{name}: {exc}", hint="Write a rate as LIMIT/SECONDS, e.g. 30/60.", id="gpufit.E005"))
    return errors


def _redacted(url: str) -> str:
    """Returns the URL without its password, for messages."""
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
