from __future__ import annotations

from django.urls import path

from inference import views

app_name = "inference"
urlpatterns = [
    path("", views.benchmarks, name="benchmarks"),
    path("new/", views.new_job, name="new_job"),
    path("estimate/", views.preview_estimate, name="preview_estimate"),
    path("validation/", views.validation, name="validation"),
    path("jobs/<int:pk>/", views.job_detail, name="job_detail"),
    path("jobs/<int:pk>/status/", views.job_status, name="job_status"),
    path("jobs/<int:pk>/cancel/", views.cancel_job, name="cancel_job"),
    path("results/<int:pk>/calibrate/", views.fold_result, name="fold_result"),
]
