"""The front door: two questions ("I want to run…", "I have…"), their suggestions, and the health check."""

from __future__ import annotations

import json
from functools import lru_cache
from urllib.parse import urlencode

from django.db import connection
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string

from hardware.apple import configurations, parse_apple
from hardware.models import GPU
from models.models import LanguageModel
from models.resolver import resolve_model
from physics.fit import FITTED
from planner.forms import PasteForm

SUGGESTIONS = 8
# Shortcuts under the boxes: what people most often ask about (the reference page's model and common rigs).
POPULAR_MODELS = ["mixtral:8x7b", "llama3.1:8b", "llama3.1:70b", "qwen3:30b-a3b", "gpt-oss:20b", "deepseek-r1"]
POPULAR_MACHINES = [
    ("One RTX 3090", "gpu=rtx-3090&ram=64"),
    ("Two RTX 3090s", "gpu=rtx-3090&count=2&ram=64"),
    ("RTX 4090", "gpu=rtx-4090&ram=64"),
    ("Mac with M2 Max, 64 GB", "gpu=apple-m2-max-38-core-gpu-64-gb"),
]


def _shipped_report() -> list[dict]:
    """Returns the shipped fit's leave-one-source-out report (physics/data/fitted.json), [] when it cannot be read;
    read once per version of the file (the home page shows its headline on every view)."""
    try:
        return _read_report(FITTED.stat().st_mtime_ns)
    except OSError:
        return []


@lru_cache(maxsize=2)
def _read_report(version: int) -> list[dict]:
    try:
        return json.loads(FITTED.read_text(encoding="utf-8"))["report"]
    except (OSError, ValueError, KeyError):
        return []


def _headline(report: list[dict]) -> dict[str, dict]:
    """Returns the report's all-rows decode and prefill lines by name ("decode", "prefill"), those it holds."""
    lines = {"decode, batch 1, all": "decode", "prefill, all": "prefill"}
    return {lines[r["set"]]: r for r in report if r.get("set") in lines}


def home(request):
    context = {
        "accuracy": _headline(_shipped_report()),
        "gpu_count": GPU.objects.ranked().count(),
        "model_count": LanguageModel.objects.count(),
        "popular_models": POPULAR_MODELS,
        "popular_machines": POPULAR_MACHINES,
        "paste": PasteForm(),
    }
    return render(request, "home.html", context)


def method(request):
    """Shows how estimates are made and the leave-one-source-out accuracy report of the measurement fit."""
    return render(request, "method.html", {"report": _shipped_report()})


def find_model(request):
    """Opens the page of the model a visitor typed, or lists the candidates when the name is not one model."""
    name = request.GET.get("name", "").strip()[:200]
    if not name:
        return redirect("models:model_list")
    found = resolve_model(name)
    if found.latest_tag:
        # The page says how the name was read and offers the other models it fits.
        return redirect(f"{found.model.get_absolute_url()}?{urlencode({'named': name})}")
    if found.model is not None:
        return redirect(found.model.get_absolute_url())
    # Several models (a family name) is an answer, not an error: the candidates, each a link.
    status = 200 if found.candidates else 404
    return render(request, "home_candidates.html", {"name": name, "found": found}, status=status)


def suggest_models(request):
    """Returns <option>s for the model box: names, aliases and Ollama tags containing what was typed."""
    q = request.GET.get("name", "").strip()[:80]
    models = LanguageModel.objects.none()
    if len(q) >= 2:
        models = (
            LanguageModel.objects.filter(Q(name__icontains=q) | Q(aliases__name__icontains=q) | Q(slug__icontains=q))
            .distinct()
            .order_by("name")[:SUGGESTIONS]
        )
    return _options([m.name for m in models])


def suggest_gpus(request):
    """Returns <option>s for the GPU box: ranked catalog GPUs whose name or alias contains what was typed; for a
    Mac's name ("M2 Max 64"), the configurations of its chip that fit what was typed."""
    q = request.GET.get("gpu", "").strip()[:80]
    gpus = GPU.objects.none()
    # "M2 Max 64" is a size being typed: read it as 64 GB.
    apple = parse_apple(q) or (parse_apple(f"{q} GB") if q[-1:].isdigit() else None)
    if apple is not None:
        rows = [
            g
            for g in configurations(apple.chip)
            if (apple.memory_gb is None or g.memory_gb == apple.memory_gb)
            and (apple.gpu_cores is None or f"({apple.gpu_cores}-core GPU)" in g.name)
        ]
        if rows:
            return _options([g.name for g in rows[:SUGGESTIONS]])
    if len(q) >= 2:
        gpus = (
            GPU.objects.ranked()
            .filter(Q(name__icontains=q) | Q(aliases__name__icontains=q) | Q(slug__icontains=q.replace(" ", "-")))
            .distinct()
            .order_by("-memory_bandwidth_gb_s")[:SUGGESTIONS]
        )
    return _options([g.name for g in gpus])


def _options(values: list[str]) -> HttpResponse:
    return HttpResponse(render_to_string("partials/_options.html", {"values": values}))


def healthz(request):
    """Returns 200 when the database answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # any database failure means "not healthy"
        return JsonResponse({"ok": False, "database": str(exc)[:200]}, status=503)
    return JsonResponse({"ok": True})
