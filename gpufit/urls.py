from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from gpufit import views
from gpufit.api import api

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("gpus/", include("hardware.urls")),
    path("models/", include("models.urls")),
    path("", include("planner.urls")),
    path("benchmarks/", include("inference.urls")),
]
