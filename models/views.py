from __future__ import annotations

from django.shortcuts import get_object_or_404, render

from models.models import LanguageModel


def model_list(request):
    models = LanguageModel.objects.order_by("family", "total_params")
    return render(request, "models/model_list.html", {"models": models})


def model_detail(request, slug: str):
    model = get_object_or_404(LanguageModel.objects.with_table(), slug=slug)
    return render(request, "models/model_detail.html", {"model": model, "vram_rows": model.vram_rows.all()})
