from __future__ import annotations

from django.apps import AppConfig

# Imported for its @receiver functions (failed logins feed the login limiter); it needs no model, so loading it
# with the app config is safe.
from core import signals  # noqa: F401


class CoreConfig(AppConfig):
    """API tokens and the catalog change history.

    The label stays "gpufit": these models were first declared in the config package, and keeping the label keeps
    their tables, migrations, content types and permissions as they are in every existing database.
    """

    default_auto_field = "django.db.models.BigAutoField"
    name = "core"
    label = "gpufit"
    verbose_name = "gpufit"
