from __future__ import annotations

from django.urls import path

from models import views

app_name = "models"
urlpatterns = [
    path("", views.model_list, name="model_list"),
    path("<slug:slug>/", views.model_detail, name="model_detail"),
]
