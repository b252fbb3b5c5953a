"""Benchmark pages: hosts and jobs, the trigger form (operators), live job pages, validation and calibration."""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inference import jobs
from inference.calibration import fit_calibration, validation_summary
from inference.forms import BenchmarkJobForm
from inference.models import BenchmarkJob, BenchmarkResult, WorkerHost
from inference.results import device_row, device_spec_for, estimate_job

RUN_PERMISSION = "inference.run_benchmarks"


def benchmarks(request):
    hosts = WorkerHost.objects.prefetch_related("devices__gpu", "engines")
    job_list = BenchmarkJob.objects.select_related("result", "requested_by", "model")[:50]
    results = BenchmarkResult.objects.select_related("job", "job__model", "gpu").filter(status__in=["ok", "oom"])[:50]
    context = {
        "hosts": hosts,
        "jobs": job_list,
        "results": results,
        "form": BenchmarkJobForm() if request.user.has_perm(RUN_PERMISSION) else None,
    }
    return render(request, "inference/benchmarks.html", context)


@login_required
@permission_required(RUN_PERMISSION, raise_exception=True)
def new_job(request):
    form = BenchmarkJobForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        job = form.save(commit=False)
        job.requested_by = request.user
        jobs.submit(job)
        messages.success(request, f"Job {job.pk} queued on {job.queue}.")
        return redirect(job)
    return render(request, "inference/new_job.html", {"form": form})


@login_required
@permission_required(RUN_PERMISSION, raise_exception=True)
def preview_estimate(request):
    """Returns the estimate partial for the form's current values (htmx), before the job is sent."""
    form = BenchmarkJobForm(request.GET or None)
    if not form.is_valid():
        return render(request, "inference/_estimate.html", {"form": form}, status=400)
    job = form.save(commit=False)
    device = device_row(job.target_host, job.target_device) if job.target_host else None
    if device is None:
        return render(request, "inference/_estimate.html", {"form": form, "unknown_device": True})
    est = estimate_job(job, device_spec_for(device))
    return render(request, "inference/_estimate.html", {"form": form, "estimate": est, "device": device, "job": job})


def job_detail(request, pk: int):
    job = get_object_or_404(BenchmarkJob.objects.select_related("requested_by", "model"), pk=pk)
    result = BenchmarkResult.objects.filter(job=job).select_related("gpu").first()
    context = {
        "job": job,
        "private": job.private_visible_to(request.user),
        "result": result,
        "can_cancel": _may_cancel(request.user, job) and job.is_active,
        "can_fold": request.user.is_staff and result is not None and result.status == "ok",
        "chart": _chart(result) if result else None,
    }
    return render(request, "inference/job_detail.html", context)


def job_status(request, pk: int):
    """Returns the live part of a job page (polled by htmx while the job is queued or running)."""
    job = get_object_or_404(BenchmarkJob, pk=pk)
    context = {"job": job, "private": job.private_visible_to(request.user)}
    response = render(request, "inference/_job_status.html", context)
    if not job.is_active:
        # Tell htmx to reload the page once, so the result and chart appear.
        response["HX-Refresh"] = "true"
    return response


def _may_cancel(user, job: BenchmarkJob) -> bool:
    return user.has_perm(RUN_PERMISSION) and job.private_visible_to(user)


@login_required
@require_POST
def cancel_job(request, pk: int):
    job = get_object_or_404(BenchmarkJob, pk=pk)
    if not _may_cancel(request.user, job):
        raise PermissionDenied("Only the operator who requested the job, or staff, may cancel it.")
    if jobs.cancel(job):
        messages.success(request, f"Job {job.pk} cancelled.")
    else:
        messages.error(request, f"Job {job.pk} had already ended.")
    return redirect(job)


@login_required
@require_POST
def fold_result(request, pk: int):
    if not request.user.is_staff:
        raise PermissionDenied("Only catalog editors may change calibration.")
    result = get_object_or_404(BenchmarkResult, pk=pk, status="ok")
    BenchmarkResult.objects.filter(pk=result.pk).update(folded_into_calibration=True)
    changed = fit_calibration()
    messages.success(request, f"Result folded into calibration; {changed} calibration row(s) refitted.")
    return redirect("inference:validation")


def validation(request):
    return render(request, "inference/validation.html", validation_summary())


def _chart(result: BenchmarkResult) -> str | None:
    """Returns a plotly figure (JSON) of measured vs estimated speeds, or None when nothing was measured.

    The estimate is the one stored with the result: made for the engine that ran it, on the same device.
    """
    if result.status != "ok":
        return None
    labels = ["decode tok/s", "prefill tok/s"]
    figure = {
        "data": [
            {
                "type": "bar",
                "name": f"measured ({result.engine_label})",
                "x": labels,
                "y": [result.decode_tok_s, result.prefill_tok_s],
            },
            {
                "type": "bar",
                "name": f"estimated ({result.engine})",
                "x": labels,
                "y": [result.estimated_decode_tok_s, result.estimated_prefill_tok_s],
            },
        ],
        "layout": {
            "barmode": "group",
            "height": 320,
            "margin": {"t": 20, "b": 40, "l": 60, "r": 20},
            "yaxis": {"type": "log"},
        },
    }
    return json.dumps(figure)
