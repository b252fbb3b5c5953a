"""System checks: stable ids and hints for broker, time limits and rates."""

from __future__ import annotations

from gpufit import checks


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_an_unreachable_redis_broker_is_e001(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    found = checks.check_broker_reachable()
    assert ids(found) == ["gpufit.E001"] and found[0].hint


def test_a_filesystem_broker_needs_no_server(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    assert checks.check_broker_reachable() == []


def test_a_visibility_timeout_within_the_hard_limit_is_e002(settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
    settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_TASK_SOFT_TIME_LIMIT = 3600, 3300
    assert ids(checks.check_visibility_timeout()) == ["gpufit.E002"]
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7200}
    assert checks.check_visibility_timeout() == []


def test_a_soft_limit_not_below_the_hard_one_is_w004(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_TASK_TIME_LIMIT, settings.CELERY_TASK_SOFT_TIME_LIMIT = 600, 600
    assert ids(checks.check_visibility_timeout()) == ["gpufit.W004"]


def test_pynvml_missing_on_a_gpu_host_is_w003(monkeypatch, tmp_path):
    driver = tmp_path / "version"
    driver.write_text("NVRM version: 550")
    monkeypatch.setattr(checks, "NVIDIA_DRIVER_PATHS", (str(driver),))
    monkeypatch.setattr(checks.importlib.util, "find_spec", lambda name: None)
    assert ids(checks.check_pynvml_on_gpu_host()) == ["gpufit.W003"]
    monkeypatch.setattr(checks, "NVIDIA_DRIVER_PATHS", (str(tmp_path / "absent"),))
    assert checks.check_pynvml_on_gpu_host() == []


def test_a_malformed_rate_is_e005(settings):
    settings.GPUFIT_RATE_JOBS = "thirty a minute"
    assert ids(checks.check_rates()) == ["gpufit.E005"]
