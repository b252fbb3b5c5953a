"""Load with faults on the production stack, all on this machine.

Starts a private PostgreSQL cluster and a private Redis on free ports, migrates and loads the catalog, starts
gunicorn and two Celery workers (``manage.py run_worker``, CPU devices, tiny-preset jobs), then drives a bounded
mixed load of pages, estimate API calls and benchmark triggers. During the load it kills one worker with SIGKILL
while that worker runs a job (and starts it again), kills and restarts Redis, and stops and restarts PostgreSQL
once. Afterwards it waits for the queue to drain and prints requests per second, latency, status codes by kind,
server errors and failed connections per fault window, job outcomes, how long each fault took to recover from,
and whether the targets were met.

Usage: .venv/bin/python scripts/fault_load.py --seconds 150
Needs: PostgreSQL 15 binaries (/usr/lib/postgresql/15/bin), redis-server, the project's .venv. The machine's own
PostgreSQL and Redis are not touched. Every process and the temporary folder are removed on exit (Ctrl-C too).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import http.client
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
VICTIM, OTHER = "fault-cpu", "fault-cpu2"  # worker host names; VICTIM is the one killed mid-job

# A tiny-preset CPU job: a few seconds on one core, long enough to be caught running.
JOB = {
    "preset": "tiny",
    "precision": "fp32",
    "layers": 2,
    "batch": 1,
    "prompt_tokens": 32,
    "new_tokens": 24,
    "repeats": 2,
    "target_device": "cpu",
}
MODEL = "mixtral-8x7b-instruct-v0-1"
PAGES = [
    "/",
    f"/models/{MODEL}/",
    f"/models/{MODEL}/?context={{context}}",
    f"/recommend/?model={MODEL}",
    f"/plan/?model={MODEL}",
    "/gpus/",
    "/gpus/nvidia-geforce-rtx-4090/",
]
API = [
    "/api/v1/estimate?model={model}&quant={quant}&gpu={gpu}&context={context}",
    "/api/v1/capacity?model={model}&quant={quant}&gpu={gpu}&context={context}",
    "/api/v1/recommend?model={model}&quant={quant}&budget_usd=5000&limit=10",
]
API_VALUES = {
    "model": [MODEL, "mixtral:8x7b", "llama3.1:70b"],
    "quant": ["Q4_K_M", "Q8_0", "Q6_K"],
    "gpu": ["RTX%204090", "rtx-3090", "H100%20SXM", "A100%20SXM4%2080%20GB"],
    "context": ["2048", "4096", "8192", "16384", "32768"],
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port(preferred: int) -> int:
    """Returns ``preferred`` when nothing listens there, else a port the kernel picks."""
    for port in (preferred, 0):
        with socket.socket() as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port")


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.2):
    """Returns the predicate's first true value; raises when ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        # A service that is still starting refuses connections; anything else is a real error.
        with contextlib.suppress(OSError, psycopg.Error, http.client.HTTPException):
            value = predicate()
            if value:
                return value
        time.sleep(interval_s)
    raise RuntimeError(f"timed out after {timeout_s:.0f} s waiting for {what}")


# ---------------------------------------------------------------------------------------------------------
# The stack


