from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render

from hardware.models import GPU, Listing, Segment, Vendor
from inference.models import BenchmarkResult
from physics.estimator import Workload
from planner import published
from planner.forms import AnyCaseChoiceField
from planner.pagecache import catalog_page
from planner.services import gpu_models
from web.fragments import model_rows, published_section


class GPUFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=80)
    vendor = AnyCaseChoiceField(label="Vendor", required=False, choices=[("", "Any")] + Vendor.choices)
    segment = AnyCaseChoiceField(label="Segment", required=False, choices=[("", "Any")] + Segment.choices)
    min_memory_gb = forms.FloatField(label="Min memory (GB)", required=False, min_value=0, max_value=10000)
    curated = forms.BooleanField(label="Curated only", required=False)


def _filter_query(form: GPUFilterForm) -> str:
    """Returns the form's filters as a URL-encoded query string (no page), for the pagination links.

    Only the form's own fields are carried over, each key and value encoded: a stray key in the request can
    neither break the links nor smuggle parameters into them.
    """
    query = QueryDict(mutable=True)
    for name in form.fields:
        value = form.data.get(name, "")
        if value != "":
            query[name] = value
    return query.urlencode()


@catalog_page
def gpu_list(request):
    form = GPUFilterForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        # A filter that cannot be applied: its message and no list, rather than the whole catalog beside it.
        return render(request, "hardware/gpu_list.html", {"form": form}, status=400)
    gpus = GPU.objects.all()
    if form.is_bound:
        data = form.cleaned_data
        if data["q"]:
            gpus = gpus.filter(name__icontains=data["q"])
        if data["vendor"]:
            gpus = gpus.filter(vendor=data["vendor"])
        if data["segment"]:
            gpus = gpus.filter(segment=data["segment"])
        if data["min_memory_gb"] is not None:
            gpus = gpus.filter(memory_gb__gte=data["min_memory_gb"])
        if data["curated"]:
            gpus = gpus.curated()
    page = Paginator(gpus.order_by("-memory_gb", "name"), 100).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "total": gpus.count(), "filters": _filter_query(form)}
    return render(request, "hardware/gpu_list.html", context)


class GPUModelsForm(forms.Form):
    """The GPU page's workload: context and concurrent users for every model on this card."""

    context = forms.IntegerField(label="Context (tokens)", initial=4096, min_value=256, max_value=1_048_576)
    users = forms.IntegerField(label="Concurrent users", initial=1, min_value=1, max_value=256)
    fits_only = forms.BooleanField(label="Only what fits", required=False, initial=True)
    every_format = forms.BooleanField(label="Every format", required=False, initial=False)


@catalog_page
def gpu_detail(request, slug: str):
    gpu = get_object_or_404(GPU.objects.prefetch_related("aliases"), slug=slug)
    if gpu.listing == Listing.DUPLICATE:
        # One product, one page: a duplicate row's address (a die code or board suffix of another row) answers with
        # the row kept in its place, which holds the duplicate's names as aliases.
        kept = GPU.objects.resolve(gpu.name)
        if kept is not None and kept.pk != gpu.pk:
            query = request.GET.urlencode()
            return redirect(kept.get_absolute_url() + (f"?{query}" if query else ""))
    query = {"context": 4096, "users": 1, "fits_only": "on", **request.GET.dict()}
    if "context" in request.GET and "fits_only" not in request.GET:
        query.pop("fits_only")  # the form was submitted with the box cleared
    form = GPUModelsForm(query)
    context: dict = {"gpu": gpu, "form": form}
    if form.is_valid():
        data = form.cleaned_data
        table = gpu_models(
            gpu,
            Workload(context=data["context"], batch=data["users"]),
            fits_only=data["fits_only"],
            every_format=data["every_format"],
        )
        context.update(
            rows=table.rows,
            rows_html=model_rows(table.rows),
            fit_count=table.fit_count,
            row_count=table.row_count,
            chart=table.chart,
            measured=BenchmarkResult.objects.filter(gpu=gpu, status="ok")
            .select_related("job", "job__model")
            .order_by("-created_at"),
            data=data,
        )
    context["published_html"] = published_section(f"gpu:{gpu.pk}", published.for_gpu(gpu), show_model=True)
    return render(request, "hardware/gpu_detail.html", context)
