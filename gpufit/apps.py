from __future__ import annotations

from django.apps import AppConfig


class GpufitConfig(AppConfig):
    """The project's own app: API tokens, the catalog change history and the system checks."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "gpufit"
    verbose_name = "gpufit"

    def ready(self) -> None:
        # Importing registers the checks with Django's check framework.
        from gpufit import checks  # noqa: F401
