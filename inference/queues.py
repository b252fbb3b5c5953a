"""Queue names, defined once: each host consumes gpu.<host> and the shared gpu.any."""

from __future__ import annotations

import re

ANY_QUEUE = "gpu.any"


def queue_for_host(host: str) -> str:
    """Returns the queue a job for ``host`` goes to (``gpu.any`` when no host is named)."""
    host = (host or "").strip()
    if not host:
        return ANY_QUEUE
    return "gpu." + re.sub(r"[^A-Za-z0-9_.-]", "-", host)
