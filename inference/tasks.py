"""Celery tasks. They take ids, claim the job row first, and leave the row as the truth about the job."""

from __future__ import annotations

import logging
import traceback
from pathlib import Path

import psutil
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from bench.engines import Engine as BenchEngine
from bench.engines import get_engine
from bench.engines.llamacpp import LlamaCppEngine
from inference import jobs
from inference.models import BenchmarkJob, BenchmarkResult, JobStatus
from inference.results import catalog_config, compare_with_estimate
from physics.presets import PRESETS
from physics.runs import BenchSpec
from physics.vocab import Engine, Precision

log = logging.getLogger(__name__)


@shared_task(
    name=jobs.RUN_JOB_TASK,
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
    time_limit=settings.CELERY_TASK_TIME_LIMIT,
)
def run_job(self, job_id: int) -> str:
    """Returns what happened to the job: claimed and run, or skipped because another delivery owns it."""
    worker = self.request.hostname or settings.GPUFIT_WORKER_HOST
    if not jobs.with_database(lambda: jobs.claim(job_id, worker), f"claiming job {job_id}"):
        log.info("job %s not claimed (already taken, finished or cancelled)", job_id)
        return "skipped"
    job = jobs.with_database(lambda: BenchmarkJob.objects.get(pk=job_id), f"reading job {job_id}")
    try:
        measured = execute(job)
    except SoftTimeLimitExceeded:
        jobs.finish(
            job_id, JobStatus.FAILED, "time limit", f"the job ran past {settings.CELERY_TASK_SOFT_TIME_LIMIT} s"
        )
        return "failed"
    except jobs.Cancelled:
        return "cancelled"
    except Exception as exc:  # the reason is stored on the row; the worker carries on with the next job
        reason, trace = str(exc)[:300], traceback.format_exc()
        jobs.with_database(
            lambda: jobs.finish(job_id, JobStatus.FAILED, reason, trace), f"recording job {job_id}'s failure"
        )
        return "failed"
    return measured


def _cpu_memory_limit_gb() -> float:
    """Returns the RAM a CPU run may plan for: a run that cannot fit ends as "oom" instead of waking the OOM killer."""
    return 0.8 * psutil.virtual_memory().available / 1e9


def spec_for(job: BenchmarkJob):
    """Returns the engine's BenchSpec for a job: the job's fields and the path a worker takes on that engine."""
    device = job.target_device or "cpu"
    if job.engine == Engine.LLAMA_CPP:
        return _llama_cpp_spec(job, device)
    on_cuda = device.startswith("cuda")
    return BenchSpec(
        preset=job.preset,
        layers=job.layers,
        precision=job.precision,
        batch=job.batch,
        prompt_tokens=job.prompt_tokens,
        new_tokens=job.new_tokens,
        repeats=job.repeats,
        device=device,
        memory_limit_gb=_cpu_memory_limit_gb() if device == "cpu" else None,
        compile=job.compile_decode,
        # On CUDA a float or compiled decode step is replayed from a CUDA graph: eager launches cost 3x
        # (docs/benchmarks.md). Eager quantized experts read their routing on the host, which a graph cannot hold.
        cuda_graph=on_cuda and (job.compile_decode or job.precision in (Precision.BF16, Precision.FP16)),
        # int4 groups of 128 inputs; a preset narrower than that (the tiny test model) uses one group per row.
        group_size=min(128, PRESETS[job.preset].dim),
    )


def _llama_cpp_spec(job: BenchmarkJob, device: str) -> BenchSpec:
    """Returns a llama.cpp spec: a random-weight GGUF of the job's model (its catalog config.json, or the preset) in
    the job's format, one sequence, with llama.cpp's own defaults for threads and flash attention."""
    model_config = catalog_config(job.model) if job.model_id else None
    if job.model_id and model_config is None:
        raise ValueError(f"the catalog ships no config.json for {job.model}; llama.cpp needs one to write its GGUF")
    return BenchSpec(
        engine=Engine.LLAMA_CPP.value,
        preset=job.preset or "mixtral-8x7b",
        model_config=model_config,
        gguf_format=job.gguf_format,
        gguf_path=str(real_gguf(job) or ""),
        layers=job.layers,
        batch=job.batch,
        prompt_tokens=job.prompt_tokens,
        new_tokens=job.new_tokens,
        repeats=job.repeats,
        device=device,
        memory_limit_gb=_cpu_memory_limit_gb() if device == "cpu" else None,
    )


def real_gguf(job: BenchmarkJob) -> Path | None:
    """Returns the operator's real GGUF for the job's model and format (GPUFIT_REAL_GGUF_DIR), or None."""
    folder = settings.GPUFIT_REAL_GGUF_DIR
    if not folder or not job.model_id or not job.gguf_format:
        return None
    wanted = f"{job.model.slug}-{job.gguf_format}.gguf".lower()
    return next((p for p in sorted(Path(folder).glob("*.gguf")) if p.name.lower() == wanted), None)


def gguf_cache_dir() -> Path:
    """Returns where a worker keeps the random-weight GGUF files it writes (one per model, depth and format)."""
    return Path(settings.VAR_DIR) / "gguf"


def engine_for(name: str) -> BenchEngine:
    """Returns the engine that runs a job; llama.cpp keeps its generated GGUF files under the worker's var/ folder."""
    if name == Engine.LLAMA_CPP:
        return LlamaCppEngine(cache_dir=gguf_cache_dir())
    return get_engine(name)


def execute(job: BenchmarkJob) -> str:
    """Returns the run's outcome after running the job's engine and storing measured and estimated figures."""
    spec = spec_for(job)
    engine = engine_for(spec.engine)
    result = engine.run(spec, progress=lambda pct, msg: jobs.report_progress(job.pk, 5 + 0.9 * pct, msg))
    if result.status == "error" and "no longer running" in result.message:
        raise jobs.Cancelled(result.message)
    model = job.model if job.model_id else None
    host = job.worker.split("@", 1)[-1]
    # The measurement is done: a database that restarts now delays storing it, it does not lose it.
    values = jobs.with_database(
        lambda: compare_with_estimate(result, host=host, model=model), f"estimating job {job.pk}"
    )
    jobs.with_database(lambda: _store(job, result, values), f"storing job {job.pk}'s result")
    return result.status


def _store(job: BenchmarkJob, result, values: dict) -> bool:
    """Returns whether the job's final status and its result row were written (False: cancelled or lost meanwhile)."""
    with transaction.atomic():
        if result.status == "error":
            done = jobs.finish(job.pk, JobStatus.FAILED, "benchmark error", result.message)
        else:
            done = jobs.finish(job.pk, JobStatus.SUCCEEDED, "out of memory" if result.status == "oom" else "measured")
        if done:
            BenchmarkResult.objects.create(job=job, **values)
    return done
