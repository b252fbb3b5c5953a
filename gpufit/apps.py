from __future__ import annotations

from django.apps import AppConfig


class SiteConfig(AppConfig):
    """The config package as an app: project-level commands (load_catalog) and the system checks."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "gpufit"
    label = "site"
    verbose_name = "gpufit site"

    def ready(self) -> None:
        # Importing registers the checks with Django's check framework.
        from gpufit import checks  # noqa: F401
