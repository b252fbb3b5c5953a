from __future__ import annotations

from django.urls import path

from planner import views

app_name = "planner"
urlpatterns = [
    path("recommend/", views.recommend, name="recommend"),
    path("plan/", views.plan, name="plan"),
    path("plan/basis/", views.plan_basis, name="plan_basis"),
    path("compare/", views.compare, name="compare"),
]
