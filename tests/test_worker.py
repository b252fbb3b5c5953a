"""The Celery path with real parts: Redis, a real worker process, PostgreSQL shared between them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from inference.models import BenchmarkJob, BenchmarkResult, JobStatus, WorkerHost
from inference.tasks import run_job

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Worker:
    """A `manage.py run_worker` subprocess on its own host name (so its queue is its own)."""

    def __init__(self, redis_url: str | None, host: str, **extra_env: str):
        self.host = host
        db = settings.DATABASES["default"]
        env = dict(os.environ)
        env.update(
            {
                "DEBUG": "1",
                "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
                "GPUFIT_WORKER_HOST": host,
                "PYTHONUNBUFFERED": "1",
                **extra_env,
            }
        )
        # No REDIS_URL: the embedded default, kombu's file-system broker under GPUFIT_VAR_DIR.
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        started = timezone.now()
        self.log = open(ROOT / "var" / f"test-worker-{host}.log", "w")  # noqa: SIM115 - closed in stop()
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker", "--host", host, "--no-any", "--loglevel", "INFO"],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(
            lambda: WorkerHost.objects.filter(hostname=host, started_at__gte=started).exists(),
            60,
            "the worker to register",
        )

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()


@pytest.fixture
def worker(redis_url, postgres):
    (ROOT / "var").mkdir(exist_ok=True)
    w = Worker(redis_url, f"test-{uuid.uuid4().hex[:8]}")
    yield w
    w.stop()


@pytest.fixture
def operator(client):
    user = User.objects.create_user("operator", password="pw-for-tests-only")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    client.force_login(user)
    return user


def tiny_job(host: str, **overrides) -> dict:
    data = {
        "preset": "tiny",
        "layers": 2,
        "precision": "fp32",
        "batch": 1,
        "prompt_tokens": 32,
        "new_tokens": 8,
        "repeats": 2,
        "target": f"{host}|cpu",
    }
    data.update(overrides)
    return data


def test_a_job_runs_end_to_end_on_a_real_worker(client, worker, operator):
    response = client.post(reverse("inference:new_job"), tiny_job(worker.host))
    assert response.status_code == 302, response.content[:2000]
    job = BenchmarkJob.objects.get(requested_by=operator)
    assert job.requested_by == operator and job.queue == f"gpu.{worker.host}"
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 180, "the job to finish")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
    assert job.worker == f"gpufit@{worker.host}" and job.progress == 100
    result = BenchmarkResult.objects.get(job=job)
    assert result.status == "ok"
    assert result.decode_tok_s > 0 and result.prefill_tok_s > 0 and result.peak_memory_gb > 0
    assert result.estimated_decode_tok_s > 0
    assert result.decode_ratio == pytest.approx(result.decode_tok_s / result.estimated_decode_tok_s)
    page = client.get(job.get_absolute_url()).content.decode()
    assert "Measured vs estimated" in page
    assert f"{result.decode_tok_s:.3f}" in page and f"{result.estimated_decode_tok_s:.3f}" in page

    # A second delivery of the same task finds the job already finished and does nothing.
    finished_at = job.finished_at
    assert run_job.apply(args=[job.pk]).get() == "skipped"
    job.refresh_from_db()
    assert job.finished_at == finished_at and BenchmarkResult.objects.filter(job=job).count() == 1


def test_an_int4_job_runs_through_the_fused_kernels_on_a_real_worker(client, worker, operator):
    response = client.post(reverse("inference:new_job"), tiny_job(worker.host, precision="int4", repeats=1))
    assert response.status_code == 302, response.content[:2000]
    job = BenchmarkJob.objects.get(requested_by=operator)
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 180, "the job to finish")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
    result = BenchmarkResult.objects.get(job=job)
    assert result.raw["kernels"] == "int4: aten._weight_int4pack_mm_for_cpu; int8: aten._weight_int8pack_mm"
    page = client.get(job.get_absolute_url()).content.decode()
    assert '<td colspan="3" id="kernels">int4: aten._weight_int4pack_mm_for_cpu' in page


def test_a_compiled_int8_job_runs_on_a_real_worker(client, worker, operator):
    data = tiny_job(worker.host, precision="int8", repeats=1, new_tokens=4, compile_decode="on")
    assert client.post(reverse("inference:new_job"), data).status_code == 302
    job = BenchmarkJob.objects.get(requested_by=operator)
    assert job.compile_decode
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 300, "the job to finish")
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
    result = BenchmarkResult.objects.get(job=job)
    assert result.raw["spec"]["compile"] and result.raw["compile_s"] > 0
    assert result.raw["kernels"].startswith("prefill: int8: aten._weight_int8pack_mm; decode step compiled into")
    page = client.get(job.get_absolute_url()).content.decode()
    assert "decode step compiled;" in page and '<td colspan="3" id="decode-path">compiled — compiling and' in page


def test_a_spec_that_cannot_fit_ends_as_oom(client, worker, operator):
    # Mixtral-8x7B, 32 layers at bf16 = 93 GB of weights: more than this machine's RAM.
    data = tiny_job(worker.host, preset="mixtral-8x7b", layers=32, precision="bf16", prompt_tokens=16, new_tokens=4)
    assert client.post(reverse("inference:new_job"), data).status_code == 302
    job = BenchmarkJob.objects.get(requested_by=operator)
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 180, "the job to finish")
    result = BenchmarkResult.objects.get(job=job)
    assert result.status == "oom" and "out of memory" in result.raw["message"]
    assert result.estimated_memory_gb > 90  # the estimator agrees it cannot fit
    assert "ran out of memory" in client.get(job.get_absolute_url()).content.decode()


def test_a_killed_worker_leaves_the_job_lost_not_running(client, worker, operator, redis_url):
    # Enough decode steps that the job is still running when the worker is killed.
    data = tiny_job(worker.host, prompt_tokens=64, new_tokens=180, repeats=10)
    assert client.post(reverse("inference:new_job"), data).status_code == 302
    job = BenchmarkJob.objects.get(requested_by=operator)
    wait_for(lambda: BenchmarkJob.objects.get(pk=job.pk).status == "running", 120, "the job to start")
    worker.kill()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING  # nobody has noticed yet
    # The host's next worker finds the job its predecessor was running and marks it lost.
    restarted = Worker(redis_url, worker.host)
    try:
        job.refresh_from_db()
        assert job.status == JobStatus.LOST and "worker stopped" in job.error
        # A redelivery of the unacknowledged message cannot revive it.
        assert run_job.apply(args=[job.pk]).get() == "skipped"
        job.refresh_from_db()
        assert job.status == JobStatus.LOST
    finally:
        restarted.stop()


def test_anonymous_and_non_operators_cannot_trigger_jobs(client):
    assert client.post(reverse("inference:new_job"), tiny_job("any")).status_code == 302  # to the login page
    client.force_login(User.objects.create_user("visitor", password="pw-for-tests-only"))
    assert client.post(reverse("inference:new_job"), tiny_job("any")).status_code == 403
    assert client.get(reverse("inference:benchmarks")).status_code == 200
    assert not BenchmarkJob.objects.filter(preset="tiny", target_host="any").exists()


def test_a_cancelled_job_is_not_run(client, operator):
    from inference import jobs

    job = BenchmarkJob.objects.create(
        preset="tiny",
        layers=2,
        precision="fp32",
        batch=1,
        prompt_tokens=8,
        new_tokens=4,
        requested_by=operator,
        target_host="nobody-listens-here",
    )
    assert jobs.cancel(job)
    assert run_job.apply(args=[job.pk]).get() == "skipped"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not BenchmarkResult.objects.exists()


def test_a_job_whose_message_the_broker_lost_still_runs(client, operator, redis_url, postgres):
    import redis

    host = f"test-{uuid.uuid4().hex[:8]}"
    # Queue a job while no worker listens, then drop the queue as a Redis restarted without persistence would.
    from inference import jobs

    job = jobs.submit(
        BenchmarkJob(
            preset="tiny",
            layers=2,
            precision="fp32",
            batch=1,
            prompt_tokens=32,
            new_tokens=8,
            repeats=2,
            target_host=host,
            target_device="cpu",
            requested_by=operator,
        )
    )
    broker = redis.Redis.from_url(redis_url)
    wait_for(lambda: broker.llen(job.queue) == 1, 10, "the message to reach Redis")
    broker.delete(job.queue)
    # The worker that comes up finds the job still queued in the database and sends it again.
    worker = Worker(redis_url, host, GPUFIT_REQUEUE_AFTER_S="1", GPUFIT_HEARTBEAT_S="1")
    try:
        wait_for(
            lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 180, "the job to finish"
        )
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
        assert BenchmarkResult.objects.filter(job=job).count() == 1
    finally:
        worker.stop()


def test_the_embedded_broker_runs_a_job_without_redis(operator, postgres, tmp_path):
    """make run's default: no Redis, the file-system broker under var/ shared by the web process and the worker."""
    host = f"test-{uuid.uuid4().hex[:8]}"
    worker = Worker(None, host, GPUFIT_VAR_DIR=str(tmp_path))
    try:
        job = BenchmarkJob.objects.create(
            preset="tiny",
            layers=2,
            precision="fp32",
            batch=1,
            prompt_tokens=32,
            new_tokens=8,
            repeats=2,
            target_host=host,
            target_device="cpu",
            requested_by=operator,
        )
        sender = subprocess.run(
            [
                sys.executable,
                "manage.py",
                "shell",
                "-c",
                f"from inference import jobs; from inference.models import BenchmarkJob; jobs.submit(BenchmarkJob.objects.get(pk={job.pk}))",
            ],
            cwd=ROOT,
            env=worker.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert sender.returncode == 0, sender.stderr[-2000:]
        wait_for(
            lambda: BenchmarkJob.objects.get(pk=job.pk).status not in ("queued", "running"), 180, "the job to finish"
        )
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error, job.message)
        assert BenchmarkResult.objects.get(job=job).status == "ok"
        assert any((tmp_path / "broker").rglob("*"))  # the messages went through the file-system broker
    finally:
        worker.stop()
