"""Settings: production refuses unsafe values; misconfiguration is a clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    # Only what a production process would see: no test-run flags (the browser tests allow async-unsafe calls).
    dropped = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    clean = {k: v for k, v in os.environ.items() if k not in dropped}
    clean.update(env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=120
    )


def test_it_refuses_to_start_without_a_secret_key_when_debug_is_off():
    result = run_manage("check", DEBUG="0", ALLOWED_HOSTS="gpufit.example")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_it_refuses_an_empty_allowed_hosts_when_debug_is_off():
    result = run_manage("check", DEBUG="0", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "ALLOWED_HOSTS is empty" in result.stderr


def test_it_rejects_a_debug_value_that_is_not_a_boolean():
    result = run_manage("check", DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG='maybe' is not a boolean" in result.stderr


def test_production_settings_pass_the_deploy_check():
    key = "k3y-" + "q8Z!r2@x7#Lm9$Vb" * 4
    result = run_manage(
        "check", "--deploy", "--fail-level", "WARNING", DEBUG="0", SECRET_KEY=key, ALLOWED_HOSTS="gpufit.example"
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_development_defaults_start():
    result = run_manage("check", DEBUG="1")
    assert result.returncode == 0, result.stderr
