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
        from physics.allocator import keep_freed_memory

        # Every process of the site (web server, workers, manage.py) keeps the memory its rankings free.
        keep_freed_memory()
