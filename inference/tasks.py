"""Celery tasks. They take ids, claim the job row first, and leave the row as the truth about the job."""

from __future__ import annotations

import logging
import traceback

import psutil
from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction

from bench.runner import run_benchmark
from inference import jobs
from inference.models import BenchmarkJob, BenchmarkResult, JobStatus
from inference.results import compare_with_estimate
from physics.presets import PRESETS
from physics.runs import BenchSpec
from physics.vocab import Precision

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
    if not jobs.claim(job_id, worker):
        log.info("job %s not claimed (already taken, finished or cancelled)", job_id)
        return "skipped"
    job = BenchmarkJob.objects.get(pk=job_id)
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
        jobs.finish(job_id, JobStatus.FAILED, str(exc)[:300], traceback.format_exc())
        return "failed"
    return measured


def _cpu_memory_limit_gb() -> float:
    """Returns the RAM a CPU run may plan for: a run that cannot fit ends as "oom" instead of waking the OOM killer."""
    return 0.8 * psutil.virtual_memory().available / 1e9


def spec_for(job: BenchmarkJob):
    """Returns the runner's BenchSpec for a job: the job's fields and the decode path a worker takes."""
    device = job.target_device or "cpu"
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


def execute(job: BenchmarkJob) -> str:
    """Returns the run's outcome after running the benchmark and storing measured and estimated figures."""
    spec = spec_for(job)
    result = run_benchmark(spec, progress=lambda pct, msg: jobs.report_progress(job.pk, 5 + 0.9 * pct, msg))
    if result.status == "error" and "no longer running" in result.message:
        raise jobs.Cancelled(result.message)
    values = compare_with_estimate(result, host=job.worker.split("@", 1)[-1])
    with transaction.atomic():
        if result.status == "error":
            done = jobs.finish(job.pk, JobStatus.FAILED, "benchmark error", result.message)
        else:
            done = jobs.finish(job.pk, JobStatus.SUCCEEDED, "out of memory" if result.status == "oom" else "measured")
        if done:
            BenchmarkResult.objects.create(job=job, **values)
    return result.status
