"""Benchmark jobs: creating, claiming, progress, cancelling, and finding the lost ones.

Every state change is a conditional UPDATE on the job row, so a redelivered task, a late
progress report or a cancel racing a finish can never move a job backwards.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from celery import current_app
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, transaction
from django.db.models import Q
from django.utils import timezone

from inference.models import ACTIVE_STATUSES, BenchmarkJob, JobStatus

log = logging.getLogger(__name__)

# A running job whose row has not moved for this long is taken for lost (its worker died).
LOST_AFTER_S = 300
# The worker task that runs a job (inference/tasks.py), sent by name.
RUN_JOB_TASK = "inference.tasks.run_job"
# How long a worker waits for a database that stopped answering before it gives the write up. A restarted
# PostgreSQL is back within seconds; the benchmark measured meanwhile is still good.
DATABASE_WAIT_S = 120
DATABASE_DOWN = (OperationalError, InterfaceError)
# A key the workers keep in the broker's Redis. Its absence means Redis lost its data (a restart without
# persistence, a flush) and with it every queued message, however young.
BROKER_MARK = "gpufit:broker-mark"

T = TypeVar("T")


def requeue_after_s() -> int:
    """Returns how long a job may wait queued before its message is sent again (a broker may have lost it)."""
    return settings.GPUFIT_REQUEUE_AFTER_S


class Cancelled(Exception):
    """Raised inside a running benchmark when its job was cancelled from the UI."""


def with_database(step: Callable[[], T], what: str) -> T:
    """Returns ``step()``, called again while the database does not answer, for up to DATABASE_WAIT_S seconds.

    A database restart closes every connection under a running job. Failing the job would throw away a finished
    measurement (or, for the claim, strand the row as queued until it is re-sent), so the worker drops the broken
    connection and tries again; past the wait the error goes up. ``step`` must be safe to repeat: every write here
    is a conditional UPDATE or runs in one transaction.
    """
    deadline = time.monotonic() + DATABASE_WAIT_S
    delay_s = 0.5
    while True:
        try:
            return step()
        except DATABASE_DOWN as exc:
            if time.monotonic() + delay_s > deadline:
                raise
            log.warning("database unavailable while %s (%s); trying again in %.1f s", what, exc, delay_s)
            close_old_connections()  # a connection that saw the error and no longer answers is closed, not reused
            time.sleep(delay_s)
            delay_s = min(2 * delay_s, 5.0)


def submit(job: BenchmarkJob) -> BenchmarkJob:
    """Returns the saved job; its task is sent to the job's queue once the transaction commits."""
    job.task_id = str(uuid.uuid4())
    job.status = JobStatus.QUEUED
    job.sent_at = timezone.now()
    job.save()
    transaction.on_commit(lambda: _send(job))
    return job


def _send(job: BenchmarkJob) -> None:
    # By name: the web process never imports the task module, which loads the torch runner.
    try:
        current_app.send_task(RUN_JOB_TASK, args=[job.pk], queue=job.queue, task_id=job.task_id, retry=False)
    except Exception:  # broker down: the row stays queued and a worker's heartbeat sends it again
        log.exception("could not send job %s to the broker", job.pk)
        BenchmarkJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED).update(
            message="the broker did not answer; the job will be sent again"
        )


def broker_forgot() -> bool:
    """Returns True when the broker's Redis holds no mark: it lost its data (or was never marked) since
    remember_broker() last ran. False for a broker that is not Redis, or one that does not answer now."""
    return _on_broker_redis(lambda redis: not redis.exists(BROKER_MARK), default=False)


def remember_broker() -> None:
    """Sets the mark that broker_forgot() looks for."""
    _on_broker_redis(lambda redis: redis.set(BROKER_MARK, "1"), default=None)


def _on_broker_redis(command: Callable[[Any], T], default: T) -> T:
    """Returns ``command`` applied to the broker's Redis client, or ``default`` when there is none to reach."""
    try:
        with current_app.connection_for_write() as conn:
            client = getattr(conn.default_channel, "client", None)
            if not hasattr(client, "exists"):  # not Redis (the embedded file-system broker keeps its files)
                return default
            return command(client)
    except Exception:  # broker down: nothing to learn now; the next heartbeat looks again
        log.warning("could not reach the broker to check its queues", exc_info=True)
        return default


def requeue_stale(now: dt.datetime | None = None) -> int:
    """Returns how many queued jobs were sent again because their message may be gone.

    A Redis restarted without persistence forgets its queues; the job rows remember. When the broker is seen to
    have lost its data every queued job is sent again at once; otherwise only those queued longer than
    GPUFIT_REQUEUE_AFTER_S (a message lost some other way). Sending twice is harmless: the task claims the row
    first, so a second delivery does nothing.
    """
    now = now or timezone.now()
    forgot = broker_forgot()
    cutoff = now if forgot else now - dt.timedelta(seconds=requeue_after_s())
    resent = 0
    for job in BenchmarkJob.objects.filter(status=JobStatus.QUEUED, sent_at__lt=cutoff):
        # Conditional update first, so two heartbeats never re-send the same job at once.
        if BenchmarkJob.objects.filter(pk=job.pk, status=JobStatus.QUEUED, sent_at=job.sent_at).update(sent_at=now):
            _send(job)
            resent += 1
    if forgot:
        # Only now: a re-send cut short (the database down, say) leaves the mark unset for the next heartbeat.
        remember_broker()
        if resent:
            log.warning("the broker lost its queues; sent %d queued job(s) again", resent)
    return resent


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
    try:
        updated = BenchmarkJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(
            progress=percent, message=message[:300], heartbeat_at=timezone.now()
        )
    except DATABASE_DOWN as exc:
        # Not worth stopping a run for (the runner would end it as an error): the next report or the final
        # write reaches the database again. Waiting here instead could land inside a timed region.
        log.warning("progress of job %s not recorded, the database did not answer: %s", job_id, exc)
        close_old_connections()
        return
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
    updated = BenchmarkJob.objects.filter(pk=job.pk, status__in=ACTIVE_STATUSES).update(
        status=JobStatus.CANCELLED, finished_at=timezone.now(), message="cancelled by an operator"
    )
    if updated and job.task_id:
        # Not terminate=True: a running benchmark notices the cancel at its next progress report and stops cleanly.
        current_app.control.revoke(job.task_id)
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
