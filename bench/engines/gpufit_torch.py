"""The gpufit-torch engine: the project's own torch Mixtral (bench.runner) behind the Engine interface."""

from __future__ import annotations

import platform

from bench.engines.base import EngineInfo, Progress, failed
from physics.runs import BenchResult, BenchSpec
from physics.vocab import Engine as EngineName

try:  # torch is a worker requirement, but a host without it should still list its engines
    import torch

    from bench.runner import run_benchmark
except ImportError as exc:  # pragma: no cover - every test host has torch
    torch = None
    run_benchmark = None
    _MISSING = f"torch is not installed ({exc}); install requirements.txt"
else:
    _MISSING = ""


class TorchEngine:
    """Runs a BenchSpec through bench.runner.run_benchmark (Mixtral presets, bf16/fp16/fp32/int8/int4)."""

    name = EngineName.GPUFIT_TORCH.value

    def info(self) -> EngineInfo:
        """Returns torch's version and the backends it can reach here (cpu always; cuda/rocm/metal when present)."""
        if torch is None:
            return EngineInfo(name=self.name, available=False, reason=_MISSING)
        try:
            backends = ["cpu"]
            if torch.cuda.is_available():
                backends.append("rocm" if torch.version.hip else "cuda")
            if platform.system() == "Darwin" and torch.backends.mps.is_available():
                backends.append("metal")
            flags = {"cuda": torch.version.cuda, "hip": torch.version.hip, "threads": torch.get_num_threads()}
            return EngineInfo(
                name=self.name, available=True, version=torch.__version__, backends=tuple(backends), flags=flags
            )
        except Exception as exc:  # a broken driver must not stop the worker from listing engines
            return EngineInfo(name=self.name, available=False, reason=f"torch failed to report devices: {exc}")

    def run(self, spec: BenchSpec, progress: Progress | None = None) -> BenchResult:
        """Returns bench.runner's result for spec; a spec it cannot run or a missing torch is an "error" result."""
        if run_benchmark is None:
            return failed(spec, self.name, _MISSING)
        if spec.engine != self.name:
            return failed(spec, self.name, f"spec names engine {spec.engine!r}, not {self.name!r}")
        try:
            spec.validate()
        except ValueError as exc:
            return failed(spec, self.name, f"invalid spec: {exc}")
        return run_benchmark(spec, progress)
