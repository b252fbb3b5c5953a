"""The Celery app. Workers: `celery -A gpufit worker` (see README: running a GPU worker)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "gpufit.settings")

app = Celery("gpufit")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
