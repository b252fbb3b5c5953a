"""What every benchmark engine offers the worker: a cheap self-description and one run per spec.

An engine is anything with a ``name``, ``info()`` and ``run()``; the worker never needs to know which package sits
behind it. ``info()`` is cheap and never raises, so a worker can list its engines at start-up even when one of
them is not installed. ``run()`` never raises for an out-of-memory or a missing engine either: those are results
(status "oom" or "error") with a message a person can act on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol, runtime_checkable

from physics.runs import BenchResult, BenchSpec

Progress = Callable[[float, str], None]  # (percent done, what is happening now)

# Backends an engine may report, in one spelling.
BACKENDS: tuple[str, ...] = ("cpu", "cuda", "metal", "rocm", "vulkan")


@dataclass(frozen=True)
class EngineInfo:
    """One engine as this host has it: whether it can run, its version, the backends it was built with."""

    name: str  # "gpufit-torch" | "llama.cpp"
    available: bool  # False: installed badly or not at all; `reason` says why
    version: str = ""  # the package's version, and the native build where there is one
    backends: tuple[str, ...] = ()  # subset of BACKENDS this build can use
    flags: dict = field(default_factory=dict)  # build facts that change figures (CPU features, GPU offload…)
    reason: str = ""  # why it is unavailable, and how to fix it

    def to_dict(self) -> dict:
        """Returns the info as a JSON-ready dict."""
        data = asdict(self)
        data["backends"] = list(self.backends)
        return data


@runtime_checkable
class Engine(Protocol):
    """A benchmark engine: describe yourself cheaply, run one spec into one result."""

    name: str

    def info(self) -> EngineInfo:
        """Returns this host's view of the engine; never raises."""
        ...

    def run(self, spec: BenchSpec, progress: Progress | None = None) -> BenchResult:
        """Returns the result of spec; OOM and a missing engine come back as status "oom" / "error"."""
        ...


def failed(spec: BenchSpec, engine: str, message: str, status: str = "error", **fields) -> BenchResult:
    """Returns a result that says why spec did not run (status "error" or "oom"), with the spec recorded."""
    return BenchResult(spec=asdict(spec), status=status, message=message[:2000], engine=engine, **fields)