class Stack:
    """The private services and the app's processes, with the commands that stop and start them."""

    def __init__(self, workdir: Path, gunicorn_workers: int, heartbeat_s: int | None, requeue_after_s: int | None):
        self.dir = workdir
        self.pg_port = free_port(55432)
        self.redis_port = free_port(56379)
        self.web_port = free_port(58000)
        self.gunicorn_workers = gunicorn_workers
        self.pgdata = workdir / "pgdata"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs = workdir / "logs"
        self.logs.mkdir()
        self.as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.db_url = f"postgres://postgres@{HOST}:{self.pg_port}/gpufit"
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "REDIS_URL": f"redis://{HOST}:{self.redis_port}/0",
            "DEBUG": "0",
            "SECRET_KEY": "fault-load-" + secrets.token_urlsafe(40),
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "0",
            # Triggers and recommend calls are part of the load, not of a rate-limit test.
            "GPUFIT_RATE_JOBS": "100000/60",
            "GPUFIT_RATE_RECOMMEND": "100000/60",
            "GPUFIT_VAR_DIR": str(workdir / "var"),
            "PYTHONUNBUFFERED": "1",
        }
        for name in ("CELERY_BROKER_URL", "CACHE_URL", "GPUFIT_HEARTBEAT_S", "GPUFIT_REQUEUE_AFTER_S"):
            self.env.pop(name, None)
        # The app's defaults unless asked otherwise: the run shows how production recovers.
        if heartbeat_s:
            self.env["GPUFIT_HEARTBEAT_S"] = str(heartbeat_s)
        if requeue_after_s:
            self.env["GPUFIT_REQUEUE_AFTER_S"] = str(requeue_after_s)

    # PostgreSQL -----------------------------------------------------------------------------------------
    def init_postgres(self) -> None:
        self.pgdata.mkdir()
        if self.as_postgres:
            # initdb refuses to run as root: the cluster belongs to the postgres user.
            os.chmod(self.dir, 0o755)
            shutil.chown(self.pgdata, "postgres", "postgres")
        subprocess.run(
            [*self.as_postgres, str(PG_BIN / "initdb"), "-D", str(self.pgdata), "-U", "postgres", "-A", "trust"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start_postgres(self) -> None:
        options = f"-p {self.pg_port} -c listen_addresses={HOST} -k {self.pgdata} -c max_connections=200"
        subprocess.run(
            [*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-o", options, "start"],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop_postgres(self, mode: str = "fast") -> None:
        subprocess.run(
            [*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", mode, "stop"],
            check=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(self.db_url, connect_timeout=5) as conn:
            return conn.execute(query, params).fetchall()

    # Redis ----------------------------------------------------------------------------------------------
    def start_redis(self) -> None:
        # No persistence, as a cache-and-broker Redis is often run: a restart forgets every queue, the
        # hardest case for the broker (the job rows must bring the lost messages back).
        self._spawn(
            "redis",
            ["redis-server", "--port", str(self.redis_port), "--bind", HOST, "--save", "", "--appendonly", "no"],
            cwd=self.dir,
        )
        wait_until(self.redis_answers, 15, "redis")

    def redis_answers(self) -> bool:
        with socket.create_connection((HOST, self.redis_port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    # The app --------------------------------------------------------------------------------------------
    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [PY, "manage.py", *args], cwd=ROOT, env=self.env, check=True, capture_output=True, text=True
        )
        return done.stdout

    def start_gunicorn(self) -> None:
        cmd = [PY, "-m", "gunicorn", "gpufit.wsgi:application", "-b", f"{HOST}:{self.web_port}"]
        # The access log has each request's time on the server (%(M)s, ms), to tell a slow server from a queue.
        access = ["--access-logfile", str(self.logs / "access.log"), "--access-logformat", "%(t)s %(s)s %(M)s %(U)s"]
        self._spawn("gunicorn", [*cmd, "-w", str(self.gunicorn_workers), "--timeout", "60", *access])
        wait_until(lambda: http_get(self.web_port, "/healthz")[0] == 200, 60, "gunicorn")

    def start_worker(self, host: str) -> None:
        before = self.worker_log(host).stat().st_size if self.worker_log(host).exists() else 0
        self._spawn(f"worker-{host}", [PY, "manage.py", "run_worker", "--host", host], log_name=f"worker-{host}.log")

        proc = self.procs[f"worker-{host}"]

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"worker {host} exited with {proc.returncode}; see {self.worker_log(host)}")
            return " ready." in self.worker_log(host).read_text(errors="replace")[before:]

        wait_until(ready, 120, f"worker {host}", interval_s=0.1)

    def worker_log(self, host: str) -> Path:
        return self.logs / f"worker-{host}.log"

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)

    def _spawn(self, name: str, cmd: list[str], cwd: Path = ROOT, log_name: str | None = None) -> None:
        out = open(self.logs / (log_name or f"{name}.log"), "a")  # noqa: SIM115 - one file per process, kept open
        # A session of its own: Ctrl-C reaches this script only, which then stops every child in order.
        self.procs[name] = subprocess.Popen(
            cmd, cwd=cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def close(self) -> None:
        # The app's processes first, then the services they talk to.
        order = sorted(self.procs.items(), key=lambda item: item[0] == "redis")
        for name, proc in order:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log(f"{name} did not stop on SIGTERM; killing it")
                    proc.kill()
                    proc.wait(timeout=15)
        self.procs.clear()
        if (self.pgdata / "postmaster.pid").exists():
            self.stop_postgres("immediate")


def http_get(port: int, path: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------------
# The load


@dataclass
class Sample:
    kind: str  # page, api, job-trigger, job-read
    start: float  # seconds since the load began
    end: float
    status: int | str  # an HTTP status, or the name of the exception when no answer came
    path: str


@dataclass
class Load:
    port: int
    token: str
    t0: float  # time.monotonic() when the load began
    wall0: float  # time.time() at the same moment, to place database timestamps on the load's clock
    stop_at: float
    samples: list[Sample] = field(default_factory=list)
    job_ids: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def since_start(self, when) -> float:
        """Returns a database timestamp as seconds since the load began."""
        return when.timestamp() - self.wall0

    def request(self, conn: http.client.HTTPConnection, kind: str, method: str, path: str, body=None, headers=None):
        """Returns (connection to use next, status, body bytes); a failed connection is replaced."""
        start = self.now()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            status: int | str = response.status
        except (OSError, http.client.HTTPException) as exc:
            data, status = b"", type(exc).__name__
            conn.close()
            conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        with self.lock:
            self.samples.append(Sample(kind, start, self.now(), status, path))
        return conn, status, data

    def browse(self, seed: int) -> None:
        """One visitor: pages, estimate API calls and reads of the triggered jobs, back to back."""
        rng = random.Random(seed)
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        while time.monotonic() < self.stop_at:
            roll = rng.random()
            values = {k: rng.choice(v) for k, v in API_VALUES.items()}
            if roll < 0.5:
                kind, path = "page", rng.choice(PAGES).format(**values)
            elif roll < 0.9:
                kind, path = "api", rng.choice(API).format(**values)
            else:
                with self.lock:
                    recent = self.job_ids[-10:]
                if not recent:
                    continue
                kind, path = "job-read", f"/api/v1/benchmarks/jobs/{rng.choice(recent)}"
            conn, _, _ = self.request(
                conn, kind, "GET", path, headers={"Accept": "text/html"} if kind == "page" else None
            )

    def trigger(self, every_s: float) -> None:
        """One operator: a tiny-preset CPU job every ``every_s`` seconds, alternating the two targets."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        n = 0
        while time.monotonic() < self.stop_at:
            due = self.t0 + n * every_s
            time.sleep(max(0.0, due - time.monotonic()))
            # Every other job to the victim's own queue, so that it is busy when the kill comes; the rest to any.
            body = json.dumps({**JOB, "target_host": VICTIM if n % 2 == 0 else ""})
            conn, status, data = self.request(conn, "job-trigger", "POST", "/api/v1/benchmarks", body, headers)
            if status == 201:
                with self.lock:
                    self.job_ids.append(json.loads(data)["id"])
            n += 1


# ---------------------------------------------------------------------------------------------------------
# The faults


@dataclass
class Fault:
    name: str
    start: float  # when the service went away (seconds since the load began)
    back: float  # when it answered again
    notes: str = ""


def kill_worker_mid_job(stack: Stack, load: Load) -> Fault:
    """Returns the fault window: SIGKILL to the victim worker while its job row says running, then a restart."""
    job = wait_until(
        lambda: stack.sql(
            "SELECT id FROM inference_benchmarkjob WHERE status = 'running' AND worker = %s", (f"gpufit@{VICTIM}",)
        ),
        60,
        "a running job on the victim worker",
        interval_s=0.05,
    )[0][0]
    start = load.now()
    stack.kill(f"worker-{VICTIM}")
    log(f"killed worker {VICTIM} (SIGKILL) while it ran job {job}")
    time.sleep(2)
    stack.start_worker(VICTIM)
    return Fault("worker killed mid-job", start, load.now(), f"job {job} was running")


def restart_redis(stack: Stack, load: Load, down_s: float) -> Fault:
    """Returns the fault window: SIGKILL to Redis, ``down_s`` seconds without it, then a fresh, empty Redis."""
    start = load.now()
    stack.kill("redis")
    log("killed redis (SIGKILL)")
    time.sleep(down_s)
    stack.start_redis()
    return Fault("redis restarted (queues forgotten)", start, load.now())


def restart_postgres(stack: Stack, load: Load, down_s: float) -> Fault:
    """Returns the fault window: a fast shutdown of PostgreSQL, ``down_s`` seconds down, then a start."""
    start = load.now()
    stack.stop_postgres("fast")
    log("stopped postgresql (fast)")
    time.sleep(down_s)
    stack.start_postgres()
    return Fault("postgresql restarted", start, load.now())


# ---------------------------------------------------------------------------------------------------------
# The report


def is_failure(status: int | str) -> bool:
    """Returns whether a request failed: a 5xx answer, no answer, or none within the client's timeout."""
    return isinstance(status, str) or status >= 500


def is_refusal(status: int | str) -> bool:
    """Returns whether a request was turned away because a service was down: a 503 or a refused or broken connection.

    Recovery is measured on these. A timeout means the server was still working (a slow page on busy cores) and a
    500 is a defect whatever the time; both are counted in the window table instead.
    """
    return status == 503 or (isinstance(status, str) and status != "TimeoutError")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered else float("nan")


def counts(statuses) -> str:
    tally = collections.Counter(str(s) for s in statuses)
    return ", ".join(f"{code}: {n}" for code, n in sorted(tally.items())) or "none"


def overlaps(sample: Sample, fault: Fault) -> bool:
    return sample.end >= fault.start and sample.start <= fault.back


def report_requests(samples: list[Sample], seconds: float) -> dict:
    """Returns (and prints) request counts, rates, latency and statuses, overall and per kind."""
    answered = [(s.end - s.start) * 1000 for s in samples if isinstance(s.status, int)]
    print("\n## Requests\n")
    print(
        f"{len(samples)} requests in {seconds:.0f} s: {len(samples) / seconds:.1f} req/s; p50 "
        f"{percentile(answered, 0.5):.0f} ms, p99 {percentile(answered, 0.99):.0f} ms (over answered requests)\n"
    )
    print("| kind | requests | req/s | p50 | p99 | statuses |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    figures = {"requests": len(samples), "req_per_s": len(samples) / seconds}
    figures |= {"p50_ms": percentile(answered, 0.5), "p99_ms": percentile(answered, 0.99), "kinds": {}}
    for kind in sorted({s.kind for s in samples}):
        mine = [s for s in samples if s.kind == kind]
        ms = [(s.end - s.start) * 1000 for s in mine if isinstance(s.status, int)]
        p50, p99 = percentile(ms, 0.5), percentile(ms, 0.99)
        print(
            f"| {kind} | {len(mine)} | {len(mine) / seconds:.1f} | {p50:.0f} ms | {p99:.0f} ms | {counts(s.status for s in mine)} |"
        )
        figures["kinds"][kind] = {"requests": len(mine), "p50_ms": p50, "p99_ms": p99}
        figures["kinds"][kind]["statuses"] = dict(collections.Counter(str(s.status) for s in mine))
    return figures


def report_windows(samples: list[Sample], faults: list[Fault]) -> dict:
    """Returns (and prints) the 5xx answers and failed connections inside each fault's window and outside all."""
    print("\n## Server errors and failed connections, by fault window\n")
    print("| window | seconds of the load | requests | 5xx / no answer |")
    print("| --- | --- | ---: | --- |")
    figures, rest, windows = {}, list(samples), {}
    # A request that overlaps two windows belongs to the later fault: the one it met last.
    for fault in sorted(faults, key=lambda f: f.start, reverse=True):
        windows[fault.name] = [s for s in rest if overlaps(s, fault)]
        rest = [s for s in rest if not overlaps(s, fault)]
    for fault in faults:
        inside = windows[fault.name]
        failed = counts(s.status for s in inside if is_failure(s.status))
        print(f"| {fault.name} | {fault.start:.1f}–{fault.back:.1f} | {len(inside)} | {failed} |")
        figures[fault.name] = dict(collections.Counter(str(s.status) for s in inside if is_failure(s.status)))
    failed = counts(s.status for s in rest if is_failure(s.status))
    print(f"| outside every window | | {len(rest)} | {failed} |")
    figures["outside"] = dict(collections.Counter(str(s.status) for s in rest if is_failure(s.status)))
    odd = collections.Counter((s.status, s.path) for s in rest if s.status not in (200, 201))
    for (status, path), n in odd.most_common(5):
        print(f"  outside the windows: {n} × {status} {path}")
    return figures


def job_runs(stack: Stack) -> collections.Counter:
    """Returns, per Celery task id, how many times a worker completed a run (a claimed job, not a skip).

    Celery logs one "succeeded" line per task execution with the task's return value; run_job returns
    "skipped" when the row was not claimed, so any other value is one run of the job's benchmark.
    """
    runs: collections.Counter = collections.Counter()
    pattern = re.compile(r"run_job\[([0-9a-f-]+)\] succeeded in [0-9.e-]+s: '(\w+)'")
    for path in stack.logs.glob("worker-*.log"):
        for task_id, value in pattern.findall(path.read_text(errors="replace")):
            if value != "skipped":
                runs[task_id] += 1
    return runs


def report_jobs(stack: Stack, job_ids: list[int], drained_s: float | None) -> dict:
    """Returns (and prints) what became of every accepted trigger, from the job rows and the workers' logs."""
    rows = {}
    if job_ids:
        query = "SELECT id, status, task_id, message FROM inference_benchmarkjob WHERE id = ANY(%s)"
        rows = {pk: (status, task_id, message) for pk, status, task_id, message in stack.sql(query, (job_ids,))}
    runs = job_runs(stack)
    statuses = collections.Counter(rows[pk][0] for pk in job_ids if pk in rows)
    never = [pk for pk in job_ids if pk not in rows or rows[pk][0] in ("queued", "running")]
    twice = [pk for pk in job_ids if pk in rows and runs[rows[pk][1]] > 1]
    print("\n## Jobs\n")
    print(
        "| triggered (201) | succeeded | failed | cancelled | ended lost (worker died) | never finished | run twice |"
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(
        f"| {len(job_ids)} | {statuses['succeeded']} | {statuses['failed']} | {statuses['cancelled']} "
        f"| {statuses['lost']} | {len(never)} | {len(twice)} |"
    )
    drain = f"in {drained_s:.0f} s" if drained_s is not None else "not within the drain timeout"
    print(f"\nqueue drained {drain} after the load; completed runs in the workers' logs: {sum(runs.values())}")
    for pk in job_ids:
        if pk not in rows or rows[pk][0] != "succeeded" or pk in twice:
            status, task_id, message = rows.get(pk, ("missing", "", ""))
            print(f"  job {pk}: {status}, {runs[task_id]} completed run(s) — {message}")
    return {"triggered": len(job_ids), **statuses, "never_finished": never, "run_twice": twice}


def report_faults(stack: Stack, load: Load, faults: list[Fault], seconds: float) -> list[dict]:
    """Returns (and prints) each fault's window and how long requests and jobs took to recover from it."""
    query = "SELECT created_at, sent_at, started_at, worker FROM inference_benchmarkjob WHERE id = ANY(%s)"
    jobs = [
        JobTimes(load.since_start(created), load.since_start(sent), load.since_start(started) if started else None, who)
        for created, sent, started, who in stack.sql(query, (load.job_ids,))
    ]
    print("\n## Faults\n")
    print("| fault | at | service back after | 503 or refused once it was back | next job started | jobs sent again |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    figures = []
    for i, fault in enumerate(faults):
        until = faults[i + 1].start if i + 1 < len(faults) else seconds
        recovered = recovery_s(load.samples, fault, until)
        next_job = next_job_s(jobs, fault)
        # A job whose row was sent again after the fault: its message was lost (or might have been).
        resent = [j.sent - fault.back for j in jobs if j.sent - j.created > 1 and fault.start <= j.sent < until]
        resent_text = f"{len(resent)}, {max(resent):.1f} s after" if resent else "none"
        name = f"{fault.name} ({fault.notes})" if fault.notes else fault.name
        next_text = "never" if next_job is None else f"{next_job:.1f} s"
        print(
            f"| {name} | {fault.start:.1f} s | {fault.back - fault.start:.1f} s | {recovered:.1f} s "
            f"| {next_text} | {resent_text} |"
        )
        figures.append(
            {
                **fault.__dict__,
                "requests_recovered_s": recovered,
                "next_job_s": next_job,
                "resent": len(resent),
                "resent_after_s": max(resent, default=None),
            }
        )
    return figures


@dataclass
class JobTimes:
    created: float  # seconds since the load began
    sent: float  # last sent to the broker (the first send, or a re-send by a worker's heartbeat)
    started: float | None
    worker: str


def next_job_s(jobs: list[JobTimes], fault: Fault) -> float | None:
    """Returns seconds from the service's return to the next job started (None: none did).

    After the kill, the next job the restarted worker claims itself; after the other faults, any job.
    """
    who = f"gpufit@{VICTIM}" if fault.name.startswith("worker") else None
    starts = [j.started for j in jobs if j.started is not None and j.started >= fault.back and who in (None, j.worker)]
    return min(starts) - fault.back if starts else None


def recovery_s(samples: list[Sample], fault: Fault, until: float) -> float:
    """Returns seconds from the service's return to the end of the last refused request after it (0: none).

    Only requests that began in the fault's window or after it and ended before ``until`` (the next fault or the
    end of the load) count; timeouts do not (see is_refusal).
    """
    failed_after = [s.end for s in samples if fault.start <= s.start and s.end < until and is_refusal(s.status)]
    failed_after = [end for end in failed_after if end > fault.back]
    return max(failed_after) - fault.back if failed_after else 0.0


def report_targets(samples: list[Sample], faults: list[Fault], jobs: dict, recoveries: list[dict]) -> dict:
    """Returns (and prints) each target of the fault run and whether it was met."""
    db = next(f for f in faults if f.name.startswith("postgresql"))
    during_db = [s for s in samples if overlaps(s, db)]
    elsewhere = [s for s in samples if not overlaps(s, db)]
    # A fault after which no job started at all has not recovered; a lost message counts until it was sent again.
    slowest = max(
        max(
            r["requests_recovered_s"],
            r["resent_after_s"] or 0.0,
            float("inf") if r["next_job_s"] is None else r["next_job_s"],
        )
        for r in recoveries
    )
    targets = {
        "no job lost (every accepted job reached a final state)": not jobs["never_finished"],
        "no job run twice": not jobs["run_twice"],
        "while the database was down: 503, never 500": not any(s.status == 500 for s in during_db),
        "no 5xx outside the database-down window": not any(
            isinstance(s.status, int) and s.status >= 500 for s in elsewhere
        ),
        "requests and jobs recovered within 30 s of each restart": slowest <= 30,
    }
    print("\n## Targets\n")
    for target, met in targets.items():
        print(f"- {target}: {'met' if met else 'NOT met'}")
    return targets


# ---------------------------------------------------------------------------------------------------------


def prepare(stack: Stack) -> str:
    """Returns an operator's API token after creating the database, migrating and loading the catalog."""
    stack.init_postgres()
    stack.start_postgres()
    with psycopg.connect(f"postgres://postgres@{HOST}:{stack.pg_port}/postgres", autocommit=True) as conn:
        conn.execute("CREATE DATABASE gpufit")
    stack.start_redis()
    log("migrating and loading the catalog")
    stack.manage("migrate", "--noinput", "-v0")
    stack.manage("load_catalog")
    out = stack.manage(
        "shell",
        "-c",
        "from django.contrib.auth.models import Permission, User\n"
        "from core.models import ApiToken\n"
        "user, _ = User.objects.get_or_create(username='fault-operator')\n"
        "user.user_permissions.add(Permission.objects.get(codename='run_benchmarks'))\n"
        "print(ApiToken.objects.issue(user, 'fault load')[1])",
    )
    return out.strip().splitlines()[-1]


def run_load(stack: Stack, token: str, args: argparse.Namespace) -> tuple[Load, list[Fault]]:
    """Returns the finished load and its fault windows: visitors and an operator in threads, faults on schedule."""
    log(f"load for {args.seconds:.0f} s with {args.clients} visitors and a job every {args.job_every} s")
    heartbeat, requeue = (stack.env.get(k, "default") for k in ("GPUFIT_HEARTBEAT_S", "GPUFIT_REQUEUE_AFTER_S"))
    log(
        f"gunicorn workers: {args.gunicorn_workers}; GPUFIT_HEARTBEAT_S: {heartbeat}; GPUFIT_REQUEUE_AFTER_S: {requeue}"
    )
    t0 = time.monotonic()
    load = Load(stack.web_port, token, t0, time.time(), t0 + args.seconds)
    threads = [threading.Thread(target=load.browse, args=(i,), daemon=True) for i in range(args.clients)]
    threads.append(threading.Thread(target=load.trigger, args=(args.job_every,), daemon=True))
    for thread in threads:
        thread.start()
    schedule = [
        (0.2, lambda: kill_worker_mid_job(stack, load)),
        (0.45, lambda: restart_redis(stack, load, args.redis_down)),
        (0.7, lambda: restart_postgres(stack, load, args.db_down)),
    ]
    faults = []
    for at, action in schedule:
        time.sleep(max(0.0, t0 + at * args.seconds - time.monotonic()))
        fault = action()
        log(f"{fault.name}: back after {fault.back - fault.start:.1f} s")
        faults.append(fault)
    for thread in threads:
        thread.join()
    return load, faults


def drain(stack: Stack, job_ids: list[int], timeout_s: float) -> float | None:
    """Returns the seconds until no accepted job was queued or running any more; None past ``timeout_s``."""
    log(f"load over; waiting up to {timeout_s:.0f} s for the queue to drain")
    query = "SELECT 1 FROM inference_benchmarkjob WHERE status IN ('queued', 'running') AND id = ANY(%s)"
    begin = time.monotonic()
    try:
        wait_until(lambda: not stack.sql(query, (job_ids,)), timeout_s, "the queue to drain", interval_s=1)
    except RuntimeError:
        return None
    return time.monotonic() - begin


def stop_on_sigterm(_signum, _frame) -> None:
    raise KeyboardInterrupt  # SIGTERM ends the run like Ctrl-C: through main()'s clean-up


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=150, help="length of the load (default 150)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent visitors (default 4)")
    parser.add_argument("--job-every", type=float, default=4.0, help="seconds between job triggers (default 4)")
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--redis-down", type=float, default=3.0, help="seconds Redis stays down (default 3)")
    parser.add_argument("--db-down", type=float, default=5.0, help="seconds PostgreSQL stays down (default 5)")
    parser.add_argument("--heartbeat", type=int, help="GPUFIT_HEARTBEAT_S for the workers (default: the app's, 30)")
    parser.add_argument("--requeue-after", type=int, help="GPUFIT_REQUEUE_AFTER_S (default: the app's, 900)")
    parser.add_argument("--drain-timeout", type=float, default=240, help="seconds to wait for the queue (240)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs) on exit")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="gpufit-fault-"))
    stack = Stack(workdir, args.gunicorn_workers, args.heartbeat, args.requeue_after)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    try:
        log(f"working in {workdir}: postgres :{stack.pg_port}, redis :{stack.redis_port}, web :{stack.web_port}")
        token = prepare(stack)
        stack.start_gunicorn()
        for host in (VICTIM, OTHER):
            stack.start_worker(host)
        # Warm each gunicorn worker's catalog frame so the first seconds measure the stack, not cold caches.
        for path in PAGES[:2]:
            for _ in range(args.gunicorn_workers):
                http_get(stack.web_port, path.format(context=4096))
        load_before = os.getloadavg()
        load, faults = run_load(stack, token, args)
        drained_s = drain(stack, load.job_ids, args.drain_timeout)
        figures = {
            "requests": report_requests(load.samples, args.seconds),
            "windows": report_windows(load.samples, faults),
            "jobs": report_jobs(stack, load.job_ids, drained_s),
            "faults": report_faults(stack, load, faults, args.seconds),
        }
        figures["targets"] = report_targets(load.samples, faults, figures["jobs"], figures["faults"])
        figures["load_average"] = {"before": load_before, "after": os.getloadavg()}
        print(f"\nload average (1, 5, 15 min) before: {load_before}, after: {os.getloadavg()}")
        if args.json:
            figures["samples"] = [sample.__dict__ for sample in load.samples]
            args.json.write_text(json.dumps(figures, indent=2, default=str))
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        stack.close()
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
