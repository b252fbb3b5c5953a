"""Serving capacity: how many concurrent users a build holds at a usable speed and context.

Each user holds a KV cache of ``context`` tokens and receives every decode step's token, so at B users one step
reads the weights once (a MoE's distinct experts for B tokens) plus B caches, and each user gets one token per step.
The estimator's batch physics answers every B; this module looks for the largest B that both fits in memory and
keeps each user at or above the minimum speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from physics.arch import ModelArch
from physics.estimator import Build, CalibrationFactor, Quant, Workload, estimate

MAX_USERS = 4096


@dataclass(frozen=True)
class CapacityPoint:
    users: int
    fits: bool
    per_user_tok_s: float
    total_tok_s: float
    ttft_s: float
    bound: str  # what binds the step at this many users: bandwidth or compute


@dataclass(frozen=True)
class Capacity:
    """The largest number of concurrent users, their speeds, and what stops it from being more."""

    users: int  # 0: not even one user fits at this context, or one user is already slower than the minimum
    memory_users: int  # the most users whose KV caches fit beside the weights
    speed_users: int  # the most users who each still get min_tok_s
    min_tok_s: float
    context: int
    per_user_tok_s: float | None
    total_tok_s: float | None
    ttft_s: float | None  # a new prompt's time to first token, on the otherwise idle build
    binds: str  # "memory", "bandwidth" or "compute": what limits the user count
    curve: list[CapacityPoint] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Returns JSON-ready figures and the per-user/total curve."""
        return {
            "users": self.users,
            "memory_users": self.memory_users,
            "speed_users": self.speed_users,
            "min_tok_s": self.min_tok_s,
            "context": self.context,
            "per_user_tok_s": self.per_user_tok_s,
            "total_tok_s": self.total_tok_s,
            "ttft_s": self.ttft_s,
            "binds": self.binds,
            "curve": [p.__dict__ for p in self.curve],
        }


def _point(model, quant, build, workload, users, calibration) -> CapacityPoint:
    e = estimate(model, quant, build, replace(workload, batch=users), calibration)
    return CapacityPoint(users, e.fits, e.decode_tok_s, e.decode_tok_s_aggregate, e.ttft_s, e.decode_bound)


def _largest(predicate, high: int) -> int:
    """Returns the largest n in [0, high] with predicate(n) true, for a predicate true up to some n then false."""
    low = 0
    while low < high:
        mid = (low + high + 1) // 2
        if predicate(mid):
            low = mid
        else:
            high = mid - 1
    return low


def serving_capacity(
    model: ModelArch,
    quant: Quant,
    build: Build,
    workload: Workload,
    min_tok_s: float = 10.0,
    calibration: Sequence[CalibrationFactor] | None = None,
) -> Capacity:
    """Returns the serving capacity of ``build`` for ``model`` at ``quant``, ``workload.context`` tokens per user.

    Memory limit: the largest B whose weights + B KV caches + overhead fit. Speed limit: the largest B whose per-user
    decode rate is at least ``min_tok_s`` (per-user speed falls as B grows). Users = the smaller of the two; the
    smaller one names what binds ("memory", else the step's own bound at that B).
    """

    def point(users: int) -> CapacityPoint:
        return _point(model, quant, build, workload, users, calibration)

    memory_users = _largest(lambda b: b >= 1 and point(b).fits, MAX_USERS)
    speed_users = _largest(lambda b: b >= 1 and point(b).per_user_tok_s >= min_tok_s, MAX_USERS)
    users = min(memory_users, speed_users)
    curve_top = max(2, min(MAX_USERS, max(memory_users, users) * 2))
    sizes = sorted({1, *[2**k for k in range(1, 13) if 2**k <= curve_top], users or 1, memory_users or 1})
    curve = [point(b) for b in sizes]
    if users == 0:
        binds = "memory" if memory_users == 0 else "speed"
        return Capacity(0, memory_users, speed_users, min_tok_s, workload.context, None, None, None, binds, curve)
    at = point(users)
    binds = "memory" if memory_users <= speed_users else at.bound
    # A new user's first prompt: nothing of that conversation is cached yet (the estimate's prompt depth is 0).
    fresh = replace(workload, batch=1, context=max(int(workload.prompt_tokens), 1))
    ttft_s = estimate(model, quant, build, fresh, calibration).ttft_s
    return Capacity(
        users,
        memory_users,
        speed_users,
        min_tok_s,
        workload.context,
        at.per_user_tok_s,
        at.total_tok_s,
        ttft_s,
        binds,
        curve,
    )
