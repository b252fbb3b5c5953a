"""Measured results shipped with the repository (inference/data/measured.json), loaded as benchmark results.

They are real runs on a lent GPU (the GPU check's torch runs; llama.cpp's llama-bench sweeps, shipped by
``bench.llama_bench --ship``); loading them puts them on the GPU and model pages as measured results and folds the
runs that match the worker's own code path into calibration. A file that says ``"fold": false`` is shown only:
one card's sweep does not refit the shipped defaults, which answer to the public measurement set.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from hardware.models import GPU
from inference.calibration import fit_calibration, fit_is_current
from inference.models import BenchmarkJob, BenchmarkResult, Device, JobStatus, WorkerHost
from inference.results import compare_with_estimate
from models.models import LanguageModel
from physics.runs import BenchResult
from physics.vocab import Engine

DATA = Path(__file__).resolve().parent / "data"
PATH = DATA / "measured.json"  # the first H200 check; later checks are measured-<card>-<date>.json beside it


def measured_files() -> list[Path]:
    """Returns the shipped measured-results files in name order."""
    return sorted(DATA.glob("measured*.json"))


def folds_into_calibration(result: dict) -> bool:
    """Returns whether a run used the path a worker job takes on CUDA (a llama.cpp run always does: it has one).

    bf16/fp16: the decode step under a CUDA graph. int8/int4: a run with the fused kernels switched on (the
    worker's default; each kernel's self-test still decides, as it does in a worker) that records which kernels
    did the quantized matmuls. Runs made before the fused kernels existed (no `kernels` field) and the GPU check's
    `unfused` comparison rows read every touched weight twice and would make the estimate for today's runner far
    too slow, so they are shown but not folded. Compiled runs are not the worker's default path either.
    """
    spec = result["spec"]
    if result.get("engine", Engine.GPUFIT_TORCH) == Engine.LLAMA_CPP:
        return True
    if spec.get("compile"):
        return False
    if spec["precision"] in ("bf16", "fp16"):
        return bool(spec.get("cuda_graph"))
    return bool(spec.get("fused", True)) and bool(result.get("kernels"))


def load_measured(paths: list[Path] | None = None) -> int:
    """Returns how many measured results were added from paths (default: every shipped file); reloads add nothing."""

    added = refolded = 0
    with transaction.atomic():
        for path in measured_files() if paths is None else paths:
            a, r = _load_file(path)
            added, refolded = added + a, refolded + r
        # A changed folding rule or calibration key (e.g. the batch class) refits rows loaded before it.
        if added or refolded or not fit_is_current():
            fit_calibration()
    return added


def _load_file(path: Path) -> tuple[int, int]:
    """Returns (runs added, runs whose folding changed) for one measured-results file."""

    data = json.loads(path.read_text(encoding="utf-8"))
    when = timezone.make_aware(dt.datetime.fromisoformat(data["date"]))
    fold = data.get("fold", True)
    added = refolded = 0
    with transaction.atomic():
        host, _ = WorkerHost.objects.get_or_create(
            hostname=data["host"], defaults={"queue": f"gpu.{data['host']}", "started_at": when, "last_seen": when}
        )
        info = data["device"]
        Device.objects.get_or_create(
            host=host,
            index=info["torch_device"],
            defaults={
                "name": info["name"],
                "memory_gb": info["memory_gb"],
                "bandwidth_gb_s": info["bandwidth_gb_s"],
                "details": {**info, "copy_gb_s": data["copy_gb_s"], "matmul_tflops": data["matmul_tflops"]},
                "gpu": GPU.objects.resolve(data["catalog_gpu"]),
            },
        )
        for i, run in enumerate(data["runs"]):
            key = f"measured:{path.name}:{i}"
            if BenchmarkJob.objects.filter(task_id=key).exists():
                # A run loaded before the folding rule changed follows the rule of today.
                folds = fold and folds_into_calibration(run["result"])
                refolded += (
                    BenchmarkResult.objects.filter(job__task_id=key)
                    .exclude(folded_into_calibration=folds)
                    .update(folded_into_calibration=folds)
                )
                continue
            spec = run["result"]["spec"]
            engine = run["result"].get("engine", Engine.GPUFIT_TORCH)
            llama = engine == Engine.LLAMA_CPP
            # A llama.cpp run may name the catalog model it measured (its slug); else it ran a preset.
            model = LanguageModel.objects.filter(slug=run.get("model", "")).first() if llama else None
            job = BenchmarkJob.objects.create(
                engine=engine,
                preset="" if model else spec["preset"],
                model=model,
                gguf_format=spec.get("gguf_format", "") if llama else "",
                layers=spec["layers"] or run["result"].get("model_layers") or 32,
                precision="" if llama else spec["precision"],
                batch=spec["batch"],
                prompt_tokens=spec["prompt_tokens"],
                new_tokens=spec["new_tokens"],
                repeats=spec["repeats"],
                target_host=data["host"],
                target_device=spec["device"],
                status=JobStatus.SUCCEEDED,
                progress=100,
                message=f"measured with: {run['command']}"[:300],
                worker=f"gpu_check@{data['host']}",
                task_id=key,
                created_at=when,
                started_at=when,
                finished_at=when,
            )
            result = BenchResult(**run["result"])
            values = compare_with_estimate(result, host=data["host"], model=model)
            values["folded_into_calibration"] = fold and folds_into_calibration(run["result"])
            BenchmarkResult.objects.create(job=job, created_at=when, **values)
            added += 1
    return added, refolded
