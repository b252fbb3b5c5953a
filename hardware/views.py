from __future__ import annotations

from django import forms
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, render

from hardware.models import GPU, Segment, Vendor


class GPUFilterForm(forms.Form):
    q = forms.CharField(label="Search", required=False, max_length=80)
    vendor = forms.ChoiceField(label="Vendor", required=False, choices=[("", "Any")] + Vendor.choices)
    segment = forms.ChoiceField(label="Segment", required=False, choices=[("", "Any")] + Segment.choices)
    min_memory_gb = forms.FloatField(label="Min memory (GB)", required=False, min_value=0, max_value=10000)
    curated = forms.BooleanField(label="Curated only", required=False)


def gpu_list(request):
    form = GPUFilterForm(request.GET or None)
    gpus = GPU.objects.all()
    if form.is_valid():
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
    return render(request, "hardware/gpu_list.html", {"form": form, "page": page, "total": gpus.count()})


def gpu_detail(request, slug: str):
    gpu = get_object_or_404(GPU.objects.prefetch_related("aliases"), slug=slug)
    return render(request, "hardware/gpu_detail.html", {"gpu": gpu})
