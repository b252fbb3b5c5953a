"""Faults met under load (scripts/fault_load.py): a cache that stops answering, a database restart under a running
job, a Redis restart that forgets the queued messages, and a persistent connection that a database restart closed
while its process sat idle."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from unittest import mock

import psycopg
import pytest
from django.db import OperationalError, close_old_connections, connection
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from inference import jobs
from inference.models import BenchmarkJob, BenchmarkResult, JobStatus
from inference.tasks import run_job

pytestmark = pytest.mark.django_db(transaction=True)

REDIS_DOWN = RedisConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
DB_DOWN = OperationalError("terminating connection due to administrator command")


def tiny_job(**overrides) -> BenchmarkJob:
    # A queued tiny-preset CPU job; no worker listens on its host, the tests run the task in process.
    values = {
        "preset": "tiny",
        "layers": 2,
        "precision": "fp32",
        "batch": 1,
        "prompt_tokens": 8,
        "new_tokens": 4,
        "target_host": "nobody-listens-here",
        "task_id": "fault-1",
    }
    return BenchmarkJob.objects.create(**{**values, **overrides})


def result_values(job: BenchmarkJob) -> dict:
    # The fields a result row needs; the estimate beside it is not what these tests are about.
    return {
        "status": "ok",
        "device_name": "cpu",
        "precision": job.precision,
        "layers": job.layers,
        "total_layers": job.layers,
        "batch": job.batch,
        "prompt_tokens": job.prompt_tokens,
        "new_tokens": job.new_tokens,
    }


class StandInEngine:
    """Reports progress halfway, optionally while the database is down, then returns a measured run."""

    name = "gpufit-torch"

    def __init__(self, database_down_midway: bool = False):
        self.database_down_midway = database_down_midway

    def run(self, spec, progress=None):
        progress(10, "prefill")
        if self.database_down_midway:
            with mock.patch.object(BenchmarkJob.objects, "filter", side_effect=DB_DOWN):
                progress(50, "decoding")
        return SimpleNamespace(status="ok", message="")


class Clock:
    """Stands in for the time module inside inference.jobs: sleeping only moves the clock on, and is recorded."""

    def __init__(self):
        self.now_s = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_s += seconds


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """Makes the worker's waits for the database instant (inference.jobs only, not the time module itself)."""
    fake = Clock()
    monkeypatch.setattr("inference.jobs.time", fake)
    return fake


# ---------------------------------------------------------------------------------------------------------
# The cache (Redis) stops answering


def test_a_page_whose_cache_does_not_answer_is_rendered_uncached(client, settings):
    settings.GPUFIT_PAGE_CACHE_S = 600  # the page cache is what the page asks Redis first
    with mock.patch("planner.pagecache.cache") as cache:
        cache.get.side_effect = REDIS_DOWN
        response = client.get("/gpus/", HTTP_ACCEPT="text/html")
        assert response.status_code == 200 and "X-Page-Cache" not in response
        # Redis answers the read but fails the write: the page is still served.
        cache.get.side_effect, cache.get.return_value = None, None
        cache.set.side_effect = REDIS_DOWN
        assert client.get("/gpus/", HTTP_ACCEPT="text/html").status_code == 200


def test_an_api_call_whose_rate_limit_cannot_be_counted_is_let_through(client):
    with mock.patch("core.ratelimit.cache") as cache:
        cache.add.side_effect = REDIS_DOWN
        response = client.get("/api/v1/recommend?model=mixtral-8x7b-instruct-v0-1")
    # Past the throttle to the handler, which answers for this empty catalog: the limiter refused nothing.
    assert response.status_code == 404 and "Unknown model" in response.json()["detail"]
    assert cache.add.called


def test_an_error_the_cache_raises_anywhere_else_is_a_503_not_a_500(rf):
    # Anything else that reads Redis and fails while it restarts ends in the middleware's 503, never a 500.
    from gpufit.middleware import DatabaseUnavailableMiddleware

    middleware = DatabaseUnavailableMiddleware(lambda request: None)
    response = middleware.process_exception(rf.get("/gpus/", HTTP_ACCEPT="text/html"), REDIS_DOWN)
    assert response.status_code == 503 and b"cache is not answering" in response.content
    assert response["Retry-After"] == "10"


def test_a_login_whose_failure_count_cannot_be_read_is_a_503_not_a_500(client):
    with mock.patch("core.ratelimit.cache") as cache:
        cache.get_many.side_effect = REDIS_DOWN
        client.raise_request_exception = False
        response = client.post("/accounts/login/", {"username": "someone", "password": "wrong"})
    assert response.status_code == 503


# ---------------------------------------------------------------------------------------------------------
# The database restarts under a running job


def test_a_progress_report_while_the_database_is_down_does_not_stop_the_run():
    job = tiny_job()
    assert jobs.claim(job.pk, "gpufit@here")
    with mock.patch.object(BenchmarkJob.objects, "filter", side_effect=DB_DOWN):
        jobs.report_progress(job.pk, 50, "decoding")  # before the fix: OperationalError, and the run ended as an error
    jobs.report_progress(job.pk, 60, "decoding")
    job.refresh_from_db()
    assert (job.status, job.progress) == (JobStatus.RUNNING, 60)


