"""Every page's URL. The namespaces are the pages' areas, so templates keep `{% url 'hardware:gpu_detail' %}`."""

from __future__ import annotations

from django.urls import include, path

from web import benchmarks, gpus, home, llms, machine, planner
from web.api import api

gpu_urls = [
    path("", gpus.gpu_list, name="gpu_list"),
    path("<slug:slug>/", gpus.gpu_detail, name="gpu_detail"),
]
model_urls = [
    path("", llms.model_list, name="model_list"),
    # Any name a person types (an alias, an Ollama tag, a repo id) resolves, then redirects to the slug.
    path("<path:slug>/", llms.model_detail, name="model_detail"),
]
planner_urls = [
    path("recommend/", planner.recommend, name="recommend"),
    path("plan/", planner.plan, name="plan"),
    path("plan/basis/", planner.plan_basis, name="plan_basis"),
    path("compare/", planner.compare, name="compare"),
]
benchmark_urls = [
    path("", benchmarks.benchmarks, name="benchmarks"),
    path("new/", benchmarks.new_job, name="new_job"),
    path("estimate/", benchmarks.preview_estimate, name="preview_estimate"),
    path("validation/", benchmarks.validation, name="validation"),
    path("jobs/<int:pk>/", benchmarks.job_detail, name="job_detail"),
    path("jobs/<int:pk>/status/", benchmarks.job_status, name="job_status"),
    path("jobs/<int:pk>/cancel/", benchmarks.cancel_job, name="cancel_job"),
    path("results/<int:pk>/calibrate/", benchmarks.fold_result, name="fold_result"),
]

urlpatterns = [
    path("", home.home, name="home"),
    path("healthz", home.healthz, name="healthz"),
    path("machine/", machine.machine, name="machine"),
    path("machine/paste/", machine.paste, name="machine_paste"),
    path("find/", home.find_model, name="find_model"),
    path("method/", home.method, name="method"),
    path("suggest/models", home.suggest_models, name="suggest_models"),
    path("suggest/gpus", home.suggest_gpus, name="suggest_gpus"),
    path("api/v1/", api.urls),
    path("gpus/", include((gpu_urls, "hardware"))),
    path("models/", include((model_urls, "models"))),
    path("", include((planner_urls, "planner"))),
    path("benchmarks/", include((benchmark_urls, "inference"))),
]
