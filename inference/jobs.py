"""Benchmark jobs: creating, claiming, progress, cancelling, and finding the lost ones.

Every state change is a conditional UPDATE on the job row, so a redelivered task, a late
progress report or a cancel racing a finish can never move a job backwards.
"""

from __future__ import annotations

import datetime as dt
import uuid

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from inference.models import ACTIVE_STATUSES, BenchmarkJob, JobStatus

# A running job whose row has not moved for this long is taken for lost (its worker died).
LOST_AFTER_S = 300


class Cancelled(Exception):
    """Raised inside a running benchmark when its job was cancelled from the UI."""


def submit(job: BenchmarkJob) -> BenchmarkJob:
    """Returns the saved job; its task is sent to the job's queue once the transaction commits."""
    from inference.tasks import run_job

    job.task_id = str(uuid.uuid4())
    job.status = JobStatus.QUEUED
    job.save()
    transaction.on_commit(lambda: run_job.apply_async(args=[job.pk], queue=job.queue, task_id=job.task_id))
    return job


def claim(job_id: int, worker: str) -> bool:
    """Returns True when this worker moved the job from queued to running; False for a redelivery or a cancel."""
    now = timezone.now()
    updated = BenchmarkJob.objects.filter(pk=job_id, status=JobStatus.QUEUED).update(
        status=JobStatus.RUNNING, worker=worker, started_at=now, heartbeat_at=now, progress=0, message="starting"
    )
    return updated == 1


def report_progress(job_id: int, percent: float, message: str) -> None:
    """Writes progress to a running job; raises Cancelled when the job is no longer running."""
    percent = max(0.0, min(100.0, float(percent)))
    updated = BenchmarkJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
        progress=percent, message=message[:300], heartbeat_at=timezone.now()
    )
    if not updated:
        raise Cancelled(f"job {job_id} is no longer running")


def finish(job_id: int, status: str, message: str = "", error: str = "") -> bool:
    """Returns True when the running job was moved to its final status."""
    values = {"status": status, "finished_at": timezone.now(), "message": message[:300], "error": error}
    if status == JobStatus.SUCCEEDED:
        values["progress"] = 100
    return BenchmarkJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(**values) == 1


def cancel(job: BenchmarkJob) -> bool:
    """Returns True when the job was queued or running and is now cancelled (a queued task is also revoked)."""
    from gpufit.celery import app

    updated = BenchmarkJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), message="cancelled by an operator"
    )
    if updated and job.task_id:
        # Not terminate=True: a running benchmark notices the cancel at its next progress report and stops cleanly.
        app.control.revoke(job.task_id)
    return updated == 1


def mark_lost(now: dt.datetime | None = None, worker: str | None = None) -> int:
    """Returns how many running jobs were marked lost: stale rows, or every running job of a restarted worker."""
    now = now or timezone.now()
    stale = Q(status=JobStatus.RUNNING, heartbeat_at__lt=now - dt.timedelta(seconds=LOST_AFTER_S))
    if worker:
        stale |= Q(status=JobStatus.RUNNING, worker=worker)
    reason = "the worker stopped answering while the job ran"
    return BenchmarkJob.objects.filter(stale).update(
        status=JobStatus.LOST, finished_at=now, message=reason, error=reason + " (killed, restarted or out of memory)"
    )


def default_target_host() -> str:
    return getattr(settings, "GPUFIT_WORKER_HOST", "")