def test_a_job_that_runs_through_a_database_restart_stores_its_result_when_the_database_is_back(monkeypatch, clock):
    job = tiny_job()
    monkeypatch.setattr("inference.tasks.engine_for", lambda name: StandInEngine(database_down_midway=True))
    monkeypatch.setattr("inference.tasks.compare_with_estimate", lambda result, **kw: result_values(job))
    finish = jobs.finish
    calls = []

    def finish_after_a_restart(*args, **kwargs):
        # The first write after the run meets the restart; the next one finds the database back.
        calls.append(args)
        if len(calls) == 1:
            raise DB_DOWN
        return finish(*args, **kwargs)

    monkeypatch.setattr("inference.jobs.finish", finish_after_a_restart)
    assert run_job.apply(args=[job.pk]).get() == "ok"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED, (job.status, job.message, job.error)
    assert BenchmarkResult.objects.filter(job=job).count() == 1
    assert len(calls) == 2 and clock.sleeps == [0.5]


def test_a_job_delivered_while_the_database_is_down_waits_for_it_instead_of_being_dropped(monkeypatch, clock):
    job = tiny_job()
    monkeypatch.setattr("inference.tasks.engine_for", lambda name: StandInEngine())
    monkeypatch.setattr("inference.tasks.compare_with_estimate", lambda result, **kw: result_values(job))
    claim = jobs.claim
    answers = iter([DB_DOWN, DB_DOWN])

    def claim_once_the_database_is_up(job_id, worker):
        failure = next(answers, None)
        if failure:
            raise failure
        return claim(job_id, worker)

    monkeypatch.setattr("inference.jobs.claim", claim_once_the_database_is_up)
    # Before the fix the task raised, Celery acknowledged the message, and the row sat queued until it was re-sent.
    assert run_job.apply(args=[job.pk]).get() == "ok"
    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and clock.sleeps == [0.5, 1.0]


def test_a_database_that_stays_down_past_the_wait_still_fails_the_task(monkeypatch, clock):
    monkeypatch.setattr("inference.jobs.DATABASE_WAIT_S", 3)
    step = mock.Mock(side_effect=DB_DOWN)
    with pytest.raises(OperationalError):
        jobs.with_database(step, "testing")
    # Waits of 0.5 s and 1 s; the next (2 s) would end at 3.5 s, past the 3 s allowed, so the error goes up.
    assert step.call_count == 3 and clock.sleeps == [0.5, 1.0]


# ---------------------------------------------------------------------------------------------------------
# Redis restarts without persistence and forgets the queued messages


class FakeRedis:
    """The two commands the broker mark needs, on a dict."""

    def __init__(self):
        self.keys: dict[str, str] = {}

    def exists(self, name: str) -> int:
        return int(name in self.keys)

    def set(self, name: str, value: str) -> bool:
        self.keys[name] = value
        return True


@pytest.fixture
def broker_redis(monkeypatch) -> FakeRedis:
    """The broker's Redis as inference.jobs reaches it, empty: what a restart without persistence leaves."""
    redis = FakeRedis()
    conn = mock.MagicMock()
    conn.__enter__.return_value.default_channel.client = redis
    monkeypatch.setattr("inference.jobs.current_app", mock.Mock(connection_for_write=lambda: conn))
    return redis


def test_the_broker_mark_tells_that_redis_lost_its_data(broker_redis):
    assert jobs.broker_forgot()  # nothing marked yet
    jobs.remember_broker()
    assert not jobs.broker_forgot()
    broker_redis.keys.clear()  # what a restart without persistence does
    assert jobs.broker_forgot()


def test_after_redis_lost_its_data_every_queued_job_is_sent_again_at_once(monkeypatch, broker_redis):
    # Queued a second ago: far younger than GPUFIT_REQUEUE_AFTER_S (900 s), which alone would leave it waiting.
    job = tiny_job(status=JobStatus.QUEUED, sent_at=timezone.now() - dt.timedelta(seconds=1))
    sent = []
    monkeypatch.setattr("inference.jobs._send", lambda job: sent.append(job.pk))
    assert jobs.requeue_stale() == 1 and sent == [job.pk]
    # The next heartbeat finds the mark: nothing is lost, nothing young is sent again.
    assert jobs.requeue_stale() == 0 and sent == [job.pk]


def test_a_re_send_cut_short_by_the_database_is_tried_again_at_the_next_heartbeat(monkeypatch, broker_redis):
    tiny_job(status=JobStatus.QUEUED, sent_at=timezone.now() - dt.timedelta(seconds=1))
    monkeypatch.setattr("inference.jobs._send", lambda job: None)
    with mock.patch.object(BenchmarkJob.objects, "filter", side_effect=DB_DOWN), pytest.raises(OperationalError):
        jobs.requeue_stale()
    assert jobs.broker_forgot()  # the loss is still known, so the next heartbeat sends the job
    assert jobs.requeue_stale() == 1


# ---------------------------------------------------------------------------------------------------------
# A persistent connection closed by a database restart while its process was idle


def test_a_connection_that_died_while_idle_is_replaced_before_the_next_request(client, postgres):
    assert connection.settings_dict["CONN_MAX_AGE"] > 0 or connection.settings_dict["CONN_MAX_AGE"] is None
    assert client.get("/api/v1/gpus").status_code == 200
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    # What a restart does to a gunicorn worker's kept connection: the server ends it, the worker does not notice.
    db = connection.settings_dict
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"] or 5432, user=db["USER"], dbname=db["NAME"], autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    close_old_connections()  # what Django runs when the next request starts (the test client leaves it out)
    client.raise_request_exception = False
    # Before CONN_HEALTH_CHECKS this request used the dead connection and was a 503 after the database was back.
    assert client.get("/api/v1/gpus").status_code == 200
