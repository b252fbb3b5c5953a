"""The recommender, the build planner and the compare page: a form checks the inputs, a service ranks, a template shows."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
from django.http import HttpResponse
from django.shortcuts import render

from core.csvsafe import write_csv
from hardware.models import GPU
from inference.results import measured_results
from physics.builds import build_problem, engine_for
from physics.estimator import Build, estimate, rank_builds, rank_gpus
from planner import charts
from planner.calibration import calibration_factors
from planner.forms import BEST, BasisForm, CompareForm, PlanForm, RecommendForm, WorkloadFields
from planner.inputs import gpu_spec, model_arch, quant_of
from planner.pagecache import catalog_page
from planner.services import (
    CSV_COLUMNS,
    TABLE_LIMIT,
    _best_per_gpu,
    _records,
    gpu_frame_for,
    gpu_ranking,
    model_capacity,
    workload_of,
)


def _form_context(form: WorkloadFields) -> dict:
    return {"form": form, "errors": form.errors}


def _status(request, form: WorkloadFields) -> int:
    # An htmx request gets 400 with the form's messages (the page swaps them in); a full page stays 200.
    return 400 if (request.headers.get("HX-Request") and form.errors) else 200


# ----------------------------------------------------------------------------------------------------------
# Recommender


@catalog_page
def recommend(request):
    form = RecommendForm.from_query(request.GET)
    context: dict = {"form": form, "columns": RecommendForm.base_fields["sort"].choices}
    if form.is_valid():
        data = form.cleaned_data
        ranking = gpu_ranking(
            data["model"], data, list(measured_results(data["model"], workload_of(data).backend)), sort="speed"
        )
        frame = ranking.frame.sort_values(
            data["sort"], ascending=data["order"] == "asc", na_position="last", kind="stable"
        )
        if request.GET.get("format") == "csv":
            return _csv_response(frame, f"gpufit-{data['model'].slug}-{data['quant'].lower()}.csv")
        context.update(
            model=data["model"],
            data=data,
            rows=_records(frame, TABLE_LIMIT),
            total=len(frame),
            ranking=ranking,
            query=request.GET.urlencode(),
        )
    template = "planner/_recommend_results.html" if request.headers.get("HX-Request") else "planner/recommend.html"
    return render(request, template, context, status=_status(request, form))


def _csv_response(frame: pd.DataFrame, filename: str) -> HttpResponse:
    """Returns the ranking as a CSV download; GPU names come from editable rows, so cells are formula-safe."""
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    table = frame.reindex(columns=CSV_COLUMNS)
    # Missing values of any dtype (NaN, None, pd.NA) become None, which the writer leaves empty.
    table = table.astype(object).where(table.notna(), None)
    write_csv(response, CSV_COLUMNS, table.itertuples(index=False, name=None), float_format="%.4g")
    return response


# ----------------------------------------------------------------------------------------------------------
# Build planner

PLAN_SORTS = {"price": ("total_price_usd", True), "speed": ("decode_tok_s", False), "value": ("usd_per_tok_s", True)}


@catalog_page
def plan(request):
    form = PlanForm.from_query(request.GET)
    context: dict = {"form": form}
    if form.is_valid():
        data = form.cleaned_data
        arch = model_arch(data["model"])
        # Builds are about buying: only cards with a price are combined.
        frame = gpu_frame_for(data)
        frame = frame[frame["price_usd"].notna()]
        builds = rank_builds(
            arch,
            quant_of(data["quant_row"]),
            frame,
            workload_of(data),
            calibration_factors(),
            max_gpus=data["max_gpus"],
            splits=data["split"],
            offload_ram_gb=data["ram_gb"],
            ram_bandwidth_gb_s=data["ram_bandwidth_gb_s"],
            include_offload=data["offload"],
        )
        if data.get("budget_usd") is not None:
            # The API's rule: a build's total price within the budget; a build without a price is left out.
            builds = builds[pd.to_numeric(builds["total_price_usd"], errors="coerce") <= data["budget_usd"]]
        column, ascending = PLAN_SORTS.get(request.GET.get("sort", "price"), PLAN_SORTS["price"])
        builds = builds.sort_values(column, ascending=ascending, na_position="last", kind="stable")
        context.update(
            model=data["model"],
            data=data,
            builds=_records(builds, TABLE_LIMIT),
            total=len(builds),
            query=request.GET.urlencode(),
            sort=request.GET.get("sort", "price"),
            chart=charts.builds_scatter(builds.head(TABLE_LIMIT)),
        )
    template = "planner/_plan_results.html" if request.headers.get("HX-Request") else "planner/plan.html"
    return render(request, template, context, status=_status(request, form))


@catalog_page
def plan_basis(request):
    """The estimator's full answer (basis, notes, memory, serving capacity) for one build of the planner's table;
    with ``part=capacity``, the serving capacity alone (the planner loads the first build's after the page)."""
    form = BasisForm.from_query(request.GET)
    if not form.is_valid():
        return render(request, "planner/_basis.html", {"form": form}, status=400)
    data = form.cleaned_data
    gpu = data["gpu"]
    arch, quant = model_arch(data["model"]), quant_of(data["quant_row"])
    problem = build_problem(arch, quant.kind, quant.name, data["count"], data["split_one"])
    if problem:
        form.add_error(None, problem)
        return render(request, "planner/_basis.html", {"form": form}, status=400)
    if request.GET.get("part") == "capacity":
        context = {"form": form, "gpu": gpu, "data": data}
        context["capacity"] = _capacity(data, gpu, data["count"], data["split_one"])
        return render(request, "planner/_capacity.html", context)
    spec = gpu_spec(gpu)
    if data["price_basis"] == "launch" and gpu.launch_price_usd is not None:
        spec = replace(spec, price_usd=gpu.launch_price_usd)
    build = Build(
        gpu=spec,
        count=data["count"],
        split=data["split_one"],
        offload_ram_gb=data["ram_gb"] if data["offload"] else 0.0,
        ram_bandwidth_gb_s=data["ram_bandwidth_gb_s"] if data["offload"] else 0.0,
    )
    workload = workload_of(data)
    workload = replace(workload, backend=engine_for(quant.kind, build.split, build.count, workload.backend))
    result = estimate(arch, quant, build, workload, calibration_factors(), data["model"].hf_repo)
    context = {
        "form": form,
        "gpu": gpu,
        "build": build,
        "estimate": result,
        "basis": sorted(result.basis.items()),
        "capacity": _capacity(data, gpu, data["count"], data["split_one"]),
    }
    return render(request, "planner/_basis.html", context)


def _capacity(data: dict, gpu: GPU, count: int, split: str):
    """Returns the serving capacity of count x gpu for the planner's model, format, context and offload."""
    return model_capacity(
        data["model"],
        data["quant_row"].quant.name,
        gpu,
        count,
        data["context"],
        data["min_tok_s"],
        split=split,
        offload_ram_gb=data["ram_gb"] if data["offload"] else 0.0,
        ram_bandwidth_gb_s=data["ram_bandwidth_gb_s"],
        kv_cache=data["kv_cache"],
    )


# ----------------------------------------------------------------------------------------------------------
# Compare


@catalog_page
def compare(request):
    form = CompareForm.from_query(request.GET)
    context: dict = {"form": form}
    if form.is_valid():
        data = form.cleaned_data
        gpus = data["gpus"]
        model = data["model"]
        ranked = rank_gpus(
            model_arch(model),
            [quant_of(data["quant_row"])] if data["quant"] != BEST else [quant_of(r) for r in model.vram_rows.all()],
            gpu_frame_for(data, GPU.objects.filter(pk__in=[g.pk for g in gpus])),
            workload_of(data),
            calibration_factors(),
        )
        if data["quant"] == BEST:
            ranked = _best_per_gpu(ranked)
        by_id = {row["id"]: row for row in _records(ranked, len(ranked))}
        columns = [(gpu, by_id.get(gpu.pk)) for gpu in gpus]
        context.update(model=model, data=data, columns=columns, chart=charts.compare_bars(ranked))
    return render(request, "planner/compare.html", context, status=_status(request, form))
