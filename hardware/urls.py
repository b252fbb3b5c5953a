from __future__ import annotations

from django.urls import path

from hardware import views

app_name = "hardware"
urlpatterns = [
    path("", views.gpu_list, name="gpu_list"),
    path("<slug:slug>/", views.gpu_detail, name="gpu_detail"),
]
