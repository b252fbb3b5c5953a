"""Benchmark engines a worker can run: gpufit-torch (our torch Mixtral) and llama.cpp (llama-cpp-python).

    from bench.engines import get_engine
    result = get_engine(spec.engine).run(spec, progress)

``available_engines()`` lists what this host has, each with a reason when it cannot run.
"""

from __future__ import annotations

from bench.engines.base import BACKENDS, Engine, EngineInfo, Progress
from bench.engines.gpufit_torch import TorchEngine
from bench.engines.llamacpp import LlamaCppEngine

ENGINES: dict[str, Engine] = {e.name: e for e in (TorchEngine(), LlamaCppEngine())}


def available_engines() -> list[EngineInfo]:
    """Returns every engine's info on this host, available or not (the reason says why not)."""
    return [engine.info() for engine in ENGINES.values()]


def get_engine(name: str) -> Engine:
    """Returns the engine called name; raises KeyError naming the known engines."""
    try:
        return ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known: {sorted(ENGINES)}") from None


__all__ = ["BACKENDS", "ENGINES", "Engine", "EngineInfo", "Progress", "available_engines", "get_engine"]
