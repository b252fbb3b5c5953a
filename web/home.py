from __future__ import annotations

from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from hardware.models import GPU
from models.models import LanguageModel


def home(request):
    context = {
        "gpu_count": GPU.objects.count(),
        "model_count": LanguageModel.objects.count(),
        "models": LanguageModel.objects.order_by("name")[:40],
    }
    return render(request, "home.html", context)


def healthz(request):
    """Returns 200 when the database answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy"
        return JsonResponse({"ok": False, "database": str(exc)[:200]}, status=503)
    return JsonResponse({"ok": True})
